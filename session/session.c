/* The session handler's runtime (see session.h and DESIGN.md): the state
 * topic's setup on the main thread, then a thread of its own whose loop
 * applies the topic (a librdkafka consumer bridged into the loop), writes
 * heartbeats and cleans up claims of dead nodes. Workers write claims and
 * releases straight to the shared producer (thread-safe) and wait for the
 * verdict, which this thread posts back to them. `lock` guards the state and
 * the pending claims, which both threads touch. */
#include "session/session.h"

#include "core/base/error.h"
#include "core/base/log.h"
#include "core/kafka/kadmin.h"
#include "core/kafka/kbridge.h"
#include "core/net/worker.h"

#include <librdkafka/rdkafka_mock.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEY_MAX 1024
/* Failed claim removals kept for another try; past this many (Kafka down
 * for long under heavy churn) further ones are given up, with an error
 * logged, and those slots stay taken until this node stops. */
#define RETRY_MAX 65536

_Static_assert((int)KWP_ADMIT_CONSUMER == (int)KWP_SESSION_CONSUMER &&
                   (int)KWP_ADMIT_PRODUCER == (int)KWP_SESSION_PRODUCER,
               "the state topic's kinds are the admission kinds");

/* The admission interface (core/endpoint/admission.h), at the end. */
static int session_admit(void *impl, kwp_worker_t *wk, int kind,
                         const char *session, const char *instance,
                         int64_t limit, kwp_admit_cb cb, void *arg);
static void session_refusal(void *impl, int err, char *msg, size_t len);
static void session_release(void *impl, kwp_claim_handle_t *claim);
static int session_ready(void *impl);
static const char *session_status(void *impl);
static size_t session_count(void *impl);

struct kwp_claim_handle {
  char key[KEY_MAX];
};

typedef struct pending {
  struct pending *next;
  char nonce[128];
  kwp_worker_t *wk;
  kwp_admit_cb cb;
  void *arg;
  uint64_t deadline; /* uv_hrtime() ms */
  kwp_claim_handle_t *claim;
} pending_t;

/* A verdict on its way to a worker. */
typedef struct verdict {
  kwp_admit_cb cb;
  void *arg;
  int err;
  kwp_claim_handle_t *claim;
  char message[640];
} verdict_t;

struct kwp_session {
  const kwp_config_t *cfg;
  kwp_kafka_t *kafka;
  const char *topic, *server_id;
  char incarnation[40];
  uv_thread_t thread;
  uv_loop_t loop;
  uv_async_t stop_async;
  uv_timer_t tick;
  rd_kafka_t *consumer, *producer;
  rd_kafka_queue_t *cq, *pq;
  kwp_kbridge_t *ckb, *pkb;
  uv_mutex_t lock; /* state, pending, next_nonce */
  kwp_sstate_t *state;
  pending_t *pending;
  uint64_t next_nonce;
  int64_t start_ms;     /* wall clock at start, for duplicate detection */
  uint64_t restored_at; /* monotonic ms; 0 until the first end of topic */
  uint64_t own_hb_seen; /* monotonic ms of our last heartbeat read back */
  int heartbeating;
  int64_t own_first_hb, twin_first_hb; /* log offsets; -1 = none yet */
  int64_t last_offset;                 /* of the last record applied */
  char twin[128];                      /* the last other incarnation seen */
  size_t ignored;
  char **retry; /* claim keys whose tombstone failed; session thread only */
  size_t nretry, retry_cap;
  atomic_int ready, fatal, stopping;
  atomic_int topic_gone; /* the last state write found no topic */
  uint64_t recreate_at;  /* monotonic ms of the next topic_recreate() try */
  const char *_Atomic status;
  kwp_admission_t admission; /* this handler as the pipeline's admission */
};

static uint64_t now_ms(void) {
  return uv_hrtime() / 1000000;
}

/* --- the topic --- */

/* The state topic: compacted, one partition, replicated as configured (the
 * reference ignored topic-replication-factor; we honour it, up to the
 * brokers there are). */
static int state_topic_create(rd_kafka_t *rk, const kwp_config_t *cfg,
                              int brokers, int64_t tmo, atomic_int *stop,
                              char *errbuf, size_t errlen) {
  char retention[32];
  int64_t rf = cfg->session_handler.topic_replication_factor;
  snprintf(retention, sizeof(retention), "%lld",
           (long long)cfg->session_handler.topic_retention_ms);
  const char *const configs[] = {"cleanup.policy", "compact", "retention.ms",
                                 retention, NULL};
  return kwp_kadmin_create(rk, cfg->session_handler.topic_name, 1,
                           (int)(rf > brokers ? brokers : rf), configs, tmo,
                           stop, errbuf, errlen);
}

