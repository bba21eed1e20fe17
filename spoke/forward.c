/*
 * forward.c - forwards the ledger's pending objects to the hub (Storage
 * SCU) and asks the hub to commit them (Storage Commitment Push Model).
 *
 * NOTES
 * One worker thread. Each round it takes up to forward.batch rows with
 * fwd_state 'pending' whose fwd_next_at has come (deleted ones too: the
 * hub must hold an object before the DELETE cc that names it can apply),
 * opens one association to the hub, sends every file, and requests
 * storage commitment for the ones the hub accepted under a new Transaction
 * UID. The row states:
 *
 *   pending --C-STORE success/warning--> sent (fwd_txn_uid, fwd_at)
 *   pending --C-STORE failure status---> pending, fwd_attempts+1, back-off
 *   sent --N-EVENT-REPORT: committed---> committed
 *   sent --N-EVENT-REPORT: failed------> pending, fwd_attempts+1, back-off
 *   sent --no result in commit_timeout-> pending (sent again; the hub
 *                                        answers an identical resend with
 *                                        success and stores nothing twice)
 *
 * A row becomes 'sent' only after the hub's success, which the hub gives
 * only once the object is durable and indexed; a kill -9 at any point
 * leaves rows 'pending' (sent again) or 'sent' (committed, or requeued
 * after the time-out): nothing is lost, and the hub dedupes resends.
 *
 * Objects go as they are stored: on a context with their own transfer
 * syntax (proposed alone) the bytes are sent raw; otherwise they are
 * re-encoded to Explicit or Implicit VR Little Endian (proposed for every
 * SOP class as the fallback).
 *
 * When the hub cannot be reached (connect, association, or the association
 * breaks) nothing is counted against the objects: the whole forwarder
 * backs off, doubling from forward.retry_min to forward.retry_max seconds,
 * and says so once when the hub goes away and once when it is back.
 * The files stay in store_dir: the ledger references them (no clean-up).
 */
#include "spoke.h"

#include "log.h"
#include "uid.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_PCS 127 /* + the storage commitment context = 128, the most one association carries */

struct forwarder {
	spoke *s;
	pthread_t thread;
	int started;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	int kick;
	/* the thread's own state */
	int hub_down;        /* the last attempt could not reach the hub */
	long backoff;        /* seconds; 0 while the hub answers */
	time_t retry_at;     /* no attempt before this (hub back-off) */
	time_t last_requeue; /* the last look for 'sent' rows without a result */
};

typedef struct {
	char *pk, *sop_uid, *sop_class, *ts, *path;
	int pc, raw;         /* chosen context (-1: none) */
	int sent;            /* C-STORE success or warning */
} fwd_obj;

static const char *const fallback_ts[] = { DH_TS_EXPLICIT_LE, DH_TS_IMPLICIT_LE };

static int stopping(const forwarder *f)
{
	return f->s->stop != 0;
}

void forward_wake(spoke *s)
{
	forwarder *f = s->forwarder;

	if (!f)
		return;
	pthread_mutex_lock(&f->lock);
	f->kick = 1;
	pthread_cond_signal(&f->wake);
	pthread_mutex_unlock(&f->lock);
}

/* Sleeps until kicked or up to ms; a kick does not shorten a hub back-off (the caller checks). */
static void wait_kick(forwarder *f, long ms)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&f->lock);
	if (!f->kick && !stopping(f))
		pthread_cond_timedwait(&f->wake, &f->lock, &until);
	f->kick = 0;
	pthread_mutex_unlock(&f->lock);
}

/* ------------------------------------------------------------------ */
/* database */

