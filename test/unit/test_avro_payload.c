/* socketPayload=avro (codec/avro/avro_payload.c) checked against avro-c:
 * records avro-c writes under the served schemas decode to the right Kafka
 * bytes, and what the format writes reads back under avro-c with the
 * values it should hold; every cut-short or garbled frame is refused. */
#include "codec/avro/schemas.h"
#include "codec/payload.h"
#include "codec/ws/ws.h"
#include "core/base/error.h"
#include "test/unit/unit.h"

#include <avro.h>
#include <stdlib.h>

static avro_schema_t schema(const char *path) {
  const kwp_avro_schema_doc_t *d = kwp_avro_schema_find(path, strlen(path));
  avro_schema_t s;
  ASSERT(d != NULL);
  if (avro_schema_from_json_length(d->text, strlen(d->text), &s) != 0) {
    fprintf(stderr, "  %s: %s\n", path, avro_strerror());
    ASSERT(0);
  }
  return s;
}

/* A generic value of @p path's schema, to fill or read into. */
static void value_new(const char *path, avro_value_t *v) {
  avro_schema_t s = schema(path);
  avro_value_iface_t *iface = avro_generic_class_from_schema(s);
  ASSERT(iface != NULL);
  ASSERT_EQ(avro_generic_value_new(iface, v), 0);
  /* the value holds the class, which holds the schema */
  avro_value_iface_decref(iface);
  avro_schema_decref(s);
}

static size_t value_write(avro_value_t *v, char *buf, size_t cap) {
  avro_writer_t w = avro_writer_memory(buf, (int64_t)cap);
  ASSERT_EQ(avro_value_write(w, v), 0);
  size_t n = (size_t)avro_writer_tell(w);
  avro_writer_free(w);
  return n;
}

static void value_read(const char *path, const void *buf, size_t len,
                       avro_value_t *v) {
  value_new(path, v);
  avro_reader_t r = avro_reader_memory(buf, (int64_t)len);
  ASSERT_EQ(avro_value_read(r, v), 0);
  avro_reader_free(r);
}

static avro_value_t field(avro_value_t *v, const char *name) {
  avro_value_t f;
  ASSERT_EQ(avro_value_get_by_name(v, name, &f, NULL), 0);
  return f;
}

/* The branch index of union field @p name, its value in @p out. */
static int branch(avro_value_t *v, const char *name, avro_value_t *out) {
  avro_value_t f = field(v, name);
  int disc;
  ASSERT_EQ(avro_value_get_discriminant(&f, &disc), 0);
  ASSERT_EQ(avro_value_get_current_branch(&f, out), 0);
  return disc;
}

static const char *str(avro_value_t *v) {
  const char *s;
  size_t n;
  ASSERT_EQ(avro_value_get_string(v, &s, &n), 0);
  return s;
}

/* --- what a sink saw --- */

typedef struct seen {
  int records, rejects, err;
  uint8_t key[16], value[16];
  size_t key_len, value_len, nheaders;
  int has_key, has_value;
  char tag[32], why[160];
} seen_t;

static void on_record(void *arg, const kwp_precord_t *r) {
  seen_t *s = arg;
  s->records++;
  s->has_key = r->key != NULL;
  s->has_value = r->value != NULL;
  s->key_len = r->key_len < 16 ? r->key_len : 16;
  s->value_len = r->value_len < 16 ? r->value_len : 16;
  if (r->key)
    memcpy(s->key, r->key, s->key_len);
  if (r->value)
    memcpy(s->value, r->value, s->value_len);
  s->nheaders = r->nheaders;
  snprintf(s->tag, sizeof(s->tag), "%.*s", (int)r->tag_len,
           r->tag ? r->tag : "");
}

static void on_reject(void *arg, const char *tag, size_t tag_len, int err,
                      const char *why) {
  seen_t *s = arg;
  s->rejects++;
  s->err = err;
  snprintf(s->tag, sizeof(s->tag), "%.*s", (int)tag_len, tag ? tag : "");
  snprintf(s->why, sizeof(s->why), "%s", why);
}

static const kwp_payload_opts_t opts = {"t", 1, KWP_FMT_NONE, KWP_FMT_STRING,
                                        NULL};

static seen_t decode(int opcode, const void *data, size_t len) {
  seen_t s;
  memset(&s, 0, sizeof(s));
  kwp_precord_sink_t sink = {on_record, on_reject, &s};
  kwp_payload_find("avro")->produce_decode(&opts, opcode, data, len, &sink);
  ASSERT_EQ(s.records + s.rejects, 1);
  return s;
}