/* A topic made by hand or by auto-creation may delete instead of compact:
 * then the claims of sockets open longer than its retention.ms vanish from
 * the log, and a node that replays it (a restart, a new node) no longer
 * counts them, admitting past the limits. Worth a warning, not a refusal:
 * the reference never checked, and retention may be long enough. */
static void topic_policy_check(kwp_session_t *s, rd_kafka_t *rk, int64_t tmo) {
  char policy[64];
  kwp_kadmin_topic_config(rk, s->topic, "cleanup.policy", tmo, &s->stopping,
                          policy, sizeof(policy));
  if (!*policy)
    KWP_LOG(KWP_LOG_INFO, "session",
            "could not read the cleanup.policy of the state topic %s",
            s->topic);
  else if (!strstr(policy, "compact"))
    KWP_LOG(KWP_LOG_WARN, "session",
            "the state topic %s has cleanup.policy=%s, not compact: claims of "
            "sockets open longer than its retention.ms are deleted, and nodes "
            "that replay it then admit past the limits (kafka-configs.sh "
            "--alter --entity-type topics --entity-name %s --add-config "
            "cleanup.policy=compact)",
            s->topic, policy, s->topic);
}

/* Create the topic if missing and check it has one partition (the admission
 * protocol needs one total order), retrying up to @p retries times within
 * the topic-init bounds. */
static int topic_ensure(kwp_session_t *s, int64_t retries, int *created,
                        char *errbuf, size_t errlen) {
  const kwp_config_t *cfg = s->cfg;
  char why[512] = "";
  if (cfg->dev_mode) /* the in-process cluster has no CreateTopics */
    return rd_kafka_mock_topic_create(kwp_kafka_mock_cluster(s->kafka),
                                      s->topic, 1, 1) == 0
               ? 0
               : -1;
  rd_kafka_conf_t *conf =
      kwp_kafka_conf_new(s->kafka, &cfg->admin_client.kafka_client_properties,
                         KWP_KAFKA_ADMIN, errbuf, errlen);
  rd_kafka_t *rk =
      conf ? rd_kafka_new(RD_KAFKA_PRODUCER, conf, errbuf, errlen) : NULL;
  if (!rk)
    return -1;
  uint64_t deadline =
      now_ms() + (uint64_t)cfg->session_handler.topic_init_timeout_ms;
  int64_t tmo = cfg->kafka_client.metadata_timeout_ms;
  int rc = -1;
  for (int64_t attempt = 0;
       attempt <= retries && now_ms() < deadline && !atomic_load(&s->stopping);
       attempt++) {
    int partitions = 0, brokers = 0;
    uint64_t wake =
        now_ms() +
        (uint64_t)(attempt ? cfg->session_handler.topic_init_retry_interval_ms
                           : 0);
    while (now_ms() < wake && !atomic_load(&s->stopping))
      usleep(20000);
    if (kwp_kadmin_describe(rk, s->topic, tmo, &s->stopping, &partitions,
                            &brokers, why, sizeof(why)) != 0)
      continue;
    if (partitions == 1) {
      topic_policy_check(s, rk, tmo);
      rc = 0;
      break;
    }
    if (partitions > 1) {
      snprintf(errbuf, errlen,
               "session state topic %s has %d partitions; it needs exactly 1 "
               "(delete it or set session-handler.topic-name)",
               s->topic, partitions);
      rd_kafka_destroy(rk);
      return -1;
    }
    if (state_topic_create(rk, cfg, brokers ? brokers : 1, tmo, &s->stopping,
                           why, sizeof(why)) == 0) {
      KWP_LOG(KWP_LOG_INFO, "session", "created the state topic %s", s->topic);
      *created = 1;
    }
  }
  if (rc)
    snprintf(errbuf, errlen,
             "cannot create or verify the session state topic %s: %s", s->topic,
             *why ? why : "timed out");
  rd_kafka_destroy(rk);
  return rc;
}

/* --- writing records (any thread: librdkafka producers are thread-safe) --- */

