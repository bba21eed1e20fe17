/*
 * hubctl_history.c - `hubctl history` (see hubctl_history.h).
 *
 * Two steps in one REPEATABLE READ transaction: the related study UIDs
 * (a closure grown in C, one query per step, so its size and depth stay
 * bounded whatever the mappings look like), then one UNION ALL over every
 * table that remembers something about those studies, ordered by time.
 * cc_log is searched by its studies array; there is no index over every
 * row's studies (a GIN insert per cc would cost the receiver more than an
 * occasional operator query costs here), so history scans cc_log.
 */
#include "hubctl_history.h"

#include "db.h"
#include "hubctl_out.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
	fprintf(f, "usage: hubctl [-c FILE] history STUDY_UID [--json]\n"
		   "\n"
		   "The study's story on the hub in time order: objects received (AE, MD5) and\n"
		   "deleted, change contexts, UID reassignments, archive TARs, recalls (C-MOVE),\n"
		   "operator actions, quarantined objects. An old UID (before a fix-up, merge or\n"
		   "split) works too: the story covers every study UID related to it.\n"
		   "Exit status: 0 printed; 1 nothing known of the UID, or an error; 2 bad usage.\n");
}

/*
 * One step of the closure: $1 and every study UID one link away: a
 * study-level UID mapping, an object received under one and now in the
 * other, or an applied split, merge, segment or fix-up naming both.
 */
static const char *const neighbours_sql =
	"SELECT u FROM unnest($1::text[]) AS u "
	"UNION SELECT new_uid FROM uid_mapping WHERE kind = 'study' AND old_uid = ANY($1::text[]) "
	"UNION SELECT old_uid FROM uid_mapping WHERE kind = 'study' AND new_uid = ANY($1::text[]) "
	"UNION SELECT DISTINCT st.study_uid FROM instance i JOIN series se ON se.pk = i.series_fk "
	"  JOIN study st ON st.pk = se.study_fk WHERE i.received_study_uid = ANY($1::text[]) "
	"UNION SELECT DISTINCT i.received_study_uid FROM study st JOIN series se ON se.study_fk = st.pk "
	"  JOIN instance i ON i.series_fk = se.pk WHERE st.study_uid = ANY($1::text[]) "
	/* studies that exchanged objects by an applied cc, even when none is left in one of them */
	"UNION SELECT unnest(studies) FROM cc_log WHERE studies && $1::text[] AND state = 'applied' "
	"  AND kind IN ('SPLIT', 'MERGE', 'SEGMENT', 'UID_FIXUP') "
	"ORDER BY 1 LIMIT 1000";

