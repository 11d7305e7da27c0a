/*
 * The schema registry client: the cache (a read-write lock; loops only read
 * it), the requests in flight (a mutex), and the HTTP calls, which block and
 * so run on libuv's thread pool. A requester waits on a uv_async_t of its own
 * loop, so one answer fetched on a pool thread reaches loops of any worker.
 * Schemas are compiled (codec/avro/avro_json.h) once, on the pool thread,
 * and the cache owns them.
 */
#include "core/registry/registry.h"

#include "codec/avro/avro_json.h"
#include "core/base/error.h"
#include "core/base/log.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REG_CONNECT_TIMEOUT_MS 2000
#define REG_TOTAL_TIMEOUT_MS 5000
#define REG_LATEST_TTL_NS (30ull * 1000000000ull)
#define REG_STALE_RETRY_NS (5ull * 1000000000ull)
#define REG_MAX_BODY (16u << 20) /* a larger answer is refused */
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
  char *url;     /* no credentials, no trailing '/' */
  char *userpwd; /* "user:password" or NULL; never logged */
  long connect_ms, total_ms;
  pthread_rwlock_t lock; /* ids, versions, latest */
  map_t ids;             /* id -> kwp_schema_t (owns text and avro) */
  map_t versions;        /* "version:subject" -> kwp_schema_t (owns subject) */
  map_t latest;          /* subject -> latest_t */
  uv_mutex_t flock;      /* flights, requests */
  flight_t *flights;
  uint64_t requests;
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

/* ---- HTTP, on the pool ------------------------------------------------- */

typedef struct body {
  char *p;
  size_t n;
} body_t;

static size_t body_write(char *data, size_t size, size_t nmemb, void *userp) {
  body_t *b = userp;
  size_t n = size * nmemb;
  if (b->n + n > REG_MAX_BODY)
    return 0;
  char *p = realloc(b->p, b->n + n + 1);
  if (!p)
    return 0;
  memcpy(p + b->n, data, n);
  b->p = p;
  b->n += n;
  p[b->n] = '\0';
  return n;
}

/* One request; 0 with @status and @out when an answer came, else
 * KWP_EUNAVAILABLE (transport) or KWP_ENOMEM with @msg. */
static int http_call(kwp_registry_t *reg, const char *path, const char *post,
                     long *status, body_t *out, char *msg, size_t msglen) {
  char url[2048];
  if ((size_t)snprintf(url, sizeof(url), "%s%s", reg->url, path) >=
      sizeof(url)) {
    snprintf(msg, msglen, "schema registry request path too long");
    return KWP_EBADREQ;
  }
  CURL *c = curl_easy_init();
  struct curl_slist *hdrs =
      curl_slist_append(NULL, "Accept: application/vnd.schemaregistry.v1+json, "
                              "application/json");
  if (post)
    hdrs = curl_slist_append(
        hdrs, "Content-Type: application/vnd.schemaregistry.v1+json");
  if (!c || !hdrs) {
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    snprintf(msg, msglen, "out of memory");
    return KWP_ENOMEM;
  }
  char err[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* we are threaded */
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, reg->connect_ms);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, reg->total_ms);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_write);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "kafka-ws-proxy");
  if (reg->userpwd) {
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(c, CURLOPT_USERPWD, reg->userpwd);
  }
  if (post)
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
  uv_mutex_lock(&reg->flock);
  reg->requests++;
  uv_mutex_unlock(&reg->flock);
  CURLcode cc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
  curl_slist_free_all(hdrs);
  curl_easy_cleanup(c);
  if (cc == CURLE_OK)
    return 0;
  /* The URL has no credentials, and curl's texts name host and port only. */
  snprintf(msg, msglen, "schema registry %s unavailable: %.150s", reg->url,
           err[0] ? err : curl_easy_strerror(cc));
  return cc == CURLE_OUT_OF_MEMORY ? KWP_ENOMEM : KWP_EUNAVAILABLE;
}

