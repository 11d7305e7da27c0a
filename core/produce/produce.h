/*
 * The produce path: one producer socket's records to Kafka and their
 * results back, in input order, after Kafka acknowledged them. It owns the
 * in-flight window (producer.max-inflight-*), the clientId's rate limit,
 * exactly-once transactions and the graceful end at SIGTERM; what the
 * socket's messages look like is its payload format's business
 * (codec/payload.h), and which URL and parameters open it is the dialect's
 * (core/dialect/). The functions below are the upgrade pipeline's steps
 * (core/endpoint/endpoint.h) for a dialect's endpoint table. Worker thread
 * only.
 */
#ifndef KWP_PRODUCE_H
#define KWP_PRODUCE_H

#include "codec/payload.h"
#include "core/endpoint/endpoint.h"
#include "core/endpoint/params.h"
#include "core/net/worker.h"

typedef struct kwp_produce kwp_produce_t;

/* What a dialect read from the request. Strings are copied. */
typedef struct kwp_produce_conf {
  const char *client_id;
  const char *instance_id; /* "" or NULL: none */
  const char *topic;       /* a valid Kafka topic name */
  int transactional;       /* exactly-once (a producer of its own) */
  const kwp_payload_t *fmt;
  kwp_fmt_t key_fmt, val_fmt;
  /* avro_registry keys or values: the schema they are written with, looked
   * up in the schema registry by open() */
  kwp_schema_ref_t key_schema, val_schema;
} kwp_produce_conf_t;

/**
 * Whether clients may write @p topic (not Kafka's or the proxy's own: a
 * forged session record would count against a group's limit for good, a
 * forged heartbeat stop a node from starting). @locality any thread
 * @returns 0, or KWP_EBADREQ with the message in @p msg.
 */
int kwp_produce_topic_writable(const kwp_config_t *cfg, const char *topic,
                               char *msg, size_t msglen);

/** A socket's produce path, not open yet. @returns it, or NULL (ENOMEM). */
kwp_produce_t *kwp_produce_new(kwp_worker_t *wk, const kwp_produce_conf_t *pc);

/* Pipeline steps (state: a kwp_produce_t). The topic; admission when
 * producer.sessions-enabled (at most the clientId's max-connections
 * instances); open() looks up avro_registry schemas (an unknown subject,
 * version or id: 400; the registry unreachable: 503) and starts the
 * producer (answering once a transactional one is initialised); discard()
 * frees an unopened one. */
const char *kwp_produce_topic(void *state);
int kwp_produce_admission(void *state, int partitions, kwp_admit_req_t *req);
void kwp_produce_open(kwp_upgrade_t *up, void *state,
                      kwp_claim_handle_t *claim);
void kwp_produce_discard(void *state);

#endif
