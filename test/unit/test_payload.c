/* The payload-format seam (codec/payload.h) through the JSON format, the
 * frame helpers the paths write with, the error vocabulary's mappings
 * (result codes, librdkafka codes) and the dialect registry. */
#include "codec/payload.h"
#include "codec/ws/ws.h"
#include "core/base/error.h"
#include "core/config/limits.h"
#include "core/dialect/dialect.h"
#include "core/kafka/kafka.h"
#include "test/unit/unit.h"

#include <jansson.h>
#include <stdlib.h>

/* What a sink saw. */
typedef struct seen {
  int records, rejects, err;
  char tag[64], why[256], value[64];
  size_t nheaders;
  int has_key;
} seen_t;

static void on_record(void *arg, const kwp_precord_t *r) {
  seen_t *s = arg;
  s->records++;
  snprintf(s->tag, sizeof(s->tag), "%.*s", (int)r->tag_len,
           r->tag ? r->tag : "");
  snprintf(s->value, sizeof(s->value), "%.*s", (int)r->value_len,
           (const char *)r->value);
  s->nheaders = r->nheaders;
  s->has_key = r->key != NULL;
  ASSERT_EQ(r->partition, KWP_PARTITION_ANY);
}

static void on_reject(void *arg, const char *tag, size_t tag_len, int err,
                      const char *why) {
  seen_t *s = arg;
  s->rejects++;
  s->err = err;
  snprintf(s->tag, sizeof(s->tag), "%.*s", (int)tag_len, tag ? tag : "");
  snprintf(s->why, sizeof(s->why), "%s", why);
}

static seen_t decode(const kwp_payload_t *fmt, int opcode, const char *text) {
  kwp_payload_opts_t o = {"t", 1, KWP_FMT_STRING, KWP_FMT_STRING, NULL};
  seen_t s = {0};
  kwp_precord_sink_t sink = {on_record, on_reject, &s};
  fmt->produce_decode(&o, opcode, (const uint8_t *)text, strlen(text), &sink);
  ASSERT_EQ(s.records + s.rejects, 1); /* exactly one answer */
  return s;
}

KWP_TEST(payload_find) {
  ASSERT(kwp_payload_find("json") != NULL);
  ASSERT(kwp_payload_find("JSON") == kwp_payload_find("json"));
  ASSERT(kwp_payload_find("AVRO") == kwp_payload_find("avro"));
  ASSERT_EQ(kwp_payload_find("avro")->opcode, KWP_WS_BINARY);
  ASSERT(kwp_payload_find("protobuf") == NULL);
  ASSERT(kwp_payload_find("") == NULL);
  ASSERT_EQ(kwp_payload_find("json")->opcode, KWP_WS_TEXT);
}

KWP_TEST(payload_json_produce_decode) {
  const kwp_payload_t *json = kwp_payload_find("json");
  seen_t s = decode(json, KWP_WS_TEXT,
                    "{\"key\":{\"value\":\"k\"},\"value\":{\"value\":\"v\"},"
                    "\"headers\":[{\"key\":\"h\",\"value\":\"x\"}],"
                    "\"messageId\":\"m1\"}");
  ASSERT_EQ(s.records, 1);
  ASSERT_STREQ(s.tag, "\"m1\""); /* the id as JSON text, echoed as is */
  ASSERT_STREQ(s.value, "v");
  ASSERT_EQ(s.nheaders, 1);
  ASSERT(s.has_key);
  s = decode(json, KWP_WS_BINARY, "{}");
  ASSERT_EQ(s.err, KWP_EFRAMETYPE);
  ASSERT_STREQ(s.tag, "");
  s = decode(json, KWP_WS_TEXT, "{\"messageId\":7,\"value\":{\"value\":1}}");
  ASSERT_EQ(s.err, KWP_EBADVALUE);
  ASSERT_STREQ(s.tag, "7"); /* the id survives a bad value */
  s = decode(json, KWP_WS_TEXT, "{\"messageId\":7,");
  ASSERT_EQ(s.err, KWP_EJSON);
  ASSERT_STREQ(s.tag, ""); /* nothing of invalid JSON is trusted */
}

KWP_TEST(payload_json_produce_result) {
  const kwp_payload_t *json = kwp_payload_find("json");
  kwp_payload_opts_t o = {"tp", 2, KWP_FMT_NONE, KWP_FMT_STRING, NULL};
  kwp_sbuf_t b = {0};
  kwp_presult_t ok = {.partition = 1,
                      .offset = 9,
                      .timestamp = 5,
                      .tag = "\"a\"",
                      .tag_len = 3};
  ASSERT_EQ(json->produce_result(&b, &o, &ok), 0);
  kwp_sbuf_append(&b, "", 1);
  ASSERT_STREQ(b.data, "{\"topic\":\"tp\",\"partition\":1,\"offset\":9,"
                       "\"timestamp\":5,\"messageId\":\"a\","
                       "\"clientMessageId\":\"a\"}");
  b.len = 0;
  kwp_presult_t bad = {.err = KWP_EDELIVERYTIMEOUT, .message = "late"};
  ASSERT_EQ(json->produce_result(&b, &o, &bad), 0);
  kwp_sbuf_append(&b, "", 1);
  ASSERT_STREQ(b.data, "{\"messageId\":null,\"clientMessageId\":null,"
                       "\"error\":\"delivery_timeout\",\"message\":\"late\"}");
  kwp_sbuf_free(&b);
}

