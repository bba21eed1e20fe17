/*
 * test_sopclass.c - unit tests for hub/store/sopclass.c.
 *
 * Two things decide whether a C-STORE context is accepted and how: the
 * category of its SOP class (Tables 2-14..2-17 of the conformance statement)
 * and the transfer syntax picked from the proposed list (§2.2.1.6.1.5:
 * compressed over uncompressed, lossless over lossy, explicit over implicit
 * VR). The tests pin both, including the edge cases: unknown private
 * classes, standard classes newer than the table, and proposals with nothing
 * acceptable. The chosen transfer syntax must be one of the caller's own
 * pointers, since the adapter accepts the context by that string.
 */
#include "sopclass.h"

#include <CUnit/Basic.h>
#include <stddef.h>
#include <string.h>

#define TS_IMPLICIT "1.2.840.10008.1.2"
#define TS_EXPLICIT "1.2.840.10008.1.2.1"
#define TS_EXPLICIT_BE "1.2.840.10008.1.2.2"
#define TS_DEFLATE "1.2.840.10008.1.2.1.99"
#define TS_RLE "1.2.840.10008.1.2.5"
#define TS_JPEG_BASELINE "1.2.840.10008.1.2.4.50"
#define TS_JPEG_EXTENDED "1.2.840.10008.1.2.4.51"
#define TS_JPEG_LOSSLESS "1.2.840.10008.1.2.4.57"
#define TS_JPEG_LOSSLESS_SV1 "1.2.840.10008.1.2.4.70"
#define TS_JPEG_LS_LOSSLESS "1.2.840.10008.1.2.4.80"
#define TS_JPEG_LS_NEAR "1.2.840.10008.1.2.4.81"
#define TS_J2K_LOSSLESS "1.2.840.10008.1.2.4.90"
#define TS_J2K "1.2.840.10008.1.2.4.91"
#define TS_MPEG2_MPML "1.2.840.10008.1.2.4.100"
#define TS_MPEG2_MPHL "1.2.840.10008.1.2.4.101"
#define TS_MPEG4 "1.2.840.10008.1.2.4.102"

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static void test_classify_listed(void)
{
	CU_ASSERT_EQUAL(sop_classify("1.2.840.10008.5.1.4.1.1.2", 0), SOP_IMAGE);     /* CT */
	CU_ASSERT_EQUAL(sop_classify("1.2.840.10008.5.1.4.1.1.4", 0), SOP_IMAGE);     /* MR */
	CU_ASSERT_EQUAL(sop_classify("1.2.840.10008.5.1.4.1.1.88.59", 0), SOP_SR);    /* KOS */
	CU_ASSERT_EQUAL(sop_classify("1.2.840.10008.5.1.4.1.1.88.22", 0), SOP_SR);    /* enhanced SR */
	CU_ASSERT_EQUAL(sop_classify("1.2.840.10008.5.1.4.1.1.77.1.1.1", 0), SOP_VIDEO); /* video endoscopic */
	CU_ASSERT_EQUAL(sop_classify("1.2.840.10008.5.1.4.1.1.77.1.1", 0), SOP_IMAGE);  /* VL endoscopic */
	CU_ASSERT_EQUAL(sop_classify("1.2.840.10008.5.1.4.1.1.481.5", 0), SOP_OTHER);   /* RT plan */
	CU_ASSERT_EQUAL(sop_classify("1.2.840.10008.5.1.4.1.1.104.1", 0), SOP_OTHER);   /* PDF */
	/* listed classes do not depend on accept_unlisted */
	CU_ASSERT_EQUAL(sop_classify("1.2.840.10008.5.1.4.1.1.2", 1), SOP_IMAGE);
	CU_ASSERT_EQUAL(sop_classify("1.2.840.10008.5.1.4.1.1.88.59", 1), SOP_SR);
	CU_ASSERT_EQUAL(sop_classify("1.2.840.10008.5.1.4.1.1.481.5", 1), SOP_OTHER);
}

static void test_classify_unknown(void)
{
	/* a private class is never accepted */
	CU_ASSERT_EQUAL(sop_classify("1.2.3.4.5.6.7", 0), SOP_NONE);
	CU_ASSERT_EQUAL(sop_classify("1.2.3.4.5.6.7", 1), SOP_NONE);
	/* non-storage standard services are not storage classes */
	CU_ASSERT_EQUAL(sop_classify("1.2.840.10008.1.1", 1), SOP_NONE);
	CU_ASSERT_EQUAL(sop_classify("1.2.840.10008.5.1.4.1.2.2.2", 1), SOP_NONE);
	CU_ASSERT_EQUAL(sop_classify("", 1), SOP_NONE);
	/* a prefix of a listed UID is not that UID */
	CU_ASSERT_EQUAL(sop_classify("1.2.840.10008.5.1.4.1.1.8", 0), SOP_OTHER);
	CU_ASSERT_EQUAL(sop_classify("1.2.840.10008.5.1.4.1.1.2.", 0), SOP_NONE);
}

