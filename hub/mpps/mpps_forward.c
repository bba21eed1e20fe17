/*
 * mpps_forward.c - forwards received MPPS messages to the configured MPPS
 * destinations (conformance §2.2.1.6.6.3: "as is", as an SCU proposing
 * Implicit VR Little Endian).
 *
 * NOTES
 * - The queue is mpps_forward in the index (sql/hub/008_mpps.sql): one row
 *   per message and destination, written in the transaction that accepted
 *   the message, so it survives a crash or restart of hubd.
 * - Order: a row is due only when no earlier message of the same step is
 *   still pending for the same destination, so an N-SET never overtakes its
 *   N-CREATE, whatever the retries did.
 * - A destination that cannot be reached (no association, no answer) is
 *   retried with exponential back-off (mpps.retry_interval doubling up to
 *   mpps.retry_max_interval), without limit: the step is the modality's
 *   record of work done and must arrive. Every pending row of that
 *   destination waits with it, so a down destination costs one connection
 *   attempt per back-off period, not one per message.
 * - A destination that answers with a failure status has refused the
 *   message: the row becomes 'refused' with the status (final; operators
 *   see it in `hubctl mpps show`), and the step's later messages go on.
 * - Rows are claimed with FOR UPDATE SKIP LOCKED, so several hubd on one
 *   database share the queue; each message is sent by one of them.
 */
#include "mpps.h"

#include "hub.h"
#include "log.h"
#include "uid.h"
#include "worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The forwarding worker: a round sends one due message (common/worker.h). */
struct mpps_fwd {
	dh_worker *w;
};

long mpps_backoff_seconds(int failed, long base, long max)
{
	long s = base > 0 ? base : 1;
	for (int i = 1; i < failed && s < max; i++)
		s *= 2;
	return s < max ? s : max;
}

void mpps_forward_kick(hub *h)
{
	if (h->mpps_fwd)
		dh_worker_kick(h->mpps_fwd->w);
}

/* A status the destination answered that means it took the message (success or warning, PS3.7 C). */
static int delivered(unsigned int st)
{
	return st == 0x0000 || st == 0x0001 || st == 0x0107 || st == 0x0116 || (st & 0xF000) == 0xB000;
}

/*
 * Sends one message. Returns 0 with *status the destination's answer, or -1
 * with err when no answer came (unreachable, refused association, broken).
 */
static int send_one(hub *h, const char *dest, const char *kind, const char *uid, const unsigned char *data,
		    size_t len, unsigned int *status, char *err, size_t errlen)
{
	const hub_remote_ae *r = hub_config_remote(&h->cfg, dest);
	dh_dcm_assoc *a = NULL;
	int rc = -1, pc;
	if (!r) {
		snprintf(err, errlen, "no [remote.%s] section: its address is unknown", dest);
		return -1;
	}
	static const char *const ts[] = { DH_TS_IMPLICIT_LE };
	dh_dcm_pc_req req = { DH_UID_MPPS, ts, 1, 0 };
	if (hub_connect(h, &a, r, (int)h->cfg.acse_timeout, &req, 1, err, errlen) != DH_DCM_OK)
		goto done;
	if (dh_dcm_assoc_find_pc(a, DH_UID_MPPS, DH_TS_IMPLICIT_LE, &pc, NULL) != DH_DCM_OK) {
		snprintf(err, errlen, "%s refused the MPPS presentation context", dest);
		dh_dcm_assoc_abort(a);
		goto done;
	}
	int sent = strcmp(kind, "N-CREATE") == 0
		? dh_dcm_n_create(a, pc, DH_UID_MPPS, uid, data, len, (int)h->cfg.dimse_timeout, status, NULL, err,
				  errlen)
		: dh_dcm_n_set(a, pc, DH_UID_MPPS, uid, data, len, (int)h->cfg.dimse_timeout, status, err, errlen);
	if (sent != DH_DCM_OK) {
		dh_dcm_assoc_abort(a);
		goto done;
	}
	dh_dcm_assoc_release(a);
	rc = 0;
done:
	dh_dcm_assoc_free(a);
	return rc;
}

