/*
 * test_cc.c - unit tests for common/cc.c (change-context model and codec).
 *
 * Each of the six kinds is built with the public builders, encoded,
 * decoded and compared. Every validation rule is then broken on its own:
 * the test edits the generated struct directly and packs it with protobuf-c
 * (dh_cc_encode refuses invalid cc, so this is the only way to produce such
 * bytes), and checks that dh_cc_decode rejects it with the expected reason.
 * Truncations at every length, an oversized frame, over-long lists and a
 * memory-bomb frame must be rejected too.
 *
 * `test_cc --write-seeds DIR` writes the encodings of the six sample cc to
 * DIR (the committed seed corpus fuzz/corpus/cc/ was made this way).
 */
#include "cc.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPOKE "SPOKE-A"
#define UUID "123e4567-e89b-42d3-a456-426614174000"
#define WHEN INT64_C(1764000000000)

/* A deterministic valid UID, "1.2.826.0.1.<a>.<b>". */
static const char *uid(int a, int b)
{
	static char ring[64][65];
	static int next;
	char *s = ring[next++ % 64];

	snprintf(s, 65, "1.2.826.0.1.%d.%d", a, b);
	return s;
}

static dh_cc *make_split(void)
{
	dh_cc *cc = NULL;

	CU_ASSERT_EQUAL_FATAL(
		dh_cc_new(&cc, DH_CC_SPLIT, SPOKE, 1, UUID, WHEN, "alice", "wrong patient"), 0);
	CU_ASSERT_EQUAL(dh_cc_split_set(cc, uid(1, 0), uid(2, 0), 1), 0);
	CU_ASSERT_EQUAL(dh_cc_add_instance(cc, -1, uid(1, 0), uid(1, 1), uid(1, 11)), 0);
	CU_ASSERT_EQUAL(dh_cc_add_instance(cc, -1, uid(1, 0), uid(1, 1), uid(1, 12)), 0);
	CU_ASSERT_EQUAL(dh_cc_add_uid_map(cc, -1, DH_CC_LEVEL_STUDY, uid(1, 0), uid(2, 0)), 0);
	CU_ASSERT_EQUAL(dh_cc_add_uid_map(cc, -1, DH_CC_LEVEL_SERIES, uid(1, 1), uid(2, 1)), 0);
	CU_ASSERT_EQUAL(dh_cc_add_attr(cc, -1, 0x00100010u, "PN", "Doe^John", "Roe^Jane"), 0);
	CU_ASSERT_EQUAL(dh_cc_add_attr(cc, -1, 0x00100020u, "LO", "P1", "P2"), 0);
	return cc;
}

static dh_cc *make_merge(void)
{
	dh_cc *cc = NULL;

	CU_ASSERT_EQUAL_FATAL(dh_cc_new(&cc, DH_CC_MERGE, SPOKE, 2, UUID, WHEN, "bob", NULL), 0);
	CU_ASSERT_EQUAL(dh_cc_merge_add_source(cc, uid(3, 0)), 0);
	CU_ASSERT_EQUAL(dh_cc_merge_add_source(cc, uid(4, 0)), 0);
	CU_ASSERT_EQUAL(dh_cc_merge_set_destination(cc, uid(5, 0)), 0);
	CU_ASSERT_EQUAL(dh_cc_add_instance(cc, -1, uid(3, 0), uid(3, 1), uid(3, 11)), 0);
	CU_ASSERT_EQUAL(dh_cc_add_instance(cc, -1, uid(4, 0), uid(4, 1), uid(4, 11)), 0);
	CU_ASSERT_EQUAL(dh_cc_add_uid_map(cc, -1, DH_CC_LEVEL_STUDY, uid(3, 0), uid(5, 0)), 0);
	CU_ASSERT_EQUAL(dh_cc_add_uid_map(cc, -1, DH_CC_LEVEL_STUDY, uid(4, 0), uid(5, 0)), 0);
	CU_ASSERT_EQUAL(dh_cc_add_uid_map(cc, -1, DH_CC_LEVEL_SERIES, uid(3, 1), uid(5, 1)), 0);
	CU_ASSERT_EQUAL(dh_cc_add_uid_map(cc, -1, DH_CC_LEVEL_INSTANCE, uid(3, 11), uid(5, 11)), 0);
	CU_ASSERT_EQUAL(dh_cc_add_uid_map(cc, -1, DH_CC_LEVEL_INSTANCE, uid(4, 11), uid(5, 12)), 0);
	return cc;
}

