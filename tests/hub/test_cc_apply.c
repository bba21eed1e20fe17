/*
 * test_cc_apply.c - unit tests of the change-context applier (hub/cc/cc_apply.c)
 * against a real PostgreSQL.
 *
 * The cluster is private (copied from tests/common/test_db.c: initdb in a
 * temp directory, Unix socket only, run as dcmhub when we are root). Index
 * rows are inserted directly (fake file paths); cc are built with the
 * dh_cc API, encoded, decoded again as cc_recv.c would, and handed to
 * cc_apply_batch. Each case uses its own spoke id and UIDs.
 */
#include "ccsync.h"
#include "pgtest.h"
#include "hub.h"
#include "log.h"

#include <CUnit/Basic.h>
#include <glob.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char conninfo[512];

static hub h;
static PGconn *tc; /* the test's own connection for fixtures and assertions */

static int suite_init(void)
{
	dh_db_err err;
	PGconn *c;
	int to = 0;

	if (pgtest_start("test_cc_apply", conninfo, sizeof(conninfo)) != 0)
		return -1;
	dh_log_init("test_cc_apply", "stderr", getenv("DH_TEST_DEBUG") ? "debug" : "warn");
	memset(&h, 0, sizeof(h));
	if (hub_config_defaults(&h.cfg) != 0)
		return -1;
	h.cfg.cc_enforce_ownership = 1;
	h.cfg.cc_park_timeout = 3600;
	if (dh_db_open(&h.db, conninfo, 2) != 0)
		return -1;
	memset(&err, 0, sizeof(err));
	if (!(c = dh_db_get(h.db, &err)))
		return -1;
	if (dh_db_migrate(c, hub_migrations, NULL, &to, &err) != 0) {
		fprintf(stderr, "migrate: %s\n", err.msg);
		dh_db_put(h.db, c, 1);
		return -1;
	}
	dh_db_put(h.db, c, 0);
	tc = PQconnectdb(conninfo);
	return PQstatus(tc) == CONNECTION_OK ? 0 : -1;
}

static int suite_clean(void)
{
	PQfinish(tc);
	dh_db_close(h.db);
	hub_config_free(&h.cfg);
	return 0;
}

/* ---- fixtures ---- */

/* Runs sql with up to 8 text parameters (NULL-terminated list); returns the first value or "". */
static char vbuf[8192];
static const char *sqlv(const char *sql, ...)
{
	const char *p[8];
	int n = 0;
	va_list ap;
	va_start(ap, sql);
	const char *a;
	while (n < 8 && (a = va_arg(ap, const char *)))
		p[n++] = a;
	va_end(ap);
	PGresult *r = PQexecParams(tc, sql, n, NULL, p, NULL, NULL, 0);
	vbuf[0] = '\0';
	if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK) {
		fprintf(stderr, "fixture SQL failed: %s\n%s\n", PQerrorMessage(tc), sql);
		CU_FAIL("fixture SQL failed");
	} else if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) {
		snprintf(vbuf, sizeof(vbuf), "%s", PQgetvalue(r, 0, 0));
	}
	PQclear(r);
	return vbuf;
}

static long sqln(const char *sql, ...)
{
	const char *p[8];
	int n = 0;
	va_list ap;
	va_start(ap, sql);
	const char *a;
	while (n < 8 && (a = va_arg(ap, const char *)))
		p[n++] = a;
	va_end(ap);
	PGresult *r = PQexecParams(tc, sql, n, NULL, p, NULL, NULL, 0);
	long v = -1;
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
		v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	else
		fprintf(stderr, "count SQL failed: %s\n%s\n", PQerrorMessage(tc), sql);
	PQclear(r);
	return v;
}

/* An index row chain patient/study/series/instance (get-or-create), owned by owner. */
static void add_instance(const char *pid, const char *study, const char *series, const char *sop, const char *owner)
{
	char path[200];
	snprintf(path, sizeof(path), "aa/%s.dcm", sop);
	sqlv("INSERT INTO patient (patient_id, patient_name) VALUES ($1, 'DOE^JOHN') ON CONFLICT DO NOTHING", pid,
	     NULL);
	sqlv("INSERT INTO study (patient_fk, study_uid, accession, description, owner_spoke) "
	     "SELECT pk, $2, 'ACC1', 'orig', $3 FROM patient WHERE patient_id = $1 AND issuer = '' "
	     "ON CONFLICT DO NOTHING", pid, study, owner, NULL);
	sqlv("INSERT INTO series (study_fk, series_uid, modality) SELECT pk, $2, 'CT' FROM study WHERE study_uid = $1 "
	     "ON CONFLICT DO NOTHING", study, series, NULL);
	sqlv("INSERT INTO instance (series_fk, sop_uid, received_sop_uid, received_study_uid, sop_class_uid, "
	     "transfer_syntax, file_path, file_size, md5, received_series_uid) "
	     "SELECT pk, $2, $2, $3, '1.2.840.10008.5.1.4.1.1.2', '1.2.840.10008.1.2.1', $4, 100, "
	     "'0123456789abcdef0123456789abcdef', $1 FROM series WHERE series_uid = $1",
	     series, sop, study, path, NULL);
}

static dh_cc *mk(dh_cc_kind kind, const char *spoke, uint64_t seq)
{
	dh_cc *cc = NULL;
	CU_ASSERT_EQUAL_FATAL(dh_cc_new(&cc, kind, spoke, seq, NULL, 0, "tester", "unit test"), 0);
	return cc;
}

typedef struct {
	uint64_t through;
	cc_refusal *ref;
	size_t n_ref;
	int rc;
} result;

