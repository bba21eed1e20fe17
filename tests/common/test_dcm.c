/*
 * test_dcm.c - unit tests for the data set and file functions of the DCMTK
 * adapter (common/dcm.h, common/dcm.cc).
 *
 * Networking is covered by the integration tests; what is checked here is
 * the data set surface the C side relies on: values go in and come out as
 * text (multi-values joined by backslashes, numbers as decimal text), paths
 * into sequences create and find items, return codes distinguish "absent"
 * from "buffer too small", files written in a transfer syntax load back
 * with the same values and meta header, the data set offset of a file is
 * where its first element starts, damaged or foreign files are refused with
 * a message, Latin-1 text comes out as UTF-8, and overrides (the index's
 * values set as an object leaves the hub) follow their VR, order and
 * character set rules.
 */
#include "dcm.h"
#include "dsdigest.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PYDICOM_FILES "/usr/lib/python3/dist-packages/pydicom/data/test_files/"
#define MR_STORAGE "1.2.840.10008.5.1.4.1.1.4"
#define CT_STORAGE "1.2.840.10008.5.1.4.1.1.2"

static char base[] = "/tmp/dh_test_dcm.XXXXXX";

static int suite_init(void)
{
	return mkdtemp(base) != NULL ? 0 : -1;
}

static int suite_clean(void)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	return system(cmd) == 0 ? 0 : -1;
}

static void path_in(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", base, name);
}

/* A small CT-like data set: UIDs, a multi-valued PN and two US numbers. */
static dh_dcm_ds *make_ds(void)
{
	dh_dcm_ds *ds = NULL;

	if (dh_dcm_ds_new(&ds) != DH_DCM_OK || ds == NULL)
		return NULL;
	if (dh_dcm_ds_put(ds, DH_TAG(0x0008, 0x0016), CT_STORAGE) != 0 ||
	    dh_dcm_ds_put(ds, DH_TAG(0x0008, 0x0018), "1.2.826.0.1.3680043.2.1143.1.2.3") != 0 ||
	    dh_dcm_ds_put(ds, DH_TAG(0x0010, 0x0010), "Doe^John") != 0 ||
	    dh_dcm_ds_put(ds, DH_TAG(0x0010, 0x1001), "Roe^Richard\\Poe^Edgar") != 0 ||
	    dh_dcm_ds_put(ds, DH_TAG(0x0020, 0x000D), "1.2.826.0.1.3680043.2.1143.9") != 0 ||
	    dh_dcm_ds_put(ds, DH_TAG(0x0028, 0x0010), "512") != 0 ||
	    dh_dcm_ds_put(ds, DH_TAG(0x0028, 0x0011), "256") != 0) {
		dh_dcm_ds_free(ds);
		return NULL;
	}
	return ds;
}

/* Checks that ds holds exactly the values make_ds() put in. */
static void check_values(const dh_dcm_ds *ds)
{
	char buf[256];

	CU_ASSERT_EQUAL(dh_dcm_ds_get(ds, DH_TAG(0x0008, 0x0016), buf, sizeof(buf)), DH_DCM_OK);
	CU_ASSERT_STRING_EQUAL(buf, CT_STORAGE);
	CU_ASSERT_EQUAL(dh_dcm_ds_get(ds, DH_TAG(0x0008, 0x0018), buf, sizeof(buf)), DH_DCM_OK);
	CU_ASSERT_STRING_EQUAL(buf, "1.2.826.0.1.3680043.2.1143.1.2.3");
	CU_ASSERT_EQUAL(dh_dcm_ds_get(ds, DH_TAG(0x0010, 0x0010), buf, sizeof(buf)), DH_DCM_OK);
	CU_ASSERT_STRING_EQUAL(buf, "Doe^John");
	CU_ASSERT_EQUAL(dh_dcm_ds_get(ds, DH_TAG(0x0010, 0x1001), buf, sizeof(buf)), DH_DCM_OK);
	CU_ASSERT_STRING_EQUAL(buf, "Roe^Richard\\Poe^Edgar");
	CU_ASSERT_EQUAL(dh_dcm_ds_get(ds, DH_TAG(0x0020, 0x000D), buf, sizeof(buf)), DH_DCM_OK);
	CU_ASSERT_STRING_EQUAL(buf, "1.2.826.0.1.3680043.2.1143.9");
	CU_ASSERT_EQUAL(dh_dcm_ds_get(ds, DH_TAG(0x0028, 0x0010), buf, sizeof(buf)), DH_DCM_OK);
	CU_ASSERT_STRING_EQUAL(buf, "512");
	CU_ASSERT_EQUAL(dh_dcm_ds_get(ds, DH_TAG(0x0028, 0x0011), buf, sizeof(buf)), DH_DCM_OK);
	CU_ASSERT_STRING_EQUAL(buf, "256");
}

