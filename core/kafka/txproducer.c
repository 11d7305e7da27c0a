/* Transactional producer of one exactly-once socket: blocking transaction
 * calls on libuv's thread pool, delivery reports through the event bridge.
 * Worker thread only (the pool threads touch rk and the op fields only). */
#include "core/kafka/txproducer.h"

#include "core/base/error.h"
#include "core/base/log.h"
#include "core/kafka/kafka.h"
#include "core/kafka/kbridge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TX_TIMEOUT_MS 30000
#define CLOSING_POLL_MS 20

enum { OP_INIT, OP_COMMIT, OP_CLOSE };

struct kwp_txproducer {
  kwp_worker_t *wk;
  rd_kafka_t *rk;
  rd_kafka_queue_t *rkq;
  kwp_kbridge_t *kb;
  uv_work_t work;
  uv_timer_t wait; /* init waits for a closing namesake (closing_wait()) */
  uint64_t wait_until;
  char *txn_id;
  int op, busy, in_txn, closing, failed, waiting, listed;
  int refs; /* the owner + a running op; worker-owned plain int */
  kwp_tx_cb cb;
  void *arg;
  int result;
  char reason[256];
};

static void tx_unref(kwp_txproducer_t *tx) {
  if (--tx->refs == 0) {
    free(tx->txn_id);
    free(tx);
  }
}

/* Transactional ids whose producer is closing, i.e. committing what its
 * socket sent, process-wide (one entry per closing producer). A client that
 * reconnects at once with the same clientId and instanceId would otherwise
 * fence that producer before its last commit, and everything the old socket
 * had sent since the previous commit would be aborted. */
typedef struct closing_id {
  struct closing_id *next;
  char id[];
} closing_id_t;

static uv_once_t closing_once = UV_ONCE_INIT;
static uv_mutex_t closing_lock;
static closing_id_t *closing_ids;

static void closing_init(void) {
  uv_mutex_init(&closing_lock);
}

static int closing_has(const char *id) {
  int found = 0;
  uv_once(&closing_once, closing_init);
  uv_mutex_lock(&closing_lock);
  for (closing_id_t *c = closing_ids; c && !found; c = c->next)
    found = !strcmp(c->id, id);
  uv_mutex_unlock(&closing_lock);
  return found;
}

static void closing_add(kwp_txproducer_t *tx) {
  size_t n = strlen(tx->txn_id) + 1;
  closing_id_t *c = malloc(sizeof(*c) + n);
  if (!c)
    return; /* only the wait of a reconnect is lost */
  memcpy(c->id, tx->txn_id, n);
  uv_once(&closing_once, closing_init);
  uv_mutex_lock(&closing_lock);
  c->next = closing_ids;
  closing_ids = c;
  uv_mutex_unlock(&closing_lock);
  tx->listed = 1;
}

static void closing_remove(kwp_txproducer_t *tx) {
  if (!tx->listed)
    return;
  uv_mutex_lock(&closing_lock);
  for (closing_id_t **p = &closing_ids; *p; p = &(*p)->next) {
    if (!strcmp((*p)->id, tx->txn_id)) {
      closing_id_t *c = *p;
      *p = c->next;
      free(c);
      break;
    }
  }
  uv_mutex_unlock(&closing_lock);
  tx->listed = 0;
}

static void tx_event(rd_kafka_event_t *rkev, void *arg) {
  const rd_kafka_message_t *rkm;
  if (rd_kafka_event_type(rkev) == RD_KAFKA_EVENT_DR) {
    while ((rkm = rd_kafka_event_message_next(rkev))) {
      kwp_delivery_t *dv = rkm->_private;
      if (dv)
        dv->done(dv, rkm);
    }
  }
  rd_kafka_event_destroy(rkev);
}

static int tx_error(kwp_txproducer_t *tx, rd_kafka_error_t *e) {
  if (!e)
    return 0;
  snprintf(tx->reason, sizeof(tx->reason), "%s", rd_kafka_error_string(e));
  int abortable = rd_kafka_error_txn_requires_abort(e);
  rd_kafka_error_destroy(e);
  if (abortable) { /* the records of this transaction are discarded */
    rd_kafka_error_t *ae = rd_kafka_abort_transaction(tx->rk, TX_TIMEOUT_MS);
    if (ae)
      rd_kafka_error_destroy(ae);
  }
  return KWP_EKAFKA;
}

