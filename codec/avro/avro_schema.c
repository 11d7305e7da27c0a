/*
 * Compiling an Avro schema for the converters (see avro_json.h): avro-c parses
 * and checks the text, then its schema objects are walked beside the same
 * JSON, which is where the field defaults are (avro-c drops them). Also the
 * error and field-path helpers. Pure; any thread.
 */
#include "codec/avro/avro_int.h"

#include "core/base/error.h"

#include <avro.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct named {
  avro_schema_t as;
  kwp_av_node_t *node;
} named_t;

typedef struct compiler {
  kwp_avro_schema_t *sch;
  named_t *named; /* named types met so far: links resolve to their node */
  size_t nnamed, named_cap;
  kwp_av_field_t **defs; /* fields with a default, to encode at the end */
  size_t ndefs, defs_cap;
  char *err;
  size_t errlen;
} compiler_t;

static int grow(void **arr, size_t *cap, size_t n, size_t size) {
  if (n < *cap)
    return 0;
  size_t c = *cap ? *cap * 2 : 8;
  void *p = realloc(*arr, c * size);
  if (!p)
    return -1;
  *arr = p;
  *cap = c;
  return 0;
}

static int fail(compiler_t *c, const char *msg, const char *arg) {
  snprintf(c->err, c->errlen, "%s%s", msg, arg ? arg : "");
  return -1;
}

static kwp_av_node_t *node_new(compiler_t *c, kwp_av_type_t type) {
  kwp_av_node_t *n = calloc(1, sizeof(*n));
  if (!n)
    return NULL;
  n->type = type;
  n->next = c->sch->nodes;
  c->sch->nodes = n;
  return n;
}

/* A JSON string literal of @p s followed by @p tail, NUL-terminated. */
static char *json_lit(const char *pre, const char *s, const char *tail) {
  size_t n = strlen(pre) + 6 * strlen(s) + strlen(tail) + 3;
  char *d = malloc(n), *p = d;
  if (!d)
    return NULL;
  p += sprintf(p, "%s\"", pre);
  for (const unsigned char *q = (const unsigned char *)s; *q; q++) {
    if (*q == '"' || *q == '\\')
      p += sprintf(p, "\\%c", *q);
    else if (*q < 0x20)
      p += sprintf(p, "\\u%04x", *q);
    else
      *p++ = (char)*q;
  }
  sprintf(p, "\"%s", tail);
  return d;
}

static int set_name(compiler_t *c, kwp_av_node_t *n, avro_schema_t as) {
  const char *name = avro_schema_name(as), *ns = avro_schema_namespace(as);
  size_t len = strlen(name) + (ns && *ns ? strlen(ns) + 1 : 0) + 1;
  if (!(n->name = malloc(len)) ||
      grow((void **)&c->named, &c->named_cap, c->nnamed, sizeof(named_t)))
    return fail(c, "out of memory", NULL);
  snprintf(n->name, len, "%s%s%s", ns && *ns ? ns : "", ns && *ns ? "." : "",
           name);
  n->short_name = strrchr(n->name, '.') ? strrchr(n->name, '.') + 1 : n->name;
  c->named[c->nnamed++] = (named_t){as, n};
  return 0;
}

static int compile(compiler_t *c, avro_schema_t as, json_t *j,
                   kwp_av_node_t **out);

