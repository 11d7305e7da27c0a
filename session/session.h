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
#include "core/endpoint/admission.h"
#include "core/kafka/kafka.h"
#include "session/state.h"

#include <stddef.h>
#include <stdint.h>

typedef struct kwp_session kwp_session_t;

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
 * The handler as the upgrade pipeline's admission step (see
 * core/endpoint/admission.h): admit() asks the cluster and answers on the
 * asking worker's thread within session-handler.admission-timeout, once
 * this node has read its own claim back from the topic. The interface lives
 * as long as @p s. @locality any thread
 */
const kwp_admission_t *kwp_session_admission(kwp_session_t *s);

/**
 * Graceful stop: this node's heartbeat is removed (its remaining claims stop
 * counting at once), what is queued is flushed (bounded), the thread ends.
 * @locality main thread, after the workers were joined
 */
void kwp_session_stop(kwp_session_t *s);

#endif
