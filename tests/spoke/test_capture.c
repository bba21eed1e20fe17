/*
 * test_capture.c - spoke/capture.c against a real PostgreSQL.
 *
 * Starts a private cluster (as tests/common/test_db.c does: a fresh
 * directory under /tmp, Unix socket only, run as the user dcmhub when we
 * are root; removed at exit), migrates it with spoke_migrations, fills the
 * ledger through capture_object and checks every operation: the ledger
 * rows afterwards, exactly one cc_history and one outbox row with the next
 * sequence, a body that decodes to the expected kind and mappings; and that
 * an invalid request changes nothing and consumes no sequence.
 */
#include "capture.h"
#include "pgtest.h"
#include "cc.h"
#include "db.h"
#include "spoke.h"

#include <CUnit/Basic.h>
#include <glob.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char conninfo[512];
static PGconn *conn;
static spoke_config cfg;
static const capture_who who = { "tester", "unit test" };

static int suite_init(void)
{
	char err[256];
	dh_db_err e;

	memset(&e, 0, sizeof(e));
	if (pgtest_start("test_capture", conninfo, sizeof(conninfo)) != 0)
		return -1;
	if (spoke_config_load(&cfg, NULL, err, sizeof(err)) != 0)
		return -1;
	free(cfg.id);
	cfg.id = strdup("spoke-a");
	conn = PQconnectdb(conninfo);
	if (PQstatus(conn) != CONNECTION_OK)
		return -1;
	if (dh_db_migrate(conn, spoke_migrations, NULL, NULL, &e) != 0) {
		fprintf(stderr, "migrate: %s\n", e.msg);
		return -1;
	}
	return 0;
}

static int suite_clean(void)
{
	spoke_config_free(&cfg);
	PQfinish(conn);
	conn = NULL;
	return 0; /* the cluster goes at exit (pgtest) */
}

/* ---- helpers ---- */

/* The single value of a query with up to 3 parameters, as a string (static buffer). */
static const char *val(const char *sql, const char *p1, const char *p2, const char *p3)
{
	static char buf[4096];
	const char *p[3] = { p1, p2, p3 };
	int n = p3 ? 3 : p2 ? 2 : p1 ? 1 : 0;
	dh_db_err e;
	PGresult *r;

	memset(&e, 0, sizeof(e));
	buf[0] = '\0';
	r = dh_db_query(conn, sql, n, p, &e);
	CU_ASSERT_PTR_NOT_NULL(r);
	if (!r) {
		fprintf(stderr, "query failed: %s\n", e.msg);
		return buf;
	}
	if (PQntuples(r) == 1)
		snprintf(buf, sizeof(buf), "%s", PQgetvalue(r, 0, 0));
	else
		snprintf(buf, sizeof(buf), "<%d rows>", PQntuples(r));
	PQclear(r);
	return buf;
}

static long lval(const char *sql, const char *p1, const char *p2, const char *p3)
{
	return strtol(val(sql, p1, p2, p3), NULL, 10);
}

/* A snapshot that changes when anything in the ledger or the outbox does. */
static char *snapshot(void)
{
	return strdup(val("SELECT md5(coalesce(string_agg(l::text, '|' ORDER BY pk), '')) || "
			  "(SELECT last_sequence FROM spoke_state)::text || (SELECT count(*) FROM cc_history)::text "
			  "|| (SELECT count(*) FROM outbox)::text FROM ledger_instance l",
			  NULL, NULL, NULL));
}

static long last_seq(void)
{
	return lval("SELECT last_sequence FROM spoke_state", NULL, NULL, NULL);
}

/*
 * Checks that exactly n new cc (sequences before+1 .. before+n) were
 * recorded, each in cc_history and outbox with equal bodies, and returns
 * the last one decoded (the caller frees it), or NULL.
 */
