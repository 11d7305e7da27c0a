/* The schema registry client (core/registry) against a tiny HTTP server on a
 * thread of the test: answers from a route table, counts requests, records
 * the last request's Authorization header and body. */
#include "core/base/error.h"
#include "core/registry/registry.h"
#include "test/unit/unit.h"

#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

typedef struct route {
  const char *target; /* method and path: "GET /schemas/ids/7" */
  int status;
  const char *body;
  int delay_ms;
} route_t;

typedef struct srv {
  int fd, port;
  pthread_t thread;
  volatile int stop;
  const route_t *routes;
  pthread_mutex_t lock;
  int hits;
  char auth[256], body[1024];
} srv_t;

static int read_request(int fd, char *buf, size_t cap) {
  size_t n = 0;
  char *end = NULL;
  while (n + 1 < cap) {
    ssize_t r = read(fd, buf + n, cap - 1 - n);
    if (r <= 0)
      return -1;
    buf[n += (size_t)r] = '\0';
    if ((end = strstr(buf, "\r\n\r\n"))) {
      char *cl = strcasestr(buf, "Content-Length:");
      size_t want =
          (size_t)(end + 4 - buf) + (cl ? strtoul(cl + 15, 0, 10) : 0);
      if (n >= want || want >= cap)
        return 0;
    }
  }
  return -1;
}

