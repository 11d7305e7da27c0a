/*
 * Admission: the upgrade pipeline's last check before a socket opens, asking
 * whoever keeps the cluster-wide session state (session/ implements it)
 * whether one more socket may join a consumer group's or a producer's
 * session. core/ knows only this interface; main() plugs the session handler
 * in, so core/ never includes session/.
 */
#ifndef KWP_ADMISSION_H
#define KWP_ADMISSION_H

#include <stddef.h>
#include <stdint.h>

struct kwp_worker;
/* A socket's place in its session, owned by the socket once admitted. */
typedef struct kwp_claim_handle kwp_claim_handle_t;

enum kwp_admit_kind { KWP_ADMIT_CONSUMER, KWP_ADMIT_PRODUCER };

/**
 * The verdict, on the asking worker's thread: @p err 0 (admitted: keep
 * @p claim and release it when the socket ends) or a KWP_E* with the HTTP
 * message (no claim).
 */
typedef void (*kwp_admit_cb)(void *arg, int err, const char *message,
                             kwp_claim_handle_t *claim);

typedef struct kwp_admission {
  void *impl;
  /**
   * Ask to admit @p instance into @p session (of @p kind) with at most
   * @p limit sockets (0 = unlimited); @p cb runs exactly once, on @p wk's
   * thread, in bounded time. @locality the thread of @p wk
   * @returns 0, or a KWP_E* (then @p cb is not called; refusal() words it).
   */
  int (*admit)(void *impl, struct kwp_worker *wk, int kind, const char *session,
               const char *instance, int64_t limit, kwp_admit_cb cb, void *arg);
  /** The message of an admit() failure into @p msg. @locality any thread */
  void (*refusal)(void *impl, int err, char *msg, size_t len);
  /** The socket of an admitted claim ended (NULL is fine). @locality any */
  void (*release)(void *impl, kwp_claim_handle_t *claim);
  /** 1 when admissions can be decided now (for /ready). @locality any */
  int (*ready)(void *impl);
  /** Why not ready (static text), or "ready". @locality any thread */
  const char *(*status)(void *impl);
  /** Sessions known now (for /ready). @locality any thread */
  size_t (*sessions)(void *impl);
} kwp_admission_t;

static inline void kwp_admission_release(const kwp_admission_t *a,
                                         kwp_claim_handle_t *claim) {
  if (claim)
    a->release(a->impl, claim);
}

#endif
