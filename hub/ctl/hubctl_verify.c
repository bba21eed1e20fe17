/*
 * hubctl_verify.c - `hubctl verify --spoke S` (see hubctl_verify.h).
 *
 * Flow: check the spoke is configured and seen lately (cc_stream), insert
 * a verify_request, poll it (a progress bar on a terminal) until hubd has
 * stored the whole ledger snapshot, compare set-based in SQL, print, and
 * delete the request with its snapshot. Everything the comparison needs is
 * in the hub's database by then; hubctl never reaches the spoke's.
 */
#include "hubctl_verify.h"

#include "db.h"
#include "hubctl_out.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_EQUAL = 0, EXIT_DIFFER = 1, EXIT_USAGE = 2, EXIT_SPOKE = 3, EXIT_DB = 4 };

#define DEFAULT_TIMEOUT 30
#define SEEN_WINDOW "30 seconds" /* same as hubd's: a spoke sends a hello every 5 s when idle */
#define POLL_US 100000

/*
 * The objects in scope and their current truth at the hub. $1 request,
 * $2 study ('' every study), $3 spoke. Every study the spoke owns or
 * names, every object the spoke holds under its UID (wherever the hub
 * keeps it); with --study, that study. Attribute values: the latest
 * attr_override of any level (what leaves the hub), else the indexed column.
 */
#define SCOPE_SQL                                                                                               \
	"WITH sp AS MATERIALIZED (SELECT * FROM verify_ledger WHERE request_fk = $1::bigint), "                 \
	"spl AS MATERIALIZED (SELECT * FROM sp WHERE NOT deleted), "                                           \
	"hub AS MATERIALIZED (SELECT i.pk, i.sop_uid, i.received_sop_uid, se.series_uid, st.study_uid, "       \
	"i.sop_class_uid, i.dataset_digest AS digest, i.transfer_syntax, p.pk AS ppk, st.pk AS stpk, se.pk AS sepk, p.patient_id, "       \
	"p.issuer, p.patient_name, p.birth_date, p.sex, st.study_id, st.study_date, st.study_time, "           \
	"st.accession, st.referring_physician, st.description AS study_description, se.modality, "             \
	"se.series_number, se.description AS series_description, i.instance_number "                          \
	"FROM instance i JOIN series se ON se.pk = i.series_fk JOIN study st ON st.pk = se.study_fk "          \
	"JOIN patient p ON p.pk = st.patient_fk "                                                               \
	"WHERE (CASE WHEN $2 = '' THEN st.owner_spoke = $3 OR st.study_uid IN (SELECT study_uid FROM sp) "     \
	"ELSE st.study_uid = $2 END) OR i.sop_uid IN (SELECT sop_uid FROM spl)) "

/* Tags of the compared attributes, in the order of ATTR_NAMES and the value arrays. */
#define OV_TAGS                                                                                                  \
	"(1048608, 1048609, 1048592, 1048624, 1048640, 2097168, 524320, 524336, 524368, 524432, 528432, "       \
	"524384, 2097169, 528446, 2097171)"
#define ATTR_NAMES                                                                                               \
	"ARRAY['PatientID','IssuerOfPatientID','PatientName','PatientBirthDate','PatientSex','StudyID',"        \
	"'StudyDate','StudyTime','AccessionNumber','ReferringPhysicianName','StudyDescription','Modality',"     \
	"'SeriesNumber','SeriesDescription','InstanceNumber']"
#define OV(tag, col) "max(value) FILTER (WHERE tag = " #tag ") AS " col

