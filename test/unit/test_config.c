/* Configuration: HOCON syntax, defaults, environment overrides, typed values,
 * error messages with file/line/key, and the print/re-load round trip. */
#include "core/base/log.h"
#include "core/config/config.h"
#include "test/unit/unit.h"

#include <stdlib.h>

static kwp_config_t *load(const char *text, char *err) {
  return kwp_config_load_string(text, "test.conf", 1, err, 512);
}

static void load_fails(const char *text, const char *want) {
  char err[512] = "";
  kwp_config_t *c = load(text, err);
  if (c)
    kwp_config_free(c);
  ASSERT(c == NULL);
  if (!strstr(err, want))
    fprintf(stderr, "  error was: %s\n", err);
  ASSERT(strstr(err, want) != NULL);
}

KWP_TEST(config_defaults) {
  char err[512];
  kwp_config_t *c = load(NULL, err);
  ASSERT(c != NULL);
  ASSERT_STREQ(c->server.server_id, "node-1");
  ASSERT_STREQ(c->server.bind_interface, "0.0.0.0");
  ASSERT_EQ(c->server.port, 8078);
  ASSERT_EQ(c->server.admin.port, 9078);
  ASSERT_STREQ(c->server.admin.bind_interface, "0.0.0.0");
  ASSERT_EQ(c->server.max_message_size, 1048576);
  ASSERT_EQ(c->server.request_timeout_ms, 20000);
  ASSERT_EQ(c->server.openid_connect.revalidation_interval_ms, 600000);
  ASSERT_EQ(c->server.echo_endpoint_enabled, 0);
  ASSERT_STREQ(c->session_handler.topic_name, "_wsproxy.session.state");
  ASSERT_EQ(c->session_handler.topic_retention_ms, 30LL * 86400 * 1000);
  ASSERT_EQ(c->commit_handler.max_stack_size, 100);
  ASSERT_EQ(c->producer.delivery_timeout_ms, 120000);
  ASSERT_EQ(c->consumer.pause_after_ms, 2000);
  ASSERT_STREQ(kwp_props_get(&c->kafka_client.properties, "retries"),
               "2147483647");
  ASSERT(c->kafka_client.bootstrap_hosts == NULL);
  kwp_config_free(c);
}

KWP_TEST(config_syntax_features) {
  char err[512];
  kwp_config_t *c = load("# comment\n"
                         "kafka.ws.proxy {\n"
                         "  server {\n"
                         "    port: 9000 // trailing comment\n"
                         "    server-id = \"n 2\"\n"
                         "    request-timeout = 1500ms, idle-timeout = 2 min\n"
                         "  }\n"
                         "  server.max-message-size = 64 KiB\n"
                         "  kafka-client { bootstrap-hosts = \"a:1,b:2\" }\n"
                         "  producer.limits.client-specific-limits = [\n"
                         "    { producer-id = p1, messages-per-second = 5 }\n"
                         "    { producer-id = \"p2\", max-connections = 3 }\n"
                         "  ]\n"
                         "}\n"
                         "kafka.ws.proxy.server.port = 9001\n",
                         err);
  if (!c)
    fprintf(stderr, "  %s\n", err);
  ASSERT(c != NULL);
  ASSERT_EQ(c->server.port, 9001); /* later definitions win */
  ASSERT_STREQ(c->server.server_id, "n 2");
  ASSERT_EQ(c->server.request_timeout_ms, 1500);
  ASSERT_EQ(c->server.idle_timeout_ms, 120000);
  ASSERT_EQ(c->server.max_message_size, 65536);
  ASSERT_STREQ(c->server.bind_interface, "0.0.0.0"); /* object merged */
  ASSERT_STREQ(c->kafka_client.bootstrap_hosts, "a:1,b:2");
  ASSERT_EQ(c->producer.limits.client_specific_count, 2);
  ASSERT_STREQ(c->producer.limits.client_specific[0].id, "p1");
  ASSERT_EQ(c->producer.limits.client_specific[0].messages_per_second, 5);
  ASSERT_EQ(c->producer.limits.client_specific[0].max_connections, -1);
  ASSERT_EQ(c->producer.limits.client_specific[1].max_connections, 3);
  kwp_config_free(c);
}

