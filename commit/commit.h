/*
 * The commit handler of one consumer socket (autoCommit=false): per
 * partition, a stack of the records sent to the client and not yet
 * committed, bounded by commit-handler.max-stack-size (the oldest is dropped
 * when full; a later commit still covers it, Kafka commits are cumulative,
 * and its own id still commits it: only its offset is kept).
 * Committing a record (acknowledged by partition, offset and timestamp)
 * yields its offset + 1 for its partition and clears it and everything
 * older. Pure data structure: no I/O, no Kafka, no wire format; the caller
 * (core/consume/consume.c, on its worker thread) sends the commits. Not
 * thread-safe; one owner.
 */
#ifndef KWP_COMMIT_H
#define KWP_COMMIT_H

#include <stddef.h>
#include <stdint.h>

typedef struct kwp_commit kwp_commit_t;

/** What to commit: the offset (already + 1) for a partition. */
typedef struct kwp_commit_pos {
  int32_t partition;
  int64_t offset;
} kwp_commit_pos_t;

/**
 * A handler keeping at most @p max_stack records per partition (at least
 * 1). @returns NULL when out of memory.
 */
kwp_commit_t *kwp_commit_new(size_t max_stack);
void kwp_commit_free(kwp_commit_t *c);

/**
 * Remember a record sent to the client at @p now_ms (any monotonic clock).
 * Offsets of one partition must grow (a partition re-assigned after a
 * kwp_commit_drop() may start lower again).
 * @returns 0, or KWP_ENOMEM (the record is then not committable by id).
 */
int kwp_commit_push(kwp_commit_t *c, int32_t partition, int64_t offset,
                    int64_t timestamp, uint64_t now_ms);

/**
 * Commit the record at @p offset of @p partition sent with @p timestamp.
 * @returns 0 with @p out set (the entry and older ones are cleared), or
 * KWP_ENOTFOUND when no uncommitted record is that one (for a record
 * dropped from the full stack, the offset alone decides).
 */
int kwp_commit_take(kwp_commit_t *c, int32_t partition, int64_t offset,
                    int64_t timestamp, kwp_commit_pos_t *out);

/**
 * Auto-commit by age: for each partition, the newest record sent before
 * @p now_ms - @p max_age_ms is taken (it and older ones cleared) and its
 * position written to @p out (at most @p n).
 * @returns the number of positions written.
 */
size_t kwp_commit_take_older(kwp_commit_t *c, uint64_t now_ms,
                             uint64_t max_age_ms, kwp_commit_pos_t *out,
                             size_t n);

/** Forget a partition (revoked in a rebalance). */
void kwp_commit_drop(kwp_commit_t *c, int32_t partition);

/** Records held, over every partition (for metrics and tests). */
size_t kwp_commit_count(const kwp_commit_t *c);

#endif
