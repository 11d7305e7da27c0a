/* socketPayload=json: kafka-websocket-proxy's JSON envelope (messages and
 * results of /socket/in, records and commits of /socket/out) as a payload
 * format (codec/payload.h), over the codecs of json_produce.c and
 * json_consume.c. Pure, any thread. */
#include "codec/avro/avro_json.h"
#include "codec/avro/wire.h"
#include "codec/json/json_consume.h"
#include "codec/json/json_produce.h"
#include "codec/msgid.h"
#include "codec/ws/ws.h"
#include "core/base/error.h"

#include <stdlib.h>
#include <string.h>

static const char binary_refused[] =
    "binary frames are not accepted with socketPayload=json";

/* An avro_registry key or value arrives as JSON text: encode it under the
 * socket's writer schema, in the wire format, into @p out. @returns 0, or
 * the KWP_E* with @p why. */
static int to_registry(const kwp_sr_writer_t *w, const char *what,
                       kwp_bytes_t *b, kwp_sbuf_t *out, char *why,
                       size_t whylen) {
  char w_why[200];
  uint8_t prefix[KWP_AVRO_WIRE_PREFIX];
  kwp_avro_wire_write(prefix, w->id);
  kwp_sbuf_append(out, prefix, sizeof(prefix));
  int err = kwp_avro_from_json(w->schema, (const char *)b->ptr, b->len, out,
                               w_why, sizeof(w_why));
  if (err == KWP_ENOMEM || out->oom) {
    snprintf(why, whylen, "out of memory");
    return KWP_ENOMEM;
  }
  if (err) {
    snprintf(why, whylen, "'%s' does not match schema %d: %s", what, w->id,
             w_why);
    return err == KWP_EJSON ? KWP_EBADVALUE : err;
  }
  return 0;
}

/* A type as the JSON parser takes it: avro_registry is JSON there. */
static kwp_fmt_t parse_fmt(kwp_fmt_t fmt) {
  return fmt == KWP_FMT_AVRO_REGISTRY ? KWP_FMT_JSON : fmt;
}

static void json_produce_decode(const kwp_payload_opts_t *o, int opcode,
                                const uint8_t *data, size_t len,
                                const kwp_precord_sink_t *sink) {
  kwp_produce_msg_t m;
  kwp_sbuf_t kb = {0}, vb = {0};
  char why[512];
  if (opcode != KWP_WS_TEXT) {
    sink->reject(sink->arg, NULL, 0, KWP_EFRAMETYPE, binary_refused);
    return;
  }
  int err =
      kwp_produce_msg_parse((const char *)data, len, parse_fmt(o->key_fmt),
                            parse_fmt(o->val_fmt), &m, why, sizeof(why));
  if (!err && m.has_key && o->key_fmt == KWP_FMT_AVRO_REGISTRY &&
      (err = to_registry(&o->sr->key, "key", &m.key, &kb, why, sizeof(why))))
    err = err == KWP_EBADVALUE ? KWP_EBADKEY : err;
  if (!err && m.value.ptr && o->val_fmt == KWP_FMT_AVRO_REGISTRY)
    err = to_registry(&o->sr->value, "value", &m.value, &vb, why, sizeof(why));
  if (!err && kb.data) {
    m.key.ptr = (const uint8_t *)kb.data;
    m.key.len = kb.len;
  }
  if (!err && vb.data) {
    m.value.ptr = (const uint8_t *)vb.data;
    m.value.len = vb.len;
  }
  if (err) {
    sink->reject(sink->arg, m.message_id.ptr, m.message_id.len, err, why);
  } else {
    kwp_precord_t r = {
        .partition = KWP_PARTITION_ANY,
        .key = m.has_key ? m.key.ptr : NULL,
        .key_len = m.has_key ? m.key.len : 0,
        .value = m.value.ptr,
        .value_len = m.value.len,
        .headers = m.headers,
        .nheaders = m.nheaders,
        .tag = m.message_id.ptr,
        .tag_len = m.message_id.len,
    };
    sink->record(sink->arg, &r);
  }
  kwp_produce_msg_clear(&m);
  kwp_sbuf_free(&kb);
  kwp_sbuf_free(&vb);
}

static int json_produce_result(kwp_sbuf_t *out, const kwp_payload_opts_t *o,
                               const kwp_presult_t *r) {
  if (!r->err) { /* the hot path: written in place, no allocation */
    char *d = kwp_sbuf_reserve(
        out, KWP_PRODUCE_RESULT_OK_MAX(o->topic_len, r->tag_len));
    if (!d)
      return KWP_ENOMEM;
    out->len +=
        kwp_produce_result_ok(d, o->topic, o->topic_len, r->partition,
                              r->offset, r->timestamp, r->tag, r->tag_len);
    return 0;
  }
  char *text = kwp_produce_result_err(r->tag, r->tag_len, r->err, r->message);
  if (!text) {
    out->oom = 1;
    return KWP_ENOMEM;
  }
  kwp_sbuf_append(out, text, strlen(text));
  free(text);
  return out->oom ? KWP_ENOMEM : 0;
}

static int json_record(kwp_sbuf_t *out, const kwp_payload_opts_t *o,
                       const kwp_record_t *r) {
  return kwp_consume_record(out, o, r);
}

static int json_commit_decode(const kwp_payload_opts_t *o, int opcode,
                              const uint8_t *data, size_t len,
                              kwp_record_ref_t *ref, char *id, size_t idlen,
                              const char **why) {
  *id = 0;
  if (opcode != KWP_WS_TEXT) {
    *why = binary_refused;
    return KWP_EFRAMETYPE;
  }
  int n = kwp_consume_commit_parse((const char *)data, len, id, idlen, why);
  if (n < 0)
    return n;
  return kwp_msgid_parse(o->topic, o->topic_len, id, (size_t)n, ref);
}

const kwp_payload_t kwp_payload_json = {
    .name = "json",
    .opcode = KWP_WS_TEXT,
    .produce_decode = json_produce_decode,
    .produce_result = json_produce_result,
    .record = json_record,
    .batch_open = "[",
    .batch_sep = ",",
    .batch_close = "]",
    .commit_decode = json_commit_decode,
    .error = kwp_consume_error,
};
