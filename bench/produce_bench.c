/*
 * produce_bench: the load generator of the producer benchmark. Two clients
 * with the same workload: `direct` is a librdkafka producer with the proxy's
 * settings (idempotent, acks=all); `ws` produces through the proxy's
 * /socket/in over C WebSocket connections (a blocking sender and receiver
 * thread per connection; the proxy's own backpressure bounds what is in
 * flight). Throughput mode sends N messages of S bytes as fast as possible;
 * open-loop mode (--rate R --seconds D) sends at a fixed rate and measures
 * each message's latency from its scheduled send time to its ack.
 * `--payload avro` makes `ws` speak socketPayload=avro: binary frames of
 * AvroProducerRecord out, AvroProducerResult in (decoded here by a few
 * lines of our own, not the proxy's codec, so a codec bug cannot hide).
 * One JSON line on stdout.
 */
#include <librdkafka/rdkafka.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct pb_opts {
  const char *mode, *bootstrap, *topic, *host, *dump;
  const char *set[16]; /* direct: extra key=value producer settings */
  int port, conns, nset;
  int avro; /* ws: socketPayload=avro (binary frames) instead of JSON */
  long count, size;
  double rate, seconds;
} pb_opts_t;

static uint64_t pb_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void pb_sleep_until(uint64_t t) {
  uint64_t now = pb_now_ns();
  if (t > now) {
    struct timespec ts = {(time_t)((t - now) / 1000000000u),
                          (long)((t - now) % 1000000000u)};
    nanosleep(&ts, NULL);
  }
}

static int pb_cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

static double pb_pct(uint64_t *v, long n, double p) {
  if (n <= 0)
    return 0;
  long i = (long)(p * (double)(n - 1) + 0.5);
  return (double)v[i] / 1000.0; /* ns -> us */
}

static uint64_t *pb_sched; /* open loop: scheduled send time per message */

/* Open loop, --dump F: each message's scheduled send time (CLOCK_MONOTONIC,
 * one clock for every process) and latency, two native u64s each, in send
 * order: produce_run.py pairs each proxy message with the direct one sent at
 * the same moment, so a broker stall both wait out cancels. */
static void pb_dump(const pb_opts_t *o, const uint64_t *lat, long nlat) {
  FILE *f = o->dump && nlat ? fopen(o->dump, "wb") : NULL;
  if (!f)
    return;
  for (long i = 0; i < nlat; i++) {
    uint64_t rec[2] = {pb_sched[i], lat[i]};
    fwrite(rec, sizeof(rec), 1, f);
  }
  fclose(f);
}

static void pb_report(const pb_opts_t *o, long acked, long errors, double secs,
                      uint64_t *lat, long nlat) {
  struct rusage ru; /* the client's own CPU: librdkafka's, when direct */
  getrusage(RUSAGE_SELF, &ru);
  double cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
               (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  pb_dump(o, lat, nlat);
  qsort(lat, (size_t)nlat, sizeof(*lat), pb_cmp_u64);
  printf("{\"mode\":\"%s\",\"payload\":\"%s\",\"connections\":%d,"
         "\"size\":%ld,\"acked\":%ld,\"errors\":%ld,\"seconds\":%.3f,\"msgs_"
         "per_sec\":%.1f,"
         "\"mb_per_sec\":%.2f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
         "\"p999_us\":%.1f,\"client_cpu_s\":%.3f}\n",
         o->mode, o->avro ? "avro" : "json", o->conns, o->size, acked, errors,
         secs, acked / secs, (double)acked * (double)o->size / secs / 1e6,
         pb_pct(lat, nlat, 0.5), pb_pct(lat, nlat, 0.99),
         pb_pct(lat, nlat, 0.999), cpu);
}

/* --- direct librdkafka producer --- */

static uint64_t *pb_lat;
static atomic_long pb_acked, pb_errors;

static void pb_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  long i = (long)(intptr_t)m->_private;
  if (m->err)
    atomic_fetch_add(&pb_errors, 1);
  else if (pb_sched)
    pb_lat[i] = pb_now_ns() - pb_sched[i];
  atomic_fetch_add(&pb_acked, 1);
}

