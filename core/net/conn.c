/* Connection lifecycle, socket I/O with backpressure, the lingering close,
 * the per-connection timer (request/idle timeouts, WebSocket keep-alive)
 * and the WebSocket message layer. Runs on the owning worker's thread only. */
#include "core/net/conn_int.h"
#include "core/net/ctx_int.h"

#include "core/base/error.h"
#include "core/base/log.h"
#include "core/endpoint/endpoint.h"

#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define READ_CHUNK 65536
#define CLOSE_WAIT_MS 3000  /* for the client's close frame */
#define AFTER_GRACE_MS 1000 /* lingering once the grace period is over */
#define LINGER_SLACK_BYTES ((uint64_t)1 << 20)
#define SHUTDOWN_LINGER_QUIET_MS 500 /* see conn_deadline() */

typedef struct wreq {
  uv_write_t req;
  size_t len;
  char data[];
} wreq_t;

static void conn_start_reading(kwp_conn_t *conn);

/* --- lifetime --- */

/* The count the accept thread put this connection in (see
 * server_accept_cb()). */
static atomic_size_t *conn_count(kwp_ctx_t *ctx, int refused) {
  return refused ? &ctx->refused_conns : &ctx->open_conns;
}

static void conn_free(kwp_conn_t *conn) {
  if (conn->lingering)
    kwp_worker__linger_end(conn->wk);
  kwp_worker__remove(conn->wk, conn);
  if (conn->h && conn->h->close)
    conn->h->close(conn, conn->hstate);
  kwp_http__free(conn);
  kwp_ws_reader_free(conn->rd);
  free(conn->in);
  atomic_fetch_sub(conn_count(conn->ctx, conn->refused), 1);
  free(conn);
}

void kwp_conn_ref(kwp_conn_t *conn) {
  conn->refs++;
}

void kwp_conn_unref(kwp_conn_t *conn) {
  if (--conn->refs == 0)
    conn_free(conn);
}

static void conn_handle_closed(uv_handle_t *h) {
  kwp_conn_unref(h->data);
}

void kwp_conn__close(kwp_conn_t *conn) {
  if (conn->closing)
    return;
  conn->closing = 1;
  uv_close((uv_handle_t *)&conn->tcp, conn_handle_closed);
  uv_close((uv_handle_t *)&conn->timer, conn_handle_closed);
}

static void conn_set_peer(kwp_conn_t *conn) {
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  char host[48] = "?";
  int port = 0;
  if (uv_tcp_getpeername(&conn->tcp, (struct sockaddr *)&ss, &len) == 0) {
    if (ss.ss_family == AF_INET6) {
      uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof(host));
      port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    } else {
      uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof(host));
      port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
  }
  snprintf(conn->peer, sizeof(conn->peer), "%s:%d", host, port);
}

kwp_conn_t *kwp_conn__new(kwp_worker_t *wk, int fd, int over) {
  kwp_conn_t *conn = calloc(1, sizeof(*conn));
  uv_loop_t *loop = kwp_worker_loop(wk);
  if (!conn || uv_tcp_init(loop, &conn->tcp) != 0 ||
      uv_tcp_open(&conn->tcp, fd) != 0) {
    /* uv_tcp_init cannot fail on a valid loop; a bad fd is closed here. */
    close(fd);
    free(conn);
    atomic_fetch_sub(conn_count(kwp_worker__ctx(wk), over), 1);
    return NULL;
  }
  conn->refused = over;
  uv_timer_init(loop, &conn->timer);
  conn->tcp.data = conn->timer.data = conn;
  conn->refs = 2; /* the two handles */
  conn->wk = wk;
  conn->ctx = kwp_worker__ctx(wk);
  conn->cfg = conn->ctx->cfg;
  conn->id = atomic_fetch_add(&conn->ctx->next_conn_id, 1);
  conn->t_activity = conn->t_rx = conn->t_tx = conn->t_req_start = uv_now(loop);
  uv_tcp_nodelay(&conn->tcp, 1);
  conn_set_peer(conn);
  kwp_worker__add(wk, conn);
  kwp_http__init(conn);
  KWP_LOG(KWP_LOG_DEBUG, "conn", "#%llu %s connected",
          (unsigned long long)conn->id, conn->peer);
  if (over)
    kwp_http__error(conn, KWP_EOVERLOAD, "Too many connections", NULL);
  else
    conn_start_reading(conn);
  kwp_conn__timer_arm(conn);
  return conn;
}

