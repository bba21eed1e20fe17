/*
 * shipper.c - ships the spoke's outbox to the hub over ZeroMQ (see spoke.h).
 *
 * One thread, one PGconn of its own (also LISTENing on dh_outbox, which
 * capture.c NOTIFYs in the transaction that queues a cc) and one CURVE
 * DEALER socket towards the hub's cc endpoint. Protocol:
 *
 *   (re)connect  -> hello (an empty Batch); the Ack says how far the hub
 *                   holds this spoke's stream (its acked_through).
 *   then         -> the outbox rows after what was sent, at most cc.batch,
 *                   as one Batch; up to MAX_IN_FLIGHT batches are out at
 *                   once (the hub answers them in order); each Ack must
 *                   come within cc.ack_timeout.
 *   Ack          -> one transaction: outbox rows <= acked_through deleted,
 *                   spoke_state.acked_through/last_ack_at set, cc_history
 *                   'acked' (or 'refused' with the reason for permanent
 *                   refusals: the spoke is told, and a WARN says why).
 *   no Ack       -> the socket is closed and made anew (reconnect, hello),
 *                   and shipping resumes after the hub's acked_through.
 *   idle         -> a hello again every HEARTBEAT_MS: the hub records the
 *                   spoke as seen (cc_stream.last_seen_at, for `hubctl
 *                   status`), and its Ack proves the hub alive (else the
 *                   ack timeout reconnects).
 *   LedgerRequest -> (`hubctl verify`) the ledger, or one study of it, as
 *                   LedgerChunks of LEDGER_CHUNK_ROWS rows on this socket,
 *                   read from one snapshot (spoke/ledger_export.c). The
 *                   export runs in this thread: shipping pauses meanwhile
 *                   (about a second per 100,000 rows).
 *
 * Why this is safe: a row leaves the outbox only in the transaction that
 * records an Ack, and the hub acknowledges only what it committed. After a
 * kill -9 at any point, the restart's hello tells where the hub stands and
 * everything after it is sent again; the hub dedupes on (spoke, sequence).
 * While the hub is down the thread keeps trying, one ack timeout per
 * attempt; while the database is down it reconnects once a second.
 */
#include "ccwire.h"
#include "ledger_export.h"
#include "log.h"
#include "spoke.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define IDLE_POLL_MS 1000 /* the outbox is read at least this often */
#define MAX_IN_FLIGHT 2   /* batches out at once */
#define HEARTBEAT_MS 5000 /* idle hello; hubctl status calls a spoke connected when seen within 30 s */
#define LEDGER_CHUNK_ROWS 2000 /* ~0.5 MB per LedgerChunk */
#define LEDGER_SEND_TIMEOUT_MS 10000 /* a chunk that cannot be queued in this time ends the export */

