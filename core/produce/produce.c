/* The produce path of a producer socket: each client message, decoded by
 * the socket's payload format (codec/payload.h), becomes a Kafka record on
 * the worker's shared producer (or the socket's transactional one), and
 * gets exactly one result, in input order, after Kafka acknowledged it.
 * In-flight records are bounded per socket (reading pauses when full), as
 * is the client's rate; SIGTERM lets what is in flight finish. No wire
 * format here. Worker thread only. */
#include "core/produce/produce.h"

#include "codec/ws/ws.h"
#include "core/base/error.h"
#include "core/base/log.h"
#include "core/base/sbuf.h"
#include "core/config/limits.h"
#include "core/endpoint/params.h"
#include "core/endpoint/ratelimit.h"
#include "core/kafka/kafka.h"
#include "core/kafka/kproducer.h"
#include "core/kafka/txproducer.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define PARAM_MAX KWP_PARAM_MAX

typedef struct kwp_produce produce_sess_t;

#define SLOT_ID_INLINE 40

typedef struct produce_slot {
  kwp_delivery_t dv; /* first: the delivery report finds the slot */
  produce_sess_t *sess;
  char *message; /* err: what happened (malloc'd; NULL: its strerror) */
  char *id_heap; /* the record's tag when longer than id_inline */
  size_t bytes, id_len;
  int64_t offset, timestamp;
  int32_t partition;
  int err; /* 0, or the KWP_E* of its result */
  uint8_t done, has_id;
  uint8_t in_txn; /* held back until its transaction commits */
  char id_inline[SLOT_ID_INLINE];
} produce_slot_t;

struct kwp_produce {
  kwp_conn_t *conn;          /* NULL once the socket is gone */
  kwp_claim_handle_t *claim; /* producer sessions: this instance's place */
  kwp_upgrade_t *up;         /* pending upgrade, until answered */
  int refs;                  /* socket + records in flight + open timer; plain
                                int: only the owning worker touches it */
  kwp_worker_t *wk;
  const kwp_config_t *cfg;
  kwp_kproducer_t *kp;
  rd_kafka_topic_t *rkt; /* kp's handle of topic */
  char client_id[PARAM_MAX], topic[PARAM_MAX], instance_id[PARAM_MAX];
  const kwp_payload_t *fmt;
  kwp_payload_opts_t opts;
  kwp_sr_opts_t sr; /* avro_registry: the writer schemas */
  kwp_schema_ref_t key_ref, val_ref;
  kwp_sbuf_t out;             /* the result frames of one flush */
  kwp_after_batch_t flush_ab; /* one flush per batch of delivery reports */
  produce_slot_t *cur;        /* the slot of the message being decoded */
  produce_slot_t *ring;
  size_t cap, head, count, bytes, max_bytes;
  kwp_rate_t *rate;
  uv_timer_t rate_timer;
  /* Exactly-once sockets only. */
  int transactional, committing;
  kwp_txproducer_t *tx;
  size_t txn_count;
  uv_timer_t txn_timer;
  int shutting_down; /* SIGTERM: closes once every result is sent */
};

static void sess_unref(produce_sess_t *s) {
  if (--s->refs > 0)
    return;
  for (size_t i = 0; i < s->count; i++) {
    free(s->ring[(s->head + i) % s->cap].message);
    free(s->ring[(s->head + i) % s->cap].id_heap);
  }
  if (s->rate)
    kwp_rate_release(s->rate);
  kwp_admission_release(kwp_worker_admission(s->wk), s->claim);
  kwp_sbuf_free(&s->out);
  free(s->ring);
  free(s);
}

static const char *slot_id(const produce_slot_t *slot) {
  if (!slot->has_id)
    return NULL;
  return slot->id_heap ? slot->id_heap : slot->id_inline;
}

/* Keep the record's tag (the client's id) until the result is sent. */
static void slot_set_id(produce_slot_t *slot, const char *tag, size_t len) {
  char *d = slot->id_inline;
  if (!tag)
    return;
  if (len > SLOT_ID_INLINE && !(d = slot->id_heap = malloc(len)))
    return; /* out of memory: the result says none */
  memcpy(d, tag, len);
  slot->id_len = len;
  slot->has_id = 1;
}

