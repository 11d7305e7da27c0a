/*
 * A worker: one thread running one uv_loop_t that owns its connections (and,
 * later, their Kafka clients). Other threads reach it only through its inbox.
 */
#ifndef KWP_WORKER_H
#define KWP_WORKER_H

#include "core/net/server.h"

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
int kwp_worker_post_socket(kwp_worker_t *wk, int fd, int over);

/**
 * Run @p fn(@p arg) on the worker's thread. Callers post only while the
 * worker has a reason to keep running (e.g. a connection waiting for the
 * answer holds a reference); a call posted after the loop ended runs on the
 * thread of kwp_worker_join(). @locality any thread
 * @returns 0, or KWP_ENOMEM.
 */
int kwp_worker_post_call(kwp_worker_t *wk, void (*fn)(void *arg), void *arg);

/**
 * Ask the worker to close its connections gracefully and stop its loop
 * within the grace period. @locality any thread
 */
void kwp_worker_shutdown(kwp_worker_t *wk);

/** Wait for the thread to end and free the worker. @locality main thread */
void kwp_worker_join(kwp_worker_t *wk);

/*
 * Per-worker services (e.g. the shared Kafka producer), created lazily by a
 * module and owned by the worker. @p stop runs on the worker thread once the
 * worker's connections are gone during shutdown; the service must then let
 * its handles close (the loop ends when nothing is active). @p free runs on
 * the worker thread after its loop has ended.
 */
enum kwp_worker_service_id { KWP_SVC_PRODUCER, KWP_SVC_MAX };
typedef struct kwp_worker_service {
  void (*stop)(void *arg);
  void (*free)(void *arg);
} kwp_worker_service_t;

void *kwp_worker_service(kwp_worker_t *wk, int id);
void kwp_worker_service_set(kwp_worker_t *wk, int id,
                            const kwp_worker_service_t *svc, void *arg);
/** 1 once shutdown has started on this worker. */
int kwp_worker_stopping(const kwp_worker_t *wk);
/** What is left of the shutdown grace period, in ms (0 when it is over).
 * @locality the worker's thread, once stopping */
uint64_t kwp_worker_grace_left(kwp_worker_t *wk);

/* Accessors for code running on the worker's own thread. */
uv_loop_t *kwp_worker_loop(kwp_worker_t *wk);
/* What the worker shares with every thread (read-only, outlive it). */
const kwp_config_t *kwp_worker_cfg(const kwp_worker_t *wk);
kwp_kafka_t *kwp_worker_kafka(const kwp_worker_t *wk);
const kwp_admission_t *kwp_worker_admission(const kwp_worker_t *wk);
/** The schema registry client, or NULL when none is configured. */
kwp_registry_t *kwp_worker_registry(const kwp_worker_t *wk);
/** The authenticator, or NULL when none is set. */
const kwp_auth_t *kwp_worker_auth(const kwp_worker_t *wk);
/** Wall-clock ms (Unix epoch), read at most once per loop tick: the
 * CreateTime of the records this tick produces. @locality the worker's thread
 */
int64_t kwp_worker_wall_ms(kwp_worker_t *wk);

#endif
