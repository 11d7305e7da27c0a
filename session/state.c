/* The applied session state (see state.h and DESIGN.md). Sessions live in a
 * chained hash map keyed by kind and id; a session holds its claims (a few:
 * at most its limit, plus claims of dead nodes awaiting cleanup). Nodes are a
 * small array. */
#include "session/state.h"

#include "core/base/error.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct node {
  char *server_id, *incarnation;
  int64_t last_hb;
  int left;
} node_t;

typedef struct inst {
  char *nonce, *instance, *server_id, *incarnation;
  int reported; /* handed to stale_claims() already */
} inst_t;

typedef struct sess {
  struct sess *next;
  int kind;
  char *id;
  inst_t *inst;
  size_t n, cap;
} sess_t;

struct kwp_sstate {
  int64_t ttl, log_time;
  node_t *nodes;
  size_t nnodes, nodes_cap;
  sess_t **buckets;
  size_t nbuckets, nsess;
};

kwp_sstate_t *kwp_sstate_new(int64_t ttl_ms) {
  kwp_sstate_t *st = calloc(1, sizeof(*st));
  if (!st)
    return NULL;
  st->ttl = ttl_ms;
  st->nbuckets = 256;
  if (!(st->buckets = calloc(st->nbuckets, sizeof(*st->buckets)))) {
    free(st);
    return NULL;
  }
  return st;
}

static void inst_free(inst_t *i) {
  free(i->nonce);
  free(i->instance);
  free(i->server_id);
  free(i->incarnation);
}

static void sess_free(sess_t *s) {
  for (size_t i = 0; i < s->n; i++)
    inst_free(&s->inst[i]);
  free(s->inst);
  free(s->id);
  free(s);
}

void kwp_sstate_free(kwp_sstate_t *st) {
  if (!st)
    return;
  for (size_t b = 0; b < st->nbuckets; b++)
    for (sess_t *s = st->buckets[b], *next; s; s = next) {
      next = s->next;
      sess_free(s);
    }
  for (size_t i = 0; i < st->nnodes; i++) {
    free(st->nodes[i].server_id);
    free(st->nodes[i].incarnation);
  }
  free(st->nodes);
  free(st->buckets);
  free(st);
}

/* --- sessions --- */

static uint64_t hash(int kind, const char *id) {
  uint64_t h = 1469598103934665603ULL ^ (uint64_t)kind;
  for (const unsigned char *p = (const unsigned char *)id; *p; p++)
    h = (h ^ *p) * 1099511628211ULL;
  return h;
}

static sess_t **sess_slot(kwp_sstate_t *st, int kind, const char *id) {
  sess_t **pp = &st->buckets[hash(kind, id) & (st->nbuckets - 1)];
  while (*pp && ((*pp)->kind != kind || strcmp((*pp)->id, id) != 0))
    pp = &(*pp)->next;
  return pp;
}

static void sess_rehash(kwp_sstate_t *st) {
  size_t n = st->nbuckets * 2;
  sess_t **b = calloc(n, sizeof(*b));
  if (!b)
    return; /* stays correct, only slower */
  for (size_t i = 0; i < st->nbuckets; i++)
    for (sess_t *s = st->buckets[i], *next; s; s = next) {
      next = s->next;
      size_t k = hash(s->kind, s->id) & (n - 1);
      s->next = b[k];
      b[k] = s;
    }
  free(st->buckets);
  st->buckets = b;
  st->nbuckets = n;
}

static sess_t *sess_get(kwp_sstate_t *st, int kind, const char *id) {
  sess_t **pp = sess_slot(st, kind, id);
  if (*pp)
    return *pp;
  sess_t *s = calloc(1, sizeof(*s));
  if (!s || !(s->id = strdup(id))) {
    free(s);
    return NULL;
  }
  s->kind = kind;
  *pp = s;
  if (++st->nsess > st->nbuckets)
    sess_rehash(st);
  return s;
}