KWP_TEST(payload_json_commit_decode) {
  const kwp_payload_t *json = kwp_payload_find("json");
  kwp_payload_opts_t o = {"my-t", 4, KWP_FMT_NONE, KWP_FMT_STRING, NULL};
  kwp_record_ref_t ref;
  char id[64];
  const char *why = NULL;
  const char *ok = "{\"wsProxyMessageId\":\"my-t-3-17-1700\"}";
  ASSERT_EQ(json->commit_decode(&o, KWP_WS_TEXT, (const uint8_t *)ok,
                                strlen(ok), &ref, id, sizeof(id), &why),
            0);
  ASSERT_EQ(ref.partition, 3);
  ASSERT_EQ(ref.offset, 17);
  ASSERT_EQ(ref.timestamp, 1700);
  ASSERT_STREQ(id, "my-t-3-17-1700");
  ASSERT_EQ(json->commit_decode(&o, KWP_WS_BINARY, (const uint8_t *)ok,
                                strlen(ok), &ref, id, sizeof(id), &why),
            KWP_EFRAMETYPE);
  const char *bad = "{\"wsProxyMessageId\":1}";
  ASSERT_EQ(json->commit_decode(&o, KWP_WS_TEXT, (const uint8_t *)bad,
                                strlen(bad), &ref, id, sizeof(id), &why),
            KWP_EBADCOMMIT);
  ASSERT(why && strstr(why, "wsProxyMessageId"));
  const char *other = "{\"wsProxyMessageId\":\"other-3-17-1700\"}";
  ASSERT_EQ(json->commit_decode(&o, KWP_WS_TEXT, (const uint8_t *)other,
                                strlen(other), &ref, id, sizeof(id), &why),
            KWP_EUNKNOWNID);
  ASSERT_STREQ(id, "other-3-17-1700"); /* named in the error frame */
}

static int no_headers(const void *h, size_t i, const char **n, const void **v,
                      size_t *l) {
  return -1;
}

KWP_TEST(payload_json_record_batch) {
  const kwp_payload_t *json = kwp_payload_find("json");
  kwp_payload_opts_t o = {"t", 1, KWP_FMT_NONE, KWP_FMT_STRING, NULL};
  kwp_record_t r = {.partition = 0,
                    .offset = 4,
                    .timestamp = 8,
                    .value = (const uint8_t *)"v",
                    .value_len = 1,
                    .header = no_headers};
  kwp_sbuf_t b = {0};
  kwp_sbuf_append(&b, json->batch_open, strlen(json->batch_open));
  ASSERT_EQ(json->record(&b, &o, &r), 0);
  kwp_sbuf_append(&b, json->batch_sep, strlen(json->batch_sep));
  ASSERT_EQ(json->record(&b, &o, &r), 0);
  kwp_sbuf_append(&b, json->batch_close, strlen(json->batch_close));
  json_error_t e;
  json_t *v = json_loadb(b.data, b.len, 0, &e);
  ASSERT(json_is_array(v) && json_array_size(v) == 2);
  ASSERT_STREQ(json_string_value(
                   json_object_get(json_array_get(v, 1), "wsProxyMessageId")),
               "t-0-4-8");
  json_decref(v);
  b.len = 0;
  ASSERT_EQ(json->error(&b, KWP_EUNKNOWNID, "x", "m"), 0);
  kwp_sbuf_append(&b, "", 1);
  ASSERT_STREQ(b.data, "{\"error\":\"unknown_message_id\","
                       "\"wsProxyMessageId\":\"x\",\"message\":\"m\"}");
  kwp_sbuf_free(&b);
}

/* Frames written in place: every header length, the payload intact. */
KWP_TEST(ws_frame_into_buffer) {
  static const size_t sizes[] = {0, 1, 125, 126, 127, 65535, 65536, 70000};
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    kwp_sbuf_t b = {0};
    kwp_sbuf_append(&b, "xy", 2); /* a frame already there */
    size_t at = kwp_ws_frame_open(&b);
    ASSERT_EQ(at, 2);
    char *d = kwp_sbuf_reserve(&b, sizes[i]);
    for (size_t k = 0; k < sizes[i]; k++)
      d[k] = (char)(k * 7);
    b.len += sizes[i];
    ASSERT_EQ(kwp_ws_frame_close(&b, at, KWP_WS_BINARY), 0);
    uint8_t hdr[10];
    size_t h = kwp_ws_header_encode(hdr, KWP_WS_BINARY, 1, sizes[i]);
    ASSERT_EQ(b.len, 2 + h + sizes[i]);
    ASSERT(!memcmp(b.data + 2, hdr, h));
    for (size_t k = 0; k < sizes[i]; k++)
      ASSERT_EQ((uint8_t)b.data[2 + h + k], (uint8_t)(k * 7));
    kwp_sbuf_free(&b);
  }
}

