/*
 * The JSON producer protocol of /socket/in: an inbound message
 * {"headers":[{"key","value"}],"key":{"value","format"},"value":{...},
 * "messageId"} parsed into Kafka-ready bytes, and the result frames.
 * Pure: no I/O, no logging; jansson allocates the parsed tree.
 */
#ifndef KWP_CODEC_PRODUCE_H
#define KWP_CODEC_PRODUCE_H

#include "codec/format.h"

#define KWP_PRODUCE_MAX_HEADERS 64

typedef struct kwp_produce_header {
  const char *key; /* NUL-terminated, points into the parsed tree */
  const uint8_t *value;
  size_t value_len;
} kwp_produce_header_t;

typedef struct kwp_produce_msg {
  json_t *root; /* owns every view below */
  kwp_bytes_t key, value;
  int has_key;
  kwp_produce_header_t headers[KWP_PRODUCE_MAX_HEADERS];
  size_t nheaders;
  json_t *message_id; /* borrowed from root; NULL when absent */
} kwp_produce_msg_t;

/* Stable error codes of result frames (the "error" field). */
#define KWP_PERR_INVALID_JSON "invalid_json"
#define KWP_PERR_INVALID_MESSAGE "invalid_message"
#define KWP_PERR_INVALID_KEY "invalid_key"
#define KWP_PERR_INVALID_VALUE "invalid_value"
#define KWP_PERR_INVALID_HEADERS "invalid_headers"
#define KWP_PERR_UNSUPPORTED_FRAME "unsupported_frame"

/**
 * Parse one text message. Key and value are serialized with @p key_fmt and
 * @p val_fmt (the socket's keyType/valType); a key when @p key_fmt is
 * KWP_FMT_NONE is an error, never silently dropped.
 * @locality any thread
 * @returns 0 (free with kwp_produce_msg_clear), or KWP_EBADREQ with @p code
 * (a KWP_PERR_* constant) and a human message in @p why. On error
 * @p m->message_id is still set when the JSON carried one, and @p m must
 * still be cleared.
 */
int kwp_produce_msg_parse(const char *text, size_t len, kwp_fmt_t key_fmt,
                          kwp_fmt_t val_fmt, kwp_produce_msg_t *m,
                          const char **code, char *why, size_t whylen);

/** Free what kwp_produce_msg_parse() allocated; safe on a zeroed msg. */
void kwp_produce_msg_clear(kwp_produce_msg_t *m);

/**
 * Result frames. @p message_id may be NULL (then JSON null). The success
 * frame carries both "messageId" (seed docs) and "clientMessageId"
 * (reference code). @returns a malloc'd NUL-terminated JSON text, or NULL.
 */
char *kwp_produce_result_ok(const char *topic, int32_t partition,
                            int64_t offset, int64_t timestamp,
                            json_t *message_id);
char *kwp_produce_result_err(json_t *message_id, const char *code,
                             const char *message);

#endif
