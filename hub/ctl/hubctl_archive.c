/*
 * hubctl_archive.c - hubctl's archive commands (see hubctl_archive.h):
 * tables for people, one JSON document with --json for scripts.
 *
 * verify reads every TAR of a volume three ways, because each catches what
 * the others cannot: the whole file against the MD5 recorded when it was
 * written, every member through libarchive against the TAR's own manifest,
 * and every indexed object at its recorded offset against the index's MD5
 * (that is how hubd reads it). Problems are listed, summarised, and make
 * the exit status 1.
 */
#include "nearline.h"

#include <archive.h>

#include "hash.h"
#include "hubctl_archive.h"
#include "hubctl_out.h"
#include "log.h"

#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const commands[] = { "volumes", "volume", "backlog", "tars", "verify", "cat", NULL };

int hubctl_archive_is_command(const char *name)
{
	for (int i = 0; name && commands[i]; i++)
		if (strcmp(name, commands[i]) == 0)
			return 1;
	return 0;
}

static int query_print(PGconn *c, const char *sql, int n, const char *const *p, int json, const int *numeric)
{
	dh_db_err err;
	PGresult *r = dh_db_query(c, sql, n, p, &err);
	if (!r) {
		fprintf(stderr, "hubctl: %s\n", err.msg);
		return 1;
	}
	hubctl_print_result(r, json, numeric);
	PQclear(r);
	return 0;
}

/* Makes sure every configured volume has its row (hubd may not have run yet). */
static int register_volumes(const hub_config *cfg, PGconn *c)
{
	dh_db_err err;
	for (int i = 0; i < cfg->n_volumes; i++) {
		const char *p[2] = { cfg->volumes[i].name, cfg->volumes[i].path };
		if (dh_db_exec(c, "INSERT INTO volume (name, path) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", 2, p,
			       &err) < 0) {
			fprintf(stderr, "hubctl: %s\n", err.msg);
			return -1;
		}
	}
	return 0;
}

static int cmd_volumes(const hub_config *cfg, PGconn *c, int json)
{
	static const int num[] = { 0, 0, 0, 0, 1, 1, 1, 0 };
	char names[4096] = "{", caps[1024] = "{";
	size_t nl = 1, cl = 1;
	if (register_volumes(cfg, c) < 0)
		return 1;
	/* capacities live in the configuration, not the index */
	for (int i = 0; i < cfg->n_volumes; i++) {
		nl += (size_t)snprintf(names + nl, sizeof(names) - nl, "%s\"%s\"", i ? "," : "", cfg->volumes[i].name);
		cl += (size_t)snprintf(caps + cl, sizeof(caps) - cl, "%s%ld", i ? "," : "", cfg->volumes[i].capacity_mb);
		if (nl >= sizeof(names) - 2 || cl >= sizeof(caps) - 2)
			break;
	}
	snprintf(names + nl, sizeof(names) - nl, "}");
	snprintf(caps + cl, sizeof(caps) - cl, "}");
	const char *p[2] = { names, caps };
	return query_print(c,
			   "SELECT v.name, v.path, v.state, CASE WHEN v.closed THEN 'closed' ELSE 'open' END AS use, "
			   "count(t.pk) AS tars, round(COALESCE(sum(t.size), 0) / 1048576.0, 1) AS used_mb, "
			   "COALESCE(max(cv.cap), 0) AS capacity_mb, v.updated_at::timestamp(0)::text AS changed "
			   "FROM volume v LEFT JOIN tar_file t ON t.volume_fk = v.pk "
			   "LEFT JOIN unnest($1::text[], $2::bigint[]) AS cv(name, cap) ON cv.name = v.name "
			   "GROUP BY v.pk ORDER BY v.pk",
			   2, p, json, num);
}

