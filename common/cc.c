/*
 * cc.c - change-context model, builders, codec and printing (see cc.h).
 *
 * The wire work is protobuf-c's; this file owns the rules protobuf cannot
 * express. dh_cc_decode is the hub's trust boundary for cc frames, so it is
 * written to be total: input longer than DH_CC_MAX_MESSAGE is refused before
 * parsing, protobuf-c parses with a bounded allocator (a hostile frame of
 * many tiny list entries would otherwise expand ~25x in memory), and only a
 * message that passes dh_cc_validate is handed out.
 *
 * Validation rules (dh_cc_validate), in the order they are checked:
 *  - schema_version 1..DH_CC_SCHEMA_VERSION; spoke_id 1..64 chars of
 *    [A-Za-z0-9._:-]; sequence > 0; uuid canonical 8-4-4-4-12 hex;
 *    created_at_ms in (0, year 10000); operator and reason at most
 *    DH_CC_MAX_TEXT chars without control characters other than tab/newline.
 *  - kind known, and the payload set is the one of that kind (the oneof
 *    guarantees there is no second payload).
 *  - every list has at most DH_CC_MAX_ITEMS entries; every UID passes
 *    dh_uid_valid; a UID mapping has a level allowed for the kind and
 *    old != new; old UIDs are unique per level, new UIDs too; moved objects
 *    are named down to the SOP Instance UID.
 *  - attributes: tag not in groups 0000-0007, FFFE, 7FE0, not a group
 *    length, not Study/Series/SOP Instance UID (those change only through
 *    mappings); VR one of the text-representable VRs; values at most
 *    DH_CC_MAX_VALUE chars; tags unique within one list.
 *  - completeness per kind:
 *    SPLIT   source != target; moved objects all in source; exactly one
 *            STUDY mapping, source->target; SERIES/INSTANCE mappings only of
 *            moved objects.
 *    MERGE   >= 1 source, destination not a source; moved objects each in a
 *            source; one STUDY mapping per source, ->destination; one
 *            INSTANCE mapping per moved object (merged objects get new SOP
 *            UIDs); SERIES mappings only of moved series.
 *    SEGMENT >= 2 targets (>= 1 when the source is kept); target studies
 *            distinct and != source; accession 1..16 chars; per target one
 *            STUDY mapping source->target and mappings only of its objects;
 *            an instance may keep its SOP UID in at most one target, and in
 *            none when the source study is kept.
 *    ATTRIBUTE_CHANGE  target given exactly down to its level (PATIENT:
 *            patient_id and no UIDs); >= 1 attribute.
 *    DELETE  >= 1 object; study UID required; a SOP UID needs its series.
 *    UID_FIXUP old != new study UID; accession 1..16 chars; mappings only
 *            SERIES/INSTANCE.
 * What needs the hub's index (does the study exist, does the spoke own it)
 * is the applier's business, not the codec's.
 */
#include "cc.h"

#include "uid.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct dh_cc {
	Dhcc__ChangeContext *m;
	/* Decoded cc: memory is protobuf-c's through alloc; builders refuse it. */
	int decoded;
	ProtobufCAllocator alloc;
	size_t used; /* bytes handed out by alloc, for DH_CC_MAX_DECODE_MEMORY */
};

/* ------------------------------------------------------------------ */
/* names */

static const char *const kind_names[] = {
	NULL, "SPLIT", "MERGE", "SEGMENT", "ATTRIBUTE_CHANGE", "DELETE", "UID_FIXUP",
};
static const char *const level_names[] = { NULL, "PATIENT", "STUDY", "SERIES", "INSTANCE" };

const char *dh_cc_kind_name(int kind)
{
	if (kind >= DH_CC_SPLIT && kind <= DH_CC_UID_FIXUP)
		return kind_names[kind];
	return "UNKNOWN";
}

int dh_cc_kind_from_name(const char *name)
{
	if (!name)
		return -1;
	for (int k = DH_CC_SPLIT; k <= DH_CC_UID_FIXUP; k++)
		if (strcasecmp(name, kind_names[k]) == 0)
			return k;
	return -1;
}

const char *dh_cc_level_name(int level)
{
	if (level >= DH_CC_LEVEL_PATIENT && level <= DH_CC_LEVEL_INSTANCE)
		return level_names[level];
	return "UNKNOWN";
}

/* ------------------------------------------------------------------ */
/* allocation: system heap for built cc, a bounded heap for decoded cc */

/* Every block carries its size in front, so free can return it to the budget. */
typedef union {
	size_t size;
	max_align_t align;
} block_head;

static void *budget_alloc(void *data, size_t size)
{
	dh_cc *cc = data;
	block_head *h;

	if (size > DH_CC_MAX_DECODE_MEMORY - cc->used ||
	    sizeof(block_head) + size > DH_CC_MAX_DECODE_MEMORY - cc->used)
		return NULL;
	h = malloc(sizeof(*h) + size);
	if (!h)
		return NULL;
	h->size = sizeof(*h) + size;
	cc->used += h->size;
	return h + 1;
}

static void budget_free(void *data, void *ptr)
{
	dh_cc *cc = data;
	block_head *h;

	if (!ptr)
		return;
	h = (block_head *)ptr - 1;
	cc->used -= h->size;
	free(h);
}

void dh_cc_free(dh_cc *cc)
{
	if (!cc)
		return;
	if (cc->m)
		protobuf_c_message_free_unpacked(&cc->m->base, cc->decoded ? &cc->alloc : NULL);
	free(cc);
}

/* ------------------------------------------------------------------ */
/* building */

/* A heap copy for a generated string field; NULL and "" become the shared
 * empty string that protobuf-c never frees. */
static int set_str(char **field, const char *s)
{
	char *copy = (char *)protobuf_c_empty_string;

	if (s && *s) {
		copy = strdup(s);
		if (!copy)
			return -1;
	}
	if (*field && *field != protobuf_c_empty_string)
		free(*field);
	*field = copy;
	return 0;
}

/*
 * Appends item to a generated repeated field (n, array). The generated
 * struct has no capacity field, so the capacity is implied: arrays built
 * here always hold the next power of two >= n, and grow (doubling) when n
 * reaches one. Amortised O(1), which matters for 100,000-entry lists.
 */
static int push(size_t *n, void ***array, void *item)
{
	void **grown;

	if (*n >= DH_CC_MAX_ITEMS)
		return -1;
	if ((*n & (*n - 1)) == 0) { /* 0, 1, 2, 4, ...: full */
		grown = realloc(*array, (*n ? 2 * *n : 1) * sizeof(*grown));
		if (!grown)
			return -1;
		*array = grown;
	}
	(*array)[(*n)++] = item;
	return 0;
}