KWP_TEST(avro_schemas_parse) {
  for (size_t i = 0; kwp_avro_schema_at(i); i++)
    avro_schema_decref(schema(kwp_avro_schema_at(i)->path));
  ASSERT(kwp_avro_schema_find("producer/commit", 15)->text ==
         kwp_avro_schema_find("consumer/commit", 15)->text);
  ASSERT(kwp_avro_schema_find("producer/recor", 14) == NULL);
}

/* One AvroProducerRecord per key branch, written by avro-c. */
KWP_TEST(avro_produce_decode_every_branch) {
  static const struct {
    int branch; /* of the key union */
    uint8_t kafka[8];
    size_t len;
  } want[] = {
      {1, {0xde, 0xad}, 2},
      {2, {'h', 'i'}, 2},
      {3, {0xff, 0xff, 0xff, 0xfe}, 4},       /* int -2 */
      {4, {0, 0, 1, 0, 0, 0, 0, 0}, 8},       /* long 2^40 */
      {5, {0x3f, 0xf8, 0, 0, 0, 0, 0, 0}, 8}, /* double 1.5 */
      {6, {0xbe, 0x80, 0, 0}, 4},             /* float -0.25 */
  };
  for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
    avro_value_t v, f, b, h, item, hk;
    value_new("producer/record", &v);
    f = field(&v, "key");
    ASSERT_EQ(avro_value_set_branch(&f, want[i].branch, &b), 0);
    switch (want[i].branch) {
    case 1:
      avro_value_set_bytes(&b, (void *)"\xde\xad", 2);
      break;
    case 2:
      avro_value_set_string(&b, "hi");
      break;
    case 3:
      avro_value_set_int(&b, -2);
      break;
    case 4:
      avro_value_set_long(&b, 1LL << 40);
      break;
    case 5:
      avro_value_set_double(&b, 1.5);
      break;
    case 6:
      avro_value_set_float(&b, -0.25f);
      break;
    }
    f = field(&v, "value");
    avro_value_set_branch(&f, 1, &b);
    avro_value_set_string(&b, "val");
    f = field(&v, "headers");
    avro_value_set_branch(&f, 1, &h);
    avro_value_append(&h, &item, NULL);
    avro_value_get_by_name(&item, "key", &hk, NULL);
    avro_value_set_string(&hk, "hk");
    avro_value_get_by_name(&item, "value", &hk, NULL);
    avro_value_set_string(&hk, "hv");
    f = field(&v, "clientMessageId");
    avro_value_set_branch(&f, 1, &b);
    avro_value_set_string(&b, "id-1");
    char buf[256];
    size_t n = value_write(&v, buf, sizeof(buf));
    seen_t s = decode(KWP_WS_BINARY, buf, n);
    ASSERT_EQ(s.records, 1);
    ASSERT_EQ(s.key_len, want[i].len);
    ASSERT(!memcmp(s.key, want[i].kafka, want[i].len));
    ASSERT_EQ(s.value_len, 3);
    ASSERT(!memcmp(s.value, "val", 3));
    ASSERT_EQ(s.nheaders, 1);
    ASSERT_STREQ(s.tag, "id-1");
    /* every shorter prefix is refused, never read past */
    for (size_t cut = 0; cut < n; cut++) {
      char *p = malloc(cut ? cut : 1);
      memcpy(p, buf, cut);
      s = decode(KWP_WS_BINARY, p, cut);
      free(p);
      ASSERT_EQ(s.err, KWP_EBADMSG);
    }
    avro_value_decref(&v);
  }
}

