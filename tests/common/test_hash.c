/*
 * test_hash.c - unit tests for common/hash.c (MD5 of buffers, streams, files).
 *
 * Known vectors from RFC 1321 pin the digest and its lowercase hex form; a
 * file larger than the 1 MiB read block, with a ragged tail, checks that the
 * file path feeds every byte exactly once.
 */
#include "hash.h"

#include <CUnit/Basic.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/dh_test_hash.XXXXXX";

static int suite_init(void)
{
	return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

static int suite_clean(void)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void check_vector(const char *text, const char *expect)
{
	char hex[DH_MD5_HEX_LEN + 1];

	memset(hex, 'X', sizeof(hex));
	CU_ASSERT_EQUAL_FATAL(dh_md5_buffer(text, strlen(text), hex), 0);
	CU_ASSERT_EQUAL(strlen(hex), DH_MD5_HEX_LEN);
	CU_ASSERT_STRING_EQUAL(hex, expect);
}

static void test_vectors(void)
{
	check_vector("", "d41d8cd98f00b204e9800998ecf8427e");
	check_vector("a", "0cc175b9c0f1b6a831c399e269772661");
	check_vector("abc", "900150983cd24fb0d6963f7d28e17f72");
	check_vector("message digest", "f96b697d7cb7938d525a2f31aaf161d0");
	check_vector("The quick brown fox jumps over the lazy dog",
		     "9e107d9d372bb6826bd81d3542a419d6");
	check_vector("12345678901234567890123456789012345678901234567890123456789012345678901234567890",
		     "57edf4a22be3c955ac49da2e2107b67a");
}

static void test_null_empty_buffer(void)
{
	char hex[DH_MD5_HEX_LEN + 1];

	CU_ASSERT_EQUAL(dh_md5_buffer(NULL, 0, hex), 0);
	CU_ASSERT_STRING_EQUAL(hex, "d41d8cd98f00b204e9800998ecf8427e");
	errno = 0;
	CU_ASSERT_EQUAL(dh_md5_buffer(NULL, 5, hex), -1);
	CU_ASSERT_EQUAL(errno, EINVAL);
}

static void test_incremental(void)
{
	const char *text = "The quick brown fox jumps over the lazy dog";
	size_t len = strlen(text);
	char one[DH_MD5_HEX_LEN + 1];
	char inc[DH_MD5_HEX_LEN + 1];
	dh_md5 *h = NULL;

	CU_ASSERT_EQUAL_FATAL(dh_md5_buffer(text, len, one), 0);
	CU_ASSERT_EQUAL_FATAL(dh_md5_new(&h), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	/* Uneven pieces, including an empty one. */
	CU_ASSERT_EQUAL(dh_md5_update(h, text, 1), 0);
	CU_ASSERT_EQUAL(dh_md5_update(h, text + 1, 0), 0);
	CU_ASSERT_EQUAL(dh_md5_update(h, text + 1, 20), 0);
	CU_ASSERT_EQUAL(dh_md5_update(h, text + 21, len - 21), 0);
	CU_ASSERT_EQUAL(dh_md5_final(h, inc), 0);
	CU_ASSERT_STRING_EQUAL(inc, one);

	/* A finished context refuses more input instead of giving a wrong sum. */
	errno = 0;
	CU_ASSERT_EQUAL(dh_md5_update(h, "x", 1), -1);
	CU_ASSERT_EQUAL(errno, EINVAL);
	CU_ASSERT_EQUAL(dh_md5_final(h, inc), -1);
	dh_md5_free(h);
	dh_md5_free(NULL);
}

static void write_file(const char *path, const unsigned char *buf, size_t len)
{
	FILE *f = fopen(path, "wb");

	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_EQUAL(fwrite(buf, 1, len, f), len);
	CU_ASSERT_EQUAL(fclose(f), 0);
}

static void test_file_matches_buffer(void)
{
	/* Three blocks and a tail that does not align with anything. */
	size_t len = 3 * 1024 * 1024 + 17;
	unsigned char *buf = malloc(len);
	char path[512];
	char from_buf[DH_MD5_HEX_LEN + 1];
	char from_file[DH_MD5_HEX_LEN + 1];
	unsigned x = 12345;

	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	for (size_t i = 0; i < len; i++) {
		x = x * 1103515245u + 12345u;
		buf[i] = (unsigned char)(x >> 16);
	}
	snprintf(path, sizeof(path), "%s/big.bin", tmpdir);
	write_file(path, buf, len);
	CU_ASSERT_EQUAL(dh_md5_buffer(buf, len, from_buf), 0);
	CU_ASSERT_EQUAL(dh_md5_file(path, from_file), 0);
	CU_ASSERT_STRING_EQUAL(from_file, from_buf);

	/* One changed byte in the last block must change the file digest. */
	buf[len - 1] ^= 0x01;
	write_file(path, buf, len);
	CU_ASSERT_EQUAL(dh_md5_file(path, from_file), 0);
	CU_ASSERT_STRING_NOT_EQUAL(from_file, from_buf);
	free(buf);
}

static void test_file_small_and_empty(void)
{
	char path[512];
	char hex[DH_MD5_HEX_LEN + 1];

	snprintf(path, sizeof(path), "%s/abc.txt", tmpdir);
	write_file(path, (const unsigned char *)"abc", 3);
	CU_ASSERT_EQUAL(dh_md5_file(path, hex), 0);
	CU_ASSERT_STRING_EQUAL(hex, "900150983cd24fb0d6963f7d28e17f72");

	snprintf(path, sizeof(path), "%s/empty.txt", tmpdir);
	write_file(path, (const unsigned char *)"", 0);
	CU_ASSERT_EQUAL(dh_md5_file(path, hex), 0);
	CU_ASSERT_STRING_EQUAL(hex, "d41d8cd98f00b204e9800998ecf8427e");
}

static void test_file_errors(void)
{
	char path[512];
	char hex[DH_MD5_HEX_LEN + 1];

	snprintf(path, sizeof(path), "%s/does-not-exist", tmpdir);
	errno = 0;
	CU_ASSERT_EQUAL(dh_md5_file(path, hex), -1);
	CU_ASSERT_EQUAL(errno, ENOENT);

	/* A directory opens but cannot be read. */
	errno = 0;
	CU_ASSERT_EQUAL(dh_md5_file(tmpdir, hex), -1);
	CU_ASSERT_EQUAL(errno, EISDIR);
}

int main(void)
{
	CU_pSuite s;
	unsigned failures;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("hash", suite_init, suite_clean);
	if (s == NULL ||
	    CU_add_test(s, "known vectors", test_vectors) == NULL ||
	    CU_add_test(s, "NULL and empty buffers", test_null_empty_buffer) == NULL ||
	    CU_add_test(s, "incremental equals one-shot", test_incremental) == NULL ||
	    CU_add_test(s, "file equals buffer (multi-block)", test_file_matches_buffer) == NULL ||
	    CU_add_test(s, "small and empty files", test_file_small_and_empty) == NULL ||
	    CU_add_test(s, "file errors", test_file_errors) == NULL) {
		CU_cleanup_registry();
		return 2;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
	CU_cleanup_registry();
	return failures == 0 ? 0 : 1;
}
