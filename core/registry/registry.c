/*
 * The schema registry client: the cache (a read-write lock; loops only read
 * it), the requests in flight (a mutex), and the HTTP calls, which block and
 * so run on libuv's thread pool (registry_http.c). A requester waits on a
 * uv_async_t of its own loop, so one answer fetched on a pool thread reaches
 * loops of any worker. Schemas are compiled (codec/avro/avro_json.h) once, on
 * the pool thread, and the cache owns them.
 */
#include "core/registry/registry.h"

#include "codec/avro/avro_json.h"
#include "core/base/error.h"
#include "core/base/log.h"
#include "core/registry/registry_int.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REG_LATEST_TTL_NS (30ull * 1000000000ull)
#define REG_STALE_RETRY_NS (5ull * 1000000000ull)
#define REG_MSG_MAX 256

#define REG_CONTAINER_OF(ptr, type, field)                                     \
  ((type *)((char *)(ptr)-offsetof(type, field)))

/* A chained hash map keyed by an int32 (ids) or a string (subjects). */
typedef struct entry {
  struct entry *next;
  uint64_t h;
  char *skey; /* NULL: keyed by ikey */
  int32_t ikey;
  void *val;
} entry_t;

typedef struct map {
  entry_t **b;
  size_t nb, n;
} map_t;

/* A subject's latest version as last fetched. */
typedef struct latest {
  const kwp_schema_t *cur; /* an entry of the versions map */
  uint64_t fresh_until;    /* uv_hrtime() */
} latest_t;

enum { REQ_ID, REQ_SUBJECT, REQ_REGISTER };

/* One requester: its callback, on its own loop through its own async. */
typedef struct waiter {
  uv_async_t async;
  struct waiter *next;
  kwp_registry_cb cb;
  void *arg;
  int err;
  const kwp_schema_t *schema;
  char message[REG_MSG_MAX];
} waiter_t;

/* One HTTP request and everyone waiting for it. */
typedef struct flight {
  struct flight *next;
  kwp_registry_t *reg;
  uv_work_t work;
  int kind;
  int32_t id;
  int version;   /* -1 latest */
  char *subject; /* REQ_SUBJECT, REQ_REGISTER */
  char *body;    /* REQ_REGISTER: the schema's JSON */
  waiter_t *waiters;
  int err;
  const kwp_schema_t *schema;
  char message[REG_MSG_MAX];
} flight_t;

struct kwp_registry {
  kwp_reg_http_t http;
  pthread_rwlock_t lock; /* ids, versions, latest */
  map_t ids;             /* id -> kwp_schema_t (owns text and avro) */
  map_t versions;        /* "version:subject" -> kwp_schema_t (owns subject) */
  map_t latest;          /* subject -> latest_t */
  uv_mutex_t flock;      /* flights */
  flight_t *flights;
};

/* ---- the maps ---------------------------------------------------------- */

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static uint64_t hash_id(int32_t id) {
  return ((uint64_t)(uint32_t)id * 0x9E3779B97F4A7C15ull) >> 7;
}

static void *map_get(const map_t *m, uint64_t h, const char *skey,
                     int32_t ikey) {
  if (!m->nb)
    return NULL;
  for (entry_t *e = m->b[h & (m->nb - 1)]; e; e = e->next)
    if (e->h == h && (skey ? e->skey && !strcmp(e->skey, skey)
                           : !e->skey && e->ikey == ikey))
      return e->val;
  return NULL;
}

/* Takes @skey (malloc'd) on success. */
static int map_put(map_t *m, uint64_t h, char *skey, int32_t ikey, void *val) {
  if (m->n >= m->nb / 2) {
    size_t nb = m->nb ? m->nb * 2 : 16;
    entry_t **b = calloc(nb, sizeof(*b));
    if (!b)
      return KWP_ENOMEM;
    for (size_t i = 0; i < m->nb; i++)
      for (entry_t *e = m->b[i], *next; e; e = next) {
        next = e->next;
        e->next = b[e->h & (nb - 1)];
        b[e->h & (nb - 1)] = e;
      }
    free(m->b);
    m->b = b;
    m->nb = nb;
  }
  entry_t *e = malloc(sizeof(*e));
  if (!e)
    return KWP_ENOMEM;
  *e = (entry_t){m->b[h & (m->nb - 1)], h, skey, ikey, val};
  m->b[h & (m->nb - 1)] = e;
  m->n++;
  return 0;
}