/* One statement on a borrowed connection. Returns the number of rows changed, or -1. */
static long db_update(spoke *s, const char *sql, int n, const char *const *p)
{
	dh_db_err err = { "", "" };
	PGconn *c = dh_db_get(s->db, &err);
	PGresult *r;
	long rows = -1;

	if (!c) {
		DH_WARN("forward: spoke database unavailable: %s", err.msg);
		return -1;
	}
	if ((r = dh_db_query(c, sql, n, p, &err))) {
		rows = atol(PQcmdTuples(r));
		PQclear(r);
	} else {
		DH_ERROR("forward: [%s] %s", err.sqlstate, err.msg);
	}
	dh_db_put(s->db, c, rows < 0 && dh_db_conn_lost(c, &err));
	return rows;
}

/* back-off of one object: retry_min * 2^attempts, at most retry_max seconds (attempts before this one) */
#define OBJ_BACKOFF "make_interval(secs => least($4::float8, $3::float8 * power(2, least(fwd_attempts, 20))))"

static void mark_failed(spoke *s, const fwd_obj *o, const char *why)
{
	char mn[24], mx[24];
	const char *p[4] = { o->pk, why, mn, mx };

	snprintf(mn, sizeof(mn), "%ld", s->cfg.fwd_retry_min);
	snprintf(mx, sizeof(mx), "%ld", s->cfg.fwd_retry_max);
	db_update(s,
		  "UPDATE ledger_instance SET fwd_attempts = fwd_attempts + 1, fwd_error = $2, "
		  "fwd_next_at = now() + " OBJ_BACKOFF " WHERE pk = $1::bigint AND fwd_state = 'pending'",
		  4, p);
}

static int mark_sent(spoke *s, const fwd_obj *o, const char *txn)
{
	const char *p[2] = { o->pk, txn };

	return db_update(s,
			 "UPDATE ledger_instance SET fwd_state = 'sent', fwd_txn_uid = $2, fwd_at = now(), "
			 "fwd_error = '' WHERE pk = $1::bigint AND fwd_state = 'pending'",
			 2, p) < 0 ? -1 : 0;
}

/* 'sent' rows whose result did not come within commit_timeout go back to 'pending'. */
static void requeue_stale(forwarder *f)
{
	spoke *s = f->s;
	char secs[24];
	const char *p[1] = { secs };
	long n;

	if (time(NULL) == f->last_requeue)
		return;
	f->last_requeue = time(NULL);
	snprintf(secs, sizeof(secs), "%ld", s->cfg.fwd_commit_timeout);
	n = db_update(s,
		      "UPDATE ledger_instance SET fwd_state = 'pending', fwd_next_at = now(), "
		      "fwd_error = 'no storage commitment result within ' || $1 || ' s' "
		      "WHERE fwd_state = 'sent' AND fwd_at < now() - make_interval(secs => $1::float8)",
		      1, p);
	if (n > 0)
		DH_WARN("forward: no storage commitment result for %ld object(s) within %ld s; sending them again",
			n, s->cfg.fwd_commit_timeout);
}

static void objs_free(fwd_obj *o, int n)
{
	for (int i = 0; o && i < n; i++) {
		free(o[i].pk);
		free(o[i].sop_uid);
		free(o[i].sop_class);
		free(o[i].ts);
		free(o[i].path);
	}
	free(o);
}