/* Forwards one due message; returns 1 when one was handled, 0 when none is due, -1 on a database error. */
static int work_one(hub *h)
{
	dh_db_err err = { "", "" };
	PGconn *c = dh_db_get(h->db, &err);
	unsigned char *data = NULL;
	size_t len = 0;
	char pk[32], dest[17], uid[DH_UID_MAX + 1], kind[16], attempts_s[16], derr[300] = "";
	int handled = -1, attempts;
	unsigned int status = 0xFFFF;
	if (!c)
		return -1;
	if (dh_db_exec(c, "BEGIN", 0, NULL, &err) < 0)
		goto done;
	PGresult *r = dh_db_query(c,
		"SELECT f.message_pk, f.destination, f.sop_instance_uid, f.attempts, m.kind, m.dataset "
		"FROM mpps_forward f JOIN mpps_message m ON m.pk = f.message_pk "
		"WHERE f.state = 'pending' AND f.next_attempt_at <= now() AND NOT EXISTS ("
		"  SELECT 1 FROM mpps_forward e WHERE e.destination = f.destination "
		"  AND e.sop_instance_uid = f.sop_instance_uid AND e.message_pk < f.message_pk AND e.state = 'pending') "
		"ORDER BY f.message_pk LIMIT 1 FOR UPDATE OF f SKIP LOCKED", 0, NULL, &err);
	if (!r)
		goto rollback;
	if (PQntuples(r) == 0) {
		PQclear(r);
		handled = 0;
		goto rollback;
	}
	snprintf(pk, sizeof(pk), "%s", PQgetvalue(r, 0, 0));
	snprintf(dest, sizeof(dest), "%s", PQgetvalue(r, 0, 1));
	snprintf(uid, sizeof(uid), "%s", PQgetvalue(r, 0, 2));
	attempts = atoi(PQgetvalue(r, 0, 3)) + 1;
	snprintf(kind, sizeof(kind), "%s", PQgetvalue(r, 0, 4));
	data = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 5), &len);
	PQclear(r);
	if (!data) {
		snprintf(err.msg, sizeof(err.msg), "cannot unescape the stored data set");
		goto rollback;
	}
	dh_log_set_context("mpps-forward %s", dest);
	snprintf(attempts_s, sizeof(attempts_s), "%d", attempts);
	if (send_one(h, dest, kind, uid, data, len, &status, derr, sizeof(derr)) == 0) {
		char st[16];
		snprintf(st, sizeof(st), "%u", status);
		int ok = delivered(status);
		if (!ok)
			snprintf(derr, sizeof(derr), "%s answered %s with status %04x", dest, kind, status);
		const char *p[6] = { pk, dest, ok ? "sent" : "refused", attempts_s, st, ok ? "" : derr };
		if (dh_db_exec(c, "UPDATE mpps_forward SET state = $3, attempts = $4::int, response_status = $5::int, "
				  "last_error = $6, sent_at = CASE WHEN $3 = 'sent' THEN now() END "
				  "WHERE message_pk = $1::bigint AND destination = $2", 6, p, &err) < 0)
			goto rollback;
		if (ok)
			DH_INFO("%s %s forwarded to %s (status %04x, attempt %d)", kind, uid, dest, status, attempts);
		else
			DH_WARN("%s %s refused by %s with status %04x: not retried", kind, uid, dest, status);
	} else {
		char interval[32];
		snprintf(interval, sizeof(interval), "%ld seconds",
			 mpps_backoff_seconds(attempts, h->cfg.mpps_retry_interval, h->cfg.mpps_retry_max_interval));
		const char *p[5] = { pk, dest, attempts_s, derr, interval };
		/* the whole destination waits: one connection attempt per back-off period */
		if (dh_db_exec(c, "UPDATE mpps_forward SET attempts = $3::int, last_error = $4, "
				  "next_attempt_at = now() + $5::interval "
				  "WHERE message_pk = $1::bigint AND destination = $2", 5, p, &err) < 0)
			goto rollback;
		/* rows another hubd is sending are skipped, not waited for (no deadlock between two workers) */
		const char *q[4] = { pk, dest, derr, interval };
		if (dh_db_exec(c, "UPDATE mpps_forward SET last_error = $3, "
				  "next_attempt_at = GREATEST(next_attempt_at, now() + $4::interval) "
				  "WHERE (message_pk, destination) IN (SELECT message_pk, destination FROM mpps_forward "
				  "  WHERE destination = $2 AND state = 'pending' AND message_pk <> $1::bigint "
				  "  FOR UPDATE SKIP LOCKED)", 4, q, &err) < 0)
			goto rollback;
		DH_WARN("%s %s not forwarded to %s (attempt %d, next in %s): %s", kind, uid, dest, attempts, interval,
			derr);
	}
	if (dh_db_exec(c, "COMMIT", 0, NULL, &err) < 0)
		goto rollback;
	handled = 1;
	goto done;
rollback:
	PQclear(PQexec(c, "ROLLBACK"));
done:
	if (handled < 0)
		DH_ERROR("MPPS forward worker: [%s] %s", err.sqlstate, err.msg);
	PQfreemem(data);
	dh_db_put(h->db, c, dh_db_conn_lost(c, &err));
	dh_log_set_context("mpps-forward");
	return handled;
}

/* Nothing due (or the database is away): the worker sleeps until kicked or 1 s passed. */
static int worker_round(void *arg)
{
	return work_one(arg) > 0;
}

int mpps_forward_start(hub *h)
{
	mpps_fwd *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	h->mpps_fwd = f;
	return dh_worker_start(&f->w, "mpps-forward", worker_round, h, 1000);
}

void mpps_forward_stop(hub *h)
{
	mpps_fwd *f = h->mpps_fwd;
	if (!f)
		return;
	dh_worker_stop(f->w);
	free(f);
	h->mpps_fwd = NULL;
}