static void test_put_get_round_trip(void)
{
	dh_dcm_ds *ds = make_ds();

	CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
	check_values(ds);
	dh_dcm_ds_free(ds);
}

static void test_put_replaces_and_empty(void)
{
	dh_dcm_ds *ds = NULL;
	char buf[64];

	CU_ASSERT_EQUAL_FATAL(dh_dcm_ds_new(&ds), DH_DCM_OK);
	CU_ASSERT_EQUAL(dh_dcm_ds_put(ds, DH_TAG(0x0010, 0x0020), "A1"), DH_DCM_OK);
	CU_ASSERT_EQUAL(dh_dcm_ds_put(ds, DH_TAG(0x0010, 0x0020), "B2"), DH_DCM_OK);
	CU_ASSERT_EQUAL(dh_dcm_ds_get(ds, DH_TAG(0x0010, 0x0020), buf, sizeof(buf)), DH_DCM_OK);
	CU_ASSERT_STRING_EQUAL(buf, "B2");
	/* an empty value is present, and reads as "" */
	CU_ASSERT_EQUAL(dh_dcm_ds_put(ds, DH_TAG(0x0008, 0x0050), ""), DH_DCM_OK);
	CU_ASSERT_EQUAL(dh_dcm_ds_has(ds, DH_TAG(0x0008, 0x0050)), 1);
	strcpy(buf, "junk");
	CU_ASSERT_EQUAL(dh_dcm_ds_get(ds, DH_TAG(0x0008, 0x0050), buf, sizeof(buf)), DH_DCM_OK);
	CU_ASSERT_STRING_EQUAL(buf, "");
	dh_dcm_ds_free(ds);
}

static void test_has_and_absent(void)
{
	dh_dcm_ds *ds = make_ds();
	char buf[64];

	CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
	CU_ASSERT_EQUAL(dh_dcm_ds_has(ds, DH_TAG(0x0010, 0x0010)), 1);
	CU_ASSERT_EQUAL(dh_dcm_ds_has(ds, DH_TAG(0x0010, 0x0030)), 0);
	strcpy(buf, "untouched");
	CU_ASSERT_EQUAL(dh_dcm_ds_get(ds, DH_TAG(0x0010, 0x0030), buf, sizeof(buf)), DH_DCM_ABSENT);
	CU_ASSERT_EQUAL(dh_dcm_ds_get(ds, DH_TAG(0x0008, 0x0060), buf, sizeof(buf)), DH_DCM_ABSENT);
	CU_ASSERT_EQUAL(dh_dcm_ds_get_path(ds, "(0008,1199)[0].(0008,1155)", buf, sizeof(buf)),
			DH_DCM_ABSENT);
	CU_ASSERT_EQUAL(dh_dcm_ds_count(ds, "(0008,1199)"), 0);
	dh_dcm_ds_free(ds);
}

static void test_buffer_too_small(void)
{
	dh_dcm_ds *ds = make_ds();
	const char *uid = "1.2.826.0.1.3680043.2.1143.1.2.3";
	size_t n = strlen(uid);
	char buf[64];

	CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
	/* no room for the terminating NUL */
	CU_ASSERT_EQUAL(dh_dcm_ds_get(ds, DH_TAG(0x0008, 0x0018), buf, n), DH_DCM_ERROR);
	CU_ASSERT_EQUAL(dh_dcm_ds_get(ds, DH_TAG(0x0008, 0x0018), buf, 4), DH_DCM_ERROR);
	/* exactly enough */
	CU_ASSERT_EQUAL(dh_dcm_ds_get(ds, DH_TAG(0x0008, 0x0018), buf, n + 1), DH_DCM_OK);
	CU_ASSERT_STRING_EQUAL(buf, uid);
	/* the same for a path */
	CU_ASSERT_EQUAL(dh_dcm_ds_put_path(ds, "(0008,1199)[0].(0008,1155)", "1.2.3.4.5.6"), DH_DCM_OK);
	CU_ASSERT_EQUAL(dh_dcm_ds_get_path(ds, "(0008,1199)[0].(0008,1155)", buf, 5), DH_DCM_ERROR);
	CU_ASSERT_EQUAL(dh_dcm_ds_get_path(ds, "(0008,1199)[0].(0008,1155)", buf, 12), DH_DCM_OK);
	CU_ASSERT_STRING_EQUAL(buf, "1.2.3.4.5.6");
	dh_dcm_ds_free(ds);
}