static void map_free(map_t *m, void (*free_val)(void *)) {
  for (size_t i = 0; i < m->nb; i++)
    for (entry_t *e = m->b[i], *next; e; e = next) {
      next = e->next;
      free_val(e->val);
      free(e->skey);
      free(e);
    }
  free(m->b);
  *m = (map_t){0};
}

static void schema_free(void *p) {
  kwp_schema_t *s = p;
  if (!s->subject) { /* an id entry owns the text and the parsed schema */
    free((char *)s->text);
    kwp_avro_schema_free((kwp_avro_schema_t *)s->avro);
  }
  free((char *)s->subject);
  free(s);
}

static char *version_key(const char *subject, int version) {
  size_t n = strlen(subject) + 16;
  char *k = malloc(n);
  if (k)
    snprintf(k, n, "%d:%s", version, subject);
  return k;
}

/* ---- the cache ----------------------------------------------------------- */

const kwp_schema_t *kwp_registry_cached_id(kwp_registry_t *reg, int32_t id) {
  pthread_rwlock_rdlock(&reg->lock);
  const kwp_schema_t *s = map_get(&reg->ids, hash_id(id), NULL, id);
  pthread_rwlock_unlock(&reg->lock);
  return s;
}

static const kwp_schema_t *cached_subject_locked(kwp_registry_t *reg,
                                                 const char *subject,
                                                 int version, uint64_t now) {
  if (version < 0) {
    const latest_t *l = map_get(&reg->latest, hash_str(subject), subject, 0);
    return l && now < l->fresh_until ? l->cur : NULL;
  }
  char *k = version_key(subject, version);
  const kwp_schema_t *s = k ? map_get(&reg->versions, hash_str(k), k, 0) : NULL;
  free(k);
  return s;
}

const kwp_schema_t *kwp_registry_cached_subject(kwp_registry_t *reg,
                                                const char *subject,
                                                int version) {
  pthread_rwlock_rdlock(&reg->lock);
  const kwp_schema_t *s =
      cached_subject_locked(reg, subject, version, uv_hrtime());
  pthread_rwlock_unlock(&reg->lock);
  return s;
}

/* Parse @text (taken) as schema @id and keep it; returns the cached entry,
 * which is an earlier one when another request stored the id first. Runs on a
 * pool thread: the parse is outside the lock. */
static int store_id(kwp_registry_t *reg, int32_t id, char *text,
                    const kwp_schema_t **out, char *msg, size_t msglen) {
  char why[160];
  size_t len = strlen(text);
  kwp_avro_schema_t *avro = kwp_avro_schema_new(text, len, why, sizeof(why));
  if (!avro) {
    snprintf(msg, msglen, "schema %d is not a valid Avro schema: %.120s", id,
             why);
    free(text);
    return KWP_EBADVALUE;
  }
  kwp_schema_t *s = calloc(1, sizeof(*s));
  if (!s) {
    free(text);
    kwp_avro_schema_free(avro);
    return KWP_ENOMEM;
  }
  *s = (kwp_schema_t){id, NULL, 0, text, len, avro};
  pthread_rwlock_wrlock(&reg->lock);
  const kwp_schema_t *had = map_get(&reg->ids, hash_id(id), NULL, id);
  int rc = had ? 0 : map_put(&reg->ids, hash_id(id), NULL, id, s);
  pthread_rwlock_unlock(&reg->lock);
  if (had || rc)
    schema_free(s);
  *out = had ? had : s;
  return rc;
}

/* Keep @subject at @version as schema @ids_entry; @latest: it is also the
 * subject's latest from now on. */