struct shipper {
	spoke *s;
	char secret[41], public[41];
	atomic_int stop;
	pthread_t thread;
	int started;
	/* the thread's own state */
	void *ctx, *sock;
	PGconn *conn;
	int have_view;        /* the hub answered a hello on this socket */
	uint64_t acked;       /* every sequence <= acked is at the hub */
	/* Frames out whose Ack has not come, oldest first: a second batch goes
	 * out while the hub applies the first, so the hub never waits for the
	 * spoke's bookkeeping. The hub answers in order on one connection. */
	int awaiting;
	uint64_t out_last[MAX_IN_FLIGHT]; /* highest sequence of each (0: hello) */
	int64_t out_at_ms[MAX_IN_FLIGHT];
	uint64_t sent_last;   /* highest sequence sent on this socket */
	int64_t last_send_ms; /* when anything was last sent (heartbeat) */
	int64_t next_send_ms; /* back-off after an Ack that made no progress */
	int hub_silent;       /* ack timeouts in a row (log the first only) */
	int db_down_logged;
	int notified;         /* a NOTIFY came since the last outbox read */
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int stopping(const shipper *sh)
{
	return atomic_load(&sh->stop) || sh->s->stop;
}

/* ------------------------------------------------------------------ */
/* database */

static void db_close(shipper *sh)
{
	if (sh->conn)
		PQfinish(sh->conn);
	sh->conn = NULL;
}

/* Opens the connection, LISTENs, and reads spoke_state.acked_through as the
 * starting point until the hub answers. Returns 0 or -1 (logged once). */
static int db_open(shipper *sh)
{
	dh_db_err err = { "", "" };
	PGresult *res = NULL;
	int rc = -1;

	sh->conn = PQconnectdb(sh->s->cfg.conninfo);
	if (!sh->conn || PQstatus(sh->conn) != CONNECTION_OK) {
		if (!sh->db_down_logged)
			DH_WARN("shipper: cannot connect to the spoke database: %s; retrying every second",
				sh->conn ? PQerrorMessage(sh->conn) : "out of memory");
		sh->db_down_logged = 1;
		goto done;
	}
	if (dh_db_exec(sh->conn, "LISTEN dh_outbox", 0, NULL, &err) != 0) {
		DH_WARN("shipper: LISTEN dh_outbox: %s", err.msg);
		goto done;
	}
	if (!(res = dh_db_query(sh->conn, "SELECT acked_through FROM spoke_state WHERE id = 1", 0, NULL, &err))) {
		DH_WARN("shipper: reading spoke_state: %s", err.msg);
		goto done;
	}
	if (PQntuples(res) != 1) {
		DH_ERROR("shipper: spoke_state has no row; is the spoke database migrated?");
		goto done;
	}
	if (!sh->have_view)
		sh->acked = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	if (sh->db_down_logged)
		DH_INFO("shipper: spoke database reachable again");
	sh->db_down_logged = 0;
	rc = 0;
done:
	PQclear(res);
	if (rc != 0)
		db_close(sh);
	return rc;
}

/* NOTIFYs only wake us; the outbox is the truth. Returns -1 when the connection broke. */
static int db_drain_notifies(shipper *sh)
{
	PGnotify *n;

	if (!PQconsumeInput(sh->conn))
		return -1;
	while ((n = PQnotifies(sh->conn))) {
		sh->notified = 1;
		PQfreemem(n);
	}
	return 0;
}

/*
 * Reads up to cc.batch outbox rows after after_seq (binary results: no
 * bytea hex round trip). *res keeps the bodies alive for the items.
 * Returns the number of rows, or -1 on a database error.
 */
static int db_read_outbox(shipper *sh, uint64_t after_seq, PGresult **res, dh_ccwire_item **items,
			  uint64_t *last)
{
	char after[24], limit[24];
	const char *params[2] = { after, limit };
	int n, rc = -1;

	*items = NULL;
	snprintf(after, sizeof(after), "%" PRIu64, after_seq);
	snprintf(limit, sizeof(limit), "%ld", sh->s->cfg.cc_batch);
	*res = PQexecParams(sh->conn,
			    "SELECT sequence, body FROM outbox WHERE sequence > $1::bigint ORDER BY sequence "
			    "LIMIT $2::int",
			    2, NULL, params, NULL, NULL, 1);
	if (PQresultStatus(*res) != PGRES_TUPLES_OK) {
		DH_WARN("shipper: reading the outbox: %s", PQerrorMessage(sh->conn));
		goto done;
	}
	n = PQntuples(*res);
	if (n > 0 && !(*items = calloc((size_t)n, sizeof(**items))))
		goto done;
	for (int i = 0; i < n; i++) {
		uint64_t be;
		if (PQgetlength(*res, i, 0) != 8)
			goto done;
		memcpy(&be, PQgetvalue(*res, i, 0), 8);
		*last = be64toh(be);
		(*items)[i].data = (const uint8_t *)PQgetvalue(*res, i, 1);
		(*items)[i].len = (size_t)PQgetlength(*res, i, 1);
	}
	rc = n;
done:
	if (rc < 0) {
		free(*items);
		*items = NULL;
	}
	return rc;
}

/*
 * Records an Ack in one transaction: permanent refusals first (so the
 * 'acked' update leaves them alone), then everything <= through acked and
 * out of the outbox. Returns 0 or -1 (rolled back).
 */
static int db_record_ack(shipper *sh, const dh_ccwire_frame *f, uint64_t through)
{
	dh_db_err err = { "", "" };
	char thr[24], seq[24];
	const char *p1[1] = { thr };
	int rc = -1;

	snprintf(thr, sizeof(thr), "%" PRIu64, through);
	if (dh_db_exec(sh->conn, "BEGIN", 0, NULL, &err) != 0)
		goto done;
	for (size_t i = 0; i < dh_ccwire_ack_refused_count(f); i++) {
		dh_ccwire_refusal r = dh_ccwire_ack_refused(f, i);
		const char *p2[2] = { seq, r.reason };
		if (!r.permanent)
			continue;
		snprintf(seq, sizeof(seq), "%" PRIu64, r.sequence);
		if (dh_db_exec(sh->conn,
			       "UPDATE cc_history SET state = 'refused', refusal = $2, acked_at = now() "
			       "WHERE sequence = $1::bigint",
			       2, p2, &err) != 0)
			goto done;
	}
	/* spoke_state last: every capture locks that row, so hold it briefly */
	if (dh_db_exec(sh->conn, "DELETE FROM outbox WHERE sequence <= $1::bigint", 1, p1, &err) != 0 ||
	    dh_db_exec(sh->conn,
		       "UPDATE cc_history SET state = 'acked', acked_at = now() "
		       "WHERE sequence <= $1::bigint AND state = 'queued'",
		       1, p1, &err) != 0 ||
	    dh_db_exec(sh->conn,
		       "UPDATE spoke_state SET acked_through = greatest(acked_through, $1::bigint), "
		       "last_ack_at = now() WHERE id = 1",
		       1, p1, &err) != 0 ||
	    dh_db_exec(sh->conn, "COMMIT", 0, NULL, &err) != 0)
		goto done;
	rc = 0;
done:
	if (rc != 0) {
		DH_WARN("shipper: recording the ack through %" PRIu64 ": %s", through, err.msg);
		if (!dh_db_conn_lost(sh->conn, &err))
			dh_db_exec(sh->conn, "ROLLBACK", 0, NULL, &err);
	}
	return rc;
}

/* ------------------------------------------------------------------ */
/* socket */

static void sock_close(shipper *sh)
{
	if (sh->sock)
		zmq_close(sh->sock);
	sh->sock = NULL;
	sh->have_view = 0;
	sh->awaiting = 0;
	sh->sent_last = sh->acked;
}

static int sock_open(shipper *sh)
{
	const spoke_config *c = &sh->s->cfg;
	const int zero = 0;

	if (!(sh->sock = zmq_socket(sh->ctx, ZMQ_DEALER)) ||
	    zmq_setsockopt(sh->sock, ZMQ_LINGER, &zero, sizeof(zero)) ||
	    zmq_setsockopt(sh->sock, ZMQ_CURVE_SERVERKEY, c->hub_public_key, 40) ||
	    zmq_setsockopt(sh->sock, ZMQ_CURVE_PUBLICKEY, sh->public, 40) ||
	    zmq_setsockopt(sh->sock, ZMQ_CURVE_SECRETKEY, sh->secret, 40) ||
	    zmq_connect(sh->sock, c->hub_cc_endpoint)) {
		DH_ERROR("shipper: cannot set up the socket to %s: %s", c->hub_cc_endpoint, zmq_strerror(errno));
		sock_close(sh);
		return -1;
	}
	return 0;
}

/* Sends a Batch of items (n 0: the hello). Returns 0, or -1 (socket reset). */
static int send_batch(shipper *sh, const dh_ccwire_item *items, size_t n, uint64_t last)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = -1;

