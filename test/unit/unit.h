/* Minimal unit-test framework: each test is a void function run in its own
 * process by test/unit/runner.c; ASSERT* print why on stderr and end that
 * process, which marks the test failed. Tests are listed per module in
 * test/unit/list_<module>.h as KWP_TEST_ENTRY(name) lines. */
#ifndef KWP_UNIT_H
#define KWP_UNIT_H

#include <stdio.h>
#include <string.h>

/* The name of the test running in this process. */
extern const char *kwp_unit_current;

/**
 * Mark the current test failed and end its process at once (_exit: no atexit
 * handlers, so no leak report for what the interrupted test still held).
 * @locality any thread of the test's process
 */
_Noreturn void kwp_unit_fail(void);

#define KWP_TEST(name) void kwp_test_##name(void)

#define ASSERT(cond)                                                           \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "  %s: %s:%d: assertion failed: %s\n", kwp_unit_current, \
              __FILE__, __LINE__, #cond);                                      \
      kwp_unit_fail();                                                         \
    }                                                                          \
  } while (0)

#define ASSERT_EQ(a, b)                                                        \
  do {                                                                         \
    long long a_ = (long long)(a), b_ = (long long)(b);                        \
    if (a_ != b_) {                                                            \
      fprintf(stderr, "  %s: %s:%d: %s == %s failed: %lld != %lld\n",          \
              kwp_unit_current, __FILE__, __LINE__, #a, #b, a_, b_);           \
      kwp_unit_fail();                                                         \
    }                                                                          \
  } while (0)

#define ASSERT_STREQ(a, b)                                                     \
  do {                                                                         \
    const char *a_ = (a), *b_ = (b);                                           \
    if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                   \
      fprintf(stderr, "  %s: %s:%d: %s == %s failed: \"%s\" != \"%s\"\n",      \
              kwp_unit_current, __FILE__, __LINE__, #a, #b,                    \
              a_ ? a_ : "(null)", b_ ? b_ : "(null)");                         \
      kwp_unit_fail();                                                         \
    }                                                                          \
  } while (0)

#endif
