/*
 * external.c - export to external archives with Storage Commitment SCU
 * (conformance §2.2.1.5.2); see external.h for the contract.
 *
 * NOTES
 * One worker thread, one round per external.scan_interval:
 *   1. queue: every instance of a stable study that has no external_object
 *      row for an exporting archive gets one (state queued). This scans the
 *      instance table, so it runs only while something may still become
 *      stable: at start and for stable_seconds (+ slack) after the table
 *      last grew (need_scan); an idle hub pays one index lookup a round;
 *      a hub receiving all the time scans every round;
 *   2. per archive: the due queued rows (at most external.batch) are sent
 *      over ONE association, which also proposes Storage Commitment Push
 *      Model (SCU role) when the archive has commit = true;
 *   3. on that association, one N-ACTION asks commitment for every row in
 *      state sent without an open transaction: those just sent and those a
 *      crash or an expired request left behind. The Transaction UID is
 *      stored with the rows before the N-ACTION goes out, so a result can
 *      never arrive for a transaction the index does not know.
 * Outcomes: C-STORE success/warning -> sent (commit) or committed (no
 * commit); an error status -> failed (the archive refused that object:
 * sending it again would give the same answer; `hubctl external retry`
 * queues it again); no association / association lost -> stays queued,
 * attempts + 1, next try after external.retry_interval.
 * The N-EVENT-REPORT comes from the archive on a new association (the hub's
 * listener passes it here) or on ours: after the N-ACTION the worker waits
 * external.report_wait seconds for it there before releasing. Either way
 * the result is applied per object in one transaction.
 */
#include "external.h"

#include "log.h"
#include "nearline.h"
#include "render.h"
#include "uid.h"
#include "worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_PCS 128
#define ST_SUCCESS 0x0000
#define ST_PROCESSING_FAILURE 0x0110
#define ST_NO_SUCH_EVENT 0x0113
#define ST_INVALID_ARGUMENT 0x0115

struct external {
	dh_worker *w; /* rounds every external.scan_interval seconds (common/worker.h) */
	char *down; /* per archive: 1 while unreachable (log once) */
	/* when the instance table last grew: queueing scans only while something may still become stable */
	long long last_max_pk;
	time_t last_growth;
	int scanned_once;
};

int external_configured(const hub_config *cfg)
{
	for (int i = 0; i < cfg->n_remotes; i++)
		if (cfg->remotes[i].export_objects)
			return 1;
	return 0;
}

/* ---- one object to send ------------------------------------------------- */

typedef struct {
	char *row_pk;   /* external_object.pk */
	char *inst_pk;  /* instance.pk */
	char *sop_uid, *sop_class, *ts, *path, *series_uid, *study_uid;
} exp_obj;

static void objs_free(exp_obj *o, int n)
{
	for (int i = 0; o && i < n; i++) {
		free(o[i].row_pk);
		free(o[i].inst_pk);
		free(o[i].sop_uid);
		free(o[i].sop_class);
		free(o[i].ts);
		free(o[i].path);
		free(o[i].series_uid);
		free(o[i].study_uid);
	}
	free(o);
}

/* Queues the objects of stable studies that archive ae has no row for. Returns rows queued or -1. */
static long enqueue(hub *h, PGconn *c, const char *ae)
{
	dh_db_err err = { "", "" };
	char secs[32];
	snprintf(secs, sizeof(secs), "%ld", h->cfg.ext_stable_seconds);
	const char *p[2] = { ae, secs };
	PGresult *r = dh_db_query(
		c,
		"INSERT INTO external_object (instance_fk, archive_ae) "
		"SELECT i.pk, $1 FROM instance i JOIN series se ON se.pk = i.series_fk "
		"WHERE NOT EXISTS (SELECT 1 FROM external_object e WHERE e.instance_fk = i.pk AND e.archive_ae = $1) "
		"AND NOT EXISTS (SELECT 1 FROM series s2 JOIN instance i2 ON i2.series_fk = s2.pk "
		"                WHERE s2.study_fk = se.study_fk "
		"                AND i2.received_at > now() - make_interval(secs => $2::double precision)) "
		"ON CONFLICT DO NOTHING",
		2, p, &err);
	if (!r) {
		DH_ERROR("export to %s: cannot queue objects: [%s] %s", ae, err.sqlstate, err.msg);
		return -1;
	}
	long n = atol(PQcmdTuples(r));
	PQclear(r);
	if (n > 0)
		DH_INFO("export to %s: %ld object(s) queued", ae, n);
	return n;
}

