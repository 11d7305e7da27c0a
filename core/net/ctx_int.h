/* The shared context's fields, for the files of core/net that keep its
 * counters (server.c, worker.c, conn.c); everyone else uses the worker's
 * accessors (worker.h). */
#ifndef KWP_CTX_INT_H
#define KWP_CTX_INT_H

#include "core/net/server.h"

#include <stdatomic.h>
#include <uv.h>

struct kwp_ctx {
  const kwp_config_t *cfg;
  kwp_kafka_t *kafka;
  const kwp_admission_t *admission;
  kwp_registry_t *registry;    /* NULL: no schema-registry.url */
  const kwp_auth_t *auth;      /* NULL: none */
  atomic_size_t open_conns;    /* admitted (under the limit), not yet freed */
  atomic_size_t refused_conns; /* being answered 503, not yet freed */
  atomic_uint_fast64_t next_conn_id;
  uv_mutex_t done_lock; /* guards workers_done; signalled through done_cond */
  uv_cond_t done_cond;
  int workers_done;
};

#endif