static void test_paths_and_count(void)
{
	dh_dcm_ds *ds = NULL;
	char buf[128];

	CU_ASSERT_EQUAL_FATAL(dh_dcm_ds_new(&ds), DH_DCM_OK);
	/* item 1 first: the items before it are created too */
	CU_ASSERT_EQUAL(dh_dcm_ds_put_path(ds, "(0008,1199)[1].(0008,1155)", "1.2.3.2"), DH_DCM_OK);
	CU_ASSERT_EQUAL(dh_dcm_ds_count(ds, "(0008,1199)"), 2);
	CU_ASSERT_EQUAL(dh_dcm_ds_put_path(ds, "(0008,1199)[0].(0008,1155)", "1.2.3.1"), DH_DCM_OK);
	CU_ASSERT_EQUAL(dh_dcm_ds_put_path(ds, "(0008,1199)[0].(0008,1150)", CT_STORAGE), DH_DCM_OK);
	CU_ASSERT_EQUAL(dh_dcm_ds_count(ds, "(0008,1199)"), 2);
	CU_ASSERT_EQUAL(dh_dcm_ds_has(ds, DH_TAG(0x0008, 0x1199)), 1);

	CU_ASSERT_EQUAL(dh_dcm_ds_get_path(ds, "(0008,1199)[1].(0008,1155)", buf, sizeof(buf)), DH_DCM_OK);
	CU_ASSERT_STRING_EQUAL(buf, "1.2.3.2");
	CU_ASSERT_EQUAL(dh_dcm_ds_get_path(ds, "(0008,1199)[0].(0008,1155)", buf, sizeof(buf)), DH_DCM_OK);
	CU_ASSERT_STRING_EQUAL(buf, "1.2.3.1");
	CU_ASSERT_EQUAL(dh_dcm_ds_get_path(ds, "(0008,1199)[0].(0008,1150)", buf, sizeof(buf)), DH_DCM_OK);
	CU_ASSERT_STRING_EQUAL(buf, CT_STORAGE);
	/* an element only item 0 has, and an item that does not exist */
	CU_ASSERT_EQUAL(dh_dcm_ds_get_path(ds, "(0008,1199)[1].(0008,1150)", buf, sizeof(buf)),
			DH_DCM_ABSENT);
	CU_ASSERT_EQUAL(dh_dcm_ds_get_path(ds, "(0008,1199)[2].(0008,1155)", buf, sizeof(buf)),
			DH_DCM_ABSENT);
	CU_ASSERT_EQUAL(dh_dcm_ds_count(ds, "(0008,1198)"), 0);

	/* nested two levels deep */
	CU_ASSERT_EQUAL(dh_dcm_ds_put_path(ds, "(0040,0275)[0].(0040,0008)[0].(0008,0100)", "CODE1"),
			DH_DCM_OK);
	CU_ASSERT_EQUAL(dh_dcm_ds_count(ds, "(0040,0275)"), 1);
	CU_ASSERT_EQUAL(dh_dcm_ds_count(ds, "(0040,0275)[0].(0040,0008)"), 1);
	CU_ASSERT_EQUAL(dh_dcm_ds_get_path(ds, "(0040,0275)[0].(0040,0008)[0].(0008,0100)", buf,
					   sizeof(buf)), DH_DCM_OK);
	CU_ASSERT_STRING_EQUAL(buf, "CODE1");
	/* a sequence is not a value */
	CU_ASSERT_NOT_EQUAL(dh_dcm_ds_get_path(ds, "(0008,1199)", buf, sizeof(buf)), DH_DCM_OK);
	dh_dcm_ds_free(ds);
}

