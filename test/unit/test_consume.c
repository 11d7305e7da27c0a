/* The consumer side: commit-handler stacks, autoCommit bookkeeping, record
 * frames, commit frames and the /socket/out parameters. */
#include "codec/json/jscan.h"
#include "codec/json/json_consume.h"
#include "codec/msgid.h"
#include "commit/commit.h"
#include "commit/gate.h"
#include "commit/written.h"
#include "core/base/error.h"
#include "core/endpoint/params.h"
#include "test/unit/unit.h"

#include <jansson.h>
#include <stdlib.h>

/* The commit of a wsProxyMessageId of topic "t", as /socket/out does it:
 * the JSON codec reads the id, the stack takes the record it names. */
static int take_topic(kwp_commit_t *c, const char *topic, const char *id,
                      kwp_commit_pos_t *pos) {
  kwp_record_ref_t ref;
  if (kwp_msgid_parse(topic, strlen(topic), id, strlen(id), &ref))
    return KWP_ENOTFOUND;
  return kwp_commit_take(c, ref.partition, ref.offset, ref.timestamp, pos);
}

static int take(kwp_commit_t *c, const char *id, kwp_commit_pos_t *pos) {
  return take_topic(c, "t", id, pos);
}

KWP_TEST(commit_stack_take) {
  kwp_commit_t *c = kwp_commit_new(100);
  kwp_commit_pos_t pos;
  for (int64_t o = 10; o < 15; o++)
    ASSERT_EQ(kwp_commit_push(c, 0, o, 1000 + o, 0), 0);
  ASSERT_EQ(kwp_commit_push(c, 1, 3, 7, 0), 0);
  ASSERT_EQ(kwp_commit_count(c), 6);
  ASSERT_EQ(take(c, "t-0-12-1012", &pos), 0);
  ASSERT_EQ(pos.partition, 0);
  ASSERT_EQ(pos.offset, 13);
  ASSERT_EQ(kwp_commit_count(c), 3); /* 10, 11, 12 cleared */
  ASSERT_EQ(take(c, "t-0-11-1011", &pos), KWP_ENOTFOUND); /* older: gone */
  ASSERT_EQ(take(c, "t-0-13-9999", &pos), KWP_ENOTFOUND); /* wrong ts */
  ASSERT_EQ(take(c, "u-0-13-1013", &pos), KWP_ENOTFOUND); /* other topic */
  ASSERT_EQ(take(c, "t-0-13-1013x", &pos), KWP_ENOTFOUND);
  ASSERT_EQ(take(c, "t-0-13", &pos), KWP_ENOTFOUND);
  ASSERT_EQ(take(c, "", &pos), KWP_ENOTFOUND);
  /* the same numbers, not as the proxy writes them: never sent */
  ASSERT_EQ(take(c, "t-01-3-7", &pos), KWP_ENOTFOUND);
  ASSERT_EQ(take(c, "t-1-03-7", &pos), KWP_ENOTFOUND);
  ASSERT_EQ(take(c, "t--0-3-7", &pos), KWP_ENOTFOUND);
  ASSERT_EQ(take(c, "t-1-3-07", &pos), KWP_ENOTFOUND);
  ASSERT_EQ(take(c, "t-1-3-7", &pos), 0);
  ASSERT_EQ(pos.partition, 1);
  ASSERT_EQ(pos.offset, 4);
  ASSERT_EQ(take(c, "t-0-14-1014", &pos), 0);
  ASSERT_EQ(pos.offset, 15);
  ASSERT_EQ(kwp_commit_count(c), 0);
  kwp_commit_free(c);
}