/* Every event; $1 the related study UIDs. Columns: at, event, study, object, detail. */
static const char *const events_sql =
	"WITH s(u) AS (SELECT unnest($1::text[])), e(at, ord, event, study, object, detail) AS ("
	/* objects in the index now */
	"SELECT i.received_at, 1, 'received', st.study_uid, i.sop_uid, "
	"  'from ' || COALESCE(NULLIF(i.source_ae, ''), '?') || ', MD5 ' || i.md5 "
	"  || CASE WHEN i.received_study_uid <> st.study_uid THEN ', received in study ' || i.received_study_uid "
	"     ELSE '' END "
	"  || CASE WHEN i.received_sop_uid <> i.sop_uid THEN ', received as ' || i.received_sop_uid ELSE '' END "
	"FROM instance i JOIN series se ON se.pk = i.series_fk JOIN study st ON st.pk = se.study_fk "
	"WHERE st.study_uid IN (SELECT u FROM s) OR i.received_study_uid IN (SELECT u FROM s) "
	/* objects deleted since */
	"UNION ALL SELECT d.received_at, 1, 'received', d.study_uid, d.sop_uid, "
	"  'from ' || COALESCE(NULLIF(d.source_ae, ''), '?') || ', MD5 ' || d.md5 || ' (deleted since)' "
	"FROM deleted_instance d WHERE d.study_uid IN (SELECT u FROM s) "
	"UNION ALL SELECT d.deleted_at, 2, 'deleted', d.study_uid, d.sop_uid, "
	"  COALESCE('by cc ' || c.kind || ' ' || c.spoke_id || ':' || c.sequence, 'by an operator') "
	"  || CASE WHEN d.reason <> '' THEN ': ' || d.reason ELSE '' END "
	"FROM deleted_instance d LEFT JOIN cc_log c ON c.pk = d.cc_fk WHERE d.study_uid IN (SELECT u FROM s) "
	/* change contexts naming one of the studies, in whatever state */
	"UNION ALL SELECT COALESCE(c.applied_at, c.settled_at, c.received_at), 3, 'cc ' || c.state, "
	"  array_to_string(c.studies, ' '), c.kind || ' ' || c.spoke_id || ':' || c.sequence, "
	"  'id ' || c.pk || ', captured ' || to_char(c.created_at, 'YYYY-MM-DD HH24:MI:SS') "
	"  || CASE WHEN c.operator_name <> '' THEN ' by ' || c.operator_name ELSE '' END "
	"  || CASE WHEN c.reason <> '' THEN ' (' || c.reason || ')' ELSE '' END "
	"  || CASE WHEN c.state_reason <> '' THEN '; ' || c.state_reason ELSE '' END "
	"FROM cc_log c WHERE c.studies && $1::text[] "
	/* UID reassignments: kb-8993 duplicates and cc mappings */
	"UNION ALL SELECT m.created_at, 4, 'uid ' || m.kind, m.study_uid, m.old_uid || ' -> ' || m.new_uid, "
	"  m.reason || CASE WHEN m.source_ae <> '' THEN ' (from ' || m.source_ae || ')' ELSE '' END "
	"FROM uid_mapping m WHERE m.study_uid IN (SELECT u FROM s) "
	"  OR (m.kind = 'study' AND (m.old_uid IN (SELECT u FROM s) OR m.new_uid IN (SELECT u FROM s))) "
	/* archive: TARs of the studies' series, current and deleted */
	"UNION ALL SELECT t.created_at, 5, 'archived', COALESCE(st.study_uid, ''), t.series_uid, "
	"  'volume ' || v.name || ', ' || t.path || ', ' || t.members || ' object(s), ' "
	"  || COALESCE('XXH3-128 ' || NULLIF(t.digest, ''), 'MD5 ' || t.md5, '') " /* hub 013: digest, older: MD5 */
	"FROM tar_file t JOIN volume v ON v.pk = t.volume_fk LEFT JOIN series se ON se.pk = t.series_fk "
	"  LEFT JOIN study st ON st.pk = se.study_fk "
	"WHERE st.study_uid IN (SELECT u FROM s) OR (t.series_fk IS NULL AND t.series_uid IN "
	"  (SELECT series_uid FROM deleted_instance WHERE study_uid IN (SELECT u FROM s))) "
	/* recalls */
	"UNION ALL SELECT ml.at, 6, 'recall', array_to_string(ml.study_uids, ' '), ml.destination_ae, "
	"  'C-MOVE from ' || ml.calling_ae || ' to ' || ml.destination_ae "
	"  || CASE WHEN ml.level <> '' THEN ' (' || ml.level || ')' ELSE '' END || ': ' || ml.completed "
	"  || ' completed, ' || ml.failed || ' failed, ' || ml.warning || ' warning of ' || ml.matched "
	"  || ', status ' || lpad(upper(to_hex(ml.status)), 4, '0') "
	"FROM move_log ml WHERE ml.study_uids && $1::text[] "
	/* operator actions on the studies, their cc and their quarantined objects */
	"UNION ALL SELECT a.at, 7, 'operator ' || a.action, a.study_uid, a.target_kind || ' ' || a.target_pk, "
	"  'by ' || a.operator_name || ': ' || a.reason || CASE WHEN a.outcome <> '' THEN ' -> ' || a.outcome "
	"  ELSE '' END "
	"FROM operator_action a WHERE a.study_uid IN (SELECT u FROM s) "
	"  OR (a.target_kind = 'cc' AND a.target_pk IN (SELECT pk FROM cc_log WHERE studies && $1::text[])) "
	"  OR (a.target_kind = 'quarantine' AND a.target_pk IN "
	"      (SELECT pk FROM quarantine WHERE study_uid IN (SELECT u FROM s))) "
	/* objects kept but not shown */
	"UNION ALL SELECT q.received_at, 8, 'quarantined', q.study_uid, q.sop_uid, "
	"  'from ' || COALESCE(NULLIF(q.source_ae, ''), '?') || ', MD5 ' || q.md5 || ': ' || q.reason "
	"  || ' (' || q.state || ')' "
	"FROM quarantine q WHERE q.study_uid IN (SELECT u FROM s)) "
	"SELECT to_char(at, 'YYYY-MM-DD HH24:MI:SS.MS') AS at, event, study, object, detail FROM e "
	"ORDER BY e.at, e.ord, e.object";

/* The related study UIDs: uids[0] the one asked for. */
typedef struct {
	char *uids[HUBCTL_HISTORY_MAX_STUDIES];
	int n;
	char *lit; /* as a PostgreSQL array literal */
} uid_set;

static void set_clear(uid_set *u)
{
	for (int i = 0; i < u->n; i++)
		free(u->uids[i]);
	free(u->lit);
	memset(u, 0, sizeof(*u));
}

