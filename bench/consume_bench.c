/*
 * consume_bench: the load generator of the consumer benchmark. Modes:
 *  - `fill`: a fast librdkafka producer (batched, acks=1) writes N records of
 *    S bytes round-robin over the topic's partitions.
 *  - `direct`: C librdkafka consumers (one thread and one rd_kafka_t each)
 *    with the proxy's consumer settings (its prefetch limits only when given
 *    with --set), members of one fresh group, read the topic from the
 *    earliest offset until every record in the watermarks seen at start has
 *    arrived.
 *  - `ws`: the same through the proxy's /socket/out: C WebSocket connections
 *    (members of one fresh group) served by one epoll thread that reads
 *    frames and takes partition and offset from the head of each record.
 *    With `--payload avro` (socketPayload=avro) each record is a binary
 *    AvroConsumerRecord frame, decoded whole (by our own few lines, not the
 *    proxy's codec): its topic checked, partition and offset taken.
 *  - `latency`: open loop. A producer (linger.ms=0 unless --linger-ms) writes
 *    R records/s for D
 *    seconds whose value carries the send time (CLOCK_MONOTONIC ns); a direct
 *    consumer and a /socket/out socket, in two groups, read the same records
 *    concurrently and each records now - sent.
 *  - `idle`: opens N consumer sockets, prints a line, holds them, closes.
 *    With --no-read the sockets are never read: on a filled topic, the
 *    proxy's worst case per socket (every buffer at its bound).
 * One JSON line on stdout (idle: two).
 */
#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct cb_opts {
  const char *mode, *bootstrap, *topic, *host, *group;
  int port, conns, no_read;
  int avro; /* ws, idle: socketPayload=avro */
  long count, size, batch;
  double rate, seconds, hold, stall, burst_ms;
  const char *linger; /* latency mode's producer linger.ms */
} cb_opts_t;

static uint64_t cb_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void cb_sleep_until(uint64_t t) {
  uint64_t now = cb_now_ns();
  if (t > now) {
    struct timespec ts = {(time_t)((t - now) / 1000000000u),
                          (long)((t - now) % 1000000000u)};
    nanosleep(&ts, NULL);
  }
}

static void cb_sleep_ms(long ms) {
  cb_sleep_until(cb_now_ns() + (uint64_t)ms * 1000000u);
}

static double cb_cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static int cb_cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

static double cb_pct(uint64_t *v, long n, double p) {
  if (n <= 0)
    return 0;
  long i = (long)(p * (double)(n - 1) + 0.5);
  return (double)v[i] / 1000.0; /* ns -> us */
}

static atomic_int cb_stop;
static atomic_long cb_errors;

static void cb_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* Counted; the first 20 are described on stderr. */
static void cb_error(const char *fmt, ...) {
  if (atomic_fetch_add(&cb_errors, 1) < 20) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "consume_bench: error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
  }
}

/* --- which records arrived: one bit per offset in [lo, hi) --- */

typedef struct cb_part {
  int64_t lo, hi;
  _Atomic uint64_t *seen;
} cb_part_t;

static cb_part_t *cb_parts;
static int cb_nparts;
static long cb_expect;
static atomic_long cb_unique, cb_records, cb_stray;
static _Atomic uint64_t cb_first_ns, cb_last_ns;
/* The longest time without a record between the first and the last: a
 * fetcher that sleeps (librdkafka 2.0's 1 s wait) shows up here. */
static _Atomic uint64_t cb_prev_ns, cb_max_gap_ns, cb_max_gap_end_ns;

static void cb_mark(int32_t partition, int64_t offset) {
  uint64_t now = cb_now_ns();
  atomic_fetch_add_explicit(&cb_records, 1, memory_order_relaxed);
  if (!atomic_load_explicit(&cb_first_ns, memory_order_relaxed)) {
    uint64_t zero = 0;
    atomic_compare_exchange_strong(&cb_first_ns, &zero, now);
  }
  if (atomic_load_explicit(&cb_unique, memory_order_relaxed) < cb_expect) {
    uint64_t prev =
        atomic_exchange_explicit(&cb_prev_ns, now, memory_order_relaxed);
    uint64_t gap = prev && now > prev ? now - prev : 0;
    uint64_t max = atomic_load_explicit(&cb_max_gap_ns, memory_order_relaxed);
    while (gap > max &&
           !atomic_compare_exchange_weak(&cb_max_gap_ns, &max, gap))
      ;
    if (gap > max) /* when it ended (a racing update may win: fine) */
      atomic_store_explicit(&cb_max_gap_end_ns, now, memory_order_relaxed);
  }
  if (partition < 0 || partition >= cb_nparts ||
      offset < cb_parts[partition].lo || offset >= cb_parts[partition].hi) {
    atomic_fetch_add(&cb_stray, 1); /* written after the start: not ours */
    return;
  }
  uint64_t bit = (uint64_t)(offset - cb_parts[partition].lo);
  uint64_t mask = (uint64_t)1 << (bit & 63);
  if (atomic_fetch_or_explicit(&cb_parts[partition].seen[bit >> 6], mask,
                               memory_order_relaxed) &
      mask)
    return; /* a duplicate (redelivered after a rebalance) */
  if (atomic_fetch_add(&cb_unique, 1) + 1 == cb_expect)
    atomic_store(&cb_last_ns, now);
}

static rd_kafka_t *cb_handle(const cb_opts_t *o) {
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", o->bootstrap, err,
                        sizeof(err))) {
    fprintf(stderr, "%s\n", err);
    exit(2);
  }
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (!rk) {
    fprintf(stderr, "%s\n", err);
    exit(2);
  }
  return rk;
}

static int cb_partitions(rd_kafka_t *rk, const char *topic) {
  const rd_kafka_metadata_t *md;
  rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
  int n = -1;
  if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) == 0) {
    if (md->topic_cnt == 1 && !md->topics[0].err)
      n = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
  }
  rd_kafka_topic_destroy(rkt);
  return n;
}

