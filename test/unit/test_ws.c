/* Unit tests for the RFC 6455 codec (codec/ws/ws.h): frame lengths, every split
 * point, fragmentation, protocol errors, UTF-8 (vectors and an exhaustive
 * comparison with a reference decoder), limits, close frames, encoders and the
 * accept key. */
#include "codec/ws/ws.h"
#include "core/base/error.h"
#include "test/ref_utf8.h"
#include "test/unit/unit.h"

#include <stdint.h>
#include <stdlib.h>

#define FIN 0x80
static const uint8_t MASK[4] = {0x37, 0xfa, 0x21, 0x3d};
static uint8_t stream[1 << 18]; /* scratch for building client input */

/* A masked client frame; b0 is FIN|RSV|opcode. Returns its length. */
static size_t cframe(uint8_t *out, int b0, const void *payload, size_t n) {
  const uint8_t *p = payload;
  size_t h = 0;
  out[h++] = (uint8_t)b0;
  if (n <= 125) {
    out[h++] = (uint8_t)(0x80 | n);
  } else if (n <= 0xFFFF) {
    out[h++] = 0x80 | 126;
    out[h++] = (uint8_t)(n >> 8);
    out[h++] = (uint8_t)n;
  } else {
    out[h++] = 0x80 | 127;
    for (int i = 7; i >= 0; i--)
      out[h++] = (uint8_t)((uint64_t)n >> (8 * i));
  }
  memcpy(out + h, MASK, 4);
  h += 4;
  for (size_t i = 0; i < n; i++)
    out[h + i] = p[i] ^ MASK[i & 3];
  return h + n;
}

/* --- running input through a reader the way the connection does --- */

typedef struct rec_ev {
  int type, opcode;
  unsigned code;
  size_t len;
  uint8_t *data;
} rec_ev_t;

typedef struct rec {
  rec_ev_t ev[64];
  int n;
  int err;
  size_t consumed;
} rec_t;

static void rec_free(rec_t *rec) {
  for (int i = 0; i < rec->n; i++)
    free(rec->ev[i].data);
  rec->n = 0;
}

/* Parse everything in buf[0..*have), moving the leftover to a fresh buffer
 * after each frame (the caller may move its bytes between calls). */
static uint8_t *drain(kwp_ws_reader_t *r, uint8_t *buf, size_t *have,
                      size_t cap, rec_t *rec) {
  kwp_ws_event_t ev;
  while (!rec->err) {
    int rc = kwp_ws_reader_parse(r, buf, *have, &ev);
    if (rc < 0)
      rec->err = rc;
    if (rc <= 0)
      break;
    ASSERT((size_t)rc <= *have);
    if (ev.type != KWP_WS_EV_NONE) {
      ASSERT(rec->n < 64);
      rec_ev_t *e = &rec->ev[rec->n++];
      e->type = ev.type;
      e->opcode = ev.opcode;
      e->code = ev.close_code;
      e->len = ev.len;
      e->data = malloc(ev.len + 1);
      memcpy(e->data, ev.data, ev.len);
    }
    rec->consumed += (size_t)rc;
    uint8_t *nb = malloc(cap);
    memcpy(nb, buf + rc, *have - (size_t)rc);
    free(buf);
    buf = nb;
    *have -= (size_t)rc;
  }
  return buf;
}

/* Feed in[0..n): a first chunk of @p first bytes, then chunks of @p step. */
static void run(size_t max, const uint8_t *in, size_t n, size_t first,
                size_t step, rec_t *rec) {
  kwp_ws_reader_t *r = kwp_ws_reader_new(max);
  size_t cap = n + 1, have = 0, off = 0;
  uint8_t *buf = malloc(cap);
  memset(rec, 0, sizeof(*rec));
  ASSERT(r);
  for (int chunk = 0; off < n && !rec->err; chunk++) {
    size_t k = chunk == 0 ? first : step;
    if (k > n - off)
      k = n - off;
    memcpy(buf + have, in + off, k);
    have += k;
    off += k;
    buf = drain(r, buf, &have, cap, rec);
  }
  free(buf);
  kwp_ws_reader_free(r);
}

static void rec_assert_same(const rec_t *a, const rec_t *b) {
  ASSERT_EQ(a->n, b->n);
  ASSERT_EQ(a->err, b->err);
  ASSERT_EQ(a->consumed, b->consumed);
  for (int i = 0; i < a->n; i++) {
    ASSERT_EQ(a->ev[i].type, b->ev[i].type);
    ASSERT_EQ(a->ev[i].opcode, b->ev[i].opcode);
    ASSERT_EQ(a->ev[i].code, b->ev[i].code);
    ASSERT_EQ(a->ev[i].len, b->ev[i].len);
    ASSERT(memcmp(a->ev[i].data, b->ev[i].data, a->ev[i].len) == 0);
  }
}

/* One whole buffer through a fresh reader; returns the first result. */
static int parse_once(size_t max, uint8_t *buf, size_t n, kwp_ws_event_t *ev) {
  kwp_ws_reader_t *r = kwp_ws_reader_new(max);
  int rc = kwp_ws_reader_parse(r, buf, n, ev);
  kwp_ws_reader_free(r);
  return rc;
}

