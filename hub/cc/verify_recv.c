/*
 * verify_recv.c - the hub's side of `hubctl verify` on the cc link: claims
 * requests, stores the spokes' ledger chunks (see verify.h).
 *
 * Chunks go into verify_ledger with COPY (text format, escaped here): one
 * round trip per chunk of up to DH_CCWIRE_MAX_LEDGER_ROWS rows, which is
 * what lets 100,000 rows arrive in a few seconds. COPY data is not SQL, so
 * nothing a spoke sends ever reaches the parser.
 */
#include "verify.h"

#include "db.h"
#include "hub.h"
#include "log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	char *s;
	size_t len, cap;
	int oom;
} buf;

static void put(buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 65536;
		char *p;
		while (cap < b->len + n + 1)
			cap *= 2;
		if (!(p = realloc(b->s, cap))) {
			b->oom = 1;
			return;
		}
		b->s = p;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
}

/* One COPY text field: backslash, tab, newline and carriage return escaped. */
static void field(buf *b, const char *v, int last)
{
	const char *run = v;

	for (; *v; v++) {
		const char *esc = NULL;
		switch (*v) {
		case '\\': esc = "\\\\"; break;
		case '\t': esc = "\\t"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		default: continue;
		}
		put(b, run, (size_t)(v - run));
		put(b, esc, 2);
		run = v + 1;
	}
	put(b, run, (size_t)(v - run));
	put(b, last ? "\n" : "\t", 1);
}

static void copy_row(buf *b, const char *req, const dh_ccwire_ledger_row *r)
{
	const char *v[] = { req,
			    r->sop_uid,
			    r->series_uid,
			    r->study_uid,
			    r->sop_class_uid,
			    r->digest,
			    r->transfer_syntax,
			    r->deleted ? "t" : "f",
			    r->fwd_state,
			    r->patient_id,
			    r->issuer,
			    r->patient_name,
			    r->birth_date,
			    r->sex,
			    r->study_id,
			    r->study_date,
			    r->study_time,
			    r->accession,
			    r->referring_physician,
			    r->study_description,
			    r->modality,
			    r->series_number,
			    r->series_description,
			    r->instance_number };
	size_t n = sizeof(v) / sizeof(v[0]);

	for (size_t i = 0; i < n; i++)
		field(b, v[i], i + 1 == n);
}

/* Fails request pk with reason (own statement, outside any transaction). */
static void fail_request(PGconn *c, const char *pk, const char *reason)
{
	dh_db_err e;
	const char *p[2] = { pk, reason };

	if (dh_db_exec(c,
		       "UPDATE verify_request SET state = 'failed', error = $2, updated_at = now() "
		       "WHERE pk = $1::bigint AND state IN ('pending', 'sent', 'receiving')",
		       2, p, &e) != 0)
		DH_WARN("verify %s: cannot record its failure (%s): %s", pk, reason, e.msg);
}