/* Loads the due queued rows of archive ae. Returns their number (0..batch) or -1. */
static int load_due(hub *h, PGconn *c, const char *ae, exp_obj **out)
{
	dh_db_err err = { "", "" };
	char lim[32];
	snprintf(lim, sizeof(lim), "%ld", h->cfg.ext_batch);
	char lease[32];
	/* a claim outlives any round (connect + every C-STORE + N-ACTION); a crash frees it after that */
	snprintf(lease, sizeof(lease), "%ld", 2 * h->cfg.dimse_timeout + h->cfg.acse_timeout);
	const char *p[3] = { ae, lim, lease };
	exp_obj *o = NULL;
	int n = -1;
	/* claimed in one statement, so hubd processes sharing the index never send a row twice */
	PGresult *r = dh_db_query(
		c,
		"WITH due AS (SELECT pk FROM external_object WHERE archive_ae = $1 AND state = 'queued' "
		"  AND next_attempt_at <= now() AND instance_fk IS NOT NULL ORDER BY pk LIMIT $2::int "
		"  FOR UPDATE SKIP LOCKED), "
		"claim AS (UPDATE external_object e SET next_attempt_at = now() + make_interval(secs => $3::double precision) "
		"  FROM due WHERE e.pk = due.pk RETURNING e.pk, e.instance_fk) "
		"SELECT claim.pk, i.pk, i.sop_uid, i.sop_class_uid, i.transfer_syntax, i.file_path, se.series_uid, "
		"st.study_uid FROM claim JOIN instance i ON i.pk = claim.instance_fk "
		"JOIN series se ON se.pk = i.series_fk JOIN study st ON st.pk = se.study_fk ORDER BY claim.pk",
		3, p, &err);
	if (!r) {
		DH_ERROR("export to %s: cannot read the queue: [%s] %s", ae, err.sqlstate, err.msg);
		return -1;
	}
	int rows = PQntuples(r);
	if (!(o = calloc(rows ? (size_t)rows : 1, sizeof(*o))))
		goto done;
	for (int i = 0; i < rows; i++) {
		exp_obj *x = &o[i];
		x->row_pk = strdup(PQgetvalue(r, i, 0));
		x->inst_pk = strdup(PQgetvalue(r, i, 1));
		x->sop_uid = strdup(PQgetvalue(r, i, 2));
		x->sop_class = strdup(PQgetvalue(r, i, 3));
		x->ts = strdup(PQgetvalue(r, i, 4));
		if (!PQgetisnull(r, i, 5) && asprintf(&x->path, "%s/%s", h->cfg.cache_dir, PQgetvalue(r, i, 5)) < 0)
			x->path = NULL;
		x->series_uid = strdup(PQgetvalue(r, i, 6));
		x->study_uid = strdup(PQgetvalue(r, i, 7));
		if (!x->row_pk || !x->inst_pk || !x->sop_uid || !x->sop_class || !x->ts || !x->series_uid ||
		    !x->study_uid) {
			objs_free(o, rows);
			o = NULL;
			goto done;
		}
	}
	n = rows;
	*out = o;
	o = NULL;
done:
	PQclear(r);
	return n;
}

/* ---- recording outcomes --------------------------------------------------- */

static void record(PGconn *c, const exp_obj *o, const char *state, const char *error)
{
	dh_db_err err = { "", "" };
	const char *p[7] = { o->row_pk, state, error, o->sop_uid, o->sop_class, o->series_uid, o->study_uid };
	if (dh_db_exec(c,
		       "UPDATE external_object SET state = $2, last_error = $3, attempts = attempts + 1, "
		       "sop_uid = $4, sop_class_uid = $5, series_uid = $6, study_uid = $7, sent_at = now(), "
		       "transaction_uid = NULL, failure_reason = NULL, "
		       "committed_at = CASE WHEN $2 = 'committed' THEN now() END WHERE pk = $1::bigint",
		       7, p, &err) < 0)
		DH_ERROR("export: cannot record %s as %s: %s", o->sop_uid, state, err.msg);
}

/* The archive could not be reached or the association broke: try again later. */
static void postpone(hub *h, PGconn *c, const exp_obj *o, int n, const char *why)
{
	dh_db_err err = { "", "" };
	char secs[32];
	snprintf(secs, sizeof(secs), "%ld", h->cfg.ext_retry_interval);
	for (int i = 0; i < n; i++) {
		const char *p[3] = { o[i].row_pk, why, secs };
		if (dh_db_exec(c,
			       "UPDATE external_object SET attempts = attempts + 1, last_error = $2, "
			       "next_attempt_at = now() + make_interval(secs => $3::double precision) "
			       "WHERE pk = $1::bigint AND state = 'queued'",
			       3, p, &err) < 0) {
			DH_ERROR("export: cannot record the retry of %s: %s", o[i].sop_uid, err.msg);
			return;
		}
	}
}

