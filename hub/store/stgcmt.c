/*
 * stgcmt.c - Storage Commitment Push Model SCP (conformance §2.2.1.6.2).
 *
 * NOTES
 * An N-ACTION (Request Storage Commitment) is recorded in stgcmt_txn and
 * stgcmt_item in one transaction and answered at once; the decision and the
 * N-EVENT-REPORT come later from a worker thread, always on a separate
 * association to the requester (its host and port from its [remote.AE]
 * section), with the hub proposing the SCP role.
 *
 * An object is committed only when the index holds it and its cached file
 * still has the MD5 recorded at ingest; everything else goes into the Failed
 * SOP Sequence with a Failure Reason (0112 no such object instance, 0119
 * class/instance conflict, 0110 processing failure). The decision is made at
 * each delivery attempt, so objects that arrive after the request count.
 * Undeliverable results are retried every stgcmt.retry_interval seconds up
 * to stgcmt.max_attempts; transactions are kept indefinitely.
 */
#include "hub.h"

#include "hash.h"
#include "log.h"
#include "nearline.h"
#include "uid.h"
#include "worker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The delivery worker: a round delivers one due result (common/worker.h). */
struct stgcmt {
	dh_worker *w;
};

#define ST_SUCCESS 0x0000
#define ST_PROCESSING_FAILURE 0x0110
#define ST_NO_SUCH_ACTION 0x0123
#define ST_INVALID_ARGUMENT 0x0115

/* Records the request. Returns a DIMSE status for the N-ACTION response. */
static unsigned int record_request(hub *h, const dh_dcm_ds *ds, const char *requester, const char *called,
				   char *why, size_t whylen)
{
	char txn[DH_UID_MAX + 1], path[64], cls[DH_UID_MAX + 1], inst[DH_UID_MAX + 1], seq[16];
	unsigned int status = ST_PROCESSING_FAILURE;
	dh_db_err err = { "", "" };
	PGconn *c = NULL;
	int n = dh_dcm_ds_count(ds, "(0008,1199)");

	if (dh_dcm_ds_get(ds, DH_TAG(0x0008, 0x1195), txn, sizeof(txn)) != DH_DCM_OK || !dh_uid_valid(txn)) {
		snprintf(why, whylen, "missing or invalid Transaction UID");
		return ST_INVALID_ARGUMENT;
	}
	if (n <= 0) {
		snprintf(why, whylen, "empty Referenced SOP Sequence");
		return ST_INVALID_ARGUMENT;
	}
	if (!(c = dh_db_get(h->db, &err))) {
		snprintf(why, whylen, "index database unavailable");
		DH_ERROR("storage commitment %s: %s", txn, err.msg);
		return ST_PROCESSING_FAILURE;
	}
	const char *tp[3] = { txn, requester, called };
	if (dh_db_exec(c, "BEGIN", 0, NULL, &err) < 0)
		goto done;
	PGresult *r = dh_db_query(c, "INSERT INTO stgcmt_txn (transaction_uid, requester_ae, called_ae) "
				     "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING 1", 3, tp, &err);
	if (!r)
		goto rollback;
	int fresh = PQntuples(r) == 1;
	PQclear(r);
	if (!fresh) {
		/* the same transaction again: its result is (re)sent once more */
		DH_INFO("storage commitment %s requested again; result will be re-sent", txn);
		if (dh_db_exec(c, "UPDATE stgcmt_txn SET state = 'pending', attempts = 0, "
				  "next_attempt_at = now() WHERE transaction_uid = $1", 1, tp, &err) < 0)
			goto rollback;
	}
	for (int i = 0; fresh && i < n; i++) {
		snprintf(path, sizeof(path), "(0008,1199)[%d].(0008,1150)", i);
		if (dh_dcm_ds_get_path(ds, path, cls, sizeof(cls)) != DH_DCM_OK)
			cls[0] = '\0';
		snprintf(path, sizeof(path), "(0008,1199)[%d].(0008,1155)", i);
		if (dh_dcm_ds_get_path(ds, path, inst, sizeof(inst)) != DH_DCM_OK)
			inst[0] = '\0';
		snprintf(seq, sizeof(seq), "%d", i);
		const char *ip[4] = { txn, seq, cls, inst };
		if (dh_db_exec(c, "INSERT INTO stgcmt_item (transaction_uid, seq, sop_class_uid, sop_uid) "
				  "VALUES ($1, $2::int, $3, $4)", 4, ip, &err) < 0)
			goto rollback;
	}
	if (dh_db_exec(c, "COMMIT", 0, NULL, &err) < 0)
		goto rollback;
	DH_INFO("storage commitment %s requested by %s for %d object(s)", txn, requester, n);
	status = ST_SUCCESS;
	goto done;
rollback:
	PQclear(PQexec(c, "ROLLBACK"));
done:
	if (status != ST_SUCCESS) {
		snprintf(why, whylen, "cannot record the request");
		DH_ERROR("storage commitment %s: [%s] %s", txn, err.sqlstate, err.msg);
	}
	dh_db_put(h->db, c, dh_db_conn_lost(c, &err));
	return status;
}