/* --- closing ---
 * nginx's lingering close. kwp_conn__finish() stops acting on input: what
 * the client still sends is read and discarded, because a close() that
 * finds unread input makes the kernel answer with a reset, and the client
 * then loses what it has not read yet (the end of an echo, the close frame,
 * an error response). Once the queued writes are out, the write side is
 * shut (our FIN) and the socket lingers, discarding, until the client's
 * EOF. Bounded: closed at t_close_end (server.lingering-timeout after the
 * finish), after linger_max_bytes() discarded, and a worker lets at most
 * LINGER_MAX sockets linger at once (see worker.c). */

/* The most a closing client may still send: the rest of a message or body
 * over its limit, and what it pipelined behind it. */
static uint64_t linger_max_bytes(const kwp_config_t *cfg) {
  size_t m = cfg->server.max_message_size;
  if (cfg->server.max_request_body_size > m)
    m = cfg->server.max_request_body_size;
  return (uint64_t)m + LINGER_SLACK_BYTES;
}

/* When a socket that starts finishing now is closed at the latest. Once the
 * shutdown grace period is over, the process is about to exit: a second. */
static uint64_t linger_deadline(kwp_conn_t *conn, uint64_t now) {
  uint64_t t = (uint64_t)conn->cfg->server.lingering_timeout_ms;
  if (kwp_worker_stopping(conn->wk)) {
    uint64_t left = kwp_worker_grace_left(conn->wk) + AFTER_GRACE_MS;
    if (left < t)
      t = left;
  }
  return now + t;
}

static void conn_drop_input(kwp_conn_t *conn) {
  free(conn->in);
  conn->in = NULL;
  conn->in_len = conn->in_cap = 0;
}

static void conn_close_idle(kwp_conn_t *conn);

/* The endpoint is done with the socket once its last bytes are out: its
 * handler's close() runs now, not when the client's EOF ends the lingering
 * (a consumer would stay in its group until then: up to
 * server.lingering-timeout for a client that keeps its TCP open). */
static void conn_handler_end(kwp_conn_t *conn) {
  const kwp_ws_handler_t *h = conn->h;
  conn->h = NULL;
  if (h && h->close)
    h->close(conn, conn->hstate);
}

/* Past the shutdown grace period the process is about to exit. */
static int grace_over(kwp_conn_t *conn) {
  return kwp_worker_stopping(conn->wk) && !kwp_worker_grace_left(conn->wk);
}

static void conn_shutdown_cb(uv_shutdown_t *req, int status) {
  kwp_conn_t *conn = req->data;
  /* Our FIN is out: keep discarding until the client's EOF (then
   * conn_read_cb() closes) or the timer. If its FIN came first, done. */
  if (status != 0 || conn->rx_eof) {
    kwp_conn__close(conn);
  } else if (!conn->closing) {
    conn_handler_end(conn);
    if (grace_over(conn)) /* exiting: no waiting for a client that waits */
      conn_close_idle(conn);
  }
  kwp_conn_unref(conn);
}

/* Shut the write side once everything queued is written, and linger. */
static void conn_maybe_linger(kwp_conn_t *conn) {
  if (!conn->finishing || conn->lingering || conn->closing || conn->send_queued)
    return;
  /* The client sent its FIN (nothing more can come), or too many sockets
   * linger already: close(), which sends our FIN after the data. */
  if (conn->rx_eof || kwp_worker__linger_begin(conn->wk) != 0) {
    kwp_conn__close(conn);
    return;
  }
  conn->lingering = 1;
  conn->shutdown_req.data = conn;
  kwp_conn_ref(conn);
  if (uv_shutdown(&conn->shutdown_req, (uv_stream_t *)&conn->tcp,
                  conn_shutdown_cb) != 0) {
    kwp_conn_unref(conn);
    kwp_conn__close(conn);
  }
}

