/* Process-wide Kafka context: configuration mapping, admin metadata, dev-mode
 * mock cluster and log routing. Created and freed on the main thread; metadata
 * requests run on libuv's thread pool, never on a worker loop. */
#include "core/kafka/kafka.h"

#include "core/base/error.h"
#include "core/base/log.h"

#include <jansson.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEV_BROKERS 3

#define TOPIC_CACHE_MS 10000
/* A topic created a moment ago can be missing from the broker's metadata,
 * or listed without a leader, for a while: over 0.5 s on a busy broker
 * (`make bench` got a 400 for a topic whose creation Kafka had
 * acknowledged). Such a topic is looked at again after
 * these waits, 3 s in all, before the upgrade is refused; a Java client
 * would wait max.block.ms (60 s) for it. */
static const unsigned topic_pending_wait_ms[] = {250, 500, 1000, 1250};
#define TOPIC_PENDING_TRIES                                                    \
  (sizeof(topic_pending_wait_ms) / sizeof(topic_pending_wait_ms[0]))
#define DEV_TOPIC_PARTITIONS 4

typedef struct topic_entry {
  char *name;
  int partitions;
} topic_entry_t;

struct kwp_kafka {
  const kwp_config_t *cfg;
  uv_mutex_t topics_lock; /* guards the topic cache below */
  topic_entry_t *topics;  /* sorted by name */
  size_t ntopics;
  uint64_t topics_at; /* uv_hrtime() of the last refresh, 0 = never */
  /* One refresh at a time; lookups that waited for it use its result (see
   * topic_work()). */
  uv_mutex_t refresh_lock;
  uint64_t refreshes; /* metadata requests made, for kwp_kafka_refreshes() */
  char *bootstrap;
  rd_kafka_t *mock_rk; /* owns the dev-mode mock cluster */
  rd_kafka_mock_cluster_t *mcluster;
  rd_kafka_t *admin_rk; /* metadata requests (thread-safe) */
};

static void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac,
                         const char *buf) {
  /* syslog levels: 0-3 error, 4 warning, 5-6 notice/info, 7 debug */
  int lv = level <= 3   ? KWP_LOG_ERROR
           : level == 4 ? KWP_LOG_WARN
           : level <= 6 ? KWP_LOG_INFO
                        : KWP_LOG_DEBUG;
  KWP_LOG(lv, "kafka", "%s: %s: %s", rd_kafka_name(rk), fac, buf);
}

static int kafka_level_to_syslog(int lv) {
  return lv <= KWP_LOG_DEBUG  ? 7
         : lv == KWP_LOG_INFO ? 6
         : lv == KWP_LOG_WARN ? 4
                              : 3;
}

/* Java-client keys that librdkafka does not know. JAAS PLAIN/SCRAM configs
 * are translated into sasl.username/sasl.password; the rest are skipped. */
static int conf_set_java(rd_kafka_conf_t *conf, const char *key,
                         const char *val, char *errbuf, size_t errlen) {
  if (!strcmp(key, "sasl.jaas.config")) {
    char user[256] = "", pass[256] = "";
    const char *u = strstr(val, "username=\""), *p = strstr(val, "password=\"");
    if (u)
      sscanf(u + 10, "%255[^\"]", user);
    if (p)
      sscanf(p + 10, "%255[^\"]", pass);
    if (rd_kafka_conf_set(conf, "sasl.username", user, errbuf, errlen) ||
        rd_kafka_conf_set(conf, "sasl.password", pass, errbuf, errlen))
      return -1;
    return 0;
  }
  KWP_LOG(KWP_LOG_DEBUG, "kafka", "ignoring Java-only client property %s", key);
  return 0;
}

/* One partition.assignment.strategy entry: a Java assignor class name (as
 * the reference's configurations have them, fully qualified or not) as
 * librdkafka names it; librdkafka's own names pass. NULL for Java's eager
 * StickyAssignor, which librdkafka does not have. */
static const char *assignor_name(const char *tok) {
  static const char *const java[][2] = {
      {"RangeAssignor", "range"},
      {"RoundRobinAssignor", "roundrobin"},
      {"CooperativeStickyAssignor", "cooperative-sticky"},
      {"StickyAssignor", NULL},
  };
  const char *dot = strrchr(tok, '.');
  const char *base = dot ? dot + 1 : tok;
  for (size_t i = 0; i < sizeof(java) / sizeof(java[0]); i++)
    if (!strcmp(base, java[i][0]))
      return java[i][1];
  return tok;
}

