/*
 * The format types (`keyType`, `valType`, codec/payload.h) in JSON: JSON
 * values to Kafka bytes and back, with
 * Kafka's primitive serializers (big-endian) for the numeric types.
 * Pure: no I/O, no logging; allocation only where noted.
 */
#ifndef KWP_CODEC_FORMAT_H
#define KWP_CODEC_FORMAT_H

#include "codec/json/jscan.h"
#include "codec/payload.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Serialized bytes: either a view (@p ptr into the JSON value, or into
 * @p inline_buf for numbers) or an owned malloc'd buffer (@p owned != NULL). */
typedef struct kwp_bytes {
  const uint8_t *ptr;
  size_t len;
  uint8_t *owned;
  uint8_t inline_buf[8];
} kwp_bytes_t;

/** Release what kwp_fmt_encode() allocated (safe on a zeroed value). */
void kwp_bytes_clear(kwp_bytes_t *b);

/**
 * Read the JSON value at @p js's cursor and serialize it as @p fmt: a view
 * into the text or the reader's arena where possible (string, json), the
 * bytes inline (numbers), or an owned buffer (bytearray, avro). Numbers keep
 * their exact text in json. @locality any thread
 * @returns 0; or KWP_EBADREQ when the JSON is invalid (@p js has the error)
 * or the value does not fit the type (a string for int, an int out of range
 * for short, bad base64, ...: the value was read past, @p why has a static
 * reason); or KWP_ENOMEM.
 */
int kwp_fmt_encode(kwp_fmt_t fmt, kwp_js_t *js, kwp_bytes_t *out,
                   const char **why);

/** Decimal text of @p v written backwards ending at @p end (no NUL; 20
 * bytes at most); @returns its start. Faster than snprintf on hot paths. */
char *kwp_i64_text(char *end, int64_t v);

/* Writers for frames built by hand into reserved room: each copies to @p d
 * and returns the end of what it wrote (no NUL). */
static inline char *kwp_put(char *d, const void *s, size_t n) {
  memcpy(d, s, n);
  return d + n;
}
#define KWP_PUT_LIT(d, s) kwp_put((d), (s), sizeof(s) - 1)
/** The decimal text of @p v (20 bytes at most). */
char *kwp_put_i64(char *d, int64_t v);

/**
 * Decode Kafka bytes as @p fmt into a new JSON value (numbers as numbers,
 * json embedded, bytearray/avro as base64 strings).
 * @locality any thread
 * @returns the value (caller owns), or NULL when the bytes do not decode
 * (wrong length, invalid UTF-8 for string, invalid JSON for json).
 */
json_t *kwp_fmt_decode(kwp_fmt_t fmt, const uint8_t *p, size_t len);

/**
 * Standard base64 (RFC 4648, with padding). decode returns the decoded length
 * or -1 on invalid input; @p out must hold len/4*3 bytes. encode writes
 * ((len+2)/3)*4 bytes and a NUL.
 */
long kwp_base64_decode(const char *in, size_t len, uint8_t *out);
size_t kwp_base64_encode(const uint8_t *in, size_t len, char *out);

#endif