void kwp_conn__finish(kwp_conn_t *conn) {
  conn->close_after_write = 1;
  if (!conn->finishing && !conn->closing) {
    conn->finishing = 1;
    conn->t_close_end =
        linger_deadline(conn, uv_now(kwp_worker_loop(conn->wk)));
    /* Nothing read from now on is acted on: read whatever comes, whatever
     * held reading back (a client blocked in its send never reads). */
    conn->pause = 0;
    if (!conn->processing) /* else conn_consume() drops it */
      conn_drop_input(conn);
    conn_start_reading(conn);
    kwp_conn__timer_arm(conn);
  }
  conn_maybe_linger(conn);
}

/* Read while finishing: discarded, within linger_max_bytes(). */
static void conn_discard(kwp_conn_t *conn, size_t n) {
  conn->linger_bytes += n;
  if (conn->linger_bytes > linger_max_bytes(conn->cfg)) {
    KWP_LOG(KWP_LOG_DEBUG, "conn", "#%llu %s still sending after the close",
            (unsigned long long)conn->id, conn->peer);
    kwp_conn__close(conn);
  }
}

/* An idle HTTP connection owes the client nothing: close it at once, unless
 * input arrived meanwhile (close() would answer it with a reset). */
static void conn_close_idle(kwp_conn_t *conn) {
  uv_os_fd_t fd;
  int unread = 1;
  if (uv_fileno((uv_handle_t *)&conn->tcp, &fd) != 0 ||
      ioctl(fd, FIONREAD, &unread) != 0)
    unread = 1;
  if (unread || conn->send_queued)
    kwp_conn__finish(conn);
  else
    kwp_conn__close(conn);
}

/* --- writing --- */

static void conn_write_cb(uv_write_t *req, int status) {
  wreq_t *w = (wreq_t *)req;
  kwp_conn_t *conn = req->data;
  conn->send_queued -= w->len;
  free(w);
  if (status != 0) {
    kwp_conn__close(conn);
  } else if (!conn->closing) {
    size_t limit = conn->cfg->server.max_buffered_send_bytes;
    if ((conn->pause & KWP_PAUSE_SENDQ) && conn->send_queued <= limit / 2) {
      kwp_conn_resume(conn, KWP_PAUSE_SENDQ);
      if (conn->h && conn->h->writable && !conn->ws_close_sent)
        conn->h->writable(conn, conn->hstate);
    }
    conn_maybe_linger(conn);
  }
  kwp_conn_unref(conn);
}

void kwp_conn__write(kwp_conn_t *conn, const uv_buf_t *bufs, unsigned n) {
  size_t total = 0, skip = 0, off = 0;
  for (unsigned i = 0; i < n; i++)
    total += bufs[i].len;
  if (conn->closing || conn->lingering || total == 0)
    return;
  conn->tx_total += total;
  if (conn->send_queued == 0) {
    int r = uv_try_write((uv_stream_t *)&conn->tcp, bufs, n);
    if (r > 0)
      skip = (size_t)r;
  }
  if (skip == total)
    return;
  wreq_t *w = malloc(sizeof(*w) + total - skip);
  if (!w) {
    kwp_conn__close(conn);
    return;
  }
  for (unsigned i = 0; i < n; i++) {
    size_t l = bufs[i].len, s = skip > l ? l : skip;
    memcpy(w->data + off, bufs[i].base + s, l - s);
    off += l - s;
    skip -= s;
  }
  w->len = off;
  w->req.data = conn;
  uv_buf_t b = uv_buf_init(w->data, (unsigned)off);
  if (uv_write(&w->req, (uv_stream_t *)&conn->tcp, &b, 1, conn_write_cb)) {
    free(w);
    kwp_conn__close(conn);
    return;
  }
  kwp_conn_ref(conn);
  conn->send_queued += off;
  if (conn->send_queued > conn->cfg->server.max_buffered_send_bytes)
    kwp_conn_pause(conn, KWP_PAUSE_SENDQ);
}

size_t kwp_conn_send_queued(const kwp_conn_t *conn) {
  return conn->send_queued;
}

uint64_t kwp_conn_tx_total(const kwp_conn_t *conn) {
  return conn->tx_total;
}

uint64_t kwp_conn_tx_written(const kwp_conn_t *conn) {
  return conn->tx_total - conn->send_queued;
}

int kwp_conn_closing(const kwp_conn_t *conn) {
  return conn->closing || conn->finishing || conn->ws_close_sent;
}