/* The due rows, at most forward.batch. Returns the number, or -1. */
static int load_due(spoke *s, fwd_obj **out)
{
	dh_db_err err = { "", "" };
	PGconn *c = dh_db_get(s->db, &err);
	PGresult *r = NULL;
	char limit[24];
	const char *p[1] = { limit };
	fwd_obj *o = NULL;
	int n = 0, rc = -1;

	*out = NULL;
	if (!c) {
		DH_DEBUG("forward: spoke database unavailable: %s", err.msg);
		return -1;
	}
	snprintf(limit, sizeof(limit), "%ld", s->cfg.fwd_batch);
	r = dh_db_query(c,
			"SELECT pk, received_sop_uid, sop_class_uid, transfer_syntax, file_path FROM ledger_instance "
			"WHERE fwd_state = 'pending' AND fwd_next_at <= now() ORDER BY pk LIMIT $1::int",
			1, p, &err);
	if (!r) {
		DH_ERROR("forward: reading the ledger: [%s] %s", err.sqlstate, err.msg);
		goto done;
	}
	n = PQntuples(r);
	if (n && !(o = calloc((size_t)n, sizeof(*o))))
		goto done;
	for (int i = 0; i < n; i++) {
		o[i].pc = -1;
		if (!(o[i].pk = strdup(PQgetvalue(r, i, 0))) || !(o[i].sop_uid = strdup(PQgetvalue(r, i, 1))) ||
		    !(o[i].sop_class = strdup(PQgetvalue(r, i, 2))) || !(o[i].ts = strdup(PQgetvalue(r, i, 3))) ||
		    asprintf(&o[i].path, "%s/%s", s->cfg.store_dir, PQgetvalue(r, i, 4)) < 0) {
			o[i].path = NULL;
			goto done;
		}
	}
	*out = o;
	o = NULL;
	rc = n;
done:
	if (rc < 0 && o)
		objs_free(o, n);
	PQclear(r);
	dh_db_put(s->db, c, rc < 0 && dh_db_conn_lost(c, &err));
	return rc;
}

/* ------------------------------------------------------------------ */
/* the association */

static int is_plain(const char *ts)
{
	return strcmp(ts, DH_TS_EXPLICIT_LE) == 0 || strcmp(ts, DH_TS_IMPLICIT_LE) == 0;
}

/*
 * The proposed contexts: the fallback of every SOP class first (so every
 * object has a way), then one per (SOP class, stored transfer syntax)
 * when that syntax is not already in the fallback, then storage
 * commitment. Objects whose SOP class found no room wait for a later
 * round (*n_fit tells how many of the first ones fit). Returns the number.
 */
static int plan_contexts(const fwd_obj *o, int n, dh_dcm_pc_req *req)
{
	int k = 0, n_fallback;

	for (int i = 0; i < n && k < MAX_PCS; i++) {
		int seen = 0;
		for (int j = 0; j < k && !seen; j++)
			seen = strcmp(req[j].abstract_syntax, o[i].sop_class) == 0;
		if (!seen)
			req[k++] = (dh_dcm_pc_req){ o[i].sop_class, fallback_ts, 2, 0 };
	}
	n_fallback = k;
	for (int i = 0; i < n && k < MAX_PCS; i++) {
		int seen = is_plain(o[i].ts);
		for (int j = n_fallback; j < k && !seen; j++)
			seen = strcmp(req[j].abstract_syntax, o[i].sop_class) == 0 && strcmp(req[j].ts[0], o[i].ts) == 0;
		if (!seen)
			req[k++] = (dh_dcm_pc_req){ o[i].sop_class, (const char *const *)&o[i].ts, 1, 0 };
	}
	static const char *const stgcmt_ts[] = { DH_TS_EXPLICIT_LE, DH_TS_IMPLICIT_LE };
	req[k++] = (dh_dcm_pc_req){ DH_UID_STGCMT_PUSH, stgcmt_ts, 2, 0 };
	return k;
}

/* The context for an object: its own syntax (raw), else the fallback (re-encoded). -1: none. */
static int choose_pc(dh_dcm_assoc *a, const fwd_obj *o, int *raw)
{
	int id;

	*raw = 0;
	if (dh_dcm_assoc_find_pc(a, o->sop_class, o->ts, &id, NULL) == DH_DCM_OK) {
		*raw = 1;
		return id;
	}
	if (dh_dcm_assoc_find_pc(a, o->sop_class, DH_TS_EXPLICIT_LE, &id, NULL) == DH_DCM_OK ||
	    dh_dcm_assoc_find_pc(a, o->sop_class, DH_TS_IMPLICIT_LE, &id, NULL) == DH_DCM_OK)
		return id;
	return -1;
}