static void test_classify_unlisted_standard(void)
{
	/* Breast Tomosynthesis Image Storage: standard storage, newer than the table */
	const char *uid = "1.2.840.10008.5.1.4.1.1.13.1.3";

	CU_ASSERT_EQUAL(sop_classify(uid, 1), SOP_IMAGE);
	CU_ASSERT_EQUAL(sop_classify(uid, 0), SOP_NONE);
	CU_ASSERT_EQUAL(sop_classify("1.2.840.10008.5.1.4.1.1.130", 1), SOP_IMAGE); /* enhanced PET */
	CU_ASSERT_EQUAL(sop_classify("1.2.840.10008.5.1.4.1.1.130", 0), SOP_NONE);
}

static void test_table_size(void)
{
	CU_ASSERT(sop_table_size() > 80);
}

/* The choice must be the caller's pointer, not a copy or a static string. */
static int is_one_of(const char *p, const char *const *proposed, int n)
{
	for (int i = 0; i < n; i++)
		if (p == proposed[i])
			return 1;
	return 0;
}

static void test_image_compressed_lossless_first(void)
{
	/* copies in writable storage, so a pointer comparison proves where the answer came from */
	char implicit[] = TS_IMPLICIT, explicit_[] = TS_EXPLICIT, baseline[] = TS_JPEG_BASELINE;
	char lossless[] = TS_JPEG_LOSSLESS_SV1, j2k[] = TS_J2K;
	const char *p1[] = { implicit, explicit_, baseline, j2k, lossless };
	const char *got = sop_choose_ts(SOP_IMAGE, p1, N(p1));

	CU_ASSERT_PTR_EQUAL(got, lossless);
	CU_ASSERT(is_one_of(got, p1, N(p1)));

	/* lossy compressed beats uncompressed */
	const char *p2[] = { implicit, explicit_, baseline };
	CU_ASSERT_PTR_EQUAL(sop_choose_ts(SOP_IMAGE, p2, N(p2)), baseline);

	/* every lossless one beats every lossy one */
	const char *lossless_ts[] = { TS_JPEG_LOSSLESS_SV1, TS_JPEG_LOSSLESS, TS_J2K_LOSSLESS,
				      TS_JPEG_LS_LOSSLESS, TS_RLE };
	const char *lossy_ts[] = { TS_J2K, TS_JPEG_LS_NEAR, TS_JPEG_EXTENDED, TS_JPEG_BASELINE };
	for (int i = 0; i < N(lossless_ts); i++) {
		for (int k = 0; k < N(lossy_ts); k++) {
			const char *p[] = { lossy_ts[k], TS_EXPLICIT, lossless_ts[i], TS_IMPLICIT };
			CU_ASSERT_PTR_EQUAL(sop_choose_ts(SOP_IMAGE, p, 4), p[2]);
		}
		/* and every compressed one beats the uncompressed ones */
		const char *q[] = { TS_IMPLICIT, TS_EXPLICIT_BE, TS_EXPLICIT, lossless_ts[i] };
		CU_ASSERT_PTR_EQUAL(sop_choose_ts(SOP_IMAGE, q, 4), q[3]);
	}
	for (int k = 0; k < N(lossy_ts); k++) {
		const char *q[] = { TS_IMPLICIT, lossy_ts[k], TS_EXPLICIT };
		CU_ASSERT_PTR_EQUAL(sop_choose_ts(SOP_IMAGE, q, 3), q[1]);
	}
}

static void test_explicit_over_implicit(void)
{
	const char *p[] = { TS_IMPLICIT, TS_EXPLICIT };
	const char *r[] = { TS_EXPLICIT, TS_IMPLICIT };
	const char *only[] = { TS_IMPLICIT };
	const sop_category cats[] = { SOP_IMAGE, SOP_SR, SOP_OTHER };

	for (int i = 0; i < N(cats); i++) {
		/* independent of the order proposed */
		CU_ASSERT_PTR_EQUAL(sop_choose_ts(cats[i], p, 2), p[1]);
		CU_ASSERT_PTR_EQUAL(sop_choose_ts(cats[i], r, 2), r[0]);
		/* implicit is still accepted when it is all there is */
		CU_ASSERT_PTR_EQUAL(sop_choose_ts(cats[i], only, 1), only[0]);
	}
}

