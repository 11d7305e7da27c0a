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
#include "codec/payload.h"
#include "core/base/sbuf.h"

#include <stddef.h>
#include <stdint.h>

/**
 * Append the frame of record @p r of the socket @p o describes (Kafka topic
 * names need no JSON escaping: [a-zA-Z0-9._-]). A key_fmt KWP_FMT_NONE means
 * the key type was not given: the key is then a string when valid UTF-8,
 * otherwise base64 ("bytearray"). An avro_registry key or value is decoded
 * to JSON with the schema o->sr gives for its id. A key or value that does
 * not decode as its type is written as base64 "bytearray" and the frame gets
 * "error"/"message".
 * @returns 0, or KWP_ENOMEM (@p out->oom set).
 */
int kwp_consume_record(kwp_sbuf_t *out, const kwp_payload_opts_t *o,
                       const kwp_record_t *r);

/**
 * Parse a commit frame `{"wsProxyMessageId": "<id>"}` (other fields
 * ignored), copying the id into @p id (NUL-terminated).
 * @returns the id length, or KWP_EBADCOMMIT with a reason in @p why
 * (static).
 */
int kwp_consume_commit_parse(const char *text, size_t len, char *id,
                             size_t idlen, const char **why);

/**
 * Append an error frame {"error": the kwp_err_result_code() of @p err,
 * "wsProxyMessageId": @p id (left out when NULL), "message": @p message}.
 * @returns 0 or KWP_ENOMEM.
 */
int kwp_consume_error(kwp_sbuf_t *out, int err, const char *id,
                      const char *message);

#endif
