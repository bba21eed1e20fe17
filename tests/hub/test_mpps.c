/*
 * test_mpps.c - unit tests for the rules of hub/mpps/mpps.c (no network, no
 * database): the Note 1 list of Table 2.2-35 and the status rule of
 * Table 2.2-36 for N-CREATE; the state machine, the attributes N-SET may
 * not touch, the status values and the Note 2 list of Tables 2.2-37/2.2-38
 * for N-SET; the transfer syntax of Table 2.2-34; the forwarding back-off.
 */
#include "mpps.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <string.h>

#define T(g, e) DH_TAG(0x##g, 0x##e)

/* A complete, valid N-CREATE data set. */
static dh_dcm_ds *valid_create(void)
{
	dh_dcm_ds *ds = NULL;
	dh_dcm_ds_new(&ds);
	dh_dcm_ds_put(ds, T(0008, 0060), "CT");
	dh_dcm_ds_put(ds, T(0010, 0010), "Doe^Jane");
	dh_dcm_ds_put(ds, T(0010, 0020), "PID1");
	dh_dcm_ds_put(ds, T(0040, 0241), "CT01");
	dh_dcm_ds_put(ds, T(0040, 0244), "20261124");
	dh_dcm_ds_put(ds, T(0040, 0245), "101500");
	dh_dcm_ds_put(ds, T(0040, 0250), "");
	dh_dcm_ds_put(ds, T(0040, 0251), "");
	dh_dcm_ds_put(ds, T(0040, 0252), "IN PROGRESS");
	dh_dcm_ds_put(ds, T(0040, 0253), "PPS1");
	dh_dcm_ds_put_path(ds, "(0040,0270)[0].(0020,000D)", "1.2.3.4");
	dh_dcm_ds_put_path(ds, "(0040,0270)[0].(0008,0050)", "ACC1");
	dh_dcm_ds_put_path(ds, "(0040,0340)", "");
	return ds;
}

static unsigned int check_create(const dh_dcm_ds *ds)
{
	char why[160] = "";
	unsigned int st = mpps_check_create(ds, why, sizeof(why));
	CU_ASSERT(st == MPPS_SUCCESS || why[0] != '\0'); /* a refusal always says why */
	return st;
}

static void test_create_valid(void)
{
	dh_dcm_ds *ds = valid_create();
	CU_ASSERT_EQUAL(check_create(ds), MPPS_SUCCESS);
	dh_dcm_ds_free(ds);
}

static void test_create_note1_absent_or_empty(void)
{
	static const uint32_t note1[] = { T(0040, 0241), T(0040, 0244), T(0040, 0245), T(0040, 0252),
					  T(0040, 0253), T(0008, 0060) };
	for (size_t i = 0; i < sizeof(note1) / sizeof(note1[0]); i++) {
		/* empty */
		dh_dcm_ds *ds = valid_create();
		dh_dcm_ds_put(ds, note1[i], "");
		CU_ASSERT_EQUAL(check_create(ds), MPPS_MISSING_VALUE);
		dh_dcm_ds_free(ds);
		/* blanks only count as empty */
		ds = valid_create();
		dh_dcm_ds_put(ds, note1[i], "  ");
		CU_ASSERT_EQUAL(check_create(ds), MPPS_MISSING_VALUE);
		dh_dcm_ds_free(ds);
	}
	/* absent: build without the attribute */
	dh_dcm_ds *ds = NULL;
	dh_dcm_ds_new(&ds);
	dh_dcm_ds_put(ds, T(0008, 0060), "CT");
	dh_dcm_ds_put(ds, T(0040, 0241), "CT01");
	dh_dcm_ds_put(ds, T(0040, 0244), "20261124");
	dh_dcm_ds_put(ds, T(0040, 0245), "101500");
	dh_dcm_ds_put(ds, T(0040, 0252), "IN PROGRESS");
	dh_dcm_ds_put_path(ds, "(0040,0270)[0].(0020,000D)", "1.2.3.4");
	CU_ASSERT_EQUAL(check_create(ds), MPPS_MISSING_VALUE); /* no PPS ID */
	dh_dcm_ds_put(ds, T(0040, 0253), "PPS1");
	CU_ASSERT_EQUAL(check_create(ds), MPPS_SUCCESS);
	dh_dcm_ds_free(ds);
}

