/*
 * ws_echo_bench: a WebSocket load generator for the /echo endpoint. One libuv
 * loop on the main thread runs every connection; each has its own small
 * client-side framer (masked frames out, unmasked server frames in), so the
 * proxy's server-side codec is not what measures itself.
 *
 * Echo mode: N connections, each a closed loop (send one text message, wait
 * for the echo, verify it byte for byte, record the round trip). Idle mode
 * (--idle N --hold S): open N connections and keep them idle, answering pings.
 */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <uv.h>

#define WSB_MAX_PENDING_CONNECTS 64
#define WSB_CONNECT_TIMEOUT_MS 15000
#define WSB_DRAIN_TIMEOUT_MS 5000
#define WSB_MAX_HANDSHAKE 8192
#define WSB_MAX_FRAME (64u << 20)
#define WSB_PATTERN_SLACK 61 /* per-message offsets into the pattern */
#define WSB_MAX_ERROR_LINES 20

#define WSB_CONTAINER_OF(ptr, type, field)                                     \
  ((type *)((char *)(ptr)-offsetof(type, field)))

enum { WSB_OP_CONT = 0, WSB_OP_TEXT = 1, WSB_OP_BINARY = 2 };
enum { WSB_OP_CLOSE = 8, WSB_OP_PING = 9, WSB_OP_PONG = 10 };

/* A connection's life: connect, upgrade, open, close handshake, closed. */
enum {
  WSB_ST_INIT,
  WSB_ST_CONNECTING,
  WSB_ST_HANDSHAKE,
  WSB_ST_OPEN,
  WSB_ST_CLOSE_SENT,
  WSB_ST_CLOSING, /* uv_close() called */
  WSB_ST_CLOSED
};

/* The run as a whole; each phase ends by a timer or by all connections. */
enum {
  WSB_PH_CONNECT,
  WSB_PH_WARMUP,
  WSB_PH_MEASURE,
  WSB_PH_HOLD,
  WSB_PH_DRAIN,
  WSB_PH_DONE
};

typedef struct wsb_opts {
  const char *host, *path;
  int port;
  int connections;
  double seconds, warmup;
  size_t size;
  int idle; /* > 0: idle mode with this many connections */
  double hold;
} wsb_opts_t;

typedef struct wsb_conn {
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  int id;
  int state;
  int opened;   /* reached WSB_ST_OPEN once */
  int failed;   /* counted as an error already */
  int inflight; /* a message is sent and its echo not complete */
  char key[32], accept[32];
  uint8_t *in; /* unconsumed input */
  size_t in_len, in_cap;
  uint8_t *out; /* one frame being built: header + masked payload */
  size_t out_cap;
  uint8_t *pattern; /* size + WSB_PATTERN_SLACK printable bytes */
  const uint8_t *expect;
  size_t msg_off; /* bytes of the current echo verified so far */
  int in_msg;     /* a data message has started (fragments may follow) */
  uint64_t seq, t_sent, rng;
} wsb_conn_t;

typedef struct wsb_bench {
  wsb_opts_t o;
  uv_loop_t *loop;
  uv_timer_t timer;
  struct sockaddr_storage addr;
  wsb_conn_t *conns;
  int nconns, next_connect, pending_connects;
  int resolved, open_now, closed, idle_opened, clean_closes;
  int phase;
  uint64_t t_start, t0, t1;
  uint64_t warmup_rts, errors, unexpected_closes;
  uint64_t *lat; /* round-trip times in ns, measured phase only */
  size_t nlat, lat_cap;
} wsb_bench_t;

static wsb_bench_t B;

static void conn_start_connect(wsb_conn_t *conn);
static void conn_close(wsb_conn_t *conn);
static void conn_send_next(wsb_conn_t *conn);
static void phase_next(void);

/* ---- small helpers ---------------------------------------------------- */