/* Thread pool: the blocking part of each operation. */
static void tx_work(uv_work_t *w) {
  kwp_txproducer_t *tx = w->data;
  switch (tx->op) {
  case OP_INIT:
    tx->result =
        tx_error(tx, rd_kafka_init_transactions(tx->rk, TX_TIMEOUT_MS));
    break;
  case OP_COMMIT:
    tx->result =
        tx_error(tx, rd_kafka_commit_transaction(tx->rk, TX_TIMEOUT_MS));
    break;
  case OP_CLOSE:
    if (tx->in_txn && !tx->failed)
      tx_error(tx, rd_kafka_commit_transaction(tx->rk, TX_TIMEOUT_MS));
    rd_kafka_flush(tx->rk, TX_TIMEOUT_MS); /* a pool thread, not a loop */
    break;
  }
}

static void tx_bridge_closed(void *arg) {
  kwp_txproducer_t *tx = arg;
  rd_kafka_event_t *rkev;
  /* Reports that arrived after the last drain still release their owners. */
  while ((rkev = rd_kafka_queue_poll(tx->rkq, 0)))
    tx_event(rkev, tx);
  rd_kafka_queue_destroy(tx->rkq);
  rd_kafka_destroy(tx->rk); /* flushed already: returns at once */
  closing_remove(tx);
  tx_unref(tx);
}

static int tx_start(kwp_txproducer_t *tx, int op, kwp_tx_cb cb, void *arg);

static void tx_after(uv_work_t *w, int status) {
  kwp_txproducer_t *tx = w->data;
  tx->busy = 0;
  /* Every report of the transaction was queued before commit returned. */
  if (tx->kb)
    kwp_kbridge_drain(tx->kb);
  if (tx->op == OP_CLOSE) {
    kwp_kbridge_close(tx->kb, tx_bridge_closed, tx);
    tx->kb = NULL;
    return;
  }
  if (tx->op == OP_COMMIT)
    tx->in_txn = 0;
  if (tx->result)
    tx->failed = 1;
  if (!tx->closing && tx->cb)
    tx->cb(tx->arg, status ? KWP_EINTERNAL : tx->result, tx->reason);
  if (tx->closing && tx_start(tx, OP_CLOSE, NULL, NULL) != 0) {
    tx->refs++; /* released by tx_bridge_closed */
    kwp_kbridge_close(tx->kb, tx_bridge_closed, tx);
    tx->kb = NULL;
  }
  tx_unref(tx);
}

static int tx_start(kwp_txproducer_t *tx, int op, kwp_tx_cb cb, void *arg) {
  if (tx->busy)
    return KWP_EBACKPRESSURE;
  tx->op = op;
  tx->cb = cb;
  tx->arg = arg;
  tx->result = 0;
  tx->reason[0] = 0;
  tx->busy = 1;
  tx->refs++;
  tx->work.data = tx;
  int rc = uv_queue_work(kwp_worker_loop(tx->wk), &tx->work, tx_work, tx_after);
  if (rc) {
    tx->busy = 0;
    tx->refs--;
  }
  return rc;
}

static rd_kafka_t *tx_create(kwp_worker_t *wk, const char *txn_id, char *errbuf,
                             size_t errlen) {
  rd_kafka_conf_t *conf = kwp_kproducer_conf_new(wk, txn_id, errbuf, errlen);
  if (!conf)
    return NULL;
  if (rd_kafka_conf_set(conf, "transactional.id", txn_id, errbuf, errlen)) {
    rd_kafka_conf_destroy(conf);
    return NULL;
  }
  rd_kafka_conf_set_events(conf, RD_KAFKA_EVENT_DR);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errbuf, errlen);
  if (!rk)
    rd_kafka_conf_destroy(conf);
  return rk;
}

static void wait_closed(uv_handle_t *h) {
  tx_unref(h->data);
}

static void wait_end(kwp_txproducer_t *tx) {
  tx->waiting = 0;
  uv_timer_stop(&tx->wait);
  uv_close((uv_handle_t *)&tx->wait, wait_closed);
}

/* Init once the namesake has closed, or after TX_TIMEOUT_MS (then it is
 * fenced, as a live one would be). */