/* Feed a stream whole and expect @p err; the error is sticky. */
static void expect_error(size_t max, const uint8_t *in, size_t n, int err) {
  rec_t rec;
  run(max, in, n, n, n, &rec);
  rec_free(&rec);
  ASSERT_EQ(rec.err, err);
}

/* --- framing --- */

KWP_TEST(ws_lengths) {
  static const size_t sizes[] = {0, 1, 125, 126, 127, 200, 65535, 65536, 70000};
  static const size_t hdrs[] = {6, 6, 6, 8, 8, 8, 8, 14, 14};
  static uint8_t payload[70000];
  for (size_t i = 0; i < sizeof(payload); i++)
    payload[i] = (uint8_t)(i * 7 + 3);
  for (size_t t = 0; t < sizeof(sizes) / sizeof(sizes[0]); t++) {
    kwp_ws_event_t ev;
    size_t n = cframe(stream, FIN | KWP_WS_BINARY, payload, sizes[t]);
    ASSERT_EQ(n, hdrs[t] + sizes[t]);
    kwp_ws_reader_t *r = kwp_ws_reader_new(1 << 20);
    ASSERT_EQ(kwp_ws_reader_parse(r, stream, n - 1, &ev), 0);
    ASSERT_EQ(kwp_ws_reader_parse(r, stream, n, &ev), (int)n);
    ASSERT_EQ(ev.type, KWP_WS_EV_MESSAGE);
    ASSERT_EQ(ev.opcode, KWP_WS_BINARY);
    ASSERT_EQ(ev.len, sizes[t]);
    ASSERT(ev.data == stream + hdrs[t]); /* zero copy, unmasked in place */
    ASSERT(memcmp(ev.data, payload, sizes[t]) == 0);
    ASSERT_EQ(kwp_ws_reader_buffered(r), 0);
    kwp_ws_reader_free(r);
  }
}

KWP_TEST(ws_need_more) {
  kwp_ws_event_t ev;
  kwp_ws_reader_t *r = kwp_ws_reader_new(1024);
  size_t n = cframe(stream, FIN | KWP_WS_TEXT, "hello", 5);
  ASSERT_EQ(kwp_ws_reader_parse(r, stream, 0, &ev), 0);
  for (size_t k = 1; k < n; k++) {
    ASSERT_EQ(kwp_ws_reader_parse(r, stream, k, &ev), 0);
    ASSERT_EQ(ev.type, KWP_WS_EV_NONE);
  }
  ASSERT_EQ(kwp_ws_reader_parse(r, stream, n, &ev), (int)n);
  ASSERT_EQ(ev.type, KWP_WS_EV_MESSAGE);
  ASSERT_EQ(ev.opcode, KWP_WS_TEXT);
  ASSERT_EQ(ev.len, 5);
  ASSERT(memcmp(ev.data, "hello", 5) == 0);
  kwp_ws_reader_free(r);
}

/* A stream touching every event type, split at every offset and fed a byte at
 * a time, gives exactly the events of the whole stream. */
KWP_TEST(ws_split_every_offset) {
  static uint8_t mid[300];
  size_t n = 0;
  for (size_t i = 0; i < sizeof(mid); i++)
    mid[i] = (uint8_t)i;
  n += cframe(stream + n, FIN | KWP_WS_TEXT, "h\xC3\xA9llo \xE2\x82\xAC", 11);
  n += cframe(stream + n, KWP_WS_TEXT, "ab\xF0\x9F", 4);
  n += cframe(stream + n, FIN | KWP_WS_PING, "pi", 2);
  n += cframe(stream + n, KWP_WS_CONT, "\x98\x80", 2);
  n += cframe(stream + n, FIN | KWP_WS_PONG, "", 0);
  n += cframe(stream + n, FIN | KWP_WS_CONT, "cd", 2);
  n += cframe(stream + n, FIN | KWP_WS_BINARY, mid, 126);
  n += cframe(stream + n, FIN | KWP_WS_BINARY, mid, 300);
  n += cframe(stream + n, FIN | KWP_WS_CLOSE, "\x03\xE8ok", 4);
  rec_t whole, part;
  run(4096, stream, n, n, n, &whole);
  ASSERT_EQ(whole.err, 0);
  ASSERT_EQ(whole.consumed, n);
  ASSERT_EQ(whole.n, 7);
  ASSERT_EQ(whole.ev[1].type, KWP_WS_EV_PING);
  ASSERT_EQ(whole.ev[2].type, KWP_WS_EV_PONG);
  ASSERT_EQ(whole.ev[3].len, 8);
  ASSERT(memcmp(whole.ev[3].data,
                "ab\xF0\x9F\x98\x80"
                "cd",
                8) == 0);
  ASSERT_EQ(whole.ev[6].code, 1000);
  for (size_t s = 0; s <= n; s++) {
    run(4096, stream, n, s, n, &part);
    rec_assert_same(&whole, &part);
    rec_free(&part);
  }
  for (size_t step = 1; step <= 7; step++) {
    run(4096, stream, n, step, step, &part);
    rec_assert_same(&whole, &part);
    rec_free(&part);
  }
  rec_free(&whole);
}

