/* The consume path of a consumer socket. Each socket owns a Kafka
 * consumer (a member of its groupId) whose two queues (records; everything
 * else) reach the worker loop through event bridges. Records become frames
 * written in one write per drain; when the socket's unsent bytes pass the
 * bound, or the rate limit is reached, the records' queue is held, and after
 * consumer.pause-after the partitions are paused (librdkafka then drops what
 * it prefetched and resumes at the next record), so memory stays bounded.
 * Commits: the commit handler (autoCommit=false) or the offsets of records the
 * kernel took (autoCommit=true), always asynchronous; when the socket closes
 * they are written before the consumer leaves the group. Worker thread only. */
#include "codec/ws/ws.h"
#include "core/base/error.h"
#include "core/base/log.h"
#include "core/consume/consume_int.h"

#include <stdlib.h>
#include <string.h>

static void rec_free(const held_rec_t *h) {
  if (h->ev)
    rd_kafka_event_destroy(h->ev);
  else
    rd_kafka_message_destroy(h->m);
}

void kwp_consume__unref(consume_sess_t *s) {
  if (--s->refs > 0)
    return;
  for (size_t i = 0; i < s->nheld; i++)
    rec_free(&s->held[i]);
  if (s->rate_sock)
    kwp_rate_release(s->rate_sock);
  if (s->rate_group)
    kwp_rate_release(s->rate_group);
  kwp_admission_release(kwp_worker_admission(s->wk), s->claim);
  kwp_commit_free(s->stack);
  kwp_sbuf_free(&s->out);
  kwp_written_free(s->written);
  kwp_cgate_free(s->gate);
  if (s->assigned)
    rd_kafka_topic_partition_list_destroy(s->assigned);
  if (s->sought)
    rd_kafka_topic_partition_list_destroy(s->sought);
  free(s->held);
  free(s->pqs); /* emptied by purge_partition_queues() */
  free(s);
}

static uint64_t now_ms(consume_sess_t *s) {
  return uv_now(kwp_worker_loop(s->wk));
}

static void sess_fail(consume_sess_t *s, int err, const char *why) {
  if (!s->conn)
    return;
  KWP_LOG_RL(KWP_LOG_WARN, "kafka", "#%llu %s: consumer %s of group %s: %s",
             (unsigned long long)kwp_conn_id(s->conn), kwp_conn_peer(s->conn),
             s->client_id, s->group_id, why);
  kwp_conn_ws_close(s->conn, err, why);
}

/* --- pausing the partitions --- */

/* A socket over its send bound or its rate first only stops taking records
 * from msgq (its bridge is held): librdkafka's queue bounds itself and the
 * records it holds go out as soon as the socket has room. Pausing the
 * partitions at once, as we did, made librdkafka drop what it had
 * prefetched (up to 4 MB) and fetch it again on resume; and that fetch
 * waited behind the one in flight, which at a partition's end is a long
 * poll of up to fetch.wait.max.ms (500 ms): with 16 sockets reading a
 * backlog, the last records came half a second late. The consumer's own
 * queue is never held, so rebalances, commit results and errors are served
 * at once (when both shared one queue, a rebalance waited behind the held
 * records until the pause). A socket held for consumer.pause-after gets its
 * partitions paused, which frees what librdkafka prefetched for it. */

static void fetch_restart(consume_sess_t *s);
static void kick_watch(consume_sess_t *s);

static void partitions_pause(consume_sess_t *s, int pause) {
  if (s->assigned && s->assigned->cnt) {
    if (pause)
      rd_kafka_pause_partitions(s->rk, s->assigned);
    else
      rd_kafka_resume_partitions(s->rk, s->assigned);
  }
  s->kpaused = pause;
  /* A resume does not wake librdkafka 2.0's fetcher either (fetch_restart()).
   */
  if (!pause && s->kick_bytes)
    fetch_restart(s);
}

/* Held too long: pause the partitions and serve the queue again (records
 * already fetched are kept by on_fetch() for the resume). */
static void hold_over(uv_timer_t *t) {
  consume_sess_t *s = t->data;
  if (!s->paused || s->state != ST_OPEN)
    return;
  partitions_pause(s, 1);
  kwp_kbridge_hold(s->kb_msgs, 0);
}

void kwp_consume__pause_set(consume_sess_t *s, int bit) {
  if (!s->paused) {
    kwp_kbridge_hold(s->kb_msgs, 1);
    uv_timer_start(&s->hold_timer, hold_over,
                   (uint64_t)s->cfg->consumer.pause_after_ms, 0);
  }
  s->paused |= bit;
}

static void release_held(consume_sess_t *s);

void kwp_consume__pause_clear(consume_sess_t *s, int bit) {
  if (!(s->paused & bit))
    return;
  s->paused &= ~bit;
  if (s->paused || s->state != ST_OPEN)
    return;
  release_held(s);
  if (s->paused)
    return; /* what was held filled the socket or the rate again */
  uv_timer_stop(&s->hold_timer);
  if (s->kpaused)
    partitions_pause(s, 0); /* seeks, which restarts the fetcher */
  else if (s->q_full)
    kick_watch(s); /* its queue filled while held: the fetcher stopped */
  kwp_kbridge_hold(s->kb_msgs, 0);
}

