/*
 * test_qr_query.c - unit tests of the C-FIND identifier → SQL translation
 * (hub/qr/qr_query.c): values only as parameters, LIKE escaping, ranges,
 * combined date-time (conformance footnote 6), UID lists, the Other
 * Patient IDs rules, relational keys, and the A900 cases of levels/models.
 */
#include "qr_query.h"
#include "dcm.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <string.h>

static qr_ident mk(qr_model_kind model, const char *level)
{
	qr_ident id;
	memset(&id, 0, sizeof(id));
	id.model = model;
	id.level = level;
	return id;
}

static void add(qr_ident *id, uint32_t tag, const char *v)
{
	id->key[id->n_keys].tag = tag;
	id->key[id->n_keys].value = v;
	id->n_keys++;
}

static int has_param(const qr_sql *q, const char *v)
{
	for (int k = 0; k < q->n_params; k++)
		if (strcmp(q->params[k], v) == 0)
			return 1;
	return 0;
}

static int build_ok(const qr_ident *id, qr_sql *q)
{
	char err[256] = "";
	int rc = qr_query_build(id, q, err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "unexpected %d: %s\n", rc, err);
	return rc == 0;
}

static void test_wildcard_escaping(void)
{
	qr_ident id = mk(QR_MODEL_STUDY_ROOT, "STUDY");
	add(&id, DH_TAG(0x0008, 0x0050), "A%_\\'; DROP TABLE study; --*?");
	add(&id, DH_TAG(0x0010, 0x0010), "o'BRIEN*");
	qr_sql q;
	CU_ASSERT_FATAL(build_ok(&id, &q));
	/* nothing of the values reaches the SQL text */
	CU_ASSERT_PTR_NULL(strstr(q.sql, "DROP"));
	CU_ASSERT_PTR_NULL(strstr(q.sql, "BRIEN"));
	CU_ASSERT_PTR_NULL(strstr(q.sql, "o'"));
	/* % _ \ of the value escaped, then * → % and ? → _ */
	CU_ASSERT(has_param(&q, "A\\%\\_\\\\'; DROP TABLE study; --%_"));
	CU_ASSERT(has_param(&q, "o'BRIEN%"));
	CU_ASSERT_PTR_NOT_NULL(strstr(q.sql, "st.accession LIKE $"));
	CU_ASSERT_PTR_NOT_NULL(strstr(q.sql, "lower(p.patient_name) LIKE lower($"));
	CU_ASSERT_PTR_NOT_NULL(strstr(q.sql, "ESCAPE '\\'"));
	qr_sql_free(&q);
}

static void test_single_and_universal(void)
{
	qr_ident id = mk(QR_MODEL_PATIENT_ROOT, "PATIENT");
	add(&id, DH_TAG(0x0010, 0x0020), "PID_1%");  /* no wild card: equality, no escaping */
	add(&id, DH_TAG(0x0010, 0x0010), "*");       /* universal */
	add(&id, DH_TAG(0x0010, 0x0040), "");        /* return key */
	qr_sql q;
	CU_ASSERT_FATAL(build_ok(&id, &q));
	CU_ASSERT_EQUAL(q.n_params, 1);
	CU_ASSERT(has_param(&q, "PID_1%"));
	CU_ASSERT_PTR_NOT_NULL(strstr(q.sql, "p.patient_id = $1"));
	CU_ASSERT_PTR_NULL(strstr(q.sql, "LIKE"));
	CU_ASSERT_EQUAL(q.n_cols, 3);
	CU_ASSERT_EQUAL(q.level, QR_LEVEL_PATIENT);
	qr_sql_free(&q);
}

