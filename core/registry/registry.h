/*
 * The Confluent Schema Registry client: one per process, shared by every
 * worker. Schemas are cached by id forever (ids are immutable), by explicit
 * subject version forever, and a subject's latest version for 30 s. Misses
 * are fetched with libcurl on libuv's thread pool, never on a loop; requests
 * for the same key while one is in flight share that one HTTP request.
 */
#ifndef KWP_REGISTRY_H
#define KWP_REGISTRY_H

#include "core/config/config.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct kwp_registry kwp_registry_t;

#include "codec/avro/avro_json.h"

/**
 * A schema as the cache holds it; everything it points to is owned by the
 * registry and stays valid until kwp_registry_free(). Read-only: take your own
 * reference (avro_schema_incref, atomic) only to keep @c avro longer.
 */
typedef struct kwp_schema {
  int32_t id;
  const char *subject; /* NULL when looked up by id */
  int version;         /* 0 when looked up by id */
  const char *text;    /* the schema's JSON as the registry sent it */
  size_t text_len;
  const kwp_avro_schema_t *avro; /* compiled (kwp_avro_schema_new()) */
} kwp_schema_t;

/**
 * The answer to a lookup, on the requesting loop's thread, never before the
 * lookup function returned. @p err is 0 with @p schema, or KWP_ENOTFOUND (the
 * registry answered 404: no such subject, version or id), KWP_EUNAVAILABLE
 * (unreachable, timed out, 5xx, or it refused the proxy's credentials),
 * KWP_EBADVALUE (not an Avro schema, an unparsable one, one with references,
 * or a 409/422 refusal of a schema to register), KWP_EBADREQ (another 4xx or
 * an answer we cannot read), KWP_ENOMEM; then @p schema is NULL and
 * @p message says why (valid during the call; no credentials in it).
 */
typedef void (*kwp_registry_cb)(void *arg, int err, const kwp_schema_t *schema,
                                const char *message);

/**
 * Create the client for @p url (e.g. "http://host:8081" or a path prefix like
 * ".../apis/ccompat/v7"; user:pass@ in it is taken out and used as basic auth
 * unless @p props says otherwise). @p props is schema-registry.properties:
 * - basic.auth.credentials.source: URL (default when basic.auth.user.info is
 *   absent) or USER_INFO (default when it is set); others are refused;
 * - basic.auth.user.info: "user:password";
 * - request.timeout.ms (5000) and connect.timeout.ms (2000): the proxy's own.
 * Each key may also be spelled with a "schema.registry." prefix.
 * Copies what it needs from both. Calls curl_global_init().
 * @locality main thread, before workers start
 * @returns the client, or NULL with @p errbuf filled (without credentials).
 */
kwp_registry_t *kwp_registry_new(const char *url, const kwp_props_t *props,
                                 char *errbuf, size_t errlen);

/**
 * Free the client and every cached schema. Every lookup's callback must have
 * run (the loops that used it have stopped). NULL is fine.
 * @locality main thread, after the workers joined
 */
void kwp_registry_free(kwp_registry_t *reg);

/** The URL without credentials, for logs. @locality any thread */
const char *kwp_registry_url(const kwp_registry_t *reg);

/**
 * The cached schema of @p id, or NULL; no I/O, no allocation (a read lock):
 * the per-record path. On NULL call kwp_registry_by_id().
 * @locality any thread
 */
const kwp_schema_t *kwp_registry_cached_id(kwp_registry_t *reg, int32_t id);

/**
 * The cached schema of @p subject at @p version (-1: latest, while fresh), or
 * NULL; no I/O. On NULL call kwp_registry_by_subject(). @locality any thread
 */
const kwp_schema_t *kwp_registry_cached_subject(kwp_registry_t *reg,
                                                const char *subject,
                                                int version);

/**
 * Look up schema @p id: from the cache, or GET /schemas/ids/{id}. @p cb runs
 * on @p loop once (never inside this call), even on a cache hit. The request
 * holds an active handle on @p loop until @p cb has run (at most the request
 * timeout). @locality the thread running @p loop
 * @returns 0, or a libuv error / KWP_ENOMEM (then @p cb is not called).
 */
int kwp_registry_by_id(kwp_registry_t *reg, uv_loop_t *loop, int32_t id,
                       kwp_registry_cb cb, void *arg);

/**
 * Look up @p subject at @p version (> 0) or its latest (-1): from the cache,
 * or GET /subjects/{subject}/versions/{version|latest}. When a stale latest is
 * cached and the registry cannot be reached, the stale one is the answer (and
 * asked again at most every 5 s). Otherwise as kwp_registry_by_id().
 * @locality the thread running @p loop
 * @returns 0, KWP_EBADREQ for a bad @p version, or as kwp_registry_by_id().
 */
int kwp_registry_by_subject(kwp_registry_t *reg, uv_loop_t *loop,
                            const char *subject, int version,
                            kwp_registry_cb cb, void *arg);

/**
 * Register the Avro schema @p schema_json under @p subject (POST
 * /subjects/{subject}/versions; the registry answers the existing id when it
 * already has it). Checked locally first: an unparsable schema fails with
 * KWP_EBADVALUE without a request. The schema passed to @p cb has the new id
 * and no subject or version. Not coalesced. @p schema_json is copied.
 * @locality the thread running @p loop
 * @returns as kwp_registry_by_id().
 */
int kwp_registry_register(kwp_registry_t *reg, uv_loop_t *loop,
                          const char *subject, const char *schema_json,
                          kwp_registry_cb cb, void *arg);

/** HTTP requests made so far (tests of the coalescing). @locality any */
uint64_t kwp_registry_requests(kwp_registry_t *reg);

#endif
