/*
 * RFC 6455 codec: the incremental server-side frame reader (header checks,
 * in-place unmasking, fail-fast UTF-8, fragment reassembly), server frame
 * headers, close payloads and the handshake's accept key. Pure: no I/O, no
 * logging; only the reader allocates. Any thread, one reader per connection.
 */
#include "codec/ws/ws.h"
#include "core/base/error.h"

#include <limits.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
/* A frame is at most max_message + 14 bytes and parse returns its size as an
 * int, so the bound is capped below INT_MAX. */
#define WS_MAX_MESSAGE_CAP ((size_t)INT_MAX - 64)
#define WS_ASM_MIN 1024

struct kwp_ws_reader {
  size_t max_message;
  int err; /* sticky error once the connection failed; 0 while healthy */

  /* The current frame, valid once its header is complete (hdr_len > 0). */
  size_t hdr_len;
  uint64_t payload_len;
  uint64_t done; /* payload bytes already unmasked and validated */
  uint8_t mask[4];
  uint8_t opcode;
  uint8_t fin;

  /* The message in progress; a fragmented one spans frames. */
  int msg_opcode;  /* opcode of the open fragmented message, 0 if none */
  kwp_utf8_t utf8; /* text validation state, carried across fragments */
  uint8_t *asm_buf;
  size_t asm_len, asm_cap;
  int asm_delivered; /* asm_buf was handed out: drop it on the next call */
};

static int is_control(int opcode) {
  return opcode >= 8;
}

kwp_ws_reader_t *kwp_ws_reader_new(size_t max_message) {
  kwp_ws_reader_t *r = calloc(1, sizeof(*r));
  if (!r)
    return NULL;
  r->max_message =
      max_message > WS_MAX_MESSAGE_CAP ? WS_MAX_MESSAGE_CAP : max_message;
  return r;
}

void kwp_ws_reader_free(kwp_ws_reader_t *r) {
  if (!r)
    return;
  free(r->asm_buf);
  free(r);
}

size_t kwp_ws_reader_buffered(const kwp_ws_reader_t *r) {
  return r->asm_cap;
}

static void asm_release(kwp_ws_reader_t *r) {
  free(r->asm_buf);
  r->asm_buf = NULL;
  r->asm_len = r->asm_cap = 0;
  r->asm_delivered = 0;
}

/* Append a completed fragment; the header check already bounded the total by
 * max_message, so growth (doubling, capped there) cannot run away. */
static int asm_append(kwp_ws_reader_t *r, const uint8_t *p, size_t n) {
  size_t need = r->asm_len + n;
  if (need > r->asm_cap) {
    size_t cap = r->asm_cap ? r->asm_cap * 2 : WS_ASM_MIN;
    if (cap > r->max_message)
      cap = r->max_message;
    if (cap < need)
      cap = need;
    uint8_t *nb = realloc(r->asm_buf, cap);
    if (!nb)
      return KWP_ENOMEM;
    r->asm_buf = nb;
    r->asm_cap = cap;
  }
  if (n)
    memcpy(r->asm_buf + r->asm_len, p, n);
  r->asm_len = need;
  return 0;
}

/* XOR p[0..n) with the mask, p[0] being payload byte number @p off.
 * @returns the unmasked bytes ORed together: bit 7 clear in every byte of
 * it means all ASCII, which needs no UTF-8 check. */
static uint64_t unmask(uint8_t *p, size_t n, const uint8_t mask[4],
                       uint64_t off) {
  uint64_t acc = 0;
  uint8_t m[4];
  uint32_t m32;
  for (int i = 0; i < 4; i++)
    m[i] = mask[(off + (unsigned)i) & 3];
  memcpy(&m32, m, 4);
  uint64_t m64 = ((uint64_t)m32 << 32) | m32; /* m0..m3 m0..m3 in memory */
  size_t i = 0;
#ifdef __SSE2__
  /* 16 bytes a step (a multiple of 4: the mask's phase holds); SSE2 is part
   * of x86-64. Producing 1 KB records, a quarter of the samples in the
   * proxy's own code (not librdkafka's, not the kernel's) were here. */
  if (n >= 16) {
    __m128i m = _mm_set1_epi64x((long long)m64), or16 = _mm_setzero_si128();
    for (; i + 16 <= n; i += 16) {
      __m128i w = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(p + i)), m);
      or16 = _mm_or_si128(or16, w);
      _mm_storeu_si128((__m128i *)(p + i), w);
    }
    uint64_t halves[2];
    _mm_storeu_si128((__m128i *)halves, or16);
    acc = halves[0] | halves[1];
  }
#endif
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    w ^= m64;
    acc |= w;
    memcpy(p + i, &w, 8);
  }
  for (; i < n; i++)
    acc |= p[i] ^= m[i & 3];
  return acc;
}

