/* Format types, the /socket/in message codec, query parameters and the rate
 * limiter. */
#include "codec/json/format.h"
#include "codec/json/json_produce.h"
#include "core/base/error.h"
#include "core/endpoint/ratelimit.h"
#include "core/net/query.h"
#include "test/unit/unit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static void encode_ok(kwp_fmt_t fmt, const char *json, const uint8_t *want,
                      size_t want_len) {
  const char *why = NULL;
  kwp_bytes_t b;
  kwp_js_t js;
  json_t *v = json_loads(json, JSON_DECODE_ANY, NULL);
  ASSERT(v != NULL);
  kwp_js_init(&js, json, strlen(json));
  ASSERT_EQ(kwp_fmt_encode(fmt, &js, &b, &why), 0);
  ASSERT_EQ(kwp_js_end(&js), 0);
  ASSERT_EQ(b.len, want_len);
  ASSERT(memcmp(b.ptr, want, want_len) == 0);
  /* and back */
  json_t *back = kwp_fmt_decode(fmt, b.ptr, b.len);
  ASSERT(back != NULL);
  ASSERT(json_equal(back, v) ||
         (json_is_number(v) && json_is_number(back) &&
          fabs(json_number_value(back) - json_number_value(v)) < 1e-6));
  json_decref(back);
  kwp_bytes_clear(&b);
  kwp_js_free(&js);
  json_decref(v);
}

static void encode_bad(kwp_fmt_t fmt, const char *json) {
  const char *why = NULL;
  kwp_bytes_t b;
  kwp_js_t js;
  kwp_js_init(&js, json, strlen(json));
  ASSERT_EQ(kwp_fmt_encode(fmt, &js, &b, &why), KWP_EBADREQ);
  ASSERT(why != NULL);
  ASSERT(js.err == NULL); /* a misfit, read past: not invalid JSON */
  ASSERT_EQ(kwp_js_end(&js), 0);
  kwp_bytes_clear(&b);
  kwp_js_free(&js);
}

KWP_TEST(format_names) {
  kwp_fmt_t f;
  ASSERT_EQ(kwp_fmt_parse("JSON", 4, &f), 0);
  ASSERT_EQ(f, KWP_FMT_JSON);
  ASSERT_EQ(kwp_fmt_parse("byte_array", 10, &f), 0);
  ASSERT_EQ(f, KWP_FMT_BYTEARRAY);
  ASSERT_EQ(kwp_fmt_parse("Short", 5, &f), 0);
  ASSERT_EQ(f, KWP_FMT_SHORT);
  ASSERT_EQ(kwp_fmt_parse("xml", 3, &f), KWP_EBADREQ);
  ASSERT_EQ(kwp_fmt_parse("json2", 5, &f), KWP_EBADREQ);
  ASSERT_STREQ(kwp_fmt_name(KWP_FMT_DOUBLE), "double");
}

KWP_TEST(format_encode_primitives) {
  encode_ok(KWP_FMT_INT, "258", (const uint8_t *)"\x00\x00\x01\x02", 4);
  encode_ok(KWP_FMT_INT, "-1", (const uint8_t *)"\xff\xff\xff\xff", 4);
  encode_ok(KWP_FMT_INT, "2147483647", (const uint8_t *)"\x7f\xff\xff\xff", 4);
  encode_ok(KWP_FMT_SHORT, "-32768", (const uint8_t *)"\x80\x00", 2);
  encode_ok(KWP_FMT_LONG, "-9223372036854775808",
            (const uint8_t *)"\x80\x00\x00\x00\x00\x00\x00\x00", 8);
  encode_ok(KWP_FMT_DOUBLE, "1.5",
            (const uint8_t *)"\x3f\xf8\x00\x00\x00\x00\x00\x00", 8);
  encode_ok(KWP_FMT_FLOAT, "1.5", (const uint8_t *)"\x3f\xc0\x00\x00", 4);
  /* Rounded once from the text: via a double it was 3f800000 (1.0). */
  encode_ok(KWP_FMT_FLOAT, "1.00000005960464477550",
            (const uint8_t *)"\x3f\x80\x00\x01", 4);
  encode_ok(KWP_FMT_STRING, "\"h\\u00e9\"", (const uint8_t *)"h\xc3\xa9", 3);
  encode_ok(KWP_FMT_JSON, "{\"a\": [1, 2]}", (const uint8_t *)"{\"a\":[1,2]}",
            11);
  encode_ok(KWP_FMT_BYTEARRAY, "\"AAH/\"", (const uint8_t *)"\x00\x01\xff", 3);
  encode_ok(KWP_FMT_BYTEARRAY, "\"\"", (const uint8_t *)"", 0);
}

