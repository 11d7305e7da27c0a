/* The payload formats (socketPayload) and the format type names. Pure, any
 * thread. */
#include "codec/payload.h"

#include "core/base/error.h"

#include <string.h>
#include <strings.h>

extern const kwp_payload_t kwp_payload_json;
extern const kwp_payload_t kwp_payload_avro;

static const kwp_payload_t *const formats[] = {
    &kwp_payload_json,
    &kwp_payload_avro,
};

const kwp_payload_t *kwp_payload_find(const char *name) {
  for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
    if (!strcasecmp(formats[i]->name, name))
      return formats[i];
  return NULL;
}

static const struct {
  const char *name;
  kwp_fmt_t fmt;
} fmt_names[] = {
    {"json", KWP_FMT_JSON},
    {"string", KWP_FMT_STRING},
    {"bytearray", KWP_FMT_BYTEARRAY},
    {"byte_array", KWP_FMT_BYTEARRAY},
    {"int", KWP_FMT_INT},
    {"short", KWP_FMT_SHORT},
    {"long", KWP_FMT_LONG},
    {"double", KWP_FMT_DOUBLE},
    {"float", KWP_FMT_FLOAT},
    {"avro", KWP_FMT_AVRO},
    {"avro_registry", KWP_FMT_AVRO_REGISTRY},
};

int kwp_fmt_parse(const char *name, size_t len, kwp_fmt_t *out) {
  for (size_t i = 0; i < sizeof(fmt_names) / sizeof(fmt_names[0]); i++) {
    if (strlen(fmt_names[i].name) == len &&
        !strncasecmp(fmt_names[i].name, name, len)) {
      *out = fmt_names[i].fmt;
      return 0;
    }
  }
  return KWP_EBADREQ;
}

const char *kwp_fmt_name(kwp_fmt_t fmt) {
  for (size_t i = 0; i < sizeof(fmt_names) / sizeof(fmt_names[0]); i++)
    if (fmt_names[i].fmt == fmt)
      return fmt_names[i].name;
  return "";
}