static int store_version(kwp_registry_t *reg, const kwp_schema_t *ids_entry,
                         const char *subject, int version, int latest,
                         const kwp_schema_t **out) {
  char *k = version_key(subject, version);
  kwp_schema_t *s = calloc(1, sizeof(*s));
  char *subj = strdup(subject), *lkey = strdup(subject);
  latest_t *l = calloc(1, sizeof(*l));
  int rc = k && s && subj && lkey && l ? 0 : KWP_ENOMEM;
  if (!rc) {
    *s = *ids_entry;
    s->subject = subj;
    s->version = version;
    subj = NULL;
  }
  pthread_rwlock_wrlock(&reg->lock);
  const kwp_schema_t *had =
      rc ? NULL : map_get(&reg->versions, hash_str(k), k, 0);
  if (!rc && !had && !(rc = map_put(&reg->versions, hash_str(k), k, 0, s)))
    k = NULL, had = s, s = NULL;
  if (!rc && latest) {
    latest_t *cur = map_get(&reg->latest, hash_str(subject), subject, 0);
    if (!cur && !(rc = map_put(&reg->latest, hash_str(lkey), lkey, 0, l)))
      cur = l, l = NULL, lkey = NULL;
    if (cur) {
      cur->cur = had;
      cur->fresh_until = uv_hrtime() + REG_LATEST_TTL_NS;
    }
  }
  pthread_rwlock_unlock(&reg->lock);
  *out = had;
  free(k), free(subj), free(lkey), free(l);
  if (s) /* never stored: it owns only its subject */
    free((char *)s->subject), free(s);
  return rc;
}

/* The registry cannot be reached: a stale latest of @subject, if any, is
 * answered, and kept fresh a little while so it is not asked at every
 * record. */
static const kwp_schema_t *stale_latest(kwp_registry_t *reg,
                                        const char *subject) {
  pthread_rwlock_wrlock(&reg->lock);
  latest_t *l = map_get(&reg->latest, hash_str(subject), subject, 0);
  if (l)
    l->fresh_until = uv_hrtime() + REG_STALE_RETRY_NS;
  pthread_rwlock_unlock(&reg->lock);
  return l ? l->cur : NULL;
}

/* GET, POST and the answer into the cache. @f->err and @f->schema out. */
static int fetch(flight_t *f, char *msg, size_t msglen) {
  kwp_registry_t *reg = f->reg;
  char path[1200], esc[1024], what[80];
  body_t b = {0};
  json_t *doc = NULL;
  char *post = NULL;
  int32_t id = f->id;
  if (f->kind != REQ_ID &&
      kwp_registry__url_escape(f->subject, esc, sizeof(esc))) {
    snprintf(msg, msglen, "subject name too long");
    return KWP_EBADREQ;
  }
  if (f->kind == REQ_ID) {
    snprintf(path, sizeof(path), "/schemas/ids/%d", f->id);
    snprintf(what, sizeof(what), "schema %d", f->id);
  } else if (f->kind == REQ_SUBJECT) {
    char v[16] = "latest";
    if (f->version >= 0)
      snprintf(v, sizeof(v), "%d", f->version);
    snprintf(path, sizeof(path), "/subjects/%s/versions/%s", esc, v);
    snprintf(what, sizeof(what), "subject %.50s version %s", f->subject, v);
  } else {
    snprintf(path, sizeof(path), "/subjects/%s/versions", esc);
    snprintf(what, sizeof(what), "registering under %.50s", f->subject);
    char why[160];
    kwp_avro_schema_t *avro =
        kwp_avro_schema_new(f->body, strlen(f->body), why, sizeof(why));
    if (!avro) {
      snprintf(msg, msglen, "%s: not a valid Avro schema: %.120s", what, why);
      return KWP_EBADVALUE;
    }
    kwp_avro_schema_free(avro);
    json_t *req = json_pack("{s:s}", "schema", f->body);
    post = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!post)
      return KWP_ENOMEM;
  }
  long status = 0;
  int rc = kwp_registry__http(&reg->http, path, post, &status, &b, msg, msglen);
  free(post);
  if (!rc && (status < 200 || status > 299))
    rc = kwp_registry__http_error(status, &b, what, msg, msglen);
  if (!rc && !(doc = json_loadb(b.p ? b.p : "", b.n, 0, NULL))) {
    snprintf(msg, msglen, "%s: the registry's answer is not JSON", what);
    rc = KWP_EBADREQ;
  }
  free(b.p);
  if (rc)
    return rc;
  if (f->kind != REQ_ID)
    id = (int32_t)json_integer_value(json_object_get(doc, "id"));
  int version = (int)json_integer_value(json_object_get(doc, "version"));
  char *text = NULL;
  if (f->kind == REQ_REGISTER)
    rc = (text = strdup(f->body)) ? 0 : KWP_ENOMEM;
  else
    rc = kwp_registry__answer_schema(doc, id, &text, msg, msglen);
  json_decref(doc);
  if (!rc && (id <= 0 || (f->kind == REQ_SUBJECT && version <= 0))) {
    snprintf(msg, msglen, "%s: the registry's answer has no id or version",
             what);
    free(text);
    rc = KWP_EBADREQ;
  }
  if (!rc)
    rc = store_id(reg, id, text, &f->schema, msg, msglen);
  if (!rc && f->kind == REQ_SUBJECT)
    rc = store_version(reg, f->schema, f->subject, version, f->version < 0,
                       &f->schema);
  return rc;
}

