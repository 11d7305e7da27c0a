/* Configuration: the built-in defaults (config_defaults.h) and the user's
 * file are read by the HOCON reader, substitutions resolved (environment
 * variables come in through `${?WSPROXY_...}`), then mapped onto
 * kwp_config_t by the schema table below and validated. Main thread, once. */
#include "core/config/config.h"

#include "core/base/error.h"
#include "core/base/log.h"
#include "core/config/config_defaults.h"
#include "core/config/hocon.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ROOT "kafka.ws.proxy."

typedef enum {
  T_STR,   /* char * */
  T_BOOL,  /* int */
  T_INT,   /* int, within [min, max] */
  T_I64,   /* int64_t, within [min, max] */
  T_DUR,   /* int64_t milliseconds, >= min */
  T_SIZE,  /* size_t bytes, within [min, max] */
  T_COUNT, /* size_t, a plain integer within [min, max] (no size units) */
  T_PROPS, /* kwp_props_t */
  T_LIMITS /* kwp_limits_t (client-specific-limits list) */
} ctype_t;

typedef struct centry {
  const char *path; /* below kafka.ws.proxy. */
  ctype_t type;
  size_t off;
  int64_t min, max;
  int secret; /* masked by --print-config */
} centry_t;

#define F(field) offsetof(kwp_config_t, field)
#define I64MAX INT64_MAX