static int cmd_volume(const hub_config *cfg, PGconn *c, int argc, char **argv, int json)
{
	dh_db_err err;
	if (argc != 3 || (strcmp(argv[1], "online") != 0 && strcmp(argv[1], "offline") != 0)) {
		fprintf(stderr, "usage: hubctl volume online|offline NAME\n");
		return 2;
	}
	if (register_volumes(cfg, c) < 0)
		return 1;
	const char *p[2] = { argv[2], argv[1] };
	PGresult *r = dh_db_query(c, "UPDATE volume SET state = $2, updated_at = now() WHERE name = $1 RETURNING pk", 2,
				  p, &err);
	if (!r) {
		fprintf(stderr, "hubctl: %s\n", err.msg);
		return 1;
	}
	int n = PQntuples(r);
	PQclear(r);
	if (n != 1) {
		fprintf(stderr, "hubctl: no volume named %s\n", argv[2]);
		return 1;
	}
	if (json)
		printf("{\"volume\": \"%s\", \"state\": \"%s\"}\n", argv[2], argv[1]);
	else
		printf("volume %s is %s\n", argv[2], argv[1]);
	return 0;
}

/* The series waiting to be archived ($1: archive.stable_seconds); backlog and status share it. */
#define BACKLOG_SQL                                                                                       \
	"SELECT st.study_uid, se.series_uid, count(*) AS objects, sum(i.file_size) AS bytes, "             \
	"CASE WHEN (SELECT max(i2.received_at) FROM series s2 JOIN instance i2 ON i2.series_fk = s2.pk "    \
	"           WHERE s2.study_fk = st.pk) < now() - make_interval(secs => $1::double precision) "     \
	"     THEN 'stable' ELSE 'receiving' END AS state, min(i.received_at) AS oldest, se.pk AS series_pk "\
	"FROM instance i JOIN series se ON se.pk = i.series_fk JOIN study st ON st.pk = se.study_fk "     \
	"WHERE i.tar_fk IS NULL AND i.file_path IS NOT NULL GROUP BY st.pk, se.pk"

static int cmd_backlog(const hub_config *cfg, PGconn *c, int json)
{
	static const int num[] = { 0, 0, 1, 1, 0 };
	char secs[32];
	snprintf(secs, sizeof(secs), "%ld", cfg->archive_stable_seconds);
	const char *p[1] = { secs };
	return query_print(c,
			   "SELECT study_uid, series_uid, objects, bytes, state FROM (" BACKLOG_SQL ") b "
			   "ORDER BY series_pk",
			   1, p, json, num);
}

int hubctl_archive_backlog_summary(const hub_config *cfg, PGconn *c, hubctl_backlog *out, char *err, size_t errlen)
{
	char secs[32];
	dh_db_err e;
	snprintf(secs, sizeof(secs), "%ld", cfg->archive_stable_seconds);
	const char *p[1] = { secs };
	PGresult *r = dh_db_query(c,
				  "SELECT count(*), COALESCE(sum(objects), 0), COALESCE(sum(bytes), 0), "
				  "COALESCE(extract(epoch FROM now() - min(oldest))::bigint, 0) FROM (" BACKLOG_SQL ") b",
				  1, p, &e);
	if (!r) {
		snprintf(err, errlen, "%s", e.msg);
		return -1;
	}
	out->series = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	out->objects = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	out->bytes = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
	out->oldest_age_s = strtoll(PQgetvalue(r, 0, 3), NULL, 10);
	PQclear(r);
	return 0;
}

static int cmd_tars(PGconn *c, int argc, char **argv, int json)
{
	static const int num[] = { 0, 0, 1, 1, 0, 0, 0, 0 };
	if (argc != 2) {
		fprintf(stderr, "usage: hubctl tars SERIES_UID\n");
		return 2;
	}
	const char *p[1] = { argv[1] };
	return query_print(c,
			   "SELECT v.name AS volume, t.path, t.members, t.size, COALESCE(t.md5, '') AS md5, "
			   "t.digest AS xxh3_128, "
			   "t.created_at::timestamp(0)::text AS created, "
			   "COALESCE(t.verified_at::timestamp(0)::text, '') AS verified "
			   "FROM tar_file t JOIN volume v ON v.pk = t.volume_fk JOIN series se ON se.pk = t.series_fk "
			   "WHERE se.series_uid = $1 ORDER BY t.pk",
			   1, p, json, num);
}