static void sess_drop_if_empty(kwp_sstate_t *st, sess_t *s) {
  if (s->n)
    return;
  sess_t **pp = sess_slot(st, s->kind, s->id);
  *pp = s->next;
  sess_free(s);
  st->nsess--;
}

/* --- nodes --- */

static node_t *node_find(const kwp_sstate_t *st, const char *server_id) {
  for (size_t i = 0; i < st->nnodes; i++)
    if (!strcmp(st->nodes[i].server_id, server_id))
      return &st->nodes[i];
  return NULL;
}

/* 1: counts; -1: its node is dead; 0 would be "unknown" but unknown nodes
 * count (their heartbeat may come later in a compacted log). */
static int inst_alive(const kwp_sstate_t *st, const inst_t *i) {
  const node_t *n = node_find(st, i->server_id);
  if (!n)
    return 1;
  if (n->left || strcmp(n->incarnation, i->incarnation) != 0 ||
      n->last_hb < st->log_time - st->ttl)
    return -1;
  return 1;
}

static void heartbeat(kwp_sstate_t *st, const char *server_id,
                      const char *incarnation, int64_t ts,
                      kwp_sstate_result_t *res) {
  node_t *n = node_find(st, server_id);
  if (!n) {
    if (st->nnodes == st->nodes_cap) {
      size_t cap = st->nodes_cap ? 2 * st->nodes_cap : 8;
      node_t *a = realloc(st->nodes, cap * sizeof(*a));
      if (!a)
        return;
      st->nodes = a;
      st->nodes_cap = cap;
    }
    n = &st->nodes[st->nnodes++];
    memset(n, 0, sizeof(*n));
    n->server_id = strdup(server_id);
  }
  if (!n->incarnation || strcmp(n->incarnation, incarnation) != 0) {
    free(n->incarnation);
    n->incarnation = strdup(incarnation);
  }
  res->heartbeat = 1;
  snprintf(res->server_id, sizeof(res->server_id), "%s", server_id);
  snprintf(res->incarnation, sizeof(res->incarnation), "%s", incarnation);
  n->last_hb = ts;
  n->left = 0;
}

/* --- claims --- */

static int claim_admit(kwp_sstate_t *st, sess_t *s, const kwp_claim_t *c,
                       kwp_sstate_result_t *res) {
  size_t alive = 0;
  int same = 0;
  for (size_t i = 0; i < s->n; i++) {
    if (inst_alive(st, &s->inst[i]) < 0)
      continue;
    if (!strcmp(s->inst[i].instance, c->instance))
      same = 1;
    else
      alive++; /* distinct ids; a producer's repeated instanceId is one */
  }
  if (same && c->kind == KWP_SESSION_CONSUMER) {
    snprintf(res->message, sizeof(res->message),
             "WebSocket for consumer %s in session %s not established "
             "because a consumer with the same ID is already registered.",
             c->instance, c->session);
    return KWP_EBADREQ;
  }
  if (!same && c->limit > 0 && (int64_t)alive >= c->limit) {
    snprintf(res->message, sizeof(res->message),
             "The max number of WebSockets for session %s has been reached. "
             "Limit is %" PRId64,
             c->session, c->limit);
    return KWP_EBADREQ;
  }
  return 0;
}

static int inst_add(sess_t *s, const kwp_claim_t *c) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 4;
    inst_t *a = realloc(s->inst, cap * sizeof(*a));
    if (!a)
      return KWP_ENOMEM;
    s->inst = a;
    s->cap = cap;
  }
  inst_t *i = &s->inst[s->n];
  memset(i, 0, sizeof(*i));
  i->nonce = strdup(c->nonce);
  i->instance = strdup(c->instance);
  i->server_id = strdup(c->server_id);
  i->incarnation = strdup(c->incarnation);
  if (!i->nonce || !i->instance || !i->server_id || !i->incarnation) {
    inst_free(i);
    return KWP_ENOMEM;
  }
  s->n++;
  return 0;
}

