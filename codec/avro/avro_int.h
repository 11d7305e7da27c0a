/*
 * Inside the Avro converter (codec/avro/): the compiled schema tree shared by
 * avro_schema.c (builds it), avro_encode.c (JSON -> Avro) and avro_decode.c
 * (Avro -> JSON), and the error with its field path. Read-only once built.
 */
#ifndef KWP_CODEC_AVRO_INT_H
#define KWP_CODEC_AVRO_INT_H

#include "codec/avro/avro_json.h"

#include <jansson.h>
#include <stdarg.h>

typedef enum kwp_av_type {
  KWP_AV_NULL,
  KWP_AV_BOOLEAN,
  KWP_AV_INT,
  KWP_AV_LONG,
  KWP_AV_FLOAT,
  KWP_AV_DOUBLE,
  KWP_AV_BYTES,
  KWP_AV_STRING,
  KWP_AV_RECORD,
  KWP_AV_ENUM,
  KWP_AV_ARRAY,
  KWP_AV_MAP,
  KWP_AV_UNION,
  KWP_AV_FIXED
} kwp_av_type_t;

typedef struct kwp_av_node kwp_av_node_t;

typedef struct kwp_av_field {
  char *name;
  char *key; /* "name": as JSON text, for the decoder */
  size_t key_len;
  kwp_av_node_t *type;
  uint8_t *def; /* the default's Avro binary; NULL: none usable */
  size_t def_len;
  int bad_def;  /* the schema has a default that does not fit the type */
  json_t *jdef; /* the default's JSON, only while compiling */
} kwp_av_field_t;

struct kwp_av_node {
  kwp_av_type_t type;
  char *name;             /* full name of a named type, else NULL */
  const char *short_name; /* its last part */
  size_t n;               /* fields, symbols, branches, or fixed size */
  kwp_av_field_t *fields; /* record */
  char **symbols;         /* enum */
  char **sym_json;        /* enum: "SYMBOL" as JSON text */
  kwp_av_node_t **kids;   /* union branches; kids[0] items or values */
  char **wrap;            /* union: {"<branch>": as JSON text */
  size_t min_size;        /* fewest bytes a datum of it takes */
  int visiting;           /* only while computing min_size */
  kwp_av_node_t *next;    /* every node of the schema, to free them */
};

struct kwp_avro_schema {
  kwp_av_node_t *root;
  kwp_av_node_t *nodes;
};

/* An error and the path of the field it is in, built from the innermost
 * frame outwards: each frame prepends its part as the error unwinds. */
enum { KWP_AV_ERR_AT, KWP_AV_ERR_MISSING, KWP_AV_ERR_UNKNOWN };
typedef struct kwp_av_err {
  int kind;
  char msg[200];
  char path[128]; /* the path is path[at..]; short: why buffers are */
  size_t at;
  int cut; /* the path's outer part did not fit */
} kwp_av_err_t;

void kwp_avro__err_init(kwp_av_err_t *e);
void kwp_avro__fail(kwp_av_err_t *e, int kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prepend a record field, an array index, a map key to the path. */
void kwp_avro__path_field(kwp_av_err_t *e, const char *name);
void kwp_avro__path_index(kwp_av_err_t *e, size_t i);
void kwp_avro__path_key(kwp_av_err_t *e, const char *key, size_t len);
/* The message: "field 'a.b': msg", "missing field 'a.b'", ... */
void kwp_avro__why(const kwp_av_err_t *e, char *why, size_t whylen);
/* The end of a conversion that wrote from @p start of @p out and returned
 * @p r: 0, or @p out cut back and KWP_ENOMEM / KWP_EBADVALUE with @p why. */
int kwp_avro__finish(kwp_sbuf_t *out, size_t start, int r,
                     const kwp_av_err_t *e, char *why, size_t whylen);
/* "int", "record com.example.User", "one of null, string", ... */
void kwp_avro__type_desc(const kwp_av_node_t *n, char *buf, size_t len);
/* A branch's name in the union encoding: a type name or a full name. */
const char *kwp_avro__branch_name(const kwp_av_node_t *n);

/**
 * Encode @p v under @p n into @p out (avro_encode.c). @p in_default: @p v is
 * a schema default: unions take their first branch, missing fields their
 * own default's JSON. @returns 0 or -1 with @p e set.
 */
int kwp_avro__encode(const kwp_av_node_t *n, json_t *v, int in_default,
                     kwp_sbuf_t *out, kwp_av_err_t *e);

#endif