static void test_case_insensitive_equality(void)
{
	qr_ident id = mk(QR_MODEL_STUDY_ROOT, "SERIES");
	add(&id, DH_TAG(0x0008, 0x0080), "General Hospital");
	add(&id, DH_TAG(0x0008, 0x1030), "Chest");
	qr_sql q;
	CU_ASSERT_FATAL(build_ok(&id, &q));
	CU_ASSERT_PTR_NOT_NULL(strstr(q.sql, "lower(se.institution) = lower($"));
	CU_ASSERT_PTR_NOT_NULL(strstr(q.sql, "lower(st.description) = lower($"));
	qr_sql_free(&q);
}

static void test_uid_list(void)
{
	qr_ident id = mk(QR_MODEL_STUDY_ROOT, "STUDY");
	add(&id, DH_TAG(0x0020, 0x000D), "1.2.3\\1.2.4\\1.2.5");
	qr_sql q;
	CU_ASSERT_FATAL(build_ok(&id, &q));
	CU_ASSERT(has_param(&q, "{\"1.2.3\",\"1.2.4\",\"1.2.5\"}"));
	CU_ASSERT_PTR_NOT_NULL(strstr(q.sql, "st.study_uid = ANY($1::text[])"));
	qr_sql_free(&q);

	qr_ident one = mk(QR_MODEL_STUDY_ROOT, "STUDY");
	add(&one, DH_TAG(0x0020, 0x000D), "1.2.3");
	CU_ASSERT_FATAL(build_ok(&one, &q));
	CU_ASSERT_PTR_NOT_NULL(strstr(q.sql, "st.study_uid = $1"));
	qr_sql_free(&q);
}

static void test_date_ranges(void)
{
	static const struct {
		const char *v, *lo, *hi;
	} cases[] = {
		{ "20060705-20060707", "20060705", "20060707~" },
		{ "20060705-", "20060705", NULL },
		{ "-20060707", NULL, "20060707~" },
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		qr_ident id = mk(QR_MODEL_STUDY_ROOT, "STUDY");
		add(&id, DH_TAG(0x0008, 0x0020), cases[k].v);
		qr_sql q;
		CU_ASSERT_FATAL(build_ok(&id, &q));
		CU_ASSERT_EQUAL(q.n_params, (cases[k].lo != NULL) + (cases[k].hi != NULL));
		if (cases[k].lo) {
			CU_ASSERT(has_param(&q, cases[k].lo));
			CU_ASSERT_PTR_NOT_NULL(strstr(q.sql, "st.study_date ~>=~ $"));
		}
		if (cases[k].hi) {
			CU_ASSERT(has_param(&q, cases[k].hi));
			CU_ASSERT_PTR_NOT_NULL(strstr(q.sql, "st.study_date ~<=~ $"));
		}
		/* open ranges exclude unknown (empty) dates */
		if (!cases[k].lo || !cases[k].hi)
			CU_ASSERT_PTR_NOT_NULL(strstr(q.sql, "st.study_date <> ''"));
		qr_sql_free(&q);
	}
	qr_ident id = mk(QR_MODEL_STUDY_ROOT, "STUDY");
	add(&id, DH_TAG(0x0008, 0x0020), "20060705");
	qr_sql q;
	CU_ASSERT_FATAL(build_ok(&id, &q));
	CU_ASSERT_PTR_NOT_NULL(strstr(q.sql, "st.study_date = $1"));
	qr_sql_free(&q);
}

