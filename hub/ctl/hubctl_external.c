/*
 * hubctl_external.c - hubctl's external archive commands (see
 * hubctl_external.h). They read and change the export queue
 * (external_object, external_txn; sql/hub/009_external.sql); hubd's export
 * worker picks the changes up at its next round.
 */
#include "hubctl_external.h"

#include "db.h"
#include "hubctl_out.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int hubctl_external_is_command(const char *name)
{
	return name && strcmp(name, "external") == 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: hubctl external list\n"
		   "       hubctl external show AE [--state queued|sent|committed|failed]\n"
		   "       hubctl external retry AE\n"
		   "       hubctl external release --study UID\n");
}

static int print_query(PGconn *c, const char *sql, int np, const char *const *p, const int *num, int json)
{
	dh_db_err err;
	PGresult *r = dh_db_query(c, sql, np, p, &err);
	if (!r) {
		fprintf(stderr, "hubctl: %s\n", err.msg);
		return 1;
	}
	hubctl_print_result(r, json, num);
	PQclear(r);
	return 0;
}

static int cmd_list(PGconn *c, const hub_config *cfg, int json)
{
	static const int num[] = { 0, 0, 1, 1, 1, 1, 1, 0, 0 };
	/* configured archives first (even with nothing yet), then any the queue still names */
	char *aes = NULL;
	size_t len = 1;
	for (int i = 0; i < cfg->n_remotes; i++)
		if (cfg->remotes[i].export_objects)
			len += strlen(cfg->remotes[i].ae_title) + 1;
	if (!(aes = calloc(1, len)))
		return 1;
	for (int i = 0; i < cfg->n_remotes; i++) {
		if (!cfg->remotes[i].export_objects)
			continue;
		if (aes[0])
			strcat(aes, "\\");
		strcat(aes, cfg->remotes[i].ae_title);
	}
	const char *p[1] = { aes };
	int rc = print_query(
		c,
		"WITH a(ae) AS (SELECT unnest(string_to_array(NULLIF($1, ''), '\\')) UNION "
		"  SELECT DISTINCT archive_ae FROM external_object) "
		"SELECT a.ae AS archive, "
		"  CASE WHEN a.ae = ANY (string_to_array(NULLIF($1, ''), '\\')) THEN 'yes' ELSE 'no' END AS configured, "
		"  count(e.pk) FILTER (WHERE e.state = 'queued') AS queued, "
		"  count(e.pk) FILTER (WHERE e.state = 'sent') AS awaiting_commit, "
		"  count(e.pk) FILTER (WHERE e.state = 'committed') AS committed, "
		"  count(e.pk) FILTER (WHERE e.state = 'failed') AS failed, "
		"  count(e.pk) FILTER (WHERE e.released_at IS NOT NULL) AS released, "
		"  to_char(min(e.queued_at) FILTER (WHERE e.state = 'queued'), 'YYYY-MM-DD HH24:MI:SS') AS oldest_queued, "
		"  (array_agg(e.last_error ORDER BY e.pk DESC) FILTER (WHERE e.last_error <> '' AND e.state <> 'committed'))[1] "
		"    AS last_error "
		"FROM a LEFT JOIN external_object e ON e.archive_ae = a.ae GROUP BY a.ae ORDER BY a.ae",
		1, p, num, json);
	free(aes);
	return rc;
}