/* ---- the association ------------------------------------------------------- */

static const char *const fallback_ts[] = { DH_TS_EXPLICIT_LE, DH_TS_IMPLICIT_LE };

static int plan_contexts(const exp_obj *o, int n, int commit, dh_dcm_pc_req *req)
{
	int k = 0;
	int room = commit ? MAX_PCS - 1 : MAX_PCS;
	for (int i = 0; i < n && k < room; i++) {
		int seen = 0;
		for (int j = 0; j < k && !seen; j++)
			seen = strcmp(req[j].abstract_syntax, o[i].sop_class) == 0;
		if (!seen)
			req[k++] = (dh_dcm_pc_req){ o[i].sop_class, fallback_ts, 2, 0 };
	}
	int n_fallback = k;
	for (int i = 0; i < n && k < room; i++) {
		int seen = strcmp(o[i].ts, DH_TS_EXPLICIT_LE) == 0 || strcmp(o[i].ts, DH_TS_IMPLICIT_LE) == 0;
		for (int j = n_fallback; j < k && !seen; j++)
			seen = strcmp(req[j].abstract_syntax, o[i].sop_class) == 0 && strcmp(req[j].ts[0], o[i].ts) == 0;
		if (!seen)
			req[k++] = (dh_dcm_pc_req){ o[i].sop_class, (const char *const *)&o[i].ts, 1, 0 };
	}
	if (commit)
		req[k++] = (dh_dcm_pc_req){ DH_UID_STGCMT_PUSH, fallback_ts, 2, 0 };
	return k;
}

/* Sends one object as it is now (cache file or TAR member, render overrides applied). */
static int send_one(hub *h, dh_dcm_assoc *a, const exp_obj *o, const render_set *rs, unsigned int *st,
		    char *err, size_t errlen)
{
	const int timeout = (int)h->cfg.dimse_timeout;
	const dh_dcm_override *ov = NULL;
	int n_ov = 0, pc, raw = 0;
	if (dh_dcm_assoc_find_pc(a, o->sop_class, o->ts, &pc, NULL) == DH_DCM_OK)
		raw = 1;
	else if (dh_dcm_assoc_find_pc(a, o->sop_class, DH_TS_EXPLICIT_LE, &pc, NULL) != DH_DCM_OK &&
		 dh_dcm_assoc_find_pc(a, o->sop_class, DH_TS_IMPLICIT_LE, &pc, NULL) != DH_DCM_OK) {
		snprintf(err, errlen, "the archive accepts no presentation context for SOP class %s", o->sop_class);
		*st = 0x0122; /* SOP class not supported: a refusal, not a transport error */
		return DH_DCM_OK;
	}
	render_get(rs, o->inst_pk, &ov, &n_ov);
	if (o->path)
		return dh_dcm_store_file_ex(a, pc, o->path, raw, o->sop_class, o->sop_uid, NULL, 0, ov, n_ov,
					    timeout, st, err, errlen);
	archive_loc loc;
	dh_db_err dberr = { "", "" };
	PGconn *c = dh_db_get(h->db, &dberr);
	if (!c) {
		snprintf(err, errlen, "index database unavailable");
		return DH_DCM_ERROR;
	}
	int lr = archive_locate(h, c, o->inst_pk, &loc, &dberr);
	dh_db_put(h->db, c, lr < 0 && dh_db_conn_lost(c, &dberr));
	if (lr < 0) {
		snprintf(err, errlen, "%.200s", dberr.msg);
		return DH_DCM_ERROR;
	}
	if (loc.avail == AVAIL_ONLINE)
		return dh_dcm_store_file_ex(a, pc, loc.path, raw, o->sop_class, o->sop_uid, NULL, 0, ov, n_ov,
					    timeout, st, err, errlen);
	unsigned char *buf = NULL;
	size_t len = 0;
	if (archive_read(&loc, &buf, &len, err, errlen) < 0)
		return DH_DCM_ERROR;
	int rc = dh_dcm_store_buffer(a, pc, buf, len, raw, o->sop_class, o->sop_uid, NULL, 0, ov, n_ov, timeout,
				     st, err, errlen);
	free(buf);
	return rc;
}

static int handle_report(hub *h, dh_dcm_assoc *a, const dh_dcm_cmd *cmd, const char *from);

/*
 * Some archives report on the request's association: wait report_wait
 * seconds for that. Returns 1 when the archive ended the association.
 */