KWP_TEST(format_encode_rejects_misfits) {
  encode_bad(KWP_FMT_INT, "2147483648");
  encode_bad(KWP_FMT_INT, "1.5");
  encode_bad(KWP_FMT_INT, "\"12\"");
  encode_bad(KWP_FMT_SHORT, "32768");
  encode_bad(KWP_FMT_LONG, "true");
  encode_bad(KWP_FMT_DOUBLE, "\"x\"");
  encode_bad(KWP_FMT_FLOAT, "1e300");
  encode_bad(KWP_FMT_STRING, "12");
  encode_bad(KWP_FMT_BYTEARRAY, "\"abc\"");  /* not a multiple of 4 */
  encode_bad(KWP_FMT_BYTEARRAY, "\"ab=c\""); /* padding in the middle */
  encode_bad(KWP_FMT_BYTEARRAY, "\"a*==\""); /* not base64 */
  encode_bad(KWP_FMT_LONG, "9223372036854775808");
  encode_bad(KWP_FMT_LONG, "-9223372036854775809");
  encode_bad(KWP_FMT_LONG, "123456789012345678901234567890");
  encode_bad(KWP_FMT_DOUBLE, "1e400");
  encode_bad(KWP_FMT_STRING, "{\"a\": [1, {\"b\": null}]}");
}

/* json values keep the client's exact number text (jansson stored 0.1 as
 * 0.10000000000000001) and lose only insignificant whitespace. */