KWP_TEST(ws_split_large_frames) {
  static uint8_t payload[65536];
  for (size_t i = 0; i < sizeof(payload); i++)
    payload[i] = (uint8_t)(i % 251);
  size_t n = cframe(stream, FIN | KWP_WS_BINARY, payload, 65535);
  n += cframe(stream + n, FIN | KWP_WS_BINARY, payload, 65536);
  rec_t whole, part;
  run(1 << 20, stream, n, n, n, &whole);
  ASSERT_EQ(whole.n, 2);
  ASSERT_EQ(whole.ev[0].len, 65535);
  ASSERT_EQ(whole.ev[1].len, 65536);
  ASSERT(memcmp(whole.ev[1].data, payload, 65536) == 0);
  static const size_t firsts[] = {1, 2, 3, 4, 5, 7, 8, 9, 65539, 65540, 65541};
  for (size_t i = 0; i < sizeof(firsts) / sizeof(firsts[0]); i++) {
    run(1 << 20, stream, n, firsts[i], 3, &part);
    rec_assert_same(&whole, &part);
    rec_free(&part);
  }
  run(1 << 20, stream, n, 1, 1, &part);
  rec_assert_same(&whole, &part);
  rec_free(&part);
  rec_free(&whole);
}

KWP_TEST(ws_fragments_with_ping) {
  kwp_ws_event_t ev;
  kwp_ws_reader_t *r = kwp_ws_reader_new(1024);
  size_t n = cframe(stream, KWP_WS_BINARY, "abc", 3);
  ASSERT_EQ(kwp_ws_reader_parse(r, stream, n, &ev), (int)n);
  ASSERT_EQ(ev.type, KWP_WS_EV_NONE);
  ASSERT(kwp_ws_reader_buffered(r) >= 3);
  n = cframe(stream, FIN | KWP_WS_PING, "p", 1);
  ASSERT_EQ(kwp_ws_reader_parse(r, stream, n, &ev), (int)n);
  ASSERT_EQ(ev.type, KWP_WS_EV_PING);
  ASSERT_EQ(ev.len, 1);
  ASSERT_EQ(ev.data[0], 'p');
  n = cframe(stream, KWP_WS_CONT, "", 0);
  ASSERT_EQ(kwp_ws_reader_parse(r, stream, n, &ev), (int)n);
  ASSERT_EQ(ev.type, KWP_WS_EV_NONE);
  n = cframe(stream, FIN | KWP_WS_CONT, "de", 2);
  ASSERT_EQ(kwp_ws_reader_parse(r, stream, n, &ev), (int)n);
  ASSERT_EQ(ev.type, KWP_WS_EV_MESSAGE);
  ASSERT_EQ(ev.opcode, KWP_WS_BINARY);
  ASSERT_EQ(ev.len, 5);
  ASSERT(memcmp(ev.data, "abcde", 5) == 0);
  /* The reassembly buffer is dropped on the next call. */
  n = cframe(stream, FIN | KWP_WS_TEXT, "x", 1);
  ASSERT_EQ(kwp_ws_reader_parse(r, stream, n, &ev), (int)n);
  ASSERT_EQ(ev.opcode, KWP_WS_TEXT);
  ASSERT_EQ(kwp_ws_reader_buffered(r), 0);
  kwp_ws_reader_free(r);
}

KWP_TEST(ws_many_fragments) {
  rec_t rec;
  size_t n = cframe(stream, KWP_WS_TEXT, "a", 1);
  for (int i = 1; i < 2999; i++)
    n += cframe(stream + n, KWP_WS_CONT, "b", 1);
  n += cframe(stream + n, FIN | KWP_WS_CONT, "c", 1);
  run(3000, stream, n, n, n, &rec);
  ASSERT_EQ(rec.err, 0);
  ASSERT_EQ(rec.n, 1);
  ASSERT_EQ(rec.ev[0].len, 3000);
  ASSERT_EQ(rec.ev[0].data[0], 'a');
  ASSERT_EQ(rec.ev[0].data[1500], 'b');
  ASSERT_EQ(rec.ev[0].data[2999], 'c');
  rec_free(&rec);
}

/* A fragment bigger than twice the reassembly buffer grows it at once; the
 * buffer never exceeds the message limit. */
