/*
 * worker.c - see worker.h.
 */
#include "worker.h"

#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct dh_worker {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	int kicked, stopping;
	dh_worker_round round;
	void *arg;
	long interval_ms;
	char name[32];
};

static void *worker_main(void *p)
{
	dh_worker *w = p;

	dh_log_set_context("%s", w->name);
	while (!dh_worker_stopping(w)) {
		if (w->round(w->arg) > 0)
			continue;
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += w->interval_ms / 1000;
		until.tv_nsec += (w->interval_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&w->lock);
		if (!w->kicked && !w->stopping)
			pthread_cond_timedwait(&w->wake, &w->lock, &until);
		w->kicked = 0;
		pthread_mutex_unlock(&w->lock);
	}
	dh_log_set_context(NULL);
	return NULL;
}

int dh_worker_start(dh_worker **out, const char *name, dh_worker_round round, void *arg, long interval_ms)
{
	dh_worker *w = calloc(1, sizeof(*w));
	int rc;

	*out = NULL;
	if (!w)
		return -1;
	snprintf(w->name, sizeof(w->name), "%s", name);
	w->round = round;
	w->arg = arg;
	w->interval_ms = interval_ms > 0 ? interval_ms : 1000;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	if ((rc = pthread_create(&w->thread, NULL, worker_main, w)) != 0) {
		pthread_mutex_destroy(&w->lock);
		pthread_cond_destroy(&w->wake);
		free(w);
		errno = rc;
		return -1;
	}
	*out = w;
	return 0;
}

void dh_worker_kick(dh_worker *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->kicked = 1;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
}

int dh_worker_stopping(dh_worker *w)
{
	pthread_mutex_lock(&w->lock);
	int s = w->stopping;
	pthread_mutex_unlock(&w->lock);
	return s;
}

void dh_worker_stop(dh_worker *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = 1;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->wake);
	free(w);
}
