/*
 * test_kosdoc.c - unit tests of common/kosdoc.c: what makes a Key Object
 * Selection document registrable, what is read from it (title, references
 * from the evidence and the content tree, author, date) and which titles
 * are IOCM rejections. Data sets are built in memory with the adapter's
 * path setters, one defect at a time on top of a good document.
 */
#include "dcm.h"
#include "kosdoc.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <string.h>

#define EV "(0040,A375)"

static void put(dh_dcm_ds *ds, const char *path, const char *v)
{
	CU_ASSERT_EQUAL_FATAL(dh_dcm_ds_put_path(ds, path, v), DH_DCM_OK);
}

/* A good document: two series of study 1.2.3 (2 + 1 instances), the
 * observer's name and two IMAGE items in the content tree. */
static dh_dcm_ds *good(void)
{
	dh_dcm_ds *ds = NULL;
	CU_ASSERT_EQUAL_FATAL(dh_dcm_ds_new(&ds), DH_DCM_OK);
	put(ds, "(0008,0016)", DH_KOS_SOP_CLASS);
	put(ds, "(0040,A040)", "CONTAINER");
	put(ds, "(0040,A043)[0].(0008,0100)", "113000");
	put(ds, "(0040,A043)[0].(0008,0102)", "DCM");
	put(ds, "(0040,A043)[0].(0008,0104)", "Of Interest");
	put(ds, "(0008,0023)", "20240102");
	put(ds, "(0008,0033)", "101500");
	put(ds, EV "[0].(0020,000D)", "1.2.3");
	put(ds, EV "[0].(0008,1115)[0].(0020,000E)", "1.2.3.1");
	put(ds, EV "[0].(0008,1115)[0].(0008,1199)[0].(0008,1150)", "1.2.840.10008.5.1.4.1.1.2");
	put(ds, EV "[0].(0008,1115)[0].(0008,1199)[0].(0008,1155)", "1.2.3.1.1");
	put(ds, EV "[0].(0008,1115)[0].(0008,1199)[1].(0008,1150)", "1.2.840.10008.5.1.4.1.1.2");
	put(ds, EV "[0].(0008,1115)[0].(0008,1199)[1].(0008,1155)", "1.2.3.1.2");
	put(ds, EV "[0].(0008,1115)[1].(0020,000E)", "1.2.3.2");
	put(ds, EV "[0].(0008,1115)[1].(0008,1199)[0].(0008,1150)", "1.2.840.10008.5.1.4.1.1.4");
	put(ds, EV "[0].(0008,1115)[1].(0008,1199)[0].(0008,1155)", "1.2.3.2.1");
	put(ds, "(0040,A730)[0].(0040,A040)", "PNAME");
	put(ds, "(0040,A730)[0].(0040,A043)[0].(0008,0100)", "121008");
	put(ds, "(0040,A730)[0].(0040,A043)[0].(0008,0102)", "DCM");
	put(ds, "(0040,A730)[0].(0040,A123)", "Reader^Rita");
	put(ds, "(0040,A730)[1].(0040,A040)", "IMAGE");
	put(ds, "(0040,A730)[1].(0008,1199)[0].(0008,1150)", "1.2.840.10008.5.1.4.1.1.2");
	put(ds, "(0040,A730)[1].(0008,1199)[0].(0008,1155)", "1.2.3.1.2");
	put(ds, "(0040,A730)[2].(0040,A040)", "IMAGE");
	put(ds, "(0040,A730)[2].(0008,1199)[0].(0008,1150)", "1.2.840.10008.5.1.4.1.1.2");
	put(ds, "(0040,A730)[2].(0008,1199)[0].(0008,1155)", "1.2.3.1.2"); /* twice: one content ref */
	return ds;
}

/* Parses ds; expects result rc; returns the reason (static) for refusals. */
static const char *parse_expect(dh_dcm_ds *ds, int rc, dh_kos **out)
{
	static char why[300];
	dh_kos *k = NULL;
	CU_ASSERT_EQUAL(dh_kos_parse(ds, &k, why, sizeof(why)), rc);
	if (rc == 0) {
		CU_ASSERT_PTR_NOT_NULL(k);
	} else {
		CU_ASSERT_PTR_NULL(k);
	}
	if (out)
		*out = k;
	else
		dh_kos_free(k);
	return why;
}

