/* socketPayload=avro: every message both ways is one binary frame holding
 * one Avro-binary wrapper record of codec/avro/schemas.c, no framing, no
 * magic byte. The wrappers' schemas are fixed, so they are read and written
 * here directly (codec/avro/avro_bin.h) rather than through avro-c's
 * generic values: a wrapper is a dozen varints and byte strings, and the
 * unit tests check these bytes against avro-c. Pure, any thread. */
#include "codec/avro/avro_bin.h"
#include "codec/json/format.h"
#include "codec/msgid.h"
#include "codec/payload.h"
#include "codec/ws/ws.h"
#include "core/base/error.h"

#include <stdio.h>
#include <string.h>

/* The branches of the key and value unions, in the schemas' order: the
 * key's starts with null, the value's ends with it. */
enum { BR_BYTES, BR_STRING, BR_INT, BR_LONG, BR_DOUBLE, BR_FLOAT, BR_NULL };
#define KEY_BRANCH(br) ((br) == BR_NULL ? 0 : (br) + 1)
#define VALUE_BRANCH(br) (br)

static const char text_refused[] =
    "text frames are not accepted with socketPayload=avro";

/* --- inbound: AvroProducerRecord --- */

/* A key or value as Kafka stores it: a view of the frame (bytes, string)
 * or the serialized number in `num`. */
typedef struct field {
  const uint8_t *p;
  size_t len;
  uint8_t num[8];
  int is_null;
} field_t;