int stgcmt_action(hub *h, dh_dcm_assoc *a, const dh_dcm_cmd *cmd)
{
	const int timeout = (int)h->cfg.dimse_timeout;
	dh_dcm_ds *ds = NULL;
	char err[256] = "", why[160] = "";
	unsigned int status;

	if (strcmp(cmd->sop_class, DH_UID_STGCMT_PUSH) != 0 || cmd->type_id != 1) {
		if (cmd->has_dataset)
			dh_dcm_receive_discard(a, timeout);
		return dh_dcm_send_response(a, cmd, ST_NO_SUCH_ACTION, NULL, "no such action", NULL) ==
			DH_DCM_OK ? 0 : -1;
	}
	if (!cmd->has_dataset) {
		status = ST_INVALID_ARGUMENT;
		snprintf(why, sizeof(why), "no action information");
	} else if (dh_dcm_receive_dataset(a, timeout, &ds, err, sizeof(err)) != DH_DCM_OK) {
		DH_WARN("storage commitment request: %s", err);
		return -1;
	} else {
		status = record_request(h, ds, dh_dcm_assoc_calling_ae(a), dh_dcm_assoc_called_ae(a), why,
					sizeof(why));
	}
	dh_dcm_ds_free(ds);
	int rc = dh_dcm_send_response(a, cmd, status, NULL, status ? why : NULL, NULL) == DH_DCM_OK ? 0 : -1;
	if (status == ST_SUCCESS)
		dh_worker_kick(h->stgcmt->w);
	return rc;
}

/* ---- the delivery worker ------------------------------------------------ */

/*
 * 1 when the object's bytes are intact where they are now (the online cache
 * or its TAR member on a nearline volume); 0 with why otherwise.
 */
static int verify_object(hub *h, PGconn *c, const char *pk, const char *md5_index, char *why, size_t len)
{
	archive_loc loc;
	dh_db_err err = { "", "" };
	char md5[DH_MD5_HEX_LEN + 1];
	if (archive_locate(h, c, pk, &loc, &err) < 0) {
		snprintf(why, len, "%.200s", err.msg);
		return 0;
	}
	if (loc.avail == AVAIL_ONLINE) {
		if (dh_md5_file(loc.path, md5) < 0) {
			snprintf(why, len, "cannot read %.200s: %s", loc.path, strerror(errno));
			return 0;
		}
		if (strcmp(md5, md5_index) != 0) {
			snprintf(why, len, "MD5 differs from the index");
			return 0;
		}
		return 1;
	}
	unsigned char *buf = NULL;
	size_t n = 0;
	loc.verify_md5 = 1; /* storage commitment vouches for the MD5, whatever archive.read_verify says */
	int ok = archive_read(&loc, &buf, &n, why, len) == 0; /* checks the MD5 itself */
	free(buf);
	return ok;
}

