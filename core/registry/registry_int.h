/* The registry client's HTTP side (registry_http.c), for registry.c: where
 * the registry is and with which credentials, and one blocking request,
 * which runs on a thread-pool thread only. */
#ifndef KWP_REGISTRY_INT_H
#define KWP_REGISTRY_INT_H

#include "core/config/config.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define REG_CONNECT_TIMEOUT_MS 2000
#define REG_TOTAL_TIMEOUT_MS 5000
#define REG_MAX_BODY (16u << 20) /* a larger answer is refused */

typedef struct kwp_reg_http {
  char *url;     /* no credentials, no trailing '/' */
  char *userpwd; /* "user:password" or NULL; never logged */
  long connect_ms, total_ms;
  atomic_uint_fast64_t requests;
} kwp_reg_http_t;

/* An answer's body, NUL-terminated (malloc'd; NULL when empty). */
typedef struct body {
  char *p;
  size_t n;
} body_t;

/**
 * Read the URL, the credentials (basic.auth.*) and the timeouts
 * (connect.timeout.ms, request.timeout.ms) of schema-registry @p url and
 * @p props into @p h. @returns 0, or KWP_ECONFIG / KWP_ENOMEM with
 * @p errbuf (no credentials in it).
 */
int kwp_registry__http_init(kwp_reg_http_t *h, const char *url,
                            const kwp_props_t *props, char *errbuf,
                            size_t errlen);
/** Free what init() allocated, the password wiped. */
void kwp_registry__http_free(kwp_reg_http_t *h);

/**
 * One request to @p path (POST @p post when not NULL). Blocks: thread
 * pool only. @returns 0 with @p status and @p out when an answer came, else
 * KWP_EUNAVAILABLE (transport), KWP_EBADREQ or KWP_ENOMEM with @p msg.
 */
int kwp_registry__http(kwp_reg_http_t *h, const char *path, const char *post,
                       long *status, body_t *out, char *msg, size_t msglen);

/** A non-2xx answer as one of our codes, with the registry's own words. */
int kwp_registry__http_error(long status, const body_t *b, const char *what,
                             char *msg, size_t msglen);

/** The schema of an answer {"schema", "schemaType"?, "references"?}: 0 with
 * a malloc'd @p text, or KWP_EBADVALUE / KWP_EBADREQ. */
int kwp_registry__answer_schema(json_t *doc, int32_t id, char **text, char *msg,
                                size_t msglen);

/** @p s escaped for a URL path into @p out. @returns 0 or KWP_EBADREQ. */
int kwp_registry__url_escape(const char *s, char *out, size_t outlen);

#endif