KWP_TEST(error_result_codes) {
  static const struct {
    int err;
    const char *code;
    int status;
  } map[] = {
      {KWP_EJSON, "invalid_json", 400},
      {KWP_EBADMSG, "invalid_message", 400},
      {KWP_EBADKEY, "invalid_key", 400},
      {KWP_EBADVALUE, "invalid_value", 400},
      {KWP_EBADHEADERS, "invalid_headers", 400},
      {KWP_EFRAMETYPE, "unsupported_frame", 400},
      {KWP_EBADCOMMIT, "invalid_commit", 400},
      {KWP_EUNKNOWNID, "unknown_message_id", 500},
      {KWP_EDELIVERYTIMEOUT, "delivery_timeout", 500},
      {KWP_EMSGSIZE, "message_too_large", 500},
      {KWP_ENOTOPIC, "topic_not_found", 500},
      {KWP_ENOTDELIVERED, "not_delivered", 500},
      {KWP_EBUSY, "busy", 500},
      {KWP_ETXN, "transaction_aborted", 500},
      {KWP_EKAFKA, "kafka_error", 503},
  };
  for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
    ASSERT_STREQ(kwp_err_result_code(map[i].err), map[i].code);
    ASSERT_EQ(kwp_err_http_status(map[i].err), map[i].status);
  }
  ASSERT_EQ(kwp_err_http_status(KWP_EUNAUTHORIZED), 401);
  ASSERT_EQ(kwp_err_http_status(KWP_EFORBIDDEN), 403);
  ASSERT_EQ(kwp_err_close_code(KWP_EUNAUTHORIZED), 1008);
  ASSERT_EQ(kwp_err_close_code(KWP_EFORBIDDEN), 1008);
  ASSERT_STREQ(kwp_strerror(KWP_EUNAUTHORIZED), "authentication required");
}

KWP_TEST(error_kafka_mapping) {
  ASSERT_EQ(kwp_kafka_err(RD_KAFKA_RESP_ERR_NO_ERROR), 0);
  ASSERT_EQ(kwp_kafka_err(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT),
            KWP_EDELIVERYTIMEOUT);
  ASSERT_EQ(kwp_kafka_err(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE), KWP_EMSGSIZE);
  ASSERT_EQ(kwp_kafka_err(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART),
            KWP_ENOTOPIC);
  ASSERT_EQ(kwp_kafka_err(RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION), KWP_ENOTOPIC);
  ASSERT_EQ(kwp_kafka_err(RD_KAFKA_RESP_ERR__PURGE_INFLIGHT),
            KWP_ENOTDELIVERED);
  ASSERT_EQ(kwp_kafka_err(RD_KAFKA_RESP_ERR__QUEUE_FULL), KWP_EBUSY);
  ASSERT_EQ(kwp_kafka_err(RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION),
            KWP_EKAFKA);
}

KWP_TEST(dialect_registry) {
  kwp_config_t cfg;
  memset(&cfg, 0, sizeof(cfg));
  ASSERT(kwp_dialect_find("/socket/in", 10, &cfg) == &kwp_dialect_wsproxy_in);
  ASSERT(kwp_dialect_find("/socket/out", 11, &cfg) == &kwp_dialect_wsproxy_out);
  ASSERT(kwp_dialect_find("/socket/in?x", 10, &cfg) ==
         &kwp_dialect_wsproxy_in); /* the path's length is the caller's */
  ASSERT(kwp_dialect_find("/socket", 7, &cfg) == NULL);
  ASSERT(kwp_dialect_find("/echo", 5, &cfg) == NULL); /* disabled */
  cfg.server.echo_endpoint_enabled = 1;
  ASSERT(kwp_dialect_find("/echo", 5, &cfg) == &kwp_dialect_echo);
}

KWP_TEST(limits_rates_and_batches) {
  char err[256];
  kwp_config_t *cfg = kwp_config_load_string(
      "kafka.ws.proxy {\n"
      "  consumer.limits {\n"
      "    default-messages-per-second = 5\n"
      "    default-batch-size = 3\n"
      "    client-specific-limits = [\n"
      "      { group-id = g, messages-per-second = 7, batch-size = 0 }\n"
      "    ]\n"
      "  }\n"
      "  producer.limits {\n"
      "    default-messages-per-second = 11\n"
      "    client-specific-limits = [\n"
      "      { producer-id = p, messages-per-second = 0 }\n"
      "    ]\n"
      "  }\n"
      "}\n",
      "test", 1, err, sizeof(err));
  ASSERT(cfg != NULL);
  ASSERT_EQ(kwp_limits_consumer_rate(cfg, "g"), 7);
  ASSERT_EQ(kwp_limits_consumer_rate(cfg, "other"), 5);
  ASSERT_EQ(kwp_limits_consumer_batch(cfg, "g"), 0);
  ASSERT_EQ(kwp_limits_consumer_batch(cfg, "other"), 3);
  ASSERT_EQ(kwp_limits_producer_rate(cfg, "p"), 0);
  ASSERT_EQ(kwp_limits_producer_rate(cfg, "q"), 11);
  kwp_config_free(cfg);
}