static int cmd_cat(const hub_config *cfg, PGconn *c, int argc, char **argv)
{
	dh_db_err err;
	archive_loc loc;
	unsigned char *buf = NULL;
	size_t len = 0;
	char msg[700];
	int rc = 1;
	hub h;
	if (argc != 2) {
		fprintf(stderr, "usage: hubctl cat SOP_UID >FILE\n");
		return 2;
	}
	memset(&h, 0, sizeof(h));
	h.cfg = *cfg; /* borrowed: archive_locate reads cache_dir and the volumes */
	const char *p[1] = { argv[1] };
	PGresult *r = dh_db_query(c, "SELECT pk FROM instance WHERE sop_uid = $1", 1, p, &err);
	if (!r || PQntuples(r) != 1) {
		fprintf(stderr, "hubctl: %s\n", r ? "no such instance" : err.msg);
		goto done;
	}
	if (archive_locate(&h, c, PQgetvalue(r, 0, 0), &loc, &err) < 0) {
		fprintf(stderr, "hubctl: %s\n", err.msg);
		goto done;
	}
	if (archive_read(&loc, &buf, &len, msg, sizeof(msg)) < 0) {
		fprintf(stderr, "hubctl: %s: %s\n", argv[1], msg);
		goto done;
	}
	if (fwrite(buf, 1, len, stdout) != len || fflush(stdout) != 0) {
		perror("hubctl: write");
		goto done;
	}
	rc = 0;
done:
	PQclear(r);
	free(buf);
	return rc;
}

/* ---- verify ---- */

typedef struct {
	int n;
	FILE *out; /* problems as they are found (people) */
	char **lines;
	int cap;
} problems;

static void problem(problems *pr, int json, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void problem(problems *pr, int json, const char *fmt, ...)
{
	char line[1500];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (pr->n == pr->cap) {
		int cap = pr->cap ? pr->cap * 2 : 16;
		char **l = realloc(pr->lines, sizeof(*l) * (size_t)cap);
		if (!l)
			return;
		pr->lines = l;
		pr->cap = cap;
	}
	pr->lines[pr->n++] = strdup(line);
	if (!json)
		fprintf(stderr, "%sPROBLEM: %s\n", isatty(2) ? "\r\033[K" : "", line);
}

static void progress(int done_n, int total, const char *what)
{
	if (!isatty(2) || total <= 0)
		return;
	int width = 40, fill = done_n * width / total;
	fprintf(stderr, "\r[%.*s%*s] %d/%d %.40s\033[K", fill, "########################################",
		width - fill, "", done_n, total, what);
	if (done_n == total)
		fputc('\n', stderr);
	fflush(stderr);
}

/* Reads the TAR through libarchive: each member's MD5 against the manifest. */
static void verify_manifest(const char *path, const char *rel, problems *pr, int json)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	char *manifest = NULL;
	size_t mlen = 0;
	char (*names)[128] = NULL, (*md5s)[33] = NULL;
	int n = 0, cap = 0;
	unsigned char buf[65536];

	archive_read_support_format_tar(a);
	if (archive_read_open_filename(a, path, 65536) != ARCHIVE_OK) {
		problem(pr, json, "%s: cannot open: %s", rel, archive_error_string(a));
		goto done;
	}
	for (;;) {
		int r = archive_read_next_header(a, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK) {
			problem(pr, json, "%s: unreadable TAR: %s", rel, archive_error_string(a));
			goto done;
		}
		const char *name = archive_entry_pathname(e);
		int is_manifest = strcmp(name, "MANIFEST.md5") == 0;
		dh_md5 *h = NULL;
		dh_md5_new(&h);
		la_ssize_t k;
		while ((k = archive_read_data(a, buf, sizeof(buf))) > 0) {
			dh_md5_update(h, buf, (size_t)k);
			if (is_manifest) {
				char *m = realloc(manifest, mlen + (size_t)k + 1);
				if (m) {
					memcpy(m + mlen, buf, (size_t)k);
					mlen += (size_t)k;
					m[mlen] = '\0';
					manifest = m;
				}
			}
		}
		if (k < 0)
			problem(pr, json, "%s: member %s unreadable: %s", rel, name, archive_error_string(a));
		if (!is_manifest) {
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				names = realloc(names, sizeof(*names) * (size_t)cap);
				md5s = realloc(md5s, sizeof(*md5s) * (size_t)cap);
				if (!names || !md5s) {
					dh_md5_free(h);
					goto done;
				}
			}
			snprintf(names[n], sizeof(names[n]), "%s", name);
			dh_md5_final(h, md5s[n]);
			n++;
		}
		dh_md5_free(h);
	}
	if (!manifest) {
		problem(pr, json, "%s: no MANIFEST.md5 member", rel);
		goto done;
	}
	int listed = 0;
	for (char *line = strtok(manifest, "\n"); line; line = strtok(NULL, "\n")) {
		char md5[33], name[128];
		if (sscanf(line, "%32s  %127s", md5, name) != 2)
			continue;
		listed++;
		int found = 0;
		for (int i = 0; i < n; i++)
			if (strcmp(names[i], name) == 0) {
				found = 1;
				if (strcmp(md5s[i], md5) != 0)
					problem(pr, json, "%s: member %s: MD5 %s, manifest says %s", rel, name, md5s[i], md5);
			}
		if (!found)
			problem(pr, json, "%s: manifest lists %s, which is not in the TAR", rel, name);
	}
	if (listed != n)
		problem(pr, json, "%s: %d member(s) but the manifest lists %d", rel, n, listed);
