/* The zero-copy JSON reader (codec/json/jscan.h). Recursive descent over the
 * text; values being compacted are cut at whitespace, and the pieces are
 * joined in the arena only when there was whitespace to drop. Pure; any
 * thread. */
#include "codec/json/jscan.h"

#include "codec/ws/ws.h"

#include <stdio.h>
#include <stdlib.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* Compaction of one value: the text from @p seg on is not yet in the arena;
 * @p cut says whether pieces already are (from @p start). */
typedef struct js_out {
  const char *seg;
  size_t start;
  int cut;
} js_out_t;

static int js_val(kwp_js_t *js, js_out_t *o);

void kwp_js_init(kwp_js_t *js, const char *text, size_t len) {
  /* Everything but keys_inline, which is written before it is read: the
   * whole struct is 480 bytes per parsed message, and clearing it showed as
   * 1.6 % of the proxy's CPU samples producing 100 B records. */
  memset(js, 0, offsetof(kwp_js_t, keys_inline));
  js->text = js->p = text;
  js->end = text + len;
  js->keys = js->keys_inline;
  js->keys_cap = sizeof(js->keys_inline) / sizeof(js->keys_inline[0]);
}

void kwp_js_free(kwp_js_t *js) {
  free(js->arena);
  if (js->keys != js->keys_inline)
    free(js->keys);
  js->arena = NULL;
  js->keys = js->keys_inline;
  js->arena_len = js->arena_cap = js->nkeys = 0;
}

static int js_fail(kwp_js_t *js, const char *why) {
  if (!js->err) {
    js->err = why;
    js->err_at = (size_t)(js->p - js->text);
  }
  js->p = js->end; /* sticky: nothing more is read */
  return -1;
}

void kwp_js_error(const kwp_js_t *js, char *buf, size_t len) {
  snprintf(buf, len, "%s at position %zu", js->err ? js->err : "no error",
           js->err_at);
}

/* Room for @p n bytes. Everything written to the arena is a decoded or
 * compacted copy of input (at most twice the input, plus a NUL per
 * number), so one allocation of 3x + 64 never has to move. */
static char *arena_take(kwp_js_t *js, size_t n) {
  if (!js->arena) {
    js->arena_cap = 3 * (size_t)(js->end - js->text) + 64;
    if (!(js->arena = malloc(js->arena_cap)))
      return NULL;
  }
  if (js->arena_cap - js->arena_len < n)
    return NULL;
  char *d = js->arena + js->arena_len;
  js->arena_len += n;
  return d;
}

static int is_ws(char c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/* Skip whitespace; inside a value being compacted, cut it out. */
static void js_ws(kwp_js_t *js, js_out_t *o) {
  const char *w = js->p;
  while (js->p < js->end && is_ws(*js->p))
    js->p++;
  if (!o || js->p == w)
    return;
  size_t n = (size_t)(w - o->seg);
  char *d = arena_take(js, n);
  if (!d) {
    js_fail(js, "out of memory");
    return;
  }
  memcpy(d, o->seg, n);
  o->seg = js->p;
  o->cut = 1;
}

int kwp_js_peek(kwp_js_t *js) {
  js_ws(js, NULL);
  return js->p < js->end ? (unsigned char)*js->p : -1;
}

int kwp_js_end(kwp_js_t *js) {
  if (js->err)
    return -1;
  return kwp_js_peek(js) < 0 ? 0 : js_fail(js, "end of input expected");
}

/* --- strings --- */

static int hex4(const char *p) {
  int v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    int d = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                   : -1;
    if (d < 0)
      return -1;
    v = v << 4 | d;
  }
  return v;
}

