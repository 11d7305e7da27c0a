/* The Kafka event bridge against librdkafka's mock cluster: delivery reports
 * reach a libuv loop through the queue's fd, with no blocking poll. */
#include "core/base/log.h"
#include "core/kafka/kbridge.h"
#include "test/unit/unit.h"

#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define N_MSGS 2000

typedef struct bridge_test {
  kwp_kbridge_t *kb;
  uv_timer_t deadline;
  int delivered, failed, closed;
} bridge_test_t;

static void bt_closed(void *arg) {
  ((bridge_test_t *)arg)->closed = 1;
}

/* Every message seen: close the bridge, which ends the loop. */
static void bt_done_check(bridge_test_t *bt) {
  if (bt->delivered + bt->failed >= N_MSGS && !bt->closed) {
    uv_close((uv_handle_t *)&bt->deadline, NULL);
    kwp_kbridge_close(bt->kb, bt_closed, bt);
    bt->closed = -1;
  }
}

static void bt_event(rd_kafka_event_t *rkev, void *arg) {
  bridge_test_t *bt = arg;
  if (rd_kafka_event_type(rkev) == RD_KAFKA_EVENT_DR) {
    const rd_kafka_message_t *m;
    while ((m = rd_kafka_event_message_next(rkev)))
      m->err ? bt->failed++ : bt->delivered++;
  }
  rd_kafka_event_destroy(rkev);
  bt_done_check(bt);
}

static void bt_deadline(uv_timer_t *t) {
  bridge_test_t *bt = t->data;
  uv_close((uv_handle_t *)&bt->deadline, NULL);
  kwp_kbridge_close(bt->kb, bt_closed, bt);
}

/* A producer on a one-broker mock cluster whose delivery reports are
 * events; @p batch (may be NULL) sets batch.num.messages. */
static rd_kafka_t *mock_producer(const char *batch) {
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  ASSERT(rd_kafka_conf_set(conf, "test.mock.num.brokers", "1", err,
                           sizeof(err)) == RD_KAFKA_CONF_OK);
  rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
  if (batch)
    rd_kafka_conf_set(conf, "batch.num.messages", batch, NULL, 0);
  rd_kafka_conf_set_events(conf, RD_KAFKA_EVENT_DR);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  ASSERT(rk != NULL);
  return rk;
}

/* Close the bridge after 20 s whatever happened (the test then fails). */
static void deadline_start(uv_loop_t *loop, bridge_test_t *bt) {
  uv_timer_init(loop, &bt->deadline);
  bt->deadline.data = bt;
  uv_timer_start(&bt->deadline, bt_deadline, 20000, 0);
}

KWP_TEST(kbridge_delivery_reports_reach_loop) {
  char err[512];
  uv_loop_t loop;
  bridge_test_t bt = {0};
  rd_kafka_t *rk = mock_producer(NULL);
  rd_kafka_queue_t *rkq = rd_kafka_queue_get_main(rk);
  ASSERT_EQ(uv_loop_init(&loop), 0);
  bt.kb = kwp_kbridge_new(&loop, rkq, bt_event, &bt, err, sizeof(err));
  ASSERT(bt.kb != NULL);
  deadline_start(&loop, &bt);
  for (int i = 0; i < N_MSGS; i++) {
    char payload[32];
    int n = snprintf(payload, sizeof(payload), "msg-%d", i);
    ASSERT_EQ(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC("bridge-test"),
                                RD_KAFKA_V_VALUE(payload, (size_t)n),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_END),
              0);
  }
  ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ASSERT_EQ(bt.delivered, N_MSGS);
  ASSERT_EQ(bt.failed, 0);
  ASSERT_EQ(bt.closed, 1);
  ASSERT_EQ(uv_loop_close(&loop), 0);
  rd_kafka_queue_destroy(rkq);
  rd_kafka_destroy(rk);
}

/* A held bridge leaves the delivery reports in librdkafka's queue. Let go,
 * it takes them again; held again from inside an event callback, it stops
 * after that event, and let go once more it delivers the rest although
 * nothing is enqueued since (librdkafka writes to the fd only when the queue
 * turns non-empty, and the first drain emptied the pipe). */
typedef struct hold_test {
  bridge_test_t bt;
  rd_kafka_queue_t *rkq;
  uv_timer_t check, release;
  int ticks, seen_while_held, seen_in_second_hold, holds;
  size_t queued_while_held;
} hold_test_t;

static void ht_release(uv_timer_t *t) {
  hold_test_t *ht = t->data;
  ht->seen_in_second_hold = ht->bt.delivered;
  uv_close((uv_handle_t *)t, NULL);
  kwp_kbridge_hold(ht->bt.kb, 0);
}