	if (dh_ccwire_encode_batch(sh->s->cfg.id, items, n, &buf, &len) != 0) {
		DH_ERROR("shipper: cannot encode a batch of %zu (spoke id '%s')", n, sh->s->cfg.id);
		goto done;
	}
	if (zmq_send(sh->sock, buf, len, ZMQ_DONTWAIT) < 0) {
		DH_DEBUG("shipper: send: %s", zmq_strerror(errno));
		goto done;
	}
	sh->out_last[sh->awaiting] = last;
	sh->out_at_ms[sh->awaiting] = now_ms();
	sh->last_send_ms = sh->out_at_ms[sh->awaiting];
	sh->awaiting++;
	if (last > sh->sent_last)
		sh->sent_last = last;
	if (n)
		DH_DEBUG("shipper: sent %zu cc (through %" PRIu64 ")", n, last);
	rc = 0;
done:
	free(buf);
	return rc;
}

/* ------------------------------------------------------------------ */
/* verify: the ledger for the hub */

typedef struct {
	shipper *sh;
	uint64_t request_id;
	size_t chunks;
} ledger_send;

/* ledger_export's sink: one LedgerChunk, queued (blocking up to LEDGER_SEND_TIMEOUT_MS). */
static int send_chunk(void *arg, const dh_ccwire_chunk_head *head, const dh_ccwire_ledger_row *rows, size_t n)
{
	ledger_send *ls = arg;
	dh_ccwire_chunk_head h = *head;
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = -1;

	h.request_id = ls->request_id;
	if (dh_ccwire_encode_ledger_chunk(ls->sh->s->cfg.id, &h, rows, n, &buf, &len) != 0) {
		DH_ERROR("shipper: verify %" PRIu64 ": cannot encode a ledger chunk of %zu rows", ls->request_id, n);
		goto done;
	}
	if (zmq_send(ls->sh->sock, buf, len, 0) < 0) {
		DH_WARN("shipper: verify %" PRIu64 ": sending a ledger chunk: %s", ls->request_id,
			zmq_strerror(errno));
		goto done;
	}
	ls->chunks++;
	rc = 0;
done:
	free(buf);
	return rc;
}

