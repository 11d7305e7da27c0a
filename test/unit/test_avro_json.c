/* The Avro <-> JSON converter (codec/avro/avro_json.h) and the Confluent
 * framing (codec/avro/wire.h): every type through a nested schema both ways,
 * both union forms, defaults, the exact error texts, hostile binary input,
 * and a cross-check with avro-c's own reader and writer. */
#include "codec/avro/avro_json.h"
#include "codec/avro/wire.h"
#include "core/base/error.h"
#include "test/unit/unit.h"

#include <avro.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

/* Every type: records nested and recursive, named types used by name from
 * unions, defaults of every kind. */
static const char user_schema[] =
    "{\"type\":\"record\",\"name\":\"User\",\"namespace\":\"com.example\","
    "\"fields\":["
    "{\"name\":\"id\",\"type\":\"long\"},"
    "{\"name\":\"name\",\"type\":\"string\"},"
    "{\"name\":\"age\",\"type\":\"int\",\"default\":0},"
    "{\"name\":\"active\",\"type\":\"boolean\",\"default\":true},"
    "{\"name\":\"score\",\"type\":\"double\"},"
    "{\"name\":\"ratio\",\"type\":\"float\"},"
    "{\"name\":\"nick\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"tags\",\"type\":{\"type\":\"array\",\"items\":\"string\"},"
    "\"default\":[]},"
    "{\"name\":\"attrs\",\"type\":{\"type\":\"map\",\"values\":\"long\"},"
    "\"default\":{}},"
    "{\"name\":\"hash\",\"type\":{\"type\":\"fixed\",\"name\":\"MD5\","
    "\"size\":4},\"default\":\"\\u0000\\u0000\\u0000\\u0000\"},"
    "{\"name\":\"color\",\"type\":{\"type\":\"enum\",\"name\":\"Color\","
    "\"symbols\":[\"RED\",\"GREEN\",\"BLUE\"]},\"default\":\"RED\"},"
    "{\"name\":\"raw\",\"type\":\"bytes\",\"default\":\"\"},"
    "{\"name\":\"address\",\"type\":{\"type\":\"record\",\"name\":\"Address\","
    "\"namespace\":\"com.geo\",\"fields\":["
    "{\"name\":\"street\",\"type\":\"string\"},"
    "{\"name\":\"zip\",\"type\":[\"null\",\"int\",\"string\"],"
    "\"default\":null}]},\"default\":{\"street\":\"?\"}},"
    "{\"name\":\"choice\",\"type\":[\"null\",\"long\",\"double\",\"string\","
    "\"Color\",\"MD5\",\"com.geo.Address\","
    "{\"type\":\"map\",\"values\":\"string\"},"
    "{\"type\":\"array\",\"items\":\"int\"},\"boolean\",\"bytes\"],"
    "\"default\":null},"
    "{\"name\":\"nothing\",\"type\":\"null\",\"default\":null},"
    "{\"name\":\"next\",\"type\":[\"null\",\"User\"],\"default\":null}]}";

static const char user_in[] =
    "{\"id\":-1,\"name\":\"Ann \\\"A\\\" \\u00e9\\u263a\",\"age\":42,"
    "\"active\":false,\"score\":0.1,\"ratio\":1.5,\"nick\":{\"string\":\"an\"},"
    "\"tags\":[\"a\",\"b\"],\"attrs\":{\"x\":1,\"y\":-2},"
    "\"hash\":\"\\u0000\\u00ff\\u0010A\",\"color\":\"BLUE\","
    "\"raw\":\"\\u0001\\u0080\\\"\\\\\","
    "\"address\":{\"street\":\"Main\",\"zip\":{\"int\":12345}},"
    "\"choice\":{\"com.example.Color\":\"GREEN\"},\"nothing\":null,"
    "\"next\":{\"com.example.User\":{\"id\":2,\"name\":\"Bob\",\"score\":1e300,"
    "\"ratio\":-0.0,\"address\":{\"street\":\"S\"}}}}";

static const char user_out[] =
    "{\"id\":-1,\"name\":\"Ann \\\"A\\\" \xc3\xa9\xe2\x98\xba\",\"age\":42,"
    "\"active\":false,\"score\":0.1,\"ratio\":1.5,\"nick\":{\"string\":\"an\"},"
    "\"tags\":[\"a\",\"b\"],\"attrs\":{\"x\":1,\"y\":-2},"
    "\"hash\":\"\\u0000\\u00ff\\u0010A\",\"color\":\"BLUE\","
    "\"raw\":\"\\u0001\\u0080\\\"\\\\\","
    "\"address\":{\"street\":\"Main\",\"zip\":{\"int\":12345}},"
    "\"choice\":{\"com.example.Color\":\"GREEN\"},\"nothing\":null,"
    "\"next\":{\"com.example.User\":{\"id\":2,\"name\":\"Bob\",\"age\":0,"
    "\"active\":true,\"score\":1e+300,\"ratio\":-0.0,\"nick\":null,"
    "\"tags\":[],\"attrs\":{},\"hash\":\"\\u0000\\u0000\\u0000\\u0000\","
    "\"color\":\"RED\",\"raw\":\"\",\"address\":{\"street\":\"S\","
    "\"zip\":null},\"choice\":null,\"nothing\":null,\"next\":null}}}";

