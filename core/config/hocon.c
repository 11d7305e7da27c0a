/* The HOCON reader (see hocon.h): a recursive-descent parser producing a
 * tree of text nodes, object merging, and substitution resolution. */
#include "core/config/hocon.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
  const char *s, *p, *line_start, *src;
  int line;
  char *err;
  size_t errlen;
  int failed;
  int depth; /* objects and lists open around the cursor */
} parser_t;

/* Deeper than any configuration needs; the parser, merging and freeing all
 * recurse, and a file nested 50,000 levels deep overflowed the stack. */
#define HOCON_MAX_DEPTH 256

static int fail(parser_t *ps, const char *fmt, ...) {
  if (ps->failed)
    return -1;
  int n = snprintf(ps->err, ps->errlen, "%s:%d:%d: ", ps->src, ps->line,
                   (int)(ps->p - ps->line_start) + 1);
  va_list ap;
  va_start(ap, fmt);
  if (n >= 0 && (size_t)n < ps->errlen)
    vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
  va_end(ap);
  ps->failed = 1;
  return -1;
}

static kwp_hnode_t *node_new(parser_t *ps, kwp_htype_t type) {
  kwp_hnode_t *n = calloc(1, sizeof(*n));
  if (n) {
    n->type = type;
    n->line = ps ? ps->line : 0;
    n->src = ps ? ps->src : "";
  }
  return n;
}

void kwp_hocon_free(kwp_hnode_t *n) {
  while (n) {
    kwp_hnode_t *next = n->next;
    kwp_hocon_free(n->kids);
    kwp_hocon_free(n->prev_value);
    kwp_hocon_free(n->overlay);
    free(n->key);
    free(n->str);
    free(n->env);
    free(n);
    n = next;
  }
}

kwp_hnode_t *kwp_hocon_new_root(void) {
  return node_new(NULL, KWP_H_OBJ);
}

/* --- lexing helpers --- */

static void newline(parser_t *ps) {
  ps->line++;
  ps->line_start = ps->p + 1;
}

/* Skip spaces and comments; with @p nl also newlines. */
static void skip_ws(parser_t *ps, int nl) {
  for (;;) {
    char c = *ps->p;
    if (c == ' ' || c == '\t' || c == '\r') {
      ps->p++;
    } else if (c == '\n' && nl) {
      newline(ps);
      ps->p++;
    } else if (c == '#' || (c == '/' && ps->p[1] == '/')) {
      while (*ps->p && *ps->p != '\n')
        ps->p++;
    } else {
      return;
    }
  }
}

static int is_key_char(char c) {
  return isalnum((unsigned char)c) || c == '-' || c == '_';
}

static char *parse_quoted(parser_t *ps) {
  size_t cap = 32, n = 0;
  char *out = malloc(cap);
  ps->p++; /* opening quote */
  while (out && *ps->p != '"') {
    char c = *ps->p;
    if (!c || c == '\n') {
      free(out);
      fail(ps, "unterminated string");
      return NULL;
    }
    if (c == '\\') {
      c = *++ps->p;
      c = c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c;
      if (!c) {
        free(out);
        fail(ps, "unterminated string");
        return NULL;
      }
    }
    if (n + 2 > cap && !(out = realloc(out, cap *= 2)))
      break;
    out[n++] = c;
    ps->p++;
  }
  if (!out) {
    fail(ps, "out of memory");
    return NULL;
  }
  ps->p++; /* closing quote */
  out[n] = 0;
  return out;
}

/* A dotted key path: segments of key characters or quoted strings. Returns
 * segments NUL-separated in one buffer, count in *nseg. */
static char *parse_key(parser_t *ps, int *nseg) {
  char buf[1024];
  size_t n = 0;
  *nseg = 0;
  for (;;) {
    char *seg = NULL;
    if (*ps->p == '"') {
      if (!(seg = parse_quoted(ps)))
        return NULL;
    } else {
      const char *st = ps->p;
      while (is_key_char(*ps->p))
        ps->p++;
      if (ps->p == st) {
        fail(ps, "syntax error: expected a key");
        return NULL;
      }
      seg = strndup(st, (size_t)(ps->p - st));
    }
    size_t l = strlen(seg);
    if (n + l + 1 >= sizeof(buf)) {
      free(seg);
      fail(ps, "key too long");
      return NULL;
    }
    memcpy(buf + n, seg, l + 1);
    n += l + 1;
    free(seg);
    (*nseg)++;
    if (*ps->p != '.')
      break;
    ps->p++;
  }
  char *out = malloc(n);
  if (out)
    memcpy(out, buf, n);
  return out;
}

/* --- values --- */

static kwp_hnode_t *parse_value(parser_t *ps);
static int parse_members(parser_t *ps, kwp_hnode_t *obj, char close);