/* Saves make_ds() plus a referenced-instance item in ts and checks the loaded file. */
static void save_load_in(const char *ts, const char *name)
{
	dh_dcm_ds *ds = make_ds();
	dh_dcm_ds *back = NULL;
	char path[512], err[256] = "", buf[128];

	CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
	CU_ASSERT_EQUAL(dh_dcm_ds_put_path(ds, "(0008,1199)[1].(0008,1155)", "1.2.3.9"), DH_DCM_OK);
	path_in(path, sizeof(path), name);
	CU_ASSERT_EQUAL_FATAL(dh_dcm_ds_save(ds, path, ts, err, sizeof(err)), DH_DCM_OK);
	dh_dcm_ds_free(ds);

	CU_ASSERT_EQUAL_FATAL(dh_dcm_ds_load(path, &back, err, sizeof(err)), DH_DCM_OK);
	CU_ASSERT_PTR_NOT_NULL_FATAL(back);
	check_values(back);
	CU_ASSERT_EQUAL(dh_dcm_ds_count(back, "(0008,1199)"), 2);
	CU_ASSERT_EQUAL(dh_dcm_ds_get_path(back, "(0008,1199)[1].(0008,1155)", buf, sizeof(buf)),
			DH_DCM_OK);
	CU_ASSERT_STRING_EQUAL(buf, "1.2.3.9");
	CU_ASSERT_EQUAL(dh_dcm_ds_get_meta(back, DH_TAG(0x0002, 0x0010), buf, sizeof(buf)), DH_DCM_OK);
	CU_ASSERT_STRING_EQUAL(buf, ts);
	/* the meta header describes the instance */
	CU_ASSERT_EQUAL(dh_dcm_ds_get_meta(back, DH_TAG(0x0002, 0x0002), buf, sizeof(buf)), DH_DCM_OK);
	CU_ASSERT_STRING_EQUAL(buf, CT_STORAGE);
	CU_ASSERT_EQUAL(dh_dcm_ds_get_meta(back, DH_TAG(0x0002, 0x0003), buf, sizeof(buf)), DH_DCM_OK);
	CU_ASSERT_STRING_EQUAL(buf, "1.2.826.0.1.3680043.2.1143.1.2.3");
	/* meta elements are not in the data set, and data set elements not in the meta */
	CU_ASSERT_EQUAL(dh_dcm_ds_get(back, DH_TAG(0x0002, 0x0010), buf, sizeof(buf)), DH_DCM_ABSENT);
	CU_ASSERT_EQUAL(dh_dcm_ds_get_meta(back, DH_TAG(0x0010, 0x0010), buf, sizeof(buf)),
			DH_DCM_ABSENT);
	dh_dcm_ds_free(back);
}

static void test_save_load_explicit(void)
{
	save_load_in(DH_TS_EXPLICIT_LE, "explicit.dcm");
}

static void test_save_load_implicit(void)
{
	save_load_in(DH_TS_IMPLICIT_LE, "implicit.dcm");
}

static void test_save_to_bad_path(void)
{
	dh_dcm_ds *ds = make_ds();
	char err[256] = "";

	CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
	CU_ASSERT_NOT_EQUAL(dh_dcm_ds_save(ds, "/nonexistent-dir/x/y.dcm", DH_TS_EXPLICIT_LE, err,
					   sizeof(err)), DH_DCM_OK);
	CU_ASSERT(err[0] != '\0');
	dh_dcm_ds_free(ds);
}

/* Reads n bytes at off of path into buf; returns 0 when all were read. */
static int read_at(const char *path, long off, unsigned char *buf, size_t n)
{
	FILE *f = fopen(path, "rb");
	int rc = -1;

	if (f == NULL)
		return -1;
	if (fseek(f, off, SEEK_SET) == 0 && fread(buf, 1, n, f) == n)
		rc = 0;
	fclose(f);
	return rc;
}

/* The offset must be 132 + the meta group's length, and the first data set tag must sit there. */
static void check_offset(const char *ts, const char *name)
{
	dh_dcm_ds *ds = make_ds();
	char path[512], err[256] = "";
	unsigned char h[12];
	unsigned long group_len;
	long off;

	CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
	path_in(path, sizeof(path), name);
	CU_ASSERT_EQUAL_FATAL(dh_dcm_ds_save(ds, path, ts, err, sizeof(err)), DH_DCM_OK);
	dh_dcm_ds_free(ds);

	/* (0002,0000) UL, explicit VR LE, right after "DICM" */
	CU_ASSERT_EQUAL_FATAL(read_at(path, 128, h, 4), 0);
	CU_ASSERT_EQUAL(memcmp(h, "DICM", 4), 0);
	CU_ASSERT_EQUAL_FATAL(read_at(path, 132, h, 12), 0);
	CU_ASSERT_EQUAL(memcmp(h, "\x02\x00\x00\x00UL\x04\x00", 8), 0);
	group_len = (unsigned long)h[8] | ((unsigned long)h[9] << 8) | ((unsigned long)h[10] << 16) |
		    ((unsigned long)h[11] << 24);
	CU_ASSERT(group_len > 0 && group_len < 1024);

	off = dh_dcm_file_dataset_offset(path);
	CU_ASSERT_EQUAL(off, 132L + 12L + (long)group_len);
	CU_ASSERT_EQUAL(dh_dsdigest_offset(path), off); /* the fast path reads the same group length */
	/* the data set's first element is SOP Class UID (0008,0016) */
	CU_ASSERT_EQUAL_FATAL(read_at(path, off, h, 4), 0);
	CU_ASSERT_EQUAL(memcmp(h, "\x08\x00\x16\x00", 4), 0);
}

