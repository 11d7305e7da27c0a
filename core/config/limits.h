/*
 * Per-client limits of `consumer.limits` and `producer.limits`: what one
 * group-id or producer clientId may have, from its `client-specific-limits`
 * entry or the defaults. Pure look-ups in the read-only configuration; any
 * thread.
 */
#ifndef KWP_CONFIG_LIMITS_H
#define KWP_CONFIG_LIMITS_H

#include "core/config/config.h"

#include <stdint.h>

/**
 * Sockets allowed per consumer group: its max-connections, else
 * `default-max-connections-per-client`; 0 or more than the topic's
 * @p partitions means @p partitions (as the reference).
 */
int64_t kwp_limits_consumer_sockets(const kwp_config_t *cfg, const char *group,
                                    int partitions);

/** Sockets allowed per producer clientId (0 = unlimited). */
int64_t kwp_limits_producer_sockets(const kwp_config_t *cfg,
                                    const char *client_id);

/** Messages per second of a producer clientId (0 = unlimited). */
int64_t kwp_limits_producer_rate(const kwp_config_t *cfg,
                                 const char *client_id);

/** Messages per second of a consumer group on this node (0 = unlimited). */
int64_t kwp_limits_consumer_rate(const kwp_config_t *cfg, const char *group);

/** Records per frame of a consumer group's sockets (0 or 1: no batches). */
int64_t kwp_limits_consumer_batch(const kwp_config_t *cfg, const char *group);

#endif