/* Encodes, decodes (as the receiver does) and applies ccs[0..n) as one batch; frees ccs. */
static result apply(const char *spoke, dh_cc **ccs, size_t n)
{
	result res = { 0, NULL, 0, -1 };
	dh_cc **dec = calloc(n, sizeof(*dec));
	dh_ccwire_item *items = calloc(n, sizeof(*items));
	uint8_t **bufs = calloc(n, sizeof(*bufs));
	char why[256], err[512] = "";
	for (size_t i = 0; i < n; i++) {
		size_t len = 0;
		if (dh_cc_encode(ccs[i], &bufs[i], &len) != 0) {
			dh_cc_validate(ccs[i], why, sizeof(why));
			fprintf(stderr, "invalid test cc: %s\n", why);
			CU_FAIL("invalid test cc");
			goto done;
		}
		items[i].data = bufs[i];
		items[i].len = len;
		CU_ASSERT_EQUAL_FATAL(dh_cc_decode(bufs[i], len, &dec[i], why, sizeof(why)), 0);
	}
	res.rc = cc_apply_batch(&h, spoke, "test", dec, items, n, &res.through, &res.ref, &res.n_ref, err,
				sizeof(err));
	if (res.rc != 0)
		fprintf(stderr, "cc_apply_batch: %s\n", err);
	for (size_t i = 0; i < res.n_ref; i++)
		fprintf(stderr, "  [%s seq %" PRIu64 " %s: %s]\n", spoke, res.ref[i].sequence,
			res.ref[i].permanent ? "refused" : "parked", res.ref[i].reason);
done:
	for (size_t i = 0; i < n; i++) {
		dh_cc_free(ccs[i]);
		dh_cc_free(dec[i]);
		free(bufs[i]);
	}
	free(dec);
	free(items);
	free(bufs);
	return res;
}

static result apply1(const char *spoke, dh_cc *cc)
{
	return apply(spoke, &cc, 1);
}

static const char *state_of(const char *spoke, const char *seq)
{
	return sqlv("SELECT state FROM cc_log WHERE spoke_id = $1 AND sequence = $2::bigint", spoke, seq, NULL);
}

/* ---- cases ---- */

static void test_attribute_change(void)
{
	const char *S = "s-attr";
	add_instance("PA1", "1.9.1.1", "1.9.1.1.1", "1.9.1.1.1.1", S);
	add_instance("PA1", "1.9.1.2", "1.9.1.2.1", "1.9.1.2.1.1", S);

	/* study level: description and the patient's name */
	dh_cc *cc = mk(DH_CC_ATTRIBUTE_CHANGE, S, 1);
	dh_cc_attr_set_target(cc, DH_CC_LEVEL_STUDY, NULL, NULL, "1.9.1.1", NULL, NULL);
	dh_cc_add_attr(cc, -1, 0x00081030, "LO", "orig", "corrected");
	dh_cc_add_attr(cc, -1, 0x00100010, "PN", "DOE^JOHN", "DOE^JANE");
	result r = apply1(S, cc);
	CU_ASSERT_EQUAL(r.rc, 0);
	CU_ASSERT_EQUAL(r.through, 1);
	CU_ASSERT_EQUAL(r.n_ref, 0);
	free(r.ref);
	CU_ASSERT_STRING_EQUAL(sqlv("SELECT description FROM study WHERE study_uid = '1.9.1.1'", NULL), "corrected");
	CU_ASSERT_STRING_EQUAL(sqlv("SELECT patient_name FROM patient WHERE patient_id = 'PA1'", NULL), "DOE^JANE");
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM attr_override o JOIN study s ON s.pk = o.target_fk "
			     "WHERE o.level = 2 AND s.study_uid = '1.9.1.1' AND o.cc_fk IS NOT NULL", NULL), 2);
	CU_ASSERT_STRING_EQUAL(sqlv("SELECT value FROM attr_override WHERE tag = 528432 AND level = 2", NULL),
			       "corrected"); /* 0008,1030 */
	CU_ASSERT_STRING_EQUAL(state_of(S, "1"), "applied");

	/* study level Patient ID: the study moves to (new) patient PA2, PA1 keeps the other study */
	cc = mk(DH_CC_ATTRIBUTE_CHANGE, S, 2);
	dh_cc_attr_set_target(cc, DH_CC_LEVEL_STUDY, NULL, NULL, "1.9.1.1", NULL, NULL);
	dh_cc_add_attr(cc, -1, 0x00100020, "LO", "PA1", "PA2");
	r = apply1(S, cc);
	CU_ASSERT_EQUAL(r.through, 2);
	free(r.ref);
	CU_ASSERT_STRING_EQUAL(sqlv("SELECT p.patient_id FROM study s JOIN patient p ON p.pk = s.patient_fk "
				    "WHERE s.study_uid = '1.9.1.1'", NULL), "PA2");
	CU_ASSERT_STRING_EQUAL(sqlv("SELECT p.patient_id FROM study s JOIN patient p ON p.pk = s.patient_fk "
				    "WHERE s.study_uid = '1.9.1.2'", NULL), "PA1");

	/* patient level ID change onto an existing ID merges the patients */
	cc = mk(DH_CC_ATTRIBUTE_CHANGE, S, 3);
	dh_cc_attr_set_target(cc, DH_CC_LEVEL_PATIENT, "PA1", NULL, NULL, NULL, NULL);
	dh_cc_add_attr(cc, -1, 0x00100020, "LO", "PA1", "PA2");
	r = apply1(S, cc);
	CU_ASSERT_EQUAL(r.through, 3);
	free(r.ref);
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM patient WHERE patient_id = 'PA1'", NULL), 0);
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM study s JOIN patient p ON p.pk = s.patient_fk "
			     "WHERE p.patient_id = 'PA2' AND s.study_uid IN ('1.9.1.1', '1.9.1.2')", NULL), 2);
	/* PA1's patient-level overrides went to its study: the name stays corrected there */
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM attr_override o JOIN study s ON s.pk = o.target_fk "
			     "WHERE o.level = 2 AND s.study_uid = '1.9.1.2' AND o.tag = 1048608", NULL), 1);

	/* series and instance level */
	cc = mk(DH_CC_ATTRIBUTE_CHANGE, S, 4);
	dh_cc_attr_set_target(cc, DH_CC_LEVEL_SERIES, NULL, NULL, "1.9.1.2", "1.9.1.2.1", NULL);
	dh_cc_add_attr(cc, -1, 0x00080060, "CS", "CT", "MR");
	dh_cc_add_attr(cc, -1, 0x00200011, "IS", "", "7");
	dh_cc *cc2 = mk(DH_CC_ATTRIBUTE_CHANGE, S, 5);
	dh_cc_attr_set_target(cc2, DH_CC_LEVEL_INSTANCE, NULL, NULL, "1.9.1.2", "1.9.1.2.1", "1.9.1.2.1.1");
	dh_cc_add_attr(cc2, -1, 0x00200013, "IS", "", "3");
	dh_cc *two[2] = { cc, cc2 };
	r = apply(S, two, 2);
	CU_ASSERT_EQUAL(r.through, 5);
	free(r.ref);
	CU_ASSERT_STRING_EQUAL(sqlv("SELECT modality || '/' || series_number FROM series WHERE series_uid = '1.9.1.2.1'",
				    NULL), "MR/7");
	CU_ASSERT_STRING_EQUAL(sqlv("SELECT instance_number FROM instance WHERE sop_uid = '1.9.1.2.1.1'", NULL), "3");
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM attr_override WHERE level = 4", NULL), 1);
}