KWP_TEST(commit_stack_overflow_drops_oldest) {
  kwp_commit_t *c = kwp_commit_new(3);
  kwp_commit_pos_t pos;
  char id[64];
  for (int64_t o = 0; o < 10; o++)
    ASSERT_EQ(kwp_commit_push(c, 2, o, o, 0), 0);
  ASSERT_EQ(kwp_commit_count(c), 3);
  /* A dropped record is still committed by its id (a client behind the
   * proxy by more than the stack has only such ids): its offset is known
   * to have been sent, its timestamp is not checked any more. */
  ASSERT_EQ(take(c, "t-2-5-5", &pos), 0);
  ASSERT_EQ(pos.partition, 2);
  ASSERT_EQ(pos.offset, 6);
  ASSERT_EQ(take(c, "t-2-2-2", &pos), KWP_ENOTFOUND); /* covered already */
  ASSERT_EQ(take(c, "t-2-5-5", &pos), KWP_ENOTFOUND);
  ASSERT_EQ(take(c, "t-2-6-6", &pos), 0);
  ASSERT_EQ(pos.offset, 7);
  ASSERT_EQ(take(c, "t-2-10-10", &pos), KWP_ENOTFOUND); /* never sent */
  ASSERT_EQ(kwp_commit_count(c), 3);
  snprintf(id, sizeof(id), "t-2-%d-%d", 9, 9);
  ASSERT_EQ(take(c, id, &pos), 0);
  ASSERT_EQ(pos.offset, 10); /* covers the dropped ones too */
  /* A revoked partition starts over. */
  ASSERT_EQ(kwp_commit_push(c, 2, 20, 1, 0), 0);
  kwp_commit_drop(c, 2);
  ASSERT_EQ(take(c, "t-2-20-1", &pos), KWP_ENOTFOUND);
  ASSERT_EQ(kwp_commit_push(c, 2, 5, 1, 0), 0);
  ASSERT_EQ(take(c, "t-2-5-1", &pos), 0);
  kwp_commit_free(c);
}

KWP_TEST(commit_stack_ids_with_dashes) {
  kwp_commit_t *c = kwp_commit_new(10);
  kwp_commit_pos_t pos;
  ASSERT_EQ(kwp_commit_push(c, 1, 7, -1, 0), 0); /* no timestamp: -1 */
  ASSERT_EQ(take_topic(c, "my-topic-1", "my-topic-1-1-7--1", &pos), 0);
  ASSERT_EQ(pos.partition, 1);
  ASSERT_EQ(pos.offset, 8);
  kwp_commit_free(c);
}

KWP_TEST(commit_stack_take_older) {
  kwp_commit_t *c = kwp_commit_new(100);
  kwp_commit_pos_t pos[4];
  ASSERT_EQ(kwp_commit_push(c, 0, 1, 1, 100), 0);
  ASSERT_EQ(kwp_commit_push(c, 0, 2, 2, 200), 0);
  ASSERT_EQ(kwp_commit_push(c, 0, 3, 3, 900), 0);
  ASSERT_EQ(kwp_commit_push(c, 1, 5, 5, 950), 0);
  ASSERT_EQ(kwp_commit_take_older(c, 1000, 500, pos, 4), 1);
  ASSERT_EQ(pos[0].partition, 0);
  ASSERT_EQ(pos[0].offset, 3); /* newest older than 500 ms: offset 2 */
  ASSERT_EQ(kwp_commit_count(c), 2);
  ASSERT_EQ(kwp_commit_take_older(c, 1000, 500, pos, 4), 0);
  ASSERT_EQ(kwp_commit_take_older(c, 2000, 500, pos, 4), 2);
  ASSERT_EQ(kwp_commit_count(c), 0);
  kwp_commit_free(c);
}

