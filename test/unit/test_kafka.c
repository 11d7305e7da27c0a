/* Topic lookups against the dev-mode mock cluster: a burst of lookups on a
 * cold cache shares its metadata requests. */
#include "core/base/error.h"
#include "core/kafka/kafka.h"
#include "test/unit/unit.h"

#include <stdlib.h>

#define BURST 16

typedef struct lookup_test {
  int answered, partitions[BURST + 1];
} lookup_test_t;

typedef struct lookup_slot {
  lookup_test_t *t;
  int i;
} lookup_slot_t;

static void lt_answer(void *arg, int partitions) {
  lookup_slot_t *slot = arg;
  slot->t->partitions[slot->i] = partitions;
  slot->t->answered++;
}

KWP_TEST(kafka_topic_lookups_share_refreshes) {
  char err[512];
  uv_loop_t loop;
  kwp_config_t *cfg = kwp_config_load_string(NULL, "test.conf", 1, err, 512);
  ASSERT(cfg != NULL);
  kwp_kafka_t *kafka = kwp_kafka_new(cfg, err, sizeof(err));
  ASSERT(kafka != NULL);
  ASSERT_EQ(uv_loop_init(&loop), 0);
  lookup_test_t t = {0};
  lookup_slot_t slots[BURST + 1];
  /* All queued before any runs: without sharing, each made its own request
   * (and one more after creating the topic). */
  for (int i = 0; i < BURST; i++) {
    slots[i] = (lookup_slot_t){&t, i};
    ASSERT_EQ(
        kwp_kafka_topic_lookup(kafka, &loop, "burst", lt_answer, &slots[i]), 0);
  }
  ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ASSERT_EQ(t.answered, BURST);
  for (int i = 0; i < BURST; i++)
    ASSERT_EQ(t.partitions[i], 4); /* dev mode created it */
  uint64_t n = kwp_kafka_refreshes(kafka);
  ASSERT(n >= 1 && n <= 2); /* the miss, and once more after creating it */
  /* Cached now: answered at once, no request. */
  slots[BURST] = (lookup_slot_t){&t, BURST};
  ASSERT_EQ(
      kwp_kafka_topic_lookup(kafka, &loop, "burst", lt_answer, &slots[BURST]),
      0);
  ASSERT_EQ(t.answered, BURST + 1);
  ASSERT_EQ(kwp_kafka_refreshes(kafka), n);
  ASSERT_EQ(uv_loop_close(&loop), 0);
  kwp_kafka_free(kafka);
  kwp_config_free(cfg);
}

/* What librdkafka's consumer configuration holds for @p key when
 * consumer.kafka-client-properties sets it to @p value (HOCON text). */
static void consumer_conf_value(kwp_kafka_t *kafka, const char *key,
                                const char *value, char *out, size_t len) {
  char err[512], text[512];
  snprintf(text, sizeof(text),
           "kafka.ws.proxy.consumer.kafka-client-properties {\n"
           "  %s = %s\n}\n",
           key, value);
  kwp_config_t *cfg = kwp_config_load_string(text, "test.conf", 1, err, 512);
  ASSERT(cfg != NULL);
  rd_kafka_conf_t *conf =
      kwp_kafka_conf_new(kafka, &cfg->consumer.kafka_client_properties,
                         KWP_KAFKA_CONSUMER, err, sizeof(err));
  ASSERT(conf != NULL);
  ASSERT_EQ(rd_kafka_conf_get(conf, key, out, &len), RD_KAFKA_CONF_OK);
  rd_kafka_conf_destroy(conf);
  kwp_config_free(cfg);
}

static void strategy_as(kwp_kafka_t *kafka, const char *strategy, char *out,
                        size_t len) {
  char quoted[256];
  snprintf(quoted, sizeof(quoted), "\"%s\"", strategy);
  consumer_conf_value(kafka, "partition.assignment.strategy", quoted, out, len);
}

KWP_TEST(kafka_java_assignor_names) {
  char err[512], got[256];
  kwp_config_t *cfg = kwp_config_load_string(NULL, "test.conf", 1, err, 512);
  ASSERT(cfg != NULL);
  kwp_kafka_t *kafka = kwp_kafka_new(cfg, err, sizeof(err));
  ASSERT(kafka != NULL);
  strategy_as(kafka,
              "org.apache.kafka.clients.consumer.CooperativeStickyAssignor",
              got, sizeof(got));
  ASSERT_STREQ(got, "cooperative-sticky");
  /* Java's 3.x default: eager first, so librdkafka gets the eager one. */
  strategy_as(kafka,
              "org.apache.kafka.clients.consumer.RangeAssignor, "
              "org.apache.kafka.clients.consumer.CooperativeStickyAssignor",
              got, sizeof(got));
  ASSERT_STREQ(got, "range");
  strategy_as(kafka, "RoundRobinAssignor,range", got, sizeof(got));
  ASSERT_STREQ(got, "roundrobin,range");
  strategy_as(kafka, "cooperative-sticky", got, sizeof(got));
  ASSERT_STREQ(got, "cooperative-sticky");
  /* No eager sticky assignor in librdkafka: its default stays. */
  strategy_as(kafka, "org.apache.kafka.clients.consumer.StickyAssignor", got,
              sizeof(got));
  ASSERT_STREQ(got, "range,roundrobin");
  kwp_kafka_free(kafka);
  kwp_config_free(cfg);
}

/* Regression: Java's auto.offset.reset = none was passed on, and librdkafka
 * refused the whole configuration. */
KWP_TEST(kafka_java_offset_reset_none) {
  char err[512], got[64];
  kwp_config_t *cfg = kwp_config_load_string(NULL, "test.conf", 1, err, 512);
  ASSERT(cfg != NULL);
  kwp_kafka_t *kafka = kwp_kafka_new(cfg, err, sizeof(err));
  ASSERT(kafka != NULL);
  consumer_conf_value(kafka, "auto.offset.reset", "none", got, sizeof(got));
  ASSERT_STREQ(got, "error");
  kwp_kafka_free(kafka);
  kwp_config_free(cfg);
}
