/* Process-wide token buckets keyed by client id; a mutex guards the table
 * and each bucket (taken once per message, never held across I/O). */
#include "core/endpoint/ratelimit.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

struct kwp_rate {
  kwp_rate_t *next;
  char *id;
  int refs; /* guarded by rate_lock */
  double per_ms, tokens, burst;
  uint64_t last_ms;
};

static uv_mutex_t rate_lock;
static uv_once_t rate_once = UV_ONCE_INIT;
static kwp_rate_t *rate_table;

static void rate_init(void) {
  uv_mutex_init(&rate_lock);
}

kwp_rate_t *kwp_rate_acquire(const char *id, int64_t per_second) {
  uv_once(&rate_once, rate_init);
  uv_mutex_lock(&rate_lock);
  kwp_rate_t *r = rate_table;
  while (r && strcmp(r->id, id) != 0)
    r = r->next;
  if (!r && (r = calloc(1, sizeof(*r))) && (r->id = strdup(id))) {
    r->per_ms = (double)per_second / 1000.0;
    r->burst = r->tokens = (double)per_second;
    r->next = rate_table;
    rate_table = r;
  } else if (r && !r->id) {
    free(r);
    r = NULL;
  }
  if (r)
    r->refs++;
  uv_mutex_unlock(&rate_lock);
  return r;
}

void kwp_rate_release(kwp_rate_t *r) {
  uv_mutex_lock(&rate_lock);
  if (--r->refs == 0) {
    kwp_rate_t **pp = &rate_table;
    while (*pp != r)
      pp = &(*pp)->next;
    *pp = r->next;
    free(r->id);
    free(r);
  }
  uv_mutex_unlock(&rate_lock);
}

uint64_t kwp_rate_take(kwp_rate_t *r, uint64_t now_ms) {
  uint64_t wait = 0;
  uv_mutex_lock(&rate_lock);
  if (r->last_ms && now_ms > r->last_ms) {
    r->tokens += (double)(now_ms - r->last_ms) * r->per_ms;
    if (r->tokens > r->burst)
      r->tokens = r->burst;
  }
  r->last_ms = now_ms;
  r->tokens -= 1.0;
  if (r->tokens < 0)
    wait = (uint64_t)(-r->tokens / r->per_ms) + 1;
  uv_mutex_unlock(&rate_lock);
  return wait;
}
