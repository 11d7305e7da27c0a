/*
 * autoCommit=true bookkeeping of one consumer socket: the proxy commits only
 * records the kernel has taken from the socket, never those merely fetched or
 * still in the socket's send queue. Records are staged as they are encoded,
 * handed over with the byte position the socket reached after them, and
 * become committable once the socket's written-byte count passes that
 * position. Pure data structure; one owner (core/consume/consume.c, worker
 * thread).
 */
#ifndef KWP_WRITTEN_H
#define KWP_WRITTEN_H

#include "commit/commit.h"

typedef struct kwp_written kwp_written_t;

/** @returns a tracker, or NULL when out of memory. */
kwp_written_t *kwp_written_new(void);
void kwp_written_free(kwp_written_t *w);

/** Track @p partition (assigned) or forget it and its pending records. */
int kwp_written_assign(kwp_written_t *w, int32_t partition);
void kwp_written_revoke(kwp_written_t *w, int32_t partition);

/** Record @p offset of @p partition was encoded into an outgoing frame. */
void kwp_written_stage(kwp_written_t *w, int32_t partition, int64_t offset);

/**
 * The staged records were handed to the socket, which had taken
 * @p written bytes of the @p total it was given.
 */
void kwp_written_handed(kwp_written_t *w, uint64_t total, uint64_t written);

/** The socket has now taken @p written bytes. */
void kwp_written_advance(kwp_written_t *w, uint64_t written);

/**
 * Positions (offset + 1) written and not yet taken, for every partition or
 * only @p only (>= 0); they count as committed from now on.
 * @returns how many were written to @p out (at most @p n).
 */
size_t kwp_written_take(kwp_written_t *w, int32_t only, kwp_commit_pos_t *out,
                        size_t n);

#endif