/* The slot failed with @p err; @p message is copied (NULL: its text). */
static void slot_set_err(produce_slot_t *slot, int err, const char *message) {
  free(slot->message);
  slot->err = err;
  slot->message = message ? strdup(message) : NULL;
}

/* --- results, in input order --- */

/* Frame the result of @p slot at the end of s->out, in the socket's
 * payload format (out of memory: s->out.oom closes the socket). */
static void frame_result(produce_sess_t *s, const produce_slot_t *slot) {
  kwp_presult_t r = {
      .err = slot->err,
      .message = slot->message ? slot->message : kwp_strerror(slot->err),
      .partition = slot->partition,
      .offset = slot->offset,
      .timestamp = slot->timestamp,
      .tag = slot_id(slot),
      .tag_len = slot->id_len,
  };
  size_t at = kwp_ws_frame_open(&s->out);
  s->fmt->produce_result(&s->out, &s->opts, &r);
  kwp_ws_frame_close(&s->out, at, s->fmt->opcode);
}

/* Send every result that is ready, oldest first, in one write. */
static void sess_flush(produce_sess_t *s) {
  s->out.len = 0;
  while (s->count && s->ring[s->head].done) {
    produce_slot_t *slot = &s->ring[s->head];
    if (s->conn)
      frame_result(s, slot);
    free(slot->message);
    free(slot->id_heap);
    s->bytes -= slot->bytes;
    s->head = (s->head + 1) % s->cap;
    s->count--;
  }
  if (s->conn && s->out.oom) /* a missing result would shift all later */
    kwp_conn_ws_close(s->conn, KWP_ENOMEM, "out of memory");
  else if (s->conn && s->out.len)
    kwp_conn_ws_send_framed(s->conn, s->out.data, s->out.len);
  s->out.oom = 0;
  if (s->out.cap > 1 << 20) /* a burst's buffer is not kept */
    kwp_sbuf_free(&s->out);
  if (s->conn && s->count <= s->cap / 2 && s->bytes <= s->max_bytes / 2)
    kwp_conn_resume(s->conn, KWP_PAUSE_HANDLER);
  if (s->conn && s->shutting_down && s->count == 0)
    kwp_conn_ws_close(s->conn, KWP_ESHUTDOWN, "server shutting down");
}

static void slot_delivered(kwp_delivery_t *dv, const rd_kafka_message_t *rkm) {
  produce_slot_t *slot = (produce_slot_t *)dv;
  produce_sess_t *s = slot->sess;
  if (rkm->err) {
    slot_set_err(slot, kwp_kafka_err(rkm->err), rd_kafka_err2str(rkm->err));
  } else {
    slot->partition = rkm->partition;
    slot->offset = rkm->offset;
    slot->timestamp = rd_kafka_message_timestamp(rkm, NULL);
  }
  if (!slot->in_txn) {
    slot->done = 1;
    if (!s->kp) {
      sess_flush(s);
    } else if (!s->flush_ab.queued) { /* the flush holds a reference */
      s->refs++;
      kwp_kproducer_after_batch(s->kp, &s->flush_ab);
    }
  }
  sess_unref(s);
}

static void flush_after_batch(kwp_after_batch_t *ab) {
  produce_sess_t *s =
      (produce_sess_t *)((char *)ab - offsetof(produce_sess_t, flush_ab));
  sess_flush(s);
  sess_unref(s);
}

/* --- messages --- */

static produce_slot_t *sess_slot(produce_sess_t *s, size_t bytes) {
  produce_slot_t *slot = &s->ring[(s->head + s->count) % s->cap];
  memset(slot, 0, sizeof(*slot));
  slot->sess = s;
  slot->bytes = bytes;
  slot->dv.done = slot_delivered;
  s->count++;
  s->bytes += bytes;
  return slot;
}

