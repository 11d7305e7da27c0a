/* GET /socket/in: the JSON producer endpoint. Validates the upgrade, then
 * turns each text message into a Kafka record on the worker's shared
 * producer and answers with exactly one result frame per message, in input
 * order, after Kafka acknowledged it. In-flight records are bounded per
 * socket (reading pauses when full). Worker thread only. */
#include "codec/json/produce.h"
#include "codec/json/consume.h"
#include "codec/ws/ws.h"
#include "core/base/error.h"
#include "core/base/log.h"
#include "core/endpoint/endpoint.h"
#include "core/endpoint/params.h"
#include "core/endpoint/ratelimit.h"
#include "core/kafka/kafka.h"
#include "core/kafka/kproducer.h"
#include "core/kafka/txproducer.h"
#include "core/net/query.h"
#include "session/session.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define PARAM_MAX KWP_PARAM_MAX

typedef struct produce_sess produce_sess_t;

#define SLOT_ID_INLINE 40

typedef struct produce_slot {
  kwp_delivery_t dv; /* first: the delivery report finds the slot */
  produce_sess_t *sess;
  char *result;  /* an error frame; a success frame is built when sent */
  char *id_heap; /* the client's messageId when longer than id_inline */
  size_t bytes, id_len;
  int64_t offset, timestamp;
  int32_t partition;
  uint8_t done, ok, has_id;
  uint8_t in_txn; /* held back until its transaction commits */
  char id_inline[SLOT_ID_INLINE];
} produce_slot_t;

struct produce_sess {
  kwp_conn_t *conn;           /* NULL once the socket is gone */
  kwp_session_claim_t *claim; /* producer sessions: this instance's place */
  kwp_upgrade_cb done;        /* pending upgrade, until answered */
  int refs;                   /* socket + records in flight + open timer; plain
                                 int: only the owning worker touches it */
  kwp_worker_t *wk;
  kwp_kproducer_t *kp;
  rd_kafka_topic_t *rkt; /* kp's handle of topic */
  char client_id[PARAM_MAX], topic[PARAM_MAX], instance_id[PARAM_MAX];
  size_t topic_len;
  kwp_sbuf_t out;             /* the result frames of one flush */
  kwp_after_batch_t flush_ab; /* one flush per batch of delivery reports */
  kwp_fmt_t key_fmt, val_fmt;
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
    free(s->ring[(s->head + i) % s->cap].result);
    free(s->ring[(s->head + i) % s->cap].id_heap);
  }
  if (s->rate)
    kwp_rate_release(s->rate);
  kwp_session_release(kwp_worker_ctx(s->wk)->session, s->claim);
  kwp_sbuf_free(&s->out);
  free(s->ring);
  free(s);
}

static const char *slot_id(const produce_slot_t *slot) {
  if (!slot->has_id)
    return NULL;
  return slot->id_heap ? slot->id_heap : slot->id_inline;
}

/* Keep the client's messageId (its JSON text) until the result is sent. */
static void slot_set_id(produce_slot_t *slot, kwp_slice_t id) {
  char *d = slot->id_inline;
  if (!id.ptr)
    return;
  if (id.len > SLOT_ID_INLINE && !(d = slot->id_heap = malloc(id.len)))
    return; /* out of memory: the result says null */
  memcpy(d, id.ptr, id.len);
  slot->id_len = id.len;
  slot->has_id = 1;
}

/* --- results, in input order --- */

/* Frame the result of @p slot at the end of s->out: the payload goes
 * behind room for the longest header, then moves up to its real one. */
static void frame_result(produce_sess_t *s, const produce_slot_t *slot) {
  size_t max = slot->result
                   ? strlen(slot->result)
                   : KWP_PRODUCE_RESULT_OK_MAX(s->topic_len, slot->id_len);
  char *d = kwp_sbuf_reserve(&s->out, max + 10);
  if (!d)
    return; /* out of memory: s->out.oom closes the socket */
  size_t n;
  if (slot->result) {
    n = max;
    memcpy(d + 10, slot->result, n);
  } else {
    n = kwp_produce_result_ok(d + 10, s->topic, s->topic_len, slot->partition,
                              slot->offset, slot->timestamp, slot_id(slot),
                              slot->id_len);
  }
  uint8_t hdr[10];
  size_t h = kwp_ws_header_encode(hdr, KWP_WS_TEXT, 1, n);
  memmove(d + h, d + 10, n);
  memcpy(d, hdr, h);
  s->out.len += h + n;
}