static void serve_one(srv_t *s, int fd) {
  char req[4096];
  if (read_request(fd, req, sizeof(req)) != 0)
    return;
  const route_t *rt = s->routes;
  while (rt->target && strncmp(req, rt->target, strlen(rt->target)) != 0)
    rt++;
  pthread_mutex_lock(&s->lock);
  s->hits++;
  char *a = strcasestr(req, "\r\nAuthorization: ");
  s->auth[0] = '\0';
  if (a)
    sscanf(a + 17, "%255[^\r]", s->auth);
  snprintf(s->body, sizeof(s->body), "%s", strstr(req, "\r\n\r\n") + 4);
  pthread_mutex_unlock(&s->lock);
  for (int t = 0; rt->target && t < rt->delay_ms && !s->stop; t += 10)
    usleep(10000);
  const char *body = rt->target ? rt->body : "{\"error_code\":404}";
  char out[4096];
  int n = snprintf(out, sizeof(out),
                   "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                   rt->target ? rt->status : 404, strlen(body), body);
  if (write(fd, out, (size_t)n) < 0)
    return;
}

static void *srv_main(void *arg) {
  srv_t *s = arg;
  while (!s->stop) {
    struct pollfd p = {s->fd, POLLIN, 0};
    if (poll(&p, 1, 20) <= 0)
      continue;
    int c = accept(s->fd, NULL, NULL);
    if (c < 0)
      continue;
    serve_one(s, c);
    close(c);
  }
  return NULL;
}

static int listen_any(int *port, int do_listen) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(sa);
  ASSERT(fd >= 0);
  ASSERT(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
  ASSERT(getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
  *port = ntohs(sa.sin_port);
  if (do_listen)
    ASSERT(listen(fd, 16) == 0);
  return fd;
}

static void srv_start(srv_t *s, const route_t *routes) {
  memset(s, 0, sizeof(*s));
  s->routes = routes;
  s->fd = listen_any(&s->port, 1);
  pthread_mutex_init(&s->lock, NULL);
  ASSERT(pthread_create(&s->thread, NULL, srv_main, s) == 0);
}

static void srv_stop(srv_t *s) {
  s->stop = 1;
  pthread_join(s->thread, NULL);
  close(s->fd);
  pthread_mutex_destroy(&s->lock);
}

static kwp_registry_t *reg_new(int port, const char *userinfo,
                               const char *timeout_ms) {
  kwp_kv_t kv[3];
  kwp_props_t props = {kv, 0};
  if (userinfo) {
    kv[props.count++] =
        (kwp_kv_t){"basic.auth.credentials.source", "USER_INFO"};
    kv[props.count++] =
        (kwp_kv_t){"schema.registry.basic.auth.user.info", (char *)userinfo};
  }
  if (timeout_ms)
    kv[props.count++] = (kwp_kv_t){"request.timeout.ms", (char *)timeout_ms};
  char url[128], err[256] = "";
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/apis/ccompat/v7/", port);
  kwp_registry_t *reg = kwp_registry_new(url, &props, err, sizeof(err));
  if (!reg)
    fprintf(stderr, "  kwp_registry_new: %s\n", err);
  ASSERT(reg != NULL);
  return reg;
}

typedef struct res {
  int called, err;
  const kwp_schema_t *schema;
  char msg[256];
} res_t;

static void on_res(void *arg, int err, const kwp_schema_t *schema,
                   const char *message) {
  res_t *r = arg;
  r->called++;
  r->err = err;
  r->schema = schema;
  snprintf(r->msg, sizeof(r->msg), "%s", message ? message : "");
}

static void run_and_close(uv_loop_t *loop) {
  uv_run(loop, UV_RUN_DEFAULT);
  ASSERT_EQ(uv_loop_close(loop), 0);
}

static const route_t routes[] = {
    {"GET /apis/ccompat/v7/schemas/ids/7 ", 200,
     "{\"schema\":\"{\\\"type\\\":\\\"string\\\"}\"}", 0},
    {"GET /apis/ccompat/v7/schemas/ids/5 ", 200,
     "{\"schema\":\"\\\"long\\\"\",\"schemaType\":\"AVRO\"}", 150},
    {"GET /apis/ccompat/v7/schemas/ids/3 ", 200,
     "{\"schema\":\"syntax = \\\"proto3\\\";\",\"schemaType\":\"PROTOBUF\"}",
     0},
    {"GET /apis/ccompat/v7/schemas/ids/8 ", 200, "{\"schema\":\"{nope\"}", 0},
    {"GET /apis/ccompat/v7/schemas/ids/9 ", 503, "{\"message\":\"down\"}", 0},
    {"GET /apis/ccompat/v7/schemas/ids/66 ", 200, "{}", 3000},
    {"GET /apis/ccompat/v7/subjects/my%20topic-value/versions/latest ", 200,
     "{\"subject\":\"my topic-value\",\"version\":2,\"id\":11,"
     "\"schema\":\"\\\"int\\\"\"}",
     0},
    {"GET /apis/ccompat/v7/subjects/t-value/versions/4 ", 404,
     "{\"error_code\":40402,\"message\":\"Version 4 not found.\"}", 0},
    {"POST /apis/ccompat/v7/subjects/t-value/versions ", 200, "{\"id\":12}", 0},
    {NULL, 0, NULL, 0}};

KWP_TEST(registry_fetches_by_id_once_then_serves_the_cache) {
  srv_t s;
  srv_start(&s, routes);
  kwp_registry_t *reg = reg_new(s.port, NULL, NULL);
  uv_loop_t loop;
  uv_loop_init(&loop);
  res_t r = {0}, r2 = {0};
  ASSERT(kwp_registry_cached_id(reg, 7) == NULL);
  ASSERT_EQ(kwp_registry_by_id(reg, &loop, 7, on_res, &r), 0);
  ASSERT_EQ(r.called, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  ASSERT_EQ(r.called, 1);
  ASSERT_EQ(r.err, 0);
  ASSERT_EQ(r.schema->id, 7);
  ASSERT(r.schema->subject == NULL && r.schema->avro != NULL);
  ASSERT_STREQ(r.schema->text, "{\"type\":\"string\"}");
  ASSERT(kwp_registry_cached_id(reg, 7) == r.schema);
  /* A hit answers on the loop too, never inside the call; no request. */
  ASSERT_EQ(kwp_registry_by_id(reg, &loop, 7, on_res, &r2), 0);
  ASSERT_EQ(r2.called, 0);
  run_and_close(&loop);
  ASSERT_EQ(r2.called, 1);
  ASSERT(r2.schema == r.schema);
  ASSERT_EQ(kwp_registry_requests(reg), 1);
  ASSERT_EQ(s.hits, 1);
  kwp_registry_free(reg);
  srv_stop(&s);
}

KWP_TEST(registry_subject_latest_and_versions) {
  srv_t s;
  srv_start(&s, routes);
  kwp_registry_t *reg = reg_new(s.port, NULL, NULL);
  uv_loop_t loop;
  uv_loop_init(&loop);
  res_t r = {0}, nf = {0};
  ASSERT_EQ(
      kwp_registry_by_subject(reg, &loop, "my topic-value", -1, on_res, &r), 0);
  ASSERT_EQ(kwp_registry_by_subject(reg, &loop, "t-value", 4, on_res, &nf), 0);
  ASSERT_EQ(kwp_registry_by_subject(reg, &loop, "t-value", 0, on_res, &nf),
            KWP_EBADREQ);
  run_and_close(&loop);
  ASSERT_EQ(r.err, 0);
  ASSERT_EQ(r.schema->id, 11);
  ASSERT_EQ(r.schema->version, 2);
  ASSERT_STREQ(r.schema->subject, "my topic-value");
  ASSERT(kwp_registry_cached_subject(reg, "my topic-value", -1) == r.schema);
  ASSERT(kwp_registry_cached_subject(reg, "my topic-value", 2) == r.schema);
  ASSERT(kwp_registry_cached_id(reg, 11) != NULL);
  ASSERT(kwp_registry_cached_id(reg, 11)->avro == r.schema->avro);
  ASSERT_EQ(nf.err, KWP_ENOTFOUND);
  ASSERT(nf.schema == NULL);
  ASSERT(strstr(nf.msg, "40402") && strstr(nf.msg, "Version 4 not found"));
  kwp_registry_free(reg);
  srv_stop(&s);
}

KWP_TEST(registry_errors_map_to_codes) {
  srv_t s;
  srv_start(&s, routes);
  kwp_registry_t *reg = reg_new(s.port, NULL, NULL);
  uv_loop_t loop;
  uv_loop_init(&loop);
  res_t missing = {0}, proto = {0}, bad = {0}, down = {0};
  kwp_registry_by_id(reg, &loop, 404, on_res, &missing);
  kwp_registry_by_id(reg, &loop, 3, on_res, &proto);
  kwp_registry_by_id(reg, &loop, 8, on_res, &bad);
  kwp_registry_by_id(reg, &loop, 9, on_res, &down);
  run_and_close(&loop);
  ASSERT_EQ(missing.err, KWP_ENOTFOUND);
  ASSERT_EQ(proto.err, KWP_EBADVALUE);
  ASSERT_STREQ(proto.msg, "schema 3 is PROTOBUF, not AVRO");
  ASSERT_EQ(bad.err, KWP_EBADVALUE);
  ASSERT(strstr(bad.msg, "not a valid Avro schema"));
  ASSERT_EQ(down.err, KWP_EUNAVAILABLE);
  ASSERT(kwp_registry_cached_id(reg, 3) == NULL);
  kwp_registry_free(reg);
  srv_stop(&s);
}

KWP_TEST(registry_connection_refused_is_unavailable_at_once) {
  int port, fd = listen_any(&port, 0); /* bound, not listening: refused */
  kwp_registry_t *reg = reg_new(port, "alice:s3cret", NULL);
  uv_loop_t loop;
  uv_loop_init(&loop);
  res_t r = {0};
  uint64_t t0 = uv_hrtime();
  ASSERT_EQ(kwp_registry_by_id(reg, &loop, 1, on_res, &r), 0);
  run_and_close(&loop);
  ASSERT_EQ(r.err, KWP_EUNAVAILABLE);
  ASSERT((uv_hrtime() - t0) / 1000000 < 1000);
  ASSERT(strstr(r.msg, "unavailable") && !strstr(r.msg, "s3cret"));
  kwp_registry_free(reg);
  close(fd);
}

KWP_TEST(registry_timeout_is_unavailable) {
  srv_t s;
  srv_start(&s, routes);
  kwp_registry_t *reg = reg_new(s.port, NULL, "300");
  uv_loop_t loop;
  uv_loop_init(&loop);
  res_t r = {0};
  uint64_t t0 = uv_hrtime();
  kwp_registry_by_id(reg, &loop, 66, on_res, &r); /* answers after 3 s */
  run_and_close(&loop);
  uint64_t ms = (uv_hrtime() - t0) / 1000000;
  ASSERT_EQ(r.err, KWP_EUNAVAILABLE);
  ASSERT(ms >= 250 && ms < 1500);
  kwp_registry_free(reg);
  srv_stop(&s);
}

typedef struct other {
  kwp_registry_t *reg;
  res_t r;
} other_t;

static void other_loop(void *arg) {
  other_t *o = arg;
  uv_loop_t loop;
  uv_loop_init(&loop);
  usleep(30000); /* while the first loop's request is in flight */
  ASSERT_EQ(kwp_registry_by_id(o->reg, &loop, 5, on_res, &o->r), 0);
  run_and_close(&loop);
}

KWP_TEST(registry_coalesces_lookups_of_one_id_across_loops) {
  srv_t s;
  srv_start(&s, routes);
  kwp_registry_t *reg = reg_new(s.port, NULL, NULL);
  uv_loop_t loop;
  uv_loop_init(&loop);
  res_t r[3] = {{0}};
  other_t o = {reg, {0}};
  uv_thread_t th;
  for (int i = 0; i < 3; i++) /* id 5 answers after 150 ms */
    ASSERT_EQ(kwp_registry_by_id(reg, &loop, 5, on_res, &r[i]), 0);
  ASSERT_EQ(uv_thread_create(&th, other_loop, &o), 0);
  run_and_close(&loop);
  uv_thread_join(&th);
  for (int i = 0; i < 3; i++) {
    ASSERT_EQ(r[i].called, 1);
    ASSERT_EQ(r[i].err, 0);
    ASSERT(r[i].schema == r[0].schema);
  }
  ASSERT_EQ(o.r.called, 1);
  ASSERT(o.r.schema == r[0].schema);
  ASSERT_EQ(kwp_registry_requests(reg), 1);
  ASSERT_EQ(s.hits, 1);
  kwp_registry_free(reg);
  srv_stop(&s);
}

KWP_TEST(registry_sends_basic_auth_and_never_shows_it) {
  srv_t s;
  srv_start(&s, routes);
  kwp_registry_t *reg = reg_new(s.port, "alice:s3cret", NULL);
  uv_loop_t loop;
  uv_loop_init(&loop);
  res_t r = {0};
  kwp_registry_by_id(reg, &loop, 7, on_res, &r);
  run_and_close(&loop);
  ASSERT_EQ(r.err, 0);
  ASSERT_STREQ(s.auth, "Basic YWxpY2U6czNjcmV0"); /* alice:s3cret */
  kwp_registry_free(reg);

  /* From the URL (the default source): taken out of it. */
  char url[128], err[256];
  snprintf(url, sizeof(url), "http://bob:pa%%40ss@127.0.0.1:%d/", s.port);
  reg = kwp_registry_new(url, NULL, err, sizeof(err));
  ASSERT(reg != NULL);
  ASSERT(!strstr(kwp_registry_url(reg), "bob") &&
         !strstr(kwp_registry_url(reg), "pa"));
  uv_loop_init(&loop);
  kwp_registry_by_id(reg, &loop, 1, on_res, &r);
  run_and_close(&loop);
  ASSERT_STREQ(s.auth, "Basic Ym9iOnBhQHNz"); /* bob:pa@ss */
  ASSERT(!strstr(r.msg, "pa@ss") && !strstr(r.msg, "bob"));
  kwp_registry_free(reg);

  kwp_kv_t kv = {"basic.auth.credentials.source", "SASL_INHERIT"};
  kwp_props_t props = {&kv, 1};
  ASSERT(kwp_registry_new(url, &props, err, sizeof(err)) == NULL);
  ASSERT(strstr(err, "SASL_INHERIT") && !strstr(err, "pa@ss"));
  srv_stop(&s);
}

KWP_TEST(registry_registers_a_schema) {
  srv_t s;
  srv_start(&s, routes);
  kwp_registry_t *reg = reg_new(s.port, NULL, NULL);
  uv_loop_t loop;
  uv_loop_init(&loop);
  res_t r = {0}, bad = {0};
  const char *schema = "{\"type\":\"record\",\"name\":\"R\",\"fields\":"
                       "[{\"name\":\"a\",\"type\":\"int\"}]}";
  ASSERT_EQ(kwp_registry_register(reg, &loop, "t-value", schema, on_res, &r),
            0);
  ASSERT_EQ(kwp_registry_register(reg, &loop, "t-value", "{nope", on_res, &bad),
            0);
  run_and_close(&loop);
  ASSERT_EQ(r.err, 0);
  ASSERT_EQ(r.schema->id, 12);
  ASSERT_STREQ(r.schema->text, schema);
  ASSERT(kwp_registry_cached_id(reg, 12) == r.schema);
  ASSERT(strstr(s.body, "\"schema\":") && strstr(s.body, "\\\"record\\\""));
  ASSERT_EQ(bad.err, KWP_EBADVALUE);
  ASSERT_EQ(kwp_registry_requests(reg), 1); /* the bad one asked nothing */
  kwp_registry_free(reg);
  srv_stop(&s);
}
