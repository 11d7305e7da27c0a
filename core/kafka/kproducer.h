/*
 * The shared Kafka producer of a worker: one idempotent (acks=all) producer
 * per worker loop for the default credentials, created on first use, whose
 * delivery reports come back to that loop through the event bridge. Every
 * function runs on the owning worker's thread.
 */
#ifndef KWP_KPRODUCER_H
#define KWP_KPRODUCER_H

#include "core/net/worker.h"

#include <librdkafka/rdkafka.h>

typedef struct kwp_kproducer kwp_kproducer_t;

/* Embed as the first member of whatever a message's delivery belongs to; the
 * delivery report calls @p done on the worker loop, once per message. */
typedef struct kwp_delivery {
  void (*done)(struct kwp_delivery *dv, const rd_kafka_message_t *rkm);
} kwp_delivery_t;

/* A call made once after a whole batch of delivery reports (one Kafka
 * response's worth) was handed out: for whatever is cheaper done per batch
 * than per record, such as writing results. Embed; zero-initialise. */
typedef struct kwp_after_batch {
  void (*fn)(struct kwp_after_batch *ab);
  struct kwp_after_batch *next;
  int queued;
} kwp_after_batch_t;

/**
 * Have @p ab->fn called once after the delivery reports now being handed
 * out (call it from a done() callback); a second call before then is a
 * no-op. The owner of @p ab must keep it alive until fn runs.
 */
void kwp_kproducer_after_batch(kwp_kproducer_t *kp, kwp_after_batch_t *ab);

/**
 * The worker's producer, created on first use.
 * @returns the producer, or NULL with @p errbuf filled.
 */
kwp_kproducer_t *kwp_kproducer_get(kwp_worker_t *wk, char *errbuf,
                                   size_t errlen);

/**
 * The producer's handle of topic @p name, made on first use and kept until
 * the producer goes (records sent with it skip librdkafka's lookup by name).
 * @returns the handle (borrowed), or NULL when out of memory.
 */
rd_kafka_topic_t *kwp_kproducer_topic(kwp_kproducer_t *kp, const char *name);

/**
 * Produce one record to @p rkt, a handle of this producer (payloads are
 * copied by librdkafka). On success @p dv's
 * done() runs exactly once, later, on the loop.
 * @returns 0, or an rd_kafka_resp_err_t (e.g. RD_KAFKA_RESP_ERR__QUEUE_FULL)
 * when the record was not accepted (then done() is not called).
 */
int kwp_kproducer_send(kwp_kproducer_t *kp, rd_kafka_topic_t *rkt,
                       const void *key, size_t key_len, const void *value,
                       size_t value_len, rd_kafka_headers_t *hdrs,
                       kwp_delivery_t *dv);

#endif