static void test_good(void)
{
	dh_dcm_ds *ds = good();
	dh_kos *k = NULL;
	parse_expect(ds, 0, &k);
	if (k) {
		CU_ASSERT_STRING_EQUAL(k->title_code, "113000");
		CU_ASSERT_STRING_EQUAL(k->title_scheme, "DCM");
		CU_ASSERT_STRING_EQUAL(k->title_meaning, "Of Interest");
		CU_ASSERT_STRING_EQUAL(k->author, "Reader^Rita");
		CU_ASSERT_STRING_EQUAL(k->content_date, "20240102");
		CU_ASSERT_STRING_EQUAL(k->content_time, "101500");
		CU_ASSERT_EQUAL(k->rejection, 0);
		CU_ASSERT_EQUAL_FATAL(k->n_refs, 4); /* 3 evidence + 1 content */
		CU_ASSERT_STRING_EQUAL(k->refs[0].sop_uid, "1.2.3.1.1");
		CU_ASSERT_STRING_EQUAL(k->refs[0].series_uid, "1.2.3.1");
		CU_ASSERT_STRING_EQUAL(k->refs[0].study_uid, "1.2.3");
		CU_ASSERT_EQUAL(k->refs[0].origin, DH_KOS_EVIDENCE);
		CU_ASSERT_STRING_EQUAL(k->refs[2].sop_uid, "1.2.3.2.1");
		CU_ASSERT_STRING_EQUAL(k->refs[2].series_uid, "1.2.3.2");
		CU_ASSERT_STRING_EQUAL(k->refs[2].sop_class, "1.2.840.10008.5.1.4.1.1.4");
		CU_ASSERT_EQUAL(k->refs[3].origin, DH_KOS_CONTENT);
		CU_ASSERT_STRING_EQUAL(k->refs[3].sop_uid, "1.2.3.1.2");
		CU_ASSERT_STRING_EQUAL(k->refs[3].series_uid, "1.2.3.1"); /* from the evidence */
	}
	dh_kos_free(k);
	dh_dcm_ds_free(ds);
}

static void test_rejection_titles(void)
{
	CU_ASSERT_TRUE(dh_kos_is_rejection_title("113001", "DCM"));
	CU_ASSERT_TRUE(dh_kos_is_rejection_title("113037", "DCM"));
	CU_ASSERT_TRUE(dh_kos_is_rejection_title("113038", "DCM"));
	CU_ASSERT_TRUE(dh_kos_is_rejection_title("113039", "DCM"));
	CU_ASSERT_FALSE(dh_kos_is_rejection_title("113000", "DCM"));
	CU_ASSERT_FALSE(dh_kos_is_rejection_title("113001", "99LOCAL"));
	CU_ASSERT_FALSE(dh_kos_is_rejection_title(NULL, "DCM"));
	CU_ASSERT_TRUE(dh_kos_is_kos(DH_KOS_SOP_CLASS));
	CU_ASSERT_FALSE(dh_kos_is_kos("1.2.840.10008.5.1.4.1.1.88.11"));

	dh_dcm_ds *ds = good();
	dh_kos *k = NULL;
	put(ds, "(0040,A043)[0].(0008,0100)", "113001");
	put(ds, "(0040,A043)[0].(0008,0104)", "Rejected for Quality Reasons");
	parse_expect(ds, 0, &k);
	if (k) {
		CU_ASSERT_EQUAL(k->rejection, 1);
	}
	dh_kos_free(k);
	dh_dcm_ds_free(ds);
}

