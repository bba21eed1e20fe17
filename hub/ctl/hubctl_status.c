/*
 * hubctl_status.c - `hubctl status` (see hubctl_status.h).
 *
 * Read-only: a handful of queries in one REPEATABLE READ transaction, so
 * the figures are one consistent picture. The open-item counts use the
 * partial indexes of sql/hub/006_ops.sql and stay cheap however long
 * cc_log grows.
 */
#include "hubctl_status.h"

#include "db.h"
#include "hubctl_archive.h"
#include "hubctl_out.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
	fprintf(f, "usage: hubctl [-c FILE] status [--json]\n"
		   "\n"
		   "Per spoke: connected (a frame within %d s), last sequence received and applied,\n"
		   "lag (open cc: count, age of the oldest), parked/conflict/failed counts; service\n"
		   "backlogs (archive, quarantine, storage commitment reports, exports to external\n"
		   "archives, MPPS forwards); what needs attention.\n"
		   "Exit status: 0 nothing needs attention; 3 operator items open (conflict or failed\n"
		   "cc, quarantined objects, refused exports, MPPS forwards waiting > 10 min);\n"
		   "4 none, but a configured spoke is not connected;\n"
		   "1 error; 2 bad usage.\n",
		   HUBCTL_CONNECTED_SECONDS);
}

/* The configured spoke ids as a PostgreSQL array literal (malloc'd, NULL: no memory). */
static char *spoke_ids(const hub_config *cfg)
{
	size_t cap = 3;
	for (int i = 0; i < cfg->n_spokes; i++)
		cap += 2 * strlen(cfg->spokes[i].id) + 4;
	char *s = malloc(cap), *p = s;
	if (!s)
		return NULL;
	*p++ = '{';
	for (int i = 0; i < cfg->n_spokes; i++) {
		if (i)
			*p++ = ',';
		*p++ = '"';
		for (const char *q = cfg->spokes[i].id; *q; q++) {
			if (*q == '"' || *q == '\\')
				*p++ = '\\';
			*p++ = *q;
		}
		*p++ = '"';
	}
	*p++ = '}';
	*p = '\0';
	return s;
}

/*
 * Service backlogs, one line each: items waiting, the age of the oldest in
 * seconds, and whether they need an operator. Each probe is one query
 * returning (items bigint, oldest_s bigint, attention boolean), or the
 * archive's own summary (hubctl_archive_backlog_summary).
 * Another service's backlog is one more entry { "name", "SQL", "what the
 * items are" }.
 */
typedef struct {
	const char *name;
	const char *sql; /* NULL: the archive backlog */
	const char *unit;
} probe;

static const probe probes[] = {
	{ "archive", NULL, "objects not yet in a TAR" },
	{ "quarantine",
	  "SELECT count(*), COALESCE(extract(epoch FROM now() - min(received_at))::bigint, 0), count(*) > 0 "
	  "FROM quarantine WHERE state = 'quarantined'",
	  "objects held back for an operator" },
	{ "stgcmt",
	  "SELECT count(*), COALESCE(extract(epoch FROM now() - min(received_at))::bigint, 0), false "
	  "FROM stgcmt_txn WHERE state = 'pending'",
	  "storage commitment reports not yet delivered" },
	{ "export",
	  "SELECT count(*), COALESCE(extract(epoch FROM now() - min(queued_at))::bigint, 0), false "
	  "FROM external_object WHERE state IN ('queued', 'sent')",
	  "objects queued for or awaiting commitment by an external archive" },
	{ "export-fail",
	  "SELECT count(*), COALESCE(extract(epoch FROM now() - min(queued_at))::bigint, 0), count(*) > 0 "
	  "FROM external_object WHERE state = 'failed'",
	  "objects an external archive refused (hubctl external show AE --state failed)" },
	{ "mpps", "SELECT items, oldest_s, attention FROM mpps_forward_status()",
	  "MPPS messages not yet forwarded (hubctl mpps backlog)" },
};

typedef struct {
	long long items, oldest_s;
	int attention;
} probe_out;

static int run_probes(const hub_config *cfg, PGconn *c, probe_out *out, char *err, size_t errlen)
{
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		memset(&out[i], 0, sizeof(out[i]));
		if (!probes[i].sql) {
			hubctl_backlog b;
			if (hubctl_archive_backlog_summary(cfg, c, &b, err, errlen) < 0)
				return -1;
			out[i].items = b.objects;
			out[i].oldest_s = b.oldest_age_s;
			continue;
		}
		dh_db_err e;
		PGresult *r = dh_db_query(c, probes[i].sql, 0, NULL, &e);
		if (!r) {
			snprintf(err, errlen, "%s: %.400s", probes[i].name, e.msg);
			return -1;
		}
		out[i].items = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		out[i].oldest_s = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
		out[i].attention = PQgetvalue(r, 0, 2)[0] == 't';
		PQclear(r);
	}
	return 0;
}