done:
	archive_read_free(a);
	free(manifest);
	free(names);
	free(md5s);
}

static int cmd_verify(const hub_config *cfg, PGconn *c, int argc, char **argv, int json)
{
	dh_db_err err;
	problems pr = { 0, NULL, NULL, 0 };
	PGresult *t = NULL;
	int rc = 1, checked_objects = 0, ntars = 0;
	char msg[800];
	if (argc != 2) {
		fprintf(stderr, "usage: hubctl verify VOLUME\n");
		return 2;
	}
	const char *vp[1] = { argv[1] };
	t = dh_db_query(c, "SELECT t.pk, t.path, COALESCE(t.md5, ''), t.size, v.path, v.state, t.digest FROM tar_file t "
			   "JOIN volume v ON v.pk = t.volume_fk WHERE v.name = $1 ORDER BY t.pk", 1, vp, &err);
	if (!t) {
		fprintf(stderr, "hubctl: %s\n", err.msg);
		goto done;
	}
	ntars = PQntuples(t);
	if (ntars > 0 && strcmp(PQgetvalue(t, 0, 5), "online") != 0) {
		fprintf(stderr, "hubctl: volume %s is offline; bring it online first\n", argv[1]);
		goto done;
	}
	const hub_volume *cv = hub_config_volume(cfg, argv[1]);
	for (int k = 0; k < ntars; k++) {
		const char *rel = PQgetvalue(t, k, 1);
		char path[1400], md5[33];
		snprintf(path, sizeof(path), "%s/%s", cv && cv->path[0] ? cv->path : PQgetvalue(t, k, 4), rel);
		progress(k, ntars, rel);
		/* 1. the whole file */
		if (access(path, R_OK) != 0) {
			problem(&pr, json, "%s: missing", rel);
			continue;
		}
		/* TARs since hub 013 carry the XXH3-128 computed while they were written, older ones an MD5 */
		const char *want = PQgetvalue(t, k, 6)[0] ? PQgetvalue(t, k, 6) : PQgetvalue(t, k, 2);
		const char *kind = PQgetvalue(t, k, 6)[0] ? "XXH3-128" : "MD5";
		if ((PQgetvalue(t, k, 6)[0] ? archive_digest_file(path, md5) : dh_md5_file(path, md5)) < 0)
			problem(&pr, json, "%s: unreadable", rel);
		else if (strcmp(md5, want) != 0)
			problem(&pr, json, "%s: TAR %s %s, index says %s (the file changed since it was written)", rel,
				kind, md5, want);
		/* 2. members against the manifest */
		verify_manifest(path, rel, &pr, json);
		/* 3. indexed objects at their offsets */
		const char *ip[1] = { PQgetvalue(t, k, 0) };
		PGresult *m = dh_db_query(c, "SELECT sop_uid, tar_offset, tar_size, md5 FROM instance "
					     "WHERE tar_fk = $1::bigint ORDER BY tar_offset", 1, ip, &err);
		if (!m) {
			fprintf(stderr, "hubctl: %s\n", err.msg);
			goto done;
		}
		for (int i = 0; i < PQntuples(m); i++) {
			int r = archive_check_range(path, (off_t)strtoll(PQgetvalue(m, i, 1), NULL, 10),
						    (size_t)strtoull(PQgetvalue(m, i, 2), NULL, 10), PQgetvalue(m, i, 3),
						    NULL, msg, sizeof(msg));
			checked_objects++;
			if (r != 0)
				problem(&pr, json, "%s: object %s: %s", rel, PQgetvalue(m, i, 0), msg);
		}
		PQclear(m);
		if (pr.n == 0)
			dh_db_exec(c, "UPDATE tar_file SET verified_at = now() WHERE pk = $1::bigint", 1, ip, &err);
	}
	progress(ntars, ntars, "done");
	if (json) {
		printf("{\"volume\": ");
		hubctl_json_str(stdout, argv[1]);
		printf(", \"tars\": %d, \"objects\": %d, \"problems\": [", ntars, checked_objects);
		for (int i = 0; i < pr.n; i++) {
			printf(i ? ", " : "");
			hubctl_json_str(stdout, pr.lines[i]);
		}
		printf("]}\n");
	} else {
		printf("volume %s: %d TAR(s), %d object(s) checked, %d problem(s)\n", argv[1], ntars, checked_objects,
		       pr.n);
		for (int i = 0; i < pr.n; i++)
			printf("  %s\n", pr.lines[i]);
	}
	rc = pr.n ? 1 : 0;
done:
	PQclear(t);
	for (int i = 0; i < pr.n; i++)
		free(pr.lines[i]);
	free(pr.lines);
	return rc;
}

