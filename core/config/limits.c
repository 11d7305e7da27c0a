/* Per-client limit look-ups (see limits.h). Pure, any thread. */
#include "core/config/limits.h"

int64_t kwp_limits_consumer_sockets(const kwp_config_t *cfg, const char *group,
                                    int partitions) {
  const kwp_client_limit_t *e = kwp_limits_find(&cfg->consumer.limits, group);
  int64_t n = e && e->max_connections >= 0
                  ? e->max_connections
                  : cfg->consumer.limits.default_max_connections_per_client;
  return n <= 0 || n > partitions ? partitions : n;
}

int64_t kwp_limits_producer_sockets(const kwp_config_t *cfg,
                                    const char *client_id) {
  const kwp_client_limit_t *e =
      kwp_limits_find(&cfg->producer.limits, client_id);
  int64_t n = e && e->max_connections >= 0
                  ? e->max_connections
                  : cfg->producer.limits.default_max_connections_per_client;
  return n < 0 ? 0 : n;
}

int64_t kwp_limits_producer_rate(const kwp_config_t *cfg,
                                 const char *client_id) {
  const kwp_client_limit_t *e =
      kwp_limits_find(&cfg->producer.limits, client_id);
  return e && e->messages_per_second >= 0
             ? e->messages_per_second
             : cfg->producer.limits.default_messages_per_second;
}

int64_t kwp_limits_consumer_rate(const kwp_config_t *cfg, const char *group) {
  const kwp_client_limit_t *e = kwp_limits_find(&cfg->consumer.limits, group);
  return e && e->messages_per_second >= 0
             ? e->messages_per_second
             : cfg->consumer.limits.default_messages_per_second;
}

int64_t kwp_limits_consumer_batch(const kwp_config_t *cfg, const char *group) {
  const kwp_client_limit_t *e = kwp_limits_find(&cfg->consumer.limits, group);
  return e && e->batch_size >= 0 ? e->batch_size
                                 : cfg->consumer.limits.default_batch_size;
}
