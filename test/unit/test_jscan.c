/* The zero-copy JSON reader: views, compaction, duplicate names, and a
 * differential test against jansson (the parser it replaced on the hot
 * path) over generated and mutated texts. */
#include "codec/json/jscan.h"
#include "test/unit/unit.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#define JFLAGS (JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL)

/* Read one whole value: 0 and its compact text, or -1. */
static int scan(const char *text, size_t len, kwp_js_t *js, kwp_slice_t *out) {
  kwp_js_init(js, text, len);
  return kwp_js_value(js, out) == 0 && kwp_js_end(js) == 0 ? 0 : -1;
}

KWP_TEST(jscan_views_and_compaction) {
  kwp_js_t js;
  kwp_slice_t s;
  const char *t = "\"plain text\"";
  kwp_js_init(&js, t, strlen(t));
  ASSERT_EQ(kwp_js_string(&js, &s), 0);
  ASSERT(s.ptr == t + 1 && s.len == 10);
  ASSERT(js.arena == NULL); /* nothing was copied */
  kwp_js_free(&js);
  t = "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\\u0000\"";
  kwp_js_init(&js, t, strlen(t));
  ASSERT_EQ(kwp_js_string(&js, &s), 0);
  ASSERT_EQ(s.len, 19);
  ASSERT(memcmp(s.ptr, "a\"b\\c/d\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80\0", 19) ==
         0);
  kwp_js_free(&js);
  t = "{\"a\":[1,{\"b\":null}],\"c\":\"x y\"}";
  ASSERT_EQ(scan(t, strlen(t), &js, &s), 0);
  ASSERT(s.ptr == t && s.len == strlen(t));
  kwp_js_free(&js);
  t = " { \"a\" :\n[ 1 ,\t{ \"b\" : null } ] , \"c\" : \"x y\" } ";
  ASSERT_EQ(scan(t, strlen(t), &js, &s), 0);
  ASSERT_EQ(s.len, strlen("{\"a\":[1,{\"b\":null}],\"c\":\"x y\"}"));
  ASSERT(memcmp(s.ptr, "{\"a\":[1,{\"b\":null}],\"c\":\"x y\"}", s.len) == 0);
  kwp_js_free(&js);
}

KWP_TEST(jscan_duplicate_names) {
  static const struct {
    const char *text;
    int ok;
  } cases[] = {
      {"{\"a\":1,\"a\":2}", 0},
      {"{\"a\":1,\"\\u0061\":2}", 0},
      {"{\"a\":{\"x\":1},\"b\":{\"x\":1}}", 1}, /* siblings may share names */
      {"{\"a\":{\"x\":1,\"y\":{\"x\":2}}}", 1},
      {"{\"a\":{\"x\":1,\"x\":2}}", 0},
      {"[{\"k\":1},{\"k\":2}]", 1},
      {"{\"\":1,\"\\u0000\":2}", 1},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    kwp_js_t js;
    kwp_slice_t s;
    ASSERT_EQ(scan(cases[i].text, strlen(cases[i].text), &js, &s) == 0,
              cases[i].ok);
    if (!cases[i].ok)
      ASSERT(strstr(js.err, "duplicate") != NULL);
    kwp_js_free(&js);
  }
  /* Many names: the sorted check, with the repeat far apart. */
  char big[8192];
  size_t n = 0;
  for (int rep = 0; rep < 2; rep++) {
    n = (size_t)snprintf(big, sizeof(big), "{");
    for (int i = 0; i < 500; i++)
      n += (size_t)snprintf(big + n, sizeof(big) - n, "%s\"k%d\":%d",
                            i ? "," : "", rep && i == 499 ? 3 : i, i);
    n += (size_t)snprintf(big + n, sizeof(big) - n, "}");
    kwp_js_t js;
    kwp_slice_t s;
    ASSERT_EQ(scan(big, n, &js, &s), rep ? -1 : 0);
    kwp_js_free(&js);
  }
}

