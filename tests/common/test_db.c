/*
 * test_db.c - unit tests for common/db.c against a real PostgreSQL.
 *
 * The pool, the error mapping and the migrations only mean something
 * against a server, so the test starts its own: a throw-away cluster in a
 * fresh directory under /tmp, reachable only through a Unix socket in that
 * directory (listen_addresses is empty, so no TCP port is taken and several
 * runs can coexist). initdb and postgres refuse to run as root; when the
 * test runs as root they run as the unprivileged user dcmhub. The cluster
 * is stopped and its directory removed at exit, also when a test fails
 * (atexit) or the run is interrupted (SIGINT/SIGTERM end the process through
 * exit()).
 *
 * The cases follow what the daemons rely on: bound parameters keep data
 * data, SQLSTATEs reach the caller, migrations are idempotent and refuse a
 * newer schema, and the pool recovers when the server restarts and answers
 * NULL at once while it is away.
 */
#include "db.h"
#include "pgtest.h"

/* sql/hub/, embedded by tests/common/CMakeLists.txt */
extern const dh_db_migration hub_migrations[];

#include <CUnit/Basic.h>
#include <glob.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char conninfo[512];
static dh_db *db;         /* the pool most tests share (size 2) */

static int suite_init(void)
{
	if (pgtest_start("test_db", conninfo, sizeof(conninfo)) != 0)
		return -1;
	return dh_db_open(&db, conninfo, 2) == 0 ? 0 : -1;
}

static int suite_clean(void)
{
	dh_db_close(db);
	db = NULL;
	return 0;
}