static int produce(kwp_session_t *s, const char *key, const char *value) {
  rd_kafka_resp_err_t err = rd_kafka_producev(
      s->producer, RD_KAFKA_V_TOPIC(s->topic), RD_KAFKA_V_PARTITION(0),
      RD_KAFKA_V_KEY(key, strlen(key)),
      RD_KAFKA_V_VALUE((void *)value, value ? strlen(value) : 0),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
  if (err)
    KWP_LOG_RL(KWP_LOG_WARN, "session", "cannot write %s: %s", key,
               rd_kafka_err2str(err));
  return err ? KWP_EKAFKA : 0;
}

static void heartbeat_write(kwp_session_t *s) {
  char key[KEY_MAX], value[512];
  kwp_sstate_heartbeat_key(key, sizeof(key), s->server_id);
  kwp_sstate_heartbeat_value(value, sizeof(value), s->server_id,
                             s->incarnation);
  produce(s, key, value);
}

static void tombstone_cb(void *arg, const char *key) {
  produce(arg, key, NULL);
}

/* A claim whose tombstone Kafka did not take (down longer than the
 * delivery timeout, or the topic missing) would count against its session
 * for as long as this node heartbeats: a slot lost for good. It is written
 * again on the next tick, until Kafka takes it. */
static void retry_add(kwp_session_t *s, const void *key, size_t klen) {
  char *k;
  if (klen < 2 || klen >= KEY_MAX || memcmp(key, "c/", 2) != 0)
    return; /* heartbeats: a dead node's are gone after node-ttl anyway */
  if (s->nretry == s->retry_cap) {
    size_t cap = s->retry_cap ? 2 * s->retry_cap : 16;
    char **a = cap <= RETRY_MAX ? realloc(s->retry, cap * sizeof(*a)) : NULL;
    if (!a) {
      KWP_LOG_RL(KWP_LOG_ERROR, "session",
                 "giving up removing a session claim: %zu wait already",
                 s->nretry);
      return;
    }
    s->retry = a;
    s->retry_cap = cap;
  }
  if ((k = strndup(key, klen)))
    s->retry[s->nretry++] = k;
}

static void retry_run(kwp_session_t *s) {
  size_t n = s->nretry;
  char **keys = s->retry;
  if (!n)
    return;
  KWP_LOG_RL(KWP_LOG_INFO, "session", "removing %zu session claim(s) again", n);
  s->retry = NULL;
  s->nretry = s->retry_cap = 0;
  for (size_t i = 0; i < n; i++) {
    if (produce(s, keys[i], NULL) != 0)
      retry_add(s, keys[i], strlen(keys[i]));
    free(keys[i]);
  }
  free(keys);
}

/* --- verdicts --- */

static void verdict_deliver(void *arg) {
  verdict_t *v = arg;
  v->cb(v->arg, v->err, v->message, v->claim);
  free(v);
}

/* Post @p p's verdict to its worker; the caller removed @p p from the list. */
static void verdict_post(pending_t *p, int err, const char *message) {
  verdict_t *v = calloc(1, sizeof(*v));
  if (!v) { /* cannot happen in practice; the upgrade would hang */
    KWP_LOG(KWP_LOG_ERROR, "session", "out of memory posting a verdict");
    free(p->claim);
    free(p);
    return;
  }
  v->cb = p->cb;
  v->arg = p->arg;
  v->err = err;
  v->claim = err ? NULL : p->claim;
  if (err)
    free(p->claim);
  snprintf(v->message, sizeof(v->message), "%s", message ? message : "");
  if (kwp_worker_post_call(p->wk, verdict_deliver, v) != 0)
    verdict_deliver(v); /* never reached with a live worker */
  free(p);
}

static pending_t *pending_take(kwp_session_t *s, const char *nonce) {
  for (pending_t **pp = &s->pending; *pp; pp = &(*pp)->next)
    if (!strcmp((*pp)->nonce, nonce)) {
      pending_t *p = *pp;
      *pp = p->next;
      return p;
    }
  return NULL;
}

static void pending_expire(kwp_session_t *s, uint64_t now) {
  for (pending_t **pp = &s->pending; *pp;) {
    pending_t *p = *pp;
    if (p->deadline > now) {
      pp = &p->next;
      continue;
    }
    *pp = p->next;
    /* If the claim still arrives, on_claim() finds no waiter and removes
     * it again. */
    verdict_post(p, KWP_EUNAVAILABLE,
                 "Session state is unavailable: Kafka did not answer in time");
  }
}

/* --- applying the topic --- */

static void on_own_claim(kwp_session_t *s, const kwp_sstate_result_t *r,
                         const rd_kafka_message_t *m) {
  char key[KEY_MAX];
  pending_t *p = pending_take(s, r->nonce);
  if (p && r->verdict == 0) {
    verdict_post(p, 0, NULL);
    return;
  }
  if (p)
    verdict_post(p, r->verdict, r->message);
  /* Rejected, or admitted after its waiter gave up: never left behind. */
  snprintf(key, sizeof(key), "%.*s", (int)m->key_len, (const char *)m->key);
  produce(s, key, NULL);
}

static void twin_refuse(kwp_session_t *s, const char *incarnation) {
  if (atomic_load(&s->fatal))
    return;
  atomic_store(&s->fatal, 1);
  atomic_store(&s->status, "duplicate server-id");
  atomic_store(&s->ready, 0);
  KWP_LOG(KWP_LOG_ERROR, "session",
          "another node uses server-id %s (incarnation %s); every node needs "
          "its own kafka.ws.proxy.server.server-id: stopping",
          s->server_id, incarnation);
  kill(getpid(), SIGTERM);
}

/* A heartbeat of our server-id. Another incarnation's, written after we
 * started, means a live twin. Of two live twins the one whose first
 * heartbeat came later in the log stops; both nodes apply the same log, so
 * exactly one of them does. */
static void own_id_heartbeat(kwp_session_t *s, const kwp_sstate_result_t *r,
                             int64_t ts, int64_t offset) {
  if (!strcmp(r->incarnation, s->incarnation)) {
    s->own_hb_seen = now_ms();
    if (s->own_first_hb < 0)
      s->own_first_hb = offset;
    return;
  }
  if (strcmp(r->incarnation, s->twin) != 0) { /* a new twin: its first */
    snprintf(s->twin, sizeof(s->twin), "%s", r->incarnation);
    s->twin_first_hb = offset;
  }
  if (ts < s->start_ms)
    return; /* an earlier run of this node, or a twin gone before we came */
  if (s->own_first_hb < 0 || s->twin_first_hb < s->own_first_hb)
    twin_refuse(s, r->incarnation);
  else
    KWP_LOG_RL(KWP_LOG_ERROR, "session",
               "a second node started with server-id %s (incarnation %s); it "
               "must stop",
               s->server_id, r->incarnation);
}

static void on_record(kwp_session_t *s, const rd_kafka_message_t *m) {
  kwp_sstate_result_t r;
  int64_t ts = rd_kafka_message_timestamp(m, NULL);
  uv_mutex_lock(&s->lock);
  if (m->offset <= s->last_offset) {
    /* Offsets went back: a new topic (topic_recreate()). Twins compare
     * their first heartbeats in the log every node reads from now on. */
    s->own_first_hb = s->twin_first_hb = -1;
    s->twin[0] = 0;
  }
  s->last_offset = m->offset;
  int rc = kwp_sstate_apply(s->state, m->key, m->key_len, m->payload, m->len,
                            ts, &r);
  if (rc == 1 && s->ignored++ == 0)
    KWP_LOG(KWP_LOG_WARN, "session",
            "ignoring records of %s that are not ours (e.g. written by the "
            "Scala kafka-websocket-proxy); see session/DESIGN.md",
            s->topic);
  if (r.decided && !strcmp(r.incarnation, s->incarnation))
    on_own_claim(s, &r, m);
  if (r.heartbeat && !strcmp(r.server_id, s->server_id))
    own_id_heartbeat(s, &r, ts, m->offset);
  uv_mutex_unlock(&s->lock);
}

/* The first end of the partition: everything written before we started is
 * applied. */
static void on_end(kwp_session_t *s) {
  if (s->restored_at)
    return;
  s->restored_at = now_ms();
  KWP_LOG(KWP_LOG_INFO, "session", "state restored from %s: %zu session(s)",
          s->topic, kwp_sstate_sessions(s->state));
}

static void on_event(rd_kafka_event_t *ev, void *arg) {
  kwp_session_t *s = arg;
  const rd_kafka_message_t *m;
  switch (rd_kafka_event_type(ev)) {
  case RD_KAFKA_EVENT_FETCH:
    while ((m = rd_kafka_event_message_next(ev))) {
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
        on_end(s);
      else if (m->err)
        KWP_LOG_RL(KWP_LOG_WARN, "session", "%s", rd_kafka_message_errstr(m));
      else
        on_record(s, m);
    }
    break;
  case RD_KAFKA_EVENT_DR:
    while ((m = rd_kafka_event_message_next(ev))) {
      if (m->err)
        KWP_LOG_RL(KWP_LOG_WARN, "session", "state write failed: %s",
                   rd_kafka_err2str(m->err));
      if (m->err && !m->payload && m->key)
        retry_add(s, m->key, m->key_len);
      atomic_store(&s->topic_gone,
                   m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                       m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
                       m->err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION);
    }
    break;
  case RD_KAFKA_EVENT_ERROR:
    if (rd_kafka_event_error(ev) == RD_KAFKA_RESP_ERR__PARTITION_EOF)
      on_end(s);
    else
      KWP_LOG_RL(KWP_LOG_WARN, "session", "%s",
                 rd_kafka_event_error_string(ev));
    break;
  default:
    break;
  }
  rd_kafka_event_destroy(ev);
}

/* --- the loop's clock: startup gate, heartbeats, cleanup, readiness --- */

/* The state topic went away at runtime (deleted by hand; with topic
 * auto-creation off nothing brings it back): create it again as at startup,
 * so the node (and every other node doing the same) is ready again without a
 * restart. A few attempts (the new topic's metadata takes a moment to show)
 * at most every 5 s; they block this thread, but admissions fail meanwhile
 * anyway. What the old topic held is gone: the claims of sockets already open
 * are not written again (a claim written again could be decided
 * differently), so nodes that replay the new topic do not count them until
 * they close. */
static void topic_recreate(kwp_session_t *s, uint64_t now) {
  char why[512];
  int created = 0;
  if (s->cfg->dev_mode || now < s->recreate_at)
    return;
  uint64_t every =
      (uint64_t)s->cfg->session_handler.topic_init_retry_interval_ms;
  if (topic_ensure(s, 3, &created, why, sizeof(why)) != 0)
    KWP_LOG(KWP_LOG_ERROR, "session", "%s", why);
  else if (created)
    KWP_LOG(KWP_LOG_WARN, "session",
            "the session state topic %s was gone (deleted?) and is created "
            "again: sockets open before are not in it, so nodes that start "
            "from now on do not count them until they close",
            s->topic);
  /* Until a write succeeds topic_gone stays set: try again later. */
  s->recreate_at = now_ms() + (every > 5000 ? every : 5000);
}

static void tick(uv_timer_t *t) {
  kwp_session_t *s = t->data;
  const kwp_config_t *cfg = s->cfg;
  uint64_t now = now_ms(),
           hb = (uint64_t)cfg->session_handler.heartbeat_interval_ms;
  if (atomic_load(&s->fatal))
    return;
  if (atomic_load(&s->topic_gone))
    topic_recreate(s, now);
  uv_mutex_lock(&s->lock);
  pending_expire(s, now);
  /* After the replay, listen for one more round of heartbeats before
   * claiming the server-id: a live twin would show up in it. */
  if (!s->heartbeating && s->restored_at && now >= s->restored_at + 2 * hb) {
    s->heartbeating = 1;
    kwp_sstate_stale_claims(s->state, s->server_id, s->incarnation,
                            tombstone_cb, s);
  }
  if (s->heartbeating) {
    heartbeat_write(s);
    retry_run(s);
    kwp_sstate_stale_claims(s->state, s->server_id, s->incarnation,
                            tombstone_cb, s);
  }
  int ok = s->heartbeating && s->own_hb_seen &&
           now - s->own_hb_seen <= 3 * hb + 1000;
  uv_mutex_unlock(&s->lock);
  /* A deleted state topic read as "Kafka is unreachable": the heartbeats
   * stop coming back either way, but the writes say which it is. */
  atomic_store(&s->status, ok                 ? "ready"
                           : !s->restored_at  ? "restoring session state"
                           : !s->heartbeating ? "checking the server-id"
                           : atomic_load(&s->topic_gone)
                               ? "session state topic unavailable"
                           : !s->own_hb_seen ? "joining the cluster"
                                             : "Kafka is unreachable");
  atomic_store(&s->ready, ok);
}

static void stop_cb(uv_async_t *a) {
  kwp_session_t *s = a->data;
  uv_close((uv_handle_t *)&s->stop_async, NULL);
  uv_close((uv_handle_t *)&s->tick, NULL);
  if (s->ckb)
    kwp_kbridge_close(s->ckb, NULL, NULL);
  if (s->pkb)
    kwp_kbridge_close(s->pkb, NULL, NULL);
}

static int clients_start(kwp_session_t *s, char *errbuf, size_t errlen);
static int topic_ensure(kwp_session_t *s, int64_t retries, int *created,
                        char *errbuf, size_t errlen);

/* The topic setup blocks (with bounded retries), so it runs here rather
 * than on the main thread: the listener answers /healthcheck meanwhile. */
static void session_main(void *arg) {
  kwp_session_t *s = arg;
  char err[512] = "";
  int created = 0;
  if (topic_ensure(s, s->cfg->session_handler.topic_init_retries, &created, err,
                   sizeof(err)) != 0 ||
      clients_start(s, err, sizeof(err)) != 0) {
    if (!atomic_load(&s->stopping)) {
      KWP_LOG(KWP_LOG_ERROR, "session", "%s", err);
      atomic_store(&s->status, "session state topic unavailable");
      atomic_store(&s->fatal, 1);
      kill(getpid(), SIGTERM);
    }
  } else {
    uint64_t every =
        (uint64_t)s->cfg->session_handler.heartbeat_interval_ms / 2;
    uv_timer_start(&s->tick, tick, every ? every : 1, every ? every : 1);
  }
  uv_run(&s->loop, UV_RUN_DEFAULT);
}

/* --- setup --- */

static rd_kafka_t *client_new(kwp_session_t *s, rd_kafka_type_t type,
                              char *errbuf, size_t errlen) {
  const kwp_props_t *props = type == RD_KAFKA_CONSUMER
                                 ? &s->cfg->consumer.kafka_client_properties
                                 : &s->cfg->producer.kafka_client_properties;
  rd_kafka_conf_t *conf = kwp_kafka_conf_new(
      s->kafka, props,
      type == RD_KAFKA_CONSUMER ? KWP_KAFKA_CONSUMER : KWP_KAFKA_PRODUCER,
      errbuf, errlen);
  if (!conf)
    return NULL;
  char cid[300];
  snprintf(cid, sizeof(cid), "ws-proxy-session-%s", s->server_id);
  int bad = rd_kafka_conf_set(conf, "client.id", cid, errbuf, errlen) != 0;
  if (type == RD_KAFKA_CONSUMER) {
    /* A group id only because librdkafka wants one for assign(); nothing is
     * ever committed and every node reads the whole topic. */
    bad = bad || rd_kafka_conf_set(conf, "group.id", cid, errbuf, errlen) ||
          rd_kafka_conf_set(conf, "enable.auto.commit", "false", errbuf,
                            errlen) ||
          rd_kafka_conf_set(conf, "enable.partition.eof", "true", errbuf,
                            errlen) ||
          /* A topic deleted and created again starts its offsets over: read
           * it from its first record, not from its end. */
          rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", errbuf,
                            errlen) ||
          rd_kafka_conf_set(conf, "fetch.wait.max.ms", "50", errbuf, errlen);
    rd_kafka_conf_set_events(conf, RD_KAFKA_EVENT_FETCH | RD_KAFKA_EVENT_ERROR);
  } else {
    bad =
        bad ||
        rd_kafka_conf_set(conf, "enable.idempotence", "true", errbuf, errlen) ||
        rd_kafka_conf_set(conf, "linger.ms", "0", errbuf, errlen);
    rd_kafka_conf_set_events(conf, RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR);
  }
  rd_kafka_t *rk = bad ? NULL : rd_kafka_new(type, conf, errbuf, errlen);
  if (!rk)
    rd_kafka_conf_destroy(conf);
  return rk;
}

