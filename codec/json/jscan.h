/*
 * A validating, zero-copy JSON reader (RFC 8259) for the inbound messages
 * of the hot path. Why not jansson there: a tree costs an allocation per
 * node and a copy of every string, and profiles of /socket/in showed
 * jansson at 60% of the proxy's CPU. This reader walks the text in place
 * and hands out views into it: a string without escapes, a value without
 * whitespace. It writes to a per-message arena only when it must (escapes
 * to decode, whitespace to drop). Numbers keep their exact text.
 *
 * Strict as the jansson settings it replaces: UTF-8 is checked, duplicate
 * object keys are rejected at every depth, \u0000 is allowed in strings,
 * nothing may follow the top-level value, nesting stops at
 * KWP_JS_MAX_DEPTH. Errors are sticky: after the first, every call fails.
 *
 * Pure: no I/O. One reader per message; any thread.
 */
#ifndef KWP_CODEC_JSCAN_H
#define KWP_CODEC_JSCAN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define KWP_JS_MAX_DEPTH 2048

/* A view of bytes; not NUL-terminated. */
typedef struct kwp_slice {
  const char *ptr;
  size_t len;
} kwp_slice_t;

/* A member name seen in an open object (for the duplicate check). */
typedef struct kwp_js_key {
  const char *raw; /* the text between the quotes, escapes undecoded */
  size_t len;
  int escaped;
} kwp_js_key_t;

typedef struct kwp_js {
  const char *text, *p, *end;
  char *arena; /* decoded strings, compacted values; never moves */
  size_t arena_len, arena_cap;
  kwp_js_key_t *keys; /* names of the open objects, innermost last */
  size_t nkeys, keys_cap;
  unsigned depth;
  const char *err; /* the first error (static text), and where */
  size_t err_at;
  kwp_js_key_t keys_inline[16]; /* last: kwp_js_init() does not clear it */
} kwp_js_t;

/* An open object or array, for kwp_js_member() / kwp_js_element(). */
typedef struct kwp_js_iter {
  size_t first_key;
  size_t n;
} kwp_js_iter_t;

/** Start reading @p text (which must outlive every view handed out). */
void kwp_js_init(kwp_js_t *js, const char *text, size_t len);
/** Free the arena; views into it end. Safe on a zeroed reader. */
void kwp_js_free(kwp_js_t *js);

/** Skip whitespace. @returns the next byte, or -1 at the end or on error. */
int kwp_js_peek(kwp_js_t *js);

/** Open an object at the cursor. @returns 0, or -1 (error set). */
int kwp_js_object(kwp_js_t *js, kwp_js_iter_t *it);
/**
 * The next member of the open object @p it. @returns 1 with its decoded
 * name in @p name (the value is next: read it or kwp_js_value() it), 0 when
 * the object ended (duplicate names are checked then), -1 on error.
 */
int kwp_js_member(kwp_js_t *js, kwp_js_iter_t *it, kwp_slice_t *name);
/** Open an array at the cursor. @returns 0, or -1. */
int kwp_js_array(kwp_js_t *js, kwp_js_iter_t *it);
/** @returns 1 when an element follows, 0 when the array ended, -1. */
int kwp_js_element(kwp_js_t *js, kwp_js_iter_t *it);

/** A string at the cursor, decoded into @p out. @returns 0, or -1. */
int kwp_js_string(kwp_js_t *js, kwp_slice_t *out);
/**
 * A number at the cursor: its text in @p tok, @p integral set when it has
 * no fraction and no exponent. @returns 0, or -1.
 */
int kwp_js_number(kwp_js_t *js, kwp_slice_t *tok, int *integral);
/**
 * Any value at the cursor, validated; @p out (may be NULL: skip) gets its
 * compact text: the input without insignificant whitespace, strings and
 * numbers as written. @returns 0, or -1.
 */
int kwp_js_value(kwp_js_t *js, kwp_slice_t *out);
/** Whitespace, then the end of the text. @returns 0, or -1. */
int kwp_js_end(kwp_js_t *js);

/** "<reason> at position <n>" of the first error. */
void kwp_js_error(const kwp_js_t *js, char *buf, size_t len);

/**
 * The length of the longest prefix of [@p p, @p e) that a JSON string can
 * carry as it is (no '"', '\\' or control byte), 16 bytes at a time where
 * the CPU allows. Every byte of it is ORed into @p high, so bit 7 set
 * means non-ASCII was seen (and UTF-8 needs checking: KWP_UTF8_HIGH_BITS).
 */
size_t kwp_js_plain_run(const uint8_t *p, const uint8_t *e, uint64_t *high);
/** kwp_js_plain_run() that also copies the run to @p dst (room for
 * e - p bytes), in the same pass. */
size_t kwp_js_plain_copy(uint8_t *dst, const uint8_t *p, const uint8_t *e,
                         uint64_t *high);

/** Whether @p s equals the NUL-terminated @p lit. */
static inline int kwp_slice_is(kwp_slice_t s, const char *lit) {
  return strlen(lit) == s.len && !memcmp(s.ptr, lit, s.len);
}

#endif