static void test_combined_datetime(void)
{
	/* footnote 6: July 5 10:00 .. July 7 18:00, one interval */
	qr_ident id = mk(QR_MODEL_STUDY_ROOT, "STUDY");
	add(&id, DH_TAG(0x0008, 0x0020), "20060705-20060707");
	add(&id, DH_TAG(0x0008, 0x0030), "1000-1800");
	qr_sql q;
	CU_ASSERT_FATAL(build_ok(&id, &q));
	CU_ASSERT(has_param(&q, "200607051000"));
	CU_ASSERT(has_param(&q, "200607071800~"));
	CU_ASSERT_PTR_NOT_NULL(strstr(q.sql, "(st.study_date || st.study_time) ~>=~ $"));
	CU_ASSERT_PTR_NOT_NULL(strstr(q.sql, "(st.study_date || st.study_time) ~<=~ $"));
	/* no per-day time window */
	CU_ASSERT_PTR_NULL(strstr(q.sql, "st.study_time ~"));
	qr_sql_free(&q);

	/* time alone: a time window */
	qr_ident t = mk(QR_MODEL_STUDY_ROOT, "STUDY");
	add(&t, DH_TAG(0x0008, 0x0020), "");
	add(&t, DH_TAG(0x0008, 0x0030), "1000-1800");
	CU_ASSERT_FATAL(build_ok(&t, &q));
	CU_ASSERT_PTR_NOT_NULL(strstr(q.sql, "st.study_time ~>=~ $"));
	CU_ASSERT(has_param(&q, "1000"));
	CU_ASSERT(has_param(&q, "1800~"));
	qr_sql_free(&q);
}

static void test_levels_and_models(void)
{
	char err[256];
	qr_sql q;
	static const struct {
		qr_model_kind m;
		const char *level;
		int rc;
	} cases[] = {
		{ QR_MODEL_PATIENT_ROOT, "PATIENT", 0 }, { QR_MODEL_PATIENT_ROOT, "IMAGE", 0 },
		{ QR_MODEL_STUDY_ROOT, "PATIENT", QR_A900 }, { QR_MODEL_STUDY_ROOT, "SERIES", 0 },
		{ QR_MODEL_PSONLY, "STUDY", 0 }, { QR_MODEL_PSONLY, "SERIES", QR_A900 },
		{ QR_MODEL_PSONLY, "IMAGE", QR_A900 }, { QR_MODEL_STUDY_ROOT, NULL, QR_A900 },
		{ QR_MODEL_STUDY_ROOT, "BOGUS", QR_A900 }, { QR_MODEL_STUDY_ROOT, "study", QR_A900 },
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		qr_ident id = mk(cases[k].m, cases[k].level);
		err[0] = '\0';
		int rc = qr_query_build(&id, &q, err, sizeof(err));
		CU_ASSERT_EQUAL(rc, cases[k].rc);
		if (rc == QR_A900)
			CU_ASSERT(err[0] != '\0');
		qr_sql_free(&q);
	}
	/* a series key in the Patient/Study Only model */
	qr_ident id = mk(QR_MODEL_PSONLY, "STUDY");
	add(&id, DH_TAG(0x0008, 0x0060), "CT");
	CU_ASSERT_EQUAL(qr_query_build(&id, &q, err, sizeof(err)), QR_A900);
	qr_sql_free(&q);
}

static void test_relational(void)
{
	/* study level with a series key: EXISTS below; a patient key: joined */
	qr_ident id = mk(QR_MODEL_PATIENT_ROOT, "STUDY");
	add(&id, DH_TAG(0x0008, 0x0060), "MR");
	add(&id, DH_TAG(0x0010, 0x0020), "P1");
	qr_sql q;
	CU_ASSERT_FATAL(build_ok(&id, &q));
	CU_ASSERT_PTR_NOT_NULL(strstr(q.sql, "EXISTS (SELECT 1 FROM series se WHERE se.study_fk = st.pk AND se.modality = $"));
	CU_ASSERT_PTR_NOT_NULL(strstr(q.sql, "p.patient_id = $"));
	/* the series key is not a column of a study-level answer */
	CU_ASSERT_EQUAL(q.n_cols, 1);
	qr_sql_free(&q);

	qr_ident deep = mk(QR_MODEL_PATIENT_ROOT, "PATIENT");
	add(&deep, DH_TAG(0x0008, 0x0018), "1.2.3");
	CU_ASSERT_FATAL(build_ok(&deep, &q));
	CU_ASSERT_PTR_NOT_NULL(strstr(q.sql, "FROM study st JOIN series se ON se.study_fk = st.pk "
					     "JOIN instance i ON i.series_fk = se.pk WHERE st.patient_fk = p.pk"));
	qr_sql_free(&q);
}

