/* GET /socket/out, the upgrade: parameters, limits (rate, batch size),
 * admission into the group's session, and the socket's Kafka consumer with
 * small prefetch buffers. Worker thread only. */
#include "core/base/error.h"
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
  kwp_ctx_t *ctx = kwp_worker_ctx(s->wk);
  const kwp_props_t *props = &s->cfg->consumer.kafka_client_properties;
  rd_kafka_conf_t *conf =
      kwp_kafka_conf_new(ctx->kafka, props, KWP_KAFKA_CONSUMER, errbuf, errlen);
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

/* --- upgrade validation --- */

static int choice_param(const char *url, const char *name, char *out,
                        const char *const *allowed, int *err, char *msg,
                        size_t msglen) {
  int r = kwp_param(url, name, out, err, msg, msglen);
  if (r <= 0) {
    if (r == 0)
      strcpy(out, allowed[0]);
    return r;
  }
  for (const char *const *a = allowed; *a; a++)
    if (!strcasecmp(out, *a)) {
      strcpy(out, *a);
      return 1;
    }
  *err = KWP_EBADREQ;
  if (!strcmp(name, "isolationLevel"))
    snprintf(msg, msglen,
             "Read isolation '%s' is not a valid value. Please use one of "
             "'read_committed' or 'read_uncommitted'.",
             out);
  else
    snprintf(msg, msglen, "%s is not a valid offset reset strategy", out);
  return -1;
}

static int parse_params(consume_sess_t *s, const char *url, int *err, char *msg,
                        size_t msglen) {
  static const char *const resets[] = {"earliest", "latest", "none", NULL};
  static const char *const isolations[] = {"read_uncommitted", "read_committed",
                                           NULL};
  s->val_fmt = KWP_FMT_STRING;
  s->auto_commit = 1;
  if (kwp_param_required(url, "clientId", s->client_id, err, msg, msglen) < 0 ||
      kwp_param_topic(url, s->topic, err, msg, msglen) < 0 ||
      kwp_param(url, "groupId", s->group_id, err, msg, msglen) < 0 ||
      kwp_param_payload(url, err, msg, msglen) < 0 ||
      kwp_param_format(url, "keyType", &s->key_fmt, err, msg, msglen) < 0 ||
      kwp_param_format(url, "valType", &s->val_fmt, err, msg, msglen) < 0 ||
      choice_param(url, "offsetResetStrategy", s->reset, resets, err, msg,
                   msglen) < 0 ||
      choice_param(url, "isolationLevel", s->isolation, isolations, err, msg,
                   msglen) < 0 ||
      kwp_param_positive(url, "rate", 1000000000, &s->rate, err, msg, msglen) <
          0 ||
      kwp_param_positive(url, "batchSize", 100000, &s->batch, err, msg,
                         msglen) < 0 ||
      kwp_param_bool(url, "autoCommit", &s->auto_commit, err, msg, msglen) < 0)
    return -1;
  if (!*s->group_id)
    snprintf(s->group_id, sizeof(s->group_id), "%.*s-group", KWP_PARAM_MAX - 8,
             s->client_id);
  return 0;
}

/* Rate buckets and batch size from the parameters and consumer.limits. */
static int apply_limits(consume_sess_t *s) {
  const kwp_limits_t *l = &s->cfg->consumer.limits;
  const kwp_client_limit_t *g = kwp_limits_find(l, s->group_id);
  int64_t group_rate = g && g->messages_per_second >= 0
                           ? g->messages_per_second
                           : l->default_messages_per_second;
  char id[KWP_PARAM_MAX + 32];
  if (!s->batch)
    s->batch = g && g->batch_size >= 0 ? g->batch_size : l->default_batch_size;
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
       !(s->stack = kwp_commit_new(
             s->topic, (size_t)s->cfg->commit_handler.max_stack_size)))) {
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

static void sess_discard(consume_sess_t *s) {
  s->refs = 1;
  kwp_consume__unref(s);
}

/* Answer the upgrade: the socket, or @p err with @p msg. */
static void answer(consume_sess_t *s, int err, const char *msg) {
  kwp_upgrade_cb done = s->done;
  kwp_conn_t *conn = s->conn;
  if (err) {
    sess_discard(s);
    done(conn, NULL, NULL, err, msg);
    return;
  }
  done(conn, &kwp_consume__handler, s, 0, NULL);
}

/* The cluster's verdict on this socket joining its group's session. */
static void admitted(void *arg, int err, const char *message,
                     kwp_session_claim_t *claim) {
  consume_sess_t *s = arg;
  char msg[KWP_PARAM_MAX + 640];
  s->claim = claim;
  snprintf(msg, sizeof(msg), "%s", message);
  if (!err)
    err = sess_init(s, msg, sizeof(msg));
  answer(s, err, msg);
}

static void topic_checked(void *arg, int partitions) {
  consume_sess_t *s = arg;
  char msg[KWP_PARAM_MAX + 320];
  int err;
  if (partitions == KWP_ENOTFOUND) {
    err = KWP_EBADREQ;
    snprintf(msg, sizeof(msg), "Topic %s was not found", s->topic);
  } else if (partitions < 0) {
    err = KWP_EUNAVAILABLE;
    snprintf(msg, sizeof(msg), "Kafka cluster is unreachable");
  } else {
    kwp_session_t *ss = kwp_worker_ctx(s->wk)->session;
    int64_t limit = kwp_session_consumer_limit(s->cfg, s->group_id, partitions);
    err = kwp_session_admit(ss, s->wk, KWP_SESSION_CONSUMER, s->group_id,
                            s->client_id, limit, admitted, s);
    if (!err)
      return; /* admitted() answers */
    kwp_session_refusal(ss, err, msg, sizeof(msg));
  }
  answer(s, err, msg);
}

void kwp_consume_upgrade(kwp_conn_t *conn, const char *url,
                         kwp_upgrade_cb done) {
  char msg[KWP_PARAM_MAX + 128];
  int err = KWP_ENOMEM;
  consume_sess_t *s = calloc(1, sizeof(*s));
  if (s) {
    s->wk = kwp_conn_worker(conn);
    s->cfg = kwp_worker_ctx(s->wk)->cfg;
    s->conn = conn;
  }
  if (!s || parse_params(s, url, &err, msg, sizeof(msg)) != 0) {
    if (!s)
      snprintf(msg, sizeof(msg), "Internal server error");
    free(s);
    done(conn, NULL, NULL, err, msg);
    return;
  }
  s->done = done;
  kwp_ctx_t *ctx = kwp_worker_ctx(s->wk);
  if (kwp_kafka_topic_lookup(ctx->kafka, kwp_worker_loop(s->wk), s->topic,
                             topic_checked, s) != 0) {
    free(s);
    done(conn, NULL, NULL, KWP_EINTERNAL, "Internal server error");
  }
}
