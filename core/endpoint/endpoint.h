/*
 * WebSocket endpoints and the one upgrade pipeline they all go through:
 *
 *   request checks (core/net/routes.c: GET, HTTP/1.1, Upgrade headers, key)
 *   -> identity   (who the client is; pass-through today, asynchronous-ready)
 *   -> parse      (the endpoint's query parameters into its socket state)
 *   -> topic      (the topic exists: kwp_kafka_topic_lookup(), off the loop)
 *   -> admission  (the cluster's verdict: core/endpoint/admission.h)
 *   -> open       (the endpoint's Kafka clients; then 101 and the socket)
 *
 * An endpoint (a dialect's socket type) is a kwp_endpoint_t registered in
 * core/dialect/registry.c. Every step runs on the connection's worker
 * thread; a failed step answers with the HTTP status of its KWP_E*
 * (kwp_err_http_status()) and a JSON {"message": ...} body.
 */
#ifndef KWP_ENDPOINT_H
#define KWP_ENDPOINT_H

#include "core/config/config.h"
#include "core/endpoint/admission.h"
#include "core/net/conn.h"

#include <stdint.h>

typedef struct kwp_upgrade kwp_upgrade_t;

/* What a socket asks of the admission step. */
typedef struct kwp_admit_req {
  int kind;             /* kwp_admit_kind */
  const char *session;  /* groupId (consumer) or clientId (producer) */
  const char *instance; /* clientId (consumer) or instanceId (producer) */
  int64_t limit;        /* sockets allowed in the session; 0: unlimited */
} kwp_admit_req_t;

typedef struct kwp_endpoint {
  const char *name;
  const char *const *paths; /* NULL-terminated */
  /** Whether the endpoint is served with @p cfg (NULL: always). */
  int (*enabled)(const kwp_config_t *cfg);
  /**
   * Read the request's parameters into a new socket state in @p *state.
   * @returns 0, or a KWP_E* with the HTTP message in @p msg.
   */
  int (*parse)(kwp_upgrade_t *up, const char *url, void **state, char *msg,
               size_t msglen);
  /** The topic the socket uses, looked up before admission (NULL: none). */
  const char *(*topic)(void *state);
  /* The 400 message for a missing topic (a format with one %s). */
  const char *topic_missing;
  /**
   * With the topic's partition count: fill @p req and return 1 to ask for
   * admission, or return 0 when the socket needs none (NULL: none).
   */
  int (*admission)(void *state, int partitions, kwp_admit_req_t *req);
  /**
   * Start the socket (its Kafka clients), taking @p state and @p claim
   * (NULL when there was no admission step); answer exactly once, now or
   * later, with kwp_upgrade_accept() or kwp_upgrade_refuse() (having freed
   * @p state and released @p claim).
   */
  void (*open)(kwp_upgrade_t *up, void *state, kwp_claim_handle_t *claim);
  /** Free a state that never reached open() (may be NULL). */
  void (*discard)(void *state);
} kwp_endpoint_t;

/**
 * Run the pipeline for @p ep on @p conn, whose request passed the checks;
 * the connection's reading is paused until it answers.
 * @locality @p conn's worker thread
 */
void kwp_upgrade_start(kwp_conn_t *conn, const kwp_endpoint_t *ep,
                       const char *url);

/** Answer 101 and hand the socket to @p h with @p state; ends @p up. */
void kwp_upgrade_accept(kwp_upgrade_t *up, const kwp_ws_handler_t *h,
                        void *state);

/** Answer @p err's status with @p message; ends @p up. */
void kwp_upgrade_refuse(kwp_upgrade_t *up, int err, const char *message);

/* The connection, its worker and the request's identity, for the steps. */
kwp_conn_t *kwp_upgrade_conn(const kwp_upgrade_t *up);
struct kwp_worker *kwp_upgrade_worker(const kwp_upgrade_t *up);
/** Who the client is: NULL while no authentication is configured. */
const char *kwp_upgrade_principal(const kwp_upgrade_t *up);

#endif