#define PUSH(n, arr, item) push(&(n), (void ***)&(arr), (item))

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int dh_cc_new(dh_cc **out, dh_cc_kind kind, const char *spoke_id, uint64_t sequence,
	      const char *uuid, int64_t created_at_ms, const char *operator_name,
	      const char *reason)
{
	dh_cc *cc = NULL;
	Dhcc__ChangeContext *m;
	char fresh[37];
	int rc = -1;

	*out = NULL;
	if (kind < DH_CC_SPLIT || kind > DH_CC_UID_FIXUP)
		goto done;
	if (!uuid) {
		if (dh_uuid_generate(fresh) != 0)
			goto done;
		uuid = fresh;
	}
	cc = calloc(1, sizeof(*cc));
	if (!cc || !(cc->m = malloc(sizeof(*cc->m))))
		goto done;
	m = cc->m;
	dhcc__change_context__init(m);
	m->schema_version = DH_CC_SCHEMA_VERSION;
	m->sequence = sequence;
	m->created_at_ms = created_at_ms ? created_at_ms : now_ms();
	m->kind = (Dhcc__Kind)kind;
	if (set_str(&m->spoke_id, spoke_id) || set_str(&m->uuid, uuid) ||
	    set_str(&m->operator_name, operator_name) || set_str(&m->reason, reason))
		goto done;

#define PAYLOAD(member, type, init, pcase)                                                       \
	do {                                                                                     \
		type *p = malloc(sizeof(*p));                                                    \
		if (!p)                                                                          \
			goto done;                                                               \
		init(p);                                                                         \
		m->member = p;                                                                   \
		m->payload_case = pcase;                                                         \
	} while (0)
	switch (kind) {
	case DH_CC_SPLIT:
		PAYLOAD(split, Dhcc__Split, dhcc__split__init, DHCC__CHANGE_CONTEXT__PAYLOAD_SPLIT);
		break;
	case DH_CC_MERGE:
		PAYLOAD(merge, Dhcc__Merge, dhcc__merge__init, DHCC__CHANGE_CONTEXT__PAYLOAD_MERGE);
		break;
	case DH_CC_SEGMENT:
		PAYLOAD(segment, Dhcc__Segment, dhcc__segment__init,
			DHCC__CHANGE_CONTEXT__PAYLOAD_SEGMENT);
		break;
	case DH_CC_ATTRIBUTE_CHANGE:
		PAYLOAD(attribute_change, Dhcc__AttributeChange, dhcc__attribute_change__init,
			DHCC__CHANGE_CONTEXT__PAYLOAD_ATTRIBUTE_CHANGE);
		break;
	case DH_CC_DELETE:
		PAYLOAD(deletion, Dhcc__Delete, dhcc__delete__init,
			DHCC__CHANGE_CONTEXT__PAYLOAD_DELETION);
		break;
	case DH_CC_UID_FIXUP:
		PAYLOAD(uid_fixup, Dhcc__UidFixup, dhcc__uid_fixup__init,
			DHCC__CHANGE_CONTEXT__PAYLOAD_UID_FIXUP);
		break;
	}
#undef PAYLOAD
	*out = cc;
	cc = NULL; /* handed to the caller */
	rc = 0;
done:
	dh_cc_free(cc);
	return rc;
}

/* The payload of a cc the builders may change, or NULL. */
static Dhcc__ChangeContext *editable(dh_cc *cc, dh_cc_kind kind)
{
	if (!cc || cc->decoded || !cc->m || (int)cc->m->kind != (int)kind)
		return NULL;
	return cc->m;
}

int dh_cc_split_set(dh_cc *cc, const char *source_study_uid, const char *target_study_uid,
		    int target_is_new)
{
	Dhcc__ChangeContext *m = editable(cc, DH_CC_SPLIT);

	if (!m || set_str(&m->split->source_study_uid, source_study_uid) ||
	    set_str(&m->split->target_study_uid, target_study_uid))
		return -1;
	m->split->target_is_new = target_is_new != 0;
	return 0;
}

int dh_cc_merge_add_source(dh_cc *cc, const char *source_study_uid)
{
	Dhcc__ChangeContext *m = editable(cc, DH_CC_MERGE);
	char *s = (char *)protobuf_c_empty_string;

	if (!m || set_str(&s, source_study_uid))
		return -1;
	if (PUSH(m->merge->n_source_study_uids, m->merge->source_study_uids, s)) {
		if (s != protobuf_c_empty_string)
			free(s);
		return -1;
	}
	return 0;
}

int dh_cc_merge_set_destination(dh_cc *cc, const char *destination_study_uid)
{
	Dhcc__ChangeContext *m = editable(cc, DH_CC_MERGE);

	return m ? set_str(&m->merge->destination_study_uid, destination_study_uid) : -1;
}

int dh_cc_segment_set_source(dh_cc *cc, const char *source_study_uid, int keep_source)
{
	Dhcc__ChangeContext *m = editable(cc, DH_CC_SEGMENT);

	if (!m || set_str(&m->segment->source_study_uid, source_study_uid))
		return -1;
	m->segment->keep_source = keep_source != 0;
	return 0;
}

int dh_cc_segment_add_target(dh_cc *cc, const char *study_uid, const char *accession_number)
{
	Dhcc__ChangeContext *m = editable(cc, DH_CC_SEGMENT);
	Dhcc__SegmentTarget *t;

	if (!m || !(t = malloc(sizeof(*t))))
		return -1;
	dhcc__segment_target__init(t);
	if (set_str(&t->study_uid, study_uid) || set_str(&t->accession_number, accession_number) ||
	    PUSH(m->segment->n_targets, m->segment->targets, t)) {
		protobuf_c_message_free_unpacked(&t->base, NULL);
		return -1;
	}
	return (int)m->segment->n_targets - 1;
}

static Dhcc__InstanceRef *new_ref(const char *study, const char *series, const char *sop)
{
	Dhcc__InstanceRef *r = malloc(sizeof(*r));

	if (!r)
		return NULL;
	dhcc__instance_ref__init(r);
	if (set_str(&r->study_uid, study) || set_str(&r->series_uid, series) ||
	    set_str(&r->sop_uid, sop)) {
		protobuf_c_message_free_unpacked(&r->base, NULL);
		return NULL;
	}
	return r;
}

int dh_cc_attr_set_target(dh_cc *cc, dh_cc_level level, const char *patient_id,
			  const char *issuer, const char *study_uid, const char *series_uid,
			  const char *sop_uid)
{
	Dhcc__ChangeContext *m = editable(cc, DH_CC_ATTRIBUTE_CHANGE);
	Dhcc__AttributeChange *a;

	if (!m)
		return -1;
	a = m->attribute_change;
	a->level = (Dhcc__Level)level;
	if (set_str(&a->patient_id, patient_id) || set_str(&a->issuer_of_patient_id, issuer))
		return -1;
	if (a->target)
		protobuf_c_message_free_unpacked(&a->target->base, NULL);
	a->target = NULL;
	if (study_uid || series_uid || sop_uid) {
		a->target = new_ref(study_uid, series_uid, sop_uid);
		if (!a->target)
			return -1;
	}
	return 0;
}

int dh_cc_fixup_set(dh_cc *cc, const char *old_study_uid, const char *new_study_uid,
		    const char *accession_number)
{
	Dhcc__ChangeContext *m = editable(cc, DH_CC_UID_FIXUP);

	if (!m || set_str(&m->uid_fixup->old_study_uid, old_study_uid) ||
	    set_str(&m->uid_fixup->new_study_uid, new_study_uid) ||
	    set_str(&m->uid_fixup->accession_number, accession_number))
		return -1;
	return 0;
}

/* The segment target `target` of a SEGMENT cc, or NULL. */
static Dhcc__SegmentTarget *seg_target(Dhcc__ChangeContext *m, int target)
{
	if (target < 0 || (size_t)target >= m->segment->n_targets)
		return NULL;
	return m->segment->targets[target];
}

int dh_cc_add_instance(dh_cc *cc, int target, const char *study_uid, const char *series_uid,
		       const char *sop_uid)
{
	Dhcc__ChangeContext *m = (cc && !cc->decoded) ? cc->m : NULL;
	Dhcc__SegmentTarget *t;
	Dhcc__InstanceRef *r;
	int rc = -1;

	if (!m || (m->kind == DHCC__KIND__KIND_SEGMENT) != (target >= 0))
		return -1;
	if (!(r = new_ref(study_uid, series_uid, sop_uid)))
		return -1;
	switch (m->payload_case) {
	case DHCC__CHANGE_CONTEXT__PAYLOAD_SPLIT:
		rc = PUSH(m->split->n_moved, m->split->moved, r);
		break;
	case DHCC__CHANGE_CONTEXT__PAYLOAD_MERGE:
		rc = PUSH(m->merge->n_moved, m->merge->moved, r);
		break;
	case DHCC__CHANGE_CONTEXT__PAYLOAD_SEGMENT:
		if ((t = seg_target(m, target)))
			rc = PUSH(t->n_instances, t->instances, r);
		break;
	case DHCC__CHANGE_CONTEXT__PAYLOAD_DELETION:
		rc = PUSH(m->deletion->n_objects, m->deletion->objects, r);
		break;
	default:
		break;
	}
	if (rc != 0)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	return rc;
}

