/* The connection struct and the functions the core files share about it
 * (conn.c: I/O, timers and WebSocket; http.c: HTTP/1.1; routes.c: endpoints;
 * worker.c: ownership). Worker-thread only, like everything in conn.h. */
#ifndef KWP_CONN_INT_H
#define KWP_CONN_INT_H

#include "codec/ws/ws.h"
#include "core/net/conn.h"
#include "core/net/worker.h"

#include <llhttp.h>
#include <uv.h>

#define KWP_CONTAINER_OF(ptr, type, field)                                     \
  ((type *)((char *)(ptr)-offsetof(type, field)))

enum { KWP_CONN_HTTP, KWP_CONN_WS };

/* What the HTTP layer keeps of a request: only the headers we act on. */
typedef struct kwp_http_req {
  char *url; /* malloc'd, NUL-terminated, bounded by max-header-size */
  size_t url_len, url_cap;
  /* the Authorization header (malloc'd, kept like url; a bearer token is
   * longer than `value`), and how many there were */
  char *auth;
  size_t auth_len, auth_cap;
  int auth_count;
  size_t header_bytes, header_count, body_bytes;
  char field[32];
  size_t field_len;
  char value[128];
  size_t value_len;
  int value_trunc;
  int has_upgrade, upgrade_websocket, conn_upgrade, has_version;
  char ws_key[64];
  int ws_key_len; /* -1: too long or repeated, so not valid */
  int ws_key_seen;
  char ws_version[8];
  int in_progress; /* the first byte of a request has arrived */
  int method;      /* llhttp_method, once the headers are complete */
  int http11;      /* HTTP/1.1 or later, once the headers are complete */
  int keep_alive;  /* once the request is complete */
} kwp_http_req_t;

struct kwp_conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_shutdown_t shutdown_req;
  kwp_worker_t *wk;
  kwp_ctx_t *ctx;
  const kwp_config_t *cfg;
  kwp_conn_t *prev, *next; /* the worker's list */
  uint64_t id;
  char peer[64];
  int state;
  int refs;      /* open handles + async operations; worker-owned, plain int */
  int closing;   /* uv_close() was called */
  int finishing; /* kwp_conn__finish(): input is discarded from now on */
  int lingering; /* TCP write side shut; discarding until EOF or the timer */
  int rx_eof;    /* the client's FIN arrived while finishing */
  int pause;     /* kwp_conn_pause bits */
  int reading;
  int processing;
  int close_after_write;
  int shutdown_requested;
  int served;  /* a request was answered: quiet time is idle, not slow */
  int refused; /* over server.max-connections: counted in refused_conns */
  int ws_close_sent, ws_close_received;
  uint64_t t_activity, t_rx, t_tx, t_req_start, t_close_start;
  uint64_t t_close_end;  /* finishing: the socket is closed by then */
  uint64_t linger_bytes; /* discarded since finishing began */
  uint8_t *in;           /* unconsumed input kept between reads */
  size_t in_len, in_cap;
  size_t send_queued;
  uint64_t tx_total; /* bytes given to kwp_conn__write, ever */
  llhttp_t parser;
  kwp_http_req_t req;
  int http_err; /* why a parser callback stopped the parser */
  char ws_accept[29];
  kwp_ws_reader_t *rd;
  const kwp_ws_handler_t *h;
  void *hstate;
};

/* conn.c */
kwp_conn_t *kwp_conn__new(kwp_worker_t *wk, int fd, int over);
void kwp_conn__write(kwp_conn_t *conn, const uv_buf_t *bufs, unsigned n);
/* The graceful end: discard input, write what is queued, shut the write
 * side, then linger (discarding) until EOF or server.lingering-timeout. */
void kwp_conn__finish(kwp_conn_t *conn);
void kwp_conn__close(kwp_conn_t *conn); /* close now */
void kwp_conn__shutdown(kwp_conn_t *conn);
void kwp_conn__grace_over(kwp_conn_t *conn);
int kwp_conn__ws_start(kwp_conn_t *conn, const kwp_ws_handler_t *h);
void kwp_conn__timer_arm(kwp_conn_t *conn);
void kwp_conn__process(kwp_conn_t *conn);

/* http.c */
void kwp_http__init(kwp_conn_t *conn);
void kwp_http__free(kwp_conn_t *conn);
/* Feed bytes; returns bytes consumed (the rest is kept for later). */
size_t kwp_http__process(kwp_conn_t *conn, uint8_t *data, size_t len);
void kwp_http__respond(kwp_conn_t *conn, int status, const char *extra_headers,
                       const char *body, size_t body_len);
void kwp_http__error(kwp_conn_t *conn, int err, const char *message,
                     const char *extra_headers);
void kwp_http__request_timeout(kwp_conn_t *conn);
void kwp_http__response_done(kwp_conn_t *conn); /* after an async response */

/* routes.c */
void kwp_routes__dispatch(kwp_conn_t *conn, int upgrade);

/* worker.c */
void kwp_worker__add(kwp_worker_t *wk, kwp_conn_t *conn);
void kwp_worker__remove(kwp_worker_t *wk, kwp_conn_t *conn);
uint8_t *kwp_worker__scratch(kwp_worker_t *wk, size_t *len);
kwp_ctx_t *kwp_worker__ctx(kwp_worker_t *wk);
/* Count a socket that starts lingering: 0, or KWP_EOVERLOAD when the worker
 * already has its maximum lingering (the caller closes at once). */
int kwp_worker__linger_begin(kwp_worker_t *wk);
void kwp_worker__linger_end(kwp_worker_t *wk);

#endif
