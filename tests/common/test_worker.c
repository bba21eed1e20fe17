/*
 * test_worker.c - common/worker: rounds run, a kick wakes a sleeping worker
 * at once (and is not lost when it comes during a round), a busy round is
 * followed by the next without a pause, stop joins promptly even in a long
 * interval.
 */
#include "worker.h"

#include <CUnit/Basic.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

typedef struct {
	atomic_int rounds;
	atomic_int busy_left; /* rounds that still report more work */
	atomic_int slow_ms;   /* how long a round takes */
} counter;

static int round_fn(void *arg)
{
	counter *c = arg;
	int ms = atomic_load(&c->slow_ms);
	atomic_fetch_add(&c->rounds, 1);
	if (ms > 0)
		usleep((useconds_t)ms * 1000);
	if (atomic_load(&c->busy_left) > 0) {
		atomic_fetch_sub(&c->busy_left, 1);
		return 1;
	}
	return 0;
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* waits (2 s at most) until c->rounds reaches n; returns the rounds seen */
static int wait_rounds(counter *c, int n)
{
	double end = now_ms() + 2000;
	while (atomic_load(&c->rounds) < n && now_ms() < end)
		usleep(1000);
	return atomic_load(&c->rounds);
}

static void test_kick_wakes(void)
{
	counter c = { 0, 0, 0 };
	dh_worker *w = NULL;
	CU_ASSERT_EQUAL_FATAL(dh_worker_start(&w, "t", round_fn, &c, 60000), 0);
	CU_ASSERT_EQUAL(wait_rounds(&c, 1), 1); /* the first round runs at once */
	usleep(50 * 1000);
	CU_ASSERT_EQUAL(atomic_load(&c.rounds), 1); /* then it sleeps (60 s interval) */
	double t0 = now_ms();
	dh_worker_kick(w);
	CU_ASSERT_EQUAL(wait_rounds(&c, 2), 2);
	CU_ASSERT(now_ms() - t0 < 1000);
	dh_worker_stop(w);
}

static void test_busy_rounds_follow(void)
{
	counter c = { 0, 5, 0 };
	dh_worker *w = NULL;
	CU_ASSERT_EQUAL_FATAL(dh_worker_start(&w, "t", round_fn, &c, 60000), 0);
	/* five busy rounds and the idle one after them, without waiting for the interval */
	CU_ASSERT_EQUAL(wait_rounds(&c, 6), 6);
	usleep(50 * 1000);
	CU_ASSERT_EQUAL(atomic_load(&c.rounds), 6);
	dh_worker_stop(w);
}

static void test_kick_during_round_not_lost(void)
{
	counter c = { 0, 0, 200 };
	dh_worker *w = NULL;
	CU_ASSERT_EQUAL_FATAL(dh_worker_start(&w, "t", round_fn, &c, 60000), 0);
	usleep(50 * 1000); /* inside the first (200 ms) round */
	dh_worker_kick(w);
	CU_ASSERT_EQUAL(wait_rounds(&c, 2), 2); /* a second round follows */
	atomic_store(&c.slow_ms, 0);
	dh_worker_stop(w);
}

static void test_interval_and_stop(void)
{
	counter c = { 0, 0, 0 };
	dh_worker *w = NULL;
	CU_ASSERT_EQUAL_FATAL(dh_worker_start(&w, "t", round_fn, &c, 100), 0);
	CU_ASSERT(wait_rounds(&c, 3) >= 3); /* rounds every 100 ms without kicks */
	double t0 = now_ms();
	dh_worker_stop(w);
	CU_ASSERT(now_ms() - t0 < 500);
	dh_worker_kick(NULL);
	dh_worker_stop(NULL);
}

int main(void)
{
	CU_pSuite s;
	unsigned failures;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("worker", NULL, NULL);
	if (s == NULL || CU_add_test(s, "a kick wakes a sleeping worker", test_kick_wakes) == NULL ||
	    CU_add_test(s, "busy rounds follow without a pause", test_busy_rounds_follow) == NULL ||
	    CU_add_test(s, "a kick during a round is not lost", test_kick_during_round_not_lost) == NULL ||
	    CU_add_test(s, "interval rounds; stop is prompt", test_interval_and_stop) == NULL) {
		CU_cleanup_registry();
		return 2;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
	CU_cleanup_registry();
	return failures == 0 ? 0 : 1;
}