/* Decides each item of txn and builds the event information. Returns the event type or -1. */
static int evaluate(hub *h, PGconn *c, const char *txn, dh_dcm_ds *info, dh_db_err *err)
{
	const char *p[1] = { txn };
	PGresult *r = dh_db_query(c,
		"SELECT it.seq, it.sop_class_uid, it.sop_uid, i.sop_class_uid, i.pk, i.md5, k.sop_class_uid "
		"FROM stgcmt_item it LEFT JOIN LATERAL (SELECT pk, sop_class_uid, md5 FROM instance "
		"  WHERE sop_uid = it.sop_uid OR received_sop_uid = it.sop_uid "
		"  ORDER BY (sop_uid = it.sop_uid) DESC LIMIT 1) i ON true "
		/* kept but not shown (quarantined, or deleted/rejected at the hub): held, so committed */
		"LEFT JOIN LATERAL (SELECT sop_class_uid FROM quarantine WHERE sop_uid = it.sop_uid "
		"  AND state = 'quarantined' UNION ALL SELECT sop_class_uid FROM deleted_instance "
		"  WHERE sop_uid = it.sop_uid LIMIT 1) k ON true "
		"WHERE it.transaction_uid = $1 ORDER BY it.seq", 1, p, err);
	if (!r)
		return -1;
	int ok = 0, failed = 0;
	char path[96], why[300], reason[8];
	dh_dcm_ds_put(info, DH_TAG(0x0008, 0x1195), txn);
	dh_dcm_ds_put(info, DH_TAG(0x0008, 0x0054), h->cfg.ae_title);
	for (int i = 0; i < PQntuples(r); i++) {
		const char *cls = PQgetvalue(r, i, 1), *inst = PQgetvalue(r, i, 2);
		int reason_code = 0;
		if (PQgetisnull(r, i, 3) && !PQgetisnull(r, i, 6) && strcmp(PQgetvalue(r, i, 6), cls) == 0) {
			/* held but not shown: a resend would only be stored and hidden again (seeds kb-119333) */
		} else if (PQgetisnull(r, i, 3)) {
			reason_code = 0x0112; /* no such object instance */
		} else if (strcmp(PQgetvalue(r, i, 3), cls) != 0) {
			reason_code = 0x0119; /* class / instance conflict */
		} else if (!verify_object(h, c, PQgetvalue(r, i, 4), PQgetvalue(r, i, 5), why, sizeof(why))) {
			reason_code = 0x0110; /* processing failure: not readable or not intact */
			DH_ERROR("storage commitment %s: %s does not verify: %s", txn, inst, why);
		}
		const char *seqtag = reason_code ? "(0008,1198)" : "(0008,1199)";
		int idx = reason_code ? failed++ : ok++;
		snprintf(path, sizeof(path), "%s[%d].(0008,1150)", seqtag, idx);
		dh_dcm_ds_put_path(info, path, cls);
		snprintf(path, sizeof(path), "%s[%d].(0008,1155)", seqtag, idx);
		dh_dcm_ds_put_path(info, path, inst);
		if (reason_code) {
			snprintf(path, sizeof(path), "%s[%d].(0008,1197)", seqtag, idx);
			snprintf(reason, sizeof(reason), "%d", reason_code);
			dh_dcm_ds_put_path(info, path, reason);
		} else {
			snprintf(path, sizeof(path), "%s[%d].(0008,0054)", seqtag, idx);
			dh_dcm_ds_put_path(info, path, h->cfg.ae_title);
		}
		/* record the per-object outcome */
		char seq[16], rs[16];
		snprintf(seq, sizeof(seq), "%s", PQgetvalue(r, i, 0));
		snprintf(rs, sizeof(rs), "%d", reason_code);
		const char *up[4] = { txn, seq, reason_code ? "false" : "true", reason_code ? rs : NULL };
		dh_db_exec(c, "UPDATE stgcmt_item SET committed = $3::boolean, failure_reason = $4::int "
			      "WHERE transaction_uid = $1 AND seq = $2::int", 4, up, err);
	}
	PQclear(r);
	/* Referenced SOP Sequence is 1C: absent when nothing was committed (PS3.4 J.3.3) */
	return failed ? 2 : 1;
}

/* Sends the N-EVENT-REPORT on a new association. Returns 0 or -1 with err. */
static int deliver(hub *h, const char *requester, int event_type, const dh_dcm_ds *info, char *err,
		   size_t errlen)
{
	const hub_remote_ae *r = hub_config_remote(&h->cfg, requester);
	dh_dcm_assoc *a = NULL;
	int rc = -1, pc;
	unsigned int status = 0xFFFF;
	if (!r) {
		snprintf(err, errlen, "no [remote.%s] section: its address is unknown", requester);
		return -1;
	}
	static const char *const ts[] = { DH_TS_EXPLICIT_LE, DH_TS_IMPLICIT_LE };
	dh_dcm_pc_req req = { DH_UID_STGCMT_PUSH, ts, 2, 2 /* we are the SCP of the SOP class */ };
	if (hub_connect(h, &a, r, (int)h->cfg.acse_timeout, &req, 1, err, errlen) != DH_DCM_OK)
		goto done;
	if (dh_dcm_assoc_find_pc(a, DH_UID_STGCMT_PUSH, NULL, &pc, NULL) != DH_DCM_OK) {
		snprintf(err, errlen, "%s refused the Storage Commitment context", requester);
		dh_dcm_assoc_abort(a);
		goto done;
	}
	if (dh_dcm_n_event_report(a, pc, DH_UID_STGCMT_PUSH, DH_UID_STGCMT_PUSH_INSTANCE, event_type, info,
				  (int)h->cfg.dimse_timeout, &status, err, errlen) != DH_DCM_OK) {
		dh_dcm_assoc_abort(a);
		goto done;
	}
	dh_dcm_assoc_release(a);
	if (status != 0x0000) {
		snprintf(err, errlen, "%s answered the N-EVENT-REPORT with status %04x", requester, status);
		goto done;
	}
	rc = 0;
done:
	dh_dcm_assoc_free(a);
	return rc;
}

