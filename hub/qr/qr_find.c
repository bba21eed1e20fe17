/*
 * qr_find.c - the C-FIND SCP (conformance §2.2.1.6.3).
 *
 * One request: receive the identifier, translate it (qr_query.c), run it
 * against the index as one statement whose rows stream back one at a time
 * (libpq's single-row mode), and answer one pending response per match,
 * then the final status. Streaming keeps memory flat on broad queries and
 * lets the first responses leave while the server still computes the
 * rest; a C-CANCEL is looked for between responses. Pending responses are
 * queued and written in growing chunks (dh_dcm_rspq_*, dcm.h), the same
 * bytes DIMSE would send in far fewer writes.
 *
 * Statuses (Table 2-29): A900 when the identifier does not fit the model,
 * C000 when the database cannot be reached or fails (the pool reconnects
 * on a later request by itself), FE00 after a cancel, 0000 at the end.
 * Responses carry only the keys asked for, plus the level, the character
 * set (the index holds UTF-8) and our AE title as Retrieve AE Title.
 *
 * Known limitation: the borrowed connection is held while responses are
 * sent, so a slow SCU keeps one pool connection for its query's duration.
 * A query that ends early (cancel, association lost) closes its
 * connection, which ends the statement; the pool reopens one when needed.
 */
#include "hub.h"
#include "log.h"
#include "qr.h"
#include "qr_query.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ST_SUCCESS 0x0000
#define ST_PENDING 0xFF00
#define ST_CANCEL 0xFE00
#define ST_NO_MATCH_CLASS 0xA900
#define ST_UNABLE 0xC000

#define KEY_LEN 65536 /* UID lists can be long */
#define ITEM_LEN 1024
#define STALE_MS 2.0 /* longest a queued pending response waits for a write */

int qr_is_model(const char *uid)
{
	static const char *const models[] = { QR_PATIENT_FIND, QR_PATIENT_MOVE, QR_STUDY_FIND,
					      QR_STUDY_MOVE, QR_PSONLY_FIND, QR_PSONLY_MOVE };
	if (!uid)
		return 0;
	for (size_t k = 0; k < sizeof(models) / sizeof(models[0]); k++)
		if (strcmp(uid, models[k]) == 0)
			return 1;
	return 0;
}

/* The identifier's values, owned here; qr_ident points into it. */
typedef struct {
	qr_ident id;
	char *val[QR_MAX_KEYS];
	char level[32];
	char other_pid[QR_MAX_ITEMS][ITEM_LEN], other_iss[QR_MAX_ITEMS][ITEM_LEN];
	char rp[ITEM_LEN], sps[ITEM_LEN], cv[ITEM_LEN], cs[ITEM_LEN];
} extracted;

static void extracted_free(extracted *x)
{
	if (!x)
		return;
	for (int k = 0; k < QR_MAX_KEYS; k++)
		free(x->val[k]);
	free(x);
}

/* A path's value into buf, or NULL when absent. */
static const char *get_opt(const dh_dcm_ds *ds, const char *path, char *buf)
{
	return dh_dcm_ds_get_path(ds, path, buf, ITEM_LEN) == 0 ? buf : NULL;
}

static int extract(const dh_dcm_ds *ds, const char *sop_class, extracted *x)
{
	qr_ident *id = &x->id;
	if (strcmp(sop_class, QR_STUDY_FIND) == 0)
		id->model = QR_MODEL_STUDY_ROOT;
	else if (strcmp(sop_class, QR_PSONLY_FIND) == 0)
		id->model = QR_MODEL_PSONLY;
	else
		id->model = QR_MODEL_PATIENT_ROOT;
	if (dh_dcm_ds_get(ds, DH_TAG(0x0008, 0x0052), x->level, sizeof(x->level)) == 0)
		id->level = x->level;
	int n = qr_query_known_count();
	for (int k = 0; k < n && id->n_keys < QR_MAX_KEYS; k++) {
		uint32_t tag = qr_query_known_tag(k);
		if (!dh_dcm_ds_has(ds, tag))
			continue;
		char *v = malloc(KEY_LEN);
		if (!v)
			return -1;
		if (dh_dcm_ds_get(ds, tag, v, KEY_LEN) != 0)
			v[0] = '\0';
		x->val[id->n_keys] = v;
		id->key[id->n_keys].tag = tag;
		id->key[id->n_keys].value = v;
		id->n_keys++;
	}
	char path[64];
	if (dh_dcm_ds_has(ds, DH_TAG(0x0010, 0x1002))) {
		id->other_ids = 1;
		int items = dh_dcm_ds_count(ds, "(0010,1002)");
		for (int i = 0; i < items && i < QR_MAX_ITEMS; i++) {
			snprintf(path, sizeof(path), "(0010,1002)[%d].(0010,0020)", i);
			id->other_pid[i] = get_opt(ds, path, x->other_pid[i]);
			snprintf(path, sizeof(path), "(0010,1002)[%d].(0010,0021)", i);
			id->other_issuer[i] = get_opt(ds, path, x->other_iss[i]);
			id->n_other++;
		}
	}
	if (dh_dcm_ds_has(ds, DH_TAG(0x0040, 0x0275))) {
		id->request_attrs = 1;
		id->req_proc_id = get_opt(ds, "(0040,0275)[0].(0040,1001)", x->rp);
		id->sps_id = get_opt(ds, "(0040,0275)[0].(0040,0009)", x->sps);
	}
	if (dh_dcm_ds_has(ds, DH_TAG(0x0040, 0xA043))) {
		id->concept_name = 1;
		id->code_value = get_opt(ds, "(0040,A043)[0].(0008,0100)", x->cv);
		id->code_scheme = get_opt(ds, "(0040,A043)[0].(0008,0102)", x->cs);
	}
	return 0;
}