/* Answers a LedgerRequest: the rows, or one last chunk naming the error. */
static void answer_ledger_request(shipper *sh, const dh_ccwire_frame *f)
{
	ledger_send ls = { sh, dh_ccwire_request_id(f), 0 };
	const char *study = dh_ccwire_request_study(f);
	char err[512] = "";
	const int timeout = LEDGER_SEND_TIMEOUT_MS;
	int64_t t0 = now_ms();

	DH_INFO("shipper: verify %" PRIu64 ": the hub asks for the ledger of %s", ls.request_id,
		study[0] ? study : "every study");
	zmq_setsockopt(sh->sock, ZMQ_SNDTIMEO, &timeout, sizeof(timeout));
	if (ledger_export(sh->conn, study, LEDGER_CHUNK_ROWS, send_chunk, &ls, err, sizeof(err)) != 0) {
		dh_ccwire_chunk_head h = { ls.request_id, 0, 0, 1, err };
		DH_WARN("shipper: verify %" PRIu64 ": %s", ls.request_id, err);
		send_chunk(&ls, &h, NULL, 0);
	} else {
		DH_INFO("shipper: verify %" PRIu64 ": ledger sent in %zu chunk(s), %" PRId64 " ms", ls.request_id,
			ls.chunks, now_ms() - t0);
	}
	sh->last_send_ms = now_ms();
}