static void ht_event(rd_kafka_event_t *rkev, void *arg) {
  hold_test_t *ht = arg;
  if (ht->holds == 1) { /* the first event after the first let-go */
    ht->holds = 2;
    kwp_kbridge_hold(ht->bt.kb, 1);
    uv_timer_start(&ht->release, ht_release, 100, 0);
  }
  bt_event(rkev, &ht->bt);
}

/* Some reports are queued: give the rest 200 ms, then let go. */
static void ht_check(uv_timer_t *t) {
  hold_test_t *ht = t->data;
  if (rd_kafka_queue_length(ht->rkq) == 0 || ++ht->ticks < 10)
    return;
  ht->seen_while_held = ht->bt.delivered + ht->bt.failed;
  ht->queued_while_held = rd_kafka_queue_length(ht->rkq);
  ht->holds = 1;
  uv_close((uv_handle_t *)t, NULL);
  kwp_kbridge_hold(ht->bt.kb, 0);
}

KWP_TEST(kbridge_hold_keeps_events_queued) {
  char err[512];
  uv_loop_t loop;
  hold_test_t ht = {0};
  /* Small batches: many reports, so some are left after the second hold. */
  rd_kafka_t *rk = mock_producer("50");
  ht.rkq = rd_kafka_queue_get_main(rk);
  ASSERT_EQ(uv_loop_init(&loop), 0);
  ht.bt.kb = kwp_kbridge_new(&loop, ht.rkq, ht_event, &ht, err, sizeof(err));
  ASSERT(ht.bt.kb != NULL);
  kwp_kbridge_hold(ht.bt.kb, 1);
  deadline_start(&loop, &ht.bt);
  uv_timer_init(&loop, &ht.check);
  uv_timer_init(&loop, &ht.release);
  ht.check.data = ht.release.data = &ht;
  uv_timer_start(&ht.check, ht_check, 20, 20);
  for (int i = 0; i < N_MSGS; i++)
    ASSERT_EQ(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC("bridge-hold"),
                                RD_KAFKA_V_VALUE("held", 4),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_END),
              0);
  ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ASSERT_EQ(ht.seen_while_held, 0);
  ASSERT(ht.queued_while_held > 1);
  ASSERT_EQ(ht.holds, 2);
  ASSERT(ht.seen_in_second_hold > 0 && ht.seen_in_second_hold < N_MSGS);
  ASSERT_EQ(ht.bt.delivered, N_MSGS);
  ASSERT_EQ(ht.bt.closed, 1);
  ASSERT_EQ(uv_loop_close(&loop), 0);
  rd_kafka_queue_destroy(ht.rkq);
  rd_kafka_destroy(rk);
}

/* Records mode: a consumer's partition queue forwarded to a queue of its
 * own, taken in batches; every record comes once, in order, owned by the
 * callback. */
typedef struct msgs_test {
  bridge_test_t bt;
  int64_t next_offset;
  size_t max_batch;
  int out_of_order;
} msgs_test_t;

static void mt_msgs(rd_kafka_message_t **msgs, size_t n, void *arg) {
  msgs_test_t *mt = arg;
  if (n > mt->max_batch)
    mt->max_batch = n;
  for (size_t i = 0; i < n; i++) {
    if (msgs[i]->err)
      mt->bt.failed++;
    else if (msgs[i]->offset != mt->next_offset++)
      mt->out_of_order++;
    else
      mt->bt.delivered++;
    rd_kafka_message_destroy(msgs[i]);
  }
  bt_done_check(&mt->bt);
}

static rd_kafka_t *mock_consumer(rd_kafka_t *producer) {
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  const char *bootstraps =
      rd_kafka_mock_cluster_bootstraps(rd_kafka_handle_mock_cluster(producer));
  ASSERT(rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, err,
                           sizeof(err)) == RD_KAFKA_CONF_OK);
  rd_kafka_conf_set(conf, "group.id", "bridge-msgs", NULL, 0);
  rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  ASSERT(rk != NULL);
  return rk;
}