/* Rebuilds u->lit from u->uids. Returns 0 or -1 (no memory). */
static int set_lit(uid_set *u)
{
	size_t cap = 3;
	for (int i = 0; i < u->n; i++)
		cap += 2 * strlen(u->uids[i]) + 3;
	char *s = malloc(cap), *p = s;
	if (!s)
		return -1;
	*p++ = '{';
	for (int i = 0; i < u->n; i++) {
		if (i)
			*p++ = ',';
		*p++ = '"';
		for (const char *q = u->uids[i]; *q; q++) {
			if (*q == '"' || *q == '\\')
				*p++ = '\\';
			*p++ = *q;
		}
		*p++ = '"';
	}
	*p++ = '}';
	*p = '\0';
	free(u->lit);
	u->lit = s;
	return 0;
}

/*
 * Grows u = {uid} to the study UIDs related to it, a step at a time until
 * nothing new comes (at most 8 steps, HUBCTL_HISTORY_MAX_STUDIES UIDs).
 * Returns 0 or -1 with err.
 */
static int related(PGconn *c, const char *uid, uid_set *u, char *err, size_t errlen)
{
	if (!(u->uids[0] = strdup(uid)) || (u->n = 1, set_lit(u) < 0))
		goto oom;
	for (int step = 0; step < 8; step++) {
		dh_db_err e;
		const char *p[1] = { u->lit };
		PGresult *r = dh_db_query(c, neighbours_sql, 1, p, &e);
		if (!r) {
			snprintf(err, errlen, "%s", e.msg);
			return -1;
		}
		int before = u->n;
		for (int i = 0; i < PQntuples(r) && u->n < HUBCTL_HISTORY_MAX_STUDIES; i++) {
			const char *v = PQgetvalue(r, i, 0);
			int known = 0;
			for (int j = 0; j < u->n && !known; j++)
				known = strcmp(u->uids[j], v) == 0;
			if (!known && !(u->uids[u->n++] = strdup(v))) {
				u->n--;
				PQclear(r);
				goto oom;
			}
		}
		PQclear(r);
		if (u->n == before)
			break;
		if (set_lit(u) < 0)
			goto oom;
	}
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
	return -1;
}

int hubctl_history_main(const hub_config *cfg, int argc, char **argv, int json)
{
	char err[512] = "";
	uid_set u;
	dh_db *db = NULL;
	dh_db_err e = { "", "" };
	PGconn *c = NULL;
	PGresult *r = NULL;
	int rc = 1, in_txn = 0;

	if (argc >= 2 && strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (argc != 2 || !argv[1][0] || strlen(argv[1]) > 64 || strspn(argv[1], "0123456789.") != strlen(argv[1])) {
		if (argc == 2)
			fprintf(stderr, "hubctl: history: '%s' is not a UID (digits and dots, at most 64)\n", argv[1]);
		usage(stderr);
		return 2;
	}
	memset(&u, 0, sizeof(u));
	if (dh_db_open(&db, cfg->conninfo, 1) < 0 || !(c = dh_db_get(db, &e))) {
		fprintf(stderr, "hubctl: %s\n", e.msg[0] ? e.msg : "out of memory");
		goto done;
	}
	if (dh_db_exec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL, &e) < 0) {
		snprintf(err, sizeof(err), "%s", e.msg);
		goto done;
	}
	in_txn = 1;
	if (related(c, argv[1], &u, err, sizeof(err)) < 0)
		goto done;
	const char *p[1] = { u.lit };
	if (!(r = dh_db_query(c, events_sql, 1, p, &e))) {
		snprintf(err, sizeof(err), "%s", e.msg);
		goto done;
	}
	if (PQntuples(r) == 0) {
		fprintf(stderr, "hubctl: history: nothing is known of study %s\n", argv[1]);
		goto done;
	}
	if (json) {
		printf("{\"uid\": ");
		hubctl_json_str(stdout, argv[1]);
		printf(", \"studies\": [");
		for (int i = 0; i < u.n; i++) {
			printf(i ? ", " : "");
			hubctl_json_str(stdout, u.uids[i]);
		}
		printf("], \"events\": ");
		hubctl_print_result(r, 1, NULL);
		printf("}\n");
	} else {
		printf("history of study %s", argv[1]);
		for (int i = 1; i < u.n; i++)
			printf("%s%s", i == 1 ? " (and the related study UIDs " : ", ", u.uids[i]);
		printf("%s", u.n > 1 ? ")" : "");
		printf("\n\n");
		hubctl_print_result(r, 0, NULL);
	}
	rc = 0;
done:
	if (err[0])
		fprintf(stderr, "hubctl: history: %s\n", err);
	if (in_txn)
		dh_db_exec(c, "COMMIT", 0, NULL, &e);
	PQclear(r);
	if (c)
		dh_db_put(db, c, 0);
	dh_db_close(db);
	set_clear(&u);
	return rc;
}