static int clients_start(kwp_session_t *s, char *errbuf, size_t errlen) {
  if (!(s->consumer = client_new(s, RD_KAFKA_CONSUMER, errbuf, errlen)) ||
      !(s->producer = client_new(s, RD_KAFKA_PRODUCER, errbuf, errlen)))
    return -1;
  rd_kafka_poll_set_consumer(s->consumer);
  s->cq = rd_kafka_queue_get_consumer(s->consumer);
  s->pq = rd_kafka_queue_get_main(s->producer);
  s->ckb = kwp_kbridge_new(&s->loop, s->cq, on_event, s, errbuf, errlen);
  s->pkb = kwp_kbridge_new(&s->loop, s->pq, on_event, s, errbuf, errlen);
  if (!s->ckb || !s->pkb)
    return -1;
  /* Every node reads the whole topic; no group, no commits. */
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, s->topic, 0)->offset =
      RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_resp_err_t err = rd_kafka_assign(s->consumer, l);
  rd_kafka_topic_partition_list_destroy(l);
  if (err) {
    snprintf(errbuf, errlen, "assign: %s", rd_kafka_err2str(err));
    return -1;
  }
  return 0;
}

typedef struct destroy_job {
  rd_kafka_t *rk;
  uv_mutex_t lock;
  uv_cond_t cond;
  int done;
} destroy_job_t;

