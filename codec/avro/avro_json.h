/*
 * Avro values as JSON, for JSON clients of Schema Registry topics: a client's
 * JSON value encoded in Avro binary under a writer schema, and Avro binary
 * decoded back to JSON text. The Confluent framing (magic byte, schema id)
 * is in codec/avro/wire.h.
 *
 * A schema is compiled once from its JSON text (as the registry returns it)
 * into a read-only tree that carries what avro-c's schema objects drop: the
 * fields' defaults. The converters walk that tree and write or read the
 * binary themselves, for precise errors ("field 'user.age': expected int,
 * got string") and strict bounds. Pure: no I/O, no logging; any thread.
 *
 * JSON encoding (both directions; the output of kwp_avro_to_json() fed back
 * to kwp_avro_from_json() gives the same bytes):
 * - null, boolean, string: themselves. int, long: JSON integers in range
 *   (no fraction, no exponent). float, double: any JSON number, or the
 *   strings "NaN", "Infinity", "-Infinity".
 * - bytes, fixed: a string whose code points are U+0000-U+00FF, one byte
 *   each (Avro's JSON encoding); fixed needs exactly its size.
 * - enum: the symbol as a string. array: an array. map: an object.
 * - record: an object with a member per field; a missing field takes its
 *   schema default, a member that is not a field is an error.
 * - union: {"<branch>": value} where <branch> is the branch's type name
 *   ("int", "string", "array", "map", ...) or a named type's full name (its
 *   short name is also accepted on input), or bare null for a null branch.
 *   On input a bare value is also accepted: it goes to the first branch, in
 *   the union's order, whose type it fits (see kwp_avro_from_json()).
 */
#ifndef KWP_CODEC_AVRO_JSON_H
#define KWP_CODEC_AVRO_JSON_H

#include "core/base/sbuf.h"

#include <stddef.h>
#include <stdint.h>

/* Records, arrays and maps nested deeper than this are refused both ways. */
#define KWP_AVRO_MAX_DEPTH 256
/* Array items that take no bytes (null, a fixed of size 0, a record of
 * those) a decoded datum may hold in all: a block count is otherwise bounded
 * by the bytes left, these would make output from nothing. */
#define KWP_AVRO_MAX_EMPTY_ITEMS 65536

typedef struct kwp_avro_schema kwp_avro_schema_t;

/**
 * Compile the Avro schema in the JSON text @p json (parsed and checked by
 * avro-c, then walked with its defaults). The returned schema is read-only:
 * several threads may use it at once.
 * @locality any thread
 * @returns the schema (free with kwp_avro_schema_free()), or NULL with a
 * message in @p errstr: invalid JSON, a schema avro-c refuses, out of
 * memory. A field default that does not fit its type is not an error: that
 * field is then required.
 */
kwp_avro_schema_t *kwp_avro_schema_new(const char *json, size_t len,
                                       char *errstr, size_t errlen);

/** Free @p sch (NULL is fine). @locality any thread, once none use it. */
void kwp_avro_schema_free(kwp_avro_schema_t *sch);

/**
 * Encode the JSON text @p json (@p len bytes, a whole JSON value) in Avro
 * binary under @p sch and append it to @p out. Bare union values: the first
 * branch whose type the value fits, judged on its JSON type only (nested
 * values are not tried): null: null; true/false: boolean; an integer: int
 * when in range, long, float, double; another number: float, double; a
 * string: string, bytes and fixed (code points <= U+00FF, fixed of its
 * length), enum (a symbol); an array: array; an object: record (every
 * member a field, every field without default present), map. An object of
 * one member named after a branch is always the wrapped form. "NaN" and the
 * infinities reach a float or double branch only wrapped ({"double":"NaN"}).
 * Integers beyond 64 bits are refused even for float/double (write 1e20).
 * @locality any thread; @p out belongs to the caller.
 * @returns 0; KWP_EJSON when @p json is not JSON; KWP_EBADVALUE when it
 * does not fit the schema, with @p why naming the field path and what was
 * expected ("field 'tags[2]': expected string, got number 7", "missing
 * field 'user.name'", "unknown field 'user.nick' (not in record
 * com.example.User)", "field 'x': 3000000000 is out of range for int");
 * KWP_ENOMEM (@p out->oom set). On an error @p out keeps its old length.
 */
int kwp_avro_from_json(const kwp_avro_schema_t *sch, const char *json,
                       size_t len, kwp_sbuf_t *out, char *why, size_t whylen);

/**
 * Decode the Avro binary datum @p data (all @p len bytes, nothing after it)
 * under @p sch and append it to @p out as compact JSON text: record fields
 * in schema order; unions as {"<branch>": value} (named types by full name)
 * and bare null; bytes and fixed as strings of \u00XX escapes (printable
 * ASCII as itself); float and double in their shortest round-trip form
 * ("1.0", "0.1", "1e+20"), NaN and infinities as the strings "NaN",
 * "Infinity", "-Infinity"; strings must be UTF-8.
 * Never reads outside @p data; lengths and block counts are checked against
 * the bytes left before anything is allocated for them.
 * @locality any thread; @p out belongs to the caller.
 * @returns 0; KWP_EBADVALUE with @p why saying what was wrong, at which
 * byte offset and field (truncated input, a negative or too long length, a
 * varint over 10 bytes, a bad union or enum index, an int out of range,
 * invalid UTF-8, trailing bytes, nesting over KWP_AVRO_MAX_DEPTH, over
 * KWP_AVRO_MAX_EMPTY_ITEMS empty items); KWP_ENOMEM (@p out->oom set). On
 * an error @p out keeps its old length.
 */
int kwp_avro_to_json(const kwp_avro_schema_t *sch, const uint8_t *data,
                     size_t len, kwp_sbuf_t *out, char *why, size_t whylen);

#endif
