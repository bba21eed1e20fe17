/*
 * log.c - one logging voice for every dcmhub program (see log.h).
 *
 * A line is formatted completely in a local buffer first and then handed to
 * stderr with a single fputs() while the stream lock is held, so lines from
 * concurrent threads never interleave (glibc's unbuffered stderr turns one
 * fputs into one write(2), which also keeps lines whole when a supervisor
 * collects the output of several processes through one pipe). For syslog the
 * C library does the locking itself.
 *
 * errno is preserved across every call: callers log a failure and then still
 * report errno, and "%m" in a format refers to the caller's errno.
 */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

volatile int dh_log_threshold = DH_LOG_INFO;

/* Written only by dh_log_init, before threads exist (see log.h). */
static char log_ident[32] = "dcmhub";
static int log_to_syslog;

/* The calling thread's context; an empty string means "none". */
static __thread char log_context[128];

static const char *const level_names[] = { "error", "warn", "info", "debug", "trace" };
static const char *const level_tags[] = { "ERROR", "WARN", "INFO", "DEBUG", "TRACE" };
static const int level_syslog[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG, LOG_DEBUG };

#define LEVEL_COUNT ((int)(sizeof(level_names) / sizeof(level_names[0])))

int dh_log_level_parse(const char *name)
{
	if (name == NULL)
		return -1;
	for (int i = 0; i < LEVEL_COUNT; i++) {
		/* Case-insensitive: "INFO" in a config file is an obvious intent. */
		if (strcasecmp(name, level_names[i]) == 0)
			return i;
	}
	return -1;
}

int dh_log_init(const char *ident, const char *target, const char *level)
{
	int saved_errno = errno;
	int use_syslog = -1;
	int lvl = dh_log_level_parse(level);
	int rc = -1;

	if (ident != NULL && ident[0] != '\0')
		snprintf(log_ident, sizeof(log_ident), "%s", ident);

	if (target != NULL && strcmp(target, "stderr") == 0)
		use_syslog = 0;
	else if (target != NULL && strcmp(target, "syslog") == 0)
		use_syslog = 1;

	/* Validate both before changing anything, so a bad config cannot leave
	 * half of the settings applied. */
	if (use_syslog < 0 || lvl < 0) {
		if (log_to_syslog)
			closelog();
		log_to_syslog = 0;
		dh_log_threshold = DH_LOG_INFO;
		goto done;
	}

	if (use_syslog) {
		/* openlog keeps the pointer: log_ident is static storage. */
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	} else if (log_to_syslog) {
		closelog();
	}
	log_to_syslog = use_syslog;
	dh_log_threshold = lvl;
	rc = 0;
done:
	errno = saved_errno;
	return rc;
}

void dh_log_set_context(const char *fmt, ...)
{
	va_list ap;

	if (fmt == NULL) {
		log_context[0] = '\0';
		return;
	}
	/* vsnprintf truncates to sizeof - 1 = 127 bytes, as log.h promises. */
	va_start(ap, fmt);
	vsnprintf(log_context, sizeof(log_context), fmt, ap);
	va_end(ap);
}

void dh__log(int level, const char *fmt, ...)
{
	int saved_errno = errno;
	char msg[4096];
	char line[4096 + 256];
	char stamp[32];
	struct timespec ts;
	struct tm tm;
	size_t len;
	va_list ap;
	int n;

	if (level < 0)
		level = 0;
	if (level >= LEVEL_COUNT)
		level = LEVEL_COUNT - 1;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0) {
		snprintf(msg, sizeof(msg), "(unformattable log message)");
	} else if ((size_t)n >= sizeof(msg)) {
		/* Mark the cut so a reader does not take the tail for the whole. */
		memcpy(msg + sizeof(msg) - 4, "...", 4);
	}
	/* A trailing newline in a message would produce an empty line. */
	len = strlen(msg);
	while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == '\r'))
		msg[--len] = '\0';

	if (log_to_syslog) {
		if (log_context[0] != '\0')
			syslog(level_syslog[level], "[%s] %s", log_context, msg);
		else
			syslog(level_syslog[level], "%s", msg);
		goto done;
	}

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);

	if (log_context[0] != '\0')
		snprintf(line, sizeof(line), "%s.%03ldZ %s[%ld] %s [%s] %s\n", stamp,
			 ts.tv_nsec / 1000000L, log_ident, (long)getpid(), level_tags[level],
			 log_context, msg);
	else
		snprintf(line, sizeof(line), "%s.%03ldZ %s[%ld] %s %s\n", stamp,
			 ts.tv_nsec / 1000000L, log_ident, (long)getpid(), level_tags[level],
			 msg);

	/* One fputs under the stream lock: the line leaves as one piece. The
	 * fflush matters only if someone made stderr buffered. */
	flockfile(stderr);
	fputs(line, stderr);
	fflush(stderr);
	funlockfile(stderr);
done:
	errno = saved_errno;
}
