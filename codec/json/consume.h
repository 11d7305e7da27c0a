/*
 * The JSON consumer protocol of /socket/out: Kafka records to outbound frames
 * {"wsProxyMessageId","topic","partition","offset","timestamp","headers",
 * "key","value"} (one object, or an array of them in batch mode), commit
 * frames in, and error frames out. Records are written straight into a
 * growable buffer that the caller hands to the socket, so record bytes are
 * copied once (escaped) between Kafka's buffer and the socket.
 * Pure: no I/O, no logging. Not thread-safe per buffer.
 */
#ifndef KWP_CODEC_CONSUME_H
#define KWP_CODEC_CONSUME_H

#include "codec/json/format.h"

#include <stddef.h>
#include <stdint.h>

/* A growable byte buffer; zero-initialise, free with kwp_sbuf_free(). */
typedef struct kwp_sbuf {
  char *data;
  size_t len, cap;
  int oom; /* an append failed; the content is incomplete */
} kwp_sbuf_t;

void kwp_sbuf_free(kwp_sbuf_t *b);
/** Make room for @p n more bytes. @returns a pointer to them, or NULL. */
char *kwp_sbuf_reserve(kwp_sbuf_t *b, size_t n);
void kwp_sbuf_append(kwp_sbuf_t *b, const void *p, size_t n);

/* One Kafka record as the codec sees it (views into the client's message). */
typedef struct kwp_record {
  int32_t partition;
  int64_t offset, timestamp;
  const uint8_t *key; /* NULL: no key (the "key" field is left out) */
  size_t key_len;
  const uint8_t *value; /* NULL: a tombstone ("value": null) */
  size_t value_len;
  /* Headers through an accessor so the codec needs no Kafka types:
   * @returns 0 and the i-th header, or -1 past the last. */
  int (*header)(const void *hdrs, size_t i, const char **name,
                const void **value, size_t *len);
  const void *hdrs;
} kwp_record_t;

/* Stable error codes of outbound error frames and undecodable records. */
#define KWP_CERR_INVALID_KEY "invalid_key"
#define KWP_CERR_INVALID_VALUE "invalid_value"
#define KWP_CERR_INVALID_COMMIT "invalid_commit"
#define KWP_CERR_UNKNOWN_ID "unknown_message_id"
#define KWP_CERR_UNSUPPORTED_FRAME "unsupported_frame"

/**
 * Append the frame of record @p r of @p topic (Kafka topic names need no
 * JSON escaping: [a-zA-Z0-9._-]). @p key_fmt KWP_FMT_NONE means the key
 * type was not given: the key is then a string when valid UTF-8, otherwise
 * base64 ("bytearray"). A key or value that does not decode as its type is
 * written as base64 "bytearray" and the frame gets "error"/"message".
 * @returns 0, or KWP_ENOMEM (@p out->oom set).
 */
int kwp_consume_record(kwp_sbuf_t *out, const char *topic, kwp_fmt_t key_fmt,
                       kwp_fmt_t val_fmt, const kwp_record_t *r);

/**
 * Parse a commit frame `{"wsProxyMessageId": "<id>"}` (other fields
 * ignored), copying the id into @p id (NUL-terminated).
 * @returns the id length, or KWP_EBADREQ with a reason in @p why (static).
 */
int kwp_consume_commit_parse(const char *text, size_t len, char *id,
                             size_t idlen, const char **why);

/**
 * Append an error frame {"error": @p code, "wsProxyMessageId": @p id (left
 * out when NULL), "message": @p message}. @returns 0 or KWP_ENOMEM.
 */
int kwp_consume_error(kwp_sbuf_t *out, const char *code, const char *id,
                      const char *message);

#endif
