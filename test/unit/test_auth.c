/* The authenticator (auth/auth.h): basic credentials against the one
 * configured user. */
#include "auth/auth.h"
#include "core/base/error.h"
#include "test/unit/unit.h"

#include <stdlib.h>

static kwp_auth_t *basic_auth(kwp_config_t **cfg) {
  char err[512];
  *cfg = kwp_config_load_string(
      "kafka.ws.proxy.server.basic-auth {\n enabled = true\n"
      " realm = \"r\\\"1\"\n username = \"u\"\n password = \"p:w\"\n}\n",
      "test.conf", 1, err, sizeof(err));
  ASSERT(*cfg != NULL);
  kwp_auth_t *a = kwp_auth_new(*cfg);
  ASSERT(a != NULL);
  return a;
}

static int check(const kwp_auth_t *a, const char *header, int repeated,
                 const char **why) {
  char principal[32];
  int rc =
      kwp_auth_check(a, header, repeated, principal, sizeof(principal), why);
  if (rc == 0)
    ASSERT_STREQ(principal, kwp_auth_enabled(a) ? "u" : "");
  return rc;
}

KWP_TEST(auth_basic) {
  kwp_config_t *cfg;
  kwp_auth_t *a = basic_auth(&cfg);
  const char *why = NULL;
  ASSERT(kwp_auth_enabled(a));
  ASSERT_STREQ(
      kwp_auth_challenge(a),
      "WWW-Authenticate: Basic realm=\"r\\\"1\", charset=\"UTF-8\"\r\n");
  ASSERT_EQ(check(a, "Basic dTpwOnc=", 0, &why), 0); /* u:p:w */
  ASSERT_EQ(check(a, "  basic   dTpwOnc=  ", 0, &why), 0);
  ASSERT_EQ(check(a, "Basic dTpwOnc=", 1, &why), KWP_EUNAUTHORIZED);
  ASSERT_STREQ(why, KWP_AUTH_INVALID);
  ASSERT_EQ(check(a, NULL, 0, &why), KWP_EUNAUTHORIZED);
  ASSERT_STREQ(why, KWP_AUTH_MISSING);
  ASSERT_EQ(check(a, "", 0, &why), KWP_EUNAUTHORIZED);
  ASSERT_STREQ(why, KWP_AUTH_MISSING);
  static const char *const bad[] = {
      "Basic dTpw",      /* u:p */
      "Basic dTpwOnd4",  /* u:p:wx */
      "Basic dQ==",      /* u, no colon */
      "Basic OnA6dw==",  /* :p:w, no user */
      "Basic dTpwOnc",   /* bad padding */
      "Basic",           /* nothing */
      "Basicx dTpwOnc=", /* another scheme */
      "Bearer dTpwOnc=",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    ASSERT_EQ(check(a, bad[i], 0, &why), KWP_EUNAUTHORIZED);
  /* a long header is refused without reading past its buffer */
  char big[4096];
  memset(big, 'A', sizeof(big) - 1);
  memcpy(big, "Basic ", 6);
  big[sizeof(big) - 1] = 0;
  ASSERT_EQ(check(a, big, 0, &why), KWP_EUNAUTHORIZED);
  kwp_auth_free(a);
  kwp_config_free(cfg);
}

KWP_TEST(auth_none) {
  char err[512];
  kwp_config_t *cfg =
      kwp_config_load_string("", "test.conf", 1, err, sizeof(err));
  ASSERT(cfg != NULL);
  kwp_auth_t *a = kwp_auth_new(cfg);
  const char *why;
  ASSERT(!kwp_auth_enabled(a));
  ASSERT(kwp_auth_challenge(a) == NULL);
  ASSERT_EQ(check(a, NULL, 0, &why), 0);
  ASSERT_EQ(check(a, "Basic garbage", 1, &why), 0);
  kwp_auth_free(a);
  kwp_config_free(cfg);
}