static void hub_unreachable(forwarder *f, const char *why)
{
	const spoke_config *c = &f->s->cfg;

	f->backoff = f->backoff ? f->backoff * 2 : c->fwd_retry_min;
	if (f->backoff > c->fwd_retry_max)
		f->backoff = c->fwd_retry_max;
	f->retry_at = time(NULL) + f->backoff;
	if (!f->hub_down)
		DH_WARN("forward: the hub %s at %s:%ld is not reachable: %s; objects stay pending, retrying with "
			"back-off (%ld..%ld s; logged once until it answers)",
			c->hub_ae_title, c->hub_host, c->hub_port, why, c->fwd_retry_min, c->fwd_retry_max);
	else
		DH_DEBUG("forward: hub still not reachable (%s); next attempt in %ld s", why, f->backoff);
	f->hub_down = 1;
}

static void hub_reachable(forwarder *f)
{
	if (f->hub_down)
		DH_INFO("forward: the hub %s answers again", f->s->cfg.hub_ae_title);
	f->hub_down = 0;
	f->backoff = 0;
	f->retry_at = 0;
}

/* N-ACTION for the objects sent in this round. */
static void request_commitment(forwarder *f, dh_dcm_assoc *a, const fwd_obj *o, int n, const char *txn)
{
	spoke *s = f->s;
	dh_dcm_ds *ds = NULL;
	char path[64], err[300] = "";
	unsigned int status = 0xFFFF;
	int pc, k = 0;

	if (dh_dcm_assoc_find_pc(a, DH_UID_STGCMT_PUSH, NULL, &pc, NULL) != DH_DCM_OK) {
		DH_ERROR("forward: the hub refused the Storage Commitment context; the objects of %s will be sent "
			 "again after %ld s", txn, s->cfg.fwd_commit_timeout);
		return;
	}
	if (dh_dcm_ds_new(&ds) != DH_DCM_OK)
		return;
	dh_dcm_ds_put(ds, DH_TAG(0x0008, 0x1195), txn);
	for (int i = 0; i < n; i++) {
		if (!o[i].sent)
			continue;
		snprintf(path, sizeof(path), "(0008,1199)[%d].(0008,1150)", k);
		dh_dcm_ds_put_path(ds, path, o[i].sop_class);
		snprintf(path, sizeof(path), "(0008,1199)[%d].(0008,1155)", k++);
		dh_dcm_ds_put_path(ds, path, o[i].sop_uid);
	}
	if (dh_dcm_n_action(a, pc, DH_UID_STGCMT_PUSH, DH_UID_STGCMT_PUSH_INSTANCE, 1, ds,
			    (int)s->cfg.dimse_timeout, &status, err, sizeof(err)) != DH_DCM_OK)
		DH_WARN("forward: storage commitment request %s failed: %s; sending again after %ld s", txn, err,
			s->cfg.fwd_commit_timeout);
	else if (status != 0x0000)
		DH_WARN("forward: the hub answered storage commitment request %s with status %04x; sending again "
			"after %ld s", txn, status, s->cfg.fwd_commit_timeout);
	else
		DH_INFO("forward: %d object(s) sent, storage commitment requested (%s)", k, txn);
	dh_dcm_ds_free(ds);
}

/*
 * One round. Returns the number of rows it handled (0: nothing due, or the
 * hub is away), or -1 when the database failed.
 */