struct kwp_worker *kwp_conn_worker(kwp_conn_t *conn) {
  return conn->wk;
}

uint64_t kwp_conn_id(const kwp_conn_t *conn) {
  return conn->id;
}

const char *kwp_conn_authorization(const kwp_conn_t *conn, int *repeated) {
  *repeated = conn->req.auth_count > 1;
  return conn->req.auth_count ? conn->req.auth : NULL;
}

const char *kwp_conn_peer(const kwp_conn_t *conn) {
  return conn->peer;
}

/* --- reading --- */

static void conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  kwp_conn_t *conn = h->data;
  size_t len;
  if (conn->in_len == 0 || conn->finishing) {
    buf->base = (char *)kwp_worker__scratch(conn->wk, &len);
    buf->len = len;
    return;
  }
  /* Partial input: read straight behind it, within the message bound. */
  size_t limit = conn->cfg->server.max_message_size + READ_CHUNK + 14;
  if (conn->in_cap - conn->in_len < READ_CHUNK / 4 && conn->in_cap < limit) {
    size_t cap = conn->in_cap * 2 < limit ? conn->in_cap * 2 : limit;
    uint8_t *p = realloc(conn->in, cap);
    if (p) {
      conn->in = p;
      conn->in_cap = cap;
    }
  }
  buf->base = (char *)conn->in + conn->in_len;
  buf->len = conn->in_cap - conn->in_len;
}

/* Keep @p len unconsumed bytes at the front of conn->in. */
static int conn_keep(kwp_conn_t *conn, const uint8_t *data, size_t len) {
  if (len == 0) {
    conn->in_len = 0;
    return 0;
  }
  if (len > conn->in_cap) { /* only when @p data is outside conn->in */
    size_t cap = len < READ_CHUNK ? READ_CHUNK : len;
    uint8_t *p = malloc(cap);
    if (!p)
      return KWP_ENOMEM;
    free(conn->in);
    conn->in = p;
    conn->in_cap = cap;
  }
  memmove(conn->in, data, len);
  conn->in_len = len;
  return 0;
}

static size_t ws_process(kwp_conn_t *conn, uint8_t *data, size_t len);

/* Parse @p data in the current protocol; returns bytes consumed. */
static size_t conn_parse(kwp_conn_t *conn, uint8_t *data, size_t len) {
  size_t done = 0;
  conn->processing = 1;
  while (done < len && !conn->pause && !conn->closing && !conn->finishing &&
         !conn->close_after_write) {
    int state = conn->state;
    size_t n = state == KWP_CONN_HTTP
                   ? kwp_http__process(conn, data + done, len - done)
                   : ws_process(conn, data + done, len - done);
    done += n;
    if (n == 0 && conn->state == state)
      break;
  }
  conn->processing = 0;
  return done;
}

static void conn_consume(kwp_conn_t *conn, uint8_t *data, size_t len) {
  size_t done = conn_parse(conn, data, len);
  if (conn->closing)
    return;
  if (conn->finishing) {
    conn_drop_input(conn);
    return;
  }
  if (conn_keep(conn, data + done, len - done) != 0)
    kwp_conn__close(conn);
}

void kwp_conn__process(kwp_conn_t *conn) {
  if (conn->in_len && !conn->processing)
    conn_consume(conn, conn->in, conn->in_len);
}

static void conn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  kwp_conn_t *conn = s->data;
  if (nread == 0)
    return;
  if (nread < 0) {
    if (nread == UV_EOF && conn->finishing && conn->send_queued) {
      /* Half-closed: what is queued still goes out, then the close
       * (conn_maybe_linger()). libuv stopped reading by itself. */
      conn->rx_eof = 1;
      conn->reading = 0;
      return;
    }
    if (nread != UV_EOF)
      KWP_LOG(KWP_LOG_DEBUG, "conn", "#%llu %s read: %s",
              (unsigned long long)conn->id, conn->peer,
              uv_strerror((int)nread));
    kwp_conn__close(conn);
    return;
  }
  conn->t_rx = conn->t_activity = uv_now(kwp_worker_loop(conn->wk));
  if (conn->finishing) {
    conn_discard(conn, (size_t)nread);
    return;
  }
  if ((uint8_t *)buf->base == conn->in + conn->in_len && conn->in_len) {
    conn->in_len += (size_t)nread;
    conn_consume(conn, conn->in, conn->in_len);
  } else {
    conn_consume(conn, (uint8_t *)buf->base, (size_t)nread);
  }
}

