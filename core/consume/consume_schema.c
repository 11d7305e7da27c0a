/* avro_registry keys and values of a /socket/out socket: every record names
 * its schema by id (Confluent wire format). A record whose schema is not in
 * the registry client's cache waits, with the socket paused, while that id
 * is fetched, so records stay in order and the loop never waits; an id the
 * registry cannot give is not asked for again for SCHEMA_RETRY_MS, and its
 * records go out with an error and their bytes in base64. Worker thread. */
#include "codec/avro/wire.h"
#include "core/base/error.h"
#include "core/base/log.h"
#include "core/consume/consume_int.h"
#include "core/registry/registry.h"

#include <stdio.h>
#include <string.h>

static uint64_t now_ms(consume_sess_t *s) {
  return uv_now(kwp_worker_loop(s->wk));
}

/* The recent failure of @p id, or NULL. */
static const char *failed(consume_sess_t *s, int32_t id) {
  for (int i = 0; i < SCHEMA_FAILED_MAX; i++)
    if (s->sr_failed[i].id == id && s->sr_failed[i].until > now_ms(s))
      return s->sr_failed[i].why;
  return NULL;
}

static const kwp_avro_schema_t *reader(void *arg, int32_t id,
                                       const char **why) {
  consume_sess_t *s = arg;
  const kwp_schema_t *sch =
      kwp_registry_cached_id(kwp_worker_registry(s->wk), id);
  if (sch)
    return sch->avro;
  *why = failed(s, id);
  if (!*why)
    *why = "not fetched from the schema registry";
  return NULL;
}

void kwp_consume__sr_init(consume_sess_t *s) {
  if (s->opts.key_fmt != KWP_FMT_AVRO_REGISTRY &&
      s->opts.val_fmt != KWP_FMT_AVRO_REGISTRY)
    return;
  s->sr.reader = reader;
  s->sr.arg = s;
  s->opts.sr = &s->sr;
}

static void fetched(void *arg, int err, const kwp_schema_t *sch,
                    const char *message) {
  consume_sess_t *s = arg;
  int32_t id = s->sr_fetching;
  s->sr_fetching = 0;
  if (err) {
    unsigned i = s->sr_failed_next++ % SCHEMA_FAILED_MAX;
    s->sr_failed[i].id = id;
    s->sr_failed[i].until = now_ms(s) + SCHEMA_RETRY_MS;
    snprintf(s->sr_failed[i].why, sizeof(s->sr_failed[i].why), "%s", message);
    KWP_LOG_RL(KWP_LOG_WARN, "registry", "group %s topic %s: schema %d: %s",
               s->group_id, s->topic, id, message);
  }
  if (s->state == ST_OPEN)
    kwp_consume__pause_clear(s, CPAUSE_SCHEMA); /* hands the held on */
  kwp_consume__unref(s);
}

/* The id @p p names, when the registry still has to be asked for it. */
static int missing(consume_sess_t *s, kwp_fmt_t fmt, const void *p, size_t len,
                   int32_t *id) {
  const uint8_t *body;
  size_t body_len;
  return fmt == KWP_FMT_AVRO_REGISTRY && p &&
         kwp_avro_wire_parse(p, len, id, &body, &body_len) == 0 &&
         !kwp_registry_cached_id(kwp_worker_registry(s->wk), *id) &&
         !failed(s, *id);
}

int kwp_consume__sr_ready(consume_sess_t *s, const rd_kafka_message_t *m) {
  int32_t id;
  if (m->err || (!missing(s, s->opts.key_fmt, m->key, m->key_len, &id) &&
                 !missing(s, s->opts.val_fmt, m->payload, m->len, &id)))
    return 1;
  kwp_consume__pause_set(s, CPAUSE_SCHEMA);
  if (s->sr_fetching)
    return 0; /* one at a time; this record's turn comes after */
  s->sr_fetching = id;
  s->refs++;
  if (kwp_registry_by_id(kwp_worker_registry(s->wk), kwp_worker_loop(s->wk), id,
                         fetched, s) != 0)
    fetched(s, KWP_ENOMEM, NULL, "out of memory");
  return 0;
}
