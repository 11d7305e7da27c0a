/*
 * The shared Kafka producer of a worker: one idempotent (acks=all) producer
 * per worker loop for the default credentials, created on first use, whose
 * delivery reports come back to that loop through the event bridge. Every
 * function runs on the owning worker's thread.
 */
#ifndef KWP_KPRODUCER_H
#define KWP_KPRODUCER_H

#include "core/worker.h"

#include <librdkafka/rdkafka.h>

typedef struct kwp_kproducer kwp_kproducer_t;

/* Embed as the first member of whatever a message's delivery belongs to; the
 * delivery report calls @p done on the worker loop, once per message. */
typedef struct kwp_delivery {
  void (*done)(struct kwp_delivery *dv, const rd_kafka_message_t *rkm);
} kwp_delivery_t;

/**
 * The worker's producer, created on first use.
 * @returns the producer, or NULL with @p errbuf filled.
 */
kwp_kproducer_t *kwp_kproducer_get(kwp_worker_t *wk, char *errbuf,
                                   size_t errlen);

/**
 * Produce one record (payloads are copied by librdkafka). On success @p dv's
 * done() runs exactly once, later, on the loop.
 * @returns 0, or an rd_kafka_resp_err_t (e.g. RD_KAFKA_RESP_ERR__QUEUE_FULL)
 * when the record was not accepted (then done() is not called).
 */
int kwp_kproducer_send(kwp_kproducer_t *kp, const char *topic, const void *key,
                       size_t key_len, const void *value, size_t value_len,
                       rd_kafka_headers_t *hdrs, kwp_delivery_t *dv);

#endif