static int pb_direct(const pb_opts_t *o) {
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  /* The proxy's producer settings (core/kafka/kproducer.c + the default
   * kafka-client.properties). */
  const char *kv[][2] = {{"bootstrap.servers", o->bootstrap},
                         {"enable.idempotence", "true"},
                         {"acks", "all"},
                         {"compression.type", "none"},
                         {"delivery.timeout.ms", "120000"},
                         {"request.timeout.ms", "30000"},
                         {"retries", "2147483647"},
                         {"retry.backoff.ms", "100"}};
  for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
    if (rd_kafka_conf_set(conf, kv[i][0], kv[i][1], err, sizeof(err))) {
      fprintf(stderr, "%s\n", err);
      return 1;
    }
  for (int i = 0; i < o->nset; i++) {
    char key[128];
    const char *eq = strchr(o->set[i], '=');
    size_t kl = eq ? (size_t)(eq - o->set[i]) : 0;
    if (!eq || kl >= sizeof(key)) {
      fprintf(stderr, "--set %s: expected key=value\n", o->set[i]);
      return 1;
    }
    memcpy(key, o->set[i], kl);
    key[kl] = 0;
    if (rd_kafka_conf_set(conf, key, eq + 1, err, sizeof(err))) {
      fprintf(stderr, "%s\n", err);
      return 1;
    }
  }
  rd_kafka_conf_set_dr_msg_cb(conf, pb_dr);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  char *payload = malloc((size_t)o->size);
  memset(payload, 'x', (size_t)o->size);
  long n = o->rate > 0 ? (long)(o->rate * o->seconds) : o->count;
  if (o->rate > 0) {
    pb_sched = calloc((size_t)n, sizeof(*pb_sched));
    pb_lat = calloc((size_t)n, sizeof(*pb_lat));
  }
  /* Warm up (connections, producer id) before timing, as the proxy's shared
   * producer is warm after its first socket. */
  rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(o->topic),
                    RD_KAFKA_V_VALUE(payload, (size_t)o->size),
                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
  rd_kafka_flush(rk, 30000);
  atomic_store(&pb_acked, 0);
  uint64_t t0 = pb_now_ns();
  for (long i = 0; i < n; i++) {
    if (pb_sched) {
      pb_sched[i] = t0 + (uint64_t)((double)i * 1e9 / o->rate);
      pb_sleep_until(pb_sched[i]);
    }
    while (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(o->topic),
                             RD_KAFKA_V_VALUE(payload, (size_t)o->size),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                             RD_KAFKA_V_OPAQUE((void *)(intptr_t)i),
                             RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
      rd_kafka_poll(rk, 1);
    rd_kafka_poll(rk, 0);
  }
  while (atomic_load(&pb_acked) < n)
    rd_kafka_poll(rk, 5);
  double secs = (double)(pb_now_ns() - t0) / 1e9;
  pb_report(o, atomic_load(&pb_acked), atomic_load(&pb_errors), secs, pb_lat,
            pb_lat ? n : 0);
  rd_kafka_destroy(rk);
  free(payload);
  return atomic_load(&pb_errors) ? 1 : 0;
}

/* --- through the proxy --- */

typedef struct pb_conn {
  const pb_opts_t *o;
  int fd;
  long n, first; /* messages of this connection, global index of the 1st */
  long acked, errors;
} pb_conn_t;

static int pb_connect(const pb_opts_t *o) {
  char port[16], req[512], resp[1024];
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
  int one = 1; /* small frames must leave at once (no Nagle) */
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  int n = snprintf(req, sizeof(req),
                   "GET /socket/in?clientId=bench&topic=%s&valType=string%s "
                   "HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n",
                   o->topic, o->avro ? "&socketPayload=avro" : "");
  if (write(fd, req, (size_t)n) != n)
    return -1;
  size_t got = 0; /* read the response head byte by byte: no over-read */
  while (got < sizeof(resp) - 1 && read(fd, resp + got, 1) == 1) {
    got++;
    if (got >= 4 && !memcmp(resp + got - 4, "\r\n\r\n", 4))
      break;
  }
  resp[got] = 0;
  if (!strstr(resp, " 101 ")) {
    fprintf(stderr, "upgrade refused: %s\n", resp);
    close(fd);
    return -1;
  }
  return fd;
}

/* A masked text frame, or a binary one with @p binary (zero mask: the
 * payload goes as is). */
static size_t pb_frame(char *out, const char *payload, size_t len, int binary) {
  size_t h = 0;
  out[h++] = (char)(binary ? 0x82 : 0x81);
  if (len < 126) {
    out[h++] = (char)(0x80 | len);
  } else {
    out[h++] = (char)(0x80 | 126);
    out[h++] = (char)(len >> 8);
    out[h++] = (char)len;
  }
  memset(out + h, 0, 4);
  memcpy(out + h + 4, payload, len);
  return h + 4 + len;
}

/* --- socketPayload=avro: the wrapper records, by hand --- */

/* Write @p v as an Avro zig-zag varint at @p d; @returns the end. */
static char *pb_avro_put_long(char *d, int64_t v) {
  uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
  while (u >= 0x80) {
    *d++ = (char)(u | 0x80);
    u >>= 7;
  }
  *d++ = (char)u;
  return d;
}

/* An AvroProducerRecord: key null (branch 0), value the string branch (1)
 * of @p vlen bytes, headers null (0), clientMessageId the string branch (1)
 * holding @p id in decimal (id < 0: null). @p d needs @p vlen + 48 bytes. */
static size_t pb_avro_record(char *d, const char *val, size_t vlen, long id) {
  char *p = d, digits[24];
  *p++ = 0; /* key: null */
  p = pb_avro_put_long(p, 1);
  p = pb_avro_put_long(p, (int64_t)vlen);
  memcpy(p, val, vlen);
  p += vlen;
  *p++ = 0; /* headers: null */
  if (id < 0) {
    *p++ = 0;
  } else {
    int n = snprintf(digits, sizeof(digits), "%ld", id);
    p = pb_avro_put_long(p, 1);
    p = pb_avro_put_long(p, n);
    memcpy(p, digits, (size_t)n);
    p += n;
  }
  return (size_t)(p - d);
}

/* A reader over one datum; `bad` is set on the first error and every later
 * read returns 0. */
typedef struct pb_avro_in {
  const uint8_t *p, *end;
  const char *bad;
} pb_avro_in_t;

static int64_t pb_avro_long(pb_avro_in_t *in) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (in->p >= in->end)
      break;
    uint8_t b = *in->p++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80))
      return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
  }
  if (!in->bad)
    in->bad = "a varint ends early or is over 64 bits";
  in->p = in->end;
  return 0;
}