/* The records to read: everything in the topic now. */
static int cb_watermarks(const cb_opts_t *o) {
  rd_kafka_t *rk = cb_handle(o);
  cb_nparts = cb_partitions(rk, o->topic);
  if (cb_nparts <= 0) {
    fprintf(stderr, "consume_bench: no metadata for topic %s\n", o->topic);
    return -1;
  }
  cb_parts = calloc((size_t)cb_nparts, sizeof(*cb_parts));
  for (int p = 0; p < cb_nparts; p++) {
    rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
        rk, o->topic, p, &cb_parts[p].lo, &cb_parts[p].hi, 10000);
    if (e) {
      fprintf(stderr, "consume_bench: watermarks: %s\n", rd_kafka_err2str(e));
      return -1;
    }
    size_t words = (size_t)(cb_parts[p].hi - cb_parts[p].lo) / 64 + 1;
    cb_parts[p].seen = calloc(words, sizeof(uint64_t));
    cb_expect += (long)(cb_parts[p].hi - cb_parts[p].lo);
  }
  rd_kafka_destroy(rk);
  return 0;
}

/* --- fill: a fast producer --- */

static atomic_long cb_dr_ok, cb_dr_err;

static void cb_fill_dr(rd_kafka_t *rk, const rd_kafka_message_t *m,
                       void *opaque) {
  atomic_fetch_add(m->err ? &cb_dr_err : &cb_dr_ok, 1);
}

static int cb_fill(const cb_opts_t *o) {
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  const char *kv[][2] = {{"bootstrap.servers", o->bootstrap},
                         {"acks", "1"},
                         {"enable.idempotence", "false"},
                         {"compression.type", "none"},
                         {"linger.ms", "20"},
                         {"batch.size", "1000000"},
                         {"batch.num.messages", "100000"},
                         {"queue.buffering.max.kbytes", "1048576"},
                         {"queue.buffering.max.messages", "1000000"}};
  for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
    if (rd_kafka_conf_set(conf, kv[i][0], kv[i][1], err, sizeof(err))) {
      fprintf(stderr, "%s\n", err);
      return 1;
    }
  rd_kafka_conf_set_dr_msg_cb(conf, cb_fill_dr);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  int parts = cb_partitions(rk, o->topic);
  if (parts <= 0) {
    fprintf(stderr, "consume_bench: no metadata for topic %s\n", o->topic);
    return 1;
  }
  char *payload = malloc((size_t)o->size);
  memset(payload, 'x', (size_t)o->size);
  uint64_t t0 = cb_now_ns();
  for (long i = 0; i < o->count; i++) {
    /* Round robin: every partition gets the same share. The payload is
     * never freed or changed, so librdkafka need not copy it. */
    while (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(o->topic),
                             RD_KAFKA_V_PARTITION((int32_t)(i % parts)),
                             RD_KAFKA_V_VALUE(payload, (size_t)o->size),
                             RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
      rd_kafka_poll(rk, 1);
    if ((i & 1023) == 0)
      rd_kafka_poll(rk, 0);
  }
  rd_kafka_flush(rk, 120000);
  double secs = (double)(cb_now_ns() - t0) / 1e9;
  long ok = atomic_load(&cb_dr_ok), bad = atomic_load(&cb_dr_err);
  printf("{\"mode\":\"fill\",\"partitions\":%d,\"size\":%ld,\"acked\":%ld,"
         "\"errors\":%ld,\"seconds\":%.3f,\"msgs_per_sec\":%.1f,"
         "\"librdkafka\":\"%s\"}\n",
         parts, o->size, ok, bad, secs, (double)ok / secs,
         rd_kafka_version_str());
  rd_kafka_destroy(rk);
  free(payload);
  return ok == o->count && !bad ? 0 : 1;
}

/* --- direct librdkafka consumers --- */

/* What a record's value means in latency mode; set per reader. */
typedef void (*cb_value_fn)(int who, const char *v, size_t len);
static cb_value_fn cb_on_value;
static const char *cb_sets[16]; /* --set key=value for direct consumers */
static int cb_nsets;

static rd_kafka_t *cb_consumer(const cb_opts_t *o, const char *group, int i) {
  char err[512], client[64];
  snprintf(client, sizeof(client), "cbench-direct-%d", i);
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  /* The settings core/consume/consume.c gives the proxy's consumers, without
   * the prefetch limits: those come with --set, so that a run can use the
   * proxy's or librdkafka's own (no --set). The proxy commits what the
   * socket took every second, asynchronously: here librdkafka's auto commit
   * at the same interval. */
  const char *kv[][2] = {{"bootstrap.servers", o->bootstrap},
                         {"security.protocol", "PLAINTEXT"},
                         {"enable.partition.eof", "false"},
                         {"group.id", group},
                         {"client.id", client},
                         {"auto.offset.reset", "earliest"},
                         {"isolation.level", "read_uncommitted"},
                         {"enable.auto.commit", "true"},
                         {"auto.commit.interval.ms", "1000"}};
  for (size_t k = 0; k < sizeof(kv) / sizeof(kv[0]); k++)
    if (rd_kafka_conf_set(conf, kv[k][0], kv[k][1], err, sizeof(err))) {
      fprintf(stderr, "%s\n", err);
      exit(2);
    }
  for (int k = 0; k < cb_nsets; k++) { /* --set key=value overrides */
    char key[256];
    const char *eq = strchr(cb_sets[k], '=');
    snprintf(key, sizeof(key), "%.*s", eq ? (int)(eq - cb_sets[k]) : 0,
             cb_sets[k]);
    if (!eq || rd_kafka_conf_set(conf, key, eq + 1, err, sizeof(err))) {
      fprintf(stderr, "--set %s: %s\n", cb_sets[k], eq ? err : "no '='");
      exit(2);
    }
  }
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  if (!rk) {
    fprintf(stderr, "%s\n", err);
    exit(2);
  }
  rd_kafka_poll_set_consumer(rk);
  rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(t, o->topic, RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, t);
  rd_kafka_topic_partition_list_destroy(t);
  if (e) {
    fprintf(stderr, "subscribe: %s\n", rd_kafka_err2str(e));
    exit(2);
  }
  return rk;
}

static void *cb_direct_thread(void *arg) {
  rd_kafka_t *rk = arg;
  while (!atomic_load_explicit(&cb_stop, memory_order_relaxed)) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 50);
    if (!m)
      continue;
    if (m->err)
      cb_error("direct consumer: %s", rd_kafka_message_errstr(m));
    else if (cb_on_value)
      cb_on_value(0, m->payload, m->len);
    else
      cb_mark(m->partition, m->offset);
    rd_kafka_message_destroy(m);
  }
  return NULL;
}