static const centry_t schema[] = {
    {"server.server-id", T_STR, F(server.server_id), 0, 0, 0},
    {"server.bind-interface", T_STR, F(server.bind_interface), 0, 0, 0},
    {"server.port", T_INT, F(server.port), 1, 65535, 0},
    {"server.secure-health-check-endpoint", T_BOOL,
     F(server.secure_health_check_endpoint), 0, 0, 0},
    {"server.admin.enabled", T_BOOL, F(server.admin.enabled), 0, 0, 0},
    {"server.admin.bind-interface", T_STR, F(server.admin.bind_interface), 0, 0,
     0},
    {"server.admin.port", T_INT, F(server.admin.port), 1, 65535, 0},
    {"server.ssl.enabled", T_BOOL, F(server.ssl.enabled), 0, 0, 0},
    {"server.ssl.ssl-only", T_BOOL, F(server.ssl.ssl_only), 0, 0, 0},
    {"server.ssl.bind-interface", T_STR, F(server.ssl.bind_interface), 0, 0, 0},
    {"server.ssl.port", T_INT, F(server.ssl.port), 1, 65535, 0},
    {"server.ssl.keystore-location", T_STR, F(server.ssl.keystore_location), 0,
     0, 0},
    {"server.ssl.keystore-password", T_STR, F(server.ssl.keystore_password), 0,
     0, 1},
    {"server.basic-auth.enabled", T_BOOL, F(server.basic_auth.enabled), 0, 0,
     0},
    {"server.basic-auth.realm", T_STR, F(server.basic_auth.realm), 0, 0, 0},
    {"server.basic-auth.username", T_STR, F(server.basic_auth.username), 0, 0,
     0},
    {"server.basic-auth.password", T_STR, F(server.basic_auth.password), 0, 0,
     1},
    {"server.openid-connect.enabled", T_BOOL, F(server.openid_connect.enabled),
     0, 0, 0},
    {"server.openid-connect.well-known-url", T_STR,
     F(server.openid_connect.well_known_url), 0, 0, 0},
    {"server.openid-connect.audience", T_STR, F(server.openid_connect.audience),
     0, 0, 0},
    {"server.openid-connect.realm", T_STR, F(server.openid_connect.realm), 0, 0,
     0},
    {"server.openid-connect.allow-detailed-logging", T_BOOL,
     F(server.openid_connect.allow_detailed_logging), 0, 0, 0},
    {"server.openid-connect.revalidation-interval", T_DUR,
     F(server.openid_connect.revalidation_interval_ms), 0, 0, 0},
    {"server.openid-connect.revalidation-errors-limit", T_I64,
     F(server.openid_connect.revalidation_errors_limit), -1, I64MAX, 0},
    {"server.openid-connect.require-https", T_BOOL,
     F(server.openid_connect.require_https), 0, 0, 0},
    {"server.openid-connect.custom-jwt.jwt-kafka-username-key", T_STR,
     F(server.openid_connect.jwt_kafka_username_key), 0, 0, 0},
    {"server.openid-connect.custom-jwt.jwt-kafka-password-key", T_STR,
     F(server.openid_connect.jwt_kafka_password_key), 0, 0, 0},
    {"server.openid-connect.custom-jwt.kafka-token-auth-only", T_BOOL,
     F(server.openid_connect.kafka_token_auth_only), 0, 0, 0},
    {"server.jmx.manager.proxy.status.interval", T_DUR,
     F(server.jmx_proxy_status_interval_ms), 1, 0, 0},
    {"server.broker-resolution-timeout", T_DUR,
     F(server.broker_resolution_timeout_ms), 0, 0, 0},
    {"server.broker-resolution-retries", T_I64,
     F(server.broker_resolution_retries), 0, I64MAX, 0},
    {"server.broker-resolution-retry-interval", T_DUR,
     F(server.broker_resolution_retry_interval_ms), 0, 0, 0},
    {"server.worker-threads", T_INT, F(server.worker_threads), 0, 256, 0},
    {"server.max-message-size", T_SIZE, F(server.max_message_size), 1,
     (int64_t)1 << 31, 0},
    {"server.max-connections", T_COUNT, F(server.max_connections), 1, 10000000,
     0},
    {"server.max-header-size", T_SIZE, F(server.max_header_size), 256, 1 << 20,
     0},
    {"server.max-header-count", T_COUNT, F(server.max_header_count), 1, 10000,
     0},
    {"server.max-request-body-size", T_SIZE, F(server.max_request_body_size), 0,
     (int64_t)1 << 31, 0},
    {"server.max-buffered-send-bytes", T_SIZE,
     F(server.max_buffered_send_bytes), 1024, (int64_t)1 << 31, 0},
    {"server.request-timeout", T_DUR, F(server.request_timeout_ms), 1, 0, 0},
    {"server.idle-timeout", T_DUR, F(server.idle_timeout_ms), 1, 0, 0},
    {"server.ws-keep-alive-interval", T_DUR,
     F(server.ws_keep_alive_interval_ms), 0, 0, 0},
    {"server.ws-idle-timeout", T_DUR, F(server.ws_idle_timeout_ms), 0, 0, 0},
    {"server.shutdown-grace-period", T_DUR, F(server.shutdown_grace_period_ms),
     0, 0, 0},
    {"server.lingering-timeout", T_DUR, F(server.lingering_timeout_ms), 1, 0,
     0},
    {"server.echo-endpoint-enabled", T_BOOL, F(server.echo_endpoint_enabled), 0,
     0, 0},
    {"kafka-client.bootstrap-hosts", T_STR, F(kafka_client.bootstrap_hosts), 0,
     0, 0},
    {"kafka-client.broker-resolution-timeout", T_DUR,
     F(kafka_client.broker_resolution_timeout_ms), 0, 0, 0},
    {"kafka-client.metadata-timeout", T_DUR,
     F(kafka_client.metadata_timeout_ms), 1, 0, 0},
    {"kafka-client.schema-registry.url", T_STR,
     F(kafka_client.schema_registry.url), 0, 0, 0},
    {"kafka-client.schema-registry.auto-register-schemas", T_BOOL,
     F(kafka_client.schema_registry.auto_register_schemas), 0, 0, 0},
    {"kafka-client.schema-registry.properties", T_PROPS,
     F(kafka_client.schema_registry.properties), 0, 0, 1},
    {"kafka-client.monitoring-enabled", T_BOOL,
     F(kafka_client.monitoring_enabled), 0, 0, 0},
    {"kafka-client.properties", T_PROPS, F(kafka_client.properties), 0, 0, 1},
    {"admin-client.kafka-client-properties", T_PROPS,
     F(admin_client.kafka_client_properties), 0, 0, 1},
    {"consumer.limits", T_LIMITS, F(consumer.limits), 0, 0, 0},
    {"consumer.auto-commit-interval", T_DUR,
     F(consumer.auto_commit_interval_ms), 1, 0, 0},
    {"consumer.pause-after", T_DUR, F(consumer.pause_after_ms), 0, 0, 0},
    {"consumer.kafka-client-properties", T_PROPS,
     F(consumer.kafka_client_properties), 0, 0, 1},
    {"producer.sessions-enabled", T_BOOL, F(producer.sessions_enabled), 0, 0,
     0},
    {"producer.exactly-once-enabled", T_BOOL, F(producer.exactly_once_enabled),
     0, 0, 0},
    {"producer.limits", T_LIMITS, F(producer.limits), 0, 0, 0},
    {"producer.delivery-timeout-ms", T_I64, F(producer.delivery_timeout_ms), 1,
     INT32_MAX, 0},
    {"producer.compression-type", T_STR, F(producer.compression_type), 0, 0, 0},
    {"producer.max-inflight-messages", T_COUNT,
     F(producer.max_inflight_messages), 1, 100000, 0},
    {"producer.max-inflight-bytes", T_SIZE, F(producer.max_inflight_bytes),
     1024, (int64_t)1 << 31, 0},
    {"producer.transaction-max-messages", T_COUNT,
     F(producer.transaction_max_messages), 1, 100000, 0},
    {"producer.transaction-interval", T_DUR,
     F(producer.transaction_interval_ms), 1, 0, 0},
    {"producer.kafka-client-properties", T_PROPS,
     F(producer.kafka_client_properties), 0, 0, 1},
    {"session-handler.topic-name", T_STR, F(session_handler.topic_name), 0, 0,
     0},
    {"session-handler.topic-replication-factor", T_I64,
     F(session_handler.topic_replication_factor), 1, 32767, 0},
    {"session-handler.topic-retention", T_DUR,
     F(session_handler.topic_retention_ms), 0, 0, 0},
    {"session-handler.topic-init-timeout", T_DUR,
     F(session_handler.topic_init_timeout_ms), 0, 0, 0},
    {"session-handler.topic-init-retries", T_I64,
     F(session_handler.topic_init_retries), 0, I64MAX, 0},
    {"session-handler.topic-init-retry-interval", T_DUR,
     F(session_handler.topic_init_retry_interval_ms), 0, 0, 0},
    {"session-handler.heartbeat-interval", T_DUR,
     F(session_handler.heartbeat_interval_ms), 10, 0, 0},
    {"session-handler.node-ttl", T_DUR, F(session_handler.node_ttl_ms), 100, 0,
     0},
    {"session-handler.admission-timeout", T_DUR,
     F(session_handler.admission_timeout_ms), 100, 0, 0},
    {"dynamic-config-handler.enabled", T_BOOL,
     F(dynamic_config_handler_enabled), 0, 0, 0},
    {"dynamic-config-handler.topic-name", T_STR,
     F(dynamic_config_handler.topic_name), 0, 0, 0},
    {"dynamic-config-handler.topic-replication-factor", T_I64,
     F(dynamic_config_handler.topic_replication_factor), 1, 32767, 0},
    {"dynamic-config-handler.topic-retention", T_DUR,
     F(dynamic_config_handler.topic_retention_ms), 0, 0, 0},
    {"dynamic-config-handler.topic-init-timeout", T_DUR,
     F(dynamic_config_handler.topic_init_timeout_ms), 0, 0, 0},
    {"dynamic-config-handler.topic-init-retries", T_I64,
     F(dynamic_config_handler.topic_init_retries), 0, I64MAX, 0},
    {"dynamic-config-handler.topic-init-retry-interval", T_DUR,
     F(dynamic_config_handler.topic_init_retry_interval_ms), 0, 0, 0},
    {"commit-handler.max-stack-size", T_I64, F(commit_handler.max_stack_size),
     1, 1000000, 0},
    {"commit-handler.auto-commit-enabled", T_BOOL,
     F(commit_handler.auto_commit_enabled), 0, 0, 0},
    {"commit-handler.auto-commit-interval", T_DUR,
     F(commit_handler.auto_commit_interval_ms), 1, 0, 0},
    {"commit-handler.auto-commit-max-age", T_DUR,
     F(commit_handler.auto_commit_max_age_ms), 0, 0, 0},
};

