#include "core/base/error.h"
#include "test/unit/unit.h"

#include <uv.h>

KWP_TEST(error_codes_distinct) {
  /* Our codes never collide with libuv's, and each maps somewhere sane. */
  ASSERT(KWP_EPARTIAL < -4096);
  ASSERT(KWP_EINTERNAL < KWP_EPARTIAL);
  ASSERT_STREQ(kwp_strerror(KWP_ETOOBIG), "message too big");
  ASSERT_STREQ(kwp_strerror(UV_ECONNRESET), uv_strerror(UV_ECONNRESET));
  ASSERT_EQ(kwp_err_close_code(KWP_EPROTO), 1002);
  ASSERT_EQ(kwp_err_close_code(KWP_EUTF8), 1007);
  ASSERT_EQ(kwp_err_close_code(KWP_ETOOBIG), 1009);
  ASSERT_EQ(kwp_err_close_code(KWP_ESHUTDOWN), 1001);
  ASSERT_EQ(kwp_err_http_status(KWP_EUPGRADE), 426);
  ASSERT_EQ(kwp_err_http_status(KWP_EHDRTOOBIG), 431);
  ASSERT_EQ(kwp_err_http_status(KWP_ENOTFOUND), 404);
  ASSERT_EQ(kwp_err_http_status(UV_ENOMEM), 500);
}