/* The single text value a query returns, or "" (and a failed assertion) when it fails. */
static void query_value(PGconn *c, const char *sql, int n, const char *const *params, char *buf,
			size_t len)
{
	dh_db_err err;
	PGresult *res;

	memset(&err, 0, sizeof(err));
	buf[0] = '\0';
	res = dh_db_query(c, sql, n, params, &err);
	CU_ASSERT_PTR_NOT_NULL(res);
	if (res == NULL) {
		fprintf(stderr, "query failed: %s (%s)\n", err.msg, err.sqlstate);
		return;
	}
	CU_ASSERT_EQUAL(PQntuples(res), 1);
	if (PQntuples(res) == 1 && PQnfields(res) >= 1)
		snprintf(buf, len, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
}

static void test_open_get_put(void)
{
	dh_db_err err;
	PGconn *a, *b, *again;
	char v[64];

	memset(&err, 0, sizeof(err));
	a = dh_db_get(db, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_EQUAL(PQstatus(a), CONNECTION_OK);
	query_value(a, "SELECT 40 + 2", 0, NULL, v, sizeof(v));
	CU_ASSERT_STRING_EQUAL(v, "42");
	/* a second borrow while the first is out gets another connection */
	b = dh_db_get(db, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_PTR_NOT_EQUAL(a, b);
	query_value(b, "SELECT current_database()", 0, NULL, v, sizeof(v));
	CU_ASSERT_STRING_EQUAL(v, "dcmhub");
	dh_db_put(db, b, 0);
	dh_db_put(db, a, 0);
	/* a healthy returned connection is reused, not reopened */
	again = dh_db_get(db, &err);
	CU_ASSERT(again == a || again == b);
	dh_db_put(db, again, 0);
	/* putting NULL is harmless */
	dh_db_put(db, NULL, 1);
}

static void test_migrate_from_empty(void)
{
	dh_db_err err;
	PGconn *c;
	int from = -1, to = -1, ver = -1;
	char v[64];

	memset(&err, 0, sizeof(err));
	CU_ASSERT_FATAL(dh_db_latest_version(hub_migrations) >= 1);
	c = dh_db_get(db, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(dh_db_schema_version(c, &ver, &err), 0);
	CU_ASSERT_EQUAL(ver, 0);
	CU_ASSERT_EQUAL(dh_db_migrate(c, hub_migrations, &from, &to, &err), 0);
	if (err.msg[0])
		fprintf(stderr, "migrate: %s\n", err.msg);
	CU_ASSERT_EQUAL(from, 0);
	CU_ASSERT_EQUAL(to, dh_db_latest_version(hub_migrations));
	CU_ASSERT_EQUAL(dh_db_schema_version(c, &ver, &err), 0);
	CU_ASSERT_EQUAL(ver, dh_db_latest_version(hub_migrations));
	query_value(c, "SELECT to_regclass('instance') IS NOT NULL", 0, NULL, v, sizeof(v));
	CU_ASSERT_STRING_EQUAL(v, "t");
	/* one schema_version row per migration compiled in */
	int n = 0;
	for (const dh_db_migration *m = hub_migrations; m->name; m++)
		n++;
	char expect[16];
	snprintf(expect, sizeof(expect), "%d", n);
	query_value(c, "SELECT count(*) FROM schema_version", 0, NULL, v, sizeof(v));
	CU_ASSERT_STRING_EQUAL(v, expect);
	dh_db_put(db, c, 0);
}

static void test_migrate_again_is_noop(void)
{
	dh_db_err err;
	PGconn *c;
	int from = -1, to = -1;
	char before[64], after[64];

	memset(&err, 0, sizeof(err));
	c = dh_db_get(db, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	query_value(c, "SELECT count(*) || '/' || max(applied_at)::text FROM schema_version", 0, NULL,
		    before, sizeof(before));
	CU_ASSERT_EQUAL(dh_db_migrate(c, hub_migrations, &from, &to, &err), 0);
	CU_ASSERT_EQUAL(from, dh_db_latest_version(hub_migrations));
	CU_ASSERT_EQUAL(to, dh_db_latest_version(hub_migrations));
	query_value(c, "SELECT count(*) || '/' || max(applied_at)::text FROM schema_version", 0, NULL,
		    after, sizeof(after));
	CU_ASSERT_STRING_EQUAL(before, after);
	/* NULL out-parameters are allowed */
	CU_ASSERT_EQUAL(dh_db_migrate(c, hub_migrations, NULL, NULL, &err), 0);
	dh_db_put(db, c, 0);
}

static void test_parameters_are_data(void)
{
	static const char *const nasty[] = {
		"'; DROP TABLE dh_test_victim; --",
		"O'Brien \\ \"quoted\" $1 %s \\x00 ;; /* */",
		"M\xc3\xbcller^Hans",
		"",
	};
	dh_db_err err;
	PGconn *c;
	char v[256], id[16];

	memset(&err, 0, sizeof(err));
	c = dh_db_get(db, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL_FATAL(dh_db_exec(c, "CREATE TABLE dh_test_victim (id int PRIMARY KEY, v text)",
					 0, NULL, &err), 0);
	for (size_t i = 0; i < sizeof(nasty) / sizeof(nasty[0]); i++) {
		snprintf(id, sizeof(id), "%zu", i);
		const char *p[2] = { id, nasty[i] };
		CU_ASSERT_EQUAL(dh_db_exec(c, "INSERT INTO dh_test_victim (id, v) VALUES ($1::int, $2)",
					   2, p, &err), 0);
		const char *q[1] = { id };
		query_value(c, "SELECT v FROM dh_test_victim WHERE id = $1::int", 1, q, v, sizeof(v));
		CU_ASSERT_STRING_EQUAL(v, nasty[i]);
		/* and the value matches itself as a parameter */
		const char *r[1] = { nasty[i] };
		query_value(c, "SELECT count(*) FROM dh_test_victim WHERE v = $1", 1, r, v, sizeof(v));
		CU_ASSERT_STRING_EQUAL(v, "1");
	}
	/* the table the first value names still exists */
	query_value(c, "SELECT to_regclass('dh_test_victim') IS NOT NULL", 0, NULL, v, sizeof(v));
	CU_ASSERT_STRING_EQUAL(v, "t");
	query_value(c, "SELECT count(*) FROM dh_test_victim", 0, NULL, v, sizeof(v));
	CU_ASSERT_STRING_EQUAL(v, "4");

	/* a NULL parameter is SQL NULL */
	const char *np[2] = { "99", NULL };
	CU_ASSERT_EQUAL(dh_db_exec(c, "INSERT INTO dh_test_victim (id, v) VALUES ($1::int, $2)", 2, np,
				   &err), 0);
	PGresult *res = dh_db_query(c, "SELECT v FROM dh_test_victim WHERE id = 99", 0, NULL, &err);
	CU_ASSERT_PTR_NOT_NULL(res);
	if (res) {
		CU_ASSERT_EQUAL(PQntuples(res), 1);
		if (PQntuples(res) == 1)
			CU_ASSERT_EQUAL(PQgetisnull(res, 0, 0), 1);
		PQclear(res);
	}
	CU_ASSERT_EQUAL(dh_db_exec(c, "DROP TABLE dh_test_victim", 0, NULL, &err), 0);
	dh_db_put(db, c, 0);
}

static void test_errors_carry_sqlstate(void)
{
	dh_db_err err;
	PGconn *c;
	char v[64];

	memset(&err, 0, sizeof(err));
	c = dh_db_get(db, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);

	CU_ASSERT_EQUAL(dh_db_exec(c, "SELECT * FROM no_such_table", 0, NULL, &err), -1);
	CU_ASSERT_STRING_EQUAL(err.sqlstate, "42P01");
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "no_such_table"));
	/* messages come without libpq's trailing newline */
	CU_ASSERT(err.msg[0] != '\0' && err.msg[strlen(err.msg) - 1] != '\n');
	CU_ASSERT_EQUAL(dh_db_conn_lost(c, &err), 0);
	CU_ASSERT_EQUAL(dh_db_retryable(&err), 0);
	CU_ASSERT_PTR_NULL(dh_db_query(c, "SELECT * FROM no_such_table", 0, NULL, &err));

	/* a duplicate key, in a table the migrations made */
	memset(&err, 0, sizeof(err));
	const char *p[2] = { "1", "again" };
	CU_ASSERT_EQUAL(dh_db_exec(c, "INSERT INTO schema_version (version, name) VALUES ($1::int, $2)",
				   2, p, &err), -1);
	CU_ASSERT_STRING_EQUAL(err.sqlstate, "23505");
	CU_ASSERT_EQUAL(dh_db_conn_lost(c, &err), 0);

	/* a syntax error, and a bad parameter value */
	CU_ASSERT_EQUAL(dh_db_exec(c, "SELEC 1", 0, NULL, &err), -1);
	CU_ASSERT_STRING_EQUAL(err.sqlstate, "42601");
	const char *bad[1] = { "not a number" };
	CU_ASSERT_EQUAL(dh_db_exec(c, "SELECT $1::int", 1, bad, &err), -1);
	CU_ASSERT_STRING_EQUAL(err.sqlstate, "22P02");

	/* errors outside a transaction leave the connection usable */
	query_value(c, "SELECT 1", 0, NULL, v, sizeof(v));
	CU_ASSERT_STRING_EQUAL(v, "1");
	/* a NULL err is allowed */
	CU_ASSERT_EQUAL(dh_db_exec(c, "SELECT * FROM no_such_table", 0, NULL, NULL), -1);
	dh_db_put(db, c, 0);
}

static void test_retryable_and_lost(void)
{
	dh_db_err e;

	memset(&e, 0, sizeof(e));
	strcpy(e.sqlstate, "40001");
	CU_ASSERT_EQUAL(dh_db_retryable(&e), 1);
	strcpy(e.sqlstate, "40P01");
	CU_ASSERT_EQUAL(dh_db_retryable(&e), 1);
	strcpy(e.sqlstate, "23505");
	CU_ASSERT_EQUAL(dh_db_retryable(&e), 0);
	CU_ASSERT_EQUAL(dh_db_conn_lost(NULL, &e), 0);
	strcpy(e.sqlstate, "08006");
	CU_ASSERT_EQUAL(dh_db_conn_lost(NULL, &e), 1);
	strcpy(e.sqlstate, "57P01");
	CU_ASSERT_EQUAL(dh_db_conn_lost(NULL, &e), 1);
	CU_ASSERT_EQUAL(dh_db_retryable(NULL), 0);
}

/* Another session can take the migration lock (it was released). */
static void check_lock_free(PGconn *other)
{
	char v[16];

	query_value(other, "SELECT pg_try_advisory_lock(7243001)", 0, NULL, v, sizeof(v));
	CU_ASSERT_STRING_EQUAL(v, "t");
	query_value(other, "SELECT pg_advisory_unlock(7243001)", 0, NULL, v, sizeof(v));
}

static void test_newer_schema_refused(void)
{
	dh_db_err err;
	PGconn *c, *other;
	int from = -1, to = -1;

	memset(&err, 0, sizeof(err));
	c = dh_db_get(db, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	other = dh_db_get(db, &err);
	CU_ASSERT_PTR_NOT_NULL(other);
	CU_ASSERT_EQUAL_FATAL(dh_db_exec(c, "INSERT INTO schema_version (version, name) "
					    "VALUES (9999, '9999_future')", 0, NULL, &err), 0);
	memset(&err, 0, sizeof(err));
	CU_ASSERT_EQUAL(dh_db_migrate(c, hub_migrations, &from, &to, &err), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "newer"));
	CU_ASSERT_EQUAL(from, 9999);
	if (other)
		check_lock_free(other);

	/* back to the real version: migrating works again */
	CU_ASSERT_EQUAL(dh_db_exec(c, "DELETE FROM schema_version WHERE version = 9999", 0, NULL,
				   &err), 0);
	CU_ASSERT_EQUAL(dh_db_migrate(c, hub_migrations, &from, &to, &err), 0);
	CU_ASSERT_EQUAL(to, dh_db_latest_version(hub_migrations));
	if (other)
		check_lock_free(other);
	dh_db_put(db, other, 0);
	dh_db_put(db, c, 0);
}

/*
 * dh_db_query_prep: a static text is prepared once per connection and then
 * reused (same results as unprepared), its parameters stay data, a
 * statement prepared inside a rolled-back transaction stays usable, errors
 * carry their SQLSTATE, a failed PREPARE takes no slot, and past
 * DH_DB_PREP_MAX texts statements still run (unprepared).
 */
static void test_prepared_statements(void)
{
	dh_db *one = NULL;
	dh_db_err err;
	PGconn *c;
	PGresult *res;
	const char *sql = "SELECT $1::text || '-' || $2::text";

	memset(&err, 0, sizeof(err));
	CU_ASSERT_EQUAL_FATAL(dh_db_open(&one, conninfo, 1), 0);
	c = dh_db_get(one, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(dh_db_prep_count(c), 0);
	for (int i = 0; i < 3; i++) {
		const char *p[2] = { "a'; DROP TABLE x; --", i == 1 ? NULL : "b" };
		res = dh_db_query_prep(c, sql, 2, p, &err);
		CU_ASSERT_PTR_NOT_NULL_FATAL(res);
		CU_ASSERT_EQUAL(PQgetisnull(res, 0, 0), i == 1);
		if (i != 1)
			CU_ASSERT_STRING_EQUAL(PQgetvalue(res, 0, 0), "a'; DROP TABLE x; ---b");
		PQclear(res);
	}
	CU_ASSERT_EQUAL(dh_db_prep_count(c), 1);
	/* the server holds it under our name: a second text gets a second one */
	res = dh_db_query(c, "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'dh\\_%'", 0, NULL,
			  &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(res);
	CU_ASSERT_STRING_EQUAL(PQgetvalue(res, 0, 0), "1");
	PQclear(res);

	/* prepared inside a transaction that rolls back: still there afterwards */
	CU_ASSERT_EQUAL(dh_db_exec_prep(c, "BEGIN", 0, NULL, &err), 0);
	CU_ASSERT_EQUAL(dh_db_exec_prep(c, "SELECT 41 + 1", 0, NULL, &err), 0);
	CU_ASSERT_EQUAL(dh_db_exec_prep(c, "ROLLBACK", 0, NULL, &err), 0);
	res = dh_db_query_prep(c, "SELECT 41 + 1", 0, NULL, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(res);
	CU_ASSERT_STRING_EQUAL(PQgetvalue(res, 0, 0), "42");
	PQclear(res);
	CU_ASSERT_EQUAL(dh_db_prep_count(c), 4);

	/* an execution error carries its SQLSTATE and leaves the statement usable */
	const char *zero[1] = { "0" };
	memset(&err, 0, sizeof(err));
	CU_ASSERT_PTR_NULL(dh_db_query_prep(c, "SELECT 1 / $1::int", 1, zero, &err));
	CU_ASSERT_STRING_EQUAL(err.sqlstate, "22012");
	const char *two[1] = { "2" };
	res = dh_db_query_prep(c, "SELECT 1 / $1::int", 1, two, &err);
	CU_ASSERT_PTR_NOT_NULL(res);
	PQclear(res);
	/* a text that does not parse fails at PREPARE and takes no slot */
	int before = dh_db_prep_count(c);
	memset(&err, 0, sizeof(err));
	CU_ASSERT_PTR_NULL(dh_db_query_prep(c, "SELEKT 1", 0, NULL, &err));
	CU_ASSERT_STRING_EQUAL(err.sqlstate, "42601");
	CU_ASSERT_EQUAL(dh_db_prep_count(c), before);

	/* a full cache runs further texts unprepared, correctly */
	for (int i = 0; i < DH_DB_PREP_MAX + 5; i++) {
		char q[64], want[16];
		snprintf(q, sizeof(q), "SELECT %d", i);
		snprintf(want, sizeof(want), "%d", i);
		res = dh_db_query_prep(c, q, 0, NULL, &err);
		CU_ASSERT_PTR_NOT_NULL_FATAL(res);
		CU_ASSERT_STRING_EQUAL(PQgetvalue(res, 0, 0), want);
		PQclear(res);
	}
	CU_ASSERT_EQUAL(dh_db_prep_count(c), DH_DB_PREP_MAX);
	/* the texts prepared before still run prepared */
	const char *xy[2] = { "x", "y" };
	res = dh_db_query_prep(c, sql, 2, xy, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(res);
	CU_ASSERT_STRING_EQUAL(PQgetvalue(res, 0, 0), "x-y");
	PQclear(res);

	/* PQreset opens a new session: the cache empties and statements are prepared again */
	PQreset(c);
	CU_ASSERT_EQUAL(dh_db_prep_count(c), 0);
	res = dh_db_query_prep(c, "SELECT 41 + 1", 0, NULL, &err);
	CU_ASSERT_PTR_NOT_NULL(res);
	PQclear(res);
	CU_ASSERT_EQUAL(dh_db_prep_count(c), 1);
	dh_db_put(one, c, 0);
	dh_db_close(one);
}

/*
 * dh_db_query_batch: statements run in order in one round trip, each with
 * its results; a failing one reports its SQLSTATE, the ones after it are
 * skipped, and the connection leaves pipeline mode usable (the caller rolls
 * back). Each statement sees what the ones before it did.
 */
static void test_batch(void)
{
	dh_db *one = NULL;
	dh_db_err err;
	PGconn *c;
	PGresult *res[3];
	const char *v[1] = { "7" };

	memset(&err, 0, sizeof(err));
	CU_ASSERT_EQUAL_FATAL(dh_db_open(&one, conninfo, 1), 0);
	c = dh_db_get(one, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL_FATAL(dh_db_exec(c, "CREATE TEMP TABLE bt (v int)", 0, NULL, &err), 0);
	for (int round = 0; round < 2; round++) { /* first use prepares, the second only executes */
		const dh_db_stmt ok[3] = {
			{ "BEGIN", 0, NULL },
			{ "INSERT INTO bt VALUES ($1::int)", 1, v },
			{ "SELECT count(*), sum(v) FROM bt", 0, NULL },
		};
		CU_ASSERT_EQUAL(dh_db_query_batch(c, ok, 3, res, &err), 0);
		CU_ASSERT_PTR_NOT_NULL_FATAL(res[2]);
		CU_ASSERT_STRING_EQUAL(PQgetvalue(res[2], 0, 0), round == 0 ? "1" : "2");
		CU_ASSERT_STRING_EQUAL(PQgetvalue(res[2], 0, 1), round == 0 ? "7" : "14");
		for (int i = 0; i < 3; i++)
			PQclear(res[i]);
		CU_ASSERT_EQUAL(PQtransactionStatus(c), PQTRANS_INTRANS);
		CU_ASSERT_EQUAL(dh_db_exec_prep(c, "COMMIT", 0, NULL, &err), 0);
	}
	CU_ASSERT_EQUAL(PQpipelineStatus(c), PQ_PIPELINE_OFF);

	const char *zero[1] = { "0" };
	const dh_db_stmt bad[3] = {
		{ "BEGIN", 0, NULL },
		{ "SELECT 1 / $1::int", 1, zero },
		{ "SELECT count(*), sum(v) FROM bt", 0, NULL },
	};
	memset(&err, 0, sizeof(err));
	CU_ASSERT_EQUAL(dh_db_query_batch(c, bad, 3, res, &err), -1);
	CU_ASSERT_STRING_EQUAL(err.sqlstate, "22012");
	CU_ASSERT_PTR_NOT_NULL(res[0]);
	CU_ASSERT_PTR_NULL(res[1]);
	CU_ASSERT_PTR_NULL(res[2]);
	PQclear(res[0]);
	CU_ASSERT_EQUAL(dh_db_conn_lost(c, &err), 0);
	CU_ASSERT_EQUAL(PQpipelineStatus(c), PQ_PIPELINE_OFF);
	CU_ASSERT_EQUAL(PQtransactionStatus(c), PQTRANS_INERROR);
	CU_ASSERT_EQUAL(dh_db_exec(c, "ROLLBACK", 0, NULL, &err), 0);
	char n[16];
	query_value(c, "SELECT count(*) FROM bt", 0, NULL, n, sizeof(n));
	CU_ASSERT_STRING_EQUAL(n, "2");

	/* a text that does not parse fails before anything is sent */
	const dh_db_stmt unparsable[2] = { { "BEGIN", 0, NULL }, { "SELEKT 1", 0, NULL } };
	memset(&err, 0, sizeof(err));
	CU_ASSERT_EQUAL(dh_db_query_batch(c, unparsable, 2, res, &err), -1);
	CU_ASSERT_STRING_EQUAL(err.sqlstate, "42601");
	CU_ASSERT_EQUAL(PQtransactionStatus(c), PQTRANS_IDLE);

	/* the server gone: the batch fails as a lost connection */
	CU_ASSERT_EQUAL_FATAL(pgtest_ctl("restart"), 0);
	const dh_db_stmt one_stmt[1] = { { "SELECT count(*), sum(v) FROM bt", 0, NULL } };
	memset(&err, 0, sizeof(err));
	CU_ASSERT_EQUAL(dh_db_query_batch(c, one_stmt, 1, res, &err), -1);
	CU_ASSERT_EQUAL(dh_db_conn_lost(c, &err), 1);
	CU_ASSERT_PTR_NULL(res[0]);
	dh_db_put(one, c, 1);
	dh_db_close(one);
}

/*
 * The brief's scenario: the connection in hand fails after the restart, is
 * returned as broken, and the next borrow opens a working one.
 */
static void test_pool_survives_restart(void)
{
	dh_db *one = NULL;
	dh_db_err err;
	PGconn *c;
	char v[64];

	memset(&err, 0, sizeof(err));
	CU_ASSERT_EQUAL_FATAL(dh_db_open(&one, conninfo, 1), 0);
	c = dh_db_get(one, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	query_value(c, "SELECT 1", 0, NULL, v, sizeof(v));
	CU_ASSERT_STRING_EQUAL(v, "1");

	CU_ASSERT_EQUAL_FATAL(pgtest_ctl("restart"), 0);

	PGresult *res = dh_db_query(c, "SELECT 1", 0, NULL, &err);
	CU_ASSERT_PTR_NULL(res);
	PQclear(res);
	CU_ASSERT_EQUAL(dh_db_conn_lost(c, &err), 1);
	dh_db_put(one, c, 1);

	c = dh_db_get(one, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	query_value(c, "SELECT 2", 0, NULL, v, sizeof(v));
	CU_ASSERT_STRING_EQUAL(v, "2");
	/* the new connection prepares afresh: no stale cache from the one that died */
	CU_ASSERT_EQUAL(dh_db_prep_count(c), 0);
	res = dh_db_query_prep(c, "SELECT 5", 0, NULL, &err);
	CU_ASSERT_PTR_NOT_NULL(res);
	PQclear(res);
	dh_db_put(one, c, 0);

	/* a connection that prepared, lost in a restart, is replaced by one that prepares again */
	c = dh_db_get(one, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(dh_db_prep_count(c), 1);
	CU_ASSERT_EQUAL_FATAL(pgtest_ctl("restart"), 0);
	res = dh_db_query_prep(c, "SELECT 5", 0, NULL, &err);
	CU_ASSERT_PTR_NULL(res);
	CU_ASSERT_EQUAL(dh_db_conn_lost(c, &err), 1);
	dh_db_put(one, c, 1);
	c = dh_db_get(one, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(dh_db_prep_count(c), 0);
	res = dh_db_query_prep(c, "SELECT 5", 0, NULL, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(res);
	CU_ASSERT_STRING_EQUAL(PQgetvalue(res, 0, 0), "5");
	PQclear(res);
	dh_db_put(one, c, 0);
	dh_db_close(one);
}

/*
 * The shared pool had two idle connections open when the server restarted
 * (previous test). "Lost connections are re-opened lazily on the next
 * borrow" (db.h): the next borrow must give a working connection, not a
 * stale one that fails its first query.
 */
static void test_idle_connections_after_restart(void)
{
	dh_db_err err;
	PGconn *c[2];
	int ok[2];
	char v[64];

	memset(&err, 0, sizeof(err));
	for (int i = 0; i < 2; i++) {
		ok[i] = 0;
		c[i] = dh_db_get(db, &err);
		CU_ASSERT_PTR_NOT_NULL(c[i]);
		if (c[i] == NULL)
			continue;
		PGresult *res = dh_db_query(c[i], "SELECT 3", 0, NULL, &err);
		ok[i] = res != NULL;
		CU_ASSERT(ok[i]);
		if (!ok[i])
			fprintf(stderr, "borrow %d after restart: stale connection (%s: %s)\n", i,
				err.sqlstate, err.msg);
		PQclear(res);
	}
	for (int i = 0; i < 2; i++)
		dh_db_put(db, c[i], !ok[i]);

	/* leave two open, idle connections in the pool for the "stopped" case below */
	for (int i = 0; i < 2; i++) {
		c[i] = dh_db_get(db, &err);
		CU_ASSERT_PTR_NOT_NULL_FATAL(c[i]);
		query_value(c[i], "SELECT 4", 0, NULL, v, sizeof(v));
		CU_ASSERT_STRING_EQUAL(v, "4");
	}
	dh_db_put(db, c[0], 0);
	dh_db_put(db, c[1], 0);
}

/* With the server stopped, a pool that never connected answers NULL with a message at once. */
static void test_get_fails_when_stopped(void)
{
	dh_db *fresh = NULL;
	dh_db_err err;
	PGconn *c;

	CU_ASSERT_EQUAL_FATAL(pgtest_ctl("stop"), 0);
	CU_ASSERT_EQUAL_FATAL(dh_db_open(&fresh, conninfo, 1), 0);
	memset(&err, 0, sizeof(err));
	c = dh_db_get(fresh, &err);
	CU_ASSERT_PTR_NULL(c);
	CU_ASSERT(err.msg[0] != '\0');
	CU_ASSERT_STRING_EQUAL(err.sqlstate, "08006");
	CU_ASSERT_EQUAL(dh_db_conn_lost(NULL, &err), 1);
	/* the failed borrow gave its slot back: a second one does not wait forever */
	memset(&err, 0, sizeof(err));
	c = dh_db_get(fresh, &err);
	CU_ASSERT_PTR_NULL(c);
	CU_ASSERT(err.msg[0] != '\0');
	dh_db_put(fresh, c, 1);
	dh_db_close(fresh);
}

/*
 * Same, on the shared pool whose connections were open and idle when the
 * server went away: "while the server is away dh_db_get answers NULL at
 * once" (db.h).
 */
static void test_get_fails_when_stopped_idle_pool(void)
{
	dh_db_err err;
	PGconn *c;

	memset(&err, 0, sizeof(err));
	c = dh_db_get(db, &err);
	CU_ASSERT_PTR_NULL(c);
	CU_ASSERT(err.msg[0] != '\0');
	if (c)
		dh_db_put(db, c, 1);
}

int main(void)
{
	CU_pSuite s;
	unsigned failures;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("db", suite_init, suite_clean);
	if (s == NULL ||
	    CU_add_test(s, "open/get/put", test_open_get_put) == NULL ||
	    CU_add_test(s, "migrate from empty", test_migrate_from_empty) == NULL ||
	    CU_add_test(s, "migrate again is a no-op", test_migrate_again_is_noop) == NULL ||
	    CU_add_test(s, "parameters are data", test_parameters_are_data) == NULL ||
	    CU_add_test(s, "errors carry SQLSTATE", test_errors_carry_sqlstate) == NULL ||
	    CU_add_test(s, "retryable and lost", test_retryable_and_lost) == NULL ||
	    CU_add_test(s, "newer schema refused", test_newer_schema_refused) == NULL ||
	    CU_add_test(s, "prepared statements", test_prepared_statements) == NULL ||
	    CU_add_test(s, "batch in one round trip", test_batch) == NULL ||
	    CU_add_test(s, "pool survives a restart", test_pool_survives_restart) == NULL ||
	    CU_add_test(s, "idle connections after a restart", test_idle_connections_after_restart) == NULL ||
	    CU_add_test(s, "get fails when stopped", test_get_fails_when_stopped) == NULL ||
	    CU_add_test(s, "get fails when stopped (idle pool)", test_get_fails_when_stopped_idle_pool) == NULL) {
		CU_cleanup_registry();
		return 2;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
	CU_cleanup_registry();
	return failures == 0 ? 0 : 1;
}