static void test_sr_deflate(void)
{
	const char *p[] = { TS_IMPLICIT, TS_EXPLICIT, TS_DEFLATE };
	const char *only[] = { TS_DEFLATE };

	/* deflate is compression, so preferred for SR */
	CU_ASSERT_PTR_EQUAL(sop_choose_ts(SOP_SR, p, 3), p[2]);
	CU_ASSERT_PTR_EQUAL(sop_choose_ts(SOP_SR, only, 1), only[0]);
	/* images (Table 2-14) and other composites (2-17) do not list it */
	CU_ASSERT_PTR_EQUAL(sop_choose_ts(SOP_IMAGE, p, 3), p[1]);
	CU_ASSERT_PTR_NULL(sop_choose_ts(SOP_IMAGE, only, 1));
	CU_ASSERT_PTR_NULL(sop_choose_ts(SOP_OTHER, only, 1));
	/* nor does SR take image compression */
	const char *img[] = { TS_JPEG_LOSSLESS_SV1, TS_RLE };
	CU_ASSERT_PTR_NULL(sop_choose_ts(SOP_SR, img, 2));
	CU_ASSERT_PTR_NULL(sop_choose_ts(SOP_OTHER, img, 2));
}

static void test_video_only_mpeg(void)
{
	const char *uncompressed[] = { TS_IMPLICIT, TS_EXPLICIT, TS_EXPLICIT_BE };
	const char *stills[] = { TS_JPEG_BASELINE, TS_JPEG_LOSSLESS_SV1, TS_RLE };
	const char *mixed[] = { TS_EXPLICIT, TS_JPEG_BASELINE, TS_MPEG2_MPHL, TS_MPEG2_MPML };
	const char *mpeg4[] = { TS_IMPLICIT, TS_MPEG4 };

	CU_ASSERT_PTR_NULL(sop_choose_ts(SOP_VIDEO, uncompressed, N(uncompressed)));
	CU_ASSERT_PTR_NULL(sop_choose_ts(SOP_VIDEO, stills, N(stills)));
	const char *got = sop_choose_ts(SOP_VIDEO, mixed, N(mixed));
	CU_ASSERT_PTR_NOT_NULL(got);
	CU_ASSERT(got == mixed[2] || got == mixed[3]);
	CU_ASSERT_PTR_EQUAL(sop_choose_ts(SOP_VIDEO, mpeg4, 2), mpeg4[1]);
	/* MPEG is a video syntax, not an image one */
	const char *only_mpeg[] = { TS_MPEG2_MPML };
	CU_ASSERT_PTR_NULL(sop_choose_ts(SOP_IMAGE, only_mpeg, 1));
}

static void test_nothing_acceptable(void)
{
	const char *weird[] = { "1.2.3.4", "1.2.840.10008.1.2.4.999", "" };
	const char *good[] = { TS_EXPLICIT };

	CU_ASSERT_PTR_NULL(sop_choose_ts(SOP_IMAGE, weird, N(weird)));
	CU_ASSERT_PTR_NULL(sop_choose_ts(SOP_SR, weird, N(weird)));
	CU_ASSERT_PTR_NULL(sop_choose_ts(SOP_OTHER, weird, N(weird)));
	CU_ASSERT_PTR_NULL(sop_choose_ts(SOP_VIDEO, weird, N(weird)));
	/* an empty proposal, and a category that accepts nothing */
	CU_ASSERT_PTR_NULL(sop_choose_ts(SOP_IMAGE, good, 0));
	CU_ASSERT_PTR_NULL(sop_choose_ts(SOP_NONE, good, 1));
	/* a prefix of a known syntax is not that syntax */
	const char *prefix[] = { "1.2.840.10008.1.2.4", "1.2.840.10008.1.2.1.9" };
	CU_ASSERT_PTR_NULL(sop_choose_ts(SOP_IMAGE, prefix, 2));
}

int main(void)
{
	CU_pSuite s;
	unsigned failures;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("sopclass", NULL, NULL);
	if (s == NULL ||
	    CU_add_test(s, "classify listed classes", test_classify_listed) == NULL ||
	    CU_add_test(s, "classify unknown classes", test_classify_unknown) == NULL ||
	    CU_add_test(s, "classify unlisted standard", test_classify_unlisted_standard) == NULL ||
	    CU_add_test(s, "table size", test_table_size) == NULL ||
	    CU_add_test(s, "image: compressed lossless first", test_image_compressed_lossless_first) == NULL ||
	    CU_add_test(s, "explicit over implicit", test_explicit_over_implicit) == NULL ||
	    CU_add_test(s, "SR takes deflate, images do not", test_sr_deflate) == NULL ||
	    CU_add_test(s, "video only MPEG", test_video_only_mpeg) == NULL ||
	    CU_add_test(s, "nothing acceptable", test_nothing_acceptable) == NULL) {
		CU_cleanup_registry();
		return 2;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
	CU_cleanup_registry();
	return failures == 0 ? 0 : 1;
}