/* One message from the hub. Returns 0, or -1 when the database failed. */
static int handle_ack(shipper *sh)
{
	zmq_msg_t msg;
	dh_ccwire_frame *f = NULL;
	char why[256];
	uint64_t through, before = sh->acked, answered;
	int rc = 0;

	zmq_msg_init(&msg);
	if (zmq_msg_recv(&msg, sh->sock, ZMQ_DONTWAIT) < 0)
		goto done;
	if (dh_ccwire_decode(zmq_msg_data(&msg), zmq_msg_size(&msg), &f, why, sizeof(why)) != 0) {
		DH_WARN("shipper: dropped a bad frame from the hub: %s", why);
		goto done;
	}
	if (dh_ccwire_frame_type(f) == DH_CCWIRE_LEDGER_REQUEST &&
	    strcmp(dh_ccwire_frame_spoke_id(f), sh->s->cfg.id) == 0) {
		answer_ledger_request(sh, f);
		goto done;
	}
	if (dh_ccwire_frame_type(f) != DH_CCWIRE_ACK || strcmp(dh_ccwire_frame_spoke_id(f), sh->s->cfg.id) != 0) {
		DH_WARN("shipper: dropped a frame from the hub that is not an ack for spoke %s", sh->s->cfg.id);
		goto done;
	}
	if (!sh->awaiting)
		goto done; /* stale: nothing of ours is out */
	/* the oldest frame out is the one answered */
	answered = sh->out_last[0];
	for (int i = 1; i < sh->awaiting; i++) {
		sh->out_last[i - 1] = sh->out_last[i];
		sh->out_at_ms[i - 1] = sh->out_at_ms[i];
	}
	sh->awaiting--;
	through = dh_ccwire_ack_through(f);
	if (sh->hub_silent)
		DH_INFO("shipper: the hub answers again (acked through %" PRIu64 ")", through);
	sh->hub_silent = 0;
	if (!sh->have_view && through < sh->acked)
		DH_ERROR("shipper: the hub holds this spoke's cc only through %" PRIu64 " but acknowledged %" PRIu64
			 " before (hub database restored?); resending what the outbox still has",
			 through, sh->acked);
	for (size_t i = 0; i < dh_ccwire_ack_refused_count(f); i++) {
		dh_ccwire_refusal r = dh_ccwire_ack_refused(f, i);
		if (r.permanent)
			DH_WARN("shipper: the hub refused cc %" PRIu64 " %s: %s", r.sequence, r.uuid, r.reason);
		else
			DH_INFO("shipper: the hub parked cc %" PRIu64 " %s: %s", r.sequence, r.uuid, r.reason);
	}
	if (through > 0 && (through > before || dh_ccwire_ack_refused_count(f) > 0)) {
		if (db_record_ack(sh, f, through) != 0) {
			rc = -1;
			goto done;
		}
	}
	/* the hub's word is the truth from now on */
	sh->acked = through;
	sh->have_view = 1;
	sh->next_send_ms = 0;
	if (sh->sent_last < through)
		sh->sent_last = through;
	if (answered > through && through <= before) {
		/* the hub stopped short without progress (a gap, or a cc it could
		 * not decode): send again from what it holds, after a little wait
		 * instead of in a tight loop */
		DH_WARN("shipper: the hub acknowledged only through %" PRIu64 " of a batch through %" PRIu64
			"; resending in a second",
			through, answered);
		sh->sent_last = through;
		sh->next_send_ms = now_ms() + 1000;
	}
done:
	dh_ccwire_frame_free(f);
	zmq_msg_close(&msg);
	return rc;
}

/* ------------------------------------------------------------------ */
/* the thread */

/* Sends the next frame if nothing is out. Returns 0, or -1 when the database failed. */
static int ship_next(shipper *sh)
{
	PGresult *res = NULL;
	dh_ccwire_item *items = NULL;
	uint64_t last = 0;
	int n, rc = 0;

	if (sh->awaiting >= MAX_IN_FLIGHT || now_ms() < sh->next_send_ms)
		return 0;
	if (!sh->have_view) {
		if (!sh->awaiting && send_batch(sh, NULL, 0, 0) != 0)
			sock_close(sh);
		return 0;
	}
	if ((n = db_read_outbox(sh, sh->sent_last > sh->acked ? sh->sent_last : sh->acked, &res, &items, &last)) <
	    0) {
		rc = -1;
		goto done;
	}
	if (n > 0 && send_batch(sh, items, (size_t)n, last) != 0)
		sock_close(sh);
	else if (n == 0 && !sh->awaiting && now_ms() - sh->last_send_ms >= HEARTBEAT_MS &&
		 send_batch(sh, NULL, 0, 0) != 0)
		sock_close(sh); /* idle: the heartbeat */
done:
	free(items);
	PQclear(res);
	return rc;
}

