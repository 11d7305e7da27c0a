/* Per-partition stacks of uncommitted records (see commit.h). Each stack is
 * a ring that grows by doubling up to max-stack-size, so an idle partition
 * costs nothing and a busy one never more than the bound. */
#include "commit/commit.h"

#include "core/base/error.h"

#include <stdlib.h>
#include <string.h>

typedef struct entry {
  int64_t offset, timestamp;
  uint64_t t_sent;
} entry_t;

typedef struct stack {
  int32_t partition;
  entry_t *ring;
  size_t cap, head, count;
  /* Offsets of records dropped from the full stack and not yet covered by
   * a commit (dropped_lo > dropped_hi: none). A client behind the proxy by
   * more than the stack (the socket and kernel buffers hold thousands of
   * records) commits only such records; refusing them, as the stack alone
   * did, meant nothing it read was ever committed. */
  int64_t dropped_lo, dropped_hi;
} stack_t;

struct kwp_commit {
  size_t max_stack;
  stack_t *parts;
  size_t nparts, parts_cap;
};

kwp_commit_t *kwp_commit_new(size_t max_stack) {
  kwp_commit_t *c = calloc(1, sizeof(*c));
  if (!c)
    return NULL;
  c->max_stack = max_stack ? max_stack : 1;
  return c;
}

void kwp_commit_free(kwp_commit_t *c) {
  if (!c)
    return;
  for (size_t i = 0; i < c->nparts; i++)
    free(c->parts[i].ring);
  free(c->parts);
  free(c);
}

static void dropped_clear(stack_t *s) {
  s->dropped_lo = 1;
  s->dropped_hi = 0;
}

static stack_t *stack_find(kwp_commit_t *c, int32_t partition, int create) {
  for (size_t i = 0; i < c->nparts; i++)
    if (c->parts[i].partition == partition)
      return &c->parts[i];
  if (!create)
    return NULL;
  if (c->nparts == c->parts_cap) {
    size_t cap = c->parts_cap ? c->parts_cap * 2 : 4;
    stack_t *p = realloc(c->parts, cap * sizeof(*p));
    if (!p)
      return NULL;
    c->parts = p;
    c->parts_cap = cap;
  }
  stack_t *s = &c->parts[c->nparts++];
  memset(s, 0, sizeof(*s));
  s->partition = partition;
  dropped_clear(s);
  return s;
}

static entry_t *stack_at(stack_t *s, size_t i) {
  return &s->ring[(s->head + i) % s->cap];
}

static int stack_grow(stack_t *s, size_t max) {
  size_t cap = s->cap ? s->cap * 2 : 8;
  if (cap > max)
    cap = max;
  entry_t *ring = malloc(cap * sizeof(*ring));
  if (!ring)
    return KWP_ENOMEM;
  for (size_t i = 0; i < s->count; i++)
    ring[i] = *stack_at(s, i);
  free(s->ring);
  s->ring = ring;
  s->cap = cap;
  s->head = 0;
  return 0;
}

/* Clear entries [0, n) of the stack (the n oldest), and the dropped ones,
 * which are older still. */
static void stack_pop(stack_t *s, size_t n) {
  s->head = (s->head + n) % (s->cap ? s->cap : 1);
  s->count -= n;
  dropped_clear(s);
}

/* The oldest entry leaves a full stack; a later commit still covers it. */
static void stack_drop_oldest(stack_t *s) {
  int64_t o = stack_at(s, 0)->offset;
  if (s->dropped_lo > s->dropped_hi)
    s->dropped_lo = s->dropped_hi = o;
  else if (o > s->dropped_hi)
    s->dropped_hi = o;
  else if (o < s->dropped_lo)
    s->dropped_lo = o;
  s->head = (s->head + 1) % s->cap;
  s->count--;
}

int kwp_commit_push(kwp_commit_t *c, int32_t partition, int64_t offset,
                    int64_t timestamp, uint64_t now_ms) {
  stack_t *s = stack_find(c, partition, 1);
  if (!s)
    return KWP_ENOMEM;
  if (s->count == c->max_stack)
    stack_drop_oldest(s);
  else if (s->count == s->cap && stack_grow(s, c->max_stack) != 0)
    return KWP_ENOMEM;
  entry_t *e = stack_at(s, s->count++);
  e->offset = offset;
  e->timestamp = timestamp;
  e->t_sent = now_ms;
  return 0;
}

int kwp_commit_take(kwp_commit_t *c, int32_t partition, int64_t offset,
                    int64_t timestamp, kwp_commit_pos_t *out) {
  stack_t *s = stack_find(c, partition, 0);
  if (!s)
    return KWP_ENOTFOUND;
  /* Newest first: clients usually commit what they just received. */
  for (size_t i = s->count; i-- > 0;) {
    entry_t *e = stack_at(s, i);
    if (e->offset == offset && e->timestamp == timestamp) {
      out->partition = s->partition;
      out->offset = e->offset + 1;
      stack_pop(s, i + 1);
      return 0;
    }
    if (e->offset < offset)
      break;
  }
  /* Dropped from the full stack: its timestamp is gone, its offset is
   * known to have been sent. */
  if (offset >= s->dropped_lo && offset <= s->dropped_hi) {
    out->partition = s->partition;
    out->offset = offset + 1;
    s->dropped_lo = offset + 1;
    return 0;
  }
  return KWP_ENOTFOUND;
}

size_t kwp_commit_take_older(kwp_commit_t *c, uint64_t now_ms,
                             uint64_t max_age_ms, kwp_commit_pos_t *out,
                             size_t n) {
  size_t taken = 0;
  for (size_t i = 0; i < c->nparts && taken < n; i++) {
    stack_t *s = &c->parts[i];
    size_t old = 0; /* entries are in send order, so the old ones lead */
    while (old < s->count && stack_at(s, old)->t_sent + max_age_ms < now_ms)
      old++;
    if (!old)
      continue;
    out[taken].partition = s->partition;
    out[taken++].offset = stack_at(s, old - 1)->offset + 1;
    stack_pop(s, old);
  }
  return taken;
}

void kwp_commit_drop(kwp_commit_t *c, int32_t partition) {
  stack_t *s = stack_find(c, partition, 0);
  if (s) {
    s->head = 0;
    s->count = 0;
    dropped_clear(s);
  }
}

size_t kwp_commit_count(const kwp_commit_t *c) {
  size_t n = 0;
  for (size_t i = 0; i < c->nparts; i++)
    n += c->parts[i].count;
  return n;
}