static void put_be(uint8_t *d, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; i++)
    d[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static void swap_le(uint8_t *d, const uint8_t *le, size_t n) {
  for (size_t i = 0; i < n; i++)
    d[i] = le[n - 1 - i];
}

/* Read one branch @p br of a key or value union into @p f; a string must
 * be UTF-8 (else *bad is set: the record is refused once fully read). */
static void read_field(kwp_avro_in_t *in, int br, field_t *f, int *bad) {
  f->is_null = br == BR_NULL;
  f->p = f->num;
  switch (br) {
  case BR_NULL:
    f->p = NULL;
    f->len = 0;
    return;
  case BR_BYTES:
  case BR_STRING:
    f->p = kwp_avro_bytes(in, &f->len);
    if (br == BR_STRING && !in->err && !kwp_utf8_valid(f->p, f->len))
      *bad = 1;
    return;
  case BR_INT:
    put_be(f->num, (uint32_t)kwp_avro_int(in), f->len = 4);
    return;
  case BR_LONG:
    put_be(f->num, (uint64_t)kwp_avro_long(in), f->len = 8);
    return;
  case BR_DOUBLE:
  case BR_FLOAT: {
    size_t n = br == BR_DOUBLE ? 8 : 4;
    const uint8_t *le = kwp_avro_fixed(in, n);
    if (le)
      swap_le(f->num, le, n);
    f->len = n;
    return;
  }
  }
}

/* What one AvroProducerRecord held; views into the frame. */
typedef struct precord {
  field_t key, value;
  kwp_header_t headers[KWP_MAX_HEADERS];
  size_t nheaders;
  const uint8_t *id; /* clientMessageId, NULL: none */
  size_t id_len;
  int err; /* a field readable but refused: KWP_EBADKEY, ... */
  const char *why;
} precord_t;

static void refuse(precord_t *r, int err, const char *why) {
  if (!r->err) {
    r->err = err;
    r->why = why;
  }
}

static void read_headers(kwp_avro_in_t *in, precord_t *r) {
  if (kwp_avro_branch(in, 2, "a bad union index in 'headers'") != 1)
    return;
  for (int64_t n; !in->err && (n = kwp_avro_long(in)) != 0;) {
    if (n < 0) { /* a block with its size in bytes next */
      if (n == INT64_MIN) {
        kwp_avro_fail(in, "a bad block count");
        return;
      }
      n = -n;
      kwp_avro_long(in);
    }
    for (; n > 0 && !in->err; n--) {
      size_t kl, vl;
      const uint8_t *k = kwp_avro_bytes(in, &kl);
      const uint8_t *v = kwp_avro_bytes(in, &vl);
      if (in->err)
        return;
      if (!kwp_utf8_valid(k, kl) || !kwp_utf8_valid(v, vl))
        refuse(r, KWP_EBADHEADERS, "a header key or value is not UTF-8");
      else if (r->nheaders == KWP_MAX_HEADERS)
        refuse(r, KWP_EBADHEADERS, "more than 64 headers");
      else
        r->headers[r->nheaders++] = (kwp_header_t){
            .key = (const char *)k, .key_len = kl, .value = v, .value_len = vl};
    }
  }
}

/* Read the whole record; @returns the field being read when the bytes
 * ended or went wrong (in->err set), else NULL. */
static const char *read_record(kwp_avro_in_t *in, precord_t *r) {
  int bad = 0;
  int br = kwp_avro_branch(in, 7, "a bad union index");
  if (in->err)
    return "key";
  read_field(in, br == 0 ? BR_NULL : br - 1, &r->key, &bad);
  if (in->err)
    return "key";
  if (bad)
    refuse(r, KWP_EBADKEY, "'key' is a string but not valid UTF-8");
  bad = 0;
  br = kwp_avro_branch(in, 7, "a bad union index");
  if (in->err)
    return "value";
  read_field(in, br, &r->value, &bad);
  if (in->err)
    return "value";
  if (bad)
    refuse(r, KWP_EBADVALUE, "'value' is a string but not valid UTF-8");
  read_headers(in, r);
  if (in->err)
    return "headers";
  if (kwp_avro_branch(in, 2, "a bad union index") == 1)
    r->id = kwp_avro_bytes(in, &r->id_len);
  if (in->err)
    return "clientMessageId";
  if (r->id && !kwp_utf8_valid(r->id, r->id_len)) {
    kwp_avro_fail(in, "not valid UTF-8");
    return "clientMessageId";
  }
  if (in->p != in->end) {
    kwp_avro_fail(in, "bytes follow the record");
    return "the end";
  }
  return NULL;
}

static void avro_produce_decode(const kwp_payload_opts_t *o, int opcode,
                                const uint8_t *data, size_t len,
                                const kwp_precord_sink_t *sink) {
  precord_t r;
  kwp_avro_in_t in;
  char why[160];
  if (opcode != KWP_WS_BINARY) {
    sink->reject(sink->arg, NULL, 0, KWP_EFRAMETYPE, text_refused);
    return;
  }
  r.nheaders = 0;
  r.id = NULL;
  r.id_len = 0;
  r.err = 0;
  kwp_avro_in_init(&in, data, len);
  const char *at = read_record(&in, &r);
  if (at) {
    snprintf(why, sizeof(why),
             "not an AvroProducerRecord: %s (field '%s', byte %zu of %zu)",
             in.err, at, (size_t)(in.at - in.start), len);
    sink->reject(sink->arg, NULL, 0, KWP_EBADMSG, why);
    return;
  }
  if (r.err) {
    sink->reject(sink->arg, (const char *)r.id, r.id_len, r.err, r.why);
    return;
  }
  kwp_precord_t pr = {
      .partition = KWP_PARTITION_ANY,
      .key = r.key.is_null ? NULL : r.key.p,
      .key_len = r.key.len,
      .value = r.value.is_null ? NULL : r.value.p,
      .value_len = r.value.len,
      .headers = r.headers,
      .nheaders = r.nheaders,
      .tag = (const char *)r.id,
      .tag_len = r.id_len,
  };
  sink->record(sink->arg, &pr);
}

/* --- outbound: AvroProducerResult --- */

static void append_opt_string(kwp_sbuf_t *b, const char *s, size_t n) {
  if (!s) {
    kwp_avro_append_long(b, 0);
    return;
  }
  kwp_avro_append_long(b, 1);
  kwp_avro_append_bytes(b, s, n);
}

static void append_error(kwp_sbuf_t *b, int err, const char *message) {
  const char *code = err ? kwp_err_result_code(err) : NULL;
  append_opt_string(b, code, code ? strlen(code) : 0);
  append_opt_string(b, err ? message : NULL, err ? strlen(message) : 0);
}

static int avro_produce_result(kwp_sbuf_t *out, const kwp_payload_opts_t *o,
                               const kwp_presult_t *r) {
  char *d = kwp_sbuf_reserve(out, o->topic_len + r->tag_len + 6 * 10 + 4);
  if (!d)
    return KWP_ENOMEM;
  d = kwp_avro_put_bytes(d, o->topic, o->topic_len);
  d = kwp_avro_put_long(d, r->err ? -1 : r->partition);
  d = kwp_avro_put_long(d, r->err ? -1 : r->offset);
  d = kwp_avro_put_long(d, r->err ? -1 : r->timestamp);
  d = kwp_avro_put_long(d, r->tag ? 1 : 0);
  if (r->tag)
    d = kwp_avro_put_bytes(d, r->tag, r->tag_len);
  out->len = (size_t)(d - out->data);
  append_error(out, r->err, r->message);
  return out->oom ? KWP_ENOMEM : 0;
}

/* --- outbound: AvroConsumerRecord --- */

/* The branch a key or value of format @p fmt takes, or -1 when its bytes
 * do not fit it (then it goes as bytes, and the record says so). */
static int branch_of(kwp_fmt_t fmt, const uint8_t *p, size_t n) {
  switch (fmt) {
  case KWP_FMT_STRING:
  case KWP_FMT_JSON:
    return kwp_utf8_valid(p, n) ? BR_STRING : -1;
  case KWP_FMT_INT:
  case KWP_FMT_FLOAT:
    return n == 4 ? (fmt == KWP_FMT_INT ? BR_INT : BR_FLOAT) : -1;
  case KWP_FMT_SHORT:
    return n == 2 ? BR_INT : -1;
  case KWP_FMT_LONG:
  case KWP_FMT_DOUBLE:
    return n == 8 ? (fmt == KWP_FMT_LONG ? BR_LONG : BR_DOUBLE) : -1;
  default: /* bytearray, avro, and a key without keyType */
    return BR_BYTES;
  }
}

static uint64_t get_be(const uint8_t *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++)
    v = v << 8 | p[i];
  return v;
}

