/*
 * A client connection, HTTP first and WebSocket after the upgrade. Owned by
 * one worker loop; every function here runs on that worker's thread.
 * Endpoint modules (echo today, produce/consume next) plug in through a
 * kwp_ws_handler_t and talk to the socket only through this header.
 */
#ifndef KWP_CONN_H
#define KWP_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct kwp_conn kwp_conn_t;

/* Why reading is paused; reading resumes when no reason is left. */
enum kwp_conn_pause {
  KWP_PAUSE_SENDQ = 1,   /* unsent bytes over server.max-buffered-send-bytes */
  KWP_PAUSE_HANDLER = 2, /* the endpoint asked (e.g. too much in flight) */
  KWP_PAUSE_ASYNC = 4,   /* an HTTP response is being prepared */
  KWP_PAUSE_RATE = 8,    /* the client is over its messages-per-second */
  KWP_PAUSE_TXN = 16,    /* a transaction is being committed */
  KWP_PAUSE_SHUTDOWN = 32, /* SIGTERM: in-flight work ends, nothing new */
};

typedef struct kwp_ws_handler {
  const char *name;
  /**
   * The 101 has been queued. Return 0 and set @p *state, or a negative
   * KWP_E* to close the socket with its close code.
   */
  int (*open)(kwp_conn_t *conn, void **state);
  /**
   * One whole message (text or binary). @p data is only valid during the
   * call. Return 0, or a negative KWP_E* to close with its close code.
   */
  int (*message)(kwp_conn_t *conn, void *state, int opcode, const uint8_t *data,
                 size_t len);
  /** The send queue drained below half its limit (may be NULL). */
  void (*writable)(kwp_conn_t *conn, void *state);
  /**
   * The proxy is about to send its close frame, whoever started the close
   * (may be NULL; called at most once). A client that sees the close may
   * connect again at once: what must be over by then ends here, not in
   * close(), which waits for the client's FIN.
   */
  void (*closing)(kwp_conn_t *conn, void *state);
  /**
   * SIGTERM (may be NULL: the socket closes with 1001 at once). Return 1 to
   * keep the socket open, no longer read, while work already accepted ends
   * (the handler then closes it with KWP_ESHUTDOWN), 0 to close at once.
   * Called again with @p final = 1 when the grace period is over, to
   * answer what is still pending before the 1001.
   */
  int (*shutdown)(kwp_conn_t *conn, void *state, int final);
  /** The socket is gone; free @p state (it may outlive this call if the
   * handler holds a reference, see kwp_conn_ref). */
  void (*close)(kwp_conn_t *conn, void *state);
} kwp_ws_handler_t;

/**
 * Send one WebSocket message (opcode KWP_WS_TEXT/BINARY) or control frame.
 * Copies only what the socket cannot take at once.
 * @returns 0; KWP_EBACKPRESSURE when queued but over the limit (reading is
 * paused until it drains); UV_ECANCELED when the socket is closing.
 */
int kwp_conn_ws_send(kwp_conn_t *conn, int opcode, const void *data,
                     size_t len);

/**
 * Send messages the caller framed itself (server frames: the
 * kwp_ws_header_encode() header, then the payload, back to back) in one
 * write: for many small messages, one buffer costs less than an iovec
 * each. Same returns as kwp_conn_ws_send().
 */
int kwp_conn_ws_send_framed(kwp_conn_t *conn, const void *frames, size_t len);

/**
 * Close the WebSocket with the close code of @p err (0: 1000) and @p reason,
 * then the TCP connection. Safe to call from any callback, more than once.
 */
void kwp_conn_ws_close(kwp_conn_t *conn, int err, const char *reason);

/** Pause or resume reading for @p reason (a kwp_conn_pause bit). */
void kwp_conn_pause(kwp_conn_t *conn, int reason);
void kwp_conn_resume(kwp_conn_t *conn, int reason);

/** Bytes queued to the socket and not yet written. */
size_t kwp_conn_send_queued(const kwp_conn_t *conn);

/**
 * Bytes handed to the socket since it opened (written or queued). A byte at
 * position p has reached the kernel once kwp_conn_tx_written() >= p.
 */
uint64_t kwp_conn_tx_total(const kwp_conn_t *conn);
uint64_t kwp_conn_tx_written(const kwp_conn_t *conn);

/**
 * Keep @p conn's memory alive across an asynchronous operation; the count is
 * a plain int because only the owning worker touches it.
 */
void kwp_conn_ref(kwp_conn_t *conn);
void kwp_conn_unref(kwp_conn_t *conn);
/** 1 once the connection is closing (its callbacks should do nothing). */
int kwp_conn_closing(const kwp_conn_t *conn);

/** The worker @p conn belongs to (for its endpoint's services). */
struct kwp_worker *kwp_conn_worker(kwp_conn_t *conn);

/**
 * Answer the WebSocket upgrade the router started (it paused reading and
 * holds a reference, both ended here): 101 and the socket to @p h with
 * @p state, or (@p h NULL) the HTTP status of @p err with a JSON
 * {"message": @p message} body. When the client has gone meanwhile, @p h's
 * close() frees @p state.
 */
void kwp_conn_upgrade_answer(kwp_conn_t *conn, const kwp_ws_handler_t *h,
                             void *state, int err, const char *message);

/** Connection id and peer address, for log lines. */
uint64_t kwp_conn_id(const kwp_conn_t *conn);
const char *kwp_conn_peer(const kwp_conn_t *conn);
/** The request's Authorization header (NULL: none); @p repeated set when
 * it had several. Valid until the request is answered. */
const char *kwp_conn_authorization(const kwp_conn_t *conn, int *repeated);

#endif
