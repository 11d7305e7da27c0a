/* The state of one /socket/out socket, shared by core/consume/consume.c (the
 * socket and its Kafka events) and core/consume/consume_open.c (the upgrade:
 * parameters, limits, session admission, the consumer's creation). Worker
 * thread only. */
#ifndef KWP_CONSUME_INT_H
#define KWP_CONSUME_INT_H

#include "commit/commit.h"
#include "commit/gate.h"
#include "commit/written.h"
#include "core/consume/consume.h"
#include "core/endpoint/params.h"
#include "core/endpoint/ratelimit.h"
#include "core/kafka/kbridge.h"
#include "core/net/worker.h"

#include <librdkafka/rdkafka.h>
#include <stdatomic.h>

#define FLUSH_FRAMES 1024
#define FLUSH_BYTES (256 * 1024)
#define CLOSE_POLL_MS 10
#define COMMIT_RETRY_MS 500
/* A closed socket's commits may wait this long for a coordinator that is
 * coming back (e.g. after a broker restart) before its consumer leaves. */
#define CLOSE_COMMIT_WAIT_MS 30000
#define KICK_MS 2
#define KICK_RETRY_MS 200
#define KICK_MAX 3
#define QLOOK_EVERY 64
/* The longest a consumer queue goes unpolled (librdkafka's
 * max.poll.interval.ms is 5 min by default, at least session.timeout.ms). */
#define KWP_CONSUME_POLL_MS 1000
/* A second look at a topic Kafka says is gone, once the proxy's cached
 * metadata (10 s) has been refreshed. */
#define TOPIC_RECHECK_MS 11000

/* Why the socket does not take records: the client's send queue, the rate,
 * or a Schema Registry schema being fetched (consume_schema.c). */
enum { CPAUSE_SENDQ = 1, CPAUSE_RATE = 2, CPAUSE_SCHEMA = 4 };
/* How long a schema id the registry could not give is not asked for again
 * (its records go out with an error meanwhile). */
#define SCHEMA_RETRY_MS 10000
#define SCHEMA_FAILED_MAX 4
enum { ST_OPEN, ST_COMMITTING, ST_CLOSING, ST_DONE };

/* A record fetched while the socket was paused: from the records' queue a
 * message of its own (@p ev NULL), from the consumer's queue the message of
 * a FETCH event, which is freed with its event. */
typedef struct held_rec {
  rd_kafka_message_t *m;
  rd_kafka_event_t *ev;
} held_rec_t;