static int cmd_show(PGconn *c, const char *ae, const char *state, int json)
{
	static const int num_o[] = { 0, 0, 0, 0, 1, 1, 0, 0 };
	static const int num_t[] = { 0, 0, 1, 1, 1, 0, 0, 0 };
	const char *p[2] = { ae, state };
	if (state && strcmp(state, "queued") && strcmp(state, "sent") && strcmp(state, "committed") &&
	    strcmp(state, "failed")) {
		fprintf(stderr, "hubctl: --state must be queued, sent, committed or failed\n");
		return 2;
	}
	if (!json)
		printf("objects:\n");
	else
		printf("{\"objects\": ");
	fflush(stdout);
	int rc = print_query(c,
			     "SELECT e.sop_uid, e.state, COALESCE(e.transaction_uid, '') AS transaction_uid, "
			     "  CASE WHEN e.released_at IS NOT NULL THEN 'released' WHEN i.pk IS NULL THEN 'deleted' "
			     "       ELSE 'held' END AS local_copy, "
			     "  e.failure_reason, e.attempts, "
			     "  to_char(e.next_attempt_at, 'YYYY-MM-DD HH24:MI:SS') AS next_attempt, e.last_error "
			     "FROM external_object e LEFT JOIN instance i ON i.pk = e.instance_fk "
			     "WHERE e.archive_ae = $1 AND ($2::text IS NULL OR e.state = $2) ORDER BY e.pk",
			     2, p, num_o, json);
	if (rc)
		return rc;
	if (!json)
		printf("\nstorage commitment transactions:\n");
	else
		printf(", \"transactions\": ");
	fflush(stdout);
	rc = print_query(c,
			 "SELECT transaction_uid, state, n_objects, n_committed, n_failed, "
			 "  to_char(requested_at, 'YYYY-MM-DD HH24:MI:SS') AS requested, "
			 "  COALESCE(to_char(reported_at, 'YYYY-MM-DD HH24:MI:SS'), '') AS reported, "
			 "  COALESCE(event_type::text, '') AS event_type "
			 "FROM external_txn WHERE archive_ae = $1 ORDER BY requested_at, transaction_uid",
			 1, p, num_t, json);
	if (json)
		printf("}\n");
	return rc;
}

static const char *operator_name(void)
{
	const struct passwd *pw = getpwuid(getuid());
	return pw ? pw->pw_name : "unknown";
}

static int cmd_retry(PGconn *c, const char *ae)
{
	dh_db_err err;
	const char *p[1] = { ae };
	PGresult *r = dh_db_query(c,
				  "UPDATE external_object SET state = 'queued', attempts = 0, next_attempt_at = now(), "
				  "transaction_uid = NULL, failure_reason = NULL "
				  "WHERE archive_ae = $1 AND state = 'failed' AND instance_fk IS NOT NULL",
				  1, p, &err);
	if (!r) {
		fprintf(stderr, "hubctl: %s\n", err.msg);
		return 1;
	}
	printf("%s failed object(s) of %s queued again\n", PQcmdTuples(r), ae);
	PQclear(r);
	return 0;
}

/*
 * Removes the cache copies in one transaction (index first, files after the
 * commit: a crash in between leaves a stray file, never an index row that
 * points at nothing). A file another instance still names stays.
 */