/* A non-2xx answer as one of our codes, with the registry's own words. */
static int http_error(long status, const body_t *b, const char *what, char *msg,
                      size_t msglen) {
  json_t *doc = b->p ? json_loadb(b->p, b->n, 0, NULL) : NULL;
  const char *text = json_string_value(json_object_get(doc, "message"));
  long long code = json_integer_value(json_object_get(doc, "error_code"));
  int err = status == 404                   ? KWP_ENOTFOUND
            : status >= 500 || status < 100 ? KWP_EUNAVAILABLE
            : status == 401 || status == 403
                ? KWP_EUNAVAILABLE /* the proxy's credentials */
            : status == 409 || status == 422 ? KWP_EBADVALUE
                                             : KWP_EBADREQ;
  if (code)
    snprintf(msg, msglen, "%s: schema registry answered %ld (%lld) %.160s",
             what, status, code, text ? text : "");
  else
    snprintf(msg, msglen, "%s: schema registry answered %ld %.160s", what,
             status, text ? text : "");
  json_decref(doc);
  return err;
}

/* The schema of an answer {"schema": "...", "schemaType"?, "references"?}.
 * @returns 0 with a malloc'd @text, or KWP_EBADVALUE / KWP_EBADREQ. */
static int answer_schema(json_t *doc, int32_t id, char **text, char *msg,
                         size_t msglen) {
  const char *type = json_string_value(json_object_get(doc, "schemaType"));
  json_t *refs = json_object_get(doc, "references");
  const char *schema = json_string_value(json_object_get(doc, "schema"));
  if (type && strcmp(type, "AVRO") != 0) {
    snprintf(msg, msglen, "schema %d is %.40s, not AVRO", id, type);
    return KWP_EBADVALUE;
  }
  if (json_array_size(refs) > 0) {
    snprintf(msg, msglen, "schema %d has references (not supported)", id);
    return KWP_EBADVALUE;
  }
  if (!schema) {
    snprintf(msg, msglen, "schema %d: the registry's answer has no schema", id);
    return KWP_EBADREQ;
  }
  return (*text = strdup(schema)) ? 0 : KWP_ENOMEM;
}

static int url_escape(const char *s, char *out, size_t outlen) {
  char *e = curl_easy_escape(NULL, s, 0);
  int ok = e && (size_t)snprintf(out, outlen, "%s", e) < outlen;
  curl_free(e);
  return ok ? 0 : KWP_EBADREQ;
}