/* ---- requests and their waiters ------------------------------------------ */

static void waiter_free(uv_handle_t *h) {
  free(REG_CONTAINER_OF(h, waiter_t, async));
}

/* On the requester's loop. */
static void waiter_cb(uv_async_t *a) {
  waiter_t *w = REG_CONTAINER_OF(a, waiter_t, async);
  w->cb(w->arg, w->err, w->err ? NULL : w->schema, w->err ? w->message : NULL);
  uv_close((uv_handle_t *)a, waiter_free);
}

static void waiter_answer(waiter_t *w, int err, const kwp_schema_t *schema,
                          const char *message) {
  w->err = err;
  w->schema = schema;
  snprintf(w->message, sizeof(w->message), "%s",
           message && *message ? message : kwp_strerror(err));
  uv_async_send(&w->async);
}

static waiter_t *waiter_new(uv_loop_t *loop, kwp_registry_cb cb, void *arg) {
  waiter_t *w = calloc(1, sizeof(*w));
  if (!w)
    return NULL;
  if (uv_async_init(loop, &w->async, waiter_cb) != 0) {
    free(w);
    return NULL;
  }
  w->cb = cb;
  w->arg = arg;
  return w;
}

static void flight_free(flight_t *f) {
  free(f->subject);
  free(f->body);
  free(f);
}

/* On a pool thread: fetch, then answer everyone who joined meanwhile. The
 * flight leaves the list only after the cache holds the answer, so a request
 * arriving later either joins it or hits the cache. */
static void flight_work(uv_work_t *work) {
  flight_t *f = REG_CONTAINER_OF(work, flight_t, work);
  kwp_registry_t *reg = f->reg;
  f->err = fetch(f, f->message, sizeof(f->message));
  if (f->err == KWP_EUNAVAILABLE && f->kind == REQ_SUBJECT && f->version < 0 &&
      (f->schema = stale_latest(reg, f->subject))) {
    KWP_LOG(KWP_LOG_WARN, "registry",
            "%s; answering subject %s with its last known latest (id %d)",
            f->message, f->subject, f->schema->id);
    f->err = 0;
  } else if (f->err) {
    KWP_LOG(KWP_LOG_DEBUG, "registry", "%s", f->message);
  }
  uv_mutex_lock(&reg->flock);
  for (flight_t **pp = &reg->flights; *pp; pp = &(*pp)->next)
    if (*pp == f) {
      *pp = f->next;
      break;
    }
  waiter_t *w = f->waiters;
  f->waiters = NULL;
  uv_mutex_unlock(&reg->flock);
  for (waiter_t *next; w; w = next) {
    next = w->next; /* @w may be gone once its loop got the send */
    waiter_answer(w, f->err, f->schema, f->message);
  }
}

static void flight_after(uv_work_t *work, int status) {
  flight_free(REG_CONTAINER_OF(work, flight_t, work));
}

static int flight_new(kwp_registry_t *reg, uv_loop_t *loop, int kind,
                      int32_t id, const char *subject, int version,
                      const char *body, flight_t **out) {
  flight_t *f = calloc(1, sizeof(*f));
  if (!f)
    return KWP_ENOMEM;
  f->reg = reg;
  f->kind = kind;
  f->id = id;
  f->version = version;
  if ((subject && !(f->subject = strdup(subject))) ||
      (body && !(f->body = strdup(body)))) {
    flight_free(f);
    return KWP_ENOMEM;
  }
  int rc = uv_queue_work(loop, &f->work, flight_work, flight_after);
  if (rc) {
    flight_free(f);
    return rc;
  }
  f->next = reg->flights;
  reg->flights = *out = f;
  return 0;
}

static int same_key(const flight_t *f, int kind, int32_t id,
                    const char *subject, int version) {
  return f->kind == kind && (kind == REQ_ID ? f->id == id
                                            : f->version == version &&
                                                  !strcmp(f->subject, subject));
}

/* Join the flight for the key, or start one on @loop. Under flock the cache
 * is looked at again: a flight may have ended since the caller's look. */
