/*
 * Avro binary -> JSON text (kwp_avro_to_json, see avro_json.h): the datum
 * walked beside the compiled schema, every read checked against the bytes
 * left, JSON written straight into the output. Pure; any thread.
 */
#include "codec/avro/avro_int.h"

#include "codec/json/jscan.h"
#include "codec/ws/ws.h"
#include "core/base/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define APPEND_LIT(b, s) kwp_sbuf_append((b), (s), sizeof(s) - 1)

typedef struct dec {
  const uint8_t *start, *p, *end;
  kwp_sbuf_t *out;
  kwp_av_err_t *e;
  unsigned depth;
  size_t empty_left; /* zero-byte array items still allowed */
} dec_t;

static int bad(dec_t *d, const char *what, size_t at) {
  kwp_avro__fail(d->e, KWP_AV_ERR_AT, "%s at byte %zu", what, at);
  return -1;
}

static int need(dec_t *d, size_t n, const char *what) {
  char msg[96];
  if ((size_t)(d->end - d->p) >= n)
    return 0;
  snprintf(msg, sizeof(msg), "truncated %s: %zu bytes needed, %zu left", what,
           n, (size_t)(d->end - d->p));
  return bad(d, msg, (size_t)(d->p - d->start));
}

static int read_long(dec_t *d, int64_t *v, const char *what) {
  uint64_t z = 0;
  size_t at = (size_t)(d->p - d->start);
  for (int shift = 0;; shift += 7) {
    if (d->p >= d->end)
      return need(d, 1, what);
    uint8_t b = *d->p++;
    if (shift == 63 && b > 1)
      return bad(d, "varint longer than 10 bytes or over 64 bits", at);
    z |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80))
      break;
  }
  *v = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
  return 0;
}

/* A length (strings, bytes, map keys) that fits in the bytes left. */
static int read_len(dec_t *d, size_t *len, const char *what) {
  int64_t v;
  size_t at = (size_t)(d->p - d->start);
  char msg[96];
  if (read_long(d, &v, what))
    return -1;
  if (v < 0) {
    snprintf(msg, sizeof(msg), "negative %s length %lld", what, (long long)v);
    return bad(d, msg, at);
  }
  if ((uint64_t)v > (uint64_t)(d->end - d->p)) {
    snprintf(msg, sizeof(msg), "%s length %lld over the %zu bytes left", what,
             (long long)v, (size_t)(d->end - d->p));
    return bad(d, msg, at);
  }
  *len = (size_t)v;
  return 0;
}

/* Append @p n bytes as a JSON string: text (UTF-8, checked) or bytes (each
 * byte a code point: \u00XX unless printable ASCII). */
static int put_string(dec_t *d, const uint8_t *s, size_t n, int bytes) {
  static const char hex[] = "0123456789abcdef";
  kwp_sbuf_t *b = d->out;
  if (!bytes) {
    kwp_utf8_t u = {0};
    if (kwp_utf8_feed(&u, s, n) || !kwp_utf8_complete(&u))
      return bad(d, "invalid UTF-8 in a string", (size_t)(s - d->start));
  }
  APPEND_LIT(b, "\"");
  for (size_t i = 0; i < n;) {
    /* in chunks: the worst case (\u00XX) is 6 output bytes per input byte */
    size_t chunk = n - i < 4096 ? n - i : 4096;
    uint64_t high = 0;
    char *o = kwp_sbuf_reserve(b, 6 * chunk);
    if (!o)
      return 0;
    size_t end = i + chunk;
    while (i < end) {
      size_t run =
          bytes ? 0 : kwp_js_plain_copy((uint8_t *)o, s + i, s + end, &high);
      o += run;
      i += run;
      if (i >= end)
        break;
      uint8_t c = s[i++];
      if (c == '"' || c == '\\') {
        *o++ = '\\';
        *o++ = (char)c;
      } else if (c == '\n' || c == '\t' || c == '\r') {
        *o++ = '\\';
        *o++ = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
      } else if (c < 0x20 || (bytes && c >= 0x7f)) {
        memcpy(o, "\\u00", 4);
        o[4] = hex[c >> 4];
        o[5] = hex[c & 15];
        o += 6;
      } else {
        *o++ = (char)c;
      }
    }
    b->len = (size_t)(o - b->data);
  }
  APPEND_LIT(b, "\"");
  return 0;
}

/* Shortest text that reads back as the same value; "1.0" for whole
 * numbers, as Java prints them. */
