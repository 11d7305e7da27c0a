/* The consume path's opening steps: limits (rate, batch size), admission
 * into the group's session, and the socket's Kafka consumer with small
 * prefetch buffers. Worker thread only. */
#include "core/base/error.h"
#include "core/config/limits.h"
#include "core/consume/consume_int.h"
#include "core/kafka/kafka.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* --- the Kafka consumer --- */

/* Our defaults keep a socket's prefetch small (the user's
 * consumer.kafka-client-properties win): at most 4 MB or 10,000 records
 * queued for the socket's consumer, whichever comes first, filled by fetches
 * of at most 256 KB per partition and 1 MB per request. 4 MB, not 2: with
 * 2 MB a socket reading 16 partitions fast emptied its queue before the
 * next 1 MB fetch came back and then waited for it (1 KB records: about
 * 510k against 780k records/s, medians of five runs each); a socket that
 * never reads costs 1 to 2 MiB more (more again since backpressure lets the
 * queue fill before it pauses: 7.7 to 9.3 MiB in all, see docs/api.md).
 * The record bound matters for small records: librdkafka keeps a few hundred
 * bytes per queued record, several times a 100 B record (a 100 B socket that
 * never reads measured 12.8 MB with the byte bound alone, 9.2 MB with both; 4
 * MiB of it unsent frames then). Lower than one fetch response's worth (~8,700
 * records of 100 B) it would cost throughput: the fetcher would stop after
 * every fetch. A fetch response smaller than the queue bound matters:
 * librdkafka before 2.2 stops fetching a partition whose queue is over either
 * bound and looks again only when its broker thread next wakes, up to 1 s
 * later, so the queue must not reach a bound while the client keeps up
 * (fetch_restart() covers the rest). Newer librdkafka makes that wait
 * configurable: 10 ms. */
static const char *const small_buffers[][2] = {
    {"queued.max.messages.kbytes", "4096"},  {"queued.min.messages", "10000"},
    {"max.partition.fetch.bytes", "262144"}, {"fetch.max.bytes", "1048576"},
    {"enable.partition.eof", "false"},       {"fetch.queue.backoff.ms", "10"},
};

static int conf_set(rd_kafka_conf_t *conf, const char *k, const char *v,
                    char *errbuf, size_t errlen) {
  return rd_kafka_conf_set(conf, k, v, errbuf, errlen) == RD_KAFKA_CONF_OK ? 0
                                                                           : -1;
}

/* Whether fetch_restart() is needed, and the queue's bounds, bytes and
 * records. */
static void kick_setup(consume_sess_t *s, rd_kafka_conf_t *conf) {
  char v[64], n_v[64];
  size_t n = sizeof(v), n_n = sizeof(n_v);
  if (rd_kafka_conf_get(conf, "fetch.queue.backoff.ms", v, &n) ==
      RD_KAFKA_CONF_OK)
    return; /* librdkafka >= 2.2 */
  n = sizeof(v);
  if (rd_kafka_conf_get(conf, "queued.max.messages.kbytes", v, &n) !=
          RD_KAFKA_CONF_OK ||
      rd_kafka_conf_get(conf, "queued.min.messages", n_v, &n_n) !=
          RD_KAFKA_CONF_OK)
    return;
  s->kick_bytes = (size_t)strtoull(v, NULL, 10) * 1000; /* as librdkafka */
  s->kick_n = (size_t)strtoull(n_v, NULL, 10);
  if (!s->kick_n)
    s->kick_n = 1; /* queued.min.messages = 1: every record fills it */
  if (!s->kick_bytes)
    s->kick_bytes = 1; /* it doubles as "enabled" */
}