static const char compare_sql[] =
	SCOPE_SQL
	", ovr AS (SELECT h.pk, o.tag, o.value, o.seq FROM hub h JOIN attr_override o ON o.level = 1 AND "
	"o.target_fk = h.ppk WHERE o.tag IN " OV_TAGS
	" UNION ALL SELECT h.pk, o.tag, o.value, o.seq FROM hub h JOIN attr_override o ON o.level = 2 AND "
	"o.target_fk = h.stpk WHERE o.tag IN " OV_TAGS
	" UNION ALL SELECT h.pk, o.tag, o.value, o.seq FROM hub h JOIN attr_override o ON o.level = 3 AND "
	"o.target_fk = h.sepk WHERE o.tag IN " OV_TAGS
	" UNION ALL SELECT h.pk, o.tag, o.value, o.seq FROM hub h JOIN attr_override o ON o.level = 4 AND "
	"o.target_fk = h.pk WHERE o.tag IN " OV_TAGS "), "
	"ovl AS (SELECT DISTINCT ON (pk, tag) pk, tag, value FROM ovr ORDER BY pk, tag, seq DESC), "
	"ov AS (SELECT pk, " OV(1048608, "patient_id") ", " OV(1048609, "issuer") ", " OV(1048592, "patient_name")
	", " OV(1048624, "birth_date") ", " OV(1048640, "sex") ", " OV(2097168, "study_id") ", "
	OV(524320, "study_date") ", " OV(524336, "study_time") ", " OV(524368, "accession") ", "
	OV(524432, "referring_physician") ", " OV(528432, "study_description") ", " OV(524384, "modality") ", "
	OV(2097169, "series_number") ", " OV(528446, "series_description") ", " OV(2097171, "instance_number")
	" FROM ovl GROUP BY pk), "
	"hv AS (SELECT h.sop_uid, h.received_sop_uid, h.series_uid, h.study_uid, h.sop_class_uid, h.digest, "
	"h.transfer_syntax, "
	"ARRAY[coalesce(ov.patient_id, h.patient_id), coalesce(ov.issuer, h.issuer), "
	"coalesce(ov.patient_name, h.patient_name), coalesce(ov.birth_date, h.birth_date), "
	"coalesce(ov.sex, h.sex), coalesce(ov.study_id, h.study_id), coalesce(ov.study_date, h.study_date), "
	"coalesce(ov.study_time, h.study_time), coalesce(ov.accession, h.accession), "
	"coalesce(ov.referring_physician, h.referring_physician), "
	"coalesce(ov.study_description, h.study_description), coalesce(ov.modality, h.modality), "
	"coalesce(ov.series_number, h.series_number), coalesce(ov.series_description, h.series_description), "
	"coalesce(ov.instance_number, h.instance_number)] AS vals FROM hub h LEFT JOIN ov ON ov.pk = h.pk), "
	"j AS (SELECT s.sop_uid AS s_sop, s.series_uid AS s_series, s.study_uid AS s_study, "
	"s.sop_class_uid AS s_class, s.digest AS s_digest, s.transfer_syntax AS s_ts, s.fwd_state, ARRAY[s.patient_id, s.issuer, s.patient_name, "
	"s.birth_date, s.sex, s.study_id, s.study_date, s.study_time, s.accession, s.referring_physician, "
	"s.study_description, s.modality, s.series_number, s.series_description, s.instance_number] AS s_vals, "
	"h.sop_uid AS h_sop, h.received_sop_uid AS h_rsop, h.series_uid AS h_series, h.study_uid AS h_study, "
	"h.sop_class_uid AS h_class, h.digest AS h_digest, h.transfer_syntax AS h_ts, h.vals AS h_vals "
	"FROM spl s FULL JOIN hv h ON h.sop_uid = s.sop_uid) "
	"SELECT kind, study_uid, series_uid, sop_uid, attribute, spoke_value, hub_value, instances, detail FROM ("
	/* live at the spoke, not in the index */
	"SELECT CASE WHEN EXISTS (SELECT 1 FROM deleted_instance d WHERE d.sop_uid = j.s_sop) "
	"THEN 'deleted_at_hub' WHEN EXISTS (SELECT 1 FROM quarantine q WHERE q.sop_uid = j.s_sop AND "
	"q.state = 'quarantined') THEN 'quarantined_at_hub' ELSE 'missing_at_hub' END AS kind, "
	"s_study AS study_uid, s_series AS series_uid, s_sop AS sop_uid, '' AS attribute, 'present' AS spoke_value, "
	"CASE WHEN EXISTS (SELECT 1 FROM deleted_instance d WHERE d.sop_uid = j.s_sop) THEN 'deleted' "
	"WHEN EXISTS (SELECT 1 FROM quarantine q WHERE q.sop_uid = j.s_sop AND q.state = 'quarantined') "
	"THEN 'quarantined' ELSE 'absent' END AS hub_value, 1::bigint AS instances, fwd_state AS detail "
	"FROM j WHERE h_sop IS NULL "
	/* in the index, not live at the spoke */
	"UNION ALL SELECT CASE WHEN EXISTS (SELECT 1 FROM sp WHERE sp.deleted AND sp.sop_uid = j.h_sop) "
	"THEN 'deletion_not_applied' ELSE 'extra_at_hub' END, h_study, h_series, h_sop, '', "
	"CASE WHEN EXISTS (SELECT 1 FROM sp WHERE sp.deleted AND sp.sop_uid = j.h_sop) THEN 'deleted' "
	"ELSE 'absent' END, 'present', 1, CASE WHEN h_rsop <> h_sop THEN h_rsop ELSE '' END "
	"FROM j WHERE s_sop IS NULL "
	/* both: where it lives, what it is, its bytes */
	"UNION ALL SELECT 'study_uid', s_study, '', CASE WHEN count(*) = 1 THEN min(s_sop) ELSE '' END, "
	"'StudyInstanceUID', s_study, h_study, count(*), '' FROM j WHERE s_sop IS NOT NULL AND h_sop IS NOT NULL "
	"AND s_study <> h_study GROUP BY s_study, h_study "
	"UNION ALL SELECT 'series_uid', s_study, s_series, CASE WHEN count(*) = 1 THEN min(s_sop) ELSE '' END, "
	"'SeriesInstanceUID', s_series, h_series, count(*), '' FROM j WHERE s_sop IS NOT NULL "
	"AND h_sop IS NOT NULL AND s_series <> h_series GROUP BY s_study, s_series, h_series "
	"UNION ALL SELECT 'sop_class', s_study, s_series, s_sop, 'SOPClassUID', s_class, h_class, 1, '' FROM j "
	"WHERE s_sop IS NOT NULL AND h_sop IS NOT NULL AND s_class <> h_class "
	"UNION ALL SELECT 'digest', s_study, s_series, s_sop, '', s_digest, h_digest, 1, '' FROM j "
	/* data set digests: comparable when both are known and in one transfer syntax */
	"WHERE s_sop IS NOT NULL AND h_sop IS NOT NULL AND s_digest <> '' AND h_digest <> '' AND s_ts = h_ts "
	"AND s_digest <> h_digest "
	/* key attributes, one line per study, attribute and pair of values */
	"UNION ALL SELECT 'attribute', a.study, CASE WHEN count(DISTINCT a.series) = 1 THEN min(a.series) "
	"ELSE '' END, CASE WHEN count(*) = 1 THEN min(a.sop) ELSE '' END, a.name, a.sv, a.hv, count(*), '' "
	"FROM (SELECT j.s_study AS study, j.s_series AS series, j.s_sop AS sop, x.name, x.sv, x.hv FROM j, "
	"unnest(" ATTR_NAMES ", j.s_vals, j.h_vals) AS x(name, sv, hv) WHERE j.s_sop IS NOT NULL "
	"AND j.h_sop IS NOT NULL AND x.sv IS DISTINCT FROM x.hv) a GROUP BY a.study, a.name, a.sv, a.hv"
	") d ORDER BY study_uid, kind, attribute, series_uid, sop_uid";