/* --- commits --- */

typedef struct sent {
  size_t n;
  kwp_commit_pos_t pos[];
} sent_t;

/* Send commits the gate let through (in flight for their partitions). */
static void commit_now(consume_sess_t *s, const kwp_commit_pos_t *pos,
                       size_t n) {
  if (!n)
    return;
  rd_kafka_topic_partition_list_t *l =
      rd_kafka_topic_partition_list_new((int)n);
  for (size_t i = 0; i < n; i++)
    rd_kafka_topic_partition_list_add(l, s->topic, pos[i].partition)->offset =
        pos[i].offset;
  /* What was sent travels with the request: the result must release every
   * partition of it, whatever librdkafka reports. */
  sent_t *sent = malloc(sizeof(*sent) + n * sizeof(*pos));
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__FAIL;
  if (sent) {
    sent->n = n;
    memcpy(sent->pos, pos, n * sizeof(*pos));
    err = rd_kafka_commit_queue(s->rk, l, s->rkq, NULL, sent);
  }
  rd_kafka_topic_partition_list_destroy(l);
  if (!err) {
    s->commits_inflight++;
    return;
  }
  free(sent);
  s->commit_failures++;
  KWP_LOG_RL(KWP_LOG_WARN, "kafka", "group %s: commit failed: %s", s->group_id,
             rd_kafka_err2str(err));
  for (size_t i = 0; i < n; i++) /* never sent: nothing in flight */
    kwp_cgate_done(s->gate, pos[i].partition, pos[i].offset, 2);
}

/* Commit, one at a time per partition and in order (see commit/gate.h). */
static void commit_send(consume_sess_t *s, const kwp_commit_pos_t *pos,
                        size_t n) {
  kwp_commit_pos_t now[64];
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (kwp_cgate_request(s->gate, pos[i].partition, pos[i].offset))
      now[k++] = pos[i];
    if (k == 64) {
      commit_now(s, now, k);
      k = 0;
    }
  }
  commit_now(s, now, k);
}

/* autoCommit=true: commit what the kernel took since the last commit. */
static void commit_written(consume_sess_t *s, int32_t only) {
  kwp_commit_pos_t pos[64];
  size_t n;
  if (s->conn)
    kwp_written_advance(s->written, kwp_conn_tx_written(s->conn));
  while ((n = kwp_written_take(s->written, only, pos, 64)) > 0)
    commit_send(s, pos, n);
}

static void topic_gone_check(consume_sess_t *s, int again);
static int topic_unknown(rd_kafka_resp_err_t err);

void kwp_consume__commit_tick(uv_timer_t *t) {
  consume_sess_t *s = t->data;
  if (s->state != ST_OPEN)
    return;
  /* librdkafka takes a member that has not polled its consumer queue for
   * max.poll.interval.ms (5 min) for a dead application and leaves the
   * group, and the queue is otherwise polled only when an event arrives: a
   * socket with nothing new to read was dropped from its group every 5
   * minutes, and got everything since its last commit again. */
  kwp_kbridge_drain(s->kb);
  if (atomic_exchange(&s->topic_err, 0))
    topic_gone_check(s, 0);
  if (s->topic_recheck_at && now_ms(s) >= s->topic_recheck_at) {
    s->topic_recheck_at = 0;
    topic_gone_check(s, 1);
  }
  s->commit_since_ms += s->tick_ms;
  if (s->commit_every_ms <= 0 || s->commit_since_ms < s->commit_every_ms)
    return;
  s->commit_since_ms = 0;
  if (s->auto_commit) {
    commit_written(s, -1);
  } else { /* commit-handler.auto-commit-enabled: commit what got old */
    kwp_commit_pos_t pos[64];
    size_t n = kwp_commit_take_older(
        s->stack, now_ms(s),
        (uint64_t)s->cfg->commit_handler.auto_commit_max_age_ms, pos, 64);
    commit_send(s, pos, n);
  }
}

/* --- frames out --- */

/* A frame's header goes in front of its payload, in room kept for the
 * usual 4-byte one (payloads of 126 B to 64 KiB); frame_end() fixes it up
 * once the length is known. The drain then leaves in one plain write. */
static void frame_begin(consume_sess_t *s) {
  s->frame_at = kwp_ws_frame_open(&s->out);
}

static void frame_end(consume_sess_t *s) {
  if (kwp_ws_frame_close(&s->out, s->frame_at, s->fmt->opcode) == 0)
    s->nframes++;
}

static void append_str(kwp_sbuf_t *b, const char *text) {
  kwp_sbuf_append(b, text, strlen(text));
}

static void batch_close(consume_sess_t *s) {
  append_str(&s->out, s->fmt->batch_close);
  frame_end(s);
  s->in_batch = 0;
}

static void flush(consume_sess_t *s) {
  if (s->in_batch)
    batch_close(s);
  if (s->out.oom) {
    sess_fail(s, KWP_ENOMEM, "out of memory");
  } else if (s->nframes && s->conn) {
    kwp_conn_ws_send_framed(s->conn, s->out.data, s->out.len);
    if (s->auto_commit)
      kwp_written_handed(s->written, kwp_conn_tx_total(s->conn),
                         kwp_conn_tx_written(s->conn));
    if (kwp_conn_send_queued(s->conn) > s->cfg->server.max_buffered_send_bytes)
      kwp_consume__pause_set(s, CPAUSE_SENDQ);
  }
  s->out.len = 0;
  s->out.oom = 0;
  s->nframes = 0;
}

