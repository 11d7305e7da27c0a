/*
 * A worker: one thread running one uv_loop_t that owns its connections (and,
 * later, their Kafka clients). Other threads reach it only through its inbox.
 */
#ifndef KWP_WORKER_H
#define KWP_WORKER_H

#include "core/server.h"

#include <uv.h>

typedef struct kwp_worker kwp_worker_t;

/**
 * Start worker @p index on a new thread.
 * @locality main thread  @returns the worker, or NULL on failure.
 */
kwp_worker_t *kwp_worker_start(kwp_ctx_t *ctx, int index);

/**
 * Hand an accepted socket to the worker, which takes ownership of @p fd.
 * @locality any thread  @returns 0, or KWP_ENOMEM (the caller closes @p fd).
 */
int kwp_worker_post_socket(kwp_worker_t *wk, int fd);

/**
 * Ask the worker to close its connections gracefully and stop its loop
 * within the grace period. @locality any thread
 */
void kwp_worker_shutdown(kwp_worker_t *wk);

/** Wait for the thread to end and free the worker. @locality main thread */
void kwp_worker_join(kwp_worker_t *wk);

/* Accessors for code running on the worker's own thread. */
uv_loop_t *kwp_worker_loop(kwp_worker_t *wk);
kwp_ctx_t *kwp_worker_ctx(kwp_worker_t *wk);

#endif
