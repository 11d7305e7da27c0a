/* The session state machine: verdicts from the log alone, liveness by log
 * time, cleanup of stale claims; and the limits taken from the config. */
#include "core/base/error.h"
#include "core/config/config.h"
#include "core/config/limits.h"
#include "session/session.h"
#include "session/state.h"
#include "test/unit/unit.h"

#include <stdlib.h>

static int64_t now = 1000000;

static void hb(kwp_sstate_t *st, const char *server, const char *inc) {
  char key[256], val[256];
  kwp_sstate_result_t r;
  kwp_sstate_heartbeat_key(key, sizeof(key), server);
  kwp_sstate_heartbeat_value(val, sizeof(val), server, inc);
  ASSERT_EQ(kwp_sstate_apply(st, key, strlen(key), val, strlen(val), now, &r),
            0);
  ASSERT(r.heartbeat);
}

/* Apply a claim; returns the verdict. @p key receives the claim's key. */
static int claim(kwp_sstate_t *st, const char *nonce, int kind,
                 const char *session, const char *instance, const char *server,
                 const char *inc, int64_t limit, char *key, char *message) {
  kwp_claim_t c = {nonce, kind, session, instance, server, inc, limit};
  kwp_sstate_result_t r;
  char k[512];
  char *v = kwp_sstate_claim_value(&c);
  kwp_sstate_claim_key(key ? key : k, 512, &c);
  ASSERT_EQ(kwp_sstate_apply(st, key ? key : k, strlen(key ? key : k), v,
                             strlen(v), now, &r),
            0);
  free(v);
  ASSERT(r.decided);
  ASSERT_STREQ(r.nonce, nonce);
  ASSERT_STREQ(r.incarnation, inc);
  if (message)
    strcpy(message, r.message);
  return r.verdict;
}

static void tombstone(kwp_sstate_t *st, const char *key) {
  kwp_sstate_result_t r;
  ASSERT_EQ(kwp_sstate_apply(st, key, strlen(key), NULL, 0, now, &r), 0);
}

KWP_TEST(sstate_limit_and_duplicates) {
  kwp_sstate_t *st = kwp_sstate_new(10000);
  char msg[640];
  hb(st, "n1", "a");
  hb(st, "n2", "b");
  ASSERT_EQ(claim(st, "a-1", KWP_SESSION_CONSUMER, "g", "c1", "n1", "a", 2,
                  NULL, NULL),
            0);
  ASSERT_EQ(claim(st, "b-1", KWP_SESSION_CONSUMER, "g", "c1", "n2", "b", 2,
                  NULL, msg),
            KWP_EBADREQ);
  ASSERT_STREQ(msg, "WebSocket for consumer c1 in session g not established "
                    "because a consumer with the same ID is already "
                    "registered.");
  ASSERT_EQ(claim(st, "b-2", KWP_SESSION_CONSUMER, "g", "c2", "n2", "b", 2,
                  NULL, NULL),
            0);
  ASSERT_EQ(claim(st, "a-2", KWP_SESSION_CONSUMER, "g", "c3", "n1", "a", 2,
                  NULL, msg),
            KWP_EBADREQ);
  ASSERT_STREQ(msg, "The max number of WebSockets for session g has been "
                    "reached. Limit is 2");
  ASSERT_EQ(kwp_sstate_count(st, KWP_SESSION_CONSUMER, "g"), 2);
  /* Producers: the same instanceId again counts once; kinds do not mix. */
  ASSERT_EQ(claim(st, "a-3", KWP_SESSION_PRODUCER, "g", "i1", "n1", "a", 1,
                  NULL, NULL),
            0);
  ASSERT_EQ(claim(st, "b-3", KWP_SESSION_PRODUCER, "g", "i1", "n2", "b", 1,
                  NULL, NULL),
            0);
  ASSERT_EQ(claim(st, "b-4", KWP_SESSION_PRODUCER, "g", "i2", "n2", "b", 1,
                  NULL, NULL),
            KWP_EBADREQ);
  /* 0 = unlimited. */
  for (int i = 0; i < 50; i++) {
    char nonce[32], inst[32];
    snprintf(nonce, sizeof(nonce), "a-x%d", i);
    snprintf(inst, sizeof(inst), "p%d", i);
    ASSERT_EQ(claim(st, nonce, KWP_SESSION_PRODUCER, "free", inst, "n1", "a", 0,
                    NULL, NULL),
              0);
  }
  ASSERT_EQ(kwp_sstate_count(st, KWP_SESSION_PRODUCER, "free"), 50);
  kwp_sstate_free(st);
}