static void destroy_run(void *arg) {
  destroy_job_t *job = arg;
  rd_kafka_destroy(job->rk);
  uv_mutex_lock(&job->lock);
  job->done = 1;
  uv_cond_signal(&job->cond);
  uv_mutex_unlock(&job->lock);
}

/* rd_kafka_destroy(), given at most @p ms. With librdkafka 2.0.2 to 2.6.0
 * (#4724) the state consumer's destroy never returns once the state topic
 * was deleted; the process is exiting, so it is left behind rather than
 * waited for. */
static void destroy_bounded(rd_kafka_t *rk, uint64_t ms) {
  destroy_job_t *job = calloc(1, sizeof(*job));
  uv_thread_t t;
  if (!job) {
    rd_kafka_destroy(rk);
    return;
  }
  job->rk = rk;
  uv_mutex_init(&job->lock);
  uv_cond_init(&job->cond);
  if (uv_thread_create(&t, destroy_run, job) != 0) {
    destroy_run(job);
  } else {
    uint64_t deadline = uv_hrtime() + ms * 1000000;
    uv_mutex_lock(&job->lock);
    while (!job->done && uv_hrtime() < deadline)
      uv_cond_timedwait(&job->cond, &job->lock, deadline - uv_hrtime());
    int done = job->done;
    uv_mutex_unlock(&job->lock);
    if (!done) {
      KWP_LOG(KWP_LOG_WARN, "session",
              "the state consumer did not finish closing within %llu ms "
              "(was the state topic deleted?); exiting without it",
              (unsigned long long)ms);
      return; /* job and thread stay: the thread still uses them */
    }
    uv_thread_join(&t);
  }
  uv_cond_destroy(&job->cond);
  uv_mutex_destroy(&job->lock);
  free(job);
}