/* Append one key or value; @returns 0, or -1 when it went as bytes because
 * it did not fit @p fmt. */
static int append_field(kwp_sbuf_t *b, int is_key, kwp_fmt_t fmt,
                        const uint8_t *p, size_t n) {
  int br = p ? branch_of(fmt, p, n) : BR_NULL;
  int bad = br < 0;
  if (bad)
    br = BR_BYTES;
  kwp_avro_append_long(b, is_key ? KEY_BRANCH(br) : VALUE_BRANCH(br));
  uint8_t le[8];
  switch (br) {
  case BR_BYTES:
  case BR_STRING:
    kwp_avro_append_bytes(b, p, n);
    break;
  case BR_INT:
    kwp_avro_append_long(b, n == 2 ? (int16_t)get_be(p, 2)
                                   : (int32_t)get_be(p, 4));
    break;
  case BR_LONG:
    kwp_avro_append_long(b, (int64_t)get_be(p, 8));
    break;
  case BR_DOUBLE:
  case BR_FLOAT:
    swap_le(le, p, n);
    kwp_sbuf_append(b, le, n);
    break;
  }
  return bad ? -1 : 0;
}

/* Headers whose name or value is not UTF-8 go in base64 (Avro strings are
 * UTF-8), and the record says so. @returns 0, or -1 when one did. */
static int append_header_string(kwp_sbuf_t *b, const void *p, size_t n) {
  if (kwp_utf8_valid(p, n)) {
    kwp_avro_append_bytes(b, p, n);
    return 0;
  }
  char *d = kwp_sbuf_reserve(b, KWP_AVRO_LONG_MAX + (n + 2) / 3 * 4);
  if (!d)
    return -1;
  size_t len = (n + 2) / 3 * 4;
  d = kwp_avro_put_long(d, (int64_t)len);
  kwp_base64_encode(p, n, d);
  b->len = (size_t)(d - b->data) + len;
  return -1;
}

static int append_headers(kwp_sbuf_t *b, const kwp_record_t *r) {
  const char *name;
  const void *val;
  size_t len, count = 0;
  int bad = 0;
  while (r->header && r->header(r->hdrs, count, &name, &val, &len) == 0)
    count++;
  if (!count) {
    kwp_avro_append_long(b, 0);
    return 0;
  }
  kwp_avro_append_long(b, 1);
  kwp_avro_append_long(b, (int64_t)count);
  for (size_t i = 0; i < count; i++) {
    r->header(r->hdrs, i, &name, &val, &len);
    bad |= append_header_string(b, name, strlen(name));
    bad |= append_header_string(b, val ? val : "", val ? len : 0);
  }
  kwp_avro_append_long(b, 0);
  return bad;
}