/* --- WebSocket connections to /socket/out --- */

typedef struct cb_conn {
  int fd, closed;
  uint8_t *buf;
  size_t have, cap;
} cb_conn_t;

static cb_conn_t *cb_ws;
static int cb_nws, cb_ep = -1;
static pthread_t cb_ws_th;
static const char *cb_topic;
static size_t cb_topic_len;
static atomic_long cb_frames, cb_wire_bytes;
static int cb_avro; /* --payload avro: records are binary frames */

static int cb_write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t w = write(fd, c, n);
    if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
      cb_sleep_ms(1);
      continue;
    }
    if (w <= 0)
      return -1;
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Connect and send the upgrade request; the response is read by
 * cb_connect_finish(), so that many sockets can be asked for at once. */
static int cb_connect_start(const cb_opts_t *o, const char *group, int i) {
  char port[16], req[1024];
  struct addrinfo hints = {0}, *ai;
  hints.ai_socktype = SOCK_STREAM;
  snprintf(port, sizeof(port), "%d", o->port);
  if (getaddrinfo(o->host, port, &hints, &ai))
    return -1;
  int fd = socket(ai->ai_family, SOCK_STREAM, 0);
  if (connect(fd, ai->ai_addr, ai->ai_addrlen)) {
    freeaddrinfo(ai);
    close(fd);
    return -1;
  }
  freeaddrinfo(ai);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  char batch[64] = "";
  if (o->batch > 1)
    snprintf(batch, sizeof(batch), "&batchSize=%ld", o->batch);
  if (o->avro)
    snprintf(batch + strlen(batch), sizeof(batch) - strlen(batch),
             "&socketPayload=avro");
  int n = snprintf(req, sizeof(req),
                   "GET /socket/out?clientId=cbench-%d&groupId=%s&topic=%s"
                   "&valType=string%s HTTP/1.1\r\nHost: x\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n",
                   i, group, o->topic, batch);
  if (write(fd, req, (size_t)n) != n) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Read the upgrade response; @returns @p fd, non-blocking, or -1. */
static int cb_connect_finish(int fd) {
  char resp[2048];
  size_t got = 0; /* read the response head byte by byte: no over-read */
  while (got < sizeof(resp) - 1 && read(fd, resp + got, 1) == 1) {
    got++;
    if (got >= 4 && !memcmp(resp + got - 4, "\r\n\r\n", 4))
      break;
  }
  resp[got] = 0;
  if (!strstr(resp, " 101 ")) {
    fprintf(stderr, "consume_bench: upgrade refused: %s\n", resp);
    close(fd);
    return -1;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

/* A masked client frame (zero mask: the payload goes as is). */
static int cb_ws_send(cb_conn_t *c, int opcode, const void *p, size_t len) {
  uint8_t f[4 + 4 + 125];
  if (len > 125)
    return -1;
  f[0] = (uint8_t)(0x80 | opcode);
  f[1] = (uint8_t)(0x80 | len);
  memset(f + 2, 0, 4);
  memcpy(f + 6, p, len);
  return cb_write_all(c->fd, f, 6 + len);
}

static uint64_t cb_dec(const char **pp, const char *end) {
  const char *p = *pp;
  uint64_t v = 0;
  while (p < end && *p >= '0' && *p <= '9')
    v = v * 10 + (uint64_t)(*p++ - '0');
  *pp = p;
  return v;
}

/* `{"wsProxyMessageId":"<topic>-<partition>-<offset>-<timestamp>"`: the
 * record's partition and offset, read from the head of the record. */
static void cb_ws_record(const char *r, const char *end) {
  static const char pre[] = "{\"wsProxyMessageId\":\"";
  const char *p = r + sizeof(pre) - 1 + cb_topic_len;
  if (p + 1 >= end || memcmp(r + sizeof(pre) - 1, cb_topic, cb_topic_len) ||
      *p != '-') {
    if (!memcmp(r, "{\"error\"", 8))
      cb_error("error frame: %.*s", (int)(end - r > 300 ? 300 : end - r), r);
    else
      cb_error("unexpected record: %.*s", (int)(end - r > 300 ? 300 : end - r),
               r);
    return;
  }
  p++;
  int32_t part = (int32_t)cb_dec(&p, end);
  if (p >= end || *p++ != '-') {
    cb_error("bad wsProxyMessageId: %.*s", (int)(end - r > 100 ? 100 : end - r),
             r);
    return;
  }
  cb_mark(part, (int64_t)cb_dec(&p, end));
}

/* One text frame: a record, or a JSON array of them (batchSize > 1). */
static void cb_ws_text(const char *t, size_t len) {
  static const char pre[] = "{\"wsProxyMessageId\":\"";
  const char *end = t + len;
  if (cb_on_value) { /* latency mode: the value carries the send time */
    static const char vk[] = "\"value\":{\"value\":\"";
    const char *v = memmem(t, len, vk, sizeof(vk) - 1);
    if (!v) {
      cb_error("no value in frame: %.*s", (int)(len > 300 ? 300 : len), t);
      return;
    }
    v += sizeof(vk) - 1;
    cb_on_value(1, v, (size_t)(end - v));
    return;
  }
  if (len && *t != '[') {
    cb_ws_record(t, end);
    return;
  }
  const char *r = len ? t + 1 : end;
  while (r < end && *r == '{') {
    cb_ws_record(r, end);
    /* Quotes inside string values are escaped: the next record starts at
     * the next unescaped occurrence of the prefix. */
    r = memmem(r + 1, (size_t)(end - r - 1), pre, sizeof(pre) - 1);
    if (!r)
      break;
  }
}

/* --- socketPayload=avro: AvroConsumerRecord frames --- */

/* A reader over one datum; `bad` is set on the first error and every later
 * read returns 0. */
typedef struct cb_avro_in {
  const uint8_t *p, *end;
  const char *bad;
} cb_avro_in_t;

static void cb_avro_fail(cb_avro_in_t *in, const char *why) {
  if (!in->bad)
    in->bad = why;
  in->p = in->end;
}

static int64_t cb_avro_long(cb_avro_in_t *in) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (in->p >= in->end)
      break;
    uint8_t b = *in->p++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80))
      return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
  }
  cb_avro_fail(in, "a varint ends early or is over 64 bits");
  return 0;
}