#define NSCHEMA (sizeof(schema) / sizeof(schema[0]))

/* --- errors --- */

static int bad(const kwp_hnode_t *n, const char *path, const char *expected,
               char *err, size_t errlen) {
  const char *got = n->str                 ? n->str
                    : n->type == KWP_H_OBJ ? "an object"
                    : n->type == KWP_H_ARR ? "a list"
                                           : "null";
  if (n->env)
    snprintf(err, errlen,
             "environment %s (" ROOT "%s): expected %s, got \"%s\"", n->env,
             path, expected, got);
  else
    snprintf(err, errlen, "%s:%d: " ROOT "%s: expected %s, got \"%s\"",
             n->src ? n->src : "?", n->line, path, expected, got);
  return -1;
}

/* --- scalar parsing --- */

static int parse_bool(const char *s, int *out) {
  static const char *t[] = {"true", "yes", "on"}, *f[] = {"false", "no", "off"};
  for (int i = 0; i < 3; i++) {
    if (!strcasecmp(s, t[i]))
      return *out = 1, 0;
    if (!strcasecmp(s, f[i]))
      return *out = 0, 0;
  }
  return -1;
}

/* A number followed by an optional unit from @p units (name, factor). */
typedef struct unit {
  const char *name;
  double factor;
} unit_t;

