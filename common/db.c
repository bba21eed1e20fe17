/*
 * db.c - connection pool, parameterised queries and migrations.
 *
 * NOTES
 * The pool is a mutex and a condition variable over a small array; the
 * borrow path is short, so contention stays low even with hundreds of
 * association threads. Connections are opened lazily and re-opened after a
 * failure, with no back-off here: callers answer the peer at once (C000,
 * 0110) instead of stalling an association while the database is away.
 */
#include "db.h"
#include "log.h"

#include <libpq-events.h>

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

struct dh_db {
	pthread_mutex_t lock;
	pthread_cond_t free_cv;
	char *conninfo;
	int size;
	PGconn **conns;  /* NULL: not open */
	int *borrowed;
};

static void err_set(dh_db_err *err, const char *state, const char *fmt, const char *detail)
{
	if (!err)
		return;
	snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", state ? state : "");
	snprintf(err->msg, sizeof(err->msg), fmt, detail ? detail : "");
	/* libpq messages end with a newline; log lines should not */
	size_t n = strlen(err->msg);
	while (n > 0 && (err->msg[n - 1] == '\n' || err->msg[n - 1] == ' '))
		err->msg[--n] = '\0';
}

int dh_db_latest_version(const dh_db_migration *set)
{
	int v = 0;
	for (const dh_db_migration *m = set; m->name; m++)
		if (m->version > v)
			v = m->version;
	return v;
}

int dh_db_open(dh_db **out, const char *conninfo, int size)
{
	dh_db *db = calloc(1, sizeof(*db));
	if (!db)
		return -1;
	db->size = size > 0 ? size : 1;
	db->conninfo = strdup(conninfo ? conninfo : "");
	db->conns = calloc((size_t)db->size, sizeof(*db->conns));
	db->borrowed = calloc((size_t)db->size, sizeof(*db->borrowed));
	if (!db->conninfo || !db->conns || !db->borrowed) {
		dh_db_close(db);
		return -1;
	}
	pthread_mutex_init(&db->lock, NULL);
	pthread_cond_init(&db->free_cv, NULL);
	*out = db;
	return 0;
}

void dh_db_close(dh_db *db)
{
	if (!db)
		return;
	if (db->conns) {
		for (int i = 0; i < db->size; i++)
			if (db->conns[i])
				PQfinish(db->conns[i]);
		pthread_mutex_destroy(&db->lock);
		pthread_cond_destroy(&db->free_cv);
	}
	free(db->conns);
	free(db->borrowed);
	free(db->conninfo);
	free(db);
}

/*
 * PQstatus stays CONNECTION_OK for an idle connection whose server went
 * away; an idle connection has nothing to read, so anything readable (EOF,
 * a "terminating connection" error) means it is gone.
 */
static int conn_alive(PGconn *c)
{
	if (PQstatus(c) != CONNECTION_OK)
		return 0;
	struct pollfd p = { PQsocket(c), POLLIN, 0 };
	/* we use no LISTEN: whatever an idle connection can read is its end */
	return p.fd >= 0 && poll(&p, 1, 0) == 0;
}

/* Server notices ("relation already exists, skipping") belong in the debug log, not on stderr. */
static void notice_to_log(void *arg, const char *message)
{
	(void)arg;
	DH_DEBUG("database: %.*s", (int)strcspn(message, "\n"), message);
}

PGconn *dh_db_get(dh_db *db, dh_db_err *err)
{
	int slot = -1;
	pthread_mutex_lock(&db->lock);
	for (;;) {
		/* prefer an open connection, then any free slot */
		for (int i = 0; i < db->size && slot < 0; i++)
			if (!db->borrowed[i] && db->conns[i])
				slot = i;
		for (int i = 0; i < db->size && slot < 0; i++)
			if (!db->borrowed[i])
				slot = i;
		if (slot >= 0)
			break;
		pthread_cond_wait(&db->free_cv, &db->lock);
	}
	db->borrowed[slot] = 1;
	PGconn *c = db->conns[slot];
	pthread_mutex_unlock(&db->lock);

	/* connect outside the lock: it can take a while */
	if (c && !conn_alive(c)) {
		PQfinish(c);
		c = NULL;
	}
	if (!c) {
		c = PQconnectdb(db->conninfo);
		if (PQstatus(c) == CONNECTION_OK)
			PQsetNoticeProcessor(c, notice_to_log, NULL);
		if (PQstatus(c) != CONNECTION_OK) {
			err_set(err, "08006", "could not connect to database: %s", PQerrorMessage(c));
			PQfinish(c);
			c = NULL;
		}
	}
	pthread_mutex_lock(&db->lock);
	db->conns[slot] = c;
	if (!c) {
		db->borrowed[slot] = 0;
		pthread_cond_signal(&db->free_cv);
	}
	pthread_mutex_unlock(&db->lock);
	return c;
}