static int wait_same_association(hub *h, dh_dcm_assoc *a, const hub_remote_ae *ae)
{
	char err[256] = "";
	dh_dcm_cmd cmd;
	int rc = dh_dcm_receive_command(a, (int)h->cfg.ext_report_wait, &cmd, err, sizeof(err));
	if (rc == DH_DCM_TIMEOUT)
		return 0;
	if (rc == DH_DCM_RELEASED || rc == DH_DCM_ABORTED)
		return 1;
	if (rc != DH_DCM_OK) {
		DH_WARN("export to %s: %s", ae->ae_title, err);
		dh_dcm_assoc_abort(a);
		return 1;
	}
	if (cmd.type == DH_DIMSE_N_EVENT_REPORT_RQ) {
		if (handle_report(h, a, &cmd, ae->ae_title) < 0) {
			dh_dcm_assoc_abort(a);
			return 1;
		}
		return 0;
	}
	if (cmd.has_dataset)
		dh_dcm_receive_discard(a, (int)h->cfg.dimse_timeout);
	dh_dcm_send_response(a, &cmd, 0x0211, NULL, "unsupported operation", NULL);
	return 0;
}

/*
 * Requests commitment for the rows of ae in state sent without a
 * transaction, on association a. Returns the number requested, or -1;
 * *ended is set when the archive ended the association meanwhile.
 */
static int request_commitment(hub *h, PGconn *c, dh_dcm_assoc *a, const hub_remote_ae *ae, int *ended)
{
	dh_db_err err = { "", "" };
	char txn[DH_UID_MAX + 1], lim[32], path[64], derr[300] = "";
	dh_dcm_ds *ds = NULL;
	PGresult *r = NULL;
	unsigned int status = 0xFFFF;
	int pc, n = -1;
	if (dh_dcm_assoc_find_pc(a, DH_UID_STGCMT_PUSH, NULL, &pc, NULL) != DH_DCM_OK) {
		DH_ERROR("export to %s: the archive refused the Storage Commitment context (commit = true); "
			 "objects stay 'sent' until it accepts it", ae->ae_title);
		return -1;
	}
	if (dh_uid_generate(txn) != 0)
		return -1;
	snprintf(lim, sizeof(lim), "%ld", h->cfg.ext_batch);
	const char *p[3] = { ae->ae_title, txn, lim };
	/* claim the rows for this transaction first: a result is never for an unknown transaction */
	if (dh_db_exec(c, "BEGIN", 0, NULL, &err) < 0)
		goto done;
	r = dh_db_query(c,
			"WITH t AS (UPDATE external_object SET transaction_uid = $2 WHERE pk IN ("
			"  SELECT pk FROM external_object WHERE archive_ae = $1 AND state = 'sent' "
			"  AND transaction_uid IS NULL ORDER BY pk LIMIT $3::int FOR UPDATE SKIP LOCKED) "
			"  AND transaction_uid IS NULL RETURNING sop_class_uid, sop_uid) "
			"SELECT sop_class_uid, sop_uid FROM t",
			3, p, &err);
	if (!r)
		goto rollback;
	int rows = PQntuples(r);
	if (rows == 0) {
		n = 0;
		goto rollback;
	}
	char cnt[32];
	snprintf(cnt, sizeof(cnt), "%d", rows);
	const char *tp[3] = { txn, ae->ae_title, cnt };
	if (dh_db_exec(c, "INSERT INTO external_txn (transaction_uid, archive_ae, n_objects) VALUES ($1, $2, $3::int)",
		       3, tp, &err) < 0 ||
	    dh_db_exec(c, "COMMIT", 0, NULL, &err) < 0)
		goto rollback;
	if (dh_dcm_ds_new(&ds) != DH_DCM_OK)
		goto done;
	dh_dcm_ds_put(ds, DH_TAG(0x0008, 0x1195), txn);
	for (int i = 0; i < rows; i++) {
		snprintf(path, sizeof(path), "(0008,1199)[%d].(0008,1150)", i);
		dh_dcm_ds_put_path(ds, path, PQgetvalue(r, i, 0));
		snprintf(path, sizeof(path), "(0008,1199)[%d].(0008,1155)", i);
		dh_dcm_ds_put_path(ds, path, PQgetvalue(r, i, 1));
	}
	if (dh_dcm_n_action(a, pc, DH_UID_STGCMT_PUSH, DH_UID_STGCMT_PUSH_INSTANCE, 1, ds, (int)h->cfg.dimse_timeout,
			    &status, derr, sizeof(derr)) != DH_DCM_OK || status != ST_SUCCESS) {
		if (!derr[0])
			snprintf(derr, sizeof(derr), "N-ACTION status %04X", status);
		DH_WARN("export to %s: storage commitment request %s failed: %s; requested again in a later round",
			ae->ae_title, txn, derr);
		/* release the rows and close the transaction: nothing was promised */
		const char *xp[2] = { txn, derr };
		if (dh_db_exec(c, "UPDATE external_object SET transaction_uid = NULL, last_error = $2 "
				  "WHERE transaction_uid = $1 AND state = 'sent'", 2, xp, &err) < 0 ||
		    dh_db_exec(c, "UPDATE external_txn SET state = 'expired' WHERE transaction_uid = $1", 1, xp,
			       &err) < 0)
			DH_ERROR("export to %s: %s", ae->ae_title, err.msg);
		goto done;
	}
	DH_INFO("export to %s: storage commitment requested for %d object(s) (transaction %s)", ae->ae_title,
		rows, txn);
	n = rows;
	if (h->cfg.ext_report_wait > 0)
		*ended = wait_same_association(h, a, ae);
	goto done;
rollback:
	if (err.msg[0])
		DH_ERROR("export to %s: cannot prepare a storage commitment request: [%s] %s", ae->ae_title,
			 err.sqlstate, err.msg);
	dh_db_exec(c, "ROLLBACK", 0, NULL, &err);
done:
	dh_dcm_ds_free(ds);
	PQclear(r);
	return n;
}