KWP_TEST(jscan_depth_limit) {
  size_t n = KWP_JS_MAX_DEPTH + 1;
  char *t = malloc(2 * n);
  memset(t, '[', n);
  memset(t + n, ']', n);
  kwp_js_t js;
  kwp_slice_t s;
  ASSERT_EQ(scan(t, 2 * n, &js, &s), -1);
  ASSERT(strstr(js.err, "depth") != NULL);
  kwp_js_free(&js);
  ASSERT_EQ(scan(t + 1, 2 * n - 2, &js, &s), 0);
  kwp_js_free(&js);
  free(t);
}

/* --- differential: the same verdicts and values as jansson --- */

static uint64_t rng_state = 88172645463325252ULL;

static unsigned rnd(unsigned n) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (unsigned)(rng_state % n);
}

typedef struct gbuf {
  char d[4096];
  size_t n;
} gbuf_t;

static void g_put(gbuf_t *b, const char *s) {
  size_t l = strlen(s);
  if (b->n + l < sizeof(b->d)) {
    memcpy(b->d + b->n, s, l);
    b->n += l;
  }
}

static void g_ws(gbuf_t *b) {
  static const char *const ws[] = {"", "", "", " ", "\n", "\t ", "\r\n  "};
  g_put(b, ws[rnd(7)]);
}

static void g_string(gbuf_t *b) {
  static const char *const parts[] = {"a",
                                      "key",
                                      " ",
                                      "\\\"",
                                      "\\\\",
                                      "\\/",
                                      "\\n",
                                      "\\t",
                                      "\\b",
                                      "\\u0041",
                                      "\\u00e9",
                                      "\\u0000",
                                      "\xc3\xa9",
                                      "\xe2\x82\xac",
                                      "\xf0\x9f\x98\x80",
                                      "\\ud83d\\ude00",
                                      "value",
                                      "0123456789abcdef0123"};
  g_put(b, "\"");
  for (unsigned i = rnd(5); i > 0; i--)
    g_put(b, parts[rnd(sizeof(parts) / sizeof(parts[0]))]);
  g_put(b, "\"");
}

static void g_value(gbuf_t *b, int depth) {
  static const char *const nums[] = {"0",   "-0",      "1",        "-12",
                                     "0.5", "1e3",     "-2.25E-2", "123456",
                                     "1.0", "3.14159", "7E+1"};
  unsigned k = rnd(depth > 4 ? 6 : 8);
  switch (k) {
  case 0:
  case 1:
    g_string(b);
    break;
  case 2:
    g_put(b, nums[rnd(sizeof(nums) / sizeof(nums[0]))]);
    break;
  case 3:
    g_put(b, rnd(2) ? "true" : "false");
    break;
  case 4:
  case 5:
    g_put(b, "null");
    break;
  case 6: {
    g_put(b, "[");
    for (unsigned i = 0, n = rnd(4); i < n; i++) {
      g_ws(b);
      if (i)
        g_put(b, ",");
      g_ws(b);
      g_value(b, depth + 1);
    }
    g_ws(b);
    g_put(b, "]");
    break;
  }
  default: {
    g_put(b, "{");
    for (unsigned i = 0, n = rnd(4); i < n; i++) {
      g_ws(b);
      if (i)
        g_put(b, ",");
      g_ws(b);
      g_string(b); /* names may repeat: both must reject */
      g_ws(b);
      g_put(b, ":");
      g_ws(b);
      g_value(b, depth + 1);
    }
    g_ws(b);
    g_put(b, "}");
  }
  }
}

