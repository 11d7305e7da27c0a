/* The one unit-test runner. Each listed test (or each whose name contains
 * FILTER) runs in its own forked process and process group, with a time limit,
 * so a crash, a hang, an exit() or a sanitizer report fails that test alone.
 * The parent is single-threaded and initialises nothing (no loop, no
 * librdkafka): it forks, waits (SIGCHLD through a self-pipe), kills on timeout
 * and prints one result line per test as it ends, then "N passed, N failed". */
#include "test/unit/unit.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

/* Slowest test today ~1 s (it starts a dev-mode Kafka cluster); 30x margin
 * covers sanitizer builds on a loaded 2-core CI machine. */
#define KWP_UNIT_TIMEOUT_DEFAULT 30.0
#define KWP_UNIT_JOBS_MAX 64

/* What a test process wrote in its shared verdict byte before exiting. */
#define KWP_UNIT_RETURNED 'P' /* the test function returned */
#define KWP_UNIT_ASSERTED 'F' /* an ASSERT failed (kwp_unit_fail) */

const char *kwp_unit_current;
static volatile unsigned char *kwp_unit_verdict; /* in the test's process */

typedef struct kwp_unit_test {
  const char *name;
  void (*fn)(void);
} kwp_unit_test_t;

#define KWP_TEST_ENTRY(name) void kwp_test_##name(void);
#include "test/unit/list.h"
#include "test/unit/list_selftest.h"
#undef KWP_TEST_ENTRY

#define KWP_TEST_ENTRY(name) {#name, kwp_test_##name},
static const kwp_unit_test_t tests[] = {
#include "test/unit/list.h"
};
/* The runner's own check (test/e2e/test_unit_runner.py): tests that crash,
 * hang, fail and exit. Listed only when KWP_UNIT_SELFTEST=1. */
static const kwp_unit_test_t selftests[] = {
#include "test/unit/list_selftest.h"
};
#undef KWP_TEST_ENTRY

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* A running test process. pid 0: the slot is free. */
typedef struct kwp_unit_slot {
  const kwp_unit_test_t *test;
  pid_t pid;
  double deadline; /* monotonic seconds; 0: no limit */
  int out_fd;      /* its captured stdout+stderr with -j > 1, else -1 */
  int timed_out;
} kwp_unit_slot_t;

typedef struct kwp_unit_run {
  const char *filter;
  int list, jobs;
  double timeout; /* seconds; 0: no limit */
  const kwp_unit_test_t **sel;
  size_t nsel;
  kwp_unit_slot_t slots[KWP_UNIT_JOBS_MAX];
  volatile unsigned char *verdicts; /* one byte per slot, shared with tests */
  int passed, failed;
  const char **failed_names; /* recalled before the summary */
} kwp_unit_run_t;

static int sig_pipe[2] = {-1, -1};
static volatile sig_atomic_t interrupted;

