/* Worker threads: each runs its own uv_loop_t, owns its connections and is
 * reached from other threads only through its inbox (mutex + list + one
 * uv_async_t; the callback swaps out the whole list since sends coalesce). */
#include "core/net/worker.h"

#include "core/base/error.h"
#include "core/base/log.h"
#include "core/net/conn_int.h"
#include "core/net/ctx_int.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define SCRATCH_SIZE 65536
/* Sockets lingering at once (see kwp_conn__finish()); beyond it a closing
 * socket is closed as soon as its writes are out, lingering no more. */
#define LINGER_MAX 512

enum { MSG_SOCKET, MSG_SHUTDOWN, MSG_CALL };

typedef struct inbox_msg {
  struct inbox_msg *next;
  int type;
  int fd;
  int over; /* MSG_SOCKET: over server.max-connections, to be refused */
  void (*fn)(void *arg);
  void *arg;
} inbox_msg_t;

struct kwp_worker {
  uv_loop_t loop;
  uv_thread_t thread;
  uv_async_t async;
  uv_timer_t grace;
  uv_mutex_t lock;
  inbox_msg_t *inbox; /* guarded by lock */
  kwp_ctx_t *ctx;
  int index;
  int stopping;
  uint64_t stop_at;  /* uv_now() when shutdown started */
  kwp_conn_t *conns; /* owned connections, a doubly linked list */
  struct {
    const kwp_worker_service_t *svc;
    void *arg;
  } services[KWP_SVC_MAX];
  size_t nconns;
  size_t nlinger;     /* of nconns, lingering */
  uint64_t wall_tick; /* uv_now() when wall_ms was read */
  int64_t wall_ms;
  uint8_t scratch[SCRATCH_SIZE]; /* one read at a time per loop */
};

uv_loop_t *kwp_worker_loop(kwp_worker_t *wk) {
  return &wk->loop;
}

kwp_ctx_t *kwp_worker__ctx(kwp_worker_t *wk) {
  return wk->ctx;
}

const kwp_config_t *kwp_worker_cfg(const kwp_worker_t *wk) {
  return wk->ctx->cfg;
}

kwp_kafka_t *kwp_worker_kafka(const kwp_worker_t *wk) {
  return wk->ctx->kafka;
}

const kwp_admission_t *kwp_worker_admission(const kwp_worker_t *wk) {
  return wk->ctx->admission;
}

kwp_registry_t *kwp_worker_registry(const kwp_worker_t *wk) {
  return wk->ctx->registry;
}

const kwp_auth_t *kwp_worker_auth(const kwp_worker_t *wk) {
  return wk->ctx->auth;
}

/* librdkafka reads the wall clock for every record it is not given a
 * timestamp for, and on a VM a clock read was 2 % of the proxy's CPU per
 * 100 B record; the records of one loop tick (one socket read, typically)
 * share a read instead. */
int64_t kwp_worker_wall_ms(kwp_worker_t *wk) {
  uint64_t tick = uv_now(&wk->loop);
  if (!wk->wall_ms || tick != wk->wall_tick) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    wk->wall_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    wk->wall_tick = tick;
  }
  return wk->wall_ms;
}

uint8_t *kwp_worker__scratch(kwp_worker_t *wk, size_t *len) {
  *len = sizeof(wk->scratch);
  return wk->scratch;
}

int kwp_worker__linger_begin(kwp_worker_t *wk) {
  if (wk->nlinger >= LINGER_MAX)
    return KWP_EOVERLOAD;
  wk->nlinger++;
  return 0;
}

void kwp_worker__linger_end(kwp_worker_t *wk) {
  wk->nlinger--;
}

void kwp_worker__add(kwp_worker_t *wk, kwp_conn_t *conn) {
  conn->next = wk->conns;
  conn->prev = NULL;
  if (wk->conns)
    wk->conns->prev = conn;
  wk->conns = conn;
  wk->nconns++;
}