/* Requests without a result after commit_timeout: their objects are requested again. */
static void expire(hub *h, PGconn *c)
{
	dh_db_err err = { "", "" };
	char secs[32];
	snprintf(secs, sizeof(secs), "%ld", h->cfg.ext_commit_timeout);
	const char *p[1] = { secs };
	PGresult *r = dh_db_query(
		c,
		"WITH x AS (UPDATE external_txn SET state = 'expired' WHERE state = 'requested' "
		"  AND requested_at < now() - make_interval(secs => $1::double precision) RETURNING transaction_uid) "
		"UPDATE external_object e SET transaction_uid = NULL, "
		"  last_error = 'no storage commitment result for ' || x.transaction_uid "
		"FROM x WHERE e.transaction_uid = x.transaction_uid AND e.state = 'sent'",
		1, p, &err);
	if (!r)
		DH_ERROR("export: cannot expire storage commitment requests: %s", err.msg);
	else if (atol(PQcmdTuples(r)) > 0)
		DH_WARN("export: %s object(s) had no storage commitment result within %ld s: requesting again",
			PQcmdTuples(r), h->cfg.ext_commit_timeout);
	PQclear(r);
}

/* 1 when ae has rows in state sent without a transaction. */
static int commit_due(PGconn *c, const char *ae)
{
	dh_db_err err = { "", "" };
	const char *p[1] = { ae };
	PGresult *r = dh_db_query(c, "SELECT 1 FROM external_object WHERE archive_ae = $1 AND state = 'sent' "
				     "AND transaction_uid IS NULL LIMIT 1", 1, p, &err);
	int due = r && PQntuples(r) > 0;
	PQclear(r);
	return due;
}

/*
 * 1 when queueing has to look at the index this round: at start, and until
 * stable_seconds (plus slack for transactions that commit late) have passed
 * since the instance table last grew. An idle hub then costs one index
 * lookup per round instead of a scan of every instance.
 */
static int need_scan(hub *h, PGconn *c)
{
	external *x = h->external;
	dh_db_err err = { "", "" };
	PGresult *r = dh_db_query(c, "SELECT COALESCE(max(pk), 0) FROM instance", 0, NULL, &err);
	if (!r)
		return 1;
	long long m = atoll(PQgetvalue(r, 0, 0));
	PQclear(r);
	time_t now = time(NULL);
	if (m != x->last_max_pk || !x->scanned_once) {
		x->last_max_pk = m;
		x->last_growth = now;
		x->scanned_once = 1;
		return 1;
	}
	return now - x->last_growth <= h->cfg.ext_stable_seconds + 2 * h->cfg.ext_scan_interval + 60;
}

