/* HTTP/1.1 on llhttp: request limits (header size and count, body size),
 * the headers the upgrade needs, responses and JSON errors. Worker thread. */
#include "core/net/conn_int.h"

#include "core/base/error.h"
#include "core/base/log.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CB_CONN(p) ((kwp_conn_t *)(p)->data)

static const char *status_text(int status) {
  switch (status) {
  case 101:
    return "Switching Protocols";
  case 200:
    return "OK";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 408:
    return "Request Timeout";
  case 413:
    return "Payload Too Large";
  case 426:
    return "Upgrade Required";
  case 431:
    return "Request Header Fields Too Large";
  case 501:
    return "Not Implemented";
  case 503:
    return "Service Unavailable";
  default:
    return "Internal Server Error";
  }
}

/* Count request-line and header bytes against server.max-header-size. */
static int http_count(kwp_conn_t *conn, size_t len) {
  conn->req.header_bytes += len;
  if (conn->req.header_bytes > conn->cfg->server.max_header_size) {
    conn->http_err = KWP_EHDRTOOBIG;
    return HPE_USER;
  }
  return 0;
}

static int on_message_begin(llhttp_t *p) {
  kwp_conn_t *conn = CB_CONN(p);
  kwp_http_req_t *r = &conn->req;
  char *url = r->url, *auth = r->auth;
  size_t cap = r->url_cap, auth_cap = r->auth_cap;
  memset(r, 0, sizeof(*r));
  r->url = url;
  r->url_cap = cap;
  r->auth = auth;
  r->auth_cap = auth_cap;
  if (auth)
    *auth = 0;
  r->in_progress = 1;
  conn->t_req_start = uv_now(kwp_worker_loop(conn->wk));
  kwp_conn__timer_arm(conn);
  return 0;
}

/* Append to a growable NUL-terminated buffer (its size is bounded by
 * max-header-size, which http_count() enforces). */
static int grow_append(char **buf, size_t *len, size_t *cap, const char *at,
                       size_t n) {
  if (*len + n + 1 > *cap) {
    size_t c = (*len + n + 1) * 2;
    char *b = realloc(*buf, c);
    if (!b)
      return -1;
    *buf = b;
    *cap = c;
  }
  memcpy(*buf + *len, at, n);
  *len += n;
  (*buf)[*len] = 0;
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
  kwp_conn_t *conn = CB_CONN(p);
  kwp_http_req_t *r = &conn->req;
  if (http_count(conn, len))
    return HPE_USER;
  if (grow_append(&r->url, &r->url_len, &r->url_cap, at, len) != 0) {
    conn->http_err = KWP_ENOMEM;
    return HPE_USER;
  }
  return 0;
}

/* RFC 9110 token characters; llhttp lets a few others through. */
static int is_tchar(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  kwp_http_req_t *r = &CB_CONN(p)->req;
  for (size_t i = 0; i < len; i++) {
    if (!is_tchar((unsigned char)at[i])) {
      CB_CONN(p)->http_err = KWP_EBADREQ;
      return HPE_USER;
    }
  }
  size_t room = sizeof(r->field) - 1 - r->field_len;
  size_t n = len < room ? len : room;
  memcpy(r->field + r->field_len, at, n);
  r->field_len += n;
  r->field[r->field_len] = 0;
  return http_count(CB_CONN(p), len);
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  kwp_http_req_t *r = &CB_CONN(p)->req;
  if (!strcasecmp(r->field, "authorization") &&
      grow_append(&r->auth, &r->auth_len, &r->auth_cap, at, len) != 0) {
    CB_CONN(p)->http_err = KWP_ENOMEM;
    return HPE_USER;
  }
  size_t room = sizeof(r->value) - 1 - r->value_len;
  size_t n = len < room ? len : room;
  if (n < len)
    r->value_trunc = 1;
  memcpy(r->value + r->value_len, at, n);
  r->value_len += n;
  r->value[r->value_len] = 0;
  return http_count(CB_CONN(p), len);
}

/* Case-insensitive search for a comma-separated token. */
static int has_token(const char *list, const char *tok) {
  size_t n = strlen(tok);
  for (const char *s = list; *s;) {
    while (*s == ' ' || *s == '\t' || *s == ',')
      s++;
    const char *e = s;
    while (*e && *e != ',')
      e++;
    const char *t = e;
    while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
      t--;
    if ((size_t)(t - s) == n && !strncasecmp(s, tok, n))
      return 1;
    s = e;
  }
  return 0;
}

