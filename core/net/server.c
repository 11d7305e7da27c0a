/* The listener and the accept loop (main thread): accepts with accept4() and
 * hands each socket to a worker round-robin; SIGTERM/SIGINT stop accepting
 * and shut the workers down gracefully. */
#include "core/net/server.h"

#include "core/net/ctx_int.h"

#include "core/base/error.h"
#include "core/base/log.h"
#include "core/net/worker.h"

#include <errno.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LISTEN_BACKLOG 511
/* glibc keeps freed memory for reuse, in the arena of each thread that
 * freed it (workers, librdkafka's threads): 16 consumer sockets that never
 * read left the proxy at 85 MB with no socket open, and a malloc_trim()
 * took it to 16 MB (in 3 ms). So every TRIM_EVERY_MS the main thread looks
 * at the slack, resident memory not in use by malloc's callers, and gives
 * back what is free when the slack grew by TRIM_MIN_FREE since the last
 * trim: a steady load that keeps reusing its free memory is left alone (the
 * trim holds each arena's lock while it walks it). */
#define TRIM_EVERY_MS 10000
#define TRIM_MIN_FREE (8u << 20)

struct kwp_server {
  uv_loop_t loop;
  uv_poll_t accept_poll;
  uv_signal_t sigterm, sigint;
  uv_timer_t trim;
  size_t trim_slack; /* the slack after the last trim (or lower since) */
  int listen_fd;
  kwp_ctx_t *ctx;
  kwp_worker_t **workers;
  int nworkers;
  int next; /* round-robin cursor */
  int stopping;
};

static int server_listen(const char *host, int port, char *errbuf,
                         size_t errlen) {
  struct addrinfo hints = {0}, *ai = NULL;
  char portstr[16];
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  snprintf(portstr, sizeof(portstr), "%d", port);
  int rc = getaddrinfo(host, portstr, &hints, &ai);
  if (rc != 0) {
    snprintf(errbuf, errlen, "cannot resolve bind-interface %s: %s", host,
             gai_strerror(rc));
    return -1;
  }
  int fd =
      socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
      listen(fd, LISTEN_BACKLOG) != 0) {
    snprintf(errbuf, errlen, "cannot listen on %s:%d: %s", host, port,
             strerror(errno));
    if (fd >= 0)
      close(fd);
    fd = -1;
  }
  freeaddrinfo(ai);
  return fd;
}

static void server_accept_cb(uv_poll_t *p, int status, int events) {
  kwp_server_t *srv = p->data;
  for (;;) {
    int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE)
        KWP_LOG_RL(KWP_LOG_ERROR, "conn", "accept: %s", strerror(errno));
      return; /* EAGAIN, or a transient error: wait for the next wake-up */
    }
    /* The verdict is taken here, in accept order: a worker comparing the
     * shared count later also counted sockets accepted after its own, and a
     * burst of 60 against a limit of 50 refused 10 to 54 of them. Refused
     * sockets do not count against the limit while they get their 503. */
    atomic_size_t *count = &srv->ctx->open_conns;
    size_t open = atomic_fetch_add(count, 1);
    int over = open >= srv->ctx->cfg->server.max_connections;
    if (over) {
      atomic_fetch_sub(count, 1);
      count = &srv->ctx->refused_conns;
      if (atomic_fetch_add(count, 1) >= 256) { /* refuse without a word */
        atomic_fetch_sub(count, 1);
        close(fd);
        continue;
      }
    }
    kwp_worker_t *wk = srv->workers[srv->next++ % srv->nworkers];
    if (kwp_worker_post_socket(wk, fd, over) != 0) {
      atomic_fetch_sub(count, 1);
      close(fd);
    }
  }
}

#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
/* Resident bytes beyond what malloc has handed out (0 if unknown). */
static size_t heap_slack(void) {
  unsigned long pages = 0, rss = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f)
    return 0;
  int n = fscanf(f, "%lu %lu", &pages, &rss);
  fclose(f);
  struct mallinfo2 mi = mallinfo2();
  size_t res = n == 2 ? rss * (size_t)sysconf(_SC_PAGESIZE) : 0,
         used = mi.uordblks + mi.hblkhd;
  return res > used ? res - used : 0;
}
#endif