static int forward_round(forwarder *f)
{
	spoke *s = f->s;
	const spoke_config *c = &s->cfg;
	fwd_obj *o = NULL;
	dh_dcm_pc_req *req = NULL;
	dh_dcm_assoc *a = NULL;
	char err[300] = "", txn[DH_UID_MAX + 1];
	int n, n_pc, handled = 0, n_sent = 0, broken = 0;

	if ((n = load_due(s, &o)) <= 0)
		return n;
	if (!(req = calloc(MAX_PCS + 1, sizeof(*req))) || dh_uid_generate(txn) != 0) {
		handled = -1;
		goto done;
	}
	n_pc = plan_contexts(o, n, req);
	int rc = dh_dcm_assoc_request_tls(&a, c->ae_title, c->hub_ae_title, c->hub_host, (int)c->hub_port,
					  (int)c->max_pdu, (int)c->acse_timeout, req, n_pc, s->tls_client, err,
					  sizeof(err));
	if (rc != DH_DCM_OK) {
		hub_unreachable(f, rc == DH_DCM_REJECTED ? "association rejected" : err);
		goto done;
	}
	hub_reachable(f);
	for (int i = 0; i < n && !stopping(f); i++) {
		int raw, pc = choose_pc(a, &o[i], &raw);
		unsigned int st = 0xFFFF;
		char why[400];
		int sr;

		if (pc < 0) {
			int fits = 0;
			for (int j = 0; j < n_pc - 1 && !fits; j++)
				fits = strcmp(req[j].abstract_syntax, o[i].sop_class) == 0;
			if (!fits)
				continue; /* no room in this association's contexts: a later round */
			snprintf(why, sizeof(why), "the hub accepts no presentation context for SOP class %s",
				 o[i].sop_class);
			DH_WARN("forward: %s not sent: %s", o[i].sop_uid, why);
			mark_failed(s, &o[i], why);
			handled++;
			continue;
		}
		err[0] = '\0';
		sr = dh_dcm_store_file_ex(a, pc, o[i].path, raw, o[i].sop_class, o[i].sop_uid, NULL, 0, NULL, 0,
					  (int)c->dimse_timeout, &st, err, sizeof(err));
		if (sr == DH_DCM_ABORTED || sr == DH_DCM_TIMEOUT) {
			broken = 1;
			hub_unreachable(f, err[0] ? err : "association lost");
			break;
		}
		handled++;
		if (sr != DH_DCM_OK) {
			snprintf(why, sizeof(why), "cannot send: %s", err);
			DH_WARN("forward: %s: %s", o[i].sop_uid, why);
			mark_failed(s, &o[i], why);
		} else if (st == 0x0000 || (st & 0xF000) == 0xB000) {
			if (mark_sent(s, &o[i], txn) != 0) {
				/* the hub has it; the row stays pending and goes again (a resend is harmless) */
				handled = -1;
				break;
			}
			o[i].sent = 1;
			n_sent++;
		} else {
			snprintf(why, sizeof(why), "the hub answered C-STORE with status %04x", st);
			DH_WARN("forward: %s: %s", o[i].sop_uid, why);
			mark_failed(s, &o[i], why);
		}
	}
	if (broken) {
		dh_dcm_assoc_abort(a);
	} else {
		if (n_sent)
			request_commitment(f, a, o, n, txn);
		dh_dcm_assoc_release(a);
	}
done:
	dh_dcm_assoc_free(a);
	free(req);
	objs_free(o, n > 0 ? n : 0);
	return handled;
}

/* ------------------------------------------------------------------ */
/* results (receive.c) */