/* A Java partition.assignment.strategy list in librdkafka's terms. Java
 * takes a list that mixes eager and cooperative assignors (its 3.x default,
 * Range then CooperativeSticky) and rebalances eagerly with the first;
 * librdkafka refuses such a list, so only the assignors of the first one's
 * kind are kept. */
static void assignors(const char *val, char *out, size_t len) {
  int coop = -1;
  size_t o = 0;
  out[0] = '\0';
  for (const char *p = val + strspn(val, ", \t"); *p; p += strspn(p, ", \t")) {
    char tok[128];
    size_t n = strcspn(p, ", \t");
    snprintf(tok, sizeof(tok), "%.*s", (int)n, p);
    p += n;
    const char *name = assignor_name(tok);
    int c = name && !strcmp(name, "cooperative-sticky");
    const char *why =
        !name ? "librdkafka has no eager sticky assignor"
        : coop >= 0 && c != coop
            ? "librdkafka cannot mix eager and cooperative assignors"
        : o + strlen(name) + 2 > len ? "the list is too long"
                                     : NULL;
    if (why) {
      KWP_LOG(KWP_LOG_WARN, "kafka",
              "partition.assignment.strategy: leaving out %s (%s)", tok, why);
      continue;
    }
    coop = c;
    o += (size_t)snprintf(out + o, len - o, "%s%s", o ? "," : "", name);
  }
}

/* The value librdkafka gets for a Java client property's @p val (@p buf
 * holds it when it had to be rewritten), or NULL to leave the key unset. */
static const char *java_value(const char *key, const char *val, char *buf,
                              size_t len) {
  /* Java clients read "" as "not set"; librdkafka refuses it. The one
   * meaningful empty value, no hostname verification, is "none" here. */
  if (!*val)
    return strcmp(key, "ssl.endpoint.identification.algorithm") ? NULL : "none";
  /* Java's "fail when there is no committed offset" */
  if (!strcmp(key, "auto.offset.reset") && !strcmp(val, "none"))
    return "error";
  if (!strcmp(key, "partition.assignment.strategy")) {
    assignors(val, buf, len);
    return *buf ? buf : NULL; /* nothing left: librdkafka's default */
  }
  return val;
}

/* Producer-only properties of librdkafka (and their Java names). */
static int producer_only(const char *key) {
  static const char *const keys[] = {"retries",
                                     "message.send.max.retries",
                                     "retry.backoff.ms",
                                     "request.timeout.ms",
                                     "acks",
                                     "request.required.acks",
                                     "linger.ms",
                                     "queue.buffering.max.ms",
                                     "batch.size",
                                     "batch.num.messages",
                                     "compression.type",
                                     "compression.codec",
                                     "delivery.timeout.ms",
                                     "message.timeout.ms",
                                     "enable.idempotence",
                                     "transactional.id",
                                     "transaction.timeout.ms",
                                     "max.in.flight.requests.per.connection",
                                     "queue.buffering.max.messages",
                                     "queue.buffering.max.kbytes",
                                     "partitioner",
                                     NULL};
  for (const char *const *k = keys; *k; k++)
    if (!strcmp(key, *k))
      return 1;
  return 0;
}

rd_kafka_conf_t *kwp_kafka_conf_new(const kwp_kafka_t *kafka,
                                    const kwp_props_t *props, int role,
                                    char *errbuf, size_t errlen) {
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  char lv[4];
  snprintf(lv, sizeof(lv), "%d",
           kafka_level_to_syslog(kafka->cfg->log.kafka_level));
  rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
  if (rd_kafka_conf_set(conf, "log_level", lv, errbuf, errlen) ||
      rd_kafka_conf_set(conf, "bootstrap.servers", kafka->bootstrap, errbuf,
                        errlen))
    goto fail;
  /* Keyed records go where the reference's Java producer puts them
   * (murmur2, not librdkafka's CRC32), so switching proxies keeps each key
   * on its partition; @p props may still choose another partitioner. */
  if (role == KWP_KAFKA_PRODUCER &&
      rd_kafka_conf_set(conf, "partitioner", "murmur2_random", errbuf, errlen))
    goto fail;
  for (size_t i = 0; props && i < props->count; i++) {
    const kwp_kv_t *kv = &props->items[i];
    char buf[256];
    const char *val = java_value(kv->key, kv->value, buf, sizeof(buf));
    if (!val || (role == KWP_KAFKA_CONSUMER && producer_only(kv->key)))
      continue;
    rd_kafka_conf_res_t r =
        rd_kafka_conf_set(conf, kv->key, val, errbuf, errlen);
    if (r == RD_KAFKA_CONF_UNKNOWN) {
      if (conf_set_java(conf, kv->key, val, errbuf, errlen))
        goto fail;
    } else if (r != RD_KAFKA_CONF_OK) {
      goto fail;
    }
  }
  return conf;
fail:
  rd_kafka_conf_destroy(conf);
  return NULL;
}

