/* Format types: names, JSON value -> Kafka bytes (Kafka's big-endian
 * primitive serializers), Kafka bytes -> JSON value, and strict base64.
 * Pure functions, any thread. */
#include "codec/json/format.h"

#include "core/base/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void kwp_bytes_clear(kwp_bytes_t *b) {
  free(b->owned);
  memset(b, 0, sizeof(*b));
}

/* --- base64 --- */

static const char b64_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_val(unsigned char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  return c == '+' ? 62 : c == '/' ? 63 : -1;
}

long kwp_base64_decode(const char *in, size_t len, uint8_t *out) {
  size_t o = 0;
  if (len % 4)
    return -1;
  for (size_t i = 0; i < len; i += 4) {
    int v[4], pad = 0;
    for (int j = 0; j < 4; j++) {
      unsigned char c = (unsigned char)in[i + j];
      /* '=' only as the last one or two characters of the input */
      if (c == '=' && i + 4 == len && j >= 2 && (j == 3 || in[i + 3] == '=')) {
        v[j] = 0;
        pad++;
      } else if ((v[j] = b64_val(c)) < 0) {
        return -1;
      }
    }
    uint32_t n = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
                 (uint32_t)v[2] << 6 | (uint32_t)v[3];
    out[o++] = (uint8_t)(n >> 16);
    if (pad < 2)
      out[o++] = (uint8_t)(n >> 8);
    if (pad < 1)
      out[o++] = (uint8_t)n;
  }
  return (long)o;
}

size_t kwp_base64_encode(const uint8_t *in, size_t len, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < len; i += 3) {
    uint32_t n = (uint32_t)in[i] << 16;
    if (i + 1 < len)
      n |= (uint32_t)in[i + 1] << 8;
    if (i + 2 < len)
      n |= in[i + 2];
    out[o++] = b64_chars[n >> 18 & 63];
    out[o++] = b64_chars[n >> 12 & 63];
    out[o++] = i + 1 < len ? b64_chars[n >> 6 & 63] : '=';
    out[o++] = i + 2 < len ? b64_chars[n & 63] : '=';
  }
  out[o] = 0;
  return o;
}

/* --- encode --- */

static void put_be(uint8_t *p, uint64_t v, int n) {
  for (int i = n - 1; i >= 0; i--, v >>= 8)
    p[i] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++)
    v = v << 8 | p[i];
  return v;
}

char *kwp_i64_text(char *end, int64_t v) {
  static const char pairs[] = "00010203040506070809101112131415161718192021222"
                              "32425262728293031323334353637383940414243444546"
                              "47484950515253545556575859606162636465666768697"
                              "07172737475767778798081828384858687888990919293"
                              "949596979899";
  uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
  while (u >= 100) { /* two digits per division: half of them */
    end -= 2;
    memcpy(end, pairs + 2 * (u % 100), 2);
    u /= 100;
  }
  if (u >= 10) {
    end -= 2;
    memcpy(end, pairs + 2 * u, 2);
  } else {
    *--end = (char)('0' + u);
  }
  if (v < 0)
    *--end = '-';
  return end;
}

char *kwp_put_i64(char *d, int64_t v) {
  char num[24], *e = num + sizeof(num), *b = kwp_i64_text(e, v);
  return kwp_put(d, b, (size_t)(e - b));
}

/* A misfit: the value is skipped so the rest of the message is still read
 * (its messageId goes into the error result). */
static int misfit(kwp_js_t *js, const char **why, const char *text) {
  *why = text;
  kwp_js_value(js, NULL);
  return KWP_EBADREQ;
}

static int is_number_start(int c) {
  return c == '-' || (c >= '0' && c <= '9');
}

/* An integral number token into int64; -1 when out of its range. */
static int token_i64(kwp_slice_t tok, int64_t *out) {
  const char *p = tok.ptr, *e = tok.ptr + tok.len;
  int neg = *p == '-';
  uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  for (p += neg; p < e; p++) {
    unsigned d = (unsigned)(*p - '0');
    if (v > (lim - d) / 10)
      return -1;
    v = v * 10 + d;
  }
  *out = neg ? (int64_t)(0 - v) : (int64_t)v;
  return 0;
}

static int encode_integer(kwp_js_t *js, int width, kwp_bytes_t *out,
                          const char **why) {
  static const int64_t lim[] = {0, 0, INT16_MAX, 0,        INT32_MAX,
                                0, 0, 0,         INT64_MAX};
  static const char *const range[] = {NULL,
                                      NULL,
                                      "number out of range for short",
                                      NULL,
                                      "number out of range for int",
                                      NULL,
                                      NULL,
                                      NULL,
                                      "number out of range for long"};
  kwp_slice_t tok;
  int integral;
  int64_t n;
  if (!is_number_start(kwp_js_peek(js)))
    return misfit(js, why, "expected an integer number");
  if (kwp_js_number(js, &tok, &integral) < 0)
    return KWP_EBADREQ;
  if (!integral) {
    *why = "expected an integer number";
    return KWP_EBADREQ;
  }
  if (token_i64(tok, &n) < 0 || n > lim[width] || n < -lim[width] - 1) {
    *why = range[width];
    return KWP_EBADREQ;
  }
  put_be(out->inline_buf, (uint64_t)n, width);
  out->ptr = out->inline_buf;
  out->len = (size_t)width;
  return 0;
}

