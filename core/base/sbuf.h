/*
 * A growable byte buffer for output built in place (frames, records). Pure;
 * one owner at a time.
 */
#ifndef KWP_SBUF_H
#define KWP_SBUF_H

#include <stddef.h>

/* Zero-initialise; free with kwp_sbuf_free(). */
typedef struct kwp_sbuf {
  char *data;
  size_t len, cap;
  int oom; /* an append failed; the content is incomplete */
} kwp_sbuf_t;

void kwp_sbuf_free(kwp_sbuf_t *b);
/** Make room for @p n more bytes. @returns a pointer to them, or NULL (and
 * @p b->oom set). */
char *kwp_sbuf_reserve(kwp_sbuf_t *b, size_t n);
void kwp_sbuf_append(kwp_sbuf_t *b, const void *p, size_t n);

#endif