KWP_TEST(config_env_overrides) {
  char err[512];
  setenv("WSPROXY_PORT", "7001", 1);
  setenv("WSPROXY_MAX_MESSAGE_SIZE", "2 MiB", 1);
  setenv("WSPROXY_KAFKA_CONSUMER_REQUEST_TIMEOUT_MS", "777", 1);
  setenv("WSPROXY_CONSUMER_PAUSE_AFTER", "10 minutes", 1);
  kwp_config_t *c = load("kafka.ws.proxy.server.port = 7000\n", err);
  unsetenv("WSPROXY_PORT");
  unsetenv("WSPROXY_MAX_MESSAGE_SIZE");
  unsetenv("WSPROXY_KAFKA_CONSUMER_REQUEST_TIMEOUT_MS");
  unsetenv("WSPROXY_CONSUMER_PAUSE_AFTER");
  ASSERT(c != NULL);
  ASSERT_EQ(c->consumer.pause_after_ms, 600000);
  /* A plain value in the user's file replaces the ${?ENV} line. */
  ASSERT_EQ(c->server.port, 7000);
  ASSERT_EQ(c->server.max_message_size, 2 * 1048576);
  ASSERT_STREQ(
      kwp_props_get(&c->consumer.kafka_client_properties, "request.timeout.ms"),
      "777");
  ASSERT_STREQ(
      kwp_props_get(&c->producer.kafka_client_properties, "request.timeout.ms"),
      "30000");
  kwp_config_free(c);
  setenv("WSPROXY_PORT", "7002", 1);
  c = load("kafka.ws.proxy.server.port = 7000\n"
           "kafka.ws.proxy.server.port = ${?WSPROXY_PORT}\n",
           err);
  unsetenv("WSPROXY_PORT");
  ASSERT(c != NULL);
  ASSERT_EQ(c->server.port, 7002);
  kwp_config_free(c);
}

/* Regression: a chain of two ${?ENV} overrides where the older variable is
 * set leaked the variable's name (caught by LeakSanitizer). */
KWP_TEST(config_env_override_chain) {
  char err[512];
  setenv("WSPROXY_KAFKA_SASL_ENDPOINT_ID_ALOGO", "https", 1);
  kwp_config_t *c = load(NULL, err);
  ASSERT(c != NULL);
  ASSERT_STREQ(kwp_props_get(&c->kafka_client.properties,
                             "ssl.endpoint.identification.algorithm"),
               "https");
  kwp_config_free(c);
  setenv("WSPROXY_KAFKA_SASL_ENDPOINT_ID_ALGO", "none", 1);
  c = load(NULL, err);
  unsetenv("WSPROXY_KAFKA_SASL_ENDPOINT_ID_ALOGO");
  unsetenv("WSPROXY_KAFKA_SASL_ENDPOINT_ID_ALGO");
  ASSERT(c != NULL);
  ASSERT_STREQ(kwp_props_get(&c->kafka_client.properties,
                             "ssl.endpoint.identification.algorithm"),
               "none"); /* the later line wins */
  kwp_config_free(c);
}

KWP_TEST(config_props_inherit) {
  char err[512];
  kwp_config_t *c = load("kafka.ws.proxy.kafka-client.properties {\n"
                         "  compression.codec = lz4\n"
                         "  retries = 5\n"
                         "}\n"
                         "kafka.ws.proxy.producer.kafka-client-properties = "
                         "${kafka.ws.proxy.kafka-client.properties} {\n"
                         "  retries = 9\n"
                         "}\n",
                         err);
  ASSERT(c != NULL);
  ASSERT_STREQ(
      kwp_props_get(&c->consumer.kafka_client_properties, "compression.codec"),
      "lz4");
  ASSERT_STREQ(
      kwp_props_get(&c->admin_client.kafka_client_properties, "retries"), "5");
  ASSERT_STREQ(kwp_props_get(&c->producer.kafka_client_properties, "retries"),
               "9");
  kwp_config_free(c);
}