_Noreturn void kwp_unit_fail(void) {
  if (kwp_unit_verdict)
    *kwp_unit_verdict = KWP_UNIT_ASSERTED;
  fflush(NULL);
  _exit(1);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- signals: SIGCHLD and interrupts wake poll() through a self-pipe ---- */

static void on_signal(int sig) {
  int saved = errno;
  if (sig != SIGCHLD)
    interrupted = sig;
  ssize_t r = write(sig_pipe[1], "x", 1); /* full pipe: a wakeup is pending */
  (void)r;
  errno = saved;
}

static const int handled_signals[] = {SIGCHLD, SIGINT, SIGTERM, SIGHUP};

static int signals_install(void) {
  if (pipe(sig_pipe) != 0)
    return -1;
  for (int i = 0; i < 2; i++) {
    fcntl(sig_pipe[i], F_SETFL, fcntl(sig_pipe[i], F_GETFL) | O_NONBLOCK);
    fcntl(sig_pipe[i], F_SETFD, FD_CLOEXEC);
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < COUNT(handled_signals); i++)
    if (sigaction(handled_signals[i], &sa, NULL) != 0)
      return -1;
  return 0;
}

static void signals_reset(void) {
  for (size_t i = 0; i < COUNT(handled_signals); i++)
    signal(handled_signals[i], SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
}

/* ---- the test's process ---- */

/* Runs in the forked child: its own process group (so a timeout kills every
 * thread and child it started), default signals, stdin from /dev/null. Ends
 * through exit() so atexit handlers and LeakSanitizer run. */
static _Noreturn void child_run(const kwp_unit_test_t *t,
                                volatile unsigned char *verdict, int out_fd,
                                pid_t parent) {
  setpgid(0, 0);
#ifdef __linux__
  prctl(PR_SET_PDEATHSIG, SIGKILL); /* the runner died: do not linger */
  if (getppid() != parent)
    _exit(126);
#endif
  (void)parent;
  signals_reset();
  close(sig_pipe[0]);
  close(sig_pipe[1]);
  int devnull = open("/dev/null", O_RDONLY);
  if (devnull > 0) {
    dup2(devnull, 0);
    close(devnull);
  }
  if (out_fd >= 0) {
    dup2(out_fd, 1);
    dup2(out_fd, 2);
    close(out_fd);
  }
  kwp_unit_current = t->name;
  kwp_unit_verdict = verdict;
  t->fn();
  *verdict = KWP_UNIT_RETURNED;
  exit(0);
}

/* A file for a test's output when tests run in parallel (unlinked at once). */
static int capture_open(void) {
  const char *dir = getenv("TMPDIR");
  char path[4096];
  snprintf(path, sizeof(path), "%s/kwp-unit-XXXXXX",
           dir && *dir ? dir : "/tmp");
  int fd = mkstemp(path);
  if (fd >= 0)
    unlink(path);
  return fd;
}

static int slot_start(kwp_unit_run_t *run, int i, const kwp_unit_test_t *t) {
  kwp_unit_slot_t *slot = &run->slots[i];
  slot->out_fd = -1;
  if (run->jobs > 1 && (slot->out_fd = capture_open()) < 0) {
    perror("unit-tests: output file");
    return -1;
  }
  run->verdicts[i] = 0;
  pid_t parent = getpid();
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    perror("unit-tests: fork");
    return -1;
  }
  if (pid == 0)
    child_run(t, &run->verdicts[i], slot->out_fd, parent);
  setpgid(pid, pid); /* also here: no window where a kill misses the group */
  slot->test = t;
  slot->pid = pid;
  slot->timed_out = 0;
  slot->deadline = run->timeout > 0 ? now_s() + run->timeout : 0;
  return 0;
}

/* ---- results ---- */

static void output_replay(int fd) {
  char buf[8192];
  ssize_t n;
  lseek(fd, 0, SEEK_SET);
  while ((n = read(fd, buf, sizeof(buf))) > 0)
    for (ssize_t off = 0, w; off < n; off += w)
      if ((w = write(2, buf + off, (size_t)(n - off))) <= 0)
        return;
}

/* Prints the test's result line; returns 1 if it passed. */
static int report(const kwp_unit_run_t *run, const kwp_unit_slot_t *slot,
                  int status, unsigned char verdict) {
  const char *name = slot->test->name;
  if (slot->timed_out) {
    printf("TIMEOUT %s (%g s)\n", name, run->timeout);
  } else if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    printf("CRASH %s: signal %d (%s)\n", name, sig, strsignal(sig));
  } else if (!WIFEXITED(status)) {
    printf("FAIL %s: wait status %#x\n", name, (unsigned)status);
  } else if (verdict == KWP_UNIT_ASSERTED) {
    printf("FAIL %s\n", name); /* the assertion is on stderr */
  } else if (WEXITSTATUS(status) == 0 && verdict == KWP_UNIT_RETURNED) {
    printf("ok %s\n", name);
    return 1;
  } else if (verdict == KWP_UNIT_RETURNED) {
    /* The test returned, then its exit failed: LeakSanitizer (exit status
     * 23 by default) or an atexit handler. */
    printf("FAIL %s: exit status %d after the test returned (leak report?)\n",
           name, WEXITSTATUS(status));
  } else {
    printf("FAIL %s: exit status %d before the test returned\n", name,
           WEXITSTATUS(status));
  }
  return 0;
}