static void *shipper_main(void *arg)
{
	shipper *sh = arg;
	const spoke_config *c = &sh->s->cfg;

	dh_log_set_context("shipper");
	while (!stopping(sh)) {
		zmq_pollitem_t items[2];
		int n_items = 0, timeout = IDLE_POLL_MS;

		if (!sh->conn && db_open(sh) != 0) {
			zmq_poll(NULL, 0, IDLE_POLL_MS);
			continue;
		}
		if (!sh->sock && sock_open(sh) != 0) {
			zmq_poll(NULL, 0, IDLE_POLL_MS);
			continue;
		}
		if (ship_next(sh) != 0) {
			db_close(sh);
			continue;
		}
		if (sh->awaiting) {
			int64_t left = sh->out_at_ms[0] + c->cc_ack_timeout * 1000 - now_ms();
			if (left <= 0) {
				if (!sh->hub_silent)
					DH_WARN("shipper: no answer from the hub at %s within %ld s; reconnecting "
						"(logged once until it answers)",
						c->hub_cc_endpoint, c->cc_ack_timeout);
				sh->hub_silent++;
				sock_close(sh);
				continue;
			}
			if (left < timeout)
				timeout = (int)left;
		} else if (sh->next_send_ms) {
			int64_t left = sh->next_send_ms - now_ms();
			if (left < timeout)
				timeout = left > 0 ? (int)left : 0;
		}
		/* a NOTIFY that came in with a query's result is already queued and
		 * will not make the socket readable: look again at once */
		if (db_drain_notifies(sh) != 0) {
			DH_WARN("shipper: lost the spoke database connection: %s", PQerrorMessage(sh->conn));
			db_close(sh);
			continue;
		}
		if (sh->notified) {
			sh->notified = 0;
			if (sh->awaiting < MAX_IN_FLIGHT)
				timeout = 0;
		}
		items[n_items++] = (zmq_pollitem_t){ sh->sock, 0, ZMQ_POLLIN, 0 };
		items[n_items++] = (zmq_pollitem_t){ NULL, PQsocket(sh->conn), ZMQ_POLLIN, 0 };
		if (zmq_poll(items, n_items, timeout) < 0) {
			if (errno != EINTR)
				DH_ERROR("shipper: zmq_poll: %s", zmq_strerror(errno));
			continue;
		}
		if ((items[1].revents & ZMQ_POLLIN) && db_drain_notifies(sh) != 0) {
			DH_WARN("shipper: lost the spoke database connection: %s", PQerrorMessage(sh->conn));
			db_close(sh);
			continue;
		}
		if ((items[0].revents & ZMQ_POLLIN) && handle_ack(sh) != 0) {
			/* the hub has it; we could not record it: start over cleanly */
			db_close(sh);
			sock_close(sh);
		}
	}
	sock_close(sh);
	db_close(sh);
	dh_log_set_context(NULL);
	return NULL;
}

int shipper_start(spoke *s)
{
	shipper *sh = NULL;
	char err[512];
	int rc = -1;

	if (!s->cfg.secret_key_file || !s->cfg.secret_key_file[0]) {
		DH_INFO("shipper off: spoke.secret_key_file is empty; change contexts stay in the outbox");
		return 0;
	}
	if (!s->cfg.hub_public_key || strlen(s->cfg.hub_public_key) != 40) {
		DH_ERROR("shipper: hub.public_key must be the hub's CURVE public key (40 characters Z85; "
			 "`hubctl keygen` prints it)");
		return -1;
	}
	if (!s->cfg.id || !s->cfg.id[0]) {
		DH_ERROR("shipper: spoke.id is empty");
		return -1;
	}
	if (!(sh = calloc(1, sizeof(*sh)))) {
		DH_ERROR("shipper: out of memory");
		goto done;
	}
	sh->s = s;
	if (dh_ccwire_load_secret(s->cfg.secret_key_file, sh->secret, sh->public, err, sizeof(err)) != 0) {
		DH_ERROR("shipper: %s", err);
		goto done;
	}
	if (!(sh->ctx = zmq_ctx_new())) {
		DH_ERROR("shipper: zmq_ctx_new: %s", zmq_strerror(errno));
		goto done;
	}
	if (pthread_create(&sh->thread, NULL, shipper_main, sh) != 0) {
		DH_ERROR("shipper: cannot start its thread");
		goto done;
	}
	sh->started = 1;
	DH_INFO("shipper: spoke %s ships change contexts to %s (CURVE public key %s)", s->cfg.id,
		s->cfg.hub_cc_endpoint, sh->public);
	s->shipper = sh;
	sh = NULL; /* the spoke's now */
	rc = 0;
done:
	if (sh) {
		if (sh->ctx)
			zmq_ctx_term(sh->ctx);
		explicit_bzero(sh->secret, sizeof(sh->secret));
		free(sh);
	}
	return rc;
}

void shipper_stop(spoke *s)
{
	shipper *sh = s->shipper;

	if (!sh)
		return;
	s->shipper = NULL;
	atomic_store(&sh->stop, 1);
	if (sh->started)
		pthread_join(sh->thread, NULL);
	if (sh->ctx)
		zmq_ctx_term(sh->ctx);
	explicit_bzero(sh->secret, sizeof(sh->secret));
	free(sh);
}