static const char counts_sql[] = SCOPE_SQL
	"SELECT (SELECT count(*) FROM spl), (SELECT count(*) FROM sp WHERE deleted), (SELECT count(*) FROM hub)";

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* What an operator does about one kind of difference (docs/operations.md says more). */
static const char *hint(const char *kind, const char *detail, const char *attribute)
{
	if (!strcmp(kind, "missing_at_hub")) {
		if (!strcmp(detail, "pending") || !strcmp(detail, "sent"))
			return "the spoke is still forwarding it (storage commitment not yet confirmed): wait, then "
			       "verify again";
		if (!strcmp(detail, "failed"))
			return "forwarding failed at the spoke: see `spokectl status`, fix the cause, and have the "
			       "spoke send it again";
		if (!strcmp(detail, "cc"))
			return "a copy a SEGMENT made at the spoke; the hub has not applied that cc: "
			       "`hubctl queue list --spoke {SPOKE} --study {STUDY}`";
		return "the hub confirmed it once but does not index it now (a cc moved or renamed it?): see "
		       "`hubctl queue list --spoke {SPOKE} --study {STUDY}`; else send it again from the spoke";
	}
	if (!strcmp(kind, "quarantined_at_hub"))
		return "the hub keeps it but shows it nowhere: it could not be registered (a malformed Key Object "
		       "Selection document): `hubctl quarantine list`, then release or discard it there";
	if (!strcmp(kind, "deleted_at_hub"))
		return "deleted at the hub (by a cc or an operator) while the spoke still holds it: if the spoke is "
		       "right, send it again from the spoke; if not, delete it at the spoke (`spokectl delete`)";
	if (!strcmp(kind, "deletion_not_applied"))
		return "the spoke deleted it but the hub did not apply that DELETE: `hubctl queue list --spoke {SPOKE} "
		       "--study {STUDY}` shows it parked or refused; retry or resolve it there";
	if (!strcmp(kind, "extra_at_hub"))
		return detail[0] ? "the hub stored it under a new SOP Instance UID (duplicate policy, kb-8993; the "
				   "spoke's UID is in the detail): compare with the spoke's object of that UID"
				 : "the spoke has no record of it under this UID: if the spoke merged or renamed it, that "
				   "cc is not applied here (`hubctl queue list --spoke {SPOKE} --study {STUDY}`); if "
				   "another sender stored it, it is not this spoke's; if the spoke lost it, send it "
				   "again from the spoke PACS";
	if (!strcmp(kind, "study_uid") || !strcmp(kind, "series_uid"))
		return "a split, merge, segment or Study UID fix-up is not applied at the hub: `hubctl queue list "
		       "--spoke {SPOKE} --study {STUDY}` (parked or refused cc); retry or resolve it there";
	if (!strcmp(kind, "digest") || !strcmp(kind, "sop_class"))
		return "the hub and the spoke hold different objects under this UID: compare them (`hubctl cat "
		       "{SOP}` at the hub); send the spoke's again (the hub's duplicate policy decides whether it "
		       "replaces)";
	if (!strcmp(kind, "attribute") && !strncmp(attribute, "Patient", 7))
		return "a patient attribute change is not applied at the hub: `hubctl queue list --spoke {SPOKE} "
		       "--study {STUDY}`; if nothing is pending there, make the correction again at the spoke "
		       "(`spokectl modify`). The hub keeps one patient record per Patient ID and issuer: when the "
		       "spoke holds different patients' data under one Patient ID, the hub shows the first; "
		       "correct the Patient ID at the spoke";
	if (!strcmp(kind, "attribute"))
		return "an attribute change is not applied at the hub: `hubctl queue list --spoke {SPOKE} --study "
		       "{STUDY}`; if nothing is pending there, make the correction again at the spoke (`spokectl "
		       "modify`)";
	return "";
}