int dh_cc_add_uid_map(dh_cc *cc, int target, dh_cc_level level, const char *old_uid,
		      const char *new_uid)
{
	Dhcc__ChangeContext *m = (cc && !cc->decoded) ? cc->m : NULL;
	Dhcc__SegmentTarget *t;
	Dhcc__UidMapping *u;
	int rc = -1;

	if (!m || (m->kind == DHCC__KIND__KIND_SEGMENT) != (target >= 0))
		return -1;
	if (!(u = malloc(sizeof(*u))))
		return -1;
	dhcc__uid_mapping__init(u);
	u->level = (Dhcc__Level)level;
	if (set_str(&u->old_uid, old_uid) || set_str(&u->new_uid, new_uid))
		goto done;
	switch (m->payload_case) {
	case DHCC__CHANGE_CONTEXT__PAYLOAD_SPLIT:
		rc = PUSH(m->split->n_uid_map, m->split->uid_map, u);
		break;
	case DHCC__CHANGE_CONTEXT__PAYLOAD_MERGE:
		rc = PUSH(m->merge->n_uid_map, m->merge->uid_map, u);
		break;
	case DHCC__CHANGE_CONTEXT__PAYLOAD_SEGMENT:
		if ((t = seg_target(m, target)))
			rc = PUSH(t->n_uid_map, t->uid_map, u);
		break;
	case DHCC__CHANGE_CONTEXT__PAYLOAD_UID_FIXUP:
		rc = PUSH(m->uid_fixup->n_uid_map, m->uid_fixup->uid_map, u);
		break;
	default:
		break;
	}
done:
	if (rc != 0)
		protobuf_c_message_free_unpacked(&u->base, NULL);
	return rc;
}

int dh_cc_add_attr(dh_cc *cc, int target, uint32_t tag, const char *vr, const char *old_value,
		   const char *new_value)
{
	Dhcc__ChangeContext *m = (cc && !cc->decoded) ? cc->m : NULL;
	Dhcc__SegmentTarget *t;
	Dhcc__Attribute *a;
	int rc = -1;

	if (!m || (m->kind == DHCC__KIND__KIND_SEGMENT) != (target >= 0))
		return -1;
	if (!(a = malloc(sizeof(*a))))
		return -1;
	dhcc__attribute__init(a);
	a->tag = tag;
	if (set_str(&a->vr, vr) || set_str(&a->old_value, old_value) ||
	    set_str(&a->new_value, new_value))
		goto done;
	switch (m->payload_case) {
	case DHCC__CHANGE_CONTEXT__PAYLOAD_SPLIT:
		rc = PUSH(m->split->n_target_attributes, m->split->target_attributes, a);
		break;
	case DHCC__CHANGE_CONTEXT__PAYLOAD_SEGMENT:
		if ((t = seg_target(m, target)))
			rc = PUSH(t->n_attributes, t->attributes, a);
		break;
	case DHCC__CHANGE_CONTEXT__PAYLOAD_ATTRIBUTE_CHANGE:
		rc = PUSH(m->attribute_change->n_attributes, m->attribute_change->attributes, a);
		break;
	case DHCC__CHANGE_CONTEXT__PAYLOAD_UID_FIXUP:
		rc = PUSH(m->uid_fixup->n_attributes, m->uid_fixup->attributes, a);
		break;
	default:
		break;
	}
done:
	if (rc != 0)
		protobuf_c_message_free_unpacked(&a->base, NULL);
	return rc;
}

/* ------------------------------------------------------------------ */
/* validation */

typedef struct {
	char *why;
	size_t whylen;
} vctx;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int
fail(vctx *v, const char *fmt, ...)
{
	va_list ap;

	if (v->why && v->whylen > 0) {
		va_start(ap, fmt);
		vsnprintf(v->why, v->whylen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* A sorted set of borrowed strings, for uniqueness and membership checks. */
typedef struct {
	const char **v;
	size_t n, cap;
} strset;

static int ss_add(strset *s, const char *str)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		const char **v = realloc(s->v, cap * sizeof(*v));

		if (!v)
			return -1;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = str;
	return 0;
}

static int cmp_pstr(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorts s; returns a duplicated string or NULL. */
static const char *ss_sort(strset *s)
{
	if (s->n > 1)
		qsort(s->v, s->n, sizeof(*s->v), cmp_pstr);
	for (size_t i = 1; i < s->n; i++)
		if (strcmp(s->v[i - 1], s->v[i]) == 0)
			return s->v[i];
	return NULL;
}

static int ss_has(const strset *s, const char *str)
{
	return s->n > 0 && bsearch(&str, s->v, s->n, sizeof(*s->v), cmp_pstr) != NULL;
}

static void ss_free(strset *s)
{
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}

/* Text of at most max chars without control characters other than \t \n \r. */
static int text_ok(const char *s, size_t max)
{
	size_t len = strnlen(s, max + 1);

	if (len > max)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f)
			return 0;
	}
	return 1;
}

static int spoke_id_ok(const char *s)
{
	size_t len = strnlen(s, DH_CC_MAX_SPOKE_ID + 1);

	if (len == 0 || len > DH_CC_MAX_SPOKE_ID)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("._:-", s[i]))
			return 0;
	return 1;
}

static int uuid_ok(const char *s)
{
	for (int i = 0; i < 36; i++) {
		int dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return 0;
	}
	return s[36] == '\0';
}

/* DICOM SH: 1..16 characters, no control characters, no backslash. */
static int accession_ok(const char *s)
{
	size_t len = strnlen(s, DH_CC_MAX_ACCESSION + 1);

	if (len == 0 || len > DH_CC_MAX_ACCESSION)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f || s[i] == '\\')
			return 0;
	return 1;
}

static const char *const text_vrs[] = {
	"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "PN", "SH",
	"SL", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UR", "US", "UT", "UV",
};

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

static int check_count(vctx *v, size_t n, size_t min, const char *what)
{
	if (n > DH_CC_MAX_ITEMS)
		return fail(v, "%s: %zu entries, more than %u", what, n, DH_CC_MAX_ITEMS);
	if (n < min)
		return fail(v, "%s: needs at least %zu entr%s", what, min, min == 1 ? "y" : "ies");
	return 0;
}

static int check_attrs(vctx *v, Dhcc__Attribute *const *attrs, size_t n, size_t min,
		       const char *what)
{
	uint32_t *tags = NULL;
	int rc = -1;

	if (check_count(v, n, min, what))
		goto done;
	if (n && !(tags = malloc(n * sizeof(*tags)))) {
		fail(v, "%s: out of memory", what);
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		const Dhcc__Attribute *a = attrs[i];
		uint32_t g = a->tag >> 16, e = a->tag & 0xffffu;
		int vr_ok = 0;

		if (g < 0x0008 || g == 0xfffe || g == 0xffff || g == 0x7fe0 || e == 0) {
			fail(v, "%s[%zu]: tag (%04X,%04X) cannot be changed", what, i, g, e);
			goto done;
		}
		if (a->tag == 0x0020000du || a->tag == 0x0020000eu || a->tag == 0x00080018u) {
			fail(v, "%s[%zu]: tag (%04X,%04X) changes only through a UID mapping", what,
			     i, g, e);
			goto done;
		}
		for (size_t k = 0; k < sizeof(text_vrs) / sizeof(text_vrs[0]); k++)
			vr_ok |= strcmp(a->vr, text_vrs[k]) == 0;
		if (!vr_ok) {
			fail(v, "%s[%zu]: VR \"%.8s\" not allowed", what, i, a->vr);
			goto done;
		}
		if (strnlen(a->old_value, DH_CC_MAX_VALUE + 1) > DH_CC_MAX_VALUE ||
		    strnlen(a->new_value, DH_CC_MAX_VALUE + 1) > DH_CC_MAX_VALUE) {
			fail(v, "%s[%zu]: value longer than %u", what, i, DH_CC_MAX_VALUE);
			goto done;
		}
		tags[i] = a->tag;
	}
	if (n > 1)
		qsort(tags, n, sizeof(*tags), cmp_u32);
	for (size_t i = 1; i < n; i++)
		if (tags[i - 1] == tags[i]) {
			fail(v, "%s: tag (%04X,%04X) twice", what, tags[i] >> 16, tags[i] & 0xffffu);
			goto done;
		}
	rc = 0;
done:
	free(tags);
	return rc;
}