static kwp_avro_schema_t *compile(const char *text) {
  char err[256];
  kwp_avro_schema_t *sch = kwp_avro_schema_new(text, strlen(text), err, 256);
  if (!sch)
    fprintf(stderr, "  schema: %s\n", err);
  ASSERT(sch);
  return sch;
}

/* JSON -> Avro; @returns the code, the bytes in @p out, why in @p why. */
static int to_avro(const kwp_avro_schema_t *sch, const char *json,
                   kwp_sbuf_t *out, char *why) {
  out->len = 0;
  why[0] = 0;
  return kwp_avro_from_json(sch, json, strlen(json), out, why, 256);
}

/* Avro -> JSON as a NUL-terminated string in @p out. */
static int to_json(const kwp_avro_schema_t *sch, const void *data, size_t len,
                   kwp_sbuf_t *out, char *why) {
  out->len = 0;
  why[0] = 0;
  int r = kwp_avro_to_json(sch, data, len, out, why, 256);
  kwp_sbuf_append(out, "", 1);
  out->len--;
  return r;
}

/* @p in encodes, decodes to @p want, and @p want encodes to the same bytes. */
static void round_trip(const kwp_avro_schema_t *sch, const char *in,
                       const char *want) {
  kwp_sbuf_t bin = {0}, txt = {0}, bin2 = {0};
  char why[256];
  if (to_avro(sch, in, &bin, why))
    fprintf(stderr, "  %s: %s\n", in, why);
  ASSERT_EQ(to_avro(sch, in, &bin, why), 0);
  ASSERT_EQ(to_json(sch, bin.data, bin.len, &txt, why), 0);
  ASSERT_STREQ(txt.data, want);
  ASSERT_EQ(to_avro(sch, txt.data, &bin2, why), 0);
  ASSERT(bin2.len == bin.len &&
         (!bin.len || !memcmp(bin.data, bin2.data, bin.len)));
  kwp_sbuf_free(&bin);
  kwp_sbuf_free(&txt);
  kwp_sbuf_free(&bin2);
}

/* @p json is refused with @p code and exactly @p want (NULL: any text). */
static void refused(const kwp_avro_schema_t *sch, const char *json, int code,
                    const char *want) {
  kwp_sbuf_t out = {0};
  char why[256];
  kwp_sbuf_append(&out, "keep", 4);
  int r = kwp_avro_from_json(sch, json, strlen(json), &out, why, sizeof(why));
  if (r != code || (want && strcmp(why, want)))
    fprintf(stderr, "  %s -> %d %s\n", json, r, why);
  ASSERT_EQ(r, code);
  ASSERT(why[0]);
  if (want)
    ASSERT_STREQ(why, want);
  ASSERT_EQ(out.len, 4); /* nothing of the failed value is left */
  kwp_sbuf_free(&out);
}

static void bad_binary(const kwp_avro_schema_t *sch, const void *data,
                       size_t len, const char *want) {
  kwp_sbuf_t out = {0};
  char why[256];
  kwp_sbuf_append(&out, "keep", 4);
  int r = kwp_avro_to_json(sch, data, len, &out, why, sizeof(why));
  if (r != KWP_EBADVALUE || (want && strcmp(why, want)))
    fprintf(stderr, "  -> %d %s\n", r, r ? why : "");
  ASSERT_EQ(r, KWP_EBADVALUE);
  if (want)
    ASSERT_STREQ(why, want);
  ASSERT_EQ(out.len, 4);
  kwp_sbuf_free(&out);
}