KWP_TEST(ws_fragment_growth) {
  static uint8_t payload[5000];
  rec_t rec;
  for (size_t i = 0; i < sizeof(payload); i++)
    payload[i] = (uint8_t)(i % 13);
  size_t n = cframe(stream, KWP_WS_BINARY, "0123456789", 10);
  n += cframe(stream + n, KWP_WS_CONT, payload, 5000);
  n += cframe(stream + n, FIN | KWP_WS_CONT, "xyz", 3);
  run(5013, stream, n, n, n, &rec);
  ASSERT_EQ(rec.err, 0);
  ASSERT_EQ(rec.n, 1);
  ASSERT_EQ(rec.ev[0].len, 5013);
  ASSERT(memcmp(rec.ev[0].data, "0123456789", 10) == 0);
  ASSERT(memcmp(rec.ev[0].data + 10, payload, 5000) == 0);
  ASSERT(memcmp(rec.ev[0].data + 5010, "xyz", 3) == 0);
  rec_free(&rec);
  kwp_ws_event_t ev;
  kwp_ws_reader_t *r = kwp_ws_reader_new(5013);
  n = cframe(stream, KWP_WS_BINARY, "0123456789", 10);
  ASSERT_EQ(kwp_ws_reader_parse(r, stream, n, &ev), (int)n);
  ASSERT_EQ(kwp_ws_reader_buffered(r), 1024);
  n = cframe(stream, KWP_WS_CONT, payload, 5000);
  ASSERT_EQ(kwp_ws_reader_parse(r, stream, n, &ev), (int)n);
  ASSERT_EQ(kwp_ws_reader_buffered(r), 5010);
  n = cframe(stream, FIN | KWP_WS_CONT, "xyz", 3);
  ASSERT_EQ(kwp_ws_reader_parse(r, stream, n, &ev), (int)n);
  ASSERT_EQ(kwp_ws_reader_buffered(r), 5013);
  kwp_ws_reader_free(r);
}

/* --- protocol errors --- */

KWP_TEST(ws_protocol_errors) {
  uint8_t big[126] = {0};
  size_t n;
  /* Unmasked frame, detected from the first two bytes. */
  uint8_t unmasked[] = {0x81, 0x01, 'a'};
  expect_error(1024, unmasked, 2, KWP_EPROTO);
  for (int rsv = 0x10; rsv <= 0x40; rsv <<= 1) {
    n = cframe(stream, FIN | rsv | KWP_WS_TEXT, "a", 1);
    expect_error(1024, stream, 1, KWP_EPROTO); /* from the first byte */
  }
  for (int op = 3; op <= 15; op++) {
    if (op >= KWP_WS_CLOSE && op <= KWP_WS_PONG)
      continue;
    n = cframe(stream, FIN | op, "", 0);
    expect_error(1024, stream, n, KWP_EPROTO);
  }
  n = cframe(stream, FIN | KWP_WS_CONT, "a", 1); /* continuation, no start */
  expect_error(1024, stream, n, KWP_EPROTO);
  n = cframe(stream, KWP_WS_TEXT, "a", 1);
  size_t m = n + cframe(stream + n, FIN | KWP_WS_TEXT, "b", 1);
  expect_error(1024, stream, m, KWP_EPROTO); /* new message while open */
  m = n + cframe(stream + n, KWP_WS_BINARY, "b", 1);
  expect_error(1024, stream, m, KWP_EPROTO);
  n = cframe(stream, FIN | KWP_WS_PING, big, 126); /* control over 125 */
  expect_error(1024, stream, 2, KWP_EPROTO);
  n = cframe(stream, KWP_WS_PING, "", 0); /* fragmented control frames */
  expect_error(1024, stream, n, KWP_EPROTO);
  n = cframe(stream, KWP_WS_CLOSE, "", 0);
  expect_error(1024, stream, n, KWP_EPROTO);
  n = cframe(stream, KWP_WS_PONG, "", 0);
  expect_error(1024, stream, n, KWP_EPROTO);
  n = cframe(stream, FIN | KWP_WS_CLOSE, "\x03", 1); /* 1-byte close */
  expect_error(1024, stream, 2, KWP_EPROTO);
  uint8_t msb[] = {0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0};
  expect_error(SIZE_MAX, msb, sizeof(msb), KWP_EPROTO);
}

KWP_TEST(ws_error_is_sticky) {
  kwp_ws_event_t ev;
  kwp_ws_reader_t *r = kwp_ws_reader_new(1024);
  size_t n = cframe(stream, FIN | 0x40 | KWP_WS_TEXT, "a", 1);
  ASSERT_EQ(kwp_ws_reader_parse(r, stream, n, &ev), KWP_EPROTO);
  ASSERT_EQ(ev.type, KWP_WS_EV_NONE);
  n = cframe(stream, FIN | KWP_WS_TEXT, "a", 1);
  ASSERT_EQ(kwp_ws_reader_parse(r, stream, n, &ev), KWP_EPROTO);
  ASSERT_EQ(kwp_ws_reader_parse(r, stream, 0, &ev), KWP_EPROTO);
  kwp_ws_reader_free(r);
}

/* --- UTF-8 --- */

static int utf8_ok(const char *s, size_t n) {
  kwp_utf8_t u = {0, 0};
  return kwp_utf8_feed(&u, (const uint8_t *)s, n) == 0 && kwp_utf8_complete(&u);
}

