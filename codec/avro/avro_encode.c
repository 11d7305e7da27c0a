/*
 * JSON -> Avro binary (kwp_avro_from_json, see avro_json.h): the client's
 * JSON parsed by jansson, then walked beside the compiled schema, writing
 * zigzag varints and lengths straight into the output. Pure; any thread.
 */
#include "codec/avro/avro_int.h"

#include "core/base/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JFLAGS (JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL)

typedef struct enc {
  kwp_sbuf_t *out;
  kwp_av_err_t *e;
  int in_default;
  unsigned depth;
} enc_t;

static void put_long(kwp_sbuf_t *b, int64_t v) {
  uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
  char *d = kwp_sbuf_reserve(b, 10);
  if (!d)
    return;
  size_t i = 0;
  while (z > 0x7f) {
    d[i++] = (char)((z & 0x7f) | 0x80);
    z >>= 7;
  }
  d[i++] = (char)z;
  b->len += i;
}

static const char *kind_of(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    return "object";
  case JSON_ARRAY:
    return "array";
  case JSON_STRING:
    return "string";
  case JSON_INTEGER:
  case JSON_REAL:
    return "number";
  case JSON_TRUE:
  case JSON_FALSE:
    return "boolean";
  default:
    return "null";
  }
}

/* @p d in as few digits as read back the same, for messages. */
static const char *num_text(double d, char *buf, size_t len) {
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(buf, len, "%.*g", prec, d);
    if (strtod(buf, NULL) == d)
      break;
  }
  return buf;
}

/* "expected <type>, got <kind>" (numbers with their value). */
static int mismatch(enc_t *en, const kwp_av_node_t *n, const json_t *v) {
  char type[160], got[48], num[32];
  kwp_avro__type_desc(n, type, sizeof(type));
  if (json_is_integer(v))
    snprintf(got, sizeof(got), "number %" JSON_INTEGER_FORMAT,
             json_integer_value(v));
  else if (json_is_real(v))
    snprintf(got, sizeof(got), "number %s",
             num_text(json_real_value(v), num, sizeof(num)));
  else
    snprintf(got, sizeof(got), "%s", kind_of(v));
  kwp_avro__fail(en->e, KWP_AV_ERR_AT, "expected %s, got %s", type, got);
  return -1;
}

/* A string's code points as bytes (Avro's JSON encoding of bytes and fixed):
 * @returns how many, or -1 when one is over U+00FF (in @p bad). Writes them
 * to @p dst when not NULL (room for @p n). */
static long latin1(const char *s, size_t n, uint8_t *dst, uint32_t *bad) {
  const uint8_t *p = (const uint8_t *)s, *e = p + n;
  long count = 0;
  while (p < e) {
    uint32_t cp = *p;
    if (cp < 0x80) {
      p++;
    } else if ((cp == 0xc2 || cp == 0xc3) && p + 1 < e) {
      cp = (cp & 0x1f) << 6 | (p[1] & 0x3f);
      p += 2;
    } else {
      /* jansson checked the UTF-8: decode only to name the code point */
      int len = cp >= 0xf0 ? 4 : cp >= 0xe0 ? 3 : 2;
      cp &= 0xff >> (len + 1);
      for (int i = 1; i < len && p + i < e; i++)
        cp = cp << 6 | (p[i] & 0x3f);
      *bad = cp;
      return -1;
    }
    if (dst)
      dst[count] = (uint8_t)cp;
    count++;
  }
  return count;
}

static int special_double(const json_t *v, double *d) {
  const char *s = json_string_value(v);
  if (!s)
    return 0;
  if (!strcmp(s, "NaN"))
    *d = NAN;
  else if (!strcmp(s, "Infinity"))
    *d = INFINITY;
  else if (!strcmp(s, "-Infinity"))
    *d = -INFINITY;
  else
    return 0;
  return 1;
}

static long find_symbol(const kwp_av_node_t *n, const char *s) {
  for (size_t i = 0; i < n->n; i++)
    if (!strcmp(n->symbols[i], s))
      return (long)i;
  return -1;
}