/* The hint with {SPOKE}, {STUDY} and {SOP} replaced by this difference's values. */
static void expand_hint(char *out, size_t cap, const char *tmpl, const char *spoke, const char *study,
			const char *sop)
{
	size_t n = 0;

	for (const char *t = tmpl; *t && n + 1 < cap;) {
		const char *v = NULL;
		size_t skip = 0;
		if (!strncmp(t, "{SPOKE}", 7))
			v = spoke, skip = 7;
		else if (!strncmp(t, "{STUDY}", 7))
			v = study, skip = 7;
		else if (!strncmp(t, "{SOP}", 5))
			v = sop[0] ? sop : "SOP_UID", skip = 5;
		if (v) {
			int w = snprintf(out + n, cap - n, "%s", v);
			n = w < 0 ? n : (n + (size_t)w >= cap ? cap - 1 : n + (size_t)w);
			t += skip;
		} else {
			out[n++] = *t++;
		}
	}
	out[n < cap ? n : cap - 1] = '\0';
}

static void progress(const char *spoke, const char *state, long long got, long long total, double t0)
{
	char bar[31];
	int fill = 0;

	if (total > 0)
		fill = (int)(30.0 * (double)got / (double)total);
	if (fill > 30)
		fill = 30;
	memset(bar, '#', (size_t)fill);
	memset(bar + fill, '.', (size_t)(30 - fill));
	bar[30] = '\0';
	if (total < 0)
		fprintf(stderr, "\rverify %s: %s... %.0f s   ", spoke, state, now_s() - t0);
	else
		fprintf(stderr, "\rverify %s: [%s] %lld/%lld ledger rows, %.0f s   ", spoke, bar, got, total,
			now_s() - t0);
	fflush(stderr);
}