static void test_resend_and_gap(void)
{
	const char *S = "s-resend";
	add_instance("PR1", "1.9.2.1", "1.9.2.1.1", "1.9.2.1.1.1", S);
	dh_cc *b[3];
	for (int i = 0; i < 2; i++) {
		b[i] = mk(DH_CC_ATTRIBUTE_CHANGE, S, (uint64_t)i + 1);
		dh_cc_attr_set_target(b[i], DH_CC_LEVEL_STUDY, NULL, NULL, "1.9.2.1", NULL, NULL);
		dh_cc_add_attr(b[i], -1, 0x00081030, "LO", "", i ? "two" : "one");
	}
	result r = apply(S, b, 2);
	CU_ASSERT_EQUAL(r.rc, 0);
	CU_ASSERT_EQUAL(r.through, 2);
	free(r.ref);
	long seq_before = sqln("SELECT max(seq) FROM attr_override", NULL);
	/* resend of 1..2 with 3: only 3 is new */
	for (int i = 0; i < 3; i++) {
		b[i] = mk(DH_CC_ATTRIBUTE_CHANGE, S, (uint64_t)i + 1);
		dh_cc_attr_set_target(b[i], DH_CC_LEVEL_STUDY, NULL, NULL, "1.9.2.1", NULL, NULL);
		dh_cc_add_attr(b[i], -1, 0x00080090, "PN", "", i == 2 ? "DR^THREE" : "DR^OLD");
	}
	r = apply(S, b, 3);
	CU_ASSERT_EQUAL(r.rc, 0);
	CU_ASSERT_EQUAL(r.through, 3);
	free(r.ref);
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM cc_log WHERE spoke_id = $1", S, NULL), 3);
	CU_ASSERT_STRING_EQUAL(sqlv("SELECT description || '|' || referring_physician FROM study "
				    "WHERE study_uid = '1.9.2.1'", NULL), "two|DR^THREE");
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM attr_override WHERE seq > $1::bigint",
			     (snprintf(vbuf, 32, "%ld", seq_before), vbuf), NULL), 1);
	/* a gap: 5 without 4 is not recorded */
	b[0] = mk(DH_CC_ATTRIBUTE_CHANGE, S, 5);
	dh_cc_attr_set_target(b[0], DH_CC_LEVEL_STUDY, NULL, NULL, "1.9.2.1", NULL, NULL);
	dh_cc_add_attr(b[0], -1, 0x00081030, "LO", "", "five");
	r = apply1(S, b[0]);
	CU_ASSERT_EQUAL(r.rc, 0);
	CU_ASSERT_EQUAL(r.through, 3);
	free(r.ref);
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM cc_log WHERE spoke_id = $1 AND sequence = 5", S, NULL), 0);
	uint64_t through = 0;
	char err[256];
	CU_ASSERT_EQUAL(cc_apply_received_through(&h, S, &through, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(through, 3);
}

static void test_split(void)
{
	const char *S = "s-split";
	add_instance("PS1", "1.9.3.1", "1.9.3.1.1", "1.9.3.1.1.1", S);
	add_instance("PS1", "1.9.3.1", "1.9.3.1.1", "1.9.3.1.1.2", S);
	add_instance("PS1", "1.9.3.1", "1.9.3.1.2", "1.9.3.1.2.1", S);
	add_instance("PS1", "1.9.3.1", "1.9.3.1.2", "1.9.3.1.2.2", S);

	/* partial series without a new series UID: a conflict */
	dh_cc *cc = mk(DH_CC_SPLIT, S, 1);
	dh_cc_split_set(cc, "1.9.3.1", "1.9.3.9", 1);
	dh_cc_add_instance(cc, -1, "1.9.3.1", "1.9.3.1.2", "1.9.3.1.2.1");
	dh_cc_add_uid_map(cc, -1, DH_CC_LEVEL_STUDY, "1.9.3.1", "1.9.3.9");
	result r = apply1(S, cc);
	CU_ASSERT_EQUAL(r.rc, 0);
	CU_ASSERT_EQUAL(r.through, 1);
	CU_ASSERT_EQUAL_FATAL(r.n_ref, 1);
	CU_ASSERT_EQUAL(r.ref[0].permanent, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.ref[0].reason, "part of series"));
	free(r.ref);
	CU_ASSERT_STRING_EQUAL(state_of(S, "1"), "conflict");
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM study WHERE study_uid = '1.9.3.9'", NULL), 0);

	/* whole series 1 re-parented, one object of series 2 into a new series, renamed */
	cc = mk(DH_CC_SPLIT, S, 2);
	dh_cc_split_set(cc, "1.9.3.1", "1.9.3.2", 1);
	dh_cc_add_instance(cc, -1, "1.9.3.1", "1.9.3.1.1", "1.9.3.1.1.1");
	dh_cc_add_instance(cc, -1, "1.9.3.1", "1.9.3.1.1", "1.9.3.1.1.2");
	dh_cc_add_instance(cc, -1, "1.9.3.1", "1.9.3.1.2", "1.9.3.1.2.1");
	dh_cc_add_uid_map(cc, -1, DH_CC_LEVEL_STUDY, "1.9.3.1", "1.9.3.2");
	dh_cc_add_uid_map(cc, -1, DH_CC_LEVEL_SERIES, "1.9.3.1.2", "1.9.3.2.2");
	dh_cc_add_uid_map(cc, -1, DH_CC_LEVEL_INSTANCE, "1.9.3.1.2.1", "1.9.3.2.2.1");
	dh_cc_add_attr(cc, -1, 0x00081030, "LO", "orig", "split part");
	r = apply1(S, cc);
	CU_ASSERT_EQUAL(r.through, 2);
	CU_ASSERT_EQUAL(r.n_ref, 0);
	free(r.ref);
	CU_ASSERT_STRING_EQUAL(state_of(S, "2"), "applied");
	CU_ASSERT_STRING_EQUAL(sqlv("SELECT owner_spoke || '|' || description FROM study WHERE study_uid = '1.9.3.2'",
				    NULL), "s-split|split part");
	CU_ASSERT_STRING_EQUAL(sqlv("SELECT st.study_uid FROM series se JOIN study st ON st.pk = se.study_fk "
				    "WHERE se.series_uid = '1.9.3.1.1'", NULL), "1.9.3.2");
	CU_ASSERT_STRING_EQUAL(sqlv("SELECT se.series_uid || '|' || i.moved || '|' || i.received_series_uid "
				    "FROM instance i JOIN series se ON se.pk = i.series_fk "
				    "WHERE i.sop_uid = '1.9.3.2.2.1'", NULL), "1.9.3.2.2|true|1.9.3.1.2");
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM instance WHERE sop_uid = '1.9.3.1.2.1'", NULL), 0);
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM instance i JOIN series se ON se.pk = i.series_fk "
			     "JOIN study st ON st.pk = se.study_fk WHERE st.study_uid = '1.9.3.1'", NULL), 1);
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM instance WHERE moved AND sop_uid LIKE '1.9.3.%'", NULL), 3);
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM uid_mapping WHERE cc_fk IS NOT NULL AND study_uid = '1.9.3.2' "
			     "AND reason = 'cc SPLIT s-split:2'", NULL), 3);
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM attr_override o JOIN study s ON s.pk = o.target_fk "
			     "WHERE o.level = 2 AND s.study_uid = '1.9.3.2'", NULL), 1);
}

