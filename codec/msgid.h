/*
 * wsProxyMessageId, `<topic>-<partition>-<offset>-<timestamp>`: the id every
 * payload format gives a consumed record and reads back in a commit. Pure,
 * any thread.
 */
#ifndef KWP_CODEC_MSGID_H
#define KWP_CODEC_MSGID_H

#include "codec/payload.h"

#include <stddef.h>
#include <stdint.h>

/* Bytes of the id of a record of a topic of @p topic_len bytes, at most. */
#define KWP_MSGID_MAX(topic_len) ((topic_len) + 3 + 11 + 20 + 20)

/**
 * Write the id of record (@p partition, @p offset, @p timestamp) of
 * @p topic at @p d, which has room for KWP_MSGID_MAX(@p topic_len).
 * @returns the end of what was written (no NUL).
 */
char *kwp_msgid_put(char *d, const char *topic, size_t topic_len,
                    int32_t partition, int64_t offset, int64_t timestamp);

/**
 * The record a wsProxyMessageId of @p topic names (since the topic is known,
 * the rest parses unambiguously even when it has dashes).
 * @returns 0, or KWP_EUNKNOWNID when @p id is no id this socket could have
 * sent (another topic, numbers not as the proxy writes them).
 */
int kwp_msgid_parse(const char *topic, size_t topic_len, const char *id,
                    size_t len, kwp_record_ref_t *ref);

#endif