/* An object named down to `depth` (1 study, 2 series, 3 SOP), nothing below. */
static int check_ref(vctx *v, const Dhcc__InstanceRef *r, int depth, const char *what, size_t i)
{
	if (!r)
		return fail(v, "%s[%zu]: missing", what, i);
	if (!dh_uid_valid(r->study_uid))
		return fail(v, "%s[%zu]: invalid study UID \"%.70s\"", what, i, r->study_uid);
	if (depth >= 2 ? !dh_uid_valid(r->series_uid) : *r->series_uid != '\0')
		return fail(v, "%s[%zu]: %s series UID \"%.70s\"", what, i,
			    depth >= 2 ? "invalid" : "unexpected", r->series_uid);
	if (depth >= 3 ? !dh_uid_valid(r->sop_uid) : *r->sop_uid != '\0')
		return fail(v, "%s[%zu]: %s SOP instance UID \"%.70s\"", what, i,
			    depth >= 3 ? "invalid" : "unexpected", r->sop_uid);
	return 0;
}

/*
 * Objects moved or assigned: all named down to the SOP, all in one of
 * `studies`, SOP UIDs unique. Fills series and sops (unsorted on return
 * they are sorted).
 */
static int check_moved(vctx *v, Dhcc__InstanceRef *const *refs, size_t n, const strset *studies,
		       strset *series, strset *sops, const char *what)
{
	const char *dup;

	if (check_count(v, n, 1, what))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (check_ref(v, refs[i], 3, what, i))
			return -1;
		if (!ss_has(studies, refs[i]->study_uid))
			return fail(v, "%s[%zu]: study %.70s is not a source study", what, i,
				    refs[i]->study_uid);
		if (ss_add(series, refs[i]->series_uid) || ss_add(sops, refs[i]->sop_uid))
			return fail(v, "out of memory");
	}
	if ((dup = ss_sort(sops)))
		return fail(v, "%s: SOP instance %.70s twice", what, dup);
	ss_sort(series); /* duplicates expected: many instances per series */
	return 0;
}

/*
 * UID mappings: levels in `levels` (bit per level), UIDs valid, old != new,
 * old unique per level; SERIES/INSTANCE old UIDs must be among
 * series/sops. STUDY old UIDs go to study_old, INSTANCE old UIDs to
 * sop_mapped; new UIDs of SERIES and INSTANCE go to new_uids (checked for
 * uniqueness by the caller, possibly across segment targets).
 */
static int check_maps(vctx *v, Dhcc__UidMapping *const *maps, size_t n, unsigned levels,
		      const strset *series, const strset *sops, strset *study_old,
		      strset *sop_mapped, strset *new_uids, const char *what)
{
	strset series_old = { 0 };
	const char *dup;
	int rc = -1;

	if (check_count(v, n, 0, what))
		goto done;
	for (size_t i = 0; i < n; i++) {
		const Dhcc__UidMapping *u = maps[i];
		int lv = (int)u->level;

		if (lv < DH_CC_LEVEL_STUDY || lv > DH_CC_LEVEL_INSTANCE || !(levels & (1u << lv))) {
			fail(v, "%s[%zu]: level %d not allowed here", what, i, lv);
			goto done;
		}
		if (!dh_uid_valid(u->old_uid) || !dh_uid_valid(u->new_uid)) {
			fail(v, "%s[%zu]: invalid UID \"%.70s\" -> \"%.70s\"", what, i, u->old_uid,
			     u->new_uid);
			goto done;
		}
		if (strcmp(u->old_uid, u->new_uid) == 0) {
			fail(v, "%s[%zu]: old and new UID are equal", what, i);
			goto done;
		}
		if (lv == DH_CC_LEVEL_SERIES && series && !ss_has(series, u->old_uid)) {
			fail(v, "%s[%zu]: series %.70s is not among the objects", what, i, u->old_uid);
			goto done;
		}
		if (lv == DH_CC_LEVEL_INSTANCE && sops && !ss_has(sops, u->old_uid)) {
			fail(v, "%s[%zu]: SOP instance %.70s is not among the objects", what, i,
			     u->old_uid);
			goto done;
		}
		if ((lv == DH_CC_LEVEL_STUDY && ss_add(study_old, u->old_uid)) ||
		    (lv == DH_CC_LEVEL_SERIES && ss_add(&series_old, u->old_uid)) ||
		    (lv == DH_CC_LEVEL_INSTANCE && ss_add(sop_mapped, u->old_uid)) ||
		    (lv != DH_CC_LEVEL_STUDY && ss_add(new_uids, u->new_uid))) {
			fail(v, "out of memory");
			goto done;
		}
	}
	if ((dup = ss_sort(study_old)) || (dup = ss_sort(&series_old)) ||
	    (dup = ss_sort(sop_mapped))) {
		fail(v, "%s: UID %.70s mapped twice", what, dup);
		goto done;
	}
	rc = 0;
done:
	ss_free(&series_old);
	return rc;
}

#define LV(x) (1u << (x))

static int validate_split(vctx *v, const Dhcc__Split *s)
{
	strset src = { 0 }, series = { 0 }, sops = { 0 }, study_old = { 0 }, sop_mapped = { 0 },
	       news = { 0 };
	const char *dup;
	int rc = -1;

	if (!dh_uid_valid(s->source_study_uid) || !dh_uid_valid(s->target_study_uid)) {
		fail(v, "split: invalid source or target study UID");
		goto done;
	}
	if (strcmp(s->source_study_uid, s->target_study_uid) == 0) {
		fail(v, "split: source and target study are the same");
		goto done;
	}
	if (ss_add(&src, s->source_study_uid)) {
		fail(v, "out of memory");
		goto done;
	}
	if (check_moved(v, s->moved, s->n_moved, &src, &series, &sops, "split.moved") ||
	    check_maps(v, s->uid_map, s->n_uid_map,
		       LV(DH_CC_LEVEL_STUDY) | LV(DH_CC_LEVEL_SERIES) | LV(DH_CC_LEVEL_INSTANCE),
		       &series, &sops, &study_old, &sop_mapped, &news, "split.uid_map"))
		goto done;
	if (study_old.n != 1) {
		fail(v, "split.uid_map: needs exactly one STUDY mapping, has %zu", study_old.n);
		goto done;
	}
	for (size_t i = 0; i < s->n_uid_map; i++)
		if (s->uid_map[i]->level == DHCC__LEVEL__LEVEL_STUDY &&
		    (strcmp(s->uid_map[i]->old_uid, s->source_study_uid) ||
		     strcmp(s->uid_map[i]->new_uid, s->target_study_uid))) {
			fail(v, "split.uid_map: STUDY mapping must be source -> target");
			goto done;
		}
	if ((dup = ss_sort(&news))) {
		fail(v, "split.uid_map: new UID %.70s assigned twice", dup);
		goto done;
	}
	if (check_attrs(v, s->target_attributes, s->n_target_attributes, 0,
			"split.target_attributes"))
		goto done;
	rc = 0;
done:
	ss_free(&src), ss_free(&series), ss_free(&sops), ss_free(&study_old);
	ss_free(&sop_mapped), ss_free(&news);
	return rc;
}