static int parse_with_unit(const char *s, const unit_t *units, double dflt,
                           double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || errno || v != v)
    return -1;
  while (isspace((unsigned char)*end))
    end++;
  if (!*end) {
    *out = v * dflt;
    return 0;
  }
  for (const unit_t *u = units; u->name; u++) {
    if (!strcmp(end, u->name)) {
      *out = v * u->factor;
      return 0;
    }
  }
  return -1;
}

static const unit_t dur_units[] = {{"ns", 1e-6},
                                   {"nano", 1e-6},
                                   {"nanos", 1e-6},
                                   {"nanosecond", 1e-6},
                                   {"nanoseconds", 1e-6},
                                   {"us", 1e-3},
                                   {"micro", 1e-3},
                                   {"micros", 1e-3},
                                   {"microsecond", 1e-3},
                                   {"microseconds", 1e-3},
                                   {"min", 6e4},
                                   {"mins", 6e4},
                                   {"ms", 1},
                                   {"milli", 1},
                                   {"millis", 1},
                                   {"millisecond", 1},
                                   {"milliseconds", 1},
                                   {"s", 1e3},
                                   {"second", 1e3},
                                   {"seconds", 1e3},
                                   {"m", 6e4},
                                   {"minute", 6e4},
                                   {"minutes", 6e4},
                                   {"h", 3.6e6},
                                   {"hour", 3.6e6},
                                   {"hours", 3.6e6},
                                   {"d", 8.64e7},
                                   {"day", 8.64e7},
                                   {"days", 8.64e7},
                                   {NULL, 0}};

static const unit_t size_units[] = {
    {"B", 1},     {"b", 1},       {"byte", 1},    {"bytes", 1},
    {"k", 1024},  {"K", 1024},    {"KiB", 1024},  {"kB", 1000},
    {"KB", 1000}, {"m", 1 << 20}, {"M", 1 << 20}, {"MiB", 1 << 20},
    {"MB", 1e6},  {"g", 1 << 30}, {"G", 1 << 30}, {"GiB", 1 << 30},
    {"GB", 1e9},  {NULL, 0}};

static int parse_integer(const char *s, int64_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (end == s || *end || errno)
    return -1;
  *out = v;
  return 0;
}

/* --- mapping --- */

static void props_add(kwp_props_t *p, const char *key, const char *value) {
  for (size_t i = 0; i < p->count; i++) {
    if (!strcmp(p->items[i].key, key)) {
      free(p->items[i].value);
      p->items[i].value = strdup(value);
      return;
    }
  }
  kwp_kv_t *items = realloc(p->items, (p->count + 1) * sizeof(*items));
  if (!items)
    return;
  p->items = items;
  p->items[p->count].key = strdup(key);
  p->items[p->count++].value = strdup(value);
}

/* Flatten nested objects into dotted keys; nulls (unset) are skipped. */
static int props_flatten(const kwp_hnode_t *obj, const char *prefix,
                         kwp_props_t *p, const char *path, char *err,
                         size_t errlen) {
  char key[512];
  for (const kwp_hnode_t *k = obj->kids; k; k = k->next) {
    snprintf(key, sizeof(key), "%s%s%s", prefix, *prefix ? "." : "", k->key);
    if (k->type == KWP_H_OBJ) {
      if (props_flatten(k, key, p, path, err, errlen) != 0)
        return -1;
    } else if (k->type == KWP_H_STR) {
      props_add(p, key, k->str);
    } else if (k->type == KWP_H_ARR) {
      return bad(k, path, "a string value for a client property", err, errlen);
    }
  }
  return 0;
}

static int limit_number(const kwp_hnode_t *e, const char *name,
                        const char *path, int64_t *out, char *err,
                        size_t errlen) {
  const kwp_hnode_t *n = NULL;
  for (const kwp_hnode_t *k = e->kids; k; k = k->next)
    if (!strcmp(k->key, name))
      n = k;
  *out = -1;
  if (!n || n->type == KWP_H_NULL)
    return 0;
  if (n->type != KWP_H_STR || parse_integer(n->str, out) != 0 || *out < 0)
    return bad(n, path, "a non-negative integer", err, errlen);
  return 0;
}

