/* Minimal unit-test framework: each test is a void function; ASSERT* abort the
 * current test (longjmp) and mark it failed. Tests are listed per module in
 * test/unit/list_<module>.h as KWP_TEST_ENTRY(name) lines. */
#ifndef KWP_UNIT_H
#define KWP_UNIT_H

#include <setjmp.h>
#include <stdio.h>
#include <string.h>

extern jmp_buf kwp_unit_jmp;
extern const char *kwp_unit_current;

#define KWP_TEST(name) void kwp_test_##name(void)

#define ASSERT(cond)                                                           \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "  %s: %s:%d: assertion failed: %s\n", kwp_unit_current, \
              __FILE__, __LINE__, #cond);                                      \
      longjmp(kwp_unit_jmp, 1);                                                \
    }                                                                          \
  } while (0)

#define ASSERT_EQ(a, b)                                                        \
  do {                                                                         \
    long long a_ = (long long)(a), b_ = (long long)(b);                        \
    if (a_ != b_) {                                                            \
      fprintf(stderr, "  %s: %s:%d: %s == %s failed: %lld != %lld\n",          \
              kwp_unit_current, __FILE__, __LINE__, #a, #b, a_, b_);           \
      longjmp(kwp_unit_jmp, 1);                                                \
    }                                                                          \
  } while (0)

#define ASSERT_STREQ(a, b)                                                     \
  do {                                                                         \
    const char *a_ = (a), *b_ = (b);                                           \
    if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                   \
      fprintf(stderr, "  %s: %s:%d: %s == %s failed: \"%s\" != \"%s\"\n",      \
              kwp_unit_current, __FILE__, __LINE__, #a, #b,                    \
              a_ ? a_ : "(null)", b_ ? b_ : "(null)");                         \
      longjmp(kwp_unit_jmp, 1);                                                \
    }                                                                          \
  } while (0)

#endif