static dh_cc *make_segment(void)
{
	dh_cc *cc = NULL;
	int t0, t1;

	CU_ASSERT_EQUAL_FATAL(dh_cc_new(&cc, DH_CC_SEGMENT, SPOKE, 3, UUID, WHEN, "carol",
					"three orders, one exam"), 0);
	CU_ASSERT_EQUAL(dh_cc_segment_set_source(cc, uid(6, 0), 0), 0);
	t0 = dh_cc_segment_add_target(cc, uid(7, 0), "ACC7");
	t1 = dh_cc_segment_add_target(cc, uid(8, 0), "ACC8");
	CU_ASSERT_EQUAL(t0, 0);
	CU_ASSERT_EQUAL(t1, 1);
	CU_ASSERT_EQUAL(dh_cc_add_instance(cc, t0, uid(6, 0), uid(6, 1), uid(6, 11)), 0);
	CU_ASSERT_EQUAL(dh_cc_add_instance(cc, t0, uid(6, 0), uid(6, 1), uid(6, 12)), 0);
	CU_ASSERT_EQUAL(dh_cc_add_uid_map(cc, t0, DH_CC_LEVEL_STUDY, uid(6, 0), uid(7, 0)), 0);
	CU_ASSERT_EQUAL(dh_cc_add_attr(cc, t0, 0x00081030u, "LO", "CT", "CT chest"), 0);
	/* 6.12 is duplicated into the second target with a new SOP UID */
	CU_ASSERT_EQUAL(dh_cc_add_instance(cc, t1, uid(6, 0), uid(6, 1), uid(6, 12)), 0);
	CU_ASSERT_EQUAL(dh_cc_add_uid_map(cc, t1, DH_CC_LEVEL_STUDY, uid(6, 0), uid(8, 0)), 0);
	CU_ASSERT_EQUAL(dh_cc_add_uid_map(cc, t1, DH_CC_LEVEL_SERIES, uid(6, 1), uid(8, 1)), 0);
	CU_ASSERT_EQUAL(dh_cc_add_uid_map(cc, t1, DH_CC_LEVEL_INSTANCE, uid(6, 12), uid(8, 12)), 0);
	return cc;
}

static dh_cc *make_attr(void)
{
	dh_cc *cc = NULL;

	CU_ASSERT_EQUAL_FATAL(dh_cc_new(&cc, DH_CC_ATTRIBUTE_CHANGE, SPOKE, 4, UUID, WHEN, "dave",
					"typo"), 0);
	CU_ASSERT_EQUAL(dh_cc_attr_set_target(cc, DH_CC_LEVEL_STUDY, NULL, NULL, uid(9, 0), NULL,
					      NULL), 0);
	CU_ASSERT_EQUAL(dh_cc_add_attr(cc, -1, 0x00200010u, "SH", "1", "2"), 0);
	CU_ASSERT_EQUAL(dh_cc_add_attr(cc, -1, 0x00080050u, "SH", "A1", "A2"), 0);
	CU_ASSERT_EQUAL(dh_cc_add_attr(cc, -1, 0x00081030u, "LO", "", "H\xc3\xa9\"ad\\\n"), 0);
	return cc;
}

static dh_cc *make_delete(void)
{
	dh_cc *cc = NULL;

	CU_ASSERT_EQUAL_FATAL(dh_cc_new(&cc, DH_CC_DELETE, SPOKE, 5, UUID, WHEN, "erin", NULL), 0);
	CU_ASSERT_EQUAL(dh_cc_add_instance(cc, -1, uid(10, 0), uid(10, 1), NULL), 0);
	CU_ASSERT_EQUAL(dh_cc_add_instance(cc, -1, uid(10, 0), uid(10, 2), uid(10, 21)), 0);
	return cc;
}

static dh_cc *make_fixup(void)
{
	dh_cc *cc = NULL;

	CU_ASSERT_EQUAL_FATAL(dh_cc_new(&cc, DH_CC_UID_FIXUP, SPOKE, 6, UUID, WHEN, "frank",
					"matched to order"), 0);
	CU_ASSERT_EQUAL(dh_cc_fixup_set(cc, uid(11, 0), uid(12, 0), "ACC12"), 0);
	CU_ASSERT_EQUAL(dh_cc_add_attr(cc, -1, 0x00100010u, "PN", "UNKNOWN", "Doe^John"), 0);
	CU_ASSERT_EQUAL(dh_cc_add_uid_map(cc, -1, DH_CC_LEVEL_SERIES, uid(11, 1), uid(12, 1)), 0);
	return cc;
}

typedef dh_cc *(*maker)(void);
static const maker makers[] = { make_split, make_merge, make_segment,
				make_attr,  make_delete, make_fixup };
#define N_MAKERS (sizeof(makers) / sizeof(makers[0]))

/* The generated struct, writable: tests break rules behind the builders' back. */
static Dhcc__ChangeContext *raw(dh_cc *cc)
{
	return (Dhcc__ChangeContext *)dh_cc_message(cc);
}