static void server_trim_cb(uv_timer_t *t) {
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
  kwp_server_t *srv = t->data;
  size_t slack = heap_slack();
  if (slack < srv->trim_slack + TRIM_MIN_FREE) {
    if (slack < srv->trim_slack)
      srv->trim_slack = slack;
    return;
  }
  uint64_t t0 = uv_hrtime();
  malloc_trim(0);
  srv->trim_slack = heap_slack();
  KWP_LOG(KWP_LOG_DEBUG, "conn",
          "gave back free memory: slack %zu KiB -> %zu KiB in %llu us",
          slack >> 10, srv->trim_slack >> 10,
          (unsigned long long)(uv_hrtime() - t0) / 1000);
#else
  (void)t;
#endif
}

static void server_signal_cb(uv_signal_t *s, int signum) {
  kwp_server_t *srv = s->data;
  if (srv->stopping)
    return;
  srv->stopping = 1;
  KWP_LOG(KWP_LOG_INFO, "conn",
          "%s received: no longer accepting, closing connections (grace "
          "period %lld ms)",
          signum == SIGTERM ? "SIGTERM" : "SIGINT",
          (long long)srv->ctx->cfg->server.shutdown_grace_period_ms);
  uv_poll_stop(&srv->accept_poll);
  uv_close((uv_handle_t *)&srv->accept_poll, NULL);
  close(srv->listen_fd);
  srv->listen_fd = -1;
  for (int i = 0; i < srv->nworkers; i++)
    kwp_worker_shutdown(srv->workers[i]);
  uv_close((uv_handle_t *)&srv->sigterm, NULL);
  uv_close((uv_handle_t *)&srv->sigint, NULL);
  uv_close((uv_handle_t *)&srv->trim, NULL);
}

static int server_workers(kwp_server_t *srv, char *errbuf, size_t errlen) {
  int n = srv->ctx->cfg->server.worker_threads;
  if (n <= 0) {
    uv_cpu_info_t *cpus;
    int count = 1;
    if (uv_cpu_info(&cpus, &count) == 0)
      uv_free_cpu_info(cpus, count);
    n = count > 0 ? count : 1;
  }
  srv->workers = calloc((size_t)n, sizeof(*srv->workers));
  for (int i = 0; srv->workers && i < n; i++) {
    if (!(srv->workers[i] = kwp_worker_start(srv->ctx, i))) {
      snprintf(errbuf, errlen, "cannot start worker thread %d", i);
      return -1;
    }
    srv->nworkers++;
  }
  return srv->workers ? 0 : -1;
}

kwp_ctx_t *kwp_ctx_new(const kwp_config_t *cfg, kwp_kafka_t *kafka,
                       const kwp_admission_t *admission) {
  kwp_ctx_t *ctx = calloc(1, sizeof(*ctx));
  if (!ctx)
    return NULL;
  ctx->cfg = cfg;
  ctx->kafka = kafka;
  ctx->admission = admission;
  atomic_init(&ctx->open_conns, 0);
  atomic_init(&ctx->refused_conns, 0);
  atomic_init(&ctx->next_conn_id, 1);
  uv_mutex_init(&ctx->done_lock);
  uv_cond_init(&ctx->done_cond);
  return ctx;
}

void kwp_ctx_set_registry(kwp_ctx_t *ctx, kwp_registry_t *reg) {
  ctx->registry = reg;
}

void kwp_ctx_set_auth(kwp_ctx_t *ctx, const kwp_auth_t *auth) {
  ctx->auth = auth;
}

void kwp_ctx_free(kwp_ctx_t *ctx) {
  if (!ctx)
    return;
  uv_cond_destroy(&ctx->done_cond);
  uv_mutex_destroy(&ctx->done_lock);
  free(ctx);
}