static void slot_fail(produce_sess_t *s, produce_slot_t *slot, int err,
                      const char *message) {
  slot_set_err(slot, err, message);
  slot->done = 1;
  KWP_LOG_RL(KWP_LOG_DEBUG, "ws", "#%llu %s: %s: %s",
             (unsigned long long)kwp_conn_id(s->conn), kwp_conn_peer(s->conn),
             kwp_err_result_code(err), message);
}

static rd_kafka_headers_t *rec_headers(const kwp_precord_t *r) {
  if (!r->nheaders)
    return NULL;
  rd_kafka_headers_t *h = rd_kafka_headers_new(r->nheaders);
  for (size_t i = 0; i < r->nheaders; i++)
    rd_kafka_header_add(h, r->headers[i].key, (ssize_t)r->headers[i].key_len,
                        r->headers[i].value, (ssize_t)r->headers[i].value_len);
  return h;
}

/* --- exactly-once: results are sent after their transaction commits --- */

static void txn_committed(void *arg, int err, const char *reason) {
  produce_sess_t *s = arg;
  char msg[320];
  s->committing = 0;
  s->txn_count = 0;
  snprintf(msg, sizeof(msg), "transaction aborted: %s", reason);
  for (size_t i = 0; i < s->count; i++) {
    produce_slot_t *slot = &s->ring[(s->head + i) % s->cap];
    if (!slot->in_txn)
      continue;
    slot->in_txn = 0;
    slot->done = 1;
    if (err) /* nothing of this transaction is visible to consumers */
      slot_set_err(slot, KWP_ETXN, msg);
  }
  sess_flush(s);
  if (s->conn && err) {
    KWP_LOG_RL(KWP_LOG_WARN, "kafka", "#%llu %s: %s",
               (unsigned long long)kwp_conn_id(s->conn), kwp_conn_peer(s->conn),
               msg);
    kwp_conn_ws_close(s->conn, KWP_ETXN, "transaction aborted");
  } else if (s->conn) {
    kwp_conn_resume(s->conn, KWP_PAUSE_TXN);
  }
  sess_unref(s);
}

static void txn_commit(produce_sess_t *s) {
  uv_timer_stop(&s->txn_timer);
  if (s->committing || !kwp_txproducer_in_txn(s->tx))
    return;
  if (kwp_txproducer_commit(s->tx, txn_committed, s) != 0)
    return;
  s->committing = 1;
  s->refs++;
  if (s->conn) /* the next records belong to the next transaction */
    kwp_conn_pause(s->conn, KWP_PAUSE_TXN);
}

static void txn_timer_cb(uv_timer_t *t) {
  txn_commit(t->data);
}

static void txn_added(produce_sess_t *s) {
  const kwp_config_t *cfg = s->cfg;
  if (++s->txn_count >= cfg->producer.transaction_max_messages)
    txn_commit(s);
  else if (s->txn_count == 1)
    uv_timer_start(&s->txn_timer, txn_timer_cb,
                   (uint64_t)cfg->producer.transaction_interval_ms, 0);
}

/* The payload format decoded a record: send it (the sink's record()). */
static void rec_send(void *arg, const kwp_precord_t *r) {
  produce_sess_t *s = arg;
  produce_slot_t *slot = s->cur;
  rd_kafka_resp_err_t kerr;
  kwp_krec_t kr = {.partition = r->partition,
                   .key = r->key,
                   .key_len = r->key_len,
                   .value = r->value,
                   .value_len = r->value_len,
                   .hdrs = rec_headers(r)};
  s->cur = NULL;
  slot_set_id(slot, r->tag, r->tag_len);
  int err = s->tx ? kwp_txproducer_send(s->tx, s->topic, &kr, &slot->dv, &kerr)
                  : kwp_kproducer_send(s->kp, s->rkt, &kr, &slot->dv, &kerr);
  if (err) {
    if (kr.hdrs)
      rd_kafka_headers_destroy(kr.hdrs);
    slot_fail(s, slot, err, rd_kafka_err2str(kerr));
    return;
  }
  s->refs++;
  if (s->tx) {
    slot->in_txn = 1;
    txn_added(s);
  }
}

static void rate_resume(uv_timer_t *t) {
  produce_sess_t *s = t->data;
  if (s->conn)
    kwp_conn_resume(s->conn, KWP_PAUSE_RATE);
}

