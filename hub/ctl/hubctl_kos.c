/*
 * hubctl_kos.c - hubctl's kos and quarantine commands (see hubctl_kos.h).
 *
 * kos reads kos_document / kos_reference (sql/hub/007_kos.sql); the
 * quarantine commands read and settle quarantine rows (005). A release
 * goes through ingest's own indexing code (ingest_register_file), so a
 * released object is indexed exactly as if it had just arrived (duplicate
 * policy, UID mapping, a rejection note that came before it); the item's
 * state change and the operator_action row commit in that same transaction.
 */
#include "hubctl_kos.h"

#include "db.h"
#include "hub.h"
#include "hub_config.h"
#include "hubctl_out.h"
#include "log.h"

#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int hubctl_kos_is_command(const char *name)
{
	return name && (strcmp(name, "kos") == 0 || strcmp(name, "quarantine") == 0);
}

const char *hubctl_kos_command_of(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0 || strcmp(a, "--reason") == 0 ||
		    strcmp(a, "--operator") == 0) {
			i++; /* its value */
			continue;
		}
		if (a[0] == '-')
			continue;
		return hubctl_kos_is_command(a) ? a : NULL;
	}
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: hubctl [-c FILE] kos STUDY_UID [--json]\n"
		   "       hubctl [-c FILE] quarantine list [--all] [--json]\n"
		   "       hubctl [-c FILE] quarantine show ID [--json]\n"
		   "       hubctl [-c FILE] quarantine release|discard ID --reason TEXT [--operator NAME]\n"
		   "\n"
		   "  kos         the study's Key Object Selection documents and what they reference\n"
		   "  quarantine  objects the hub keeps but does not show (a KOS it could not register)\n"
		   "    release   index the object as a plain instance: it becomes visible\n"
		   "    discard   settle the item for good and remove its file\n"
		   "\n"
		   "Exit status: 0 success, 1 failure, 2 bad usage.\n");
}

/* Prints a one-row-per-line query result, or its single JSON value (column 0) with json. */
static int print_query(PGconn *c, const char *sql, int n, const char *const *p, int json, const int *num)
{
	dh_db_err err;
	PGresult *r = dh_db_query(c, sql, n, p, &err);
	if (!r) {
		fprintf(stderr, "hubctl: %s\n", err.msg);
		return 1;
	}
	hubctl_print_result(r, json, num);
	PQclear(r);
	return 0;
}

/* Column 0 of row 0 printed as is (a JSON document built by PostgreSQL). */
static int print_json(PGconn *c, const char *sql, int n, const char *const *p)
{
	dh_db_err err;
	PGresult *r = dh_db_query(c, sql, n, p, &err);
	if (!r) {
		fprintf(stderr, "hubctl: %s\n", err.msg);
		return 1;
	}
	printf("%s\n", PQntuples(r) ? PQgetvalue(r, 0, 0) : "null");
	PQclear(r);
	return 0;
}

/* The current study of a document: its instance's, else (deleted) the one it came with
 * (both conditions indexed: kos_document_study_idx, and the study's KOS instances). */
#define KOS_DOCS                                                                                              \
	"SELECT k.pk, k.sop_uid, k.title_code, k.title_scheme, k.title_meaning, k.author, k.content_date, "    \
	"k.content_time, k.rejection, k.hidden, k.source_ae, "                                                 \
	"to_char(k.registered_at, 'YYYY-MM-DD HH24:MI:SS') AS registered, "                                    \
	"CASE WHEN i.pk IS NULL THEN 'deleted' ELSE 'indexed' END AS state, "                                  \
	"(SELECT count(*) FROM kos_reference r WHERE r.kos_fk = k.pk AND r.origin = 'evidence') AS n_refs "   \
	"FROM kos_document k LEFT JOIN instance i ON i.pk = k.instance_pk "                                    \
	"LEFT JOIN series se ON se.pk = i.series_fk LEFT JOIN study st ON st.pk = se.study_fk "                \
	"WHERE (k.study_uid = $1 OR k.instance_pk IN (SELECT i2.pk FROM study st2 JOIN series se2 "               \
	"ON se2.study_fk = st2.pk JOIN instance i2 ON i2.series_fk = se2.pk WHERE st2.study_uid = $1 "          \
	"AND i2.sop_class_uid = '1.2.840.10008.5.1.4.1.1.88.59')) "                                             \
	"AND COALESCE(st.study_uid, k.study_uid) = $1 "

