/*
 * The Confluent Schema Registry wire format of a Kafka key or value: magic
 * byte 0, the schema id as a 4-byte big-endian integer, then the Avro binary
 * datum (codec/avro/avro_json.h converts it). Pure; any thread.
 */
#ifndef KWP_CODEC_AVRO_WIRE_H
#define KWP_CODEC_AVRO_WIRE_H

#include "core/base/error.h"

#include <stddef.h>
#include <stdint.h>

#define KWP_AVRO_WIRE_MAGIC 0
#define KWP_AVRO_WIRE_PREFIX 5 /* magic byte + schema id */

/**
 * Split a framed payload into its schema id and its Avro body (a view into
 * @p data).
 * @locality any thread
 * @returns 0, or KWP_EBADVALUE when @p data is shorter than 5 bytes or its
 * first byte is not 0.
 */
static inline int kwp_avro_wire_parse(const uint8_t *data, size_t len,
                                      int32_t *schema_id, const uint8_t **body,
                                      size_t *body_len) {
  if (len < KWP_AVRO_WIRE_PREFIX || data[0] != KWP_AVRO_WIRE_MAGIC)
    return KWP_EBADVALUE;
  *schema_id = (int32_t)((uint32_t)data[1] << 24 | (uint32_t)data[2] << 16 |
                         (uint32_t)data[3] << 8 | (uint32_t)data[4]);
  *body = data + KWP_AVRO_WIRE_PREFIX;
  *body_len = len - KWP_AVRO_WIRE_PREFIX;
  return 0;
}

/** Write the 5-byte prefix for @p schema_id to @p dst. @locality any thread */
static inline void kwp_avro_wire_write(uint8_t dst[KWP_AVRO_WIRE_PREFIX],
                                       int32_t schema_id) {
  uint32_t id = (uint32_t)schema_id;
  dst[0] = KWP_AVRO_WIRE_MAGIC;
  dst[1] = (uint8_t)(id >> 24);
  dst[2] = (uint8_t)(id >> 16);
  dst[3] = (uint8_t)(id >> 8);
  dst[4] = (uint8_t)id;
}

#endif