/* server.lingering-timeout: how long a connection the proxy ends may live
 * (5 s by default, WSPROXY_LINGERING_TIMEOUT, greater than zero). */
KWP_TEST(config_lingering_timeout) {
  char err[512];
  kwp_config_t *c = load(NULL, err);
  ASSERT(c != NULL);
  ASSERT_EQ(c->server.lingering_timeout_ms, 5000);
  kwp_config_free(c);
  c = load("kafka.ws.proxy.server.lingering-timeout = 1500ms\n", err);
  ASSERT(c != NULL);
  ASSERT_EQ(c->server.lingering_timeout_ms, 1500);
  kwp_config_free(c);
  setenv("WSPROXY_LINGERING_TIMEOUT", "30 seconds", 1);
  c = load(NULL, err);
  unsetenv("WSPROXY_LINGERING_TIMEOUT");
  ASSERT(c != NULL);
  ASSERT_EQ(c->server.lingering_timeout_ms, 30000);
  kwp_config_free(c);
  load_fails("kafka.ws.proxy.server.lingering-timeout = 0\n",
             "kafka.ws.proxy.server.lingering-timeout: expected a duration "
             "(e.g. 500ms, 30 seconds, 10 minutes) greater than zero");
}

/* 50,000 levels of braces overflowed the stack; a limit now says so. */
static void load_nested(int depth, const char *want) {
  size_t n = (size_t)depth * 4 + 16;
  char *text = malloc(n), *p = text;
  ASSERT(text != NULL);
  for (int i = 0; i < depth; i++)
    p += sprintf(p, "a {");
  for (int i = 0; i < depth; i++)
    *p++ = '}';
  *p = 0;
  char err[512];
  kwp_config_t *cfg = kwp_config_load_string(text, "test.conf", 1, err, 512);
  free(text);
  if (want) {
    ASSERT(cfg == NULL);
    ASSERT(strstr(err, want) != NULL);
  } else {
    ASSERT(cfg != NULL);
    kwp_config_free(cfg);
  }
}

KWP_TEST(config_nesting_is_bounded) {
  load_nested(200, NULL);
  load_nested(50000, "nested deeper than 256 levels");
}

/* A byte order mark was "syntax error: expected a key" at 1:1. */
KWP_TEST(config_file_may_start_with_a_bom) {
  char err[512];
  kwp_config_t *cfg =
      kwp_config_load_string("\xEF\xBB\xBFkafka.ws.proxy.server.port = 9099\n",
                             "test.conf", 1, err, sizeof(err));
  ASSERT(cfg != NULL);
  ASSERT_EQ(cfg->server.port, 9099);
  kwp_config_free(cfg);
}