static int cmd_kos(PGconn *c, const char *study, int json)
{
	const char *p[1] = { study };
	if (json)
		return print_json(c,
			"SELECT json_build_object('study_uid', $1::text, 'documents', COALESCE(json_agg("
			"json_build_object('id', d.pk, 'sop_uid', d.sop_uid, 'title', json_build_object("
			"'code', d.title_code, 'scheme', d.title_scheme, 'meaning', d.title_meaning), "
			"'author', d.author, 'content_date', d.content_date, 'content_time', d.content_time, "
			"'rejection', d.rejection, 'hidden', d.hidden, 'source_ae', d.source_ae, "
			"'registered', d.registered, 'state', d.state, 'references', (SELECT COALESCE(json_agg("
			"json_build_object('study_uid', r.study_uid, 'series_uid', r.series_uid, 'sop_uid', r.sop_uid, "
			"'sop_class_uid', r.sop_class_uid, 'origin', r.origin, 'state', CASE WHEN EXISTS (SELECT 1 FROM "
			"instance i WHERE i.sop_uid = r.sop_uid OR i.received_sop_uid = r.sop_uid) THEN 'indexed' "
			"WHEN EXISTS (SELECT 1 FROM deleted_instance x WHERE x.sop_uid = r.sop_uid) THEN 'deleted' "
			"ELSE 'not received' END) ORDER BY r.seq), '[]') FROM kos_reference r WHERE r.kos_fk = d.pk)) "
			"ORDER BY d.pk), '[]')) FROM (" KOS_DOCS ") d",
			1, p);
	static const int num[] = { 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1 };
	printf("Key Object Selection documents of study %s\n", study);
	if (print_query(c,
			"SELECT pk AS id, sop_uid, title_code || ' (' || title_scheme || ')' AS title, "
			"title_meaning AS meaning, author, content_date || ' ' || content_time AS content, "
			"CASE WHEN rejection THEN 'yes' ELSE '' END AS rejection, hidden, state, n_refs AS refs "
			"FROM (" KOS_DOCS ") d ORDER BY pk",
			1, p, 0, num))
		return 1;
	printf("\nReferenced instances\n");
	return print_query(c,
			   "SELECT r.kos_fk AS id, r.origin, r.series_uid, r.sop_uid, CASE WHEN EXISTS (SELECT 1 FROM "
			   "instance i WHERE i.sop_uid = r.sop_uid OR i.received_sop_uid = r.sop_uid) THEN 'indexed' "
			   "WHEN EXISTS (SELECT 1 FROM deleted_instance x WHERE x.sop_uid = r.sop_uid) THEN 'deleted' "
			   "ELSE 'not received' END AS state FROM kos_reference r "
			   "WHERE r.kos_fk IN (SELECT pk FROM (" KOS_DOCS ") d) ORDER BY r.kos_fk, r.seq",
			   1, p, 0, NULL);
}

static int cmd_list(PGconn *c, int all, int json)
{
	static const int num[] = { 1, 0, 0, 0, 0, 0, 0, 0 };
	const char *p[1] = { all ? "t" : "f" };
	return print_query(c,
			   "SELECT pk AS id, state, sop_uid, study_uid, source_ae, "
			   "to_char(received_at, 'YYYY-MM-DD HH24:MI:SS') AS received, reason FROM quarantine "
			   "WHERE $1::boolean OR state = 'quarantined' ORDER BY pk",
			   1, p, json, num);
}