/* First header byte: reserved bits, opcodes and fragmentation order. */
static int check_first_byte(const kwp_ws_reader_t *r, uint8_t b0) {
  int opcode = b0 & 0x0F;
  if (b0 & 0x70)
    return KWP_EPROTO; /* no extension negotiated */
  switch (opcode) {
  case KWP_WS_CONT:
    return r->msg_opcode ? 0 : KWP_EPROTO;
  case KWP_WS_TEXT:
  case KWP_WS_BINARY:
    return r->msg_opcode ? KWP_EPROTO : 0;
  case KWP_WS_CLOSE:
  case KWP_WS_PING:
  case KWP_WS_PONG:
    return (b0 & 0x80) ? 0 : KWP_EPROTO;
  default:
    return KWP_EPROTO;
  }
}

/* Payload length against the control-frame and message bounds. */
static int check_length(const kwp_ws_reader_t *r, int opcode, uint64_t plen) {
  if (is_control(opcode))
    return opcode == KWP_WS_CLOSE && plen == 1 ? KWP_EPROTO : 0;
  /* asm_len is 0 unless this is a continuation. */
  if (plen > r->max_message - r->asm_len)
    return KWP_ETOOBIG;
  return 0;
}

static uint64_t load_be(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++)
    v = (v << 8) | p[i];
  return v;
}

/* Parse as much of the frame header as has arrived, failing as early as the
 * bytes allow. Returns the header length once complete (and fills r), 0 when
 * more bytes are needed, or a negative error. */
static int header_parse(kwp_ws_reader_t *r, const uint8_t *buf, size_t len) {
  if (len < 1)
    return 0;
  int rc = check_first_byte(r, buf[0]);
  if (rc < 0 || len < 2)
    return rc;
  int opcode = buf[0] & 0x0F;
  uint64_t plen = buf[1] & 0x7F;
  int ext = plen == 126 ? 2 : plen == 127 ? 8 : 0;
  if (!(buf[1] & 0x80))
    return KWP_EPROTO; /* client frames must be masked */
  if (is_control(opcode) && plen > 125)
    return KWP_EPROTO;
  if (len < (size_t)(2 + ext))
    return 0;
  if (ext) {
    plen = load_be(buf + 2, ext);
    if (plen >> 63)
      return KWP_EPROTO;
  }
  rc = check_length(r, opcode, plen);
  if (rc < 0 || len < (size_t)(2 + ext + 4))
    return rc;
  r->hdr_len = (size_t)(2 + ext + 4);
  r->payload_len = plen;
  r->done = 0;
  memcpy(r->mask, buf + 2 + ext, 4);
  r->opcode = (uint8_t)opcode;
  r->fin = (buf[0] & 0x80) != 0;
  return (int)r->hdr_len;
}

static int frame_is_text(const kwp_ws_reader_t *r) {
  return r->opcode == KWP_WS_TEXT ||
         (r->opcode == KWP_WS_CONT && r->msg_opcode == KWP_WS_TEXT);
}

/* Unmask and validate the payload bytes that arrived since the last call. */
static int payload_advance(kwp_ws_reader_t *r, uint8_t *buf, size_t len) {
  uint64_t avail = len > r->hdr_len ? len - r->hdr_len : 0;
  if (avail > r->payload_len)
    avail = r->payload_len;
  if (avail <= r->done)
    return 0;
  uint8_t *p = buf + r->hdr_len + r->done;
  size_t n = (size_t)(avail - r->done);
  uint64_t seen = unmask(p, n, r->mask, r->done);
  r->done = avail;
  /* ASCII between whole code points needs no second pass */
  if (frame_is_text(r) &&
      ((seen & KWP_UTF8_HIGH_BITS) || !kwp_utf8_complete(&r->utf8)) &&
      kwp_utf8_feed(&r->utf8, p, n) < 0)
    return KWP_EUTF8;
  return 0;
}

static int close_parse(const uint8_t *p, size_t n, kwp_ws_event_t *ev) {
  kwp_utf8_t u = {0};
  ev->type = KWP_WS_EV_CLOSE;
  ev->data = p;
  if (n == 0) {
    ev->close_code = 1005;
    return 0;
  }
  if (n < 2)
    return KWP_EPROTO;
  ev->close_code = (unsigned)load_be(p, 2);
  if (!kwp_ws_close_code_valid(ev->close_code))
    return KWP_EPROTO;
  if (kwp_utf8_feed(&u, p + 2, n - 2) < 0 || !kwp_utf8_complete(&u))
    return KWP_EPROTO;
  ev->data = p + 2;
  ev->len = n - 2;
  return 0;
}

/* A data frame is complete: deliver it, or add it to the open message. */
static int data_complete(kwp_ws_reader_t *r, const uint8_t *p, size_t n,
                         kwp_ws_event_t *ev) {
  int text = frame_is_text(r);
  if (r->opcode != KWP_WS_CONT && r->fin) {
    ev->data = p; /* a whole message in one frame: zero copy */
  } else {
    int rc = asm_append(r, p, n);
    if (rc < 0)
      return rc;
    if (r->opcode != KWP_WS_CONT)
      r->msg_opcode = r->opcode;
    if (!r->fin)
      return 0;
    ev->data = r->asm_buf ? r->asm_buf : p;
    n = r->asm_len;
    r->asm_delivered = 1;
  }
  if (text && !kwp_utf8_complete(&r->utf8))
    return KWP_EUTF8; /* the message ends inside a sequence */
  ev->type = KWP_WS_EV_MESSAGE;
  ev->opcode = r->opcode == KWP_WS_CONT ? r->msg_opcode : r->opcode;
  ev->len = n;
  r->msg_opcode = 0;
  return 0;
}

