/*
 * The server: binds the listener, runs the accept loop on the calling thread,
 * and hands accepted sockets to N worker loops. SIGTERM/SIGINT start a
 * graceful shutdown (stop accepting, close WebSockets with 1001, drain within
 * server.shutdown-grace-period).
 */
#ifndef KWP_SERVER_H
#define KWP_SERVER_H

#include "core/config/config.h"
#include "core/kafka/kafka.h"

#include <stdatomic.h>

/* Read-mostly state shared by every thread; outlives the workers. */
typedef struct kwp_ctx {
  const kwp_config_t *cfg;
  kwp_kafka_t *kafka;
  struct kwp_session *session; /* cluster-wide session state */
  atomic_size_t open_conns;    /* admitted (under the limit), not yet freed */
  atomic_size_t refused_conns; /* being answered 503, not yet freed */
  atomic_uint_fast64_t next_conn_id;
  uv_mutex_t done_lock; /* guards workers_done; signalled through done_cond */
  uv_cond_t done_cond;
  int workers_done;
} kwp_ctx_t;

typedef struct kwp_server kwp_server_t;

/**
 * Bind the listener and start the worker threads.
 * @locality main thread
 * @returns the server, or NULL with @p errbuf filled (e.g. address in use).
 */
kwp_server_t *kwp_server_new(kwp_ctx_t *ctx, char *errbuf, size_t errlen);

/**
 * Accept until SIGTERM/SIGINT, then shut down gracefully and join the
 * workers. @locality main thread  @returns 0
 */
int kwp_server_run(kwp_server_t *srv);

/** Free a server after kwp_server_run() returned. */
void kwp_server_free(kwp_server_t *srv);

#endif
