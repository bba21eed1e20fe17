/*
 * test_wado.c - unit tests for the WADO-URI query parser (hub/wado/wado_query.c):
 * what is accepted, and for every refusal the status and the reason; random
 * and mutated queries never crash it and always give 0, 400 or 406 with a
 * reason of printable ASCII.
 */
#include "wado_query.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ST "1.2.826.0.1.3680043.9.7777.1"
#define SE "1.2.826.0.1.3680043.9.7777.1.1"
#define OB "1.2.826.0.1.3680043.9.7777.1.1.1"
#define GOOD "requestType=WADO&studyUID=" ST "&seriesUID=" SE "&objectUID=" OB "&contentType=application/dicom"

static int parse(const char *q, wado_request *rq, char *why)
{
	why[0] = '\0';
	return wado_parse_query(q, rq, why, 256);
}

static void test_accepts(void)
{
	wado_request rq;
	char why[256];
	CU_ASSERT_EQUAL(parse(GOOD, &rq, why), 0);
	CU_ASSERT_STRING_EQUAL(rq.study, ST);
	CU_ASSERT_STRING_EQUAL(rq.series, SE);
	CU_ASSERT_STRING_EQUAL(rq.object, OB);
	CU_ASSERT_STRING_EQUAL(rq.transfer_syntax, "");
	/* any order, percent-encoded names and values, empty pieces, a media type list */
	CU_ASSERT_EQUAL(parse("&contentType=image%2Fjpeg%2C%20APPLICATION/DICOM;q=0.5&&objectUID=" OB
			      "&seriesUID=" SE "&studyUID=1%2E2%2e826.0.1.3680043.9.7777.1&request%54ype=WADO&",
			      &rq, why), 0);
	CU_ASSERT_STRING_EQUAL(rq.study, ST);
	CU_ASSERT_EQUAL(parse(GOOD "&transferSyntax=1.2.840.10008.1.2.1", &rq, why), 0);
	CU_ASSERT_STRING_EQUAL(rq.transfer_syntax, "1.2.840.10008.1.2.1");
	/* the longest UID (64 characters) */
	char q[512], uid[65];
	memset(uid, '1', 64);
	uid[64] = '\0';
	uid[1] = '.';
	snprintf(q, sizeof(q), "requestType=WADO&studyUID=%s&seriesUID=%s&objectUID=%s&contentType=application/dicom",
		 uid, uid, uid);
	CU_ASSERT_EQUAL(parse(q, &rq, why), 0);
	CU_ASSERT_STRING_EQUAL(rq.object, uid);
}

/* Each refused query with its status and a piece of its reason. */
static const struct {
	const char *q;
	int status;
	const char *why;
} refusals[] = {
	{ "", 400, "requestType missing" },
	{ "studyUID=" ST "&seriesUID=" SE "&objectUID=" OB "&contentType=application/dicom", 400, "requestType missing" },
	{ "requestType=WADOX&studyUID=" ST, 400, "requestType must be WADO" },
	{ "requestType=wado&studyUID=" ST, 400, "requestType must be WADO" },
	{ "requestType=WADO&seriesUID=" SE "&objectUID=" OB "&contentType=application/dicom", 400, "studyUID missing" },
	{ "requestType=WADO&studyUID=" ST "&objectUID=" OB "&contentType=application/dicom", 400, "seriesUID missing" },
	{ "requestType=WADO&studyUID=" ST "&seriesUID=" SE "&contentType=application/dicom", 400, "objectUID missing" },
	{ "requestType=WADO&studyUID=" ST "&seriesUID=" SE "&objectUID=" OB, 400, "contentType missing" },
	{ GOOD "&objectUID=" OB, 400, "'objectUID' given more than once" },
	{ "requestType=WADO&" GOOD, 400, "'requestType' given more than once" },
	{ GOOD "&contentType=application/dicom", 400, "given more than once" },
	{ "requestType=WADO&studyUID=1.2.abc&seriesUID=" SE "&objectUID=" OB "&contentType=application/dicom", 400,
	  "studyUID is not a UID" },
	{ "requestType=WADO&studyUID=" ST "&seriesUID=1..2&objectUID=" OB "&contentType=application/dicom", 400,
	  "seriesUID is not a UID" },
	{ "requestType=WADO&studyUID=" ST "&seriesUID=" SE "&objectUID=1.02&contentType=application/dicom", 400,
	  "objectUID is not a UID" },
	{ "requestType=WADO&studyUID=" ST "&seriesUID=" SE "&objectUID=&contentType=application/dicom", 400,
	  "objectUID is not a UID" },
	{ "requestType=WADO&studyUID=" ST "&seriesUID=" SE "&objectUID=1.2+3&contentType=application/dicom", 400,
	  "objectUID is not a UID" },
	{ GOOD "&transferSyntax=jpeg", 400, "transferSyntax is not a UID" },
	{ GOOD "&transferSyntax", 400, "'transferSyntax' has no value" },
	{ "requestType=WADO&studyUID=1.2%zz&seriesUID=" SE, 400, "bad percent-encoding in the value of 'studyUID'" },
	{ "requestType=WADO&studyUID=1.2%4", 400, "bad percent-encoding" },
	{ "requestType=WADO&studyUID=1.2%", 400, "bad percent-encoding" },
	{ "requestType=WADO&studyUID=1.2%00", 400, "bad percent-encoding" },
	{ "requestType=WADO&studyUID=1.2%0a", 400, "bad percent-encoding" },
	{ "request%zzType=WADO", 400, "bad percent-encoding in a parameter name" },
	{ GOOD "&foo=1", 400, "unknown parameter 'foo'" },
	{ GOOD "&=1", 400, "unknown parameter" },
	{ GOOD "&rows=64", 400, "parameter 'rows' is not supported" },
	{ GOOD "&anonymize=yes", 400, "parameter 'anonymize' is not supported" },
	{ GOOD "&charset=UTF-8", 400, "parameter 'charset' is not supported" },
	{ GOOD "&frameNumber=1", 400, "parameter 'frameNumber' is not supported" },
	{ "requestType=WADO&studyUID=" ST "&seriesUID=" SE "&objectUID=" OB "&contentType=image/jpeg", 406,
	  "only application/dicom" },
	{ "requestType=WADO&studyUID=" ST "&seriesUID=" SE "&objectUID=" OB "&contentType=application/dicomx", 406,
	  "only application/dicom" },
	{ "requestType=WADO&studyUID=" ST "&seriesUID=" SE "&objectUID=" OB "&contentType=", 406,
	  "only application/dicom" },
};