static void test_merge(void)
{
	const char *S = "s-merge";
	add_instance("PM1", "1.9.4.1", "1.9.4.1.1", "1.9.4.1.1.1", S);
	add_instance("PM1", "1.9.4.2", "1.9.4.2.1", "1.9.4.2.1.1", S);
	dh_cc *cc = mk(DH_CC_MERGE, S, 1);
	dh_cc_merge_add_source(cc, "1.9.4.1");
	dh_cc_merge_add_source(cc, "1.9.4.2");
	dh_cc_merge_set_destination(cc, "1.9.4.3");
	dh_cc_add_instance(cc, -1, "1.9.4.1", "1.9.4.1.1", "1.9.4.1.1.1");
	dh_cc_add_instance(cc, -1, "1.9.4.2", "1.9.4.2.1", "1.9.4.2.1.1");
	dh_cc_add_uid_map(cc, -1, DH_CC_LEVEL_STUDY, "1.9.4.1", "1.9.4.3");
	dh_cc_add_uid_map(cc, -1, DH_CC_LEVEL_STUDY, "1.9.4.2", "1.9.4.3");
	dh_cc_add_uid_map(cc, -1, DH_CC_LEVEL_INSTANCE, "1.9.4.1.1.1", "1.9.4.3.1.1");
	dh_cc_add_uid_map(cc, -1, DH_CC_LEVEL_INSTANCE, "1.9.4.2.1.1", "1.9.4.3.2.1");
	result r = apply1(S, cc);
	CU_ASSERT_EQUAL(r.rc, 0);
	CU_ASSERT_EQUAL(r.n_ref, 0);
	free(r.ref);
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM study WHERE study_uid IN ('1.9.4.1', '1.9.4.2')", NULL), 0);
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM instance i JOIN series se ON se.pk = i.series_fk "
			     "JOIN study st ON st.pk = se.study_fk WHERE st.study_uid = '1.9.4.3' AND i.moved "
			     "AND i.sop_uid IN ('1.9.4.3.1.1', '1.9.4.3.2.1')", NULL), 2);
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM uid_mapping WHERE kind = 'study' AND new_uid = '1.9.4.3'", NULL), 2);
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM uid_mapping WHERE kind = 'sop' AND study_uid = '1.9.4.3'", NULL), 2);
}

