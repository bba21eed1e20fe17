/*
 * db.h - the one module that owns PostgreSQL connections (libpq).
 *
 * A dh_db is a fixed-size pool of connections shared by threads. A thread
 * borrows a connection for one unit of work (dh_db_get), returns it
 * (dh_db_put) and says whether it broke. Broken or lost connections are
 * re-opened lazily on the next borrow, so the daemon survives a database
 * restart without restarting itself; while the server is away dh_db_get
 * answers NULL at once and callers report "unable to process".
 *
 * SQL reaches the server only with bound parameters: PQexecParams, or for
 * the hot static statements PQexecPrepared (dh_db_query_prep below).
 * Errors carry the SQLSTATE so callers branch on it (08xxx lost connection,
 * 23505 duplicate key, 40001/40P01 retry).
 *
 * Migrations: each program compiles its set, sql/hub/NNN_name.sql or
 * sql/spoke/NNN_name.sql, into an array (dh_embed_migrations in
 * common/CMakeLists.txt). dh_db_migrate applies the missing ones, each in
 * its own transaction, under an advisory lock, and records them in
 * schema_version. A database newer than the binary is an error.
 */
#ifndef DH_DB_H
#define DH_DB_H

#include <libpq-fe.h>

typedef struct {
	int version;
	const char *name;
	const char *sql;
} dh_db_migration;

/* A migration set ends with an entry whose name is NULL. */

/* The highest version in set. */
int dh_db_latest_version(const dh_db_migration *set);

typedef struct {
	char sqlstate[6]; /* "" when the error did not come from the server */
	char msg[512];
} dh_db_err;

typedef struct dh_db dh_db;

/*
 * Creates a pool of size connections (opened lazily). conninfo is copied.
 * Returns 0 or -1 (allocation failure).
 */
int dh_db_open(dh_db **out, const char *conninfo, int size);

/* Closes every connection; the pool must have none borrowed. NULL is fine. */
void dh_db_close(dh_db *db);

/*
 * Borrows a connection, waiting while all are borrowed. Reconnects when the
 * connection is missing or bad. Returns NULL (message in err) when the
 * server cannot be reached. The connection stays the pool's.
 */
PGconn *dh_db_get(dh_db *db, dh_db_err *err);

/* Returns a borrowed connection; broken != 0 closes it (e.g. after an 08xxx error). */
void dh_db_put(dh_db *db, PGconn *conn, int broken);

/*
 * Runs one statement with text parameters (NULL entries are SQL NULL).
 * Returns the result (caller PQclear's it) or NULL with err filled.
 */
PGresult *dh_db_query(PGconn *conn, const char *sql, int nparams,
		      const char *const *params, dh_db_err *err);

/* Like dh_db_query for statements without rows; returns 0 or -1. */
int dh_db_exec(PGconn *conn, const char *sql, int nparams,
	       const char *const *params, dh_db_err *err);

/*
 * dh_db_query/dh_db_exec for a STATIC statement text (a string literal or
 * one of a few fixed texts), run often: the first use on a connection
 * prepares it (PQprepare), later uses only bind and execute it
 * (PQexecPrepared), so the server parses and plans it once per connection
 * instead of every time. The cache is per connection, lives with the
 * PGconn (a libpq event procedure frees it when the connection is closed
 * and empties it on PQreset, whose new session has no statements) and holds
 * at most DH_DB_PREP_MAX texts; past that, statements run unprepared.
 * Never pass generated SQL (C-FIND's): every distinct text takes a slot.
 * PostgreSQL keeps a generic plan after five executions: a caller whose
 * tables may still be small (a new hub) disables sequential scans in its
 * transaction, as ingest does, or the plan outlives the tables' growth.
 * Errors as dh_db_query; a failed PQprepare is that statement's error.
 */
#define DH_DB_PREP_MAX 96
PGresult *dh_db_query_prep(PGconn *conn, const char *sql, int nparams,
			   const char *const *params, dh_db_err *err);
int dh_db_exec_prep(PGconn *conn, const char *sql, int nparams,
		    const char *const *params, dh_db_err *err);

/* One statement of a dh_db_query_batch. */
typedef struct {
	const char *sql; /* static text, as for dh_db_query_prep */
	int nparams;
	const char *const *params;
} dh_db_stmt;

#define DH_DB_BATCH_MAX 8

/*
 * Runs n (<= DH_DB_BATCH_MAX) static statements in order in ONE round trip
 * (libpq pipeline mode), each prepared as dh_db_query_prep does; the server
 * runs each with its own snapshot, as if sent one by one. results[i] gets
 * statement i's result (the caller PQclear's it) or NULL when it failed or
 * was skipped (the server skips what follows a failure). Returns 0 when all
 * succeeded, else -1 with the first failure in err. A failure of the
 * pipeline itself (not of a statement) is reported as a lost connection
 * (08006), so the caller discards the connection.
 */
int dh_db_query_batch(PGconn *conn, const dh_db_stmt *stmts, int n, PGresult **results, dh_db_err *err);

/* How many statements conn has prepared through dh_db_query_prep (tests, diagnostics). */
int dh_db_prep_count(PGconn *conn);

/* 1 when err (or the connection's state) means the connection is gone. */
int dh_db_conn_lost(PGconn *conn, const dh_db_err *err);

/* 1 when the error is worth retrying the transaction (serialization, deadlock). */
int dh_db_retryable(const dh_db_err *err);

/* Reads the schema version (0 for an empty database). Returns 0 or -1. */
int dh_db_schema_version(PGconn *conn, int *out, dh_db_err *err);

/*
 * Applies missing migrations. from and to (may be NULL) receive the versions
 * before and after. Fails (-1) when the database is newer than this binary.
 */
int dh_db_migrate(PGconn *conn, const dh_db_migration *set, int *from, int *to, dh_db_err *err);

#endif