KWP_TEST(ws_utf8_vectors) {
  static const char *good[] = {"",
                               "plain ascii, long enough for the fast path",
                               "\x7F",
                               "\xC2\x80",
                               "\xDF\xBF",
                               "\xE0\xA0\x80",
                               "\xED\x9F\xBF",
                               "\xEE\x80\x80",
                               "\xEF\xBF\xBF",
                               "\xF0\x90\x80\x80",
                               "\xF4\x8F\xBF\xBF",
                               "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5"};
  static const char *bad[] = {"\xC0\x80",
                              "\xC1\xBF",
                              "\xE0\x80\x80",
                              "\xE0\x9F\xBF",
                              "\xED\xA0\x80",
                              "\xED\xBF\xBF",
                              "\xF0\x80\x80\x80",
                              "\xF0\x8F\xBF\xBF",
                              "\xF4\x90\x80\x80",
                              "\xF5\x80\x80\x80",
                              "\xF8\x88\x80\x80",
                              "\xFF",
                              "\x80",
                              "abc\xBF",
                              "\xC2",
                              "\xE2\x82",
                              "\xF0\x9F\x98",
                              "\xC2\x41",
                              "\xE2\x28\xA1",
                              "ok so far \xFE ok"};
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
    ASSERT(utf8_ok(good[i], strlen(good[i])));
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    ASSERT(!utf8_ok(bad[i], strlen(bad[i])));
  /* A bad or multi-byte sequence at every position of the ASCII fast path. */
  char buf[40];
  for (size_t pos = 0; pos + 2 <= sizeof(buf); pos++) {
    memset(buf, 'a', sizeof(buf));
    buf[pos] = (char)0x80;
    ASSERT(!utf8_ok(buf, sizeof(buf)));
    memcpy(buf + pos, "\xC3\xA9", 2);
    ASSERT(utf8_ok(buf, sizeof(buf)));
  }
  /* Truncated input is not an error until it is declared complete. */
  kwp_utf8_t u = {0, 0};
  ASSERT_EQ(kwp_utf8_feed(&u, (const uint8_t *)"\xF0\x9F", 2), 0);
  ASSERT_EQ(kwp_utf8_complete(&u), 0);
  ASSERT_EQ(kwp_utf8_feed(&u, (const uint8_t *)"\x98\x80", 2), 0);
  ASSERT_EQ(kwp_utf8_complete(&u), 1);
  ASSERT_EQ(u.codepoint, 0x1F600);
  /* Failure is sticky. */
  ASSERT_EQ(kwp_utf8_feed(&u, (const uint8_t *)"\x80", 1), KWP_EUTF8);
  ASSERT_EQ(kwp_utf8_feed(&u, (const uint8_t *)"a", 1), KWP_EUTF8);
  ASSERT_EQ(kwp_utf8_complete(&u), 0);
}

static int dfa_utf8(const uint8_t *p, size_t n, int bytewise) {
  kwp_utf8_t u = {0, 0};
  if (!bytewise)
    return kwp_utf8_feed(&u, p, n) == 0 && kwp_utf8_complete(&u);
  for (size_t i = 0; i < n; i++)
    if (kwp_utf8_feed(&u, p + i, 1) < 0)
      return 0;
  return kwp_utf8_complete(&u);
}

KWP_TEST(ws_utf8_exhaustive) {
  static const uint8_t tails[] = {0x00, 0x41, 0x7F, 0x80, 0x9F,
                                  0xA0, 0xBF, 0xC0, 0xFF};
  uint8_t s[4];
  for (unsigned a = 0; a < 0x10000; a++) {
    s[0] = (uint8_t)(a >> 8), s[1] = (uint8_t)a;
    ASSERT_EQ(dfa_utf8(s, 1, 0), ref_utf8(s, 1));
    ASSERT_EQ(dfa_utf8(s, 2, a & 1), ref_utf8(s, 2));
  }
  for (unsigned a = 0xC0 << 16; a < 0x1000000; a++) {
    s[0] = (uint8_t)(a >> 16), s[1] = (uint8_t)(a >> 8), s[2] = (uint8_t)a;
    if (dfa_utf8(s, 3, 0) != ref_utf8(s, 3))
      ASSERT_EQ(a, 0);
  }
  for (unsigned a = 0xF0; a <= 0xFF; a++)
    for (unsigned b = 0; b < 256; b++)
      for (size_t c = 0; c < sizeof(tails); c++)
        for (size_t d = 0; d < sizeof(tails); d++) {
          s[0] = (uint8_t)a, s[1] = (uint8_t)b, s[2] = tails[c];
          s[3] = tails[d];
          ASSERT_EQ(dfa_utf8(s, 4, (b + c) & 1), ref_utf8(s, 4));
        }
}

