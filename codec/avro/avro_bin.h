/*
 * Avro binary encoding primitives (Avro 1.11 specification, "Binary
 * encoding"): zig-zag varints, lengths, floats. A reader over a byte range
 * that never reads past its end and remembers the first error; writers that
 * append to a kwp_sbuf_t. Pure, any thread; inline because a wrapper record
 * is a dozen of them.
 */
#ifndef KWP_CODEC_AVRO_BIN_H
#define KWP_CODEC_AVRO_BIN_H

#include "core/base/sbuf.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A cursor over one datum. On the first error `err` names it and every
 * later read returns zeros without moving. */
typedef struct kwp_avro_in {
  const uint8_t *p, *end, *start;
  const uint8_t *at; /* where the error was found */
  const char *err;   /* NULL while good */
} kwp_avro_in_t;

static inline void kwp_avro_in_init(kwp_avro_in_t *in, const uint8_t *p,
                                    size_t n) {
  in->p = in->start = p;
  in->end = p + n;
  in->err = NULL;
  in->at = NULL;
}

static inline void kwp_avro_fail(kwp_avro_in_t *in, const char *why) {
  if (!in->err) {
    in->err = why;
    in->at = in->p;
  }
  in->p = in->end;
}

/** A zig-zag varint of at most 10 bytes (a long). */
static inline int64_t kwp_avro_long(kwp_avro_in_t *in) {
  uint64_t v = 0;
  for (int shift = 0; shift < 70; shift += 7) {
    if (in->p >= in->end) {
      kwp_avro_fail(in, "the message ends inside a number");
      return 0;
    }
    uint8_t b = *in->p++;
    if (shift == 63 && b > 1) {
      kwp_avro_fail(in, "a number is longer than 64 bits");
      return 0;
    }
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80))
      return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
  }
  kwp_avro_fail(in, "a number is longer than 10 bytes");
  return 0;
}

/** An int: a long within 32 bits. */
static inline int32_t kwp_avro_int(kwp_avro_in_t *in) {
  int64_t v = kwp_avro_long(in);
  if (v < INT32_MIN || v > INT32_MAX) {
    kwp_avro_fail(in, "an int is out of range");
    return 0;
  }
  return (int32_t)v;
}

/** A union's branch index, checked against its @p n branches. */
static inline int kwp_avro_branch(kwp_avro_in_t *in, int n, const char *why) {
  int64_t v = kwp_avro_long(in);
  if (in->err)
    return -1;
  if (v < 0 || v >= n) {
    kwp_avro_fail(in, why);
    return -1;
  }
  return (int)v;
}

/** bytes or string: a length and that many bytes, all within the datum.
 * @returns a view of them (NULL on error, *len 0). */
static inline const uint8_t *kwp_avro_bytes(kwp_avro_in_t *in, size_t *len) {
  int64_t n = kwp_avro_long(in);
  *len = 0;
  if (in->err)
    return NULL;
  if (n < 0 || n > in->end - in->p) {
    kwp_avro_fail(in, n < 0 ? "a negative length"
                            : "a length runs past the end of the message");
    return NULL;
  }
  const uint8_t *p = in->p;
  in->p += n;
  *len = (size_t)n;
  return p;
}

/** @p n raw bytes (float: 4, double: 8, little-endian). */
static inline const uint8_t *kwp_avro_fixed(kwp_avro_in_t *in, size_t n) {
  if ((size_t)(in->end - in->p) < n) {
    kwp_avro_fail(in, "the message ends inside a number");
    return NULL;
  }
  const uint8_t *p = in->p;
  in->p += n;
  return p;
}

/* --- writers --- */

#define KWP_AVRO_LONG_MAX 10 /* bytes of the longest varint */

/** Write @p v as a zig-zag varint at @p d. @returns the end. */
static inline char *kwp_avro_put_long(char *d, int64_t v) {
  uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
  while (u >= 0x80) {
    *d++ = (char)(u | 0x80);
    u >>= 7;
  }
  *d++ = (char)u;
  return d;
}

/** Write the length of @p n bytes, then the bytes. @p d must have room for
 * KWP_AVRO_LONG_MAX + @p n. */
static inline char *kwp_avro_put_bytes(char *d, const void *p, size_t n) {
  d = kwp_avro_put_long(d, (int64_t)n);
  if (n)
    memcpy(d, p, n);
  return d + n;
}

static inline void kwp_avro_append_long(kwp_sbuf_t *b, int64_t v) {
  char *d = kwp_sbuf_reserve(b, KWP_AVRO_LONG_MAX);
  if (d)
    b->len = (size_t)(kwp_avro_put_long(d, v) - b->data);
}

static inline void kwp_avro_append_bytes(kwp_sbuf_t *b, const void *p,
                                         size_t n) {
  char *d = kwp_sbuf_reserve(b, KWP_AVRO_LONG_MAX + n);
  if (d)
    b->len = (size_t)(kwp_avro_put_bytes(d, p, n) - b->data);
}

#endif
