/*
 * test_ccwire.c - unit tests of common/ccwire.c: batch, ack, ledger request
 * and ledger chunk (hubctl verify) round trips and the chunk's bounds
 * (rows within the announced total, at most DH_CCWIRE_MAX_LEDGER_ROWS),
 * every decoder rejection (garbage, truncated, oversized, too many items,
 * no body, bad version, bad spoke id, memory bound), and the CURVE key
 * files (keygen, save with mode 0600, load, refusal of a group-readable
 * file and of a malformed one).
 */
#include "cc.h"
#include "cc.pb-c.h"
#include "ccwire.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

static char tmpdir[] = "/tmp/test_ccwire.XXXXXX";

/* A real encoded cc (ATTRIBUTE_CHANGE of one study), malloc'd. */
static uint8_t *make_cc(uint64_t seq, size_t *len)
{
	dh_cc *cc = NULL;
	uint8_t *buf = NULL;

	CU_ASSERT_FATAL(dh_cc_new(&cc, DH_CC_ATTRIBUTE_CHANGE, "SITE1", seq, NULL, 0, "op", "test") == 0);
	CU_ASSERT_FATAL(dh_cc_attr_set_target(cc, DH_CC_LEVEL_STUDY, NULL, NULL, "1.2.3.4", NULL, NULL) == 0);
	CU_ASSERT_FATAL(dh_cc_add_attr(cc, -1, 0x00081030, "LO", "old", "new") == 0);
	CU_ASSERT_FATAL(dh_cc_encode(cc, &buf, len) == 0);
	dh_cc_free(cc);
	return buf;
}

static void test_batch_roundtrip(void)
{
	uint8_t *b1, *b2, *buf = NULL;
	size_t l1, l2, len = 0;
	dh_ccwire_frame *f = NULL;
	char why[256];
	dh_cc *cc = NULL;

	b1 = make_cc(1, &l1);
	b2 = make_cc(2, &l2);
	dh_ccwire_item items[2] = { { b1, l1 }, { b2, l2 } };
	CU_ASSERT_FATAL(dh_ccwire_encode_batch("SITE1", items, 2, &buf, &len) == 0);
	CU_ASSERT_FATAL(dh_ccwire_decode(buf, len, &f, why, sizeof(why)) == 0);
	CU_ASSERT_EQUAL(dh_ccwire_frame_type(f), DH_CCWIRE_BATCH);
	CU_ASSERT_STRING_EQUAL(dh_ccwire_frame_spoke_id(f), "SITE1");
	CU_ASSERT_EQUAL_FATAL(dh_ccwire_batch_count(f), 2);
	dh_ccwire_item it = dh_ccwire_batch_item(f, 1);
	CU_ASSERT_EQUAL_FATAL(it.len, l2);
	CU_ASSERT(memcmp(it.data, b2, l2) == 0);
	CU_ASSERT_FATAL(dh_cc_decode(it.data, it.len, &cc, why, sizeof(why)) == 0);
	CU_ASSERT_EQUAL(dh_cc_sequence(cc), 2);
	/* out of range and ack accessors on a batch are harmless */
	CU_ASSERT_PTR_NULL(dh_ccwire_batch_item(f, 2).data);
	CU_ASSERT_EQUAL(dh_ccwire_ack_refused_count(f), 0);
	dh_cc_free(cc);
	dh_ccwire_frame_free(f);
	free(buf);

	/* the empty batch: the hello */
	CU_ASSERT_FATAL(dh_ccwire_encode_batch("SITE1", NULL, 0, &buf, &len) == 0);
	CU_ASSERT_FATAL(dh_ccwire_decode(buf, len, &f, why, sizeof(why)) == 0);
	CU_ASSERT_EQUAL(dh_ccwire_frame_type(f), DH_CCWIRE_BATCH);
	CU_ASSERT_EQUAL(dh_ccwire_batch_count(f), 0);
	dh_ccwire_frame_free(f);
	free(buf);

	/* the encoder refuses what the decoder would */
	CU_ASSERT_EQUAL(dh_ccwire_encode_batch("", NULL, 0, &buf, &len), -1);
	CU_ASSERT_PTR_NULL(buf);
	CU_ASSERT_EQUAL(dh_ccwire_encode_batch("bad id", NULL, 0, &buf, &len), -1);
	CU_ASSERT_EQUAL(dh_ccwire_encode_batch("S", items, DH_CCWIRE_MAX_ITEMS + 1, &buf, &len), -1);
	free(b1);
	free(b2);
}