/* columns of the spoke query, in order */
enum { C_SPOKE, C_CONFIGURED, C_CONNECTED, C_LAST_SEEN, C_RECEIVED, C_APPLIED, C_LAG, C_LAG_AGE, C_PARKED,
       C_CONFLICT, C_FAILED, C_NCOLS };

static PGresult *spokes(const hub_config *cfg, PGconn *c, char *err, size_t errlen)
{
	char secs[16], *ids = spoke_ids(cfg);
	dh_db_err e;
	if (!ids) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(secs, sizeof(secs), "%d", HUBCTL_CONNECTED_SECONDS);
	const char *p[2] = { ids, secs };
	PGresult *r = dh_db_query(
		c,
		"WITH ids AS (SELECT unnest($1::text[]) AS spoke_id UNION SELECT spoke_id FROM cc_stream), "
		"open AS (SELECT spoke_id, count(*) AS n, min(received_at) AS oldest, "
		"  count(*) FILTER (WHERE state = 'parked') AS parked, "
		"  count(*) FILTER (WHERE state = 'conflict') AS conflict, "
		"  count(*) FILTER (WHERE state = 'failed') AS failed "
		"  FROM cc_log WHERE state IN ('parked', 'conflict', 'failed') GROUP BY spoke_id) "
		"SELECT i.spoke_id AS spoke, CASE WHEN i.spoke_id = ANY($1::text[]) THEN 'yes' ELSE 'no' END AS configured, "
		"CASE WHEN s.last_seen_at >= now() - make_interval(secs => $2::double precision) THEN 'yes' "
		"     ELSE 'no' END AS connected, "
		"COALESCE(to_char(s.last_seen_at, 'YYYY-MM-DD HH24:MI:SS'), 'never') AS last_seen, "
		"COALESCE(s.received_through, 0) AS received, "
		"COALESCE((SELECT max(sequence) FROM cc_log l WHERE l.spoke_id = i.spoke_id AND l.state = 'applied'), 0) "
		"  AS applied, "
		"COALESCE(o.n, 0) AS lag, COALESCE(extract(epoch FROM now() - o.oldest)::bigint, 0) AS lag_age_s, "
		"COALESCE(o.parked, 0) AS parked, COALESCE(o.conflict, 0) AS conflict, COALESCE(o.failed, 0) AS failed "
		"FROM ids i LEFT JOIN cc_stream s ON s.spoke_id = i.spoke_id LEFT JOIN open o ON o.spoke_id = i.spoke_id "
		"ORDER BY i.spoke_id",
		2, p, &e);
	if (!r)
		snprintf(err, errlen, "%s", e.msg);
	free(ids);
	return r;
}

/* Human age: 42s, 7m, 3h, 2d. */
static void age(char *buf, size_t len, long long s)
{
	if (s < 120)
		snprintf(buf, len, "%llds", s);
	else if (s < 7200)
		snprintf(buf, len, "%lldm", s / 60);
	else if (s < 172800)
		snprintf(buf, len, "%lldh", s / 3600);
	else
		snprintf(buf, len, "%lldd", s / 86400);
}

