/*
 * test_durable.c - unit tests for common/durable.c.
 *
 * Crash safety itself cannot be shown in a unit test; what can be shown is
 * the visible contract: contents arrive intact, rename replaces, directories
 * are created, failures return -1 with errno, and no "*.tmp.*" file is ever
 * left behind, on success or on failure.
 */
#include "durable.h"

#include <CUnit/Basic.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

static char base[] = "/tmp/dh_test_durable.XXXXXX";

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

/* Reads a whole (small) file into buf; returns its length or -1. */
static long read_back(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	if (f == NULL)
		return -1;
	n = fread(buf, 1, cap, f);
	fclose(f);
	return (long)n;
}

/* Number of entries in dir whose name contains ".tmp.". */
static int temp_files_in(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		n += strstr(e->d_name, ".tmp.") != NULL;
	closedir(d);
	return n;
}

static void test_write_read_back(void)
{
	char path[512];
	char buf[256];
	const char *text = "durable content\n";

	path_in(path, sizeof(path), "a.txt");
	CU_ASSERT_EQUAL_FATAL(dh_durable_write_file(path, text, strlen(text)), 0);
	CU_ASSERT_EQUAL(read_back(path, buf, sizeof(buf)), (long)strlen(text));
	CU_ASSERT_EQUAL(memcmp(buf, text, strlen(text)), 0);
	CU_ASSERT_EQUAL(temp_files_in(base), 0);
}

static void test_write_replaces(void)
{
	char path[512];
	char buf[256];

	path_in(path, sizeof(path), "b.txt");
	CU_ASSERT_EQUAL_FATAL(dh_durable_write_file(path, "first version, longer", 21), 0);
	CU_ASSERT_EQUAL_FATAL(dh_durable_write_file(path, "second", 6), 0);
	/* Replaced, not overwritten in place: no tail of the old content. */
	CU_ASSERT_EQUAL(read_back(path, buf, sizeof(buf)), 6);
	CU_ASSERT_EQUAL(memcmp(buf, "second", 6), 0);
	CU_ASSERT_EQUAL(temp_files_in(base), 0);
}

static void test_write_empty_and_binary(void)
{
	char path[512];
	char buf[8];
	const char bin[4] = { 0, '\n', (char)0xff, 0 };

	path_in(path, sizeof(path), "empty.bin");
	CU_ASSERT_EQUAL(dh_durable_write_file(path, NULL, 0), 0);
	CU_ASSERT_EQUAL(read_back(path, buf, sizeof(buf)), 0);

	path_in(path, sizeof(path), "bin.bin");
	CU_ASSERT_EQUAL(dh_durable_write_file(path, bin, sizeof(bin)), 0);
	CU_ASSERT_EQUAL(read_back(path, buf, sizeof(buf)), 4);
	CU_ASSERT_EQUAL(memcmp(buf, bin, sizeof(bin)), 0);
}

static void test_write_missing_dir_fails(void)
{
	char path[512];
	struct stat st;

	path_in(path, sizeof(path), "no/such/dir/c.txt");
	errno = 0;
	CU_ASSERT_EQUAL(dh_durable_write_file(path, "x", 1), -1);
	CU_ASSERT_EQUAL(errno, ENOENT);
	CU_ASSERT_NOT_EQUAL(stat(path, &st), 0);
}

static void test_write_failure_removes_temp(void)
{
	char dir[512];
	char inner[600];

	/* A non-empty directory in the way: the temp file is written, the
	 * rename fails, and the temp file must go. */
	path_in(dir, sizeof(dir), "occupied");
	CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0700), 0);
	snprintf(inner, sizeof(inner), "%s/keep", dir);
	CU_ASSERT_EQUAL_FATAL(dh_durable_write_file(inner, "k", 1), 0);

	errno = 0;
	CU_ASSERT_EQUAL(dh_durable_write_file(dir, "data", 4), -1);
	CU_ASSERT(errno == EISDIR || errno == ENOTEMPTY || errno == EEXIST);
	CU_ASSERT_EQUAL(temp_files_in(base), 0);
	CU_ASSERT_EQUAL(temp_files_in(dir), 0);
}

