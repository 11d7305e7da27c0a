/*
 * The consume path: one consumer socket's Kafka consumer (a member of its
 * group), its records to the socket and the client's acknowledgements back
 * as commits. It owns the member's lifecycle, hold/pause/backpressure and
 * the rate, rebalances, the commit handler (autoCommit=false) or the commits
 * of what the kernel took (autoCommit=true); what its messages look like is
 * its payload format's business (codec/payload.h), and which URL and
 * parameters open it is the dialect's (core/dialect/). The functions below
 * are the upgrade pipeline's steps (core/endpoint/endpoint.h). Worker
 * thread only.
 */
#ifndef KWP_CONSUME_H
#define KWP_CONSUME_H

#include "codec/payload.h"
#include "core/endpoint/endpoint.h"
#include "core/net/worker.h"

typedef struct kwp_consume kwp_consume_t;

/* What a dialect read from the request. Strings are copied. */
typedef struct kwp_consume_conf {
  const char *client_id, *group_id, *topic;
  const char *reset;     /* earliest, latest or none */
  const char *isolation; /* read_uncommitted or read_committed */
  const kwp_payload_t *fmt;
  kwp_fmt_t key_fmt, val_fmt;
  int auto_commit;
  int64_t rate;  /* this socket's records per second (0: none) */
  int64_t batch; /* records per message (0: the group's limit) */
} kwp_consume_conf_t;

/** A socket's consume path, not open yet. @returns it, or NULL (ENOMEM). */
kwp_consume_t *kwp_consume_new(kwp_worker_t *wk, const kwp_consume_conf_t *cc);

/* Pipeline steps (state: a kwp_consume_t). The topic; admission into the
 * group's session (at most its max-connections sockets, and no more than
 * the topic's partitions); open() starts the consumer; discard() frees an
 * unopened one. */
const char *kwp_consume_topic(void *state);
int kwp_consume_admission(void *state, int partitions, kwp_admit_req_t *req);
void kwp_consume_open(kwp_upgrade_t *up, void *state,
                      kwp_claim_handle_t *claim);
void kwp_consume_discard(void *state);

#endif