static int cmd_show(PGconn *c, const char *id, int json)
{
	const char *p[1] = { id };
	dh_db_err err;
	PGresult *r = dh_db_query(c, "SELECT 1 FROM quarantine WHERE pk = $1::bigint", 1, p, &err);
	if (!r) {
		fprintf(stderr, "hubctl: %s\n", err.msg);
		return 1;
	}
	int found = PQntuples(r) > 0;
	PQclear(r);
	if (!found) {
		fprintf(stderr, "hubctl: no quarantine item %s\n", id);
		return 1;
	}
	if (json)
		return print_json(c,
			"SELECT json_build_object('id', q.pk, 'state', q.state, 'sop_uid', q.sop_uid, "
			"'sop_class_uid', q.sop_class_uid, 'study_uid', q.study_uid, 'series_uid', q.series_uid, "
			"'patient_id', q.patient_id, 'source_ae', q.source_ae, 'transfer_syntax', q.transfer_syntax, "
			"'file_path', q.file_path, 'file_size', q.file_size, 'md5', q.md5, 'received_at', q.received_at, "
			"'reason', q.reason, 'settled_at', q.settled_at, 'actions', (SELECT COALESCE(json_agg("
			"json_build_object('at', a.at, 'operator', a.operator_name, 'action', a.action, "
			"'reason', a.reason, 'outcome', a.outcome) ORDER BY a.pk), '[]') FROM operator_action a "
			"WHERE a.target_kind = 'quarantine' AND a.target_pk = q.pk)) FROM quarantine q "
			"WHERE q.pk = $1::bigint",
			1, p);
	r = dh_db_query(c,
			"SELECT pk, state, sop_uid, sop_class_uid, study_uid, series_uid, patient_id, source_ae, "
			"transfer_syntax, file_path, file_size, md5, "
			"to_char(received_at, 'YYYY-MM-DD HH24:MI:SS TZ'), reason, "
			"COALESCE(to_char(settled_at, 'YYYY-MM-DD HH24:MI:SS TZ'), '') FROM quarantine WHERE pk = $1::bigint",
			1, p, &err);
	if (!r) {
		fprintf(stderr, "hubctl: %s\n", err.msg);
		return 1;
	}
	static const char *const label[] = { "id", "state", "SOP Instance UID", "SOP Class UID", "Study UID",
					     "Series UID", "Patient ID", "from AE", "transfer syntax", "file",
					     "size", "MD5", "received", "why quarantined", "settled" };
	for (int j = 0; j < PQnfields(r) && j < (int)(sizeof(label) / sizeof(label[0])); j++)
		printf("%-17s %s\n", label[j], PQgetvalue(r, 0, j));
	PQclear(r);
	printf("\nOperator actions\n");
	return print_query(c,
			   "SELECT to_char(at, 'YYYY-MM-DD HH24:MI:SS') AS at, operator_name AS operator, action, "
			   "reason, outcome FROM operator_action WHERE target_kind = 'quarantine' AND target_pk = $1::bigint "
			   "ORDER BY pk",
			   1, p, 0, NULL);
}

typedef struct {
	const char *id, *action, *op, *reason, *outcome;
} settle_arg;

/* Marks the open item settled and records who, when, why: in the caller's transaction. */
static int settle(PGconn *c, void *arg, dh_db_err *err)
{
	const settle_arg *s = arg;
	const char *p[5] = { s->id, s->action, s->op, s->reason, s->outcome };
	PGresult *r = dh_db_query(c,
		"WITH q AS (UPDATE quarantine SET state = CASE WHEN $2 = 'release' THEN 'released' ELSE 'discarded' END, "
		"settled_at = now() WHERE pk = $1::bigint AND state = 'quarantined' RETURNING pk, study_uid) "
		"INSERT INTO operator_action (operator_name, action, target_kind, target_pk, study_uid, reason, outcome) "
		"SELECT $3, $2, 'quarantine', pk, study_uid, $4, $5 FROM q RETURNING target_pk",
		5, p, err);
	if (!r)
		return -1;
	int n = PQntuples(r);
	PQclear(r);
	if (n != 1) {
		snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", "");
		snprintf(err->msg, sizeof(err->msg), "quarantine item %s is not open (settled meanwhile?)", s->id);
		return -1;
	}
	return 0;
}