static int map_limits(const kwp_hnode_t *n, const char *path, kwp_limits_t *l,
                      char *err, size_t errlen) {
  int consumer = !strncmp(path, "consumer", 8);
  const char *idkey = consumer ? "group-id" : "producer-id";
  char sub[128];
  const kwp_hnode_t *k;
#define LIMIT_NUM(field, name)                                                 \
  do {                                                                         \
    snprintf(sub, sizeof(sub), "%s." name, path);                              \
    if (limit_number(n, name, sub, &l->field, err, errlen) != 0)               \
      return -1;                                                               \
    if (l->field < 0)                                                          \
      l->field = 0;                                                            \
  } while (0)
  LIMIT_NUM(default_messages_per_second, "default-messages-per-second");
  LIMIT_NUM(default_max_connections_per_client,
            "default-max-connections-per-client");
  if (consumer)
    LIMIT_NUM(default_batch_size, "default-batch-size");
#undef LIMIT_NUM
  snprintf(sub, sizeof(sub), "%s.client-specific-limits", path);
  for (k = n->kids; k && strcmp(k->key, "client-specific-limits"); k = k->next)
    ;
  if (!k || k->type == KWP_H_NULL)
    return 0;
  if (k->type != KWP_H_ARR)
    return bad(k, sub, "a list of objects", err, errlen);
  for (const kwp_hnode_t *e = k->kids; e; e = e->next) {
    const kwp_hnode_t *id = NULL;
    if (e->type != KWP_H_OBJ)
      return bad(e, sub, "a list of objects", err, errlen);
    for (const kwp_hnode_t *f = e->kids; f; f = f->next)
      if (!strcmp(f->key, idkey) && f->type == KWP_H_STR)
        id = f;
    if (!id) {
      snprintf(err, errlen, "%s:%d: " ROOT "%s: every entry needs a '%s'",
               e->src, e->line, sub, idkey);
      return -1;
    }
    kwp_client_limit_t *cl = realloc(
        l->client_specific, (l->client_specific_count + 1) * sizeof(*cl));
    if (!cl)
      return -1;
    l->client_specific = cl;
    cl = &cl[l->client_specific_count++];
    memset(cl, 0, sizeof(*cl));
    cl->id = strdup(id->str);
    if (limit_number(e, "messages-per-second", sub, &cl->messages_per_second,
                     err, errlen) ||
        limit_number(e, "max-connections", sub, &cl->max_connections, err,
                     errlen) ||
        limit_number(e, "batch-size", sub, &cl->batch_size, err, errlen))
      return -1;
  }
  return 0;
}

static int map_scalar(const centry_t *e, const kwp_hnode_t *n, char *base,
                      char *err, size_t errlen) {
  char expect[128];
  double d;
  int64_t v;
  void *dst = base + e->off;
  if (n->type != KWP_H_STR)
    return bad(n, e->path, "a value", err, errlen);
  switch (e->type) {
  case T_STR:
    *(char **)dst = strdup(n->str);
    return 0;
  case T_BOOL:
    return parse_bool(n->str, (int *)dst) == 0
               ? 0
               : bad(n, e->path, "a boolean (true or false)", err, errlen);
  case T_INT:
  case T_I64:
  case T_COUNT:
    snprintf(expect, sizeof(expect), "an integer between %lld and %lld",
             (long long)e->min, (long long)e->max);
    if (parse_integer(n->str, &v) != 0 || v < e->min || v > e->max)
      return bad(n, e->path, expect, err, errlen);
    if (e->type == T_INT)
      *(int *)dst = (int)v;
    else if (e->type == T_COUNT)
      *(size_t *)dst = (size_t)v;
    else
      *(int64_t *)dst = v;
    return 0;
  case T_DUR:
    snprintf(expect, sizeof(expect),
             "a duration (e.g. 500ms, 30 seconds, 10 minutes)%s",
             e->min > 0 ? " greater than zero" : "");
    if (parse_with_unit(n->str, dur_units, 1, &d) != 0 || d < 0 ||
        d < (double)e->min || d > 9e15)
      return bad(n, e->path, expect, err, errlen);
    *(int64_t *)dst = (int64_t)d;
    return 0;
  case T_SIZE:
    snprintf(expect, sizeof(expect),
             "a size between %lld and %lld bytes (e.g. 64 KiB, 1 MiB)",
             (long long)e->min, (long long)e->max);
    if (parse_with_unit(n->str, size_units, 1, &d) != 0 || d < e->min ||
        d > e->max || d != (double)(int64_t)d)
      return bad(n, e->path, expect, err, errlen);
    *(size_t *)dst = (size_t)d;
    return 0;
  default:
    return -1;
  }
}

