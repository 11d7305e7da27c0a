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

/* One record to produce: views, copied by librdkafka; @p hdrs (may be
 * NULL) passes to librdkafka when the record is accepted. */
typedef struct kwp_krec {
  int32_t partition; /* RD_KAFKA_PARTITION_UA: the partitioner's choice */
  const void *key;   /* NULL: no key */
  size_t key_len;
  const void *value; /* NULL: a tombstone */
  size_t value_len;
  rd_kafka_headers_t *hdrs;
} kwp_krec_t;

/**
 * Produce @p r to @p rkt, a handle of this producer. On success @p dv's
 * done() runs exactly once, later, on the loop.
 * @returns 0, or a KWP_E* (kwp_kafka_err(), e.g. KWP_EBUSY) when the record
 * was not accepted, with librdkafka's code in @p kerr (then done() is not
 * called and the headers still belong to the caller).
 */
int kwp_kproducer_send(kwp_kproducer_t *kp, rd_kafka_topic_t *rkt,
                       const kwp_krec_t *r, kwp_delivery_t *dv,
                       rd_kafka_resp_err_t *kerr);

/**
 * A producer configuration every producer of the proxy starts from: the
 * user's producer.kafka-client-properties, then idempotence, acks=all,
 * producer.compression-type and @p client_id. @locality @p wk's thread
 * @returns the conf (the caller owns it), or NULL with @p errbuf filled.
 */
rd_kafka_conf_t *kwp_kproducer_conf_new(kwp_worker_t *wk, const char *client_id,
                                        char *errbuf, size_t errlen);

/* The one rd_kafka_producev() call of the proxy's record producers (to
 * @p rkt, or by name to @p topic when @p rkt is NULL), for kproducer.c and
 * txproducer.c. @returns kwp_kafka_err() of librdkafka's @p kerr. */
int kwp_kproducer__produce(rd_kafka_t *rk, rd_kafka_topic_t *rkt,
                           const char *topic, const kwp_krec_t *r,
                           int64_t timestamp, void *opaque,
                           rd_kafka_resp_err_t *kerr);

#endif