static uint64_t xorshift64(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

static void conn_error(wsb_conn_t *conn, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Counts one error for the connection and says why on stderr (rate limited). */
static void conn_error(wsb_conn_t *conn, const char *fmt, ...) {
  B.errors++;
  if (B.errors <= WSB_MAX_ERROR_LINES) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ws_echo_bench: error: conn %d: ", conn->id);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
  } else if (B.errors == WSB_MAX_ERROR_LINES + 1) {
    fprintf(stderr, "ws_echo_bench: further errors are counted only\n");
  }
  conn->failed = 1;
}

/* Allocation failure ends the run: a benchmark has nothing to fall back on. */
static void *xrealloc(void *old, size_t n) {
  void *p = realloc(old, n ? n : 1);
  if (!p) {
    fprintf(stderr, "ws_echo_bench: out of memory\n");
    exit(2);
  }
  return p;
}

static void lat_record(uint64_t ns) {
  if (B.nlat == B.lat_cap) {
    B.lat_cap = B.lat_cap ? B.lat_cap * 2 : 65536;
    B.lat = xrealloc(B.lat, B.lat_cap * sizeof(*B.lat));
  }
  B.lat[B.nlat++] = ns;
}

/* ---- writing frames ----------------------------------------------------- */

typedef struct wsb_write {
  uv_write_t req;
  size_t len;
  char data[];
} wsb_write_t;

static void on_write(uv_write_t *req, int status) {
  wsb_conn_t *conn = req->data;
  free(WSB_CONTAINER_OF(req, wsb_write_t, req));
  if (status < 0 && status != UV_ECANCELED && conn->state < WSB_ST_CLOSING) {
    conn_error(conn, "write failed: %s", uv_strerror(status));
    conn_close(conn);
  }
}

/* Writes @p len bytes now if the socket takes them, else queues a copy. */
static int conn_write(wsb_conn_t *conn, const void *data, size_t len) {
  uv_buf_t buf = uv_buf_init((char *)data, (unsigned)len);
  int n = uv_try_write((uv_stream_t *)&conn->tcp, &buf, 1);
  if (n == (int)len)
    return 0;
  if (n < 0 && n != UV_EAGAIN) {
    conn_error(conn, "write failed: %s", uv_strerror(n));
    return n;
  }
  size_t done = n > 0 ? (size_t)n : 0;
  wsb_write_t *w = xrealloc(NULL, sizeof(*w) + len - done);
  w->len = len - done;
  memcpy(w->data, (const char *)data + done, w->len);
  w->req.data = conn;
  buf = uv_buf_init(w->data, (unsigned)w->len);
  int rc = uv_write(&w->req, (uv_stream_t *)&conn->tcp, &buf, 1, on_write);
  if (rc < 0) {
    free(w);
    conn_error(conn, "write failed: %s", uv_strerror(rc));
  }
  return rc;
}

/* Builds one masked client frame (FIN set) in conn->out and writes it. */
static int conn_send_frame(wsb_conn_t *conn, int op, const uint8_t *p,
                           size_t len) {
  size_t need = len + 14;
  if (need > conn->out_cap) {
    free(conn->out);
    conn->out = xrealloc(NULL, need);
    conn->out_cap = need;
  }
  uint8_t *o = conn->out;
  size_t h = 0;
  o[h++] = (uint8_t)(0x80 | op);
  if (len < 126) {
    o[h++] = (uint8_t)(0x80 | len);
  } else if (len <= 0xffff) {
    o[h++] = 0x80 | 126;
    o[h++] = (uint8_t)(len >> 8);
    o[h++] = (uint8_t)len;
  } else {
    o[h++] = 0x80 | 127;
    for (int i = 7; i >= 0; i--)
      o[h++] = (uint8_t)((uint64_t)len >> (8 * i));
  }
  /* A load generator needs varying masks, not cryptographic ones. */
  uint32_t m32 = (uint32_t)xorshift64(&conn->rng);
  uint8_t mk[4];
  memcpy(mk, &m32, 4);
  memcpy(o + h, mk, 4);
  h += 4;
  for (size_t i = 0; i < len; i++)
    o[h + i] = p[i] ^ mk[i & 3];
  return conn_write(conn, o, h + len);
}

/* Starts the close handshake with 1000; the reply finishes it. */
static void conn_send_close(wsb_conn_t *conn) {
  if (conn->state != WSB_ST_OPEN)
    return;
  const uint8_t code[2] = {1000 >> 8, 1000 & 0xff};
  conn->state = WSB_ST_CLOSE_SENT;
  if (conn_send_frame(conn, WSB_OP_CLOSE, code, 2) < 0)
    conn_close(conn);
}

/* ---- lifetime ----------------------------------------------------------- */

static void on_close(uv_handle_t *h) {
  wsb_conn_t *conn = WSB_CONTAINER_OF(h, wsb_conn_t, tcp);
  conn->state = WSB_ST_CLOSED;
  B.closed++;
  if (B.phase == WSB_PH_DRAIN && B.closed == B.nconns)
    phase_next();
}

/* Closes the socket now; every path out of a connection ends here. */
static void conn_close(wsb_conn_t *conn) {
  if (conn->state >= WSB_ST_CLOSING)
    return;
  int was_connecting =
      conn->state == WSB_ST_CONNECTING || conn->state == WSB_ST_HANDSHAKE;
  if (conn->opened)
    B.open_now--;
  conn->state = WSB_ST_CLOSING;
  if (conn->inflight && !conn->failed && B.phase != WSB_PH_DRAIN)
    conn_error(conn, "connection closed with a message awaiting its echo");
  conn->inflight = 0;
  uv_close((uv_handle_t *)&conn->tcp, on_close);
  if (was_connecting) {
    B.pending_connects--;
    B.resolved++;
    if (B.next_connect < B.nconns)
      conn_start_connect(&B.conns[B.next_connect++]);
    if (B.phase == WSB_PH_CONNECT && B.resolved == B.nconns)
      phase_next();
  }
}

/* The upgrade succeeded: count it and start the closed loop (echo mode). */
static void conn_opened(wsb_conn_t *conn) {
  conn->state = WSB_ST_OPEN;
  conn->opened = 1;
  B.open_now++;
  B.idle_opened++;
  B.pending_connects--;
  B.resolved++;
  if (B.next_connect < B.nconns)
    conn_start_connect(&B.conns[B.next_connect++]);
  if (!B.o.idle && B.phase != WSB_PH_DRAIN)
    conn_send_next(conn);
  if (B.phase == WSB_PH_CONNECT && B.resolved == B.nconns)
    phase_next();
}

/* ---- the closed loop ---------------------------------------------------- */

static void conn_send_next(wsb_conn_t *conn) {
  conn->seq++;
  conn->expect = conn->pattern + conn->seq % WSB_PATTERN_SLACK;
  conn->msg_off = 0;
  conn->inflight = 1;
  conn->t_sent = uv_hrtime();
  if (conn_send_frame(conn, WSB_OP_TEXT, conn->expect, B.o.size) < 0)
    conn_close(conn);
}

/* One complete, verified echo: record it, then send the next or close. */
static void conn_echo_done(wsb_conn_t *conn) {
  uint64_t now = uv_hrtime();
  conn->inflight = 0;
  if (B.phase == WSB_PH_MEASURE && conn->t_sent >= B.t0)
    lat_record(now - conn->t_sent);
  else if (B.phase == WSB_PH_WARMUP || B.phase == WSB_PH_CONNECT)
    B.warmup_rts++;
  if (B.phase == WSB_PH_DRAIN)
    conn_send_close(conn);
  else
    conn_send_next(conn);
}

/* Verifies one data frame's payload against the bytes we sent. */
static int conn_on_data(wsb_conn_t *conn, int op, int fin, const uint8_t *p,
                        size_t len) {
  if (op == WSB_OP_CONT && !conn->in_msg) {
    conn_error(conn, "continuation frame outside a message");
    return -1;
  }
  if (op != WSB_OP_CONT && conn->in_msg) {
    conn_error(conn, "new data frame inside a fragmented message");
    return -1;
  }
  if (op == WSB_OP_BINARY) {
    conn_error(conn, "echo came back as a binary message");
    return -1;
  }
  if (!conn->inflight) {
    conn_error(conn, "unsolicited data message (%zu bytes)", len);
    return -1;
  }
  conn->in_msg = !fin;
  if (conn->msg_off + len > B.o.size ||
      memcmp(p, conn->expect + conn->msg_off, len) != 0) {
    conn_error(conn, "echo mismatch (message %" PRIu64 ", offset %zu)",
               conn->seq, conn->msg_off);
    return -1;
  }
  conn->msg_off += len;
  if (fin) {
    if (conn->msg_off != B.o.size) {
      conn_error(conn, "echo too short: %zu of %zu bytes", conn->msg_off,
                 B.o.size);
      return -1;
    }
    conn_echo_done(conn);
  }
  return 0;
}

static int conn_on_control(wsb_conn_t *conn, int op, const uint8_t *p,
                           size_t len) {
  if (op == WSB_OP_PING)
    return conn_send_frame(conn, WSB_OP_PONG, p, len) < 0 ? -1 : 0;
  if (op == WSB_OP_PONG)
    return 0;
  /* Close: either the reply to ours, or the server's own. */
  int code = len >= 2 ? (p[0] << 8 | p[1]) : 1005;
  if (conn->state == WSB_ST_CLOSE_SENT) {
    if (code != 1000)
      conn_error(conn, "close reply with code %d, expected 1000", code);
    else
      B.clean_closes++;
  } else {
    B.unexpected_closes++;
    conn_error(conn, "server closed the connection with code %d", code);
    uint8_t echo[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    conn_send_frame(conn, WSB_OP_CLOSE, echo, len >= 2 ? 2 : 0);
  }
  conn_close(conn);
  return 1;
}

/* ---- reading server frames ---------------------------------------------- */

/* Parses one server frame at p; returns bytes consumed, 0 if incomplete,
 * -1 on a protocol error (the connection is then closed). */
static long conn_parse_frame(wsb_conn_t *conn, const uint8_t *p, size_t n) {
  if (n < 2)
    return 0;
  int fin = p[0] & 0x80, rsv = p[0] & 0x70, op = p[0] & 0x0f;
  size_t h = 2;
  uint64_t len = p[1] & 0x7f;
  if (p[1] & 0x80) {
    conn_error(conn, "server frame is masked");
    return -1;
  }
  if (rsv || (op > 2 && op < 8) || op > 10) {
    conn_error(conn, "bad server frame header 0x%02x", p[0]);
    return -1;
  }
  if (len == 126) {
    if (n < 4)
      return 0;
    len = (uint64_t)p[2] << 8 | p[3];
    h = 4;
  } else if (len == 127) {
    if (n < 10)
      return 0;
    len = 0;
    for (int i = 0; i < 8; i++)
      len = len << 8 | p[2 + i];
    h = 10;
  }
  if (op >= 8 && (!fin || len > 125)) {
    conn_error(conn, "bad server control frame");
    return -1;
  }
  if (len > WSB_MAX_FRAME) {
    conn_error(conn, "server frame too large: %" PRIu64 " bytes", len);
    return -1;
  }
  if (n < h + len) {
    if (h + len > conn->in_cap) {
      conn->in_cap = h + len;
      conn->in = xrealloc(conn->in, conn->in_cap);
    }
    return 0;
  }
  int rc = op >= 8 ? conn_on_control(conn, op, p + h, len)
                   : conn_on_data(conn, op, fin, p + h, len);
  if (rc != 0)
    return -1;
  return (long)(h + len);
}

/* Checks the 101 response; returns header bytes, 0 if incomplete, -1. */
static long conn_parse_handshake(wsb_conn_t *conn, const uint8_t *p, size_t n) {
  const char *s = (const char *)p;
  const char *end = memmem(s, n, "\r\n\r\n", 4);
  if (!end) {
    if (n > WSB_MAX_HANDSHAKE) {
      conn_error(conn, "handshake response too large");
      return -1;
    }
    return 0;
  }
  size_t hlen = (size_t)(end - s) + 4;
  if (hlen < 12 || memcmp(s, "HTTP/1.1 101", 12) != 0) {
    const char *eol = memchr(s, '\r', hlen);
    conn_error(conn, "upgrade refused: %.*s", (int)(eol - s), s);
    return -1;
  }
  const char *line = s;
  while ((line = memchr(line, '\n', (size_t)(end - line))) != NULL) {
    line++;
    if (strncasecmp(line, "Sec-WebSocket-Accept:", 21) != 0)
      continue;
    const char *v = line + 21;
    while (*v == ' ' || *v == '\t')
      v++;
    size_t alen = strlen(conn->accept);
    if (strncmp(v, conn->accept, alen) == 0 &&
        (v[alen] == '\r' || v[alen] == ' '))
      return (long)hlen;
    break;
  }
  conn_error(conn, "missing or wrong Sec-WebSocket-Accept");
  return -1;
}

/* Consumes everything complete in the input buffer. */
static void conn_process(wsb_conn_t *conn) {
  size_t off = 0;
  while (off < conn->in_len && conn->state < WSB_ST_CLOSING) {
    long n;
    if (conn->state == WSB_ST_HANDSHAKE) {
      n = conn_parse_handshake(conn, conn->in + off, conn->in_len - off);
      if (n > 0)
        conn_opened(conn);
    } else {
      n = conn_parse_frame(conn, conn->in + off, conn->in_len - off);
    }
    if (n < 0) {
      conn_close(conn);
      return;
    }
    if (n == 0)
      break;
    off += (size_t)n;
  }
  if (conn->state >= WSB_ST_CLOSING)
    return;
  memmove(conn->in, conn->in + off, conn->in_len - off);
  conn->in_len -= off;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  wsb_conn_t *conn = WSB_CONTAINER_OF(h, wsb_conn_t, tcp);
  (void)suggested; /* the connection's own buffer decides */
  if (conn->in_cap - conn->in_len < 1024) {
    conn->in_cap = conn->in_cap * 2;
    conn->in = xrealloc(conn->in, conn->in_cap);
  }
  *buf = uv_buf_init((char *)conn->in + conn->in_len,
                     (unsigned)(conn->in_cap - conn->in_len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  wsb_conn_t *conn = WSB_CONTAINER_OF(s, wsb_conn_t, tcp);
  (void)buf; /* it points into conn->in */
  if (nread < 0) {
    if (conn->state != WSB_ST_CLOSE_SENT || B.phase != WSB_PH_DRAIN)
      conn_error(conn, "connection lost: %s", uv_strerror((int)nread));
    else
      conn_error(conn, "connection lost before the close reply: %s",
                 uv_strerror((int)nread));
    conn_close(conn);
    return;
  }
  conn->in_len += (size_t)nread;
  conn_process(conn);
}

/* ---- connecting --------------------------------------------------------- */

static void conn_make_key(wsb_conn_t *conn) {
  static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char raw[16], digest[SHA_DIGEST_LENGTH];
  char buf[64];
  if (RAND_bytes(raw, sizeof(raw)) != 1) {
    fprintf(stderr, "ws_echo_bench: RAND_bytes failed\n");
    exit(2);
  }
  EVP_EncodeBlock((unsigned char *)conn->key, raw, sizeof(raw));
  int n = snprintf(buf, sizeof(buf), "%s%s", conn->key, guid);
  SHA1((const unsigned char *)buf, (size_t)n, digest);
  EVP_EncodeBlock((unsigned char *)conn->accept, digest, sizeof(digest));
}

static void on_connect(uv_connect_t *req, int status) {
  wsb_conn_t *conn = req->data;
  if (status < 0) {
    conn_error(conn, "connect failed: %s", uv_strerror(status));
    conn_close(conn);
    return;
  }
  char reqbuf[512];
  conn_make_key(conn);
  int n = snprintf(reqbuf, sizeof(reqbuf),
                   "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n",
                   B.o.path, B.o.host, B.o.port, conn->key);
  conn->state = WSB_ST_HANDSHAKE;
  uv_tcp_nodelay(&conn->tcp, 1);
  int rc = uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read);
  if (rc < 0 || conn_write(conn, reqbuf, (size_t)n) < 0) {
    if (rc < 0)
      conn_error(conn, "read start failed: %s", uv_strerror(rc));
    conn_close(conn);
  }
}

static void conn_start_connect(wsb_conn_t *conn) {
  uv_tcp_init(B.loop, &conn->tcp);
  conn->state = WSB_ST_CONNECTING;
  conn->connect_req.data = conn;
  B.pending_connects++;
  int rc = uv_tcp_connect(&conn->connect_req, &conn->tcp,
                          (const struct sockaddr *)&B.addr, on_connect);
  if (rc < 0) {
    conn_error(conn, "connect failed: %s", uv_strerror(rc));
    conn_close(conn);
  }
}

/* ---- phases ------------------------------------------------------------- */

static void on_timer(uv_timer_t *t) {
  (void)t;
  phase_next();
}

static void arm(double seconds) {
  uv_timer_start(&B.timer, on_timer, (uint64_t)(seconds * 1000 + 0.5), 0);
}

/* Starts the drain: idle or finished connections send their close now,
 * busy ones after their echo; whatever is left at the timeout is cut. */
static void phase_drain(void) {
  B.phase = WSB_PH_DRAIN;
  B.t1 = uv_hrtime();
  if (!B.o.idle)
    fprintf(stderr, "ws_echo_bench: measure end\n");
  for (int i = 0; i < B.nconns; i++) {
    wsb_conn_t *conn = &B.conns[i];
    if (conn->state == WSB_ST_OPEN && !conn->inflight)
      conn_send_close(conn);
  }
  arm(WSB_DRAIN_TIMEOUT_MS / 1000.0);
  if (B.closed == B.nconns)
    phase_next();
}

static void drain_timeout(void) {
  for (int i = 0; i < B.nconns; i++) {
    wsb_conn_t *conn = &B.conns[i];
    if (conn->state >= WSB_ST_CLOSING)
      continue;
    if (conn->inflight)
      conn_error(conn, "no echo within %d ms (message %" PRIu64 ")",
                 WSB_DRAIN_TIMEOUT_MS, conn->seq);
    else
      conn_error(conn, "no close reply within %d ms", WSB_DRAIN_TIMEOUT_MS);
    conn->inflight = 0;
    conn_close(conn);
  }
}

static void connect_timeout(void) {
  for (int i = 0; i < B.nconns; i++) {
    wsb_conn_t *conn = &B.conns[i];
    if (conn->state == WSB_ST_CONNECTING || conn->state == WSB_ST_HANDSHAKE) {
      conn_error(conn, "not open within %d ms", WSB_CONNECT_TIMEOUT_MS);
      conn_close(conn);
    }
  }
  /* Connections never started are failures too. */
  while (B.next_connect < B.nconns) {
    wsb_conn_t *conn = &B.conns[B.next_connect++];
    conn_error(conn, "never started (connect phase timed out)");
    conn->state = WSB_ST_CLOSED;
    B.closed++;
    B.resolved++;
  }
}

/* All connections resolved: announce (idle) or start the warm-up (echo). */
static void phase_connected(void) {
  if (B.o.idle) {
    B.phase = WSB_PH_HOLD;
    printf("{\"idle_connections\":%d,\"errors\":%" PRIu64 "}\n", B.open_now,
           B.errors);
    fflush(stdout);
    arm(B.o.hold);
    return;
  }
  if (B.open_now == 0) { /* nothing to measure: finish now */
    B.t0 = uv_hrtime();
    phase_drain();
    return;
  }
  fprintf(stderr, "ws_echo_bench: %d connections open, warming up %.1f s\n",
          B.open_now, B.o.warmup);
  B.phase = WSB_PH_WARMUP;
  arm(B.o.warmup);
}

/* The single phase machine; called by the timer or by connection events. */
static void phase_next(void) {
  switch (B.phase) {
  case WSB_PH_CONNECT:
    uv_timer_stop(&B.timer);
    if (B.resolved < B.nconns)
      connect_timeout();
    phase_connected();
    break;
  case WSB_PH_WARMUP:
    B.phase = WSB_PH_MEASURE;
    B.t0 = uv_hrtime();
    fprintf(stderr, "ws_echo_bench: measure start\n");
    arm(B.o.seconds);
    break;
  case WSB_PH_MEASURE:
  case WSB_PH_HOLD:
    phase_drain();
    break;
  case WSB_PH_DRAIN:
    if (B.closed < B.nconns) {
      drain_timeout();
      break; /* the last close callback comes back here */
    }
    B.phase = WSB_PH_DONE;
    uv_timer_stop(&B.timer);
    uv_close((uv_handle_t *)&B.timer, NULL);
    break;
  default:
    break;
  }
}

/* ---- results ------------------------------------------------------------ */

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of the sorted latencies, in microseconds. */
static double pct_us(double p) {
  if (B.nlat == 0)
    return 0;
  size_t rank = (size_t)(p * (double)B.nlat + 0.999999);
  if (rank < 1)
    rank = 1;
  if (rank > B.nlat)
    rank = B.nlat;
  return (double)B.lat[rank - 1] / 1e3;
}

static void print_echo_results(void) {
  if (B.nlat)
    qsort(B.lat, B.nlat, sizeof(*B.lat), cmp_u64);
  double secs = (double)(B.t1 - B.t0) / 1e9;
  double sum = 0;
  for (size_t i = 0; i < B.nlat; i++)
    sum += (double)B.lat[i];
  printf("{\"connections\":%d,\"size\":%zu,\"round_trips\":%zu,"
         "\"rt_per_sec\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
         "\"p999_us\":%.1f,\"errors\":%" PRIu64 ",\"max_us\":%.1f,"
         "\"mean_us\":%.1f,\"seconds\":%.3f,\"warmup_round_trips\":%" PRIu64
         "}\n",
         B.nconns, B.o.size, B.nlat, secs > 0 ? (double)B.nlat / secs : 0,
         pct_us(0.50), pct_us(0.99), pct_us(0.999), B.errors,
         B.nlat ? (double)B.lat[B.nlat - 1] / 1e3 : 0,
         B.nlat ? sum / (double)B.nlat / 1e3 : 0, secs, B.warmup_rts);
}

/* ---- options and main --------------------------------------------------- */

static void usage(FILE *out) {
  fprintf(out,
          "usage: ws_echo_bench [--host H] [--port P] [--path /echo]\n"
          "                     [--connections N] [--seconds S] [--size B]\n"
          "                     [--warmup S]\n"
          "       ws_echo_bench [--host H] [--port P] [--path /echo] --idle N\n"
          "                     [--hold S]\n");
}

static int parse_opts(int argc, char **argv, wsb_opts_t *o) {
  *o = (wsb_opts_t){.host = "127.0.0.1",
                    .path = "/echo",
                    .port = 8078,
                    .connections = 1,
                    .seconds = 10,
                    .size = 64,
                    .warmup = 2,
                    .hold = 5};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      exit(0);
    }
    if (!v)
      return -1;
    i++;
    if (!strcmp(a, "--host"))
      o->host = v;
    else if (!strcmp(a, "--path"))
      o->path = v;
    else if (!strcmp(a, "--port"))
      o->port = atoi(v);
    else if (!strcmp(a, "--connections"))
      o->connections = atoi(v);
    else if (!strcmp(a, "--seconds"))
      o->seconds = atof(v);
    else if (!strcmp(a, "--warmup"))
      o->warmup = atof(v);
    else if (!strcmp(a, "--size"))
      o->size = (size_t)strtoull(v, NULL, 10);
    else if (!strcmp(a, "--idle"))
      o->idle = atoi(v);
    else if (!strcmp(a, "--hold"))
      o->hold = atof(v);
    else
      return -1;
  }
  if (o->port <= 0 || o->port > 65535 || o->connections <= 0 ||
      o->seconds <= 0 || o->warmup < 0 || o->idle < 0 || o->hold < 0 ||
      o->size > WSB_MAX_FRAME || strlen(o->host) > 255 ||
      strlen(o->path) > 200 || o->path[0] != '/')
    return -1;
  return 0;
}

static int resolve(const wsb_opts_t *o) {
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
  char port[16];
  snprintf(port, sizeof(port), "%d", o->port);
  int rc = getaddrinfo(o->host, port, &hints, &res);
  if (rc != 0) {
    fprintf(stderr, "ws_echo_bench: %s: %s\n", o->host, gai_strerror(rc));
    return -1;
  }
  memcpy(&B.addr, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  return 0;
}

/* Each connection needs a descriptor: raise the soft limit if we must. */
static void raise_nofile(int n) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= (rlim_t)n + 64)
    return;
  rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > (rlim_t)n + 64
                    ? (rlim_t)n + 64
                    : rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < (rlim_t)n + 64)
    fprintf(stderr,
            "ws_echo_bench: warning: only %lu descriptors for %d "
            "connections\n",
            (unsigned long)rl.rlim_cur, n);
}