void dh_db_put(dh_db *db, PGconn *conn, int broken)
{
	if (!conn)
		return;
	pthread_mutex_lock(&db->lock);
	for (int i = 0; i < db->size; i++) {
		if (db->conns[i] == conn) {
			if (broken || PQstatus(conn) != CONNECTION_OK ||
			    PQtransactionStatus(conn) != PQTRANS_IDLE) {
				/* a connection left inside a transaction is not safe to reuse */
				PQfinish(conn);
				db->conns[i] = NULL;
			}
			db->borrowed[i] = 0;
			break;
		}
	}
	pthread_cond_signal(&db->free_cv);
	pthread_mutex_unlock(&db->lock);
}

static PGresult *result_or_err(PGconn *conn, PGresult *res, dh_db_err *err)
{
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return res;
	if (res) {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		err_set(err, state ? state : (PQstatus(conn) == CONNECTION_OK ? "" : "08006"),
			"%s", PQresultErrorMessage(res));
		PQclear(res);
	} else {
		err_set(err, "08006", "%s", PQerrorMessage(conn));
	}
	return NULL;
}

PGresult *dh_db_query(PGconn *conn, const char *sql, int nparams,
		      const char *const *params, dh_db_err *err)
{
	return result_or_err(conn, PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0), err);
}

int dh_db_exec(PGconn *conn, const char *sql, int nparams,
	       const char *const *params, dh_db_err *err)
{
	PGresult *res = dh_db_query(conn, sql, nparams, params, err);
	if (!res)
		return -1;
	PQclear(res);
	return 0;
}

/* ---- prepared statements ----------------------------------------------- */

/*
 * The per-connection cache of dh_db_query_prep: which texts this session
 * has prepared, under which name. Lookup is a linear scan of hashes (a few
 * dozen entries, one compare each); the text is compared too, so a hash
 * collision can never run the wrong statement.
 */
typedef struct {
	int n;
	uint64_t hash[DH_DB_PREP_MAX];
	char *sql[DH_DB_PREP_MAX];
} prep_cache;

static void prep_clear(prep_cache *pc)
{
	for (int i = 0; i < pc->n; i++)
		free(pc->sql[i]);
	pc->n = 0;
}

static int prep_event(PGEventId id, void *info, void *pass)
{
	(void)pass;
	if (id == PGEVT_CONNRESET) {
		/* a reset opens a new session: the server forgot our statements */
		prep_cache *pc = PQinstanceData(((PGEventConnReset *)info)->conn, prep_event);
		if (pc)
			prep_clear(pc);
	} else if (id == PGEVT_CONNDESTROY) {
		PGconn *c = ((PGEventConnDestroy *)info)->conn;
		prep_cache *pc = PQinstanceData(c, prep_event);
		if (pc) {
			prep_clear(pc);
			free(pc);
		}
	}
	return 1;
}

/* The connection's cache, registered on first use; NULL (run unprepared) when out of memory. */
static prep_cache *prep_of(PGconn *conn)
{
	prep_cache *pc = PQinstanceData(conn, prep_event);
	if (pc)
		return pc;
	if (!(pc = calloc(1, sizeof(*pc))))
		return NULL;
	/* registering twice fails harmlessly; the data is what says whether we did */
	(void)PQregisterEventProc(conn, prep_event, "dh_db_prep", NULL);
	if (!PQsetInstanceData(conn, prep_event, pc)) {
		free(pc);
		return NULL;
	}
	return pc;
}

/*
 * The cache slot of sql, prepared on first use. Returns the slot, -1 when
 * it cannot be cached (run it unprepared), or -2 when PREPARE failed (err).
 */