static size_t utf8_put(char *d, unsigned cp) {
  if (cp < 0x80) {
    d[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    d[0] = (char)(0xC0 | cp >> 6);
    d[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    d[0] = (char)(0xE0 | cp >> 12);
    d[1] = (char)(0x80 | (cp >> 6 & 0x3F));
    d[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  d[0] = (char)(0xF0 | cp >> 18);
  d[1] = (char)(0x80 | (cp >> 12 & 0x3F));
  d[2] = (char)(0x80 | (cp >> 6 & 0x3F));
  d[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* One escape at @p p (the backslash), within @p e. Writes its bytes to
 * @p d when not NULL. @returns the escape's length in the input, or 0 when
 * it is invalid (with @p why). */
static size_t unescape_one(const char *p, const char *e, char *d, size_t *dn,
                           const char **why) {
  static const char simple_in[] = "\"\\/bfnrt",
                    simple_out[] = "\"\\/\b\f\n\r\t";
  *dn = 0;
  if (e - p < 2) {
    *why = "unterminated string";
    return 0;
  }
  const char *s = memchr(simple_in, p[1], sizeof(simple_in) - 1);
  if (s) { /* memchr looks at the 8 letters, not the NUL */
    if (d)
      d[0] = simple_out[s - simple_in];
    *dn = 1;
    return 2;
  }
  int cp = p[1] == 'u' && e - p >= 6 ? hex4(p + 2) : -1;
  if (cp < 0) {
    *why = "invalid escape in string";
    return 0;
  }
  size_t used = 6;
  if (cp >= 0xDC00 && cp <= 0xDFFF) {
    *why = "invalid \\u escape (lone low surrogate)";
    return 0;
  }
  if (cp >= 0xD800 && cp <= 0xDBFF) {
    int lo = e - p >= 12 && p[6] == '\\' && p[7] == 'u' ? hex4(p + 8) : -1;
    if (lo < 0xDC00 || lo > 0xDFFF) {
      *why = "invalid \\u escape (lone high surrogate)";
      return 0;
    }
    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    used = 12;
  }
  char tmp[4];
  *dn = utf8_put(d ? d : tmp, (unsigned)cp);
  return used;
}

/* Decode the (validated) raw text of a string into @p d; @returns its
 * length. */
static size_t unescape(const char *raw, size_t len, char *d) {
  const char *p = raw, *e = raw + len;
  size_t n = 0, dn;
  const char *why;
  while (p < e) {
    const char *bs = memchr(p, '\\', (size_t)(e - p));
    size_t run = (size_t)((bs ? bs : e) - p);
    memcpy(d + n, p, run);
    n += run;
    if (!bs)
      break;
    p = bs + unescape_one(bs, e, d + n, &dn, &why);
    n += dn;
  }
  return n;
}

/*
 * Whether any of the 8 bytes at @p p is '"', '\\' or a control (< 0x20):
 * the bytes a JSON string cannot carry as they are. Bytes >= 0x80 are not
 * (UTF-8 passes). The usual "has a zero byte" trick, on the bytes XORed
 * with the character and on the bytes minus 0x20.
 */
static int word_special(const uint8_t *p) {
  const uint64_t ones = 0x0101010101010101ULL, highs = KWP_UTF8_HIGH_BITS;
  uint64_t w;
  memcpy(&w, p, 8);
  uint64_t q = w ^ (ones * '"'), bs = w ^ (ones * '\\');
  uint64_t ctl = (w - ones * 0x20) & ~w & highs;
  uint64_t zq = (q - ones) & ~q & highs, zb = (bs - ones) & ~bs & highs;
  return (ctl | zq | zb) != 0;
}

#ifdef __SSE2__
/* 0xFF for each byte of @p v that is '"', '\\' or a control. */
static inline __m128i plain_bad(__m128i v, __m128i quote, __m128i bslash,
                                __m128i ctl) {
  /* x <= 0x1F unsigned: max(x, 0x1F) == 0x1F */
  return _mm_or_si128(
      _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
      _mm_cmpeq_epi8(_mm_max_epu8(v, ctl), ctl));
}
#endif

/* The plain prefix of [p, e), copied to @p dst unless it is NULL (the
 * copy rides on the scan's loads: one pass over the bytes). */
static inline size_t plain_span(uint8_t *dst, const uint8_t *p,
                                const uint8_t *e, uint64_t *high) {
  const uint8_t *q = p;
  uint64_t acc = 0, w;
#ifdef __SSE2__
  /* 16 bytes at a time; SSE2 is part of x86-64, so no runtime check. */
  const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
  const __m128i ctl = _mm_set1_epi8(0x1F);
  __m128i hi = _mm_setzero_si128();
  /* 64 bytes per test while nothing needs escaping (one branch instead of
   * four; the common case for record values), then 16 at a time to find
   * where. */
  while (e - q >= 64) {
    /* A record's value is cold (librdkafka's broker thread received it, on
     * either core). Proxy CPU s per million 1 KB records, 16 sockets: 1.32
     * with no prefetch; 1.16 asking 6 lines ahead, 1.10 at 12 lines, 1.13 at
     * 16 (6 to 12 runs each). A prefetch past the end never faults. */
    _mm_prefetch((const char *)q + 768, _MM_HINT_T0);
    __m128i v0 = _mm_loadu_si128((const __m128i *)q);
    __m128i v1 = _mm_loadu_si128((const __m128i *)(q + 16));
    __m128i v2 = _mm_loadu_si128((const __m128i *)(q + 32));
    __m128i v3 = _mm_loadu_si128((const __m128i *)(q + 48));
    __m128i bad = _mm_or_si128(_mm_or_si128(plain_bad(v0, quote, bslash, ctl),
                                            plain_bad(v1, quote, bslash, ctl)),
                               _mm_or_si128(plain_bad(v2, quote, bslash, ctl),
                                            plain_bad(v3, quote, bslash, ctl)));
    if (_mm_movemask_epi8(bad))
      break;
    if (dst) {
      _mm_storeu_si128((__m128i *)(dst + (q - p)), v0);
      _mm_storeu_si128((__m128i *)(dst + (q - p) + 16), v1);
      _mm_storeu_si128((__m128i *)(dst + (q - p) + 32), v2);
      _mm_storeu_si128((__m128i *)(dst + (q - p) + 48), v3);
    }
    hi = _mm_or_si128(hi,
                      _mm_or_si128(_mm_or_si128(v0, v1), _mm_or_si128(v2, v3)));
    q += 64;
  }
  while (e - q >= 16) {
    __m128i v = _mm_loadu_si128((const __m128i *)q);
    if (_mm_movemask_epi8(plain_bad(v, quote, bslash, ctl)))
      break;
    if (dst)
      _mm_storeu_si128((__m128i *)(dst + (q - p)), v);
    hi = _mm_or_si128(hi, v);
    q += 16;
  }
  if (_mm_movemask_epi8(hi))
    acc = 0x80;
#endif
  while (e - q >= 8 && !word_special(q)) {
    memcpy(&w, q, 8);
    if (dst)
      memcpy(dst + (q - p), &w, 8);
    acc |= w;
    q += 8;
  }
  while (q < e && *q != '"' && *q != '\\' && *q >= 0x20) {
    if (dst)
      dst[q - p] = *q;
    acc |= *q++;
  }
  *high |= acc;
  return (size_t)(q - p);
}

size_t kwp_js_plain_run(const uint8_t *p, const uint8_t *e, uint64_t *high) {
  return plain_span(NULL, p, e, high);
}

size_t kwp_js_plain_copy(uint8_t *dst, const uint8_t *p, const uint8_t *e,
                         uint64_t *high) {
  return plain_span(dst, p, e, high);
}

/* The string at the cursor: its raw text (between the quotes) in @p raw,
 * @p escaped when it has escapes. Validates escapes and UTF-8. */
static int js_str_raw(kwp_js_t *js, kwp_slice_t *raw, int *escaped) {
  const uint8_t *q = (const uint8_t *)js->p + 1, *e = (const uint8_t *)js->end;
  uint64_t high = 0;
  *escaped = 0;
  for (;;) {
    q += kwp_js_plain_run(q, e, &high);
    if (q == e) {
      js->p = (const char *)q;
      return js_fail(js, "unterminated string");
    }
    if (*q == '"')
      break;
    if (*q == '\\') {
      const char *why;
      size_t dn, used = unescape_one((const char *)q, (const char *)e, NULL,
                                     &dn, &why);
      if (!used) {
        js->p = (const char *)q;
        return js_fail(js, why);
      }
      *escaped = 1;
      q += used;
      continue;
    }
    js->p = (const char *)q; /* a control character */
    return js_fail(js, "control character in string");
  }
  raw->ptr = js->p + 1;
  raw->len = (size_t)((const char *)q - raw->ptr);
  if (high & KWP_UTF8_HIGH_BITS) {
    kwp_utf8_t u = {0, 0};
    if (kwp_utf8_feed(&u, (const uint8_t *)raw->ptr, raw->len) < 0 ||
        !kwp_utf8_complete(&u))
      return js_fail(js, "invalid UTF-8 in string");
  }
  js->p = (const char *)q + 1;
  return 0;
}

int kwp_js_string(kwp_js_t *js, kwp_slice_t *out) {
  kwp_slice_t raw;
  int escaped;
  if (kwp_js_peek(js) != '"')
    return js_fail(js, "expected a string");
  if (js_str_raw(js, &raw, &escaped) < 0)
    return -1;
  if (!escaped) {
    *out = raw;
    return 0;
  }
  char *d = arena_take(js, raw.len);
  if (!d)
    return js_fail(js, "out of memory");
  out->ptr = d;
  out->len = unescape(raw.ptr, raw.len, d);
  js->arena_len -= raw.len - out->len; /* give back what decoding saved */
  return 0;
}

/* --- numbers and literals --- */

static int is_digit(const char *p, const char *e) {
  return p < e && *p >= '0' && *p <= '9';
}

int kwp_js_number(kwp_js_t *js, kwp_slice_t *tok, int *integral) {
  kwp_js_peek(js);
  const char *q = js->p, *e = js->end;
  *integral = 1;
  if (q < e && *q == '-')
    q++;
  if (!is_digit(q, e))
    return js_fail(js, "invalid number");
  if (*q == '0')
    q++;
  else
    while (is_digit(q, e))
      q++;
  if (q < e && *q == '.') {
    if (!is_digit(++q, e))
      return js_fail(js, "invalid number");
    while (is_digit(q, e))
      q++;
    *integral = 0;
  }
  if (q < e && (*q == 'e' || *q == 'E')) {
    q++;
    if (q < e && (*q == '+' || *q == '-'))
      q++;
    if (!is_digit(q, e))
      return js_fail(js, "invalid number");
    while (is_digit(q, e))
      q++;
    *integral = 0;
  }
  tok->ptr = js->p;
  tok->len = (size_t)(q - js->p);
  js->p = q;
  return 0;
}

static int js_literal(kwp_js_t *js, const char *lit, size_t n) {
  if ((size_t)(js->end - js->p) < n || memcmp(js->p, lit, n))
    return js_fail(js, "invalid literal");
  js->p += n;
  return 0;
}

/* --- objects and arrays --- */

static int key_cmp(const void *a, const void *b) {
  const kwp_js_key_t *x = a, *y = b;
  if (x->len != y->len)
    return x->len < y->len ? -1 : 1;
  return memcmp(x->raw, y->raw, x->len);
}

/* Whether the names of the object that starts at key @p first repeat.
 * Names with escapes are compared decoded ("a" and "\u0061" are one). */
static int keys_repeat(kwp_js_t *js, size_t first) {
  kwp_js_key_t *k = js->keys + first;
  size_t n = js->nkeys - first, total = 0, off = 0;
  char *tmp = NULL;
  int dup = 0;
  if (n < 2)
    return 0;
  for (size_t i = 0; i < n; i++)
    total += k[i].escaped ? k[i].len : 0;
  if (total && !(tmp = malloc(total)))
    return -1;
  for (size_t i = 0; i < n; i++) {
    if (!k[i].escaped)
      continue;
    size_t len = unescape(k[i].raw, k[i].len, tmp + off);
    k[i].raw = tmp + off;
    k[i].len = len;
    off += len;
  }
  if (n <= 8) { /* the usual small object: no sort */
    for (size_t i = 0; i < n && !dup; i++)
      for (size_t j = i + 1; j < n && !dup; j++)
        dup = !key_cmp(&k[i], &k[j]);
  } else {
    qsort(k, n, sizeof(*k), key_cmp);
    for (size_t i = 1; i < n && !dup; i++)
      dup = !key_cmp(&k[i - 1], &k[i]);
  }
  free(tmp);
  return dup;
}

static int key_push(kwp_js_t *js, kwp_slice_t raw, int escaped) {
  if (js->nkeys == js->keys_cap) {
    size_t cap = js->keys_cap * 2;
    kwp_js_key_t *k = js->keys == js->keys_inline
                          ? malloc(cap * sizeof(*k))
                          : realloc(js->keys, cap * sizeof(*k));
    if (!k)
      return -1;
    if (js->keys == js->keys_inline)
      memcpy(k, js->keys_inline, sizeof(js->keys_inline));
    js->keys = k;
    js->keys_cap = cap;
  }
  js->keys[js->nkeys++] = (kwp_js_key_t){raw.ptr, raw.len, escaped};
  return 0;
}

static int js_open(kwp_js_t *js, kwp_js_iter_t *it, char c) {
  if (js->p >= js->end || *js->p != c)
    return js_fail(js, c == '{' ? "expected an object" : "expected an array");
  if (++js->depth > KWP_JS_MAX_DEPTH)
    return js_fail(js, "maximum nesting depth reached");
  js->p++;
  it->first_key = js->nkeys;
  it->n = 0;
  return 0;
}

static int obj_close(kwp_js_t *js, kwp_js_iter_t *it) {
  int r = keys_repeat(js, it->first_key);
  js->nkeys = it->first_key;
  js->depth--;
  if (r)
    return js_fail(js, r < 0 ? "out of memory" : "duplicate object key");
  return 0;
}

/* Past ',' or at the end; @returns 1 when an item follows, 0 after the
 * closing @p close, -1. */
static int js_next(kwp_js_t *js, kwp_js_iter_t *it, char close, js_out_t *o) {
  js_ws(js, o);
  if (js->p >= js->end)
    return js_fail(js, "unexpected end of input");
  if (*js->p == close) {
    js->p++;
    return 0;
  }
  if (it->n) {
    if (*js->p != ',')
      return js_fail(js, close == '}' ? "expected ',' or '}'"
                                      : "expected ',' or ']'");
    js->p++;
    js_ws(js, o);
  }
  it->n++;
  return 1;
}

static int member(kwp_js_t *js, kwp_js_iter_t *it, kwp_slice_t *name,
                  js_out_t *o) {
  int r = js_next(js, it, '}', o);
  if (r <= 0)
    return r < 0 ? -1 : obj_close(js, it);
  kwp_slice_t raw;
  int escaped;
  if (js->p >= js->end || *js->p != '"')
    return js_fail(js, "expected a member name");
  if (js_str_raw(js, &raw, &escaped) < 0 || key_push(js, raw, escaped) < 0)
    return js_fail(js, "out of memory");
  if (name && !escaped) {
    *name = raw;
  } else if (name) {
    char *d = arena_take(js, raw.len);
    if (!d)
      return js_fail(js, "out of memory");
    name->ptr = d;
    name->len = unescape(raw.ptr, raw.len, d);
  }
  js_ws(js, o);
  if (js->p >= js->end || *js->p != ':')
    return js_fail(js, "expected ':'");
  js->p++;
  js_ws(js, o);
  return 1;
}

int kwp_js_object(kwp_js_t *js, kwp_js_iter_t *it) {
  kwp_js_peek(js);
  return js_open(js, it, '{');
}

int kwp_js_member(kwp_js_t *js, kwp_js_iter_t *it, kwp_slice_t *name) {
  return js->err ? -1 : member(js, it, name, NULL);
}

int kwp_js_array(kwp_js_t *js, kwp_js_iter_t *it) {
  kwp_js_peek(js);
  return js_open(js, it, '[');
}

int kwp_js_element(kwp_js_t *js, kwp_js_iter_t *it) {
  if (js->err)
    return -1;
  int r = js_next(js, it, ']', NULL);
  if (r == 0)
    js->depth--;
  return r;
}

/* --- any value --- */

static int js_obj(kwp_js_t *js, js_out_t *o) {
  kwp_js_iter_t it;
  int r;
  if (js_open(js, &it, '{') < 0)
    return -1;
  while ((r = member(js, &it, NULL, o)) > 0)
    if (js_val(js, o) < 0)
      return -1;
  return r;
}

static int js_arr(kwp_js_t *js, js_out_t *o) {
  kwp_js_iter_t it;
  int r;
  if (js_open(js, &it, '[') < 0)
    return -1;
  while ((r = js_next(js, &it, ']', o)) > 0)
    if (js_val(js, o) < 0)
      return -1;
  if (r == 0)
    js->depth--;
  return r;
}

static int js_val(kwp_js_t *js, js_out_t *o) {
  kwp_slice_t s;
  int flag;
  if (js->p >= js->end)
    return js_fail(js, "unexpected end of input");
  switch (*js->p) {
  case '{':
    return js_obj(js, o);
  case '[':
    return js_arr(js, o);
  case '"':
    return js_str_raw(js, &s, &flag);
  case 't':
    return js_literal(js, "true", 4);
  case 'f':
    return js_literal(js, "false", 5);
  case 'n':
    return js_literal(js, "null", 4);
  default:
    if (*js->p == '-' || (*js->p >= '0' && *js->p <= '9'))
      return kwp_js_number(js, &s, &flag);
    return js_fail(js, "unexpected character");
  }
}

int kwp_js_value(kwp_js_t *js, kwp_slice_t *out) {
  if (kwp_js_peek(js) < 0)
    return js_fail(js, "unexpected end of input");
  js_out_t o = {js->p, js->arena_len, 0};
  const char *start = js->p;
  if (js_val(js, out ? &o : NULL) < 0)
    return -1;
  if (!out)
    return 0;
  if (!o.cut) { /* no whitespace inside: the input is the compact text */
    out->ptr = start;
    out->len = (size_t)(js->p - start);
    return 0;
  }
  size_t n = (size_t)(js->p - o.seg);
  char *d = arena_take(js, n);
  if (!d)
    return js_fail(js, "out of memory");
  memcpy(d, o.seg, n);
  out->ptr = js->arena + o.start;
  out->len = js->arena_len - o.start;
  return 0;
}
