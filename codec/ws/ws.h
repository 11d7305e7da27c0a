/*
 * RFC 6455 WebSocket codec: an incremental, server-side frame reader (unmask,
 * reassemble, validate UTF-8 as bytes arrive), server frame headers, close
 * payloads, the handshake's accept key, and a standalone UTF-8 validator.
 * Pure: no I/O, no logging; only the reader allocates (its reassembly buffer).
 */
#ifndef KWP_CODEC_WS_H
#define KWP_CODEC_WS_H

#include "core/base/sbuf.h"

#include <stddef.h>
#include <stdint.h>

enum kwp_ws_opcode {
  KWP_WS_CONT = 0,
  KWP_WS_TEXT = 1,
  KWP_WS_BINARY = 2,
  KWP_WS_CLOSE = 8,
  KWP_WS_PING = 9,
  KWP_WS_PONG = 10
};

enum kwp_ws_event_type {
  KWP_WS_EV_NONE,
  KWP_WS_EV_MESSAGE,
  KWP_WS_EV_PING,
  KWP_WS_EV_PONG,
  KWP_WS_EV_CLOSE
};

typedef struct kwp_ws_event {
  int type;            /* enum kwp_ws_event_type */
  int opcode;          /* MESSAGE: KWP_WS_TEXT or KWP_WS_BINARY */
  const uint8_t *data; /* unmasked payload; CLOSE: the reason after the code */
  size_t len;
  unsigned close_code; /* CLOSE: the code, or 1005 when the payload was empty */
} kwp_ws_event_t;

typedef struct kwp_ws_reader kwp_ws_reader_t;

/**
 * New frame reader for one connection; the caller owns it (free with
 * kwp_ws_reader_free). @p max_message bounds a (reassembled) message's payload.
 * @locality any thread; a reader is used by one thread at a time.
 * @returns the reader, or NULL when out of memory.
 */
kwp_ws_reader_t *kwp_ws_reader_new(size_t max_message);

/**
 * Free a reader and its reassembly buffer. NULL is a no-op.
 * @locality the thread using @p r
 */
void kwp_ws_reader_free(kwp_ws_reader_t *r);

/**
 * Parse one client frame (server side: client frames must be masked).
 * @p buf holds the unconsumed input from the start of the current frame; the
 * caller keeps those bytes at the front of its buffer between calls (it may
 * move them). Payload bytes are unmasked IN PLACE as they arrive and text is
 * UTF-8-validated incrementally (across fragments too), so a bad byte fails at
 * once, before its frame is complete. ev->data points into @p buf (whole
 * message or control frame) or into the reader's reassembly buffer (fragmented
 * message) and is valid until the next call.
 * @locality the thread using @p r; pure apart from the reassembly buffer.
 * @returns bytes consumed (> 0, one whole frame; ev->type may be NONE, e.g. for
 * a non-final fragment), 0 when more bytes are needed, or a negative error
 * that is sticky and fails the connection: KWP_EPROTO (1002), KWP_EUTF8
 * (1007), KWP_ETOOBIG (1009, from the header, before the payload arrives),
 * KWP_ENOMEM.
 */
int kwp_ws_reader_parse(kwp_ws_reader_t *r, uint8_t *buf, size_t len,
                        kwp_ws_event_t *ev);

/**
 * Bytes allocated for the reassembly buffer (0 when no fragmented message is
 * open or just delivered), for per-connection memory accounting.
 * @locality the thread using @p r
 */
size_t kwp_ws_reader_buffered(const kwp_ws_reader_t *r);

/**
 * Encode a server frame header (never masked) into @p out (10 bytes).
 * @locality any thread; pure.
 * @returns the header length: 2, 4 or 10.
 */
size_t kwp_ws_header_encode(uint8_t out[10], int opcode, int fin,
                            uint64_t payload_len);

/**
 * Start a server frame at the end of @p b, whose payload the caller then
 * appends: room is kept for the usual 4-byte header (payloads of 126 B to
 * 64 KiB), so most frames are written once. @returns the frame's offset
 * (for kwp_ws_frame_close()); on out of memory @p b->oom is set.
 */
static inline size_t kwp_ws_frame_open(kwp_sbuf_t *b) {
  size_t at = b->len;
  if (kwp_sbuf_reserve(b, 4))
    b->len += 4;
  return at;
}

/**
 * End the frame opened at @p at: its header (@p opcode, final) goes in
 * front of the payload, which moves when the header is not 4 bytes.
 * @returns 0, or KWP_ENOMEM (@p b->oom set).
 */
int kwp_ws_frame_close(kwp_sbuf_t *b, size_t at, int opcode);

/**
 * Build a close payload: 2-byte @p code, then the UTF-8 @p reason (NULL: none)
 * truncated to 123 bytes without splitting a sequence.
 * @locality any thread; pure.
 * @returns the payload length (2..125).
 */
size_t kwp_ws_close_payload(uint8_t out[125], unsigned code,
                            const char *reason);

/**
 * Whether a client may send close code @p code on the wire (1000-1003,
 * 1007-1014, 3000-4999).
 * @locality any thread; pure.
 * @returns 1 if valid, else 0.
 */
int kwp_ws_close_code_valid(unsigned code);

/**
 * Sec-WebSocket-Accept for a Sec-WebSocket-Key (spaces and tabs around it are
 * trimmed): base64(SHA-1(key + RFC 6455 GUID)), NUL-terminated into @p out.
 * @locality any thread; pure.
 * @returns 0, KWP_EBADREQ unless the key is base64 of exactly 16 bytes, or
 * KWP_EINTERNAL if libcrypto fails.
 */
int kwp_ws_accept_key(const char *key, size_t key_len, char out[29]);

/* Bit 7 of each byte of a 64-bit word: any set means non-ASCII bytes, the
 * only ones UTF-8 validation has to look at. */
#define KWP_UTF8_HIGH_BITS 0x8080808080808080ULL

/* Incremental UTF-8 validator; zero-initialise to start. state is the DFA
 * state, codepoint the bits of the sequence in progress. */
typedef struct kwp_utf8 {
  uint32_t state;
  uint32_t codepoint;
} kwp_utf8_t;

/**
 * Feed @p n bytes to the validator @p u. Rejects overlongs, surrogates,
 * > U+10FFFF, stray continuation bytes and bad sequences; once failed it stays
 * failed.
 * @locality any thread; pure.
 * @returns 0 when valid so far, KWP_EUTF8 at the first bad byte.
 */
int kwp_utf8_feed(kwp_utf8_t *u, const uint8_t *p, size_t n);

/**
 * Whether @p u stands between code points (not mid-sequence, not failed).
 * @locality any thread; pure.
 * @returns 1 or 0.
 */
int kwp_utf8_complete(const kwp_utf8_t *u);

/**
 * Whether @p n bytes at @p p are whole, valid UTF-8.
 * @locality any thread; pure.
 * @returns 1 or 0.
 */
int kwp_utf8_valid(const uint8_t *p, size_t n);

#endif