KWP_TEST(written_waits_for_the_kernel) {
  kwp_written_t *w = kwp_written_new();
  kwp_commit_pos_t pos[4];
  ASSERT_EQ(kwp_written_assign(w, 0), 0);
  ASSERT_EQ(kwp_written_assign(w, 1), 0);
  /* Taken at once by the kernel: committable now. */
  kwp_written_stage(w, 0, 4);
  kwp_written_handed(w, 100, 100);
  ASSERT_EQ(kwp_written_take(w, -1, pos, 4), 1);
  ASSERT_EQ(pos[0].offset, 5);
  ASSERT_EQ(kwp_written_take(w, -1, pos, 4), 0); /* already taken */
  /* Queued: only once the socket wrote past them. */
  kwp_written_stage(w, 0, 9);
  kwp_written_stage(w, 1, 2);
  kwp_written_handed(w, 300, 150);
  ASSERT_EQ(kwp_written_take(w, -1, pos, 4), 0);
  kwp_written_stage(w, 0, 12);
  kwp_written_handed(w, 400, 150);
  kwp_written_advance(w, 299);
  ASSERT_EQ(kwp_written_take(w, -1, pos, 4), 0);
  kwp_written_advance(w, 300);
  ASSERT_EQ(kwp_written_take(w, 1, pos, 4), 1); /* only partition 1 */
  ASSERT_EQ(pos[0].partition, 1);
  ASSERT_EQ(pos[0].offset, 3);
  ASSERT_EQ(kwp_written_take(w, -1, pos, 4), 1);
  ASSERT_EQ(pos[0].offset, 10);
  /* A revoked partition's queued records are never committed here. */
  kwp_written_revoke(w, 0);
  kwp_written_advance(w, 400);
  ASSERT_EQ(kwp_written_take(w, -1, pos, 4), 0);
  kwp_written_free(w);
}

static int hdr_at(const void *hdrs, size_t i, const char **name,
                  const void **value, size_t *len) {
  static const char *const names[] = {"a", "nul", "bin"};
  static const uint8_t bin[] = {0xff, 0x00};
  (void)hdrs;
  if (i >= 3)
    return -1;
  *name = names[i];
  *value = i == 0 ? (const void *)"x\"y" : i == 1 ? NULL : (const void *)bin;
  *len = i == 0 ? 3 : i == 1 ? 0 : 2;
  return 0;
}

static char *frame(kwp_fmt_t kf, kwp_fmt_t vf, const kwp_record_t *r) {
  kwp_sbuf_t b = {0};
  kwp_payload_opts_t o = {"t-1", 3, kf, vf, NULL};
  ASSERT_EQ(kwp_consume_record(&b, &o, r), 0);
  char *s = strndup(b.data, b.len);
  kwp_sbuf_free(&b);
  return s;
}

KWP_TEST(consume_record_frame) {
  kwp_record_t r = {.partition = 2,
                    .offset = 41,
                    .timestamp = 1554402266846,
                    .key = (const uint8_t *)"k",
                    .key_len = 1,
                    .value = (const uint8_t *)"line\n\t\x01\xc3\xa9",
                    .value_len = 9,
                    .header = hdr_at};
  char *s = frame(KWP_FMT_STRING, KWP_FMT_STRING, &r);
  ASSERT_STREQ(s, "{\"wsProxyMessageId\":\"t-1-2-41-1554402266846\","
                  "\"topic\":\"t-1\",\"partition\":2,\"offset\":41,"
                  "\"timestamp\":1554402266846,\"headers\":[{\"key\":\"a\","
                  "\"value\":\"x\\\"y\"},{\"key\":\"nul\",\"value\":null},"
                  "{\"key\":\"bin\",\"value\":\"/wA=\",\"format\":"
                  "\"bytearray\"}],\"key\":{\"value\":\"k\",\"format\":"
                  "\"string\"},\"value\":{\"value\":\"line\\n\\t\\u0001\xc3\xa9"
                  "\",\"format\":\"string\"}}");
  free(s);
  /* No key, no headers, a tombstone. */
  kwp_record_t t = {.partition = 0, .offset = 0, .timestamp = 5};
  s = frame(KWP_FMT_NONE, KWP_FMT_JSON, &t);
  ASSERT_STREQ(s, "{\"wsProxyMessageId\":\"t-1-0-0-5\",\"topic\":\"t-1\","
                  "\"partition\":0,\"offset\":0,\"timestamp\":5,\"headers\":"
                  "null,\"value\":{\"value\":null,\"format\":\"json\"}}");
  free(s);
  /* No keyType: text keys are strings, others base64. */
  t.key = (const uint8_t *)"\x80";
  t.key_len = 1;
  t.value = (const uint8_t *)"";
  s = frame(KWP_FMT_NONE, KWP_FMT_STRING, &t);
  ASSERT(strstr(s, "\"key\":{\"value\":\"gA==\",\"format\":\"bytearray\"}"));
  ASSERT(strstr(s, "\"value\":{\"value\":\"\",\"format\":\"string\"}"));
  ASSERT(!strstr(s, "error"));
  free(s);
}