static int header_at(const void *hdrs, size_t i, const char **name,
                     const void **value, size_t *len) {
  return rd_kafka_header_get_all((const rd_kafka_headers_t *)hdrs, i, name,
                                 value, len) == 0
             ? 0
             : -1;
}

static void record_emit(consume_sess_t *s, rd_kafka_message_t *rkm) {
  rd_kafka_headers_t *hdrs = NULL;
  kwp_record_t r = {
      .partition = rkm->partition,
      .offset = rkm->offset,
      .timestamp = rd_kafka_message_timestamp(rkm, NULL),
      .key = rkm->key,
      .key_len = rkm->key_len,
      .value = rkm->payload,
      .value_len = rkm->len,
  };
  if (rd_kafka_message_headers(rkm, &hdrs) == 0) {
    r.header = header_at;
    r.hdrs = hdrs;
  }
  if (s->batch <= 1 || !s->in_batch)
    frame_begin(s);
  if (s->batch > 1)
    append_str(&s->out, s->in_batch ? s->fmt->batch_sep : s->fmt->batch_open);
  s->fmt->record(&s->out, &s->opts, &r);
  if (s->batch <= 1)
    frame_end(s);
  else if (++s->in_batch == s->batch)
    batch_close(s);
  s->drained += rkm->len;
  s->drained_n++;
  s->last_rx = now_ms(s);
  if (s->stack) {
    kwp_commit_push(s->stack, r.partition, r.offset, r.timestamp, now_ms(s));
  } else {
    kwp_written_stage(s->written, r.partition, r.offset);
  }
  if (s->nframes == FLUSH_FRAMES || s->out.len >= FLUSH_BYTES)
    flush(s);
}

static void rate_timer_cb(uv_timer_t *t) {
  kwp_consume__pause_clear(t->data, CPAUSE_RATE);
}

/* Take the rate tokens of one record; pause when over the rate. */
static void rate_take(consume_sess_t *s) {
  uint64_t now = now_ms(s), wait = 0, w;
  if (s->rate_sock && (w = kwp_rate_take(s->rate_sock, now)) > wait)
    wait = w;
  if (s->rate_group && (w = kwp_rate_take(s->rate_group, now)) > wait)
    wait = w;
  if (wait) {
    kwp_consume__pause_set(s, CPAUSE_RATE);
    uv_timer_start(&s->rate_timer, rate_timer_cb, wait, 0);
  }
}

static void record_deliver(consume_sess_t *s, rd_kafka_message_t *rkm) {
  record_emit(s, rkm);
  rate_take(s);
}

static int hold(consume_sess_t *s, const held_rec_t *r) {
  if (s->nheld == s->held_cap) {
    size_t cap = s->held_cap ? 2 * s->held_cap : 4;
    held_rec_t *h = realloc(s->held, cap * sizeof(*h));
    if (!h)
      return -1;
    s->held = h;
    s->held_cap = cap;
  }
  s->held[s->nheld++] = *r;
  return 0;
}

static void release_held(consume_sess_t *s) {
  size_t i = 0;
  for (; i < s->nheld && !s->paused; i++) {
    if (s->opts.sr && !kwp_consume__sr_ready(s, s->held[i].m))
      break;
    record_deliver(s, s->held[i].m);
    rec_free(&s->held[i]);
  }
  if (i) { /* held is NULL until something was held */
    memmove(s->held, s->held + i, (s->nheld - i) * sizeof(*s->held));
    s->nheld -= i;
  }
  flush(s);
}

/* --- Kafka events --- */

/* offsetResetStrategy=none and the group has no offset to start from
 * (librdkafka reports it either way, depending on where it noticed). */
static int no_offset(const consume_sess_t *s, rd_kafka_resp_err_t err) {
  return (err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
          err == RD_KAFKA_RESP_ERR__NO_OFFSET) &&
         !strcmp(s->reset, "none");
}

/* Was the queue at one of its bounds? librdkafka decides whether to fetch
 * again right after it queued a fetch response, the only time the queue
 * grows: a queue seen at a bound means the fetcher stopped (see
 * fetch_restart()); one seen below it most likely means a fetch in flight,
 * which a kick would cancel. We look at the first record of each drain and
 * every QLOOK_EVERY records (the queue's lock stays off the per-record
 * path), so a bound counts as reached QLOOK_EVERY records early. The bytes
 * (librdkafka counts payloads) are estimated from the records' average
 * size: librdkafka only tells the count. */
static void queue_look(consume_sess_t *s, const rd_kafka_message_t *m) {
  size_t n = rd_kafka_queue_length(s->msgq) + 1 + QLOOK_EVERY;
  size_t avg = s->drained_n ? s->drained / s->drained_n : m->len;
  if (n >= s->kick_n || n * avg >= s->kick_bytes)
    s->q_full = 1;
}