/* A section on @p path (below the root) that is set to something other
 * than an object: `server = 5` or `server = null` replaces the whole
 * section, built-in defaults included, and every key in it would read as
 * unset (the server then started on port 0 with no server-id and crashed). */
static int section_replaced(kwp_hnode_t *root, const char *path, char *err,
                            size_t errlen) {
  char sect[256];
  for (const char *dot = strchr(path, '.'); dot; dot = strchr(dot + 1, '.')) {
    char full[sizeof(ROOT) + sizeof(sect)];
    snprintf(sect, sizeof(sect), "%.*s", (int)(dot - path), path);
    snprintf(full, sizeof(full), ROOT "%s", sect);
    kwp_hnode_t *n = kwp_hocon_get(root, full);
    if (!n)
      return 0;
    if (n->type != KWP_H_OBJ)
      return bad(n, sect, "an object", err, errlen);
  }
  return 0;
}

/* A UTF-8 byte order mark, which some editors write, is not a syntax
 * error. */
static const char *skip_bom(const char *text) {
  return strncmp(text, "\xEF\xBB\xBF", 3) ? text : text + 3;
}

static int map_entry(kwp_config_t *cfg, kwp_hnode_t *root, const centry_t *e,
                     char *err, size_t errlen) {
  char full[256];
  snprintf(full, sizeof(full), ROOT "%s", e->path);
  if (section_replaced(root, e->path, err, errlen))
    return -1;
  kwp_hnode_t *n = kwp_hocon_get(root, full);
  char *base = (char *)cfg;
  if (!n || n->type == KWP_H_NULL)
    return 0; /* unset */
  if (e->type == T_PROPS || e->type == T_LIMITS) {
    if (n->type != KWP_H_OBJ)
      return bad(n, e->path, "an object", err, errlen);
    return e->type == T_PROPS
               ? props_flatten(n, "", (kwp_props_t *)(base + e->off), e->path,
                               err, errlen)
               : map_limits(n, e->path, (kwp_limits_t *)(base + e->off), err,
                            errlen);
  }
  return map_scalar(e, n, base, err, errlen);
}

/* --- validation --- */

static int require(const char *v, const char *key, const char *why, char *err,
                   size_t errlen) {
  if (v && *v)
    return 0;
  snprintf(err, errlen, ROOT "%s is required %s", key, why);
  return -1;
}

static int validate(const kwp_config_t *c, int dev_mode, char *err,
                    size_t errlen) {
  if (!dev_mode &&
      require(c->kafka_client.bootstrap_hosts, "kafka-client.bootstrap-hosts",
              "(set it in the config file or WSPROXY_KAFKA_BOOTSTRAP_HOSTS, "
              "or use --dev)",
              err, errlen))
    return -1;
  if (c->server.basic_auth.enabled &&
      (require(c->server.basic_auth.username, "server.basic-auth.username",
               "when basic-auth is enabled", err, errlen) ||
       require(c->server.basic_auth.password, "server.basic-auth.password",
               "when basic-auth is enabled", err, errlen) ||
       require(c->server.basic_auth.realm, "server.basic-auth.realm",
               "when basic-auth is enabled", err, errlen)))
    return -1;
  if (c->server.openid_connect.enabled) {
    /* Fail closed: started without it, the proxy would serve everyone. */
    snprintf(err, errlen,
             ROOT "server.openid-connect.enabled: OpenID Connect is not "
                  "available in this version; refusing to start unprotected "
                  "(use server.basic-auth, or leave it off)");
    return -1;
  }
  if (c->server.openid_connect.enabled &&
      (require(c->server.openid_connect.well_known_url,
               "server.openid-connect.well-known-url",
               "when openid-connect is enabled", err, errlen) ||
       require(c->server.openid_connect.audience,
               "server.openid-connect.audience",
               "when openid-connect is enabled", err, errlen)))
    return -1;
  if (c->server.ssl.enabled && !c->server.ssl.keystore_location) {
    snprintf(err, errlen,
             "SSL is configured but no keystore could be found (" ROOT
             "server.ssl.keystore-location)");
    return -1;
  }
  return 0;
}

/* Logging is configured from the environment only, as in the reference. */
static int log_level_env(const char *name, int dflt, int *out, char *err,
                         size_t errlen) {
  const char *v = getenv(name);
  *out = dflt;
  if (!v || !*v)
    return 0;
  if ((*out = kwp_log_level_parse(v)) < 0) {
    snprintf(err, errlen,
             "environment %s: expected TRACE, DEBUG, INFO, WARN, ERROR or "
             "OFF, got \"%s\"",
             name, v);
    return -1;
  }
  return 0;
}

