/*
 * The server: binds the listener, runs the accept loop on the calling thread,
 * and hands accepted sockets to N worker loops. SIGTERM/SIGINT start a
 * graceful shutdown (stop accepting, close WebSockets with 1001, drain within
 * server.shutdown-grace-period).
 */
#ifndef KWP_SERVER_H
#define KWP_SERVER_H

#include "auth/auth.h"
#include "core/config/config.h"
#include "core/endpoint/admission.h"
#include "core/kafka/kafka.h"
#include "core/registry/registry.h"

/* What every thread shares, read-mostly: the configuration, the Kafka
 * context, the admission step and the connection counters. Outlives the
 * workers. */
typedef struct kwp_ctx kwp_ctx_t;

/**
 * A context for the server; the pointers are borrowed and must outlive it.
 * @locality main thread  @returns the context, or NULL when out of memory.
 */
kwp_ctx_t *kwp_ctx_new(const kwp_config_t *cfg, kwp_kafka_t *kafka,
                       const kwp_admission_t *admission);
/** Give the workers the schema registry client (NULL: none configured);
 * borrowed. @locality main thread, before kwp_server_new() */
void kwp_ctx_set_registry(kwp_ctx_t *ctx, kwp_registry_t *reg);
/** Give the workers the authenticator (auth/auth.h); borrowed.
 * @locality main thread, before kwp_server_new() */
void kwp_ctx_set_auth(kwp_ctx_t *ctx, const kwp_auth_t *auth);
/** Free a context once the server is gone. @locality main thread */
void kwp_ctx_free(kwp_ctx_t *ctx);

typedef struct kwp_server kwp_server_t;

/**
 * Bind the listener and start the worker threads.
 * @locality main thread
 * @returns the server, or NULL with @p errbuf filled (e.g. address in use).
 */
kwp_server_t *kwp_server_new(kwp_ctx_t *ctx, char *errbuf, size_t errlen);

/**
 * Accept until SIGTERM/SIGINT, then shut down gracefully and join the
 * workers. @locality main thread  @returns 0
 */
int kwp_server_run(kwp_server_t *srv);

/** Free a server after kwp_server_run() returned. */
void kwp_server_free(kwp_server_t *srv);

#endif
