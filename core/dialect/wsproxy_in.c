/* kafka-websocket-proxy's producer socket, GET /socket/in: its query
 * parameters (clientId, topic, socketPayload, keyType, valType, instanceId,
 * transactional), checked and worded as the reference does, over the
 * produce path (core/produce/produce.h). Worker thread. */
#include "core/base/error.h"
#include "core/dialect/dialect.h"
#include "core/endpoint/params.h"
#include "core/net/query.h"
#include "core/produce/produce.h"

#include <stdio.h>

typedef struct in_params {
  char client_id[KWP_PARAM_MAX], topic[KWP_PARAM_MAX];
  char instance_id[KWP_PARAM_MAX];
  kwp_produce_conf_t pc;
} in_params_t;

static int transactional_param(const kwp_config_t *cfg, in_params_t *p,
                               const char *url, int *err, char *msg,
                               size_t msglen) {
  char v[KWP_PARAM_MAX];
  int r = kwp_param(url, "transactional", v, err, msg, msglen);
  if (r < 0)
    return -1;
  int tx = r > 0 ? kwp_query_bool(v) : 0;
  *err = KWP_EBADREQ;
  if (tx < 0) {
    snprintf(msg, msglen, "'%s' is not a valid boolean value", v);
    return -1;
  }
  if (tx &&
      !(cfg->producer.sessions_enabled && cfg->producer.exactly_once_enabled)) {
    snprintf(msg, msglen,
             "Unable to provide transactional producer. Server "
             "is not configured to allow producer transactions.");
    return -1;
  }
  if (tx && !*p->instance_id) {
    snprintf(msg, msglen,
             "Request param 'instanceId' is required when using "
             "transactional.");
    return -1;
  }
  p->pc.transactional = tx;
  if (cfg->producer.sessions_enabled && !*p->instance_id) {
    snprintf(msg, msglen,
             "Request param 'instanceId' is required when "
             "producer sessions are enabled on the proxy server.");
    return -1;
  }
  return 0;
}

static int writable(const kwp_config_t *cfg, const char *topic, int *err,
                    char *msg, size_t msglen) {
  *err = kwp_produce_topic_writable(cfg, topic, msg, msglen);
  return *err ? -1 : 0;
}

static int in_parse(kwp_upgrade_t *up, const char *url, void **state, char *msg,
                    size_t msglen) {
  kwp_worker_t *wk = kwp_upgrade_worker(up);
  const kwp_config_t *cfg = kwp_worker_cfg(wk);
  in_params_t p = {.pc = {.val_fmt = KWP_FMT_STRING}};
  int registry = kwp_worker_registry(wk) != NULL;
  int err = KWP_EBADREQ;
  if (kwp_param_required(url, "clientId", p.client_id, &err, msg, msglen) < 0 ||
      kwp_param_topic(url, p.topic, &err, msg, msglen) < 0 ||
      writable(cfg, p.topic, &err, msg, msglen) < 0 ||
      kwp_param_payload(url, &p.pc.fmt, &err, msg, msglen) < 0 ||
      kwp_param_format(url, "keyType", &p.pc.key_fmt, &err, msg, msglen) < 0 ||
      kwp_param_format(url, "valType", &p.pc.val_fmt, &err, msg, msglen) < 0 ||
      kwp_param_schema(url, "key", p.pc.key_fmt, p.pc.fmt, registry, p.topic,
                       &p.pc.key_schema, &err, msg, msglen) < 0 ||
      kwp_param_schema(url, "val", p.pc.val_fmt, p.pc.fmt, registry, p.topic,
                       &p.pc.val_schema, &err, msg, msglen) < 0 ||
      kwp_param(url, "instanceId", p.instance_id, &err, msg, msglen) < 0 ||
      transactional_param(cfg, &p, url, &err, msg, msglen) < 0)
    return err;
  p.pc.client_id = p.client_id;
  p.pc.topic = p.topic;
  p.pc.instance_id = p.instance_id;
  if (!(*state = kwp_produce_new(wk, &p.pc))) {
    snprintf(msg, msglen, "Internal server error");
    return KWP_ENOMEM;
  }
  return 0;
}

static const char *const in_paths[] = {"/socket/in", NULL};

const kwp_endpoint_t kwp_dialect_wsproxy_in = {
    .name = "produce",
    .paths = in_paths,
    .parse = in_parse,
    .topic = kwp_produce_topic,
    .topic_missing = "Topic %s does not exist",
    .admission = kwp_produce_admission,
    .open = kwp_produce_open,
    .discard = kwp_produce_discard,
};