static const uint8_t *cb_avro_str(cb_avro_in_t *in, size_t *len) {
  int64_t n = cb_avro_long(in);
  *len = 0;
  if (in->bad)
    return NULL;
  if (n < 0 || n > in->end - in->p) {
    cb_avro_fail(in, "a length past the end");
    return NULL;
  }
  const uint8_t *s = in->p;
  in->p += n;
  *len = (size_t)n;
  return s;
}

/* A union of [null, bytes, string, int, long, double, float] in the order
 * @p order gives their branch numbers (key and value differ); skipped. */
static void cb_avro_scalar(cb_avro_in_t *in, const char *order) {
  int64_t b = cb_avro_long(in);
  size_t len;
  if (in->bad)
    return;
  if (b < 0 || b >= (int64_t)strlen(order)) {
    cb_avro_fail(in, "a union branch out of range");
    return;
  }
  switch (order[b]) {
  case 'b': /* bytes */
  case 's': /* string */
    cb_avro_str(in, &len);
    break;
  case 'i': /* int */
  case 'l': /* long */
    cb_avro_long(in);
    break;
  case 'd': /* double */
  case 'f': /* float */
    if (in->end - in->p < (order[b] == 'd' ? 8 : 4))
      cb_avro_fail(in, "a number past the end");
    else
      in->p += order[b] == 'd' ? 8 : 4;
    break;
  default: /* null */
    break;
  }
}

/* A ["null","string"] union; @returns its branch (-1: bad). */
static int cb_avro_opt_str(cb_avro_in_t *in) {
  int64_t b = cb_avro_long(in);
  size_t len;
  if (b == 1)
    cb_avro_str(in, &len);
  else if (b != 0)
    cb_avro_fail(in, "a union branch out of range");
  return in->bad ? -1 : (int)b;
}

/* One binary frame: an AvroConsumerRecord (wsProxyMessageId, topic,
 * partition, offset, timestamp, key, value, headers, error, message),
 * decoded to its last byte. */
static void cb_ws_avro(const uint8_t *r, size_t n) {
  cb_avro_in_t in = {r, r + n, NULL};
  size_t idl, tl, len;
  const uint8_t *id = cb_avro_str(&in, &idl);
  const uint8_t *t = cb_avro_str(&in, &tl);
  int64_t part = cb_avro_long(&in), off = cb_avro_long(&in);
  cb_avro_long(&in);              /* timestamp */
  cb_avro_scalar(&in, "nbsildf"); /* key */
  cb_avro_scalar(&in, "bsildfn"); /* value */
  int64_t hb = cb_avro_long(&in); /* headers: null or an array */
  while (hb == 1 && !in.bad) {    /* blocks of records until count 0 */
    int64_t cnt = cb_avro_long(&in);
    if (cnt == 0)
      break;
    if (cnt < 0) {
      cnt = -cnt;
      cb_avro_long(&in); /* the block's byte size */
    }
    for (int64_t i = 0; i < cnt && !in.bad; i++) {
      cb_avro_str(&in, &len);
      cb_avro_str(&in, &len);
    }
  }
  if (hb != 0 && hb != 1)
    cb_avro_fail(&in, "headers: a union branch out of range");
  int err = cb_avro_opt_str(&in);
  cb_avro_opt_str(&in); /* message */
  if (!in.bad && in.p != in.end)
    cb_avro_fail(&in, "bytes after the record");
  if (in.bad || err != 0 || tl != cb_topic_len || memcmp(t, cb_topic, tl) ||
      part < 0 || part > INT32_MAX) {
    cb_error("bad AvroConsumerRecord (%s; error %d, id %.*s, topic %.*s)",
             in.bad ? in.bad : "decoded", err, (int)(idl > 100 ? 100 : idl),
             id ? (const char *)id : "", (int)(tl > 100 ? 100 : tl),
             t ? (const char *)t : "");
    return;
  }
  cb_mark((int32_t)part, off);
}