/* The payload format found no record in the message (the sink's reject()):
 * its result is an error, in its place in the order. */
static void rec_reject(void *arg, const char *tag, size_t tag_len, int err,
                       const char *why) {
  produce_sess_t *s = arg;
  produce_slot_t *slot = s->cur;
  s->cur = NULL;
  slot_set_id(slot, tag, tag_len);
  slot_fail(s, slot, err, why);
}

static int produce_message(kwp_conn_t *conn, void *state, int opcode,
                           const uint8_t *data, size_t len) {
  produce_sess_t *s = state;
  kwp_precord_sink_t sink = {rec_send, rec_reject, s};
  s->cur = sess_slot(s, len);
  s->fmt->produce_decode(&s->opts, opcode, data, len, &sink);
  if (s->cur) /* a format that answered neither: never leave a gap */
    rec_reject(s, NULL, 0, KWP_EINTERNAL, "the message was not decoded");
  if (s->rate) {
    uint64_t wait = kwp_rate_take(s->rate, uv_now(kwp_worker_loop(s->wk)));
    if (wait) {
      kwp_conn_pause(conn, KWP_PAUSE_RATE);
      uv_timer_start(&s->rate_timer, rate_resume, wait, 0);
    }
  }
  if (s->count == s->cap || s->bytes > s->max_bytes)
    kwp_conn_pause(conn, KWP_PAUSE_HANDLER);
  sess_flush(s);
  return 0;
}

static void rate_timer_closed(uv_handle_t *h) {
  sess_unref(h->data);
}

static void produce_close(kwp_conn_t *conn, void *state) {
  produce_sess_t *s = state;
  kwp_admission_release(kwp_worker_admission(s->wk), s->claim);
  s->claim = NULL;
  s->conn = NULL; /* in-flight records still complete; results dropped */
  uv_close((uv_handle_t *)&s->rate_timer, rate_timer_closed);
  if (s->tx) {
    /* What the client sent is committed; then the producer goes away. */
    kwp_txproducer_close(s->tx);
    s->tx = NULL;
    uv_close((uv_handle_t *)&s->txn_timer, rate_timer_closed);
  }
  sess_unref(s);
}

static int produce_open(kwp_conn_t *conn, void **state) {
  return 0;
}

/* The grace period is over: every result still owed goes out now, in
 * order; what Kafka has not acknowledged is not_delivered (it may still be
 * stored: the producer's in-flight requests are abandoned, not undone). */
static void answer_pending(produce_sess_t *s) {
  sess_flush(s);
  s->out.len = 0;
  for (size_t i = 0; i < s->count; i++) {
    produce_slot_t slot = s->ring[(s->head + i) % s->cap];
    if (!slot.done) {
      slot.err = KWP_ENOTDELIVERED;
      slot.message =
          (char *)"the proxy shut down before Kafka acknowledged the record";
    }
    frame_result(s, &slot);
  }
  if (s->out.len && !s->out.oom)
    kwp_conn_ws_send_framed(s->conn, s->out.data, s->out.len);
  s->out.len = 0;
  s->out.oom = 0;
}

/* SIGTERM: no new messages; the socket stays until every record it sent
 * has its result (sess_flush() closes it), or the grace period ends. */
static int produce_shutdown(kwp_conn_t *conn, void *state, int final) {
  produce_sess_t *s = state;
  if (final) {
    answer_pending(s);
    return 0;
  }
  s->shutting_down = s->count > 0;
  return s->shutting_down;
}

static const kwp_ws_handler_t produce_handler = {
    .name = "produce",
    .open = produce_open,
    .message = produce_message,
    .shutdown = produce_shutdown,
    .close = produce_close,
};

/* --- opening: the upgrade pipeline's steps (core/endpoint/endpoint.h) --- */