KWP_TEST(ws_utf8_text_messages) {
  rec_t rec;
  size_t n = cframe(stream, FIN | KWP_WS_TEXT, "\xED\xA0\x80", 3);
  expect_error(1024, stream, n, KWP_EUTF8);
  /* The same bytes are fine in a binary message. */
  n = cframe(stream, FIN | KWP_WS_BINARY, "\xED\xA0\x80", 3);
  run(1024, stream, n, n, n, &rec);
  ASSERT_EQ(rec.err, 0);
  ASSERT_EQ(rec.n, 1);
  rec_free(&rec);
  /* A code point split across fragments is valid... */
  n = cframe(stream, KWP_WS_TEXT, "a\xE2", 2);
  n += cframe(stream + n, KWP_WS_CONT, "\x82", 1);
  size_t m = n + cframe(stream + n, FIN | KWP_WS_CONT, "\xAC", 1);
  run(1024, stream, m, m, m, &rec);
  ASSERT_EQ(rec.err, 0);
  ASSERT_EQ(rec.n, 1);
  ASSERT_EQ(rec.ev[0].len, 4);
  ASSERT(memcmp(rec.ev[0].data, "a\xE2\x82\xAC", 4) == 0);
  rec_free(&rec);
  /* ...but the final fragment must not end mid-sequence... */
  m = n + cframe(stream + n, FIN | KWP_WS_CONT, "", 0);
  expect_error(1024, stream, m, KWP_EUTF8);
  n = cframe(stream, FIN | KWP_WS_TEXT, "ok\xF0\x9F\x98", 5);
  expect_error(1024, stream, n, KWP_EUTF8);
  /* ...and a bad continuation in a later fragment fails there. */
  n = cframe(stream, KWP_WS_TEXT, "\xF0", 1);
  m = n + cframe(stream + n, FIN | KWP_WS_CONT, "\x80\x80\x80", 3);
  expect_error(1024, stream, m, KWP_EUTF8);
  expect_error(1024, stream, n, 0); /* the first fragment alone is fine */
  /* A ping between fragments does not disturb the validator. */
  n = cframe(stream, KWP_WS_TEXT, "\xC3", 1);
  n += cframe(stream + n, FIN | KWP_WS_PING, "\xFF", 1);
  n += cframe(stream + n, FIN | KWP_WS_CONT, "\xA9", 1);
  run(1024, stream, n, n, n, &rec);
  ASSERT_EQ(rec.err, 0);
  ASSERT_EQ(rec.n, 2);
  ASSERT_EQ(rec.ev[1].len, 2);
  rec_free(&rec);
}

KWP_TEST(ws_utf8_fail_fast) {
  char text[100];
  kwp_ws_event_t ev;
  memset(text, 'x', sizeof(text));
  text[10] = (char)0xC0;
  size_t n = cframe(stream, FIN | KWP_WS_TEXT, text, sizeof(text));
  ASSERT_EQ(n, 106);
  /* Only the header and the first half have arrived. */
  kwp_ws_reader_t *r = kwp_ws_reader_new(1024);
  ASSERT_EQ(kwp_ws_reader_parse(r, stream, 6 + 5, &ev), 0);
  ASSERT_EQ(kwp_ws_reader_parse(r, stream, 6 + 50, &ev), KWP_EUTF8);
  kwp_ws_reader_free(r);
  /* Also when the bad byte is in a later fragment's first half. */
  n = cframe(stream, KWP_WS_TEXT, "abc", 3);
  text[10] = 'x';
  text[40] = (char)0x80;
  size_t m = cframe(stream + n, FIN | KWP_WS_CONT, text, sizeof(text));
  r = kwp_ws_reader_new(1024);
  ASSERT_EQ(kwp_ws_reader_parse(r, stream, n, &ev), (int)n);
  ASSERT_EQ(kwp_ws_reader_parse(r, stream + n, 6 + 40, &ev), 0);
  ASSERT_EQ(kwp_ws_reader_parse(r, stream + n, 6 + 41, &ev), KWP_EUTF8);
  (void)m;
  kwp_ws_reader_free(r);
}

/* Unmasking goes 16, then 8, then 1 byte at a time, and a payload arrives
 * in pieces at any mask phase: every length up to 100 (and longer ones),
 * split at every offset, unmasks to the same bytes; and one byte >= 0x80 at
 * any position of an ASCII text message is seen (an invalid one fails, a
 * valid pair passes), whichever word or vector lane it falls in. */
KWP_TEST(ws_unmask_every_length_and_phase) {
  static uint8_t payload[1100], text[1100];
  static const size_t longer[] = {255, 1000, 1031};
  for (size_t i = 0; i < sizeof(payload); i++)
    payload[i] = (uint8_t)(i * 37 + 11);
  for (size_t t = 0; t < 101 + 3; t++) {
    size_t len = t <= 100 ? t : longer[t - 101];
    size_t n = cframe(stream, FIN | KWP_WS_BINARY, payload, len);
    for (size_t first = 1; first <= n; first += len > 100 ? 7 : 1) {
      rec_t rec;
      run(4096, stream, n, first, first % 5 + 1, &rec);
      ASSERT_EQ(rec.err, 0);
      ASSERT_EQ(rec.n, 1);
      ASSERT_EQ(rec.ev[0].len, len);
      ASSERT(memcmp(rec.ev[0].data, payload, len) == 0);
      rec_free(&rec);
    }
  }
  for (size_t len = 1; len <= 80; len++) {
    for (size_t k = 0; k < len; k++) {
      rec_t rec;
      memset(text, 'a', len);
      text[k] = 0xFF;
      size_t n = cframe(stream, FIN | KWP_WS_TEXT, text, len);
      run(4096, stream, n, n, n, &rec);
      ASSERT_EQ(rec.err, KWP_EUTF8);
      rec_free(&rec);
      if (k + 1 == len)
        continue;
      text[k] = 0xC3; /* U+00E9 */
      text[k + 1] = 0xA9;
      n = cframe(stream, FIN | KWP_WS_TEXT, text, len);
      run(4096, stream, n, n, n, &rec);
      ASSERT_EQ(rec.err, 0);
      ASSERT_EQ(rec.n, 1);
      rec_free(&rec);
    }
  }
}

