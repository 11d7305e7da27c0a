/*
 * Blocking Kafka admin requests on an admin-capable client @p rk, for
 * threads that may block (the session handler's own thread; never a worker
 * loop, which uses kwp_kafka_topic_lookup()). Each is bounded by @p tmo
 * (ms) and gives up early once @p stop is set (checked every 500 ms).
 */
#ifndef KWP_KADMIN_H
#define KWP_KADMIN_H

#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/**
 * @p topic's partition count (0: no such topic) and the cluster's broker
 * count, from metadata. @returns 0, or -1 with @p errbuf filled.
 */
int kwp_kadmin_describe(rd_kafka_t *rk, const char *topic, int64_t tmo,
                        atomic_int *stop, int *partitions, int *brokers,
                        char *errbuf, size_t errlen);

/**
 * Create @p topic with its @p configs (name, value, ..., NULL; may be NULL).
 * @returns 0 (also when it exists already), or -1 with @p errbuf filled.
 */
int kwp_kadmin_create(rd_kafka_t *rk, const char *topic, int partitions,
                      int replication, const char *const *configs, int64_t tmo,
                      atomic_int *stop, char *errbuf, size_t errlen);

/** @p topic's configuration @p key into @p out ("" when it could not be
 * read: no DescribeConfigs permission, a timeout). */
void kwp_kadmin_topic_config(rd_kafka_t *rk, const char *topic, const char *key,
                             int64_t tmo, atomic_int *stop, char *out,
                             size_t len);

#endif
