/*
 * A transactional producer for one exactly-once socket (transactional.id =
 * <clientId>-<instanceId>). librdkafka's transaction calls block, so init,
 * commit, abort and destroy run on libuv's thread pool; delivery reports
 * reach the loop through the event bridge. Worker thread only.
 */
#ifndef KWP_TXPRODUCER_H
#define KWP_TXPRODUCER_H

#include "core/kafka/kproducer.h"

typedef struct kwp_txproducer kwp_txproducer_t;

/** @p err is 0, or a KWP_E*, with librdkafka's reason in @p reason. */
typedef void (*kwp_tx_cb)(void *arg, int err, const char *reason);

/**
 * Create the producer and initialise transactions (fencing any older
 * producer with the same id); @p cb runs on the loop when done.
 * @returns the producer (also on a later failure: close it after @p cb), or
 * NULL with @p errbuf filled (then @p cb is not called).
 */
kwp_txproducer_t *kwp_txproducer_open(kwp_worker_t *wk, const char *txn_id,
                                      kwp_tx_cb cb, void *arg, char *errbuf,
                                      size_t errlen);

/**
 * Produce one record inside the current transaction (begun on first use).
 * @returns 0, or a KWP_E* with librdkafka's code in @p kerr (then @p dv's
 * done() is not called and @p hdrs still belongs to the caller).
 */
int kwp_txproducer_send(kwp_txproducer_t *tx, const char *topic,
                        const kwp_krec_t *r, kwp_delivery_t *dv,
                        rd_kafka_resp_err_t *kerr);

/**
 * Commit the open transaction (aborting it when the commit fails); every
 * delivery report of its records has run before @p cb.
 * @returns 0, or KWP_EBACKPRESSURE when a commit is already running.
 */
int kwp_txproducer_commit(kwp_txproducer_t *tx, kwp_tx_cb cb, void *arg);

/** 1 while a transaction is open (records sent, not yet committed). */
int kwp_txproducer_in_txn(const kwp_txproducer_t *tx);

/**
 * Commit what is open, then destroy, all in the background; no callback
 * runs after this. Delivery reports still reach their kwp_delivery_t.
 */
void kwp_txproducer_close(kwp_txproducer_t *tx);

#endif