/* The frame text itself (JSON readers would reformat numbers). */
static void value_as(kwp_fmt_t fmt, const void *bytes, size_t len,
                     const char *want) {
  kwp_record_t r = {.value = bytes, .value_len = len};
  char *s = frame(KWP_FMT_NONE, fmt, &r), field[128];
  kwp_js_t js; /* valid JSON: jansson refuses numbers beyond a double, the
                 reader repeated names */
  kwp_js_init(&js, s, strlen(s));
  int ok = kwp_js_value(&js, NULL) == 0 && kwp_js_end(&js) == 0;
  kwp_js_free(&js);
  json_t *root = ok ? NULL : json_loads(s, 0, NULL);
  ASSERT(ok || root != NULL);
  json_decref(root);
  ASSERT(strstr(s, "\"error\":") == NULL);
  snprintf(field, sizeof(field), "\"value\":{\"value\":%s,\"format\"", want);
  if (!strstr(s, field))
    fprintf(stderr, "  %s lacks %s\n", s, field);
  ASSERT(strstr(s, field) != NULL);
  free(s);
}

KWP_TEST(consume_record_formats) {
  value_as(KWP_FMT_INT, "\x80\x00\x00\x00", 4, "-2147483648");
  value_as(KWP_FMT_INT, "\x7f\xff\xff\xff", 4, "2147483647");
  value_as(KWP_FMT_SHORT, "\xff\xfe", 2, "-2");
  value_as(KWP_FMT_LONG, "\x80\0\0\0\0\0\0\0", 8, "-9223372036854775808");
  value_as(KWP_FMT_DOUBLE, "\x3f\xb9\x99\x99\x99\x99\x99\x9a", 8, "0.1");
  value_as(KWP_FMT_DOUBLE, "\x40\x00\0\0\0\0\0\0", 8, "2.0");
  value_as(KWP_FMT_FLOAT, "\x40\x48\xf5\xc3", 4, "3.14");
  value_as(KWP_FMT_FLOAT, "\x3f\x80\x00\x00", 4, "1.0");
  value_as(KWP_FMT_JSON, "{\"a\":[1,\"\xc3\xa9\"]}", 14,
           "{\"a\":[1,\"\xc3\xa9\"]}");
  /* JSON beyond 64-bit integers and doubles (jansson refused it), stored
   * whitespace dropped, repeated names tolerated */
  value_as(KWP_FMT_JSON, "{\"n\": 12345678901234567890, \"x\": [1E+999]}", 42,
           "{\"n\":12345678901234567890,\"x\":[1E+999]}");
  value_as(KWP_FMT_JSON, "{\"a\":1,\"a\":2}", 13, "{\"a\":1,\"a\":2}");
  value_as(KWP_FMT_BYTEARRAY, "\x00\x01\xfe", 3, "\"AAH+\"");
  value_as(KWP_FMT_AVRO, "", 0, "\"\"");
  value_as(KWP_FMT_STRING, "\"\\/", 3, "\"\\\"\\\\/\"");
}

