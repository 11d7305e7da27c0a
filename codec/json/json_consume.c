/* Outbound record frames of /socket/out (see consume.h). Strings and base64
 * are the hot paths (a 1 KB value per record): they are validated and escaped
 * in one pass into the output buffer; only `json` values are parsed, to be
 * validated. */
#include "codec/json/json_consume.h"

#include "codec/avro/avro_json.h"
#include "codec/avro/wire.h"
#include "codec/json/jscan.h"
#include "codec/ws/ws.h"
#include "core/base/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define APPEND_LIT(b, s) kwp_sbuf_append((b), (s), sizeof(s) - 1)

static void append_str(kwp_sbuf_t *b, const char *s) {
  kwp_sbuf_append(b, s, strlen(s));
}

/* --- JSON strings --- */

/* Append @p p as a quoted JSON string. @returns whether it has non-ASCII
 * bytes (which the caller must check are UTF-8). */
static int append_escaped(kwp_sbuf_t *b, const uint8_t *p, size_t n) {
  static const char hex[] = "0123456789abcdef";
  uint64_t high = 0;
  char *d = kwp_sbuf_reserve(b, n + 2);
  if (!d)
    return 0;
  b->data[b->len++] = '"';
  size_t i = 0;
  while (i < n) {
    /* reserved: n - i + 1 */
    size_t run =
        i + kwp_js_plain_copy((uint8_t *)b->data + b->len, p + i, p + n, &high);
    b->len += run - i;
    if (run == n)
      break;
    uint8_t c = p[run];
    if (!(d = kwp_sbuf_reserve(b, 6 + (n - run) + 1)))
      return 0;
    d[0] = '\\';
    switch (c) {
    case '"':
    case '\\':
      d[1] = (char)c;
      b->len += 2;
      break;
    case '\n':
      d[1] = 'n';
      b->len += 2;
      break;
    case '\r':
      d[1] = 'r';
      b->len += 2;
      break;
    case '\t':
      d[1] = 't';
      b->len += 2;
      break;
    default:
      memcpy(d + 1, "u00", 3);
      d[4] = hex[c >> 4];
      d[5] = hex[c & 15];
      b->len += 6;
    }
    i = run + 1;
  }
  b->data[b->len++] = '"';
  return (high & KWP_UTF8_HIGH_BITS) != 0;
}

/* A JSON string of @p p, or -1 (nothing written) when not valid UTF-8.
 * One pass for ASCII: the escaping scan says whether UTF-8 needs checking. */
static int append_string(kwp_sbuf_t *b, const uint8_t *p, size_t n) {
  size_t len0 = b->len;
  if (append_escaped(b, p, n) && !kwp_utf8_valid(p, n)) {
    b->len = len0;
    return -1;
  }
  return 0;
}

static void append_base64(kwp_sbuf_t *b, const uint8_t *p, size_t n) {
  size_t out = (n + 2) / 3 * 4;
  char *d = kwp_sbuf_reserve(b, out + 3);
  if (!d)
    return;
  d[0] = '"';
  kwp_base64_encode(p, n, d + 1); /* writes a NUL, overwritten below */
  d[out + 1] = '"';
  b->len += out + 2;
}

/* --- numbers --- */

static uint64_t get_be(const uint8_t *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++)
    v = (v << 8) | p[i];
  return v;
}

static void append_int(kwp_sbuf_t *b, int64_t v) {
  char num[24], *e = num + sizeof(num), *s = kwp_i64_text(e, v);
  kwp_sbuf_append(b, s, (size_t)(e - s));
}

/* The shortest decimal that reads back as the same float or double, with
 * a ".0" so that JSON readers keep it a real. */
static int append_real(kwp_sbuf_t *b, double d, int is_float) {
  char num[40];
  int n = 0;
  if (!isfinite(d))
    return -1; /* JSON has no NaN or infinities */
  for (int prec = is_float ? 6 : 15; prec <= 17; prec++) {
    n = snprintf(num, sizeof(num), "%.*g", prec, d);
    double back = strtod(num, NULL);
    if (is_float ? (float)back == (float)d : back == d)
      break;
  }
  if (!strpbrk(num, ".eE"))
    n += snprintf(num + n, sizeof(num) - (size_t)n, ".0");
  kwp_sbuf_append(b, num, (size_t)n);
  return 0;
}