KWP_TEST(avro_every_type_round_trip) {
  kwp_avro_schema_t *sch = compile(user_schema);
  round_trip(sch, user_in, user_out);
  kwp_avro_schema_free(sch);
  /* top-level primitives and containers */
  const char *cases[][3] = {
      {"\"null\"", "null", "null"},
      {"\"boolean\"", "true", "true"},
      {"\"int\"", "-2147483648", "-2147483648"},
      {"\"long\"", "9223372036854775807", "9223372036854775807"},
      {"\"long\"", "-9223372036854775808", "-9223372036854775808"},
      {"\"double\"", "1", "1.0"},
      {"\"double\"", "1e-320", "9.99988867182683e-321"},
      {"\"double\"", "\"NaN\"", "\"NaN\""},
      {"\"double\"", "\"-Infinity\"", "\"-Infinity\""},
      {"\"float\"", "0.1", "0.1"},
      {"\"float\"", "3.4028234663852886e38", "3.4028235e+38"},
      {"\"float\"", "3.4028235677973362e38", "3.4028235e+38"},
      {"\"float\"", "\"Infinity\"", "\"Infinity\""},
      {"\"string\"", "\"\\u0000\\n\\u001f\\u2028\\ud83d\\ude00\"",
       "\"\\u0000\\n\\u001f\xe2\x80\xa8\xf0\x9f\x98\x80\""},
      {"\"bytes\"", "\"\\u00ff\\u007f \\t\"", "\"\\u00ff\\u007f \\t\""},
      {"{\"type\":\"array\",\"items\":{\"type\":\"array\",\"items\":\"int\"}}",
       "[[],[1,2],[3]]", "[[],[1,2],[3]]"},
      {"{\"type\":\"map\",\"values\":[\"null\",\"double\"]}",
       "{\"\\u00e9\\\"\":2.5,\"b\":null}",
       "{\"\xc3\xa9\\\"\":{\"double\":2.5},\"b\":null}"},
      {"[\"null\",{\"type\":\"fixed\",\"name\":\"F\",\"size\":0}]",
       "{\"F\":\"\"}", "{\"F\":\"\"}"},
      {"{\"type\":\"bytes\",\"logicalType\":\"decimal\",\"precision\":4}",
       "\"\\u0001\"", "\"\\u0001\""},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    sch = compile(cases[i][0]);
    round_trip(sch, cases[i][1], cases[i][2]);
    kwp_avro_schema_free(sch);
  }
}

static void same_bytes(const kwp_avro_schema_t *sch, const char *a,
                       const char *b) {
  kwp_sbuf_t x = {0}, y = {0};
  char why[256];
  ASSERT_EQ(to_avro(sch, a, &x, why), 0);
  ASSERT_EQ(to_avro(sch, b, &y, why), 0);
  if (x.len != y.len || (x.len && memcmp(x.data, y.data, x.len)))
    fprintf(stderr, "  %s != %s\n", a, b);
  ASSERT(x.len == y.len && (!x.len || !memcmp(x.data, y.data, x.len)));
  kwp_sbuf_free(&x);
  kwp_sbuf_free(&y);
}

KWP_TEST(avro_union_both_forms) {
  kwp_avro_schema_t *sch = compile(
      "{\"type\":\"record\",\"name\":\"R\",\"namespace\":\"n\",\"fields\":["
      "{\"name\":\"u\",\"type\":[\"null\",\"int\",\"long\",\"double\","
      "\"string\",{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\"]},"
      "{\"type\":\"record\",\"name\":\"P\",\"fields\":[{\"name\":\"x\","
      "\"type\":\"int\"},{\"name\":\"y\",\"type\":\"int\",\"default\":0}]},"
      "{\"type\":\"map\",\"values\":\"int\"},"
      "{\"type\":\"array\",\"items\":\"string\"},\"boolean\"]}]}");
  same_bytes(sch, "{\"u\":null}", "{\"u\":null}");
  same_bytes(sch, "{\"u\":5}", "{\"u\":{\"int\":5}}");
  same_bytes(sch, "{\"u\":3000000000}", "{\"u\":{\"long\":3000000000}}");
  same_bytes(sch, "{\"u\":1.5}", "{\"u\":{\"double\":1.5}}");
  same_bytes(sch, "{\"u\":\"NaN\"}", "{\"u\":{\"string\":\"NaN\"}}");
  same_bytes(sch, "{\"u\":\"A\"}", "{\"u\":{\"string\":\"A\"}}");
  same_bytes(sch, "{\"u\":{\"E\":\"A\"}}", "{\"u\":{\"n.E\":\"A\"}}");
  same_bytes(sch, "{\"u\":{\"x\":1}}", "{\"u\":{\"n.P\":{\"x\":1,\"y\":0}}}");
  same_bytes(sch, "{\"u\":{\"x\":1,\"z\":2}}",
             "{\"u\":{\"map\":{\"x\":1,\"z\":2}}}");
  same_bytes(sch, "{\"u\":{\"y\":1}}", "{\"u\":{\"map\":{\"y\":1}}}");
  same_bytes(sch, "{\"u\":[\"a\"]}", "{\"u\":{\"array\":[\"a\"]}}");
  same_bytes(sch, "{\"u\":true}", "{\"u\":{\"boolean\":true}}");
  /* a one-member object named after a branch is the wrapped form */
  same_bytes(sch, "{\"u\":{\"int\":7}}", "{\"u\":{\"int\":7}}");
  refused(sch, "{\"u\":{\"int\":\"7\"}}", KWP_EBADVALUE,
          "field 'u': expected int, got string");
  refused(sch, "{\"u\":{\"n.P\":{\"x\":1,\"q\":1}}}", KWP_EBADVALUE,
          "unknown field 'u.q' (not in record n.P)");
  kwp_avro_schema_free(sch);

  /* the output form of every branch */
  sch = compile("[\"null\",\"string\",\"bytes\"]");
  round_trip(sch, "\"x\"", "{\"string\":\"x\"}");
  round_trip(sch, "{\"bytes\":\"x\"}", "{\"bytes\":\"x\"}");
  round_trip(sch, "null", "null");
  refused(sch, "5", KWP_EBADVALUE,
          "expected one of null, string, bytes, got number 5");
  kwp_avro_schema_free(sch);
}