static void session_free(kwp_session_t *s) {
  if (s->cq)
    rd_kafka_queue_destroy(s->cq);
  if (s->pq)
    rd_kafka_queue_destroy(s->pq);
  if (s->consumer)
    destroy_bounded(s->consumer, 2000);
  if (s->producer)
    rd_kafka_destroy(s->producer);
  kwp_sstate_free(s->state);
  for (size_t i = 0; i < s->nretry; i++)
    free(s->retry[i]);
  free(s->retry);
  uv_mutex_destroy(&s->lock);
  free(s);
}

kwp_session_t *kwp_session_start(const kwp_config_t *cfg, kwp_kafka_t *kafka,
                                 char *errbuf, size_t errlen) {
  kwp_session_t *s = calloc(1, sizeof(*s));
  uint8_t rnd[16];
  if (!s || RAND_bytes(rnd, sizeof(rnd)) != 1) {
    snprintf(errbuf, errlen, "out of memory");
    free(s);
    return NULL;
  }
  for (int i = 0; i < 16; i++)
    snprintf(s->incarnation + 2 * i, 3, "%02x", rnd[i]);
  s->cfg = cfg;
  s->kafka = kafka;
  s->admission = (kwp_admission_t){.impl = s,
                                   .admit = session_admit,
                                   .refusal = session_refusal,
                                   .release = session_release,
                                   .ready = session_ready,
                                   .status = session_status,
                                   .sessions = session_count};
  s->topic = cfg->session_handler.topic_name;
  s->server_id = cfg->server.server_id;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  s->start_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  atomic_init(&s->ready, 0);
  atomic_init(&s->fatal, 0);
  atomic_init(&s->stopping, 0);
  s->own_first_hb = s->twin_first_hb = s->last_offset = -1;
  atomic_init(&s->status, "restoring session state");
  uv_mutex_init(&s->lock);
  uv_loop_init(&s->loop);
  s->state = kwp_sstate_new(cfg->session_handler.node_ttl_ms);
  uv_async_init(&s->loop, &s->stop_async, stop_cb);
  uv_timer_init(&s->loop, &s->tick);
  s->stop_async.data = s->tick.data = s;
  if (!s->state || uv_thread_create(&s->thread, session_main, s) != 0) {
    snprintf(errbuf, errlen, "cannot start the session handler");
    return NULL; /* startup fails: the process exits */
  }
  KWP_LOG(KWP_LOG_INFO, "session",
          "session handler on %s as %s (incarnation %s)", s->topic,
          s->server_id, s->incarnation);
  return s;
}

