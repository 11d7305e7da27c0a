/* Kafka admin requests for threads that may block (the session handler's,
 * the main thread at startup; never a worker loop): topic metadata,
 * creation and configuration, each bounded by its timeout and waited for in
 * slices, so that a stop request is seen within one. */
#include "core/kafka/kadmin.h"

#include <stdio.h>
#include <string.h>
#include <uv.h>

static uint64_t now_ms(void) {
  return uv_hrtime() / 1000000;
}

/* librdkafka's blocking calls cannot be interrupted: the topic setup waits
 * in slices of this, so a SIGTERM during it waits for one slice rather than
 * a whole kafka-client.metadata-timeout (it took 6.5 s of an 8 s one). */
#define SETUP_SLICE_MS 500

static int slice_ms(uint64_t deadline) {
  uint64_t now = now_ms();
  return now >= deadline                   ? 1
         : deadline - now > SETUP_SLICE_MS ? SETUP_SLICE_MS
                                           : (int)(deadline - now);
}

/* The result of an admin request on @p q, waited for in slices: NULL after
 * @p tmo + 1 s (the request's own timeout plus its way back) or once
 * @p stop is set. */
static rd_kafka_event_t *admin_wait(rd_kafka_queue_t *q, int64_t tmo,
                                    atomic_int *stop) {
  uint64_t deadline = now_ms() + (uint64_t)tmo + 1000;
  rd_kafka_event_t *ev;
  while (!(ev = rd_kafka_queue_poll(q, slice_ms(deadline))) &&
         now_ms() < deadline && !atomic_load(stop))
    ;
  return ev;
}

int kwp_kadmin_describe(rd_kafka_t *rk, const char *topic, int64_t tmo,
                        atomic_int *stop, int *partitions, int *brokers,
                        char *errbuf, size_t errlen) {
  const rd_kafka_metadata_t *md;
  rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
  uint64_t deadline = now_ms() + (uint64_t)tmo;
  rd_kafka_resp_err_t err;
  do
    err = rd_kafka_metadata(rk, 0, rkt, &md, slice_ms(deadline));
  while (err == RD_KAFKA_RESP_ERR__TIMED_OUT && now_ms() < deadline &&
         !atomic_load(stop));
  rd_kafka_topic_destroy(rkt);
  if (err) {
    snprintf(errbuf, errlen, "metadata: %s", rd_kafka_err2str(err));
    return -1;
  }
  *brokers = md->broker_cnt;
  *partitions = 0;
  if (md->topic_cnt == 1 && md->topics[0].err == 0)
    *partitions = md->topics[0].partition_cnt;
  rd_kafka_metadata_destroy(md);
  return 0;
}

int kwp_kadmin_create(rd_kafka_t *rk, const char *topic, int partitions,
                      int replication, const char *const *configs, int64_t tmo,
                      atomic_int *stop, char *errbuf, size_t errlen) {
  rd_kafka_NewTopic_t *nt =
      rd_kafka_NewTopic_new(topic, partitions, replication, errbuf, errlen);
  if (!nt)
    return -1;
  for (const char *const *c = configs; c && *c; c += 2)
    rd_kafka_NewTopic_set_config(nt, c[0], c[1]);
  rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
  rd_kafka_AdminOptions_t *o =
      rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_operation_timeout(o, (int)tmo, NULL, 0);
  rd_kafka_CreateTopics(rk, &nt, 1, o, q);
  rd_kafka_event_t *ev = admin_wait(q, tmo, stop);
  int rc = -1;
  if (!ev) {
    snprintf(errbuf, errlen, "CreateTopics timed out");
  } else if (rd_kafka_event_error(ev)) {
    snprintf(errbuf, errlen, "CreateTopics: %s",
             rd_kafka_event_error_string(ev));
  } else {
    size_t n;
    const rd_kafka_topic_result_t **r = rd_kafka_CreateTopics_result_topics(
        rd_kafka_event_CreateTopics_result(ev), &n);
    rd_kafka_resp_err_t e = n ? rd_kafka_topic_result_error(r[0]) : 0;
    rc = e == 0 || e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS ? 0 : -1;
    if (rc)
      snprintf(errbuf, errlen, "CreateTopics: %s",
               rd_kafka_topic_result_error_string(r[0]));
  }
  if (ev)
    rd_kafka_event_destroy(ev);
  rd_kafka_AdminOptions_destroy(o);
  rd_kafka_queue_destroy(q);
  rd_kafka_NewTopic_destroy(nt);
  return rc;
}

void kwp_kadmin_topic_config(rd_kafka_t *rk, const char *topic, const char *key,
                             int64_t tmo, atomic_int *stop, char *out,
                             size_t len) {
  rd_kafka_ConfigResource_t *res =
      rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
  rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
  rd_kafka_AdminOptions_t *o =
      rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
  rd_kafka_AdminOptions_set_request_timeout(o, (int)tmo, NULL, 0);
  rd_kafka_DescribeConfigs(rk, &res, 1, o, q);
  rd_kafka_event_t *ev = admin_wait(q, tmo, stop);
  const rd_kafka_DescribeConfigs_result_t *r =
      ev && !rd_kafka_event_error(ev)
          ? rd_kafka_event_DescribeConfigs_result(ev)
          : NULL;
  size_t n = 0, ne = 0;
  const rd_kafka_ConfigResource_t **rs =
      r ? rd_kafka_DescribeConfigs_result_resources(r, &n) : NULL;
  const rd_kafka_ConfigEntry_t **es =
      n == 1 && !rd_kafka_ConfigResource_error(rs[0])
          ? rd_kafka_ConfigResource_configs(rs[0], &ne)
          : NULL;
  *out = 0;
  for (size_t i = 0; i < ne; i++)
    if (!strcmp(rd_kafka_ConfigEntry_name(es[i]), key) &&
        rd_kafka_ConfigEntry_value(es[i]))
      snprintf(out, len, "%s", rd_kafka_ConfigEntry_value(es[i]));
  if (ev)
    rd_kafka_event_destroy(ev);
  rd_kafka_AdminOptions_destroy(o);
  rd_kafka_queue_destroy(q);
  rd_kafka_ConfigResource_destroy(res);
}