/* Parse the complete frames in the buffer; -1 when the connection ended. */
static int cb_ws_frames(cb_conn_t *c) {
  size_t off = 0;
  while (c->have - off >= 2) {
    const uint8_t *h = c->buf + off;
    uint64_t len = h[1] & 0x7f;
    size_t hl = 2;
    if (len == 126) {
      if (c->have - off < 4)
        break;
      len = (uint64_t)h[2] << 8 | h[3];
      hl = 4;
    } else if (len == 127) {
      if (c->have - off < 10)
        break;
      len = 0;
      for (int i = 0; i < 8; i++)
        len = len << 8 | h[2 + i];
      hl = 10;
    }
    if (h[1] & 0x80 || (h[0] & 0x70) || len > (1u << 30)) {
      cb_error("protocol error from the proxy (header 0x%02x%02x)", h[0], h[1]);
      return -1;
    }
    if (c->have - off < hl + len) {
      if (hl + len > c->cap) { /* a frame larger than the buffer */
        memmove(c->buf, c->buf + off, c->have - off);
        c->have -= off;
        c->cap = hl + len;
        c->buf = realloc(c->buf, c->cap);
        return 0;
      }
      break;
    }
    int op = h[0] & 0x0f, fin = h[0] & 0x80;
    const char *p = (const char *)h + hl;
    atomic_fetch_add_explicit(&cb_frames, 1, memory_order_relaxed);
    if (!fin || op == 0) {
      cb_error("fragmented frame (opcode %d)", op);
    } else if (op == 1 && !cb_avro) {
      cb_ws_text(p, (size_t)len);
    } else if (op == 2 && cb_avro) {
      cb_ws_avro((const uint8_t *)p, (size_t)len);
    } else if (op == 8) {
      char why[160];
      snprintf(why, sizeof(why), "%.*s", len > 2 ? (int)len - 2 : 0,
               len > 2 ? p + 2 : "");
      cb_error("closed by the proxy: %s (code %d)", why,
               len >= 2 ? (uint8_t)p[0] << 8 | (uint8_t)p[1] : 0);
      c->closed = 1;
      return -1;
    } else if (op == 9) {
      cb_ws_send(c, 10, p, (size_t)len);
    } else if (op != 10) {
      cb_error("unexpected frame (opcode %d)", op);
    }
    off += hl + (size_t)len;
  }
  memmove(c->buf, c->buf + off, c->have - off);
  c->have -= off;
  return 0;
}

/* One thread serves every connection. */
static void *cb_ws_thread(void *arg) {
  int ep = cb_ep;
  struct epoll_event evs[64];
  while (!atomic_load_explicit(&cb_stop, memory_order_relaxed)) {
    int n = epoll_wait(ep, evs, 64, 50);
    for (int i = 0; i < n; i++) {
      cb_conn_t *c = evs[i].data.ptr;
      for (;;) {
        ssize_t r = read(c->fd, c->buf + c->have, c->cap - c->have);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
          break;
        if (r > 0) {
          atomic_fetch_add_explicit(&cb_wire_bytes, r, memory_order_relaxed);
          c->have += (size_t)r;
        }
        if (r <= 0 || cb_ws_frames(c) != 0) {
          if (!c->closed)
            cb_error("connection %d lost", (int)(c - cb_ws));
          c->closed = 1;
          epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
          break;
        }
        if (c->have < c->cap)
          break; /* read less than asked: nothing more for now */
      }
    }
  }
  return NULL;
}

/* Start the reader thread, then connect: every upgrade request is sent
 * before any response is read, so the sockets' consumers join their group
 * together (as a direct client's consumers do) instead of one after another,
 * each join a rebalance that stops every member's fetching. Records that
 * arrive while later responses are read wait in the kernel and are read (and
 * timed) once their socket is added. */
static int cb_ws_open(const cb_opts_t *o, const char *group, int n) {
  static struct epoll_event no_events;
  cb_ws = calloc((size_t)n, sizeof(*cb_ws));
  cb_ep = epoll_create1(0);
  pthread_create(&cb_ws_th, NULL, cb_ws_thread, NULL);
  for (int i = 0; i < n; i++)
    cb_ws[i].fd = cb_connect_start(o, group, i);
  int rc = 0;
  for (int i = 0; i < n; i++) {
    cb_conn_t *c = &cb_ws[i];
    if (c->fd >= 0)
      c->fd = cb_connect_finish(c->fd);
    if (c->fd < 0) {
      cb_error("connection %d failed", i);
      c->closed = 1;
      rc = -1;
      continue;
    }
    c->cap = 1 << 20;
    c->buf = malloc(c->cap);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (o->no_read)
      ev = no_events; /* registered, so closing works the same; never read */
    epoll_ctl(cb_ep, EPOLL_CTL_ADD, c->fd, &ev);
  }
  cb_nws = n;
  return rc;
}

/* Stop the reader thread (cb_stop is set). */
static void cb_ws_join(void) {
  if (cb_ep >= 0) {
    pthread_join(cb_ws_th, NULL);
    close(cb_ep);
    cb_ep = -1;
  }
}

/* Close handshake (1000), answered within 5 s, not timed. */
static void cb_ws_close_all(void) {
  uint8_t code[2] = {0x03, 0xe8};
  for (int i = 0; i < cb_nws; i++)
    if (!cb_ws[i].closed)
      cb_ws_send(&cb_ws[i], 8, code, 2);
  uint64_t deadline = cb_now_ns() + 5000000000u;
  for (int i = 0; i < cb_nws; i++) {
    cb_conn_t *c = &cb_ws[i];
    char tmp[65536];
    while (!c->closed && cb_now_ns() < deadline) {
      ssize_t r = read(c->fd, tmp, sizeof(tmp));
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
        break;
      if (r < 0)
        cb_sleep_ms(1);
    }
    close(c->fd);
    free(c->buf);
  }
}

/* --- throughput: direct or through the proxy --- */

static void cb_group(const cb_opts_t *o, char *out, size_t len,
                     const char *suffix) {
  if (o->group)
    snprintf(out, len, "%s%s", o->group, suffix);
  else
    snprintf(out, len, "cbench-%d-%llx%s", (int)getpid(),
             (unsigned long long)cb_now_ns(), suffix);
}

/* Wait for every record, or o->seconds after the first one when set (then
 * the records so far count, up to that instant); give up after o->stall
 * seconds without progress (60 s before the first record: joining the
 * group). Returns the records that count. */
