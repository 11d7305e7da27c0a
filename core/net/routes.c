/* The route table and the endpoints of this version: health, cluster info,
 * the diagnostic echo WebSocket, and the WebSocket upgrade checks every
 * WebSocket endpoint shares. Worker thread. */
#include "core/net/conn_int.h"

#include "core/base/error.h"
#include "core/base/log.h"
#include "core/endpoint/endpoint.h"
#include "core/kafka/kafka.h"
#include "session/session.h"

#include <stdlib.h>
#include <string.h>

#define ALLOW_GET "Allow: GET, HEAD\r\n"

typedef struct route {
  const char *path;
  /* Plain HTTP endpoint, or NULL for a WebSocket endpoint. */
  void (*http)(kwp_conn_t *conn);
  /* WebSocket endpoint: validates the upgrade, then answers through a
   * kwp_upgrade_cb (see core/endpoint/endpoint.h). */
  kwp_endpoint_fn ws;
} route_t;

/* --- /healthcheck --- */

static void route_health(kwp_conn_t *conn) {
  static const char body[] = "{ \"response\": \"I'm healthy\" }";
  kwp_http__respond(conn, 200, NULL, body, sizeof(body) - 1);
}

/* --- /ready: readiness for load balancers and Kubernetes --- */

static void route_ready(kwp_conn_t *conn) {
  kwp_session_t *ss = conn->ctx->session;
  char body[256];
  size_t sessions;
  int64_t log_time;
  int ready = kwp_session_ready(ss);
  kwp_session_stats(ss, &sessions, &log_time);
  int n = snprintf(body, sizeof(body),
                   "{\"ready\":%s,\"status\":\"%s\",\"sessions\":%zu}",
                   ready ? "true" : "false", kwp_session_status(ss), sessions);
  kwp_http__respond(conn, ready ? 200 : 503, NULL, body, (size_t)n);
}

/* --- /kafka/cluster/info --- */

static void cluster_info_done(void *arg, int status, char *json) {
  kwp_conn_t *conn = arg;
  if (!conn->closing) {
    if (status == 0) {
      kwp_http__respond(conn, 200, NULL, json, strlen(json));
    } else {
      char msg[512];
      snprintf(msg, sizeof(msg), "Kafka cluster is unreachable: %s",
               json ? json : kwp_strerror(status));
      kwp_http__error(conn, KWP_EUNAVAILABLE, msg, NULL);
    }
    kwp_http__response_done(conn);
  }
  free(json);
  kwp_conn_unref(conn);
}

static void route_cluster_info(kwp_conn_t *conn) {
  kwp_conn_pause(conn, KWP_PAUSE_ASYNC);
  kwp_conn_ref(conn);
  int rc = kwp_kafka_cluster_info(conn->ctx->kafka, kwp_worker_loop(conn->wk),
                                  cluster_info_done, conn);
  if (rc != 0) {
    kwp_conn_unref(conn);
    kwp_http__error(conn, KWP_EINTERNAL, "Internal server error", NULL);
    kwp_http__response_done(conn);
  }
}

/* --- /echo: every message back, unchanged --- */

static int echo_message(kwp_conn_t *conn, void *state, int opcode,
                        const uint8_t *data, size_t len) {
  int rc = kwp_conn_ws_send(conn, opcode, data, len);
  return rc == KWP_EBACKPRESSURE || rc == UV_ECANCELED ? 0 : rc;
}

static const kwp_ws_handler_t echo_handler = {
    .name = "echo",
    .message = echo_message,
};

static void route_echo(kwp_conn_t *conn, const char *url, kwp_upgrade_cb done) {
  done(conn, &echo_handler, NULL, 0, NULL);
}

static const route_t routes[] = {
    {"/healthcheck", route_health, NULL},
    {"/ready", route_ready, NULL},
    {"/kafka/cluster/info", route_cluster_info, NULL},
    {"/admin/kafka/info", route_cluster_info, NULL},
    {"/echo", NULL, route_echo},
    {"/socket/in", NULL, kwp_produce_upgrade},
    {"/socket/out", NULL, kwp_consume_upgrade},
};