static void claim(kwp_sstate_t *st, const kwp_claim_t *c,
                  kwp_sstate_result_t *res) {
  sess_t *s = sess_get(st, c->kind, c->session);
  res->decided = 1;
  snprintf(res->nonce, sizeof(res->nonce), "%s", c->nonce);
  snprintf(res->server_id, sizeof(res->server_id), "%s", c->server_id);
  snprintf(res->incarnation, sizeof(res->incarnation), "%s", c->incarnation);
  if (!s) {
    res->verdict = KWP_ENOMEM;
    snprintf(res->message, sizeof(res->message), "out of memory");
    return;
  }
  res->verdict = claim_admit(st, s, c, res);
  if (res->verdict == 0 && (res->verdict = inst_add(s, c)) != 0)
    snprintf(res->message, sizeof(res->message), "out of memory");
  sess_drop_if_empty(st, s);
}

static void unclaim(kwp_sstate_t *st, const char *nonce, int kind,
                    const char *session) {
  sess_t *s = *sess_slot(st, kind, session);
  if (!s)
    return;
  for (size_t i = 0; i < s->n; i++)
    if (!strcmp(s->inst[i].nonce, nonce)) {
      inst_free(&s->inst[i]);
      s->inst[i] = s->inst[--s->n];
      break;
    }
  sess_drop_if_empty(st, s);
}

/* --- records --- */

/* "c/<nonce>/<c|p>/<session>" */
static int parse_claim_key(const char *key, size_t klen, char *nonce,
                           size_t nlen, int *kind, const char **session) {
  const char *end = key + klen, *p = key + 2;
  const char *slash = memchr(p, '/', (size_t)(end - p));
  if (!slash || slash == p || (size_t)(slash - p) >= nlen || end - slash < 4 ||
      (slash[1] != 'c' && slash[1] != 'p') || slash[2] != '/')
    return -1;
  memcpy(nonce, p, (size_t)(slash - p));
  nonce[slash - p] = 0;
  *kind = slash[1] == 'c' ? KWP_SESSION_CONSUMER : KWP_SESSION_PRODUCER;
  *session = slash + 3;
  return 0;
}

static const char *jstr(json_t *o, const char *k) {
  const char *v = json_string_value(json_object_get(o, k));
  return v && *v ? v : NULL;
}

static int apply_claim(kwp_sstate_t *st, const char *key, size_t klen,
                       const char *value, size_t vlen,
                       kwp_sstate_result_t *res) {
  char nonce[128], skey[1024];
  const char *session;
  int kind;
  if (klen >= sizeof(skey))
    return KWP_EBADREQ;
  memcpy(skey, key, klen);
  skey[klen] = 0;
  if (parse_claim_key(skey, klen, nonce, sizeof(nonce), &kind, &session))
    return KWP_EBADREQ;
  if (!value) {
    unclaim(st, nonce, kind, session);
    return 0;
  }
  json_t *v = json_loadb(value, vlen, 0, NULL);
  kwp_claim_t c = {.nonce = nonce, .kind = kind, .session = session};
  if (v) {
    c.instance = jstr(v, "instance");
    c.server_id = jstr(v, "serverId");
    c.incarnation = jstr(v, "incarnation");
    c.limit = json_integer_value(json_object_get(v, "limit"));
  }
  int rc = KWP_EBADREQ;
  if (v && c.instance && c.server_id && c.incarnation && c.limit >= 0) {
    claim(st, &c, res);
    rc = 0;
  }
  json_decref(v);
  return rc;
}

static int apply_heartbeat(kwp_sstate_t *st, const char *key, size_t klen,
                           const char *value, size_t vlen, int64_t ts,
                           kwp_sstate_result_t *res) {
  char server_id[256];
  if (klen - 3 >= sizeof(server_id) || klen == 3)
    return KWP_EBADREQ;
  memcpy(server_id, key + 3, klen - 3);
  server_id[klen - 3] = 0;
  if (!value) { /* a graceful stop: its claims stop counting at once */
    node_t *n = node_find(st, server_id);
    if (n)
      n->left = 1;
    return 0;
  }
  json_t *v = json_loadb(value, vlen, 0, NULL);
  const char *inc = v ? jstr(v, "incarnation") : NULL;
  if (inc)
    heartbeat(st, server_id, inc, ts, res);
  json_decref(v);
  return inc ? 0 : KWP_EBADREQ;
}

