/*
 * log.h - one logging voice for every dcmhub program.
 *
 * Lines go to stderr (with an ISO-8601 timestamp, level and context) or to
 * syslog. The level check happens in the macro, before any formatting, so a
 * disabled DH_DEBUG costs one comparison. Each thread may carry a short
 * context string (association id and AE titles, cc id, job) that is printed
 * in every line it logs.
 *
 * Thread-safe: dh_log_init is called once at start-up before threads exist;
 * everything else may be called from any thread.
 */
#ifndef DH_LOG_H
#define DH_LOG_H

#include <stdarg.h>

typedef enum {
	DH_LOG_ERROR = 0,
	DH_LOG_WARN = 1,
	DH_LOG_INFO = 2,
	DH_LOG_DEBUG = 3,
	DH_LOG_TRACE = 4
} dh_log_level;

/* Current threshold; read by the macros. Do not write it directly. */
extern volatile int dh_log_threshold;

/*
 * Configures logging. ident names the program in syslog and in stderr
 * lines; target is "stderr" or "syslog"; level is one of "error", "warn",
 * "info", "debug", "trace". Returns 0, or -1 for an unknown target or level
 * (logging then stays on stderr at info).
 */
int dh_log_init(const char *ident, const char *target, const char *level);

/* Parses a level name; returns the level or -1 when unknown. */
int dh_log_level_parse(const char *name);

/* Sets the calling thread's context (copied, truncated to 127 bytes); NULL clears it. */
void dh_log_set_context(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Implementation of the macros; call through them. */
void dh__log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define DH_LOG(level, ...) \
	do { if ((int)(level) <= dh_log_threshold) dh__log((level), __VA_ARGS__); } while (0)
#define DH_ERROR(...) DH_LOG(DH_LOG_ERROR, __VA_ARGS__)
#define DH_WARN(...)  DH_LOG(DH_LOG_WARN, __VA_ARGS__)
#define DH_INFO(...)  DH_LOG(DH_LOG_INFO, __VA_ARGS__)
#define DH_DEBUG(...) DH_LOG(DH_LOG_DEBUG, __VA_ARGS__)
#define DH_TRACE(...) DH_LOG(DH_LOG_TRACE, __VA_ARGS__)

#endif