static int validate_merge(vctx *v, const Dhcc__Merge *mg)
{
	strset src = { 0 }, series = { 0 }, sops = { 0 }, study_old = { 0 }, sop_mapped = { 0 },
	       news = { 0 };
	const char *dup;
	int rc = -1;

	if (check_count(v, mg->n_source_study_uids, 1, "merge.source_study_uids"))
		goto done;
	for (size_t i = 0; i < mg->n_source_study_uids; i++) {
		if (!dh_uid_valid(mg->source_study_uids[i])) {
			fail(v, "merge.source_study_uids[%zu]: invalid UID", i);
			goto done;
		}
		if (ss_add(&src, mg->source_study_uids[i])) {
			fail(v, "out of memory");
			goto done;
		}
	}
	if ((dup = ss_sort(&src))) {
		fail(v, "merge.source_study_uids: %.70s twice", dup);
		goto done;
	}
	if (!dh_uid_valid(mg->destination_study_uid)) {
		fail(v, "merge: invalid destination study UID");
		goto done;
	}
	if (ss_has(&src, mg->destination_study_uid)) {
		fail(v, "merge: destination is also a source study");
		goto done;
	}
	if (check_moved(v, mg->moved, mg->n_moved, &src, &series, &sops, "merge.moved") ||
	    check_maps(v, mg->uid_map, mg->n_uid_map,
		       LV(DH_CC_LEVEL_STUDY) | LV(DH_CC_LEVEL_SERIES) | LV(DH_CC_LEVEL_INSTANCE),
		       &series, &sops, &study_old, &sop_mapped, &news, "merge.uid_map"))
		goto done;
	for (size_t i = 0; i < mg->n_uid_map; i++) {
		const Dhcc__UidMapping *u = mg->uid_map[i];

		if (u->level == DHCC__LEVEL__LEVEL_STUDY &&
		    (!ss_has(&src, u->old_uid) || strcmp(u->new_uid, mg->destination_study_uid))) {
			fail(v, "merge.uid_map[%zu]: STUDY mapping must be source -> destination", i);
			goto done;
		}
	}
	if (study_old.n != src.n) {
		fail(v, "merge.uid_map: %zu source studies but %zu STUDY mappings", src.n,
		     study_old.n);
		goto done;
	}
	if (sop_mapped.n != sops.n) {
		fail(v, "merge.uid_map: every moved instance needs a new SOP instance UID "
			"(%zu moved, %zu mapped)", sops.n, sop_mapped.n);
		goto done;
	}
	if ((dup = ss_sort(&news))) {
		fail(v, "merge.uid_map: new UID %.70s assigned twice", dup);
		goto done;
	}
	rc = 0;
done:
	ss_free(&src), ss_free(&series), ss_free(&sops), ss_free(&study_old);
	ss_free(&sop_mapped), ss_free(&news);
	return rc;
}

static int validate_segment(vctx *v, const Dhcc__Segment *sg)
{
	strset src = { 0 }, targets = { 0 }, kept = { 0 }, news = { 0 };
	strset series = { 0 }, sops = { 0 }, study_old = { 0 }, sop_mapped = { 0 };
	char what[64];
	const char *dup;
	int rc = -1;

	if (!dh_uid_valid(sg->source_study_uid)) {
		fail(v, "segment: invalid source study UID");
		goto done;
	}
	if (check_count(v, sg->n_targets, sg->keep_source ? 1 : 2, "segment.targets"))
		goto done;
	if (ss_add(&src, sg->source_study_uid)) {
		fail(v, "out of memory");
		goto done;
	}
	for (size_t t = 0; t < sg->n_targets; t++) {
		const Dhcc__SegmentTarget *tg = sg->targets[t];

		snprintf(what, sizeof(what), "segment.targets[%zu]", t);
		if (!dh_uid_valid(tg->study_uid) || strcmp(tg->study_uid, sg->source_study_uid) == 0) {
			fail(v, "%s: study UID invalid or equal to the source", what);
			goto done;
		}
		if (!accession_ok(tg->accession_number)) {
			fail(v, "%s: accession number missing or invalid", what);
			goto done;
		}
		if (ss_add(&targets, tg->study_uid)) {
			fail(v, "out of memory");
			goto done;
		}
		ss_free(&series), ss_free(&sops), ss_free(&study_old), ss_free(&sop_mapped);
		if (check_moved(v, tg->instances, tg->n_instances, &src, &series, &sops, what) ||
		    check_maps(v, tg->uid_map, tg->n_uid_map,
			       LV(DH_CC_LEVEL_STUDY) | LV(DH_CC_LEVEL_SERIES) |
				       LV(DH_CC_LEVEL_INSTANCE),
			       &series, &sops, &study_old, &sop_mapped, &news, what) ||
		    check_attrs(v, tg->attributes, tg->n_attributes, 0, what))
			goto done;
		if (study_old.n != 1) {
			fail(v, "%s: needs exactly one STUDY mapping, has %zu", what, study_old.n);
			goto done;
		}
		for (size_t i = 0; i < tg->n_uid_map; i++)
			if (tg->uid_map[i]->level == DHCC__LEVEL__LEVEL_STUDY &&
			    (strcmp(tg->uid_map[i]->old_uid, sg->source_study_uid) ||
			     strcmp(tg->uid_map[i]->new_uid, tg->study_uid))) {
				fail(v, "%s: STUDY mapping must be source -> target", what);
				goto done;
			}
		for (size_t i = 0; i < sops.n; i++)
			if (!ss_has(&sop_mapped, sops.v[i]) && ss_add(&kept, sops.v[i])) {
				fail(v, "out of memory");
				goto done;
			}
	}
	if ((dup = ss_sort(&targets))) {
		fail(v, "segment.targets: study %.70s twice", dup);
		goto done;
	}
	if (sg->keep_source && kept.n > 0) {
		fail(v, "segment: the source is kept, so copied instances need new SOP instance "
			"UIDs (%.70s has none)", kept.v[0]);
		goto done;
	}
	if ((dup = ss_sort(&kept))) {
		fail(v, "segment: SOP instance %.70s keeps its UID in more than one target", dup);
		goto done;
	}
	if ((dup = ss_sort(&news))) {
		fail(v, "segment: new UID %.70s assigned twice", dup);
		goto done;
	}
	rc = 0;
done:
	ss_free(&src), ss_free(&targets), ss_free(&kept), ss_free(&news);
	ss_free(&series), ss_free(&sops), ss_free(&study_old), ss_free(&sop_mapped);
	return rc;
}

static int validate_attribute_change(vctx *v, const Dhcc__AttributeChange *a)
{
	int lv = (int)a->level;
	static const Dhcc__InstanceRef none = DHCC__INSTANCE_REF__INIT;

	if (lv < DH_CC_LEVEL_PATIENT || lv > DH_CC_LEVEL_INSTANCE)
		return fail(v, "attribute_change: unknown level %d", lv);
	if (lv == DH_CC_LEVEL_PATIENT) {
		if (!*a->patient_id || !text_ok(a->patient_id, 64) ||
		    !text_ok(a->issuer_of_patient_id, 64))
			return fail(v, "attribute_change: PATIENT level needs a valid patient_id");
		if (a->target && (*a->target->study_uid || *a->target->series_uid ||
				  *a->target->sop_uid))
			return fail(v, "attribute_change: PATIENT level takes no UIDs");
	} else {
		if (*a->patient_id || *a->issuer_of_patient_id)
			return fail(v, "attribute_change: patient_id only at PATIENT level");
		if (check_ref(v, a->target ? a->target : &none, lv - DH_CC_LEVEL_PATIENT,
			      "attribute_change.target", 0))
			return -1;
	}
	return check_attrs(v, a->attributes, a->n_attributes, 1, "attribute_change.attributes");
}