static void test_refusals(void)
{
	for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		wado_request rq;
		char why[256];
		int st = parse(refusals[i].q, &rq, why);
		if (st != refusals[i].status || !strstr(why, refusals[i].why))
			fprintf(stderr, "\n  query '%s': status %d, reason '%s'\n", refusals[i].q, st, why);
		CU_ASSERT_EQUAL(st, refusals[i].status);
		CU_ASSERT_PTR_NOT_NULL(strstr(why, refusals[i].why));
	}
}

static void test_long_values(void)
{
	wado_request rq;
	char why[256];
	size_t n = 5000;
	char *q = malloc(n + 64);
	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	/* a value over the limit */
	int off = snprintf(q, n + 64, "%s&transferSyntax=", GOOD);
	memset(q + off, '1', n - (size_t)off);
	q[n] = '\0';
	CU_ASSERT_EQUAL(parse(q, &rq, why), 400);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "'transferSyntax' too long"));
	/* a long unknown name is cut in the reason */
	memset(q, 'x', n);
	strcpy(q + n, "=1");
	CU_ASSERT_EQUAL(parse(q, &rq, why), 400);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "unknown parameter"));
	CU_ASSERT(strlen(why) < 200);
	/* a UID of 65 characters */
	char uid[66];
	memset(uid, '1', 65);
	uid[65] = '\0';
	snprintf(q, n, "requestType=WADO&studyUID=" ST "&seriesUID=" SE "&objectUID=%s&contentType=application/dicom",
		 uid);
	CU_ASSERT_EQUAL(parse(q, &rq, why), 400);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "objectUID is not a UID"));
	free(q);
}

/* Reasons echo what the client sent: only printable ASCII comes back. */
static void test_reason_printable(void)
{
	wado_request rq;
	char why[256];
	CU_ASSERT_EQUAL(parse("requestType=%C3%A9%1f", &rq, why), 400);
	CU_ASSERT_EQUAL(parse("requestType=%C3%A9x", &rq, why), 400);
	for (const char *p = why; *p; p++)
		CU_ASSERT(*p >= 0x20 && *p < 0x7F);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "requestType must be WADO, not '??x'"));
}

/* Random bytes and mutations of a good query: always 0, 400 or 406, a reason on refusal. */
static void test_random(void)
{
	static const char alphabet[] = "%&=.+;#/\\\"'<> 0123456789abcdefABCDEFXYZ\x01\x7f\xff";
	char q[600], why[256];
	wado_request rq;
	srand(42);
	for (int i = 0; i < 200000; i++) {
		size_t len;
		if (i % 2) {
			len = (size_t)(rand() % 500);
			for (size_t k = 0; k < len; k++)
				q[k] = alphabet[rand() % (int)(sizeof(alphabet) - 1)];
		} else {
			len = strlen(GOOD);
			memcpy(q, GOOD, len);
			for (int m = rand() % 4 + 1; m > 0; m--) {
				size_t pos = (size_t)rand() % len;
				if (rand() % 2 && len < sizeof(q) - 2) {
					memmove(q + pos + 1, q + pos, len - pos);
					len++;
				}
				q[pos] = alphabet[rand() % (int)(sizeof(alphabet) - 1)];
			}
		}
		q[len] = '\0';
		int st = wado_parse_query(q, &rq, why, sizeof(why));
		CU_ASSERT(st == 0 || st == 400 || st == 406);
		if (st) {
			CU_ASSERT(why[0] != '\0');
			for (const char *p = why; *p; p++)
				CU_ASSERT(*p >= 0x20 && *p < 0x7F);
		} else {
			CU_ASSERT(strlen(rq.study) > 0 && strlen(rq.series) > 0 && strlen(rq.object) > 0);
		}
	}
	/* a small reason buffer is never overrun */
	char tiny[8];
	CU_ASSERT_EQUAL(wado_parse_query("foo=1", &rq, tiny, sizeof(tiny)), 400);
	CU_ASSERT_EQUAL(strlen(tiny), 7);
	CU_ASSERT_EQUAL(wado_parse_query(NULL, &rq, why, sizeof(why)), 400);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("wado", NULL, NULL);
	CU_add_test(s, "accepts", test_accepts);
	CU_add_test(s, "refusals", test_refusals);
	CU_add_test(s, "long values", test_long_values);
	CU_add_test(s, "reasons printable", test_reason_printable);
	CU_add_test(s, "random", test_random);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned int failed = CU_get_number_of_failures();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