static const kwp_av_field_t *find_field(const kwp_av_node_t *n,
                                        const char *name) {
  for (size_t i = 0; i < n->n; i++)
    if (!strcmp(n->fields[i].name, name))
      return &n->fields[i];
  return NULL;
}

/* Whether @p v's JSON type fits @p n, for a bare union value: shallow,
 * nested values are not looked at (no backtracking, linear time). */
static int fits(const kwp_av_node_t *n, const json_t *v) {
  uint32_t bad;
  switch (n->type) {
  case KWP_AV_NULL:
    return json_is_null(v);
  case KWP_AV_BOOLEAN:
    return json_is_boolean(v);
  case KWP_AV_INT:
    return json_is_integer(v) && json_integer_value(v) >= INT32_MIN &&
           json_integer_value(v) <= INT32_MAX;
  case KWP_AV_LONG:
    return json_is_integer(v);
  case KWP_AV_FLOAT:
  case KWP_AV_DOUBLE:
    /* "NaN" and the infinities only in the wrapped form: a bare string
     * goes to a string-like branch */
    return json_is_number(v);
  case KWP_AV_STRING:
    return json_is_string(v);
  case KWP_AV_BYTES:
  case KWP_AV_FIXED: {
    long count = json_is_string(v) ? latin1(json_string_value(v),
                                            json_string_length(v), NULL, &bad)
                                   : -1;
    return count >= 0 && (n->type == KWP_AV_BYTES || (size_t)count == n->n);
  }
  case KWP_AV_ENUM:
    return json_is_string(v) && find_symbol(n, json_string_value(v)) >= 0;
  case KWP_AV_ARRAY:
    return json_is_array(v);
  case KWP_AV_MAP:
    return json_is_object(v);
  case KWP_AV_RECORD: {
    const char *key;
    json_t *m;
    if (!json_is_object(v))
      return 0;
    json_object_foreach((json_t *)v, key, m) {
      if (!find_field(n, key))
        return 0;
    }
    for (size_t i = 0; i < n->n; i++)
      if (!n->fields[i].def && !json_object_get(v, n->fields[i].name))
        return 0;
    return 1;
  }
  default:
    return 0;
  }
}

static int enc_value(enc_t *en, const kwp_av_node_t *n, json_t *v);

static int enc_bytes(enc_t *en, const kwp_av_node_t *n, json_t *v) {
  uint32_t bad = 0;
  if (!json_is_string(v))
    return mismatch(en, n, v);
  const char *s = json_string_value(v);
  size_t len = json_string_length(v);
  long count = latin1(s, len, NULL, &bad);
  char type[160];
  kwp_avro__type_desc(n, type, sizeof(type));
  if (count < 0) {
    kwp_avro__fail(en->e, KWP_AV_ERR_AT,
                   "expected %s as a string of code points U+0000-U+00FF, "
                   "got U+%04X",
                   type, bad);
    return -1;
  }
  if (n->type == KWP_AV_FIXED && (size_t)count != n->n) {
    kwp_avro__fail(en->e, KWP_AV_ERR_AT, "expected %s, got %ld bytes", type,
                   count);
    return -1;
  }
  if (n->type == KWP_AV_BYTES)
    put_long(en->out, count);
  if (!count)
    return 0;
  uint8_t *d = (uint8_t *)kwp_sbuf_reserve(en->out, (size_t)count);
  if (d) {
    latin1(s, len, d, &bad);
    en->out->len += (size_t)count;
  }
  return 0;
}