static kwp_hnode_t *parse_unquoted(parser_t *ps) {
  const char *st = ps->p;
  if (strchr("=:+", *ps->p)) {
    fail(ps, "syntax error: unexpected '%c', expected a value", *ps->p);
    return NULL;
  }
  while (*ps->p && *ps->p != '\n' && *ps->p != ',' && *ps->p != '}' &&
         *ps->p != ']' && *ps->p != '#' &&
         !(*ps->p == '/' && ps->p[1] == '/')) {
    /* Characters HOCON reserves; ':' stays allowed for host:port values. */
    if (strchr("={[\"$", *ps->p)) {
      fail(ps,
           "syntax error: unexpected '%c' in an unquoted value (quote "
           "it)",
           *ps->p);
      return NULL;
    }
    ps->p++;
  }
  const char *e = ps->p;
  while (e > st && isspace((unsigned char)e[-1]))
    e--;
  if (e == st) {
    fail(ps, "syntax error: expected a value");
    return NULL;
  }
  kwp_hnode_t *n = node_new(ps, KWP_H_STR);
  n->str = strndup(st, (size_t)(e - st));
  if (!strcmp(n->str, "null"))
    n->type = KWP_H_NULL;
  return n;
}

static kwp_hnode_t *parse_subst(parser_t *ps) {
  kwp_hnode_t *n = node_new(ps, KWP_H_SUBST);
  ps->p += 2;
  if (*ps->p == '?') {
    n->optional = 1;
    ps->p++;
  }
  const char *st = ps->p;
  while (*ps->p && *ps->p != '}' && *ps->p != '\n')
    ps->p++;
  if (*ps->p != '}') {
    kwp_hocon_free(n);
    fail(ps, "syntax error: unterminated ${");
    return NULL;
  }
  n->str = strndup(st, (size_t)(ps->p - st));
  ps->p++;
  skip_ws(ps, 0);
  if (*ps->p == '{') { /* ${a.b} { overrides } */
    n->overlay = parse_value(ps);
    if (!n->overlay) {
      kwp_hocon_free(n);
      return NULL;
    }
  }
  return n;
}

static kwp_hnode_t *parse_array(parser_t *ps) {
  kwp_hnode_t *arr = node_new(ps, KWP_H_ARR), **tail = &arr->kids;
  ps->p++;
  for (;;) {
    skip_ws(ps, 1);
    if (*ps->p == ']') {
      ps->p++;
      return arr;
    }
    if (!*ps->p)
      break;
    kwp_hnode_t *v = parse_value(ps);
    if (!v)
      goto fail;
    *tail = v;
    tail = &v->next;
    skip_ws(ps, 0);
    if (*ps->p == ',')
      ps->p++;
    else if (*ps->p != '\n' && *ps->p != ']')
      break;
  }
  fail(ps, "syntax error: expected ',' or ']' in a list");
fail:
  kwp_hocon_free(arr);
  return NULL;
}

static kwp_hnode_t *parse_value(parser_t *ps) {
  char c = *ps->p;
  if ((c == '{' || c == '[') && ps->depth >= HOCON_MAX_DEPTH) {
    fail(ps, "nested deeper than %d levels", HOCON_MAX_DEPTH);
    return NULL;
  }
  if (c == '{') {
    kwp_hnode_t *obj = node_new(ps, KWP_H_OBJ);
    ps->p++;
    ps->depth++;
    int rc = parse_members(ps, obj, '}');
    ps->depth--;
    if (rc != 0) {
      kwp_hocon_free(obj);
      return NULL;
    }
    return obj;
  }
  if (c == '[') {
    ps->depth++;
    kwp_hnode_t *arr = parse_array(ps);
    ps->depth--;
    return arr;
  }
  if (c == '$' && ps->p[1] == '{')
    return parse_subst(ps);
  if (c == '"') {
    kwp_hnode_t *n = node_new(ps, KWP_H_STR);
    if (!(n->str = parse_quoted(ps))) {
      kwp_hocon_free(n);
      return NULL;
    }
    return n;
  }
  return parse_unquoted(ps);
}

/* --- merging --- */

static kwp_hnode_t *obj_find(kwp_hnode_t *obj, const char *key) {
  for (kwp_hnode_t *k = obj->kids; k; k = k->next)
    if (!strcmp(k->key, key))
      return k;
  return NULL;
}

static void obj_unlink(kwp_hnode_t *obj, kwp_hnode_t *child) {
  kwp_hnode_t **pp = &obj->kids;
  while (*pp != child)
    pp = &(*pp)->next;
  *pp = child->next;
  child->next = NULL;
}

