/* Committable offsets of autoCommit=true sockets (see written.h). A FIFO of
 * (byte position, partition, offset) holds what sits in the send queue; it
 * only grows while the socket is backlogged, and the socket's send bound
 * bounds that. */
#include "commit/written.h"

#include "core/base/error.h"

#include <stdlib.h>

typedef struct part {
  int32_t partition;
  int64_t staged;    /* in frames not handed over yet, or -1 */
  int64_t next;      /* the kernel took every record before it, or -1 */
  int64_t committed; /* last taken for a commit, or -1 */
} part_t;

typedef struct pending {
  uint64_t pos;
  int32_t partition;
  int64_t next;
} pending_t;

struct kwp_written {
  part_t *parts;
  size_t nparts, parts_cap;
  pending_t *fifo;
  size_t head, len, cap;
};

kwp_written_t *kwp_written_new(void) {
  return calloc(1, sizeof(kwp_written_t));
}

void kwp_written_free(kwp_written_t *w) {
  if (!w)
    return;
  free(w->parts);
  free(w->fifo);
  free(w);
}

static part_t *part_find(kwp_written_t *w, int32_t partition) {
  for (size_t i = 0; i < w->nparts; i++)
    if (w->parts[i].partition == partition)
      return &w->parts[i];
  return NULL;
}

int kwp_written_assign(kwp_written_t *w, int32_t partition) {
  if (part_find(w, partition))
    return 0;
  if (w->nparts == w->parts_cap) {
    size_t cap = w->parts_cap ? 2 * w->parts_cap : 8;
    part_t *p = realloc(w->parts, cap * sizeof(*p));
    if (!p)
      return KWP_ENOMEM;
    w->parts = p;
    w->parts_cap = cap;
  }
  w->parts[w->nparts++] = (part_t){partition, -1, -1, -1};
  return 0;
}

void kwp_written_revoke(kwp_written_t *w, int32_t partition) {
  part_t *p = part_find(w, partition);
  if (p) /* its FIFO entries find no partition and are skipped */
    *p = w->parts[--w->nparts];
}

void kwp_written_stage(kwp_written_t *w, int32_t partition, int64_t offset) {
  part_t *p = part_find(w, partition);
  if (p)
    p->staged = offset + 1;
}

static int fifo_push(kwp_written_t *w, uint64_t pos, int32_t partition,
                     int64_t next) {
  if (w->len == w->cap) {
    size_t cap = w->cap ? 2 * w->cap : 16;
    pending_t *f = malloc(cap * sizeof(*f));
    if (!f)
      return KWP_ENOMEM; /* not committable now; a later record will be */
    for (size_t i = 0; i < w->len; i++)
      f[i] = w->fifo[(w->head + i) % w->cap];
    free(w->fifo);
    w->fifo = f;
    w->cap = cap;
    w->head = 0;
  }
  w->fifo[(w->head + w->len++) % w->cap] = (pending_t){pos, partition, next};
  return 0;
}

void kwp_written_advance(kwp_written_t *w, uint64_t written) {
  while (w->len && w->fifo[w->head].pos <= written) {
    pending_t *e = &w->fifo[w->head];
    part_t *p = part_find(w, e->partition);
    if (p && e->next > p->next)
      p->next = e->next;
    w->head = (w->head + 1) % w->cap;
    w->len--;
  }
}

void kwp_written_handed(kwp_written_t *w, uint64_t total, uint64_t written) {
  int all = written >= total && !w->len;
  for (size_t i = 0; i < w->nparts; i++) {
    part_t *p = &w->parts[i];
    if (p->staged < 0)
      continue;
    if (all)
      p->next = p->staged;
    else
      fifo_push(w, total, p->partition, p->staged);
    p->staged = -1;
  }
}

size_t kwp_written_take(kwp_written_t *w, int32_t only, kwp_commit_pos_t *out,
                        size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < w->nparts && k < n; i++) {
    part_t *p = &w->parts[i];
    if ((only >= 0 && p->partition != only) || p->next <= p->committed)
      continue;
    out[k].partition = p->partition;
    out[k++].offset = p->next;
    p->committed = p->next;
  }
  return k;
}