static int cmd_settle(hub *h, PGconn *c, const char *action, const char *id, const char *op, const char *reason)
{
	const char *p[1] = { id };
	char path[1100] = "", src[128] = "", outcome[200];
	dh_db_err err;
	int rc = 1;
	PGresult *r = dh_db_query(c, "SELECT state, file_path, source_ae FROM quarantine WHERE pk = $1::bigint", 1, p,
				  &err);
	if (!r) {
		fprintf(stderr, "hubctl: %s\n", err.msg);
		return 1;
	}
	if (PQntuples(r) == 0 || strcmp(PQgetvalue(r, 0, 0), "quarantined") != 0) {
		fprintf(stderr, "hubctl: quarantine item %s %s\n", id,
			PQntuples(r) ? "is already settled" : "does not exist");
		PQclear(r);
		return 1;
	}
	snprintf(path, sizeof(path), "%s", PQgetvalue(r, 0, 1));
	snprintf(src, sizeof(src), "%s", PQgetvalue(r, 0, 2));
	PQclear(r);

	if (strcmp(action, "release") == 0) {
		unsigned int status = 0;
		char comment[160];
		settle_arg a = { id, "release", op, reason, "indexed as a plain instance (no KOS registration)" };
		int ir = ingest_register_file(h, c, path, src, settle, &a, &status, comment, sizeof(comment), &err);
		if (ir < 0) {
			fprintf(stderr, "hubctl: release of %s failed: %s\n", id, err.msg);
		} else if (ir > 0) {
			fprintf(stderr, "hubctl: the index refused item %s (status %04x%s%s); it stays quarantined\n", id,
				status, comment[0] ? ": " : "", comment);
		} else {
			printf("released quarantine item %s: indexed (status %04x)\n", id, status);
			rc = 0;
		}
		return rc;
	}
	snprintf(outcome, sizeof(outcome), "file %.150s removed", path);
	settle_arg a = { id, "discard", op, reason, outcome };
	if (dh_db_exec(c, "BEGIN", 0, NULL, &err) < 0 || settle(c, &a, &err) < 0 ||
	    dh_db_exec(c, "COMMIT", 0, NULL, &err) < 0) {
		fprintf(stderr, "hubctl: discard of %s failed: %s\n", id, err.msg);
		dh_db_exec(c, "ROLLBACK", 0, NULL, &err);
		return 1;
	}
	/* after the commit: a crash in between leaves a stray file, never a settled item without its record */
	char abs[1300];
	snprintf(abs, sizeof(abs), "%s/%s", h->cfg.cache_dir, path);
	if (unlink(abs) < 0)
		fprintf(stderr, "hubctl: warning: cannot remove %s: %m\n", abs);
	printf("discarded quarantine item %s\n", id);
	return 0;
}

static const char *os_user(void)
{
	const struct passwd *pw = getpwuid(geteuid());
	const char *u = getenv("SUDO_USER");
	if (u && *u)
		return u;
	return pw ? pw->pw_name : "unknown";
}

int hubctl_kos_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' }, { "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, 'j' },         { "all", no_argument, NULL, 'A' },
		{ "reason", required_argument, NULL, 'r' }, { "operator", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 }
	};
	const char *path = NULL, *reason = NULL, *op = NULL;
	int json = 0, all = 0, o, rc = 2;
	hub h;
	char err[512];
	dh_db_err dberr = { "", "" };
	PGconn *c = NULL;

	optind = 1;
	while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (o) {
		case 'c': path = optarg; break;
		case 'h': usage(stdout); return 0;
		case 'j': json = 1; break;
		case 'A': all = 1; break;
		case 'r': reason = optarg; break;
		case 'o': op = optarg; break;
		default: usage(stderr); return 2;
		}
	}
	int n = argc - optind;
	char **a = argv + optind;
	int is_kos = n >= 1 && strcmp(a[0], "kos") == 0;
	if (is_kos ? n != 2
		   : (n < 2 || (strcmp(a[1], "list") == 0 ? n != 2
			       : (strcmp(a[1], "show") == 0 || strcmp(a[1], "release") == 0 ||
				  strcmp(a[1], "discard") == 0) ? n != 3 : 1))) {
		usage(stderr);
		return 2;
	}
	int settling = !is_kos && (strcmp(a[1], "release") == 0 || strcmp(a[1], "discard") == 0);
	if (settling && (!reason || !*reason)) {
		fprintf(stderr, "hubctl: quarantine %s needs --reason TEXT (why, for the record)\n", a[1]);
		return 2;
	}
	if (!is_kos && n == 3 && strspn(a[2], "0123456789") != strlen(a[2])) {
		fprintf(stderr, "hubctl: ID must be a number (see quarantine list)\n");
		return 2;
	}
	memset(&h, 0, sizeof(h));
	if (hub_config_load(&h.cfg, path, err, sizeof(err)) < 0) {
		fprintf(stderr, "hubctl: %s\n", err);
		return 1;
	}
	dh_log_init("hubctl", "stderr", "warn");
	rc = 1;
	if (dh_db_open(&h.db, h.cfg.conninfo, 1) < 0 || !(c = dh_db_get(h.db, &dberr))) {
		fprintf(stderr, "hubctl: %s\n", dberr.msg[0] ? dberr.msg : "out of memory");
		goto done;
	}
	if (is_kos)
		rc = cmd_kos(c, a[1], json);
	else if (strcmp(a[1], "list") == 0)
		rc = cmd_list(c, all, json);
	else if (strcmp(a[1], "show") == 0)
		rc = cmd_show(c, a[2], json);
	else
		rc = cmd_settle(&h, c, a[1], a[2], op && *op ? op : os_user(), reason);
done:
	if (c)
		dh_db_put(h.db, c, 0);
	dh_db_close(h.db);
	hub_config_free(&h.cfg);
	return rc;
}