KWP_TEST(kbridge_records_come_in_batches_in_order) {
  char err[512];
  uv_loop_t loop;
  msgs_test_t mt = {0};
  rd_kafka_t *prod = mock_producer(NULL);
  ASSERT_EQ(rd_kafka_mock_topic_create(rd_kafka_handle_mock_cluster(prod),
                                       "bridge-msgs", 1, 1),
            0);
  for (int i = 0; i < N_MSGS; i++)
    ASSERT_EQ(rd_kafka_producev(
                  prod, RD_KAFKA_V_TOPIC("bridge-msgs"),
                  RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_VALUE("rec", 3),
                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
              0);
  /* Its delivery reports are events: they count as outstanding until taken
   * off the queue. */
  rd_kafka_queue_t *mainq = rd_kafka_queue_get_main(prod);
  for (int i = 0; i < 200 && rd_kafka_outq_len(prod) > 0; i++) {
    rd_kafka_event_t *ev;
    rd_kafka_flush(prod, 50);
    while ((ev = rd_kafka_queue_poll(mainq, 0)))
      rd_kafka_event_destroy(ev);
  }
  rd_kafka_queue_destroy(mainq);
  ASSERT_EQ(rd_kafka_outq_len(prod), 0);
  rd_kafka_t *rk = mock_consumer(prod);
  rd_kafka_queue_t *msgq = rd_kafka_queue_new(rk);
  rd_kafka_queue_t *pq = rd_kafka_queue_get_partition(rk, "bridge-msgs", 0);
  ASSERT(pq != NULL);
  rd_kafka_queue_forward(pq, msgq);
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, "bridge-msgs", 0)->offset =
      RD_KAFKA_OFFSET_BEGINNING;
  ASSERT_EQ(uv_loop_init(&loop), 0);
  mt.bt.kb = kwp_kbridge_new_msgs(&loop, msgq, mt_msgs, &mt, err, sizeof(err));
  ASSERT(mt.bt.kb != NULL);
  deadline_start(&loop, &mt.bt);
  ASSERT_EQ(rd_kafka_assign(rk, l), 0);
  rd_kafka_topic_partition_list_destroy(l);
  ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ASSERT_EQ(mt.bt.delivered, N_MSGS);
  ASSERT_EQ(mt.bt.failed, 0);
  ASSERT_EQ(mt.out_of_order, 0);
  ASSERT(mt.max_batch > 1 && mt.max_batch <= KWP_KBRIDGE_BATCH);
  ASSERT_EQ(mt.bt.closed, 1);
  ASSERT_EQ(uv_loop_close(&loop), 0);
  rd_kafka_assign(rk, NULL);
  rd_kafka_queue_forward(pq, NULL);
  rd_kafka_queue_destroy(pq);
  rd_kafka_queue_destroy(msgq);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  rd_kafka_destroy(prod);
}

KWP_TEST(log_ratelimit_drops_and_counts) {
  kwp_log_ratelimit_t rl = KWP_LOG_RATELIMIT_INIT;
  int dropped = 0, ok = 0;
  for (int i = 0; i < 25; i++)
    ok += kwp_log_ratelimit_ok(&rl, 10, &dropped);
  ASSERT(ok >= 10 && ok <= 20); /* a second boundary may open one window */
  ASSERT(rl.dropped == 25 - ok);
  ASSERT_EQ(kwp_log_level_parse("warning"), KWP_LOG_WARN);
  ASSERT_EQ(kwp_log_level_parse("Debug"), KWP_LOG_DEBUG);
  ASSERT_EQ(kwp_log_level_parse("loud"), -1);
}

/* The line kwp_log_write() writes for @p msg, in text or JSON mode. */
static void log_line(int json, const char *msg, char *out, size_t len) {
  FILE *f = tmpfile();
  ASSERT(f != NULL);
  int saved = dup(STDERR_FILENO);
  dup2(fileno(f), STDERR_FILENO);
  kwp_log_init(KWP_LOG_INFO, json);
  kwp_log_write(KWP_LOG_WARN, "t", "%s", msg);
  kwp_log_init(KWP_LOG_INFO, 0);
  dup2(saved, STDERR_FILENO);
  close(saved);
  rewind(f);
  size_t n = fread(out, 1, len - 1, f);
  out[n] = '\0';
  fclose(f);
}

/* A client's text quoted in a message (a query parameter, say) can neither
 * start a forged line nor put bytes that are not UTF-8 into the log. */
KWP_TEST(log_lines_escape_controls_and_bad_utf8) {
  char line[512];
  const char *msg = "topic x\n2026-01-01T00:00:00.000Z ERROR [session] forged\r"
                    " caf\xc3\xa9 \xff\xc3 \"q\\";
  log_line(0, msg, line, sizeof(line));
  ASSERT(strchr(line, '\n') == line + strlen(line) - 1);
  ASSERT(strstr(line, "[t] topic x\\x0a2026-01-01T00:00:00.000Z ERROR "
                      "[session] forged\\x0d caf\xc3\xa9 \\xff\\xc3 \"q\\\n"));
  log_line(1, msg, line, sizeof(line));
  ASSERT(strchr(line, '\n') == line + strlen(line) - 1);
  ASSERT(strstr(line,
                "\"message\":\"topic x\\u000a2026-01-01T00:00:00.000Z "
                "ERROR [session] forged\\u000d caf\xc3\xa9 \\\\xff\\\\xc3 "
                "\\\"q\\\\\"}\n"));
}