static rd_kafka_t *consumer_create(consume_sess_t *s, char *errbuf,
                                   size_t errlen) {
  const kwp_props_t *props = &s->cfg->consumer.kafka_client_properties;
  rd_kafka_conf_t *conf = kwp_kafka_conf_new(
      kwp_worker_kafka(s->wk), props, KWP_KAFKA_CONSUMER, errbuf, errlen);
  if (!conf)
    return NULL;
  for (size_t i = 0; i < sizeof(small_buffers) / sizeof(small_buffers[0]); i++)
    if (!kwp_props_get(props, small_buffers[i][0]) &&
        rd_kafka_conf_set(conf, small_buffers[i][0], small_buffers[i][1],
                          errbuf, errlen) == RD_KAFKA_CONF_INVALID)
      goto fail; /* UNKNOWN: an older librdkafka, fine */
  kick_setup(s, conf);
  s->q_look = s->kick_bytes != 0;
  if (conf_set(conf, "group.id", s->group_id, errbuf, errlen) ||
      conf_set(conf, "client.id", s->client_id, errbuf, errlen) ||
      conf_set(conf, "auto.offset.reset",
               !strcmp(s->reset, "none") ? "error" : s->reset, errbuf,
               errlen) ||
      conf_set(conf, "isolation.level", s->isolation, errbuf, errlen) ||
      conf_set(conf, "enable.auto.commit", "false", errbuf, errlen) ||
      conf_set(conf, "enable.auto.offset.store", "false", errbuf, errlen))
    goto fail;
  char strategy[256];
  size_t strategy_len = sizeof(strategy);
  s->coop = rd_kafka_conf_get(conf, "partition.assignment.strategy", strategy,
                              &strategy_len) == RD_KAFKA_CONF_OK &&
            strstr(strategy, "cooperative-sticky");
  rd_kafka_conf_set_events(
      conf, RD_KAFKA_EVENT_FETCH | RD_KAFKA_EVENT_REBALANCE |
                RD_KAFKA_EVENT_OFFSET_COMMIT | RD_KAFKA_EVENT_ERROR);
  rd_kafka_conf_set_error_cb(conf, kwp_consume__on_error);
  rd_kafka_conf_set_opaque(conf, s);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errbuf, errlen);
  if (rk)
    return rk;
fail:
  rd_kafka_conf_destroy(conf);
  return NULL;
}

static int consumer_start(consume_sess_t *s, char *errbuf, size_t errlen) {
  if (!(s->rk = consumer_create(s, errbuf, errlen)))
    return -1;
  uv_loop_t *loop = kwp_worker_loop(s->wk);
  rd_kafka_poll_set_consumer(s->rk); /* the main queue's events too */
  s->rkq = rd_kafka_queue_get_consumer(s->rk);
  s->msgq = rd_kafka_queue_new(s->rk); /* records (on_rebalance() routes) */
  s->kb =
      kwp_kbridge_new(loop, s->rkq, kwp_consume__on_event, s, errbuf, errlen);
  if (s->kb)
    s->kb_msgs = kwp_kbridge_new_msgs(loop, s->msgq, kwp_consume__on_msgs, s,
                                      errbuf, errlen);
  rd_kafka_topic_partition_list_t *topics =
      rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, s->topic, RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t err =
      s->kb_msgs ? rd_kafka_subscribe(s->rk, topics) : RD_KAFKA_RESP_ERR__FAIL;
  rd_kafka_topic_partition_list_destroy(topics);
  if (err == 0) {
    kwp_kbridge_set_drained(s->kb_msgs, kwp_consume__on_drained);
    kwp_kbridge_set_drained(s->kb, kwp_consume__on_ctl_drained);
    s->bridges = 2;
    return 0;
  }
  if (s->kb_msgs) {
    snprintf(errbuf, errlen, "%s", rd_kafka_err2str(err));
    kwp_kbridge_close(s->kb_msgs, NULL, NULL);
  }
  if (s->kb)
    kwp_kbridge_close(s->kb, NULL, NULL);
  rd_kafka_queue_destroy(s->msgq);
  rd_kafka_queue_destroy(s->rkq);
  rd_kafka_destroy(s->rk); /* never joined a group: returns at once */
  return -1;
}

/* --- opening: the upgrade pipeline's steps --- */

kwp_consume_t *kwp_consume_new(kwp_worker_t *wk, const kwp_consume_conf_t *cc) {
  consume_sess_t *s = calloc(1, sizeof(*s));
  if (!s)
    return NULL;
  s->wk = wk;
  s->cfg = kwp_worker_cfg(wk);
  snprintf(s->client_id, sizeof(s->client_id), "%s", cc->client_id);
  snprintf(s->group_id, sizeof(s->group_id), "%s", cc->group_id);
  snprintf(s->topic, sizeof(s->topic), "%s", cc->topic);
  snprintf(s->reset, sizeof(s->reset), "%s", cc->reset);
  snprintf(s->isolation, sizeof(s->isolation), "%s", cc->isolation);
  s->fmt = cc->fmt;
  s->opts = (kwp_payload_opts_t){.topic = s->topic,
                                 .topic_len = strlen(s->topic),
                                 .key_fmt = cc->key_fmt,
                                 .val_fmt = cc->val_fmt};
  kwp_consume__sr_init(s);
  s->auto_commit = cc->auto_commit;
  s->rate = cc->rate;
  s->batch = cc->batch;
  return s;
}

