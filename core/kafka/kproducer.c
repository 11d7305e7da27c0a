/* One shared idempotent producer per worker loop; delivery reports reach the
 * loop through the Kafka event bridge (never a blocking poll). Shutdown waits
 * for in-flight records within the grace period. Worker thread only. */
#include "core/kafka/kproducer.h"

#include "core/base/error.h"
#include "core/base/log.h"
#include "core/kafka/kafka.h"
#include "core/kafka/kbridge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kwp_kproducer {
  kwp_worker_t *wk;
  rd_kafka_t *rk;
  rd_kafka_queue_t *rkq;
  kwp_kbridge_t *kb;
  uv_timer_t grace;
  size_t outstanding; /* records sent and not yet reported */
  int stopping;
  kwp_after_batch_t *after; /* to call when the current batch is out */
  struct kp_topic *topics;  /* handles, so records skip the lookup by name */
};

typedef struct kp_topic {
  struct kp_topic *next;
  rd_kafka_topic_t *rkt;
} kp_topic_t;

rd_kafka_topic_t *kwp_kproducer_topic(kwp_kproducer_t *kp, const char *name) {
  for (kp_topic_t *t = kp->topics; t; t = t->next)
    if (!strcmp(rd_kafka_topic_name(t->rkt), name))
      return t->rkt;
  kp_topic_t *t = malloc(sizeof(*t));
  if (!t || !(t->rkt = rd_kafka_topic_new(kp->rk, name, NULL))) {
    free(t);
    return NULL;
  }
  t->next = kp->topics;
  kp->topics = t;
  return t->rkt;
}

void kwp_kproducer_after_batch(kwp_kproducer_t *kp, kwp_after_batch_t *ab) {
  if (ab->queued)
    return;
  ab->queued = 1;
  ab->next = kp->after;
  kp->after = ab;
}

static void kp_bridge_close(kwp_kproducer_t *kp) {
  if (!kp->kb)
    return;
  kwp_kbridge_close(kp->kb, NULL, NULL);
  kp->kb = NULL;
  uv_close((uv_handle_t *)&kp->grace, NULL);
}

static void kp_deliver(kwp_kproducer_t *kp, rd_kafka_event_t *rkev) {
  const rd_kafka_message_t *rkm;
  while ((rkm = rd_kafka_event_message_next(rkev))) {
    kwp_delivery_t *dv = rkm->_private;
    kp->outstanding--;
    if (dv)
      dv->done(dv, rkm);
  }
  while (kp->after) {
    kwp_after_batch_t *ab = kp->after;
    kp->after = ab->next;
    ab->queued = 0;
    ab->fn(ab);
  }
}

static void kp_event(rd_kafka_event_t *rkev, void *arg) {
  kwp_kproducer_t *kp = arg;
  switch (rd_kafka_event_type(rkev)) {
  case RD_KAFKA_EVENT_DR:
    kp_deliver(kp, rkev);
    break;
  case RD_KAFKA_EVENT_ERROR:
    KWP_LOG(rd_kafka_event_error_is_fatal(rkev) ? KWP_LOG_ERROR : KWP_LOG_WARN,
            "kafka", "producer: %s", rd_kafka_event_error_string(rkev));
    break;
  default:
    break;
  }
  rd_kafka_event_destroy(rkev);
  if (kp->stopping && kp->outstanding == 0)
    kp_bridge_close(kp);
}