/* --- limits --- */

KWP_TEST(ws_max_message) {
  static uint8_t payload[300];
  rec_t rec;
  /* One frame's header is enough to reject it: 7- and 16-bit lengths. */
  cframe(stream, FIN | KWP_WS_BINARY, payload, 101);
  expect_error(100, stream, 2, KWP_ETOOBIG);
  cframe(stream, FIN | KWP_WS_TEXT, payload, 300);
  expect_error(299, stream, 4, KWP_ETOOBIG);
  uint8_t len64[] = {0x82, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0};
  expect_error(1 << 20, len64, sizeof(len64), KWP_ETOOBIG);
  size_t n = cframe(stream, FIN | KWP_WS_BINARY, payload, 100);
  expect_error(100, stream, n, 0);
  /* The sum of the fragments counts: 60 + 40 fits, 60 + 41 does not. */
  n = cframe(stream, KWP_WS_BINARY, payload, 60);
  size_t m = n + cframe(stream + n, FIN | KWP_WS_CONT, payload, 40);
  run(100, stream, m, m, m, &rec);
  ASSERT_EQ(rec.err, 0);
  ASSERT_EQ(rec.n, 1);
  ASSERT_EQ(rec.ev[0].len, 100);
  rec_free(&rec);
  m = n + cframe(stream + n, KWP_WS_CONT, payload, 41);
  expect_error(100, stream, n + 2, KWP_ETOOBIG);
  expect_error(100, stream, m, KWP_ETOOBIG);
  /* Control frames are bounded by 125, not by the message limit. */
  n = cframe(stream, FIN | KWP_WS_PING, payload, 50);
  expect_error(10, stream, n, 0);
}

/* --- close frames --- */

KWP_TEST(ws_close_frames) {
  static const unsigned valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009,
                                   1010, 1011, 1012, 1013, 1014, 3000, 4999};
  static const unsigned invalid[] = {0,    999,  1004, 1005, 1006, 1015,
                                     1016, 1100, 2000, 2999, 5000, 65535};
  kwp_ws_event_t ev;
  uint8_t p[8];
  size_t n = cframe(stream, FIN | KWP_WS_CLOSE, "", 0);
  ASSERT_EQ(parse_once(1024, stream, n, &ev), (int)n);
  ASSERT_EQ(ev.type, KWP_WS_EV_CLOSE);
  ASSERT_EQ(ev.close_code, 1005);
  ASSERT_EQ(ev.len, 0);
  n = cframe(stream, FIN | KWP_WS_CLOSE, "\x03", 1);
  expect_error(1024, stream, n, KWP_EPROTO);
  for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
    p[0] = (uint8_t)(valid[i] >> 8), p[1] = (uint8_t)valid[i];
    memcpy(p + 2, "bye", 3);
    n = cframe(stream, FIN | KWP_WS_CLOSE, p, 5);
    ASSERT_EQ(parse_once(1024, stream, n, &ev), (int)n);
    ASSERT_EQ(ev.type, KWP_WS_EV_CLOSE);
    ASSERT_EQ(ev.close_code, valid[i]);
    ASSERT_EQ(ev.len, 3);
    ASSERT(memcmp(ev.data, "bye", 3) == 0);
  }
  for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
    p[0] = (uint8_t)(invalid[i] >> 8), p[1] = (uint8_t)invalid[i];
    n = cframe(stream, FIN | KWP_WS_CLOSE, p, 2);
    expect_error(1024, stream, n, KWP_EPROTO);
  }
  n = cframe(stream, FIN | KWP_WS_CLOSE, "\x03\xE8\xC0\x80", 4);
  expect_error(1024, stream, n, KWP_EPROTO);
  n = cframe(stream, FIN | KWP_WS_CLOSE, "\x03\xE8 \xE2\x82", 5);
  expect_error(1024, stream, n, KWP_EPROTO);
}