static void test_create_scheduled_step(void)
{
	/* an empty Scheduled Step Attribute Sequence */
	dh_dcm_ds *ds = NULL;
	dh_dcm_ds_new(&ds);
	dh_dcm_ds_put(ds, T(0008, 0060), "CT");
	dh_dcm_ds_put(ds, T(0040, 0241), "CT01");
	dh_dcm_ds_put(ds, T(0040, 0244), "20261124");
	dh_dcm_ds_put(ds, T(0040, 0245), "101500");
	dh_dcm_ds_put(ds, T(0040, 0252), "IN PROGRESS");
	dh_dcm_ds_put(ds, T(0040, 0253), "PPS1");
	dh_dcm_ds_put_path(ds, "(0040,0270)", "");
	CU_ASSERT_EQUAL(check_create(ds), MPPS_MISSING_VALUE);
	/* an item without Study Instance UID, after a good one */
	dh_dcm_ds_put_path(ds, "(0040,0270)[0].(0020,000D)", "1.2.3.4");
	CU_ASSERT_EQUAL(check_create(ds), MPPS_SUCCESS);
	dh_dcm_ds_put_path(ds, "(0040,0270)[1].(0008,0050)", "ACC2");
	CU_ASSERT_EQUAL(check_create(ds), MPPS_MISSING_VALUE);
	dh_dcm_ds_put_path(ds, "(0040,0270)[1].(0020,000D)", "");
	CU_ASSERT_EQUAL(check_create(ds), MPPS_MISSING_VALUE);
	dh_dcm_ds_put_path(ds, "(0040,0270)[1].(0020,000D)", "1.2.3.5");
	CU_ASSERT_EQUAL(check_create(ds), MPPS_SUCCESS);
	dh_dcm_ds_free(ds);
}

static void test_create_status(void)
{
	static const char *const bad[] = { "COMPLETED", "DISCONTINUED", "in progress", "INPROGRESS", "X" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		dh_dcm_ds *ds = valid_create();
		dh_dcm_ds_put(ds, T(0040, 0252), bad[i]);
		CU_ASSERT_EQUAL(check_create(ds), MPPS_INVALID_VALUE);
		dh_dcm_ds_free(ds);
	}
}

/* An N-SET modification list and the step it would give when applied to valid_create(). */
static unsigned int check_set(dh_dcm_ds *set, mpps_status stored)
{
	char why[160] = "";
	dh_dcm_ds *merged = valid_create();
	dh_dcm_ds_merge(merged, set);
	unsigned int st = mpps_check_set(set, stored, merged, why, sizeof(why));
	CU_ASSERT(st == MPPS_SUCCESS || why[0] != '\0');
	dh_dcm_ds_free(merged);
	return st;
}

static dh_dcm_ds *final_set(const char *status)
{
	dh_dcm_ds *ds = NULL;
	dh_dcm_ds_new(&ds);
	dh_dcm_ds_put(ds, T(0040, 0250), "20261124");
	dh_dcm_ds_put(ds, T(0040, 0251), "103000");
	dh_dcm_ds_put(ds, T(0040, 0252), status);
	dh_dcm_ds_put_path(ds, "(0040,0340)[0].(0020,000E)", "1.2.3.4.1");
	return ds;
}

