/*
 * Logging: one line per event to stderr, plain text or JSON lines, with a
 * subsystem tag. Thread-safe (each line is one write(2)); the level check is
 * a plain load so disabled levels cost nothing.
 */
#ifndef KWP_LOG_H
#define KWP_LOG_H

#include <stdarg.h>

enum kwp_log_level {
  KWP_LOG_TRACE,
  KWP_LOG_DEBUG,
  KWP_LOG_INFO,
  KWP_LOG_WARN,
  KWP_LOG_ERROR,
  KWP_LOG_OFF
};

extern int kwp_log_level_current;

#define KWP_LOG(level, subsys, ...)                                            \
  do {                                                                         \
    if ((level) >= kwp_log_level_current)                                      \
      kwp_log_write((level), (subsys), __VA_ARGS__);                           \
  } while (0)

/**
 * Set the level and format. Call before threads start.
 * @locality main thread
 */
void kwp_log_init(int level, int json);

/** Parse "TRACE".."ERROR"/"OFF" (any case, also WARNING); -1 if unknown. */
int kwp_log_level_parse(const char *s);

/** Emit one line. @locality any thread */
void kwp_log_write(int level, const char *subsys, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void kwp_log_vwrite(int level, const char *subsys, const char *fmt, va_list ap);

/**
 * Rate limiter for client-triggerable warnings: at most @p burst lines per
 * second per limiter; returns 1 when the caller may log, 0 to drop. It counts
 * what it drops and the next permitted line reports the count.
 * One limiter per call site, shared by all threads (atomics inside).
 */
typedef struct kwp_log_ratelimit {
  long window_sec;
  int count;
  int dropped;
} kwp_log_ratelimit_t;
#define KWP_LOG_RATELIMIT_INIT                                                 \
  { 0, 0, 0 }
int kwp_log_ratelimit_ok(kwp_log_ratelimit_t *rl, int burst, int *dropped_out);

/** KWP_LOG for client-triggerable events: at most 10 lines/s per call site. */
#define KWP_LOG_RL(level, subsys, fmt, ...)                                    \
  do {                                                                         \
    static kwp_log_ratelimit_t kwp_rl_ = KWP_LOG_RATELIMIT_INIT;               \
    int kwp_dropped_ = 0;                                                      \
    if ((level) >= kwp_log_level_current &&                                    \
        kwp_log_ratelimit_ok(&kwp_rl_, 10, &kwp_dropped_)) {                   \
      if (kwp_dropped_)                                                        \
        kwp_log_write((level), (subsys), fmt " (%d similar dropped)",          \
                      ##__VA_ARGS__, kwp_dropped_);                            \
      else                                                                     \
        kwp_log_write((level), (subsys), fmt, ##__VA_ARGS__);                  \
    }                                                                          \
  } while (0)

#endif