static long cb_wait_all(const cb_opts_t *o, int *limited, long *records,
                        long *stray) {
  long last = -1, u = 0;
  uint64_t since = cb_now_ns();
  *limited = 0;
  while ((u = atomic_load(&cb_unique)) < cb_expect) {
    cb_sleep_ms(5);
    uint64_t now = cb_now_ns(), first = atomic_load(&cb_first_ns);
    if (o->seconds > 0 && first && (double)(now - first) / 1e9 >= o->seconds) {
      *records = atomic_load(&cb_records);
      *stray = atomic_load(&cb_stray);
      u = atomic_load(&cb_unique);
      atomic_store(&cb_last_ns, now);
      *limited = 1;
      break;
    }
    if (atomic_load(&cb_unique) != last) {
      last = atomic_load(&cb_unique);
      since = now;
    } else if ((double)(now - since) / 1e9 > (last ? o->stall : 60)) {
      cb_error("stalled: %ld of %ld records missing", cb_expect - last,
               cb_expect);
      break;
    }
  }
  if (!*limited) {
    *records = atomic_load(&cb_records);
    *stray = atomic_load(&cb_stray);
  }
  atomic_store(&cb_stop, 1);
  return u;
}

static int cb_throughput(const cb_opts_t *o, int ws) {
  char group[256];
  cb_group(o, group, sizeof(group), "");
  if (cb_watermarks(o))
    return 1;
  rd_kafka_t **rk = calloc((size_t)o->conns, sizeof(*rk));
  pthread_t *th = calloc((size_t)o->conns, sizeof(*th));
  double cpu0 = cb_cpu_s();
  uint64_t t0 = cb_now_ns();
  if (ws) {
    if (cb_ws_open(o, group, o->conns))
      return 1;
  } else {
    for (int i = 0; i < o->conns; i++) {
      rk[i] = cb_consumer(o, group, i);
      pthread_create(&th[i], NULL, cb_direct_thread, rk[i]);
    }
  }
  int limited;
  long records, stray, unique = cb_wait_all(o, &limited, &records, &stray);
  long dups = records - unique - stray;
  double cpu = cb_cpu_s() - cpu0;
  if (ws)
    cb_ws_join();
  for (int i = 0; !ws && i < o->conns; i++)
    pthread_join(th[i], NULL);
  uint64_t first = atomic_load(&cb_first_ns), last = atomic_load(&cb_last_ns);
  if (!last)
    last = cb_now_ns();
  double secs = first ? (double)(last - first) / 1e9 : 0;
  double total = (double)(last - t0) / 1e9;
  printf(
      "{\"mode\":\"%s\",\"connections\":%d,\"size\":%ld,\"batch\":%ld,"
      "\"partitions\":%d,\"expected\":%ld,\"received\":%ld,\"time_limited\":%s,"
      "\"records\":%ld,\"duplicates\":%ld,\"stray\":%ld,\"errors\":%ld,"
      "\"seconds\":%.3f,\"seconds_from_connect\":%.3f,"
      "\"first_record_after_s\":%.3f,\"msgs_per_sec\":%.1f,"
      "\"mb_per_sec\":%.2f,\"msgs_per_sec_from_connect\":%.1f,"
      "\"frames\":%ld,\"wire_mb_per_sec\":%.2f,\"client_cpu_s\":%.3f,"
      "\"max_gap_ms\":%.1f,\"max_gap_ended_after_s\":%.3f}\n",
      o->mode, o->conns, o->size, ws ? o->batch : 0, cb_nparts, cb_expect,
      unique, limited ? "true" : "false", records, dups > 0 ? dups : 0, stray,
      atomic_load(&cb_errors), secs, total,
      first ? (double)(first - t0) / 1e9 : 0,
      secs > 0 ? (double)unique / secs : 0,
      secs > 0 ? (double)unique * (double)o->size / secs / 1e6 : 0,
      total > 0 ? (double)unique / total : 0, atomic_load(&cb_frames),
      secs > 0 ? (double)atomic_load(&cb_wire_bytes) / secs / 1e6 : 0, cpu,
      (double)atomic_load(&cb_max_gap_ns) / 1e6,
      first && atomic_load(&cb_max_gap_end_ns)
          ? (double)(atomic_load(&cb_max_gap_end_ns) - first) / 1e9
          : 0);
  fflush(stdout);
  if (ws) {
    cb_ws_close_all();
  } else {
    for (int i = 0; i < o->conns; i++) {
      rd_kafka_consumer_close(rk[i]);
      rd_kafka_destroy(rk[i]);
    }
  }
  return (unique == cb_expect || limited) && !atomic_load(&cb_errors) ? 0 : 1;
}

/* --- open loop: end-to-end latency, direct and through the proxy --- */

static long cb_n;           /* measured records */
static uint64_t *cb_lat[2]; /* [0] direct, [1] proxy: ns per record */
static atomic_long cb_got[2], cb_dup[2];
static atomic_int cb_warm[2];
static _Atomic uint64_t cb_t0; /* the measured records' first send time */
static char cb_warm_val[64];   /* warm-up records: "warm <start time>" */
static size_t cb_warm_len;

static void cb_latency_value(int who, const char *v, size_t len) {
  uint64_t now = cb_now_ns();
  const char *end = v + len, *p = v;
  if (len && *v == 'w') { /* a warm-up record, of this run? */
    if (len >= cb_warm_len && !memcmp(v, cb_warm_val, cb_warm_len))
      atomic_store(&cb_warm[who], 1);
    return;
  }
  uint64_t sent = cb_dec(&p, end), t0 = atomic_load(&cb_t0);
  if (p >= end || *p++ != ' ') {
    cb_error("bad latency value: %.*s", (int)(len > 60 ? 60 : len), v);
    return;
  }
  if (!t0 || sent < t0)
    return; /* a record of an earlier run in the same topic */
  long seq = (long)cb_dec(&p, end);
  if (seq < 0 || seq >= cb_n) {
    cb_error("bad sequence number: %ld", seq);
    return;
  }
  if (cb_lat[who][seq]) {
    atomic_fetch_add(&cb_dup[who], 1);
    return;
  }
  cb_lat[who][seq] = now > sent ? now - sent : 1;
  atomic_fetch_add(&cb_got[who], 1);
}