static void test_set_state_machine(void)
{
	dh_dcm_ds *set = final_set("COMPLETED");
	CU_ASSERT_EQUAL(check_set(set, MPPS_IN_PROGRESS), MPPS_SUCCESS);
	/* nothing changes after the end, not even a valid final N-SET */
	CU_ASSERT_EQUAL(check_set(set, MPPS_COMPLETED), MPPS_PROCESSING_FAILURE);
	CU_ASSERT_EQUAL(check_set(set, MPPS_DISCONTINUED), MPPS_PROCESSING_FAILURE);
	dh_dcm_ds_free(set);
	set = final_set("DISCONTINUED");
	CU_ASSERT_EQUAL(check_set(set, MPPS_IN_PROGRESS), MPPS_SUCCESS);
	dh_dcm_ds_free(set);
	/* an intermediate N-SET (still IN PROGRESS) needs no Note 2 attributes */
	dh_dcm_ds_new(&set);
	dh_dcm_ds_put(set, T(0040, 0254), "CT chest and abdomen");
	CU_ASSERT_EQUAL(check_set(set, MPPS_IN_PROGRESS), MPPS_SUCCESS);
	dh_dcm_ds_put(set, T(0040, 0252), "IN PROGRESS");
	CU_ASSERT_EQUAL(check_set(set, MPPS_IN_PROGRESS), MPPS_SUCCESS);
	dh_dcm_ds_free(set);
}

static void test_set_status_values(void)
{
	static const char *const bad[] = { "", "FINISHED", "completed", "COMPLETE" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		dh_dcm_ds *set = final_set(bad[i]);
		CU_ASSERT_EQUAL(check_set(set, MPPS_IN_PROGRESS), MPPS_INVALID_VALUE);
		dh_dcm_ds_free(set);
	}
}

static void test_set_not_updatable(void)
{
	static const uint32_t fixed[] = { T(0010, 0010), T(0010, 0020), T(0010, 0030), T(0010, 0040),
					  T(0040, 0241), T(0040, 0242), T(0040, 0243), T(0040, 0244),
					  T(0040, 0245), T(0040, 0253), T(0008, 0060), T(0020, 0010) };
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		dh_dcm_ds *set = final_set("COMPLETED");
		dh_dcm_ds_put(set, fixed[i], "X");
		CU_ASSERT_EQUAL(check_set(set, MPPS_IN_PROGRESS), MPPS_PROCESSING_FAILURE);
		dh_dcm_ds_free(set);
	}
	dh_dcm_ds *set = final_set("COMPLETED");
	dh_dcm_ds_put_path(set, "(0040,0270)[0].(0020,000D)", "1.2.3.9");
	CU_ASSERT_EQUAL(check_set(set, MPPS_IN_PROGRESS), MPPS_PROCESSING_FAILURE);
	dh_dcm_ds_free(set);
	/* Table 2.2-37's attributes, and others outside both tables, may be set */
	set = final_set("COMPLETED");
	dh_dcm_ds_put_path(set, "(0008,1032)[0].(0008,0100)", "CODE");
	dh_dcm_ds_put_path(set, "(0040,0260)[0].(0008,0100)", "PROTO");
	dh_dcm_ds_put(set, T(0040, 0255), "type");
	dh_dcm_ds_put(set, T(0040, 0300), "12"); /* Total Time of Fluoroscopy: kept, forwarded */
	CU_ASSERT_EQUAL(check_set(set, MPPS_IN_PROGRESS), MPPS_SUCCESS);
	dh_dcm_ds_free(set);
}

static void test_set_note2(void)
{
	static const uint32_t note2[] = { T(0040, 0250), T(0040, 0251) };
	for (size_t i = 0; i < sizeof(note2) / sizeof(note2[0]); i++) {
		dh_dcm_ds *set = final_set("COMPLETED");
		dh_dcm_ds_put(set, note2[i], "");
		CU_ASSERT_EQUAL(check_set(set, MPPS_IN_PROGRESS), MPPS_MISSING_VALUE);
		dh_dcm_ds_free(set);
	}
	/* end date/time absent from the N-SET: the step's (empty) values count */
	dh_dcm_ds *set = NULL;
	dh_dcm_ds_new(&set);
	dh_dcm_ds_put(set, T(0040, 0252), "DISCONTINUED");
	dh_dcm_ds_put_path(set, "(0040,0340)[0].(0020,000E)", "1.2.3.4.1");
	CU_ASSERT_EQUAL(check_set(set, MPPS_IN_PROGRESS), MPPS_MISSING_VALUE);
	dh_dcm_ds_free(set);
	/* no performed series (the step's sequence is empty) */
	dh_dcm_ds_new(&set);
	dh_dcm_ds_put(set, T(0040, 0250), "20261124");
	dh_dcm_ds_put(set, T(0040, 0251), "103000");
	dh_dcm_ds_put(set, T(0040, 0252), "COMPLETED");
	CU_ASSERT_EQUAL(check_set(set, MPPS_IN_PROGRESS), MPPS_MISSING_VALUE);
	dh_dcm_ds_free(set);
}