static const route_t *route_find(kwp_conn_t *conn) {
  const char *url = conn->req.url ? conn->req.url : "";
  size_t n = strcspn(url, "?#");
  for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
    if (strlen(routes[i].path) == n && !strncmp(routes[i].path, url, n)) {
      if (routes[i].ws == route_echo &&
          !conn->cfg->server.echo_endpoint_enabled)
        return NULL;
      return &routes[i];
    }
  }
  return NULL;
}

/* --- WebSocket upgrade (RFC 6455 section 4.2) --- */

static int upgrade_check(kwp_conn_t *conn, char *accept) {
  kwp_http_req_t *r = &conn->req;
  if (r->method != HTTP_GET || !r->http11) {
    kwp_http__error(conn, KWP_EBADREQ,
                    "Invalid WebSocket upgrade: the handshake must be an "
                    "HTTP/1.1 GET",
                    NULL);
    return -1;
  }
  if (!r->upgrade_websocket || !r->conn_upgrade) {
    kwp_http__error(conn, KWP_EBADREQ,
                    "Invalid WebSocket upgrade: expected 'Upgrade: websocket' "
                    "and 'Connection: Upgrade'",
                    NULL);
    return -1;
  }
  if (!r->has_version || strcmp(r->ws_version, "13") != 0) {
    kwp_http__error(conn, KWP_EBADREQ,
                    "Unsupported WebSocket version, only 13 is supported",
                    "Sec-WebSocket-Version: 13\r\n");
    return -1;
  }
  if (r->ws_key_len <= 0 ||
      kwp_ws_accept_key(r->ws_key, (size_t)r->ws_key_len, accept) != 0) {
    kwp_http__error(
        conn, KWP_EBADREQ,
        "Invalid WebSocket upgrade: missing or malformed Sec-WebSocket-Key",
        NULL);
    return -1;
  }
  return 0;
}

/* The endpoint's answer: 101 and the WebSocket, or an HTTP error. */
static void upgrade_done(kwp_conn_t *conn, const kwp_ws_handler_t *h,
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

static void route_upgrade(kwp_conn_t *conn, const route_t *rt) {
  if (upgrade_check(conn, conn->ws_accept) != 0)
    return;
  kwp_conn_pause(conn, KWP_PAUSE_ASYNC);
  kwp_conn_ref(conn);
  rt->ws(conn, conn->req.url, upgrade_done);
}

void kwp_routes__dispatch(kwp_conn_t *conn, int upgrade) {
  const route_t *rt = route_find(conn);
  int method = conn->req.method;
  /* After an upgrade request the byte stream is no longer HTTP: whatever we
   * answer (other than 101), the connection ends with it. */
  if (upgrade)
    conn->close_after_write = 1;
  if (!rt) {
    kwp_http__error(conn, KWP_ENOTFOUND,
                    "This is not the resource you are looking for.", NULL);
  } else if (method != HTTP_GET && method != HTTP_HEAD) {
    kwp_http__error(conn, KWP_EMETHOD,
                    "HTTP method not allowed, supported methods: GET, HEAD",
                    ALLOW_GET);
  } else if (rt->http) {
    rt->http(conn);
  } else if (upgrade) {
    route_upgrade(conn, rt);
  } else if (conn->req.has_upgrade || conn->req.conn_upgrade) {
    kwp_http__error(conn, KWP_EBADREQ,
                    "Invalid WebSocket upgrade: expected 'Upgrade: websocket' "
                    "and 'Connection: Upgrade'",
                    NULL);
  } else {
    kwp_http__error(conn, KWP_EUPGRADE, "Expected WebSocket Upgrade request",
                    "Upgrade: websocket\r\n");
  }
}