typedef struct kwp_consume {
  kwp_conn_t *conn; /* NULL once the socket is gone */
  kwp_worker_t *wk;
  const kwp_config_t *cfg;
  int refs; /* socket + open handles + destroy work; worker-owned */
  int state;
  char client_id[KWP_PARAM_MAX], group_id[KWP_PARAM_MAX], topic[KWP_PARAM_MAX];
  char reset[KWP_PARAM_MAX], isolation[KWP_PARAM_MAX];
  const kwp_payload_t *fmt;
  kwp_payload_opts_t opts;
  /* avro_registry keys or values: the schemas of their ids, from the
   * registry's cache; the id being fetched (0: none) and the last ids the
   * registry could not give, with why */
  kwp_sr_opts_t sr;
  int32_t sr_fetching;
  struct {
    int32_t id;
    uint64_t until;
    char why[160];
  } sr_failed[SCHEMA_FAILED_MAX];
  unsigned sr_failed_next;
  int auto_commit;
  int64_t rate, batch;
  rd_kafka_t *rk;
  /* Two queues: the consumer's own (rebalances, commit results, errors),
   * always served, and msgq, where each assigned partition's records are
   * forwarded, which backpressure holds. A held socket's group never waits
   * for it. */
  rd_kafka_queue_t *rkq, *msgq;
  /* Each partition's own queue, once assigned (indexed by partition), kept
   * to be emptied after the close (see purge_partition_queues()). */
  rd_kafka_queue_t **pqs;
  int32_t npqs;
  kwp_kbridge_t *kb, *kb_msgs;
  int bridges;         /* bridges still open */
  kwp_commit_t *stack; /* autoCommit=false */
  /* Frames of this drain, headers included, back to back; the open one
   * starts at frame_at (kwp_ws_frame_open()). */
  kwp_sbuf_t out;
  size_t frame_at;
  unsigned nframes;
  int64_t in_batch; /* records in the open batch frame */
  int paused;       /* CPAUSE_* bits */
  held_rec_t *held; /* fetched while paused, delivered on resume */
  size_t nheld, held_cap;
  kwp_rate_t *rate_sock, *rate_group;
  uv_timer_t rate_timer, commit_timer, close_timer, retry_timer, kick_timer;
  uv_timer_t hold_timer;     /* a held socket's partitions pause after this */
  int kpaused;               /* its partitions are paused in librdkafka */
  int topic_checking;        /* a lookup of a topic Kafka says is gone runs */
  atomic_int topic_err;      /* kwp_consume__on_error() saw the topic gone */
  int topic_rechecking;      /* ... and it is the second look */
  uint64_t topic_recheck_at; /* when to look again (0: no need) */
  kwp_cgate_t *gate;         /* commits in order, one in flight per partition */
  kwp_written_t *written;    /* autoCommit=true */
  kwp_claim_handle_t *claim; /* this socket's place in its group */
  rd_kafka_topic_partition_list_t *assigned; /* NULL until the first one */
  rd_kafka_topic_partition_list_t *sought;   /* fetch_restart()'s last seek */
  /* librdkafka < 2.2 only (see fetch_restart()): payload bytes and records
   * delivered since the last kick (their average size estimates the queue's
   * bytes), and the queue's bounds (queued.max.messages.kbytes in bytes,
   * queued.min.messages). */
  size_t drained, kick_bytes, drained_n, kick_n;
  uint64_t last_rx; /* when a record last came (loop time, ms) */
  int kicks;
  unsigned
      q_look : 1; /* the next record is a drain's first: look at the queue */
  unsigned q_full : 1; /* a look found it at a bound since the last kick */
  /* The group's rebalance protocol, from the configured assignors (which
   * librdkafka requires to agree): rd_kafka_rebalance_protocol() returns
   * NULL once the consumer is closing, when the last events still come. */
  unsigned coop : 1;
  unsigned q_seen; /* records, to look every QLOOK_EVERY */
  int commits_inflight;
  uint64_t commit_failures;
  /* commit_timer: what the commit settings ask for (0: never) and the
   * time since it last ran; the timer itself ticks at least every
   * KWP_CONSUME_POLL_MS (see kwp_consume__commit_tick()). */
  int64_t commit_every_ms, commit_since_ms, tick_ms;
  uv_work_t destroy;
} consume_sess_t;

/* consume.c */
extern const kwp_ws_handler_t kwp_consume__handler;
void kwp_consume__unref(consume_sess_t *s);
void kwp_consume__on_event(rd_kafka_event_t *rkev, void *arg);
void kwp_consume__on_msgs(rd_kafka_message_t **msgs, size_t n, void *arg);
void kwp_consume__on_error(rd_kafka_t *rk, int err, const char *reason,
                           void *opaque);
void kwp_consume__on_drained(void *arg, int empty);
void kwp_consume__on_ctl_drained(void *arg, int empty);
void kwp_consume__commit_tick(uv_timer_t *t);
void kwp_consume__pause_set(consume_sess_t *s, int bit);
void kwp_consume__pause_clear(consume_sess_t *s, int bit);
/* consume_schema.c: avro_registry schemas. init() points s->opts at them;
 * ready() is 1 when every schema @p m needs is at hand (or could not be
 * had), else 0, the fetch started and the socket paused (CPAUSE_SCHEMA)
 * until it ends. */
void kwp_consume__sr_init(consume_sess_t *s);
int kwp_consume__sr_ready(consume_sess_t *s, const rd_kafka_message_t *m);

#endif