static void test_segment_copies_share_bytes(void)
{
	const char *S = "s-seg";
	add_instance("PG1", "1.9.5.1", "1.9.5.1.1", "1.9.5.1.1.1", S);
	add_instance("PG1", "1.9.5.1", "1.9.5.1.1", "1.9.5.1.1.2", S);
	sqlv("UPDATE instance SET file_path = 'bb/shared.dcm' WHERE sop_uid = '1.9.5.1.1.1'", NULL);
	dh_cc *cc = mk(DH_CC_SEGMENT, S, 1);
	dh_cc_segment_set_source(cc, "1.9.5.1", 1);
	int a = dh_cc_segment_add_target(cc, "1.9.5.2", "ORD-A");
	int b = dh_cc_segment_add_target(cc, "1.9.5.3", "ORD-B");
	dh_cc_add_instance(cc, a, "1.9.5.1", "1.9.5.1.1", "1.9.5.1.1.1");
	dh_cc_add_uid_map(cc, a, DH_CC_LEVEL_STUDY, "1.9.5.1", "1.9.5.2");
	dh_cc_add_uid_map(cc, a, DH_CC_LEVEL_SERIES, "1.9.5.1.1", "1.9.5.2.1");
	dh_cc_add_uid_map(cc, a, DH_CC_LEVEL_INSTANCE, "1.9.5.1.1.1", "1.9.5.2.1.1");
	dh_cc_add_instance(cc, b, "1.9.5.1", "1.9.5.1.1", "1.9.5.1.1.1");
	dh_cc_add_instance(cc, b, "1.9.5.1", "1.9.5.1.1", "1.9.5.1.1.2");
	dh_cc_add_uid_map(cc, b, DH_CC_LEVEL_STUDY, "1.9.5.1", "1.9.5.3");
	dh_cc_add_uid_map(cc, b, DH_CC_LEVEL_SERIES, "1.9.5.1.1", "1.9.5.3.1");
	dh_cc_add_uid_map(cc, b, DH_CC_LEVEL_INSTANCE, "1.9.5.1.1.1", "1.9.5.3.1.1");
	dh_cc_add_uid_map(cc, b, DH_CC_LEVEL_INSTANCE, "1.9.5.1.1.2", "1.9.5.3.1.2");
	dh_cc_add_attr(cc, b, 0x00081030, "LO", "", "order B");
	result r = apply1(S, cc);
	CU_ASSERT_EQUAL(r.rc, 0);
	CU_ASSERT_EQUAL(r.n_ref, 0);
	free(r.ref);
	CU_ASSERT_STRING_EQUAL(state_of(S, "1"), "applied");
	/* the source stays (keep_source), with both objects */
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM instance WHERE sop_uid LIKE '1.9.5.1.1.%'", NULL), 2);
	/* three copies, all pointing at the original bytes */
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM instance WHERE file_path = 'bb/shared.dcm'", NULL), 3);
	CU_ASSERT_STRING_EQUAL(sqlv("SELECT st.accession || '|' || st.description || '|' || se.series_uid || '|' || "
				    "i.moved || '|' || i.received_sop_uid || '|' || i.received_series_uid "
				    "FROM instance i JOIN series se ON se.pk = i.series_fk JOIN study st ON st.pk = "
				    "se.study_fk WHERE i.sop_uid = '1.9.5.3.1.1'", NULL),
			       "ORD-B|order B|1.9.5.3.1|true|1.9.5.1.1.1|1.9.5.1.1");
	CU_ASSERT_STRING_EQUAL(sqlv("SELECT accession FROM study WHERE study_uid = '1.9.5.2'", NULL), "ORD-A");
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM uid_mapping WHERE cc_fk IS NOT NULL AND old_uid LIKE '1.9.5.1%'",
			     NULL), 7);
}

static void test_delete(void)
{
	const char *S = "s-del";
	add_instance("PD1", "1.9.6.1", "1.9.6.1.1", "1.9.6.1.1.1", S);
	add_instance("PD1", "1.9.6.1", "1.9.6.1.1", "1.9.6.1.1.2", S);
	add_instance("PD1", "1.9.6.1", "1.9.6.1.2", "1.9.6.1.2.1", S);
	add_instance("PD2", "1.9.6.2", "1.9.6.2.1", "1.9.6.2.1.1", S);
	sqlv("INSERT INTO attr_override (level, target_fk, tag, vr, value) SELECT 4, pk, 1048592, 'PN', 'X' "
	     "FROM instance WHERE sop_uid = '1.9.6.1.1.1'", NULL);
	dh_cc *cc = mk(DH_CC_DELETE, S, 1);
	dh_cc_add_instance(cc, -1, "1.9.6.1", "1.9.6.1.1", "1.9.6.1.1.1");
	dh_cc_add_instance(cc, -1, "1.9.6.1", "1.9.6.1.2", NULL);
	dh_cc_add_instance(cc, -1, "1.9.6.2", NULL, NULL);
	result r = apply1(S, cc);
	CU_ASSERT_EQUAL(r.rc, 0);
	CU_ASSERT_EQUAL(r.n_ref, 0);
	free(r.ref);
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM instance WHERE sop_uid IN ('1.9.6.1.1.1', '1.9.6.1.2.1', "
			     "'1.9.6.2.1.1')", NULL), 0);
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM instance WHERE sop_uid = '1.9.6.1.1.2'", NULL), 1);
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM deleted_instance WHERE cc_fk IS NOT NULL AND study_uid LIKE '1.9.6.%' "
			     "AND file_path IS NOT NULL", NULL), 3);
	CU_ASSERT_STRING_EQUAL(sqlv("SELECT series_uid || '|' || patient_id FROM deleted_instance "
				    "WHERE sop_uid = '1.9.6.2.1.1'", NULL), "1.9.6.2.1|PD2");
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM series WHERE series_uid IN ('1.9.6.1.2', '1.9.6.2.1')", NULL), 0);
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM study WHERE study_uid = '1.9.6.2'", NULL), 0);
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM patient WHERE patient_id = 'PD2'", NULL), 0);
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM attr_override WHERE level = 4 AND value = 'X'", NULL), 0);
}