static void put_real(kwp_sbuf_t *b, double v, int is_float) {
  char buf[40];
  if (isnan(v)) {
    APPEND_LIT(b, "\"NaN\"");
    return;
  }
  if (isinf(v)) {
    if (v > 0)
      APPEND_LIT(b, "\"Infinity\"");
    else
      APPEND_LIT(b, "\"-Infinity\"");
    return;
  }
  for (int prec = is_float ? 6 : 15; prec <= 17; prec++) {
    snprintf(buf, sizeof(buf), "%.*g", prec, v);
    if (is_float ? strtof(buf, NULL) == (float)v : strtod(buf, NULL) == v)
      break;
  }
  size_t n = strlen(buf);
  if (!strpbrk(buf, ".e"))
    memcpy(buf + n, ".0", 3), n += 2;
  kwp_sbuf_append(b, buf, n);
}

static int dec_value(dec_t *d, const kwp_av_node_t *n);

static int dec_scalar(dec_t *d, const kwp_av_node_t *n) {
  int64_t v;
  char buf[24];
  size_t at = (size_t)(d->p - d->start), len;
  switch (n->type) {
  case KWP_AV_NULL:
    APPEND_LIT(d->out, "null");
    return 0;
  case KWP_AV_BOOLEAN:
    if (need(d, 1, "boolean"))
      return -1;
    if (*d->p > 1)
      return bad(d, "boolean byte not 0 or 1", at);
    if (*d->p++)
      APPEND_LIT(d->out, "true");
    else
      APPEND_LIT(d->out, "false");
    return 0;
  case KWP_AV_INT:
  case KWP_AV_LONG:
    if (read_long(d, &v, n->type == KWP_AV_INT ? "int" : "long"))
      return -1;
    if (n->type == KWP_AV_INT && (v < INT32_MIN || v > INT32_MAX))
      return bad(d, "int out of range", at);
    kwp_sbuf_append(d->out, buf,
                    (size_t)snprintf(buf, sizeof(buf), "%lld", (long long)v));
    return 0;
  case KWP_AV_FLOAT:
  case KWP_AV_DOUBLE: {
    size_t size = n->type == KWP_AV_FLOAT ? 4 : 8;
    uint64_t u = 0;
    if (need(d, size, n->type == KWP_AV_FLOAT ? "float" : "double"))
      return -1;
    for (size_t i = 0; i < size; i++)
      u |= (uint64_t)d->p[i] << (8 * i);
    d->p += size;
    if (size == 4) {
      uint32_t u32 = (uint32_t)u;
      float f;
      memcpy(&f, &u32, 4);
      put_real(d->out, f, 1);
    } else {
      double x;
      memcpy(&x, &u, 8);
      put_real(d->out, x, 0);
    }
    return 0;
  }
  case KWP_AV_STRING:
  case KWP_AV_BYTES:
    if (read_len(d, &len, n->type == KWP_AV_STRING ? "string" : "bytes"))
      return -1;
    d->p += len;
    return put_string(d, d->p - len, len, n->type == KWP_AV_BYTES);
  case KWP_AV_FIXED:
    if (need(d, n->n, "fixed"))
      return -1;
    d->p += n->n;
    return put_string(d, d->p - n->n, n->n, 1);
  default: /* enum */
    if (read_long(d, &v, "enum index"))
      return -1;
    if (v < 0 || (uint64_t)v >= n->n)
      return bad(d, "enum index out of range", at);
    kwp_sbuf_append(d->out, n->sym_json[v], strlen(n->sym_json[v]));
    return 0;
  }
}

/* An array or map block's item count, checked against the bytes left
 * (@p item_min bytes each at least) or the empty-item budget. @returns 0
 * with @p count 0 at the end of the blocks, or -1. */
static int read_block(dec_t *d, size_t item_min, uint64_t *count) {
  int64_t v, size;
  size_t at = (size_t)(d->p - d->start);
  char msg[96];
  if (read_long(d, &v, "block count"))
    return -1;
  if (v < 0) { /* a negative count is followed by the block's byte size */
    if (v == INT64_MIN)
      return bad(d, "block count out of range", at);
    v = -v;
    if (read_long(d, &size, "block size"))
      return -1;
    if (size < 0)
      return bad(d, "negative block size", at);
  }
  *count = (uint64_t)v;
  if (item_min == 0) {
    if (*count > d->empty_left) {
      snprintf(msg, sizeof(msg), "over %d items of no bytes",
               KWP_AVRO_MAX_EMPTY_ITEMS);
      return bad(d, msg, at);
    }
    d->empty_left -= *count;
  } else if (*count > (size_t)(d->end - d->p) / item_min) {
    snprintf(msg, sizeof(msg), "block count %llu over the %zu bytes left",
             (unsigned long long)*count, (size_t)(d->end - d->p));
    return bad(d, msg, at);
  }
  return 0;
}

