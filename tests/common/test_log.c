/*
 * test_log.c - unit tests for common/log.c.
 *
 * stderr is redirected to a temporary file (dup2 on descriptor 2) while a
 * test logs, and the captured text is checked line by line: the exact line
 * format, threshold filtering, the per-thread context, and that lines from
 * concurrent threads never interleave.
 */
#include "log.h"

#include <CUnit/Basic.h>
#include <errno.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* --- stderr capture ------------------------------------------------------ */

static int saved_stderr = -1;
static int capture_fd = -1;

static void capture_start(void)
{
	char path[] = "/tmp/dh_test_log.XXXXXX";

	fflush(stderr);
	capture_fd = mkstemp(path);
	CU_ASSERT_FATAL(capture_fd >= 0);
	unlink(path);
	saved_stderr = dup(STDERR_FILENO);
	CU_ASSERT_FATAL(saved_stderr >= 0);
	CU_ASSERT_FATAL(dup2(capture_fd, STDERR_FILENO) >= 0);
}

/* Restores stderr and returns what was written (malloc'ed, NUL-terminated). */
static char *capture_end(void)
{
	char *text = NULL;
	off_t size;

	fflush(stderr);
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	saved_stderr = -1;

	size = lseek(capture_fd, 0, SEEK_END);
	text = calloc(1, (size_t)size + 1);
	if (text != NULL && size > 0)
		CU_ASSERT_EQUAL(pread(capture_fd, text, (size_t)size, 0), size);
	close(capture_fd);
	capture_fd = -1;
	return text;
}

static int count_lines(const char *text)
{
	int n = 0;

	for (const char *p = text; *p != '\0'; p++)
		n += *p == '\n';
	return n;
}