KWP_TEST(avro_defaults) {
  kwp_avro_schema_t *sch = compile(user_schema);
  kwp_sbuf_t a = {0};
  char why[256];
  /* every default is used; the record default fills its own defaults */
  same_bytes(sch, "{\"id\":1,\"name\":\"n\",\"score\":1,\"ratio\":2}",
             "{\"id\":1,\"name\":\"n\",\"age\":0,\"active\":true,\"score\":1,"
             "\"ratio\":2,\"nick\":null,\"tags\":[],\"attrs\":{},"
             "\"hash\":\"\\u0000\\u0000\\u0000\\u0000\",\"color\":\"RED\","
             "\"raw\":\"\",\"address\":{\"street\":\"?\",\"zip\":null},"
             "\"choice\":null,\"nothing\":null,\"next\":null}");
  refused(sch, "{\"id\":1,\"score\":1,\"ratio\":2}", KWP_EBADVALUE,
          "missing field 'name'");
  kwp_avro_schema_free(sch);

  /* a union's default is for its first branch; one that does not fit
   * leaves the field required and says why */
  sch = compile("{\"type\":\"record\",\"name\":\"D\",\"fields\":["
                "{\"name\":\"a\",\"type\":[\"string\",\"null\"],"
                "\"default\":\"s\"},"
                "{\"name\":\"b\",\"type\":[\"string\",\"null\"],"
                "\"default\":null},"
                "{\"name\":\"c\",\"type\":\"int\",\"default\":1.5}]}");
  same_bytes(sch, "{\"b\":null,\"c\":1}",
             "{\"a\":{\"string\":\"s\"},\"b\":null,\"c\":1}");
  refused(sch, "{\"c\":1}", KWP_EBADVALUE,
          "missing field 'b' (its schema default does not fit its type)");
  ASSERT_EQ(to_avro(sch, "{\"b\":\"x\",\"c\":1}", &a, why), 0);
  kwp_avro_schema_free(sch);
  kwp_sbuf_free(&a);
}