static int enc_number(enc_t *en, const kwp_av_node_t *n, json_t *v) {
  double d;
  if (n->type == KWP_AV_INT || n->type == KWP_AV_LONG) {
    if (!json_is_integer(v))
      return mismatch(en, n, v);
    json_int_t i = json_integer_value(v);
    if (n->type == KWP_AV_INT && (i < INT32_MIN || i > INT32_MAX)) {
      kwp_avro__fail(en->e, KWP_AV_ERR_AT,
                     "%" JSON_INTEGER_FORMAT " is out of range for int", i);
      return -1;
    }
    put_long(en->out, i);
    return 0;
  }
  if (json_is_number(v))
    d = json_number_value(v);
  else if (!special_double(v, &d))
    return mismatch(en, n, v);
  char *p = kwp_sbuf_reserve(en->out, 8);
  if (!p)
    return 0;
  if (n->type == KWP_AV_FLOAT) {
    /* what rounds to FLT_MAX is fine (the decoder prints FLT_MAX as
     * 3.4028235e+38, above it); the cast of what is beyond is undefined */
    if (isfinite(d) && fabs(d) >= 0x1.ffffffp+127) {
      char num[32];
      kwp_avro__fail(en->e, KWP_AV_ERR_AT, "%s is out of range for float",
                     num_text(d, num, sizeof(num)));
      return -1;
    }
    float f = (float)d;
    uint32_t u;
    memcpy(&u, &f, 4);
    for (int i = 0; i < 4; i++)
      p[i] = (char)(u >> (8 * i));
    en->out->len += 4;
  } else {
    uint64_t u;
    memcpy(&u, &d, 8);
    for (int i = 0; i < 8; i++)
      p[i] = (char)(u >> (8 * i));
    en->out->len += 8;
  }
  return 0;
}

/* A member of @p v that is not a field of @p n, as an error. */
static int unknown_member(enc_t *en, const kwp_av_node_t *n, json_t *v) {
  const char *key;
  json_t *m;
  json_object_foreach(v, key, m) {
    if (!find_field(n, key)) {
      kwp_avro__path_field(en->e, key);
      kwp_avro__fail(en->e, KWP_AV_ERR_UNKNOWN, " (not in record %s)", n->name);
      return -1;
    }
  }
  return 0;
}

static int enc_record(enc_t *en, const kwp_av_node_t *n, json_t *v) {
  if (!json_is_object(v))
    return mismatch(en, n, v);
  size_t found = 0;
  for (size_t i = 0; i < n->n; i++) {
    const kwp_av_field_t *f = &n->fields[i];
    json_t *m = json_object_get(v, f->name);
    if (m) {
      found++;
      if (enc_value(en, f->type, m)) {
        kwp_avro__path_field(en->e, f->name);
        return -1;
      }
    } else if (en->in_default && f->jdef) {
      if (enc_value(en, f->type, f->jdef))
        return -1;
    } else if (f->def) {
      if (f->def_len) /* a null default: nothing (and no memcpy on NULL) */
        kwp_sbuf_append(en->out, f->def, f->def_len);
    } else {
      /* a misspelt member is likelier than a forgotten one: name it */
      if (unknown_member(en, n, v))
        return -1;
      kwp_avro__path_field(en->e, f->name);
      kwp_avro__fail(en->e, KWP_AV_ERR_MISSING, "%s",
                     f->bad_def ? " (its schema default does not fit its type)"
                                : "");
      return -1;
    }
  }
  if (found < json_object_size(v))
    return unknown_member(en, n, v);
  return 0;
}

static int enc_array(enc_t *en, const kwp_av_node_t *n, json_t *v) {
  if (!json_is_array(v))
    return mismatch(en, n, v);
  size_t count = json_array_size(v);
  if (count)
    put_long(en->out, (int64_t)count);
  for (size_t i = 0; i < count; i++) {
    if (enc_value(en, n->kids[0], json_array_get(v, i))) {
      kwp_avro__path_index(en->e, i);
      return -1;
    }
  }
  put_long(en->out, 0);
  return 0;
}

static int enc_map(enc_t *en, const kwp_av_node_t *n, json_t *v) {
  const char *key;
  json_t *m;
  if (!json_is_object(v))
    return mismatch(en, n, v);
  if (json_object_size(v))
    put_long(en->out, (int64_t)json_object_size(v));
  json_object_foreach(v, key, m) {
    size_t klen = strlen(key); /* jansson refuses NUL in names */
    put_long(en->out, (int64_t)klen);
    kwp_sbuf_append(en->out, key, klen);
    if (enc_value(en, n->kids[0], m)) {
      kwp_avro__path_key(en->e, key, klen);
      return -1;
    }
  }
  put_long(en->out, 0);
  return 0;
}