int kwp_kafka_err(rd_kafka_resp_err_t err) {
  switch (err) {
  case RD_KAFKA_RESP_ERR_NO_ERROR:
    return 0;
  case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    return KWP_EDELIVERYTIMEOUT;
  case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    return KWP_EMSGSIZE;
  case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
  case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
  case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    return KWP_ENOTOPIC;
  case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
  case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
    return KWP_ENOTDELIVERED;
  case RD_KAFKA_RESP_ERR__QUEUE_FULL:
    return KWP_EBUSY;
  default:
    return KWP_EKAFKA;
  }
}

struct rd_kafka_mock_cluster_s *kwp_kafka_mock_cluster(kwp_kafka_t *kafka) {
  return kafka->mcluster;
}

static int kafka_start_mock(kwp_kafka_t *kafka, char *errbuf, size_t errlen) {
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
  rd_kafka_conf_set(conf, "client.id", "kwp-dev-cluster", NULL, 0);
  rd_kafka_conf_set(conf, "log_level", "3", NULL, 0); /* it has no brokers */
  kafka->mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errbuf, errlen);
  if (!kafka->mock_rk)
    return -1;
  kafka->mcluster = rd_kafka_mock_cluster_new(kafka->mock_rk, DEV_BROKERS);
  if (!kafka->mcluster) {
    snprintf(errbuf, errlen, "cannot start the in-process Kafka cluster");
    return -1;
  }
  kafka->bootstrap = strdup(rd_kafka_mock_cluster_bootstraps(kafka->mcluster));
  KWP_LOG(KWP_LOG_WARN, "kafka",
          "DEV MODE: using an in-process Kafka-protocol cluster (%d brokers) "
          "at %s. Data is NOT durable: everything is lost when the proxy "
          "stops, and each partition keeps only a few MiB",
          DEV_BROKERS, kafka->bootstrap);
  return 0;
}

kwp_kafka_t *kwp_kafka_new(const kwp_config_t *cfg, char *errbuf,
                           size_t errlen) {
  kwp_kafka_t *kafka = calloc(1, sizeof(*kafka));
  rd_kafka_conf_t *conf;
  if (!kafka) {
    snprintf(errbuf, errlen, "out of memory");
    return NULL;
  }
  kafka->cfg = cfg;
  uv_mutex_init(&kafka->topics_lock);
  uv_mutex_init(&kafka->refresh_lock);
  if (cfg->dev_mode) {
    if (kafka_start_mock(kafka, errbuf, errlen))
      goto fail;
  } else {
    kafka->bootstrap = strdup(cfg->kafka_client.bootstrap_hosts);
  }
  conf = kwp_kafka_conf_new(kafka, &cfg->admin_client.kafka_client_properties,
                            KWP_KAFKA_ADMIN, errbuf, errlen);
  if (!conf)
    goto fail;
  rd_kafka_conf_set(conf, "client.id", "kafka-ws-proxy-admin", NULL, 0);
  kafka->admin_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errbuf, errlen);
  if (!kafka->admin_rk) {
    rd_kafka_conf_destroy(conf);
    goto fail;
  }
  return kafka;
fail:
  kwp_kafka_free(kafka);
  return NULL;
}

const char *kwp_kafka_bootstrap(const kwp_kafka_t *kafka) {
  return kafka->bootstrap;
}

void kwp_kafka_free(kwp_kafka_t *kafka) {
  if (!kafka)
    return;
  if (kafka->admin_rk)
    rd_kafka_destroy(kafka->admin_rk);
  if (kafka->mcluster)
    rd_kafka_mock_cluster_destroy(kafka->mcluster);
  if (kafka->mock_rk)
    rd_kafka_destroy(kafka->mock_rk);
  for (size_t i = 0; i < kafka->ntopics; i++)
    free(kafka->topics[i].name);
  free(kafka->topics);
  uv_mutex_destroy(&kafka->topics_lock);
  uv_mutex_destroy(&kafka->refresh_lock);
  free(kafka->bootstrap);
  free(kafka);
}

/* --- cluster info on the thread pool --- */

typedef struct info_req {
  uv_work_t work;
  kwp_kafka_t *kafka;
  kwp_kafka_info_cb cb;
  void *arg;
  int status;
  char *json;
} info_req_t;

static int broker_cmp(const void *a, const void *b) {
  const rd_kafka_metadata_broker_t *x = a, *y = b;
  return (x->id > y->id) - (x->id < y->id);
}

