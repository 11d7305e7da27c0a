/* /socket/in JSON protocol: inbound message parsing into Kafka bytes and the
 * result frames. Pure functions, any thread. */
#include "codec/json/json_produce.h"

#include "core/base/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The first misfit of one field (value, key or headers). Misfits do not
 * stop the reading: the messageId may come later in the text. */
typedef struct field_err {
  int err; /* 0: none yet */
  char why[224];
} field_err_t;

static void ferr(field_err_t *e, int err, const char *fmt, const char *a,
                 const char *b, const char *c) {
  if (e->err)
    return;
  e->err = err;
  snprintf(e->why, sizeof(e->why), fmt, a, b, c);
}

static int is_null(kwp_js_t *js) {
  return kwp_js_peek(js) == 'n';
}

/* A {"value": ..., "format": "..."} object; format is optional (or null)
 * but, when given, must name a format type. */
static void read_kv(kwp_js_t *js, const char *what, kwp_fmt_t fmt,
                    kwp_bytes_t *out, field_err_t *e) {
  int c = !strcmp(what, "key") ? KWP_EBADKEY : KWP_EBADVALUE;
  const char *reason;
  kwp_js_iter_t it;
  kwp_slice_t name, f;
  kwp_fmt_t named;
  int have_value = 0, r;
  if (kwp_js_peek(js) != '{') {
    ferr(e, c, "'%s' must be an object with a 'value'", what, "", "");
    kwp_js_value(js, NULL);
    return;
  }
  kwp_js_object(js, &it);
  while ((r = kwp_js_member(js, &it, &name)) > 0) {
    if (kwp_slice_is(name, "value") && !have_value) {
      have_value = 1;
      if (kwp_fmt_encode(fmt, js, out, &reason) && !js->err)
        ferr(e, c, "'%s' does not fit type %s: %s", what, kwp_fmt_name(fmt),
             reason);
    } else if (kwp_slice_is(name, "format") && kwp_js_peek(js) == '"') {
      if (kwp_js_string(js, &f) == 0 && kwp_fmt_parse(f.ptr, f.len, &named))
        ferr(e, c, "'%s.format' is not a valid format type", what, "", "");
    } else if (kwp_slice_is(name, "format") && kwp_js_peek(js) != 'n') {
      /* null stands for "not given": the reference's records carry it */
      ferr(e, c, "'%s.format' is not a valid format type", what, "", "");
      kwp_js_value(js, NULL);
    } else {
      kwp_js_value(js, NULL);
    }
  }
  if (r == 0 && !have_value)
    ferr(e, c, "'%s' must be an object with a 'value'", what, "", "");
}

/* One {"key": "...", "value": "..."} of the headers array. */
static void read_header(kwp_js_t *js, kwp_produce_msg_t *m, field_err_t *e) {
  static const char need[] =
      "each header needs a string 'key' and a string 'value'";
  kwp_js_iter_t it;
  kwp_slice_t name, k = {0}, v = {0};
  int r;
  if (kwp_js_peek(js) != '{') {
    ferr(e, KWP_EBADHEADERS, need, "", "", "");
    kwp_js_value(js, NULL);
    return;
  }
  kwp_js_object(js, &it);
  while ((r = kwp_js_member(js, &it, &name)) > 0) {
    kwp_slice_t *dst = kwp_slice_is(name, "key")     ? &k
                       : kwp_slice_is(name, "value") ? &v
                                                     : NULL;
    if (dst && kwp_js_peek(js) == '"')
      kwp_js_string(js, dst);
    else
      kwp_js_value(js, NULL);
  }
  if (r < 0)
    return;
  if (!k.ptr || !v.ptr) {
    ferr(e, KWP_EBADHEADERS, need, "", "", "");
  } else if (memchr(k.ptr, 0, k.len)) {
    ferr(e, KWP_EBADHEADERS, "a header key cannot contain \\u0000", "", "", "");
  } else if (m->nheaders == KWP_MAX_HEADERS) {
    ferr(e, KWP_EBADHEADERS, "too many headers (at most 64)", "", "", "");
  } else {
    kwp_header_t *h = &m->headers[m->nheaders++];
    h->key = k.ptr;
    h->key_len = k.len;
    h->value = (const uint8_t *)v.ptr;
    h->value_len = v.len;
  }
}

static void read_headers(kwp_js_t *js, kwp_produce_msg_t *m, field_err_t *e) {
  kwp_js_iter_t it;
  if (kwp_js_peek(js) != '[') {
    ferr(e, KWP_EBADHEADERS,
         "'headers' must be an array of {\"key\",\"value\"} objects", "", "",
         "");
    kwp_js_value(js, NULL);
    return;
  }
  kwp_js_array(js, &it);
  while (kwp_js_element(js, &it) > 0)
    read_header(js, m, e);
}

enum { F_VALUE = 1, F_KEY = 2, F_HEADERS = 4, F_ID = 8 };

/* One member of the message object. @p seen keeps a field from being read
 * twice: a repeated name fails the whole message when the object ends. */