static int validate_delete(vctx *v, const Dhcc__Delete *d)
{
	strset keys[3] = { { 0 } };
	const char *dup = NULL;
	int rc = -1;

	if (check_count(v, d->n_objects, 1, "delete.objects"))
		goto done;
	for (size_t i = 0; i < d->n_objects; i++) {
		const Dhcc__InstanceRef *r = d->objects[i];
		int depth = !r ? 1 : *r->sop_uid ? 3 : *r->series_uid ? 2 : 1;

		if (check_ref(v, r, depth, "delete.objects", i))
			goto done;
		if (ss_add(&keys[depth - 1], depth == 3 ? r->sop_uid
					     : depth == 2 ? r->series_uid
							  : r->study_uid)) {
			fail(v, "out of memory");
			goto done;
		}
	}
	for (int k = 0; k < 3 && !dup; k++)
		dup = ss_sort(&keys[k]);
	if (dup) {
		fail(v, "delete.objects: %.70s twice", dup);
		goto done;
	}
	rc = 0;
done:
	for (int k = 0; k < 3; k++)
		ss_free(&keys[k]);
	return rc;
}

static int validate_uid_fixup(vctx *v, const Dhcc__UidFixup *f)
{
	strset study_old = { 0 }, sop_mapped = { 0 }, news = { 0 };
	const char *dup;
	int rc = -1;

	if (!dh_uid_valid(f->old_study_uid) || !dh_uid_valid(f->new_study_uid)) {
		fail(v, "uid_fixup: invalid old or new study UID");
		goto done;
	}
	if (strcmp(f->old_study_uid, f->new_study_uid) == 0) {
		fail(v, "uid_fixup: old and new study UID are equal");
		goto done;
	}
	if (!accession_ok(f->accession_number)) {
		fail(v, "uid_fixup: accession number missing or invalid");
		goto done;
	}
	if (check_attrs(v, f->attributes, f->n_attributes, 0, "uid_fixup.attributes") ||
	    check_maps(v, f->uid_map, f->n_uid_map,
		       LV(DH_CC_LEVEL_SERIES) | LV(DH_CC_LEVEL_INSTANCE), NULL, NULL, &study_old,
		       &sop_mapped, &news, "uid_fixup.uid_map"))
		goto done;
	if ((dup = ss_sort(&news))) {
		fail(v, "uid_fixup.uid_map: new UID %.70s assigned twice", dup);
		goto done;
	}
	rc = 0;
done:
	ss_free(&study_old), ss_free(&sop_mapped), ss_free(&news);
	return rc;
}

int dh_cc_validate(const dh_cc *cc, char *why, size_t whylen)
{
	vctx v = { why, whylen };
	const Dhcc__ChangeContext *m;
	static const int case_of_kind[] = {
		0,
		DHCC__CHANGE_CONTEXT__PAYLOAD_SPLIT,
		DHCC__CHANGE_CONTEXT__PAYLOAD_MERGE,
		DHCC__CHANGE_CONTEXT__PAYLOAD_SEGMENT,
		DHCC__CHANGE_CONTEXT__PAYLOAD_ATTRIBUTE_CHANGE,
		DHCC__CHANGE_CONTEXT__PAYLOAD_DELETION,
		DHCC__CHANGE_CONTEXT__PAYLOAD_UID_FIXUP,
	};

	if (why && whylen)
		why[0] = '\0';
	if (!cc || !(m = cc->m))
		return fail(&v, "no change context");
	if (m->schema_version == 0 || m->schema_version > DH_CC_SCHEMA_VERSION)
		return fail(&v, "unsupported schema version %" PRIu32 " (this build knows 1..%u)",
			    m->schema_version, DH_CC_SCHEMA_VERSION);
	if (!spoke_id_ok(m->spoke_id))
		return fail(&v, "spoke id must be 1..%u characters of [A-Za-z0-9._:-]",
			    DH_CC_MAX_SPOKE_ID);
	if (m->sequence == 0)
		return fail(&v, "sequence must be > 0");
	if (!uuid_ok(m->uuid))
		return fail(&v, "uuid \"%.40s\" is not in 8-4-4-4-12 hex form", m->uuid);
	if (m->created_at_ms <= 0 || m->created_at_ms >= INT64_C(253402300800000))
		return fail(&v, "created_at_ms %" PRId64 " out of range", m->created_at_ms);
	if (!text_ok(m->operator_name, DH_CC_MAX_TEXT) || !text_ok(m->reason, DH_CC_MAX_TEXT))
		return fail(&v, "operator or reason longer than %u or with control characters",
			    DH_CC_MAX_TEXT);
	if ((int)m->kind < DH_CC_SPLIT || (int)m->kind > DH_CC_UID_FIXUP)
		return fail(&v, "unknown kind %d", (int)m->kind);
	if ((int)m->payload_case != case_of_kind[m->kind])
		return fail(&v, "kind %s without its payload", dh_cc_kind_name(m->kind));
	switch (m->payload_case) {
	case DHCC__CHANGE_CONTEXT__PAYLOAD_SPLIT:
		return validate_split(&v, m->split);
	case DHCC__CHANGE_CONTEXT__PAYLOAD_MERGE:
		return validate_merge(&v, m->merge);
	case DHCC__CHANGE_CONTEXT__PAYLOAD_SEGMENT:
		return validate_segment(&v, m->segment);
	case DHCC__CHANGE_CONTEXT__PAYLOAD_ATTRIBUTE_CHANGE:
		return validate_attribute_change(&v, m->attribute_change);
	case DHCC__CHANGE_CONTEXT__PAYLOAD_DELETION:
		return validate_delete(&v, m->deletion);
	case DHCC__CHANGE_CONTEXT__PAYLOAD_UID_FIXUP:
		return validate_uid_fixup(&v, m->uid_fixup);
	default:
		return fail(&v, "no payload");
	}
}

/* ------------------------------------------------------------------ */
/* codec */

int dh_cc_encode(const dh_cc *cc, uint8_t **buf, size_t *len)
{
	uint8_t *out = NULL;
	size_t size;
	int rc = -1;

	*buf = NULL;
	*len = 0;
	if (dh_cc_validate(cc, NULL, 0) != 0)
		goto done;
	size = protobuf_c_message_get_packed_size(&cc->m->base);
	if (size > DH_CC_MAX_MESSAGE)
		goto done;
	out = malloc(size ? size : 1);
	if (!out)
		goto done;
	if (protobuf_c_message_pack(&cc->m->base, out) != size)
		goto done;
	*buf = out;
	*len = size;
	out = NULL; /* handed to the caller */
	rc = 0;
done:
	free(out);
	return rc;
}

/*
 * Drops the fields this build does not know, in msg and every sub-message.
 * protobuf-c keeps them to re-emit on pack, but a schema-1 hub cannot vouch
 * for them, and re-emitting them verbatim is not canonical (a field number
 * 0 read from a non-minimal varint is written back as one it then refuses),
 * which would break "decode(encode(cc)) == cc".
 */