static void test_uid_fixup(void)
{
	const char *S = "s-fix";
	add_instance("PF1", "1.9.7.1", "1.9.7.1.1", "1.9.7.1.1.1", S);
	dh_cc *cc = mk(DH_CC_UID_FIXUP, S, 1);
	dh_cc_fixup_set(cc, "1.9.7.1", "1.9.7.2", "ORD-7");
	dh_cc_add_uid_map(cc, -1, DH_CC_LEVEL_SERIES, "1.9.7.1.1", "1.9.7.2.1");
	dh_cc_add_uid_map(cc, -1, DH_CC_LEVEL_INSTANCE, "1.9.7.1.1.1", "1.9.7.2.1.1");
	dh_cc_add_attr(cc, -1, 0x00081030, "LO", "orig", "from order");
	result r = apply1(S, cc);
	CU_ASSERT_EQUAL(r.rc, 0);
	CU_ASSERT_EQUAL(r.n_ref, 0);
	free(r.ref);
	CU_ASSERT_STRING_EQUAL(sqlv("SELECT st.study_uid || '|' || st.accession || '|' || st.description || '|' || "
				    "se.series_uid || '|' || i.received_series_uid FROM instance i "
				    "JOIN series se ON se.pk = i.series_fk JOIN study st ON st.pk = se.study_fk "
				    "WHERE i.sop_uid = '1.9.7.2.1.1'", NULL),
			       "1.9.7.2|ORD-7|from order|1.9.7.2.1|1.9.7.1.1");
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM uid_mapping WHERE cc_fk IS NOT NULL AND study_uid = '1.9.7.2'",
			     NULL), 3);
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM attr_override o JOIN study s ON s.pk = o.target_fk "
			     "WHERE o.level = 2 AND s.study_uid = '1.9.7.2'", NULL), 2); /* accession, description */
}