static int prep_slot(PGconn *conn, prep_cache *pc, const char *sql, int nparams, dh_db_err *err)
{
	if (!pc)
		return -1;
	size_t len = strlen(sql);
	uint64_t h = XXH3_64bits(sql, len);
	for (int i = 0; i < pc->n; i++)
		if (pc->hash[i] == h && strcmp(pc->sql[i], sql) == 0)
			return i;
	if (pc->n >= DH_DB_PREP_MAX || !(pc->sql[pc->n] = malloc(len + 1)))
		return -1;
	/* parameter types as PQexecParams leaves them: inferred by the server */
	char name[24];
	snprintf(name, sizeof(name), "dh_%d", pc->n);
	PGresult *res = result_or_err(conn, PQprepare(conn, name, sql, nparams, NULL), err);
	if (!res) {
		free(pc->sql[pc->n]);
		return -2;
	}
	PQclear(res);
	memcpy(pc->sql[pc->n], sql, len + 1);
	pc->hash[pc->n] = h;
	return pc->n++;
}

PGresult *dh_db_query_prep(PGconn *conn, const char *sql, int nparams,
			   const char *const *params, dh_db_err *err)
{
	prep_cache *pc = prep_of(conn);
	int slot = prep_slot(conn, pc, sql, nparams, err);
	if (slot == -2)
		return NULL;
	if (slot < 0)
		return dh_db_query(conn, sql, nparams, params, err);
	char name[24];
	snprintf(name, sizeof(name), "dh_%d", slot);
	PGresult *res = result_or_err(conn, PQexecPrepared(conn, name, nparams, params, NULL, NULL, 0), err);
	/* the session lost our statements (DISCARD ALL by someone): start afresh next time */
	if (!res && err && strcmp(err->sqlstate, "26000") == 0)
		prep_clear(pc);
	return res;
}

int dh_db_exec_prep(PGconn *conn, const char *sql, int nparams,
		    const char *const *params, dh_db_err *err)
{
	PGresult *res = dh_db_query_prep(conn, sql, nparams, params, err);
	if (!res)
		return -1;
	PQclear(res);
	return 0;
}

int dh_db_query_batch(PGconn *conn, const dh_db_stmt *stmts, int n, PGresult **results, dh_db_err *err)
{
	prep_cache *pc = prep_of(conn);
	int slot[DH_DB_BATCH_MAX], sent = 0, rc = -1, failed = 0;

	for (int i = 0; i < n && i < DH_DB_BATCH_MAX; i++)
		results[i] = NULL;
	if (n < 1 || n > DH_DB_BATCH_MAX) {
		err_set(err, "", "%s", "invalid batch size");
		return -1;
	}
	/* first uses prepare one by one (once per connection); the batch itself is one round trip */
	for (int i = 0; i < n; i++)
		if ((slot[i] = prep_slot(conn, pc, stmts[i].sql, stmts[i].nparams, err)) == -2)
			return -1;
	if (!PQenterPipelineMode(conn)) {
		err_set(err, "08006", "cannot enter pipeline mode: %s", PQerrorMessage(conn));
		return -1;
	}
	for (; sent < n; sent++) {
		char name[24];
		snprintf(name, sizeof(name), "dh_%d", slot[sent]);
		int ok = slot[sent] >= 0
			? PQsendQueryPrepared(conn, name, stmts[sent].nparams, stmts[sent].params, NULL, NULL, 0)
			: PQsendQueryParams(conn, stmts[sent].sql, stmts[sent].nparams, NULL, stmts[sent].params,
					    NULL, NULL, 0);
		if (!ok)
			break;
	}
	if (sent < n || !PQpipelineSync(conn)) {
		err_set(err, "08006", "cannot send batch: %s", PQerrorMessage(conn));
		return -1; /* the connection is in an unknown state: reported lost, discarded */
	}
	for (int i = 0; i < n; i++) {
		PGresult *r = PQgetResult(conn);
		if (!r) {
			err_set(err, "08006", "batch: %s", PQerrorMessage(conn));
			goto out;
		}
		ExecStatusType st = PQresultStatus(r);
		if (st == PGRES_PIPELINE_ABORTED) {
			PQclear(r);
		} else if (!failed) {
			if (!(results[i] = result_or_err(conn, r, err)))
				failed = 1;
		} else {
			PQclear(r);
		}
		/* each statement's results end with a NULL */
		if ((r = PQgetResult(conn)) != NULL) {
			PQclear(r);
			err_set(err, "08006", "%s", "batch: unexpected extra result");
			goto out;
		}
	}
	PGresult *sync = PQgetResult(conn);
	int synced = sync && PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
	PQclear(sync);
	if (!synced || !PQexitPipelineMode(conn)) {
		err_set(err, "08006", "batch: %s", PQerrorMessage(conn));
		goto out;
	}
	rc = failed ? -1 : 0;
	if (failed && err && strcmp(err->sqlstate, "26000") == 0 && pc)
		prep_clear(pc);
	return rc;
out:
	for (int i = 0; i < n; i++) {
		PQclear(results[i]);
		results[i] = NULL;
	}
	return -1;
}

