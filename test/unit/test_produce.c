/* Format types, the /socket/in message codec, query parameters and the rate
 * limiter. */
#include "codec/format.h"
#include "codec/produce.h"
#include "core/error.h"
#include "core/query.h"
#include "core/ratelimit.h"
#include "test/unit/unit.h"

#include <math.h>
#include <stdlib.h>

static void encode_ok(kwp_fmt_t fmt, const char *json, const uint8_t *want,
                      size_t want_len) {
  const char *why = NULL;
  kwp_bytes_t b;
  json_t *v = json_loads(json, JSON_DECODE_ANY, NULL);
  ASSERT(v != NULL);
  ASSERT_EQ(kwp_fmt_encode(fmt, v, &b, &why), 0);
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
  json_decref(v);
}

static void encode_bad(kwp_fmt_t fmt, const char *json) {
  const char *why = NULL;
  kwp_bytes_t b;
  json_t *v = json_loads(json, JSON_DECODE_ANY, NULL);
  ASSERT(v != NULL);
  ASSERT_EQ(kwp_fmt_encode(fmt, v, &b, &why), KWP_EBADREQ);
  ASSERT(why != NULL);
  json_decref(v);
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

static int parse(const char *text, kwp_fmt_t kf, kwp_fmt_t vf,
                 kwp_produce_msg_t *m, const char **code) {
  char why[256];
  return kwp_produce_msg_parse(text, strlen(text), kf, vf, m, code, why,
                               sizeof(why));
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
  ASSERT_STREQ(m.headers[0].key, "h1");
  ASSERT_STREQ(json_string_value(m.message_id), "m-1");
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
      {"nope", KWP_FMT_NONE, KWP_FMT_STRING, KWP_PERR_INVALID_JSON},
      {"{\"headers\":[{\"key\":\"a\\u0000b\",\"value\":\"v\"}],"
       "\"value\":{\"value\":\"x\"}}",
       KWP_FMT_NONE, KWP_FMT_STRING, KWP_PERR_INVALID_HEADERS},
      {"[1]", KWP_FMT_NONE, KWP_FMT_STRING, KWP_PERR_INVALID_MESSAGE},
      {"{\"messageId\":\"x\"}", KWP_FMT_NONE, KWP_FMT_STRING,
       KWP_PERR_INVALID_MESSAGE},
      {"{\"value\":{\"value\":1,\"format\":\"int\"}}", KWP_FMT_NONE,
       KWP_FMT_STRING, KWP_PERR_INVALID_VALUE},
      {"{\"value\":{\"value\":\"a\",\"format\":\"xml\"}}", KWP_FMT_NONE,
       KWP_FMT_STRING, KWP_PERR_INVALID_VALUE},
      {"{\"value\":{\"value\":\"a\"},\"key\":{\"value\":\"k\"}}", KWP_FMT_NONE,
       KWP_FMT_STRING, KWP_PERR_INVALID_KEY},
      {"{\"value\":{\"value\":\"a\"},\"key\":{\"value\":\"k\"}}", KWP_FMT_LONG,
       KWP_FMT_STRING, KWP_PERR_INVALID_KEY},
      {"{\"value\":{\"value\":\"a\"},\"headers\":[{\"key\":1}]}", KWP_FMT_NONE,
       KWP_FMT_STRING, KWP_PERR_INVALID_HEADERS},
      {"{\"value\":{\"value\":\"a\"},\"headers\":{}}", KWP_FMT_NONE,
       KWP_FMT_STRING, KWP_PERR_INVALID_HEADERS},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    code = NULL;
    ASSERT_EQ(parse(cases[i].text, cases[i].kf, cases[i].vf, &m, &code),
              KWP_EBADREQ);
    ASSERT_STREQ(code, cases[i].code);
    kwp_produce_msg_clear(&m);
  }
  /* The id survives a bad value so the error result can carry it. */
  ASSERT_EQ(parse("{\"messageId\":\"id9\",\"value\":{\"value\":true}}",
                  KWP_FMT_NONE, KWP_FMT_LONG, &m, &code),
            KWP_EBADREQ);
  ASSERT_STREQ(json_string_value(m.message_id), "id9");
  kwp_produce_msg_clear(&m);
}

KWP_TEST(produce_result_frames) {
  json_t *id = json_string("abc");
  char *ok = kwp_produce_result_ok("t", 2, 41, 1700000000000LL, id);
  ASSERT_STREQ(ok, "{\"topic\":\"t\",\"partition\":2,\"offset\":41,"
                   "\"timestamp\":1700000000000,\"messageId\":\"abc\","
                   "\"clientMessageId\":\"abc\"}");
  char *err = kwp_produce_result_err(NULL, "invalid_json", "bad");
  ASSERT_STREQ(err, "{\"messageId\":null,\"clientMessageId\":null,"
                    "\"error\":\"invalid_json\",\"message\":\"bad\"}");
  free(ok);
  free(err);
  json_decref(id);
}

KWP_TEST(query_params) {
  char v[16];
  const char *url = "/socket/in?clientId=a%20b&topic=t+1&flag&x=%zz&y=%41";
  ASSERT_EQ(kwp_query_get(url, "clientId", v, sizeof(v)), 3);
  ASSERT_STREQ(v, "a b");
  ASSERT_EQ(kwp_query_get(url, "topic", v, sizeof(v)), 3);
  ASSERT_STREQ(v, "t 1");
  ASSERT_EQ(kwp_query_get(url, "flag", v, sizeof(v)), 0);
  ASSERT_EQ(kwp_query_get(url, "x", v, sizeof(v)), KWP_EBADREQ);
  ASSERT_EQ(kwp_query_get(url, "y", v, sizeof(v)), 1);
  ASSERT_STREQ(v, "A");
  ASSERT_EQ(kwp_query_get(url, "client", v, sizeof(v)), -1);
  ASSERT_EQ(kwp_query_get("/p?a=%00", "a", v, sizeof(v)), KWP_EBADREQ);
  ASSERT_EQ(kwp_query_get("/p?a=0123456789abcdef", "a", v, sizeof(v)),
            KWP_EBADREQ);
  ASSERT_EQ(kwp_query_get("/p", "a", v, sizeof(v)), -1);
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
  const char *code = NULL;
  char why[256];
  static const char text[] =
      "{\"value\":{\"value\":\"a\\u0000b\"},"
      "\"headers\":[{\"key\":\"h\",\"value\":\"x\\u0000y\"}]}";
  ASSERT_EQ(kwp_produce_msg_parse(text, sizeof(text) - 1, KWP_FMT_NONE,
                                  KWP_FMT_STRING, &m, &code, why, sizeof(why)),
            0);
  ASSERT_EQ(m.value.len, 3);
  ASSERT(memcmp(m.value.ptr, "a\0b", 3) == 0);
  ASSERT_EQ(m.headers[0].value_len, 3);
  kwp_produce_msg_clear(&m);
  static const char js[] = "{\"value\":{\"value\":{\"k\":\"\\u0000\"}}}";
  ASSERT_EQ(kwp_produce_msg_parse(js, sizeof(js) - 1, KWP_FMT_NONE,
                                  KWP_FMT_JSON, &m, &code, why, sizeof(why)),
            0);
  ASSERT_EQ(m.value.len, strlen("{\"k\":\"\\u0000\"}"));
  kwp_produce_msg_clear(&m);
}
