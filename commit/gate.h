/*
 * Keeps a socket's commits in order: at most one commit per partition is in
 * flight; a newer one waits (only the newest is kept) until it completes.
 * Without it, an old commit that librdkafka retried after a coordinator
 * outage can land after a newer one and move the group's offset back, so
 * records the client committed would be delivered again. Failed commits that
 * may succeed later are kept for a retry. Pure data structure, one owner
 * (core/consume/consume.c, worker thread).
 */
#ifndef KWP_COMMIT_GATE_H
#define KWP_COMMIT_GATE_H

#include "commit/commit.h"

typedef struct kwp_cgate kwp_cgate_t;

kwp_cgate_t *kwp_cgate_new(void);
void kwp_cgate_free(kwp_cgate_t *g);

/**
 * Ask to commit @p offset for @p partition.
 * @returns 1: send it now (it is in flight from now on); 0: held (merged
 * with what waits; sent when the partition's commit in flight completes).
 */
int kwp_cgate_request(kwp_cgate_t *g, int32_t partition, int64_t offset);

/**
 * The commit in flight for @p partition (of @p offset) completed: @p failed
 * 0 (done), 1 (failed, worth a retry: kept until kwp_cgate_due()) or 2
 * (failed for good: dropped).
 * @returns an offset to send now (in flight again), or -1.
 */
int64_t kwp_cgate_done(kwp_cgate_t *g, int32_t partition, int64_t offset,
                       int failed);

/** What waits for a retry, for partitions with nothing in flight (now in
 * flight). @returns how many were written to @p out (at most @p n). */
size_t kwp_cgate_due(kwp_cgate_t *g, kwp_commit_pos_t *out, size_t n);

/**
 * Take what waits for @p partition whatever is in flight (the partition is
 * being revoked: a commit sent now still carries this member's generation,
 * while one sent after the rebalance would be refused; and an older commit
 * still in flight can no longer land after the rebalance, since Kafka refuses
 * its stale generation). @returns the offset (now in flight), or -1.
 */
int64_t kwp_cgate_take(kwp_cgate_t *g, int32_t partition);

/** Partitions with a commit waiting (held or to retry). */
size_t kwp_cgate_waiting(const kwp_cgate_t *g);

#endif