/* Packs cc without validation (the only way to get invalid bytes). */
static uint8_t *pack_raw(dh_cc *cc, size_t *len)
{
	uint8_t *buf;

	*len = protobuf_c_message_get_packed_size(&raw(cc)->base);
	buf = malloc(*len ? *len : 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	CU_ASSERT_EQUAL(protobuf_c_message_pack(&raw(cc)->base, buf), *len);
	return buf;
}

static int rejections;

/* cc (currently broken) must be refused everywhere, with `expect` in the reason. */
static void expect_reject_at(dh_cc *cc, const char *expect, int line)
{
	char why[256] = "", why2[256] = "";
	uint8_t *buf, *enc = NULL;
	size_t len, enclen;
	dh_cc *out = (dh_cc *)1;

	buf = pack_raw(cc, &len);
	CU_ASSERT_EQUAL(dh_cc_decode(buf, len, &out, why, sizeof(why)), -1);
	CU_ASSERT_PTR_NULL(out);
	CU_ASSERT_EQUAL(dh_cc_validate(cc, why2, sizeof(why2)), -1);
	CU_ASSERT_EQUAL(dh_cc_encode(cc, &enc, &enclen), -1);
	CU_ASSERT_PTR_NULL(enc);
	if (!strstr(why, expect)) {
		fprintf(stderr, "\n  line %d: expected \"%s\" in \"%s\"\n", line, expect, why);
		CU_FAIL("wrong or missing reason");
	}
	rejections++;
	dh_cc_free(out);
	free(buf);
	free(enc);
}
#define expect_reject(cc, expect) expect_reject_at((cc), (expect), __LINE__)

/* Sets lvalue to val, checks the rejection, restores the original value
 * (so the cc still frees what it owns). */
#define BREAK(cc, lvalue, val, expect)                                                           \
	do {                                                                                     \
		__typeof__(lvalue) saved_ = (lvalue);                                            \
		(lvalue) = (val);                                                                \
		expect_reject((cc), (expect));                                                   \
		(lvalue) = saved_;                                                               \
	} while (0)

/* ------------------------------------------------------------------ */

static void test_roundtrip(void)
{
	for (size_t k = 0; k < N_MAKERS; k++) {
		dh_cc *cc = makers[k](), *back = NULL;
		uint8_t *buf = NULL, *buf2 = NULL;
		size_t len = 0, len2 = 0;
		char why[256] = "?";

		CU_ASSERT_EQUAL(dh_cc_validate(cc, why, sizeof(why)), 0);
		if (why[0])
			fprintf(stderr, "\n  %s: %s\n", dh_cc_kind_name(dh_cc_get_kind(cc)), why);
		CU_ASSERT_EQUAL_FATAL(dh_cc_encode(cc, &buf, &len), 0);
		CU_ASSERT(len > 0 && len < 4096);
		CU_ASSERT_EQUAL_FATAL(dh_cc_decode(buf, len, &back, why, sizeof(why)), 0);
		CU_ASSERT(dh_cc_equal(cc, back));
		CU_ASSERT_EQUAL(dh_cc_encode(back, &buf2, &len2), 0);
		CU_ASSERT(len == len2 && memcmp(buf, buf2, len) == 0);
		CU_ASSERT_EQUAL(dh_cc_get_kind(back), dh_cc_get_kind(cc));
		CU_ASSERT_STRING_EQUAL(dh_cc_spoke_id(back), SPOKE);
		CU_ASSERT_EQUAL(dh_cc_sequence(back), k + 1);
		CU_ASSERT_STRING_EQUAL(dh_cc_uuid(back), UUID);
		CU_ASSERT_EQUAL(dh_cc_created_at_ms(back), WHEN);
		CU_ASSERT_STRING_EQUAL(dh_cc_operator(back), dh_cc_operator(cc));
		CU_ASSERT_STRING_EQUAL(dh_cc_reason(back), dh_cc_reason(cc));
		/* a decoded cc is read-only */
		CU_ASSERT_EQUAL(dh_cc_add_attr(back, -1, 0x00100010u, "PN", "a", "b"), -1);
		CU_ASSERT_EQUAL(dh_cc_add_instance(back, -1, uid(1, 0), uid(1, 1), uid(1, 2)), -1);
		dh_cc_free(back);
		free(buf);
		free(buf2);
		dh_cc_free(cc);
	}
}

static void test_payload_content(void)
{
	dh_cc *cc = make_segment(), *back = NULL;
	uint8_t *buf = NULL;
	size_t len;
	const Dhcc__ChangeContext *m;

	CU_ASSERT_EQUAL_FATAL(dh_cc_encode(cc, &buf, &len), 0);
	CU_ASSERT_EQUAL_FATAL(dh_cc_decode(buf, len, &back, NULL, 0), 0);
	m = dh_cc_message(back);
	CU_ASSERT_EQUAL_FATAL(m->payload_case, DHCC__CHANGE_CONTEXT__PAYLOAD_SEGMENT);
	CU_ASSERT_EQUAL_FATAL(m->segment->n_targets, 2);
	CU_ASSERT_STRING_EQUAL(m->segment->targets[1]->accession_number, "ACC8");
	CU_ASSERT_EQUAL(m->segment->targets[1]->n_uid_map, 3);
	CU_ASSERT_STRING_EQUAL(m->segment->targets[1]->uid_map[2]->new_uid, uid(8, 12));
	CU_ASSERT_EQUAL(m->segment->targets[0]->attributes[0]->tag, 0x00081030u);
	dh_cc_free(back);
	dh_cc_free(cc);
	free(buf);
}

/* Fields of a newer schema are skipped and dropped: re-encoding gives the
 * known fields only (field 99 varint, and field 0 as a non-minimal varint,
 * which protobuf-c would otherwise keep and write back differently). */
static void test_unknown_fields(void)
{
	dh_cc *cc = make_delete(), *back = NULL;
	uint8_t *buf = NULL, *ext, *again = NULL;
	size_t len, len2;
	char why[256];
	static const uint8_t extra[] = { 0x98, 0x06, 0x07, 0x80, 0x00, 0x05 };

	CU_ASSERT_EQUAL_FATAL(dh_cc_encode(cc, &buf, &len), 0);
	ext = malloc(len + sizeof(extra));
	CU_ASSERT_PTR_NOT_NULL_FATAL(ext);
	memcpy(ext, buf, len);
	memcpy(ext + len, extra, sizeof(extra));
	CU_ASSERT_EQUAL_FATAL(dh_cc_decode(ext, len + sizeof(extra), &back, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL(dh_cc_encode(back, &again, &len2), 0);
	CU_ASSERT(len2 == len && memcmp(again, buf, len) == 0);
	free(buf);
	free(ext);
	free(again);
	dh_cc_free(back);
	dh_cc_free(cc);
}

static void test_names(void)
{
	for (int k = DH_CC_SPLIT; k <= DH_CC_UID_FIXUP; k++)
		CU_ASSERT_EQUAL(dh_cc_kind_from_name(dh_cc_kind_name(k)), k);
	CU_ASSERT_EQUAL(dh_cc_kind_from_name("attribute_change"), DH_CC_ATTRIBUTE_CHANGE);
	CU_ASSERT_EQUAL(dh_cc_kind_from_name("nope"), -1);
	CU_ASSERT_EQUAL(dh_cc_kind_from_name(NULL), -1);
	CU_ASSERT_STRING_EQUAL(dh_cc_kind_name(0), "UNKNOWN");
	CU_ASSERT_STRING_EQUAL(dh_cc_kind_name(7), "UNKNOWN");
	CU_ASSERT_STRING_EQUAL(dh_cc_level_name(DH_CC_LEVEL_SERIES), "SERIES");
}

static void test_new_defaults(void)
{
	dh_cc *cc = NULL;

	CU_ASSERT_EQUAL(dh_cc_new(&cc, (dh_cc_kind)0, SPOKE, 1, NULL, 0, NULL, NULL), -1);
	CU_ASSERT_PTR_NULL(cc);
	CU_ASSERT_EQUAL_FATAL(dh_cc_new(&cc, DH_CC_DELETE, SPOKE, 1, NULL, 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(strlen(dh_cc_uuid(cc)), 36);
	CU_ASSERT(dh_cc_created_at_ms(cc) > WHEN - INT64_C(86400000) * 365);
	/* wrong list for the kind, wrong target index */
	CU_ASSERT_EQUAL(dh_cc_add_attr(cc, -1, 0x00100010u, "PN", "a", "b"), -1);
	CU_ASSERT_EQUAL(dh_cc_add_instance(cc, 0, uid(1, 0), NULL, NULL), -1);
	CU_ASSERT_EQUAL(dh_cc_split_set(cc, uid(1, 0), uid(2, 0), 1), -1);
	/* empty delete is invalid */
	CU_ASSERT_EQUAL(dh_cc_validate(cc, NULL, 0), -1);
	dh_cc_free(cc);
	dh_cc_free(NULL);
}

static void test_print(void)
{
	for (size_t k = 0; k < N_MAKERS; k++) {
		dh_cc *cc = makers[k]();
		char *text = NULL, *json = NULL;
		size_t tlen = 0, jlen = 0;
		FILE *f;

		f = open_memstream(&text, &tlen);
		CU_ASSERT_EQUAL(dh_cc_print_text(cc, f), 0);
		fclose(f);
		f = open_memstream(&json, &jlen);
		CU_ASSERT_EQUAL(dh_cc_print_json(cc, f), 0);
		fclose(f);
		CU_ASSERT_PTR_NOT_NULL(strstr(text, dh_cc_kind_name(dh_cc_get_kind(cc))));
		CU_ASSERT(tlen > 0 && text[tlen - 1] == '\n');
		CU_ASSERT(jlen > 2 && json[0] == '{' && json[jlen - 1] == '}');
		CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"uuid\":\"" UUID "\""));
		CU_ASSERT_PTR_NULL(strchr(json, '\n')); /* control characters escaped */
		if (dh_cc_get_kind(cc) == DH_CC_ATTRIBUTE_CHANGE)
			CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"new\":\"H\xc3\xa9\\\"ad\\\\\\u000a\""));
		free(text);
		free(json);
		dh_cc_free(cc);
	}
}

static void test_reject_header(void)
{
	dh_cc *cc = make_delete();
	Dhcc__ChangeContext *m = raw(cc);
	char long_text[DH_CC_MAX_TEXT + 2];

	memset(long_text, 'x', sizeof(long_text) - 1);
	long_text[sizeof(long_text) - 1] = '\0';
	BREAK(cc, m->schema_version, 0, "schema version");
	BREAK(cc, m->schema_version, DH_CC_SCHEMA_VERSION + 1, "schema version");
	BREAK(cc, m->spoke_id, "", "spoke id");
	BREAK(cc, m->spoke_id, "SPOKE A", "spoke id");
	BREAK(cc, m->spoke_id,
	      "S1234567890123456789012345678901234567890123456789012345678901234", "spoke id");
	BREAK(cc, m->sequence, 0, "sequence");
	BREAK(cc, m->uuid, "", "uuid");
	BREAK(cc, m->uuid, "123e4567-e89b-42d3-a456-42661417400g", "uuid");
	BREAK(cc, m->uuid, "123e4567-e89b-42d3-a456-4266141740001", "uuid");
	BREAK(cc, m->uuid, "123e4567e-89b-42d3-a456-426614174000", "uuid");
	BREAK(cc, m->created_at_ms, 0, "created_at_ms");
	BREAK(cc, m->created_at_ms, -5, "created_at_ms");
	BREAK(cc, m->created_at_ms, INT64_C(253402300800000), "created_at_ms");
	BREAK(cc, m->operator_name, long_text, "operator or reason");
	BREAK(cc, m->reason, "bell\a", "operator or reason");
	BREAK(cc, m->kind, (Dhcc__Kind)0, "unknown kind");
	BREAK(cc, m->kind, (Dhcc__Kind)99, "unknown kind");
	BREAK(cc, m->kind, DHCC__KIND__KIND_SPLIT, "without its payload");
	/* a payload-less cc: kind set, oneof empty */
	BREAK(cc, m->payload_case, DHCC__CHANGE_CONTEXT__PAYLOAD__NOT_SET, "without its payload");
	/* a spoke id of exactly 64 chars is fine */
	{
		char *saved = m->spoke_id;
		m->spoke_id = "S123456789012345678901234567890123456789012345678901234567890123";
		CU_ASSERT_EQUAL(strlen(m->spoke_id), DH_CC_MAX_SPOKE_ID);
		CU_ASSERT_EQUAL(dh_cc_validate(cc, NULL, 0), 0);
		m->spoke_id = saved;
	}
	dh_cc_free(cc);
}

static void test_reject_split(void)
{
	dh_cc *cc = make_split();
	Dhcc__Split *s = raw(cc)->split;
	char *big = malloc(DH_CC_MAX_VALUE + 2);

	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	memset(big, 'v', DH_CC_MAX_VALUE + 1);
	big[DH_CC_MAX_VALUE + 1] = '\0';
	BREAK(cc, s->source_study_uid, "1.02.3", "invalid source or target");
	BREAK(cc, s->target_study_uid, "", "invalid source or target");
	BREAK(cc, s->target_study_uid, s->source_study_uid, "are the same");
	BREAK(cc, s->n_moved, 0, "at least 1");
	BREAK(cc, s->moved[0]->study_uid, (char *)uid(99, 0), "not a source study");
	BREAK(cc, s->moved[0]->sop_uid, "", "invalid SOP instance UID");
	BREAK(cc, s->moved[0]->series_uid, "1..2", "invalid series UID");
	BREAK(cc, s->moved[1]->sop_uid, s->moved[0]->sop_uid, "twice");
	BREAK(cc, s->n_uid_map, 0, "exactly one STUDY mapping");
	BREAK(cc, s->uid_map[0]->new_uid, (char *)uid(77, 0), "source -> target");
	BREAK(cc, s->uid_map[1]->new_uid, s->uid_map[1]->old_uid, "are equal");
	BREAK(cc, s->uid_map[1]->level, DHCC__LEVEL__LEVEL_PATIENT, "not allowed");
	BREAK(cc, s->uid_map[1]->level, (Dhcc__Level)9, "not allowed");
	BREAK(cc, s->uid_map[1]->old_uid, (char *)uid(55, 5), "not among the objects");
	BREAK(cc, s->uid_map[1]->new_uid, "x", "invalid UID");
	BREAK(cc, s->uid_map[1]->level, DHCC__LEVEL__LEVEL_STUDY, "exactly one STUDY mapping");
	BREAK(cc, s->target_attributes[0]->tag, 0x0020000du, "UID mapping");
	BREAK(cc, s->target_attributes[0]->tag, 0x00020010u, "cannot be changed");
	BREAK(cc, s->target_attributes[0]->tag, 0x7fe00010u, "cannot be changed");
	BREAK(cc, s->target_attributes[0]->tag, 0x00100000u, "cannot be changed");
	BREAK(cc, s->target_attributes[0]->tag, 0xfffee000u, "cannot be changed");
	BREAK(cc, s->target_attributes[0]->tag, 0x00100020u, "twice");
	BREAK(cc, s->target_attributes[0]->vr, "SQ", "VR");
	BREAK(cc, s->target_attributes[0]->vr, "", "VR");
	BREAK(cc, s->target_attributes[0]->vr, "pn", "VR");
	BREAK(cc, s->target_attributes[0]->new_value, big, "longer than");
	/* a second SOP instance moved twice needs a new cc: builder path */
	{
		dh_cc *dup = make_split();
		char why[256];

		CU_ASSERT_EQUAL(dh_cc_add_uid_map(dup, -1, DH_CC_LEVEL_INSTANCE, uid(1, 11),
						  uid(2, 1)), 0); /* new UID reused */
		CU_ASSERT_EQUAL(dh_cc_validate(dup, why, sizeof(why)), -1);
		CU_ASSERT_PTR_NOT_NULL(strstr(why, "assigned twice"));
		dh_cc_free(dup);
	}
	free(big);
	dh_cc_free(cc);
}

static void test_reject_merge(void)
{
	dh_cc *cc = make_merge();
	Dhcc__Merge *mg = raw(cc)->merge;

	BREAK(cc, mg->n_source_study_uids, 0, "at least 1");
	BREAK(cc, mg->source_study_uids[1], mg->source_study_uids[0], "twice");
	BREAK(cc, mg->source_study_uids[0], "", "invalid UID");
	BREAK(cc, mg->destination_study_uid, mg->source_study_uids[1], "also a source");
	BREAK(cc, mg->destination_study_uid, "", "invalid destination");
	BREAK(cc, mg->n_moved, 0, "at least 1");
	BREAK(cc, mg->moved[0]->study_uid, (char *)uid(5, 0), "not a source study");
	/* drop the last mapping (INSTANCE of 4.11) */
	BREAK(cc, mg->n_uid_map, 4, "new SOP instance UID");
	/* drop all but the first STUDY mapping */
	BREAK(cc, mg->n_uid_map, 1, "STUDY mappings");
	BREAK(cc, mg->uid_map[0]->new_uid, (char *)uid(6, 0), "source -> destination");
	BREAK(cc, mg->uid_map[4]->new_uid, mg->uid_map[3]->new_uid, "assigned twice");
	BREAK(cc, mg->uid_map[3]->old_uid, (char *)uid(3, 99), "not among the objects");
	dh_cc_free(cc);
}

static void test_reject_segment(void)
{
	dh_cc *cc = make_segment();
	Dhcc__Segment *sg = raw(cc)->segment;
	Dhcc__SegmentTarget *t0 = sg->targets[0], *t1 = sg->targets[1];

	BREAK(cc, sg->source_study_uid, "", "invalid source");
	BREAK(cc, sg->n_targets, 1, "at least 2");
	BREAK(cc, t0->study_uid, sg->source_study_uid, "equal to the source");
	BREAK(cc, t1->study_uid, t0->study_uid, "source -> target");
	BREAK(cc, t0->accession_number, "", "accession");
	BREAK(cc, t0->accession_number, "12345678901234567", "accession");
	BREAK(cc, t0->n_instances, 0, "at least 1");
	BREAK(cc, t0->n_uid_map, 0, "exactly one STUDY mapping");
	BREAK(cc, t1->uid_map[0]->new_uid, t0->study_uid, "source -> target");
	/* copy: the source stays, so 6.11/6.12 in target 0 need new SOP UIDs */
	BREAK(cc, sg->keep_source, 1, "new SOP instance UIDs");
	/* drop the INSTANCE mapping of the duplicate: 6.12 kept twice */
	BREAK(cc, t1->n_uid_map, 2, "more than one target");
	BREAK(cc, t1->uid_map[2]->new_uid, t1->uid_map[1]->new_uid, "assigned twice");
	BREAK(cc, t0->attributes[0]->vr, "OB", "VR");
	dh_cc_free(cc);
}

static void test_reject_attr(void)
{
	dh_cc *cc = make_attr();
	Dhcc__AttributeChange *a = raw(cc)->attribute_change;

	BREAK(cc, a->level, DHCC__LEVEL__LEVEL_UNSPECIFIED, "unknown level");
	BREAK(cc, a->level, (Dhcc__Level)5, "unknown level");
	BREAK(cc, a->level, DHCC__LEVEL__LEVEL_SERIES, "invalid series");
	BREAK(cc, a->level, DHCC__LEVEL__LEVEL_PATIENT, "patient_id");
	BREAK(cc, a->patient_id, "P1", "only at PATIENT level");
	BREAK(cc, a->target->study_uid, "", "invalid study UID");
	BREAK(cc, a->target->series_uid, (char *)uid(9, 1), "unexpected series");
	BREAK(cc, a->n_attributes, 0, "at least 1");
	BREAK(cc, a->attributes[1]->tag, 0x00200010u, "twice");
	{
		Dhcc__InstanceRef *saved = a->target;
		a->target = NULL;
		expect_reject(cc, "invalid study UID");
		a->target = saved;
	}
	dh_cc_free(cc);

	/* PATIENT level: patient id, no UIDs */
	CU_ASSERT_EQUAL_FATAL(dh_cc_new(&cc, DH_CC_ATTRIBUTE_CHANGE, SPOKE, 9, UUID, WHEN, NULL,
					NULL), 0);
	CU_ASSERT_EQUAL(dh_cc_attr_set_target(cc, DH_CC_LEVEL_PATIENT, "P1", "HOSP", NULL, NULL,
					      NULL), 0);
	CU_ASSERT_EQUAL(dh_cc_add_attr(cc, -1, 0x00100010u, "PN", "Doe^J", "Doe^John"), 0);
	CU_ASSERT_EQUAL(dh_cc_validate(cc, NULL, 0), 0);
	a = raw(cc)->attribute_change;
	BREAK(cc, a->patient_id, "", "patient_id");
	CU_ASSERT_EQUAL(dh_cc_attr_set_target(cc, DH_CC_LEVEL_PATIENT, "P1", NULL, uid(1, 0), NULL,
					      NULL), 0);
	expect_reject(cc, "takes no UIDs");
	dh_cc_free(cc);
}

static void test_reject_delete(void)
{
	dh_cc *cc = make_delete();
	Dhcc__Delete *d = raw(cc)->deletion;

	BREAK(cc, d->n_objects, 0, "at least 1");
	BREAK(cc, d->objects[1]->series_uid, "", "invalid series UID");
	BREAK(cc, d->objects[1]->study_uid, "1.2.", "invalid study UID");
	{
		char *saved = d->objects[1]->sop_uid;
		d->objects[1]->sop_uid = (char *)protobuf_c_empty_string;
		BREAK(cc, d->objects[1]->series_uid, d->objects[0]->series_uid, "twice");
		d->objects[1]->sop_uid = saved;
	}
	dh_cc_free(cc);
}

static void test_reject_fixup(void)
{
	dh_cc *cc = make_fixup();
	Dhcc__UidFixup *f = raw(cc)->uid_fixup;

	BREAK(cc, f->new_study_uid, f->old_study_uid, "are equal");
	BREAK(cc, f->old_study_uid, "0.", "invalid old or new");
	BREAK(cc, f->accession_number, "", "accession");
	BREAK(cc, f->accession_number, "A\tB", "accession");
	BREAK(cc, f->uid_map[0]->level, DHCC__LEVEL__LEVEL_STUDY, "not allowed");
	BREAK(cc, f->attributes[0]->tag, 0x00080018u, "UID mapping");
	dh_cc_free(cc);
}

/* Every strict prefix of a valid encoding is rejected, with a reason. */
static void test_truncated(void)
{
	for (size_t k = 0; k < N_MAKERS; k++) {
		dh_cc *cc = makers[k](), *out = NULL;
		uint8_t *buf = NULL;
		size_t len;

		CU_ASSERT_EQUAL_FATAL(dh_cc_encode(cc, &buf, &len), 0);
		for (size_t n = 0; n < len; n++) {
			/* exact-size copy so ASan catches any over-read */
			uint8_t *cut = malloc(n ? n : 1);
			char why[256] = "";

			memcpy(cut, buf, n);
			CU_ASSERT_EQUAL(dh_cc_decode(n ? cut : NULL, n, &out, why, sizeof(why)), -1);
			CU_ASSERT_PTR_NULL(out);
			CU_ASSERT(why[0] != '\0');
			free(cut);
		}
		free(buf);
		dh_cc_free(cc);
	}
}

static void test_limits(void)
{
	dh_cc *cc = NULL, *out = NULL;
	uint8_t *buf;
	size_t len;
	char why[256] = "";

	/* more than DH_CC_MAX_MESSAGE bytes: refused before parsing */
	len = (size_t)DH_CC_MAX_MESSAGE + 1;
	buf = calloc(1, len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	CU_ASSERT_EQUAL(dh_cc_decode(buf, len, &out, why, sizeof(why)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "exceeds"));

	/* a 16 MiB memory bomb: deletion with ~8M empty InstanceRefs
	 * (2 bytes each on the wire, ~70 bytes each in memory) */
	len = DH_CC_MAX_MESSAGE;
	{
		size_t body = len - 5; /* tag + 4-byte varint length */
		buf[0] = (14 << 3) | 2;
		buf[1] = (uint8_t)(0x80 | (body & 0x7f));
		buf[2] = (uint8_t)(0x80 | ((body >> 7) & 0x7f));
		buf[3] = (uint8_t)(0x80 | ((body >> 14) & 0x7f));
		buf[4] = (uint8_t)((body >> 21) & 0x7f);
		for (size_t i = 5; i + 1 < len; i += 2) {
			buf[i] = (1 << 3) | 2;
			buf[i + 1] = 0;
		}
		if ((len - 5) % 2) /* keep the body well-formed */
			buf[len - 1] = 0;
	}
	CU_ASSERT_EQUAL(dh_cc_decode(buf, len, &out, why, sizeof(why)), -1);
	CU_ASSERT_PTR_NULL(out);
	CU_ASSERT(why[0] != '\0');
	free(buf);

	/* the builders stop at DH_CC_MAX_ITEMS */
	CU_ASSERT_EQUAL_FATAL(dh_cc_new(&cc, DH_CC_DELETE, SPOKE, 1, UUID, WHEN, NULL, NULL), 0);
	for (unsigned i = 0; i < DH_CC_MAX_ITEMS; i++)
		if (dh_cc_add_instance(cc, -1, uid(1, (int)i), NULL, NULL) != 0) {
			CU_FAIL("builder stopped early");
			break;
		}
	CU_ASSERT_EQUAL(dh_cc_add_instance(cc, -1, uid(2, 0), NULL, NULL), -1);
	CU_ASSERT_EQUAL(dh_cc_validate(cc, NULL, 0), 0); /* 100,000 is allowed */
	/* 100,001 on the wire is not: one extra pointer, packed raw */
	{
		Dhcc__Delete *d = raw(cc)->deletion;
		Dhcc__InstanceRef **more = realloc(d->objects, (d->n_objects + 1) * sizeof(*more));

		CU_ASSERT_PTR_NOT_NULL_FATAL(more);
		d->objects = more;
		more[d->n_objects] = more[0];
		BREAK(cc, d->n_objects, d->n_objects + 1, "more than");
	}
	dh_cc_free(cc);
}

static const char *seed_dir;

/* Writes the six sample encodings (the seed corpus) into seed_dir. */
static void test_write_seeds(void)
{
	for (size_t k = 0; k < N_MAKERS; k++) {
		dh_cc *cc = makers[k]();
		uint8_t *buf = NULL;
		size_t len = 0;
		char path[4096];
		FILE *f;

		CU_ASSERT_EQUAL_FATAL(dh_cc_encode(cc, &buf, &len), 0);
		snprintf(path, sizeof(path), "%s/%s.bin", seed_dir,
			 dh_cc_kind_name(dh_cc_get_kind(cc)));
		f = fopen(path, "wb");
		CU_ASSERT_PTR_NOT_NULL_FATAL(f);
		CU_ASSERT_EQUAL(fwrite(buf, 1, len, f), len);
		CU_ASSERT_EQUAL(fclose(f), 0);
		printf("%s (%zu bytes)\n", path, len);
		free(buf);
		dh_cc_free(cc);
	}
}

int main(int argc, char **argv)
{
	CU_pSuite s;
	unsigned failures;

	if (argc == 3 && strcmp(argv[1], "--write-seeds") == 0)
		seed_dir = argv[2];
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("cc", NULL, NULL);
	if (s && seed_dir) {
		if (CU_add_test(s, "write seed corpus", test_write_seeds) == NULL) {
			CU_cleanup_registry();
			return 2;
		}
	} else if (s == NULL ||
	    CU_add_test(s, "six kinds round-trip", test_roundtrip) == NULL ||
	    CU_add_test(s, "decoded payload content", test_payload_content) == NULL ||
	    CU_add_test(s, "unknown fields dropped", test_unknown_fields) == NULL ||
	    CU_add_test(s, "kind and level names", test_names) == NULL ||
	    CU_add_test(s, "dh_cc_new defaults and misuse", test_new_defaults) == NULL ||
	    CU_add_test(s, "text and JSON printing", test_print) == NULL ||
	    CU_add_test(s, "header rules", test_reject_header) == NULL ||
	    CU_add_test(s, "split rules", test_reject_split) == NULL ||
	    CU_add_test(s, "merge rules", test_reject_merge) == NULL ||
	    CU_add_test(s, "segment rules", test_reject_segment) == NULL ||
	    CU_add_test(s, "attribute change rules", test_reject_attr) == NULL ||
	    CU_add_test(s, "delete rules", test_reject_delete) == NULL ||
	    CU_add_test(s, "uid fixup rules", test_reject_fixup) == NULL ||
	    CU_add_test(s, "truncated at every length", test_truncated) == NULL ||
	    CU_add_test(s, "size and count limits", test_limits) == NULL) {
		CU_cleanup_registry();
		return 2;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	printf("rejections checked: %d\n", rejections);
	failures = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
	CU_cleanup_registry();
	return failures == 0 ? 0 : 1;
}