KWP_TEST(consume_record_undecodable) {
  static const struct {
    kwp_fmt_t fmt;
    const char *bytes;
    size_t len;
  } bad[] = {{KWP_FMT_INT, "\1\2\3", 3},
             {KWP_FMT_SHORT, "\1", 1},
             {KWP_FMT_LONG, "\1\2\3\4", 4},
             {KWP_FMT_JSON, "{nope", 5},
             {KWP_FMT_STRING, "\xc3\x28", 2},
             {KWP_FMT_STRING, "\xed\xa0\x80", 3},
             {KWP_FMT_DOUBLE, "\x7f\xf8\0\0\0\0\0\0", 8}};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    kwp_record_t r = {.value = (const uint8_t *)bad[i].bytes,
                      .value_len = bad[i].len};
    char *s = frame(KWP_FMT_NONE, bad[i].fmt, &r);
    json_t *root = json_loads(s, 0, NULL);
    ASSERT(root != NULL);
    ASSERT_STREQ(json_string_value(json_object_get(root, "error")),
                 "invalid_value");
    json_t *v = json_object_get(root, "value");
    ASSERT_STREQ(json_string_value(json_object_get(v, "format")), "bytearray");
    uint8_t raw[16];
    const char *b64 = json_string_value(json_object_get(v, "value"));
    ASSERT_EQ(kwp_base64_decode(b64, strlen(b64), raw), (long)bad[i].len);
    ASSERT(memcmp(raw, bad[i].bytes, bad[i].len) == 0);
    json_decref(root);
    free(s);
  }
  kwp_record_t r = {.key = (const uint8_t *)"\1",
                    .key_len = 1,
                    .value = (const uint8_t *)"v",
                    .value_len = 1};
  char *s = frame(KWP_FMT_INT, KWP_FMT_STRING, &r);
  ASSERT(strstr(s, "\"error\":\"invalid_key\""));
  free(s);
}

KWP_TEST(consume_commit_parse) {
  char id[32];
  const char *why;
  ASSERT_EQ(kwp_consume_commit_parse("{\"wsProxyMessageId\":\"t-0-1-2\","
                                     "\"x\":1}",
                                     36, id, sizeof(id), &why),
            7);
  ASSERT_STREQ(id, "t-0-1-2");
  ASSERT_EQ(kwp_consume_commit_parse("nope", 4, id, sizeof(id), &why),
            KWP_EBADCOMMIT);
  ASSERT_EQ(kwp_consume_commit_parse("{\"wsProxyMessageId\":1}", 22, id,
                                     sizeof(id), &why),
            KWP_EBADCOMMIT);
  ASSERT_EQ(kwp_consume_commit_parse("[]", 2, id, sizeof(id), &why),
            KWP_EBADCOMMIT);
  /* Regressions: a \u0000 was "must be a JSON object", a repeated key took
   * the last value. */
  const char *nul = "{\"wsProxyMessageId\":\"t-0-1\\u0000-2\"}";
  ASSERT_EQ(kwp_consume_commit_parse(nul, strlen(nul), id, sizeof(id), &why),
            KWP_EBADCOMMIT);
  ASSERT_STREQ(why,
               "'wsProxyMessageId' holds a NUL character: no record has such "
               "an id");
  const char *dup = "{\"wsProxyMessageId\":\"a\",\"wsProxyMessageId\":\"b\"}";
  ASSERT_EQ(kwp_consume_commit_parse(dup, strlen(dup), id, sizeof(id), &why),
            KWP_EBADCOMMIT);
  ASSERT_STREQ(why, "a commit must not repeat a key");
  kwp_sbuf_t b = {0};
  ASSERT_EQ(kwp_consume_error(&b, KWP_EUNKNOWNID, "a\"b", "m"), 0);
  ASSERT_EQ(b.len,
            strlen("{\"error\":\"unknown_message_id\","
                   "\"wsProxyMessageId\":\"a\\\"b\",\"message\":\"m\"}"));
  ASSERT(memcmp(b.data,
                "{\"error\":\"unknown_message_id\",\"wsProxyMessageId\":"
                "\"a\\\"b\",\"message\":\"m\"}",
                b.len) == 0);
  kwp_sbuf_free(&b);
}