static void wait_tick(uv_timer_t *t) {
  kwp_txproducer_t *tx = t->data;
  uint64_t now = uv_now(kwp_worker_loop(tx->wk));
  if (closing_has(tx->txn_id) && now < tx->wait_until)
    return;
  wait_end(tx);
  if (tx_start(tx, OP_INIT, tx->cb, tx->arg) != 0)
    tx->cb(tx->arg, KWP_EINTERNAL, "cannot start the transactional producer");
}

static int closing_wait(kwp_txproducer_t *tx, kwp_tx_cb cb, void *arg) {
  uv_loop_t *loop = kwp_worker_loop(tx->wk);
  int rc = uv_timer_init(loop, &tx->wait);
  if (rc)
    return rc;
  tx->wait.data = tx;
  tx->refs++; /* released by wait_closed */
  tx->cb = cb;
  tx->arg = arg;
  tx->waiting = 1;
  tx->wait_until = uv_now(loop) + TX_TIMEOUT_MS;
  KWP_LOG(KWP_LOG_INFO, "produce",
          "transactional id %s: waiting for the closing producer of the "
          "previous connection to commit",
          tx->txn_id);
  return uv_timer_start(&tx->wait, wait_tick, CLOSING_POLL_MS, CLOSING_POLL_MS);
}

kwp_txproducer_t *kwp_txproducer_open(kwp_worker_t *wk, const char *txn_id,
                                      kwp_tx_cb cb, void *arg, char *errbuf,
                                      size_t errlen) {
  kwp_txproducer_t *tx = calloc(1, sizeof(*tx));
  if (!tx || !(tx->rk = tx_create(wk, txn_id, errbuf, errlen))) {
    free(tx);
    return NULL;
  }
  tx->wk = wk;
  tx->refs = 1;
  tx->txn_id = strdup(txn_id);
  tx->rkq = rd_kafka_queue_get_main(tx->rk);
  tx->kb = kwp_kbridge_new(kwp_worker_loop(wk), tx->rkq, tx_event, tx, errbuf,
                           errlen);
  if (!tx->txn_id || !tx->kb ||
      (closing_has(txn_id) ? closing_wait(tx, cb, arg)
                           : tx_start(tx, OP_INIT, cb, arg)) != 0) {
    if (tx->kb)
      kwp_kbridge_close(tx->kb, tx_bridge_closed, tx);
    else {
      rd_kafka_queue_destroy(tx->rkq);
      rd_kafka_destroy(tx->rk);
      free(tx);
    }
    snprintf(errbuf, errlen, "cannot start the transactional producer");
    return NULL;
  }
  return tx;
}

int kwp_txproducer_send(kwp_txproducer_t *tx, const char *topic,
                        const kwp_krec_t *r, kwp_delivery_t *dv,
                        rd_kafka_resp_err_t *kerr) {
  *kerr = RD_KAFKA_RESP_ERR__STATE;
  if (tx->failed || tx->busy)
    return KWP_EKAFKA;
  if (!tx->in_txn) {
    rd_kafka_error_t *e = rd_kafka_begin_transaction(tx->rk);
    if (e) {
      if (rd_kafka_error_code(e))
        *kerr = rd_kafka_error_code(e);
      rd_kafka_error_destroy(e);
      return kwp_kafka_err(*kerr);
    }
    tx->in_txn = 1;
  }
  return kwp_kproducer__produce(tx->rk, NULL, topic, r,
                                kwp_worker_wall_ms(tx->wk), dv, kerr);
}

int kwp_txproducer_commit(kwp_txproducer_t *tx, kwp_tx_cb cb, void *arg) {
  return tx_start(tx, OP_COMMIT, cb, arg);
}

int kwp_txproducer_in_txn(const kwp_txproducer_t *tx) {
  return tx->in_txn;
}

void kwp_txproducer_close(kwp_txproducer_t *tx) {
  tx->closing = 1;
  tx->cb = NULL;
  if (tx->waiting)
    wait_end(tx); /* never initialised: nothing of it to commit */
  else
    closing_add(tx);
  /* A running operation starts the close when it ends (tx_after). */
  if (!tx->busy && tx_start(tx, OP_CLOSE, NULL, NULL) != 0) {
    tx->refs++; /* released by tx_bridge_closed */
    kwp_kbridge_close(tx->kb, tx_bridge_closed, tx);
    tx->kb = NULL;
  }
  tx_unref(tx); /* the owner's reference */
}