/* One record (or a fetch error), which this takes over. */
static void on_record(consume_sess_t *s, const held_rec_t *r) {
  rd_kafka_message_t *m = r->m;
  if (s->state != ST_OPEN || !s->conn) {
    rec_free(r);
    return;
  }
  if (m->err) {
    if (no_offset(s, m->err))
      sess_fail(s, KWP_EINTERNAL,
                "no committed offset and offsetResetStrategy is none");
    else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
      KWP_LOG_RL(KWP_LOG_WARN, "kafka", "group %s topic %s: %s", s->group_id,
                 s->topic, rd_kafka_message_errstr(m));
    /* The records queue is read in batches, which hand the fetcher's errors
     * over as records (as events they were ERROR events). */
    if (topic_unknown(m->err))
      topic_gone_check(s, 0);
    rec_free(r);
    return;
  }
  if (s->q_look || (s->kick_bytes && ++s->q_seen % QLOOK_EVERY == 0)) {
    s->q_look = 0;
    queue_look(s, m);
  }
  if (s->opts.sr && !s->paused)
    kwp_consume__sr_ready(s, m); /* pauses while a schema is fetched */
  /* Fetched before a pause took effect: keep it for the resume (bounded
   * by what librdkafka had prefetched). */
  if (s->paused && hold(s, r) == 0)
    return;
  record_deliver(s, m);
  rec_free(r);
}

/* Records that came through the consumer's own queue (a partition that
 * could not be routed to msgq). */
static void on_fetch(consume_sess_t *s, rd_kafka_event_t *rkev) {
  held_rec_t r = {(rd_kafka_message_t *)rd_kafka_event_message_next(rkev),
                  rkev};
  if (r.m)
    on_record(s, &r);
  else
    rd_kafka_event_destroy(rkev);
}

void kwp_consume__on_msgs(rd_kafka_message_t **msgs, size_t n, void *arg) {
  consume_sess_t *s = arg;
  for (size_t i = 0; i < n; i++) {
    held_rec_t r = {msgs[i], NULL};
    /* The next value is cold too: start bringing it in (see plain_span()
     * in codec/json/jscan.c). */
    if (i + 1 < n && msgs[i + 1]->payload)
      __builtin_prefetch(msgs[i + 1]->payload);
    on_record(s, &r);
  }
}

static void drop_revoked(consume_sess_t *s,
                         const rd_kafka_topic_partition_list_t *parts) {
  for (int i = 0; i < parts->cnt; i++) {
    int32_t p = parts->elems[i].partition;
    if (s->stack)
      kwp_commit_drop(s->stack, p);
    else {
      commit_written(s, p);
      kwp_written_revoke(s->written, p);
    }
    /* What the client committed goes now, while the generation is ours. */
    kwp_commit_pos_t w = {p, kwp_cgate_take(s->gate, p)};
    if (w.offset >= 0)
      commit_now(s, &w, 1);
    size_t k = 0;
    for (size_t j = 0; j < s->nheld; j++) {
      if (s->held[j].m->partition == p)
        rec_free(&s->held[j]);
      else
        s->held[k++] = s->held[j];
    }
    s->nheld = k;
  }
}

/* The assignment as the rebalance events gave it: rd_kafka_assignment() would
 * wait for the consumer's own thread (measured: up to 30 ms with 16 busy
 * consumers on 2 cores), and a worker loop must not wait. */
static void assigned_update(consume_sess_t *s,
                            const rd_kafka_topic_partition_list_t *parts,
                            int assign, int coop) {
  if (s->sought) { /* a partition assigned again starts where it was committed
                    */
    rd_kafka_topic_partition_list_destroy(s->sought);
    s->sought = NULL;
  }
  if (!coop || !s->assigned) {
    if (s->assigned)
      rd_kafka_topic_partition_list_destroy(s->assigned);
    s->assigned = assign ? rd_kafka_topic_partition_list_copy(parts)
                         : rd_kafka_topic_partition_list_new(0);
    return;
  }
  for (int i = 0; i < parts->cnt; i++) {
    const rd_kafka_topic_partition_t *p = &parts->elems[i];
    if (assign && !rd_kafka_topic_partition_list_find(s->assigned, p->topic,
                                                      p->partition))
      rd_kafka_topic_partition_list_add(s->assigned, p->topic, p->partition);
    else if (!assign)
      rd_kafka_topic_partition_list_del(s->assigned, p->topic, p->partition);
  }
}

/* Forward each newly assigned partition's records to msgq. Done before the
 * assign: librdkafka leaves a forward the application set alone when it
 * starts fetching. A partition whose queue cannot be had keeps feeding the
 * consumer's queue, which works too, only without the hold. */
/* Keep @p pq as partition @p p's queue; 0, or -1 when it was not kept. */
static int pq_keep(consume_sess_t *s, int32_t p, rd_kafka_queue_t *pq) {
  if (p >= s->npqs) {
    rd_kafka_queue_t **a = realloc(s->pqs, (size_t)(p + 1) * sizeof(*a));
    if (!a)
      return -1;
    memset(a + s->npqs, 0, (size_t)(p + 1 - s->npqs) * sizeof(*a));
    s->pqs = a;
    s->npqs = p + 1;
  }
  if (s->pqs[p])
    return -1;
  s->pqs[p] = pq;
  return 0;
}

