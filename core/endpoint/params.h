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

#endif