int hubctl_archive_main(const hub_config *cfg, int argc, char **argv, int json)
{
	dh_db *db = NULL;
	dh_db_err err;
	PGconn *c = NULL;
	int rc = 1;
	if (dh_db_open(&db, cfg->conninfo, 1) < 0) {
		fprintf(stderr, "hubctl: out of memory\n");
		goto done;
	}
	if (!(c = dh_db_get(db, &err))) {
		fprintf(stderr, "hubctl: database: %s\n", err.msg);
		goto done;
	}
	if (strcmp(argv[0], "volumes") == 0)
		rc = cmd_volumes(cfg, c, json);
	else if (strcmp(argv[0], "volume") == 0)
		rc = cmd_volume(cfg, c, argc, argv, json);
	else if (strcmp(argv[0], "backlog") == 0)
		rc = cmd_backlog(cfg, c, json);
	else if (strcmp(argv[0], "tars") == 0)
		rc = cmd_tars(c, argc, argv, json);
	else if (strcmp(argv[0], "verify") == 0)
		rc = cmd_verify(cfg, c, argc, argv, json);
	else if (strcmp(argv[0], "cat") == 0)
		rc = cmd_cat(cfg, c, argc, argv);
done:
	if (c)
		dh_db_put(db, c, 0);
	dh_db_close(db);
	return rc;
}