int forward_commit_result(spoke *s, const char *transaction_uid, const char *const *ok_sops, int n_ok,
			  const char *const *failed_sops, int n_failed)
{
	dh_db_err err = { "", "" };
	PGconn *c = dh_db_get(s->db, &err);
	char mn[24], mx[24];
	long committed = 0, failed = 0;
	int rc = -1;

	if (!c) {
		DH_ERROR("storage commitment result %s: spoke database unavailable: %s", transaction_uid, err.msg);
		return -1;
	}
	snprintf(mn, sizeof(mn), "%ld", s->cfg.fwd_retry_min);
	snprintf(mx, sizeof(mx), "%ld", s->cfg.fwd_retry_max);
	if (dh_db_exec(c, "BEGIN", 0, NULL, &err) != 0)
		goto done;
	for (int i = 0; i < n_ok; i++) {
		const char *p[2] = { transaction_uid, ok_sops[i] };
		/* also a row requeued after the time-out: the hub holds it */
		PGresult *r = dh_db_query(c,
					  "UPDATE ledger_instance SET fwd_state = 'committed', fwd_error = '' "
					  "WHERE fwd_txn_uid = $1 AND received_sop_uid = $2 "
					  "AND fwd_state IN ('sent', 'pending')",
					  2, p, &err);
		if (!r)
			goto rollback;
		committed += atol(PQcmdTuples(r));
		PQclear(r);
	}
	for (int i = 0; i < n_failed; i++) {
		const char *p[4] = { transaction_uid, failed_sops[i], mn, mx };
		PGresult *r = dh_db_query(c,
					  "UPDATE ledger_instance SET fwd_state = 'pending', fwd_attempts = fwd_attempts + 1, "
					  "fwd_error = 'the hub did not commit it (storage commitment ' || $1 || ')', "
					  "fwd_next_at = now() + " OBJ_BACKOFF " "
					  "WHERE fwd_txn_uid = $1 AND received_sop_uid = $2 AND fwd_state = 'sent'",
					  4, p, &err);
		if (!r)
			goto rollback;
		failed += atol(PQcmdTuples(r));
		PQclear(r);
	}
	if (dh_db_exec(c, "COMMIT", 0, NULL, &err) != 0)
		goto rollback;
	if (committed < n_ok || failed < n_failed)
		DH_INFO("storage commitment result %s: %ld of %d committed and %ld of %d failed object(s) matched "
			"the ledger (the rest were already settled)",
			transaction_uid, committed, n_ok, failed, n_failed);
	if (n_failed)
		DH_WARN("storage commitment %s: the hub did not commit %d object(s); they will be sent again",
			transaction_uid, n_failed);
	rc = 0;
	goto done;
rollback:
	if (!dh_db_conn_lost(c, &err))
		dh_db_exec(c, "ROLLBACK", 0, NULL, &(dh_db_err){ "", "" });
done:
	if (rc != 0)
		DH_ERROR("storage commitment result %s: [%s] %s", transaction_uid, err.sqlstate, err.msg);
	dh_db_put(s->db, c, rc != 0 && dh_db_conn_lost(c, &err));
	if (rc == 0 && n_failed)
		forward_wake(s);
	return rc;
}

/* ------------------------------------------------------------------ */
/* the thread */

static void *forward_main(void *arg)
{
	forwarder *f = arg;

	dh_log_set_context("forward");
	while (!stopping(f)) {
		time_t now = time(NULL);
		int n;

		if (f->retry_at && now < f->retry_at) {
			/* hub back-off: new objects wait too (they would meet the same closed door) */
			wait_kick(f, 1000);
			continue;
		}
		requeue_stale(f);
		n = forward_round(f);
		if (n > 0)
			continue;
		wait_kick(f, 1000);
	}
	dh_log_set_context(NULL);
	return NULL;
}

int forward_start(spoke *s)
{
	forwarder *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->s = s;
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->wake, NULL);
	s->forwarder = f;
	if (pthread_create(&f->thread, NULL, forward_main, f) != 0) {
		DH_ERROR("forward: cannot start its thread");
		return -1;
	}
	f->started = 1;
	DH_INFO("forward: objects go to %s at %s:%ld (batch %ld, retry %ld..%ld s, commit time-out %ld s)",
		s->cfg.hub_ae_title, s->cfg.hub_host, s->cfg.hub_port, s->cfg.fwd_batch, s->cfg.fwd_retry_min,
		s->cfg.fwd_retry_max, s->cfg.fwd_commit_timeout);
	return 0;
}

void forward_stop(spoke *s)
{
	forwarder *f = s->forwarder;

	if (!f)
		return;
	s->stop = 1;
	if (f->started) {
		forward_wake(s);
		pthread_join(f->thread, NULL);
		f->started = 0;
	}
	/* an association thread still running (receive_stop waits only so long)
	 * may call forward_wake: then the forwarder stays allocated until exit */
	if (atomic_load(&s->active) > 0)
		return;
	s->forwarder = NULL;
	pthread_mutex_destroy(&f->lock);
	pthread_cond_destroy(&f->wake);
	free(f);
}