/* A string or bytes: a view of it, or NULL (and `bad`). */
static const uint8_t *pb_avro_str(pb_avro_in_t *in, size_t *len) {
  int64_t n = pb_avro_long(in);
  *len = 0;
  if (in->bad)
    return NULL;
  if (n < 0 || n > in->end - in->p) {
    in->bad = "a length past the end";
    in->p = in->end;
    return NULL;
  }
  const uint8_t *s = in->p;
  in->p += n;
  *len = (size_t)n;
  return s;
}

/* A ["null","string"] union: 0 for null, 1 with the string in *s, -1 bad. */
static int pb_avro_opt_str(pb_avro_in_t *in, const uint8_t **s, size_t *len) {
  int64_t b = pb_avro_long(in);
  *s = NULL;
  *len = 0;
  if (b == 1)
    *s = pb_avro_str(in, len);
  else if (b != 0 && !in->bad)
    in->bad = "a union branch out of range";
  return in->bad ? -1 : (int)b;
}

/* Decode an AvroProducerResult (topic, partition, offset, timestamp,
 * clientMessageId, error, message). @returns 0 for a success whose
 * clientMessageId is @p want, else 1 with *why saying what was wrong. */
static int pb_avro_result(const uint8_t *p, size_t n, long want,
                          const char **why) {
  pb_avro_in_t in = {p, p + n, NULL};
  const uint8_t *s, *err;
  size_t len, elen;
  pb_avro_str(&in, &len); /* topic */
  int64_t part = pb_avro_long(&in);
  pb_avro_long(&in); /* offset */
  pb_avro_long(&in); /* timestamp */
  int has_id = pb_avro_opt_str(&in, &s, &len);
  char digits[24];
  int dl = snprintf(digits, sizeof(digits), "%ld", want);
  int id_ok = has_id == 1 && len == (size_t)dl && !memcmp(s, digits, len);
  int has_err = pb_avro_opt_str(&in, &err, &elen);
  pb_avro_opt_str(&in, &s, &len); /* message */
  if (!in.bad && in.p != in.end)
    in.bad = "bytes after the record";
  *why = in.bad                         ? in.bad
         : has_err == 1                 ? "a result with error set"
         : !id_ok                       ? "a result out of order"
         : part < 0 || part > INT32_MAX ? "partition out of range"
                                        : NULL;
  return *why != NULL;
}

