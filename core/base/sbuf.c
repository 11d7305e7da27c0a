/* The growable output buffer (see sbuf.h). */
#include "core/base/sbuf.h"

#include <stdlib.h>
#include <string.h>

void kwp_sbuf_free(kwp_sbuf_t *b) {
  free(b->data);
  memset(b, 0, sizeof(*b));
}

char *kwp_sbuf_grow(kwp_sbuf_t *b, size_t n) {
  size_t cap = b->cap ? b->cap : 256;
  while (cap - b->len < n)
    cap *= 2;
  char *d = realloc(b->data, cap);
  if (!d) {
    b->oom = 1;
    return NULL;
  }
  b->data = d;
  b->cap = cap;
  return b->data + b->len;
}
