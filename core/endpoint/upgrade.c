/* The upgrade pipeline every WebSocket endpoint goes through (see
 * endpoint.h): identity, parameters, topic lookup, admission, open. Each
 * step may finish later (a thread-pool lookup, the session handler's
 * verdict); the upgrade holds a reference on its connection until it
 * answers. Worker thread only. */
#include "core/endpoint/endpoint.h"

#include "core/base/error.h"
#include "core/kafka/kafka.h"
#include "core/net/worker.h"

#include <stdio.h>
#include <stdlib.h>

#define MSG_MAX 1024

struct kwp_upgrade {
  kwp_conn_t *conn;
  const kwp_endpoint_t *ep;
  kwp_worker_t *wk;
  const char *url;     /* the request's, kept while reading is paused */
  void *state;         /* the endpoint's, until open() takes it */
  char principal[128]; /* "" when no authentication is configured */
};

kwp_conn_t *kwp_upgrade_conn(const kwp_upgrade_t *up) {
  return up->conn;
}

struct kwp_worker *kwp_upgrade_worker(const kwp_upgrade_t *up) {
  return up->wk;
}

const char *kwp_upgrade_principal(const kwp_upgrade_t *up) {
  return *up->principal ? up->principal : NULL;
}

void kwp_upgrade_accept(kwp_upgrade_t *up, const kwp_ws_handler_t *h,
                        void *state) {
  kwp_conn_upgrade_answer(up->conn, h, state, 0, NULL);
  free(up);
}

void kwp_upgrade_refuse(kwp_upgrade_t *up, int err, const char *message) {
  kwp_conn_upgrade_answer(up->conn, NULL, NULL, err, message);
  free(up);
}

/* A step failed before open(): the state is the pipeline's to free. */
static void refuse_early(kwp_upgrade_t *up, int err, const char *message) {
  if (up->state && up->ep->discard)
    up->ep->discard(up->state);
  up->state = NULL;
  kwp_upgrade_refuse(up, err, message);
}

static void step_open(kwp_upgrade_t *up, kwp_claim_handle_t *claim) {
  void *state = up->state;
  up->state = NULL;
  up->ep->open(up, state, claim);
}

/* --- admission --- */

static void admitted(void *arg, int err, const char *message,
                     kwp_claim_handle_t *claim) {
  kwp_upgrade_t *up = arg;
  if (err)
    refuse_early(up, err, message);
  else
    step_open(up, claim);
}

static void step_admission(kwp_upgrade_t *up, int partitions) {
  const kwp_admission_t *adm = kwp_worker_admission(up->wk);
  kwp_admit_req_t req;
  char msg[MSG_MAX];
  if (!up->ep->admission || !up->ep->admission(up->state, partitions, &req)) {
    step_open(up, NULL);
    return;
  }
  int err = adm->admit(adm->impl, up->wk, req.kind, req.session, req.instance,
                       req.limit, admitted, up);
  if (err) {
    adm->refusal(adm->impl, err, msg, sizeof(msg));
    refuse_early(up, err, msg);
  } /* else admitted() goes on */
}

/* --- topic --- */

static void topic_checked(void *arg, int partitions) {
  kwp_upgrade_t *up = arg;
  char msg[MSG_MAX];
  if (partitions == KWP_ENOTFOUND) {
    snprintf(msg, sizeof(msg), up->ep->topic_missing, up->ep->topic(up->state));
    refuse_early(up, KWP_EBADREQ, msg);
  } else if (partitions < 0) {
    refuse_early(up, KWP_EUNAVAILABLE, "Kafka cluster is unreachable");
  } else {
    step_admission(up, partitions);
  }
}

static void step_topic(kwp_upgrade_t *up) {
  const char *topic = up->ep->topic ? up->ep->topic(up->state) : NULL;
  if (!topic) {
    step_admission(up, 0);
    return;
  }
  if (kwp_kafka_topic_lookup(kwp_worker_kafka(up->wk), kwp_worker_loop(up->wk),
                             topic, topic_checked, up) != 0)
    refuse_early(up, KWP_EINTERNAL, "Internal server error");
}

/* --- parameters --- */

static void step_parse(kwp_upgrade_t *up) {
  char msg[MSG_MAX];
  int err = up->ep->parse(up, up->url, &up->state, msg, sizeof(msg));
  if (err) {
    up->state = NULL; /* parse() frees what it made when it fails */
    kwp_upgrade_refuse(up, err, msg);
    return;
  }
  step_topic(up);
}

/* --- identity --- */

/* Who the client is, by the process's authenticator (auth/auth.h; none
 * configured: anonymous). A 401 carries the authenticator's challenge
 * (kwp_http__error()). An authenticator that must ask a server (OpenID
 * Connect keys) would finish later, calling step_parse() or refusing. */
static void step_identity(kwp_upgrade_t *up) {
  const char *why;
  int repeated;
  const char *header = kwp_conn_authorization(up->conn, &repeated);
  int err = kwp_auth_check(kwp_worker_auth(up->wk), header, repeated,
                           up->principal, sizeof(up->principal), &why);
  if (err) {
    refuse_early(up, err, why);
    return;
  }
  step_parse(up);
}

void kwp_upgrade_start(kwp_conn_t *conn, const kwp_endpoint_t *ep,
                       const char *url) {
  kwp_upgrade_t *up = calloc(1, sizeof(*up));
  if (!up) {
    kwp_conn_upgrade_answer(conn, NULL, NULL, KWP_ENOMEM,
                            "Internal server error");
    return;
  }
  up->conn = conn;
  up->ep = ep;
  up->wk = kwp_conn_worker(conn);
  up->url = url;
  step_identity(up);
}