/* The test's process has exited (still a zombie, so its pid and process group
 * cannot be reused yet): kill what it left in its group, reap, report. */
static void slot_finish(kwp_unit_run_t *run, int i) {
  kwp_unit_slot_t *slot = &run->slots[i];
  int status = 0;
  kill(-slot->pid, SIGKILL);
  while (waitpid(slot->pid, &status, 0) < 0 && errno == EINTR)
    ;
  if (slot->out_fd >= 0) {
    output_replay(slot->out_fd);
    close(slot->out_fd);
  }
  if (report(run, slot, status, run->verdicts[i]))
    run->passed++;
  else
    run->failed_names[run->failed++] = slot->test->name;
  slot->pid = 0;
}

static int slot_exited(const kwp_unit_slot_t *slot) {
  siginfo_t info;
  memset(&info, 0, sizeof(info));
  if (waitid(P_PID, (id_t)slot->pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0)
    return errno != EINTR; /* ECHILD: gone; let waitpid say so */
  return info.si_pid == slot->pid;
}

/* ---- the loop ---- */

/* Milliseconds until the nearest deadline, or -1 for none. */
static int poll_timeout_ms(const kwp_unit_run_t *run) {
  double next = 0, now = now_s();
  for (int i = 0; i < run->jobs; i++) {
    const kwp_unit_slot_t *slot = &run->slots[i];
    if (slot->pid && slot->deadline > 0 && !slot->timed_out &&
        (next == 0 || slot->deadline < next))
      next = slot->deadline;
  }
  if (next == 0)
    return -1;
  return next <= now ? 0 : (int)ceil((next - now) * 1000.0);
}

/* Kill every running test's process group (on an interrupt). */
static void kill_all(kwp_unit_run_t *run) {
  for (int i = 0; i < run->jobs; i++)
    if (run->slots[i].pid) {
      kill(-run->slots[i].pid, SIGKILL);
      waitpid(run->slots[i].pid, NULL, 0);
      run->slots[i].pid = 0;
    }
}

/* Waits until a test ends or a deadline passes; finishes ended tests and
 * kills late ones (they are reported when they have died). */
static void wait_some(kwp_unit_run_t *run) {
  struct pollfd pfd = {.fd = sig_pipe[0], .events = POLLIN};
  if (poll(&pfd, 1, poll_timeout_ms(run)) > 0) {
    char buf[64];
    while (read(sig_pipe[0], buf, sizeof(buf)) > 0)
      ;
  }
  if (interrupted) {
    int sig = interrupted;
    kill_all(run);
    fprintf(stderr, "unit-tests: interrupted (%s)\n", strsignal(sig));
    signal(sig, SIG_DFL);
    raise(sig);
    exit(128 + sig);
  }
  double now = now_s();
  for (int i = 0; i < run->jobs; i++) {
    kwp_unit_slot_t *slot = &run->slots[i];
    if (!slot->pid)
      continue;
    if (slot_exited(slot)) {
      slot_finish(run, i);
    } else if (slot->deadline > 0 && now >= slot->deadline &&
               !slot->timed_out) {
      slot->timed_out = 1;
      kill(-slot->pid, SIGKILL);
    }
  }
}

static int run_all(kwp_unit_run_t *run) {
  size_t next = 0;
  int running;
  do {
    running = 0;
    for (int i = 0; i < run->jobs; i++) {
      if (!run->slots[i].pid && next < run->nsel &&
          slot_start(run, i, run->sel[next++]) != 0) {
        kill_all(run);
        return -1;
      }
      running += run->slots[i].pid != 0;
    }
    if (running)
      wait_some(run);
  } while (running);
  return 0;
}

/* ---- command line ---- */

static void usage(FILE *f) {
  fprintf(f,
          "usage: unit-tests [--list] [-j N] [FILTER]\n"
          "  runs each test whose name contains FILTER (all without one) in\n"
          "  its own process; --list prints their names instead\n"
          "  -j N   run N tests at a time (default 1; output is then shown\n"
          "         when each test ends)\n"
          "  env KWP_UNIT_TIMEOUT  seconds per test (default %g; 0: none)\n",
          KWP_UNIT_TIMEOUT_DEFAULT);
}

static int parse_jobs(const char *s, int *jobs) {
  char *end;
  long n = s ? strtol(s, &end, 10) : 0;
  if (!s || *end || n < 1 || n > KWP_UNIT_JOBS_MAX) {
    fprintf(stderr, "unit-tests: -j takes 1 to %d\n", KWP_UNIT_JOBS_MAX);
    return -1;
  }
  *jobs = (int)n;
  return 0;
}

static int parse_args(kwp_unit_run_t *run, int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--list")) {
      run->list = 1;
    } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      exit(0);
    } else if (!strncmp(a, "-j", 2)) {
      if (parse_jobs(a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL),
                     &run->jobs) != 0)
        return -1;
    } else if (a[0] == '-' || run->filter) {
      usage(stderr);
      return -1;
    } else {
      run->filter = a;
    }
  }
  return 0;
}