/* Each defect on its own makes the document not registrable, with a reason naming it. */
static void test_defects(void)
{
	static const struct {
		const char *path, *value, *reason;
	} cases[] = {
		{ "(0040,A043)[0].(0008,0100)", "", "Code Value" },
		{ "(0040,A043)[0].(0008,0102)", "", "Coding Scheme" },
		{ "(0040,A043)[1].(0008,0100)", "113000", "one item" },
		{ "(0040,A040)", "TEXT", "CONTAINER" },
		{ EV "[0].(0020,000D)", "", "(0020,000D): missing" },
		{ EV "[0].(0020,000D)", "1.2.x", "not a valid UID" },
		{ EV "[0].(0008,1115)[1].(0020,000E)", "", "(0020,000E): missing" },
		{ EV "[0].(0008,1115)[0].(0008,1199)[1].(0008,1155)", "1..2", "not a valid UID" },
		{ EV "[0].(0008,1115)[0].(0008,1199)[1].(0008,1150)", "", "(0008,1150): missing" },
		{ EV "[1].(0020,000D)", "1.2.4", "Referenced Series Sequence missing" },
		{ "(0040,A730)[1].(0040,A040)", "PICTURE", "unknown Value Type" },
		{ "(0040,A730)[1].(0040,A040)", "", "Value Type missing" },
		{ "(0040,A730)[1].(0008,1199)[0].(0008,1155)", "1.2.3.9.9", "does not list" },
		{ "(0040,A730)[1].(0008,1199)[0].(0008,1150)", "1.2.840.10008.5.1.4.1.1.4", "another SOP class" },
		{ "(0040,A730)[3].(0040,A040)", "COMPOSITE", "(0008,1155): missing" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		dh_dcm_ds *ds = good();
		put(ds, cases[i].path, cases[i].value);
		const char *why = parse_expect(ds, 1, NULL);
		if (!strstr(why, cases[i].reason))
			fprintf(stderr, "case %zu: reason '%s' lacks '%s'\n", i, why, cases[i].reason);
		CU_ASSERT_PTR_NOT_NULL(strstr(why, cases[i].reason));
		dh_dcm_ds_free(ds);
	}
}

static void test_missing_parts(void)
{
	dh_dcm_ds *ds = NULL;
	CU_ASSERT_EQUAL_FATAL(dh_dcm_ds_new(&ds), DH_DCM_OK);
	CU_ASSERT_PTR_NOT_NULL(strstr(parse_expect(ds, 1, NULL), "(0040,A043)"));
	put(ds, "(0040,A040)", "CONTAINER");
	put(ds, "(0040,A043)[0].(0008,0100)", "113000");
	put(ds, "(0040,A043)[0].(0008,0102)", "DCM");
	CU_ASSERT_PTR_NOT_NULL(strstr(parse_expect(ds, 1, NULL), "Evidence"));
	/* evidence alone (no content tree) is enough */
	put(ds, EV "[0].(0020,000D)", "1.2.3");
	put(ds, EV "[0].(0008,1115)[0].(0020,000E)", "1.2.3.1");
	CU_ASSERT_PTR_NOT_NULL(strstr(parse_expect(ds, 1, NULL), "Referenced SOP Sequence"));
	put(ds, EV "[0].(0008,1115)[0].(0008,1199)[0].(0008,1150)", "1.2.840.10008.5.1.4.1.1.2");
	put(ds, EV "[0].(0008,1115)[0].(0008,1199)[0].(0008,1155)", "1.2.3.1.1");
	/* no observer in the content tree: the content creator is the author */
	put(ds, "(0070,0084)", "Creator^Carl");
	dh_kos *k = NULL;
	parse_expect(ds, 0, &k);
	if (k) {
		CU_ASSERT_EQUAL(k->n_refs, 1);
		CU_ASSERT_STRING_EQUAL(k->author, "Creator^Carl");
		CU_ASSERT_STRING_EQUAL(k->content_date, "");
	}
	dh_kos_free(k);
	dh_dcm_ds_free(ds);
}

int main(void)
{
	CU_pSuite s;
	unsigned failures;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("kosdoc", NULL, NULL);
	if (s == NULL || CU_add_test(s, "a good document is read in full", test_good) == NULL ||
	    CU_add_test(s, "IOCM rejection titles", test_rejection_titles) == NULL ||
	    CU_add_test(s, "each defect makes it not registrable", test_defects) == NULL ||
	    CU_add_test(s, "missing parts, minimal document, author fallback", test_missing_parts) == NULL) {
		CU_cleanup_registry();
		return 2;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
	CU_cleanup_registry();
	return failures == 0 ? 0 : 1;
}
