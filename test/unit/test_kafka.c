/* Topic lookups against the dev-mode mock cluster: a burst of lookups on a
 * cold cache shares its metadata requests. */
#include "core/error.h"
#include "core/kafka.h"
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