static void strip_unknown(ProtobufCMessage *msg, ProtobufCAllocator *alloc)
{
	const ProtobufCMessageDescriptor *d = msg->descriptor;

	for (unsigned i = 0; i < msg->n_unknown_fields; i++)
		alloc->free(alloc->allocator_data, msg->unknown_fields[i].data);
	alloc->free(alloc->allocator_data, msg->unknown_fields);
	msg->unknown_fields = NULL;
	msg->n_unknown_fields = 0;
	for (unsigned f = 0; f < d->n_fields; f++) {
		const ProtobufCFieldDescriptor *fd = &d->fields[f];
		char *base = (char *)msg;

		if (fd->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(size_t *)(base + fd->quantifier_offset);
			ProtobufCMessage **arr = *(ProtobufCMessage ***)(base + fd->offset);

			for (size_t k = 0; k < n; k++)
				if (arr[k])
					strip_unknown(arr[k], alloc);
		} else {
			ProtobufCMessage *sub;

			if ((fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
			    *(uint32_t *)(base + fd->quantifier_offset) != fd->id)
				continue; /* another member of the oneof is set */
			sub = *(ProtobufCMessage **)(base + fd->offset);
			if (sub)
				strip_unknown(sub, alloc);
		}
	}
}

int dh_cc_decode(const uint8_t *buf, size_t len, dh_cc **out, char *why, size_t whylen)
{
	vctx v = { why, whylen };
	dh_cc *cc = NULL;
	static const uint8_t empty[1];
	int rc = -1;

	*out = NULL;
	if (why && whylen)
		why[0] = '\0';
	if (len > DH_CC_MAX_MESSAGE) {
		fail(&v, "message of %zu bytes exceeds the limit of %u", len, DH_CC_MAX_MESSAGE);
		goto done;
	}
	if (!buf)
		buf = empty; /* protobuf-c wants a pointer even for 0 bytes */
	if (!(cc = calloc(1, sizeof(*cc)))) {
		fail(&v, "out of memory");
		goto done;
	}
	cc->decoded = 1;
	cc->alloc.alloc = budget_alloc;
	cc->alloc.free = budget_free;
	cc->alloc.allocator_data = cc;
	cc->m = (Dhcc__ChangeContext *)protobuf_c_message_unpack(&dhcc__change_context__descriptor,
								  &cc->alloc, len, buf);
	if (!cc->m) {
		fail(&v, "not a valid protobuf ChangeContext (malformed, truncated or over the "
			 "decoder memory limit)");
		goto done;
	}
	strip_unknown(&cc->m->base, &cc->alloc);
	if (dh_cc_validate(cc, why, whylen) != 0)
		goto done;
	*out = cc;
	cc = NULL; /* handed to the caller */
	rc = 0;
done:
	dh_cc_free(cc);
	return rc;
}

int dh_cc_equal(const dh_cc *a, const dh_cc *b)
{
	uint8_t *ba = NULL, *bb = NULL;
	size_t la, lb;
	int eq = 0;

	if (dh_cc_encode(a, &ba, &la) == 0 && dh_cc_encode(b, &bb, &lb) == 0)
		eq = la == lb && memcmp(ba, bb, la) == 0;
	free(ba);
	free(bb);
	return eq;
}

/* ------------------------------------------------------------------ */
/* reading */

dh_cc_kind dh_cc_get_kind(const dh_cc *cc)
{
	return (dh_cc_kind)cc->m->kind;
}
const char *dh_cc_spoke_id(const dh_cc *cc)
{
	return cc->m->spoke_id;
}
uint64_t dh_cc_sequence(const dh_cc *cc)
{
	return cc->m->sequence;
}
const char *dh_cc_uuid(const dh_cc *cc)
{
	return cc->m->uuid;
}
int64_t dh_cc_created_at_ms(const dh_cc *cc)
{
	return cc->m->created_at_ms;
}
const char *dh_cc_operator(const dh_cc *cc)
{
	return cc->m->operator_name;
}
const char *dh_cc_reason(const dh_cc *cc)
{
	return cc->m->reason;
}
const Dhcc__ChangeContext *dh_cc_message(const dh_cc *cc)
{
	return cc->m;
}

/* ------------------------------------------------------------------ */
/* printing */

/* ISO 8601 UTC with milliseconds. */
static void format_time(int64_t ms, char out[32])
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;

	if (ms < 0 || !gmtime_r(&secs, &tm) ||
	    strftime(out, 24, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
		snprintf(out, 32, "invalid");
		return;
	}
	snprintf(out + strlen(out), 32 - strlen(out), ".%03dZ", (int)(ms % 1000));
}

static void text_refs(FILE *f, const char *label, Dhcc__InstanceRef *const *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(f, "  %s study=%s series=%s sop=%s\n", label, r[i]->study_uid,
			*r[i]->series_uid ? r[i]->series_uid : "-",
			*r[i]->sop_uid ? r[i]->sop_uid : "-");
}

static void text_maps(FILE *f, const char *indent, Dhcc__UidMapping *const *u, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%smap %-8s %s -> %s\n", indent, dh_cc_level_name(u[i]->level),
			u[i]->old_uid, u[i]->new_uid);
}

static void text_attrs(FILE *f, const char *indent, Dhcc__Attribute *const *a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%sattr (%04X,%04X) %s \"%s\" -> \"%s\"\n", indent, a[i]->tag >> 16,
			a[i]->tag & 0xffffu, a[i]->vr, a[i]->old_value, a[i]->new_value);
}

