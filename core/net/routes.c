/* The router: the plain HTTP endpoints (health, readiness, cluster info),
 * then the WebSocket endpoints of every dialect (core/dialect/registry.c),
 * whose upgrades pass the checks here before the upgrade pipeline
 * (core/endpoint/endpoint.h). Worker thread. */
#include "core/net/conn_int.h"

#include "codec/avro/schemas.h"
#include "core/base/error.h"
#include "core/base/log.h"
#include "core/dialect/dialect.h"
#include "core/endpoint/endpoint.h"
#include "core/kafka/kafka.h"

#include <stdlib.h>
#include <string.h>

#define ALLOW_GET "Allow: GET, HEAD\r\n"

/* A plain HTTP endpoint, or (http NULL) a WebSocket one. */
typedef struct route {
  const char *path;
  void (*http)(kwp_conn_t *conn);
  const kwp_endpoint_t *ws;
  int health; /* authenticated only with server.secure-health-check-endpoint */
} route_t;

/* --- /healthcheck --- */

static void route_health(kwp_conn_t *conn) {
  static const char body[] = "{ \"response\": \"I'm healthy\" }";
  kwp_http__respond(conn, 200, NULL, body, sizeof(body) - 1);
}

/* --- /ready: readiness for load balancers and Kubernetes --- */

static void route_ready(kwp_conn_t *conn) {
  const kwp_admission_t *adm = kwp_worker_admission(conn->wk);
  char body[256];
  int ready = adm->ready(adm->impl);
  int n = snprintf(body, sizeof(body),
                   "{\"ready\":%s,\"status\":\"%s\",\"sessions\":%zu}",
                   ready ? "true" : "false", adm->status(adm->impl),
                   adm->sessions(adm->impl));
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
  int rc = kwp_kafka_cluster_info(kwp_worker_kafka(conn->wk),
                                  kwp_worker_loop(conn->wk), cluster_info_done,
                                  conn);
  if (rc != 0) {
    kwp_conn_unref(conn);
    kwp_http__error(conn, KWP_EINTERNAL, "Internal server error", NULL);
    kwp_http__response_done(conn);
  }
}

/* --- /schemas/avro/...: the wrapper schemas of socketPayload=avro --- */

#define SCHEMAS_PREFIX "/schemas/avro/"

static void route_avro_schema(kwp_conn_t *conn) {
  const char *path = conn->req.url + sizeof(SCHEMAS_PREFIX) - 1;
  const kwp_avro_schema_doc_t *doc =
      kwp_avro_schema_find(path, strcspn(path, "?#"));
  kwp_http__respond(conn, 200, NULL, doc->text, strlen(doc->text));
}

static const route_t routes[] = {
    {SCHEMAS_PREFIX "producer/record", route_avro_schema, NULL, 0},
    {SCHEMAS_PREFIX "producer/result", route_avro_schema, NULL, 0},
    {SCHEMAS_PREFIX "producer/commit", route_avro_schema, NULL, 0},
    {SCHEMAS_PREFIX "consumer/record", route_avro_schema, NULL, 0},
    {SCHEMAS_PREFIX "consumer/commit", route_avro_schema, NULL, 0},
    {"/healthcheck", route_health, NULL, 1},
    {"/ready", route_ready, NULL, 1},
    {"/kafka/cluster/info", route_cluster_info, NULL, 0},
    {"/admin/kafka/info", route_cluster_info, NULL, 0},
};

static int route_find(kwp_conn_t *conn, route_t *out) {
  const char *url = conn->req.url ? conn->req.url : "";
  size_t n = strcspn(url, "?#");
  for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
    if (strlen(routes[i].path) == n && !strncmp(routes[i].path, url, n)) {
      *out = routes[i];
      return 1;
    }
  }
  out->http = NULL;
  out->health = 0;
  out->ws = kwp_dialect_find(url, n, conn->cfg);
  return out->ws != NULL;
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

static void route_upgrade(kwp_conn_t *conn, const route_t *rt) {
  if (upgrade_check(conn, conn->ws_accept) != 0)
    return;
  /* kwp_conn_upgrade_answer() ends both. */
  kwp_conn_pause(conn, KWP_PAUSE_ASYNC);
  kwp_conn_ref(conn);
  kwp_upgrade_start(conn, rt->ws, conn->req.url);
}

/* A plain HTTP route's identity check (a WebSocket endpoint's is the
 * upgrade pipeline's first step). @returns 0, or -1 once answered 401. */
static int authenticate(kwp_conn_t *conn, const route_t *rt) {
  const kwp_auth_t *a = kwp_worker_auth(conn->wk);
  char principal[128];
  const char *why;
  int repeated;
  if (!kwp_auth_enabled(a) ||
      (rt->health && !conn->cfg->server.secure_health_check_endpoint))
    return 0;
  const char *header = kwp_conn_authorization(conn, &repeated);
  if (kwp_auth_check(a, header, repeated, principal, sizeof(principal), &why) ==
      0)
    return 0;
  kwp_http__error(conn, KWP_EUNAUTHORIZED, why, NULL);
  return -1;
}

void kwp_routes__dispatch(kwp_conn_t *conn, int upgrade) {
  route_t found;
  const route_t *rt = route_find(conn, &found) ? &found : NULL;
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
    if (authenticate(conn, rt) == 0)
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