static int request(kwp_registry_t *reg, uv_loop_t *loop, int kind, int32_t id,
                   const char *subject, int version, const char *body,
                   kwp_registry_cb cb, void *arg) {
  waiter_t *w = waiter_new(loop, cb, arg);
  if (!w)
    return KWP_ENOMEM;
  flight_t *f = NULL;
  int rc = 0;
  uv_mutex_lock(&reg->flock);
  const kwp_schema_t *hit =
      kind == REQ_ID        ? kwp_registry_cached_id(reg, id)
      : kind == REQ_SUBJECT ? kwp_registry_cached_subject(reg, subject, version)
                            : NULL;
  if (!hit && kind != REQ_REGISTER)
    for (f = reg->flights; f && !same_key(f, kind, id, subject, version);)
      f = f->next;
  if (!hit && !f) {
    rc = flight_new(reg, loop, kind, id, subject, version, body, &f);
  }
  if (f) {
    w->next = f->waiters;
    f->waiters = w;
  }
  uv_mutex_unlock(&reg->flock);
  if (hit)
    waiter_answer(w, 0, hit, NULL);
  else if (rc)
    uv_close((uv_handle_t *)&w->async, waiter_free);
  return rc;
}

int kwp_registry_by_id(kwp_registry_t *reg, uv_loop_t *loop, int32_t id,
                       kwp_registry_cb cb, void *arg) {
  return request(reg, loop, REQ_ID, id, NULL, 0, NULL, cb, arg);
}

int kwp_registry_by_subject(kwp_registry_t *reg, uv_loop_t *loop,
                            const char *subject, int version,
                            kwp_registry_cb cb, void *arg) {
  if (version == 0 || version < -1 || !subject || !*subject)
    return KWP_EBADREQ;
  return request(reg, loop, REQ_SUBJECT, 0, subject, version, NULL, cb, arg);
}

int kwp_registry_register(kwp_registry_t *reg, uv_loop_t *loop,
                          const char *subject, const char *schema_json,
                          kwp_registry_cb cb, void *arg) {
  if (!subject || !*subject || !schema_json)
    return KWP_EBADREQ;
  return request(reg, loop, REQ_REGISTER, 0, subject, 0, schema_json, cb, arg);
}

uint64_t kwp_registry_requests(kwp_registry_t *reg) {
  return atomic_load(&reg->http.requests);
}

const char *kwp_registry_url(const kwp_registry_t *reg) {
  return reg->http.url;
}

/* ---- construction -------------------------------------------------------- */

kwp_registry_t *kwp_registry_new(const char *url, const kwp_props_t *props,
                                 char *errbuf, size_t errlen) {
  if (!url || !*url) {
    snprintf(errbuf, errlen, "schema-registry.url is empty");
    return NULL;
  }
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    snprintf(errbuf, errlen, "libcurl failed to initialise");
    return NULL;
  }
  kwp_registry_t *reg = calloc(1, sizeof(*reg));
  if (!reg) {
    snprintf(errbuf, errlen, "out of memory");
    goto fail_alloc;
  }
  if (kwp_registry__http_init(&reg->http, url, props, errbuf, errlen))
    goto fail_props;
  if (pthread_rwlock_init(&reg->lock, NULL) != 0) {
    snprintf(errbuf, errlen, "pthread_rwlock_init failed");
    goto fail_props;
  }
  if (uv_mutex_init(&reg->flock) != 0) {
    snprintf(errbuf, errlen, "uv_mutex_init failed");
    goto fail_mutex;
  }
  return reg;
fail_mutex:
  pthread_rwlock_destroy(&reg->lock);
fail_props:
  kwp_registry__http_free(&reg->http);
  free(reg);
fail_alloc:
  curl_global_cleanup();
  return NULL;
}

static void latest_free(void *p) {
  free(p);
}

void kwp_registry_free(kwp_registry_t *reg) {
  if (!reg)
    return;
  if (reg->flights)
    KWP_LOG(KWP_LOG_WARN, "registry",
            "freed with requests in flight (a loop still ran)");
  map_free(&reg->latest, latest_free);
  map_free(&reg->versions, schema_free);
  map_free(&reg->ids, schema_free);
  uv_mutex_destroy(&reg->flock);
  pthread_rwlock_destroy(&reg->lock);
  kwp_registry__http_free(&reg->http);
  free(reg);
  curl_global_cleanup();
}