int kwp_sstate_apply(kwp_sstate_t *st, const char *key, size_t klen,
                     const char *value, size_t vlen, int64_t ts_ms,
                     kwp_sstate_result_t *res) {
  memset(res, 0, sizeof(*res));
  if (ts_ms > st->log_time)
    st->log_time = ts_ms;
  if (key && klen > 2 && !memcmp(key, "c/", 2))
    return apply_claim(st, key, klen, value, vlen, res);
  if (key && klen > 3 && !memcmp(key, "hb/", 3))
    return apply_heartbeat(st, key, klen, value, vlen, ts_ms, res);
  return 1;
}

/* --- writers --- */

int kwp_sstate_heartbeat_key(char *out, size_t n, const char *server_id) {
  return snprintf(out, n, "hb/%s", server_id);
}

int kwp_sstate_heartbeat_value(char *out, size_t n, const char *server_id,
                               const char *incarnation) {
  json_t *v =
      json_pack("{s:s,s:s}", "serverId", server_id, "incarnation", incarnation);
  char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;
  int len = snprintf(out, n, "%s", s ? s : "");
  free(s);
  json_decref(v);
  return len;
}

int kwp_sstate_claim_key(char *out, size_t n, const kwp_claim_t *c) {
  return snprintf(out, n, "c/%s/%c/%s", c->nonce,
                  c->kind == KWP_SESSION_CONSUMER ? 'c' : 'p', c->session);
}

char *kwp_sstate_claim_value(const kwp_claim_t *c) {
  json_t *v = json_pack(
      "{s:s,s:s,s:s,s:s,s:s,s:I}", "kind",
      c->kind == KWP_SESSION_CONSUMER ? "consumer" : "producer", "session",
      c->session, "instance", c->instance, "serverId", c->server_id,
      "incarnation", c->incarnation, "limit", (json_int_t)c->limit);
  char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;
  json_decref(v);
  return s;
}

/* --- queries --- */

size_t kwp_sstate_count(kwp_sstate_t *st, int kind, const char *session) {
  sess_t *s = *sess_slot(st, kind, session);
  size_t n = 0;
  for (size_t i = 0; s && i < s->n; i++)
    n += inst_alive(st, &s->inst[i]) > 0;
  return n;
}

size_t kwp_sstate_sessions(const kwp_sstate_t *st) {
  return st->nsess;
}

int64_t kwp_sstate_log_time(const kwp_sstate_t *st) {
  return st->log_time;
}

void kwp_sstate_stale_claims(kwp_sstate_t *st, const char *server_id,
                             const char *incarnation,
                             void (*fn)(void *arg, const char *key),
                             void *arg) {
  char key[1024];
  for (size_t b = 0; b < st->nbuckets; b++)
    for (sess_t *s = st->buckets[b]; s; s = s->next)
      for (size_t i = 0; i < s->n; i++) {
        inst_t *in = &s->inst[i];
        int mine = !strcmp(in->server_id, server_id);
        int mine_now = mine && !strcmp(in->incarnation, incarnation);
        /* Our own live sockets are never cleaned up from here, even when
         * our heartbeats were late (e.g. Kafka was away for a while). */
        if (in->reported || mine_now || !(mine || inst_alive(st, in) < 0))
          continue;
        kwp_claim_t c = {.nonce = in->nonce, .kind = s->kind, .session = s->id};
        kwp_sstate_claim_key(key, sizeof(key), &c);
        in->reported = 1;
        fn(arg, key);
      }
}

int kwp_sstate_server_taken(const kwp_sstate_t *st, const char *server_id,
                            const char *incarnation, int64_t since_ms) {
  const node_t *n = node_find(st, server_id);
  return n && !n->left && strcmp(n->incarnation, incarnation) != 0 &&
         n->last_hb >= since_ms;
}
