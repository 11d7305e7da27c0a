/*
 * The process-wide Kafka context: librdkafka configuration built from
 * `kafka.ws.proxy.kafka-client.*`, an admin handle for metadata, the dev-mode
 * in-process cluster, and librdkafka's logs routed into our log. Created on
 * the main thread before workers start; its functions are thread-safe.
 */
#ifndef KWP_KAFKA_H
#define KWP_KAFKA_H

#include "core/config/config.h"

#include <librdkafka/rdkafka.h>
#include <uv.h>

typedef struct kwp_kafka kwp_kafka_t;

/**
 * Create the context. In dev mode (cfg->dev_mode) this first starts a
 * 3-broker in-process mock cluster and uses it as the bootstrap.
 * @locality main thread
 * @returns the context, or NULL with @p errbuf filled.
 */
kwp_kafka_t *kwp_kafka_new(const kwp_config_t *cfg, char *errbuf,
                           size_t errlen);

/** The bootstrap servers in use (the mock cluster's in dev mode). */
const char *kwp_kafka_bootstrap(const kwp_kafka_t *kafka);

/* What a configuration is for: producer-only properties (which the
 * reference's default consumer properties carry, e.g. `retries`) are left
 * out of consumer configurations instead of drawing librdkafka warnings. */
enum kwp_kafka_role { KWP_KAFKA_PRODUCER, KWP_KAFKA_CONSUMER, KWP_KAFKA_ADMIN };

/**
 * A new librdkafka configuration: bootstrap, logging, then @p props (Java
 * client property names are mapped or skipped with a warning). The caller
 * owns the result. @locality any thread
 * @returns the conf, or NULL with @p errbuf filled.
 */
rd_kafka_conf_t *kwp_kafka_conf_new(const kwp_kafka_t *kafka,
                                    const kwp_props_t *props, int role,
                                    char *errbuf, size_t errlen);

/**
 * Called on the requesting loop's thread. @p status is 0 with @p json (a
 * malloc'd JSON array of brokers the callee frees) or a negative KWP_E* with
 * @p json holding a malloc'd reason text.
 */
typedef void (*kwp_kafka_info_cb)(void *arg, int status, char *json);

/**
 * Fetch the brokers from live metadata without blocking @p loop: the request
 * runs on libuv's thread pool (bounded by kafka-client.metadata-timeout) and
 * @p cb runs on @p loop. @locality the thread running @p loop
 * @returns 0, or a libuv error (then @p cb is not called).
 */
int kwp_kafka_cluster_info(kwp_kafka_t *kafka, uv_loop_t *loop,
                           kwp_kafka_info_cb cb, void *arg);

/**
 * Called with the topic's partition count (> 0), or KWP_ENOTFOUND when the
 * topic does not exist, or KWP_EKAFKA when Kafka did not answer.
 */
typedef void (*kwp_kafka_topic_cb)(void *arg, int partitions);

/**
 * Look up @p topic in the cached cluster metadata (refreshed on a miss, or
 * when older than 10 s, on libuv's thread pool; never per request when
 * cached). A topic missing or without a leader is looked at four more
 * times, 0.25, 0.5, 1 and 1.25 s apart (loop timers; no pool thread waits):
 * one created a moment ago can take over 0.5 s to show up on a busy broker.
 * In dev mode a missing topic is created at once (4 partitions).
 * @p cb runs on @p loop's thread, possibly before this returns.
 * @locality the thread running @p loop
 * @returns 0, or a libuv error (then @p cb is not called).
 */
int kwp_kafka_topic_lookup(kwp_kafka_t *kafka, uv_loop_t *loop,
                           const char *topic, kwp_kafka_topic_cb cb, void *arg);

/**
 * Topic metadata requests made so far (lookups that came together share
 * one). @locality any thread
 */
uint64_t kwp_kafka_refreshes(kwp_kafka_t *kafka);

/**
 * The one place librdkafka's error codes become ours: 0, or a KWP_E* (e.g.
 * KWP_EDELIVERYTIMEOUT, KWP_EBUSY; KWP_EKAFKA for the rest). Callers keep
 * librdkafka's code for its text (rd_kafka_err2str()). @locality any thread
 */
int kwp_kafka_err(rd_kafka_resp_err_t err);

/** The dev-mode in-process cluster (NULL outside dev mode). */
struct rd_kafka_mock_cluster_s *kwp_kafka_mock_cluster(kwp_kafka_t *kafka);

/** Destroy the context (blocks while librdkafka shuts down). @locality main */
void kwp_kafka_free(kwp_kafka_t *kafka);

#endif