/* Waits until request pk is done. Returns an exit status (EXIT_EQUAL: done). */
static int wait_snapshot(PGconn *c, const char *pk, const hubctl_verify_opts *o, double t0)
{
	const char *p[1] = { pk };
	int tty = isatty(STDERR_FILENO), rc = EXIT_DB, shown = 0;
	int timeout = o->timeout > 0 ? o->timeout : DEFAULT_TIMEOUT;
	double last_progress = now_s();
	long long last_got = -1;
	char last_state[16] = "";
	dh_db_err e;

	for (;;) {
		PGresult *r = dh_db_query(c, "SELECT state, error, coalesce(total, -1), received FROM verify_request "
					     "WHERE pk = $1::bigint",
					  1, p, &e);
		if (!r) {
			fprintf(stderr, "hubctl: verify: %s\n", e.msg);
			goto done;
		}
		if (PQntuples(r) != 1) {
			PQclear(r);
			fprintf(stderr, "hubctl: verify: request %s vanished\n", pk);
			goto done;
		}
		const char *state = PQgetvalue(r, 0, 0);
		long long total = atoll(PQgetvalue(r, 0, 2)), got = atoll(PQgetvalue(r, 0, 3));
		if (got != last_got || strcmp(state, last_state) != 0) {
			last_progress = now_s();
			last_got = got;
			snprintf(last_state, sizeof(last_state), "%s", state);
		}
		if (tty) {
			progress(o->spoke, !strcmp(state, "pending") ? "waiting for hubd" : "waiting for the spoke",
				 got, total, t0);
			shown = 1;
		}
		if (!strcmp(state, "done")) {
			PQclear(r);
			rc = EXIT_EQUAL;
			goto done;
		}
		if (!strcmp(state, "failed")) {
			if (shown)
				fputc('\n', stderr);
			shown = 0;
			fprintf(stderr, "hubctl: verify: spoke %s: %s\n", o->spoke, PQgetvalue(r, 0, 1));
			PQclear(r);
			rc = EXIT_SPOKE;
			goto done;
		}
		if (now_s() - last_progress > timeout) {
			if (shown)
				fputc('\n', stderr);
			shown = 0;
			if (!strcmp(state, "pending"))
				fprintf(stderr,
					"hubctl: verify: no hubd took the request within %d s: is hubd running with its cc "
					"endpoint, and is spoke %s connected to it?\n",
					timeout, o->spoke);
			else
				fprintf(stderr,
					"hubctl: verify: spoke %s did not answer within %d s (%lld of %lld rows received); "
					"check spoked's log and the link\n",
					o->spoke, timeout, got, total);
			PQclear(r);
			rc = EXIT_SPOKE;
			goto done;
		}
		PQclear(r);
		usleep(POLL_US);
	}
done:
	if (shown)
		fputc('\n', stderr);
	return rc;
}