void *kwp_worker_service(kwp_worker_t *wk, int id) {
  return wk->services[id].arg;
}

void kwp_worker_service_set(kwp_worker_t *wk, int id,
                            const kwp_worker_service_t *svc, void *arg) {
  wk->services[id].svc = svc;
  wk->services[id].arg = arg;
}

int kwp_worker_stopping(const kwp_worker_t *wk) {
  return wk->stopping;
}

uint64_t kwp_worker_grace_left(kwp_worker_t *wk) {
  uint64_t grace = (uint64_t)wk->ctx->cfg->server.shutdown_grace_period_ms;
  uint64_t spent = uv_now(&wk->loop) - wk->stop_at;
  return spent < grace ? grace - spent : 0;
}

static void worker_stop_loop(kwp_worker_t *wk) {
  uv_close((uv_handle_t *)&wk->async, NULL);
  uv_close((uv_handle_t *)&wk->grace, NULL);
  for (int i = 0; i < KWP_SVC_MAX; i++)
    if (wk->services[i].svc)
      wk->services[i].svc->stop(wk->services[i].arg);
}

void kwp_worker__remove(kwp_worker_t *wk, kwp_conn_t *conn) {
  if (conn->prev)
    conn->prev->next = conn->next;
  else
    wk->conns = conn->next;
  if (conn->next)
    conn->next->prev = conn->prev;
  wk->nconns--;
  if (wk->stopping && wk->nconns == 0)
    worker_stop_loop(wk);
}

static void worker_grace_expired(uv_timer_t *t) {
  kwp_worker_t *wk = t->data;
  KWP_LOG(KWP_LOG_WARN, "conn",
          "worker %d: grace period over, closing %zu connection(s)", wk->index,
          wk->nconns);
  for (kwp_conn_t *conn = wk->conns, *next; conn; conn = next) {
    next = conn->next;
    kwp_conn__grace_over(conn);
  }
}

static void worker_begin_shutdown(kwp_worker_t *wk) {
  if (wk->stopping)
    return;
  wk->stopping = 1;
  wk->stop_at = uv_now(&wk->loop);
  if (wk->nconns == 0) {
    worker_stop_loop(wk);
    return;
  }
  uv_timer_start(&wk->grace, worker_grace_expired,
                 (uint64_t)wk->ctx->cfg->server.shutdown_grace_period_ms, 0);
  /* Closing may unlink the current node, so step with a saved next. */
  for (kwp_conn_t *conn = wk->conns, *next; conn; conn = next) {
    next = conn->next;
    kwp_conn__shutdown(conn);
  }
}

static void worker_async_cb(uv_async_t *a) {
  kwp_worker_t *wk = a->data;
  uv_mutex_lock(&wk->lock);
  inbox_msg_t *m = wk->inbox;
  wk->inbox = NULL;
  uv_mutex_unlock(&wk->lock);
  /* The list is newest first; reverse it to keep accept order. */
  inbox_msg_t *rev = NULL;
  while (m) {
    inbox_msg_t *next = m->next;
    m->next = rev;
    rev = m;
    m = next;
  }
  for (m = rev; m; m = rev) {
    rev = m->next;
    if (m->type == MSG_SOCKET) {
      if (wk->stopping) {
        close(m->fd);
        atomic_fetch_sub(
            m->over ? &wk->ctx->refused_conns : &wk->ctx->open_conns, 1);
      } else {
        kwp_conn__new(wk, m->fd, m->over);
      }
    } else if (m->type == MSG_SHUTDOWN) {
      worker_begin_shutdown(wk);
    } else if (m->type == MSG_CALL) {
      m->fn(m->arg);
    }
    free(m);
  }
}

static int worker_post(kwp_worker_t *wk, int type, int fd, int over,
                       void (*fn)(void *arg), void *arg) {
  inbox_msg_t *m = malloc(sizeof(*m));
  if (!m)
    return KWP_ENOMEM;
  m->type = type;
  m->fd = fd;
  m->over = over;
  m->fn = fn;
  m->arg = arg;
  uv_mutex_lock(&wk->lock);
  m->next = wk->inbox;
  wk->inbox = m;
  uv_mutex_unlock(&wk->lock);
  uv_async_send(&wk->async);
  return 0;
}