static long branch_named(const kwp_av_node_t *n, const char *name) {
  for (size_t i = 0; i < n->n; i++)
    if (!strcmp(kwp_avro__branch_name(n->kids[i]), name))
      return (long)i;
  for (size_t i = 0; i < n->n; i++) /* a named type's short name */
    if (n->kids[i]->name && !strcmp(n->kids[i]->short_name, name))
      return (long)i;
  return -1;
}

static int enc_union(enc_t *en, const kwp_av_node_t *n, json_t *v) {
  long b = -1;
  if (en->in_default) {
    b = 0; /* a default is for the first branch (Avro specification) */
  } else if (json_is_object(v) && json_object_size(v) == 1) {
    const char *key = json_object_iter_key(json_object_iter(v));
    if ((b = branch_named(n, key)) >= 0)
      v = json_object_get(v, key);
  }
  for (size_t i = 0; b < 0 && i < n->n; i++)
    if (fits(n->kids[i], v))
      b = (long)i;
  if (b < 0)
    return mismatch(en, n, v);
  put_long(en->out, b);
  return enc_value(en, n->kids[b], v);
}

static int enc_value(enc_t *en, const kwp_av_node_t *n, json_t *v) {
  switch (n->type) {
  case KWP_AV_NULL:
    return json_is_null(v) ? 0 : mismatch(en, n, v);
  case KWP_AV_BOOLEAN:
    if (!json_is_boolean(v))
      return mismatch(en, n, v);
    kwp_sbuf_append(en->out, json_is_true(v) ? "\1" : "\0", 1);
    return 0;
  case KWP_AV_INT:
  case KWP_AV_LONG:
  case KWP_AV_FLOAT:
  case KWP_AV_DOUBLE:
    return enc_number(en, n, v);
  case KWP_AV_STRING:
    if (!json_is_string(v))
      return mismatch(en, n, v);
    put_long(en->out, (int64_t)json_string_length(v));
    kwp_sbuf_append(en->out, json_string_value(v), json_string_length(v));
    return 0;
  case KWP_AV_BYTES:
  case KWP_AV_FIXED:
    return enc_bytes(en, n, v);
  case KWP_AV_ENUM: {
    long i = json_is_string(v) ? find_symbol(n, json_string_value(v)) : -1;
    if (!json_is_string(v))
      return mismatch(en, n, v);
    if (i < 0) {
      kwp_avro__fail(en->e, KWP_AV_ERR_AT, "'%.64s' is not a symbol of enum %s",
                     json_string_value(v), n->name);
      return -1;
    }
    put_long(en->out, i);
    return 0;
  }
  case KWP_AV_UNION:
    return enc_union(en, n, v);
  default:
    break;
  }
  /* records, arrays, maps */
  if (en->depth >= KWP_AVRO_MAX_DEPTH) {
    kwp_avro__fail(en->e, KWP_AV_ERR_AT, "nested deeper than %d",
                   KWP_AVRO_MAX_DEPTH);
    return -1;
  }
  en->depth++;
  int r = n->type == KWP_AV_RECORD  ? enc_record(en, n, v)
          : n->type == KWP_AV_ARRAY ? enc_array(en, n, v)
                                    : enc_map(en, n, v);
  en->depth--;
  return r;
}

int kwp_avro__encode(const kwp_av_node_t *n, json_t *v, int in_default,
                     kwp_sbuf_t *out, kwp_av_err_t *e) {
  enc_t en = {out, e, in_default, 0};
  return enc_value(&en, n, v);
}

int kwp_avro_from_json(const kwp_avro_schema_t *sch, const char *json,
                       size_t len, kwp_sbuf_t *out, char *why, size_t whylen) {
  json_error_t je;
  kwp_av_err_t e;
  size_t start = out->len;
  json_t *v = json_loadb(json, len, JFLAGS, &je);
  if (!v) {
    int range = json_error_code(&je) == json_error_numeric_overflow;
    snprintf(why, whylen, "%s%s at position %d",
             range ? "a number out of range: " : "not JSON: ", je.text,
             je.position);
    return range ? KWP_EBADVALUE : KWP_EJSON;
  }
  kwp_avro__err_init(&e);
  int r = kwp_avro__encode(sch->root, v, 0, out, &e);
  json_decref(v);
  return kwp_avro__finish(out, start, r, &e, why, whylen);
}