static void test_parked_then_applied_in_order(void)
{
	const char *S = "s-park";
	char err[256];
	int applied = 0;
	add_instance("PP1", "1.9.8.1", "1.9.8.1.1", "1.9.8.1.1.1", S);
	/* 1 names an object the hub has not received yet */
	dh_cc *b[2];
	b[0] = mk(DH_CC_ATTRIBUTE_CHANGE, S, 1);
	dh_cc_attr_set_target(b[0], DH_CC_LEVEL_INSTANCE, NULL, NULL, "1.9.8.1", "1.9.8.1.1", "1.9.8.1.1.2");
	dh_cc_add_attr(b[0], -1, 0x00200013, "IS", "", "42");
	/* 2 names the same study: it waits behind 1 although its own object is there */
	b[1] = mk(DH_CC_ATTRIBUTE_CHANGE, S, 2);
	dh_cc_attr_set_target(b[1], DH_CC_LEVEL_STUDY, NULL, NULL, "1.9.8.1", NULL, NULL);
	dh_cc_add_attr(b[1], -1, 0x00081030, "LO", "", "after the park");
	result r = apply(S, b, 2);
	CU_ASSERT_EQUAL(r.rc, 0);
	CU_ASSERT_EQUAL(r.through, 2);
	CU_ASSERT_EQUAL_FATAL(r.n_ref, 2);
	CU_ASSERT_EQUAL(r.ref[0].permanent, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.ref[0].reason, "waiting for 1 objects, first: 1.9.8.1.1.2"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.ref[1].reason, "behind parked cc 1"));
	free(r.ref);
	CU_ASSERT_STRING_EQUAL(state_of(S, "1"), "parked");
	CU_ASSERT_STRING_EQUAL(state_of(S, "2"), "parked");
	CU_ASSERT_STRING_EQUAL(sqlv("SELECT description FROM study WHERE study_uid = '1.9.8.1'", NULL), "orig");
	/* retrying without the object changes nothing but the attempts */
	CU_ASSERT_EQUAL(cc_apply_retry_parked(&h, &applied, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(applied, 0);
	CU_ASSERT_EQUAL(sqln("SELECT attempts FROM cc_log WHERE spoke_id = $1 AND sequence = 1", S, NULL), 1);
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM cc_log WHERE spoke_id = $1 AND operator_item", S, NULL), 0);
	/* parked too long: the head fails (an operator item, no longer retried); the
	 * one behind it stays parked, not an operator item of its own */
	h.cfg.cc_park_timeout = 0;
	CU_ASSERT_EQUAL(cc_apply_retry_parked(&h, &applied, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(sqlv("SELECT string_agg(state || '|' || operator_item, ',' ORDER BY sequence) FROM "
				    "cc_log WHERE spoke_id = $1", S, NULL), "failed|true,parked|false");
	h.cfg.cc_park_timeout = 3600;
	/* the object arrives: a failed cc waits for an operator, and cc 2 behind it */
	add_instance("PP1", "1.9.8.1", "1.9.8.1.1", "1.9.8.1.1.2", S);
	CU_ASSERT_EQUAL(cc_apply_retry_parked(&h, &applied, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(applied, 0);
	CU_ASSERT_STRING_EQUAL(state_of(S, "2"), "parked");
	/* the operator retries it: applied, recorded; then the worker applies cc 2 */
	char pk[32], st[16], why[256];
	snprintf(pk, sizeof(pk), "%s", sqlv("SELECT pk FROM cc_log WHERE spoke_id = $1 AND sequence = 1", S, NULL));
	cc_operator_req req = { "retry", "tester", "the object came" };
	CU_ASSERT_EQUAL(cc_apply_operator(&h, pk, &req, st, why, sizeof(why)), 0);
	CU_ASSERT_STRING_EQUAL(st, "applied");
	CU_ASSERT_STRING_EQUAL(sqlv("SELECT operator_name || '|' || action || '|' || reason || '|' || outcome || '|' "
				    "|| study_uid FROM operator_action WHERE target_kind = 'cc' AND target_pk = $1::bigint",
				    pk, NULL),
			       "tester|retry|the object came|applied|1.9.8.1");
	/* an applied cc cannot be retried, resolved or discarded: refused, nothing recorded */
	CU_ASSERT_EQUAL(cc_apply_operator(&h, pk, &req, st, why, sizeof(why)), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "applied already"));
	req.action = "discard";
	CU_ASSERT_EQUAL(cc_apply_operator(&h, pk, &req, st, why, sizeof(why)), 1);
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM operator_action WHERE target_pk = $1::bigint", pk, NULL), 1);
	CU_ASSERT_EQUAL(cc_apply_operator(&h, "999999", &req, st, why, sizeof(why)), -1);
	CU_ASSERT_EQUAL(cc_apply_retry_parked(&h, &applied, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(applied, 1);
	CU_ASSERT_STRING_EQUAL(state_of(S, "1"), "applied");
	CU_ASSERT_STRING_EQUAL(state_of(S, "2"), "applied");
	CU_ASSERT_STRING_EQUAL(sqlv("SELECT instance_number FROM instance WHERE sop_uid = '1.9.8.1.1.2'", NULL), "42");
	CU_ASSERT_STRING_EQUAL(sqlv("SELECT description FROM study WHERE study_uid = '1.9.8.1'", NULL),
			       "after the park");
	CU_ASSERT(sqln("SELECT (a.applied_at <= b.applied_at)::int FROM cc_log a, cc_log b WHERE a.spoke_id = $1 "
		       "AND b.spoke_id = $1 AND a.sequence = 1 AND b.sequence = 2", S, NULL) == 1);
	/* a later cc of that study goes straight through */
	dh_cc *cc = mk(DH_CC_ATTRIBUTE_CHANGE, S, 3);
	dh_cc_attr_set_target(cc, DH_CC_LEVEL_STUDY, NULL, NULL, "1.9.8.1", NULL, NULL);
	dh_cc_add_attr(cc, -1, 0x00081030, "LO", "", "third");
	r = apply1(S, cc);
	CU_ASSERT_EQUAL(r.n_ref, 0);
	free(r.ref);
	CU_ASSERT_STRING_EQUAL(state_of(S, "3"), "applied");
}

static void test_ownership_refused(void)
{
	add_instance("PO1", "1.9.9.1", "1.9.9.1.1", "1.9.9.1.1.1", "s-owner");
	dh_cc *cc = mk(DH_CC_ATTRIBUTE_CHANGE, "s-intruder", 1);
	dh_cc_attr_set_target(cc, DH_CC_LEVEL_STUDY, NULL, NULL, "1.9.9.1", NULL, NULL);
	dh_cc_add_attr(cc, -1, 0x00081030, "LO", "", "hijacked");
	result r = apply1("s-intruder", cc);
	CU_ASSERT_EQUAL(r.rc, 0);
	CU_ASSERT_EQUAL(r.through, 1);
	CU_ASSERT_EQUAL_FATAL(r.n_ref, 1);
	CU_ASSERT_EQUAL(r.ref[0].permanent, 1);
	CU_ASSERT_STRING_EQUAL(r.ref[0].reason, "study 1.9.9.1 is owned by spoke s-owner");
	free(r.ref);
	CU_ASSERT_STRING_EQUAL(sqlv("SELECT state || '|' || operator_item FROM cc_log WHERE spoke_id = 's-intruder'",
				    NULL), "conflict|true");
	/* an operator resolves it: settled, never applied, no longer an operator item */
	char pk[32], st[16], why[256];
	snprintf(pk, sizeof(pk), "%s", sqlv("SELECT pk FROM cc_log WHERE spoke_id = 's-intruder'", NULL));
	cc_operator_req req = { "resolve", "tester", "owner fixed it at its site" };
	CU_ASSERT_EQUAL(cc_apply_operator(&h, pk, &req, st, why, sizeof(why)), 0);
	CU_ASSERT_STRING_EQUAL(st, "resolved");
	CU_ASSERT_STRING_EQUAL(sqlv("SELECT state || '|' || operator_item FROM cc_log WHERE spoke_id = 's-intruder'",
				    NULL), "resolved|false");
	CU_ASSERT_EQUAL(cc_apply_operator(&h, pk, &req, st, why, sizeof(why)), 1);
	CU_ASSERT_STRING_EQUAL(sqlv("SELECT description FROM study WHERE study_uid = '1.9.9.1'", NULL), "orig");
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM attr_override WHERE value = 'hijacked'", NULL), 0);
}

/* The spoke sent the merged object before the cc: the old row is superseded, not renamed. */
static void test_superseded_by_sent_object(void)
{
	const char *S = "s-sup";
	add_instance("PU1", "1.9.11.1", "1.9.11.1.1", "1.9.11.1.1.1", S);
	add_instance("PU1", "1.9.11.2", "1.9.11.2.1", "1.9.11.2.1.1", S);
	add_instance("PU1", "1.9.11.2", "1.9.11.2.1", "1.9.11.2.1.9", S); /* arrived first, new UIDs */
	dh_cc *cc = mk(DH_CC_MERGE, S, 1);
	dh_cc_merge_add_source(cc, "1.9.11.1");
	dh_cc_merge_set_destination(cc, "1.9.11.2");
	dh_cc_add_instance(cc, -1, "1.9.11.1", "1.9.11.1.1", "1.9.11.1.1.1");
	dh_cc_add_uid_map(cc, -1, DH_CC_LEVEL_STUDY, "1.9.11.1", "1.9.11.2");
	dh_cc_add_uid_map(cc, -1, DH_CC_LEVEL_INSTANCE, "1.9.11.1.1.1", "1.9.11.2.1.9");
	result r = apply1(S, cc);
	CU_ASSERT_EQUAL(r.rc, 0);
	CU_ASSERT_EQUAL(r.n_ref, 0);
	free(r.ref);
	CU_ASSERT_STRING_EQUAL(state_of(S, "1"), "applied");
	CU_ASSERT_STRING_EQUAL(sqlv("SELECT reason FROM deleted_instance WHERE sop_uid = '1.9.11.1.1.1'", NULL),
			       "superseded by the object the spoke sent");
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM instance WHERE sop_uid = '1.9.11.2.1.9'", NULL), 1);
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM study WHERE study_uid = '1.9.11.1'", NULL), 0);
}

/*
 * Simple attribute changes run without a savepoint of their own; one whose
 * statement fails (here: a value PostgreSQL refuses as UTF-8 text) makes
 * the batch run again cc by cc, so it is refused alone and the others apply.
 */
static void test_failing_fast_cc_refused_alone(void)
{
	const char *S = "s-fastfail";
	add_instance("PF1", "1.9.12.1", "1.9.12.1.1", "1.9.12.1.1.1", S);
	dh_cc *b[3];
	const char *vals[3] = { "first", "bad \xff\xfe value", "third" };
	for (int i = 0; i < 3; i++) {
		b[i] = mk(DH_CC_ATTRIBUTE_CHANGE, S, (uint64_t)(i + 1));
		dh_cc_attr_set_target(b[i], DH_CC_LEVEL_STUDY, NULL, NULL, "1.9.12.1", NULL, NULL);
		dh_cc_add_attr(b[i], -1, 0x00081030, "LO", "", vals[i]);
	}
	result r = apply(S, b, 3);
	CU_ASSERT_EQUAL(r.rc, 0);
	CU_ASSERT_EQUAL(r.through, 3);
	CU_ASSERT_EQUAL_FATAL(r.n_ref, 1);
	CU_ASSERT_EQUAL(r.ref[0].sequence, 2);
	CU_ASSERT_EQUAL(r.ref[0].permanent, 1);
	free(r.ref);
	CU_ASSERT_STRING_EQUAL(state_of(S, "1"), "applied");
	CU_ASSERT_STRING_EQUAL(state_of(S, "2"), "failed");
	CU_ASSERT_STRING_EQUAL(state_of(S, "3"), "applied");
	CU_ASSERT_STRING_EQUAL(sqlv("SELECT description FROM study WHERE study_uid = '1.9.12.1'", NULL), "third");
}

/* Attribute changes go at >= 2000 cc/s in batches of 256 (target; asserted loosely). */
static void test_throughput(void)
{
	const char *S = "s-perf";
	const int total = 2048, batch = 256;
	char uid[64];
	for (int i = 0; i < 64; i++) {
		snprintf(uid, sizeof(uid), "1.9.10.%d", i);
		char se[80], sop[80];
		snprintf(se, sizeof(se), "%s.1", uid);
		snprintf(sop, sizeof(sop), "%s.1.1", uid);
		add_instance("PT1", uid, se, sop, S);
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int k = 0; k < total; k += batch) {
		dh_cc *b[256];
		for (int i = 0; i < batch; i++) {
			snprintf(uid, sizeof(uid), "1.9.10.%d", (k + i) % 64);
			b[i] = mk(DH_CC_ATTRIBUTE_CHANGE, S, (uint64_t)(k + i + 1));
			dh_cc_attr_set_target(b[i], DH_CC_LEVEL_STUDY, NULL, NULL, uid, NULL, NULL);
			dh_cc_add_attr(b[i], -1, 0x00081030, "LO", "", "perf");
			dh_cc_add_attr(b[i], -1, 0x00080090, "PN", "", "DR^PERF");
		}
		result r = apply(S, b, (size_t)batch);
		CU_ASSERT_EQUAL(r.rc, 0);
		CU_ASSERT_EQUAL(r.n_ref, 0);
		free(r.ref);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	fprintf(stderr, "\n  %d ATTRIBUTE_CHANGE cc in %.2f s: %.0f cc/s (incl. encode/decode)\n", total, secs,
		total / secs);
	CU_ASSERT_EQUAL(sqln("SELECT count(*) FROM cc_log WHERE spoke_id = $1 AND state = 'applied'", S, NULL), total);
	CU_ASSERT(total / secs > 500.0);
}

int main(void)
{
	CU_pSuite s;
	int failures;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("cc_apply", suite_init, suite_clean);
	if (s == NULL || CU_add_test(s, "attribute change", test_attribute_change) == NULL ||
	    CU_add_test(s, "resend skipped, gap stops", test_resend_and_gap) == NULL ||
	    CU_add_test(s, "split", test_split) == NULL || CU_add_test(s, "merge", test_merge) == NULL ||
	    CU_add_test(s, "segment copies share bytes", test_segment_copies_share_bytes) == NULL ||
	    CU_add_test(s, "delete", test_delete) == NULL || CU_add_test(s, "uid fixup", test_uid_fixup) == NULL ||
	    CU_add_test(s, "parked then applied in order", test_parked_then_applied_in_order) == NULL ||
	    CU_add_test(s, "ownership refused", test_ownership_refused) == NULL ||
	    CU_add_test(s, "superseded by the sent object", test_superseded_by_sent_object) == NULL ||
	    CU_add_test(s, "failing fast cc refused alone", test_failing_fast_cc_refused_alone) == NULL ||
	    CU_add_test(s, "throughput", test_throughput) == NULL) {
		CU_cleanup_registry();
		return 1;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = (int)(CU_get_number_of_failures() + CU_get_number_of_suites_failed());
	CU_cleanup_registry();
	return failures ? 1 : 0;
}