static int cmd_release(PGconn *c, const hub_config *cfg, const char *study)
{
	dh_db_err err;
	PGresult *r = NULL;
	int rc = 1;
	/* only archives still configured with export = true: C-MOVE can forward to no other */
	char aes[4096] = "";
	for (int i = 0; i < cfg->n_remotes; i++) {
		if (!cfg->remotes[i].export_objects)
			continue;
		if (aes[0] && strlen(aes) + 1 < sizeof(aes))
			strcat(aes, "\\");
		if (strlen(aes) + strlen(cfg->remotes[i].ae_title) < sizeof(aes))
			strcat(aes, cfg->remotes[i].ae_title);
	}
	if (!aes[0]) {
		fprintf(stderr, "hubctl: no [remote.*] section has export = true: nothing can hold the objects\n");
		return 1;
	}
	const char *p[3] = { study, operator_name(), aes };
	if (dh_db_exec(c, "BEGIN", 0, NULL, &err) < 0)
		goto fail;
	r = dh_db_query(
		c,
		"WITH cand AS (SELECT i.pk, i.file_path FROM instance i JOIN series se ON se.pk = i.series_fk "
		"  JOIN study st ON st.pk = se.study_fk "
		"  WHERE st.study_uid = $1 AND i.file_path IS NOT NULL AND i.tar_fk IS NULL "
		"  AND EXISTS (SELECT 1 FROM external_object e WHERE e.instance_fk = i.pk AND e.state = 'committed' "
		"    AND e.archive_ae = ANY (string_to_array($3, '\\'))) "
		"  FOR UPDATE OF i), "
		"upd AS (UPDATE instance i SET file_path = NULL FROM cand WHERE i.pk = cand.pk "
		"  RETURNING i.pk, cand.file_path), "
		"ext AS (UPDATE external_object e SET released_at = now() FROM upd "
		"  WHERE e.instance_fk = upd.pk AND e.state = 'committed' RETURNING e.pk), "
		"op AS (INSERT INTO operator_action (operator_name, action, target_kind, target_pk, study_uid, reason, outcome) "
		"  SELECT $2, 'release', 'instance', upd.pk, $1, 'local copy released: held by an external archive', "
		"  'cache file removed' FROM upd RETURNING 1) "
		"SELECT upd.file_path, (SELECT count(*) FROM ext), (SELECT count(*) FROM op) FROM upd",
		3, p, &err);
	if (!r)
		goto fail;
	if (dh_db_exec(c, "COMMIT", 0, NULL, &err) < 0)
		goto fail;
	int n = PQntuples(r), removed = 0;
	for (int i = 0; i < n; i++) {
		const char *rel = PQgetvalue(r, i, 0);
		const char *q[1] = { rel };
		PGresult *s = dh_db_query(c, "SELECT 1 FROM instance WHERE file_path = $1 UNION ALL "
					     "SELECT 1 FROM quarantine WHERE file_path = $1 LIMIT 1", 1, q, &err);
		if (s && PQntuples(s) == 0) {
			char path[2048];
			snprintf(path, sizeof(path), "%s/%s", cfg->cache_dir, rel);
			if (unlink(path) == 0)
				removed++;
			else
				perror(path);
		}
		PQclear(s);
	}
	printf("%d object(s) of study %s released (%d cache file(s) removed); C-MOVE forwards them to the "
	       "archive that holds them\n", n, study, removed);
	rc = 0;
	goto done;
fail:
	fprintf(stderr, "hubctl: %s\n", err.msg);
	dh_db_exec(c, "ROLLBACK", 0, NULL, &err);
done:
	PQclear(r);
	return rc;
}

int hubctl_external_main(const hub_config *cfg, int argc, char **argv, const char *state, const char *study,
			 int json)
{
	dh_db *db = NULL;
	dh_db_err err = { "", "" };
	PGconn *c = NULL;
	int rc = 2;
	const char *sub = argc >= 2 ? argv[1] : NULL;
	if (!sub || (strcmp(sub, "list") == 0 && argc != 2) ||
	    ((strcmp(sub, "show") == 0 || strcmp(sub, "retry") == 0) && argc != 3) ||
	    (strcmp(sub, "release") == 0 && (argc != 2 || !study)) ||
	    (strcmp(sub, "list") && strcmp(sub, "show") && strcmp(sub, "retry") && strcmp(sub, "release"))) {
		usage(stderr);
		return 2;
	}
	if (dh_db_open(&db, cfg->conninfo, 1) < 0 || !(c = dh_db_get(db, &err))) {
		fprintf(stderr, "hubctl: %s\n", err.msg[0] ? err.msg : "out of memory");
		rc = 1;
		goto done;
	}
	if (strcmp(sub, "list") == 0)
		rc = cmd_list(c, cfg, json);
	else if (strcmp(sub, "show") == 0)
		rc = cmd_show(c, argv[2], state, json);
	else if (strcmp(sub, "retry") == 0)
		rc = cmd_retry(c, argv[2]);
	else
		rc = cmd_release(c, cfg, study);
done:
	dh_db_put(db, c, 0);
	dh_db_close(db);
	return rc;
}