KWP_TEST(config_errors_name_key_and_line) {
  load_fails("kafka.ws.proxy {\n  server.port = \"abc\"\n}\n",
             "test.conf:2: kafka.ws.proxy.server.port: expected an integer "
             "between 1 and 65535, got \"abc\"");
  load_fails("kafka.ws.proxy.server.request-timeout = 5 fortnights\n",
             "test.conf:1: kafka.ws.proxy.server.request-timeout: expected a "
             "duration");
  load_fails("kafka.ws.proxy.server.echo-endpoint-enabled = maybe\n",
             "expected a boolean");
  load_fails("\n\nkafka.ws.proxy.server { port 8080 }\n",
             "test.conf:3:30: syntax error: expected '=' or ':' after key "
             "\"port\"");
  load_fails("a = = b\n", "test.conf:1:5: syntax error");
  load_fails("a = {\n", "missing '}'");
  /* a section replaced by a scalar or null loses its defaults: it was read
   * as all unset (port 0, no server-id) and the server crashed */
  load_fails(
      "kafka.ws.proxy.server = 5\n",
      "test.conf:1: kafka.ws.proxy.server: expected an object, got \"5\"");
  load_fails("kafka.ws.proxy.session-handler = null\n",
             "kafka.ws.proxy.session-handler: expected an object, got "
             "\"null\"");
  load_fails("a = \"open\n", "unterminated string");
  load_fails("include \"x.conf\"\n", "include is not supported");
  load_fails("a = ${no.such.path}\n", "substitution ${no.such.path} is not "
                                      "defined");
  load_fails("kafka.ws.proxy.server.max-message-size = 0\n",
             "kafka.ws.proxy.server.max-message-size: expected a size");
  setenv("WSPROXY_PORT", "x", 1);
  load_fails("", "environment WSPROXY_PORT (kafka.ws.proxy.server.port): "
                 "expected an integer");
  unsetenv("WSPROXY_PORT");
}

/* Counts were read as sizes: "1k" meant 1024 connections, and a bad value
 * was "expected a size between 1 and 10000000 bytes". */
KWP_TEST(config_counts_are_plain_integers) {
  char err[512];
  load_fails("kafka.ws.proxy.server.max-connections = 1k\n",
             "kafka.ws.proxy.server.max-connections: expected an integer "
             "between 1 and 10000000, got \"1k\"");
  load_fails("kafka.ws.proxy.server.max-header-count = 1 KiB\n",
             "expected an integer between 1 and 10000");
  load_fails("kafka.ws.proxy.producer.max-inflight-messages = 2.5\n",
             "expected an integer between 1 and 100000");
  load_fails("kafka.ws.proxy.producer.transaction-max-messages = 0\n",
             "kafka.ws.proxy.producer.transaction-max-messages: expected an "
             "integer between 1 and 100000, got \"0\"");
  kwp_config_t *c = kwp_config_load_string(
      "kafka.ws.proxy.server.max-connections = 1500\n"
      "kafka.ws.proxy.producer.max-inflight-messages = 64\n",
      "test.conf", 1, err, sizeof(err));
  ASSERT(c != NULL);
  ASSERT_EQ(c->server.max_connections, 1500);
  ASSERT_EQ(c->producer.max_inflight_messages, 64);
  kwp_config_free(c);
}

KWP_TEST(config_bootstrap_required_outside_dev_mode) {
  char err[512];
  kwp_config_t *c = kwp_config_load_string("", "x", 0, err, sizeof(err));
  ASSERT(c == NULL);
  ASSERT(
      strstr(err, "kafka.ws.proxy.kafka-client.bootstrap-hosts is required"));
  c = kwp_config_load_string(
      "kafka.ws.proxy.kafka-client.bootstrap-hosts = \"k:9092\"", "x", 0, err,
      sizeof(err));
  ASSERT(c != NULL);
  kwp_config_free(c);
  ASSERT(kwp_config_load("/nonexistent/app.conf", 1, err, sizeof(err)) == NULL);
  ASSERT(strstr(err, "cannot read /nonexistent/app.conf"));
}

KWP_TEST(config_cross_key_rules) {
  load_fails("kafka.ws.proxy.server.basic-auth.enabled = true\n",
             "server.basic-auth.username is required");
  /* not built yet: refused rather than run unprotected */
  load_fails("kafka.ws.proxy.server.openid-connect.enabled = true\n",
             "refusing to start unprotected");
  load_fails("kafka.ws.proxy.server.ssl.enabled = true\n",
             "SSL is configured but no keystore could be found");
}