static void test_rename_replaces(void)
{
	char from[512];
	char to[512];
	char buf[64];
	struct stat st;

	path_in(from, sizeof(from), "from.txt");
	path_in(to, sizeof(to), "to.txt");
	CU_ASSERT_EQUAL_FATAL(dh_durable_write_file(from, "new", 3), 0);
	CU_ASSERT_EQUAL_FATAL(dh_durable_write_file(to, "old!", 4), 0);
	CU_ASSERT_EQUAL(dh_durable_rename(from, to), 0);
	CU_ASSERT_EQUAL(read_back(to, buf, sizeof(buf)), 3);
	CU_ASSERT_EQUAL(memcmp(buf, "new", 3), 0);
	errno = 0;
	CU_ASSERT_EQUAL(stat(from, &st), -1);
	CU_ASSERT_EQUAL(errno, ENOENT);
}

static void test_rename_across_dirs(void)
{
	char sub[512];
	char from[512];
	char to[600];
	char buf[64];
	struct stat st;

	path_in(sub, sizeof(sub), "moved");
	path_in(from, sizeof(from), "mv.txt");
	snprintf(to, sizeof(to), "%s/mv.txt", sub);
	CU_ASSERT_EQUAL_FATAL(dh_durable_mkdirs(sub), 0);
	CU_ASSERT_EQUAL_FATAL(dh_durable_write_file(from, "moving", 6), 0);
	CU_ASSERT_EQUAL(dh_durable_rename(from, to), 0);
	CU_ASSERT_EQUAL(read_back(to, buf, sizeof(buf)), 6);
	CU_ASSERT_NOT_EQUAL(stat(from, &st), 0);
}

static void test_rename_missing_source(void)
{
	char from[512];
	char to[512];

	path_in(from, sizeof(from), "nothing-here");
	path_in(to, sizeof(to), "target");
	errno = 0;
	CU_ASSERT_EQUAL(dh_durable_rename(from, to), -1);
	CU_ASSERT_EQUAL(errno, ENOENT);
}

static void test_mkdirs_nested(void)
{
	char path[512];
	char deep[512];
	struct stat st;

	path_in(path, sizeof(path), "x/y/z");
	CU_ASSERT_EQUAL_FATAL(dh_durable_mkdirs(path), 0);
	CU_ASSERT_EQUAL_FATAL(stat(path, &st), 0);
	CU_ASSERT(S_ISDIR(st.st_mode));
	/* 0750 under the usual umasks (022, 027). */
	CU_ASSERT_EQUAL(st.st_mode & 0707, 0700);
	path_in(path, sizeof(path), "x/y");
	CU_ASSERT_EQUAL(stat(path, &st), 0);
	CU_ASSERT(S_ISDIR(st.st_mode));

	/* Existing directories are fine, and so are odd slashes. */
	path_in(path, sizeof(path), "x/y/z");
	CU_ASSERT_EQUAL(dh_durable_mkdirs(path), 0);
	path_in(deep, sizeof(deep), "x//y/z/w/");
	CU_ASSERT_EQUAL(dh_durable_mkdirs(deep), 0);
	path_in(path, sizeof(path), "x/y/z/w");
	CU_ASSERT_EQUAL(stat(path, &st), 0);
	CU_ASSERT(S_ISDIR(st.st_mode));
	CU_ASSERT_EQUAL(dh_durable_mkdirs("/"), 0);
}

static void test_mkdirs_relative(void)
{
	char cwd[512];

	CU_ASSERT_PTR_NOT_NULL_FATAL(getcwd(cwd, sizeof(cwd)));
	CU_ASSERT_EQUAL_FATAL(chdir(base), 0);
	CU_ASSERT_EQUAL(dh_durable_mkdirs("rel/a/b"), 0);
	CU_ASSERT_EQUAL(access("rel/a/b", F_OK), 0);
	CU_ASSERT_EQUAL(chdir(cwd), 0);
}

static void test_mkdirs_file_in_the_way(void)
{
	char file[512];
	char path[600];

	path_in(file, sizeof(file), "plain");
	CU_ASSERT_EQUAL_FATAL(dh_durable_write_file(file, "f", 1), 0);
	snprintf(path, sizeof(path), "%s/sub", file);
	errno = 0;
	CU_ASSERT_EQUAL(dh_durable_mkdirs(path), -1);
	CU_ASSERT_EQUAL(errno, ENOTDIR);
	errno = 0;
	CU_ASSERT_EQUAL(dh_durable_mkdirs(file), -1);
	CU_ASSERT_EQUAL(errno, ENOTDIR);
	errno = 0;
	CU_ASSERT_EQUAL(dh_durable_mkdirs(""), -1);
	CU_ASSERT_EQUAL(errno, ENOENT);
}