/* One round for one archive. Returns objects handled, or -1 on database failure. */
static int export_round(hub *h, const hub_remote_ae *ae, int idx, int scan)
{
	external *x = h->external;
	dh_db_err err = { "", "" };
	PGconn *c = dh_db_get(h->db, &err);
	exp_obj *o = NULL;
	render_set *rs = NULL;
	dh_dcm_pc_req *req = NULL;
	dh_dcm_assoc *a = NULL;
	const char **pks = NULL;
	char derr[300] = "";
	int n = 0, handled = -1, broken = 0;
	if (!c) {
		DH_ERROR("export: index database unavailable: %s", err.msg);
		return -1;
	}
	if (scan && enqueue(h, c, ae->ae_title) < 0)
		goto done;
	/* deleted at the hub (a cc) before they could be sent: nothing left to send */
	const char *dp[1] = { ae->ae_title };
	if (dh_db_exec(c, "UPDATE external_object SET state = 'failed', last_error = 'deleted at the hub before export' "
			  "WHERE archive_ae = $1 AND state = 'queued' AND instance_fk IS NULL", 1, dp, &err) < 0)
		DH_ERROR("export to %s: %s", ae->ae_title, err.msg);
	if ((n = load_due(h, c, ae->ae_title, &o)) < 0)
		goto done;
	int want_commit = ae->commit && commit_due(c, ae->ae_title);
	if (n == 0 && !want_commit) {
		handled = 0;
		goto done;
	}
	if (n > 0) {
		if (!(pks = calloc((size_t)n, sizeof(*pks))))
			goto done;
		for (int i = 0; i < n; i++)
			pks[i] = o[i].inst_pk;
		if (render_load(c, pks, n, &rs, &err) < 0) {
			DH_ERROR("export to %s: reading what to change in the objects failed: %s", ae->ae_title, err.msg);
			goto done;
		}
	}
	if (!(req = calloc(MAX_PCS, sizeof(*req))))
		goto done;
	int n_pc = plan_contexts(o, n, ae->commit, req);
	int rc = hub_connect(h, &a, ae, (int)h->cfg.acse_timeout, req, n_pc, derr, sizeof(derr));
	if (rc != DH_DCM_OK) {
		if (rc == DH_DCM_REJECTED)
			snprintf(derr, sizeof(derr), "association rejected");
		if (!x->down[idx])
			DH_WARN("export to %s (%s:%ld): archive not reachable: %s; %d object(s) stay queued, retried every "
				"%ld s (logged once until it answers)", ae->ae_title, ae->host, ae->port, derr, n,
				h->cfg.ext_retry_interval);
		x->down[idx] = 1;
		postpone(h, c, o, n, derr);
		handled = 0;
		goto done;
	}
	if (x->down[idx])
		DH_INFO("export to %s: the archive answers again", ae->ae_title);
	x->down[idx] = 0;
	int sent = 0, failed = 0, i;
	for (i = 0; i < n && !h->stop; i++) {
		unsigned int st = 0xFFFF;
		derr[0] = '\0';
		rc = send_one(h, a, &o[i], rs, &st, derr, sizeof(derr));
		if (rc == DH_DCM_OK && (st == 0x0000 || (st & 0xF000) == 0xB000)) {
			record(c, &o[i], ae->commit ? "sent" : "committed", st ? "C-STORE warning" : "");
			sent++;
		} else if (rc == DH_DCM_OK) {
			char why[400];
			snprintf(why, sizeof(why), "C-STORE status %04X%s%s", st, derr[0] ? ": " : "", derr);
			DH_WARN("export to %s: %s refused: %s", ae->ae_title, o[i].sop_uid, why);
			record(c, &o[i], "failed", why);
			failed++;
		} else if (rc == DH_DCM_ABORTED || rc == DH_DCM_TIMEOUT) {
			DH_WARN("export to %s: association lost: %s", ae->ae_title, derr);
			postpone(h, c, o + i, n - i, derr);
			broken = 1;
			break;
		} else {
			/* our side could not read the object (offline volume, damaged bytes): try again later */
			DH_WARN("export to %s: %s not sent: %s", ae->ae_title, o[i].sop_uid, derr);
			postpone(h, c, o + i, 1, derr);
		}
	}
	if (!broken && i < n) {
		/* stopping: what was claimed but not tried is due again at once after a restart */
		for (int j = i; j < n; j++) {
			const char *up[1] = { o[j].row_pk };
			dh_db_exec(c, "UPDATE external_object SET next_attempt_at = now() WHERE pk = $1::bigint "
				      "AND state = 'queued'", 1, up, &err);
		}
	}
	if (n > 0)
		DH_INFO("export to %s: %d sent, %d refused of %d", ae->ae_title, sent, failed, n);
	int ended = 0;
	if (!broken && ae->commit && !h->stop)
		request_commitment(h, c, a, ae, &ended);
	if (!ended) { /* else the archive released or aborted it */
		if (broken)
			dh_dcm_assoc_abort(a);
		else
			dh_dcm_assoc_release(a);
	}
	handled = n;
done:
	dh_dcm_assoc_free(a);
	free(req);
	free(pks);
	render_free(rs);
	objs_free(o, n);
	dh_db_put(h->db, c, handled < 0 && dh_db_conn_lost(c, &err));
	return handled;
}