static void test_dataset_offset_explicit(void)
{
	check_offset(DH_TS_EXPLICIT_LE, "off_explicit.dcm");
}

static void test_dataset_offset_implicit(void)
{
	check_offset(DH_TS_IMPLICIT_LE, "off_implicit.dcm");
}

static void test_dataset_offset_missing_file(void)
{
	char path[512];

	path_in(path, sizeof(path), "does-not-exist.dcm");
	CU_ASSERT_EQUAL(dh_dcm_file_dataset_offset(path), -1);
	CU_ASSERT_EQUAL(dh_dsdigest_offset(path), -1);
}

/* Files nobody here wrote: the fast path and DCMTK agree on where the data set starts. */
static void test_dataset_offset_samples(void)
{
	static const char *const names[] = { "CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm",
					     "image_dfl.dcm", "SC_rgb.dcm" };
	int seen = 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char path[512];
		snprintf(path, sizeof(path), "%s%s", PYDICOM_FILES, names[i]);
		if (access(path, R_OK) != 0)
			continue;
		seen++;
		long off = dh_dcm_file_dataset_offset(path);
		CU_ASSERT(off > 132);
		CU_ASSERT_EQUAL(dh_dsdigest_offset(path), off);
	}
	CU_ASSERT(seen >= 3);
}

static void test_load_truncated(void)
{
	static const char *const files[] = { PYDICOM_FILES "MR_truncated.dcm",
					     PYDICOM_FILES "rtplan_truncated.dcm" };

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		dh_dcm_ds *ds = NULL;
		char err[256] = "";

		CU_ASSERT_EQUAL_FATAL(access(files[i], R_OK), 0);
		CU_ASSERT_NOT_EQUAL(dh_dcm_ds_load(files[i], &ds, err, sizeof(err)), DH_DCM_OK);
		CU_ASSERT_PTR_NULL(ds);
		CU_ASSERT(err[0] != '\0');
		dh_dcm_ds_free(ds);
	}
}

static void test_load_not_dicom(void)
{
	char path[512], err[256] = "", cmd[1024];
	dh_dcm_ds *ds = NULL;

	path_in(path, sizeof(path), "hostname.txt");
	snprintf(cmd, sizeof(cmd), "cp /etc/hostname '%s'", path);
	CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
	CU_ASSERT_NOT_EQUAL(dh_dcm_ds_load(path, &ds, err, sizeof(err)), DH_DCM_OK);
	CU_ASSERT_PTR_NULL(ds);
	CU_ASSERT(err[0] != '\0');
	dh_dcm_ds_free(ds);

	/* a missing file too */
	ds = NULL;
	err[0] = '\0';
	path_in(path, sizeof(path), "no-such-file.dcm");
	CU_ASSERT_NOT_EQUAL(dh_dcm_ds_load(path, &ds, err, sizeof(err)), DH_DCM_OK);
	CU_ASSERT_PTR_NULL(ds);
	CU_ASSERT(err[0] != '\0');
	dh_dcm_ds_free(ds);
}

static void test_load_meta_of_truncated(void)
{
	dh_dcm_ds *ds = NULL;
	char err[256] = "", buf[128];

	CU_ASSERT_EQUAL_FATAL(dh_dcm_ds_load_meta(PYDICOM_FILES "MR_truncated.dcm", &ds, err,
						  sizeof(err)), DH_DCM_OK);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
	CU_ASSERT_EQUAL(dh_dcm_ds_get_meta(ds, DH_TAG(0x0002, 0x0002), buf, sizeof(buf)), DH_DCM_OK);
	CU_ASSERT_STRING_EQUAL(buf, MR_STORAGE);
	CU_ASSERT_EQUAL(dh_dcm_ds_get_meta(ds, DH_TAG(0x0002, 0x0010), buf, sizeof(buf)), DH_DCM_OK);
	CU_ASSERT_STRING_EQUAL(buf, DH_TS_EXPLICIT_LE);
	dh_dcm_ds_free(ds);
}