static void mutate(gbuf_t *b) {
  static const char junk[] = "{}[],:\"\\ 0-.eEaun\x01\x7f\x80\xc3\xff";
  if (!b->n)
    return;
  size_t at = rnd((unsigned)b->n);
  switch (rnd(3)) {
  case 0: /* delete */
    memmove(b->d + at, b->d + at + 1, b->n - at - 1);
    b->n--;
    break;
  case 1: /* replace */
    b->d[at] = junk[rnd(sizeof(junk) - 1)];
    break;
  default: /* insert */
    if (b->n + 1 < sizeof(b->d)) {
      memmove(b->d + at + 1, b->d + at, b->n - at);
      b->d[at] = junk[rnd(sizeof(junk) - 1)];
      b->n++;
    }
  }
}

/* What JSON allows and jansson refuses (numbers too big, \\u0000 in a
 * name): not compared. */
static int jansson_range_error(const json_error_t *e) {
  return strstr(e->text, "too big") || strstr(e->text, "overflow") ||
         strstr(e->text, "NUL byte in object key");
}

static int check_one(const gbuf_t *b, long *accepted) {
  json_error_t e;
  kwp_js_t js;
  kwp_slice_t s;
  json_t *want = json_loadb(b->d, b->n, JFLAGS, &e);
  int got = scan(b->d, b->n, &js, &s);
  int ok = 1;
  if (!want && jansson_range_error(&e)) {
    /* JSON allows it; nothing to compare */
  } else if ((want != NULL) != (got == 0)) {
    printf("verdicts differ (jansson %s, jscan %s) on: %.*s\n",
           want ? "accepts" : e.text, got ? js.err : "accepts", (int)b->n,
           b->d);
    ok = 0;
  } else if (want) {
    json_t *back = json_loadb(s.ptr, s.len, JFLAGS, NULL);
    if (!back || !json_equal(back, want) ||
        memchr(s.ptr, '\n', s.len) /* compact: no whitespace left */) {
      printf("compact text differs: %.*s -> %.*s\n", (int)b->n, b->d,
             (int)s.len, s.ptr);
      ok = 0;
    }
    json_decref(back);
    (*accepted)++;
  }
  json_decref(want);
  kwp_js_free(&js);
  return ok;
}

KWP_TEST(jscan_differential_vs_jansson) {
  long accepted = 0, total = 0;
  for (int i = 0; i < 20000; i++) {
    gbuf_t b = {.n = 0};
    g_ws(&b);
    g_value(&b, 0);
    g_ws(&b);
    for (unsigned m = i % 2 ? 1 + rnd(3) : 0; m > 0; m--)
      mutate(&b);
    total++;
    ASSERT(check_one(&b, &accepted));
  }
  /* both halves were exercised */
  ASSERT(accepted > total / 3 && accepted < total);
}

/* Each special byte at each position of a long string, across the 16- and
 * 8-byte scanning steps: the verdict and the decoded bytes match jansson's. */
KWP_TEST(jscan_string_special_every_position) {
  static const char *const specials[] = {"\\n",  "\\\"", "\x01",   "\xc3\xa9",
                                         "\xff", "\x7f", "\\u0000"};
  for (size_t k = 0; k < sizeof(specials) / sizeof(specials[0]); k++) {
    for (size_t pos = 0; pos < 150; pos++) { /* the 64-byte steps too */
      char t[160];
      size_t n = 0;
      t[n++] = '"';
      memset(t + n, 'a', pos);
      n += pos;
      memcpy(t + n, specials[k], strlen(specials[k]));
      n += strlen(specials[k]);
      memset(t + n, 'b', 150 - pos);
      n += 150 - pos;
      t[n++] = '"';
      json_t *want = json_loadb(t, n, JFLAGS, NULL);
      kwp_js_t js;
      kwp_slice_t s;
      kwp_js_init(&js, t, n);
      int got = kwp_js_string(&js, &s) == 0 && kwp_js_end(&js) == 0;
      ASSERT_EQ(got, want != NULL);
      if (want) {
        ASSERT_EQ(s.len, json_string_length(want));
        ASSERT(memcmp(s.ptr, json_string_value(want), s.len) == 0);
      }
      json_decref(want);
      kwp_js_free(&js);
    }
  }
}