KWP_TEST(avro_produce_decode_refusals) {
  seen_t s = decode(KWP_WS_TEXT, "{}", 2);
  ASSERT_EQ(s.err, KWP_EFRAMETYPE);
  s = decode(KWP_WS_BINARY, "\x0e", 1); /* key branch 7 */
  ASSERT_EQ(s.err, KWP_EBADMSG);
  ASSERT_STREQ(s.why, "not an AvroProducerRecord: a bad union index (field "
                      "'key', byte 1 of 1)");
  /* value null (tombstone), no key, then trailing bytes */
  s = decode(KWP_WS_BINARY, "\x00\x0c\x00\x00", 4);
  ASSERT_EQ(s.records, 1);
  ASSERT(!s.has_key && !s.has_value);
  s = decode(KWP_WS_BINARY, "\x00\x0c\x00\x00\x00", 5);
  ASSERT_EQ(s.err, KWP_EBADMSG);
  /* a string value that is not UTF-8: refused, with the id */
  s = decode(KWP_WS_BINARY, "\x00\x02\x02\xff\x00\x02\x02x", 8);
  ASSERT_EQ(s.err, KWP_EBADVALUE);
  ASSERT_STREQ(s.tag, "x");
  /* a varint of 11 bytes */
  s = decode(KWP_WS_BINARY,
             "\x00\x06\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
             "\x01",
             13);
  ASSERT_EQ(s.err, KWP_EBADMSG);
  /* a header block count of INT64_MIN (fuzz_avro_payload: -n overflowed) */
  s = decode(KWP_WS_BINARY,
             "\x00\x00\x00\x02\xff\xff\xff\xff\xff\xff\xff"
             "\xff\xff\x01",
             14);
  ASSERT_EQ(s.err, KWP_EBADMSG);
  ASSERT(strstr(s.why, "a bad block count (field 'headers'") != NULL);
  /* an int branch out of 32 bits */
  s = decode(KWP_WS_BINARY, "\x00\x04\x80\x80\x80\x80\x20\x00\x00", 9);
  ASSERT_EQ(s.err, KWP_EBADMSG);
}

static void read_result(kwp_sbuf_t *b, avro_value_t *v) {
  value_read("producer/result", b->data, b->len, v);
}

KWP_TEST(avro_produce_result_reads_under_avro_c) {
  const kwp_payload_t *fmt = kwp_payload_find("avro");
  kwp_payload_opts_t o = {"topic-a", 7, KWP_FMT_NONE, KWP_FMT_STRING, NULL};
  kwp_presult_t ok = {.partition = 3,
                      .offset = 1LL << 40,
                      .timestamp = 1700000000000LL,
                      .tag = "m1",
                      .tag_len = 2};
  kwp_sbuf_t b = {0};
  avro_value_t v, x;
  int32_t i32;
  int64_t i64;
  ASSERT_EQ(fmt->produce_result(&b, &o, &ok), 0);
  read_result(&b, &v);
  x = field(&v, "topic");
  ASSERT_STREQ(str(&x), "topic-a");
  x = field(&v, "partition");
  avro_value_get_int(&x, &i32);
  ASSERT_EQ(i32, 3);
  x = field(&v, "offset");
  avro_value_get_long(&x, &i64);
  ASSERT_EQ(i64, 1LL << 40);
  ASSERT_EQ(branch(&v, "clientMessageId", &x), 1);
  ASSERT_STREQ(str(&x), "m1");
  ASSERT_EQ(branch(&v, "error", &x), 0);
  avro_value_decref(&v);
  kwp_presult_t bad = {.err = KWP_EBADVALUE, .message = "no good"};
  b.len = 0;
  ASSERT_EQ(fmt->produce_result(&b, &o, &bad), 0);
  read_result(&b, &v);
  x = field(&v, "offset");
  avro_value_get_long(&x, &i64);
  ASSERT_EQ(i64, -1);
  ASSERT_EQ(branch(&v, "clientMessageId", &x), 0);
  ASSERT_EQ(branch(&v, "error", &x), 1);
  ASSERT_STREQ(str(&x), "invalid_value");
  ASSERT_EQ(branch(&v, "message", &x), 1);
  ASSERT_STREQ(str(&x), "no good");
  avro_value_decref(&v);
  kwp_sbuf_free(&b);
}

static int one_header(const void *hdrs, size_t i, const char **name,
                      const void **value, size_t *len) {
  if (i > 0)
    return -1;
  *name = "h";
  *value = "\xff";
  *len = 1;
  return 0;
}

