/*
 * The JSON producer protocol of /socket/in: an inbound message
 * {"headers":[{"key","value"}],"key":{"value","format"},"value":{...},
 * "messageId"} parsed into Kafka-ready bytes, and the result frames.
 * Parsed in place by the zero-copy reader (codec/json/jscan.h): a record's
 * bytes are copied once, into librdkafka. Pure: no I/O, no logging.
 */
#ifndef KWP_CODEC_PRODUCE_H
#define KWP_CODEC_PRODUCE_H

#include "codec/json/format.h"

typedef struct kwp_produce_msg {
  kwp_js_t js; /* the reader: its arena backs the views that need decoding */
  kwp_bytes_t key, value;
  int has_key;
  size_t nheaders;
  /* views into the message text or the reader's arena */
  kwp_header_t headers[KWP_MAX_HEADERS];
  /* The client's messageId as compact JSON text, echoed in the result;
   * ptr NULL when absent. */
  kwp_slice_t message_id;
} kwp_produce_msg_t;

/**
 * Parse one text message. Key and value are serialized with @p key_fmt and
 * @p val_fmt (the socket's keyType/valType); a key when @p key_fmt is
 * KWP_FMT_NONE is an error, never silently dropped. Views point into
 * @p text, which must outlive @p m.
 * @locality any thread
 * @returns 0 (free with kwp_produce_msg_clear), or the KWP_E* of what was
 * wrong (KWP_EJSON, KWP_EBADMSG, KWP_EBADKEY, KWP_EBADVALUE,
 * KWP_EBADHEADERS) with a human message in @p why. On an error other than
 * KWP_EJSON @p m->message_id is still set when the message carried one, and
 * @p m must still be cleared.
 */
int kwp_produce_msg_parse(const char *text, size_t len, kwp_fmt_t key_fmt,
                          kwp_fmt_t val_fmt, kwp_produce_msg_t *m, char *why,
                          size_t whylen);

/** Free what kwp_produce_msg_parse() allocated; safe on a zeroed msg. */
void kwp_produce_msg_clear(kwp_produce_msg_t *m);

/* The longest success frame for a topic and id of these lengths. */
#define KWP_PRODUCE_RESULT_OK_MAX(topic_len, id_len)                           \
  ((topic_len) + 2 * (id_len) + 160)

/**
 * The success frame, written to @p buf (which must hold
 * KWP_PRODUCE_RESULT_OK_MAX bytes). It carries both "messageId" (seed docs)
 * and "clientMessageId" (reference code): the client's id as it sent it
 * (compact), or null when @p id is NULL. @returns its length (no NUL).
 */
size_t kwp_produce_result_ok(char *buf, const char *topic, size_t topic_len,
                             int32_t partition, int64_t offset,
                             int64_t timestamp, const char *id, size_t id_len);
/** The error frame of @p err (its kwp_err_result_code()): a malloc'd
 * NUL-terminated JSON text, or NULL. */
char *kwp_produce_result_err(const char *id, size_t id_len, int err,
                             const char *message);

#endif
