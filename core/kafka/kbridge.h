/*
 * Kafka event bridge: lets a worker loop wait on a librdkafka queue without
 * blocking. librdkafka writes a byte to a pipe when the queue turns non-empty
 * (rd_kafka_queue_io_event_enable); a uv_poll_t on the read end wakes the
 * loop, which drains the queue with timeout 0.
 */
#ifndef KWP_KBRIDGE_H
#define KWP_KBRIDGE_H

#include <librdkafka/rdkafka.h>
#include <uv.h>

typedef struct kwp_kbridge kwp_kbridge_t;

/** Called on the loop thread for each event; the callee owns @p rkev and
 * must rd_kafka_event_destroy() it. */
typedef void (*kwp_kbridge_cb)(rd_kafka_event_t *rkev, void *arg);

/**
 * Bridge @p rkq (borrowed; must outlive the bridge) into @p loop.
 * @locality the thread running @p loop
 * @returns the bridge, or NULL with @p errbuf filled.
 */
kwp_kbridge_t *kwp_kbridge_new(uv_loop_t *loop, rd_kafka_queue_t *rkq,
                               kwp_kbridge_cb cb, void *arg, char *errbuf,
                               size_t errlen);

/** Called on the loop thread with @p n (>= 1) records taken from a queue of
 * consumed records; the callee owns each and must rd_kafka_message_destroy()
 * it, also those it does not handle because it held the bridge meanwhile. */
typedef void (*kwp_kbridge_msgs_cb)(rd_kafka_message_t **msgs, size_t n,
                                    void *arg);

/**
 * As kwp_kbridge_new(), for a queue that carries only consumed records and
 * their errors (a consumer's partition queues forwarded to it): they are
 * taken up to KWP_KBRIDGE_BATCH at a time (rd_kafka_consume_batch_queue()),
 * which spares the per-record cost of rd_kafka_queue_poll() and lets the
 * callee see the next record while it handles one. Error ops on the queue
 * that are not records (a partition gone, say) do not reach @p cb:
 * librdkafka hands them to the client's error callback
 * (rd_kafka_conf_set_error_cb()), on this thread, during the drain.
 * @locality the thread running @p loop
 */
kwp_kbridge_t *kwp_kbridge_new_msgs(uv_loop_t *loop, rd_kafka_queue_t *rkq,
                                    kwp_kbridge_msgs_cb cb, void *arg,
                                    char *errbuf, size_t errlen);

#define KWP_KBRIDGE_BATCH 64

/**
 * Also call @p cb after each drain, e.g. to flush what the events produced
 * in one write; @p empty is 1 when the queue was emptied, 0 when the budget
 * ran out first. @locality the loop's thread
 */
void kwp_kbridge_set_drained(kwp_kbridge_t *kb,
                             void (*cb)(void *arg, int empty));

/**
 * Drain what is queued now (at most a budget; the rest on the next turn).
 * Also called by the poll callback. @locality the loop's thread
 */
void kwp_kbridge_drain(kwp_kbridge_t *kb);

/**
 * Stop taking events (@p hold = 1), or take them again (0). Held, the events
 * stay in librdkafka's queue, which bounds itself (a consumer stops fetching
 * at queued.max.messages.kbytes); a drain in progress stops after the
 * current event and reports @p empty = 0. Taking them again drains on the
 * loop's next iteration, never inside this call. @locality the loop's thread
 */
void kwp_kbridge_hold(kwp_kbridge_t *kb, int hold);

/**
 * Stop watching and free once libuv has closed the poll handle; events still
 * queued stay in @p rkq. @p done (may be NULL) runs after the handle closed.
 * @locality the loop's thread
 */
void kwp_kbridge_close(kwp_kbridge_t *kb, void (*done)(void *arg), void *arg);

#endif