static void test_ack_roundtrip(void)
{
	dh_ccwire_refusal r[2] = {
		{ 7, "0d7c6f0a-1b2c-4d5e-8f90-123456789abc", "study owned by SITE2", 1 },
		{ 9, "", "objects not received yet", 0 },
	};
	uint8_t *buf = NULL;
	size_t len = 0;
	dh_ccwire_frame *f = NULL;
	char why[256];

	CU_ASSERT_FATAL(dh_ccwire_encode_ack("SITE1", 12345678901ull, r, 2, &buf, &len) == 0);
	CU_ASSERT_FATAL(dh_ccwire_decode(buf, len, &f, why, sizeof(why)) == 0);
	CU_ASSERT_EQUAL(dh_ccwire_frame_type(f), DH_CCWIRE_ACK);
	CU_ASSERT_STRING_EQUAL(dh_ccwire_frame_spoke_id(f), "SITE1");
	CU_ASSERT_EQUAL(dh_ccwire_ack_through(f), 12345678901ull);
	CU_ASSERT_EQUAL(dh_ccwire_batch_count(f), 0);
	CU_ASSERT_EQUAL_FATAL(dh_ccwire_ack_refused_count(f), 2);
	dh_ccwire_refusal a = dh_ccwire_ack_refused(f, 0), b = dh_ccwire_ack_refused(f, 1);
	CU_ASSERT_EQUAL(a.sequence, 7);
	CU_ASSERT_STRING_EQUAL(a.uuid, r[0].uuid);
	CU_ASSERT_STRING_EQUAL(a.reason, "study owned by SITE2");
	CU_ASSERT_EQUAL(a.permanent, 1);
	CU_ASSERT_EQUAL(b.sequence, 9);
	CU_ASSERT_STRING_EQUAL(b.uuid, "");
	CU_ASSERT_EQUAL(b.permanent, 0);
	dh_ccwire_frame_free(f);
	free(buf);

	/* acked_through 0, no refusals: the answer to a first hello */
	CU_ASSERT_FATAL(dh_ccwire_encode_ack("SITE1", 0, NULL, 0, &buf, &len) == 0);
	CU_ASSERT_FATAL(dh_ccwire_decode(buf, len, &f, why, sizeof(why)) == 0);
	CU_ASSERT_EQUAL(dh_ccwire_frame_type(f), DH_CCWIRE_ACK);
	CU_ASSERT_EQUAL(dh_ccwire_ack_through(f), 0);
	dh_ccwire_frame_free(f);
	free(buf);
}

/* Decoding must fail, leave *out NULL and give a reason containing needle. */
static void expect_reject(const uint8_t *buf, size_t len, const char *needle)
{
	dh_ccwire_frame *f = (dh_ccwire_frame *)1;
	char why[256] = "";

	CU_ASSERT_EQUAL(dh_ccwire_decode(buf, len, &f, why, sizeof(why)), -1);
	CU_ASSERT_PTR_NULL(f);
	CU_ASSERT(why[0] != '\0');
	if (needle && !strstr(why, needle)) {
		fprintf(stderr, "reason '%s' lacks '%s'\n", why, needle);
		CU_FAIL("unexpected reason");
	}
}

/* Packs a hand-made Frame (the encoders refuse to make bad ones). */
static uint8_t *pack(const Dhcc__Frame *fr, size_t *len)
{
	*len = protobuf_c_message_get_packed_size(&fr->base);
	uint8_t *buf = malloc(*len ? *len : 1);
	CU_ASSERT_FATAL(buf != NULL);
	protobuf_c_message_pack(&fr->base, buf);
	return buf;
}

static void test_decode_garbage(void)
{
	static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff, 0x0f, 0x07, 0x01, 0x02 };
	uint8_t rnd[512];

	expect_reject(NULL, 0, "empty");
	expect_reject(junk, sizeof(junk), "protobuf");
	/* random bytes: never accepted as a frame with a valid spoke id... */
	srand(42);
	for (int k = 0; k < 2000; k++) {
		dh_ccwire_frame *f = NULL;
		char why[256];
		size_t n = 1 + (size_t)(rand() % (int)sizeof(rnd));
		for (size_t i = 0; i < n; i++)
			rnd[i] = (uint8_t)rand();
		/* ...or if it is (astronomically unlikely), it is consistent */
		if (dh_ccwire_decode(rnd, n, &f, why, sizeof(why)) == 0) {
			CU_ASSERT(dh_ccwire_frame_spoke_id(f)[0] != '\0');
			dh_ccwire_frame_free(f);
		} else {
			CU_ASSERT(why[0] != '\0');
		}
	}
}

