/* The schema registry client's HTTP side: libcurl, one blocking request at a
 * time per thread-pool thread; the registry's location, credentials and
 * timeouts. Credentials never reach a message or a log line. */
#include "core/base/error.h"
#include "core/registry/registry_int.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static size_t body_write(char *data, size_t size, size_t nmemb, void *userp) {
  body_t *b = userp;
  size_t n = size * nmemb;
  if (b->n + n > REG_MAX_BODY)
    return 0;
  char *p = realloc(b->p, b->n + n + 1);
  if (!p)
    return 0;
  memcpy(p + b->n, data, n);
  b->p = p;
  b->n += n;
  p[b->n] = '\0';
  return n;
}

/* One request; 0 with @status and @out when an answer came, else
 * KWP_EUNAVAILABLE (transport) or KWP_ENOMEM with @msg. */
int kwp_registry__http(kwp_reg_http_t *reg, const char *path, const char *post,
                       long *status, body_t *out, char *msg, size_t msglen) {
  char url[2048];
  if ((size_t)snprintf(url, sizeof(url), "%s%s", reg->url, path) >=
      sizeof(url)) {
    snprintf(msg, msglen, "schema registry request path too long");
    return KWP_EBADREQ;
  }
  CURL *c = curl_easy_init();
  struct curl_slist *hdrs =
      curl_slist_append(NULL, "Accept: application/vnd.schemaregistry.v1+json, "
                              "application/json");
  if (post)
    hdrs = curl_slist_append(
        hdrs, "Content-Type: application/vnd.schemaregistry.v1+json");
  if (!c || !hdrs) {
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    snprintf(msg, msglen, "out of memory");
    return KWP_ENOMEM;
  }
  char err[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* we are threaded */
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, reg->connect_ms);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, reg->total_ms);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_write);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "kafka-ws-proxy");
  if (reg->userpwd) {
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(c, CURLOPT_USERPWD, reg->userpwd);
  }
  if (post)
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
  atomic_fetch_add(&reg->requests, 1);
  CURLcode cc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
  curl_slist_free_all(hdrs);
  curl_easy_cleanup(c);
  if (cc == CURLE_OK)
    return 0;
  /* The URL has no credentials, and curl's texts name host and port only. */
  snprintf(msg, msglen, "schema registry %s unavailable: %.150s", reg->url,
           err[0] ? err : curl_easy_strerror(cc));
  return cc == CURLE_OUT_OF_MEMORY ? KWP_ENOMEM : KWP_EUNAVAILABLE;
}

/* A non-2xx answer as one of our codes, with the registry's own words. */
int kwp_registry__http_error(long status, const body_t *b, const char *what,
                             char *msg, size_t msglen) {
  json_t *doc = b->p ? json_loadb(b->p, b->n, 0, NULL) : NULL;
  const char *text = json_string_value(json_object_get(doc, "message"));
  long long code = json_integer_value(json_object_get(doc, "error_code"));
  int err = status == 404                   ? KWP_ENOTFOUND
            : status >= 500 || status < 100 ? KWP_EUNAVAILABLE
            : status == 401 || status == 403
                ? KWP_EUNAVAILABLE /* the proxy's credentials */
            : status == 409 || status == 422 ? KWP_EBADVALUE
                                             : KWP_EBADREQ;
  if (code)
    snprintf(msg, msglen, "%s: schema registry answered %ld (%lld) %.160s",
             what, status, code, text ? text : "");
  else
    snprintf(msg, msglen, "%s: schema registry answered %ld %.160s", what,
             status, text ? text : "");
  json_decref(doc);
  return err;
}

/* The schema of an answer {"schema": "...", "schemaType"?, "references"?}.
 * @returns 0 with a malloc'd @text, or KWP_EBADVALUE / KWP_EBADREQ. */
int kwp_registry__answer_schema(json_t *doc, int32_t id, char **text, char *msg,
                                size_t msglen) {
  const char *type = json_string_value(json_object_get(doc, "schemaType"));
  json_t *refs = json_object_get(doc, "references");
  const char *schema = json_string_value(json_object_get(doc, "schema"));
  if (type && strcmp(type, "AVRO") != 0) {
    snprintf(msg, msglen, "schema %d is %.40s, not AVRO", id, type);
    return KWP_EBADVALUE;
  }
  if (json_array_size(refs) > 0) {
    snprintf(msg, msglen, "schema %d has references (not supported)", id);
    return KWP_EBADVALUE;
  }
  if (!schema) {
    snprintf(msg, msglen, "schema %d: the registry's answer has no schema", id);
    return KWP_EBADREQ;
  }
  return (*text = strdup(schema)) ? 0 : KWP_ENOMEM;
}

int kwp_registry__url_escape(const char *s, char *out, size_t outlen) {
  char *e = curl_easy_escape(NULL, s, 0);
  int ok = e && (size_t)snprintf(out, outlen, "%s", e) < outlen;
  curl_free(e);
  return ok ? 0 : KWP_EBADREQ;
}