static int append_number(kwp_sbuf_t *b, kwp_fmt_t fmt, const uint8_t *p,
                         size_t n) {
  switch (fmt) {
  case KWP_FMT_SHORT:
    if (n != 2)
      return -1;
    append_int(b, (int16_t)get_be(p, 2));
    return 0;
  case KWP_FMT_INT:
    if (n != 4)
      return -1;
    append_int(b, (int32_t)get_be(p, 4));
    return 0;
  case KWP_FMT_LONG:
    if (n != 8)
      return -1;
    append_int(b, (int64_t)get_be(p, 8));
    return 0;
  case KWP_FMT_FLOAT: {
    if (n != 4)
      return -1;
    uint32_t u = (uint32_t)get_be(p, 4);
    float f;
    memcpy(&f, &u, 4);
    return append_real(b, f, 1);
  }
  default: { /* KWP_FMT_DOUBLE */
    if (n != 8)
      return -1;
    uint64_t u = get_be(p, 8);
    double d;
    memcpy(&d, &u, 8);
    return append_real(b, d, 0);
  }
  }
}

/* Whether @p p is one JSON value. The strict reader of the produce path
 * first: jansson alone refused integers beyond 64 bits and reals beyond a
 * double, which are JSON (and which the producer stores as written). It
 * refuses repeated member names, which JSON tolerates, so jansson has the
 * last word. */
static int is_json(const uint8_t *p, size_t n) {
  kwp_js_t js;
  kwp_js_init(&js, (const char *)p, n);
  int ok = kwp_js_value(&js, NULL) == 0 && kwp_js_end(&js) == 0;
  kwp_js_free(&js);
  if (ok)
    return 1;
  json_t *v =
      json_loadb((const char *)p, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
  json_decref(v);
  return v != NULL;
}

/* Valid JSON is embedded as stored, minus the whitespace between tokens
 * (frames are compact; numbers keep their exact text, which re-encoding
 * through jansson would not). */
static int append_json(kwp_sbuf_t *b, const uint8_t *p, size_t n) {
  if (!is_json(p, n))
    return -1;
  char *d = kwp_sbuf_reserve(b, n);
  if (!d)
    return 0;
  size_t k = 0;
  int in_str = 0;
  for (size_t i = 0; i < n; i++) {
    uint8_t c = p[i];
    if (in_str) {
      d[k++] = (char)c;
      if (c == '\\' && i + 1 < n)
        d[k++] = (char)p[++i];
      else if (c == '"')
        in_str = 0;
    } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
      d[k++] = (char)c;
      in_str = c == '"';
    }
  }
  b->len += k;
  return 0;
}

/* The value of key or value as @p fmt; -1 (nothing written) when the bytes
 * do not decode. */
static int append_typed(kwp_sbuf_t *b, kwp_fmt_t fmt, const uint8_t *p,
                        size_t n) {
  switch (fmt) {
  case KWP_FMT_STRING:
    return append_string(b, p, n);
  case KWP_FMT_JSON:
    return append_json(b, p, n);
  case KWP_FMT_BYTEARRAY:
  case KWP_FMT_AVRO:
    append_base64(b, p, n);
    return 0;
  default:
    return append_number(b, fmt, p, n);
  }
}

/* An avro_registry key or value, decoded to JSON with the schema its id
 * names: {"value":...,"format":"avro_registry","schemaId":id}.
 * @returns 0, or -1 (nothing written) with @p why. */
static int append_registry(kwp_sbuf_t *b, const kwp_sr_opts_t *sr,
                           const uint8_t *p, size_t n, char *why,
                           size_t whylen) {
  int32_t id;
  const uint8_t *body;
  size_t body_len, len0 = b->len;
  const char *miss = "no schema registry";
  const kwp_avro_schema_t *sch;
  char w[192];
  if (kwp_avro_wire_parse(p, n, &id, &body, &body_len) != 0) {
    snprintf(why, whylen,
             "not in the Schema Registry wire format (magic byte 0, a 4-byte "
             "schema id)");
    return -1;
  }
  if (!sr || !(sch = sr->reader(sr->arg, id, &miss))) {
    snprintf(why, whylen, "schema %d: %s", id, miss);
    return -1;
  }
  APPEND_LIT(b, "{\"value\":");
  if (kwp_avro_to_json(sch, body, body_len, b, w, sizeof(w)) != 0) {
    b->len = len0;
    snprintf(why, whylen, "not valid under schema %d: %s", id, w);
    return -1;
  }
  char *d = kwp_sbuf_reserve(b, 64);
  if (d) {
    d = KWP_PUT_LIT(d, ",\"format\":\"avro_registry\",\"schemaId\":");
    d = kwp_put_i64(d, id);
    *d++ = '}';
    b->len = (size_t)(d - b->data);
  }
  return 0;
}