static void test_fsync_helpers(void)
{
	char path[512];
	int fd;

	path_in(path, sizeof(path), "sync.txt");
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(write(fd, "s", 1), 1);
	CU_ASSERT_EQUAL(dh_durable_fsync_fd(fd), 0);
	close(fd);
	errno = 0;
	CU_ASSERT_EQUAL(dh_durable_fsync_fd(fd), -1);
	CU_ASSERT_EQUAL(errno, EBADF);

	CU_ASSERT_EQUAL(dh_durable_fsync_dir(base), 0);
	path_in(path, sizeof(path), "no-such-dir");
	errno = 0;
	CU_ASSERT_EQUAL(dh_durable_fsync_dir(path), -1);
	CU_ASSERT_EQUAL(errno, ENOENT);
}

static void test_free_bytes(void)
{
	char path[512];
	uint64_t bytes = 0;

	CU_ASSERT_EQUAL(dh_durable_free_bytes(base, &bytes), 0);
	CU_ASSERT(bytes > 0);
	path_in(path, sizeof(path), "no-such-dir");
	errno = 0;
	CU_ASSERT_EQUAL(dh_durable_free_bytes(path, &bytes), -1);
	CU_ASSERT_EQUAL(errno, ENOENT);
}

static void test_no_temp_left(void)
{
	char path[512];

	path_in(path, sizeof(path), "x/y/z");
	CU_ASSERT_EQUAL(temp_files_in(base), 0);
	CU_ASSERT_EQUAL(temp_files_in(path), 0);
}

/* The 256 fan-out directories appear; only "*.part" leftovers go, counted. */
static void test_fanout_prepare(void)
{
	char root[512], p[600];
	struct stat st;
	int removed = -1;

	path_in(root, sizeof(root), "fan");
	CU_ASSERT_EQUAL_FATAL(dh_durable_fanout_prepare(root, &removed), 0);
	CU_ASSERT_EQUAL(removed, 0);
	snprintf(p, sizeof(p), "%s/00", root);
	CU_ASSERT(stat(p, &st) == 0 && S_ISDIR(st.st_mode));
	snprintf(p, sizeof(p), "%s/ff", root);
	CU_ASSERT(stat(p, &st) == 0 && S_ISDIR(st.st_mode));
	snprintf(p, sizeof(p), "%s/ab/x.dcm.part", root);
	CU_ASSERT_EQUAL_FATAL(dh_durable_write_file(p, "torn", 4), 0);
	snprintf(p, sizeof(p), "%s/ab/y.part", root);
	CU_ASSERT_EQUAL_FATAL(dh_durable_write_file(p, "torn", 4), 0);
	snprintf(p, sizeof(p), "%s/ab/kept.dcm", root);
	CU_ASSERT_EQUAL_FATAL(dh_durable_write_file(p, "whole", 5), 0);
	CU_ASSERT_EQUAL_FATAL(dh_durable_fanout_prepare(root, &removed), 0);
	CU_ASSERT_EQUAL(removed, 2);
	CU_ASSERT_EQUAL(stat(p, &st), 0); /* a finished file stays */
	snprintf(p, sizeof(p), "%s/ab/y.part", root);
	CU_ASSERT_NOT_EQUAL(stat(p, &st), 0);
	/* a root that cannot be made: an error, not a crash */
	CU_ASSERT_EQUAL(dh_durable_fanout_prepare("/proc/no/such/place", NULL), -1);
}

/* The one-shot XXH3-128 of buf, in hex (a static buffer). */
static const char *xxh128_hex(const void *buf, size_t len)
{
	static char out[33];
	XXH128_hash_t d = XXH3_128bits(buf, len);
	snprintf(out, sizeof(out), "%016llx%016llx", (unsigned long long)d.high64, (unsigned long long)d.low64);
	return out;
}