int verify_store_chunk(struct hub *h, const char *spoke_id, const dh_ccwire_frame *f, char *err, size_t errlen)
{
	dh_ccwire_chunk_head head = dh_ccwire_chunk_header(f);
	size_t n = dh_ccwire_chunk_count(f);
	dh_db_err e = { "", "" };
	char pk[24], offset[24], total[24], count[24], why[600] = "";
	PGconn *c = NULL;
	PGresult *res = NULL;
	buf b = { NULL, 0, 0, 0 };
	int in_txn = 0, rc = -1;

	snprintf(pk, sizeof(pk), "%" PRIu64, head.request_id);
	snprintf(offset, sizeof(offset), "%" PRIu64, head.offset);
	snprintf(total, sizeof(total), "%" PRIu64, head.total);
	snprintf(count, sizeof(count), "%zu", n);
	if (!(c = dh_db_get(h->db, &e)))
		goto db_fail;
	if (dh_db_exec(c, "BEGIN", 0, NULL, &e) != 0)
		goto db_fail;
	in_txn = 1;
	{
		const char *p[2] = { pk, spoke_id };
		if (!(res = dh_db_query(c,
					"SELECT state, received FROM verify_request WHERE pk = $1::bigint AND spoke_id = $2 "
					"FOR UPDATE",
					2, p, &e)))
			goto db_fail;
	}
	if (PQntuples(res) != 1) {
		DH_WARN("verify: spoke %s sent a ledger chunk for request %s, which is not its own or no longer exists "
			"(hubctl gave up); dropped",
			spoke_id, pk);
		rc = 0;
		goto done;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "sent") != 0 && strcmp(PQgetvalue(res, 0, 0), "receiving") != 0) {
		DH_DEBUG("verify %s: chunk from %s for a request in state %s; dropped", pk, spoke_id,
			 PQgetvalue(res, 0, 0));
		rc = 0;
		goto done;
	}
	if (head.error[0]) {
		snprintf(why, sizeof(why), "the spoke could not answer: %s", head.error);
		goto refuse;
	}
	if (strtoull(PQgetvalue(res, 0, 1), NULL, 10) != head.offset) {
		snprintf(why, sizeof(why), "ledger chunk out of order (offset %s, %s rows stored)", offset,
			 PQgetvalue(res, 0, 1));
		goto refuse;
	}
	PQclear(res);
	res = NULL;
	if (n) {
		for (size_t i = 0; i < n; i++) {
			dh_ccwire_ledger_row r = dh_ccwire_chunk_row(f, i);
			copy_row(&b, pk, &r);
		}
		if (b.oom) {
			snprintf(e.msg, sizeof(e.msg), "out of memory for a chunk of %zu rows", n);
			goto db_fail;
		}
		res = PQexec(c, "COPY verify_ledger (request_fk, sop_uid, series_uid, study_uid, sop_class_uid, digest, transfer_syntax, "
				"deleted, fwd_state, patient_id, issuer, patient_name, birth_date, sex, study_id, "
				"study_date, study_time, accession, referring_physician, study_description, modality, "
				"series_number, series_description, instance_number) FROM STDIN");
		if (PQresultStatus(res) != PGRES_COPY_IN) {
			snprintf(e.msg, sizeof(e.msg), "COPY verify_ledger: %s", PQerrorMessage(c));
			goto db_fail;
		}
		PQclear(res);
		res = NULL;
		if (PQputCopyData(c, b.s, (int)b.len) != 1 || PQputCopyEnd(c, NULL) != 1) {
			snprintf(e.msg, sizeof(e.msg), "COPY verify_ledger: %s", PQerrorMessage(c));
			goto db_fail;
		}
		res = PQgetResult(c);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			/* e.g. a value that is not valid UTF-8: the spoke's data, not our fault */
			snprintf(why, sizeof(why), "ledger chunk not storable: %s", PQresultErrorMessage(res));
			PQclear(res);
			while ((res = PQgetResult(c)))
				PQclear(res);
			goto refuse;
		}
		PQclear(res);
		while ((res = PQgetResult(c)))
			PQclear(res);
	}
	{
		const char *p[4] = { pk, count, total, head.last ? "t" : "f" };
		if (dh_db_exec(c,
			       "UPDATE verify_request SET received = received + $2::bigint, total = $3::bigint, "
			       "state = CASE WHEN $4::boolean THEN 'done' ELSE 'receiving' END, updated_at = now() "
			       "WHERE pk = $1::bigint",
			       4, p, &e) != 0 ||
		    dh_db_exec(c, "COMMIT", 0, NULL, &e) != 0)
			goto db_fail;
	}
	in_txn = 0;
	DH_DEBUG("verify %s: spoke %s: %zu rows at %s of %s%s", pk, spoke_id, n, offset, total,
		 head.last ? " (last)" : "");
	if (head.last)
		DH_INFO("verify %s: spoke %s's ledger received (%s rows)", pk, spoke_id, total);
	rc = 0;
	goto done;