KWP_TEST(sstate_release_frees_a_slot) {
  kwp_sstate_t *st = kwp_sstate_new(10000);
  char k1[512], k2[512];
  hb(st, "n1", "a");
  ASSERT_EQ(claim(st, "a-1", KWP_SESSION_CONSUMER, "g/with/slashes", "c1", "n1",
                  "a", 1, k1, NULL),
            0);
  ASSERT_STREQ(k1, "c/a-1/c/g/with/slashes");
  ASSERT_EQ(claim(st, "a-2", KWP_SESSION_CONSUMER, "g/with/slashes", "c2", "n1",
                  "a", 1, k2, NULL),
            KWP_EBADREQ);
  tombstone(st, k2); /* a rejected claim's removal changes nothing */
  ASSERT_EQ(kwp_sstate_count(st, KWP_SESSION_CONSUMER, "g/with/slashes"), 1);
  tombstone(st, k1);
  ASSERT_EQ(kwp_sstate_count(st, KWP_SESSION_CONSUMER, "g/with/slashes"), 0);
  ASSERT_EQ(kwp_sstate_sessions(st), 0);
  ASSERT_EQ(claim(st, "a-3", KWP_SESSION_CONSUMER, "g/with/slashes", "c2", "n1",
                  "a", 1, NULL, NULL),
            0);
  kwp_sstate_free(st);
}

KWP_TEST(sstate_dead_nodes_stop_counting) {
  kwp_sstate_t *st = kwp_sstate_new(3000);
  kwp_sstate_result_t r;
  hb(st, "n1", "a");
  hb(st, "n2", "b");
  ASSERT_EQ(claim(st, "a-1", KWP_SESSION_CONSUMER, "g", "c1", "n1", "a", 1,
                  NULL, NULL),
            0);
  now += 2000;
  hb(st, "n2", "b");
  ASSERT_EQ(claim(st, "b-1", KWP_SESSION_CONSUMER, "g", "c2", "n2", "b", 1,
                  NULL, NULL),
            KWP_EBADREQ); /* n1 is still alive by log time */
  now += 1500;            /* n1 silent for 3.5 s of log time: dead */
  hb(st, "n2", "b");
  ASSERT_EQ(kwp_sstate_count(st, KWP_SESSION_CONSUMER, "g"), 0);
  ASSERT_EQ(claim(st, "b-2", KWP_SESSION_CONSUMER, "g", "c1", "n2", "b", 1,
                  NULL, NULL),
            0); /* even its clientId is free again */
  /* A graceful stop (heartbeat tombstone) frees at once. */
  ASSERT_EQ(kwp_sstate_apply(st, "hb/n2", 5, NULL, 0, now, &r), 0);
  ASSERT_EQ(kwp_sstate_count(st, KWP_SESSION_CONSUMER, "g"), 0);
  /* A node that comes back counts again. */
  hb(st, "n2", "b");
  ASSERT_EQ(kwp_sstate_count(st, KWP_SESSION_CONSUMER, "g"), 1);
  kwp_sstate_free(st);
}

static int nstale;
static char stale[8][512];

static void collect(void *arg, const char *key) {
  (void)arg;
  snprintf(stale[nstale++ % 8], 512, "%s", key);
}

KWP_TEST(sstate_restart_and_stale_claims) {
  kwp_sstate_t *st = kwp_sstate_new(60000);
  hb(st, "n1", "old");
  hb(st, "n2", "b");
  ASSERT_EQ(claim(st, "old-1", KWP_SESSION_CONSUMER, "g", "c1", "n1", "old", 1,
                  NULL, NULL),
            0);
  /* n1 restarts (new incarnation) long before the TTL: its old claims no
   * longer count as soon as the new heartbeat is applied... */
  ASSERT(!kwp_sstate_server_taken(st, "n1", "new", now + 1));
  ASSERT(kwp_sstate_server_taken(st, "n1", "new", now));
  hb(st, "n1", "new");
  ASSERT_EQ(kwp_sstate_count(st, KWP_SESSION_CONSUMER, "g"), 0);
  /* ...and the new incarnation removes them from the topic, once. */
  nstale = 0;
  kwp_sstate_stale_claims(st, "n1", "new", collect, NULL);
  ASSERT_EQ(nstale, 1);
  ASSERT_STREQ(stale[0], "c/old-1/c/g");
  kwp_sstate_stale_claims(st, "n1", "new", collect, NULL);
  ASSERT_EQ(nstale, 1);
  kwp_sstate_free(st);
}