static void read_member(kwp_js_t *js, kwp_slice_t name, kwp_fmt_t key_fmt,
                        kwp_fmt_t val_fmt, kwp_produce_msg_t *m, int *seen,
                        field_err_t errs[3]) {
  int f = kwp_slice_is(name, "value")       ? F_VALUE
          : kwp_slice_is(name, "key")       ? F_KEY
          : kwp_slice_is(name, "headers")   ? F_HEADERS
          : kwp_slice_is(name, "messageId") ? F_ID
                                            : 0;
  if (!f || (*seen & f) || (f != F_ID && is_null(js))) {
    kwp_js_value(js, NULL); /* unknown, repeated, or null (= absent) */
    return;
  }
  *seen |= f;
  switch (f) {
  case F_VALUE:
    read_kv(js, "value", val_fmt, &m->value, &errs[0]);
    break;
  case F_KEY:
    if (key_fmt == KWP_FMT_NONE) {
      ferr(&errs[1], KWP_EBADKEY,
           "message has a 'key' but the socket has no keyType", "", "", "");
      kwp_js_value(js, NULL);
    } else {
      read_kv(js, "key", key_fmt, &m->key, &errs[1]);
      m->has_key = 1;
    }
    break;
  case F_HEADERS:
    read_headers(js, m, &errs[2]);
    break;
  default:
    kwp_js_value(js, &m->message_id);
  }
}

static int invalid_json(kwp_produce_msg_t *m, char *why, size_t whylen) {
  char where[128];
  kwp_js_error(&m->js, where, sizeof(where));
  m->message_id.ptr = NULL; /* nothing of an invalid text is trusted */
  snprintf(why, whylen, "message is not valid JSON: %s", where);
  return KWP_EJSON;
}

int kwp_produce_msg_parse(const char *text, size_t len, kwp_fmt_t key_fmt,
                          kwp_fmt_t val_fmt, kwp_produce_msg_t *m, char *why,
                          size_t whylen) {
  kwp_js_t *js = &m->js;
  field_err_t errs[3];
  kwp_js_iter_t it;
  kwp_slice_t name;
  int seen = 0, r;
  memset(&m->key, 0, sizeof(m->key));
  memset(&m->value, 0, sizeof(m->value));
  memset(&m->message_id, 0, sizeof(m->message_id));
  m->has_key = 0;
  m->nheaders = 0;
  errs[0].err = errs[1].err = errs[2].err = 0;
  kwp_js_init(js, text, len);
  if (kwp_js_peek(js) != '{') {
    if (kwp_js_value(js, NULL) < 0 || kwp_js_end(js) < 0)
      return invalid_json(m, why, whylen);
    snprintf(why, whylen, "message must be a JSON object");
    return KWP_EBADMSG;
  }
  kwp_js_object(js, &it);
  while ((r = kwp_js_member(js, &it, &name)) > 0)
    read_member(js, name, key_fmt, val_fmt, m, &seen, errs);
  if (r < 0 || kwp_js_end(js) < 0)
    return invalid_json(m, why, whylen);
  if (!(seen & F_VALUE)) {
    snprintf(why, whylen, "message has no 'value'");
    return KWP_EBADMSG;
  }
  for (int i = 0; i < 3; i++) {
    if (errs[i].err) {
      snprintf(why, whylen, "%s", errs[i].why);
      return errs[i].err;
    }
  }
  return 0;
}

void kwp_produce_msg_clear(kwp_produce_msg_t *m) {
  kwp_bytes_clear(&m->key);
  kwp_bytes_clear(&m->value);
  kwp_js_free(&m->js);
  m->nheaders = 0;
  m->has_key = 0;
  m->message_id.ptr = NULL;
}

size_t kwp_produce_result_ok(char *buf, const char *topic, size_t topic_len,
                             int32_t partition, int64_t offset,
                             int64_t timestamp, const char *id, size_t id_len) {
  /* The hot path: no formatting library. Kafka topic names are
   * [a-zA-Z0-9._-], so they need no escaping; the id is the client's own
   * (validated, compact) JSON text. */
  if (!id) {
    id = "null";
    id_len = 4;
  }
  char *d = KWP_PUT_LIT(buf, "{\"topic\":\"");
  d = kwp_put(d, topic, topic_len);
  d = KWP_PUT_LIT(d, "\",\"partition\":");
  d = kwp_put_i64(d, partition);
  d = KWP_PUT_LIT(d, ",\"offset\":");
  d = kwp_put_i64(d, offset);
  d = KWP_PUT_LIT(d, ",\"timestamp\":");
  d = kwp_put_i64(d, timestamp);
  d = KWP_PUT_LIT(d, ",\"messageId\":");
  d = kwp_put(d, id, id_len);
  d = KWP_PUT_LIT(d, ",\"clientMessageId\":");
  d = kwp_put(d, id, id_len);
  *d++ = '}';
  return (size_t)(d - buf);
}

char *kwp_produce_result_err(const char *id, size_t id_len, int err,
                             const char *message) {
  const char *code = kwp_err_result_code(err);
  json_t *m = json_string(message);
  char *text = m ? json_dumps(m, JSON_ENCODE_ANY) : NULL;
  json_decref(m);
  if (!id) {
    id = "null";
    id_len = 4;
  }
  const char *msg = text ? text : "\"\"";
  size_t cap = 2 * id_len + strlen(code) + strlen(msg) + 80;
  char *s = malloc(cap);
  if (s)
    snprintf(s, cap,
             "{\"messageId\":%.*s,\"clientMessageId\":%.*s,\"error\":\"%s\","
             "\"message\":%s}",
             (int)id_len, id, (int)id_len, id, code, msg);
  free(text);
  return s;
}