static void print_text(PGresult *r, const hubctl_verify_opts *o, const char *counts[3], double secs)
{
	int n = PQntuples(r);

	printf("verify spoke %s, %s%s: spoke %s objects (%s deleted), hub %s objects: ", o->spoke,
	       o->study ? "study " : "every study", o->study ? o->study : "", counts[0], counts[1], counts[2]);
	if (n)
		printf("%d difference%s (%.1f s)\n", n, n == 1 ? "" : "s", secs);
	else
		printf("no differences (%.1f s)\n", secs);
	for (int i = 0; i < n; i++) {
		const char *kind = PQgetvalue(r, i, 0), *study = PQgetvalue(r, i, 1), *series = PQgetvalue(r, i, 2),
			   *sop = PQgetvalue(r, i, 3), *attr = PQgetvalue(r, i, 4), *sv = PQgetvalue(r, i, 5),
			   *hv = PQgetvalue(r, i, 6), *cnt = PQgetvalue(r, i, 7), *detail = PQgetvalue(r, i, 8);
		printf("\n%d. %s", i + 1, kind);
		if (attr[0])
			printf(" %s", attr);
		if (sop[0])
			printf(": instance %s", sop);
		else
			printf(": %s instances", cnt);
		if (series[0])
			printf(" of series %s", series);
		printf(" of study %s\n", study);
		printf("   spoke: %s\n", sv[0] ? sv : "(empty)");
		if (!strcmp(kind, "missing_at_hub") || !strcmp(kind, "deleted_at_hub") ||
		    !strcmp(kind, "quarantined_at_hub"))
			printf("          (forwarding state at the spoke: %s)\n", detail);
		printf("   hub:   %s\n", hv[0] ? hv : "(empty)");
		if (!strcmp(kind, "extra_at_hub") && detail[0])
			printf("          (received as SOP Instance UID %s)\n", detail);
		char h[1024];
		expand_hint(h, sizeof(h), hint(kind, detail, attr), o->spoke, study, sop);
		printf("   hint:  %s\n", h);
	}
}

static void print_json(PGresult *r, const hubctl_verify_opts *o, const char *counts[3], double secs)
{
	static const char *const names[] = { "kind",	    "study_uid", "series_uid", "sop_uid", "attribute",
					     "spoke_value", "hub_value", "instances",  "detail" };
	int n = PQntuples(r);

	printf("{\"spoke\":");
	hubctl_json_str(stdout, o->spoke);
	printf(",\"study\":");
	if (o->study)
		hubctl_json_str(stdout, o->study);
	else
		printf("null");
	printf(",\"spoke_objects\":%s,\"spoke_deleted\":%s,\"hub_objects\":%s,\"seconds\":%.3f,\"differences\":[",
	       counts[0], counts[1], counts[2], secs);
	for (int i = 0; i < n; i++) {
		printf(i ? ",{" : "{");
		for (int k = 0; k < 9; k++) {
			printf(k ? ",\"%s\":" : "\"%s\":", names[k]);
			if (k == 7)
				printf("%s", PQgetvalue(r, i, k));
			else
				hubctl_json_str(stdout, PQgetvalue(r, i, k));
		}
		char h[1024];
		expand_hint(h, sizeof(h), hint(PQgetvalue(r, i, 0), PQgetvalue(r, i, 8), PQgetvalue(r, i, 4)), o->spoke,
			    PQgetvalue(r, i, 1), PQgetvalue(r, i, 3));
		printf(",\"hint\":");
		hubctl_json_str(stdout, h);
		printf("}");
	}
	printf("]}\n");
}

void hubctl_verify_usage(FILE *out)
{
	fprintf(out,
		"usage: hubctl [-c FILE] verify --spoke ID [--study UID] [--timeout SECONDS] [--json]\n"
		"\n"
		"Compares spoke ID's ledger (fetched by hubd over the spoke's cc connection) with the\n"
		"hub's index: presence, deletions, Study/Series/SOP Class UIDs, data set digests and key\n"
		"attributes, for every study of the spoke or for --study UID. Lists every difference\n"
		"with a hint (docs/hubctl.md#verify); a progress bar on stderr when it is a terminal.\n"
		"\n"
		"  --spoke ID          the spoke ([spoke.ID] in hubd's configuration)\n"
		"  --study UID         only this study\n"
		"  --timeout SECONDS   give up after this long without progress (default %d)\n"
		"  --json              one JSON object instead of text\n"
		"\n"
		"Exit status: 0 no difference, 1 differences found, 2 bad usage or unknown spoke,\n"
		"3 spoke not connected / no answer / spoke error, 4 database error.\n",
		DEFAULT_TIMEOUT);
}

