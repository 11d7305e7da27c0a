/*
 * The dialects: the WebSocket protocols the proxy speaks, each a set of
 * endpoints (core/endpoint/endpoint.h) over the shared produce and consume
 * paths. Today: kafka-websocket-proxy's (/socket/in, /socket/out, in
 * wsproxy_in.c and wsproxy_out.c) and the diagnostic /echo (echo.c). A new
 * dialect is a file here plus one line in registry.c.
 */
#ifndef KWP_DIALECT_H
#define KWP_DIALECT_H

#include "core/endpoint/endpoint.h"

#include <stddef.h>

extern const kwp_endpoint_t kwp_dialect_echo;
extern const kwp_endpoint_t kwp_dialect_wsproxy_in;
extern const kwp_endpoint_t kwp_dialect_wsproxy_out;

/**
 * The endpoint serving the @p len bytes of @p path, when @p cfg enables it.
 * @locality any thread  @returns the endpoint, or NULL.
 */
const kwp_endpoint_t *kwp_dialect_find(const char *path, size_t len,
                                       const kwp_config_t *cfg);

#endif