static void partitions_route(consume_sess_t *s,
                             const rd_kafka_topic_partition_list_t *parts) {
  for (int i = 0; i < parts->cnt; i++) {
    rd_kafka_queue_t *pq = rd_kafka_queue_get_partition(
        s->rk, parts->elems[i].topic, parts->elems[i].partition);
    if (pq) {
      rd_kafka_queue_forward(pq, s->msgq);
      if (pq_keep(s, parts->elems[i].partition, pq) != 0)
        rd_kafka_queue_destroy(pq);
    }
  }
}

/* librdkafka 2.0.2 to 2.6.0 (#4724): when a partition leaves the cluster
 * (its topic is deleted) while it is consumed, its queue is unforwarded
 * and the records and errors left in it hold the partition, which holds
 * them: rd_kafka_destroy() then waited for ever, and with it the proxy's
 * shutdown. Emptying those queues once the consumer is closed breaks the
 * cycle (on other versions they are empty by then). */
static void purge_partition_queues(consume_sess_t *s) {
  for (int32_t p = 0; p < s->npqs; p++) {
    rd_kafka_queue_t *pq = s->pqs[p];
    rd_kafka_event_t *rkev;
    if (!pq)
      continue;
    rd_kafka_queue_forward(pq, NULL);
    while ((rkev = rd_kafka_queue_poll(pq, 0)))
      rd_kafka_event_destroy(rkev);
    rd_kafka_queue_destroy(pq);
    s->pqs[p] = NULL;
  }
}

static void on_rebalance(consume_sess_t *s, rd_kafka_event_t *rkev) {
  rd_kafka_resp_err_t err = rd_kafka_event_error(rkev);
  rd_kafka_topic_partition_list_t *parts =
      rd_kafka_event_topic_partition_list(rkev);
  int coop = s->coop;
  flush(s); /* what was fetched before goes out first */
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    partitions_route(s, parts);
    if (coop)
      rd_kafka_error_destroy(rd_kafka_incremental_assign(s->rk, parts));
    else
      rd_kafka_assign(s->rk, parts);
    assigned_update(s, parts, 1, coop);
    for (int i = 0; s->written && i < parts->cnt; i++)
      kwp_written_assign(s->written, parts->elems[i].partition);
    if (s->kpaused)
      rd_kafka_pause_partitions(s->rk, parts);
  } else {
    drop_revoked(s, parts);
    assigned_update(s, parts, 0, coop);
    if (coop)
      rd_kafka_error_destroy(rd_kafka_incremental_unassign(s->rk, parts));
    else
      rd_kafka_assign(s->rk, NULL);
  }
}

static void close_consumer(consume_sess_t *s);

/* Errors after which the same commit may succeed later (the coordinator is
 * away or moving). Others (e.g. a generation change: the partition may have a
 * new owner whose progress we must not overwrite) are only logged. */
static int commit_retriable(rd_kafka_resp_err_t err) {
  switch (err) {
  case RD_KAFKA_RESP_ERR__WAIT_COORD:
  case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
  case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
  case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
  case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
  case RD_KAFKA_RESP_ERR__TIMED_OUT:
  case RD_KAFKA_RESP_ERR__TRANSPORT:
  case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
  case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    return 1;
  default:
    return 0;
  }
}

static void retry_cb(uv_timer_t *t) {
  consume_sess_t *s = t->data;
  kwp_commit_pos_t pos[64];
  size_t n;
  while ((n = kwp_cgate_due(s->gate, pos, 64)) > 0)
    commit_now(s, pos, n);
}

/* The error librdkafka reports for @p partition in a commit result. */
static rd_kafka_resp_err_t
commit_error(const rd_kafka_topic_partition_list_t *l, int32_t partition,
             rd_kafka_resp_err_t err) {
  for (int i = 0; l && i < l->cnt; i++)
    if (l->elems[i].partition == partition && l->elems[i].err)
      return l->elems[i].err;
  return err;
}

static void on_committed(consume_sess_t *s, rd_kafka_event_t *rkev) {
  rd_kafka_resp_err_t err = rd_kafka_event_error(rkev);
  const rd_kafka_topic_partition_list_t *l =
      rd_kafka_event_topic_partition_list(rkev);
  sent_t *sent = rd_kafka_event_opaque(rkev);
  s->commits_inflight--;
  for (size_t i = 0; sent && i < sent->n; i++) {
    kwp_commit_pos_t next = sent->pos[i];
    rd_kafka_resp_err_t e = commit_error(l, next.partition, err);
    int failed = !e || e == RD_KAFKA_RESP_ERR__NO_OFFSET ? 0
                 : commit_retriable(e)                   ? 1
                                                         : 2;
    KWP_LOG(KWP_LOG_DEBUG, "kafka", "group %s: commit of %s [%d] at %lld: %s",
            s->group_id, s->topic, (int)next.partition, (long long)next.offset,
            rd_kafka_err2str(e));
    if (failed) {
      s->commit_failures++;
      KWP_LOG_RL(KWP_LOG_WARN, "kafka",
                 "group %s: commit of %s [%d] failed: %s%s", s->group_id,
                 s->topic, (int)next.partition, rd_kafka_err2str(e),
                 failed == 1 ? " (will retry)" : "");
    }
    next.offset = kwp_cgate_done(s->gate, next.partition, next.offset, failed);
    if (s->state >= ST_CLOSING) /* leaving the group: too late */
      continue;
    if (next.offset >= 0) /* the newest commit that waited for this one */
      commit_now(s, &next, 1);
    else if (failed == 1 && !uv_is_active((uv_handle_t *)&s->retry_timer))
      uv_timer_start(&s->retry_timer, retry_cb, COMMIT_RETRY_MS, 0);
  }
  free(sent);
  if (s->state == ST_COMMITTING && s->commits_inflight == 0 &&
      !kwp_cgate_waiting(s->gate))
    close_consumer(s);
}