static void obj_append(kwp_hnode_t *obj, kwp_hnode_t *child) {
  kwp_hnode_t **pp = &obj->kids;
  while (*pp)
    pp = &(*pp)->next;
  *pp = child;
}

/* Set obj[key] = v (taking ownership), merging objects into objects. */
static void obj_set(kwp_hnode_t *obj, const char *key, kwp_hnode_t *v) {
  kwp_hnode_t *old = obj_find(obj, key);
  /* `a = ${b} {..}` then `a {..}`: the object merges over what `a` will be
   * (the reference's consumer/producer kafka-client-properties are defined
   * so; a user's block must add to them, not drop the inherited keys). */
  if (old && old->type == KWP_H_SUBST && !old->optional &&
      v->type == KWP_H_OBJ &&
      (!old->overlay || old->overlay->type == KWP_H_OBJ)) {
    if (!old->overlay) {
      free(v->key);
      v->key = NULL;
      old->overlay = v;
      return;
    }
    old = old->overlay; /* an object: merged into just below */
  }
  if (old && old->type == KWP_H_OBJ && v->type == KWP_H_OBJ) {
    kwp_hnode_t *k = v->kids;
    v->kids = NULL;
    while (k) {
      kwp_hnode_t *next = k->next;
      k->next = NULL;
      obj_set(old, k->key, k);
      k = next;
    }
    kwp_hocon_free(v);
    return;
  }
  if (v->key != key) { /* merging passes the child's own key */
    free(v->key);
    v->key = strdup(key);
  }
  if (old) {
    obj_unlink(obj, old);
    if (v->type == KWP_H_SUBST && v->optional && !v->prev_value)
      v->prev_value = old; /* kept when the variable is unset */
    else
      kwp_hocon_free(old);
  }
  obj_append(obj, v);
}

/* Walk (creating) the objects of all but the last segment. */
static kwp_hnode_t *obj_path(parser_t *ps, kwp_hnode_t *obj, const char *segs,
                             int nseg, const char **last) {
  const char *s = segs;
  for (int i = 0; i < nseg - 1; i++) {
    kwp_hnode_t *k = obj_find(obj, s);
    if (!k || k->type != KWP_H_OBJ) {
      kwp_hnode_t *n = node_new(ps, KWP_H_OBJ);
      obj_set(obj, s, n);
      k = n;
    }
    obj = k;
    s += strlen(s) + 1;
  }
  *last = s;
  return obj;
}

static int parse_member(parser_t *ps, kwp_hnode_t *obj) {
  int nseg, line = ps->line;
  if (!strncmp(ps->p, "include", 7) && isspace((unsigned char)ps->p[7]))
    return fail(ps, "include is not supported");
  char *segs = parse_key(ps, &nseg);
  if (!segs)
    return -1;
  skip_ws(ps, 0);
  if (*ps->p == '=' || *ps->p == ':') {
    ps->p++;
    skip_ws(ps, 0);
  } else if (*ps->p == '+' && ps->p[1] == '=') {
    free(segs);
    return fail(ps, "'+=' is not supported");
  } else if (*ps->p != '{') {
    fail(ps, "syntax error: expected '=' or ':' after key \"%s\"", segs);
    free(segs);
    return -1;
  }
  kwp_hnode_t *v = parse_value(ps);
  if (!v) {
    free(segs);
    return -1;
  }
  v->line = line;
  const char *last;
  kwp_hnode_t *parent = obj_path(ps, obj, segs, nseg, &last);
  obj_set(parent, last, v);
  free(segs);
  return 0;
}

static int parse_members(parser_t *ps, kwp_hnode_t *obj, char close) {
  for (;;) {
    skip_ws(ps, 1);
    if (*ps->p == close) {
      if (close)
        ps->p++;
      return 0;
    }
    if (!*ps->p)
      return fail(ps, "syntax error: missing '}'");
    if (parse_member(ps, obj) != 0)
      return -1;
    skip_ws(ps, 0);
    if (*ps->p == ',')
      ps->p++;
    else if (*ps->p && *ps->p != '\n' && *ps->p != close)
      return fail(ps, "syntax error: unexpected '%c'", *ps->p);
  }
}

int kwp_hocon_parse(kwp_hnode_t *root, const char *text, const char *src,
                    char *err, size_t errlen) {
  parser_t ps = {text, text, text, src, 1, err, errlen, 0, 0};
  skip_ws(&ps, 1);
  if (*ps.p == '{') {
    ps.p++;
    if (parse_members(&ps, root, '}') != 0)
      return -1;
    skip_ws(&ps, 1);
    if (*ps.p)
      return fail(&ps, "syntax error: text after the closing '}'");
    return 0;
  }
  return parse_members(&ps, root, 0);
}

/* --- substitutions --- */