static void test_modalities_and_counts(void)
{
	qr_ident id = mk(QR_MODEL_STUDY_ROOT, "STUDY");
	add(&id, DH_TAG(0x0008, 0x0061), "CT\\MR");
	add(&id, DH_TAG(0x0020, 0x1208), "");
	add(&id, DH_TAG(0x0008, 0x0056), "");
	qr_sql q;
	CU_ASSERT_FATAL(build_ok(&id, &q));
	CU_ASSERT(has_param(&q, "{\"CT\",\"MR\"}"));
	CU_ASSERT_EQUAL(q.n_cols, 3);
	CU_ASSERT_PTR_NOT_NULL(strstr(q.sql, "'ONLINE'"));
	qr_sql_free(&q);

	/* no Instance Availability at patient level */
	qr_ident p = mk(QR_MODEL_PATIENT_ROOT, "PATIENT");
	add(&p, DH_TAG(0x0008, 0x0056), "");
	CU_ASSERT_FATAL(build_ok(&p, &q));
	CU_ASSERT_EQUAL(q.n_cols, 0);
	qr_sql_free(&q);
}

static void test_other_patient_ids(void)
{
	char err[256];
	qr_sql q;
	qr_ident id = mk(QR_MODEL_PATIENT_ROOT, "PATIENT");
	add(&id, DH_TAG(0x0010, 0x0020), "P1");
	add(&id, DH_TAG(0x0010, 0x0021), "HOSP");
	id.other_ids = 1;
	id.n_other = 2;
	id.other_pid[0] = "X\"1";
	id.other_issuer[0] = "OTHER";
	id.other_pid[1] = "X2";
	id.other_issuer[1] = "OTHER";
	CU_ASSERT_FATAL(build_ok(&id, &q));
	CU_ASSERT(has_param(&q, "{\"P1\",\"X\\\"1\",\"X2\"}"));
	CU_ASSERT(has_param(&q, "{\"HOSP\",\"OTHER\",\"OTHER\"}"));
	CU_ASSERT_PTR_NOT_NULL(strstr(q.sql, "patient_other_id"));
	/* root Patient ID is part of the set, not matched on its own */
	CU_ASSERT_PTR_NULL(strstr(q.sql, "p.patient_id = $"));
	qr_sql_free(&q);

	/* a wild card, a missing issuer, a missing root issuer: A900 */
	id.other_pid[1] = "X*";
	CU_ASSERT_EQUAL(qr_query_build(&id, &q, err, sizeof(err)), QR_A900);
	id.other_pid[1] = "X2";
	id.other_issuer[1] = NULL;
	CU_ASSERT_EQUAL(qr_query_build(&id, &q, err, sizeof(err)), QR_A900);
	id.other_issuer[1] = "OTHER";
	id.n_keys = 1;
	CU_ASSERT_EQUAL(qr_query_build(&id, &q, err, sizeof(err)), QR_A900);

	/* empty sequence: a return key only */
	qr_ident e = mk(QR_MODEL_PATIENT_ROOT, "PATIENT");
	e.other_ids = 1;
	CU_ASSERT_FATAL(build_ok(&e, &q));
	CU_ASSERT_EQUAL(q.n_params, 0);
	CU_ASSERT_EQUAL(q.n_cols, 1);
	CU_ASSERT(q.col[0].seq);
	qr_sql_free(&q);
}

