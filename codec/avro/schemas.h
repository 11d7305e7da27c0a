/*
 * The Avro wrapper schemas of socketPayload=avro (namespace
 * net.scalytica.kafka.wsproxy.avro): the one copy of their text, which
 * GET /schemas/avro/... serves and the unit tests parse with avro-c against
 * the encoder and decoder of avro_payload.c. Pure, any thread.
 */
#ifndef KWP_CODEC_AVRO_SCHEMAS_H
#define KWP_CODEC_AVRO_SCHEMAS_H

#include <stddef.h>

typedef struct kwp_avro_schema_doc {
  const char *path; /* under /schemas/avro/, e.g. "producer/record" */
  const char *name; /* the record's name, e.g. "AvroProducerRecord" */
  const char *text; /* the schema, JSON */
} kwp_avro_schema_doc_t;

/**
 * The schema served at /schemas/avro/@p path (@p len bytes; no leading
 * slash), or NULL. `producer/commit` (the seed's spelling) and
 * `consumer/commit` are the same AvroCommit.
 * @locality any thread; pure
 */
const kwp_avro_schema_doc_t *kwp_avro_schema_find(const char *path, size_t len);

/** The i-th schema (0..), or NULL past the last. */
const kwp_avro_schema_doc_t *kwp_avro_schema_at(size_t i);

#endif