static dh_cc *check_recorded(long before, int n, dh_cc_kind kind)
{
	char seq[24], why[256];
	dh_cc *cc = NULL;
	size_t len = 0;
	unsigned char *body;

	CU_ASSERT_EQUAL(last_seq(), before + n);
	snprintf(seq, sizeof(seq), "%ld", before);
	CU_ASSERT_EQUAL(lval("SELECT count(*) FROM cc_history WHERE sequence > $1::bigint", seq, NULL, NULL), n);
	CU_ASSERT_EQUAL(lval("SELECT count(*) FROM outbox o JOIN cc_history h USING (sequence) WHERE sequence > "
			     "$1::bigint AND o.body = h.body", seq, NULL, NULL), n);
	snprintf(seq, sizeof(seq), "%ld", before + n);
	body = PQunescapeBytea((const unsigned char *)val("SELECT body FROM outbox WHERE sequence = $1::bigint", seq,
							  NULL, NULL), &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(body);
	CU_ASSERT_EQUAL(dh_cc_decode(body, len, &cc, why, sizeof(why)), 0);
	PQfreemem(body);
	if (!cc) {
		fprintf(stderr, "decode: %s\n", why);
		return NULL;
	}
	CU_ASSERT_EQUAL(dh_cc_get_kind(cc), kind);
	CU_ASSERT_EQUAL(dh_cc_sequence(cc), (uint64_t)(before + n));
	CU_ASSERT_STRING_EQUAL(dh_cc_spoke_id(cc), "spoke-a");
	CU_ASSERT_STRING_EQUAL(dh_cc_kind_name(kind), val("SELECT kind FROM cc_history WHERE sequence = $1::bigint",
							   seq, NULL, NULL));
	return cc;
}

static capture_object_info obj(const char *study, const char *series, const char *sop, const char *pid,
			       const char *pname)
{
	capture_object_info o;

	memset(&o, 0, sizeof(o));
	o.sop_uid = sop, o.series_uid = series, o.study_uid = study;
	o.sop_class_uid = "1.2.840.10008.5.1.4.1.1.7";
	o.transfer_syntax = "1.2.840.10008.1.2.1";
	o.patient_id = pid, o.patient_name = pname, o.accession = "ACC1";
	o.study_description = "STUDY", o.modality = "OT", o.series_number = "1", o.series_description = "SER";
	o.instance_number = "1";
	o.file_path = "aa/file.dcm", o.file_size = 1234, o.md5 = "0123456789abcdef0123456789abcdef";
	o.source_ae = "PACS";
	return o;
}

static capture_verdict put(const capture_object_info *o)
{
	capture_verdict v = (capture_verdict)-1;
	char why[256], err[256];

	CU_ASSERT_EQUAL(capture_object(conn, &cfg, o, &v, why, sizeof(why), err, sizeof(err)), 0);
	return v;
}

static void put_new(const char *study, const char *series, const char *sop, const char *pid)
{
	capture_object_info o = obj(study, series, sop, pid, "DOE^JOHN");

	CU_ASSERT_EQUAL(put(&o), CAPTURE_NEW);
}

/* ---- capture_object ---- */

static void test_object_new_same_changed(void)
{
	capture_object_info o = obj("1.2.1", "1.2.1.1", "1.2.1.1.1", "P1", "DOE^JOHN");
	capture_object_info o2 = obj("1.2.1", "1.2.1.1", "1.2.1.1.2", "P1", "DOE^JOHN");
	capture_object_info o3 = obj("1.2.1", "1.2.1.2", "1.2.1.2.1", "P1", "DOE^JOHN");
	long before;
	dh_cc *cc;

	CU_ASSERT_EQUAL(put(&o), CAPTURE_NEW);
	CU_ASSERT_EQUAL(put(&o2), CAPTURE_NEW);
	CU_ASSERT_EQUAL(put(&o3), CAPTURE_NEW);
	CU_ASSERT_EQUAL(last_seq(), 0);
	CU_ASSERT_STRING_EQUAL(val("SELECT fwd_state || received_sop_uid FROM ledger_instance WHERE sop_uid = $1",
				   "1.2.1.1.1", NULL, NULL), "pending1.2.1.1.1");
	/* sent again unchanged */
	CU_ASSERT_EQUAL(put(&o), CAPTURE_SAME);
	CU_ASSERT_EQUAL(last_seq(), 0);
	CU_ASSERT_EQUAL(lval("SELECT count(*) FROM ledger_instance", NULL, NULL, NULL), 3);
	/* patient name changed: one STUDY-level change for the whole study */
	before = last_seq();
	o.patient_name = "DOE^JANE";
	CU_ASSERT_EQUAL(put(&o), CAPTURE_CHANGED);
	cc = check_recorded(before, 1, DH_CC_ATTRIBUTE_CHANGE);
	if (cc) {
		const Dhcc__AttributeChange *a = dh_cc_message(cc)->attribute_change;

		CU_ASSERT_EQUAL(a->level, DHCC__LEVEL__LEVEL_STUDY);
		CU_ASSERT_STRING_EQUAL(a->target->study_uid, "1.2.1");
		CU_ASSERT_EQUAL(a->n_attributes, 1);
		if (a->n_attributes == 1) {
			CU_ASSERT_EQUAL(a->attributes[0]->tag, 0x00100010u);
			CU_ASSERT_STRING_EQUAL(a->attributes[0]->old_value, "DOE^JOHN");
			CU_ASSERT_STRING_EQUAL(a->attributes[0]->new_value, "DOE^JANE");
		}
	}
	dh_cc_free(cc);
	CU_ASSERT_EQUAL(lval("SELECT count(*) FROM ledger_instance WHERE study_uid = '1.2.1' AND patient_name = "
			     "'DOE^JANE'", NULL, NULL, NULL), 3);
	/* series description and instance number changed: SERIES + INSTANCE */
	before = last_seq();
	o.series_description = "NEW SER";
	o.instance_number = "7";
	CU_ASSERT_EQUAL(put(&o), CAPTURE_CHANGED);
	cc = check_recorded(before, 2, DH_CC_ATTRIBUTE_CHANGE);
	if (cc) {
		const Dhcc__AttributeChange *a = dh_cc_message(cc)->attribute_change;

		CU_ASSERT_EQUAL(a->level, DHCC__LEVEL__LEVEL_INSTANCE);
		CU_ASSERT_STRING_EQUAL(a->target->sop_uid, "1.2.1.1.1");
	}
	dh_cc_free(cc);
	CU_ASSERT_EQUAL(lval("SELECT count(*) FROM ledger_instance WHERE series_description = 'NEW SER'", NULL, NULL,
			     NULL), 2); /* the series, not the other series */
	CU_ASSERT_EQUAL(lval("SELECT count(*) FROM ledger_instance WHERE instance_number = '7'", NULL, NULL, NULL), 1);
	CU_ASSERT_EQUAL(put(&o), CAPTURE_SAME);
	/* the stored file's UIDs never change */
	CU_ASSERT_EQUAL(lval("SELECT count(*) FROM ledger_instance WHERE received_sop_uid <> sop_uid", NULL, NULL,
			     NULL), 0);
}

static void test_object_conflicts(void)
{
	capture_object_info o = obj("1.3.1", "1.3.1.1", "1.3.1.1.1", "P3", "ROE^RICHARD");
	capture_object_info dup = obj("1.3.2", "1.3.2.1", "1.3.1.1.1", "P4", "ROE^RITA");
	capture_object_info other_series = obj("1.3.1", "1.3.1.9", "1.3.1.1.1", "P3", "ROE^RICHARD");
	capture_verdict v;
	char why[256], err[256], *snap;
	long before;
	dh_cc *cc;

	CU_ASSERT_EQUAL(put(&o), CAPTURE_NEW);
	put_new("1.3.1", "1.3.1.1", "1.3.1.1.2", "P3");
	/* reject (default) */
	cfg.sop_conflict = SPOKE_CONFLICT_REJECT;
	snap = snapshot();
	CU_ASSERT_EQUAL(capture_object(conn, &cfg, &dup, &v, why, sizeof(why), err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(v, CAPTURE_REJECTED);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "held in study 1.3.1;"));
	CU_ASSERT_EQUAL(put(&other_series), CAPTURE_REJECTED);
	{
		char *after = snapshot();

		CU_ASSERT_STRING_EQUAL(snap, after);
		free(after);
	}
	free(snap);
	/* split: moves the held object to the new study; its series stays partly behind */
	cfg.sop_conflict = SPOKE_CONFLICT_SPLIT;
	before = last_seq();
	CU_ASSERT_EQUAL(put(&dup), CAPTURE_SPLIT);
	cc = check_recorded(before, 1, DH_CC_SPLIT);
	if (cc) {
		const Dhcc__Split *s = dh_cc_message(cc)->split;

		CU_ASSERT_STRING_EQUAL(s->source_study_uid, "1.3.1");
		CU_ASSERT_STRING_EQUAL(s->target_study_uid, "1.3.2");
		CU_ASSERT(s->target_is_new);
		CU_ASSERT_EQUAL(s->n_moved, 1);
		CU_ASSERT_EQUAL(s->n_uid_map, 2); /* STUDY and SERIES (received series differs) */
		CU_ASSERT(s->n_target_attributes >= 2);
	}
	dh_cc_free(cc);
	CU_ASSERT_STRING_EQUAL(val("SELECT study_uid || ' ' || series_uid || ' ' || patient_name FROM ledger_instance "
				   "WHERE sop_uid = '1.3.1.1.1' AND deleted_at IS NULL", NULL, NULL, NULL),
			       "1.3.2 1.3.2.1 ROE^RITA");
	CU_ASSERT_EQUAL(put(&dup), CAPTURE_SAME);
	/* forward: a second ledger row under the other study */
	cfg.sop_conflict = SPOKE_CONFLICT_FORWARD;
	before = last_seq();
	CU_ASSERT_EQUAL(put(&o), CAPTURE_NEW);
	CU_ASSERT_EQUAL(last_seq(), before);
	CU_ASSERT_EQUAL(lval("SELECT count(*) FROM ledger_instance WHERE sop_uid = '1.3.1.1.1' AND deleted_at IS NULL "
			     "AND fwd_state = 'pending'", NULL, NULL, NULL), 2);
	cfg.sop_conflict = SPOKE_CONFLICT_REJECT;
}

/* ---- operations ---- */

static void test_split(void)
{
	const char *sops[] = { "1.4.1.1.1", "1.4.1.2.1" };
	capture_attr attrs[] = { { 0x00100020u, "P9" }, { 0x00100010u, "NEW^PATIENT" } };
	capture_split_req req = { "1.4.1", sops, 2, NULL, 1, attrs, 2 };
	capture_result res;
	char err[256];
	long before;
	dh_cc *cc;

	put_new("1.4.1", "1.4.1.1", "1.4.1.1.1", "P5");
	put_new("1.4.1", "1.4.1.1", "1.4.1.1.2", "P5");
	put_new("1.4.1", "1.4.1.2", "1.4.1.2.1", "P5");
	before = last_seq();
	CU_ASSERT_EQUAL_FATAL(capture_split(conn, &cfg, &who, &req, &res, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(res.sequence, (uint64_t)before + 1);
	CU_ASSERT(res.n_items == 2 && strcmp(res.items[0].key, "study") == 0 &&
		  strcmp(res.items[1].key, "series") == 0 && strcmp(res.items[1].old, "1.4.1.1") == 0);
	cc = check_recorded(before, 1, DH_CC_SPLIT);
	if (cc && res.n_items == 2) {
		const Dhcc__Split *s = dh_cc_message(cc)->split;

		CU_ASSERT_STRING_EQUAL(s->target_study_uid, res.items[0].uid);
		CU_ASSERT(s->target_is_new);
		CU_ASSERT_EQUAL(s->n_moved, 2);
		/* STUDY + the partly moved series; the whole series 1.4.1.2 keeps its UID */
		CU_ASSERT_EQUAL(s->n_uid_map, 2);
		CU_ASSERT_STRING_EQUAL(dh_cc_operator(cc), "tester");
		CU_ASSERT_STRING_EQUAL(dh_cc_reason(cc), "unit test");
		CU_ASSERT_STRING_EQUAL(val("SELECT series_uid || patient_id || patient_name FROM ledger_instance WHERE "
					   "sop_uid = '1.4.1.1.1' AND study_uid = $1", res.items[0].uid, NULL, NULL),
				       (snprintf(err, sizeof(err), "%sP9NEW^PATIENT", res.items[1].uid), err));
		CU_ASSERT_EQUAL(lval("SELECT count(*) FROM ledger_instance WHERE study_uid = $1 AND series_uid = "
				     "'1.4.1.2'", res.items[0].uid, NULL, NULL), 1);
		char seq[24], want[128];

		snprintf(seq, sizeof(seq), "%ld", before + 1);
		snprintf(want, sizeof(want), "{1.4.1,%s}", res.items[0].uid);
		CU_ASSERT_STRING_EQUAL(val("SELECT studies::text FROM cc_history WHERE sequence = $1::bigint", seq,
					   NULL, NULL), want);
	}
	dh_cc_free(cc);
	CU_ASSERT_EQUAL(lval("SELECT count(*) FROM ledger_instance WHERE study_uid = '1.4.1' AND patient_id = 'P5'",
			     NULL, NULL, NULL), 1);
	capture_result_free(&res);
}

/* Runs op, which must fail, and checks that nothing changed. */
#define EXPECT_REFUSED(call, needle)                                                                              \
	do {                                                                                                      \
		char *before_ = snapshot(), *after_;                                                              \
		char err_[256] = "";                                                                              \
		capture_result res_;                                                                              \
		CU_ASSERT_EQUAL(call(conn, &cfg, &who, &bad, &res_, err_, sizeof(err_)), -1);                     \
		CU_ASSERT_PTR_NOT_NULL(strstr(err_, needle));                                                     \
		if (!strstr(err_, needle))                                                                        \
			fprintf(stderr, "message: %s\n", err_);                                                   \
		CU_ASSERT_EQUAL(res_.sequence, 0);                                                                \
		capture_result_free(&res_);                                                                       \
		after_ = snapshot();                                                                              \
		CU_ASSERT_STRING_EQUAL(before_, after_);                                                          \
		free(before_), free(after_);                                                                      \
	} while (0)

static void test_invalid_changes_nothing(void)
{
	put_new("1.5.1", "1.5.1.1", "1.5.1.1.1", "P6");
	put_new("1.5.1", "1.5.1.1", "1.5.1.1.2", "P6");
	put_new("1.5.2", "1.5.2.1", "1.5.2.1.1", "P6");
	{
		const char *sops[] = { "1.5.1.1.1", "1.5.2.1.1" }; /* the second is another study's */
		capture_split_req bad = { "1.5.1", sops, 2, NULL, 1, NULL, 0 };

		EXPECT_REFUSED(capture_split, "1.5.2.1.1");
	}
	{
		const char *sops[] = { "1.5.1.1.1" };
		capture_split_req bad = { "1.5.1", sops, 1, "1.5.9", 0, NULL, 0 }; /* no such target */

		EXPECT_REFUSED(capture_split, "not in the ledger");
	}
	{
		const char *sops[] = { "1.5.1.1.1" };
		capture_attr a[] = { { 0x0008103Eu, "X" } }; /* a series attribute */
		capture_split_req bad = { "1.5.1", sops, 1, NULL, 1, a, 1 };

		EXPECT_REFUSED(capture_split, "SeriesDescription");
	}
	{
		const char *src[] = { "1.5.1", "1.5.404" };
		capture_merge_req bad = { src, 2, NULL, 1 };

		EXPECT_REFUSED(capture_merge, "1.5.404");
	}
	{
		const char *s1[] = { "1.5.1.1.1" };
		capture_segment_target tg[] = { { "A1", NULL, s1, 1 }, { "A2", NULL, s1, 1 } };
		capture_segment_req bad = { "1.5.1", 0, tg, 2 }; /* 1.5.1.1.2 in no target */

		EXPECT_REFUSED(capture_segment, "1.5.1.1.2");
	}
	{
		capture_attr a[] = { { 0x00100010u, "X^Y" } };
		capture_modify_req bad = { DH_CC_LEVEL_SERIES, NULL, "1.5.1", "1.5.1.1", NULL, a, 1 };

		EXPECT_REFUSED(capture_modify, "patient attribute");
	}
	{
		capture_attr a[] = { { 0x00100020u, "P6" } };
		capture_modify_req bad = { DH_CC_LEVEL_STUDY, NULL, "1.5.1", NULL, NULL, a, 1 };

		EXPECT_REFUSED(capture_modify, "nothing to change");
	}
	{
		const char *sops[] = { "1.5.1.1.9" };
		capture_delete_req bad = { "1.5.1", NULL, sops, 1 };

		EXPECT_REFUSED(capture_delete, "1.5.1.1.9");
	}
	{
		capture_fixup_req bad = { "1.5.1", "1.5.2", "ORD1", NULL, 0 }; /* new UID in use */

		EXPECT_REFUSED(capture_fixup, "already in the ledger");
	}
	{
		capture_fixup_req bad = { "1.5.1", NULL, "", NULL, 0 };

		EXPECT_REFUSED(capture_fixup, "accession");
	}
}

static void test_merge(void)
{
	const char *src[] = { "1.6.1", "1.6.2" };
	capture_merge_req req = { src, 2, "1.6.3", 0 };
	capture_result res;
	char err[256];
	long before;
	dh_cc *cc;

	put_new("1.6.1", "1.6.1.1", "1.6.1.1.1", "P7");
	put_new("1.6.1", "1.6.1.1", "1.6.1.1.2", "P7");
	put_new("1.6.2", "1.6.2.1", "1.6.2.1.1", "P8");
	put_new("1.6.3", "1.6.3.1", "1.6.3.1.1", "P7");
	before = last_seq();
	CU_ASSERT_EQUAL_FATAL(capture_merge(conn, &cfg, &who, &req, &res, err, sizeof(err)), 0);
	cc = check_recorded(before, 1, DH_CC_MERGE);
	if (cc) {
		const Dhcc__Merge *m = dh_cc_message(cc)->merge;

		CU_ASSERT_EQUAL(m->n_source_study_uids, 2);
		CU_ASSERT_STRING_EQUAL(m->destination_study_uid, "1.6.3");
		CU_ASSERT_EQUAL(m->n_moved, 3);
		CU_ASSERT_EQUAL(m->n_uid_map, 2 + 2 + 3); /* STUDY x2, SERIES x2, INSTANCE x3 */
	}
	dh_cc_free(cc);
	CU_ASSERT_EQUAL(res.n_items, 1 + 2 + 3);
	CU_ASSERT_EQUAL(lval("SELECT count(*) FROM ledger_instance WHERE study_uid = '1.6.3' AND patient_id = 'P7' "
			     "AND deleted_at IS NULL", NULL, NULL, NULL), 4);
	CU_ASSERT_EQUAL(lval("SELECT count(*) FROM ledger_instance WHERE study_uid IN ('1.6.1', '1.6.2')", NULL, NULL,
			     NULL), 0);
	CU_ASSERT_EQUAL(lval("SELECT count(*) FROM ledger_instance WHERE received_study_uid IN ('1.6.1', '1.6.2') AND "
			     "sop_uid <> received_sop_uid AND series_uid <> received_series_uid", NULL, NULL, NULL), 3);
	capture_result_free(&res);
}

static void test_segment(void)
{
	const char *a[] = { "1.7.1.1.1", "1.7.1.1.2" }, *b[] = { "1.7.1.1.2", "1.7.1.2.1" };
	capture_segment_target tg[] = { { "ORD-A", NULL, a, 2 }, { "ORD-B", "1.7.20", b, 2 } };
	capture_segment_req req = { "1.7.1", 0, tg, 2 };
	capture_result res;
	char err[256];
	long before;
	dh_cc *cc;

	put_new("1.7.1", "1.7.1.1", "1.7.1.1.1", "P10");
	put_new("1.7.1", "1.7.1.1", "1.7.1.1.2", "P10");
	put_new("1.7.1", "1.7.1.2", "1.7.1.2.1", "P10");
	before = last_seq();
	CU_ASSERT_EQUAL_FATAL(capture_segment(conn, &cfg, &who, &req, &res, err, sizeof(err)), 0);
	cc = check_recorded(before, 1, DH_CC_SEGMENT);
	if (cc) {
		const Dhcc__Segment *s = dh_cc_message(cc)->segment;

		CU_ASSERT_FALSE(s->keep_source);
		CU_ASSERT_EQUAL_FATAL(s->n_targets, 2);
		CU_ASSERT_STRING_EQUAL(s->targets[1]->study_uid, "1.7.20");
		CU_ASSERT_STRING_EQUAL(s->targets[0]->accession_number, "ORD-A");
		CU_ASSERT_EQUAL(s->targets[0]->n_uid_map, 1); /* series 1.7.1.1 moves whole into A */
		/* B: STUDY, the copy's SOP and its series, series 1.7.1.2 whole */
		CU_ASSERT_EQUAL(s->targets[1]->n_uid_map, 3);
	}
	dh_cc_free(cc);
	CU_ASSERT_EQUAL(lval("SELECT count(*) FROM ledger_instance WHERE deleted_at IS NULL AND received_study_uid = "
			     "'1.7.1'", NULL, NULL, NULL), 4);
	CU_ASSERT_EQUAL(lval("SELECT count(*) FROM ledger_instance WHERE study_uid = '1.7.20' AND accession = 'ORD-B'",
			     NULL, NULL, NULL), 2);
	CU_ASSERT_EQUAL(lval("SELECT count(*) FROM ledger_instance WHERE fwd_state = 'cc' AND received_sop_uid = "
			     "'1.7.1.1.2' AND study_uid = '1.7.20' AND sop_uid <> '1.7.1.1.2'", NULL, NULL, NULL), 1);
	CU_ASSERT_EQUAL(lval("SELECT count(*) FROM ledger_instance WHERE study_uid = '1.7.1'", NULL, NULL, NULL), 0);
	capture_result_free(&res);

	/* copy: the source stays, every copy gets a new SOP UID */
	{
		const char *c1[] = { "1.7.20.x" };
		capture_segment_target t1[] = { { "ORD-C", NULL, c1, 1 } };
		capture_segment_req keep = { "1.7.20", 1, t1, 1 };

		c1[0] = "1.7.1.2.1";
		before = last_seq();
		CU_ASSERT_EQUAL_FATAL(capture_segment(conn, &cfg, &who, &keep, &res, err, sizeof(err)), 0);
		cc = check_recorded(before, 1, DH_CC_SEGMENT);
		if (cc)
			CU_ASSERT(dh_cc_message(cc)->segment->keep_source);
		dh_cc_free(cc);
		CU_ASSERT_EQUAL(lval("SELECT count(*) FROM ledger_instance WHERE study_uid = '1.7.20'", NULL, NULL, NULL),
				2);
		CU_ASSERT_EQUAL(lval("SELECT count(*) FROM ledger_instance WHERE accession = 'ORD-C' AND fwd_state = 'cc'",
				     NULL, NULL, NULL), 1);
		capture_result_free(&res);
	}
}

static void test_modify(void)
{
	capture_attr pa[] = { { 0x00100010u, "SMITH^ANN" }, { 0x00100030u, "19700101" } };
	capture_modify_req pat = { DH_CC_LEVEL_PATIENT, "P11", NULL, NULL, NULL, pa, 2 };
	capture_attr sa[] = { { 0x00081030u, "CT HEAD" }, { 0x00100010u, "SMITH^ANN" } };
	capture_modify_req st = { DH_CC_LEVEL_STUDY, NULL, "1.8.1", NULL, NULL, sa, 2 };
	capture_attr ia[] = { { 0x00200013u, "42" } };
	capture_modify_req in = { DH_CC_LEVEL_INSTANCE, NULL, "1.8.1", "1.8.1.1", "1.8.1.1.1", ia, 1 };
	capture_result res;
	char err[256];
	long before;
	dh_cc *cc;

	put_new("1.8.1", "1.8.1.1", "1.8.1.1.1", "P11");
	put_new("1.8.2", "1.8.2.1", "1.8.2.1.1", "P11");
	before = last_seq();
	CU_ASSERT_EQUAL_FATAL(capture_modify(conn, &cfg, &who, &pat, &res, err, sizeof(err)), 0);
	cc = check_recorded(before, 1, DH_CC_ATTRIBUTE_CHANGE);
	if (cc) {
		const Dhcc__AttributeChange *a = dh_cc_message(cc)->attribute_change;

		CU_ASSERT_EQUAL(a->level, DHCC__LEVEL__LEVEL_PATIENT);
		CU_ASSERT_STRING_EQUAL(a->patient_id, "P11");
		CU_ASSERT_EQUAL(a->n_attributes, 2);
	}
	dh_cc_free(cc);
	capture_result_free(&res);
	CU_ASSERT_EQUAL(lval("SELECT count(*) FROM ledger_instance WHERE patient_name = 'SMITH^ANN' AND birth_date = "
			     "'19700101'", NULL, NULL, NULL), 2);
	/* study level: the name is already right, only the description goes */
	before = last_seq();
	CU_ASSERT_EQUAL_FATAL(capture_modify(conn, &cfg, &who, &st, &res, err, sizeof(err)), 0);
	cc = check_recorded(before, 1, DH_CC_ATTRIBUTE_CHANGE);
	if (cc) {
		const Dhcc__AttributeChange *a = dh_cc_message(cc)->attribute_change;

		CU_ASSERT_EQUAL(a->level, DHCC__LEVEL__LEVEL_STUDY);
		CU_ASSERT_EQUAL_FATAL(a->n_attributes, 1);
		CU_ASSERT_STRING_EQUAL(a->attributes[0]->old_value, "STUDY");
		CU_ASSERT_STRING_EQUAL(a->attributes[0]->vr, "LO");
	}
	dh_cc_free(cc);
	capture_result_free(&res);
	CU_ASSERT_STRING_EQUAL(val("SELECT study_description FROM ledger_instance WHERE study_uid = '1.8.2'", NULL, NULL,
				   NULL), "STUDY");
	before = last_seq();
	CU_ASSERT_EQUAL_FATAL(capture_modify(conn, &cfg, &who, &in, &res, err, sizeof(err)), 0);
	cc = check_recorded(before, 1, DH_CC_ATTRIBUTE_CHANGE);
	dh_cc_free(cc);
	capture_result_free(&res);
	CU_ASSERT_STRING_EQUAL(val("SELECT instance_number FROM ledger_instance WHERE sop_uid = '1.8.1.1.1'", NULL, NULL,
				   NULL), "42");
}

static void test_delete(void)
{
	const char *sops[] = { "1.9.1.1.2" };
	capture_delete_req one = { "1.9.1", NULL, sops, 1 };
	capture_delete_req series = { "1.9.1", "1.9.1.2", NULL, 0 };
	capture_delete_req study = { "1.9.1", NULL, NULL, 0 };
	capture_result res;
	char err[256];
	long before;
	dh_cc *cc;

	put_new("1.9.1", "1.9.1.1", "1.9.1.1.1", "P12");
	put_new("1.9.1", "1.9.1.1", "1.9.1.1.2", "P12");
	put_new("1.9.1", "1.9.1.2", "1.9.1.2.1", "P12");
	before = last_seq();
	CU_ASSERT_EQUAL_FATAL(capture_delete(conn, &cfg, &who, &one, &res, err, sizeof(err)), 0);
	cc = check_recorded(before, 1, DH_CC_DELETE);
	if (cc) {
		const Dhcc__Delete *d = dh_cc_message(cc)->deletion;

		CU_ASSERT_EQUAL_FATAL(d->n_objects, 1);
		CU_ASSERT_STRING_EQUAL(d->objects[0]->series_uid, "1.9.1.1");
		CU_ASSERT_STRING_EQUAL(d->objects[0]->sop_uid, "1.9.1.1.2");
	}
	dh_cc_free(cc);
	capture_result_free(&res);
	CU_ASSERT_EQUAL(lval("SELECT count(*) FROM ledger_instance WHERE study_uid = '1.9.1' AND deleted_at IS NULL",
			     NULL, NULL, NULL), 2);
	before = last_seq();
	CU_ASSERT_EQUAL_FATAL(capture_delete(conn, &cfg, &who, &series, &res, err, sizeof(err)), 0);
	cc = check_recorded(before, 1, DH_CC_DELETE);
	if (cc) {
		const Dhcc__Delete *d = dh_cc_message(cc)->deletion;

		CU_ASSERT_STRING_EQUAL(d->objects[0]->series_uid, "1.9.1.2");
		CU_ASSERT_STRING_EQUAL(d->objects[0]->sop_uid, "");
	}
	dh_cc_free(cc);
	capture_result_free(&res);
	before = last_seq();
	CU_ASSERT_EQUAL_FATAL(capture_delete(conn, &cfg, &who, &study, &res, err, sizeof(err)), 0);
	dh_cc_free(check_recorded(before, 1, DH_CC_DELETE));
	capture_result_free(&res);
	CU_ASSERT_EQUAL(lval("SELECT count(*) FROM ledger_instance WHERE study_uid = '1.9.1' AND deleted_at IS NULL",
			     NULL, NULL, NULL), 0);
	/* a deleted object sent again is new */
	put_new("1.9.1", "1.9.1.1", "1.9.1.1.2", "P12");
}

/* IOCM: a rejection note hides what it names at once, with no cc; a later arrival is deleted on arrival. */
static void test_rejection_note(void)
{
	const char *sops[] = { "1.9.5.1.1", "1.9.5.1.3" }, *studies[] = { "1.9.5", "1.9.5" };
	const char *bad[] = { "1.9.x" };
	capture_object_info note = obj("1.9.5", "1.9.5.9", "1.9.5.9.1", "P15", "DOE^JOHN");
	long before;

	put_new("1.9.5", "1.9.5.1", "1.9.5.1.1", "P15");
	put_new("1.9.5", "1.9.5.1", "1.9.5.1.2", "P15");
	note.sop_class_uid = "1.2.840.10008.5.1.4.1.1.88.59";
	note.rejected_sops = sops, note.rejected_studies = studies, note.n_rejected = 2;
	note.rejection_code = "113001";
	before = last_seq();
	CU_ASSERT_EQUAL(put(&note), CAPTURE_NEW);
	CU_ASSERT_EQUAL(last_seq(), before); /* no cc: the note itself is forwarded */
	CU_ASSERT_EQUAL(lval("SELECT count(*) FROM ledger_instance WHERE study_uid = '1.9.5' AND deleted_at IS NULL",
			     NULL, NULL, NULL), 2); /* 1.9.5.1.2 and the note */
	CU_ASSERT_EQUAL(lval("SELECT count(*) FROM ledger_instance WHERE sop_uid = '1.9.5.1.1' AND deleted_at IS NOT NULL",
			     NULL, NULL, NULL), 1);
	CU_ASSERT_EQUAL(lval("SELECT count(*) FROM rejected_instance WHERE note_sop_uid = '1.9.5.9.1' AND title_code = "
			     "'113001'", NULL, NULL, NULL), 2);
	/* the note again: nothing changes */
	CU_ASSERT_EQUAL(put(&note), CAPTURE_SAME);
	CU_ASSERT_EQUAL(lval("SELECT count(*) FROM rejected_instance", NULL, NULL, NULL), 2);
	/* the rejected instance not received before: recorded, deleted at once (still forwarded: pending) */
	put_new("1.9.5", "1.9.5.1", "1.9.5.1.3", "P15");
	CU_ASSERT_STRING_EQUAL(val("SELECT (deleted_at IS NOT NULL)::text || ' ' || fwd_state FROM ledger_instance "
				   "WHERE sop_uid = '1.9.5.1.3'", NULL, NULL, NULL), "true pending");
	/* the same SOP UID in another study is not the rejected one */
	put_new("1.9.6", "1.9.6.1", "1.9.5.1.3", "P15");
	CU_ASSERT_EQUAL(lval("SELECT count(*) FROM ledger_instance WHERE study_uid = '1.9.6' AND deleted_at IS NULL",
			     NULL, NULL, NULL), 1);
	/* invalid references: refused as a whole, nothing recorded */
	capture_object_info broken = obj("1.9.7", "1.9.7.9", "1.9.7.9.1", "P15", "DOE^JOHN");
	broken.rejected_sops = bad, broken.rejected_studies = bad, broken.n_rejected = 1;
	char *snap = snapshot(), why[256], err[256];
	capture_verdict v;
	CU_ASSERT_EQUAL(capture_object(conn, &cfg, &broken, &v, why, sizeof(why), err, sizeof(err)), -1);
	char *after = snapshot();
	CU_ASSERT_STRING_EQUAL(snap, after);
	free(snap);
	free(after);
}

static void test_fixup(void)
{
	capture_attr a[] = { { 0x00081030u, "FROM ORDER" } };
	capture_fixup_req req = { "1.10.1", NULL, "ORD-9", a, 1 };
	capture_result res;
	char err[256];
	long before;
	dh_cc *cc;

	put_new("1.10.1", "1.10.1.1", "1.10.1.1.1", "P13");
	put_new("1.10.1", "1.10.1.1", "1.10.1.1.2", "P13");
	before = last_seq();
	CU_ASSERT_EQUAL_FATAL(capture_fixup(conn, &cfg, &who, &req, &res, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL_FATAL(res.n_items, 1);
	cc = check_recorded(before, 1, DH_CC_UID_FIXUP);
	if (cc) {
		const Dhcc__UidFixup *f = dh_cc_message(cc)->uid_fixup;

		CU_ASSERT_STRING_EQUAL(f->old_study_uid, "1.10.1");
		CU_ASSERT_STRING_EQUAL(f->new_study_uid, res.items[0].uid);
		CU_ASSERT_STRING_EQUAL(f->accession_number, "ORD-9");
		CU_ASSERT_EQUAL(f->n_attributes, 1);
	}
	dh_cc_free(cc);
	CU_ASSERT_EQUAL(lval("SELECT count(*) FROM ledger_instance WHERE study_uid = $1 AND accession = 'ORD-9' AND "
			     "study_description = 'FROM ORDER' AND received_study_uid = '1.10.1'",
			     res.items[0].uid, NULL, NULL), 2);
	capture_result_free(&res);
}

static void test_status_and_ledger(void)
{
	capture_status st;
	char err[256], *buf = NULL;
	size_t len = 0;
	FILE *f;

	CU_ASSERT_EQUAL_FATAL(capture_status_get(conn, &st, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(st.last_sequence, (uint64_t)last_seq());
	CU_ASSERT_EQUAL(st.outbox, lval("SELECT count(*) FROM outbox", NULL, NULL, NULL));
	CU_ASSERT(st.pending > 0 && st.cc >= 2 && st.deleted >= 3);
	CU_ASSERT_EQUAL(st.acked_through, 0);
	f = open_memstream(&buf, &len);
	CU_ASSERT_EQUAL(capture_ledger_print(conn, "1.7.20", 1, f, err, sizeof(err)), 0);
	fclose(f);
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\"AccessionNumber\":\"ORD-B\""));
	free(buf);
	CU_ASSERT_EQUAL(capture_ledger_print(conn, "9.9.9", 0, stdout, err, sizeof(err)), -1);
	/* attribute names */
	{
		uint32_t tag = 0;

		CU_ASSERT_EQUAL(capture_attr_parse("PatientName", &tag, err, sizeof(err)), 0);
		CU_ASSERT_EQUAL(tag, 0x00100010u);
		CU_ASSERT_EQUAL(capture_attr_parse("0008,103e", &tag, err, sizeof(err)), 0);
		CU_ASSERT_EQUAL(tag, 0x0008103Eu);
		CU_ASSERT_EQUAL(capture_attr_parse("7FE0,0010", &tag, err, sizeof(err)), -1);
		CU_ASSERT_EQUAL(capture_attr_parse("Bogus", &tag, err, sizeof(err)), -1);
	}
}

int main(void)
{
	CU_pSuite s;
	unsigned failures;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("capture", suite_init, suite_clean);
	if (!s || !CU_add_test(s, "object: new, same, changed", test_object_new_same_changed) ||
	    !CU_add_test(s, "object: conflict policies", test_object_conflicts) ||
	    !CU_add_test(s, "split", test_split) ||
	    !CU_add_test(s, "invalid requests change nothing", test_invalid_changes_nothing) ||
	    !CU_add_test(s, "merge", test_merge) || !CU_add_test(s, "segment", test_segment) ||
	    !CU_add_test(s, "modify", test_modify) || !CU_add_test(s, "delete", test_delete) ||
	    !CU_add_test(s, "IOCM rejection note", test_rejection_note) ||
	    !CU_add_test(s, "fix-uid", test_fixup) || !CU_add_test(s, "status and ledger", test_status_and_ledger)) {
		CU_cleanup_registry();
		return 2;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
	CU_cleanup_registry();
	return failures == 0 ? 0 : 1;
}
