/*
 * One error-code space for the whole proxy. Functions return 0 or a negative
 * code: libuv's UV_E* codes (negated errno values, > -4096) pass through
 * unchanged, our own live below KWP_ERR_BASE so the two never collide.
 */
#ifndef KWP_ERROR_H
#define KWP_ERROR_H

#define KWP_ERR_BASE (-10000)

/* XX(name, text) */
#define KWP_ERRNO_MAP(XX)                                                      \
  XX(PARTIAL, "more input needed")                                             \
  XX(PROTO, "WebSocket protocol violation")                                    \
  XX(UTF8, "invalid UTF-8 in a text message")                                  \
  XX(TOOBIG, "message too big")                                                \
  XX(NOMEM, "out of memory")                                                   \
  XX(CONFIG, "invalid configuration")                                          \
  XX(BACKPRESSURE, "send queue over its limit")                                \
  XX(BADREQ, "bad request")                                                    \
  XX(NOTFOUND, "resource not found")                                           \
  XX(METHOD, "method not allowed")                                             \
  XX(UPGRADE, "upgrade required")                                              \
  XX(HDRTOOBIG, "request header fields too large")                             \
  XX(BODYTOOBIG, "request body too large")                                     \
  XX(REQTIMEOUT, "request timed out")                                          \
  XX(OVERLOAD, "too many connections")                                         \
  XX(KAFKA, "Kafka error")                                                     \
  XX(UNAVAILABLE, "service unavailable")                                       \
  XX(NOTIMPL, "not implemented")                                               \
  XX(POLICY, "policy violation")                                               \
  XX(IDLE, "idle timeout")                                                     \
  XX(SHUTDOWN, "server shutting down")                                         \
  XX(TXN, "Kafka transaction aborted")                                         \
  XX(INTERNAL, "internal error")                                               \
  XX(UNAUTHORIZED, "authentication required")                                  \
  XX(FORBIDDEN, "forbidden")                                                   \
  XX(JSON, "message is not valid JSON")                                        \
  XX(BADMSG, "invalid message")                                                \
  XX(BADKEY, "invalid key")                                                    \
  XX(BADVALUE, "invalid value")                                                \
  XX(BADHEADERS, "invalid headers")                                            \
  XX(FRAMETYPE, "frame type not accepted on this socket")                      \
  XX(BADCOMMIT, "invalid commit")                                              \
  XX(UNKNOWNID, "no uncommitted record with this id")                          \
  XX(DELIVERYTIMEOUT, "Kafka delivery timed out")                              \
  XX(MSGSIZE, "record too large for Kafka")                                    \
  XX(NOTOPIC, "topic or partition not found")                                  \
  XX(NOTDELIVERED, "record not delivered")                                     \
  XX(BUSY, "producer queue full")

enum kwp_err_index_ {
#define KWP_ERR_IDX_(name, text) KWP_ERRIDX_##name,
  KWP_ERRNO_MAP(KWP_ERR_IDX_)
#undef KWP_ERR_IDX_
};

enum kwp_err {
#define KWP_ERR_DEF_(name, text) KWP_E##name = KWP_ERR_BASE - KWP_ERRIDX_##name,
  KWP_ERRNO_MAP(KWP_ERR_DEF_)
#undef KWP_ERR_DEF_
};

/**
 * Human-readable text for any code (ours or libuv's).
 * @locality any thread; returns a static string.
 */
const char *kwp_strerror(int err);

/**
 * The HTTP status an error maps to before the upgrade (400, 401, 403, 404,
 * 405, 408, 413, 426, 431, 500, 501, 503). The one place that decides it.
 * @locality any thread
 */
int kwp_err_http_status(int err);

/**
 * The WebSocket close code an error maps to after the upgrade (RFC 6455
 * section 7.4; documented in docs/protocol.md). The one place that decides it.
 * @locality any thread
 */
unsigned kwp_err_close_code(int err);

/**
 * The stable code of an error in a result or error frame after the upgrade
 * (the "error" field of /socket/in results and /socket/out error frames:
 * "invalid_json", "delivery_timeout", ...; documented in docs/api.md). The
 * one place that decides it, for every payload format.
 * @locality any thread; returns a static string.
 */
const char *kwp_err_result_code(int err);

#endif