/* Nearest-rank percentiles of the records [from, cb_n) that arrived. */
static void cb_lat_pcts(int who, long from, long *n, double pct[4]) {
  uint64_t *v = malloc((size_t)cb_n * sizeof(*v));
  *n = 0;
  for (long i = from; i < cb_n; i++)
    if (cb_lat[who][i])
      v[(*n)++] = cb_lat[who][i];
  qsort(v, (size_t)*n, sizeof(*v), cb_cmp_u64);
  pct[0] = cb_pct(v, *n, 0.5);
  pct[1] = cb_pct(v, *n, 0.99);
  pct[2] = cb_pct(v, *n, 0.999);
  pct[3] = *n ? (double)v[*n - 1] / 1000.0 : 0;
  free(v);
}

static void cb_lat_report(const char *name, int who, int comma) {
  long n, nq;
  double p[4], q[4];
  cb_lat_pcts(who, 0, &n, p);
  cb_lat_pcts(who, cb_n - cb_n / 4, &nq, q); /* after a burst: recovered? */
  printf("\"%s\":{\"received\":%ld,\"duplicates\":%ld,\"p50_us\":%.1f,"
         "\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,"
         "\"last_quarter_p50_us\":%.1f,\"last_quarter_p99_us\":%.1f}%s",
         name, n, atomic_load(&cb_dup[who]), p[0], p[1], p[2], p[3], q[0], q[1],
         comma ? "," : "");
}

static int cb_latency(const cb_opts_t *o) {
  char err[512], direct_group[256], ws_group[256];
  cb_group(o, direct_group, sizeof(direct_group), "-direct");
  cb_group(o, ws_group, sizeof(ws_group), "-ws");
  cb_n = (long)(o->rate * o->seconds);
  cb_lat[0] = calloc((size_t)cb_n, sizeof(uint64_t));
  cb_lat[1] = calloc((size_t)cb_n, sizeof(uint64_t));
  cb_on_value = cb_latency_value;
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", o->bootstrap, err,
                        sizeof(err)) ||
      rd_kafka_conf_set(conf, "linger.ms", o->linger ? o->linger : "0", err,
                        sizeof(err))) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  rd_kafka_t *prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  rd_kafka_t *cons = cb_consumer(o, direct_group, 0);
  pthread_t th;
  if (cb_ws_open(o, ws_group, 1))
    return 1;
  pthread_create(&th, NULL, cb_direct_thread, cons);
  char *val = malloc((size_t)o->size + 64);
  cb_warm_len = (size_t)snprintf(cb_warm_val, sizeof(cb_warm_val), "warm %llu",
                                 (unsigned long long)cb_now_ns());
  /* Warm up until both readers see records (group joined, fetching). */
  uint64_t deadline = cb_now_ns() + 60000000000u;
  while (!(atomic_load(&cb_warm[0]) && atomic_load(&cb_warm[1])) &&
         cb_now_ns() < deadline) {
    rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(o->topic), RD_KAFKA_V_PARTITION(0),
                      RD_KAFKA_V_VALUE(cb_warm_val, cb_warm_len),
                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    rd_kafka_poll(prod, 100);
  }
  if (!(atomic_load(&cb_warm[0]) && atomic_load(&cb_warm[1])))
    cb_error("warm-up records not received in 60 s (direct: %s, proxy: %s)",
             atomic_load(&cb_warm[0]) ? "yes" : "no",
             atomic_load(&cb_warm[1]) ? "yes" : "no");
  rd_kafka_poll(prod, 500);
  uint64_t t0 = cb_now_ns() + 5000000;
  atomic_store(&cb_t0, t0);
  for (long i = 0; i < cb_n; i++) {
    /* The scheduled send time: a late send counts against latency (no
     * coordinated omission). */
    uint64_t sched = t0 + (uint64_t)((double)i * 1e9 / o->rate);
    if (i == cb_n / 2 && o->burst_ms > 0) /* a stall, then a burst */
      cb_sleep_until(sched + (uint64_t)(o->burst_ms * 1e6));
    cb_sleep_until(sched);
    int n = snprintf(val, (size_t)o->size + 64, "%llu %ld ",
                     (unsigned long long)sched, i);
    if (n < o->size) {
      memset(val + n, 'x', (size_t)(o->size - n));
      n = (int)o->size;
    }
    if (rd_kafka_producev(
            prod, RD_KAFKA_V_TOPIC(o->topic), RD_KAFKA_V_PARTITION(0),
            RD_KAFKA_V_VALUE(val, (size_t)n),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END))
      cb_error("produce failed at record %ld", i);
    rd_kafka_poll(prod, 0);
  }
  rd_kafka_flush(prod, 30000);
  /* Everything should arrive within o->stall seconds of the last send. */
  deadline = cb_now_ns() + (uint64_t)(o->stall * 1e9);
  while ((atomic_load(&cb_got[0]) < cb_n || atomic_load(&cb_got[1]) < cb_n) &&
         cb_now_ns() < deadline)
    cb_sleep_ms(5);
  atomic_store(&cb_stop, 1);
  pthread_join(th, NULL);
  cb_ws_join();
  if (atomic_load(&cb_got[0]) < cb_n || atomic_load(&cb_got[1]) < cb_n)
    cb_error("records missing %.0f s after the last send: direct %ld, "
             "proxy %ld (of %ld)",
             o->stall, cb_n - atomic_load(&cb_got[0]),
             cb_n - atomic_load(&cb_got[1]), cb_n);
  printf("{\"mode\":\"latency\",\"rate\":%.0f,\"seconds\":%.1f,\"size\":%ld,"
         "\"burst_ms\":%.0f,\"produced\":%ld,",
         o->rate, o->seconds, o->size, o->burst_ms, cb_n);
  cb_lat_report("direct", 0, 1);
  cb_lat_report("proxy", 1, 1);
  printf("\"errors\":%ld}\n", atomic_load(&cb_errors));
  fflush(stdout);
  cb_ws_close_all();
  rd_kafka_consumer_close(cons);
  rd_kafka_destroy(cons);
  rd_kafka_destroy(prod);
  free(val);
  return atomic_load(&cb_errors) ? 1 : 0;
}

