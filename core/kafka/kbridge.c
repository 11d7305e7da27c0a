/* The librdkafka-queue-to-libuv bridge (see kbridge.h). Runs on the thread of
 * the loop it was created on. */
#include "core/kafka/kbridge.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Events handled per wake-up, so one busy queue cannot starve the loop. */
#define KBRIDGE_BUDGET 1024

struct kwp_kbridge {
  uv_poll_t poll;
  rd_kafka_queue_t *rkq;
  int fds[2];
  kwp_kbridge_cb cb;
  kwp_kbridge_msgs_cb msgs_cb; /* records mode (kwp_kbridge_new_msgs()) */
  void (*drained)(void *arg, int empty);
  void *arg;
  void (*done)(void *arg);
  void *done_arg;
  int held; /* kwp_kbridge_hold() */
};

static void kbridge_poll_cb(uv_poll_t *h, int status, int events) {
  kwp_kbridge_t *kb = (kwp_kbridge_t *)h;
  char sink[256];
  /* Empty the pipe first: an event enqueued after this read writes again. */
  while (read(kb->fds[0], sink, sizeof(sink)) > 0)
    ;
  kwp_kbridge_drain(kb);
}

void kwp_kbridge_set_drained(kwp_kbridge_t *kb,
                             void (*cb)(void *arg, int empty)) {
  kb->drained = cb;
}

/* Up to the budget of events (or records); @returns how many. */
static int drain_events(kwp_kbridge_t *kb) {
  int i = 0;
  for (; i < KBRIDGE_BUDGET && !kb->held; i++) {
    rd_kafka_event_t *rkev = rd_kafka_queue_poll(kb->rkq, 0);
    if (!rkev)
      break;
    kb->cb(rkev, kb->arg);
  }
  return i;
}

static int drain_msgs(kwp_kbridge_t *kb) {
  rd_kafka_message_t *batch[KWP_KBRIDGE_BATCH];
  int i = 0;
  while (i < KBRIDGE_BUDGET && !kb->held) {
    ssize_t n =
        rd_kafka_consume_batch_queue(kb->rkq, 0, batch, KWP_KBRIDGE_BATCH);
    if (n <= 0)
      break;
    i += (int)n;
    kb->msgs_cb(batch, (size_t)n, kb->arg);
  }
  return i < KBRIDGE_BUDGET ? i : KBRIDGE_BUDGET;
}

void kwp_kbridge_drain(kwp_kbridge_t *kb) {
  int i = kb->msgs_cb ? drain_msgs(kb) : drain_events(kb);
  if (i == KBRIDGE_BUDGET) {
    /* Budget used up: wake ourselves again on the next loop iteration. */
    ssize_t r = write(kb->fds[1], "1", 1);
    (void)r;
  }
  if (kb->drained)
    kb->drained(kb->arg, i < KBRIDGE_BUDGET && !kb->held);
}

void kwp_kbridge_hold(kwp_kbridge_t *kb, int hold) {
  if (kb->held == !!hold)
    return;
  kb->held = !!hold;
  if (hold) {
    uv_poll_stop(&kb->poll);
    return;
  }
  uv_poll_start(&kb->poll, UV_READABLE, kbridge_poll_cb);
  /* librdkafka wrote to the pipe only when the queue turned non-empty, which
   * it may not have since: wake ourselves for what it holds. */
  ssize_t r = write(kb->fds[1], "1", 1);
  (void)r;
}

kwp_kbridge_t *kwp_kbridge_new(uv_loop_t *loop, rd_kafka_queue_t *rkq,
                               kwp_kbridge_cb cb, void *arg, char *errbuf,
                               size_t errlen) {
  kwp_kbridge_t *kb = calloc(1, sizeof(*kb));
  if (!kb) {
    snprintf(errbuf, errlen, "out of memory");
    return NULL;
  }
  kb->rkq = rkq;
  kb->cb = cb;
  kb->arg = arg;
  if (pipe2(kb->fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    snprintf(errbuf, errlen, "pipe: %s", strerror(errno));
    free(kb);
    return NULL;
  }
  int rc = uv_poll_init(loop, &kb->poll, kb->fds[0]);
  if (rc == 0)
    rc = uv_poll_start(&kb->poll, UV_READABLE, kbridge_poll_cb);
  if (rc != 0) {
    snprintf(errbuf, errlen, "uv_poll: %s", uv_strerror(rc));
    close(kb->fds[0]);
    close(kb->fds[1]);
    free(kb);
    return NULL;
  }
  rd_kafka_queue_io_event_enable(rkq, kb->fds[1], "1", 1);
  return kb;
}

kwp_kbridge_t *kwp_kbridge_new_msgs(uv_loop_t *loop, rd_kafka_queue_t *rkq,
                                    kwp_kbridge_msgs_cb cb, void *arg,
                                    char *errbuf, size_t errlen) {
  kwp_kbridge_t *kb = kwp_kbridge_new(loop, rkq, NULL, arg, errbuf, errlen);
  if (kb)
    kb->msgs_cb = cb;
  return kb;
}

static void kbridge_closed(uv_handle_t *h) {
  kwp_kbridge_t *kb = (kwp_kbridge_t *)h;
  close(kb->fds[0]);
  close(kb->fds[1]);
  if (kb->done)
    kb->done(kb->done_arg);
  free(kb);
}

void kwp_kbridge_close(kwp_kbridge_t *kb, void (*done)(void *arg), void *arg) {
  /* Disable before closing the pipe so librdkafka never writes to a dead fd. */
  rd_kafka_queue_io_event_enable(kb->rkq, -1, NULL, 0);
  kb->done = done;
  kb->done_arg = arg;
  uv_close((uv_handle_t *)&kb->poll, kbridge_closed);
}