refuse:
	DH_WARN("verify %s: spoke %s: %s", pk, spoke_id, why);
	PQclear(res);
	res = NULL;
	dh_db_exec(c, "ROLLBACK", 0, NULL, &e);
	in_txn = 0;
	fail_request(c, pk, why);
	rc = 0;
	goto done;
db_fail:
	snprintf(err, errlen, "storing a ledger chunk of request %s: %s", pk, e.msg);
done:
	PQclear(res);
	if (c) {
		int lost = dh_db_conn_lost(c, &e);
		if (in_txn && !lost)
			dh_db_exec(c, "ROLLBACK", 0, NULL, &e);
		if (rc != 0 && !lost)
			fail_request(c, pk, err);
		dh_db_put(h->db, c, lost);
	}
	free(b.s);
	return rc;
}

/* Spoke ids as a PostgreSQL array literal ({"A","B"}); ids are [A-Za-z0-9._:-]. */
static int id_array(const char *const *ids, size_t n, buf *b)
{
	put(b, "{", 1);
	for (size_t i = 0; i < n; i++) {
		if (i)
			put(b, ",", 1);
		put(b, "\"", 1);
		put(b, ids[i], strlen(ids[i]));
		put(b, "\"", 1);
	}
	put(b, "}", 2); /* with the NUL */
	return b->oom ? -1 : 0;
}

int verify_dispatch(struct hub *h, const char *const *spokes, size_t n, verify_send_fn send, void *arg,
		    char *err, size_t errlen)
{
	dh_db_err e = { "", "" };
	PGconn *c = NULL;
	PGresult *res = NULL;
	buf ids = { NULL, 0, 0, 0 };
	int rc = -1;

	if (n == 0)
		return 0;
	if (id_array(spokes, n, &ids) != 0) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	if (!(c = dh_db_get(h->db, &e)))
		goto db_fail;
	{
		/* claim: one statement, so two hubd never both send one request */
		const char *p[1] = { ids.s };
		if (!(res = dh_db_query(c,
					"UPDATE verify_request SET state = 'sent', updated_at = now() "
					"WHERE state = 'pending' AND spoke_id = ANY($1::text[]) "
					"RETURNING pk, spoke_id, study_uid",
					1, p, &e)))
			goto db_fail;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		const char *pk = PQgetvalue(res, i, 0), *spoke = PQgetvalue(res, i, 1), *study = PQgetvalue(res, i, 2);
		if (send(arg, spoke, strtoull(pk, NULL, 10), study) != 0)
			fail_request(c, pk, "the hub could not send the ledger request to the spoke");
		else
			DH_INFO("verify %s: asked spoke %s for the ledger of %s", pk, spoke, study[0] ? study : "every study");
	}
	rc = 0;
	goto done;
db_fail:
	snprintf(err, errlen, "verify requests: %s", e.msg);
done:
	PQclear(res);
	if (c)
		dh_db_put(h->db, c, dh_db_conn_lost(c, &e));
	free(ids.s);
	return rc;
}

int verify_touch_stream(struct hub *h, const char *spoke_id, const char *peer, char *err, size_t errlen)
{
	dh_db_err e = { "", "" };
	const char *p[2] = { spoke_id, peer ? peer : "" };
	PGconn *c = dh_db_get(h->db, &e);
	int rc = -1;

	if (c && dh_db_exec(c,
			    "INSERT INTO cc_stream (spoke_id, last_seen_at, last_peer) VALUES ($1, now(), $2) "
			    "ON CONFLICT (spoke_id) DO UPDATE SET last_seen_at = now(), last_peer = EXCLUDED.last_peer",
			    2, p, &e) == 0)
		rc = 0;
	else
		snprintf(err, errlen, "recording that spoke %s was seen: %s", spoke_id, e.msg);
	if (c)
		dh_db_put(h->db, c, rc != 0 && dh_db_conn_lost(c, &e));
	return rc;
}