/* Send every result that is ready, oldest first, in one write. */
static void sess_flush(produce_sess_t *s) {
  s->out.len = 0;
  while (s->count && s->ring[s->head].done) {
    produce_slot_t *slot = &s->ring[s->head];
    if (s->conn && (slot->ok || slot->result))
      frame_result(s, slot);
    free(slot->result);
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

static const char *kafka_err_code(rd_kafka_resp_err_t err) {
  switch (err) {
  case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    return "delivery_timeout";
  case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    return "message_too_large";
  case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
  case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
  case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    return "topic_not_found";
  case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
  case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
    return "not_delivered";
  case RD_KAFKA_RESP_ERR__QUEUE_FULL:
    return "busy";
  default:
    return "kafka_error";
  }
}

static void slot_delivered(kwp_delivery_t *dv, const rd_kafka_message_t *rkm) {
  produce_slot_t *slot = (produce_slot_t *)dv;
  produce_sess_t *s = slot->sess;
  if (rkm->err) {
    slot->result = kwp_produce_result_err(slot_id(slot), slot->id_len,
                                          kafka_err_code(rkm->err),
                                          rd_kafka_err2str(rkm->err));
  } else {
    slot->ok = 1;
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

static void slot_fail(produce_sess_t *s, produce_slot_t *slot, kwp_slice_t id,
                      const char *code, const char *message) {
  slot->result = kwp_produce_result_err(id.ptr, id.len, code, message);
  slot->done = 1;
  KWP_LOG_RL(KWP_LOG_DEBUG, "ws", "#%llu %s: %s: %s",
             (unsigned long long)kwp_conn_id(s->conn), kwp_conn_peer(s->conn),
             code, message);
}

static rd_kafka_headers_t *msg_headers(const kwp_produce_msg_t *m) {
  if (!m->nheaders)
    return NULL;
  rd_kafka_headers_t *h = rd_kafka_headers_new(m->nheaders);
  for (size_t i = 0; i < m->nheaders; i++)
    rd_kafka_header_add(h, m->headers[i].key, (ssize_t)m->headers[i].key_len,
                        m->headers[i].value, (ssize_t)m->headers[i].value_len);
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
    if (err) { /* nothing of this transaction is visible to consumers */
      free(slot->result);
      slot->ok = 0;
      slot->result = kwp_produce_result_err(slot_id(slot), slot->id_len,
                                            "transaction_aborted", msg);
    }
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
  const kwp_config_t *cfg = kwp_worker_ctx(s->wk)->cfg;
  if (++s->txn_count >= cfg->producer.transaction_max_messages)
    txn_commit(s);
  else if (s->txn_count == 1)
    uv_timer_start(&s->txn_timer, txn_timer_cb,
                   (uint64_t)cfg->producer.transaction_interval_ms, 0);
}

static void msg_send(produce_sess_t *s, produce_slot_t *slot,
                     kwp_produce_msg_t *m) {
  rd_kafka_headers_t *h = msg_headers(m);
  const void *key = m->has_key ? m->key.ptr : NULL;
  size_t key_len = m->has_key ? m->key.len : 0;
  slot_set_id(slot, m->message_id);
  int err = s->tx
                ? kwp_txproducer_send(s->tx, s->topic, key, key_len,
                                      m->value.ptr, m->value.len, h, &slot->dv)
                : kwp_kproducer_send(s->kp, s->rkt, key, key_len, m->value.ptr,
                                     m->value.len, h, &slot->dv);
  if (err) {
    if (h)
      rd_kafka_headers_destroy(h);
    slot_fail(s, slot, m->message_id, kafka_err_code(err),
              rd_kafka_err2str(err));
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

static int produce_message(kwp_conn_t *conn, void *state, int opcode,
                           const uint8_t *data, size_t len) {
  produce_sess_t *s = state;
  kwp_produce_msg_t m;
  const char *code;
  char why[256];
  produce_slot_t *slot = sess_slot(s, len);
  if (opcode != KWP_WS_TEXT) {
    slot_fail(s, slot, (kwp_slice_t){NULL, 0}, KWP_PERR_UNSUPPORTED_FRAME,
              "binary frames are not accepted with socketPayload=json");
  } else if (kwp_produce_msg_parse((const char *)data, len, s->key_fmt,
                                   s->val_fmt, &m, &code, why,
                                   sizeof(why)) != 0) {
    slot_fail(s, slot, m.message_id, code, why);
    kwp_produce_msg_clear(&m);
  } else {
    msg_send(s, slot, &m);
    kwp_produce_msg_clear(&m);
  }
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
  kwp_session_release(kwp_worker_ctx(s->wk)->session, s->claim);
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
    produce_slot_t *slot = &s->ring[(s->head + i) % s->cap];
    char *keep = slot->result, *owed = NULL;
    if (!slot->done &&
        !(slot->result = owed = kwp_produce_result_err(
              slot_id(slot), slot->id_len, "not_delivered",
              "the proxy shut down before Kafka acknowledged the record")))
      break;
    if (slot->ok || slot->result)
      frame_result(s, slot);
    slot->result = keep;
    free(owed);
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

/* --- upgrade validation --- */

static int transactional_param(produce_sess_t *s, const char *url, int *err,
                               char *msg, size_t msglen) {
  const kwp_config_t *cfg = kwp_worker_ctx(s->wk)->cfg;
  char v[PARAM_MAX];
  int r = kwp_param(url, "transactional", v, err, msg, msglen);
  if (r < 0)
    return -1;
  int tx = r > 0 ? kwp_query_bool(v) : 0;
  *err = KWP_EBADREQ;
  if (tx < 0) {
    snprintf(msg, msglen, "'%s' is not a valid boolean value", v);
    return -1;
  }
  if (tx &&
      !(cfg->producer.sessions_enabled && cfg->producer.exactly_once_enabled)) {
    snprintf(msg, msglen,
             "Unable to provide transactional producer. Server "
             "is not configured to allow producer transactions.");
    return -1;
  }
  if (tx && !*s->instance_id) {
    snprintf(msg, msglen,
             "Request param 'instanceId' is required when using "
             "transactional.");
    return -1;
  }
  s->transactional = tx;

  if (cfg->producer.sessions_enabled && !*s->instance_id) {
    snprintf(msg, msglen,
             "Request param 'instanceId' is required when "
             "producer sessions are enabled on the proxy server.");
    return -1;
  }
  return 0;
}

/* Topics no client may write: Kafka's own and the proxy's. A forged session
 * record would count against a group's limit for good, a forged heartbeat
 * stop a node from starting. */
static int reserved_topic(produce_sess_t *s, int *err, char *msg,
                          size_t msglen) {
  const kwp_config_t *cfg = kwp_worker_ctx(s->wk)->cfg;
  const char *reserved[] = {"__consumer_offsets", "__transaction_state",
                            cfg->session_handler.topic_name,
                            cfg->dynamic_config_handler.topic_name};
  for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
    if (reserved[i] && !strcmp(s->topic, reserved[i])) {
      *err = KWP_EBADREQ;
      snprintf(msg, msglen,
               "Topic %s is internal to Kafka or to the proxy and cannot be "
               "written to",
               s->topic);
      return -1;
    }
  }
  return 0;
}

static int parse_params(produce_sess_t *s, const char *url, int *err, char *msg,
                        size_t msglen) {
  s->val_fmt = KWP_FMT_STRING;
  if (kwp_param_required(url, "clientId", s->client_id, err, msg, msglen) < 0 ||
      kwp_param_topic(url, s->topic, err, msg, msglen) < 0 ||
      reserved_topic(s, err, msg, msglen) < 0 ||
      kwp_param_payload(url, err, msg, msglen) < 0 ||
      kwp_param_format(url, "keyType", &s->key_fmt, err, msg, msglen) < 0 ||
      kwp_param_format(url, "valType", &s->val_fmt, err, msg, msglen) < 0 ||
      kwp_param(url, "instanceId", s->instance_id, err, msg, msglen) < 0 ||
      transactional_param(s, url, err, msg, msglen) < 0)
    return -1;
  return 0;
}

static int64_t producer_rate(const kwp_config_t *cfg, const char *client_id) {
  const kwp_limits_t *l = &cfg->producer.limits;
  for (size_t i = 0; i < l->client_specific_count; i++)
    if (!strcmp(l->client_specific[i].id, client_id) &&
        l->client_specific[i].messages_per_second >= 0)
      return l->client_specific[i].messages_per_second;
  return l->default_messages_per_second;
}

/* Free a session that never reached its socket. */
static void sess_discard(produce_sess_t *s) {
  if (s->rate)
    kwp_rate_release(s->rate);
  kwp_session_release(kwp_worker_ctx(s->wk)->session, s->claim);
  free(s->ring);
  free(s);
}

static int sess_init(produce_sess_t *s, char *msg, size_t msglen) {
  const kwp_config_t *cfg = kwp_worker_ctx(s->wk)->cfg;
  char errbuf[256];
  int64_t mps = producer_rate(cfg, s->client_id);
  s->topic_len = strlen(s->topic);
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
  kwp_upgrade_cb done = s->done;
  kwp_conn_t *conn = s->conn;
  char msg[320];
  if (err) {
    snprintf(msg, sizeof(msg), "Cannot start the transactional producer: %s",
             reason);
    produce_close(conn, s);
    done(conn, NULL, NULL, KWP_EUNAVAILABLE, msg);
    return;
  }
  done(conn, &produce_handler, s, 0, NULL);
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

/* Set up the producer and answer the upgrade (or let tx_ready() answer). */
static void sess_open(produce_sess_t *s, int err, char *msg, size_t msglen) {
  if (!err)
    err = sess_init(s, msg, msglen);
  kwp_upgrade_cb done = s->done;
  kwp_conn_t *conn = s->conn;
  if (err) {
    sess_discard(s);
    done(conn, NULL, NULL, err, msg);
    return;
  }
  if (!s->transactional) {
    done(conn, &produce_handler, s, 0, NULL);
  } else if ((err = tx_open(s, msg, msglen)) != 0) {
    produce_close(conn, s);
    done(conn, NULL, NULL, err, msg);
  } /* else tx_ready() answers */
}

/* producer.sessions-enabled: the cluster's verdict on this instance. */
static void admitted(void *arg, int err, const char *message,
                     kwp_session_claim_t *claim) {
  produce_sess_t *s = arg;
  char msg[PARAM_MAX + 640];
  s->claim = claim;
  snprintf(msg, sizeof(msg), "%s", message);
  sess_open(s, err, msg, sizeof(msg));
}

static void topic_checked(void *arg, int partitions) {
  produce_sess_t *s = arg;
  char msg[PARAM_MAX + 640];
  int err = 0;
  const kwp_config_t *cfg = kwp_worker_ctx(s->wk)->cfg;
  kwp_session_t *ss = kwp_worker_ctx(s->wk)->session;
  if (partitions == KWP_ENOTFOUND) {
    err = KWP_EBADREQ;
    snprintf(msg, sizeof(msg), "Topic %s does not exist", s->topic);
  } else if (partitions < 0) {
    err = KWP_EUNAVAILABLE;
    snprintf(msg, sizeof(msg), "Kafka cluster is unreachable");
  } else if (cfg->producer.sessions_enabled) {
    err = kwp_session_admit(
        ss, s->wk, KWP_SESSION_PRODUCER, s->client_id, s->instance_id,
        kwp_session_producer_limit(cfg, s->client_id), admitted, s);
    if (!err)
      return; /* admitted() goes on */
    kwp_session_refusal(ss, err, msg, sizeof(msg));
  }
  sess_open(s, err, msg, sizeof(msg));
}

void kwp_produce_upgrade(kwp_conn_t *conn, const char *url,
                         kwp_upgrade_cb done) {
  char msg[PARAM_MAX + 128];
  int err = KWP_ENOMEM;
  produce_sess_t *s = calloc(1, sizeof(*s));
  if (s)
    s->wk = kwp_conn_worker(conn);
  if (!s || parse_params(s, url, &err, msg, sizeof(msg)) != 0) {
    if (!s)
      snprintf(msg, sizeof(msg), "Internal server error");
    free(s);
    done(conn, NULL, NULL, err, msg);
    return;
  }
  s->conn = conn;
  s->done = done;
  kwp_ctx_t *ctx = kwp_worker_ctx(s->wk);
  if (kwp_kafka_topic_lookup(ctx->kafka, kwp_worker_loop(s->wk), s->topic,
                             topic_checked, s) != 0) {
    free(s);
    done(conn, NULL, NULL, KWP_EINTERNAL, "Internal server error");
  }
}