static void test_status_parse(void)
{
	CU_ASSERT_EQUAL(mpps_status_parse("IN PROGRESS"), MPPS_IN_PROGRESS);
	CU_ASSERT_EQUAL(mpps_status_parse("COMPLETED"), MPPS_COMPLETED);
	CU_ASSERT_EQUAL(mpps_status_parse("DISCONTINUED"), MPPS_DISCONTINUED);
	CU_ASSERT_EQUAL(mpps_status_parse(""), MPPS_BAD_STATUS);
	CU_ASSERT_EQUAL(mpps_status_parse(NULL), MPPS_BAD_STATUS);
}

static void test_transfer_syntax(void)
{
	static const char *const both[] = { "1.2.840.10008.1.2.1", "1.2.840.10008.1.2" };
	static const char *const expl[] = { "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2" };
	CU_ASSERT_PTR_EQUAL(mpps_choose_ts(both, 2), both[1]);
	CU_ASSERT_PTR_NULL(mpps_choose_ts(expl, 2));
	CU_ASSERT_PTR_NULL(mpps_choose_ts(expl, 0));
}

static void test_backoff(void)
{
	CU_ASSERT_EQUAL(mpps_backoff_seconds(1, 10, 600), 10);
	CU_ASSERT_EQUAL(mpps_backoff_seconds(2, 10, 600), 20);
	CU_ASSERT_EQUAL(mpps_backoff_seconds(4, 10, 600), 80);
	CU_ASSERT_EQUAL(mpps_backoff_seconds(7, 10, 600), 600);
	CU_ASSERT_EQUAL(mpps_backoff_seconds(1000000, 10, 600), 600); /* no overflow */
	CU_ASSERT_EQUAL(mpps_backoff_seconds(0, 10, 600), 10);
	CU_ASSERT_EQUAL(mpps_backoff_seconds(3, 1, 2), 2);
}

int main(void)
{
	CU_pSuite s;
	unsigned failures;

	dh_dcm_global_init(0);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("mpps", NULL, NULL);
	if (s == NULL ||
	    CU_add_test(s, "N-CREATE: valid", test_create_valid) == NULL ||
	    CU_add_test(s, "N-CREATE: Note 1 absent or empty -> 0121", test_create_note1_absent_or_empty) == NULL ||
	    CU_add_test(s, "N-CREATE: scheduled steps and their Study UID -> 0121", test_create_scheduled_step) == NULL ||
	    CU_add_test(s, "N-CREATE: status not IN PROGRESS -> 0106", test_create_status) == NULL ||
	    CU_add_test(s, "N-SET: state machine", test_set_state_machine) == NULL ||
	    CU_add_test(s, "N-SET: status values -> 0106", test_set_status_values) == NULL ||
	    CU_add_test(s, "N-SET: creation-only attributes -> 0110", test_set_not_updatable) == NULL ||
	    CU_add_test(s, "N-SET: Note 2 when the step ends -> 0121", test_set_note2) == NULL ||
	    CU_add_test(s, "status terms", test_status_parse) == NULL ||
	    CU_add_test(s, "Implicit VR LE only", test_transfer_syntax) == NULL ||
	    CU_add_test(s, "forward back-off", test_backoff) == NULL) {
		CU_cleanup_registry();
		return 2;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
	CU_cleanup_registry();
	return failures == 0 ? 0 : 1;
}