KWP_TEST(ws_close_code_valid) {
  int count = 0;
  for (unsigned c = 0; c < 70000; c++)
    count += kwp_ws_close_code_valid(c);
  ASSERT_EQ(count, 4 + 8 + 2000);
  ASSERT_EQ(kwp_ws_close_code_valid(1000), 1);
  ASSERT_EQ(kwp_ws_close_code_valid(1004), 0);
  ASSERT_EQ(kwp_ws_close_code_valid(1014), 1);
  ASSERT_EQ(kwp_ws_close_code_valid(1015), 0);
  ASSERT_EQ(kwp_ws_close_code_valid(2999), 0);
  ASSERT_EQ(kwp_ws_close_code_valid(3000), 1);
  ASSERT_EQ(kwp_ws_close_code_valid(4999), 1);
  ASSERT_EQ(kwp_ws_close_code_valid(5000), 0);
}

/* --- encoders --- */

KWP_TEST(ws_header_encode) {
  uint8_t h[10];
  ASSERT_EQ(kwp_ws_header_encode(h, KWP_WS_TEXT, 1, 0), 2);
  ASSERT(memcmp(h, "\x81\x00", 2) == 0);
  ASSERT_EQ(kwp_ws_header_encode(h, KWP_WS_BINARY, 1, 125), 2);
  ASSERT(memcmp(h, "\x82\x7D", 2) == 0);
  ASSERT_EQ(kwp_ws_header_encode(h, KWP_WS_BINARY, 1, 126), 4);
  ASSERT(memcmp(h, "\x82\x7E\x00\x7E", 4) == 0);
  ASSERT_EQ(kwp_ws_header_encode(h, KWP_WS_CONT, 0, 65535), 4);
  ASSERT(memcmp(h, "\x00\x7E\xFF\xFF", 4) == 0);
  ASSERT_EQ(kwp_ws_header_encode(h, KWP_WS_CLOSE, 1, 65536), 10);
  ASSERT(memcmp(h, "\x88\x7F\x00\x00\x00\x00\x00\x01\x00\x00", 10) == 0);
  ASSERT_EQ(kwp_ws_header_encode(h, KWP_WS_PONG, 1, 0x0102030405060708ULL), 10);
  ASSERT(memcmp(h, "\x8A\x7F\x01\x02\x03\x04\x05\x06\x07\x08", 10) == 0);
}

KWP_TEST(ws_close_payload) {
  uint8_t out[125];
  char reason[200];
  ASSERT_EQ(kwp_ws_close_payload(out, 1000, "bye"), 5);
  ASSERT(memcmp(out,
                "\x03\xE8"
                "bye",
                5) == 0);
  ASSERT_EQ(kwp_ws_close_payload(out, 1011, NULL), 2);
  ASSERT(memcmp(out, "\x03\xF3", 2) == 0);
  memset(reason, 'r', 199);
  reason[199] = '\0';
  ASSERT_EQ(kwp_ws_close_payload(out, 1002, reason), 125);
  /* 2-byte characters: 61 of them fit (122 bytes), never half of one. */
  for (int i = 0; i < 70; i++)
    memcpy(reason + 2 * i, "\xC3\xA9", 2);
  reason[140] = '\0';
  ASSERT_EQ(kwp_ws_close_payload(out, 1009, reason), 124);
  ASSERT(utf8_ok((const char *)out + 2, 122));
  /* 4-byte characters: 30 fit (120 bytes). */
  for (int i = 0; i < 40; i++)
    memcpy(reason + 4 * i, "\xF0\x9F\x98\x80", 4);
  reason[160] = '\0';
  ASSERT_EQ(kwp_ws_close_payload(out, 1000, reason), 122);
  ASSERT(utf8_ok((const char *)out + 2, 120));
}

KWP_TEST(ws_accept_key) {
  static const char *bad[] = {
      "",
      "dGhlIHNhbXBsZSBub25jZQ=",
      "dGhlIHNhbXBsZSBub25jZQ",
      "dGhlIHNhbXBsZSBub25jZQ===",
      "dGhlIHNhbXBsZSBub25jZ===",
      "dGhlIHNhbXBsZSBub25jZQ!=",
      "dGhlIHNhbXBsZSBub2 jZQ==",
      "AAAAAAAAAAAAAAAAAAAA",
      "AAAAAAAAAAAAAAAAAAAAAAA=",
      "AAAAAAAAAAAAAAAAAAAAAAAA",
      "dGhlIHNhbXBsZSBub25jZQ==dGhlIHNhbXBsZSBub25jZQ=="};
  char out[29];
  const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
  ASSERT_EQ(kwp_ws_accept_key(key, strlen(key), out), 0);
  ASSERT_STREQ(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  memset(out, 0, sizeof(out));
  key = "  dGhlIHNhbXBsZSBub25jZQ== \t";
  ASSERT_EQ(kwp_ws_accept_key(key, strlen(key), out), 0);
  ASSERT_STREQ(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  /* key_len bounds the key: the rest of the string is not read. */
  key = "dGhlIHNhbXBsZSBub25jZQ==garbage";
  ASSERT_EQ(kwp_ws_accept_key(key, 24, out), 0);
  ASSERT_STREQ(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    ASSERT_EQ(kwp_ws_accept_key(bad[i], strlen(bad[i]), out), KWP_EBADREQ);
  ASSERT_EQ(kwp_ws_accept_key(NULL, 0, out), KWP_EBADREQ);
}