int hubctl_verify_main(const hub_config *cfg, const hubctl_verify_opts *o)
{
	dh_db *db = NULL;
	dh_db_err e = { "", "" };
	PGconn *c = NULL;
	PGresult *r = NULL, *diff = NULL;
	char pk[24] = "", user[64] = "";
	const char *study = o->study ? o->study : "";
	const char *counts[3];
	double t0 = now_s();
	int rc = EXIT_DB;

	if (!o->spoke || !o->spoke[0]) {
		hubctl_verify_usage(stderr);
		return EXIT_USAGE;
	}
	if (!hub_config_spoke(cfg, o->spoke)) {
		fprintf(stderr, "hubctl: verify: no [spoke.%s] in the configuration\n", o->spoke);
		return EXIT_USAGE;
	}
	if (dh_db_open(&db, cfg->conninfo, 1) < 0 || !(c = dh_db_get(db, &e))) {
		fprintf(stderr, "hubctl: %s\n", e.msg[0] ? e.msg : "out of memory");
		goto done;
	}
	/* old requests (an interrupted hubctl) go with their snapshots */
	if (dh_db_exec(c, "DELETE FROM verify_request WHERE updated_at < now() - interval '1 hour'", 0, NULL, &e) != 0)
		goto db_fail;
	{
		const char *p[1] = { o->spoke };
		if (!(r = dh_db_query(c,
				      "SELECT coalesce(last_seen_at > now() - interval '" SEEN_WINDOW "', false), "
				      "coalesce(to_char(last_seen_at, 'YYYY-MM-DD HH24:MI:SS TZ'), 'never'), "
				      "coalesce(last_peer, '') FROM (SELECT 1) x LEFT JOIN cc_stream ON spoke_id = $1",
				      1, p, &e)))
			goto db_fail;
		if (PQgetvalue(r, 0, 0)[0] != 't') {
			fprintf(stderr,
				"hubctl: verify: spoke %s is not connected (last heard from: %s%s%s); start spoked at "
				"the spoke, check its hub.cc_endpoint and keys, and see `hubctl status`\n",
				o->spoke, PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2)[0] ? " from " : "",
				PQgetvalue(r, 0, 2));
			rc = EXIT_SPOKE;
			goto done;
		}
		PQclear(r);
		r = NULL;
	}
	snprintf(user, sizeof(user), "%s", getenv("USER") ? getenv("USER") : "");
	{
		const char *p[3] = { o->spoke, study, user };
		if (!(r = dh_db_query(c,
				      "INSERT INTO verify_request (spoke_id, study_uid, requested_by) VALUES ($1, $2, $3) "
				      "RETURNING pk",
				      3, p, &e)))
			goto db_fail;
		snprintf(pk, sizeof(pk), "%s", PQgetvalue(r, 0, 0));
		PQclear(r);
		r = NULL;
	}
	if ((rc = wait_snapshot(c, pk, o, t0)) != EXIT_EQUAL)
		goto done;
	{
		const char *p[3] = { pk, study, o->spoke };
		if (!(r = dh_db_query(c, counts_sql, 3, p, &e)) || !(diff = dh_db_query(c, compare_sql, 3, p, &e)))
			goto db_fail;
	}
	for (int k = 0; k < 3; k++)
		counts[k] = PQgetvalue(r, 0, k);
	if (o->json)
		print_json(diff, o, counts, now_s() - t0);
	else
		print_text(diff, o, counts, now_s() - t0);
	rc = PQntuples(diff) ? EXIT_DIFFER : EXIT_EQUAL;
	goto done;
db_fail:
	fprintf(stderr, "hubctl: verify: %s\n", e.msg);
	rc = EXIT_DB;
done:
	PQclear(r);
	PQclear(diff);
	if (c && pk[0]) {
		/* the snapshot has served; a late hubd must not send for it either */
		const char *p[1] = { pk };
		dh_db_exec(c, "DELETE FROM verify_request WHERE pk = $1::bigint", 1, p, &e);
	}
	if (c)
		dh_db_put(db, c, 0);
	dh_db_close(db);
	return rc;
}
