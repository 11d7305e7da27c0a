/*
 * Query-string access for endpoints: percent-decoded parameter values of a
 * request URL. Pure functions, any thread.
 */
#ifndef KWP_QUERY_H
#define KWP_QUERY_H

#include <stddef.h>

/**
 * Find parameter @p name in @p url's query and percent-decode its value
 * ('+' is a space) into @p out (NUL-terminated).
 * @returns 1 when present (an empty value is present), 0 when absent (@p out
 * is then ""), or KWP_EBADREQ when the value is malformed (bad escape, NUL,
 * not UTF-8) or longer than @p outlen - 1.
 */
int kwp_query_get(const char *url, const char *name, char *out, size_t outlen);

/**
 * Parse a boolean parameter the way the reference does (true/false, yes/no,
 * on/off, 1/0; any case). @returns 0 or 1, or -1 when not a boolean.
 */
int kwp_query_bool(const char *s);

#endif