static void test_latin1_to_utf8(void)
{
	dh_dcm_ds *ds = NULL, *back = NULL;
	char path[512], err[256] = "", buf[128];

	CU_ASSERT_EQUAL_FATAL(dh_dcm_ds_new(&ds), DH_DCM_OK);
	CU_ASSERT_EQUAL(dh_dcm_ds_put(ds, DH_TAG(0x0008, 0x0005), "ISO_IR 100"), DH_DCM_OK);
	CU_ASSERT_EQUAL(dh_dcm_ds_put(ds, DH_TAG(0x0008, 0x0016), CT_STORAGE), DH_DCM_OK);
	CU_ASSERT_EQUAL(dh_dcm_ds_put(ds, DH_TAG(0x0008, 0x0018), "1.2.3.4.5.6.7"), DH_DCM_OK);
	CU_ASSERT_EQUAL(dh_dcm_ds_put(ds, DH_TAG(0x0010, 0x0010), "M\xfcller"), DH_DCM_OK);
	path_in(path, sizeof(path), "latin1.dcm");
	CU_ASSERT_EQUAL_FATAL(dh_dcm_ds_save(ds, path, DH_TS_EXPLICIT_LE, err, sizeof(err)), DH_DCM_OK);
	dh_dcm_ds_free(ds);

	CU_ASSERT_EQUAL_FATAL(dh_dcm_ds_load(path, &back, err, sizeof(err)), DH_DCM_OK);
	CU_ASSERT_EQUAL(dh_dcm_ds_get(back, DH_TAG(0x0010, 0x0010), buf, sizeof(buf)), DH_DCM_OK);
	CU_ASSERT_STRING_EQUAL(buf, "M\xc3\xbcller");
	/* "M\xc3\xbcller" is 7 bytes: 7 is one short, 8 fits */
	CU_ASSERT_EQUAL(dh_dcm_ds_get(back, DH_TAG(0x0010, 0x0010), buf, 7), DH_DCM_ERROR);
	CU_ASSERT_EQUAL(dh_dcm_ds_get(back, DH_TAG(0x0010, 0x0010), buf, 8), DH_DCM_OK);
	dh_dcm_ds_free(back);
}

/* Saves ds in Explicit VR LE and reads the whole file into buf; returns its length or -1. */
static long save_raw(dh_dcm_ds *ds, const char *name, unsigned char *buf, size_t len)
{
	char path[512], err[256] = "";
	path_in(path, sizeof(path), name);
	if (dh_dcm_ds_save(ds, path, DH_TS_EXPLICIT_LE, err, sizeof(err)) != DH_DCM_OK)
		return -1;
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	long n = (long)fread(buf, 1, len, f);
	fclose(f);
	return n;
}

static int has_bytes(const unsigned char *buf, long n, const char *what, size_t wlen)
{
	return n > 0 && memmem(buf, (size_t)n, what, wlen) != NULL;
}

