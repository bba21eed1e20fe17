/*
 * ledger_export.c - reads the spoke's ledger for `hubctl verify` (see
 * ledger_export.h).
 *
 * Why a cursor in a REPEATABLE READ transaction: the count (announced to
 * the hub for its progress bar) and the rows must be the same snapshot
 * while captures go on, and 100,000 rows must not sit in memory at once.
 */
#include "ledger_export.h"

#include "db.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Column order of the cursor: matches fill_row. */
#define LEDGER_COLS                                                                                              \
	"sop_uid, series_uid, study_uid, sop_class_uid, dataset_digest, deleted_at IS NOT NULL, fwd_state, "        \
	"patient_id, "                                                                                          \
	"issuer, patient_name, birth_date, sex, study_id, study_date, study_time, accession, "                  \
	"referring_physician, study_description, modality, series_number, series_description, instance_number, " \
	"transfer_syntax"

static void fill_row(PGresult *res, int i, dh_ccwire_ledger_row *r)
{
	int k = 0;

	r->sop_uid = PQgetvalue(res, i, k++);
	r->series_uid = PQgetvalue(res, i, k++);
	r->study_uid = PQgetvalue(res, i, k++);
	r->sop_class_uid = PQgetvalue(res, i, k++);
	r->digest = PQgetvalue(res, i, k++);
	r->deleted = PQgetvalue(res, i, k++)[0] == 't';
	r->fwd_state = PQgetvalue(res, i, k++);
	r->patient_id = PQgetvalue(res, i, k++);
	r->issuer = PQgetvalue(res, i, k++);
	r->patient_name = PQgetvalue(res, i, k++);
	r->birth_date = PQgetvalue(res, i, k++);
	r->sex = PQgetvalue(res, i, k++);
	r->study_id = PQgetvalue(res, i, k++);
	r->study_date = PQgetvalue(res, i, k++);
	r->study_time = PQgetvalue(res, i, k++);
	r->accession = PQgetvalue(res, i, k++);
	r->referring_physician = PQgetvalue(res, i, k++);
	r->study_description = PQgetvalue(res, i, k++);
	r->modality = PQgetvalue(res, i, k++);
	r->series_number = PQgetvalue(res, i, k++);
	r->series_description = PQgetvalue(res, i, k++);
	r->instance_number = PQgetvalue(res, i, k++);
	r->transfer_syntax = PQgetvalue(res, i, k++);
}

int ledger_export(PGconn *conn, const char *study_uid, size_t chunk_rows, ledger_export_sink sink, void *arg,
		  char *err, size_t errlen)
{
	dh_db_err e = { "", "" };
	const char *study = study_uid ? study_uid : "";
	const char *p1[1] = { study };
	char fetch[64];
	PGresult *res = NULL;
	dh_ccwire_ledger_row *rows = NULL;
	dh_ccwire_chunk_head head = { 0, 0, 0, 0, "" };
	int in_txn = 0, rc = -1;

	if (chunk_rows == 0 || chunk_rows > DH_CCWIRE_MAX_LEDGER_ROWS)
		chunk_rows = DH_CCWIRE_MAX_LEDGER_ROWS;
	snprintf(fetch, sizeof(fetch), "FETCH %zu FROM dh_ledger_export", chunk_rows);
	if (!(rows = calloc(chunk_rows, sizeof(*rows)))) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	if (dh_db_exec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL, &e) != 0)
		goto db_fail;
	in_txn = 1;
	if (!(res = dh_db_query(conn, "SELECT count(*) FROM ledger_instance WHERE $1 = '' OR study_uid = $1", 1, p1,
				&e)))
		goto db_fail;
	head.total = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	res = NULL;
	/* pk order: stable, and the hub stores in arrival order anyway */
	if (dh_db_exec(conn,
		       "DECLARE dh_ledger_export NO SCROLL CURSOR FOR SELECT " LEDGER_COLS
		       " FROM ledger_instance WHERE $1 = '' OR study_uid = $1 ORDER BY pk",
		       1, p1, &e) != 0)
		goto db_fail;
	for (;;) {
		int n;
		if (!(res = dh_db_query(conn, fetch, 0, NULL, &e)))
			goto db_fail;
		n = PQntuples(res);
		/* the count and the cursor see one snapshot: never more rows than announced */
		if (head.offset + (uint64_t)n > head.total) {
			snprintf(err, errlen, "ledger changed under a REPEATABLE READ snapshot (cannot happen)");
			goto done;
		}
		for (int i = 0; i < n; i++)
			fill_row(res, i, &rows[i]);
		head.last = (size_t)n < chunk_rows || head.offset + (uint64_t)n == head.total;
		if (sink(arg, &head, rows, (size_t)n) != 0) {
			snprintf(err, errlen, "the ledger could not be sent to the hub");
			goto done;
		}
		head.offset += (uint64_t)n;
		PQclear(res);
		res = NULL;
		if (head.last)
			break;
	}
	rc = 0;
	goto done;
db_fail:
	snprintf(err, errlen, "reading the ledger: %s", e.msg);
done:
	PQclear(res);
	if (in_txn && !dh_db_conn_lost(conn, &e))
		dh_db_exec(conn, rc == 0 ? "COMMIT" : "ROLLBACK", 0, NULL, &e);
	free(rows);
	return rc;
}