KWP_TEST(consume_params) {
  char msg[256], v[KWP_PARAM_MAX];
  int err = 0, b = 7;
  int64_t n = 0;
  ASSERT_EQ(
      kwp_param_positive("/x?rate=25", "rate", 100, &n, &err, msg, sizeof(msg)),
      1);
  ASSERT_EQ(n, 25);
  ASSERT_EQ(
      kwp_param_positive("/x?rate=0", "rate", 100, &n, &err, msg, sizeof(msg)),
      -1);
  ASSERT_EQ(err, KWP_EBADREQ);
  ASSERT(strstr(msg, "'rate'"));
  ASSERT_EQ(
      kwp_param_positive("/x?rate=5x", "rate", 100, &n, &err, msg, sizeof(msg)),
      -1);
  ASSERT_EQ(kwp_param_positive("/x?rate=101", "rate", 100, &n, &err, msg,
                               sizeof(msg)),
            -1);
  ASSERT_EQ(kwp_param_positive("/x?rate=%2B5", "rate", 100, &n, &err, msg,
                               sizeof(msg)),
            -1);
  ASSERT_EQ(kwp_param_positive("/x?rate=%205", "rate", 100, &n, &err, msg,
                               sizeof(msg)),
            -1);
  ASSERT_EQ(kwp_param_positive("/x", "rate", 100, &n, &err, msg, sizeof(msg)),
            0);
  ASSERT_EQ(kwp_param_bool("/x?autoCommit=FALSE", "autoCommit", &b, &err, msg,
                           sizeof(msg)),
            1);
  ASSERT_EQ(b, 0);
  ASSERT_EQ(kwp_param_bool("/x?autoCommit=maybe", "autoCommit", &b, &err, msg,
                           sizeof(msg)),
            -1);
  ASSERT_STREQ(msg, "'maybe' is not a valid boolean value");
  ASSERT_EQ(kwp_param_required("/x?topic=", "topic", v, &err, msg, sizeof(msg)),
            -1);
  ASSERT_STREQ(msg, "Request param 'topic' is missing.");
  ASSERT_EQ(kwp_param_topic("/x?topic=", v, &err, msg, sizeof(msg)), -1);
  ASSERT_STREQ(msg, "Request param 'topic' is missing.");
  ASSERT_EQ(kwp_param_topic("/x?topic=a.B_9-z", v, &err, msg, sizeof(msg)), 1);
  ASSERT_STREQ(v, "a.B_9-z");
  const char *bad[] = {"a%22b",  "a%5Cb", "a%01b", "a/b", "a%20b",
                       "%C3%A9", ".",     "..",    "a:b"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char url[64];
    snprintf(url, sizeof(url), "/x?topic=%s", bad[i]);
    err = 0;
    ASSERT_EQ(kwp_param_topic(url, v, &err, msg, sizeof(msg)), -1);
    ASSERT_EQ(err, KWP_EBADREQ);
    ASSERT(!strncmp(msg,
                    "Request param 'topic' is not a valid Kafka topic "
                    "name: ",
                    55));
  }
  char url[300] = "/x?topic=";
  memset(url + 9, 't', 249);
  url[9 + 249] = 0;
  ASSERT_EQ(kwp_param_topic(url, v, &err, msg, sizeof(msg)), 1);
  strcat(url, "t");
  ASSERT_EQ(kwp_param_topic(url, v, &err, msg, sizeof(msg)), -1);
  ASSERT_STREQ(msg, "Request param 'topic' is not a valid Kafka topic name: "
                    "it is longer than 249 characters.");
}

/* One commit in flight per partition; newer ones wait, only the newest is
 * sent; retriable failures wait for kwp_cgate_due(). */