static void test_decode_truncated(void)
{
	uint8_t *c, *buf = NULL;
	size_t l, len = 0;

	c = make_cc(1, &l);
	dh_ccwire_item it = { c, l };
	CU_ASSERT_FATAL(dh_ccwire_encode_batch("SITE1", &it, 1, &buf, &len) == 0);
	expect_reject(buf, len / 2, "protobuf");
	expect_reject(buf, len - 1, "protobuf");
	/* every prefix but the whole is rejected or (cut between fields) decodes sanely */
	for (size_t k = 1; k < len; k++) {
		uint8_t *exact = malloc(k);
		dh_ccwire_frame *f = NULL;
		char why[256];
		memcpy(exact, buf, k);
		if (dh_ccwire_decode(exact, k, &f, why, sizeof(why)) == 0) {
			CU_ASSERT(dh_ccwire_batch_count(f) <= 1);
			dh_ccwire_frame_free(f);
		}
		free(exact);
	}
	free(buf);
	free(c);
}

static void test_decode_oversized(void)
{
	size_t len = DH_CCWIRE_MAX_FRAME + 1;
	uint8_t *big = calloc(1, len);

	CU_ASSERT_FATAL(big != NULL);
	expect_reject(big, len, "exceeds the limit");
	free(big);
}

static void test_decode_too_many_items(void)
{
	Dhcc__Frame fr = DHCC__FRAME__INIT;
	Dhcc__Batch b = DHCC__BATCH__INIT;
	Dhcc__Ack a = DHCC__ACK__INIT;
	size_t n = DH_CCWIRE_MAX_ITEMS + 1, len;
	ProtobufCBinaryData *items = calloc(n, sizeof(*items));
	Dhcc__Refusal r = DHCC__REFUSAL__INIT, **rp = calloc(n, sizeof(*rp));
	uint8_t *buf;

	CU_ASSERT_FATAL(items && rp);
	b.spoke_id = "SITE1";
	b.n_items = n;
	b.items = items;
	fr.schema_version = 1;
	fr.body_case = DHCC__FRAME__BODY_BATCH;
	fr.batch = &b;
	buf = pack(&fr, &len);
	expect_reject(buf, len, "items exceeds");
	free(buf);
	/* exactly the limit is fine */
	b.n_items = DH_CCWIRE_MAX_ITEMS;
	buf = pack(&fr, &len);
	dh_ccwire_frame *f = NULL;
	char why[256];
	CU_ASSERT_EQUAL(dh_ccwire_decode(buf, len, &f, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL(f ? dh_ccwire_batch_count(f) : 0, DH_CCWIRE_MAX_ITEMS);
	dh_ccwire_frame_free(f);
	free(buf);

	for (size_t i = 0; i < n; i++)
		rp[i] = &r;
	a.spoke_id = "SITE1";
	a.n_refused = n;
	a.refused = rp;
	fr.body_case = DHCC__FRAME__BODY_ACK;
	fr.ack = &a;
	buf = pack(&fr, &len);
	expect_reject(buf, len, "refusals exceeds");
	free(buf);
	free(items);
	free(rp);
}

/* A Frame with a Batch of n empty items, hand-encoded into buf (len set). */
static uint8_t *empty_items_frame(size_t n, size_t *len)
{
	uint8_t *buf = malloc(2 * n + 32);
	size_t p = 0, body = 7 + 2 * n;

	CU_ASSERT_FATAL(buf != NULL);
	buf[p++] = 0x08; /* schema_version = 1 */
	buf[p++] = 0x01;
	buf[p++] = 0x12; /* batch, length-delimited */
	for (size_t v = body;; v >>= 7) {
		buf[p++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		if (v <= 0x7f)
			break;
	}
	memcpy(buf + p, "\x0a\x05SITE1", 7); /* spoke_id */
	p += 7;
	for (size_t i = 0; i < n; i++) {
		buf[p++] = 0x1a; /* items, length 0 */
		buf[p++] = 0x00;
	}
	*len = p;
	return buf;
}

/* A frame at the size limit made of empty items expands ~30x in protobuf-c:
 * the bounded allocator refuses it instead of taking a GiB. */
static void test_decode_memory_bound(void)
{
	dh_ccwire_frame *f = NULL;
	char why[256];
	size_t len;
	uint8_t *buf;

	/* the hand encoding is right: a small one decodes */
	buf = empty_items_frame(1000, &len);
	CU_ASSERT_FATAL(dh_ccwire_decode(buf, len, &f, why, sizeof(why)) == 0);
	CU_ASSERT_EQUAL(dh_ccwire_batch_count(f), 1000);
	dh_ccwire_frame_free(f);
	free(buf);
	buf = empty_items_frame(DH_CCWIRE_MAX_FRAME / 2 - 16, &len);
	CU_ASSERT(len <= DH_CCWIRE_MAX_FRAME);
	expect_reject(buf, len, "memory limit");
	free(buf);
}

static void test_decode_wrong_shape(void)
{
	Dhcc__Frame fr = DHCC__FRAME__INIT;
	Dhcc__Batch b = DHCC__BATCH__INIT;
	uint8_t *buf, *c;
	size_t len, l;

	/* no body */
	fr.schema_version = 1;
	buf = pack(&fr, &len);
	expect_reject(buf, len, "neither");
	free(buf);
	/* version 0 (absent) and a future version */
	b.spoke_id = "SITE1";
	fr.body_case = DHCC__FRAME__BODY_BATCH;
	fr.batch = &b;
	fr.schema_version = 0;
	buf = pack(&fr, &len);
	expect_reject(buf, len, "version");
	free(buf);
	fr.schema_version = 2;
	buf = pack(&fr, &len);
	expect_reject(buf, len, "version");
	free(buf);
	/* bad spoke ids */
	fr.schema_version = 1;
	b.spoke_id = "";
	buf = pack(&fr, &len);
	expect_reject(buf, len, "spoke_id");
	free(buf);
	b.spoke_id = "SITE 1";
	buf = pack(&fr, &len);
	expect_reject(buf, len, "spoke_id");
	free(buf);
	/* a ChangeContext is not a Frame */
	c = make_cc(1, &l);
	expect_reject(c, l, NULL);
	free(c);
}

static void test_ledger_request_roundtrip(void)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	dh_ccwire_frame *f = NULL;
	char why[256], long_uid[80];

	CU_ASSERT_FATAL(dh_ccwire_encode_ledger_request("SITE1", 42, "1.2.3.4", &buf, &len) == 0);
	CU_ASSERT_FATAL(dh_ccwire_decode(buf, len, &f, why, sizeof(why)) == 0);
	CU_ASSERT_EQUAL(dh_ccwire_frame_type(f), DH_CCWIRE_LEDGER_REQUEST);
	CU_ASSERT_STRING_EQUAL(dh_ccwire_frame_spoke_id(f), "SITE1");
	CU_ASSERT_EQUAL(dh_ccwire_request_id(f), 42);
	CU_ASSERT_STRING_EQUAL(dh_ccwire_request_study(f), "1.2.3.4");
	/* other accessors are harmless */
	CU_ASSERT_EQUAL(dh_ccwire_batch_count(f), 0);
	CU_ASSERT_EQUAL(dh_ccwire_chunk_count(f), 0);
	CU_ASSERT_EQUAL(dh_ccwire_chunk_header(f).total, 0);
	CU_ASSERT_STRING_EQUAL(dh_ccwire_chunk_row(f, 0).sop_uid, "");
	dh_ccwire_frame_free(f);
	free(buf);
	/* every study: NULL encodes as "" */
	CU_ASSERT_FATAL(dh_ccwire_encode_ledger_request("SITE1", 1, NULL, &buf, &len) == 0);
	CU_ASSERT_FATAL(dh_ccwire_decode(buf, len, &f, why, sizeof(why)) == 0);
	CU_ASSERT_STRING_EQUAL(dh_ccwire_request_study(f), "");
	dh_ccwire_frame_free(f);
	free(buf);
	/* a study UID longer than a UID can be: refused both ways */
	memset(long_uid, '1', 65);
	long_uid[65] = '\0';
	CU_ASSERT_EQUAL(dh_ccwire_encode_ledger_request("SITE1", 1, long_uid, &buf, &len), -1);
	Dhcc__Frame fr = DHCC__FRAME__INIT;
	Dhcc__LedgerRequest q = DHCC__LEDGER_REQUEST__INIT;
	q.spoke_id = "SITE1";
	q.study_uid = long_uid;
	fr.schema_version = 1;
	fr.body_case = DHCC__FRAME__BODY_LEDGER_REQUEST;
	fr.ledger_request = &q;
	buf = pack(&fr, &len);
	expect_reject(buf, len, "study UID");
	free(buf);
	q.study_uid = "1.2";
	q.spoke_id = "bad id";
	buf = pack(&fr, &len);
	expect_reject(buf, len, "spoke_id");
	free(buf);
}

static void test_ledger_chunk_roundtrip(void)
{
	dh_ccwire_ledger_row rows[2];
	dh_ccwire_chunk_head head = { 7, 5, 3, 1, "" };
	uint8_t *buf = NULL;
	size_t len = 0;
	dh_ccwire_frame *f = NULL;
	char why[256];

	memset(rows, 0, sizeof(rows)); /* NULL strings encode as "" */
	rows[0].sop_uid = "1.2.3.4.1";
	rows[0].series_uid = "1.2.3.4";
	rows[0].study_uid = "1.2.3";
	rows[0].digest = "0123456789abcdef0123456789abcdef";
	rows[0].patient_name = "DOE^JOHN\tab\\x"; /* what COPY must escape stays intact on the wire */
	rows[0].instance_number = "12";
	rows[0].transfer_syntax = "1.2.840.10008.1.2.1";
	rows[1].sop_uid = "1.2.3.4.2";
	rows[1].deleted = 1;
	rows[1].fwd_state = "committed";
	CU_ASSERT_FATAL(dh_ccwire_encode_ledger_chunk("SITE1", &head, rows, 2, &buf, &len) == 0);
	CU_ASSERT_FATAL(dh_ccwire_decode(buf, len, &f, why, sizeof(why)) == 0);
	CU_ASSERT_EQUAL(dh_ccwire_frame_type(f), DH_CCWIRE_LEDGER_CHUNK);
	CU_ASSERT_STRING_EQUAL(dh_ccwire_frame_spoke_id(f), "SITE1");
	CU_ASSERT_EQUAL(dh_ccwire_request_id(f), 7);
	dh_ccwire_chunk_head h = dh_ccwire_chunk_header(f);
	CU_ASSERT_EQUAL(h.request_id, 7);
	CU_ASSERT_EQUAL(h.total, 5);
	CU_ASSERT_EQUAL(h.offset, 3);
	CU_ASSERT_EQUAL(h.last, 1);
	CU_ASSERT_STRING_EQUAL(h.error, "");
	CU_ASSERT_EQUAL_FATAL(dh_ccwire_chunk_count(f), 2);
	dh_ccwire_ledger_row a = dh_ccwire_chunk_row(f, 0), b = dh_ccwire_chunk_row(f, 1);
	CU_ASSERT_STRING_EQUAL(a.sop_uid, "1.2.3.4.1");
	CU_ASSERT_STRING_EQUAL(a.series_uid, "1.2.3.4");
	CU_ASSERT_STRING_EQUAL(a.study_uid, "1.2.3");
	CU_ASSERT_STRING_EQUAL(a.digest, "0123456789abcdef0123456789abcdef");
	CU_ASSERT_STRING_EQUAL(a.patient_name, "DOE^JOHN\tab\\x");
	CU_ASSERT_STRING_EQUAL(a.instance_number, "12");
	CU_ASSERT_STRING_EQUAL(a.transfer_syntax, "1.2.840.10008.1.2.1");
	CU_ASSERT_EQUAL(a.deleted, 0);
	CU_ASSERT_STRING_EQUAL(a.accession, "");
	CU_ASSERT_STRING_EQUAL(b.sop_uid, "1.2.3.4.2");
	CU_ASSERT_EQUAL(b.deleted, 1);
	CU_ASSERT_STRING_EQUAL(b.fwd_state, "committed");
	CU_ASSERT_STRING_EQUAL(dh_ccwire_chunk_row(f, 2).sop_uid, ""); /* out of range */
	CU_ASSERT_STRING_EQUAL(dh_ccwire_request_study(f), "");
	dh_ccwire_frame_free(f);
	free(buf);

	/* the spoke's error: an empty last chunk naming it */
	dh_ccwire_chunk_head e = { 8, 0, 0, 1, "reading the ledger: connection lost" };
	CU_ASSERT_FATAL(dh_ccwire_encode_ledger_chunk("SITE1", &e, NULL, 0, &buf, &len) == 0);
	CU_ASSERT_FATAL(dh_ccwire_decode(buf, len, &f, why, sizeof(why)) == 0);
	CU_ASSERT_STRING_EQUAL(dh_ccwire_chunk_header(f).error, "reading the ledger: connection lost");
	CU_ASSERT_EQUAL(dh_ccwire_chunk_count(f), 0);
	dh_ccwire_frame_free(f);
	free(buf);

	/* encoder refusals */
	CU_ASSERT_EQUAL(dh_ccwire_encode_ledger_chunk("SITE1", NULL, NULL, 0, &buf, &len), -1);
	CU_ASSERT_EQUAL(dh_ccwire_encode_ledger_chunk("SITE1", &head, NULL, 2, &buf, &len), -1);
	CU_ASSERT_EQUAL(dh_ccwire_encode_ledger_chunk("SITE1", &head, rows, DH_CCWIRE_MAX_LEDGER_ROWS + 1, &buf, &len),
			-1);
	CU_ASSERT_EQUAL(dh_ccwire_encode_ledger_chunk("", &head, rows, 1, &buf, &len), -1);
	CU_ASSERT_PTR_NULL(buf);
}

/* A chunk's rows must lie within its announced total, and there may not be too many. */
static void test_ledger_chunk_bounds(void)
{
	Dhcc__Frame fr = DHCC__FRAME__INIT;
	Dhcc__LedgerChunk c = DHCC__LEDGER_CHUNK__INIT;
	Dhcc__LedgerRow r = DHCC__LEDGER_ROW__INIT, **rp;
	uint8_t *buf;
	size_t len, n = DH_CCWIRE_MAX_LEDGER_ROWS + 1;

	rp = calloc(n, sizeof(*rp));
	CU_ASSERT_FATAL(rp != NULL);
	for (size_t i = 0; i < n; i++)
		rp[i] = &r;
	c.spoke_id = "SITE1";
	c.rows = rp;
	fr.schema_version = 1;
	fr.body_case = DHCC__FRAME__BODY_LEDGER_CHUNK;
	fr.ledger_chunk = &c;
	/* two rows at offset 4 of a total of 5 */
	c.n_rows = 2;
	c.offset = 4;
	c.total = 5;
	buf = pack(&fr, &len);
	expect_reject(buf, len, "announced total");
	free(buf);
	/* offset + rows overflowing 64 bits */
	c.offset = UINT64_MAX;
	c.total = UINT64_MAX;
	buf = pack(&fr, &len);
	expect_reject(buf, len, "announced total");
	free(buf);
	/* too many rows */
	c.n_rows = n;
	c.offset = 0;
	c.total = n;
	buf = pack(&fr, &len);
	expect_reject(buf, len, "exceeds the limit");
	free(buf);
	/* exactly the limit is fine */
	c.n_rows = n - 1;
	buf = pack(&fr, &len);
	{
		dh_ccwire_frame *f = NULL;
		char why[256];
		CU_ASSERT_EQUAL(dh_ccwire_decode(buf, len, &f, why, sizeof(why)), 0);
		CU_ASSERT_EQUAL(dh_ccwire_chunk_count(f), n - 1);
		dh_ccwire_frame_free(f);
	}
	free(buf);
	free(rp);
}

static char *tpath(const char *name)
{
	static char p[256];
	snprintf(p, sizeof(p), "%s/%s", tmpdir, name);
	return p;
}

static void test_keys(void)
{
	char pub[41], sec[41], pub2[41], sec2[41], err[512];
	struct stat st;
	FILE *f;

	if (!zmq_has("curve")) {
		CU_FAIL("libzmq without CURVE");
		return;
	}
	CU_ASSERT_FATAL(dh_ccwire_keygen(pub, sec) == 0);
	CU_ASSERT_EQUAL(strlen(pub), 40);
	CU_ASSERT_EQUAL(strlen(sec), 40);
	CU_ASSERT_FATAL(dh_ccwire_save_secret(tpath("k1"), sec, err, sizeof(err)) == 0);
	CU_ASSERT_FATAL(stat(tpath("k1"), &st) == 0);
	CU_ASSERT_EQUAL(st.st_mode & 07777, 0600);
	CU_ASSERT_FATAL(dh_ccwire_load_secret(tpath("k1"), sec2, pub2, err, sizeof(err)) == 0);
	CU_ASSERT_STRING_EQUAL(sec2, sec);
	CU_ASSERT_STRING_EQUAL(pub2, pub);
	CU_ASSERT(dh_ccwire_load_secret(tpath("k1"), sec2, NULL, err, sizeof(err)) == 0);

	/* group-readable: refused */
	CU_ASSERT_FATAL(chmod(tpath("k1"), 0640) == 0);
	CU_ASSERT_EQUAL(dh_ccwire_load_secret(tpath("k1"), sec2, pub2, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "group or others"));
	CU_ASSERT_FATAL(chmod(tpath("k1"), 0604) == 0);
	CU_ASSERT_EQUAL(dh_ccwire_load_secret(tpath("k1"), sec2, pub2, err, sizeof(err)), -1);

	/* blanks around the key are fine; a short or bad key is not */
	f = fopen(tpath("k2"), "w");
	CU_ASSERT_FATAL(f != NULL);
	fprintf(f, "  \n%s  \r\n\n", sec);
	fclose(f);
	chmod(tpath("k2"), 0600);
	CU_ASSERT(dh_ccwire_load_secret(tpath("k2"), sec2, pub2, err, sizeof(err)) == 0);
	CU_ASSERT_STRING_EQUAL(pub2, pub);
	f = fopen(tpath("k3"), "w");
	CU_ASSERT_FATAL(f != NULL);
	fprintf(f, "%.39s\n", sec);
	fclose(f);
	chmod(tpath("k3"), 0600);
	CU_ASSERT_EQUAL(dh_ccwire_load_secret(tpath("k3"), sec2, pub2, err, sizeof(err)), -1);
	f = fopen(tpath("k3"), "w");
	fprintf(f, "%.39s\"\n", sec);
	fclose(f);
	CU_ASSERT_EQUAL(dh_ccwire_load_secret(tpath("k3"), sec2, pub2, err, sizeof(err)), -1);
	CU_ASSERT_EQUAL(dh_ccwire_load_secret(tpath("missing"), sec2, pub2, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "missing"));

	/* overwriting keeps mode 0600 even with a permissive umask */
	mode_t old = umask(0);
	CU_ASSERT(dh_ccwire_save_secret(tpath("k1"), sec, err, sizeof(err)) == 0);
	umask(old);
	CU_ASSERT_FATAL(stat(tpath("k1"), &st) == 0);
	CU_ASSERT_EQUAL(st.st_mode & 07777, 0600);
	unlink(tpath("k1"));
	unlink(tpath("k2"));
	unlink(tpath("k3"));
}

int main(void)
{
	CU_pSuite s;
	unsigned fails;

	if (!mkdtemp(tmpdir))
		return 1;
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("ccwire", NULL, NULL);
	if (!s || !CU_add_test(s, "batch round trip", test_batch_roundtrip) ||
	    !CU_add_test(s, "ack round trip", test_ack_roundtrip) ||
	    !CU_add_test(s, "garbage", test_decode_garbage) ||
	    !CU_add_test(s, "truncated", test_decode_truncated) ||
	    !CU_add_test(s, "oversized", test_decode_oversized) ||
	    !CU_add_test(s, "too many items", test_decode_too_many_items) ||
	    !CU_add_test(s, "memory bound", test_decode_memory_bound) ||
	    !CU_add_test(s, "wrong shape", test_decode_wrong_shape) ||
	    !CU_add_test(s, "ledger request round trip", test_ledger_request_roundtrip) ||
	    !CU_add_test(s, "ledger chunk round trip", test_ledger_chunk_roundtrip) ||
	    !CU_add_test(s, "ledger chunk bounds", test_ledger_chunk_bounds) ||
	    !CU_add_test(s, "key files", test_keys)) {
		CU_cleanup_registry();
		return 1;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	fails = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	rmdir(tmpdir);
	return fails ? 1 : 0;
}
