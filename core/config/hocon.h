/*
 * A HOCON reader for the subset real application.conf files use: nested
 * objects, dotted keys, `=` `:` or none before `{`, `#` and `//` comments,
 * quoted and unquoted strings, lists (also of objects), `${path}` and
 * `${?ENV}` substitutions, a substitution followed by an object (merged), and
 * later definitions overriding earlier ones with objects merged. Scalars are
 * kept as text; the schema (config.c) gives them types. Main thread only.
 */
#ifndef KWP_HOCON_H
#define KWP_HOCON_H

#include <stddef.h>

typedef enum {
  KWP_H_OBJ,
  KWP_H_ARR,
  KWP_H_STR,
  KWP_H_NULL,
  KWP_H_SUBST
} kwp_htype_t;

typedef struct kwp_hnode kwp_hnode_t;
struct kwp_hnode {
  kwp_htype_t type;
  char *key;       /* member name in an object */
  char *str;       /* STR: the text; SUBST: the path */
  int optional;    /* SUBST: ${?...} */
  int line;        /* where it was defined */
  const char *src; /* file name, "built-in defaults" or "environment" */
  char *env;       /* the variable's name when the value came from one */
  kwp_hnode_t *kids, *next; /* OBJ members / ARR items; siblings */
  kwp_hnode_t *prev_value;  /* SUBST: what it overrides (kept if unset) */
  kwp_hnode_t *overlay;     /* SUBST: an object merged over the result */
};

/**
 * Parse @p text and merge it into @p root (an OBJ). @p src names the text in
 * messages and must outlive the tree.
 * @returns 0, or -1 with "src:line:col: ..." in @p err.
 */
int kwp_hocon_parse(kwp_hnode_t *root, const char *text, const char *src,
                    char *err, size_t errlen);

/** Resolve substitutions (config paths first, then the environment). */
int kwp_hocon_resolve(kwp_hnode_t *root, char *err, size_t errlen);

/** A new empty object; free with kwp_hocon_free(). */
kwp_hnode_t *kwp_hocon_new_root(void);

/** The node at dotted @p path, or NULL. */
kwp_hnode_t *kwp_hocon_get(kwp_hnode_t *root, const char *path);

void kwp_hocon_free(kwp_hnode_t *n);

#endif
