/*
 * Incremental UTF-8 validator (declared in codec/ws/ws.h): a byte-class DFA
 * that accepts exactly the well-formed sequences of Unicode's table 3-7, with a
 * word-at-a-time ASCII fast path. Pure; any thread.
 */
#include "codec/ws/ws.h"
#include "core/base/error.h"

#include <string.h>

/* Byte classes. Continuations are split by range because the second byte of
 * E0, ED, F0 and F4 sequences is restricted (no overlongs, no surrogates,
 * nothing above U+10FFFF). */
enum {
  C_ASCII, /* 00..7F */
  C_C80,   /* 80..8F continuation */
  C_C90,   /* 90..9F continuation */
  C_CA0,   /* A0..BF continuation */
  C_L2,    /* C2..DF lead of 2 */
  C_E0,    /* E0: next A0..BF */
  C_L3,    /* E1..EC, EE..EF lead of 3 */
  C_ED,    /* ED: next 80..9F */
  C_F0,    /* F0: next 90..BF */
  C_L4,    /* F1..F3 lead of 4 */
  C_F4,    /* F4: next 80..8F */
  C_BAD,   /* C0, C1, F5..FF never appear */
  C_NUM
};

/* States; ACCEPT is 0 so a zeroed kwp_utf8_t starts between code points. */
enum { S_ACC, S_REJ, S_N1, S_N2, S_N3, S_E0, S_ED, S_F0, S_F4, S_NUM };

#define X2(c) c, c
#define X4(c) X2(c), X2(c)
#define X8(c) X4(c), X4(c)
#define X16(c) X8(c), X8(c)
static const uint8_t class_table[256] = {
    X16(C_ASCII), X16(C_ASCII), X16(C_ASCII), X16(C_ASCII), /* 00..3F */
    X16(C_ASCII), X16(C_ASCII), X16(C_ASCII), X16(C_ASCII), /* 40..7F */
    X16(C_C80),   X16(C_C90),   X16(C_CA0),   X16(C_CA0),   /* 80..BF */
    X2(C_BAD),    X2(C_L2),     X4(C_L2),     X8(C_L2),     /* C0..CF */
    X16(C_L2),                                              /* D0..DF */
    C_E0,         X8(C_L3),     X4(C_L3),     C_ED,
    X2(C_L3), /* E0..EF */
    C_F0,         X2(C_L4),     C_L4,         C_F4,
    X8(C_BAD),    X2(C_BAD),    C_BAD, /* F0..FF */
};
#undef X16
#undef X8
#undef X4
#undef X2

#define R S_REJ
static const uint8_t next_state[S_NUM][C_NUM] = {
    /*        ASC  80    90    A0    L2    E0    L3    ED    F0    L4    F4 BAD
     */
    [S_ACC] = {S_ACC, R, R, R, S_N1, S_E0, S_N2, S_ED, S_F0, S_N3, S_F4, R},
    [S_REJ] = {R, R, R, R, R, R, R, R, R, R, R, R},
    [S_N1] = {R, S_ACC, S_ACC, S_ACC, R, R, R, R, R, R, R, R},
    [S_N2] = {R, S_N1, S_N1, S_N1, R, R, R, R, R, R, R, R},
    [S_N3] = {R, S_N2, S_N2, S_N2, R, R, R, R, R, R, R, R},
    [S_E0] = {R, R, R, S_N1, R, R, R, R, R, R, R, R},
    [S_ED] = {R, S_N1, S_N1, R, R, R, R, R, R, R, R, R},
    [S_F0] = {R, R, S_N2, S_N2, R, R, R, R, R, R, R, R},
    [S_F4] = {R, S_N2, R, R, R, R, R, R, R, R, R, R},
};
#undef R

/* Payload bits of a lead byte, by class. */
static const uint8_t lead_mask[C_NUM] = {
    [C_ASCII] = 0x7F, [C_L2] = 0x1F, [C_E0] = 0x0F, [C_L3] = 0x0F,
    [C_ED] = 0x0F,    [C_F0] = 0x07, [C_L4] = 0x07, [C_F4] = 0x07};

/* Index of the first byte >= 0x80 in p[0..n), or n. */
static size_t ascii_prefix(const uint8_t *p, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    if (w & KWP_UTF8_HIGH_BITS)
      break;
  }
  while (i < n && p[i] < 0x80)
    i++;
  return i;
}

int kwp_utf8_feed(kwp_utf8_t *u, const uint8_t *p, size_t n) {
  uint32_t st = u->state, cp = u->codepoint;
  size_t i = 0;
  if (st == S_REJ)
    return KWP_EUTF8;
  while (i < n) {
    if (st == S_ACC) {
      i += ascii_prefix(p + i, n - i);
      if (i == n)
        break;
    }
    uint8_t cls = class_table[p[i]];
    cp = st == S_ACC ? (uint32_t)(p[i] & lead_mask[cls])
                     : (cp << 6) | (p[i] & 0x3Fu);
    st = next_state[st][cls];
    i++;
    if (st == S_REJ) {
      u->state = st;
      u->codepoint = 0;
      return KWP_EUTF8;
    }
  }
  u->state = st;
  u->codepoint = cp;
  return 0;
}

int kwp_utf8_complete(const kwp_utf8_t *u) {
  return u->state == S_ACC;
}

int kwp_utf8_valid(const uint8_t *p, size_t n) {
  kwp_utf8_t u = {0, 0};
  return kwp_utf8_feed(&u, p, n) == 0 && kwp_utf8_complete(&u);
}
