/*
 * libFuzzer target for socketPayload=avro (codec/avro/avro_payload.c), whose
 * input is untrusted client bytes: a record the produce decoder accepts must
 * read under avro-c with the same key, value, headers and id; the commit
 * decoder must neither crash nor accept what avro-c cannot read; and any
 * bytes consumed from Kafka, under any key and value type, must make a
 * record and an error frame that avro-c reads back.
 */
#include "codec/avro/schemas.h"
#include "codec/payload.h"
#include "codec/ws/ws.h"
#include "core/base/error.h"

#include <avro.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond))                                                               \
      abort();                                                                 \
  } while (0)

static avro_value_iface_t *iface(const char *path) {
  const kwp_avro_schema_doc_t *d = kwp_avro_schema_find(path, strlen(path));
  avro_schema_t s;
  CHECK(d && avro_schema_from_json_length(d->text, strlen(d->text), &s) == 0);
  return avro_generic_class_from_schema(s);
}

static avro_value_iface_t *in_rec, *out_rec, *commit;

/* Read @p n bytes under @p cls into @p v. @returns 0 or avro-c's error. */
static int read_as(avro_value_iface_t *cls, const void *p, size_t n,
                   avro_value_t *v) {
  CHECK(avro_generic_value_new(cls, v) == 0);
  avro_reader_t r = avro_reader_memory(p, (int64_t)n);
  int rc = avro_value_read(r, v);
  avro_reader_free(r);
  return rc;
}

/* What the decoder handed on, to compare with avro-c's reading. */
typedef struct seen {
  int records;
  const uint8_t *value;
  size_t value_len, nheaders;
  char tag_present;
} seen_t;

static void on_record(void *arg, const kwp_precord_t *r) {
  seen_t *s = arg;
  s->records++;
  s->value = r->value;
  s->value_len = r->value_len;
  s->nheaders = r->nheaders;
  s->tag_present = r->tag != NULL;
}

static void on_reject(void *arg, const char *tag, size_t tag_len, int err,
                      const char *why) {
  CHECK(err == KWP_EBADMSG || err == KWP_EBADKEY || err == KWP_EBADVALUE ||
        err == KWP_EBADHEADERS);
  CHECK(why && *why);
}

static void check_produce(const kwp_payload_t *fmt, const uint8_t *data,
                          size_t len) {
  kwp_payload_opts_t o = {"t", 1, KWP_FMT_NONE, KWP_FMT_STRING, NULL};
  seen_t s = {0};
  kwp_precord_sink_t sink = {on_record, on_reject, &s};
  fmt->produce_decode(&o, KWP_WS_BINARY, data, len, &sink);
  if (!s.records)
    return;
  avro_value_t v, f, b;
  int disc;
  CHECK(read_as(in_rec, data, len, &v) == 0);
  avro_value_get_by_name(&v, "value", &f, NULL);
  avro_value_get_discriminant(&f, &disc);
  avro_value_get_current_branch(&f, &b);
  if (disc == 0 || disc == 1) { /* bytes, string: the same bytes */
    const void *p;
    size_t n;
    if (disc == 0)
      avro_value_get_bytes(&b, &p, &n);
    else
      avro_value_get_string(&b, (const char **)&p, &n), n--;
    CHECK(n == s.value_len && (!n || !memcmp(p, s.value, n)));
  } else {
    CHECK((disc == 6) == (s.value == NULL));
  }
  avro_value_get_by_name(&v, "headers", &f, NULL);
  avro_value_get_discriminant(&f, &disc);
  if (disc == 1) {
    size_t n;
    avro_value_get_current_branch(&f, &b);
    avro_value_get_size(&b, &n);
    CHECK(n == s.nheaders);
  } else {
    CHECK(s.nheaders == 0);
  }
  avro_value_get_by_name(&v, "clientMessageId", &f, NULL);
  avro_value_get_discriminant(&f, &disc);
  CHECK(disc == s.tag_present);
  avro_value_decref(&v);
}

static void check_commit(const kwp_payload_t *fmt, const uint8_t *data,
                         size_t len) {
  kwp_payload_opts_t o = {"t", 1, KWP_FMT_NONE, KWP_FMT_STRING, NULL};
  kwp_record_ref_t ref;
  char id[600];
  const char *why;
  int rc = fmt->commit_decode(&o, KWP_WS_BINARY, data, len, &ref, id,
                              sizeof(id), &why);
  if (rc == 0 || rc == KWP_EUNKNOWNID) {
    avro_value_t v;
    CHECK(read_as(commit, data, len, &v) == 0);
    avro_value_decref(&v);
  } else {
    CHECK(rc == KWP_EBADCOMMIT && why);
  }
}

static int header_at(const void *hdrs, size_t i, const char **name,
                     const void **value, size_t *len) {
  const uint8_t *p = hdrs;
  if (i > 1)
    return -1;
  *name = i ? "b" : "a";
  *value = i ? NULL : p;
  *len = i ? 0 : 3;
  return 0;
}

static void check_record(const kwp_payload_t *fmt, const uint8_t *data,
                         size_t len) {
  kwp_payload_opts_t o = {"topic", 5, (kwp_fmt_t)(data[0] % 11),
                          (kwp_fmt_t)(data[0] / 11 % 11), NULL};
  size_t half = (len - 1) / 2;
  kwp_record_t r = {.partition = 1,
                    .offset = 2,
                    .timestamp = 3,
                    .key = data[0] & 1 ? data + 1 : NULL,
                    .key_len = half,
                    .value = data + 1 + half,
                    .value_len = len - 1 - half,
                    .header = len >= 4 ? header_at : NULL,
                    .hdrs = data + 1};
  kwp_sbuf_t b = {0};
  avro_value_t v;
  CHECK(fmt->record(&b, &o, &r) == 0);
  CHECK(read_as(out_rec, b.data, b.len, &v) == 0);
  avro_value_decref(&v);
  b.len = 0;
  CHECK(fmt->error(&b, KWP_EBADCOMMIT, len & 1 ? "id" : NULL, "why") == 0);
  CHECK(read_as(out_rec, b.data, b.len, &v) == 0);
  avro_value_decref(&v);
  kwp_sbuf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
  const kwp_payload_t *fmt = kwp_payload_find("avro");
  if (!in_rec) {
    in_rec = iface("producer/record");
    out_rec = iface("consumer/record");
    commit = iface("consumer/commit");
  }
  check_produce(fmt, data, len);
  check_commit(fmt, data, len);
  if (len)
    check_record(fmt, data, len);
  return 0;
}