static void header_store(kwp_http_req_t *r) {
  const char *f = r->field, *v = r->value;
  if (!strcasecmp(f, "authorization")) {
    r->auth_count++;
  } else if (!strcasecmp(f, "upgrade")) {
    r->has_upgrade = 1;
    r->upgrade_websocket = has_token(v, "websocket");
  } else if (!strcasecmp(f, "connection")) {
    r->conn_upgrade |= has_token(v, "upgrade");
  } else if (!strcasecmp(f, "sec-websocket-key")) {
    /* RFC 6455 11.3.1: it must not appear more than once */
    r->ws_key_len =
        r->ws_key_seen++ || r->value_trunc || r->value_len >= sizeof(r->ws_key)
            ? -1
            : (int)r->value_len;
    if (r->ws_key_len > 0)
      memcpy(r->ws_key, v, r->value_len + 1);
  } else if (!strcasecmp(f, "sec-websocket-version")) {
    r->has_version = 1;
    /* Longer than any valid version: keep a prefix that cannot match "13". */
    size_t n = r->value_len < sizeof(r->ws_version) - 1
                   ? r->value_len
                   : sizeof(r->ws_version) - 1;
    memcpy(r->ws_version, v, n);
    r->ws_version[n] = 0;
  }
}

static int on_header_value_complete(llhttp_t *p) {
  kwp_conn_t *conn = CB_CONN(p);
  kwp_http_req_t *r = &conn->req;
  header_store(r);
  r->field_len = r->value_len = 0;
  r->value_trunc = 0;
  r->field[0] = r->value[0] = 0;
  if (++r->header_count > conn->cfg->server.max_header_count) {
    conn->http_err = KWP_EHDRTOOBIG;
    return HPE_USER;
  }
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  kwp_conn_t *conn = CB_CONN(p);
  conn->req.body_bytes += len;
  if (conn->req.body_bytes > conn->cfg->server.max_request_body_size) {
    conn->http_err = KWP_EBODYTOOBIG;
    return HPE_USER;
  }
  return 0;
}

static int on_headers_complete(llhttp_t *p) {
  kwp_conn_t *conn = CB_CONN(p);
  conn->req.method = p->method;
  conn->req.http11 = p->http_major > 1 || (p->http_major == 1 && p->http_minor);
  if (p->content_length != ULLONG_MAX &&
      p->content_length > conn->cfg->server.max_request_body_size) {
    conn->http_err = KWP_EBODYTOOBIG;
    return HPE_USER;
  }
  return 0;
}

static int on_message_complete(llhttp_t *p) {
  CB_CONN(p)->req.in_progress = 0;
  /* HTTP/1.0 closes after the response even when it asks for keep-alive:
   * the responses do not say "Connection: keep-alive", which a 1.0 client
   * needs to keep the connection (and docs/api.md promises the close). */
  CB_CONN(p)->req.keep_alive =
      llhttp_should_keep_alive(p) && CB_CONN(p)->req.http11;
  /* Pause so the request is answered before the next pipelined one is
   * parsed; an upgrade pauses by itself (HPE_PAUSED_UPGRADE). */
  return p->upgrade ? 0 : HPE_PAUSED;
}

static llhttp_settings_t http_settings;
static uv_once_t http_settings_once = UV_ONCE_INIT;

static void http_settings_init(void) {
  llhttp_settings_init(&http_settings);
  http_settings.on_message_begin = on_message_begin;
  http_settings.on_url = on_url;
  http_settings.on_header_field = on_header_field;
  http_settings.on_header_value = on_header_value;
  http_settings.on_header_value_complete = on_header_value_complete;
  http_settings.on_headers_complete = on_headers_complete;
  http_settings.on_body = on_body;
  http_settings.on_message_complete = on_message_complete;
}

void kwp_http__init(kwp_conn_t *conn) {
  uv_once(&http_settings_once, http_settings_init);
  llhttp_init(&conn->parser, HTTP_REQUEST, &http_settings);
  conn->parser.data = conn;
}

void kwp_http__free(kwp_conn_t *conn) {
  free(conn->req.url);
  conn->req.url = NULL;
  if (conn->req.auth) /* credentials: wiped */
    memset(conn->req.auth, 0, conn->req.auth_cap);
  free(conn->req.auth);
  conn->req.auth = NULL;
}

/* --- responses --- */

void kwp_http__respond(kwp_conn_t *conn, int status, const char *extra_headers,
                       const char *body, size_t body_len) {
  char head[1024];
  int keep = !conn->close_after_write && !conn->shutdown_requested &&
             conn->req.keep_alive && !conn->req.in_progress;
  int n = snprintf(head, sizeof(head),
                   "HTTP/1.1 %d %s\r\nServer: kafka-ws-proxy\r\n"
                   "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                   "%s%s\r\n",
                   status, status_text(status), body_len,
                   keep ? "" : "Connection: close\r\n",
                   extra_headers ? extra_headers : "");
  int head_only = conn->req.method == HTTP_HEAD;
  uv_buf_t bufs[2] = {uv_buf_init(head, (unsigned)n),
                      uv_buf_init((char *)body, (unsigned)body_len)};
  kwp_conn__write(conn, bufs, head_only || !body_len ? 1 : 2);
  conn->t_activity = uv_now(kwp_worker_loop(conn->wk));
  conn->served = 1;
  if (!keep)
    kwp_conn__finish(conn);
  else
    kwp_conn__timer_arm(conn); /* from now on the idle timeout applies */
}