/* 1 when every line of text matches the regular expression re. */
static int all_lines_match(const char *text, const char *re)
{
	regex_t rx;
	char *copy = strdup(text);
	char *save = NULL;
	int ok = 1;

	if (copy == NULL || regcomp(&rx, re, REG_EXTENDED | REG_NOSUB) != 0) {
		free(copy);
		return 0;
	}
	for (char *line = strtok_r(copy, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		if (regexec(&rx, line, 0, NULL, 0) != 0) {
			ok = 0;
			break;
		}
	}
	regfree(&rx);
	free(copy);
	return ok;
}

#define STAMP "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z"

/* --- tests -------------------------------------------------------------- */

static void test_level_parse(void)
{
	CU_ASSERT_EQUAL(dh_log_level_parse("error"), DH_LOG_ERROR);
	CU_ASSERT_EQUAL(dh_log_level_parse("warn"), DH_LOG_WARN);
	CU_ASSERT_EQUAL(dh_log_level_parse("info"), DH_LOG_INFO);
	CU_ASSERT_EQUAL(dh_log_level_parse("debug"), DH_LOG_DEBUG);
	CU_ASSERT_EQUAL(dh_log_level_parse("trace"), DH_LOG_TRACE);
	CU_ASSERT_EQUAL(dh_log_level_parse("INFO"), DH_LOG_INFO);
	CU_ASSERT_EQUAL(dh_log_level_parse("verbose"), -1);
	CU_ASSERT_EQUAL(dh_log_level_parse(""), -1);
	CU_ASSERT_EQUAL(dh_log_level_parse("inf"), -1);
	CU_ASSERT_EQUAL(dh_log_level_parse(NULL), -1);
}

static void test_init(void)
{
	CU_ASSERT_EQUAL(dh_log_threshold, DH_LOG_INFO); /* the default before init */
	CU_ASSERT_EQUAL(dh_log_init("hubd", "stderr", "debug"), 0);
	CU_ASSERT_EQUAL(dh_log_threshold, DH_LOG_DEBUG);
	/* Bad target or level: -1, and back to stderr at info. */
	CU_ASSERT_EQUAL(dh_log_init("hubd", "file", "debug"), -1);
	CU_ASSERT_EQUAL(dh_log_threshold, DH_LOG_INFO);
	CU_ASSERT_EQUAL(dh_log_init("hubd", "stderr", "trace"), 0);
	CU_ASSERT_EQUAL(dh_log_init("hubd", "stderr", "loud"), -1);
	CU_ASSERT_EQUAL(dh_log_threshold, DH_LOG_INFO);
	CU_ASSERT_EQUAL(dh_log_init("hubd", NULL, "info"), -1);
	/* syslog is accepted; switch back so the other tests can capture. */
	CU_ASSERT_EQUAL(dh_log_init("hubd-test", "syslog", "error"), 0);
	CU_ASSERT_EQUAL(dh_log_threshold, DH_LOG_ERROR);
	CU_ASSERT_EQUAL(dh_log_init("hubd", "stderr", "info"), 0);
}

static void test_line_format(void)
{
	char *text;

	CU_ASSERT_EQUAL_FATAL(dh_log_init("hubd", "stderr", "info"), 0);
	dh_log_set_context(NULL);
	capture_start();
	DH_INFO("started on port %d", 11112);
	text = capture_end();
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	CU_ASSERT_EQUAL(count_lines(text), 1);
	CU_ASSERT(all_lines_match(text, "^" STAMP " hubd\\[[0-9]+\\] INFO started on port 11112$"));
	free(text);
}

static void test_threshold_filters(void)
{
	char *text;

	CU_ASSERT_EQUAL_FATAL(dh_log_init("hubd", "stderr", "warn"), 0);
	dh_log_set_context(NULL);
	capture_start();
	DH_TRACE("trace hidden");
	DH_DEBUG("debug hidden");
	DH_INFO("info hidden");
	DH_WARN("warn shown %d", 1);
	DH_ERROR("error shown %d", 2);
	text = capture_end();
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	CU_ASSERT_EQUAL(count_lines(text), 2);
	CU_ASSERT_PTR_NULL(strstr(text, "hidden"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, " WARN warn shown 1\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, " ERROR error shown 2\n"));
	free(text);

	CU_ASSERT_EQUAL_FATAL(dh_log_init("hubd", "stderr", "trace"), 0);
	capture_start();
	DH_TRACE("trace shown");
	DH_DEBUG("debug shown");
	text = capture_end();
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	CU_ASSERT_EQUAL(count_lines(text), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(text, " TRACE trace shown\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, " DEBUG debug shown\n"));
	free(text);
	dh_log_init("hubd", "stderr", "info");
}

static void test_disabled_args_not_evaluated(void)
{
	int counter = 0;
	char *text;

	CU_ASSERT_EQUAL_FATAL(dh_log_init("hubd", "stderr", "info"), 0);
	capture_start();
	DH_DEBUG("%d", ++counter);
	DH_INFO("%d", ++counter);
	text = capture_end();
	CU_ASSERT_EQUAL(counter, 1);
	free(text);
}

static void test_context(void)
{
	char *text;
	char long_ctx[300];
	const char *open;
	const char *close;

	CU_ASSERT_EQUAL_FATAL(dh_log_init("hubd", "stderr", "info"), 0);
	capture_start();
	dh_log_set_context("assoc %d %s->%s", 7, "STORESCU", "DCMHUB");
	DH_INFO("received %s", "1.2.3");
	dh_log_set_context(NULL);
	DH_INFO("no context");
	text = capture_end();
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	CU_ASSERT_EQUAL(count_lines(text), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "] INFO [assoc 7 STORESCU->DCMHUB] received 1.2.3\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "] INFO no context\n"));
	free(text);

	/* Truncated to 127 bytes. */
	memset(long_ctx, 'c', sizeof(long_ctx) - 1);
	long_ctx[sizeof(long_ctx) - 1] = '\0';
	capture_start();
	dh_log_set_context("%s", long_ctx);
	DH_INFO("x");
	dh_log_set_context(NULL);
	text = capture_end();
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	open = strstr(text, "INFO [");
	CU_ASSERT_PTR_NOT_NULL_FATAL(open);
	open += strlen("INFO [");
	close = strchr(open, ']');
	CU_ASSERT_PTR_NOT_NULL_FATAL(close);
	CU_ASSERT_EQUAL(close - open, 127);
	free(text);
}

static void test_errno_preserved(void)
{
	char *text;

	CU_ASSERT_EQUAL_FATAL(dh_log_init("hubd", "stderr", "info"), 0);
	capture_start();
	errno = ENOENT;
	DH_ERROR("open failed: %m");
	CU_ASSERT_EQUAL(errno, ENOENT);
	errno = EACCES;
	dh_log_set_context("ctx");
	CU_ASSERT_EQUAL(errno, EACCES);
	dh_log_set_context(NULL);
	text = capture_end();
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "open failed: No such file or directory\n"));
	free(text);
}

static void test_trailing_newline_dropped(void)
{
	char *text;

	capture_start();
	DH_INFO("one line\n");
	text = capture_end();
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	CU_ASSERT_EQUAL(count_lines(text), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "INFO one line\n"));
	free(text);
}

#define THREADS 4
#define LINES_PER_THREAD 300

static void *worker(void *arg)
{
	int id = (int)(long)arg;

	dh_log_set_context("worker %d", id);
	for (int i = 0; i < LINES_PER_THREAD; i++)
		DH_INFO("line %d of worker %d with some padding to make it longer %s", i, id,
			"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	return NULL;
}

static void test_threads(void)
{
	pthread_t t[THREADS];
	char *text;
	int started = 0;

	CU_ASSERT_EQUAL_FATAL(dh_log_init("hubd", "stderr", "info"), 0);
	dh_log_set_context("main");
	capture_start();
	for (long i = 0; i < THREADS; i++)
		started += pthread_create(&t[i], NULL, worker, (void *)i) == 0;
	CU_ASSERT_EQUAL(started, THREADS);
	for (int i = 0; i < started; i++)
		pthread_join(t[i], NULL);
	DH_INFO("after");
	text = capture_end();
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	CU_ASSERT_EQUAL(count_lines(text), THREADS * LINES_PER_THREAD + 1);
	/* Whole lines only, and each thread saw only its own context. */
	CU_ASSERT(all_lines_match(text, "^" STAMP " hubd\\[[0-9]+\\] INFO "
				  "(\\[worker ([0-9]+)\\] line [0-9]+ of worker \\2 with some "
				  "padding to make it longer x{74}|\\[main\\] after)$"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "INFO [main] after\n"));
	dh_log_set_context(NULL);
	free(text);
}

int main(void)
{
	CU_pSuite s;
	unsigned failures;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("log", NULL, NULL);
	if (s == NULL ||
	    CU_add_test(s, "level parsing", test_level_parse) == NULL ||
	    CU_add_test(s, "init", test_init) == NULL ||
	    CU_add_test(s, "line format", test_line_format) == NULL ||
	    CU_add_test(s, "threshold filters", test_threshold_filters) == NULL ||
	    CU_add_test(s, "disabled levels cost no evaluation",
			test_disabled_args_not_evaluated) == NULL ||
	    CU_add_test(s, "context", test_context) == NULL ||
	    CU_add_test(s, "errno preserved", test_errno_preserved) == NULL ||
	    CU_add_test(s, "trailing newline dropped", test_trailing_newline_dropped) == NULL ||
	    CU_add_test(s, "threads do not interleave", test_threads) == NULL) {
		CU_cleanup_registry();
		return 2;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
	CU_cleanup_registry();
	return failures == 0 ? 0 : 1;
}
