/*
 * The cluster's session state as one node sees it: every record of the
 * single-partition state topic applied in log order (see session/DESIGN.md).
 * Admission verdicts are computed here, from the log alone (record
 * timestamps are the clock), so every node that applies the same records
 * reaches the same verdicts. Pure: no I/O, no Kafka, no locking (the caller,
 * session/session.c, serialises access).
 */
#ifndef KWP_SESSION_STATE_H
#define KWP_SESSION_STATE_H

#include <stddef.h>
#include <stdint.h>

typedef struct kwp_sstate kwp_sstate_t;

enum kwp_session_kind { KWP_SESSION_CONSUMER, KWP_SESSION_PRODUCER };

/* A claim: one socket asking to join a session. */
typedef struct kwp_claim {
  const char *nonce;    /* unique per claim: "<incarnation>-<n>" */
  int kind;             /* kwp_session_kind */
  const char *session;  /* groupId (consumer) or clientId (producer) */
  const char *instance; /* clientId (consumer) or instanceId (producer) */
  const char *server_id, *incarnation;
  int64_t limit; /* sockets allowed in the session, 0 = unlimited */
} kwp_claim_t;

/* What applying one record tells the caller. */
typedef struct kwp_sstate_result {
  /* A claim was decided: its nonce, server and incarnation, and the
   * verdict: 0 admitted, or KWP_EBADREQ with the reference's rejection text
   * in message. */
  int decided;
  int verdict;
  char message[640];
  /* A heartbeat was applied: server_id and incarnation say whose. */
  int heartbeat;
  char nonce[128], server_id[256], incarnation[128];
} kwp_sstate_result_t;

/** Node liveness: dead after @p ttl_ms of log time without a heartbeat. */
kwp_sstate_t *kwp_sstate_new(int64_t ttl_ms);
void kwp_sstate_free(kwp_sstate_t *st);

/**
 * Apply one record of the topic (@p value NULL: a tombstone) with its
 * timestamp @p ts_ms. Records that are not ours (e.g. the reference system's
 * session records) are ignored.
 * @returns 0, 1 when the record was not ours, or KWP_EBADREQ when it was
 * ours but malformed (ignored too).
 */
int kwp_sstate_apply(kwp_sstate_t *st, const char *key, size_t klen,
                     const char *value, size_t vlen, int64_t ts_ms,
                     kwp_sstate_result_t *res);

/* Record keys and values, for writers. @returns bytes written (snprintf). */
int kwp_sstate_heartbeat_key(char *out, size_t n, const char *server_id);
int kwp_sstate_heartbeat_value(char *out, size_t n, const char *server_id,
                               const char *incarnation);
int kwp_sstate_claim_key(char *out, size_t n, const kwp_claim_t *c);
/** A malloc'd JSON value for @p c. */
char *kwp_sstate_claim_value(const kwp_claim_t *c);

/** Sockets counted against @p session now (live nodes only). */
size_t kwp_sstate_count(kwp_sstate_t *st, int kind, const char *session);
/** Sessions with at least one claim (for metrics and tests). */
size_t kwp_sstate_sessions(const kwp_sstate_t *st);
/** The latest record timestamp applied (the log's clock). */
int64_t kwp_sstate_log_time(const kwp_sstate_t *st);

/**
 * Claims that should be removed from the topic: those of nodes that stopped
 * heartbeating (dead by log time) and those of @p server_id under an older
 * incarnation than @p incarnation (this node before a restart). @p fn gets
 * each claim's topic key. Each dead node is reported once.
 */
void kwp_sstate_stale_claims(kwp_sstate_t *st, const char *server_id,
                             const char *incarnation,
                             void (*fn)(void *arg, const char *key), void *arg);

/** Whether another incarnation of @p server_id heartbeated at or after
 * @p since_ms (log time): two live nodes share one server-id. */
int kwp_sstate_server_taken(const kwp_sstate_t *st, const char *server_id,
                            const char *incarnation, int64_t since_ms);

#endif
