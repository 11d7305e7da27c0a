/* wsProxyMessageId, written and read. Pure, any thread. */
#include "codec/msgid.h"

#include "codec/json/format.h"
#include "core/base/error.h"

#include <string.h>

char *kwp_msgid_put(char *d, const char *topic, size_t topic_len,
                    int32_t partition, int64_t offset, int64_t timestamp) {
  d = kwp_put(d, topic, topic_len);
  *d++ = '-';
  d = kwp_put_i64(d, partition);
  *d++ = '-';
  d = kwp_put_i64(d, offset);
  *d++ = '-';
  return kwp_put_i64(d, timestamp);
}

/* Parse a decimal number (optionally negative) ending at @p end or '-',
 * written as the proxy writes numbers: "00" or "-0" is in no id it sent. */
static int parse_num(const char **p, const char *end, int64_t *out) {
  const char *q = *p;
  int neg = q < end && *q == '-';
  uint64_t v = 0;
  q += neg;
  const char *digits = q;
  while (q < end && *q >= '0' && *q <= '9' && q - digits < 19)
    v = v * 10 + (uint64_t)(*q++ - '0');
  if (q == digits || (q < end && *q != '-') ||
      (*digits == '0' && (q - digits > 1 || neg)))
    return -1;
  *out = neg ? -(int64_t)v : (int64_t)v;
  *p = q;
  return 0;
}

int kwp_msgid_parse(const char *topic, size_t topic_len, const char *id,
                    size_t len, kwp_record_ref_t *ref) {
  const char *end = id + len;
  int64_t partition, offset, timestamp;
  if (len <= topic_len + 1 || memcmp(id, topic, topic_len) != 0 ||
      id[topic_len] != '-')
    return KWP_EUNKNOWNID;
  const char *p = id + topic_len + 1;
  if (parse_num(&p, end, &partition) != 0 || p == end || *p++ != '-' ||
      parse_num(&p, end, &offset) != 0 || p == end || *p++ != '-' ||
      parse_num(&p, end, &timestamp) != 0 || p != end || partition < 0 ||
      partition > INT32_MAX)
    return KWP_EUNKNOWNID;
  ref->partition = (int32_t)partition;
  ref->offset = offset;
  ref->timestamp = timestamp;
  return 0;
}