/* --- API --- */

int kwp_session_ready(const kwp_session_t *s) {
  return atomic_load(&s->ready);
}

const char *kwp_session_status(const kwp_session_t *s) {
  return atomic_load(&s->status);
}

void kwp_session_stats(kwp_session_t *s, size_t *sessions, int64_t *log_time) {
  uv_mutex_lock(&s->lock);
  *sessions = kwp_sstate_sessions(s->state);
  *log_time = kwp_sstate_log_time(s->state);
  uv_mutex_unlock(&s->lock);
}

int kwp_session_fatal(const kwp_session_t *s) {
  return atomic_load(&s->fatal);
}

static void session_refusal(void *impl, int err, char *msg, size_t len) {
  const kwp_session_t *s = impl;
  if (err == KWP_EUNAVAILABLE)
    snprintf(msg, len, "Session state is not ready (%s); try again shortly",
             kwp_session_status(s));
  else
    snprintf(msg, len, "Cannot register the session: %s", kwp_strerror(err));
}

static int session_admit(void *impl, kwp_worker_t *wk, int kind,
                         const char *session, const char *instance,
                         int64_t limit, kwp_admit_cb cb, void *arg) {
  kwp_session_t *s = impl;
  if (!kwp_session_ready(s))
    return KWP_EUNAVAILABLE;
  pending_t *p = calloc(1, sizeof(*p));
  kwp_claim_handle_t *claim = malloc(sizeof(*claim));
  if (!p || !claim) {
    free(p);
    free(claim);
    return KWP_ENOMEM;
  }
  uv_mutex_lock(&s->lock);
  snprintf(p->nonce, sizeof(p->nonce), "%s-%llu", s->incarnation,
           (unsigned long long)++s->next_nonce);
  uv_mutex_unlock(&s->lock);
  kwp_claim_t c = {.nonce = p->nonce,
                   .kind = kind,
                   .session = session,
                   .instance = instance,
                   .server_id = s->server_id,
                   .incarnation = s->incarnation,
                   .limit = limit};
  char *value = kwp_sstate_claim_value(&c);
  kwp_sstate_claim_key(claim->key, sizeof(claim->key), &c);
  p->wk = wk;
  p->cb = cb;
  p->arg = arg;
  p->claim = claim;
  p->deadline =
      now_ms() + (uint64_t)s->cfg->session_handler.admission_timeout_ms;
  /* Waiting before writing: the verdict may be read back at once. */
  uv_mutex_lock(&s->lock);
  p->next = s->pending;
  s->pending = p;
  uv_mutex_unlock(&s->lock);
  int rc = value ? produce(s, claim->key, value) : KWP_ENOMEM;
  free(value);
  if (rc == KWP_EKAFKA)
    rc = KWP_EUNAVAILABLE; /* e.g. the producer's queue is full */
  if (rc != 0) {
    uv_mutex_lock(&s->lock);
    p = pending_take(s, c.nonce);
    uv_mutex_unlock(&s->lock);
    if (p) {
      free(p->claim);
      free(p);
    }
  }
  return rc;
}