static int log_config(kwp_config_t *c, char *err, size_t errlen) {
  const char *json = getenv("WS_PROXY_USE_JSON_LOG_FORMAT");
  if (json && *json && parse_bool(json, &c->log.json) != 0) {
    snprintf(err, errlen,
             "environment WS_PROXY_USE_JSON_LOG_FORMAT: expected true or "
             "false, got \"%s\"",
             json);
    return -1;
  }
  return log_level_env("WS_PROXY_APP_LOG_LEVEL", KWP_LOG_INFO, &c->log.level,
                       err, errlen) ||
                 log_level_env("WS_PROXY_KAFKA_CLIENTS_LOG_LEVEL", KWP_LOG_WARN,
                               &c->log.kafka_level, err, errlen)
             ? -1
             : 0;
}

/* --- loading --- */

kwp_config_t *kwp_config_load_string(const char *text, const char *name,
                                     int dev_mode, char *err, size_t errlen) {
  kwp_config_t *c = calloc(1, sizeof(*c));
  kwp_hnode_t *root = kwp_hocon_new_root();
  if (!c || !root) {
    snprintf(err, errlen, "out of memory");
    goto fail;
  }
  if (kwp_hocon_parse(root, kwp_config_defaults, "built-in defaults", err,
                      errlen) != 0 ||
      (text && kwp_hocon_parse(root, skip_bom(text), name, err, errlen) != 0) ||
      kwp_hocon_resolve(root, err, errlen) != 0)
    goto fail;
  for (size_t i = 0; i < NSCHEMA; i++)
    if (map_entry(c, root, &schema[i], err, errlen) != 0)
      goto fail;
  if (validate(c, dev_mode, err, errlen) != 0 ||
      log_config(c, err, errlen) != 0)
    goto fail;
  c->dev_mode = dev_mode;
  kwp_hocon_free(root);
  return c;
fail:
  kwp_hocon_free(root);
  kwp_config_free(c);
  return NULL;
}

static char *read_file(const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  size_t n = 0, cap = 0;
  if (!f) {
    snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
    return NULL;
  }
  for (;;) {
    if (n + 4096 + 1 > cap) {
      char *b = realloc(buf, cap = (cap + 4096) * 2);
      if (!b)
        break;
      buf = b;
    }
    size_t r = fread(buf + n, 1, cap - n - 1, f);
    n += r;
    if (r == 0)
      break;
  }
  int failed = ferror(f) || !buf || memchr(buf, 0, n);
  fclose(f);
  if (failed) {
    snprintf(err, errlen, "cannot read %s: not a text file", path);
    free(buf);
    return NULL;
  }
  buf[n] = 0;
  return buf;
}

kwp_config_t *kwp_config_load(const char *path, int dev_mode, char *err,
                              size_t errlen) {
  char *text = NULL;
  if (path && !(text = read_file(path, err, errlen)))
    return NULL;
  kwp_config_t *c = kwp_config_load_string(text, path, dev_mode, err, errlen);
  free(text);
  return c;
}

/* --- printing --- */

static int is_secret_key(const char *k) {
  static const char *words[] = {"password", "jaas", "pass", "secret",
                                "user.info"};
  for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
    if (strstr(k, words[i]))
      return 1;
  return 0;
}

static void print_quoted(FILE *out, const char *s);

/* A string value; a secret masked, and so is the user info of a URL
 * (scheme://user:password@host). */
static void print_str(FILE *out, const centry_t *e, const char *s) {
  const char *scheme = strstr(s, "://");
  const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
  const char *slash = scheme ? strchr(scheme + 3, '/') : NULL;
  if (e->secret) {
    print_quoted(out, "********");
  } else if (at && (!slash || at < slash)) {
    char buf[512];
    snprintf(buf, sizeof(buf), "%.*s********%s", (int)(scheme + 3 - s), s, at);
    print_quoted(out, buf);
  } else {
    print_quoted(out, s);
  }
}

static void print_quoted(FILE *out, const char *s) {
  fputc('"', out);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\')
      fputc('\\', out);
    if (*s == '\n')
      fputs("\\n", out);
    else
      fputc(*s, out);
  }
  fputc('"', out);
}

