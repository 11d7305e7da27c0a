/* A plain UTF-8 decoder, independent of the codec's DFA: the reference the
 * unit tests and the fuzz target compare it with. Header-only, test code. */
#ifndef KWP_TEST_REF_UTF8_H
#define KWP_TEST_REF_UTF8_H

#include <stddef.h>
#include <stdint.h>

static int ref_utf8(const uint8_t *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t b = p[i];
    uint32_t cp;
    size_t k;
    if (b < 0x80) {
      i++;
      continue;
    }
    if (b >= 0xC0 && b <= 0xDF)
      k = 1, cp = b & 0x1F;
    else if (b >= 0xE0 && b <= 0xEF)
      k = 2, cp = b & 0x0F;
    else if (b >= 0xF0 && b <= 0xF7)
      k = 3, cp = b & 0x07;
    else
      return 0;
    for (size_t j = 1; j <= k; j++) {
      if (i + j >= n || (p[i + j] & 0xC0) != 0x80)
        return 0;
      cp = (cp << 6) | (p[i + j] & 0x3F);
    }
    if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) ||
        (k == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return 0;
    i += k + 1;
  }
  return 1;
}

#endif