static void test_sequences(void)
{
	qr_ident id = mk(QR_MODEL_STUDY_ROOT, "IMAGE");
	id.request_attrs = 1;
	id.req_proc_id = "RP*";
	id.sps_id = "";
	id.concept_name = 1;
	id.code_value = "121071";
	id.code_scheme = "DCM";
	qr_sql q;
	CU_ASSERT_FATAL(build_ok(&id, &q));
	CU_ASSERT_PTR_NOT_NULL(strstr(q.sql, "EXISTS (SELECT 1 FROM series_request r WHERE r.series_fk = se.pk "
					     "AND r.requested_procedure_id LIKE $"));
	CU_ASSERT(has_param(&q, "RP%"));
	CU_ASSERT_PTR_NOT_NULL(strstr(q.sql, "i.concept_code_value = $"));
	CU_ASSERT_PTR_NOT_NULL(strstr(q.sql, "i.concept_scheme = $"));
	CU_ASSERT_EQUAL(q.n_cols, 2);
	qr_sql_free(&q);

	/* request sequence in the Patient/Study Only model */
	qr_ident ps = mk(QR_MODEL_PSONLY, "STUDY");
	ps.request_attrs = 1;
	char err[128];
	CU_ASSERT_EQUAL(qr_query_build(&ps, &q, err, sizeof(err)), QR_A900);
}

static void test_params_numbered(void)
{
	/* every $n in the text has a parameter, and none is unused */
	qr_ident id = mk(QR_MODEL_PATIENT_ROOT, "IMAGE");
	add(&id, DH_TAG(0x0010, 0x0010), "A*");
	add(&id, DH_TAG(0x0008, 0x0020), "20200101-");
	add(&id, DH_TAG(0x0008, 0x0030), "0800-");
	add(&id, DH_TAG(0x0020, 0x000E), "1.2\\1.3");
	add(&id, DH_TAG(0x0020, 0x0013), "1?");
	qr_sql q;
	CU_ASSERT_FATAL(build_ok(&id, &q));
	for (int k = 1; k <= q.n_params; k++) {
		char ref[16];
		snprintf(ref, sizeof(ref), "$%d", k);
		CU_ASSERT_PTR_NOT_NULL(strstr(q.sql, ref));
	}
	char over[16];
	snprintf(over, sizeof(over), "$%d", q.n_params + 1);
	CU_ASSERT_PTR_NULL(strstr(q.sql, over));
	CU_ASSERT(has_param(&q, "202001010800"));
	qr_sql_free(&q);
}

static void test_known_tags(void)
{
	/* qr_find.c extracts exactly these; each has a level */
	int n = qr_query_known_count(), found = 0;
	CU_ASSERT(n > 30);
	for (int k = 0; k < n; k++) {
		CU_ASSERT(qr_query_tag_level(qr_query_known_tag(k)) >= 0);
		found += qr_query_known_tag(k) == DH_TAG(0x0008, 0x0020);
	}
	CU_ASSERT_EQUAL(found, 1);
	CU_ASSERT_EQUAL(qr_query_known_tag(n), 0);
	CU_ASSERT_EQUAL(qr_query_tag_level(DH_TAG(0x0040, 0x0275)), QR_LEVEL_SERIES);
	CU_ASSERT_EQUAL(qr_query_tag_level(DH_TAG(0x7FE0, 0x0010)), -1);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("qr_query", NULL, NULL);
	CU_add_test(s, "wild card escaping", test_wildcard_escaping);
	CU_add_test(s, "single value and universal", test_single_and_universal);
	CU_add_test(s, "case-insensitive equality", test_case_insensitive_equality);
	CU_add_test(s, "UID lists", test_uid_list);
	CU_add_test(s, "date ranges", test_date_ranges);
	CU_add_test(s, "combined date-time", test_combined_datetime);
	CU_add_test(s, "levels and models", test_levels_and_models);
	CU_add_test(s, "relational keys", test_relational);
	CU_add_test(s, "modalities and counts", test_modalities_and_counts);
	CU_add_test(s, "other patient IDs", test_other_patient_ids);
	CU_add_test(s, "sequences", test_sequences);
	CU_add_test(s, "parameters numbered", test_params_numbered);
	CU_add_test(s, "known tags", test_known_tags);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned int failed = CU_get_number_of_failures();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