static void kp_grace_expired(uv_timer_t *t) {
  kwp_kproducer_t *kp = t->data;
  KWP_LOG(KWP_LOG_WARN, "kafka",
          "producer: grace period over with %zu record(s) in flight",
          kp->outstanding);
  rd_kafka_purge(kp->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  kp_bridge_close(kp);
}

static void kp_stop(void *arg) {
  kwp_kproducer_t *kp = arg;
  kp->stopping = 1;
  if (kp->outstanding == 0) {
    kp_bridge_close(kp);
    return;
  }
  /* The sockets went first (they wait for their results): what is left of
   * the grace period, not a second one. */
  uv_timer_start(&kp->grace, kp_grace_expired, kwp_worker_grace_left(kp->wk),
                 0);
}

/* After the loop ended: report what is left (sessions drop their refs),
 * then destroy. Blocking is fine here, no loop is served any more. */
static void kp_free(void *arg) {
  kwp_kproducer_t *kp = arg;
  rd_kafka_event_t *rkev;
  if (kp->outstanding)
    rd_kafka_purge(kp->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  for (int i = 0; kp->outstanding && i < 100; i++) {
    while ((rkev = rd_kafka_queue_poll(kp->rkq, 10))) {
      if (rd_kafka_event_type(rkev) == RD_KAFKA_EVENT_DR)
        kp_deliver(kp, rkev);
      rd_kafka_event_destroy(rkev);
    }
  }
  while (kp->topics) {
    kp_topic_t *t = kp->topics;
    kp->topics = t->next;
    rd_kafka_topic_destroy(t->rkt);
    free(t);
  }
  rd_kafka_queue_destroy(kp->rkq);
  rd_kafka_destroy(kp->rk);
  free(kp);
}

static const kwp_worker_service_t kp_service = {kp_stop, kp_free};

rd_kafka_conf_t *kwp_kproducer_conf_new(kwp_worker_t *wk, const char *client_id,
                                        char *errbuf, size_t errlen) {
  const kwp_config_t *cfg = kwp_worker_cfg(wk);
  rd_kafka_conf_t *conf = kwp_kafka_conf_new(
      kwp_worker_kafka(wk), &cfg->producer.kafka_client_properties,
      KWP_KAFKA_PRODUCER, errbuf, errlen);
  if (conf &&
      (rd_kafka_conf_set(conf, "enable.idempotence", "true", errbuf, errlen) ||
       rd_kafka_conf_set(conf, "acks", "all", errbuf, errlen) ||
       rd_kafka_conf_set(conf, "compression.type",
                         cfg->producer.compression_type, errbuf, errlen) ||
       rd_kafka_conf_set(conf, "client.id", client_id, errbuf, errlen))) {
    rd_kafka_conf_destroy(conf);
    return NULL;
  }
  return conf;
}

int kwp_kproducer__produce(rd_kafka_t *rk, rd_kafka_topic_t *rkt,
                           const char *topic, const kwp_krec_t *r,
                           int64_t timestamp, void *opaque,
                           rd_kafka_resp_err_t *kerr) {
  /* By handle or by name; the rest is the same record. */
#define KWP_RECORD_ARGS                                                        \
  RD_KAFKA_V_PARTITION(r->partition), RD_KAFKA_V_KEY(r->key, r->key_len),      \
      RD_KAFKA_V_VALUE((void *)r->value, r->value_len),                        \
      RD_KAFKA_V_HEADERS(r->hdrs), RD_KAFKA_V_TIMESTAMP(timestamp),            \
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(opaque),     \
      RD_KAFKA_V_END
  if (rkt)
    *kerr = rd_kafka_producev(rk, RD_KAFKA_V_RKT(rkt), KWP_RECORD_ARGS);
  else
    *kerr = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), KWP_RECORD_ARGS);
#undef KWP_RECORD_ARGS
  return kwp_kafka_err(*kerr);
}

static rd_kafka_t *kp_create(kwp_worker_t *wk, char *errbuf, size_t errlen) {
  const kwp_config_t *cfg = kwp_worker_cfg(wk);
  char num[32];
  rd_kafka_conf_t *conf =
      kwp_kproducer_conf_new(wk, "kafka-ws-proxy", errbuf, errlen);
  if (!conf)
    return NULL;
  snprintf(num, sizeof(num), "%lld",
           (long long)cfg->producer.delivery_timeout_ms);
  if (rd_kafka_conf_set(conf, "delivery.timeout.ms", num, errbuf, errlen)) {
    rd_kafka_conf_destroy(conf);
    return NULL;
  }
  /* The worker's sockets share this producer and each is bounded by
   * producer.max-inflight-*; librdkafka's own default (100000 records)
   * would turn a few busy sockets into "busy" results. */
  if (!kwp_props_get(&cfg->producer.kafka_client_properties,
                     "queue.buffering.max.messages"))
    rd_kafka_conf_set(conf, "queue.buffering.max.messages", "2000000", NULL, 0);
  rd_kafka_conf_set_events(conf, RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errbuf, errlen);
  if (!rk)
    rd_kafka_conf_destroy(conf);
  return rk;
}

kwp_kproducer_t *kwp_kproducer_get(kwp_worker_t *wk, char *errbuf,
                                   size_t errlen) {
  kwp_kproducer_t *kp = kwp_worker_service(wk, KWP_SVC_PRODUCER);
  if (kp)
    return kp->stopping ? NULL : kp;
  if (!(kp = calloc(1, sizeof(*kp)))) {
    snprintf(errbuf, errlen, "out of memory");
    return NULL;
  }
  kp->wk = wk;
  if (!(kp->rk = kp_create(wk, errbuf, errlen))) {
    free(kp);
    return NULL;
  }
  kp->rkq = rd_kafka_queue_get_main(kp->rk);
  kp->kb = kwp_kbridge_new(kwp_worker_loop(wk), kp->rkq, kp_event, kp, errbuf,
                           errlen);
  if (!kp->kb) {
    rd_kafka_queue_destroy(kp->rkq);
    rd_kafka_destroy(kp->rk);
    free(kp);
    return NULL;
  }
  uv_timer_init(kwp_worker_loop(wk), &kp->grace);
  kp->grace.data = kp;
  kwp_worker_service_set(wk, KWP_SVC_PRODUCER, &kp_service, kp);
  return kp;
}

int kwp_kproducer_send(kwp_kproducer_t *kp, rd_kafka_topic_t *rkt,
                       const kwp_krec_t *r, kwp_delivery_t *dv,
                       rd_kafka_resp_err_t *kerr) {
  int err = kwp_kproducer__produce(kp->rk, rkt, NULL, r,
                                   kwp_worker_wall_ms(kp->wk), dv, kerr);
  if (err == 0)
    kp->outstanding++;
  return err;
}