static void conn_start_reading(kwp_conn_t *conn) {
  if (conn->reading || conn->closing || conn->rx_eof)
    return;
  if (uv_read_start((uv_stream_t *)&conn->tcp, conn_alloc_cb, conn_read_cb))
    kwp_conn__close(conn);
  else
    conn->reading = 1;
}

void kwp_conn_pause(kwp_conn_t *conn, int reason) {
  /* After the proxy's close frame input is only searched for the client's
   * close frame, after a finish it is discarded: nothing to hold back. */
  if (conn->finishing || conn->ws_close_sent)
    return;
  conn->pause |= reason;
  if (conn->reading) {
    uv_read_stop((uv_stream_t *)&conn->tcp);
    conn->reading = 0;
  }
}

void kwp_conn_resume(kwp_conn_t *conn, int reason) {
  int held = conn->pause & ~KWP_PAUSE_SENDQ;
  conn->pause &= ~reason;
  if (held && !(conn->pause & ~KWP_PAUSE_SENDQ)) {
    /* The idle clock starts again now (see idle_deadline()). */
    conn->t_rx = uv_now(kwp_worker_loop(conn->wk));
    kwp_conn__timer_arm(conn);
  }
  if (conn->pause || conn->closing)
    return;
  conn_start_reading(conn);
  kwp_conn__process(conn);
}

/* --- timers --- */

/* When a WebSocket client counts as idle, 0 for never. Not while the proxy
 * holds the socket back itself (rate limit, in-flight window, a commit):
 * the client's frames are then waiting in the proxy or the kernel, and
 * closing would drop those the proxy has read. A client that stops reading
 * its own results (KWP_PAUSE_SENDQ) is still timed. */
static uint64_t idle_deadline(const kwp_conn_t *conn) {
  const kwp_config_t *cfg = conn->cfg;
  if (cfg->server.ws_idle_timeout_ms <= 0 || (conn->pause & ~KWP_PAUSE_SENDQ))
    return 0;
  return conn->t_rx + (uint64_t)cfg->server.ws_idle_timeout_ms;
}

static uint64_t conn_deadline(kwp_conn_t *conn) {
  const kwp_config_t *cfg = conn->cfg;
  if (conn->finishing && conn->lingering && kwp_worker_stopping(conn->wk)) {
    /* Shutting down, a lingering socket (everything sent, our FIN too)
     * waits only while its client still sends: one that keeps its TCP open
     * and quiet would hold the shutdown up to lingering-timeout. */
    uint64_t quiet = conn->t_rx + SHUTDOWN_LINGER_QUIET_MS;
    return quiet < conn->t_close_end ? quiet : conn->t_close_end;
  }
  if (conn->finishing)
    return conn->t_close_end;
  if (conn->ws_close_sent)
    return conn->t_close_start + CLOSE_WAIT_MS;
  if (conn->state == KWP_CONN_HTTP) {
    if (conn->pause & KWP_PAUSE_ASYNC)
      return 0;
    if (conn->req.in_progress || !conn->served)
      return conn->t_req_start + (uint64_t)cfg->server.request_timeout_ms;
    return conn->t_activity + (uint64_t)cfg->server.idle_timeout_ms;
  }
  uint64_t d = idle_deadline(conn);
  if (cfg->server.ws_keep_alive_interval_ms > 0) {
    uint64_t last = conn->t_rx > conn->t_tx ? conn->t_rx : conn->t_tx;
    uint64_t k = last + (uint64_t)cfg->server.ws_keep_alive_interval_ms;
    if (!d || k < d)
      d = k;
  }
  return d;
}