int kwp_produce_topic_writable(const kwp_config_t *cfg, const char *topic,
                               char *msg, size_t msglen) {
  const char *reserved[] = {"__consumer_offsets", "__transaction_state",
                            cfg->session_handler.topic_name,
                            cfg->dynamic_config_handler.topic_name};
  for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
    if (reserved[i] && !strcmp(topic, reserved[i])) {
      snprintf(msg, msglen,
               "Topic %s is internal to Kafka or to the proxy and cannot be "
               "written to",
               topic);
      return KWP_EBADREQ;
    }
  }
  return 0;
}

kwp_produce_t *kwp_produce_new(kwp_worker_t *wk, const kwp_produce_conf_t *pc) {
  produce_sess_t *s = calloc(1, sizeof(*s));
  if (!s)
    return NULL;
  s->wk = wk;
  s->cfg = kwp_worker_cfg(wk);
  snprintf(s->client_id, sizeof(s->client_id), "%s", pc->client_id);
  snprintf(s->topic, sizeof(s->topic), "%s", pc->topic);
  snprintf(s->instance_id, sizeof(s->instance_id), "%s",
           pc->instance_id ? pc->instance_id : "");
  s->transactional = pc->transactional;
  s->fmt = pc->fmt;
  s->opts = (kwp_payload_opts_t){.topic = s->topic,
                                 .topic_len = strlen(s->topic),
                                 .key_fmt = pc->key_fmt,
                                 .val_fmt = pc->val_fmt};
  s->key_ref = pc->key_schema;
  s->val_ref = pc->val_schema;
  if (pc->key_fmt == KWP_FMT_AVRO_REGISTRY ||
      pc->val_fmt == KWP_FMT_AVRO_REGISTRY)
    s->opts.sr = &s->sr;
  return s;
}

const char *kwp_produce_topic(void *state) {
  return ((produce_sess_t *)state)->topic;
}

int kwp_produce_admission(void *state, int partitions, kwp_admit_req_t *req) {
  produce_sess_t *s = state;
  if (!s->cfg->producer.sessions_enabled)
    return 0;
  req->kind = KWP_ADMIT_PRODUCER;
  req->session = s->client_id;
  req->instance = s->instance_id;
  req->limit = kwp_limits_producer_sockets(s->cfg, s->client_id);
  return 1;
}

/* Free a session that never reached its socket. */
void kwp_produce_discard(void *state) {
  produce_sess_t *s = state;
  if (s->rate)
    kwp_rate_release(s->rate);
  kwp_admission_release(kwp_worker_admission(s->wk), s->claim);
  free(s->ring);
  free(s);
}

static int sess_init(produce_sess_t *s, char *msg, size_t msglen) {
  const kwp_config_t *cfg = s->cfg;
  char errbuf[256];
  int64_t mps = kwp_limits_producer_rate(cfg, s->client_id);
  s->flush_ab.fn = flush_after_batch;
  s->cap = cfg->producer.max_inflight_messages;
  s->max_bytes = cfg->producer.max_inflight_bytes;
  s->ring = calloc(s->cap, sizeof(*s->ring));
  if (mps > 0)
    s->rate = kwp_rate_acquire(s->client_id, mps);
  if (!s->transactional &&
      (s->kp = kwp_kproducer_get(s->wk, errbuf, sizeof(errbuf))))
    s->rkt = kwp_kproducer_topic(s->kp, s->topic);
  if (!s->ring || (mps > 0 && !s->rate) || (!s->rkt && !s->transactional)) {
    snprintf(msg, msglen, "Cannot start the Kafka producer: %s",
             s->kp || s->transactional ? "out of memory" : errbuf);
    return KWP_EUNAVAILABLE;
  }
  uv_timer_init(kwp_worker_loop(s->wk), &s->rate_timer);
  s->rate_timer.data = s;
  s->refs = 2; /* the socket and the timer */
  if (s->transactional) {
    uv_timer_init(kwp_worker_loop(s->wk), &s->txn_timer);
    s->txn_timer.data = s;
    s->refs++;
  }
  return 0;
}

/* The transactional producer is initialised (or not): answer the upgrade. */
static void tx_ready(void *arg, int err, const char *reason) {
  produce_sess_t *s = arg;
  kwp_upgrade_t *up = s->up;
  char msg[320];
  s->up = NULL;
  if (err) {
    snprintf(msg, sizeof(msg), "Cannot start the transactional producer: %s",
             reason);
    produce_close(s->conn, s);
    kwp_upgrade_refuse(up, KWP_EUNAVAILABLE, msg);
    return;
  }
  kwp_upgrade_accept(up, &produce_handler, s);
}