/* One round over every exporting archive; > 0 when a batch was full (more may be waiting: no pause). */
static int worker_round(void *arg)
{
	hub *h = arg;
	int busy = 0, scan = 1;
	dh_db_err err = { "", "" };
	PGconn *c = dh_db_get(h->db, &err);
	if (c) {
		expire(h, c);
		scan = need_scan(h, c);
		dh_db_put(h->db, c, dh_db_conn_lost(c, &err));
	}
	for (int i = 0; i < h->cfg.n_remotes && !h->stop; i++) {
		if (!h->cfg.remotes[i].export_objects)
			continue;
		if (export_round(h, &h->cfg.remotes[i], i, scan) >= h->cfg.ext_batch)
			busy = 1;
	}
	return busy;
}

int external_start(hub *h)
{
	if (!external_configured(&h->cfg))
		return 0;
	external *x = calloc(1, sizeof(*x));
	if (!x || !(x->down = calloc((size_t)h->cfg.n_remotes + 1, 1))) {
		free(x);
		return -1;
	}
	h->external = x;
	return dh_worker_start(&x->w, "export", worker_round, h, h->cfg.ext_scan_interval * 1000);
}

void external_stop(hub *h)
{
	external *x = h->external;
	if (!x)
		return;
	dh_worker_stop(x->w);
	free(x->down);
	free(x);
	h->external = NULL;
}

/* ---- the result ------------------------------------------------------------ */

/* Applies one report in one transaction. Returns 0, 1 for an unknown transaction, -1 on failure. */
static int record_result(hub *h, const char *txn, const char *ae, int event_type, const dh_dcm_ds *ds,
			 int *n_ok, int *n_failed)
{
	dh_db_err err = { "", "" };
	PGconn *c = dh_db_get(h->db, &err);
	PGresult *r = NULL;
	char path[64], uid[DH_UID_MAX + 1], reason[16];
	int rc = -1;
	*n_ok = dh_dcm_ds_count(ds, "(0008,1199)");
	*n_failed = dh_dcm_ds_count(ds, "(0008,1198)");
	if (!c) {
		DH_ERROR("storage commitment result %s: index database unavailable: %s", txn, err.msg);
		return -1;
	}
	if (dh_db_exec(c, "BEGIN", 0, NULL, &err) < 0)
		goto fail;
	const char *tp[2] = { txn, ae };
	/* only the archive the request went to may answer it: a result is what lets local copies go */
	r = dh_db_query(c, "SELECT archive_ae FROM external_txn WHERE transaction_uid = $1 AND archive_ae = $2 "
			   "FOR UPDATE", 2, tp, &err);
	if (!r)
		goto fail;
	if (PQntuples(r) == 0) {
		rc = 1;
		dh_db_exec(c, "ROLLBACK", 0, NULL, &err);
		goto done;
	}
	for (int i = 0; i < *n_ok; i++) {
		snprintf(path, sizeof(path), "(0008,1199)[%d].(0008,1155)", i);
		if (dh_dcm_ds_get_path(ds, path, uid, sizeof(uid)) != DH_DCM_OK)
			continue;
		const char *p[2] = { txn, uid };
		if (dh_db_exec(c, "UPDATE external_object SET state = 'committed', committed_at = now(), "
				  "failure_reason = NULL, last_error = '' WHERE transaction_uid = $1 AND sop_uid = $2",
			       2, p, &err) < 0)
			goto fail;
	}
	for (int i = 0; i < *n_failed; i++) {
		snprintf(path, sizeof(path), "(0008,1198)[%d].(0008,1155)", i);
		if (dh_dcm_ds_get_path(ds, path, uid, sizeof(uid)) != DH_DCM_OK)
			continue;
		snprintf(path, sizeof(path), "(0008,1198)[%d].(0008,1197)", i);
		if (dh_dcm_ds_get_path(ds, path, reason, sizeof(reason)) != DH_DCM_OK)
			reason[0] = '\0';
		char why[128];
		snprintf(why, sizeof(why), "storage commitment failed at %s, Failure Reason %s", ae,
			 reason[0] ? reason : "(none given)");
		const char *p[4] = { txn, uid, reason[0] ? reason : NULL, why };
		if (dh_db_exec(c, "UPDATE external_object SET state = 'failed', failure_reason = $3::int, "
				  "last_error = $4 WHERE transaction_uid = $1 AND sop_uid = $2",
			       4, p, &err) < 0)
			goto fail;
	}
	char ev[8], ok[16], fl[16];
	snprintf(ev, sizeof(ev), "%d", event_type);
	snprintf(ok, sizeof(ok), "%d", *n_ok);
	snprintf(fl, sizeof(fl), "%d", *n_failed);
	const char *up[4] = { txn, ev, ok, fl };
	if (dh_db_exec(c, "UPDATE external_txn SET state = 'reported', reported_at = now(), event_type = $2::int, "
			  "n_committed = $3::int, n_failed = $4::int WHERE transaction_uid = $1", 4, up, &err) < 0 ||
	    dh_db_exec(c, "COMMIT", 0, NULL, &err) < 0)
		goto fail;
	rc = 0;
	goto done;
fail:
	DH_ERROR("storage commitment result %s: cannot record it: [%s] %s", txn, err.sqlstate, err.msg);
	dh_db_exec(c, "ROLLBACK", 0, NULL, &err);
done:
	PQclear(r);
	dh_db_put(h->db, c, rc < 0 && dh_db_conn_lost(c, &err));
	return rc;
}