static void conn_timer_cb(uv_timer_t *t) {
  kwp_conn_t *conn = t->data;
  uint64_t now = uv_now(kwp_worker_loop(conn->wk));
  uint64_t d = conn_deadline(conn);
  if (conn->closing || !d)
    return;
  if (now < d) {
    kwp_conn__timer_arm(conn);
    return;
  }
  if (conn->finishing) {
    kwp_conn__close(conn); /* lingered long enough, or the client never read */
  } else if (conn->ws_close_sent) {
    kwp_conn__finish(conn); /* no close frame from the client: end anyway */
  } else if (conn->state == KWP_CONN_HTTP) {
    if (conn->req.in_progress || !conn->served)
      kwp_http__request_timeout(conn);
    else
      conn_close_idle(conn);
  } else if (idle_deadline(conn) && now >= idle_deadline(conn)) {
    kwp_conn_ws_close(conn, KWP_EIDLE, "idle timeout");
  } else {
    kwp_conn_ws_send(conn, KWP_WS_PING, NULL, 0);
  }
  kwp_conn__timer_arm(conn);
}

void kwp_conn__timer_arm(kwp_conn_t *conn) {
  if (conn->closing)
    return;
  uint64_t d = conn_deadline(conn);
  uint64_t now = uv_now(kwp_worker_loop(conn->wk));
  if (!d) {
    uv_timer_stop(&conn->timer);
    return;
  }
  uv_timer_start(&conn->timer, conn_timer_cb, d > now ? d - now : 0, 0);
}

/* --- WebSocket --- */

int kwp_conn_ws_send(kwp_conn_t *conn, int opcode, const void *data,
                     size_t len) {
  uint8_t hdr[10];
  if (conn->closing || conn->finishing || conn->ws_close_sent)
    return UV_ECANCELED;
  uv_buf_t bufs[2] = {uv_buf_init((char *)hdr, (unsigned)kwp_ws_header_encode(
                                                   hdr, opcode, 1, len)),
                      uv_buf_init((char *)data, (unsigned)len)};
  kwp_conn__write(conn, bufs, len ? 2 : 1);
  conn->t_tx = uv_now(kwp_worker_loop(conn->wk));
  return conn->pause & KWP_PAUSE_SENDQ ? KWP_EBACKPRESSURE : 0;
}

int kwp_conn_ws_send_framed(kwp_conn_t *conn, const void *frames, size_t len) {
  if (conn->closing || conn->finishing || conn->ws_close_sent)
    return UV_ECANCELED;
  uv_buf_t buf = uv_buf_init((char *)frames, (unsigned)len);
  kwp_conn__write(conn, &buf, 1);
  conn->t_tx = uv_now(kwp_worker_loop(conn->wk));
  return conn->pause & KWP_PAUSE_SENDQ ? KWP_EBACKPRESSURE : 0;
}

/* The close frame goes out: the handler hears of it first (closing()).
 * From then on frames are read only for the client's close frame (data is
 * dropped, pings unanswered), so nothing holds reading back any more. */
static void ws_send_close(kwp_conn_t *conn, const uint8_t *payload, size_t n) {
  if (conn->h && conn->h->closing)
    conn->h->closing(conn, conn->hstate);
  kwp_conn_ws_send(conn, KWP_WS_CLOSE, payload, n);
  conn->ws_close_sent = 1;
  conn->pause = 0;
  conn_start_reading(conn);
}

void kwp_conn_ws_close(kwp_conn_t *conn, int err, const char *reason) {
  uint8_t payload[125];
  if (conn->closing || conn->finishing || conn->ws_close_sent)
    return;
  unsigned code = kwp_err_close_code(err);
  size_t n = kwp_ws_close_payload(payload, code, reason ? reason : "");
  ws_send_close(conn, payload, n);
  conn->t_close_start = uv_now(kwp_worker_loop(conn->wk));
  if (err != 0 && err != KWP_ESHUTDOWN && err != KWP_EIDLE)
    KWP_LOG_RL(KWP_LOG_INFO, "ws", "#%llu %s closing with %u: %s",
               (unsigned long long)conn->id, conn->peer, code,
               kwp_strerror(err));
  /* A failed connection (RFC 6455 7.1.7) and an answered close end now; a
   * close we start waits for the client's close frame (or the timer). */
  if (conn->ws_close_received || (err != 0 && err != KWP_ESHUTDOWN &&
                                  err != KWP_EIDLE && err != KWP_EPOLICY))
    kwp_conn__finish(conn);
  else {
    kwp_conn__timer_arm(conn);
    kwp_conn__process(conn); /* the client's close may be held back here */
  }
}