static int dec_array(dec_t *d, const kwp_av_node_t *n) {
  uint64_t count;
  size_t i = 0;
  APPEND_LIT(d->out, "[");
  for (;;) {
    if (read_block(d, n->kids[0]->min_size, &count))
      return -1;
    if (!count)
      break;
    for (; count; count--, i++) {
      if (i)
        APPEND_LIT(d->out, ",");
      if (dec_value(d, n->kids[0])) {
        kwp_avro__path_index(d->e, i);
        return -1;
      }
    }
  }
  APPEND_LIT(d->out, "]");
  return 0;
}

static int dec_map(dec_t *d, const kwp_av_node_t *n) {
  uint64_t count;
  size_t i = 0, len;
  APPEND_LIT(d->out, "{");
  for (;;) {
    if (read_block(d, 1 + n->kids[0]->min_size, &count))
      return -1;
    if (!count)
      break;
    for (; count; count--, i++) {
      if (i)
        APPEND_LIT(d->out, ",");
      if (read_len(d, &len, "map key"))
        return -1;
      const uint8_t *key = d->p;
      d->p += len;
      if (put_string(d, key, len, 0))
        return -1;
      APPEND_LIT(d->out, ":");
      if (dec_value(d, n->kids[0])) {
        kwp_avro__path_key(d->e, (const char *)key, len);
        return -1;
      }
    }
  }
  APPEND_LIT(d->out, "}");
  return 0;
}

static int dec_record(dec_t *d, const kwp_av_node_t *n) {
  APPEND_LIT(d->out, "{");
  for (size_t i = 0; i < n->n; i++) {
    const kwp_av_field_t *f = &n->fields[i];
    if (i)
      APPEND_LIT(d->out, ",");
    kwp_sbuf_append(d->out, f->key, f->key_len);
    if (dec_value(d, f->type)) {
      kwp_avro__path_field(d->e, f->name);
      return -1;
    }
  }
  APPEND_LIT(d->out, "}");
  return 0;
}

static int dec_union(dec_t *d, const kwp_av_node_t *n) {
  int64_t v;
  size_t at = (size_t)(d->p - d->start);
  if (read_long(d, &v, "union index"))
    return -1;
  if (v < 0 || (uint64_t)v >= n->n)
    return bad(d, "union index out of range", at);
  const kwp_av_node_t *k = n->kids[v];
  if (k->type == KWP_AV_NULL) {
    APPEND_LIT(d->out, "null");
    return 0;
  }
  kwp_sbuf_append(d->out, n->wrap[v], strlen(n->wrap[v]));
  if (dec_value(d, k))
    return -1;
  APPEND_LIT(d->out, "}");
  return 0;
}

static int dec_value(dec_t *d, const kwp_av_node_t *n) {
  int r;
  switch (n->type) {
  case KWP_AV_UNION:
    return dec_union(d, n);
  case KWP_AV_RECORD:
  case KWP_AV_ARRAY:
  case KWP_AV_MAP:
    if (d->depth >= KWP_AVRO_MAX_DEPTH) {
      char msg[48];
      snprintf(msg, sizeof(msg), "nested deeper than %d", KWP_AVRO_MAX_DEPTH);
      return bad(d, msg, (size_t)(d->p - d->start));
    }
    d->depth++;
    r = n->type == KWP_AV_RECORD  ? dec_record(d, n)
        : n->type == KWP_AV_ARRAY ? dec_array(d, n)
                                  : dec_map(d, n);
    d->depth--;
    return r;
  default:
    return dec_scalar(d, n);
  }
}

int kwp_avro_to_json(const kwp_avro_schema_t *sch, const uint8_t *data,
                     size_t len, kwp_sbuf_t *out, char *why, size_t whylen) {
  kwp_av_err_t e;
  size_t start = out->len;
  dec_t d = {data, data, data + len, out, &e, 0, KWP_AVRO_MAX_EMPTY_ITEMS};
  kwp_avro__err_init(&e);
  int r = dec_value(&d, sch->root);
  if (r == 0 && d.p != d.end) {
    char msg[64];
    snprintf(msg, sizeof(msg), "%zu bytes after the value",
             (size_t)(d.end - d.p));
    r = bad(&d, msg, (size_t)(d.p - d.start));
  }
  return kwp_avro__finish(out, start, r, &e, why, whylen);
}