int dh_cc_print_text(const dh_cc *cc, FILE *f)
{
	const Dhcc__ChangeContext *m = cc->m;
	char when[32];

	format_time(m->created_at_ms, when);
	fprintf(f, "cc %s #%" PRIu64 " %s (schema %" PRIu32 ")\n", m->spoke_id, m->sequence,
		dh_cc_kind_name(m->kind), m->schema_version);
	fprintf(f, "  uuid %s\n  created %s by \"%s\"\n  reason \"%s\"\n", m->uuid, when,
		m->operator_name, m->reason);
	switch (m->payload_case) {
	case DHCC__CHANGE_CONTEXT__PAYLOAD_SPLIT:
		fprintf(f, "  source study %s\n  target study %s (%s)\n",
			m->split->source_study_uid, m->split->target_study_uid,
			m->split->target_is_new ? "new" : "existing");
		text_refs(f, "moved", m->split->moved, m->split->n_moved);
		text_maps(f, "  ", m->split->uid_map, m->split->n_uid_map);
		text_attrs(f, "  ", m->split->target_attributes, m->split->n_target_attributes);
		break;
	case DHCC__CHANGE_CONTEXT__PAYLOAD_MERGE:
		for (size_t i = 0; i < m->merge->n_source_study_uids; i++)
			fprintf(f, "  source study %s\n", m->merge->source_study_uids[i]);
		fprintf(f, "  destination study %s\n", m->merge->destination_study_uid);
		text_refs(f, "moved", m->merge->moved, m->merge->n_moved);
		text_maps(f, "  ", m->merge->uid_map, m->merge->n_uid_map);
		break;
	case DHCC__CHANGE_CONTEXT__PAYLOAD_SEGMENT:
		fprintf(f, "  source study %s (%s)\n", m->segment->source_study_uid,
			m->segment->keep_source ? "kept" : "removed");
		for (size_t t = 0; t < m->segment->n_targets; t++) {
			const Dhcc__SegmentTarget *tg = m->segment->targets[t];

			fprintf(f, "  target %zu study %s accession %s\n", t, tg->study_uid,
				tg->accession_number);
			text_refs(f, "  instance", tg->instances, tg->n_instances);
			text_maps(f, "    ", tg->uid_map, tg->n_uid_map);
			text_attrs(f, "    ", tg->attributes, tg->n_attributes);
		}
		break;
	case DHCC__CHANGE_CONTEXT__PAYLOAD_ATTRIBUTE_CHANGE: {
		const Dhcc__AttributeChange *a = m->attribute_change;

		fprintf(f, "  level %s\n", dh_cc_level_name(a->level));
		if (*a->patient_id)
			fprintf(f, "  patient %s%s%s\n", a->patient_id,
				*a->issuer_of_patient_id ? " issuer " : "", a->issuer_of_patient_id);
		if (a->target)
			text_refs(f, "target", &a->target, 1);
		text_attrs(f, "  ", a->attributes, a->n_attributes);
		break;
	}
	case DHCC__CHANGE_CONTEXT__PAYLOAD_DELETION:
		text_refs(f, "delete", m->deletion->objects, m->deletion->n_objects);
		break;
	case DHCC__CHANGE_CONTEXT__PAYLOAD_UID_FIXUP:
		fprintf(f, "  study %s -> %s\n  accession %s\n", m->uid_fixup->old_study_uid,
			m->uid_fixup->new_study_uid, m->uid_fixup->accession_number);
		text_maps(f, "  ", m->uid_fixup->uid_map, m->uid_fixup->n_uid_map);
		text_attrs(f, "  ", m->uid_fixup->attributes, m->uid_fixup->n_attributes);
		break;
	default:
		break;
	}
	return ferror(f) ? -1 : 0;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid. */
static int utf8_seq(const unsigned char *s)
{
	int n;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0)
		n = 2, cp = s[0] & 0x1f;
	else if ((s[0] & 0xf0) == 0xe0)
		n = 3, cp = s[0] & 0x0f;
	else if ((s[0] & 0xf8) == 0xf0)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (int i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0; /* also stops at the NUL */
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* A JSON string; bytes that are not UTF-8 (DICOM text need not be) become U+FFFD. */
static void json_str(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	fputc('"', f);
	while (*p) {
		int n = utf8_seq(p);

		if (n == 0) {
			fputs("\\ufffd", f);
			p++;
		} else if (*p == '"' || *p == '\\') {
			fprintf(f, "\\%c", *p++);
		} else if (*p < 0x20 || *p == 0x7f) {
			fprintf(f, "\\u%04x", *p++);
		} else {
			fwrite(p, 1, (size_t)n, f);
			p += n;
		}
	}
	fputc('"', f);
}

static void json_refs(FILE *f, const char *key, Dhcc__InstanceRef *const *r, size_t n)
{
	fprintf(f, ",\"%s\":[", key);
	for (size_t i = 0; i < n; i++) {
		fputs(i ? ",{\"study_uid\":" : "{\"study_uid\":", f);
		json_str(f, r[i]->study_uid);
		fputs(",\"series_uid\":", f);
		json_str(f, r[i]->series_uid);
		fputs(",\"sop_uid\":", f);
		json_str(f, r[i]->sop_uid);
		fputc('}', f);
	}
	fputc(']', f);
}

static void json_maps(FILE *f, Dhcc__UidMapping *const *u, size_t n)
{
	fputs(",\"uid_map\":[", f);
	for (size_t i = 0; i < n; i++) {
		fprintf(f, "%s{\"level\":\"%s\",\"old\":", i ? "," : "",
			dh_cc_level_name(u[i]->level));
		json_str(f, u[i]->old_uid);
		fputs(",\"new\":", f);
		json_str(f, u[i]->new_uid);
		fputc('}', f);
	}
	fputc(']', f);
}

static void json_attrs(FILE *f, const char *key, Dhcc__Attribute *const *a, size_t n)
{
	fprintf(f, ",\"%s\":[", key);
	for (size_t i = 0; i < n; i++) {
		fprintf(f, "%s{\"tag\":\"%04X%04X\",\"vr\":", i ? "," : "", a[i]->tag >> 16,
			a[i]->tag & 0xffffu);
		json_str(f, a[i]->vr);
		fputs(",\"old\":", f);
		json_str(f, a[i]->old_value);
		fputs(",\"new\":", f);
		json_str(f, a[i]->new_value);
		fputc('}', f);
	}
	fputc(']', f);
}

int dh_cc_print_json(const dh_cc *cc, FILE *f)
{
	const Dhcc__ChangeContext *m = cc->m;
	char when[32];

	format_time(m->created_at_ms, when);
	fprintf(f, "{\"schema_version\":%" PRIu32 ",\"spoke_id\":", m->schema_version);
	json_str(f, m->spoke_id);
	fprintf(f, ",\"sequence\":%" PRIu64 ",\"uuid\":", m->sequence);
	json_str(f, m->uuid);
	fprintf(f, ",\"created_at_ms\":%" PRId64 ",\"created_at\":\"%s\",\"operator\":",
		m->created_at_ms, when);
	json_str(f, m->operator_name);
	fputs(",\"reason\":", f);
	json_str(f, m->reason);
	fprintf(f, ",\"kind\":\"%s\"", dh_cc_kind_name(m->kind));
	switch (m->payload_case) {
	case DHCC__CHANGE_CONTEXT__PAYLOAD_SPLIT:
		fputs(",\"split\":{\"source_study_uid\":", f);
		json_str(f, m->split->source_study_uid);
		fputs(",\"target_study_uid\":", f);
		json_str(f, m->split->target_study_uid);
		fprintf(f, ",\"target_is_new\":%s", m->split->target_is_new ? "true" : "false");
		json_refs(f, "moved", m->split->moved, m->split->n_moved);
		json_maps(f, m->split->uid_map, m->split->n_uid_map);
		json_attrs(f, "target_attributes", m->split->target_attributes,
			   m->split->n_target_attributes);
		fputc('}', f);
		break;
	case DHCC__CHANGE_CONTEXT__PAYLOAD_MERGE:
		fputs(",\"merge\":{\"source_study_uids\":[", f);
		for (size_t i = 0; i < m->merge->n_source_study_uids; i++) {
			if (i)
				fputc(',', f);
			json_str(f, m->merge->source_study_uids[i]);
		}
		fputs("],\"destination_study_uid\":", f);
		json_str(f, m->merge->destination_study_uid);
		json_refs(f, "moved", m->merge->moved, m->merge->n_moved);
		json_maps(f, m->merge->uid_map, m->merge->n_uid_map);
		fputc('}', f);
		break;
	case DHCC__CHANGE_CONTEXT__PAYLOAD_SEGMENT:
		fputs(",\"segment\":{\"source_study_uid\":", f);
		json_str(f, m->segment->source_study_uid);
		fprintf(f, ",\"keep_source\":%s,\"targets\":[",
			m->segment->keep_source ? "true" : "false");
		for (size_t t = 0; t < m->segment->n_targets; t++) {
			const Dhcc__SegmentTarget *tg = m->segment->targets[t];

			fputs(t ? ",{\"study_uid\":" : "{\"study_uid\":", f);
			json_str(f, tg->study_uid);
			fputs(",\"accession_number\":", f);
			json_str(f, tg->accession_number);
			json_refs(f, "instances", tg->instances, tg->n_instances);
			json_maps(f, tg->uid_map, tg->n_uid_map);
			json_attrs(f, "attributes", tg->attributes, tg->n_attributes);
			fputc('}', f);
		}
		fputs("]}", f);
		break;
	case DHCC__CHANGE_CONTEXT__PAYLOAD_ATTRIBUTE_CHANGE: {
		const Dhcc__AttributeChange *a = m->attribute_change;

		fprintf(f, ",\"attribute_change\":{\"level\":\"%s\",\"patient_id\":",
			dh_cc_level_name(a->level));
		json_str(f, a->patient_id);
		fputs(",\"issuer_of_patient_id\":", f);
		json_str(f, a->issuer_of_patient_id);
		if (a->target)
			json_refs(f, "target", &a->target, 1);
		json_attrs(f, "attributes", a->attributes, a->n_attributes);
		fputc('}', f);
		break;
	}
	case DHCC__CHANGE_CONTEXT__PAYLOAD_DELETION:
		fprintf(f, ",\"delete\":{\"count\":%zu", m->deletion->n_objects);
		json_refs(f, "objects", m->deletion->objects, m->deletion->n_objects);
		fputc('}', f);
		break;
	case DHCC__CHANGE_CONTEXT__PAYLOAD_UID_FIXUP:
		fputs(",\"uid_fixup\":{\"old_study_uid\":", f);
		json_str(f, m->uid_fixup->old_study_uid);
		fputs(",\"new_study_uid\":", f);
		json_str(f, m->uid_fixup->new_study_uid);
		fputs(",\"accession_number\":", f);
		json_str(f, m->uid_fixup->accession_number);
		json_maps(f, m->uid_fixup->uid_map, m->uid_fixup->n_uid_map);
		json_attrs(f, "attributes", m->uid_fixup->attributes, m->uid_fixup->n_attributes);
		fputc('}', f);
		break;
	default:
		break;
	}
	fputc('}', f);
	return ferror(f) ? -1 : 0;
}