int dh_db_prep_count(PGconn *conn)
{
	prep_cache *pc = conn ? PQinstanceData(conn, prep_event) : NULL;
	return pc ? pc->n : 0;
}

int dh_db_conn_lost(PGconn *conn, const dh_db_err *err)
{
	if (conn && PQstatus(conn) != CONNECTION_OK)
		return 1;
	if (err && strncmp(err->sqlstate, "08", 2) == 0)
		return 1;
	/* 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now */
	if (err && strncmp(err->sqlstate, "57P0", 4) == 0)
		return 1;
	return 0;
}

int dh_db_retryable(const dh_db_err *err)
{
	return err && (strcmp(err->sqlstate, "40001") == 0 || strcmp(err->sqlstate, "40P01") == 0);
}

int dh_db_schema_version(PGconn *conn, int *out, dh_db_err *err)
{
	int rc = -1;
	/* two steps: the server resolves a subquery's table even in a CASE branch not taken */
	PGresult *res = dh_db_query(conn, "SELECT to_regclass('schema_version') IS NOT NULL", 0, NULL, err);
	if (!res)
		goto done;
	int exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	res = NULL;
	*out = 0;
	if (exists) {
		res = dh_db_query(conn, "SELECT coalesce(max(version), 0) FROM schema_version", 0, NULL, err);
		if (!res)
			goto done;
		*out = atoi(PQgetvalue(res, 0, 0));
	}
	rc = 0;
done:
	PQclear(res);
	return rc;
}

int dh_db_migrate(PGconn *conn, const dh_db_migration *set, int *from, int *to, dh_db_err *err)
{
	int rc = -1, cur = 0, latest = dh_db_latest_version(set);
	int locked = 0;

	/* serialise concurrent migrators (two hubd processes starting together) */
	if (dh_db_exec(conn, "SELECT pg_advisory_lock(7243001)", 0, NULL, err) < 0)
		goto done;
	locked = 1;
	if (dh_db_exec(conn, "CREATE TABLE IF NOT EXISTS schema_version ("
		       "version integer PRIMARY KEY, name text NOT NULL, "
		       "applied_at timestamptz NOT NULL DEFAULT now())", 0, NULL, err) < 0)
		goto done;
	if (dh_db_schema_version(conn, &cur, err) < 0)
		goto done;
	if (from)
		*from = cur;
	if (cur > latest) {
		char detail[160];
		snprintf(detail, sizeof(detail),
			 "database schema version %d is newer than this program knows (%d); "
			 "upgrade the program", cur, latest);
		err_set(err, "", "%s", detail);
		goto done;
	}
	for (const dh_db_migration *m = set; m->name; m++) {
		if (m->version <= cur)
			continue;
		char ver[16];
		snprintf(ver, sizeof(ver), "%d", m->version);
		const char *params[2] = { ver, m->name };
		if (dh_db_exec(conn, "BEGIN", 0, NULL, err) < 0)
			goto done;
		/* a migration file holds several statements: simple query protocol, no parameters */
		PGresult *res = PQexec(conn, m->sql);
		if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
			const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
			char detail[400];
			snprintf(detail, sizeof(detail), "migration %s failed: %s", m->name,
				 PQresultErrorMessage(res));
			err_set(err, state, "%s", detail);
			PQclear(res);
			PQclear(PQexec(conn, "ROLLBACK"));
			goto done;
		}
		PQclear(res);
		if (dh_db_exec(conn, "INSERT INTO schema_version (version, name) VALUES ($1::int, $2)",
			       2, params, err) < 0 ||
		    dh_db_exec(conn, "COMMIT", 0, NULL, err) < 0) {
			PQclear(PQexec(conn, "ROLLBACK"));
			goto done;
		}
		DH_INFO("applied migration %s", m->name);
		cur = m->version;
	}
	if (to)
		*to = cur;
	rc = 0;
done:
	if (locked)
		PQclear(PQexec(conn, "SELECT pg_advisory_unlock(7243001)"));
	return rc;
}