KWP_TEST(avro_encode_errors) {
  kwp_avro_schema_t *sch = compile(
      "{\"type\":\"record\",\"name\":\"P\",\"namespace\":\"com.example\","
      "\"fields\":[{\"name\":\"user\",\"type\":{\"type\":\"record\","
      "\"name\":\"U\",\"fields\":[{\"name\":\"age\",\"type\":\"int\"},"
      "{\"name\":\"name\",\"type\":\"string\"},"
      "{\"name\":\"tags\",\"type\":{\"type\":\"array\",\"items\":\"string\"}},"
      "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":\"int\"}}]}},"
      "{\"name\":\"x\",\"type\":\"int\",\"default\":1},"
      "{\"name\":\"f\",\"type\":\"float\",\"default\":1},"
      "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"C\","
      "\"symbols\":[\"RED\"]},\"default\":\"RED\"},"
      "{\"name\":\"h\",\"type\":{\"type\":\"fixed\",\"name\":\"H\","
      "\"size\":2},\"default\":\"ab\"},"
      "{\"name\":\"b\",\"type\":\"bytes\",\"default\":\"\"},"
      "{\"name\":\"n\",\"type\":[\"null\",\"string\"],\"default\":null}]}");
#define U "\"user\":{\"age\":1,\"name\":\"a\",\"tags\":[],\"m\":{}}"
  kwp_sbuf_t ok = {0};
  char okwhy[256];
  ASSERT_EQ(to_avro(sch, "{" U "}", &ok, okwhy), 0);
  kwp_sbuf_free(&ok);
  refused(sch, "{\"user\":{\"age\":\"3\",\"name\":\"a\",\"tags\":[],\"m\":{}}}",
          KWP_EBADVALUE, "field 'user.age': expected int, got string");
  refused(sch, "{\"user\":{\"age\":1,\"tags\":[],\"m\":{}}}", KWP_EBADVALUE,
          "missing field 'user.name'");
  refused(sch,
          "{\"user\":{\"age\":1,\"name\":\"a\",\"tags\":[\"a\",\"b\",7],"
          "\"m\":{}}}",
          KWP_EBADVALUE, "field 'user.tags[2]': expected string, got number 7");
  refused(sch,
          "{\"user\":{\"age\":1,\"name\":\"a\",\"tags\":[],\"m\":{\"k\":1.5}}}",
          KWP_EBADVALUE, "field 'user.m[\"k\"]': expected int, got number 1.5");
  refused(sch, "{" U ",\"x\":3000000000}", KWP_EBADVALUE,
          "field 'x': 3000000000 is out of range for int");
  refused(sch, "{" U ",\"x\":2.0}", KWP_EBADVALUE,
          "field 'x': expected int, got number 2");
  refused(sch,
          "{\"user\":{\"age\":1,\"name\":\"a\",\"tags\":[],\"m\":{},"
          "\"nick\":\"n\"}}",
          KWP_EBADVALUE,
          "unknown field 'user.nick' (not in record com.example.U)");
  /* a misspelt field is named, rather than the one it should have been */
  refused(sch, "{\"user\":{\"agee\":1,\"name\":\"a\",\"tags\":[],\"m\":{}}}",
          KWP_EBADVALUE,
          "unknown field 'user.agee' (not in record com.example.U)");
  refused(sch, "[1]", KWP_EBADVALUE,
          "expected record com.example.P, got array");
  refused(sch, "{" U ",\"e\":\"BLUE\"}", KWP_EBADVALUE,
          "field 'e': 'BLUE' is not a symbol of enum com.example.C");
  refused(sch, "{" U ",\"h\":\"abc\"}", KWP_EBADVALUE,
          "field 'h': expected fixed com.example.H (2 bytes), got 3 bytes");
  refused(sch, "{" U ",\"b\":\"\\u20ac\"}", KWP_EBADVALUE,
          "field 'b': expected bytes as a string of code points "
          "U+0000-U+00FF, got U+20AC");
  refused(sch, "{" U ",\"n\":5}", KWP_EBADVALUE,
          "field 'n': expected one of null, string, got number 5");
  refused(sch, "{" U ",\"n\":{\"int\":5}}", KWP_EBADVALUE,
          "field 'n': expected one of null, string, got object");
  refused(sch, "{" U ",\"f\":1e39}", KWP_EBADVALUE,
          "field 'f': 1e+39 is out of range for float");
  /* 0x1.ffffffp+127, halfway to the next float up: rounds to infinity */
  refused(sch, "{" U ",\"f\":3.4028235677973366e38}", KWP_EBADVALUE, NULL);
  refused(sch, "{" U ",\"f\":\"nan\"}", KWP_EBADVALUE,
          "field 'f': expected float, got string");
  /* not JSON, duplicate names, numbers jansson cannot hold */
  refused(sch, "{\"user\":", KWP_EJSON, NULL);
  refused(sch, "{" U "," U "}", KWP_EJSON, NULL);
  refused(sch, "{" U ",\"x\":99999999999999999999}", KWP_EBADVALUE, NULL);
  refused(sch, "", KWP_EJSON, NULL);
#undef U
  kwp_avro_schema_free(sch);

  /* nesting past the limit, on the way in */
  sch = compile("{\"type\":\"record\",\"name\":\"L\",\"fields\":["
                "{\"name\":\"n\",\"type\":[\"null\",\"L\"]}]}");
  kwp_sbuf_t deep = {0}, out = {0};
  char why[256];
  for (int i = 0; i < 300; i++)
    kwp_sbuf_append(&deep, "{\"n\":", 5);
  kwp_sbuf_append(&deep, "null", 4);
  for (int i = 0; i < 300; i++)
    kwp_sbuf_append(&deep, "}", 1);
  ASSERT_EQ(kwp_avro_from_json(sch, deep.data, deep.len, &out, why, 256),
            KWP_EBADVALUE);
  ASSERT(strstr(why, "nested deeper than 256"));
  ASSERT(!strncmp(why, "field '...n.n.", 14)); /* the path is cut */
  kwp_avro_schema_free(sch);
  kwp_sbuf_free(&deep);
  kwp_sbuf_free(&out);
}