static void *pb_sender(void *arg) {
  pb_conn_t *c = arg;
  const pb_opts_t *o = c->o;
  size_t cap = (size_t)o->size + 128, batch = 64, used = 0;
  char *msg = malloc(cap), *buf = malloc((cap + 16) * batch);
  char *val = malloc((size_t)o->size + 1);
  memset(val, 'x', (size_t)o->size);
  val[o->size] = 0;
  for (long i = 0; i < c->n; i++) {
    long gi = c->first + i;
    if (pb_sched) {
      pb_sleep_until(pb_sched[gi]);
      batch = 1; /* open loop: every message leaves on time */
    }
    size_t len = o->avro ? pb_avro_record(msg, val, (size_t)o->size, gi)
                         : (size_t)snprintf(msg, cap,
                                            "{\"value\":{\"value\":\"%s\"},"
                                            "\"messageId\":%ld}",
                                            val, gi);
    used += pb_frame(buf + used, msg, len, o->avro);
    if ((i + 1) % (long)batch == 0 || i + 1 == c->n) {
      for (size_t off = 0; off < used;) {
        ssize_t w = write(c->fd, buf + off, used - off);
        if (w <= 0)
          goto out;
        off += (size_t)w;
      }
      used = 0;
    }
  }
out:
  free(msg);
  free(buf);
  free(val);
  return NULL;
}

static atomic_long pb_described; /* errors described on stderr so far */

/* Read server frames: each text frame (binary with --payload avro) is one
 * result, in order. An Avro result is decoded whole: one with `error` set, or
 * that does not decode, or whose clientMessageId is not the next one, counts
 * as an error, as a JSON result with "error" does. */
static void *pb_receiver(void *arg) {
  pb_conn_t *c = arg;
  size_t cap = 1 << 20, have = 0;
  uint8_t *buf = malloc(cap);
  while (c->acked < c->n) {
    ssize_t r = read(c->fd, buf + have, cap - have);
    if (r <= 0)
      break;
    have += (size_t)r;
    size_t off = 0;
    while (have - off >= 2) {
      size_t len = buf[off + 1] & 0x7f, h = 2;
      if (len == 126) {
        if (have - off < 4)
          break;
        len = (size_t)buf[off + 2] << 8 | buf[off + 3];
        h = 4;
      }
      if (have - off < h + len)
        break;
      int op = buf[off] & 0x0f;
      const char *why = NULL;
      if (op == (c->o->avro ? 2 : 1)) {
        long gi = c->first + c->acked;
        if (c->o->avro ? pb_avro_result(buf + off + h, len, gi, &why)
                       : memmem(buf + off + h, len, "\"error\"", 7) != NULL) {
          c->errors++;
          if (why && atomic_fetch_add(&pb_described, 1) < 20)
            fprintf(stderr, "produce_bench: message %ld: %s\n", gi, why);
        } else if (pb_sched)
          pb_lat[gi] = pb_now_ns() - pb_sched[gi];
        c->acked++;
      } else if (op == 1 || op == 2) { /* the other payload's frame */
        c->errors++;
        c->acked++;
      }
      off += h + len;
    }
    memmove(buf, buf + off, have - off);
    have -= off;
  }
  free(buf);
  return NULL;
}