KWP_TEST(config_log_env) {
  char err[512];
  setenv("WS_PROXY_USE_JSON_LOG_FORMAT", "true", 1);
  setenv("WS_PROXY_APP_LOG_LEVEL", "debug", 1);
  kwp_config_t *c = load(NULL, err);
  ASSERT(c != NULL);
  ASSERT_EQ(c->log.json, 1);
  ASSERT_EQ(c->log.level, KWP_LOG_DEBUG);
  ASSERT_EQ(c->log.kafka_level, KWP_LOG_WARN);
  kwp_config_free(c);
  setenv("WS_PROXY_APP_LOG_LEVEL", "loud", 1);
  load_fails(NULL, "environment WS_PROXY_APP_LOG_LEVEL");
  unsetenv("WS_PROXY_APP_LOG_LEVEL");
  unsetenv("WS_PROXY_USE_JSON_LOG_FORMAT");
}

KWP_TEST(config_print_round_trip) {
  char err[512], *buf = NULL;
  size_t len = 0;
  kwp_config_t *c = load("kafka.ws.proxy.server.port = 9100\n"
                         "kafka.ws.proxy.server.basic-auth.password = s3cret\n"
                         "kafka.ws.proxy.consumer.limits.client-specific-"
                         "limits = [{group-id = g, batch-size = 7}]\n",
                         err);
  ASSERT(c != NULL);
  FILE *f = open_memstream(&buf, &len);
  kwp_config_print(c, f);
  fclose(f);
  ASSERT(strstr(buf, "s3cret") == NULL);
  kwp_config_t *c2 = load(buf, err);
  if (!c2)
    fprintf(stderr, "  %s\n", err);
  ASSERT(c2 != NULL);
  ASSERT_EQ(c2->server.port, 9100);
  ASSERT_EQ(c2->server.request_timeout_ms, c->server.request_timeout_ms);
  ASSERT_EQ(c2->consumer.limits.client_specific[0].batch_size, 7);
  ASSERT_EQ(c2->kafka_client.properties.count,
            c->kafka_client.properties.count);
  kwp_config_free(c);
  kwp_config_free(c2);
  free(buf);
}

KWP_TEST(config_example_file_loads) {
  char err[512];
  kwp_config_t *c =
      kwp_config_load("application.conf.example", 1, err, sizeof(err));
  if (!c)
    fprintf(stderr, "  %s\n", err);
  ASSERT(c != NULL);
  ASSERT_EQ(c->server.port, 8078);
  ASSERT_EQ(c->consumer.pause_after_ms, 2000);
  kwp_config_free(c);
}

/* Regression: a user's consumer/producer kafka-client-properties block must
 * merge over the inherited `${kafka-client.properties} {..}` value, not
 * replace it (security settings were silently dropped). */
KWP_TEST(config_client_properties_block_merges) {
  char err[512];
  kwp_config_t *cfg = kwp_config_load_string(
      "kafka.ws.proxy {\n"
      "  kafka-client.bootstrap-hosts = \"h:9092\"\n"
      "  kafka-client.properties { security.protocol = \"SSL\" }\n"
      "  consumer.kafka-client-properties { debug = \"fetch\" }\n"
      "  consumer.kafka-client-properties { client.rack = \"r1\" }\n"
      "  producer.kafka-client-properties { linger.ms = \"5\" }\n"
      "}\n",
      "t.conf", 0, err, sizeof(err));
  ASSERT(cfg != NULL);
  const kwp_props_t *c = &cfg->consumer.kafka_client_properties;
  ASSERT_STREQ(kwp_props_get(c, "security.protocol"), "SSL");
  ASSERT_STREQ(kwp_props_get(c, "debug"), "fetch");
  ASSERT_STREQ(kwp_props_get(c, "client.rack"), "r1");
  ASSERT_STREQ(kwp_props_get(c, "request.timeout.ms"), "30000");
  const kwp_props_t *p = &cfg->producer.kafka_client_properties;
  ASSERT_STREQ(kwp_props_get(p, "security.protocol"), "SSL");
  ASSERT_STREQ(kwp_props_get(p, "linger.ms"), "5");
  kwp_config_free(cfg);
}