KWP_TEST(avro_decode_errors) {
  kwp_avro_schema_t *sch = compile("\"string\"");
  bad_binary(sch, "\x03", 1, "negative string length -2 at byte 0");
  bad_binary(sch,
             "\x0a"
             "a",
             2, "string length 5 over the 1 bytes left at byte 0");
  bad_binary(sch, "\x04\xc3\x28", 3, "invalid UTF-8 in a string at byte 1");
  bad_binary(sch, "", 0, "truncated string: 1 bytes needed, 0 left at byte 0");
  bad_binary(sch,
             "\x02"
             "ab",
             3, "1 bytes after the value at byte 2");
  kwp_avro_schema_free(sch);

  sch = compile("\"long\"");
  bad_binary(sch, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11,
             "varint longer than 10 bytes or over 64 bits at byte 0");
  bad_binary(sch, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 10,
             "varint longer than 10 bytes or over 64 bits at byte 0");
  bad_binary(sch, "\x80", 1,
             "truncated long: 1 bytes needed, 0 left at byte 1");
  kwp_sbuf_t out = {0};
  char why[256];
  ASSERT_EQ(
      to_json(sch, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10, &out, why),
      0);
  ASSERT_STREQ(out.data, "-9223372036854775808");
  ASSERT_EQ(to_json(sch, "\x80\x00", 2, &out, why), 0); /* not minimal: ok */
  ASSERT_STREQ(out.data, "0");
  kwp_avro_schema_free(sch);

  sch = compile("\"int\"");
  bad_binary(sch, "\x80\x80\x80\x80\x10", 5, "int out of range at byte 0");
  kwp_avro_schema_free(sch);
  sch = compile("\"boolean\"");
  bad_binary(sch, "\x02", 1, "boolean byte not 0 or 1 at byte 0");
  kwp_avro_schema_free(sch);
  sch = compile("[\"null\",\"int\"]");
  bad_binary(sch, "\x04", 1, "union index out of range at byte 0");
  bad_binary(sch, "\x01", 1, "union index out of range at byte 0");
  kwp_avro_schema_free(sch);
  sch = compile("{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\"]}");
  bad_binary(sch, "\x02", 1, "enum index out of range at byte 0");
  kwp_avro_schema_free(sch);
  sch = compile("{\"type\":\"fixed\",\"name\":\"F\",\"size\":16}");
  bad_binary(sch, "abc", 3,
             "truncated fixed: 16 bytes needed, 3 left at byte 0");
  kwp_avro_schema_free(sch);

  /* block counts: bounded by the bytes left, or by the empty-item budget */
  sch = compile("{\"type\":\"array\",\"items\":\"string\"}");
  bad_binary(sch, "\xd0\x0f\x00", 3,
             "block count 1000 over the 1 bytes left at byte 0");
  bad_binary(sch, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10,
             "block count out of range at byte 0");
  ASSERT_EQ(to_json(sch,
                    "\x03\x04\x02"
                    "a\x02"
                    "b\x00",
                    7, &out, why),
            0);
  ASSERT_STREQ(out.data, "[\"a\",\"b\"]"); /* a negative count, sized */
  kwp_avro_schema_free(sch);
  sch = compile("{\"type\":\"array\",\"items\":\"null\"}");
  bad_binary(sch, "\xe0\xc5\x08\x00", 4,
             "over 65536 items of no bytes at byte 0");
  ASSERT_EQ(to_json(sch, "\x80\x80\x08\x00", 4, &out, why), 0); /* 65536 */
  ASSERT_EQ(out.len, 1 + 65536 * 5);
  kwp_avro_schema_free(sch);
  sch = compile("{\"type\":\"map\",\"values\":\"null\"}");
  bad_binary(sch, "\x06\x00\x00", 3,
             "block count 3 over the 2 bytes left at byte 0");
  kwp_avro_schema_free(sch);

  /* where: the field path and the offset */
  sch = compile("{\"type\":\"record\",\"name\":\"R\",\"fields\":["
                "{\"name\":\"a\",\"type\":\"int\"},"
                "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":"
                "{\"type\":\"array\",\"items\":\"string\"}}}]}");
  bad_binary(sch, "\x02\x02\x02k\x04\x02x\x02\xff", 9,
             "field 'm[\"k\"][1]': invalid UTF-8 in a string at byte 8");
  kwp_avro_schema_free(sch);

  /* nesting: 256 records deep is fine, 257 is not */
  sch = compile("{\"type\":\"record\",\"name\":\"L\",\"fields\":["
                "{\"name\":\"n\",\"type\":[\"null\",\"L\"]}]}");
  uint8_t deep[300];
  memset(deep, 2, sizeof(deep));
  deep[255] = 0;
  ASSERT_EQ(to_json(sch, deep, 256, &out, why), 0);
  deep[255] = 2;
  deep[256] = 0;
  bad_binary(sch, deep, 257, NULL);
  ASSERT_EQ(kwp_avro_to_json(sch, deep, 257, &out, why, 256), KWP_EBADVALUE);
  if (!strstr(why, "': nested deeper than 256 at byte 256"))
    fprintf(stderr, "  %s\n", why);
  ASSERT(strstr(why, "': nested deeper than 256 at byte 256"));
  kwp_avro_schema_free(sch);
  kwp_sbuf_free(&out);
}

