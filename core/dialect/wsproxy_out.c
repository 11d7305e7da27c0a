/* kafka-websocket-proxy's consumer socket, GET /socket/out: its query
 * parameters (clientId, topic, groupId, socketPayload, keyType, valType,
 * offsetResetStrategy, isolationLevel, rate, batchSize, autoCommit), checked
 * and worded as the reference does, over the consume path
 * (core/consume/consume.h). Worker thread. */
#include "core/base/error.h"
#include "core/consume/consume.h"
#include "core/dialect/dialect.h"
#include "core/endpoint/params.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

typedef struct out_params {
  char client_id[KWP_PARAM_MAX], group_id[KWP_PARAM_MAX], topic[KWP_PARAM_MAX];
  char reset[KWP_PARAM_MAX], isolation[KWP_PARAM_MAX];
  kwp_consume_conf_t cc;
} out_params_t;

static int choice_param(const char *url, const char *name, char *out,
                        const char *const *allowed, int *err, char *msg,
                        size_t msglen) {
  int r = kwp_param(url, name, out, err, msg, msglen);
  if (r <= 0) {
    if (r == 0)
      strcpy(out, allowed[0]);
    return r;
  }
  for (const char *const *a = allowed; *a; a++)
    if (!strcasecmp(out, *a)) {
      strcpy(out, *a);
      return 1;
    }
  *err = KWP_EBADREQ;
  if (!strcmp(name, "isolationLevel"))
    snprintf(msg, msglen,
             "Read isolation '%s' is not a valid value. Please use one of "
             "'read_committed' or 'read_uncommitted'.",
             out);
  else
    snprintf(msg, msglen, "%s is not a valid offset reset strategy", out);
  return -1;
}

static int parse_params(out_params_t *p, const char *url, int registry,
                        int *err, char *msg, size_t msglen) {
  static const char *const resets[] = {"earliest", "latest", "none", NULL};
  static const char *const isolations[] = {"read_uncommitted", "read_committed",
                                           NULL};
  kwp_consume_conf_t *cc = &p->cc;
  cc->val_fmt = KWP_FMT_STRING;
  cc->auto_commit = 1;
  if (kwp_param_required(url, "clientId", p->client_id, err, msg, msglen) < 0 ||
      kwp_param_topic(url, p->topic, err, msg, msglen) < 0 ||
      kwp_param(url, "groupId", p->group_id, err, msg, msglen) < 0 ||
      kwp_param_payload(url, &cc->fmt, err, msg, msglen) < 0 ||
      kwp_param_format(url, "keyType", &cc->key_fmt, err, msg, msglen) < 0 ||
      kwp_param_format(url, "valType", &cc->val_fmt, err, msg, msglen) < 0 ||
      kwp_param_schema(url, "key", cc->key_fmt, cc->fmt, registry, p->topic,
                       NULL, err, msg, msglen) < 0 ||
      kwp_param_schema(url, "val", cc->val_fmt, cc->fmt, registry, p->topic,
                       NULL, err, msg, msglen) < 0 ||
      choice_param(url, "offsetResetStrategy", p->reset, resets, err, msg,
                   msglen) < 0 ||
      choice_param(url, "isolationLevel", p->isolation, isolations, err, msg,
                   msglen) < 0 ||
      kwp_param_positive(url, "rate", 1000000000, &cc->rate, err, msg, msglen) <
          0 ||
      kwp_param_positive(url, "batchSize", 100000, &cc->batch, err, msg,
                         msglen) < 0 ||
      kwp_param_bool(url, "autoCommit", &cc->auto_commit, err, msg, msglen) < 0)
    return -1;
  if (!*p->group_id)
    snprintf(p->group_id, sizeof(p->group_id), "%.*s-group", KWP_PARAM_MAX - 8,
             p->client_id);
  return 0;
}

static int out_parse(kwp_upgrade_t *up, const char *url, void **state,
                     char *msg, size_t msglen) {
  out_params_t p = {0};
  int err = KWP_EBADREQ;
  int registry = kwp_worker_registry(kwp_upgrade_worker(up)) != NULL;
  if (parse_params(&p, url, registry, &err, msg, msglen) != 0)
    return err;
  p.cc.client_id = p.client_id;
  p.cc.group_id = p.group_id;
  p.cc.topic = p.topic;
  p.cc.reset = p.reset;
  p.cc.isolation = p.isolation;
  if (!(*state = kwp_consume_new(kwp_upgrade_worker(up), &p.cc))) {
    snprintf(msg, msglen, "Internal server error");
    return KWP_ENOMEM;
  }
  return 0;
}

static const char *const out_paths[] = {"/socket/out", NULL};

const kwp_endpoint_t kwp_dialect_wsproxy_out = {
    .name = "consume",
    .paths = out_paths,
    .parse = out_parse,
    .topic = kwp_consume_topic,
    .topic_missing = "Topic %s was not found",
    .admission = kwp_consume_admission,
    .open = kwp_consume_open,
    .discard = kwp_consume_discard,
};