static int compile_record(compiler_t *c, avro_schema_t as, json_t *j,
                          kwp_av_node_t *n) {
  json_t *jfields = json_object_get(j, "fields");
  n->n = avro_schema_record_size(as);
  if (json_array_size(jfields) != n->n)
    return fail(c, "schema walk out of step at record ", n->name);
  if (n->n && !(n->fields = calloc(n->n, sizeof(*n->fields))))
    return fail(c, "out of memory", NULL);
  for (size_t i = 0; i < n->n; i++) {
    kwp_av_field_t *f = &n->fields[i];
    json_t *jf = json_array_get(jfields, i);
    const char *name = avro_schema_record_field_name(as, (int)i);
    if (!name || !(f->name = strdup(name)) ||
        !(f->key = json_lit("", name, ":")))
      return fail(c, "out of memory", NULL);
    f->key_len = strlen(f->key);
    if (compile(c, avro_schema_record_field_get_by_index(as, (int)i),
                json_object_get(jf, "type"), &f->type))
      return -1;
    if ((f->jdef = json_object_get(jf, "default"))) {
      if (grow((void **)&c->defs, &c->defs_cap, c->ndefs, sizeof(f)))
        return fail(c, "out of memory", NULL);
      c->defs[c->ndefs++] = f;
    }
  }
  return 0;
}

static int compile_enum(compiler_t *c, avro_schema_t as, kwp_av_node_t *n) {
  int count = avro_schema_enum_number_of_symbols(as);
  n->n = count > 0 ? (size_t)count : 0;
  if (!(n->symbols = calloc(n->n + 1, sizeof(char *))) ||
      !(n->sym_json = calloc(n->n + 1, sizeof(char *))))
    return fail(c, "out of memory", NULL);
  for (size_t i = 0; i < n->n; i++) {
    const char *s = avro_schema_enum_get(as, (int)i);
    if (!s || !(n->symbols[i] = strdup(s)) ||
        !(n->sym_json[i] = json_lit("", s, "")))
      return fail(c, "out of memory", NULL);
  }
  return 0;
}

static int compile_union(compiler_t *c, avro_schema_t as, json_t *j,
                         kwp_av_node_t *n) {
  n->n = avro_schema_union_size(as);
  if (!json_is_array(j) || json_array_size(j) != n->n)
    return fail(c, "schema walk out of step at a union", NULL);
  if (!(n->kids = calloc(n->n, sizeof(*n->kids))) ||
      !(n->wrap = calloc(n->n, sizeof(char *))))
    return fail(c, "out of memory", NULL);
  for (size_t i = 0; i < n->n; i++) {
    if (compile(c, avro_schema_union_branch(as, (int)i), json_array_get(j, i),
                &n->kids[i]))
      return -1;
    if (n->kids[i]->type == KWP_AV_UNION)
      return fail(c, "a union directly inside a union", NULL);
    if (!(n->wrap[i] = json_lit("{", kwp_avro__branch_name(n->kids[i]), ":")))
      return fail(c, "out of memory", NULL);
  }
  return 0;
}

static kwp_av_node_t *find_named(compiler_t *c, avro_schema_t as) {
  for (size_t i = 0; i < c->nnamed; i++)
    if (c->named[i].as == as)
      return c->named[i].node;
  return NULL;
}

/* Walk avro-c's schema @p as and its JSON @p j (which mirror each other:
 * avro-c builds one from the other) into a node. */