static void topic_gone_checked(void *arg, int partitions) {
  consume_sess_t *s = arg;
  s->topic_checking = 0;
  if (partitions == KWP_ENOTFOUND && s->state == ST_OPEN)
    sess_fail(s, KWP_ENOTFOUND, "the topic was deleted");
  else if (partitions > 0 && !s->topic_rechecking)
    s->topic_recheck_at = now_ms(s) + TOPIC_RECHECK_MS;
  kwp_consume__unref(s);
}

/* Kafka says the topic or one of its partitions is unknown: it may have
 * been deleted, or be new and not known everywhere yet. The cached
 * metadata decides: a miss is looked at for 3 s, as at the upgrade; a hit
 * can be 10 s old, so it is looked at once more after TOPIC_RECHECK_MS
 * (kwp_consume__commit_tick()). A deleted topic closes the socket (1011)
 * rather than leave the client waiting, unanswered, on a topic that is
 * gone. */
static void topic_gone_check(consume_sess_t *s, int again) {
  if (s->topic_checking || s->state != ST_OPEN)
    return;
  s->topic_checking = 1;
  s->topic_rechecking = again;
  s->refs++;
  if (kwp_kafka_topic_lookup(kwp_worker_kafka(s->wk), kwp_worker_loop(s->wk),
                             s->topic, topic_gone_checked, s) != 0) {
    s->topic_checking = 0;
    s->refs--;
  }
}

static int topic_unknown(rd_kafka_resp_err_t err) {
  return err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
         err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
         err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION;
}

/* librdkafka's error callback. The records queue is drained in batches
 * (kwp_kbridge_new_msgs()), and the batch call hands its partitions' error
 * ops to this callback instead of returning them (as events they were ERROR
 * events). It runs where that queue is served: this socket's worker thread,
 * but also the thread that closes the consumer (destroy_work()), so it only
 * raises a flag, which the worker reads after each drain and on its tick. */
void kwp_consume__on_error(rd_kafka_t *rk, int err, const char *reason,
                           void *opaque) {
  consume_sess_t *s = opaque;
  KWP_LOG_RL(KWP_LOG_WARN, "kafka", "consumer of group %s: %s", s->group_id,
             reason);
  if (topic_unknown(err))
    atomic_store(&s->topic_err, 1);
}

void kwp_consume__on_event(rd_kafka_event_t *rkev, void *arg) {
  consume_sess_t *s = arg;
  switch (rd_kafka_event_type(rkev)) {
  case RD_KAFKA_EVENT_FETCH:
    on_fetch(s, rkev);
    return; /* on_fetch owns it */
  case RD_KAFKA_EVENT_REBALANCE:
    on_rebalance(s, rkev);
    break;
  case RD_KAFKA_EVENT_OFFSET_COMMIT:
    on_committed(s, rkev);
    break;
  case RD_KAFKA_EVENT_ERROR:
    if (rd_kafka_event_error_is_fatal(rkev))
      sess_fail(s, KWP_EINTERNAL, rd_kafka_event_error_string(rkev));
    else if (no_offset(s, rd_kafka_event_error(rkev)))
      sess_fail(s, KWP_EINTERNAL,
                "no committed offset and offsetResetStrategy is none");
    else
      KWP_LOG_RL(KWP_LOG_WARN, "kafka", "consumer of group %s: %s", s->group_id,
                 rd_kafka_event_error_string(rkev));
    if (topic_unknown(rd_kafka_event_error(rkev)))
      topic_gone_check(s, 0);
    break;
  default:
    break;
  }
  rd_kafka_event_destroy(rkev);
}

/* librdkafka before 2.2 stops fetching when the consumer's queue (all its
 * partitions together) reached queued.max.messages.kbytes or
 * queued.min.messages, and looks again only when its broker thread next
 * wakes, up to 1 s later: a socket catching up on a backlog would get one
 * queue's worth per second. A seek wakes that thread. So when a look at the
 * queue (queue_look()) found it near a bound, and then it ran empty and
 * records stop coming for KICK_MS, we seek the partitions to where they are
 * (their next record), which restarts the fetcher. A seek also discards the
 * fetch in flight, and the new fetch waits for it: it must only come when
 * the fetcher has stopped. Kicking whenever records paused after a queue's
 * worth had been delivered cancelled healthy fetches on a loaded machine
 * (fetches taking 20-180 ms), and cancelled the long poll at a partition's
 * end (up to fetch.wait.max.ms, 500 ms) and waited for it: with 16 sockets
 * reading a backlog, the last records came half a second late. If nothing
 * comes, we seek again after KICK_RETRY_MS, then twice as long, for up to
 * KICK_MAX tries (past librdkafka's own second). A socket paused when the
 * wait ends is watched again when it resumes (pause_clear()): giving up then
 * left the fetcher stopped by the queue the socket filled while held, and
 * 16 sockets reading a backlog saw gaps of 0.4 to 0.6 s. */

