/* kafka-ws-proxy: command line, configuration, and the server's lifetime. */
#include "codec/avro/schemas.h"
#include "core/base/log.h"
#include "core/config/config.h"
#include "core/kafka/kafka.h"
#include "core/net/server.h"
#include "session/session.h"

#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define KWP_VERSION "0.1.0"

static void usage(FILE *out) {
  fprintf(out,
          "usage: kafka-ws-proxy [--config FILE] [--dev] [--print-config]\n"
          "\n"
          "  --config FILE   HOCON configuration (kafka.ws.proxy.*); without\n"
          "                  it: built-in defaults and WSPROXY_* variables\n"
          "  --dev           dev mode: start an in-process Kafka-protocol\n"
          "                  cluster (3 brokers, nothing durable) and use it\n"
          "  --print-config  print the effective configuration and exit\n"
          "  --version       print the version and exit\n");
}

typedef struct args {
  const char *config;
  int dev, print;
} args_t;

static int parse_args(int argc, char **argv, args_t *a) {
  for (int i = 1; i < argc; i++) {
    if ((!strcmp(argv[i], "--config") && i + 1 == argc) ||
        !strcmp(argv[i], "--config=")) {
      fprintf(stderr, "kafka-ws-proxy: --config needs a file name\n");
      return -1;
    } else if (!strcmp(argv[i], "--config")) {
      a->config = argv[++i];
    } else if (!strncmp(argv[i], "--config=", 9)) {
      a->config = argv[i] + 9;
    } else if (!strcmp(argv[i], "--dev")) {
      a->dev = 1;
    } else if (!strcmp(argv[i], "--print-config")) {
      a->print = 1;
    } else if (!strcmp(argv[i], "--version")) {
      printf("kafka-ws-proxy %s (librdkafka %s, libuv %s)\n", KWP_VERSION,
             rd_kafka_version_str(), uv_version_string());
      exit(0);
    } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      exit(0);
    } else {
      fprintf(stderr, "kafka-ws-proxy: unknown argument '%s'\n", argv[i]);
      usage(stderr);
      return -1;
    }
  }
  return 0;
}

/* schema-registry.auto-register-schemas: the wrapper schemas of
 * socketPayload=avro go to the registry, each under its full record name,
 * so that tools that read through the registry know them. Before the
 * workers start, on a loop of its own; a registry that does not answer
 * costs at most its request timeout and a warning. */
static void registered(void *arg, int err, const kwp_schema_t *sch,
                       const char *message) {
  const char *subject = arg;
  if (err)
    KWP_LOG(KWP_LOG_WARN, "registry", "registering %s: %s", subject, message);
  else
    KWP_LOG(KWP_LOG_INFO, "registry", "registered %s as schema %d", subject,
            sch->id);
}

static void register_wrappers(kwp_registry_t *reg) {
  static char subjects[8][128];
  uv_loop_t loop;
  const kwp_avro_schema_doc_t *d;
  if (uv_loop_init(&loop) != 0)
    return;
  for (size_t i = 0; (d = kwp_avro_schema_at(i)) && i < 8; i++) {
    if (i && !strcmp(d->name, kwp_avro_schema_at(i - 1)->name))
      continue; /* AvroCommit is served at two paths */
    snprintf(subjects[i], sizeof(subjects[i]),
             "net.scalytica.kafka.wsproxy.avro.%s", d->name);
    if (kwp_registry_register(reg, &loop, subjects[i], d->text, registered,
                              subjects[i]) != 0)
      KWP_LOG(KWP_LOG_WARN, "registry", "registering %s: out of memory",
              subjects[i]);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
}

int main(int argc, char **argv) {
  args_t a = {0};
  char err[1024];
  if (parse_args(argc, argv, &a) != 0)
    return 2;
  kwp_config_t *cfg = kwp_config_load(a.config, a.dev, err, sizeof(err));
  if (!cfg) {
    fprintf(stderr, "kafka-ws-proxy: configuration error: %s\n", err);
    return 1;
  }
  cfg->dev_mode = a.dev;
  if (a.print) {
    kwp_config_print(cfg, stdout);
    kwp_config_free(cfg);
    return 0;
  }
  kwp_log_init(cfg->log.level, cfg->log.json);
  signal(SIGPIPE, SIG_IGN);
  KWP_LOG(KWP_LOG_INFO, "main", "kafka-ws-proxy %s starting (server-id %s)",
          KWP_VERSION, cfg->server.server_id);
  kwp_kafka_t *kafka = kwp_kafka_new(cfg, err, sizeof(err));
  if (!kafka) {
    KWP_LOG(KWP_LOG_ERROR, "kafka", "cannot start: %s", err);
    kwp_config_free(cfg);
    return 1;
  }
  /* Replays the session state on its own thread; WebSocket upgrades wait
   * for it (503 until /ready says so). */
  kwp_session_t *session = kwp_session_start(cfg, kafka, err, sizeof(err));
  if (!session) {
    KWP_LOG(KWP_LOG_ERROR, "session", "cannot start: %s", err);
    kwp_kafka_free(kafka);
    kwp_config_free(cfg);
    return 1;
  }
  kwp_registry_t *registry = NULL;
  const char *sr_url = cfg->kafka_client.schema_registry.url;
  if (sr_url && *sr_url) {
    registry =
        kwp_registry_new(sr_url, &cfg->kafka_client.schema_registry.properties,
                         err, sizeof(err));
    if (!registry) {
      KWP_LOG(KWP_LOG_ERROR, "registry", "cannot start: %s", err);
      kwp_session_stop(session);
      kwp_kafka_free(kafka);
      kwp_config_free(cfg);
      return 1;
    }
    KWP_LOG(KWP_LOG_INFO, "registry", "schema registry at %s",
            kwp_registry_url(registry));
    if (cfg->kafka_client.schema_registry.auto_register_schemas)
      register_wrappers(registry);
  }
  kwp_auth_t *auth = kwp_auth_new(cfg);
  kwp_ctx_t *ctx =
      auth ? kwp_ctx_new(cfg, kafka, kwp_session_admission(session)) : NULL;
  if (ctx) {
    kwp_ctx_set_registry(ctx, registry);
    kwp_ctx_set_auth(ctx, auth);
  }
  kwp_server_t *srv = ctx ? kwp_server_new(ctx, err, sizeof(err)) : NULL;
  int rc = 1;
  if (!ctx) {
    KWP_LOG(KWP_LOG_ERROR, "main", "cannot start: out of memory");
  } else if (!srv) {
    KWP_LOG(KWP_LOG_ERROR, "main", "cannot start: %s", err);
  } else {
    rc = kwp_server_run(srv);
    kwp_server_free(srv);
  }
  if (kwp_session_fatal(session))
    rc = 1; /* a duplicate server-id or no state topic: logged already */
  kwp_session_stop(session);
  kwp_registry_free(registry);
  kwp_auth_free(auth);
  kwp_kafka_free(kafka);
  kwp_config_free(cfg);
  kwp_ctx_free(ctx);
  return rc;
}