kwp_server_t *kwp_server_new(kwp_ctx_t *ctx, char *errbuf, size_t errlen) {
  kwp_server_t *srv = calloc(1, sizeof(*srv));
  const kwp_config_t *cfg = ctx->cfg;
  if (!srv)
    return NULL;
  srv->ctx = ctx;
  uv_loop_init(&srv->loop);
  srv->listen_fd = server_listen(cfg->server.bind_interface, cfg->server.port,
                                 errbuf, errlen);
  if (srv->listen_fd < 0 || server_workers(srv, errbuf, errlen) != 0) {
    kwp_server_free(srv);
    return NULL;
  }
  uv_poll_init(&srv->loop, &srv->accept_poll, srv->listen_fd);
  uv_signal_init(&srv->loop, &srv->sigterm);
  uv_signal_init(&srv->loop, &srv->sigint);
  uv_timer_init(&srv->loop, &srv->trim);
  srv->accept_poll.data = srv->sigterm.data = srv->sigint.data = srv;
  srv->trim.data = srv;
  uv_timer_start(&srv->trim, server_trim_cb, TRIM_EVERY_MS, TRIM_EVERY_MS);
  uv_poll_start(&srv->accept_poll, UV_READABLE, server_accept_cb);
  uv_signal_start(&srv->sigterm, server_signal_cb, SIGTERM);
  uv_signal_start(&srv->sigint, server_signal_cb, SIGINT);
  KWP_LOG(KWP_LOG_INFO, "conn", "listening on %s:%d with %d worker thread(s)",
          cfg->server.bind_interface, cfg->server.port, srv->nworkers);
  return srv;
}

/* Wait for every worker to end, but not much past the grace period: a
 * thread-pool call into librdkafka (a metadata request to a dead cluster)
 * cannot be cancelled, and shutdown must stay bounded. */
static int server_wait_workers(kwp_server_t *srv) {
  kwp_ctx_t *ctx = srv->ctx;
  uint64_t limit_ns =
      ((uint64_t)ctx->cfg->server.shutdown_grace_period_ms + 2000) * 1000000;
  uint64_t deadline = uv_hrtime() + limit_ns;
  int done;
  uv_mutex_lock(&ctx->done_lock);
  while ((done = ctx->workers_done) < srv->nworkers) {
    uint64_t now = uv_hrtime();
    if (now >= deadline || uv_cond_timedwait(&ctx->done_cond, &ctx->done_lock,
                                             deadline - now) == UV_ETIMEDOUT)
      if (ctx->workers_done < srv->nworkers)
        break;
  }
  done = ctx->workers_done;
  uv_mutex_unlock(&ctx->done_lock);
  return done == srv->nworkers ? 0 : -1;
}

int kwp_server_run(kwp_server_t *srv) {
  uv_run(&srv->loop, UV_RUN_DEFAULT);
  if (server_wait_workers(srv) != 0) {
    KWP_LOG(KWP_LOG_WARN, "conn",
            "shutdown: a worker is still blocked in a Kafka call after the "
            "grace period; exiting without waiting for it");
    _exit(0);
  }
  for (int i = 0; i < srv->nworkers; i++)
    kwp_worker_join(srv->workers[i]);
  srv->nworkers = 0;
  KWP_LOG(KWP_LOG_INFO, "conn", "all connections closed, shutdown complete");
  return 0;
}

void kwp_server_free(kwp_server_t *srv) {
  if (!srv)
    return;
  /* Only reached with live workers when startup failed half way. */
  for (int i = 0; i < srv->nworkers; i++) {
    kwp_worker_shutdown(srv->workers[i]);
    kwp_worker_join(srv->workers[i]);
  }
  if (srv->listen_fd >= 0)
    close(srv->listen_fd);
  uv_run(&srv->loop, UV_RUN_NOWAIT);
  uv_loop_close(&srv->loop);
  free(srv->workers);
  free(srv);
}