static void print_limits(FILE *out, const char *path, const kwp_limits_t *l) {
  int consumer = !strncmp(path, "consumer", 8);
  fprintf(out, ROOT "%s.default-messages-per-second = %lld\n", path,
          (long long)l->default_messages_per_second);
  fprintf(out, ROOT "%s.default-max-connections-per-client = %lld\n", path,
          (long long)l->default_max_connections_per_client);
  if (consumer)
    fprintf(out, ROOT "%s.default-batch-size = %lld\n", path,
            (long long)l->default_batch_size);
  fprintf(out, ROOT "%s.client-specific-limits = [", path);
  for (size_t i = 0; i < l->client_specific_count; i++) {
    const kwp_client_limit_t *cl = &l->client_specific[i];
    fprintf(out, "%s{ %s = ", i ? ", " : "",
            consumer ? "group-id" : "producer-id");
    print_quoted(out, cl->id);
    if (cl->messages_per_second >= 0)
      fprintf(out, ", messages-per-second = %lld",
              (long long)cl->messages_per_second);
    if (cl->max_connections >= 0)
      fprintf(out, ", max-connections = %lld", (long long)cl->max_connections);
    if (consumer && cl->batch_size >= 0)
      fprintf(out, ", batch-size = %lld", (long long)cl->batch_size);
    fputs(" }", out);
  }
  fputs("]\n", out);
}

static void print_entry(FILE *out, const kwp_config_t *c, const centry_t *e) {
  const char *base = (const char *)c;
  const void *p = base + e->off;
  if (e->type == T_PROPS) {
    const kwp_props_t *pr = p;
    fprintf(out, ROOT "%s {\n", e->path);
    for (size_t i = 0; i < pr->count; i++) {
      fprintf(out, "  \"%s\" = ", pr->items[i].key);
      print_quoted(out, is_secret_key(pr->items[i].key) ? "********"
                                                        : pr->items[i].value);
      fputc('\n', out);
    }
    fputs("}\n", out);
    return;
  }
  if (e->type == T_LIMITS) {
    print_limits(out, e->path, p);
    return;
  }
  if (e->type == T_STR && !*(char *const *)p)
    return; /* unset */
  fprintf(out, ROOT "%s = ", e->path);
  switch (e->type) {
  case T_STR:
    print_str(out, e, *(char *const *)p);
    break;
  case T_BOOL:
    fputs(*(const int *)p ? "true" : "false", out);
    break;
  case T_INT:
    fprintf(out, "%d", *(const int *)p);
    break;
  case T_I64:
    fprintf(out, "%lld", (long long)*(const int64_t *)p);
    break;
  case T_DUR:
    fprintf(out, "%lldms", (long long)*(const int64_t *)p);
    break;
  default:
    fprintf(out, "%zu", *(const size_t *)p);
  }
  fputc('\n', out);
}

void kwp_config_print(const kwp_config_t *cfg, FILE *out) {
  fputs("# kafka-ws-proxy effective configuration (secrets masked)\n", out);
  for (size_t i = 0; i < NSCHEMA; i++)
    if (!(schema[i].type == T_INT && schema[i].off == F(server.ssl.port) &&
          cfg->server.ssl.port == 0))
      print_entry(out, cfg, &schema[i]);
}

/* --- freeing --- */

static void props_free(kwp_props_t *p) {
  for (size_t i = 0; i < p->count; i++) {
    free(p->items[i].key);
    free(p->items[i].value);
  }
  free(p->items);
}

static void limits_free(kwp_limits_t *l) {
  for (size_t i = 0; i < l->client_specific_count; i++)
    free(l->client_specific[i].id);
  free(l->client_specific);
}

void kwp_config_free(kwp_config_t *cfg) {
  if (!cfg)
    return;
  char *base = (char *)cfg;
  for (size_t i = 0; i < NSCHEMA; i++) {
    void *p = base + schema[i].off;
    if (schema[i].type == T_STR)
      free(*(char **)p);
    else if (schema[i].type == T_PROPS)
      props_free(p);
    else if (schema[i].type == T_LIMITS)
      limits_free(p);
  }
  free(cfg);
}

const char *kwp_props_get(const kwp_props_t *props, const char *key) {
  for (size_t i = 0; i < props->count; i++)
    if (!strcmp(props->items[i].key, key))
      return props->items[i].value;
  return NULL;
}

const kwp_client_limit_t *kwp_limits_find(const kwp_limits_t *l,
                                          const char *id) {
  for (size_t i = 0; i < l->client_specific_count; i++)
    if (!strcmp(l->client_specific[i].id, id))
      return &l->client_specific[i];
  return NULL;
}