static int frame_complete(kwp_ws_reader_t *r, const uint8_t *p,
                          kwp_ws_event_t *ev) {
  size_t n = (size_t)r->payload_len;
  switch (r->opcode) {
  case KWP_WS_PING:
  case KWP_WS_PONG:
    ev->type = r->opcode == KWP_WS_PING ? KWP_WS_EV_PING : KWP_WS_EV_PONG;
    ev->data = p;
    ev->len = n;
    return 0;
  case KWP_WS_CLOSE:
    return close_parse(p, n, ev);
  default:
    return data_complete(r, p, n, ev);
  }
}

static int fail(kwp_ws_reader_t *r, int err, kwp_ws_event_t *ev) {
  memset(ev, 0, sizeof(*ev));
  r->err = err;
  return err;
}

int kwp_ws_reader_parse(kwp_ws_reader_t *r, uint8_t *buf, size_t len,
                        kwp_ws_event_t *ev) {
  int rc;
  memset(ev, 0, sizeof(*ev));
  if (r->err)
    return r->err;
  if (r->asm_delivered)
    asm_release(r); /* the previous event's data is no longer needed */
  if (!r->hdr_len) {
    rc = header_parse(r, buf, len);
    if (rc <= 0)
      return rc < 0 ? fail(r, rc, ev) : 0;
    if (r->opcode == KWP_WS_TEXT)
      r->utf8 = (kwp_utf8_t){0, 0}; /* a new text message starts */
  }
  rc = payload_advance(r, buf, len);
  if (rc < 0)
    return fail(r, rc, ev);
  if (r->done < r->payload_len)
    return 0;
  rc = frame_complete(r, buf + r->hdr_len, ev);
  if (rc < 0)
    return fail(r, rc, ev);
  size_t consumed = r->hdr_len + (size_t)r->payload_len;
  r->hdr_len = 0;
  r->done = 0;
  return (int)consumed;
}

/* --- server side encoders --- */

size_t kwp_ws_header_encode(uint8_t out[10], int opcode, int fin,
                            uint64_t payload_len) {
  out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0F));
  if (payload_len <= 125) {
    out[1] = (uint8_t)payload_len;
    return 2;
  }
  int n = payload_len <= 0xFFFF ? 2 : 8;
  out[1] = n == 2 ? 126 : 127;
  for (int i = 0; i < n; i++)
    out[2 + i] = (uint8_t)(payload_len >> (8 * (n - 1 - i)));
  return (size_t)(2 + n);
}

size_t kwp_ws_close_payload(uint8_t out[125], unsigned code,
                            const char *reason) {
  size_t n = reason ? strlen(reason) : 0;
  out[0] = (uint8_t)(code >> 8);
  out[1] = (uint8_t)code;
  if (n > 123) {
    n = 123;
    /* Cut before a lead byte, never between a lead and its continuations. */
    while (n > 0 && ((uint8_t)reason[n] & 0xC0) == 0x80)
      n--;
  }
  if (n)
    memcpy(out + 2, reason, n);
  return 2 + n;
}

int kwp_ws_close_code_valid(unsigned code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

static int is_b64(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '+' || c == '/';
}

int kwp_ws_accept_key(const char *key, size_t key_len, char out[29]) {
  char in[24 + sizeof(WS_GUID)];
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (!key)
    return KWP_EBADREQ;
  while (key_len && (*key == ' ' || *key == '\t'))
    key++, key_len--;
  while (key_len && (key[key_len - 1] == ' ' || key[key_len - 1] == '\t'))
    key_len--;
  /* 16 bytes encode as 22 base64 characters and "==". */
  if (key_len != 24 || key[22] != '=' || key[23] != '=')
    return KWP_EBADREQ;
  for (size_t i = 0; i < 22; i++)
    if (!is_b64(key[i]))
      return KWP_EBADREQ;
  memcpy(in, key, 24);
  memcpy(in + 24, WS_GUID, sizeof(WS_GUID) - 1);
  if (!EVP_Digest(in, 24 + sizeof(WS_GUID) - 1, md, &md_len, EVP_sha1(),
                  NULL) ||
      md_len != 20)
    return KWP_EINTERNAL;
  EVP_EncodeBlock((unsigned char *)out, md, 20); /* 28 chars and a NUL */
  return 0;
}

int kwp_ws_frame_close(kwp_sbuf_t *b, size_t at, int opcode) {
  uint8_t hdr[10];
  if (b->oom)
    return KWP_ENOMEM;
  size_t n = b->len - at - 4;
  size_t h = kwp_ws_header_encode(hdr, opcode, 1, n);
  if (h == 10 && !kwp_sbuf_reserve(b, 6)) /* 64 KiB or more */
    return KWP_ENOMEM;
  char *d = b->data + at;
  if (h != 4)
    memmove(d + h, d + 4, n);
  memcpy(d, hdr, h);
  b->len = at + h + n;
  return 0;
}
