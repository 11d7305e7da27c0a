/* One slot per partition a socket ever committed to: a handful. */
#include "commit/gate.h"

#include <stdlib.h>

typedef struct slot {
  int32_t partition;
  int inflight;
  int64_t waiting; /* newest offset not yet sent, or -1 */
} slot_t;

struct kwp_cgate {
  slot_t *slots;
  size_t n, cap;
};

kwp_cgate_t *kwp_cgate_new(void) {
  return calloc(1, sizeof(kwp_cgate_t));
}

void kwp_cgate_free(kwp_cgate_t *g) {
  if (g) {
    free(g->slots);
    free(g);
  }
}

static slot_t *slot_get(kwp_cgate_t *g, int32_t partition) {
  for (size_t i = 0; i < g->n; i++)
    if (g->slots[i].partition == partition)
      return &g->slots[i];
  if (g->n == g->cap) {
    size_t cap = g->cap ? 2 * g->cap : 8;
    slot_t *s = realloc(g->slots, cap * sizeof(*s));
    if (!s)
      return NULL;
    g->slots = s;
    g->cap = cap;
  }
  g->slots[g->n] = (slot_t){partition, 0, -1};
  return &g->slots[g->n++];
}

static void wait_for(slot_t *s, int64_t offset) {
  if (offset > s->waiting)
    s->waiting = offset;
}

int kwp_cgate_request(kwp_cgate_t *g, int32_t partition, int64_t offset) {
  slot_t *s = slot_get(g, partition);
  if (!s)
    return 1; /* out of memory: unordered rather than lost */
  if (s->inflight || s->waiting >= 0) {
    wait_for(s, offset);
    return 0;
  }
  s->inflight = 1;
  return 1;
}

int64_t kwp_cgate_done(kwp_cgate_t *g, int32_t partition, int64_t offset,
                       int failed) {
  slot_t *s = slot_get(g, partition);
  if (!s)
    return -1;
  s->inflight = 0;
  if (failed == 1) {
    wait_for(s, offset);
    return -1; /* after the backoff, through kwp_cgate_due() */
  }
  if (s->waiting < 0)
    return -1;
  int64_t next = s->waiting;
  s->waiting = -1;
  s->inflight = 1;
  return next;
}

size_t kwp_cgate_due(kwp_cgate_t *g, kwp_commit_pos_t *out, size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < g->n && k < n; i++) {
    slot_t *s = &g->slots[i];
    if (s->inflight || s->waiting < 0)
      continue;
    out[k].partition = s->partition;
    out[k++].offset = s->waiting;
    s->waiting = -1;
    s->inflight = 1;
  }
  return k;
}

int64_t kwp_cgate_take(kwp_cgate_t *g, int32_t partition) {
  for (size_t i = 0; i < g->n; i++) {
    slot_t *s = &g->slots[i];
    if (s->partition != partition || s->waiting < 0)
      continue;
    int64_t w = s->waiting;
    s->waiting = -1;
    s->inflight = 1;
    return w;
  }
  return -1;
}

size_t kwp_cgate_waiting(const kwp_cgate_t *g) {
  size_t k = 0;
  for (size_t i = 0; i < g->n; i++)
    k += g->slots[i].waiting >= 0;
  return k;
}
