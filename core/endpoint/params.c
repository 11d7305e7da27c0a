/* Upgrade-request parameters (see params.h). */
#include "core/endpoint/params.h"

#include "core/base/error.h"
#include "core/net/query.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int kwp_param(const char *url, const char *name, char *out, int *err, char *msg,
              size_t msglen) {
  int r = kwp_query_get(url, name, out, KWP_PARAM_MAX);
  if (r < 0) {
    *err = KWP_EBADREQ;
    snprintf(msg, msglen, "Request param '%s' is malformed or too long.", name);
    return -1;
  }
  return r;
}

int kwp_param_required(const char *url, const char *name, char *out, int *err,
                       char *msg, size_t msglen) {
  int r = kwp_param(url, name, out, err, msg, msglen);
  if (r == 0 || (r > 0 && !*out)) {
    *err = KWP_EBADREQ;
    snprintf(msg, msglen, "Request param '%s' is missing.", name);
    return -1;
  }
  return r;
}

/* Kafka's own rule (Topic.validate): the broker refuses other names. */
static const char *topic_name_problem(const char *t) {
  size_t n = strlen(t);
  if (!strcmp(t, ".") || !strcmp(t, ".."))
    return "'.' and '..' are not allowed";
  if (n > 249)
    return "it is longer than 249 characters";
  for (const char *c = t; *c; c++)
    if (!(*c >= 'a' && *c <= 'z') && !(*c >= 'A' && *c <= 'Z') &&
        !(*c >= '0' && *c <= '9') && *c != '.' && *c != '_' && *c != '-')
      return "it contains a character other than ASCII alphanumerics, '.', "
             "'_' and '-'";
  return NULL;
}

int kwp_param_topic(const char *url, char *out, int *err, char *msg,
                    size_t msglen) {
  int r = kwp_param_required(url, "topic", out, err, msg, msglen);
  if (r < 0)
    return r;
  const char *why = topic_name_problem(out);
  if (why) {
    *err = KWP_EBADREQ;
    snprintf(msg, msglen,
             "Request param 'topic' is not a valid Kafka topic name: %s.", why);
    return -1;
  }
  return r;
}

int kwp_param_format(const char *url, const char *name, kwp_fmt_t *fmt,
                     int *err, char *msg, size_t msglen) {
  char v[KWP_PARAM_MAX];
  int r = kwp_param(url, name, v, err, msg, msglen);
  if (r <= 0)
    return r;
  if (kwp_fmt_parse(v, strlen(v), fmt) != 0) {
    *err = KWP_EBADREQ;
    snprintf(msg, msglen, "'%s' is not a valid format type", v);
    return -1;
  }
  return 1;
}

int kwp_param_payload(const char *url, const kwp_payload_t **fmt, int *err,
                      char *msg, size_t msglen) {
  char v[KWP_PARAM_MAX];
  int r = kwp_param(url, "socketPayload", v, err, msg, msglen);
  if (r < 0)
    return -1;
  if ((*fmt = kwp_payload_find(r ? v : "json")) != NULL)
    return 0;
  *err = KWP_EBADREQ;
  snprintf(msg, msglen, "'%s' is not a valid socket payload", v);
  return -1;
}

/* <side>SchemaVersion: "latest" or a positive number; 1 when given. */
static int schema_version(const char *url, const char *name, int *version,
                          int *err, char *msg, size_t msglen) {
  char v[KWP_PARAM_MAX];
  int r = kwp_param(url, name, v, err, msg, msglen);
  if (r <= 0)
    return r;
  if (!strcmp(v, "latest")) {
    *version = -1;
    return 1;
  }
  int64_t n;
  if (kwp_param_positive(url, name, INT32_MAX, &n, err, msg, msglen) < 0) {
    snprintf(msg, msglen,
             "Request param '%s' must be 'latest' or an integer from 1 to "
             "%d, got '%s'.",
             name, INT32_MAX, v);
    return -1;
  }
  *version = (int)n;
  return 1;
}

int kwp_param_schema(const char *url, const char *side, kwp_fmt_t fmt,
                     const kwp_payload_t *payload, int registry,
                     const char *topic, kwp_schema_ref_t *ref, int *err,
                     char *msg, size_t msglen) {
  char id_name[32], subject_name[32], version_name[32];
  kwp_schema_ref_t r = {.version = -1};
  int64_t id = 0;
  snprintf(id_name, sizeof(id_name), "%sSchemaId", side);
  snprintf(subject_name, sizeof(subject_name), "%sSubject", side);
  snprintf(version_name, sizeof(version_name), "%sSchemaVersion", side);
  *err = KWP_EBADREQ;
  if (fmt == KWP_FMT_AVRO_REGISTRY && !registry) {
    snprintf(msg, msglen,
             "Format type 'avro_registry' needs a schema registry "
             "(kafka.ws.proxy.kafka-client.schema-registry.url).");
    return -1;
  }
  if (fmt == KWP_FMT_AVRO_REGISTRY && strcmp(payload->name, "json") != 0) {
    snprintf(msg, msglen,
             "Format type 'avro_registry' needs socketPayload=json (on an "
             "Avro socket, use 'avro' for the framed bytes).");
    return -1;
  }
  if (!ref)
    return 0;
  int has_id =
      kwp_param_positive(url, id_name, INT32_MAX, &id, err, msg, msglen);
  int has_subject = kwp_param(url, subject_name, r.subject, err, msg, msglen);
  int has_version =
      schema_version(url, version_name, &r.version, err, msg, msglen);
  if (has_id < 0 || has_subject < 0 || has_version < 0)
    return -1;
  const char *given = has_id        ? id_name
                      : has_subject ? subject_name
                      : has_version ? version_name
                                    : NULL;
  if (given && fmt != KWP_FMT_AVRO_REGISTRY) {
    snprintf(msg, msglen, "Request param '%s' needs %sType=avro_registry.",
             given, side);
    return -1;
  }
  if (has_id && (has_subject || has_version)) {
    snprintf(msg, msglen,
             "Request param '%s' names the schema alone: leave out '%s'.",
             id_name, has_subject ? subject_name : version_name);
    return -1;
  }
  if (!has_subject || !*r.subject)
    snprintf(r.subject, sizeof(r.subject), "%s-%s", topic,
             !strcmp(side, "key") ? "key" : "value");
  r.id = (int32_t)id;
  *ref = r;
  return 0;
}

int kwp_param_bool(const char *url, const char *name, int *out, int *err,
                   char *msg, size_t msglen) {
  char v[KWP_PARAM_MAX];
  int r = kwp_param(url, name, v, err, msg, msglen);
  if (r <= 0)
    return r;
  int b = kwp_query_bool(v);
  if (b < 0) {
    *err = KWP_EBADREQ;
    snprintf(msg, msglen, "'%s' is not a valid boolean value", v);
    return -1;
  }
  *out = b;
  return 1;
}

int kwp_param_positive(const char *url, const char *name, int64_t max,
                       int64_t *out, int *err, char *msg, size_t msglen) {
  char v[KWP_PARAM_MAX], *end;
  int r = kwp_param(url, name, v, err, msg, msglen);
  if (r <= 0)
    return r;
  /* digits only: strtoll alone also takes a sign and leading spaces */
  long long n = strtoll(v, &end, 10);
  if (v[strspn(v, "0123456789")] || !*v || *end || n < 1 || n > max) {
    *err = KWP_EBADREQ;
    snprintf(msg, msglen,
             "Request param '%s' must be an integer from 1 to %lld, got '%s'.",
             name, (long long)max, v);
    return -1;
  }
  *out = n;
  return 1;
}