/* Puts a sequence column's "path\x1fvalue\x1e..." records into rsp. */
static void put_seq(dh_dcm_ds *rsp, const char *blob)
{
	char *copy = strdup(blob), *save = NULL;
	if (!copy)
		return;
	for (char *rec = strtok_r(copy, "\x1e", &save); rec; rec = strtok_r(NULL, "\x1e", &save)) {
		char *sep = strchr(rec, '\x1f');
		if (!sep)
			continue;
		*sep = '\0';
		dh_dcm_ds_put_path(rsp, rec, sep + 1);
	}
	free(copy);
}

static const char *const LEVEL_NAME[4] = { "PATIENT", "STUDY", "SERIES", "IMAGE" };

/* The response identifier of result row r. Returns NULL on allocation failure. */
static dh_dcm_ds *response(hub *h, const qr_ident *id, const qr_sql *q, PGresult *res, int r)
{
	dh_dcm_ds *rsp = NULL;
	if (dh_dcm_ds_new(&rsp) != 0)
		return NULL;
	dh_dcm_ds_put(rsp, DH_TAG(0x0008, 0x0005), "ISO_IR 192");
	dh_dcm_ds_put(rsp, DH_TAG(0x0008, 0x0052), LEVEL_NAME[q->level]);
	dh_dcm_ds_put(rsp, DH_TAG(0x0008, 0x0054), h->cfg.ae_title);
	/* every key asked for is answered, empty when it has no value at this level */
	for (int k = 0; k < id->n_keys; k++)
		dh_dcm_ds_put(rsp, id->key[k].tag, "");
	for (int c = 0; c < q->n_cols; c++) {
		if (PQgetisnull(res, r, c + 1))
			continue;
		const char *v = PQgetvalue(res, r, c + 1);
		if (q->col[c].seq)
			put_seq(rsp, v);
		else
			dh_dcm_ds_put(rsp, q->col[c].tag, v);
	}
	return rsp;
}

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* err from a failed result (or, with res NULL, from the connection), as dh_db_query fills it. */
static void conn_err(PGconn *c, const PGresult *res, dh_db_err *err)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	if (!state)
		state = PQstatus(c) == CONNECTION_OK ? "" : "08006";
	snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", state);
	snprintf(err->msg, sizeof(err->msg), "%s", res ? PQresultErrorMessage(res) : PQerrorMessage(c));
	size_t n = strlen(err->msg);
	while (n > 0 && (err->msg[n - 1] == '\n' || err->msg[n - 1] == ' '))
		err->msg[--n] = '\0';
}