static void session_release(void *impl, kwp_claim_handle_t *claim) {
  kwp_session_t *s = impl;
  if (!claim)
    return;
  produce(s, claim->key, NULL);
  free(claim);
}

static int session_ready(void *impl) {
  return kwp_session_ready(impl);
}

static const char *session_status(void *impl) {
  return kwp_session_status(impl);
}

static size_t session_count(void *impl) {
  size_t n;
  int64_t log_time;
  kwp_session_stats(impl, &n, &log_time);
  return n;
}

const kwp_admission_t *kwp_session_admission(kwp_session_t *s) {
  return &s->admission;
}

void kwp_session_stop(kwp_session_t *s) {
  char key[KEY_MAX];
  if (!s)
    return;
  atomic_store(&s->stopping, 1);
  uv_async_send(&s->stop_async);
  uv_thread_join(&s->thread);
  /* Gone at once for the other nodes, rather than after the TTL. */
  kwp_sstate_heartbeat_key(key, sizeof(key), s->server_id);
  if (s->producer && s->heartbeating && !atomic_load(&s->fatal))
    produce(s, key, NULL);
  /* Main thread, shutting down: blocking is fine. Delivery reports count
   * as outstanding until taken off the queue, so serve it while waiting.
   * A reachable Kafka takes them in milliseconds; an unreachable one is not
   * worth more than a second past the grace period (it took 5 s): the other
   * nodes forget this one after node-ttl anyway. */
  for (int i = 0; s->producer && rd_kafka_outq_len(s->producer) > 0 && i < 20;
       i++) {
    rd_kafka_event_t *ev;
    rd_kafka_flush(s->producer, 50);
    while ((ev = rd_kafka_queue_poll(s->pq, 0)))
      rd_kafka_event_destroy(ev);
  }
  pending_t *p;
  while ((p = s->pending)) { /* no worker is left to wait */
    s->pending = p->next;
    free(p->claim);
    free(p);
  }
  uv_loop_close(&s->loop);
  session_free(s);
}