KWP_TEST(format_encode_json_exact_text) {
  static const struct {
    const char *in, *out;
  } cases[] = {
      {"0.1", "0.1"},
      {" {\"p\" : 0.1 , \"q\":1E+2,\"r\":-0 } ",
       "{\"p\":0.1,\"q\":1E+2,\"r\":-0}"},
      {"[ 12345678901234567890123 , 1e400 ]",
       "[12345678901234567890123,1e400]"},
      {"\"a \\u00e9 \\n\"", "\"a \\u00e9 \\n\""},
      {"{\"k\":\" keep  spaces \"}", "{\"k\":\" keep  spaces \"}"},
      {"\t[\r\n]", "[]"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    kwp_js_t js;
    kwp_bytes_t b;
    const char *why;
    kwp_js_init(&js, cases[i].in, strlen(cases[i].in));
    ASSERT_EQ(kwp_fmt_encode(KWP_FMT_JSON, &js, &b, &why), 0);
    ASSERT_EQ(b.len, strlen(cases[i].out));
    ASSERT(memcmp(b.ptr, cases[i].out, b.len) == 0);
    kwp_bytes_clear(&b);
    kwp_js_free(&js);
  }
}

KWP_TEST(format_decode_rejects_bad_bytes) {
  ASSERT(kwp_fmt_decode(KWP_FMT_INT, (const uint8_t *)"\x00\x01", 2) == NULL);
  ASSERT(kwp_fmt_decode(KWP_FMT_STRING, (const uint8_t *)"\xc0\x80", 2) ==
         NULL);
  ASSERT(kwp_fmt_decode(KWP_FMT_JSON, (const uint8_t *)"{", 1) == NULL);
  json_t *v = kwp_fmt_decode(KWP_FMT_JSON, (const uint8_t *)"42", 2);
  ASSERT(json_is_integer(v) && json_integer_value(v) == 42);
  json_decref(v);
}

/* 0, or -1 with the result frame's error code in @p code. */
static int parse(const char *text, kwp_fmt_t kf, kwp_fmt_t vf,
                 kwp_produce_msg_t *m, const char **code) {
  char why[256];
  int err =
      kwp_produce_msg_parse(text, strlen(text), kf, vf, m, why, sizeof(why));
  *code = err ? kwp_err_result_code(err) : NULL;
  return err ? -1 : 0;
}

KWP_TEST(produce_msg_full) {
  kwp_produce_msg_t m;
  const char *code = NULL;
  ASSERT_EQ(parse("{\"headers\":[{\"key\":\"h1\",\"value\":\"v1\"}],"
                  "\"key\":{\"value\":7,\"format\":\"int\"},"
                  "\"value\":{\"value\":\"hello\",\"format\":\"string\"},"
                  "\"messageId\":\"m-1\"}",
                  KWP_FMT_INT, KWP_FMT_STRING, &m, &code),
            0);
  ASSERT(m.has_key);
  ASSERT_EQ(m.key.len, 4);
  ASSERT(memcmp(m.key.ptr, "\0\0\0\7", 4) == 0);
  ASSERT_EQ(m.value.len, 5);
  ASSERT(memcmp(m.value.ptr, "hello", 5) == 0);
  ASSERT_EQ(m.nheaders, 1);
  ASSERT_EQ(m.headers[0].key_len, 2);
  ASSERT(memcmp(m.headers[0].key, "h1", 2) == 0);
  ASSERT_EQ(m.message_id.len, 5);
  ASSERT(memcmp(m.message_id.ptr, "\"m-1\"", 5) == 0);
  kwp_produce_msg_clear(&m);
  /* "format": null is "not given" (it was an invalid_value error) */
  ASSERT_EQ(parse("{\"key\":{\"value\":\"k\",\"format\":null},"
                  "\"value\":{\"format\":null,\"value\":\"v\"}}",
                  KWP_FMT_STRING, KWP_FMT_STRING, &m, &code),
            0);
  ASSERT(m.has_key && m.key.len == 1 && m.value.len == 1);
  kwp_produce_msg_clear(&m);
}

KWP_TEST(produce_msg_errors) {
  kwp_produce_msg_t m;
  const char *code = NULL;
  static const struct {
    const char *text;
    kwp_fmt_t kf, vf;
    const char *code;
  } cases[] = {
      {"nope", KWP_FMT_NONE, KWP_FMT_STRING, "invalid_json"},
      {"{\"headers\":[{\"key\":\"a\\u0000b\",\"value\":\"v\"}],"
       "\"value\":{\"value\":\"x\"}}",
       KWP_FMT_NONE, KWP_FMT_STRING, "invalid_headers"},
      {"[1]", KWP_FMT_NONE, KWP_FMT_STRING, "invalid_message"},
      {"{\"messageId\":\"x\"}", KWP_FMT_NONE, KWP_FMT_STRING,
       "invalid_message"},
      {"{\"value\":{\"value\":1,\"format\":\"int\"}}", KWP_FMT_NONE,
       KWP_FMT_STRING, "invalid_value"},
      {"{\"value\":{\"value\":\"a\",\"format\":\"xml\"}}", KWP_FMT_NONE,
       KWP_FMT_STRING, "invalid_value"},
      {"{\"value\":{\"value\":\"a\"},\"key\":{\"value\":\"k\"}}", KWP_FMT_NONE,
       KWP_FMT_STRING, "invalid_key"},
      {"{\"value\":{\"value\":\"a\"},\"key\":{\"value\":\"k\"}}", KWP_FMT_LONG,
       KWP_FMT_STRING, "invalid_key"},
      {"{\"value\":{\"value\":\"a\"},\"headers\":[{\"key\":1}]}", KWP_FMT_NONE,
       KWP_FMT_STRING, "invalid_headers"},
      {"{\"value\":{\"value\":\"a\"},\"headers\":{}}", KWP_FMT_NONE,
       KWP_FMT_STRING, "invalid_headers"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    code = NULL;
    ASSERT_EQ(parse(cases[i].text, cases[i].kf, cases[i].vf, &m, &code), -1);
    ASSERT_STREQ(code, cases[i].code);
    kwp_produce_msg_clear(&m);
  }
  /* The id survives a bad value so the error result can carry it. */
  ASSERT_EQ(parse("{\"messageId\":\"id9\",\"value\":{\"value\":true}}",
                  KWP_FMT_NONE, KWP_FMT_LONG, &m, &code),
            -1);
  ASSERT_STREQ(code, "invalid_value");
  ASSERT_EQ(m.message_id.len, 5);
  ASSERT(memcmp(m.message_id.ptr, "\"id9\"", 5) == 0);
  kwp_produce_msg_clear(&m);
}

KWP_TEST(produce_result_frames) {
  char ok[KWP_PRODUCE_RESULT_OK_MAX(1, 5) + 1];
  size_t n =
      kwp_produce_result_ok(ok, "t", 1, 2, 41, 1700000000000LL, "\"abc\"", 5);
  ok[n] = 0;
  ASSERT_STREQ(ok, "{\"topic\":\"t\",\"partition\":2,\"offset\":41,"
                   "\"timestamp\":1700000000000,\"messageId\":\"abc\","
                   "\"clientMessageId\":\"abc\"}");
  /* the longest numbers fit the bound */
  char big[KWP_PRODUCE_RESULT_OK_MAX(1, 4) + 1];
  n = kwp_produce_result_ok(big, "t", 1, INT32_MIN, INT64_MIN, INT64_MIN, NULL,
                            0);
  ASSERT(n <= KWP_PRODUCE_RESULT_OK_MAX(1, 4));
  big[n] = 0;
  ASSERT(strstr(big, "\"messageId\":null,\"clientMessageId\":null}") != NULL);
  char *err = kwp_produce_result_err(NULL, 0, KWP_EJSON, "bad \"x\"");
  ASSERT_STREQ(err, "{\"messageId\":null,\"clientMessageId\":null,"
                    "\"error\":\"invalid_json\",\"message\":\"bad "
                    "\\\"x\\\"\"}");
  free(err);
  err = kwp_produce_result_err("[1,2]", 5, KWP_EBUSY, "m");
  ASSERT_STREQ(err, "{\"messageId\":[1,2],\"clientMessageId\":[1,2],"
                    "\"error\":\"busy\",\"message\":\"m\"}");
  free(err);
}

/* The common message is read without a copy: the value is a view into the
 * text; the id comes back as the client wrote it, compacted. */
KWP_TEST(produce_msg_views_and_ids) {
  kwp_produce_msg_t m;
  char why[256];
  static const char text[] =
      "{ \"value\" : {\"value\":\"payload\"}, \"messageId\": { \"x\" : [1, "
      "2.50] } }";
  ASSERT_EQ(kwp_produce_msg_parse(text, sizeof(text) - 1, KWP_FMT_NONE,
                                  KWP_FMT_STRING, &m, why, sizeof(why)),
            0);
  ASSERT((const char *)m.value.ptr > text &&
         (const char *)m.value.ptr < text + sizeof(text));
  ASSERT(m.js.arena_len == strlen("{\"x\":[1,2.50]}"));
  ASSERT_EQ(m.message_id.len, strlen("{\"x\":[1,2.50]}"));
  ASSERT(memcmp(m.message_id.ptr, "{\"x\":[1,2.50]}", m.message_id.len) == 0);
  kwp_produce_msg_clear(&m);
  /* json values too, and an escaped member name is still "value" */
  static const char js[] =
      "{\"val\\u0075e\":{\"value\":{\"p\":0.1}},\"messageId\":7}";
  ASSERT_EQ(kwp_produce_msg_parse(js, sizeof(js) - 1, KWP_FMT_NONE,
                                  KWP_FMT_JSON, &m, why, sizeof(why)),
            0);
  ASSERT_EQ(m.value.len, strlen("{\"p\":0.1}"));
  ASSERT(memcmp(m.value.ptr, "{\"p\":0.1}", m.value.len) == 0);
  ASSERT((const char *)m.value.ptr > js &&
         (const char *)m.value.ptr < js + sizeof(js));
  kwp_produce_msg_clear(&m);
}

/* Every way a message can be wrong gets its code; invalid JSON wins over a
 * misfit, a missing value over the other fields, and the message of an
 * invalid JSON text names the position. */
KWP_TEST(produce_msg_error_precedence) {
  kwp_produce_msg_t m;
  char why[256];
  static const struct {
    const char *text;
    const char *code, *why;
  } cases[] = {
      {"{\"value\":{\"value\":\"a\"},\"value\":{\"value\":\"b\"}}",
       "invalid_json", "duplicate object key"},
      {"{\"value\":{\"value\":\"a\"},\"v\\u0061lue\":1}", "invalid_json",
       "duplicate object key"},
      {"{\"value\":{\"value\":1}} x", "invalid_json",
       "end of input expected at position 22"},
      {"{\"value\":{\"value\":\"\xff\"}}", "invalid_json", "invalid UTF-8"},
      {"{\"value\":{\"value\":\"\\ud800\"}}", "invalid_json",
       "lone high surrogate"},
      {"{\"key\":{\"value\":1},\"messageId\":1}", "invalid_message",
       "no 'value'"},
      {"{\"value\":null}", "invalid_message", "no 'value'"},
      {"\"just a string\"", "invalid_message", "JSON object"},
      {"{\"headers\":5,\"key\":{\"value\":1},\"value\":{\"value\":2}}",
       "invalid_value", "does not fit type string"},
      {"{\"value\":{\"value\":\"v\"},\"headers\":[{\"key\":\"a\"}]}",
       "invalid_headers", "each header"},
      {"{\"value\":{\"format\":\"string\"}}", "invalid_value",
       "must be an object with a 'value'"},
      {"{\"value\":{\"value\":\"v\",\"format\":7}}", "invalid_value",
       "'value.format' is not a valid format type"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    int err = kwp_produce_msg_parse(cases[i].text, strlen(cases[i].text),
                                    KWP_FMT_NONE, KWP_FMT_STRING, &m, why,
                                    sizeof(why));
    ASSERT_STREQ(kwp_err_result_code(err), cases[i].code);
    if (!strstr(why, cases[i].why))
      printf("case %zu: %s\n", i, why);
    ASSERT(strstr(why, cases[i].why) != NULL);
    kwp_produce_msg_clear(&m);
  }
  /* 64 headers are fine, 65 are not */
  char text[4096] = "{\"value\":{\"value\":\"v\"},\"headers\":[";
  for (int i = 0; i < 65; i++)
    strcat(text, i ? ",{\"key\":\"k\",\"value\":\"v\"}"
                   : "{\"key\":\"k\",\"value\":\"v\"}");
  strcat(text, "]}");
  ASSERT_EQ(kwp_produce_msg_parse(text, strlen(text), KWP_FMT_NONE,
                                  KWP_FMT_STRING, &m, why, sizeof(why)),
            KWP_EBADHEADERS);
  kwp_produce_msg_clear(&m);
  *strrchr(text, '{') = 0; /* drop the 65th */
  strcpy(text + strlen(text) - 1, "]}");
  ASSERT_EQ(kwp_produce_msg_parse(text, strlen(text), KWP_FMT_NONE,
                                  KWP_FMT_STRING, &m, why, sizeof(why)),
            0);
  ASSERT_EQ(m.nheaders, 64);
  kwp_produce_msg_clear(&m);
}

KWP_TEST(query_params) {
  char v[16];
  const char *url = "/socket/in?clientId=a%20b&topic=t+1&flag&x=%zz&y=%41";
  /* 1 present, 0 absent (never an errno), KWP_EBADREQ malformed */
  ASSERT_EQ(kwp_query_get(url, "clientId", v, sizeof(v)), 1);
  ASSERT_STREQ(v, "a b");
  ASSERT_EQ(kwp_query_get(url, "topic", v, sizeof(v)), 1);
  ASSERT_STREQ(v, "t 1");
  ASSERT_EQ(kwp_query_get(url, "flag", v, sizeof(v)), 1);
  ASSERT_STREQ(v, "");
  ASSERT_EQ(kwp_query_get(url, "x", v, sizeof(v)), KWP_EBADREQ);
  ASSERT_EQ(kwp_query_get(url, "y", v, sizeof(v)), 1);
  ASSERT_STREQ(v, "A");
  ASSERT_EQ(kwp_query_get(url, "client", v, sizeof(v)), 0);
  ASSERT_STREQ(v, "");
  ASSERT_EQ(kwp_query_get("/p?a=%00", "a", v, sizeof(v)), KWP_EBADREQ);
  ASSERT_EQ(kwp_query_get("/p?a=0123456789abcdef", "a", v, sizeof(v)),
            KWP_EBADREQ);
  ASSERT_EQ(kwp_query_get("/p", "a", v, sizeof(v)), 0);
  /* values must be UTF-8 */
  ASSERT_EQ(kwp_query_get("/p?a=%C3%A9", "a", v, sizeof(v)), 1);
  ASSERT_EQ(strlen(v), 2);
  ASSERT_EQ(kwp_query_get("/p?a=%FF", "a", v, sizeof(v)), KWP_EBADREQ);
  ASSERT_EQ(kwp_query_get("/p?a=%C3", "a", v, sizeof(v)), KWP_EBADREQ);
  ASSERT_EQ(kwp_query_get("/p?a=%ED%A0%80", "a", v, sizeof(v)), KWP_EBADREQ);
  ASSERT_EQ(kwp_query_bool("YES"), 1);
  ASSERT_EQ(kwp_query_bool("off"), 0);
  ASSERT_EQ(kwp_query_bool("maybe"), -1);
}

KWP_TEST(ratelimit_spacing) {
  kwp_rate_t *r = kwp_rate_acquire("unit-client", 10);
  kwp_rate_t *r2 = kwp_rate_acquire("unit-client", 10);
  ASSERT(r != NULL && r == r2);
  /* A second's worth of burst, then one token per 100 ms. */
  for (int i = 0; i < 9; i++)
    ASSERT_EQ(kwp_rate_take(r, 1000), 0);
  uint64_t w1 = kwp_rate_take(r, 1000);
  ASSERT_EQ(w1, 0);
  uint64_t w2 = kwp_rate_take(r, 1000);
  ASSERT(w2 >= 100 && w2 <= 101);
  /* 200 ms later two tokens have come back: one is free, the next waits. */
  ASSERT_EQ(kwp_rate_take(r, 1200), 0);
  ASSERT(kwp_rate_take(r, 1200) >= 100);
  kwp_rate_release(r2);
  kwp_rate_release(r);
}

/* JSON allows \u0000 in strings: values keep it, with their full length. */
KWP_TEST(produce_msg_nul_in_values) {
  kwp_produce_msg_t m;
  char why[256];
  static const char text[] =
      "{\"value\":{\"value\":\"a\\u0000b\"},"
      "\"headers\":[{\"key\":\"h\",\"value\":\"x\\u0000y\"}]}";
  ASSERT_EQ(kwp_produce_msg_parse(text, sizeof(text) - 1, KWP_FMT_NONE,
                                  KWP_FMT_STRING, &m, why, sizeof(why)),
            0);
  ASSERT_EQ(m.value.len, 3);
  ASSERT(memcmp(m.value.ptr, "a\0b", 3) == 0);
  ASSERT_EQ(m.headers[0].value_len, 3);
  kwp_produce_msg_clear(&m);
  static const char js[] = "{\"value\":{\"value\":{\"k\":\"\\u0000\"}}}";
  ASSERT_EQ(kwp_produce_msg_parse(js, sizeof(js) - 1, KWP_FMT_NONE,
                                  KWP_FMT_JSON, &m, why, sizeof(why)),
            0);
  ASSERT_EQ(m.value.len, strlen("{\"k\":\"\\u0000\"}"));
  kwp_produce_msg_clear(&m);
}

/* The decimal writer of the hot paths against snprintf, at every digit
 * count and at the extremes. */
KWP_TEST(format_i64_text) {
  int64_t vals[64];
  size_t n = 0;
  vals[n++] = INT64_MIN;
  vals[n++] = INT64_MAX;
  vals[n++] = 0;
  int64_t p = 1;
  for (int k = 0; k < 19; k++, p = k < 19 ? p * 10 : p) { /* 1 .. 10^18 */
    vals[n++] = p - 1;
    vals[n++] = p;
    vals[n++] = -p;
  }
  for (size_t i = 0; i < n; i++) {
    char want[32], buf[24], *end = buf + sizeof(buf);
    snprintf(want, sizeof(want), "%lld", (long long)vals[i]);
    char *s = kwp_i64_text(end, vals[i]);
    ASSERT_EQ((size_t)(end - s), strlen(want));
    ASSERT(memcmp(s, want, strlen(want)) == 0);
  }
}