/* Where each assigned partition's next record is; partitions with nothing
 * delivered yet are left out. A seek forgets the position until the next
 * record is delivered: then it is where the last seek went. */
static rd_kafka_topic_partition_list_t *positions(consume_sess_t *s) {
  rd_kafka_topic_partition_list_t *l =
      rd_kafka_topic_partition_list_copy(s->assigned);
  rd_kafka_position(s->rk, l);
  for (int i = l->cnt - 1; i >= 0; i--) {
    rd_kafka_topic_partition_t *p = &l->elems[i], *was;
    if (p->offset < 0 && s->sought &&
        (was = rd_kafka_topic_partition_list_find(s->sought, p->topic,
                                                  p->partition)))
      p->offset = was->offset;
    if (p->offset < 0)
      rd_kafka_topic_partition_list_del_by_idx(l, i);
  }
  return l;
}

static void seek_to(consume_sess_t *s, rd_kafka_topic_partition_list_t *l) {
  rd_kafka_error_t *e = l->cnt ? rd_kafka_seek_partitions(s->rk, l, 0) : NULL;
  if (e)
    rd_kafka_error_destroy(e);
  if (s->sought)
    rd_kafka_topic_partition_list_destroy(s->sought);
  s->sought = l;
}

static void fetch_restart(consume_sess_t *s) {
  if (s->assigned && s->assigned->cnt)
    seek_to(s, positions(s));
}

/* How long without records before kick number @p kicks + 1. */
static uint64_t kick_wait(int kicks) {
  return kicks ? (uint64_t)KICK_RETRY_MS << (kicks - 1) : KICK_MS;
}

static void kick_tick(uv_timer_t *t);

/* Watch for a stall from now: kick if no record comes for KICK_MS. */
static void kick_watch(consume_sess_t *s) {
  s->kicks = 0;
  uv_timer_start(&s->kick_timer, kick_tick, KICK_MS, 0);
}

static void kick_tick(uv_timer_t *t) {
  consume_sess_t *s = t->data;
  uint64_t since = now_ms(s) - s->last_rx, wait = kick_wait(s->kicks);
  if (s->state != ST_OPEN || s->paused)
    return; /* pause_clear() watches again */
  if (s->kicks >= KICK_MAX || !s->assigned || !s->assigned->cnt) {
    s->q_full = 0; /* gave up: the topic is just quiet */
    return;
  }
  if (rd_kafka_queue_length(s->msgq) > 0)
    return; /* not stalled: the bridge delivers them, then looks again */
  if (since < wait) {
    if (s->kicks || s->q_full) /* records may stop any moment */
      kick_watch(s);
    return; /* else the queue has not filled again since: no stall */
  }
  s->kicks++;
  s->q_full = 0; /* watch what this kick brings */
  s->drained = s->drained_n = 0;
  seek_to(s, positions(s));
  uv_timer_start(t, kick_tick, kick_wait(s->kicks), 0);
}

/* The consumer's own queue carries records only for a partition that could
 * not be routed to msgq (partitions_route()). */
void kwp_consume__on_ctl_drained(void *arg, int empty) {
  consume_sess_t *s = arg;
  if (s->state == ST_OPEN)
    flush(s);
}

void kwp_consume__on_drained(void *arg, int empty) {
  consume_sess_t *s = arg;
  if (s->state != ST_OPEN)
    return;
  s->q_look = s->kick_bytes != 0;
  flush(s);
  if (atomic_exchange(&s->topic_err, 0))
    topic_gone_check(s, 0);
  if (empty && s->q_full && !s->paused &&
      (s->kicks || !uv_is_active((uv_handle_t *)&s->kick_timer)))
    kick_watch(s);
}

/* --- socket callbacks --- */

/* An acknowledgement from the client (autoCommit=false): the record it
 * names, and everything older of its partition, is committed. */
static int consume_message(kwp_conn_t *conn, void *state, int opcode,
                           const uint8_t *data, size_t len) {
  consume_sess_t *s = state;
  char id[KWP_PARAM_MAX * 2 + 64];
  const char *why;
  kwp_commit_pos_t pos;
  kwp_record_ref_t ref;
  if (s->auto_commit)
    return 0; /* as the reference: inbound frames are ignored */
  if (s->in_batch)
    flush(s); /* an open batch frame goes out before the error frame */
  frame_begin(s);
  int err = s->fmt->commit_decode(&s->opts, opcode, data, len, &ref, id,
                                  sizeof(id), &why);
  if (err == KWP_EFRAMETYPE || err == KWP_EBADCOMMIT) {
    s->fmt->error(&s->out, err, NULL, why);
  } else if (err || kwp_commit_take(s->stack, ref.partition, ref.offset,
                                    ref.timestamp, &pos) != 0) {
    s->fmt->error(&s->out, KWP_EUNKNOWNID, id,
                  "no uncommitted record with this id (already committed, "
                  "dropped from a full stack, or of a revoked partition)");
  } else {
    s->out.len = s->frame_at; /* no error frame after all */
    commit_send(s, &pos, 1);
    return 0;
  }
  frame_end(s);
  flush(s);
  return 0;
}

