/* Log lines to stderr, plain or JSON. Any thread: a line is formatted into a
 * stack buffer and written with one write(2), so lines never interleave. */
#include "core/base/log.h"

#include "codec/ws/ws.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int kwp_log_level_current = KWP_LOG_INFO;
static int log_json;

static const char *level_names[] = {"TRACE", "DEBUG", "INFO",
                                    "WARN",  "ERROR", "OFF"};

void kwp_log_init(int level, int json) {
  kwp_log_level_current = level;
  log_json = json;
}

int kwp_log_level_parse(const char *s) {
  if (!strcasecmp(s, "WARNING"))
    return KWP_LOG_WARN;
  for (int i = 0; i <= KWP_LOG_OFF; i++)
    if (!strcasecmp(s, level_names[i]))
      return i;
  return -1;
}

/* Length of the well-formed UTF-8 sequence at @p s, 0 if there is none. */
static size_t utf8_seq(const char *s) {
  kwp_utf8_t u = {0};
  for (size_t i = 0; i < 4 && s[i]; i++) {
    if (kwp_utf8_feed(&u, (const uint8_t *)s + i, 1))
      return 0;
    if (kwp_utf8_complete(&u))
      return i + 1;
  }
  return 0;
}

/* Append @p s so that the line stays one line of valid UTF-8 (and valid
 * JSON in JSON mode): messages quote what clients sent, and a newline in a
 * query parameter must not forge a log line. Control characters and bytes
 * that are not UTF-8 become \xNN (\u00NN for controls in JSON). Returns the
 * new length, bounded by cap. */
static size_t escape(char *out, size_t n, size_t cap, const char *s, int json) {
  while (*s && n + 8 < cap) {
    unsigned char c = (unsigned char)*s;
    size_t k = c < 0x80 ? 1 : utf8_seq(s);
    if (json && (c == '"' || c == '\\')) {
      out[n++] = '\\';
      out[n++] = (char)c;
      s++;
    } else if (c < 0x20 || c == 0x7f || !k) {
      const char *f = !json ? "\\x%02x" : k ? "\\u%04x" : "\\\\x%02x";
      n += (size_t)snprintf(out + n, cap - n, f, c);
      s++;
    } else {
      memcpy(out + n, s, k);
      n += k;
      s += k;
    }
  }
  return n;
}

static size_t format_time(char *out, size_t cap) {
  struct timeval tv;
  struct tm tm;
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
  n += (size_t)snprintf(out + n, cap - n, ".%03ldZ", (long)tv.tv_usec / 1000);
  return n;
}

void kwp_log_vwrite(int level, const char *subsys, const char *fmt,
                    va_list ap) {
  char msg[2048], line[4096], ts[40];
  vsnprintf(msg, sizeof(msg), fmt, ap);
  format_time(ts, sizeof(ts));
  const char *lv = level_names[level < 0 || level > KWP_LOG_ERROR ? 2 : level];
  size_t n;
  if (log_json)
    n = (size_t)snprintf(line, sizeof(line),
                         "{\"time\":\"%s\",\"level\":\"%s\",\"subsys\":\"%s\","
                         "\"message\":\"",
                         ts, lv, subsys);
  else
    n = (size_t)snprintf(line, sizeof(line), "%s %-5s [%s] ", ts, lv, subsys);
  n = escape(line, n, sizeof(line) - 4, msg, log_json);
  n += (size_t)snprintf(line + n, sizeof(line) - n, log_json ? "\"}\n" : "\n");
  ssize_t r = write(STDERR_FILENO, line, n);
  (void)r;
}

void kwp_log_write(int level, const char *subsys, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  kwp_log_vwrite(level, subsys, fmt, ap);
  va_end(ap);
}

int kwp_log_ratelimit_ok(kwp_log_ratelimit_t *rl, int burst, int *dropped_out) {
  /* Races between threads only blur the count by a line or two. */
  long now = (long)time(NULL);
  long win = __atomic_load_n(&rl->window_sec, __ATOMIC_RELAXED);
  if (win != now &&
      __atomic_compare_exchange_n(&rl->window_sec, &win, now, 0,
                                  __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    __atomic_store_n(&rl->count, 0, __ATOMIC_RELAXED);
  }
  if (__atomic_add_fetch(&rl->count, 1, __ATOMIC_RELAXED) > burst) {
    __atomic_add_fetch(&rl->dropped, 1, __ATOMIC_RELAXED);
    return 0;
  }
  *dropped_out = __atomic_exchange_n(&rl->dropped, 0, __ATOMIC_RELAXED);
  return 1;
}