static char *brokers_json(const struct rd_kafka_metadata *md) {
  rd_kafka_metadata_broker_t *b = malloc(sizeof(*b) * (md->broker_cnt + 1));
  json_t *arr = json_array();
  memcpy(b, md->brokers, sizeof(*b) * md->broker_cnt);
  qsort(b, (size_t)md->broker_cnt, sizeof(*b), broker_cmp);
  for (int i = 0; i < md->broker_cnt; i++)
    json_array_append_new(arr, json_pack("{s:i, s:s, s:i, s:n}", "id", b[i].id,
                                         "host", b[i].host, "port", b[i].port,
                                         "rack"));
  char *s = json_dumps(arr, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(arr);
  free(b);
  return s;
}

static void info_work(uv_work_t *w) {
  info_req_t *req = w->data;
  const struct rd_kafka_metadata *md = NULL;
  int timeout = (int)req->kafka->cfg->kafka_client.metadata_timeout_ms;
  rd_kafka_resp_err_t err =
      rd_kafka_metadata(req->kafka->admin_rk, 0, NULL, &md, timeout);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md->broker_cnt > 0) {
    req->json = brokers_json(md);
    req->status = req->json ? 0 : KWP_ENOMEM;
  } else {
    req->status = KWP_EKAFKA;
    req->json = strdup(err ? rd_kafka_err2str(err) : "no brokers in metadata");
  }
  if (md)
    rd_kafka_metadata_destroy(md);
}

static void info_after(uv_work_t *w, int status) {
  info_req_t *req = w->data;
  req->cb(req->arg, status ? status : req->status, req->json);
  free(req);
}

int kwp_kafka_cluster_info(kwp_kafka_t *kafka, uv_loop_t *loop,
                           kwp_kafka_info_cb cb, void *arg) {
  info_req_t *req = calloc(1, sizeof(*req));
  if (!req)
    return UV_ENOMEM;
  req->kafka = kafka;
  req->cb = cb;
  req->arg = arg;
  req->work.data = req;
  int rc = uv_queue_work(loop, &req->work, info_work, info_after);
  if (rc)
    free(req);
  return rc;
}

/* --- topic cache --- */

typedef struct topic_req {
  uv_work_t work;
  uv_timer_t wait; /* between looks; initialised before the first wait */
  uv_loop_t *loop;
  kwp_kafka_t *kafka;
  kwp_kafka_topic_cb cb;
  void *arg;
  char *topic;
  int result;     /* partitions, -1 while missing (or without a leader),
                     or KWP_EKAFKA */
  uint64_t asked; /* uv_hrtime() when this look was queued */
  unsigned looks;
} topic_req_t;

static int topic_cmp(const void *a, const void *b) {
  return strcmp(((const topic_entry_t *)a)->name,
                ((const topic_entry_t *)b)->name);
}

/* Caller holds topics_lock. */
static int topic_fresh(const kwp_kafka_t *kafka) {
  return kafka->topics_at &&
         uv_hrtime() - kafka->topics_at <= (uint64_t)TOPIC_CACHE_MS * 1000000;
}

static void topic_cache_store(kwp_kafka_t *kafka,
                              const struct rd_kafka_metadata *md,
                              uint64_t asked) {
  topic_entry_t *t = calloc((size_t)md->topic_cnt + 1, sizeof(*t));
  size_t n = 0;
  for (int i = 0; t && i < md->topic_cnt; i++) {
    if (md->topics[i].err || md->topics[i].partition_cnt <= 0)
      continue;
    t[n].name = strdup(md->topics[i].topic);
    t[n++].partitions = md->topics[i].partition_cnt;
  }
  if (!t)
    return;
  qsort(t, n, sizeof(*t), topic_cmp);
  uv_mutex_lock(&kafka->topics_lock);
  topic_entry_t *old = kafka->topics;
  size_t nold = kafka->ntopics;
  kafka->topics = t;
  kafka->ntopics = n;
  kafka->topics_at = asked;
  uv_mutex_unlock(&kafka->topics_lock);
  for (size_t i = 0; i < nold; i++)
    free(old[i].name);
  free(old);
}

/* Refresh the cache (only topics listed with a leader are kept). Caller
 * holds refresh_lock. */
static int topic_refresh(kwp_kafka_t *kafka) {
  const struct rd_kafka_metadata *md = NULL;
  int timeout = (int)kafka->cfg->kafka_client.metadata_timeout_ms;
  uint64_t asked = uv_hrtime(); /* it may not list topics created since */
  kafka->refreshes++;
  rd_kafka_resp_err_t err =
      rd_kafka_metadata(kafka->admin_rk, 1, NULL, &md, timeout);
  if (err)
    return KWP_EKAFKA;
  topic_cache_store(kafka, md, asked);
  rd_kafka_metadata_destroy(md);
  return 0;
}