int hubctl_status_main(const hub_config *cfg, int argc, char **argv, int json)
{
	static const int num[C_NCOLS] = { 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1 };
	enum { NPROBES = sizeof(probes) / sizeof(probes[0]) };
	probe_out po[NPROBES];
	char err[512] = "", a[32];
	dh_db *db = NULL;
	dh_db_err e = { "", "" };
	PGconn *c = NULL;
	PGresult *r = NULL;
	int rc = 1, in_txn = 0;
	long long conflict = 0, failed = 0;
	int disconnected = 0;

	(void)argv;
	if (argc >= 2 && strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (argc != 1) {
		usage(stderr);
		return 2;
	}
	if (dh_db_open(&db, cfg->conninfo, 1) < 0 || !(c = dh_db_get(db, &e))) {
		fprintf(stderr, "hubctl: %s\n", e.msg[0] ? e.msg : "out of memory");
		goto done;
	}
	if (dh_db_exec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL, &e) < 0) {
		snprintf(err, sizeof(err), "%s", e.msg);
		goto done;
	}
	in_txn = 1;
	if (!(r = spokes(cfg, c, err, sizeof(err))) || run_probes(cfg, c, po, err, sizeof(err)) < 0)
		goto done;
	for (int i = 0; i < PQntuples(r); i++) {
		conflict += strtoll(PQgetvalue(r, i, C_CONFLICT), NULL, 10);
		failed += strtoll(PQgetvalue(r, i, C_FAILED), NULL, 10);
		if (strcmp(PQgetvalue(r, i, C_CONFIGURED), "yes") == 0 && strcmp(PQgetvalue(r, i, C_CONNECTED), "no") == 0)
			disconnected++;
	}
	int items = conflict || failed;
	for (int i = 0; i < NPROBES; i++)
		items |= po[i].attention;
	rc = items ? HUBCTL_STATUS_ITEMS : disconnected ? HUBCTL_STATUS_DISCONNECTED : 0;

	if (json) {
		printf("{\"spokes\": ");
		hubctl_print_result(r, 1, num);
		printf(", \"services\": [");
		for (int i = 0; i < NPROBES; i++) {
			printf("%s\n {\"service\": \"%s\", \"items\": %lld, \"oldest_s\": %lld, \"attention\": %s}",
			       i ? "," : "", probes[i].name, po[i].items, po[i].oldest_s,
			       po[i].attention ? "true" : "false");
		}
		printf("\n], \"attention\": [");
		int n = 0;
		for (int i = 0; i < PQntuples(r); i++) {
			long long cf = strtoll(PQgetvalue(r, i, C_CONFLICT), NULL, 10);
			long long fl = strtoll(PQgetvalue(r, i, C_FAILED), NULL, 10);
			if (cf || fl) {
				printf("%s{\"spoke\": ", n++ ? ", " : "");
				hubctl_json_str(stdout, PQgetvalue(r, i, C_SPOKE));
				printf(", \"conflict\": %lld, \"failed\": %lld}", cf, fl);
			}
			if (strcmp(PQgetvalue(r, i, C_CONFIGURED), "yes") == 0 &&
			    strcmp(PQgetvalue(r, i, C_CONNECTED), "no") == 0) {
				printf("%s{\"spoke\": ", n++ ? ", " : "");
				hubctl_json_str(stdout, PQgetvalue(r, i, C_SPOKE));
				printf(", \"not_connected\": true, \"last_seen\": ");
				hubctl_json_str(stdout, PQgetvalue(r, i, C_LAST_SEEN));
				printf("}");
			}
		}
		for (int i = 0; i < NPROBES; i++)
			if (po[i].attention)
				printf("%s{\"service\": \"%s\", \"items\": %lld}", n++ ? ", " : "", probes[i].name,
				       po[i].items);
		printf("], \"exit\": %d}\n", rc);
	} else {
		hubctl_print_result(r, 0, NULL);
		printf("\n%-12s %10s %8s  %s\n", "service", "items", "oldest", "");
		for (int i = 0; i < NPROBES; i++) {
			age(a, sizeof(a), po[i].oldest_s);
			printf("%-12s %10lld %8s  %s\n", probes[i].name, po[i].items, po[i].items ? a : "-",
			       probes[i].unit);
		}
		printf("\n");
		if (!rc)
			printf("ok: nothing needs attention\n");
		if (conflict || failed)
			printf("attention: %lld conflict and %lld failed change context(s): hubctl queue list\n", conflict,
			       failed);
		for (int i = 0; i < NPROBES; i++)
			if (po[i].attention)
				printf("attention: %lld %s (%s)\n", po[i].items, probes[i].unit, probes[i].name);
		for (int i = 0; i < PQntuples(r); i++)
			if (strcmp(PQgetvalue(r, i, C_CONFIGURED), "yes") == 0 &&
			    strcmp(PQgetvalue(r, i, C_CONNECTED), "no") == 0)
				printf("attention: spoke %s not connected (last frame: %s)\n", PQgetvalue(r, i, C_SPOKE),
				       PQgetvalue(r, i, C_LAST_SEEN));
	}
done:
	if (err[0]) {
		fprintf(stderr, "hubctl: status: %s\n", err);
		rc = 1;
	}
	if (in_txn)
		dh_db_exec(c, "COMMIT", 0, NULL, &e);
	PQclear(r);
	if (c)
		dh_db_put(db, c, 0);
	dh_db_close(db);
	return rc;
}