/* A property by its name or with the "schema.registry." prefix. */
static const char *prop(const kwp_props_t *props, const char *key) {
  char k[128];
  const char *v = props ? kwp_props_get(props, key) : NULL;
  if (!v && props) {
    snprintf(k, sizeof(k), "schema.registry.%s", key);
    v = kwp_props_get(props, k);
  }
  return v;
}

static int prop_ms(const kwp_props_t *props, const char *key, long def,
                   long *out, char *errbuf, size_t errlen) {
  const char *v = prop(props, key);
  char *end;
  *out = def;
  if (!v)
    return 0;
  errno = 0;
  long ms = strtol(v, &end, 10);
  if (errno || end == v || *end || ms <= 0 || ms > 600000) {
    snprintf(errbuf, errlen,
             "schema-registry property %s must be 1..600000 (ms), not %.40s",
             key, v);
    return KWP_ECONFIG;
  }
  *out = ms;
  return 0;
}

/* Split @url into the URL without user info (@reg->url) and, when the
 * credentials come from the URL, @reg->userpwd. */
static int parse_url(kwp_reg_http_t *reg, const char *url, int from_url,
                     char *errbuf, size_t errlen) {
  CURLU *u = curl_url();
  char *user = NULL, *pass = NULL, *clean = NULL;
  int rc = KWP_ECONFIG;
  if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
    snprintf(errbuf, errlen, "schema-registry.url is not a valid URL");
    goto done;
  }
  char *scheme = NULL;
  curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
  int http = scheme && (!strcmp(scheme, "http") || !strcmp(scheme, "https"));
  curl_free(scheme);
  if (!http) {
    snprintf(errbuf, errlen, "schema-registry.url must be http or https");
    goto done;
  }
  curl_url_get(u, CURLUPART_USER, &user, CURLU_URLDECODE);
  curl_url_get(u, CURLUPART_PASSWORD, &pass, CURLU_URLDECODE);
  curl_url_set(u, CURLUPART_USER, NULL, 0);
  curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
  if (curl_url_get(u, CURLUPART_URL, &clean, 0) != CURLUE_OK ||
      !(reg->url = strdup(clean))) {
    snprintf(errbuf, errlen, "out of memory");
    goto done;
  }
  size_t n = strlen(reg->url);
  while (n && reg->url[n - 1] == '/')
    reg->url[--n] = '\0';
  if (from_url && user) {
    size_t len = strlen(user) + (pass ? strlen(pass) : 0) + 2;
    if (!(reg->userpwd = malloc(len))) {
      snprintf(errbuf, errlen, "out of memory");
      goto done;
    }
    snprintf(reg->userpwd, len, "%s:%s", user, pass ? pass : "");
  }
  rc = 0;
done:
  if (pass)
    memset(pass, 0, strlen(pass));
  curl_free(user);
  curl_free(pass);
  curl_free(clean);
  curl_url_cleanup(u);
  return rc;
}

/* basic.auth.credentials.source: URL, USER_INFO, or by default USER_INFO
 * when basic.auth.user.info is set, else URL (Confluent's meaning).
 * USER_INFO without user info (the built-in configuration's default) takes
 * what the URL has. */
static int credentials(kwp_reg_http_t *reg, const char *url,
                       const kwp_props_t *props, char *errbuf, size_t errlen) {
  const char *source = prop(props, "basic.auth.credentials.source");
  const char *info = prop(props, "basic.auth.user.info");
  int from_url;
  if (!source)
    from_url = !info;
  else if (!strcasecmp(source, "URL"))
    from_url = 1;
  else if (!strcasecmp(source, "USER_INFO"))
    from_url = 0;
  else {
    snprintf(errbuf, errlen,
             "schema-registry basic.auth.credentials.source %.30s is not "
             "supported (URL or USER_INFO)",
             source);
    return KWP_ECONFIG;
  }
  if (!from_url && (!info || !*info))
    from_url = 1; /* the default config says USER_INFO, and gives none */
  if (!from_url && !strchr(info, ':')) {
    snprintf(errbuf, errlen,
             "schema-registry basic.auth.user.info must be "
             "user:password");
    return KWP_ECONFIG;
  }
  if (parse_url(reg, url, from_url, errbuf, errlen))
    return KWP_ECONFIG;
  if (!from_url && !(reg->userpwd = strdup(info))) {
    snprintf(errbuf, errlen, "out of memory");
    return KWP_ENOMEM;
  }
  return 0;
}

int kwp_registry__http_init(kwp_reg_http_t *h, const char *url,
                            const kwp_props_t *props, char *errbuf,
                            size_t errlen) {
  atomic_init(&h->requests, 0);
  return prop_ms(props, "connect.timeout.ms", REG_CONNECT_TIMEOUT_MS,
                 &h->connect_ms, errbuf, errlen) ||
                 prop_ms(props, "request.timeout.ms", REG_TOTAL_TIMEOUT_MS,
                         &h->total_ms, errbuf, errlen)
             ? KWP_ECONFIG
             : credentials(h, url, props, errbuf, errlen);
}

void kwp_registry__http_free(kwp_reg_http_t *h) {
  if (h->userpwd)
    memset(h->userpwd, 0, strlen(h->userpwd));
  free(h->userpwd);
  free(h->url);
  h->userpwd = h->url = NULL;
}