/* The topic's partitions from the cache, -1 if absent or stale; and when
 * the cache was asked for (0 if stale), if @p refreshed. */
static int topic_find(kwp_kafka_t *kafka, const char *topic,
                      uint64_t *refreshed) {
  topic_entry_t key = {.name = (char *)topic}, *e = NULL;
  uv_mutex_lock(&kafka->topics_lock);
  int fresh = topic_fresh(kafka);
  if (fresh)
    e = bsearch(&key, kafka->topics, kafka->ntopics, sizeof(key), topic_cmp);
  if (refreshed)
    *refreshed = fresh ? kafka->topics_at : 0;
  uv_mutex_unlock(&kafka->topics_lock);
  return e ? e->partitions : -1;
}

/* One look, on the thread pool: the metadata request blocks. Lookups that
 * queue while a refresh runs (a burst of upgrades on a stale cache) wait for
 * it and then use the cache it stored, if it was taken after they were
 * queued: one metadata request (all topics: megabytes on a large cluster)
 * answers them all instead of one each. A topic missing or without a leader
 * is pending: it may have been created a moment ago. */
static void topic_work(uv_work_t *w) {
  topic_req_t *req = w->data;
  kwp_kafka_t *kafka = req->kafka;
  uint64_t at;
  uv_mutex_lock(&kafka->refresh_lock);
  req->result = topic_find(kafka, req->topic, &at);
  if (req->result == -1 && at < req->asked) /* not since our question */
    req->result =
        topic_refresh(kafka) ? KWP_EKAFKA : topic_find(kafka, req->topic, NULL);
  if (req->result == -1 && kafka->mcluster &&
      /* Dev mode: topics are created on first use. */
      rd_kafka_mock_topic_create(kafka->mcluster, req->topic,
                                 DEV_TOPIC_PARTITIONS, 1) == 0 &&
      topic_refresh(kafka) == 0)
    req->result = topic_find(kafka, req->topic, NULL);
  uv_mutex_unlock(&kafka->refresh_lock);
}

static void topic_req_free(uv_handle_t *h) {
  topic_req_t *req = h->data;
  free(req->topic);
  free(req);
}

static void topic_after(uv_work_t *w, int status);

static void topic_look_again(uv_timer_t *t) {
  topic_req_t *req = t->data;
  req->asked = uv_hrtime();
  if (uv_queue_work(req->loop, &req->work, topic_work, topic_after) != 0)
    topic_after(&req->work, UV_ENOMEM);
}

/* On the loop's thread: answer, or wait and look again. The waits are loop
 * timers, so no pool thread sleeps while a topic is missing. */
static void topic_after(uv_work_t *w, int status) {
  topic_req_t *req = w->data;
  if (!status && req->result == -1 && req->looks < TOPIC_PENDING_TRIES) {
    if (!req->looks)
      uv_timer_init(req->loop, &req->wait);
    req->wait.data = req;
    uv_timer_start(&req->wait, topic_look_again,
                   topic_pending_wait_ms[req->looks++], 0);
    return;
  }
  int result = status ? KWP_EKAFKA : req->result;
  req->cb(req->arg, result == -1 ? KWP_ENOTFOUND : result);
  if (req->looks) {
    uv_close((uv_handle_t *)&req->wait, topic_req_free);
  } else {
    free(req->topic);
    free(req);
  }
}

int kwp_kafka_topic_lookup(kwp_kafka_t *kafka, uv_loop_t *loop,
                           const char *topic, kwp_kafka_topic_cb cb,
                           void *arg) {
  int partitions = topic_find(kafka, topic, NULL);
  if (partitions > 0) {
    cb(arg, partitions);
    return 0;
  }
  topic_req_t *req = calloc(1, sizeof(*req));
  if (!req || !(req->topic = strdup(topic))) {
    free(req);
    return UV_ENOMEM;
  }
  req->kafka = kafka;
  req->loop = loop;
  req->cb = cb;
  req->arg = arg;
  req->work.data = req;
  req->asked = uv_hrtime();
  int rc = uv_queue_work(loop, &req->work, topic_work, topic_after);
  if (rc) {
    free(req->topic);
    free(req);
  }
  return rc;
}

uint64_t kwp_kafka_refreshes(kwp_kafka_t *kafka) {
  uv_mutex_lock(&kafka->refresh_lock);
  uint64_t n = kafka->refreshes;
  uv_mutex_unlock(&kafka->refresh_lock);
  return n;
}