/* Two nodes applying the same records reach the same verdicts, whatever
 * their own identity: the decision is a function of the log. */
KWP_TEST(sstate_same_order_same_verdicts) {
  kwp_sstate_t *a = kwp_sstate_new(10000), *b = kwp_sstate_new(10000);
  hb(a, "n1", "x");
  hb(b, "n1", "x");
  hb(a, "n2", "y");
  hb(b, "n2", "y");
  for (int i = 0; i < 20; i++) {
    char nonce[32], inst[32];
    snprintf(nonce, sizeof(nonce), "%c-%d", i % 2 ? 'x' : 'y', i);
    snprintf(inst, sizeof(inst), "c%d", i % 7);
    const char *srv = i % 2 ? "n1" : "n2", *inc = i % 2 ? "x" : "y";
    int va = claim(a, nonce, KWP_SESSION_CONSUMER, "g", inst, srv, inc, 3, NULL,
                   NULL);
    int vb = claim(b, nonce, KWP_SESSION_CONSUMER, "g", inst, srv, inc, 3, NULL,
                   NULL);
    ASSERT_EQ(va, vb);
  }
  ASSERT_EQ(kwp_sstate_count(a, KWP_SESSION_CONSUMER, "g"), 3);
  ASSERT_EQ(kwp_sstate_count(b, KWP_SESSION_CONSUMER, "g"), 3);
  kwp_sstate_free(a);
  kwp_sstate_free(b);
}

KWP_TEST(sstate_ignores_foreign_records) {
  kwp_sstate_t *st = kwp_sstate_new(10000);
  kwp_sstate_result_t r;
  static const char ref[] =
      "{\"sessionId\":\"grp\",\"groupId\":\"grp\",\"maxConnections\":2,"
      "\"instances\":[],\"session_type\":\"ConsumerSession\"}";
  ASSERT_EQ(kwp_sstate_apply(st, "grp", 3, ref, sizeof(ref) - 1, now, &r), 1);
  ASSERT_EQ(kwp_sstate_apply(st, NULL, 0, ref, sizeof(ref) - 1, now, &r), 1);
  ASSERT_EQ(kwp_sstate_apply(st, "c/x", 3, "{}", 2, now, &r), KWP_EBADREQ);
  ASSERT_EQ(kwp_sstate_apply(st, "c/n-1/c/g", 9, "nope", 4, now, &r),
            KWP_EBADREQ);
  ASSERT_EQ(kwp_sstate_apply(st, "hb/x", 4, "{}", 2, now, &r), KWP_EBADREQ);
  ASSERT(!r.decided);
  ASSERT_EQ(kwp_sstate_sessions(st), 0);
  kwp_sstate_free(st);
}

KWP_TEST(session_limits_from_config) {
  char err[512];
  kwp_config_t *cfg = kwp_config_load_string(
      "kafka.ws.proxy {\n"
      "  kafka-client.bootstrap-hosts = \"localhost:9092\"\n"
      "  consumer.limits {\n"
      "    default-max-connections-per-client = 2\n"
      "    client-specific-limits = [{group-id = \"big\", max-connections = "
      "10}, {group-id = \"zero\", max-connections = 0}]\n"
      "  }\n"
      "  producer.limits.client-specific-limits = [{producer-id = \"p\", "
      "max-connections = 3}]\n"
      "}\n",
      "t.conf", 0, err, sizeof(err));
  ASSERT(cfg != NULL);
  ASSERT_EQ(kwp_limits_consumer_sockets(cfg, "other", 4), 2);
  ASSERT_EQ(kwp_limits_consumer_sockets(cfg, "other", 1), 1);
  ASSERT_EQ(kwp_limits_consumer_sockets(cfg, "big", 4), 4);
  ASSERT_EQ(kwp_limits_consumer_sockets(cfg, "big", 12), 10);
  ASSERT_EQ(kwp_limits_consumer_sockets(cfg, "zero", 6), 6);
  ASSERT_EQ(kwp_limits_producer_sockets(cfg, "p"), 3);
  ASSERT_EQ(kwp_limits_producer_sockets(cfg, "q"), 0);
  kwp_config_free(cfg);
}