/* --- idle consumer sockets --- */

static int cb_idle(const cb_opts_t *o) {
  char group[256];
  cb_group(o, group, sizeof(group), "");
  int rc = cb_ws_open(o, group, o->conns);
  printf("{\"idle_connections\":%d,\"errors\":%ld}\n", rc ? 0 : o->conns,
         atomic_load(&cb_errors));
  fflush(stdout);
  if (!rc)
    cb_sleep_until(cb_now_ns() + (uint64_t)(o->hold * 1e9));
  atomic_store(&cb_stop, 1);
  cb_ws_join();
  if (rc)
    return 1;
  int open = 0;
  for (int i = 0; i < cb_nws; i++)
    open += !cb_ws[i].closed;
  cb_ws_close_all();
  printf("{\"idle_closed\":%d,\"errors\":%ld}\n", open,
         atomic_load(&cb_errors));
  return atomic_load(&cb_errors) ? 1 : 0;
}

int main(int argc, char **argv) {
  cb_opts_t o = {.host = "127.0.0.1",
                 .conns = 1,
                 .count = 100000,
                 .size = 100,
                 .hold = 5,
                 .stall = 15};
  int too_many = 0; /* --set given more than 16 times */
  for (int i = 1; i < argc; i += 2) {
    const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
    if (!strcmp(k, "--mode"))
      o.mode = v;
    else if (!strcmp(k, "--bootstrap"))
      o.bootstrap = v;
    else if (!strcmp(k, "--topic"))
      o.topic = v;
    else if (!strcmp(k, "--group"))
      o.group = v;
    else if (!strcmp(k, "--host"))
      o.host = v;
    else if (!strcmp(k, "--port"))
      o.port = atoi(v);
    else if (!strcmp(k, "--connections"))
      o.conns = atoi(v);
    else if (!strcmp(k, "--count"))
      o.count = atol(v);
    else if (!strcmp(k, "--size"))
      o.size = atol(v);
    else if (!strcmp(k, "--batch"))
      o.batch = atol(v);
    else if (!strcmp(k, "--payload"))
      o.avro = !strcmp(v, "avro") ? 1 : !strcmp(v, "json") ? 0 : -1;
    else if (!strcmp(k, "--rate"))
      o.rate = atof(v);
    else if (!strcmp(k, "--seconds"))
      o.seconds = atof(v);
    else if (!strcmp(k, "--hold"))
      o.hold = atof(v);
    else if (!strcmp(k, "--no-read")) {
      o.no_read = 1;
      i--; /* a flag: no value */
    } else if (!strcmp(k, "--stall"))
      o.stall = atof(v);
    else if (!strcmp(k, "--burst-ms"))
      o.burst_ms = atof(v);
    else if (!strcmp(k, "--linger-ms"))
      o.linger = v;
    else if (!strcmp(k, "--set") && cb_nsets < 16)
      cb_sets[cb_nsets++] = v;
    else if (!strcmp(k, "--set"))
      too_many = 1; /* refused below rather than dropped */
  }
  static const char *const modes[] = {"fill", "direct", "ws", "latency",
                                      "idle"};
  int m = -1;
  for (int i = 0; o.mode && i < 5; i++)
    if (!strcmp(o.mode, modes[i]))
      m = i;
  int need_bootstrap = m >= 0 && m <= 3 && !o.bootstrap;
  int need_port = (m >= 2) && !o.port;
  /* Avro: throughput (ws) and idle only; a batch is not one frame there. */
  int bad_avro = o.avro < 0 || (o.avro && (m != 2 && m != 4 ? 1 : o.batch > 1));
  if (too_many || bad_avro || m < 0 || !o.topic || o.size < 1 ||
      o.size > 60000 || o.conns < 1 || need_bootstrap || need_port ||
      (m == 3 && (o.rate <= 0 || o.seconds <= 0 || o.size < 40))) {
    fprintf(
        stderr,
        "usage: consume_bench --mode fill|direct|ws|latency|idle --topic T\n"
        "  fill:    --bootstrap B --count N --size S\n"
        "  direct:  --bootstrap B [--connections C] [--size S] [--seconds D]\n"
        "  ws:      --bootstrap B --port P [--connections C] [--batch N] "
        "[--seconds D] [--payload json|avro (no --batch)]\n"
        "  latency: --bootstrap B --port P --rate R --seconds D [--size "
        "S>=40] [--burst-ms MS] [--linger-ms MS]\n"
        "  idle:    --port P --connections C [--hold S] [--no-read] "
        "[--payload json|avro]\n"
        "  common:  [--group G] [--host H] [--stall S]\n"
        "  direct consumers: [--set librdkafka.key=value]... (no --set: "
        "librdkafka's\n"
        "                    own prefetch limits, not the proxy's)\n");
    return 2;
  }
  cb_topic = o.topic;
  cb_topic_len = strlen(o.topic);
  cb_avro = o.avro;
  switch (m) {
  case 0:
    return cb_fill(&o);
  case 1:
  case 2:
    return cb_throughput(&o, m == 2);
  case 3:
    return cb_latency(&o);
  default:
    return cb_idle(&o);
  }
}