static uint64_t rnd(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* Every prefix of a valid datum is refused; mutated data is refused or
 * decodes to JSON that encodes again. */
KWP_TEST(avro_decode_hostile_input) {
  kwp_avro_schema_t *sch = compile(user_schema);
  kwp_sbuf_t bin = {0}, out = {0}, back = {0};
  char why[256];
  ASSERT_EQ(to_avro(sch, user_in, &bin, why), 0);
  for (size_t n = 0; n < bin.len; n++) {
    uint8_t *copy = malloc(n ? n : 1); /* exact size: ASan sees overreads */
    memcpy(copy, bin.data, n);
    ASSERT_EQ(to_json(sch, copy, n, &out, why), KWP_EBADVALUE);
    ASSERT(strstr(why, "truncated") || strstr(why, "over the"));
    free(copy);
  }
  uint64_t seed = 42;
  size_t ok = 0;
  for (int i = 0; i < 20000; i++) {
    size_t n = bin.len;
    uint8_t *copy = malloc(n);
    memcpy(copy, bin.data, n);
    for (int k = 0; k < 1 + (int)(rnd(&seed) % 4); k++)
      copy[rnd(&seed) % n] = (uint8_t)rnd(&seed);
    size_t cut = i % 3 ? n : rnd(&seed) % (n + 1);
    int r = to_json(sch, copy, cut, &out, why);
    ASSERT(r == 0 || r == KWP_EBADVALUE);
    if (r == 0) {
      ok++;
      json_error_t je;
      json_t *j = json_loadb(out.data, out.len, JSON_ALLOW_NUL, &je);
      /* JSON, though jansson takes no \u0000 in a name (a map key) */
      ASSERT(j || strstr(je.text, "NUL byte in object key"));
      json_decref(j);
      int r2 = to_avro(sch, out.data, &back, why);
      /* a map may hold a key twice in binary, or \u0000 in one: jansson
       * takes neither */
      ASSERT(r2 == 0 || r2 == KWP_EJSON);
    }
    free(copy);
  }
  ASSERT(ok > 100);
  for (int i = 0; i < 20000; i++) { /* plain garbage */
    size_t n = rnd(&seed) % 64;
    uint8_t *copy = malloc(n ? n : 1);
    for (size_t k = 0; k < n; k++)
      copy[k] = (uint8_t)rnd(&seed);
    int r = to_json(sch, copy, n, &out, why);
    ASSERT(r == 0 || r == KWP_EBADVALUE);
    free(copy);
  }
  kwp_avro_schema_free(sch);
  kwp_sbuf_free(&bin);
  kwp_sbuf_free(&out);
  kwp_sbuf_free(&back);
}

/* --- the cross-check with avro-c --- */

/* A random value of @p v's schema, through avro-c's value API. */
static void fill(avro_value_t *v, uint64_t *s, int depth) {
  static const char *strs[] = {"",
                               "a\"b\\c",
                               "\n\t\x01",
                               "h\xc3\xa9llo",
                               "\xe2\x98\x83\xf0\x9f\x98\x80",
                               "RED",
                               "x y"};
  avro_schema_t sc = avro_value_get_schema(v);
  avro_value_t child;
  uint8_t buf[16];
  char key[32];
  size_t n;
  switch (avro_value_get_type(v)) {
  case AVRO_NULL:
    avro_value_set_null(v);
    break;
  case AVRO_BOOLEAN:
    avro_value_set_boolean(v, (int)(rnd(s) & 1));
    break;
  case AVRO_INT32:
    avro_value_set_int(v, (int32_t)rnd(s) >> (rnd(s) % 32));
    break;
  case AVRO_INT64:
    avro_value_set_long(v, (int64_t)rnd(s) >> (rnd(s) % 64));
    break;
  case AVRO_FLOAT: {
    uint32_t u = (uint32_t)rnd(s);
    float f;
    memcpy(&f, &u, 4);
    avro_value_set_float(v, isnan(f) ? 0.25f : f);
    break;
  }
  case AVRO_DOUBLE: {
    uint64_t u = rnd(s);
    double d;
    memcpy(&d, &u, 8);
    avro_value_set_double(v, isnan(d) ? (double)(int64_t)u / 1e3 : d);
    break;
  }
  case AVRO_STRING: {
    const char *str = strs[rnd(s) % 7];
    avro_value_set_string_len(v, str, strlen(str) + 1);
    break;
  }
  case AVRO_BYTES:
    n = rnd(s) % 9;
    for (size_t i = 0; i < n; i++)
      buf[i] = (uint8_t)rnd(s);
    avro_value_set_bytes(v, buf, n);
    break;
  case AVRO_FIXED:
    n = (size_t)avro_schema_fixed_size(sc);
    for (size_t i = 0; i < n; i++)
      buf[i] = (uint8_t)rnd(s);
    avro_value_set_fixed(v, buf, n);
    break;
  case AVRO_ENUM:
    avro_value_set_enum(
        v, (int)(rnd(s) % (uint64_t)avro_schema_enum_number_of_symbols(sc)));
    break;
  case AVRO_ARRAY:
    n = depth < 3 ? rnd(s) % 4 : 0;
    for (size_t i = 0; i < n; i++) {
      avro_value_append(v, &child, NULL);
      fill(&child, s, depth + 1);
    }
    break;
  case AVRO_MAP:
    n = depth < 3 ? rnd(s) % 4 : 0;
    for (size_t i = 0; i < n; i++) {
      snprintf(key, sizeof(key), "k%zu", i);
      avro_value_add(v, key, &child, NULL, NULL);
      fill(&child, s, depth + 1);
    }
    break;
  case AVRO_RECORD:
    avro_value_get_size(v, &n);
    for (size_t i = 0; i < n; i++) {
      avro_value_get_by_index(v, i, &child, NULL);
      fill(&child, s, depth + 1);
    }
    break;
  case AVRO_UNION: {
    /* deep down take branch 0 (null in the test schema): recursion ends */
    int b = depth < 3 ? (int)(rnd(s) % avro_schema_union_size(sc)) : 0;
    avro_value_set_branch(v, b, &child);
    fill(&child, s, depth + 1);
    break;
  }
  default:
    break;
  }
}

/* avro-c's jansson refuses the \u0000 of a default: without them. */
static avro_schema_t avro_c_schema(const char *text) {
  json_t *j = json_loads(text, JSON_ALLOW_NUL, NULL), *f;
  size_t i;
  avro_schema_t as;
  json_array_foreach(json_object_get(j, "fields"), i, f) {
    json_object_del(f, "default");
  }
  char *plain = json_dumps(j, JSON_COMPACT);
  ASSERT_EQ(avro_schema_from_json_length(plain, strlen(plain), &as), 0);
  free(plain);
  json_decref(j);
  return as;
}

KWP_TEST(avro_cross_check_with_avro_c) {
  kwp_avro_schema_t *sch = compile(user_schema);
  avro_schema_t as = avro_c_schema(user_schema);
  avro_value_iface_t *iface = avro_generic_class_from_schema(as);
  avro_value_t v, back;
  ASSERT_EQ(avro_generic_value_new(iface, &v), 0);
  ASSERT_EQ(avro_generic_value_new(iface, &back), 0);
  kwp_sbuf_t bin = {0}, txt = {0};
  char why[256];

  /* our bytes read by avro-c, which writes them back the same */
  ASSERT_EQ(to_avro(sch, user_in, &bin, why), 0);
  avro_reader_t rd = avro_reader_memory(bin.data, (int64_t)bin.len);
  ASSERT_EQ(avro_value_read(rd, &v), 0);
  avro_reader_free(rd);
  size_t size;
  ASSERT_EQ(avro_value_sizeof(&v, &size), 0);
  ASSERT_EQ(size, bin.len);
  char *buf = malloc(size);
  avro_writer_t wr = avro_writer_memory(buf, (int64_t)size);
  ASSERT_EQ(avro_value_write(wr, &v), 0);
  avro_writer_free(wr);
  ASSERT(!memcmp(buf, bin.data, size));
  free(buf);

  /* avro-c's random values: decoded by us, encoded again by us, the same
   * bytes, which avro-c reads back as an equal value */
  uint64_t seed = 7;
  for (int i = 0; i < 2000; i++) {
    avro_value_reset(&v);
    fill(&v, &seed, 0);
    ASSERT_EQ(avro_value_sizeof(&v, &size), 0);
    buf = malloc(size);
    wr = avro_writer_memory(buf, (int64_t)size);
    ASSERT_EQ(avro_value_write(wr, &v), 0);
    avro_writer_free(wr);
    if (to_json(sch, buf, size, &txt, why))
      fprintf(stderr, "  %s\n", why);
    ASSERT_EQ(to_json(sch, buf, size, &txt, why), 0);
    if (to_avro(sch, txt.data, &bin, why))
      fprintf(stderr, "  %s: %s\n", txt.data, why);
    ASSERT_EQ(to_avro(sch, txt.data, &bin, why), 0);
    ASSERT(bin.len == size && !memcmp(bin.data, buf, size));
    rd = avro_reader_memory(bin.data, (int64_t)bin.len);
    avro_value_reset(&back);
    ASSERT_EQ(avro_value_read(rd, &back), 0);
    avro_reader_free(rd);
    ASSERT(avro_value_equal(&v, &back));
    free(buf);
  }
  avro_value_decref(&v);
  avro_value_decref(&back);
  avro_value_iface_decref(iface);
  avro_schema_decref(as);
  kwp_avro_schema_free(sch);
  kwp_sbuf_free(&bin);
  kwp_sbuf_free(&txt);
}

KWP_TEST(avro_schema_refused) {
  char err[256];
  const char *bad[] = {"{", "\"nope\"", "{\"type\":\"record\",\"name\":\"R\"}",
                       "{\"type\":\"array\"}", "[]"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    err[0] = 0;
    ASSERT(!kwp_avro_schema_new(bad[i], strlen(bad[i]), err, sizeof(err)));
    ASSERT(err[0]);
  }
  kwp_avro_schema_free(NULL);
}

KWP_TEST(avro_wire_format) {
  uint8_t buf[8];
  int32_t id;
  const uint8_t *body;
  size_t len;
  kwp_avro_wire_write(buf, 0x01020304);
  ASSERT(!memcmp(buf, "\0\1\2\3\4", 5));
  buf[5] = 'x';
  ASSERT_EQ(kwp_avro_wire_parse(buf, 6, &id, &body, &len), 0);
  ASSERT_EQ(id, 0x01020304);
  ASSERT(body == buf + 5 && len == 1);
  ASSERT_EQ(kwp_avro_wire_parse(buf, 5, &id, &body, &len), 0);
  ASSERT_EQ(len, 0);
  ASSERT_EQ(kwp_avro_wire_parse(buf, 4, &id, &body, &len), KWP_EBADVALUE);
  buf[0] = 1;
  ASSERT_EQ(kwp_avro_wire_parse(buf, 6, &id, &body, &len), KWP_EBADVALUE);
  kwp_avro_wire_write(buf, -1);
  ASSERT_EQ(kwp_avro_wire_parse(buf, 5, &id, &body, &len), 0);
  ASSERT_EQ(id, -1);
}