int kwp_worker_post_socket(kwp_worker_t *wk, int fd, int over) {
  return worker_post(wk, MSG_SOCKET, fd, over, NULL, NULL);
}

int kwp_worker_post_call(kwp_worker_t *wk, void (*fn)(void *arg), void *arg) {
  return worker_post(wk, MSG_CALL, -1, 0, fn, arg);
}

void kwp_worker_shutdown(kwp_worker_t *wk) {
  if (worker_post(wk, MSG_SHUTDOWN, -1, 0, NULL, NULL) != 0)
    KWP_LOG(KWP_LOG_ERROR, "conn", "worker %d: cannot post shutdown",
            wk->index);
}

static void worker_main(void *arg) {
  kwp_worker_t *wk = arg;
  uv_run(&wk->loop, UV_RUN_DEFAULT);
  for (int i = 0; i < KWP_SVC_MAX; i++)
    if (wk->services[i].svc)
      wk->services[i].svc->free(wk->services[i].arg);
  /* Services' frees may close handles of their own. */
  uv_run(&wk->loop, UV_RUN_DEFAULT);
  uv_mutex_lock(&wk->ctx->done_lock);
  wk->ctx->workers_done++;
  uv_cond_signal(&wk->ctx->done_cond);
  uv_mutex_unlock(&wk->ctx->done_lock);
}

kwp_worker_t *kwp_worker_start(kwp_ctx_t *ctx, int index) {
  kwp_worker_t *wk = calloc(1, sizeof(*wk));
  if (!wk)
    return NULL;
  wk->ctx = ctx;
  wk->index = index;
  if (uv_loop_init(&wk->loop) != 0)
    goto fail_loop;
  if (uv_mutex_init(&wk->lock) != 0)
    goto fail_mutex;
  uv_async_init(&wk->loop, &wk->async, worker_async_cb);
  uv_timer_init(&wk->loop, &wk->grace);
  wk->async.data = wk->grace.data = wk;
  /* The grace timer must not keep the loop alive on its own. */
  uv_unref((uv_handle_t *)&wk->grace);
  /* Inbound JSON is read recursively, up to KWP_JS_MAX_DEPTH levels: give
   * the loop a main thread's stack, whatever RLIMIT_STACK says (only the
   * pages used become resident). */
  uv_thread_options_t opts = {UV_THREAD_HAS_STACK_SIZE, 8u << 20};
  if (uv_thread_create_ex(&wk->thread, &opts, worker_main, wk) != 0)
    goto fail_thread;
  return wk;
fail_thread:
  uv_close((uv_handle_t *)&wk->async, NULL);
  uv_close((uv_handle_t *)&wk->grace, NULL);
  uv_run(&wk->loop, UV_RUN_DEFAULT);
  uv_mutex_destroy(&wk->lock);
fail_mutex:
  uv_loop_close(&wk->loop);
fail_loop:
  free(wk);
  return NULL;
}

void kwp_worker_join(kwp_worker_t *wk) {
  uv_thread_join(&wk->thread);
  int rc = uv_loop_close(&wk->loop);
  if (rc != 0)
    KWP_LOG(KWP_LOG_WARN, "conn", "worker %d: loop not empty at exit: %s",
            wk->index, uv_strerror(rc));
  /* Sockets posted after the loop stopped were never taken. */
  for (inbox_msg_t *m = wk->inbox, *next; m; m = next) {
    next = m->next;
    if (m->type == MSG_SOCKET)
      close(m->fd);
    else if (m->type == MSG_CALL) /* see kwp_worker_post_call() */
      m->fn(m->arg);
    free(m);
  }
  uv_mutex_destroy(&wk->lock);
  free(wk);
}