int external_event_report(hub *h, dh_dcm_assoc *a, const dh_dcm_cmd *cmd)
{
	return handle_report(h, a, cmd, dh_dcm_assoc_calling_ae(a));
}

/* The N-EVENT-REPORT from archive `from` (on its association or on ours). */
static int handle_report(hub *h, dh_dcm_assoc *a, const dh_dcm_cmd *cmd, const char *from)
{
	const int timeout = (int)h->cfg.dimse_timeout;
	dh_dcm_ds *ds = NULL;
	char err[256] = "", txn[DH_UID_MAX + 1] = "", why[128] = "";
	unsigned int status = ST_SUCCESS;
	int n_ok = 0, n_failed = 0;
	if (strcmp(cmd->sop_class, DH_UID_STGCMT_PUSH) != 0 || (cmd->type_id != 1 && cmd->type_id != 2)) {
		if (cmd->has_dataset)
			dh_dcm_receive_discard(a, timeout);
		return dh_dcm_send_response(a, cmd, ST_NO_SUCH_EVENT, NULL, "no such event type", NULL) == DH_DCM_OK
			? 0 : -1;
	}
	if (!cmd->has_dataset) {
		status = ST_INVALID_ARGUMENT;
		snprintf(why, sizeof(why), "no event information");
		goto respond;
	}
	if (dh_dcm_receive_dataset(a, timeout, &ds, err, sizeof(err)) != DH_DCM_OK) {
		DH_WARN("storage commitment result from %s: %s", from, err);
		return -1;
	}
	if (dh_dcm_ds_get(ds, DH_TAG(0x0008, 0x1195), txn, sizeof(txn)) != DH_DCM_OK || !dh_uid_valid(txn)) {
		status = ST_INVALID_ARGUMENT;
		snprintf(why, sizeof(why), "missing or invalid Transaction UID");
		goto respond;
	}
	int rc = record_result(h, txn, from, cmd->type_id, ds, &n_ok, &n_failed);
	if (rc < 0) {
		status = ST_PROCESSING_FAILURE; /* the archive keeps the result and reports again */
		snprintf(why, sizeof(why), "cannot record the result now");
	} else if (rc == 1) {
		/* Table 2-11 has only 0000: acknowledge, so the archive stops reporting what nobody asked */
		DH_WARN("storage commitment result from %s for transaction %s, which the hub did not send to %s: "
			"ignored", from, txn, from);
	} else {
		DH_INFO("storage commitment result %s from %s: %d committed, %d failed", txn, from, n_ok, n_failed);
	}
respond:
	if (status != ST_SUCCESS)
		DH_WARN("storage commitment result from %s: status %04X: %s", from, status, why);
	int r = dh_dcm_send_response(a, cmd, status, NULL, status ? why : NULL, NULL) == DH_DCM_OK ? 0 : -1;
	dh_dcm_ds_free(ds);
	return r;
}

int external_backlog_read(PGconn *c, external_backlog *out, dh_db_err *err)
{
	PGresult *r = dh_db_query(c,
				  "SELECT count(*) FILTER (WHERE state = 'queued'), count(*) FILTER (WHERE state = 'sent'), "
				  "count(*) FILTER (WHERE state = 'failed'), count(*) FILTER (WHERE state = 'committed') "
				  "FROM external_object",
				  0, NULL, err);
	if (!r)
		return -1;
	out->queued = atol(PQgetvalue(r, 0, 0));
	out->awaiting_commit = atol(PQgetvalue(r, 0, 1));
	out->failed = atol(PQgetvalue(r, 0, 2));
	out->committed = atol(PQgetvalue(r, 0, 3));
	PQclear(r);
	return 0;
}