static void test_overrides_utf8_vr_order(void)
{
	dh_dcm_ds *ds = NULL;
	char err[256] = "", buf[128];
	static unsigned char raw[65536];

	CU_ASSERT_EQUAL_FATAL(dh_dcm_ds_new(&ds), DH_DCM_OK);
	CU_ASSERT_EQUAL(dh_dcm_ds_put(ds, DH_TAG(0x0008, 0x0005), "ISO_IR 100"), DH_DCM_OK);
	CU_ASSERT_EQUAL(dh_dcm_ds_put(ds, DH_TAG(0x0008, 0x0016), CT_STORAGE), DH_DCM_OK);
	CU_ASSERT_EQUAL(dh_dcm_ds_put(ds, DH_TAG(0x0008, 0x0018), "1.2.3.4.5.6.7"), DH_DCM_OK);
	CU_ASSERT_EQUAL(dh_dcm_ds_put(ds, DH_TAG(0x0008, 0x1030), "Caf\xe9"), DH_DCM_OK);
	CU_ASSERT_EQUAL(dh_dcm_ds_put(ds, DH_TAG(0x0008, 0x0080), "Hospital"), DH_DCM_OK);
	const dh_dcm_override ov[] = {
		{ DH_TAG(0x0010, 0x0010), "First^Value", NULL },
		{ DH_TAG(0x0008, 0x0090), "J\xc3\xbcrgen^Gro\xc3\x9f", "PN" },
		{ DH_TAG(0x0008, 0x0080), "", NULL },             /* present, zero length */
		{ DH_TAG(0x0011, 0x0010), "DCMHUB TEST", "LO" },  /* private creator */
		{ DH_TAG(0x0011, 0x1001), "x1", "LO" },           /* private element, VR given */
		{ DH_TAG(0x0013, 0x1001), "abc", NULL },          /* no VR known: UN, padded */
		{ DH_TAG(0x0002, 0x0010), "1.2.3", NULL },        /* meta: ignored */
		{ DH_TAG(0x0008, 0x0018), "1.2.3.4.5.6.8", NULL },
		{ DH_TAG(0x0010, 0x0010), "Second^Value", NULL }, /* later wins */
	};
	CU_ASSERT_EQUAL_FATAL(dh_dcm_ds_apply_overrides(ds, ov, (int)(sizeof(ov) / sizeof(ov[0])), err,
							sizeof(err)), DH_DCM_OK);
	CU_ASSERT_EQUAL(dh_dcm_ds_get(ds, DH_TAG(0x0008, 0x0005), buf, sizeof(buf)), DH_DCM_OK);
	CU_ASSERT_STRING_EQUAL(buf, "ISO_IR 192");
	CU_ASSERT_EQUAL(dh_dcm_ds_get(ds, DH_TAG(0x0010, 0x0010), buf, sizeof(buf)), DH_DCM_OK);
	CU_ASSERT_STRING_EQUAL(buf, "Second^Value");
	CU_ASSERT_EQUAL(dh_dcm_ds_has(ds, DH_TAG(0x0008, 0x0080)), 1);
	CU_ASSERT_EQUAL(dh_dcm_ds_get(ds, DH_TAG(0x0008, 0x0080), buf, sizeof(buf)), DH_DCM_OK);
	CU_ASSERT_STRING_EQUAL(buf, "");
	CU_ASSERT_EQUAL(dh_dcm_ds_get_meta(ds, DH_TAG(0x0002, 0x0003), buf, sizeof(buf)), DH_DCM_OK);
	CU_ASSERT_STRING_EQUAL(buf, "1.2.3.4.5.6.8");
	CU_ASSERT_NOT_EQUAL(dh_dcm_ds_get_meta(ds, DH_TAG(0x0002, 0x0010), buf, sizeof(buf)) == DH_DCM_OK &&
			    strcmp(buf, "1.2.3") == 0, 1);
	long n = save_raw(ds, "ov1.dcm", raw, sizeof(raw));
	CU_ASSERT(n > 0);
	/* the file's own Latin-1 text was converted, the new value is UTF-8: no mixing */
	CU_ASSERT(has_bytes(raw, n, "Caf\xc3\xa9", 5));
	CU_ASSERT(!has_bytes(raw, n, "Caf\xe9 ", 5));
	CU_ASSERT(has_bytes(raw, n, "J\xc3\xbcrgen^Gro\xc3\x9f", 13));
	CU_ASSERT(has_bytes(raw, n, "\x11\x00\x01\x10LO\x02\x00x1", 10));
	CU_ASSERT(has_bytes(raw, n, "\x13\x00\x01\x10UN\x00\x00\x04\x00\x00\x00" "abc\x00", 16));
	CU_ASSERT(has_bytes(raw, n, "\x08\x00\x80\x00LO\x00\x00", 8));
	dh_dcm_ds_free(ds);
}

