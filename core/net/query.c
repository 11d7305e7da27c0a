/* Query-string parameters: lookup and percent-decoding. Pure, any thread. */
#include "core/net/query.h"

#include "codec/ws/ws.h"
#include "core/base/error.h"

#include <string.h>
#include <strings.h>

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

static int decode(const char *s, size_t len, char *out, size_t outlen) {
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    int c = (unsigned char)s[i];
    if (c == '+') {
      c = ' ';
    } else if (c == '%') {
      int hi = i + 2 < len ? hexval(s[i + 1]) : -1;
      int lo = hi >= 0 ? hexval(s[i + 2]) : -1;
      if (lo < 0)
        return KWP_EBADREQ;
      c = hi << 4 | lo;
      i += 2;
    }
    if (c == 0 || o + 1 >= outlen)
      return KWP_EBADREQ;
    out[o++] = (char)c;
  }
  out[o] = 0;
  /* Values end up in Kafka client ids, session records and JSON error
   * bodies, all of which need text. */
  kwp_utf8_t u = {0};
  if (kwp_utf8_feed(&u, (const uint8_t *)out, o) || !kwp_utf8_complete(&u))
    return KWP_EBADREQ;
  return 1;
}

int kwp_query_get(const char *url, const char *name, char *out, size_t outlen) {
  const char *q = strchr(url, '?');
  size_t nlen = strlen(name);
  if (outlen)
    *out = 0;
  if (!q)
    return 0;
  for (const char *p = q + 1; *p && *p != '#';) {
    size_t plen = strcspn(p, "&#");
    const char *eq = memchr(p, '=', plen);
    size_t klen = eq ? (size_t)(eq - p) : plen;
    if (klen == nlen && !memcmp(p, name, nlen))
      return eq ? decode(eq + 1, plen - klen - 1, out, outlen)
                : decode("", 0, out, outlen);
    p += plen;
    if (*p == '&')
      p++;
  }
  return 0;
}

int kwp_query_bool(const char *s) {
  static const char *yes[] = {"true", "yes", "on", "1"};
  static const char *no[] = {"false", "no", "off", "0"};
  for (int i = 0; i < 4; i++) {
    if (!strcasecmp(s, yes[i]))
      return 1;
    if (!strcasecmp(s, no[i]))
      return 0;
  }
  return -1;
}
