/*
 * The payload-format seam: how a socket's messages look on the wire
 * (`socketPayload`). The produce and consume paths (core/produce,
 * core/consume) know records, results and acknowledgements only; a payload
 * format turns client messages into records and results, records and errors
 * into client messages. JSON (codec/json/json_payload.c) is one; a format
 * is one file implementing kwp_payload_t plus one line in codec/payload.c.
 * Also the format types of keys and values (`keyType`, `valType`), which
 * every payload format shares. Pure: no I/O, no logging.
 */
#ifndef KWP_CODEC_PAYLOAD_H
#define KWP_CODEC_PAYLOAD_H

#include "core/base/sbuf.h"

#include <stddef.h>
#include <stdint.h>

/* --- format types of keys and values --- */

typedef enum kwp_fmt {
  KWP_FMT_NONE = 0, /* no key type given: records carry no key */
  KWP_FMT_JSON,
  KWP_FMT_STRING,
  KWP_FMT_BYTEARRAY, /* base64 in JSON, raw bytes in Kafka */
  KWP_FMT_INT,
  KWP_FMT_SHORT,
  KWP_FMT_LONG,
  KWP_FMT_DOUBLE,
  KWP_FMT_FLOAT,
  KWP_FMT_AVRO, /* base64 in JSON (Avro-encoded bytes), raw bytes in Kafka */
  /* JSON in JSON; in Kafka Avro under a Schema Registry schema, in the
   * Confluent wire format (codec/avro/wire.h) */
  KWP_FMT_AVRO_REGISTRY,
} kwp_fmt_t;

/**
 * Parse a format name (case-insensitive; `byte_array` is an alias of
 * `bytearray`). @locality any thread; pure
 * @returns 0, or KWP_EBADREQ for an unknown name.
 */
int kwp_fmt_parse(const char *name, size_t len, kwp_fmt_t *out);

/** The canonical name ("json", "string", ...); "" for KWP_FMT_NONE. */
const char *kwp_fmt_name(kwp_fmt_t fmt);

/* --- records, results, acknowledgements --- */

#define KWP_PARTITION_ANY (-1) /* the partitioner's choice */
#define KWP_MAX_HEADERS 64     /* per produced record */

typedef struct kwp_header {
  const char *key;
  size_t key_len;
  const uint8_t *value;
  size_t value_len;
} kwp_header_t;

/* A record a client sent, decoded: views, valid during the sink's call. */
typedef struct kwp_precord {
  int32_t partition;  /* KWP_PARTITION_ANY unless the client chose */
  const uint8_t *key; /* NULL: no key */
  size_t key_len;
  const uint8_t *value; /* NULL: a tombstone */
  size_t value_len;
  const kwp_header_t *headers;
  size_t nheaders;
  /* The client's own id of the message (format-specific text), handed
   * back in its result; NULL: none. */
  const char *tag;
  size_t tag_len;
} kwp_precord_t;

/* Where a decoded message goes: exactly one of the two is called. */
typedef struct kwp_precord_sink {
  void (*record)(void *arg, const kwp_precord_t *r);
  /* Not a record: @p err a KWP_E* (KWP_EJSON, KWP_EBADKEY, ...), @p why
   * what was wrong, @p tag the client's id when it could be read. */
  void (*reject)(void *arg, const char *tag, size_t tag_len, int err,
                 const char *why);
  void *arg;
} kwp_precord_sink_t;

/* The outcome of one produced record, in input order. */
typedef struct kwp_presult {
  int err;             /* 0, or a KWP_E* (kwp_err_result_code()) */
  const char *message; /* err: what happened */
  int32_t partition;
  int64_t offset, timestamp;
  const char *tag; /* the record's tag; NULL: none */
  size_t tag_len;
} kwp_presult_t;

/* A consumed record, as the codec sees it (views into Kafka's buffers). */
typedef struct kwp_record {
  int32_t partition;
  int64_t offset, timestamp;
  const uint8_t *key; /* NULL: no key */
  size_t key_len;
  const uint8_t *value; /* NULL: a tombstone */
  size_t value_len;
  /* Headers through an accessor so the codec needs no Kafka types:
   * @returns 0 and the i-th header, or -1 past the last. */
  int (*header)(const void *hdrs, size_t i, const char **name,
                const void **value, size_t *len);
  const void *hdrs;
} kwp_record_t;

/* Which record a client acknowledges (commits). */
typedef struct kwp_record_ref {
  int32_t partition;
  int64_t offset, timestamp;
} kwp_record_ref_t;

typedef struct kwp_avro_schema kwp_avro_schema_t; /* codec/avro/avro_json.h */

/* A Schema Registry schema a socket writes keys or values with. */
typedef struct kwp_sr_writer {
  int32_t id;
  const kwp_avro_schema_t *schema;
} kwp_sr_writer_t;

/* The schemas of avro_registry keys and values. */
typedef struct kwp_sr_opts {
  kwp_sr_writer_t key, value; /* produce (schema NULL: not avro_registry) */
  /**
   * Consume: the schema of @p id, or NULL when the registry had none to
   * give (the consume path fetches every id before it hands a record on).
   * @p why: what was wrong, when NULL.
   */
  const kwp_avro_schema_t *(*reader)(void *arg, int32_t id, const char **why);
  void *arg;
} kwp_sr_opts_t;

/* What a socket's format needs to know of it. */
typedef struct kwp_payload_opts {
  const char *topic; /* a Kafka topic name: [a-zA-Z0-9._-] */
  size_t topic_len;
  kwp_fmt_t key_fmt, val_fmt; /* KWP_FMT_NONE key: no keyType given */
  const kwp_sr_opts_t *sr;    /* NULL unless a type is avro_registry */
} kwp_payload_opts_t;

typedef struct kwp_payload {
  const char *name; /* the socketPayload value */
  int opcode;       /* the WebSocket frames it reads and writes */
  /**
   * Decode one client message (@p opcode: the frame's) and hand the record
   * or the reason it is none to @p sink.
   */
  void (*produce_decode)(const kwp_payload_opts_t *o, int opcode,
                         const uint8_t *data, size_t len,
                         const kwp_precord_sink_t *sink);
  /** Append the result message of @p r. @returns 0 or KWP_ENOMEM. */
  int (*produce_result)(kwp_sbuf_t *out, const kwp_payload_opts_t *o,
                        const kwp_presult_t *r);
  /** Append the message of consumed record @p r. @returns 0, KWP_ENOMEM. */
  int (*record)(kwp_sbuf_t *out, const kwp_payload_opts_t *o,
                const kwp_record_t *r);
  /* Batches of records in one message: opened, separated and closed with
   * these bytes (NULL: the format has no batches). */
  const char *batch_open, *batch_sep, *batch_close;
  /**
   * Decode an acknowledgement (commit) message into @p ref, its id as text
   * into @p id (for error messages; "" when none could be read).
   * @returns 0; KWP_EFRAMETYPE or KWP_EBADCOMMIT with @p why; or
   * KWP_EUNKNOWNID when the id names no record this socket could have sent.
   */
  int (*commit_decode)(const kwp_payload_opts_t *o, int opcode,
                       const uint8_t *data, size_t len, kwp_record_ref_t *ref,
                       char *id, size_t idlen, const char **why);
  /** Append an error message (@p id NULL: none). @returns 0 or KWP_ENOMEM */
  int (*error)(kwp_sbuf_t *out, int err, const char *id, const char *message);
} kwp_payload_t;

/**
 * The payload format named @p name (case-insensitive), or NULL.
 * @locality any thread
 */
const kwp_payload_t *kwp_payload_find(const char *name);

#endif