KWP_TEST(commit_gate_keeps_order) {
  kwp_cgate_t *g = kwp_cgate_new();
  kwp_commit_pos_t due[4];
  ASSERT_EQ(kwp_cgate_request(g, 0, 10), 1);
  ASSERT_EQ(kwp_cgate_request(g, 0, 11), 0);
  ASSERT_EQ(kwp_cgate_request(g, 0, 12), 0);
  ASSERT_EQ(kwp_cgate_request(g, 1, 5), 1); /* other partitions are free */
  ASSERT_EQ(kwp_cgate_waiting(g), 1);
  ASSERT_EQ(kwp_cgate_done(g, 0, 10, 0), 12); /* 11 is covered by 12 */
  ASSERT_EQ(kwp_cgate_done(g, 0, 12, 0), -1);
  ASSERT_EQ(kwp_cgate_waiting(g), 0);
  /* A retriable failure waits for the retry, and newer requests join it. */
  ASSERT_EQ(kwp_cgate_done(g, 1, 5, 1), -1);
  ASSERT_EQ(kwp_cgate_request(g, 1, 4), 0);
  ASSERT_EQ(kwp_cgate_due(g, due, 4), 1);
  ASSERT_EQ(due[0].partition, 1);
  ASSERT_EQ(due[0].offset, 5);
  ASSERT_EQ(kwp_cgate_due(g, due, 4), 0); /* in flight again */
  ASSERT_EQ(kwp_cgate_request(g, 1, 9), 0);
  ASSERT_EQ(kwp_cgate_done(g, 1, 5, 2), 9); /* failed for good: next one */
  /* A revoked partition's waiting commit goes at once, in flight or not. */
  ASSERT_EQ(kwp_cgate_request(g, 1, 20), 0);
  ASSERT_EQ(kwp_cgate_take(g, 1), 20);
  ASSERT_EQ(kwp_cgate_take(g, 1), -1);
  ASSERT_EQ(kwp_cgate_done(g, 1, 9, 0), -1);
  ASSERT_EQ(kwp_cgate_waiting(g), 0);
  kwp_cgate_free(g);
}

/* Escaping works 64, 16 and 8 bytes at a time: every special byte at every
 * position of a long string must still be escaped (and nothing else
 * touched), and a byte that is not UTF-8 anywhere must be seen. */
#define ESC_LEN 150
KWP_TEST(consume_escape_every_position) {
  static const char *const specials[] = {"\"", "\\", "\x01", "\x1f", "\n"};
  static const char *const escaped[] = {"\\\"", "\\\\", "\\u0001", "\\u001f",
                                        "\\n"};
  for (size_t k = 0; k < 5; k++)
    for (size_t at = 0; at < ESC_LEN; at++) {
      char in[ESC_LEN + 1], want[2 * ESC_LEN];
      memset(in, 'a', ESC_LEN);
      in[ESC_LEN] = 0;
      in[at] = specials[k][0];
      snprintf(want, sizeof(want), "\"value\":{\"value\":\"%.*s%s%s\",",
               (int)at, in, escaped[k], in + at + 1);
      kwp_record_t r = {.value = (const uint8_t *)in, .value_len = ESC_LEN};
      char *f = frame(KWP_FMT_NONE, KWP_FMT_STRING, &r);
      if (!strstr(f, want))
        fprintf(stderr, "  %s lacks %s\n", f, want);
      ASSERT(strstr(f, want) != NULL);
      free(f);
    }
  for (size_t at = 0; at < ESC_LEN; at++) {
    char in[ESC_LEN];
    memset(in, 'a', ESC_LEN);
    in[at] = (char)0xff;
    kwp_record_t r = {.value = (const uint8_t *)in, .value_len = ESC_LEN};
    char *f = frame(KWP_FMT_NONE, KWP_FMT_STRING, &r);
    ASSERT(strstr(f, "\"error\":\"invalid_value\"") != NULL);
    free(f);
  }
  /* Non-ASCII and DEL pass through unescaped. */
  kwp_record_t r = {.value = (const uint8_t *)"\x7f\xc3\xa9"
                                              "abcdefgh\xe2\x82\xac",
                    .value_len = 14};
  char *f = frame(KWP_FMT_NONE, KWP_FMT_STRING, &r);
  ASSERT(strstr(f, "\"value\":\"\x7f\xc3\xa9"
                   "abcdefgh\xe2\x82\xac\"") != NULL);
  free(f);
}
