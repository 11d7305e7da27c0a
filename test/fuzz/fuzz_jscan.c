/*
 * libFuzzer target for the zero-copy JSON reader (codec/json/jscan.h) and the
 * /socket/in message parser built on it (codec/json/json_produce.h), and
 * the /socket/out commit decoder of the JSON payload format. The input
 * is untrusted client text: every verdict must match jansson's (the parser the
 * reader replaced), every accepted value's compact text must parse back to
 * the same JSON, and the message parser must neither crash nor leak for
 * any key/value type.
 */
#include "codec/json/jscan.h"
#include "codec/json/json_produce.h"
#include "codec/payload.h"
#include "core/base/error.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond))                                                               \
      abort();                                                                 \
  } while (0)

#define JFLAGS (JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL)

/* What JSON allows and jansson refuses: not compared. */
static int jansson_only(const json_error_t *e) {
  return strstr(e->text, "too big") || strstr(e->text, "overflow") ||
         strstr(e->text, "NUL byte in object key");
}

static void check_reader(const char *text, size_t len) {
  kwp_js_t js;
  kwp_slice_t out;
  json_error_t e;
  kwp_js_init(&js, text, len);
  int ok = kwp_js_value(&js, &out) == 0 && kwp_js_end(&js) == 0;
  json_t *want = json_loadb(text, len, JFLAGS, &e);
  if (memchr(text, 0, len)) {
    /* a raw NUL is never JSON; jansson takes it as the end after a
     * top-level number ("60\0"), the reader refuses it */
    CHECK(!ok);
    json_decref(want);
    want = NULL;
  } else if (want || !jansson_only(&e)) {
    CHECK(ok == (want != NULL));
  }
  if (ok && want) {
    json_t *back = json_loadb(out.ptr, out.len, JFLAGS, NULL);
    CHECK(back && json_equal(back, want));
    for (size_t i = 0; i < out.len; i++) /* compact: no whitespace left */
      CHECK(out.ptr[i] != '\n' && out.ptr[i] != '\r' && out.ptr[i] != '\t');
    json_decref(back);
  }
  json_decref(want);
  kwp_js_free(&js);
}

static void check_message(const char *text, size_t len, kwp_fmt_t kf,
                          kwp_fmt_t vf) {
  kwp_produce_msg_t m;
  char why[256];
  int r = kwp_produce_msg_parse(text, len, kf, vf, &m, why, sizeof(why));
  if (r == 0) {
    CHECK(m.value.ptr != NULL || m.value.len == 0);
    CHECK(m.nheaders <= KWP_MAX_HEADERS);
    for (size_t i = 0; i < m.nheaders; i++)
      CHECK(!memchr(m.headers[i].key, 0, m.headers[i].key_len));
  } else {
    /* a result code of its own, never the catch-all */
    CHECK(strcmp(kwp_err_result_code(r), "kafka_error") != 0 && why[0]);
  }
  if (m.message_id.ptr) { /* the id is echoed as JSON: it must be JSON */
    json_error_t e;
    json_t *id = json_loadb(m.message_id.ptr, m.message_id.len, JFLAGS, &e);
    CHECK(id || jansson_only(&e));
    json_decref(id);
  }
  kwp_produce_msg_clear(&m);
}

/* A /socket/out commit through the payload seam: an answer the socket can
 * act on, and an id that names a record of this topic only when accepted. */
static void check_commit(const char *text, size_t len) {
  const kwp_payload_t *json = kwp_payload_find("json");
  kwp_payload_opts_t o = {"t-1", 3, KWP_FMT_NONE, KWP_FMT_STRING, NULL};
  kwp_record_ref_t ref;
  char id[64];
  const char *why = NULL;
  int r = json->commit_decode(&o, 1, (const uint8_t *)text, len, &ref, id,
                              sizeof(id), &why);
  CHECK(r == 0 || r == KWP_EBADCOMMIT || r == KWP_EUNKNOWNID);
  CHECK(r != KWP_EBADCOMMIT || (why && *why));
  CHECK(r != 0 || (!strncmp(id, "t-1-", 4) && ref.partition >= 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  /* byte 0 picks the key and value types; the rest is the text, copied so
   * that reads past its end are caught */
  kwp_fmt_t kf = (kwp_fmt_t)(data[0] % 10), vf = (kwp_fmt_t)(data[0] / 10 % 10);
  size_t len = size - 1;
  char *text = malloc(len ? len : 1);
  memcpy(text, data + 1, len);
  check_reader(text, len);
  check_message(text, len, kf, vf ? vf : KWP_FMT_STRING);
  check_commit(text, len);
  free(text);
  return 0;
}