/* GET, POST and the answer into the cache. @f->err and @f->schema out. */
static int fetch(flight_t *f, char *msg, size_t msglen) {
  kwp_registry_t *reg = f->reg;
  char path[1200], esc[1024], what[80];
  body_t b = {0};
  json_t *doc = NULL;
  char *post = NULL;
  int32_t id = f->id;
  if (f->kind != REQ_ID && url_escape(f->subject, esc, sizeof(esc))) {
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
  int rc = http_call(reg, path, post, &status, &b, msg, msglen);
  free(post);
  if (!rc && (status < 200 || status > 299))
    rc = http_error(status, &b, what, msg, msglen);
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
    rc = answer_schema(doc, id, &text, msg, msglen);
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
  uv_mutex_lock(&reg->flock);
  uint64_t n = reg->requests;
  uv_mutex_unlock(&reg->flock);
  return n;
}

const char *kwp_registry_url(const kwp_registry_t *reg) {
  return reg->url;
}

/* ---- construction -------------------------------------------------------- */

/* A property by its name or with the "schema.registry." prefix. */
static const char *prop(const kwp_props_t *props, const char *key) {
  char k[128];
  const char *v = props ? kwp_props_get(props, key) : NULL;
  if (!v && props) {
    snprintf(k, sizeof(k), "schema.registry.%s", key);
    v = kwp_props_get(props, k);
  }
  return v;
}

static int prop_ms(const kwp_props_t *props, const char *key, long def,
                   long *out, char *errbuf, size_t errlen) {
  const char *v = prop(props, key);
  char *end;
  *out = def;
  if (!v)
    return 0;
  errno = 0;
  long ms = strtol(v, &end, 10);
  if (errno || end == v || *end || ms <= 0 || ms > 600000) {
    snprintf(errbuf, errlen,
             "schema-registry property %s must be 1..600000 (ms), not %.40s",
             key, v);
    return KWP_ECONFIG;
  }
  *out = ms;
  return 0;
}

/* Split @url into the URL without user info (@reg->url) and, when the
 * credentials come from the URL, @reg->userpwd. */
static int parse_url(kwp_registry_t *reg, const char *url, int from_url,
                     char *errbuf, size_t errlen) {
  CURLU *u = curl_url();
  char *user = NULL, *pass = NULL, *clean = NULL;
  int rc = KWP_ECONFIG;
  if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
    snprintf(errbuf, errlen, "schema-registry.url is not a valid URL");
    goto done;
  }
  char *scheme = NULL;
  curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
  int http = scheme && (!strcmp(scheme, "http") || !strcmp(scheme, "https"));
  curl_free(scheme);
  if (!http) {
    snprintf(errbuf, errlen, "schema-registry.url must be http or https");
    goto done;
  }
  curl_url_get(u, CURLUPART_USER, &user, CURLU_URLDECODE);
  curl_url_get(u, CURLUPART_PASSWORD, &pass, CURLU_URLDECODE);
  curl_url_set(u, CURLUPART_USER, NULL, 0);
  curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
  if (curl_url_get(u, CURLUPART_URL, &clean, 0) != CURLUE_OK ||
      !(reg->url = strdup(clean))) {
    snprintf(errbuf, errlen, "out of memory");
    goto done;
  }
  size_t n = strlen(reg->url);
  while (n && reg->url[n - 1] == '/')
    reg->url[--n] = '\0';
  if (from_url && user) {
    size_t len = strlen(user) + (pass ? strlen(pass) : 0) + 2;
    if (!(reg->userpwd = malloc(len))) {
      snprintf(errbuf, errlen, "out of memory");
      goto done;
    }
    snprintf(reg->userpwd, len, "%s:%s", user, pass ? pass : "");
  }
  rc = 0;
done:
  if (pass)
    memset(pass, 0, strlen(pass));
  curl_free(user);
  curl_free(pass);
  curl_free(clean);
  curl_url_cleanup(u);
  return rc;
}

/* basic.auth.credentials.source: URL, USER_INFO, or by default USER_INFO
 * when basic.auth.user.info is set, else URL (Confluent's meaning).
 * USER_INFO without user info (the built-in configuration's default) takes
 * what the URL has. */
static int credentials(kwp_registry_t *reg, const char *url,
                       const kwp_props_t *props, char *errbuf, size_t errlen) {
  const char *source = prop(props, "basic.auth.credentials.source");
  const char *info = prop(props, "basic.auth.user.info");
  int from_url;
  if (!source)
    from_url = !info;
  else if (!strcasecmp(source, "URL"))
    from_url = 1;
  else if (!strcasecmp(source, "USER_INFO"))
    from_url = 0;
  else {
    snprintf(errbuf, errlen,
             "schema-registry basic.auth.credentials.source %.30s is not "
             "supported (URL or USER_INFO)",
             source);
    return KWP_ECONFIG;
  }
  if (!from_url && (!info || !*info))
    from_url = 1; /* the default config says USER_INFO, and gives none */
  if (!from_url && !strchr(info, ':')) {
    snprintf(errbuf, errlen,
             "schema-registry basic.auth.user.info must be "
             "user:password");
    return KWP_ECONFIG;
  }
  if (parse_url(reg, url, from_url, errbuf, errlen))
    return KWP_ECONFIG;
  if (!from_url && !(reg->userpwd = strdup(info))) {
    snprintf(errbuf, errlen, "out of memory");
    return KWP_ENOMEM;
  }
  return 0;
}

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
  if (prop_ms(props, "connect.timeout.ms", REG_CONNECT_TIMEOUT_MS,
              &reg->connect_ms, errbuf, errlen) ||
      prop_ms(props, "request.timeout.ms", REG_TOTAL_TIMEOUT_MS, &reg->total_ms,
              errbuf, errlen) ||
      credentials(reg, url, props, errbuf, errlen))
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
  free(reg->url);
  free(reg->userpwd);
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
  if (reg->userpwd)
    memset(reg->userpwd, 0, strlen(reg->userpwd));
  free(reg->userpwd);
  free(reg->url);
  free(reg);
  curl_global_cleanup();
}