static int pb_ws(const pb_opts_t *o) {
  long n = o->rate > 0 ? (long)(o->rate * o->seconds) : o->count;
  pb_conn_t *c = calloc((size_t)o->conns, sizeof(*c));
  pthread_t *th = calloc((size_t)o->conns * 2, sizeof(*th));
  if (o->rate > 0) {
    pb_sched = calloc((size_t)n, sizeof(*pb_sched));
    pb_lat = calloc((size_t)n, sizeof(*pb_lat));
  }
  for (int i = 0; i < o->conns; i++) {
    c[i].o = o;
    c[i].n = n / o->conns + (i < n % o->conns);
    c[i].first = i ? c[i - 1].first + c[i - 1].n : 0;
    if ((c[i].fd = pb_connect(o)) < 0)
      return 1;
  }
  /* Warm up like the direct client: the first record to a topic waits for
   * its metadata. One record on each connection, acked before timing. */
  for (int i = 0; i < o->conns; i++) {
    char frame[256], ack[512], rec[64];
    const char *warm = "{\"value\":{\"value\":\"warm-up\"}}";
    size_t wl = strlen(warm);
    if (o->avro) {
      wl = pb_avro_record(rec, "warm-up", 7, -1);
      warm = rec;
    }
    size_t fl = pb_frame(frame, warm, wl, o->avro);
    if (write(c[i].fd, frame, fl) != (ssize_t)fl ||
        read(c[i].fd, ack, sizeof(ack)) <= 0)
      return 1;
  }
  uint64_t t0 = pb_now_ns();
  for (long i = 0; pb_sched && i < n; i++)
    pb_sched[i] = t0 + 5000000 + (uint64_t)((double)i * 1e9 / o->rate);
  for (int i = 0; i < o->conns; i++) {
    pthread_create(&th[2 * i], NULL, pb_sender, &c[i]);
    pthread_create(&th[2 * i + 1], NULL, pb_receiver, &c[i]);
  }
  long acked = 0, errors = 0;
  for (int i = 0; i < o->conns; i++) {
    pthread_join(th[2 * i], NULL);
    pthread_join(th[2 * i + 1], NULL);
    acked += c[i].acked;
    errors += c[i].errors;
    close(c[i].fd);
  }
  double secs = (double)(pb_now_ns() - t0) / 1e9;
  pb_report(o, acked, errors, secs, pb_lat, pb_lat ? n : 0);
  return acked == n && errors == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  pb_opts_t o = {.host = "127.0.0.1", .conns = 1, .count = 100000, .size = 100};
  int too_many = 0; /* --set given more than 16 times */
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (!strcmp(k, "--mode"))
      o.mode = v;
    else if (!strcmp(k, "--bootstrap"))
      o.bootstrap = v;
    else if (!strcmp(k, "--topic"))
      o.topic = v;
    else if (!strcmp(k, "--port"))
      o.port = atoi(v);
    else if (!strcmp(k, "--connections"))
      o.conns = atoi(v);
    else if (!strcmp(k, "--count"))
      o.count = atol(v);
    else if (!strcmp(k, "--size"))
      o.size = atol(v);
    else if (!strcmp(k, "--rate"))
      o.rate = atof(v);
    else if (!strcmp(k, "--seconds"))
      o.seconds = atof(v);
    else if (!strcmp(k, "--dump"))
      o.dump = v;
    else if (!strcmp(k, "--payload"))
      o.avro = !strcmp(v, "avro") ? 1 : !strcmp(v, "json") ? 0 : -1;
    else if (!strcmp(k, "--set") && o.nset < 16)
      o.set[o.nset++] = v;
    else if (!strcmp(k, "--set"))
      too_many = 1; /* refused below rather than dropped */
  }
  if (too_many || o.avro < 0 || !o.mode || !o.topic || o.size < 1 ||
      o.size > 60000 || (strcmp(o.mode, "direct") && strcmp(o.mode, "ws"))) {
    fprintf(stderr, "usage: produce_bench --mode direct|ws --topic T "
                    "[--bootstrap B | --port P] [--connections C] "
                    "[--count N] [--size S] [--rate R --seconds D [--dump F]] "
                    "[--payload json|avro (ws)] [--set key=value (direct)]\n");
    return 2;
  }
  return !strcmp(o.mode, "direct") ? pb_direct(&o) : pb_ws(&o);
}