const char *kwp_consume_topic(void *state) {
  return ((consume_sess_t *)state)->topic;
}

int kwp_consume_admission(void *state, int partitions, kwp_admit_req_t *req) {
  consume_sess_t *s = state;
  req->kind = KWP_ADMIT_CONSUMER;
  req->session = s->group_id;
  req->instance = s->client_id;
  req->limit = kwp_limits_consumer_sockets(s->cfg, s->group_id, partitions);
  return 1;
}

/* Rate buckets and batch size from the parameters and consumer.limits. */
static int apply_limits(consume_sess_t *s) {
  int64_t group_rate = kwp_limits_consumer_rate(s->cfg, s->group_id);
  char id[KWP_PARAM_MAX + 32];
  if (!s->batch)
    s->batch = kwp_limits_consumer_batch(s->cfg, s->group_id);
  if (!s->fmt->batch_open) /* a format without batches */
    s->batch = 1;
  if (s->rate > 0) { /* a bucket of this socket's own */
    snprintf(id, sizeof(id), "\x01socket\x01%llu",
             (unsigned long long)kwp_conn_id(s->conn));
    if (!(s->rate_sock = kwp_rate_acquire(id, s->rate)))
      return -1;
  }
  if (group_rate > 0) { /* shared by the group's sockets on this node */
    snprintf(id, sizeof(id), "\x01group\x01%s", s->group_id);
    if (!(s->rate_group = kwp_rate_acquire(id, group_rate)))
      return -1;
  }
  return 0;
}

static int sess_init(consume_sess_t *s, char *msg, size_t msglen) {
  char errbuf[256];
  uv_loop_t *loop = kwp_worker_loop(s->wk);
  if (apply_limits(s) != 0 || !(s->gate = kwp_cgate_new()) ||
      (s->auto_commit && !(s->written = kwp_written_new())) ||
      (!s->auto_commit &&
       !(s->stack =
             kwp_commit_new((size_t)s->cfg->commit_handler.max_stack_size)))) {
    snprintf(msg, msglen, "Internal server error");
    return KWP_ENOMEM;
  }
  if (consumer_start(s, errbuf, sizeof(errbuf)) != 0) {
    snprintf(msg, msglen, "Cannot start the Kafka consumer: %s", errbuf);
    return KWP_EUNAVAILABLE;
  }
  uv_timer_init(loop, &s->rate_timer);
  uv_timer_init(loop, &s->commit_timer);
  uv_timer_init(loop, &s->close_timer);
  uv_timer_init(loop, &s->retry_timer);
  uv_timer_init(loop, &s->kick_timer);
  uv_timer_init(loop, &s->hold_timer);
  s->rate_timer.data = s->commit_timer.data = s->close_timer.data = s;
  s->retry_timer.data = s->kick_timer.data = s->hold_timer.data = s;
  /* The socket, six timers and the consumer's destroy. */
  s->refs = 8;
  int64_t every = s->auto_commit ? s->cfg->consumer.auto_commit_interval_ms
                  : s->cfg->commit_handler.auto_commit_enabled
                      ? s->cfg->commit_handler.auto_commit_interval_ms
                      : 0;
  s->commit_every_ms = every;
  s->tick_ms =
      every > 0 && every < KWP_CONSUME_POLL_MS ? every : KWP_CONSUME_POLL_MS;
  uv_timer_start(&s->commit_timer, kwp_consume__commit_tick,
                 (uint64_t)s->tick_ms, (uint64_t)s->tick_ms);
  return 0;
}

void kwp_consume_discard(void *state) {
  consume_sess_t *s = state;
  s->refs = 1;
  kwp_consume__unref(s);
}

void kwp_consume_open(kwp_upgrade_t *up, void *state,
                      kwp_claim_handle_t *claim) {
  consume_sess_t *s = state;
  char msg[KWP_PARAM_MAX + 640];
  s->claim = claim;
  s->conn = kwp_upgrade_conn(up);
  int err = sess_init(s, msg, sizeof(msg));
  if (err) {
    kwp_consume_discard(s);
    kwp_upgrade_refuse(up, err, msg);
  } else {
    kwp_upgrade_accept(up, &kwp_consume__handler, s);
  }
}
