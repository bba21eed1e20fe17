/*
 * test_uid.c - unit tests for common/uid.c (2.25 UIDs, UUIDs, UID syntax).
 *
 * Besides format and uniqueness, the decimal part of generated UIDs is read
 * back into a 128-bit number to check that the UUID version (4) and variant
 * (10xx) bits sit where RFC 4122 puts them; a broken decimal conversion
 * would scramble those bits in almost every sample.
 */
#include "uid.h"

#include <CUnit/Basic.h>
#include <stdlib.h>
#include <string.h>

#define SAMPLES 1000

static int cmp_str(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

static void test_generate_format(void)
{
	char uid[DH_UID_MAX + 1];

	for (int i = 0; i < SAMPLES; i++) {
		size_t len;

		CU_ASSERT_EQUAL_FATAL(dh_uid_generate(uid), 0);
		len = strlen(uid);
		CU_ASSERT(len <= DH_UID_MAX);
		/* "2.25." plus at most 39 digits of a 128-bit number. */
		CU_ASSERT(len > 5 && len <= 5 + 39);
		CU_ASSERT_EQUAL(strncmp(uid, "2.25.", 5), 0);
		CU_ASSERT_EQUAL(strspn(uid + 5, "0123456789"), len - 5);
		CU_ASSERT(uid[5] != '0');
		CU_ASSERT_EQUAL(dh_uid_valid(uid), 1);
	}
}

static void test_generate_unique(void)
{
	char (*uids)[DH_UID_MAX + 1] = calloc(SAMPLES, sizeof(*uids));
	int dup = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(uids);
	for (int i = 0; i < SAMPLES; i++)
		CU_ASSERT_EQUAL_FATAL(dh_uid_generate(uids[i]), 0);
	qsort(uids, SAMPLES, sizeof(*uids), cmp_str);
	for (int i = 1; i < SAMPLES; i++)
		dup += strcmp(uids[i - 1], uids[i]) == 0;
	CU_ASSERT_EQUAL(dup, 0);
	free(uids);
}

static void test_generate_uuid_bits(void)
{
	char uid[DH_UID_MAX + 1];
	int long_ones = 0;

	for (int i = 0; i < SAMPLES; i++) {
		unsigned __int128 v = 0;
		int overflow = 0;

		CU_ASSERT_EQUAL_FATAL(dh_uid_generate(uid), 0);
		for (const char *p = uid + 5; *p != '\0'; p++) {
			unsigned __int128 next = v * 10 + (unsigned)(*p - '0');

			if (next / 10 != v)
				overflow = 1;
			v = next;
		}
		CU_ASSERT_FALSE(overflow);
		CU_ASSERT_EQUAL((unsigned)(v >> 76) & 0xfu, 4u); /* version */
		CU_ASSERT_EQUAL((unsigned)(v >> 62) & 0x3u, 2u); /* variant 10xx */
		long_ones += strlen(uid) >= 5 + 37;
	}
	/* Uniform 122 random bits give >= 37 digits nearly always. */
	CU_ASSERT(long_ones > SAMPLES / 2);
}

static void test_uuid_format(void)
{
	char (*ids)[37] = calloc(SAMPLES, sizeof(*ids));
	int dup = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(ids);
	for (int i = 0; i < SAMPLES; i++) {
		const char *u = ids[i];

		CU_ASSERT_EQUAL_FATAL(dh_uuid_generate(ids[i]), 0);
		CU_ASSERT_EQUAL(strlen(u), 36);
		for (int k = 0; k < 36; k++) {
			/* The CUnit macros are blocks: braces keep if/else intact. */
			if (k == 8 || k == 13 || k == 18 || k == 23) {
				CU_ASSERT_EQUAL(u[k], '-');
			} else {
				CU_ASSERT_PTR_NOT_NULL(strchr("0123456789abcdef", u[k]));
			}
		}
		CU_ASSERT_EQUAL(u[14], '4');
		CU_ASSERT_PTR_NOT_NULL(strchr("89ab", u[19]));
	}
	qsort(ids, SAMPLES, sizeof(*ids), cmp_str);
	for (int i = 1; i < SAMPLES; i++)
		dup += strcmp(ids[i - 1], ids[i]) == 0;
	CU_ASSERT_EQUAL(dup, 0);
	free(ids);
}

static void test_valid_accepts(void)
{
	char max[DH_UID_MAX + 1];

	CU_ASSERT_EQUAL(dh_uid_valid("1.2.3"), 1);
	CU_ASSERT_EQUAL(dh_uid_valid("0"), 1);
	CU_ASSERT_EQUAL(dh_uid_valid("1"), 1);
	CU_ASSERT_EQUAL(dh_uid_valid("1.0.2"), 1);
	CU_ASSERT_EQUAL(dh_uid_valid("1.2.840.10008.1.2.1"), 1);
	CU_ASSERT_EQUAL(dh_uid_valid("2.25.329800735698586629295641978511506172918"), 1);
	/* Exactly 64 characters. */
	memset(max, '1', DH_UID_MAX);
	max[1] = '.';
	max[DH_UID_MAX] = '\0';
	CU_ASSERT_EQUAL(strlen(max), 64);
	CU_ASSERT_EQUAL(dh_uid_valid(max), 1);
}

static void test_valid_rejects(void)
{
	char too_long[DH_UID_MAX + 2];

	CU_ASSERT_EQUAL(dh_uid_valid(NULL), 0);
	CU_ASSERT_EQUAL(dh_uid_valid(""), 0);
	CU_ASSERT_EQUAL(dh_uid_valid("1..2"), 0);
	CU_ASSERT_EQUAL(dh_uid_valid("1.02"), 0);
	CU_ASSERT_EQUAL(dh_uid_valid("01.2"), 0);
	CU_ASSERT_EQUAL(dh_uid_valid("00"), 0);
	CU_ASSERT_EQUAL(dh_uid_valid(".1"), 0);
	CU_ASSERT_EQUAL(dh_uid_valid("1."), 0);
	CU_ASSERT_EQUAL(dh_uid_valid("."), 0);
	CU_ASSERT_EQUAL(dh_uid_valid("1.2a"), 0);
	CU_ASSERT_EQUAL(dh_uid_valid("1.2 "), 0);
	CU_ASSERT_EQUAL(dh_uid_valid("1.-2"), 0);
	memset(too_long, '1', DH_UID_MAX + 1);
	too_long[1] = '.';
	too_long[DH_UID_MAX + 1] = '\0';
	CU_ASSERT_EQUAL(strlen(too_long), 65);
	CU_ASSERT_EQUAL(dh_uid_valid(too_long), 0);
}

int main(void)
{
	CU_pSuite s;
	unsigned failures;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("uid", NULL, NULL);
	if (s == NULL ||
	    CU_add_test(s, "generated UIDs are well-formed", test_generate_format) == NULL ||
	    CU_add_test(s, "generated UIDs are unique", test_generate_unique) == NULL ||
	    CU_add_test(s, "decimal part is a v4 UUID", test_generate_uuid_bits) == NULL ||
	    CU_add_test(s, "UUID text form", test_uuid_format) == NULL ||
	    CU_add_test(s, "dh_uid_valid accepts", test_valid_accepts) == NULL ||
	    CU_add_test(s, "dh_uid_valid rejects", test_valid_rejects) == NULL) {
		CU_cleanup_registry();
		return 2;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
	CU_cleanup_registry();
	return failures == 0 ? 0 : 1;
}