static int tx_open(produce_sess_t *s, char *msg, size_t msglen) {
  char txn_id[2 * PARAM_MAX + 2], errbuf[256];
  snprintf(txn_id, sizeof(txn_id), "%s-%s", s->client_id, s->instance_id);
  s->tx =
      kwp_txproducer_open(s->wk, txn_id, tx_ready, s, errbuf, sizeof(errbuf));
  if (s->tx)
    return 0;
  snprintf(msg, msglen, "Cannot start the transactional producer: %s", errbuf);
  return KWP_EUNAVAILABLE;
}

static void open_start(produce_sess_t *s, kwp_upgrade_t *up) {
  char msg[PARAM_MAX + 640];
  int err = sess_init(s, msg, sizeof(msg));
  if (err) {
    kwp_produce_discard(s);
    kwp_upgrade_refuse(up, err, msg);
  } else if (!s->transactional) {
    kwp_upgrade_accept(up, &produce_handler, s);
  } else if ((err = tx_open(s, msg, sizeof(msg))) != 0) {
    produce_close(s->conn, s);
    kwp_upgrade_refuse(up, err, msg);
  } else {
    s->up = up; /* tx_ready() answers */
  }
}

/* --- avro_registry: the writer schemas, before the upgrade answers --- */

static void schema_next(produce_sess_t *s);

static void schema_found(void *arg, int err, const kwp_schema_t *sch,
                         const char *message) {
  produce_sess_t *s = arg;
  char msg[PARAM_MAX + 320];
  if (err) {
    kwp_upgrade_t *up = s->up;
    s->up = NULL;
    snprintf(msg, sizeof(msg), "Schema registry: %s", message);
    kwp_produce_discard(s);
    /* what the client named does not exist or is no Avro schema: its
     * request is wrong; anything else is the registry's trouble */
    kwp_upgrade_refuse(up,
                       err == KWP_ENOTFOUND || err == KWP_EBADVALUE
                           ? KWP_EBADREQ
                           : KWP_EUNAVAILABLE,
                       msg);
    return;
  }
  kwp_sr_writer_t *w =
      s->sr.key.schema || s->opts.key_fmt != KWP_FMT_AVRO_REGISTRY
          ? &s->sr.value
          : &s->sr.key;
  w->id = sch->id;
  w->schema = sch->avro;
  schema_next(s);
}

/* Look up the next writer schema not known yet; open once all are. */
static void schema_next(produce_sess_t *s) {
  kwp_registry_t *reg = kwp_worker_registry(s->wk);
  uv_loop_t *loop = kwp_worker_loop(s->wk);
  const kwp_schema_ref_t *ref = NULL;
  if (s->opts.key_fmt == KWP_FMT_AVRO_REGISTRY && !s->sr.key.schema)
    ref = &s->key_ref;
  else if (s->opts.val_fmt == KWP_FMT_AVRO_REGISTRY && !s->sr.value.schema)
    ref = &s->val_ref;
  if (!ref) {
    kwp_upgrade_t *up = s->up;
    s->up = NULL;
    open_start(s, up);
    return;
  }
  int rc = ref->id > 0 ? kwp_registry_by_id(reg, loop, ref->id, schema_found, s)
                       : kwp_registry_by_subject(reg, loop, ref->subject,
                                                 ref->version, schema_found, s);
  if (rc != 0)
    schema_found(s, KWP_EUNAVAILABLE, NULL, kwp_strerror(rc));
}

void kwp_produce_open(kwp_upgrade_t *up, void *state,
                      kwp_claim_handle_t *claim) {
  produce_sess_t *s = state;
  s->claim = claim;
  s->conn = kwp_upgrade_conn(up);
  if (s->opts.sr) {
    s->up = up; /* schema_found() answers */
    schema_next(s);
  } else {
    open_start(s, up);
  }
}
