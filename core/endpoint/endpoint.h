/*
 * What a WebSocket endpoint gives the router: a function that validates the
 * upgrade request (possibly asynchronously, e.g. a topic lookup) and then
 * calls @p done exactly once, on the worker thread, with either a handler
 * and its state or an error (a KWP_E* mapped to the HTTP status, and the
 * message of the JSON body).
 */
#ifndef KWP_ENDPOINT_H
#define KWP_ENDPOINT_H

#include "core/net/conn.h"

typedef void (*kwp_upgrade_cb)(kwp_conn_t *conn, const kwp_ws_handler_t *h,
                               void *state, int err, const char *message);

typedef void (*kwp_endpoint_fn)(kwp_conn_t *conn, const char *url,
                                kwp_upgrade_cb done);

/** GET /socket/in: the JSON producer (core/produce/produce.c). */
void kwp_produce_upgrade(kwp_conn_t *conn, const char *url,
                         kwp_upgrade_cb done);

/** GET /socket/out: the JSON consumer (core/consume/consume.c). */
void kwp_consume_upgrade(kwp_conn_t *conn, const char *url,
                         kwp_upgrade_cb done);

/** The worker a connection belongs to (for endpoint services). */
struct kwp_worker *kwp_conn_worker(kwp_conn_t *conn);

#endif