static void consume_writable(kwp_conn_t *conn, void *state) {
  consume_sess_t *s = state;
  if (s->written)
    kwp_written_advance(s->written, kwp_conn_tx_written(conn));
  kwp_consume__pause_clear(s, CPAUSE_SENDQ);
}

static void handle_closed(uv_handle_t *h) {
  kwp_consume__unref(h->data);
}

static void destroy_work(uv_work_t *w) {
  consume_sess_t *s = w->data;
  /* Joins librdkafka's threads: off the loop. */
  rd_kafka_destroy_flags(s->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
}

static void destroy_done(uv_work_t *w, int status) {
  kwp_consume__unref(w->data);
}

static void bridge_closed(void *arg) {
  consume_sess_t *s = arg;
  if (--s->bridges > 0)
    return;
  rd_kafka_queue_destroy(s->msgq);
  rd_kafka_queue_destroy(s->rkq);
  s->destroy.data = s;
  if (uv_queue_work(kwp_worker_loop(s->wk), &s->destroy, destroy_work,
                    destroy_done) != 0) {
    destroy_work(&s->destroy);
    kwp_consume__unref(s);
  }
}

static void close_poll(uv_timer_t *t) {
  consume_sess_t *s = t->data;
  if (!rd_kafka_consumer_closed(s->rk))
    return;
  s->state = ST_DONE;
  purge_partition_queues(s);
  uv_timer_stop(&s->close_timer);
  uv_close((uv_handle_t *)&s->close_timer, handle_closed);
  kwp_kbridge_close(s->kb_msgs, bridge_closed, s);
  kwp_kbridge_close(s->kb, bridge_closed, s);
}

/* Leave the group without blocking: librdkafka closes in the background and
 * sends its last rebalance events through our queue. */
static void close_consumer(consume_sess_t *s) {
  if (s->state == ST_CLOSING || s->state == ST_DONE)
    return;
  s->state = ST_CLOSING;
  if (kwp_cgate_waiting(s->gate))
    KWP_LOG(KWP_LOG_WARN, "kafka",
            "group %s: %zu commit(s) not written when the socket closed",
            s->group_id, kwp_cgate_waiting(s->gate));
  uv_close((uv_handle_t *)&s->retry_timer, handle_closed);
  rd_kafka_error_t *e = rd_kafka_consumer_close_queue(s->rk, s->rkq);
  if (e) {
    KWP_LOG(KWP_LOG_WARN, "kafka", "group %s: consumer close: %s", s->group_id,
            rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
  }
  uv_timer_start(&s->close_timer, close_poll, CLOSE_POLL_MS, CLOSE_POLL_MS);
}

/* Commits still in flight had their chance. */
static void commit_wait_over(uv_timer_t *t) {
  consume_sess_t *s = t->data;
  KWP_LOG(KWP_LOG_WARN, "kafka",
          "group %s: %d commit(s) unanswered when the socket closed",
          s->group_id, s->commits_inflight);
  uv_timer_stop(t);
  close_consumer(s);
}

static void consume_close(kwp_conn_t *conn, void *state) {
  consume_sess_t *s = state;
  kwp_admission_release(kwp_worker_admission(s->wk), s->claim);
  s->claim = NULL; /* the slot is free for another socket of the group */
  if (s->auto_commit)
    commit_written(s, -1);
  s->conn = NULL;
  s->state = ST_COMMITTING;
  uv_timer_stop(&s->rate_timer);
  uv_close((uv_handle_t *)&s->rate_timer, handle_closed);
  uv_close((uv_handle_t *)&s->commit_timer, handle_closed);
  uv_close((uv_handle_t *)&s->kick_timer, handle_closed);
  uv_close((uv_handle_t *)&s->hold_timer, handle_closed);
  kwp_kbridge_hold(s->kb_msgs, 0);  /* drop what is queued */
  if (kwp_cgate_waiting(s->gate)) { /* now rather than after the backoff */
    uv_timer_stop(&s->retry_timer);
    retry_cb(&s->retry_timer);
  }
  if (s->commits_inflight == 0)
    close_consumer(s);
  else
    uv_timer_start(&s->close_timer, commit_wait_over, CLOSE_COMMIT_WAIT_MS, 0);
  kwp_consume__unref(s);
}

/* Before the close frame: a client reconnecting at once with the same
 * clientId must find the claim released (the session topic has one
 * partition, so the release is ahead of its new claim). Releasing in
 * consume_close(), after the client's FIN, lost that race. */
static void consume_closing(kwp_conn_t *conn, void *state) {
  consume_sess_t *s = state;
  kwp_admission_release(kwp_worker_admission(s->wk), s->claim);
  s->claim = NULL;
}

static int consume_open(kwp_conn_t *conn, void **state) {
  return 0;
}

const kwp_ws_handler_t kwp_consume__handler = {
    .name = "consume",
    .open = consume_open,
    .message = consume_message,
    .writable = consume_writable,
    .closing = consume_closing,
    .close = consume_close,
};
