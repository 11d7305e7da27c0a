/* /socket/in JSON protocol: inbound message parsing into Kafka bytes and the
 * result frames. Pure functions, any thread. */
#include "codec/produce.h"

#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int perr(const char **code, const char *c, char *why, size_t whylen,
                const char *fmt, const char *arg) {
  *code = c;
  snprintf(why, whylen, fmt, arg);
  return KWP_EBADREQ;
}

/* A {"value": ..., "format": "..."} object; format is optional but, when
 * given, must name a format type. */
static int parse_kv(json_t *obj, const char *what, kwp_fmt_t fmt,
                    kwp_bytes_t *out, const char **code, char *why,
                    size_t whylen) {
  const char *c =
      !strcmp(what, "key") ? KWP_PERR_INVALID_KEY : KWP_PERR_INVALID_VALUE;
  const char *reason = NULL;
  json_t *v = json_is_object(obj) ? json_object_get(obj, "value") : NULL;
  json_t *f = json_is_object(obj) ? json_object_get(obj, "format") : NULL;
  kwp_fmt_t named;
  if (!v)
    return perr(code, c, why, whylen, "'%s' must be an object with a 'value'",
                what);
  if (f &&
      (!json_is_string(f) ||
       kwp_fmt_parse(json_string_value(f), json_string_length(f), &named) != 0))
    return perr(code, c, why, whylen, "'%s.format' is not a valid format type",
                what);
  if (kwp_fmt_encode(fmt, v, out, &reason) != 0) {
    *code = c;
    snprintf(why, whylen, "'%s' does not fit type %s: %s", what,
             kwp_fmt_name(fmt), reason);
    return KWP_EBADREQ;
  }
  return 0;
}

static int parse_headers(json_t *arr, kwp_produce_msg_t *m, const char **code,
                         char *why, size_t whylen) {
  size_t i;
  json_t *h;
  if (!json_is_array(arr))
    return perr(code, KWP_PERR_INVALID_HEADERS, why, whylen, "%s",
                "'headers' must be an array of {\"key\",\"value\"} objects");
  if (json_array_size(arr) > KWP_PRODUCE_MAX_HEADERS)
    return perr(code, KWP_PERR_INVALID_HEADERS, why, whylen, "%s",
                "too many headers (at most 64)");
  json_array_foreach(arr, i, h) {
    json_t *k = json_object_get(h, "key"), *v = json_object_get(h, "value");
    if (!json_is_string(k) || !json_is_string(v))
      return perr(code, KWP_PERR_INVALID_HEADERS, why, whylen, "%s",
                  "each header needs a string 'key' and a string 'value'");
    if (strlen(json_string_value(k)) != json_string_length(k))
      return perr(code, KWP_PERR_INVALID_HEADERS, why, whylen, "%s",
                  "a header key cannot contain \\u0000");
    m->headers[i].key = json_string_value(k);
    m->headers[i].value = (const uint8_t *)json_string_value(v);
    m->headers[i].value_len = json_string_length(v);
  }
  m->nheaders = json_array_size(arr);
  return 0;
}

int kwp_produce_msg_parse(const char *text, size_t len, kwp_fmt_t key_fmt,
                          kwp_fmt_t val_fmt, kwp_produce_msg_t *m,
                          const char **code, char *why, size_t whylen) {
  json_error_t jerr;
  memset(m, 0, sizeof(*m));
  /* JSON allows \u0000 in strings; values keep it (lengths, not strlen). */
  m->root =
      json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
  if (!m->root)
    return perr(code, KWP_PERR_INVALID_JSON, why, whylen,
                "message is not valid JSON: %s", jerr.text);
  if (!json_is_object(m->root))
    return perr(code, KWP_PERR_INVALID_MESSAGE, why, whylen, "%s",
                "message must be a JSON object");
  m->message_id = json_object_get(m->root, "messageId");
  json_t *value = json_object_get(m->root, "value");
  json_t *key = json_object_get(m->root, "key");
  json_t *headers = json_object_get(m->root, "headers");
  if (!value || json_is_null(value))
    return perr(code, KWP_PERR_INVALID_MESSAGE, why, whylen, "%s",
                "message has no 'value'");
  if (parse_kv(value, "value", val_fmt, &m->value, code, why, whylen))
    return KWP_EBADREQ;
  if (key && !json_is_null(key)) {
    if (key_fmt == KWP_FMT_NONE)
      return perr(code, KWP_PERR_INVALID_KEY, why, whylen, "%s",
                  "message has a 'key' but the socket has no keyType");
    if (parse_kv(key, "key", key_fmt, &m->key, code, why, whylen))
      return KWP_EBADREQ;
    m->has_key = 1;
  }
  if (headers && !json_is_null(headers) &&
      parse_headers(headers, m, code, why, whylen))
    return KWP_EBADREQ;
  return 0;
}

void kwp_produce_msg_clear(kwp_produce_msg_t *m) {
  kwp_bytes_clear(&m->key);
  kwp_bytes_clear(&m->value);
  json_decref(m->root);
  memset(m, 0, sizeof(*m));
}

static json_t *id_or_null(json_t *id) {
  return id ? json_incref(id) : json_null();
}

char *kwp_produce_result_ok(const char *topic, int32_t partition,
                            int64_t offset, int64_t timestamp,
                            json_t *message_id) {
  /* The hot path: one snprintf. Kafka topic names are [a-zA-Z0-9._-], so
   * they need no escaping; the client's id is re-encoded by jansson. */
  char *id = message_id ? json_dumps(message_id, JSON_ENCODE_ANY | JSON_COMPACT)
                        : NULL;
  const char *ids = id ? id : "null";
  size_t cap = strlen(topic) + 2 * strlen(ids) + 160;
  char *s = malloc(cap);
  if (s)
    snprintf(s, cap,
             "{\"topic\":\"%s\",\"partition\":%d,\"offset\":%lld,"
             "\"timestamp\":%lld,\"messageId\":%s,\"clientMessageId\":%s}",
             topic, (int)partition, (long long)offset, (long long)timestamp,
             ids, ids);
  free(id);
  return s;
}

char *kwp_produce_result_err(json_t *message_id, const char *code,
                             const char *message) {
  json_t *o =
      json_pack("{s:o, s:o, s:s, s:s}", "messageId", id_or_null(message_id),
                "clientMessageId", id_or_null(message_id), "error", code,
                "message", message);
  char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  json_decref(o);
  return s;
}
