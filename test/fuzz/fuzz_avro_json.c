/*
 * libFuzzer target for the Avro <-> JSON converter (codec/avro/avro_json.h)
 * under one fixed schema with every kind of type (a record with unions, an
 * array, a map, a fixed, an enum, a nested record, recursion). The input is
 * both an untrusted Kafka record's Avro body and an untrusted client's JSON:
 * - as Avro: decoded without crash; JSON out, which encodes again and
 *   decodes to the same text;
 * - as JSON: when it encodes, the bytes decode, encode again to the same
 *   bytes, and avro-c reads them and writes the same bytes back.
 */
#include "codec/avro/avro_json.h"
#include "core/base/error.h"

#include <avro.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond))                                                               \
      abort();                                                                 \
  } while (0)

static const char schema_text[] =
    "{\"type\":\"record\",\"name\":\"Event\",\"namespace\":\"kwp.fuzz\","
    "\"fields\":["
    "{\"name\":\"id\",\"type\":\"long\"},"
    "{\"name\":\"n\",\"type\":\"int\",\"default\":0},"
    "{\"name\":\"ok\",\"type\":\"boolean\",\"default\":false},"
    "{\"name\":\"f\",\"type\":\"float\",\"default\":0},"
    "{\"name\":\"d\",\"type\":\"double\",\"default\":0},"
    "{\"name\":\"s\",\"type\":\"string\",\"default\":\"\"},"
    "{\"name\":\"b\",\"type\":\"bytes\",\"default\":\"\"},"
    "{\"name\":\"h\",\"type\":{\"type\":\"fixed\",\"name\":\"Hash\","
    "\"size\":3},\"default\":\"abc\"},"
    "{\"name\":\"c\",\"type\":{\"type\":\"enum\",\"name\":\"Color\","
    "\"symbols\":[\"RED\",\"GREEN\",\"BLUE\"]},\"default\":\"RED\"},"
    "{\"name\":\"tags\",\"type\":{\"type\":\"array\",\"items\":\"string\"},"
    "\"default\":[]},"
    "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":[\"null\","
    "\"long\",\"string\"]},\"default\":{}},"
    "{\"name\":\"u\",\"type\":[\"null\",\"int\",\"double\",\"string\","
    "\"Color\",\"Hash\",{\"type\":\"record\",\"name\":\"Point\","
    "\"fields\":[{\"name\":\"x\",\"type\":\"int\"},"
    "{\"name\":\"y\",\"type\":\"int\",\"default\":0}]},"
    "{\"type\":\"array\",\"items\":\"Point\"},"
    "{\"type\":\"map\",\"values\":\"bytes\"},\"boolean\"],\"default\":null},"
    "{\"name\":\"empty\",\"type\":{\"type\":\"array\",\"items\":\"null\"},"
    "\"default\":[]},"
    "{\"name\":\"next\",\"type\":[\"null\",\"Event\"],\"default\":null}]}";

static kwp_avro_schema_t *sch;
static avro_value_iface_t *iface;

static void init(void) {
  char err[256];
  sch = kwp_avro_schema_new(schema_text, strlen(schema_text), err, 256);
  CHECK(sch);
  avro_schema_t as;
  CHECK(!avro_schema_from_json_length(schema_text, strlen(schema_text), &as));
  iface = avro_generic_class_from_schema(as);
  avro_schema_decref(as);
}

static int decode(const uint8_t *data, size_t len, kwp_sbuf_t *out) {
  char why[256];
  out->len = 0;
  int r = kwp_avro_to_json(sch, data, len, out, why, sizeof(why));
  CHECK(r == 0 || (r == KWP_EBADVALUE && why[0]));
  return r;
}

static int encode(const char *text, size_t len, kwp_sbuf_t *out) {
  char why[256];
  out->len = 0;
  int r = kwp_avro_from_json(sch, text, len, out, why, sizeof(why));
  CHECK(r == 0 || ((r == KWP_EBADVALUE || r == KWP_EJSON) && why[0]));
  CHECK(r == 0 || out->len == 0);
  return r;
}

static int same(const kwp_sbuf_t *a, const kwp_sbuf_t *b) {
  return a->len == b->len && !memcmp(a->data, b->data, a->len);
}

/* Our valid bytes through avro-c: read, then written back the same. */
static void check_avro_c(const kwp_sbuf_t *bin) {
  avro_value_t v;
  size_t size;
  CHECK(!avro_generic_value_new(iface, &v));
  avro_reader_t rd = avro_reader_memory(bin->data, (int64_t)bin->len);
  CHECK(!avro_value_read(rd, &v));
  avro_reader_free(rd);
  CHECK(!avro_value_sizeof(&v, &size) && size == bin->len);
  char *buf = malloc(size ? size : 1);
  avro_writer_t wr = avro_writer_memory(buf, (int64_t)size);
  CHECK(!avro_value_write(wr, &v));
  avro_writer_free(wr);
  CHECK(!memcmp(buf, bin->data, size));
  free(buf);
  avro_value_decref(&v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static kwp_sbuf_t j1, j2, b1, b2;
  if (!sch)
    init();
  /* copied so that reads past the end are caught */
  uint8_t *copy = malloc(size ? size : 1);
  memcpy(copy, data, size);

  /* as Avro */
  if (decode(copy, size, &j1) == 0) {
    /* a map may carry a key twice, or one with \u0000 (jansson takes
     * neither): then the JSON is refused as JSON, nothing else */
    int r = encode(j1.data, j1.len, &b1);
    if (r == 0) {
      CHECK(decode((uint8_t *)b1.data, b1.len, &j2) == 0);
      CHECK(same(&j1, &j2));
    } else {
      CHECK(r == KWP_EJSON);
    }
  }

  /* as JSON */
  if (encode((const char *)copy, size, &b1) == 0) {
    CHECK(decode((uint8_t *)b1.data, b1.len, &j1) == 0);
    CHECK(encode(j1.data, j1.len, &b2) == 0);
    CHECK(same(&b1, &b2));
    check_avro_c(&b1);
  }
  free(copy);
  return 0;
}