static void ws_on_event(kwp_conn_t *conn, const kwp_ws_event_t *ev) {
  int rc = 0;
  switch (ev->type) {
  case KWP_WS_EV_MESSAGE:
    if (!conn->ws_close_sent && conn->h->message)
      rc = conn->h->message(conn, conn->hstate, ev->opcode, ev->data, ev->len);
    break;
  case KWP_WS_EV_PING:
    kwp_conn_ws_send(conn, KWP_WS_PONG, ev->data, ev->len);
    break;
  case KWP_WS_EV_CLOSE:
    conn->ws_close_received = 1;
    if (conn->ws_close_sent) {
      kwp_conn__finish(conn);
    } else {
      uint8_t payload[125];
      unsigned code = ev->close_code == 1005 ? 1000 : ev->close_code;
      size_t n = kwp_ws_close_payload(payload, code, "");
      ws_send_close(conn, payload, n);
      kwp_conn__finish(conn);
    }
    break;
  default:
    break;
  }
  if (rc < 0)
    kwp_conn_ws_close(conn, rc, kwp_strerror(rc));
}

static size_t ws_process(kwp_conn_t *conn, uint8_t *data, size_t len) {
  kwp_ws_event_t ev;
  size_t done = 0;
  while (done < len && !conn->pause && !conn->closing && !conn->finishing &&
         !conn->close_after_write) {
    int rc = kwp_ws_reader_parse(conn->rd, data + done, len - done, &ev);
    if (rc == 0)
      break;
    if (rc < 0) {
      if (conn->ws_close_sent) /* our close frame is out already: just end */
        kwp_conn__finish(conn);
      else
        kwp_conn_ws_close(conn, rc, kwp_strerror(rc));
      break;
    }
    done += (size_t)rc;
    ws_on_event(conn, &ev);
  }
  return done;
}

int kwp_conn__ws_start(kwp_conn_t *conn, const kwp_ws_handler_t *h) {
  conn->rd = kwp_ws_reader_new(conn->cfg->server.max_message_size);
  if (!conn->rd)
    return KWP_ENOMEM;
  conn->state = KWP_CONN_WS;
  conn->h = h;
  conn->t_rx = conn->t_tx = uv_now(kwp_worker_loop(conn->wk));
  int rc = h->open ? h->open(conn, &conn->hstate) : 0;
  if (rc < 0) /* close() still runs when the connection is freed */
    kwp_conn_ws_close(conn, rc, kwp_strerror(rc));
  kwp_conn__timer_arm(conn);
  KWP_LOG(KWP_LOG_DEBUG, "ws", "#%llu %s WebSocket open (%s)",
          (unsigned long long)conn->id, conn->peer, h->name);
  return 0;
}

/* A WebSocket whose handler has work in flight at SIGTERM (see the
 * handler's shutdown()). */
static int ws_shutdown_waits(kwp_conn_t *conn) {
  return conn->state == KWP_CONN_WS && !conn->closing && !conn->finishing &&
         !conn->ws_close_sent && conn->h && conn->h->shutdown;
}

void kwp_conn__shutdown(kwp_conn_t *conn) {
  if (conn->closing)
    return;
  conn->shutdown_requested = 1;
  if (conn->finishing) { /* it ends anyway; see conn_deadline() */
    kwp_conn__timer_arm(conn);
    return;
  }
  if (ws_shutdown_waits(conn) && conn->h->shutdown(conn, conn->hstate, 0))
    kwp_conn_pause(conn, KWP_PAUSE_SHUTDOWN);
  else if (conn->state == KWP_CONN_WS)
    kwp_conn_ws_close(conn, KWP_ESHUTDOWN, "server shutting down");
  else if (!(conn->pause & KWP_PAUSE_ASYNC))
    conn_close_idle(conn);
}

void kwp_conn__grace_over(kwp_conn_t *conn) {
  if (!ws_shutdown_waits(conn) || !(conn->pause & KWP_PAUSE_SHUTDOWN)) {
    kwp_conn__close(conn);
    return;
  }
  conn->h->shutdown(conn, conn->hstate, 1);
  kwp_conn_ws_close(conn, KWP_ESHUTDOWN, "server shutting down");
  kwp_conn__finish(conn); /* what is written goes out, then the TCP close */
}