static int parse_timeout(kwp_unit_run_t *run) {
  const char *s = getenv("KWP_UNIT_TIMEOUT");
  run->timeout = KWP_UNIT_TIMEOUT_DEFAULT;
  if (!s || !*s)
    return 0;
  char *end;
  double t = strtod(s, &end);
  if (*end || !(t >= 0) || t > 86400) {
    fprintf(stderr, "unit-tests: KWP_UNIT_TIMEOUT=%s: want seconds (0: none)\n",
            s);
    return -1;
  }
  run->timeout = t;
  return 0;
}

static void select_from(kwp_unit_run_t *run, const kwp_unit_test_t *t,
                        size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!run->filter || strstr(t[i].name, run->filter))
      run->sel[run->nsel++] = &t[i];
}

static void select_tests(kwp_unit_run_t *run) {
  static const kwp_unit_test_t *sel[COUNT(tests) + COUNT(selftests)];
  static const char *failed[COUNT(tests) + COUNT(selftests)];
  const char *self = getenv("KWP_UNIT_SELFTEST");
  run->sel = sel;
  run->failed_names = failed;
  select_from(run, tests, COUNT(tests));
  if (self && !strcmp(self, "1"))
    select_from(run, selftests, COUNT(selftests));
}

int main(int argc, char **argv) {
  static kwp_unit_run_t run = {.jobs = 1};
  setvbuf(stdout, NULL, _IONBF, 0); /* nothing buffered across a fork */
  if (parse_args(&run, argc, argv) != 0 || parse_timeout(&run) != 0)
    return 2;
  select_tests(&run);
  if (run.list) {
    for (size_t i = 0; i < run.nsel; i++)
      printf("%s\n", run.sel[i]->name);
    return 0;
  }
  if (run.nsel == 0) {
    fprintf(stderr, "unit-tests: no test name contains \"%s\"\n", run.filter);
    return 1;
  }
  void *shared = mmap(NULL, KWP_UNIT_JOBS_MAX, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (shared == MAP_FAILED || signals_install() != 0) {
    perror("unit-tests: setup");
    return 2;
  }
  run.verdicts = shared;
  if (run_all(&run) != 0)
    return 2;
  if (run.failed) {
    printf("failed:");
    for (int i = 0; i < run.failed; i++)
      printf(" %s", run.failed_names[i]);
    printf("\n");
  }
  printf("%d passed, %d failed\n", run.passed, run.failed);
  return run.failed ? 1 : 0;
}