static void conns_init(void) {
  B.conns = xrealloc(NULL, (size_t)B.nconns * sizeof(*B.conns));
  memset(B.conns, 0, (size_t)B.nconns * sizeof(*B.conns));
  uint64_t seed;
  RAND_bytes((unsigned char *)&seed, sizeof(seed));
  for (int i = 0; i < B.nconns; i++) {
    wsb_conn_t *conn = &B.conns[i];
    conn->id = i;
    conn->rng = (seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(i + 1))) | 1;
    conn->in_cap = B.o.idle ? 2048 : B.o.size + 4096;
    conn->in = xrealloc(NULL, conn->in_cap);
    if (B.o.idle)
      continue;
    /* Printable ASCII, so every message is valid UTF-8 text. */
    conn->pattern = xrealloc(NULL, B.o.size + WSB_PATTERN_SLACK);
    for (size_t j = 0; j < B.o.size + WSB_PATTERN_SLACK; j++)
      conn->pattern[j] = (uint8_t)(' ' + xorshift64(&conn->rng) % 95);
  }
}

static void conns_free(void) {
  for (int i = 0; i < B.nconns; i++) {
    free(B.conns[i].in);
    free(B.conns[i].out);
    free(B.conns[i].pattern);
  }
  free(B.conns);
  free(B.lat);
}

int main(int argc, char **argv) {
  if (parse_opts(argc, argv, &B.o) != 0) {
    usage(stderr);
    return 2;
  }
  if (resolve(&B.o) != 0)
    return 2;
  B.nconns = B.o.idle ? B.o.idle : B.o.connections;
  raise_nofile(B.nconns);
  conns_init();
  B.loop = uv_default_loop();
  uv_timer_init(B.loop, &B.timer);
  B.phase = WSB_PH_CONNECT;
  B.t_start = uv_hrtime();
  arm(WSB_CONNECT_TIMEOUT_MS / 1000.0);
  while (B.next_connect < B.nconns &&
         B.pending_connects < WSB_MAX_PENDING_CONNECTS)
    conn_start_connect(&B.conns[B.next_connect++]);
  uv_run(B.loop, UV_RUN_DEFAULT);
  if (B.o.idle)
    printf("{\"idle_closed\":%d,\"errors\":%" PRIu64 "}\n", B.clean_closes,
           B.errors);
  else
    print_echo_results();
  int rc = uv_loop_close(B.loop) == 0 ? 0 : 3;
  conns_free();
  return B.errors ? 1 : rc;
}
