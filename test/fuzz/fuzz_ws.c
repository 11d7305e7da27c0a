/*
 * libFuzzer target for the WebSocket frame reader (codec/ws/ws.h). Input: byte
 * 0 picks the chunk size, byte 1 the message limit, the rest is client input.
 * The input is parsed whole and in chunks (moved to a fresh buffer after each
 * frame, as the connection may); both runs must give identical events, and
 * every event must satisfy the codec's contract.
 */
#include "codec/ws/ws.h"
#include "core/base/error.h"
#include "test/ref_utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond))                                                               \
      abort();                                                                 \
  } while (0)

typedef struct log {
  uint8_t *p;
  size_t len, cap;
} log_t;

static void log_put(log_t *lg, const void *p, size_t n) {
  if (lg->len + n > lg->cap) {
    size_t cap = lg->cap ? lg->cap * 2 : 4096;
    while (cap < lg->len + n)
      cap *= 2;
    lg->p = realloc(lg->p, cap);
    CHECK(lg->p);
    lg->cap = cap;
  }
  if (n)
    memcpy(lg->p + lg->len, p, n);
  lg->len += n;
}

static void check_event(const kwp_ws_event_t *ev, size_t max) {
  switch (ev->type) {
  case KWP_WS_EV_NONE:
    break;
  case KWP_WS_EV_MESSAGE:
    CHECK(ev->opcode == KWP_WS_TEXT || ev->opcode == KWP_WS_BINARY);
    CHECK(ev->len <= max);
    CHECK(ev->opcode != KWP_WS_TEXT || ref_utf8(ev->data, ev->len));
    break;
  case KWP_WS_EV_PING:
  case KWP_WS_EV_PONG:
    CHECK(ev->len <= 125);
    break;
  case KWP_WS_EV_CLOSE:
    CHECK(ev->close_code == 1005 ? ev->len == 0
                                 : kwp_ws_close_code_valid(ev->close_code));
    CHECK(ev->len <= 123 && ref_utf8(ev->data, ev->len));
    break;
  default:
    CHECK(0);
  }
}

static void log_event(log_t *lg, int rc, const kwp_ws_event_t *ev) {
  int hdr[4] = {rc, ev->type, ev->opcode, (int)ev->close_code};
  log_put(lg, hdr, sizeof(hdr));
  log_put(lg, &ev->len, sizeof(ev->len));
  if (ev->len)
    log_put(lg, ev->data, ev->len); /* reads every byte: ASan checks bounds */
}

/* Parse buf[0..*have), logging each frame; moves the leftover to a fresh
 * buffer after each frame. Returns the (possibly new) buffer. */
static uint8_t *drain(kwp_ws_reader_t *r, uint8_t *buf, size_t *have,
                      size_t cap, size_t max, log_t *lg, int *err) {
  kwp_ws_event_t ev;
  while (!*err) {
    int rc = kwp_ws_reader_parse(r, buf, *have, &ev);
    if (rc < 0) {
      CHECK(rc == KWP_EPROTO || rc == KWP_EUTF8 || rc == KWP_ETOOBIG);
      CHECK(kwp_ws_reader_parse(r, buf, *have, &ev) == rc); /* sticky */
      *err = rc;
      log_put(lg, &rc, sizeof(rc));
    }
    if (rc <= 0)
      break;
    CHECK((size_t)rc <= *have);
    CHECK(kwp_ws_reader_buffered(r) <= max);
    check_event(&ev, max);
    log_event(lg, rc, &ev);
    uint8_t *nb = malloc(cap);
    CHECK(nb);
    memcpy(nb, buf + rc, *have - (size_t)rc);
    free(buf);
    buf = nb;
    *have -= (size_t)rc;
  }
  return buf;
}

static void run(const uint8_t *in, size_t n, size_t chunk, size_t max,
                log_t *lg) {
  kwp_ws_reader_t *r = kwp_ws_reader_new(max);
  size_t cap = n + 1, have = 0, off = 0;
  uint8_t *buf = malloc(cap);
  int err = 0;
  CHECK(r && buf);
  while (off < n && !err) {
    size_t k = chunk < n - off ? chunk : n - off;
    memcpy(buf + have, in + off, k);
    have += k;
    off += k;
    buf = drain(r, buf, &have, cap, max, lg, &err);
  }
  free(buf);
  kwp_ws_reader_free(r);
}

/* The encoders on the same bytes: bounded output, no split sequences. */
static void check_encoders(const uint8_t *data, size_t size) {
  uint8_t out[125], hdr[10];
  char accept[29];
  char *reason = malloc(size + 1);
  CHECK(reason);
  memcpy(reason, data, size);
  reason[size] = '\0';
  size_t n = kwp_ws_close_payload(out, 1000, reason);
  CHECK(n >= 2 && n <= 125);
  CHECK(!ref_utf8((const uint8_t *)reason, strlen(reason)) ||
        ref_utf8(out + 2, n - 2));
  if (kwp_ws_accept_key(reason, size, accept) == 0)
    CHECK(strlen(accept) == 28);
  free(reason);
  uint64_t len = 0;
  memcpy(&len, data, size < 8 ? size : 8);
  n = kwp_ws_header_encode(hdr, KWP_WS_BINARY, 1, len);
  CHECK(n == (len <= 125 ? 2u : len <= 0xFFFF ? 4u : 10u));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2)
    return 0;
  size_t chunk = (size_t)data[0] % 64 + 1;
  size_t max = (size_t)data[1] * 256 + 125; /* 125 .. 65405 */
  log_t whole = {0}, parts = {0};
  run(data + 2, size - 2, size, max, &whole);
  run(data + 2, size - 2, chunk, max, &parts);
  CHECK(whole.len == parts.len);
  CHECK(whole.len == 0 || memcmp(whole.p, parts.p, whole.len) == 0);
  free(whole.p);
  free(parts.p);
  check_encoders(data + 2, size - 2);
  return 0;
}