static void test_overrides_charset_cases(void)
{
	dh_dcm_ds *ds = NULL;
	char err[256] = "", buf[128];
	static unsigned char raw[65536];

	/* ASCII values leave the character set alone */
	CU_ASSERT_EQUAL_FATAL(dh_dcm_ds_new(&ds), DH_DCM_OK);
	CU_ASSERT_EQUAL(dh_dcm_ds_put(ds, DH_TAG(0x0008, 0x0005), "ISO_IR 100"), DH_DCM_OK);
	CU_ASSERT_EQUAL(dh_dcm_ds_put(ds, DH_TAG(0x0010, 0x0010), "M\xfcller"), DH_DCM_OK);
	const dh_dcm_override ascii[] = { { DH_TAG(0x0008, 0x1030), "plain", NULL } };
	CU_ASSERT_EQUAL(dh_dcm_ds_apply_overrides(ds, ascii, 1, err, sizeof(err)), DH_DCM_OK);
	CU_ASSERT_EQUAL(dh_dcm_ds_get(ds, DH_TAG(0x0008, 0x0005), buf, sizeof(buf)), DH_DCM_OK);
	CU_ASSERT_STRING_EQUAL(buf, "ISO_IR 100");
	dh_dcm_ds_free(ds);

	/* undeclared 8-bit text is read as Latin-1 when the set is switched to UTF-8 */
	CU_ASSERT_EQUAL_FATAL(dh_dcm_ds_new(&ds), DH_DCM_OK);
	CU_ASSERT_EQUAL(dh_dcm_ds_put(ds, DH_TAG(0x0008, 0x0016), CT_STORAGE), DH_DCM_OK);
	CU_ASSERT_EQUAL(dh_dcm_ds_put(ds, DH_TAG(0x0008, 0x0018), "1.2.3.4.5.6.9"), DH_DCM_OK);
	CU_ASSERT_EQUAL(dh_dcm_ds_put(ds, DH_TAG(0x0010, 0x0010), "M\xfcller"), DH_DCM_OK);
	const dh_dcm_override utf8[] = { { DH_TAG(0x0008, 0x1030), "\xc3\x9c" "berarbeitet", NULL } };
	CU_ASSERT_EQUAL(dh_dcm_ds_apply_overrides(ds, utf8, 1, err, sizeof(err)), DH_DCM_OK);
	CU_ASSERT_EQUAL(dh_dcm_ds_get(ds, DH_TAG(0x0008, 0x0005), buf, sizeof(buf)), DH_DCM_OK);
	CU_ASSERT_STRING_EQUAL(buf, "ISO_IR 192");
	long n = save_raw(ds, "ov2.dcm", raw, sizeof(raw));
	CU_ASSERT(has_bytes(raw, n, "M\xc3\xbcller", 7));
	CU_ASSERT(has_bytes(raw, n, "\xc3\x9c" "berarbeitet", 13));
	dh_dcm_ds_free(ds);

	/* a sequence can only be set empty */
	CU_ASSERT_EQUAL_FATAL(dh_dcm_ds_new(&ds), DH_DCM_OK);
	const dh_dcm_override sq_empty[] = { { DH_TAG(0x0008, 0x1140), "", NULL } };
	const dh_dcm_override sq_text[] = { { DH_TAG(0x0008, 0x1140), "x", NULL } };
	CU_ASSERT_EQUAL(dh_dcm_ds_apply_overrides(ds, sq_empty, 1, err, sizeof(err)), DH_DCM_OK);
	CU_ASSERT_EQUAL(dh_dcm_ds_has(ds, DH_TAG(0x0008, 0x1140)), 1);
	CU_ASSERT_EQUAL(dh_dcm_ds_count(ds, "(0008,1140)"), 0);
	CU_ASSERT_EQUAL(dh_dcm_ds_apply_overrides(ds, sq_text, 1, err, sizeof(err)), DH_DCM_ERROR);
	CU_ASSERT(err[0] != '\0');
	dh_dcm_ds_free(ds);
}

int main(void)
{
	CU_pSuite s;
	unsigned failures;

	dh_dcm_global_init(0);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("dcm", suite_init, suite_clean);
	if (s == NULL ||
	    CU_add_test(s, "put/get round trip", test_put_get_round_trip) == NULL ||
	    CU_add_test(s, "put replaces; empty values", test_put_replaces_and_empty) == NULL ||
	    CU_add_test(s, "has and absent", test_has_and_absent) == NULL ||
	    CU_add_test(s, "buffer too small", test_buffer_too_small) == NULL ||
	    CU_add_test(s, "paths and count", test_paths_and_count) == NULL ||
	    CU_add_test(s, "save/load explicit LE", test_save_load_explicit) == NULL ||
	    CU_add_test(s, "save/load implicit LE", test_save_load_implicit) == NULL ||
	    CU_add_test(s, "save to a bad path", test_save_to_bad_path) == NULL ||
	    CU_add_test(s, "data set offset explicit", test_dataset_offset_explicit) == NULL ||
	    CU_add_test(s, "data set offset implicit", test_dataset_offset_implicit) == NULL ||
	    CU_add_test(s, "data set offset missing file", test_dataset_offset_missing_file) == NULL ||
	    CU_add_test(s, "data set offset of sample files", test_dataset_offset_samples) == NULL ||
	    CU_add_test(s, "load truncated files", test_load_truncated) == NULL ||
	    CU_add_test(s, "load a non-DICOM file", test_load_not_dicom) == NULL ||
	    CU_add_test(s, "load meta of a truncated file", test_load_meta_of_truncated) == NULL ||
	    CU_add_test(s, "Latin-1 comes out as UTF-8", test_latin1_to_utf8) == NULL ||
	    CU_add_test(s, "overrides: UTF-8, VR, order, meta", test_overrides_utf8_vr_order) == NULL ||
	    CU_add_test(s, "overrides: character set cases", test_overrides_charset_cases) == NULL) {
		CU_cleanup_registry();
		return 2;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
	CU_cleanup_registry();
	return failures == 0 ? 0 : 1;
}
