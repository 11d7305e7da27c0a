/*
 * The session handler: cluster-wide session state replicated through the
 * compacted, single-partition topic `session-handler.topic-name`. One per
 * process, running its own thread with its own loop and Kafka clients.
 * Workers ask it to admit a socket into a consumer group's or a producer's
 * session; the verdict comes back on the worker's thread once this node has
 * read its own claim back from the topic, so every node decides the same way
 * (see session/DESIGN.md).
 */
#ifndef KWP_SESSION_H
#define KWP_SESSION_H

#include "core/config/config.h"
#include "core/kafka/kafka.h"
#include "session/state.h"

#include <stddef.h>
#include <stdint.h>

struct kwp_worker;
typedef struct kwp_session kwp_session_t;
typedef struct kwp_session_claim kwp_session_claim_t;

/**
 * Create or verify the state topic (retrying within the topic-init bounds),
 * then start the handler's thread, which replays the topic.
 * @locality main thread, before the workers start
 * @returns the handler, or NULL with a message in @p errbuf.
 */
kwp_session_t *kwp_session_start(const kwp_config_t *cfg, kwp_kafka_t *kafka,
                                 char *errbuf, size_t errlen);

/**
 * 1 once the topic is replayed, this node's heartbeat has gone through Kafka
 * recently, and no other node uses its server-id. @locality any thread
 */
int kwp_session_ready(const kwp_session_t *s);

/** Why not ready (static text), or "ready". @locality any thread */
const char *kwp_session_status(const kwp_session_t *s);

/** Sessions known and this node's log time, for /ready. */
void kwp_session_stats(kwp_session_t *s, size_t *sessions, int64_t *log_time);

/** 1 when the handler hit a fatal condition (duplicate server-id). */
int kwp_session_fatal(const kwp_session_t *s);

/**
 * Called on the asking worker's thread: @p err 0 (admitted: keep @p claim
 * and release it when the socket ends) or a KWP_E* with the HTTP message
 * (the claim is then gone).
 */
typedef void (*kwp_session_cb)(void *arg, int err, const char *message,
                               kwp_session_claim_t *claim);

/**
 * Ask to admit @p instance into @p session with at most @p limit sockets
 * (0 = unlimited). @p cb runs exactly once, on @p wk's thread, within
 * session-handler.admission-timeout.
 * @locality the thread of @p wk
 * @returns 0, or a KWP_E* (then @p cb is not called).
 */
int kwp_session_admit(kwp_session_t *s, struct kwp_worker *wk, int kind,
                      const char *session, const char *instance, int64_t limit,
                      kwp_session_cb cb, void *arg);

/**
 * The message of a kwp_session_admit() failure (e.g. "Session state is not
 * ready: restoring session state") into @p msg. @locality any thread
 */
void kwp_session_refusal(const kwp_session_t *s, int err, char *msg,
                         size_t len);

/**
 * Sockets allowed per consumer group: its `client-specific-limits`
 * max-connections, else `default-max-connections-per-client`; 0 or more
 * than the topic's @p partitions means @p partitions (as the reference).
 */
int64_t kwp_session_consumer_limit(const kwp_config_t *cfg, const char *group,
                                   int partitions);

/** Sockets allowed per producer clientId (0 = unlimited). */
int64_t kwp_session_producer_limit(const kwp_config_t *cfg,
                                   const char *client_id);

/** The socket of an admitted claim ended (NULL is fine). @locality any */
void kwp_session_release(kwp_session_t *s, kwp_session_claim_t *claim);

/**
 * Graceful stop: this node's heartbeat is removed (its remaining claims stop
 * counting at once), what is queued is flushed (bounded), the thread ends.
 * @locality main thread, after the workers were joined
 */
void kwp_session_stop(kwp_session_t *s);

#endif