/* MD5 and size of what is on disk, fsync'ed; then renamed into place. */
static void test_md5_sync_and_rename(void)
{
	char from[512], to[512], md5[33];
	long long size = -1;
	struct stat st;

	path_in(from, sizeof(from), "obj.part");
	path_in(to, sizeof(to), "obj.dcm");
	CU_ASSERT_EQUAL_FATAL(dh_durable_write_file(from, "abc", 3), 0);
	CU_ASSERT_EQUAL_FATAL(dh_durable_md5_sync(from, md5, &size, -1, NULL, NULL), 0);
	CU_ASSERT_STRING_EQUAL(md5, "900150983cd24fb0d6963f7d28e17f72"); /* RFC 1321's "abc" */
	CU_ASSERT_EQUAL(size, 3);
	/* the XXH3-128 of the bytes from an offset, in the same pass: "bc", "", and "" past the end */
	char tail[33] = "x", whole[33] = "x";
	CU_ASSERT_EQUAL_FATAL(dh_durable_md5_sync(from, md5, &size, 1, tail, whole), 0);
	CU_ASSERT_STRING_EQUAL(md5, "900150983cd24fb0d6963f7d28e17f72");
	CU_ASSERT_STRING_EQUAL(tail, xxh128_hex("bc", 2));
	/* and of the whole file */
	CU_ASSERT_STRING_EQUAL(whole, xxh128_hex("abc", 3));
	CU_ASSERT_EQUAL_FATAL(dh_durable_md5_sync(from, md5, &size, 3, tail, NULL), 0);
	CU_ASSERT_STRING_EQUAL(tail, xxh128_hex("", 0));
	CU_ASSERT_EQUAL_FATAL(dh_durable_md5_sync(from, md5, &size, 4, tail, whole), 0);
	CU_ASSERT_STRING_EQUAL(tail, "");
	CU_ASSERT_STRING_EQUAL(whole, xxh128_hex("abc", 3));
	CU_ASSERT_EQUAL_FATAL(dh_durable_rename_synced(from, to), 0);
	CU_ASSERT_EQUAL(stat(to, &st), 0);
	CU_ASSERT_NOT_EQUAL(stat(from, &st), 0);
	/* a missing file: -1 with errno, no crash */
	errno = 0;
	CU_ASSERT_EQUAL(dh_durable_md5_sync(from, md5, &size, -1, NULL, NULL), -1);
	CU_ASSERT_EQUAL(errno, ENOENT);
	CU_ASSERT_EQUAL(dh_durable_rename_synced(from, to), -1);
}

int main(void)
{
	CU_pSuite s;
	unsigned failures;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("durable", suite_init, suite_clean);
	if (s == NULL ||
	    CU_add_test(s, "write then read back", test_write_read_back) == NULL ||
	    CU_add_test(s, "write replaces", test_write_replaces) == NULL ||
	    CU_add_test(s, "empty and binary content", test_write_empty_and_binary) == NULL ||
	    CU_add_test(s, "write into missing dir", test_write_missing_dir_fails) == NULL ||
	    CU_add_test(s, "failed write removes temp", test_write_failure_removes_temp) == NULL ||
	    CU_add_test(s, "rename replaces", test_rename_replaces) == NULL ||
	    CU_add_test(s, "rename across directories", test_rename_across_dirs) == NULL ||
	    CU_add_test(s, "rename of missing source", test_rename_missing_source) == NULL ||
	    CU_add_test(s, "mkdirs nested", test_mkdirs_nested) == NULL ||
	    CU_add_test(s, "mkdirs relative", test_mkdirs_relative) == NULL ||
	    CU_add_test(s, "mkdirs with a file in the way", test_mkdirs_file_in_the_way) == NULL ||
	    CU_add_test(s, "fsync helpers", test_fsync_helpers) == NULL ||
	    CU_add_test(s, "free bytes", test_free_bytes) == NULL ||
	    CU_add_test(s, "no temp files left", test_no_temp_left) == NULL ||
	    CU_add_test(s, "fan-out directories prepared", test_fanout_prepare) == NULL ||
	    CU_add_test(s, "md5 + fsync, then rename", test_md5_sync_and_rename) == NULL) {
		CU_cleanup_registry();
		return 2;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
	CU_cleanup_registry();
	return failures == 0 ? 0 : 1;
}
