/*
 * A growable byte buffer for output built in place (frames, records). Pure;
 * one owner at a time.
 */
#ifndef KWP_SBUF_H
#define KWP_SBUF_H

#include <stddef.h>
#include <string.h>

/* Zero-initialise; free with kwp_sbuf_free(). */
typedef struct kwp_sbuf {
  char *data;
  size_t len, cap;
  int oom; /* an append failed; the content is incomplete */
} kwp_sbuf_t;

void kwp_sbuf_free(kwp_sbuf_t *b);

/** kwp_sbuf_reserve()'s slow path: grow (doubling) to fit @p n more. */
char *kwp_sbuf_grow(kwp_sbuf_t *b, size_t n);

/* Inline: the record encoders append a dozen pieces per record, and a call
 * each cost the consume path several percent of its CPU. */

/** Make room for @p n more bytes. @returns a pointer to them, or NULL (and
 * @p b->oom set). */
static inline char *kwp_sbuf_reserve(kwp_sbuf_t *b, size_t n) {
  if (b->cap - b->len >= n)
    return b->data + b->len;
  return kwp_sbuf_grow(b, n);
}

static inline void kwp_sbuf_append(kwp_sbuf_t *b, const void *p, size_t n) {
  char *d = kwp_sbuf_reserve(b, n);
  if (d) {
    memcpy(d, p, n);
    b->len += n;
  }
}

#endif
