/* Tests that misbehave on purpose, one per verdict of the runner (ok, FAIL,
 * CRASH, TIMEOUT, exit status, leak). Listed in list_selftest.h, which the
 * runner uses only when KWP_UNIT_SELFTEST=1. */
#include "test/unit/unit.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

KWP_TEST(selftest_pass) {
  printf("selftest_pass: a line on stdout\n");
  fprintf(stderr, "selftest_pass: a line on stderr\n");
  ASSERT_EQ(1 + 1, 2);
}

KWP_TEST(selftest_assert) {
  ASSERT_EQ(1 + 1, 3);
}

/* A store to a page that may not be written: SIGSEGV at a plausible address
 * (not NULL, which UBSan would report before the fault). */
KWP_TEST(selftest_segv) {
  volatile int *p =
      mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT(p != MAP_FAILED);
  *p = 1;
}

/* Hangs, and so does a child it forks: the timeout must kill both (the child
 * holds the runner's stdout open, so a reader waiting for EOF would hang). */
KWP_TEST(selftest_hang) {
  pid_t pid = fork();
  ASSERT(pid >= 0);
  for (;;)
    pause();
}

KWP_TEST(selftest_exit) {
  exit(3);
}

/* exit(0) before the test returns is not a pass. */
KWP_TEST(selftest_exit_zero) {
  exit(0);
}

/* Passes in a plain build; under LeakSanitizer its exit reports the leak and
 * fails it. */
static void *volatile selftest_leaked;

KWP_TEST(selftest_leak) {
  for (int i = 0; i < 8; i++)
    selftest_leaked = malloc(1024);
  selftest_leaked = NULL;
}

/* Passes in a plain build; under UBSan (-fno-sanitize-recover) the signed
 * overflow is reported and ends the test's process. */
static volatile int selftest_int_max = 2147483647, selftest_sum;

KWP_TEST(selftest_ubsan) {
  selftest_sum = selftest_int_max + 1;
}
