/* The wrapper schemas of socketPayload=avro, as the seed documents them,
 * with additions a reader of the seed's schemas never meets or skips: a
 * `null` branch last in the value unions (tombstones) and the optional
 * `error` and `message` fields last in the outbound records. Pure. */
#include "codec/avro/schemas.h"

#include <string.h>

#define NS "\"namespace\" : \"net.scalytica.kafka.wsproxy.avro\",\n"

#define HEADERS_TYPE                                                           \
  "[ \"null\", {\n"                                                            \
  "      \"type\" : \"array\",\n"                                              \
  "      \"items\" : {\n"                                                      \
  "        \"type\" : \"record\",\n"                                           \
  "        \"name\" : \"KafkaMessageHeader\",\n"                               \
  "        \"doc\" : \"Schema definition for simple Kafka message "            \
  "headers.\",\n"                                                              \
  "        \"fields\" : [ {\n"                                                 \
  "          \"name\" : \"key\",\n"                                            \
  "          \"type\" : \"string\"\n"                                          \
  "        }, {\n"                                                             \
  "          \"name\" : \"value\",\n"                                          \
  "          \"type\" : \"string\"\n"                                          \
  "        } ]\n"                                                              \
  "      }\n"                                                                  \
  "    } ]"

/* Where a record is: topic, partition, offset, timestamp (after a field's
 * opening brace; ends before the next field's). */
#define POSITION_FIELDS                                                        \
  "    \"name\" : \"topic\",\n"                                                \
  "    \"type\" : \"string\"\n"                                                \
  "  }, {\n"                                                                   \
  "    \"name\" : \"partition\",\n"                                            \
  "    \"type\" : \"int\"\n"                                                   \
  "  }, {\n"                                                                   \
  "    \"name\" : \"offset\",\n"                                               \
  "    \"type\" : \"long\"\n"                                                  \
  "  }, {\n"                                                                   \
  "    \"name\" : \"timestamp\",\n"                                            \
  "    \"type\" : \"long\"\n"

#define ERROR_FIELDS                                                           \
  "  }, {\n"                                                                   \
  "    \"name\" : \"error\",\n"                                                \
  "    \"type\" : [ \"null\", \"string\" ],\n"                                 \
  "    \"doc\" : \"Set when this message reports an error: the error code "    \
  "(invalid_message, invalid_value, ...). Added by kafka-ws-proxy after the "  \
  "seed's fields, so readers of the seed's schema decode the rest.\",\n"       \
  "    \"default\" : null\n"                                                   \
  "  }, {\n"                                                                   \
  "    \"name\" : \"message\",\n"                                              \
  "    \"type\" : [ \"null\", \"string\" ],\n"                                 \
  "    \"doc\" : \"What was wrong, when error is set.\",\n"                    \
  "    \"default\" : null\n"                                                   \
  "  } ]\n"

static const char producer_record[] =
    "{\n"
    "  \"type\" : \"record\",\n"
    "  \"name\" : \"AvroProducerRecord\",\n" NS
    "  \"doc\" : \"Inbound schema for producing messages with a key and value "
    "to Kafka topics via the WebSocket proxy. It is up to the client to "
    "serialize the key and value before adding them to this message. This is "
    "because Avro does not support referencing external/remote schemas.\",\n"
    "  \"fields\" : [ {\n"
    "    \"name\" : \"key\",\n"
    "    \"type\" : [ \"null\", \"bytes\", \"string\", \"int\", \"long\", "
    "\"double\", \"float\" ],\n"
    "    \"default\" : null\n"
    "  }, {\n"
    "    \"name\" : \"value\",\n"
    "    \"type\" : [ \"bytes\", \"string\", \"int\", \"long\", \"double\", "
    "\"float\", \"null\" ],\n"
    "    \"doc\" : \"null (last, added by kafka-ws-proxy) writes a "
    "tombstone.\"\n"
    "  }, {\n"
    "    \"name\" : \"headers\",\n"
    "    \"type\" : " HEADERS_TYPE ",\n"
    "    \"default\" : null\n"
    "  }, {\n"
    "    \"name\" : \"clientMessageId\",\n"
    "    \"type\" : [ \"null\", \"string\" ],\n"
    "    \"default\" : null\n"
    "  } ]\n"
    "}\n";

static const char producer_result[] =
    "{\n"
    "  \"type\" : \"record\",\n"
    "  \"name\" : \"AvroProducerResult\",\n" NS
    "  \"doc\" : \"Outbound schema for responding to produced messages.\",\n"
    "  \"fields\" : [ {\n" POSITION_FIELDS "  }, {\n"
    "    \"name\" : \"clientMessageId\",\n"
    "    \"type\" : [ \"null\", \"string\" ],\n"
    "    \"default\" : null\n" ERROR_FIELDS "}\n";

static const char consumer_record[] =
    "{\n"
    "  \"type\" : \"record\",\n"
    "  \"name\" : \"AvroConsumerRecord\",\n" NS
    "  \"doc\" : \"Outbound schema for messages with Avro key and value. It is "
    "up to the client to deserialize the key and value using the correct "
    "schemas, since these are passed through as raw byte arrays in this "
    "wrapper message.\",\n"
    "  \"fields\" : [ {\n"
    "    \"name\" : \"wsProxyMessageId\",\n"
    "    \"type\" : \"string\"\n"
    "  }, {\n" POSITION_FIELDS "  }, {\n"
    "    \"name\" : \"key\",\n"
    "    \"type\" : [ \"null\", \"bytes\", \"string\", \"int\", \"long\", "
    "\"double\", \"float\" ]\n"
    "  }, {\n"
    "    \"name\" : \"value\",\n"
    "    \"type\" : [ \"bytes\", \"string\", \"int\", \"long\", \"double\", "
    "\"float\", \"null\" ],\n"
    "    \"doc\" : \"null (last, added by kafka-ws-proxy): a tombstone.\"\n"
    "  }, {\n"
    "    \"name\" : \"headers\",\n"
    "    \"type\" : " HEADERS_TYPE "\n" ERROR_FIELDS "}\n";

static const char commit[] =
    "{\n"
    "  \"type\" : \"record\",\n"
    "  \"name\" : \"AvroCommit\",\n" NS
    "  \"doc\" : \"Inbound schema for committing the offset of consumed "
    "messages.\",\n"
    "  \"fields\" : [ {\n"
    "    \"name\" : \"wsProxyMessageId\",\n"
    "    \"type\" : \"string\"\n"
    "  } ]\n"
    "}\n";

static const kwp_avro_schema_doc_t schemas[] = {
    {"producer/record", "AvroProducerRecord", producer_record},
    {"producer/result", "AvroProducerResult", producer_result},
    {"consumer/record", "AvroConsumerRecord", consumer_record},
    {"consumer/commit", "AvroCommit", commit},
    {"producer/commit", "AvroCommit", commit},
};

const kwp_avro_schema_doc_t *kwp_avro_schema_find(const char *path,
                                                  size_t len) {
  for (size_t i = 0; i < sizeof(schemas) / sizeof(schemas[0]); i++)
    if (strlen(schemas[i].path) == len && !memcmp(schemas[i].path, path, len))
      return &schemas[i];
  return NULL;
}

const kwp_avro_schema_doc_t *kwp_avro_schema_at(size_t i) {
  return i < sizeof(schemas) / sizeof(schemas[0]) ? &schemas[i] : NULL;
}