static int compile(compiler_t *c, avro_schema_t as, json_t *j,
                   kwp_av_node_t **out) {
  static const struct {
    avro_type_t at;
    kwp_av_type_t t;
  } map[] = {
      {AVRO_NULL, KWP_AV_NULL},     {AVRO_BOOLEAN, KWP_AV_BOOLEAN},
      {AVRO_INT32, KWP_AV_INT},     {AVRO_INT64, KWP_AV_LONG},
      {AVRO_FLOAT, KWP_AV_FLOAT},   {AVRO_DOUBLE, KWP_AV_DOUBLE},
      {AVRO_BYTES, KWP_AV_BYTES},   {AVRO_STRING, KWP_AV_STRING},
      {AVRO_RECORD, KWP_AV_RECORD}, {AVRO_ENUM, KWP_AV_ENUM},
      {AVRO_ARRAY, KWP_AV_ARRAY},   {AVRO_MAP, KWP_AV_MAP},
      {AVRO_UNION, KWP_AV_UNION},   {AVRO_FIXED, KWP_AV_FIXED},
  };
  if (!as || !j)
    return fail(c, "schema walk out of step", NULL);
  avro_type_t at = avro_typeof(as);
  if (at == AVRO_LINK) {
    /* a named type used again: it was defined earlier in the text (or is
     * the record being defined), so its node exists */
    if (!(*out = find_named(c, avro_schema_link_target(as))))
      return fail(c, "unresolved named type", NULL);
    return 0;
  }
  kwp_av_node_t *n = NULL;
  for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
    if (map[i].at == at && !(n = node_new(c, map[i].t)))
      return fail(c, "out of memory", NULL);
  if (!n)
    return fail(c, "unsupported Avro type", NULL);
  *out = n;
  if (at == AVRO_RECORD || at == AVRO_ENUM || at == AVRO_FIXED) {
    if (set_name(c, n, as))
      return -1;
  }
  switch (at) {
  case AVRO_RECORD:
    return compile_record(c, as, j, n);
  case AVRO_ENUM:
    return compile_enum(c, as, n);
  case AVRO_FIXED:
    if (avro_schema_fixed_size(as) < 0)
      return fail(c, "negative fixed size in ", n->name);
    n->n = (size_t)avro_schema_fixed_size(as);
    return 0;
  case AVRO_ARRAY:
  case AVRO_MAP:
    if (!(n->kids = calloc(1, sizeof(*n->kids))))
      return fail(c, "out of memory", NULL);
    return compile(c,
                   at == AVRO_ARRAY ? avro_schema_array_items(as)
                                    : avro_schema_map_values(as),
                   json_object_get(j, at == AVRO_ARRAY ? "items" : "values"),
                   &n->kids[0]);
  case AVRO_UNION:
    return compile_union(c, as, j, n);
  default:
    return 0;
  }
}

/* A lower bound of a datum's size. A record containing itself other than
 * through a union, array or map (no finite datum) counts 0 for the loop. */
static size_t min_size(kwp_av_node_t *n) {
  static const size_t fixed_sizes[] = {
      [KWP_AV_NULL] = 0,  [KWP_AV_BOOLEAN] = 1, [KWP_AV_INT] = 1,
      [KWP_AV_LONG] = 1,  [KWP_AV_FLOAT] = 4,   [KWP_AV_DOUBLE] = 8,
      [KWP_AV_BYTES] = 1, [KWP_AV_STRING] = 1,  [KWP_AV_ENUM] = 1,
      [KWP_AV_ARRAY] = 1, [KWP_AV_MAP] = 1,     [KWP_AV_UNION] = 1,
  };
  if (n->type == KWP_AV_FIXED)
    return n->n;
  if (n->type != KWP_AV_RECORD)
    return fixed_sizes[n->type];
  if (n->visiting)
    return 0;
  n->visiting = 1;
  size_t sum = 0;
  for (size_t i = 0; i < n->n; i++)
    sum += min_size(n->fields[i].type);
  n->visiting = 0;
  return sum;
}

/* Encode every default once; one that does not fit leaves its field
 * required (the registry may hold schemas Java parsed without checking). */
static int encode_defaults(compiler_t *c) {
  kwp_sbuf_t b = {0};
  kwp_av_err_t e;
  for (size_t i = 0; i < c->ndefs; i++) {
    kwp_av_field_t *f = c->defs[i];
    b.len = 0;
    kwp_avro__err_init(&e);
    if (kwp_avro__encode(f->type, f->jdef, 1, &b, &e) == 0 && !b.oom) {
      if (!(f->def = malloc(b.len ? b.len : 1))) {
        b.oom = 1;
        break;
      }
      memcpy(f->def, b.data, b.len);
      f->def_len = b.len;
    } else {
      f->bad_def = 1;
    }
  }
  int oom = b.oom;
  kwp_sbuf_free(&b);
  for (size_t i = 0; i < c->ndefs; i++)
    c->defs[i]->jdef = NULL; /* the JSON is about to go */
  return oom ? fail(c, "out of memory", NULL) : 0;
}