int qr_find(hub *h, dh_dcm_assoc *a, const dh_dcm_cmd *cmd)
{
	const int timeout = (int)h->cfg.dimse_timeout;
	dh_dcm_ds *ident = NULL;
	extracted *x = NULL;
	qr_sql q;
	PGconn *c = NULL;
	PGresult *res = NULL;
	dh_dcm_rspq *rq = NULL;
	dh_db_err err;
	char msg[512] = "";
	int rc = -1, broken = 0, running = 0, matches = 0;
	unsigned int status = ST_SUCCESS;
	const double t0 = now_ms();

	memset(&q, 0, sizeof(q));
	memset(&err, 0, sizeof(err));
	if (dh_dcm_receive_dataset(a, timeout, &ident, msg, sizeof(msg)) != DH_DCM_OK) {
		DH_WARN("C-FIND: cannot receive the identifier: %s", msg);
		goto done;
	}
	x = calloc(1, sizeof(*x));
	if (!x || extract(ident, cmd->sop_class, x) < 0) {
		status = ST_UNABLE;
		snprintf(msg, sizeof(msg), "out of memory");
		goto answer;
	}
	int qb = qr_query_build(&x->id, &q, msg, sizeof(msg));
	if (qb == QR_A900) {
		DH_INFO("C-FIND refused (A900): %s", msg);
		status = ST_NO_MATCH_CLASS;
		goto answer;
	}
	if (qb != 0) {
		status = ST_UNABLE;
		snprintf(msg, sizeof(msg), "out of memory");
		goto answer;
	}
	DH_DEBUG("C-FIND %s level: %s", LEVEL_NAME[q.level], q.sql);
	c = dh_db_get(h->db, &err);
	if (!c) {
		DH_WARN("C-FIND: database unavailable: %s", err.msg);
		status = ST_UNABLE;
		snprintf(msg, sizeof(msg), "database unavailable");
		goto answer;
	}
	/*
	 * One statement, its rows streamed back one at a time (libpq's
	 * single-row mode): one round trip, memory flat however many match,
	 * and the first response can leave while the server still computes
	 * the rest (counts and modalities cost per study).
	 */
	if (!PQsendQueryParams(c, q.sql, q.n_params, NULL, (const char *const *)q.params, NULL, NULL, 0)) {
		conn_err(c, NULL, &err);
		goto db_failed;
	}
	running = 1;
	(void)PQsetSingleRowMode(c); /* if refused, the rows come in one result: same loop */
	/*
	 * Pending responses go out through a queue (dcm.h): a few writes in
	 * growing chunks rather than four write() calls each. Without one (it
	 * only refuses contexts a C-FIND never has) each goes through DIMSE.
	 */
	if (dh_dcm_rspq_new(a, cmd, ST_PENDING, &rq) != DH_DCM_OK)
		rq = NULL;
	for (;;) {
		/* nothing waits long for the next chunk, whatever the database's pace */
		if (rq && dh_dcm_rspq_age_ms(rq) >= STALE_MS && dh_dcm_rspq_flush(rq) != DH_DCM_OK)
			goto done;
		res = PQgetResult(c);
		if (!res) {
			running = 0;
			break;
		}
		ExecStatusType st = PQresultStatus(res);
		if (st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK) {
			conn_err(c, res, &err);
			goto db_failed;
		}
		int rows = PQntuples(res);
		for (int r = 0; r < rows; r++) {
			int cancel = dh_dcm_check_cancel(a, cmd->msg_id);
			if (cancel == DH_DCM_ABORTED)
				goto done; /* association broken */
			/*
			 * Any other error means a message was read that did not pass
			 * DIMSE_checkForCancelRQ's checks: the adapter (dcm.cc) passes
			 * presentation context 0, so a genuine C-CANCEL-RQ on our context
			 * comes back as an error too. Treat it as a cancel; if the
			 * association is really gone the final response fails below.
			 */
			if (cancel == 1 || cancel < 0) {
				DH_INFO("C-FIND cancelled after %d matches", matches);
				status = ST_CANCEL;
				goto answer;
			}
			dh_dcm_ds *rsp = response(h, &x->id, &q, res, r);
			if (!rsp) {
				status = ST_UNABLE;
				snprintf(msg, sizeof(msg), "out of memory");
				goto answer;
			}
			int sent = rq ? dh_dcm_rspq_add(rq, rsp) : dh_dcm_send_response(a, cmd, ST_PENDING, rsp, NULL, NULL);
			dh_dcm_ds_free(rsp);
			if (sent != DH_DCM_OK)
				goto done;
			matches++;
		}
		PQclear(res);
		res = NULL;
	}
	goto answer;

db_failed:
	DH_WARN("C-FIND: database error: %s (%s)", err.msg, err.sqlstate);
	broken = dh_db_conn_lost(c, &err);
	if (running && !broken) {
		/* after an error only the end of the statement's results follows */
		PQclear(res);
		while ((res = PQgetResult(c)) != NULL)
			PQclear(res);
		running = 0;
	}
	status = ST_UNABLE;
	snprintf(msg, sizeof(msg), "database error");
answer:
	/* every pending response queued so far goes before the final one */
	if (rq && dh_dcm_rspq_flush(rq) != DH_DCM_OK)
		goto done;
	rc = dh_dcm_send_response(a, cmd, status, NULL, status == ST_SUCCESS || status == ST_CANCEL ? NULL : msg,
				  NULL) == DH_DCM_OK ? 0 : -1;
	/* the time is hubd's share of the query: command received to final response written */
	if (status == ST_SUCCESS)
		DH_INFO("C-FIND %s level: %d matches in %.1f ms", LEVEL_NAME[q.level], matches, now_ms() - t0);
done:
	dh_dcm_rspq_free(rq);
	PQclear(res);
	if (c) {
		/*
		 * Still streaming (a cancel, a broken association): closing the
		 * connection ends the statement; the pool opens a new one when
		 * needed. Cheaper to get right than cancelling and draining.
		 */
		if (running || PQstatus(c) != CONNECTION_OK)
			broken = 1;
		dh_db_put(h->db, c, broken);
	}
	qr_sql_free(&q);
	extracted_free(x);
	dh_dcm_ds_free(ident);
	return rc;
}
