/* The authenticator: HTTP basic authentication against the one user of
 * server.basic-auth, compared in constant time. Read-only after startup;
 * any thread. */
#include "auth/auth.h"

#include "codec/json/format.h"
#include "core/base/error.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_CREDENTIALS 1024 /* decoded user:password bytes */

struct kwp_auth {
  int basic;
  unsigned char user_md[SHA256_DIGEST_LENGTH], pass_md[SHA256_DIGEST_LENGTH];
  char *user;
  char challenge[320];
};

kwp_auth_t *kwp_auth_new(const kwp_config_t *cfg) {
  kwp_auth_t *a = calloc(1, sizeof(*a));
  if (!a)
    return NULL;
  const char *user = cfg->server.basic_auth.username;
  const char *pass = cfg->server.basic_auth.password;
  if (!cfg->server.basic_auth.enabled || !user || !pass)
    return a; /* the configuration check requires both when enabled */
  a->basic = 1;
  if (!(a->user = strdup(user))) {
    free(a);
    return NULL;
  }
  /* Digests, so that comparing takes the same time whatever the lengths;
   * the password itself is not kept. */
  SHA256((const unsigned char *)user, strlen(user), a->user_md);
  SHA256((const unsigned char *)pass, strlen(pass), a->pass_md);
  const char *realm = cfg->server.basic_auth.realm;
  char quoted[256];
  size_t n = 0;
  for (const char *r = realm ? realm : ""; *r && n < sizeof(quoted) - 2; r++) {
    if (*r == '"' || *r == '\\')
      quoted[n++] = '\\';
    if (*r != '\r' && *r != '\n')
      quoted[n++] = *r;
  }
  quoted[n] = 0;
  snprintf(a->challenge, sizeof(a->challenge),
           "WWW-Authenticate: Basic realm=\"%s\", charset=\"UTF-8\"\r\n",
           quoted);
  return a;
}

void kwp_auth_free(kwp_auth_t *a) {
  if (!a)
    return;
  OPENSSL_cleanse(a->pass_md, sizeof(a->pass_md));
  free(a->user);
  free(a);
}

int kwp_auth_enabled(const kwp_auth_t *a) {
  return a && a->basic;
}

const char *kwp_auth_challenge(const kwp_auth_t *a) {
  return kwp_auth_enabled(a) ? a->challenge : NULL;
}

/* "Basic <base64>" -> the decoded "user:password" in @p out. */
static int basic_decode(const char *header, char *out, size_t outlen,
                        size_t *n) {
  while (*header == ' ' || *header == '\t')
    header++;
  if (strncasecmp(header, "Basic", 5) != 0 ||
      (header[5] != ' ' && header[5] != '\t'))
    return -1;
  const char *b64 = header + 5;
  while (*b64 == ' ' || *b64 == '\t')
    b64++;
  size_t len = strlen(b64);
  while (len && (b64[len - 1] == ' ' || b64[len - 1] == '\t'))
    len--;
  if (!len || len / 4 * 3 > outlen)
    return -1;
  long got = kwp_base64_decode(b64, len, (uint8_t *)out);
  if (got < 0)
    return -1;
  *n = (size_t)got;
  return 0;
}

int kwp_auth_check(const kwp_auth_t *a, const char *authorization, int repeated,
                   char *principal, size_t principal_len,
                   const char **message) {
  char cred[MAX_CREDENTIALS];
  size_t n;
  *principal = 0;
  if (!kwp_auth_enabled(a))
    return 0;
  if (!authorization || !*authorization) {
    *message = KWP_AUTH_MISSING;
    return KWP_EUNAUTHORIZED;
  }
  *message = KWP_AUTH_INVALID;
  if (repeated || basic_decode(authorization, cred, sizeof(cred), &n) != 0)
    return KWP_EUNAUTHORIZED;
  char *colon = memchr(cred, ':', n);
  if (!colon) {
    OPENSSL_cleanse(cred, sizeof(cred));
    return KWP_EUNAUTHORIZED;
  }
  unsigned char user_md[SHA256_DIGEST_LENGTH], pass_md[SHA256_DIGEST_LENGTH];
  SHA256((const unsigned char *)cred, (size_t)(colon - cred), user_md);
  SHA256((const unsigned char *)colon + 1, n - (size_t)(colon - cred) - 1,
         pass_md);
  OPENSSL_cleanse(cred, sizeof(cred));
  /* both compared, whichever differs */
  int bad = CRYPTO_memcmp(user_md, a->user_md, sizeof(user_md)) |
            CRYPTO_memcmp(pass_md, a->pass_md, sizeof(pass_md));
  OPENSSL_cleanse(pass_md, sizeof(pass_md));
  if (bad)
    return KWP_EUNAUTHORIZED;
  snprintf(principal, principal_len, "%s", a->user);
  return 0;
}
