/*
 * worker.h - a background thread that works in rounds: it runs round(arg),
 * and when the round says nothing more is waiting, sleeps until kicked or
 * until interval_ms passed. The hub's storage commitment delivery, MPPS
 * forwarding and export to external archives are such workers.
 *
 * A kick that comes while a round runs is not lost: the next sleep returns
 * at once. dh_worker_stop wakes the thread, waits for the round in progress
 * to end and joins it; a round that loops over many items should check
 * dh_worker_stopping() between them.
 */
#ifndef DH_WORKER_H
#define DH_WORKER_H

typedef struct dh_worker dh_worker;

/* One round. Returns > 0 when more work may be waiting (no sleep), else 0. */
typedef int (*dh_worker_round)(void *arg);

/*
 * Starts the thread. name (copied) is the log context of its messages.
 * *out is the caller's, freed by dh_worker_stop. Returns 0, or -1 (errno).
 */
int dh_worker_start(dh_worker **out, const char *name, dh_worker_round round, void *arg, long interval_ms);

/* Wakes the thread now (new work). NULL is fine. */
void dh_worker_kick(dh_worker *w);

/* 1 once dh_worker_stop was called. */
int dh_worker_stopping(dh_worker *w);

/* Stops, joins and frees the worker. NULL is fine. */
void dh_worker_stop(dh_worker *w);

#endif
