/*
 * Who a request is from: the authenticator of every route that needs one
 * (server.basic-auth; OpenID Connect plugs in here too). One per process,
 * built from the configuration at startup, read-only afterwards: any
 * thread may check requests with it.
 */
#ifndef KWP_AUTH_H
#define KWP_AUTH_H

#include "core/config/config.h"

#include <stddef.h>

typedef struct kwp_auth kwp_auth_t;

/* The 401 messages (the reference system's words). */
#define KWP_AUTH_MISSING                                                       \
  "The resource requires authentication, which was not supplied with the "     \
  "request"
#define KWP_AUTH_INVALID "The supplied authentication is invalid"

/**
 * The authenticator @p cfg asks for (none when no method is enabled);
 * copies what it needs.
 * @locality main thread, before the workers start
 * @returns it, or NULL when out of memory.
 */
kwp_auth_t *kwp_auth_new(const kwp_config_t *cfg);

/** Free it, the stored password wiped. NULL is fine. */
void kwp_auth_free(kwp_auth_t *a);

/** 1 when requests must authenticate. @locality any thread */
int kwp_auth_enabled(const kwp_auth_t *a);

/**
 * Check a request's credentials: @p authorization is its Authorization
 * header (NULL when absent), @p repeated is set when it had several.
 * @locality any thread
 * @returns 0 with who it is in @p principal (the user name; "" when no
 * authentication is configured), or KWP_EUNAUTHORIZED with @p message
 * (KWP_AUTH_MISSING or KWP_AUTH_INVALID; never an echo of the
 * credentials).
 */
int kwp_auth_check(const kwp_auth_t *a, const char *authorization, int repeated,
                   char *principal, size_t principal_len, const char **message);

/**
 * The header lines a 401 carries (`WWW-Authenticate: Basic realm="..."`,
 * CRLF-terminated), or NULL when no authentication is configured.
 * @locality any thread
 */
const char *kwp_auth_challenge(const kwp_auth_t *a);

#endif
