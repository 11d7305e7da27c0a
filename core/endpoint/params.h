/*
 * Upgrade-request parameters shared by the WebSocket endpoints: each helper
 * reads one query parameter and, on a bad value, sets @p err (a KWP_E*) and
 * the HTTP error message in @p msg, worded as the reference system does.
 * Pure functions, any thread.
 */
#ifndef KWP_PARAMS_H
#define KWP_PARAMS_H

#include "codec/payload.h"

#include <stddef.h>
#include <stdint.h>

/* Every parameter value buffer is this big (longer values are refused). */
#define KWP_PARAM_MAX 256

/** @returns 1 when present (value in @p out), 0 when absent, -1 on error. */
int kwp_param(const char *url, const char *name, char *out, int *err, char *msg,
              size_t msglen);

/** Like kwp_param(), but absent or empty is an error. */
int kwp_param_required(const char *url, const char *name, char *out, int *err,
                       char *msg, size_t msglen);

/** `topic`: required, and a name Kafka allows (1 to 249 of [a-zA-Z0-9._-],
 *  not "." or ".."). Output JSON carries it unescaped, and the dev-mode
 *  cluster would create any name. */
int kwp_param_topic(const char *url, char *out, int *err, char *msg,
                    size_t msglen);

/** A format type (`keyType`, `valType`); @p fmt untouched when absent. */
int kwp_param_format(const char *url, const char *name, kwp_fmt_t *fmt,
                     int *err, char *msg, size_t msglen);

/** `socketPayload`: the socket's payload format (json when absent).
 * @returns 0, or -1 on error. */
int kwp_param_payload(const char *url, const kwp_payload_t **fmt, int *err,
                      char *msg, size_t msglen);

/** A boolean; @p out untouched when absent. */
int kwp_param_bool(const char *url, const char *name, int *out, int *err,
                   char *msg, size_t msglen);

/** A positive integer up to @p max; @p out untouched when absent. */
int kwp_param_positive(const char *url, const char *name, int64_t max,
                       int64_t *out, int *err, char *msg, size_t msglen);

/* The Schema Registry schema a producer socket writes avro_registry keys or
 * values with. */
typedef struct kwp_schema_ref {
  char subject[KWP_PARAM_MAX + 8]; /* default <topic>-key / <topic>-value */
  int32_t id;                      /* > 0: this id (subject, version unused) */
  int version;                     /* > 0, or -1: the subject's latest */
} kwp_schema_ref_t;

/**
 * Check an avro_registry type and read its schema parameters. @p side is
 * "key" or "val" (`keyType`, `keySchemaId`, `keySubject`,
 * `keySchemaVersion`; `val...`), @p fmt that side's type, @p registry
 * whether a schema registry is configured; @p ref (NULL: a consumer, which
 * takes the id from each record) gets the schema to write with.
 * @returns 0, or -1 with KWP_EBADREQ and the message: avro_registry without
 * a registry or on a @p payload other than JSON, a schema parameter without
 * avro_registry, an id together with a subject or version, a bad number.
 */
int kwp_param_schema(const char *url, const char *side, kwp_fmt_t fmt,
                     const kwp_payload_t *payload, int registry,
                     const char *topic, kwp_schema_ref_t *ref, int *err,
                     char *msg, size_t msglen);

#endif
