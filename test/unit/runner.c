/* The one unit-test runner: runs every listed test (or those whose name
 * contains argv[1]) and ends with "N passed, N failed". */
#include "test/unit/unit.h"

#include <stdlib.h>

jmp_buf kwp_unit_jmp;
const char *kwp_unit_current;

#define KWP_TEST_ENTRY(name) void kwp_test_##name(void);
#include "test/unit/list.h"
#undef KWP_TEST_ENTRY

static const struct {
  const char *name;
  void (*fn)(void);
} tests[] = {
#define KWP_TEST_ENTRY(name) {#name, kwp_test_##name},
#include "test/unit/list.h"
#undef KWP_TEST_ENTRY
};

/* setjmp lives in its own frame so no local of main() can be clobbered. */
static int run_one(void (*fn)(void)) {
  if (setjmp(kwp_unit_jmp) != 0)
    return 0;
  fn();
  return 1;
}

int main(int argc, char **argv) {
  int passed = 0, failed = 0;
  const char *filter = argc > 1 ? argv[1] : NULL;
  setvbuf(stdout, NULL, _IONBF, 0);
  for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
    if (filter && !strstr(tests[i].name, filter))
      continue;
    kwp_unit_current = tests[i].name;
    if (run_one(tests[i].fn)) {
      printf("ok %s\n", tests[i].name);
      passed++;
    } else {
      printf("FAIL %s\n", tests[i].name);
      failed++;
    }
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