static int avro_record(kwp_sbuf_t *out, const kwp_payload_opts_t *o,
                       const kwp_record_t *r) {
  size_t tl = o->topic_len, idl;
  char *d = kwp_sbuf_reserve(out, KWP_MSGID_MAX(tl) + tl + 5 * 10);
  if (!d)
    return KWP_ENOMEM;
  /* the id is written after its length's room, then moved up to it */
  char *id = d + KWP_AVRO_LONG_MAX;
  idl = (size_t)(kwp_msgid_put(id, o->topic, tl, r->partition, r->offset,
                               r->timestamp) -
                 id);
  char *e = kwp_avro_put_long(d, (int64_t)idl);
  memmove(e, id, idl);
  d = kwp_avro_put_bytes(e + idl, o->topic, tl);
  d = kwp_avro_put_long(d, r->partition);
  d = kwp_avro_put_long(d, r->offset);
  d = kwp_avro_put_long(d, r->timestamp);
  out->len = (size_t)(d - out->data);
  int bad_key = append_field(out, 1, o->key_fmt, r->key, r->key_len);
  int bad_value = append_field(out, 0, o->val_fmt, r->value, r->value_len);
  int bad_headers = append_headers(out, r);
  if (bad_key || bad_value) {
    char msg[128];
    snprintf(msg, sizeof(msg),
             "the %s is not a valid %s; its bytes are given in the bytes "
             "branch",
             bad_value ? "value" : "key",
             kwp_fmt_name(bad_value ? o->val_fmt : o->key_fmt));
    append_error(out, bad_value ? KWP_EBADVALUE : KWP_EBADKEY, msg);
  } else if (bad_headers) {
    append_error(out, KWP_EBADHEADERS,
                 "a header name or value is not UTF-8; it is given in base64");
  } else {
    kwp_sbuf_append(out, "\0\0", 2); /* error and message: null */
  }
  return out->oom ? KWP_ENOMEM : 0;
}

/* --- inbound: AvroCommit; errors --- */

static int avro_commit_decode(const kwp_payload_opts_t *o, int opcode,
                              const uint8_t *data, size_t len,
                              kwp_record_ref_t *ref, char *id, size_t idlen,
                              const char **why) {
  kwp_avro_in_t in;
  size_t n;
  *id = 0;
  if (opcode != KWP_WS_BINARY) {
    *why = text_refused;
    return KWP_EFRAMETYPE;
  }
  kwp_avro_in_init(&in, data, len);
  const uint8_t *p = kwp_avro_bytes(&in, &n);
  if (in.err || in.p != in.end) {
    *why = in.err ? "not an AvroCommit: the message ends inside "
                    "'wsProxyMessageId'"
                  : "not an AvroCommit: bytes follow the record";
    return KWP_EBADCOMMIT;
  }
  if (n >= idlen) {
    *why = "'wsProxyMessageId' is too long";
    return KWP_EBADCOMMIT;
  }
  if (memchr(p, 0, n) || !kwp_utf8_valid(p, n)) {
    *why = "'wsProxyMessageId' holds a NUL or is not UTF-8: no record has "
           "such an id";
    return KWP_EBADCOMMIT;
  }
  memcpy(id, p, n);
  id[n] = 0;
  return kwp_msgid_parse(o->topic, o->topic_len, id, n, ref);
}

/* An error is an AvroConsumerRecord with `error` set, no topic, partition,
 * offset and timestamp -1 and an empty value: a reader of the seed's schema
 * decodes it too. */
static int avro_error(kwp_sbuf_t *out, int err, const char *id,
                      const char *message) {
  kwp_avro_append_bytes(out, id ? id : "", id ? strlen(id) : 0);
  /* topic "", partition, offset and timestamp -1, key null, value bytes
   * "", headers null */
  kwp_sbuf_append(out, "\0\1\1\1\0\0\0\0", 8);
  append_error(out, err, message);
  return out->oom ? KWP_ENOMEM : 0;
}

const kwp_payload_t kwp_payload_avro = {
    .name = "avro",
    .opcode = KWP_WS_BINARY,
    .produce_decode = avro_produce_decode,
    .produce_result = avro_produce_result,
    .record = avro_record,
    .commit_decode = avro_commit_decode,
    .error = avro_error,
};