kwp_hnode_t *kwp_hocon_get(kwp_hnode_t *root, const char *path) {
  char seg[256];
  const char *p = path;
  kwp_hnode_t *n = root;
  while (n && *p) {
    size_t l = strcspn(p, ".");
    if (l >= sizeof(seg) || n->type != KWP_H_OBJ)
      return NULL;
    memcpy(seg, p, l);
    seg[l] = 0;
    n = obj_find(n, seg);
    p += l + (p[l] == '.');
  }
  return n;
}

static kwp_hnode_t *node_copy(const kwp_hnode_t *n) {
  kwp_hnode_t *c = calloc(1, sizeof(*c)), **tail = &c->kids;
  c->type = n->type;
  c->line = n->line;
  c->src = n->src;
  c->str = n->str ? strdup(n->str) : NULL;
  for (const kwp_hnode_t *k = n->kids; k; k = k->next) {
    *tail = node_copy(k);
    (*tail)->key = k->key ? strdup(k->key) : NULL;
    tail = &(*tail)->next;
  }
  return c;
}

static int resolve_node(kwp_hnode_t *root, kwp_hnode_t *n, int depth, char *err,
                        size_t errlen);

/* What ${path} stands for: a copy of a config value, or an env string. */
static kwp_hnode_t *subst_value(kwp_hnode_t *root, kwp_hnode_t *s, int depth,
                                char *err, size_t errlen) {
  kwp_hnode_t *target = kwp_hocon_get(root, s->str);
  if (target && target != s) {
    if (resolve_node(root, target, depth + 1, err, errlen) != 0)
      return NULL;
    return node_copy(target);
  }
  const char *env = getenv(s->str);
  if (env) {
    kwp_hnode_t *v = calloc(1, sizeof(*v));
    v->type = KWP_H_STR;
    v->str = strdup(env);
    v->line = 0;
    v->src = "environment";
    return v;
  }
  if (!s->optional)
    snprintf(err, errlen, "%s:%d: substitution ${%s} is not defined", s->src,
             s->line, s->str);
  return NULL;
}

/* Replace SUBST node @p n in place by its value. */
static int resolve_subst(kwp_hnode_t *root, kwp_hnode_t *n, int depth,
                         char *err, size_t errlen) {
  err[0] = 0;
  /* A chain of optional overrides: settle the older one first. */
  if (n->prev_value &&
      resolve_node(root, n->prev_value, depth + 1, err, errlen) != 0)
    return -1;
  kwp_hnode_t *v = subst_value(root, n, depth, err, errlen);
  if (!v && err[0])
    return -1;
  if (!v && n->prev_value) {
    v = n->prev_value;
    n->prev_value = NULL;
  }
  if (!v) {
    v = calloc(1, sizeof(*v));
    v->type = KWP_H_NULL; /* unset optional: as if never defined */
  }
  if (n->overlay && v->type == KWP_H_OBJ) {
    for (kwp_hnode_t *k = n->overlay->kids; k;) {
      kwp_hnode_t *next = k->next;
      k->next = NULL;
      obj_set(v, k->key, k);
      k = next;
    }
    n->overlay->kids = NULL;
  }
  /* Keep the key and siblings; take the value's content. */
  /* A fresh environment value has no name yet: it is this node's path. */
  int from_env = v->src && !strcmp(v->src, "environment") && !v->env;
  kwp_hocon_free(n->overlay);
  kwp_hocon_free(n->prev_value);
  if (from_env) {
    n->env = n->str; /* the variable's name, for messages */
    n->src = "environment";
    n->line = 0;
  } else {
    free(n->str);
    n->env = v->env; /* an older override's variable, if any */
    if (v->src) {
      n->src = v->src;
      n->line = v->line;
    }
  }
  n->type = v->type;
  n->str = v->str;
  n->kids = v->kids;
  n->optional = 0;
  n->overlay = n->prev_value = NULL;
  free(v->key);
  free(v);
  return 0;
}

static int resolve_node(kwp_hnode_t *root, kwp_hnode_t *n, int depth, char *err,
                        size_t errlen) {
  if (depth > 32) {
    snprintf(err, errlen, "%s:%d: substitution cycle", n->src, n->line);
    return -1;
  }
  if (n->type == KWP_H_SUBST && resolve_subst(root, n, depth, err, errlen) != 0)
    return -1;
  /* An overlay may have brought substitutions of its own. */
  for (kwp_hnode_t *k = n->kids; k; k = k->next)
    if (resolve_node(root, k, depth, err, errlen) != 0)
      return -1;
  return 0;
}

int kwp_hocon_resolve(kwp_hnode_t *root, char *err, size_t errlen) {
  return resolve_node(root, root, 0, err, errlen);
}
