/*
 * Token buckets shared by every socket of one client id in this process
 * (producer `messages-per-second`). Thread-safe: sockets of one client id may
 * live on different workers.
 */
#ifndef KWP_RATELIMIT_H
#define KWP_RATELIMIT_H

#include <stdint.h>

typedef struct kwp_rate kwp_rate_t;

/**
 * The bucket for @p id at @p per_second messages/s (burst: one second's
 * worth), shared and reference-counted. @locality any thread
 * @returns the bucket, or NULL when out of memory.
 */
kwp_rate_t *kwp_rate_acquire(const char *id, int64_t per_second);

/** Drop a reference from kwp_rate_acquire(). @locality any thread */
void kwp_rate_release(kwp_rate_t *r);

/**
 * Take one token at time @p now_ms (a monotonic clock).
 * @returns 0 when the caller may go on now, else how many ms to wait before
 * taking more (the token is taken either way: delayed, never dropped).
 */
uint64_t kwp_rate_take(kwp_rate_t *r, uint64_t now_ms);

#endif