static int encode_real(kwp_js_t *js, int width, kwp_bytes_t *out,
                       const char **why) {
  kwp_slice_t tok;
  int integral;
  char num[64], *heap = NULL, *text = num;
  if (!is_number_start(kwp_js_peek(js)))
    return misfit(js, why, "expected a number");
  if (kwp_js_number(js, &tok, &integral) < 0)
    return KWP_EBADREQ;
  if (tok.len >= sizeof(num) && !(text = heap = malloc(tok.len + 1))) {
    *why = "out of memory";
    return KWP_ENOMEM;
  }
  memcpy(text, tok.ptr, tok.len); /* strtod wants a NUL */
  text[tok.len] = 0;
  /* A float is rounded from the text once: through a double it could be
   * rounded twice and land one unit off (1.00000005960464477550 is just
   * above the midpoint between 1 and the next float). */
  double d = width == 4 ? 0 : strtod(text, NULL);
  float f = width == 4 ? strtof(text, NULL) : 0;
  free(heap);
  if (!isfinite(d) || !isfinite(f)) {
    *why = width == 4 ? "number out of range for float"
                      : "number out of range for double";
    return KWP_EBADREQ;
  }
  if (width == 4) {
    uint32_t u;
    memcpy(&u, &f, 4);
    put_be(out->inline_buf, u, 4);
  } else {
    uint64_t u;
    memcpy(&u, &d, 8);
    put_be(out->inline_buf, u, 8);
  }
  out->ptr = out->inline_buf;
  out->len = (size_t)width;
  return 0;
}

static int encode_base64(kwp_js_t *js, kwp_bytes_t *out, const char **why) {
  kwp_slice_t s;
  if (kwp_js_peek(js) != '"')
    return misfit(js, why, "expected a base64 string");
  if (kwp_js_string(js, &s) < 0)
    return KWP_EBADREQ;
  out->owned = malloc(s.len / 4 * 3 + 1);
  if (!out->owned) {
    *why = "out of memory";
    return KWP_ENOMEM;
  }
  long n = kwp_base64_decode(s.ptr, s.len, out->owned);
  if (n < 0) {
    kwp_bytes_clear(out);
    *why = "invalid base64";
    return KWP_EBADREQ;
  }
  out->ptr = out->owned;
  out->len = (size_t)n;
  return 0;
}

static int encode_view(kwp_js_t *js, kwp_fmt_t fmt, kwp_bytes_t *out,
                       const char **why) {
  kwp_slice_t s;
  if (fmt == KWP_FMT_STRING && kwp_js_peek(js) != '"')
    return misfit(js, why, "expected a string");
  if ((fmt == KWP_FMT_STRING ? kwp_js_string(js, &s) : kwp_js_value(js, &s)) <
      0)
    return KWP_EBADREQ;
  out->ptr = (const uint8_t *)s.ptr;
  out->len = s.len;
  return 0;
}

int kwp_fmt_encode(kwp_fmt_t fmt, kwp_js_t *js, kwp_bytes_t *out,
                   const char **why) {
  memset(out, 0, sizeof(*out));
  *why = "invalid JSON";
  switch (fmt) {
  case KWP_FMT_JSON:
  case KWP_FMT_STRING:
    return encode_view(js, fmt, out, why);
  case KWP_FMT_BYTEARRAY:
  case KWP_FMT_AVRO:
    return encode_base64(js, out, why);
  case KWP_FMT_SHORT:
    return encode_integer(js, 2, out, why);
  case KWP_FMT_INT:
    return encode_integer(js, 4, out, why);
  case KWP_FMT_LONG:
    return encode_integer(js, 8, out, why);
  case KWP_FMT_FLOAT:
    return encode_real(js, 4, out, why);
  case KWP_FMT_DOUBLE:
    return encode_real(js, 8, out, why);
  default:
    return misfit(js, why, "no format type");
  }
}

/* --- decode --- */

static json_t *decode_base64(const uint8_t *p, size_t len) {
  char *s = malloc((len + 2) / 3 * 4 + 1);
  if (!s)
    return NULL;
  size_t n = kwp_base64_encode(p, len, s);
  json_t *v = json_stringn_nocheck(s, n);
  free(s);
  return v;
}

static json_t *decode_real(const uint8_t *p, size_t len, int width) {
  if (len != (size_t)width)
    return NULL;
  uint64_t u = get_be(p, width);
  double d;
  if (width == 4) {
    uint32_t u32 = (uint32_t)u;
    float f;
    memcpy(&f, &u32, 4);
    d = f;
  } else {
    memcpy(&d, &u, 8);
  }
  return isfinite(d) ? json_real(d) : NULL; /* JSON has no NaN/Inf */
}

json_t *kwp_fmt_decode(kwp_fmt_t fmt, const uint8_t *p, size_t len) {
  switch (fmt) {
  case KWP_FMT_JSON:
    return json_loadb((const char *)p, len, JSON_DECODE_ANY | JSON_ALLOW_NUL,
                      NULL);
  case KWP_FMT_STRING:
    return json_stringn((const char *)p, len); /* NULL unless valid UTF-8 */
  case KWP_FMT_BYTEARRAY:
  case KWP_FMT_AVRO:
    return decode_base64(p, len);
  case KWP_FMT_SHORT:
    return len == 2 ? json_integer((int16_t)get_be(p, 2)) : NULL;
  case KWP_FMT_INT:
    return len == 4 ? json_integer((int32_t)get_be(p, 4)) : NULL;
  case KWP_FMT_LONG:
    return len == 8 ? json_integer((json_int_t)get_be(p, 8)) : NULL;
  case KWP_FMT_FLOAT:
    return decode_real(p, len, 4);
  case KWP_FMT_DOUBLE:
    return decode_real(p, len, 8);
  default:
    return NULL;
  }
}