/* {"value":...,"format":...}; 0, or -1 when it fell back to base64 (with
 * @p why for an avro_registry one). */
static int append_field(kwp_sbuf_t *b, const kwp_sr_opts_t *sr, kwp_fmt_t fmt,
                        int typed, const uint8_t *p, size_t n, char *why,
                        size_t whylen) {
  int rc = 0;
  if (fmt == KWP_FMT_AVRO_REGISTRY && p) {
    if (append_registry(b, sr, p, n, why, whylen) == 0)
      return 0;
    typed = 0;
    rc = -1;
    p = n ? p : (const uint8_t *)""; /* base64 of it below */
  }
  APPEND_LIT(b, "{\"value\":");
  if (!p) {
    APPEND_LIT(b, "null");
  } else if (rc) { /* avro_registry that did not decode */
    append_base64(b, p, n);
    fmt = KWP_FMT_BYTEARRAY;
  } else if (!typed) { /* no keyType: a string when it is text */
    if (append_string(b, p, n) == 0) {
      fmt = KWP_FMT_STRING;
    } else {
      append_base64(b, p, n);
      fmt = KWP_FMT_BYTEARRAY;
    }
  } else if (append_typed(b, fmt, p, n) != 0) {
    append_base64(b, p, n);
    fmt = KWP_FMT_BYTEARRAY;
    rc = -1;
  }
  APPEND_LIT(b, ",\"format\":\"");
  append_str(b, kwp_fmt_name(fmt));
  APPEND_LIT(b, "\"}");
  return rc;
}

static void append_headers(kwp_sbuf_t *b, const kwp_record_t *r) {
  const char *name;
  const void *val;
  size_t len, i = 0;
  if (!r->header || r->header(r->hdrs, 0, &name, &val, &len) != 0) {
    APPEND_LIT(b, "null");
    return;
  }
  APPEND_LIT(b, "[");
  do {
    if (i)
      APPEND_LIT(b, ",");
    APPEND_LIT(b, "{\"key\":");
    if (append_string(b, (const uint8_t *)name, strlen(name)) != 0)
      append_base64(b, (const uint8_t *)name, strlen(name));
    APPEND_LIT(b, ",\"value\":");
    if (!val)
      APPEND_LIT(b, "null}");
    else if (append_string(b, val, len) == 0)
      APPEND_LIT(b, "}");
    else { /* not text: base64, and say so */
      append_base64(b, val, len);
      APPEND_LIT(b, ",\"format\":\"bytearray\"}");
    }
  } while (r->header(r->hdrs, ++i, &name, &val, &len) == 0);
  APPEND_LIT(b, "]");
}

/* The error and message of a record whose key or value went as base64. */
static void append_misfit(kwp_sbuf_t *b, int is_value, kwp_fmt_t fmt,
                          const char *why) {
  char msg[400];
  APPEND_LIT(b, ",\"error\":\"");
  append_str(b, kwp_err_result_code(is_value ? KWP_EBADVALUE : KWP_EBADKEY));
  APPEND_LIT(b, "\",\"message\":");
  snprintf(msg, sizeof(msg),
           "the %s is not a valid %s%s%s%s; its bytes are given in base64",
           is_value ? "value" : "key", kwp_fmt_name(fmt), *why ? " (" : "", why,
           *why ? ")" : "");
  if (append_string(b, (const uint8_t *)msg, strlen(msg)) != 0)
    APPEND_LIT(b, "null");
}