/* Handles one due transaction; returns 1 when one was handled, 0 when none is due, -1 on DB error. */
static int work_one(hub *h)
{
	dh_db_err err = { "", "" };
	PGconn *c = dh_db_get(h->db, &err);
	dh_dcm_ds *info = NULL;
	char txn[DH_UID_MAX + 1], requester[17], derr[300] = "", attempts_s[16];
	int handled = -1, attempts;
	if (!c)
		return -1;
	/* claim one due transaction; SKIP LOCKED lets several hubd processes share the queue */
	if (dh_db_exec(c, "BEGIN", 0, NULL, &err) < 0)
		goto done;
	PGresult *r = dh_db_query(c, "SELECT transaction_uid, requester_ae, attempts FROM stgcmt_txn "
				     "WHERE state = 'pending' AND next_attempt_at <= now() "
				     "ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED", 0, NULL, &err);
	if (!r)
		goto rollback;
	if (PQntuples(r) == 0) {
		PQclear(r);
		handled = 0;
		goto rollback;
	}
	snprintf(txn, sizeof(txn), "%s", PQgetvalue(r, 0, 0));
	snprintf(requester, sizeof(requester), "%s", PQgetvalue(r, 0, 1));
	attempts = atoi(PQgetvalue(r, 0, 2)) + 1;
	PQclear(r);
	dh_log_set_context("stgcmt %s", txn);
	dh_dcm_ds_new(&info);
	int event = evaluate(h, c, txn, info, &err);
	if (event < 0)
		goto rollback;
	snprintf(attempts_s, sizeof(attempts_s), "%d", attempts);
	if (deliver(h, requester, event, info, derr, sizeof(derr)) == 0) {
		char ev[4];
		snprintf(ev, sizeof(ev), "%d", event);
		const char *p[3] = { txn, ev, attempts_s };
		if (dh_db_exec(c, "UPDATE stgcmt_txn SET state = 'reported', event_type = $2::smallint, "
				  "attempts = $3::int, reported_at = now(), last_error = '' "
				  "WHERE transaction_uid = $1", 3, p, &err) < 0)
			goto rollback;
		DH_INFO("storage commitment result sent to %s (event type %d)", requester, event);
	} else {
		char interval[24];
		snprintf(interval, sizeof(interval), "%ld seconds", h->cfg.retry_interval);
		int give_up = attempts >= h->cfg.max_attempts;
		const char *p[5] = { txn, attempts_s, derr, interval, give_up ? "failed" : "pending" };
		if (dh_db_exec(c, "UPDATE stgcmt_txn SET attempts = $2::int, last_error = $3, state = $5, "
				  "next_attempt_at = now() + $4::interval WHERE transaction_uid = $1",
			       5, p, &err) < 0)
			goto rollback;
		DH_WARN("storage commitment result for %s not delivered (attempt %d%s): %s", requester, attempts,
			give_up ? ", giving up" : "", derr);
	}
	if (dh_db_exec(c, "COMMIT", 0, NULL, &err) < 0)
		goto rollback;
	handled = 1;
	goto done;
rollback:
	PQclear(PQexec(c, "ROLLBACK"));
done:
	if (handled < 0)
		DH_ERROR("storage commitment worker: [%s] %s", err.sqlstate, err.msg);
	dh_dcm_ds_free(info);
	dh_db_put(h->db, c, dh_db_conn_lost(c, &err));
	dh_log_set_context(NULL);
	return handled;
}

/* Nothing due (or the database is away): the worker sleeps until kicked or 1 s passed. */
static int worker_round(void *arg)
{
	return work_one(arg) > 0;
}

int stgcmt_start(hub *h)
{
	stgcmt *s = calloc(1, sizeof(*s));
	if (!s)
		return -1;
	h->stgcmt = s;
	return dh_worker_start(&s->w, "stgcmt", worker_round, h, 1000);
}

void stgcmt_stop(hub *h)
{
	stgcmt *s = h->stgcmt;
	if (!s)
		return;
	dh_worker_stop(s->w);
	free(s);
	h->stgcmt = NULL;
}