/* Drop what avro-c ignores but cannot parse: its jansson refuses \u0000,
 * common in bytes defaults ("\u0000") and possible in docs. */
static void strip(json_t *j) {
  const char *key;
  json_t *v;
  size_t i;
  if (json_is_object(j)) {
    json_object_del(j, "default");
    json_object_del(j, "doc");
    json_object_foreach(j, key, v) {
      strip(v);
    }
  } else if (json_is_array(j)) {
    json_array_foreach(j, i, v) {
      strip(v);
    }
  }
}

static int avro_parse(json_t *j, avro_schema_t *as, char *errstr,
                      size_t errlen) {
  json_t *copy = json_deep_copy(j);
  char *text = NULL;
  int r = -1;
  if (copy) {
    strip(copy);
    text = json_dumps(copy, JSON_ENCODE_ANY | JSON_COMPACT);
  }
  if (!text)
    snprintf(errstr, errlen, "out of memory");
  else if (avro_schema_from_json_length(text, strlen(text), as))
    snprintf(errstr, errlen, "invalid Avro schema: %s", avro_strerror());
  else
    r = 0;
  free(text);
  json_decref(copy);
  return r;
}

kwp_avro_schema_t *kwp_avro_schema_new(const char *json, size_t len,
                                       char *errstr, size_t errlen) {
  compiler_t c = {.err = errstr, .errlen = errlen};
  avro_schema_t as = NULL;
  json_error_t je;
  json_t *j = json_loadb(json, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
  if (!j) {
    snprintf(errstr, errlen, "schema is not JSON: %s at position %d", je.text,
             je.position);
    return NULL;
  }
  if (avro_parse(j, &as, errstr, errlen)) {
    json_decref(j);
    return NULL;
  }
  if (!(c.sch = calloc(1, sizeof(*c.sch)))) {
    fail(&c, "out of memory", NULL);
    goto fail;
  }
  if (compile(&c, as, j, &c.sch->root) || encode_defaults(&c))
    goto fail;
  for (kwp_av_node_t *n = c.sch->nodes; n; n = n->next)
    n->min_size = min_size(n);
  free(c.named);
  free(c.defs);
  avro_schema_decref(as);
  json_decref(j);
  return c.sch;
fail:
  for (size_t i = 0; i < c.ndefs; i++)
    c.defs[i]->jdef = NULL;
  kwp_avro_schema_free(c.sch);
  free(c.named);
  free(c.defs);
  avro_schema_decref(as);
  json_decref(j);
  return NULL;
}

static void free_strings(char **s, size_t n) {
  for (size_t i = 0; s && i < n; i++)
    free(s[i]);
  free(s);
}

void kwp_avro_schema_free(kwp_avro_schema_t *sch) {
  if (!sch)
    return;
  kwp_av_node_t *n = sch->nodes;
  while (n) {
    kwp_av_node_t *next = n->next;
    for (size_t i = 0; n->fields && i < n->n; i++) {
      free(n->fields[i].name);
      free(n->fields[i].key);
      free(n->fields[i].def);
    }
    free(n->fields);
    free_strings(n->symbols, n->n);
    free_strings(n->sym_json, n->n);
    free_strings(n->wrap, n->n);
    free(n->kids);
    free(n->name);
    free(n);
    n = next;
  }
  free(sch);
}

/* --- errors and names --- */

void kwp_avro__err_init(kwp_av_err_t *e) {
  e->kind = KWP_AV_ERR_AT;
  e->msg[0] = 0;
  e->at = sizeof(e->path) - 1;
  e->path[e->at] = 0;
  e->cut = 0;
}

void kwp_avro__fail(kwp_av_err_t *e, int kind, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  e->kind = kind;
  vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
  va_end(ap);
}

static void prepend(kwp_av_err_t *e, const char *s, size_t n) {
  if (e->cut || n > e->at) {
    e->cut = 1;
    return;
  }
  e->at -= n;
  memcpy(e->path + e->at, s, n);
}

void kwp_avro__path_field(kwp_av_err_t *e, const char *name) {
  size_t n = strlen(name);
  int dot = e->path[e->at] && e->path[e->at] != '[';
  if (n + (size_t)dot > e->at) { /* the name whole or not at all */
    e->cut = 1;
    return;
  }
  if (dot)
    prepend(e, ".", 1);
  prepend(e, name, n);
}

void kwp_avro__path_index(kwp_av_err_t *e, size_t i) {
  char buf[32];
  prepend(e, buf, (size_t)snprintf(buf, sizeof(buf), "[%zu]", i));
}

void kwp_avro__path_key(kwp_av_err_t *e, const char *key, size_t len) {
  char buf[72];
  /* long keys are cut; quotes in keys are left as they are, for reading */
  int n = snprintf(buf, sizeof(buf), "[\"%.*s%s\"]", len > 60 ? 60 : (int)len,
                   key, len > 60 ? "..." : "");
  prepend(e, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

void kwp_avro__why(const kwp_av_err_t *e, char *why, size_t whylen) {
  const char *path = e->path + e->at, *cut = e->cut ? "..." : "";
  if (e->kind == KWP_AV_ERR_MISSING)
    snprintf(why, whylen, "missing field '%s%s'%s", cut, path, e->msg);
  else if (e->kind == KWP_AV_ERR_UNKNOWN)
    snprintf(why, whylen, "unknown field '%s%s'%s", cut, path, e->msg);
  else if (*path)
    snprintf(why, whylen, "field '%s%s': %s", cut, path, e->msg);
  else
    snprintf(why, whylen, "%s", e->msg);
}

int kwp_avro__finish(kwp_sbuf_t *out, size_t start, int r,
                     const kwp_av_err_t *e, char *why, size_t whylen) {
  if (r == 0 && !out->oom)
    return 0;
  out->len = start;
  if (out->oom) {
    snprintf(why, whylen, "out of memory");
    return KWP_ENOMEM;
  }
  kwp_avro__why(e, why, whylen);
  return KWP_EBADVALUE;
}

const char *kwp_avro__branch_name(const kwp_av_node_t *n) {
  static const char *names[] = {
      [KWP_AV_NULL] = "null",     [KWP_AV_BOOLEAN] = "boolean",
      [KWP_AV_INT] = "int",       [KWP_AV_LONG] = "long",
      [KWP_AV_FLOAT] = "float",   [KWP_AV_DOUBLE] = "double",
      [KWP_AV_BYTES] = "bytes",   [KWP_AV_STRING] = "string",
      [KWP_AV_RECORD] = "record", [KWP_AV_ENUM] = "enum",
      [KWP_AV_ARRAY] = "array",   [KWP_AV_MAP] = "map",
      [KWP_AV_UNION] = "union",   [KWP_AV_FIXED] = "fixed",
  };
  return n->name ? n->name : names[n->type];
}

void kwp_avro__type_desc(const kwp_av_node_t *n, char *buf, size_t len) {
  const char *kind = n->type == KWP_AV_RECORD ? "record"
                     : n->type == KWP_AV_ENUM ? "enum"
                                              : "fixed";
  if (n->type == KWP_AV_FIXED) {
    snprintf(buf, len, "fixed %s (%zu bytes)", n->name, n->n);
  } else if (n->name) {
    snprintf(buf, len, "%s %s", kind, n->name);
  } else if (n->type == KWP_AV_UNION) {
    size_t at = (size_t)snprintf(buf, len, "one of ");
    for (size_t i = 0; i < n->n && at < len; i++)
      at += (size_t)snprintf(buf + at, len - at, "%s%s", i ? ", " : "",
                             kwp_avro__branch_name(n->kids[i]));
  } else {
    snprintf(buf, len, "%s", kwp_avro__branch_name(n));
  }
}