void kwp_http__error(kwp_conn_t *conn, int err, const char *message,
                     const char *extra_headers) {
  json_t *o = json_pack("{s:s}", "message", message);
  char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
  int status = kwp_err_http_status(err);
  if (err == KWP_EUNAUTHORIZED && !extra_headers)
    extra_headers = kwp_auth_challenge(kwp_worker_auth(conn->wk));
  /* Errors the parser cannot recover from end the connection. */
  if (status == 400 || status == 408 || status == 413 || status == 431 ||
      err == KWP_EOVERLOAD)
    conn->close_after_write = 1;
  KWP_LOG_RL(KWP_LOG_INFO, "conn", "#%llu %s HTTP %d: %s",
             (unsigned long long)conn->id, conn->peer, status, message);
  kwp_http__respond(conn, status, extra_headers, body ? body : "{}",
                    body ? strlen(body) : 2);
  free(body);
  json_decref(o);
}

void kwp_http__request_timeout(kwp_conn_t *conn) {
  kwp_http__error(conn, KWP_EREQTIMEOUT, "Request timed out", NULL);
}

/* An asynchronous response was written: go on with pipelined input. */
void kwp_http__response_done(kwp_conn_t *conn) {
  if (conn->shutdown_requested && !conn->close_after_write)
    kwp_conn__finish(conn);
  kwp_conn__timer_arm(conn);
  kwp_conn_resume(conn, KWP_PAUSE_ASYNC);
}

void kwp_conn_upgrade_answer(kwp_conn_t *conn, const kwp_ws_handler_t *h,
                             void *state, int err, const char *message) {
  char head[256];
  if (conn->closing) {
    if (h && h->close)
      h->close(conn, state);
  } else if (!h) {
    kwp_http__error(conn, err, message, NULL);
  } else {
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n\r\n",
                     conn->ws_accept);
    uv_buf_t b = uv_buf_init(head, (unsigned)n);
    conn->close_after_write = 0;
    kwp_conn__write(conn, &b, 1);
    conn->hstate = state;
    kwp_conn__ws_start(conn, h);
  }
  if (!conn->closing) {
    kwp_conn__timer_arm(conn);
    kwp_conn_resume(conn, KWP_PAUSE_ASYNC);
  }
  kwp_conn_unref(conn);
}

/* --- parsing --- */

static size_t http_parse_error(kwp_conn_t *conn, llhttp_errno_t rc) {
  char msg[160];
  /* A limit hit in one of our callbacks (llhttp reports it as that
   * callback's error code). */
  if (conn->http_err == KWP_EHDRTOOBIG) {
    kwp_http__error(conn, KWP_EHDRTOOBIG, "Request header fields too large",
                    NULL);
  } else if (conn->http_err == KWP_EBODYTOOBIG) {
    kwp_http__error(conn, KWP_EBODYTOOBIG, "Request body too large", NULL);
  } else if (conn->http_err == KWP_EBADREQ) {
    kwp_http__error(conn, KWP_EBADREQ,
                    "Malformed HTTP request: invalid character in a header "
                    "name",
                    NULL);
  } else if (conn->http_err) {
    kwp_http__error(conn, KWP_EINTERNAL, "Internal server error", NULL);
  } else {
    snprintf(msg, sizeof(msg), "Malformed HTTP request: %s",
             llhttp_get_error_reason(&conn->parser));
    kwp_http__error(conn, KWP_EBADREQ, msg, NULL);
  }
  return 0;
}

size_t kwp_http__process(kwp_conn_t *conn, uint8_t *data, size_t len) {
  llhttp_errno_t rc = llhttp_execute(&conn->parser, (const char *)data, len);
  size_t used = len;
  if (rc == HPE_PAUSED || rc == HPE_PAUSED_UPGRADE) {
    used =
        (size_t)((const uint8_t *)llhttp_get_error_pos(&conn->parser) - data);
    if (rc == HPE_PAUSED)
      llhttp_resume(&conn->parser);
    kwp_conn__timer_arm(conn);
    kwp_routes__dispatch(conn, rc == HPE_PAUSED_UPGRADE);
    return used;
  }
  if (rc != HPE_OK)
    return http_parse_error(conn, rc);
  return used;
}