int kwp_consume_record(kwp_sbuf_t *out, const kwp_payload_opts_t *o,
                       const kwp_record_t *r) {
  const char *topic = o->topic;
  size_t tlen = o->topic_len;
  kwp_fmt_t key_fmt = o->key_fmt, val_fmt = o->val_fmt;
  /* Each number is formatted once, into the id, and its text copied into
   * its field. The head: fixed text, the topic twice and six numbers of <= 20
   * chars. */
  char *d0 = kwp_sbuf_reserve(out, 2 * tlen + 6 * 20 + 128), *d = d0;
  if (!d)
    return KWP_ENOMEM;
  d = KWP_PUT_LIT(d, "{\"wsProxyMessageId\":\"");
  d = kwp_put(d, topic, tlen);
  *d++ = '-';
  char *part = d;
  d = kwp_put_i64(d, r->partition);
  size_t part_len = (size_t)(d - part);
  *d++ = '-';
  char *off = d;
  d = kwp_put_i64(d, r->offset);
  size_t off_len = (size_t)(d - off);
  *d++ = '-';
  char *ts = d;
  d = kwp_put_i64(d, r->timestamp);
  size_t ts_len = (size_t)(d - ts);
  d = KWP_PUT_LIT(d, "\",\"topic\":\"");
  d = kwp_put(d, topic, tlen);
  d = KWP_PUT_LIT(d, "\",\"partition\":");
  d = kwp_put(d, part, part_len);
  d = KWP_PUT_LIT(d, ",\"offset\":");
  d = kwp_put(d, off, off_len);
  d = KWP_PUT_LIT(d, ",\"timestamp\":");
  d = kwp_put(d, ts, ts_len);
  d = KWP_PUT_LIT(d, ",\"headers\":");
  out->len += (size_t)(d - d0);
  append_headers(out, r);
  int bad_key = 0, bad_value;
  char why_key[256], why_value[256]; /* set only when used: no memset */
  why_key[0] = why_value[0] = 0;
  if (r->key) {
    APPEND_LIT(out, ",\"key\":");
    bad_key = append_field(out, o->sr, key_fmt, key_fmt != KWP_FMT_NONE, r->key,
                           r->key_len, why_key, sizeof(why_key)) != 0;
  }
  APPEND_LIT(out, ",\"value\":");
  bad_value = append_field(out, o->sr, val_fmt, 1, r->value, r->value_len,
                           why_value, sizeof(why_value)) != 0;
  if (bad_key || bad_value)
    append_misfit(out, bad_value, bad_value ? val_fmt : key_fmt,
                  bad_value ? why_value : why_key);
  APPEND_LIT(out, "}");
  return out->oom ? KWP_ENOMEM : 0;
}

/* --- inbound commits and error frames --- */

int kwp_consume_commit_parse(const char *text, size_t len, char *id,
                             size_t idlen, const char **why) {
  /* Duplicate keys are refused as on /socket/in (which one would count?);
   * a NUL is let through the parser only to be named. */
  json_error_t e;
  json_t *root =
      json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &e);
  if (!root) {
    *why = json_error_code(&e) == json_error_duplicate_key
               ? "a commit must not repeat a key"
               : "a commit must be a JSON object "
                 "{\"wsProxyMessageId\": \"...\"}";
    return KWP_EBADCOMMIT;
  }
  json_t *v = json_object_get(root, "wsProxyMessageId");
  int rc = KWP_EBADCOMMIT;
  if (!json_is_string(v))
    *why = "'wsProxyMessageId' is missing or not a string";
  else if (json_string_length(v) >= idlen)
    *why = "'wsProxyMessageId' is too long";
  else if (strlen(json_string_value(v)) != json_string_length(v))
    *why = "'wsProxyMessageId' holds a NUL character: no record has such an id";
  else {
    rc = (int)json_string_length(v);
    memcpy(id, json_string_value(v), (size_t)rc + 1);
  }
  json_decref(root);
  return rc;
}

int kwp_consume_error(kwp_sbuf_t *out, int err, const char *id,
                      const char *message) {
  APPEND_LIT(out, "{\"error\":\"");
  append_str(out, kwp_err_result_code(err));
  APPEND_LIT(out, "\"");
  if (id) {
    APPEND_LIT(out, ",\"wsProxyMessageId\":");
    if (append_string(out, (const uint8_t *)id, strlen(id)) != 0)
      APPEND_LIT(out, "null");
  }
  APPEND_LIT(out, ",\"message\":");
  if (append_string(out, (const uint8_t *)message, strlen(message)) != 0)
    APPEND_LIT(out, "null");
  APPEND_LIT(out, "}");
  return out->oom ? KWP_ENOMEM : 0;
}