KWP_TEST(avro_record_reads_under_avro_c) {
  const kwp_payload_t *fmt = kwp_payload_find("avro");
  kwp_payload_opts_t o = {"tp", 2, KWP_FMT_SHORT, KWP_FMT_DOUBLE, NULL};
  kwp_record_t r = {.partition = 1,
                    .offset = 42,
                    .timestamp = 99,
                    .key = (const uint8_t *)"\xfe\xd4",
                    .key_len = 2,
                    .value = (const uint8_t *)"\x40\x04\0\0\0\0\0\0",
                    .value_len = 8,
                    .header = one_header};
  kwp_sbuf_t b = {0};
  avro_value_t v, x;
  int32_t i32;
  double d;
  ASSERT_EQ(fmt->record(&b, &o, &r), 0);
  value_read("consumer/record", b.data, b.len, &v);
  x = field(&v, "wsProxyMessageId");
  ASSERT_STREQ(str(&x), "tp-1-42-99");
  ASSERT_EQ(branch(&v, "key", &x), 3); /* int */
  avro_value_get_int(&x, &i32);
  ASSERT_EQ(i32, -300);
  ASSERT_EQ(branch(&v, "value", &x), 4); /* double */
  avro_value_get_double(&x, &d);
  ASSERT(d == 2.5);
  ASSERT_EQ(branch(&v, "headers", &x), 1);
  avro_value_t item, hv;
  avro_value_get_by_index(&x, 0, &item, NULL);
  avro_value_get_by_name(&item, "value", &hv, NULL);
  ASSERT_STREQ(str(&hv), "/w=="); /* not UTF-8: base64 */
  ASSERT_EQ(branch(&v, "error", &x), 1);
  ASSERT_STREQ(str(&x), "invalid_headers");
  avro_value_decref(&v);
  /* a value of the wrong length goes as bytes, and says so */
  r.value_len = 3;
  r.header = NULL;
  b.len = 0;
  ASSERT_EQ(fmt->record(&b, &o, &r), 0);
  value_read("consumer/record", b.data, b.len, &v);
  ASSERT_EQ(branch(&v, "value", &x), 0);
  ASSERT_EQ(branch(&v, "error", &x), 1);
  ASSERT_STREQ(str(&x), "invalid_value");
  ASSERT_EQ(branch(&v, "headers", &x), 0);
  avro_value_decref(&v);
  /* a tombstone: the null branch, last */
  r.value = NULL;
  b.len = 0;
  ASSERT_EQ(fmt->record(&b, &o, &r), 0);
  value_read("consumer/record", b.data, b.len, &v);
  ASSERT_EQ(branch(&v, "value", &x), 6);
  avro_value_decref(&v);
  /* an error frame reads as a record too */
  b.len = 0;
  ASSERT_EQ(fmt->error(&b, KWP_EUNKNOWNID, "tp-0-1-2", "gone"), 0);
  value_read("consumer/record", b.data, b.len, &v);
  x = field(&v, "wsProxyMessageId");
  ASSERT_STREQ(str(&x), "tp-0-1-2");
  x = field(&v, "topic");
  ASSERT_STREQ(str(&x), "");
  ASSERT_EQ(branch(&v, "error", &x), 1);
  ASSERT_STREQ(str(&x), "unknown_message_id");
  avro_value_decref(&v);
  kwp_sbuf_free(&b);
}

KWP_TEST(avro_commit_decode) {
  const kwp_payload_t *fmt = kwp_payload_find("avro");
  kwp_payload_opts_t o = {"tp", 2, KWP_FMT_NONE, KWP_FMT_STRING, NULL};
  avro_value_t v, x;
  char buf[128], id[64];
  const char *why = NULL;
  kwp_record_ref_t ref;
  value_new("consumer/commit", &v);
  x = field(&v, "wsProxyMessageId");
  avro_value_set_string(&x, "tp-3-17-1234");
  size_t n = value_write(&v, buf, sizeof(buf));
  ASSERT_EQ(fmt->commit_decode(&o, KWP_WS_BINARY, (uint8_t *)buf, n, &ref, id,
                               sizeof(id), &why),
            0);
  ASSERT_EQ(ref.partition, 3);
  ASSERT_EQ(ref.offset, 17);
  ASSERT_EQ(ref.timestamp, 1234);
  ASSERT_EQ(fmt->commit_decode(&o, KWP_WS_BINARY, (uint8_t *)buf, n - 1, &ref,
                               id, sizeof(id), &why),
            KWP_EBADCOMMIT);
  ASSERT_EQ(fmt->commit_decode(&o, KWP_WS_TEXT, (uint8_t *)buf, n, &ref, id,
                               sizeof(id), &why),
            KWP_EFRAMETYPE);
  avro_value_set_string(&x, "other-3-17-1234");
  n = value_write(&v, buf, sizeof(buf));
  ASSERT_EQ(fmt->commit_decode(&o, KWP_WS_BINARY, (uint8_t *)buf, n, &ref, id,
                               sizeof(id), &why),
            KWP_EUNKNOWNID);
  ASSERT_STREQ(id, "other-3-17-1234");
  avro_value_decref(&v);
}
