/*
 * cc.h - the change-context (cc) object: model, builders, codec, printing.
 *
 * A cc is one change a spoke made to studies it owns (split, merge,
 * segment, attribute change, deletion, Study UID fix-up; KB 13876), with the
 * complete old->new UID mapping and attribute values, so the hub can apply
 * it to its index without receiving pixel data again. The wire form is the
 * Protocol Buffers message dhcc.ChangeContext of proto/cc.proto; this module
 * wraps the protobuf-c generated struct and adds what protobuf cannot say:
 * the semantic rules (dh_cc_validate), resource limits, and the guarantee
 * that dh_cc_decode turns *any* byte string either into a valid cc or into
 * a rejection with a reason (fuzzed by fuzz/cc_fuzz.c).
 *
 * Life cycle on the spoke: dh_cc_new + kind-specific setters + dh_cc_add_*,
 * then dh_cc_encode (which validates) into the outbox. On the hub:
 * dh_cc_decode, then read the fields through the accessors and the
 * generated struct (dh_cc_message). A decoded cc is read-only: the setters
 * refuse it (its memory belongs to the decoder's bounded allocator).
 *
 * Errors: functions return 0 on success and -1 on failure; the ones that
 * can fail for a reason worth showing take (why, whylen) and write a short
 * lower-case message there (always NUL-terminated when whylen > 0).
 * Ownership: every dh_cc * returned through **out belongs to the caller and
 * is released with dh_cc_free (NULL is accepted). String arguments are
 * copied; the caller keeps its own.
 */
#ifndef DH_CC_H
#define DH_CC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cc.pb-c.h"

/* Bumped when the meaning of an existing wire field changes. */
#define DH_CC_SCHEMA_VERSION 1u

/* Limits enforced by dh_cc_decode and dh_cc_validate. */
#define DH_CC_MAX_MESSAGE (16u * 1024u * 1024u) /* encoded bytes */
#define DH_CC_MAX_ITEMS 100000u                  /* entries of any one list */
#define DH_CC_MAX_SPOKE_ID 64u                   /* chars of spoke_id */
#define DH_CC_MAX_TEXT 1024u                     /* operator, reason, IDs */
#define DH_CC_MAX_VALUE 65536u                   /* one attribute value */
#define DH_CC_MAX_ACCESSION 16u                  /* DICOM SH */
/* Heap the protobuf-c decoder may use for one cc; a hostile 16 MiB input
 * of tiny list entries would otherwise expand to hundreds of MiB. */
#define DH_CC_MAX_DECODE_MEMORY (96u * 1024u * 1024u)

typedef enum {
	DH_CC_SPLIT = DHCC__KIND__KIND_SPLIT,
	DH_CC_MERGE = DHCC__KIND__KIND_MERGE,
	DH_CC_SEGMENT = DHCC__KIND__KIND_SEGMENT,
	DH_CC_ATTRIBUTE_CHANGE = DHCC__KIND__KIND_ATTRIBUTE_CHANGE,
	DH_CC_DELETE = DHCC__KIND__KIND_DELETE,
	DH_CC_UID_FIXUP = DHCC__KIND__KIND_UID_FIXUP
} dh_cc_kind;

typedef enum {
	DH_CC_LEVEL_PATIENT = DHCC__LEVEL__LEVEL_PATIENT,
	DH_CC_LEVEL_STUDY = DHCC__LEVEL__LEVEL_STUDY,
	DH_CC_LEVEL_SERIES = DHCC__LEVEL__LEVEL_SERIES,
	DH_CC_LEVEL_INSTANCE = DHCC__LEVEL__LEVEL_INSTANCE
} dh_cc_level;

typedef struct dh_cc dh_cc;

/* ---- names ---- */

/* "SPLIT", "MERGE", "SEGMENT", "ATTRIBUTE_CHANGE", "DELETE", "UID_FIXUP";
 * "UNKNOWN" for anything else. Static storage. */
const char *dh_cc_kind_name(int kind);
/* Inverse of dh_cc_kind_name (case-insensitive); -1 when unknown. */
int dh_cc_kind_from_name(const char *name);
/* "PATIENT", "STUDY", "SERIES", "INSTANCE" or "UNKNOWN". Static storage. */
const char *dh_cc_level_name(int level);

/* ---- building (spoke side) ---- */

/*
 * Creates an empty cc of the given kind with its header filled in.
 * uuid NULL: a fresh random UUID. created_at_ms 0: now. operator_name and
 * reason may be NULL (empty). Nothing is validated here; dh_cc_encode and
 * dh_cc_validate do that once the cc is complete. On success *out is the
 * caller's; on failure (unknown kind, no memory) *out is NULL.
 */
int dh_cc_new(dh_cc **out, dh_cc_kind kind, const char *spoke_id, uint64_t sequence,
	      const char *uuid, int64_t created_at_ms, const char *operator_name,
	      const char *reason);

/* SPLIT: instances of source_study move to target_study (new or existing). */
int dh_cc_split_set(dh_cc *cc, const char *source_study_uid, const char *target_study_uid,
		    int target_is_new);
/* MERGE: one call per source study, one for the destination. */
int dh_cc_merge_add_source(dh_cc *cc, const char *source_study_uid);
int dh_cc_merge_set_destination(dh_cc *cc, const char *destination_study_uid);
/* SEGMENT: the source study, whether it stays (copy) or goes (break). */
int dh_cc_segment_set_source(dh_cc *cc, const char *source_study_uid, int keep_source);
/* SEGMENT: adds a target study for one order; returns its index (>= 0),
 * used as `target` below, or -1. */
int dh_cc_segment_add_target(dh_cc *cc, const char *study_uid, const char *accession_number);
/*
 * ATTRIBUTE_CHANGE: what changes. PATIENT level names the patient by its
 * current patient_id (+ issuer, may be NULL) and no UIDs; STUDY needs
 * study_uid, SERIES study+series, INSTANCE all three (others NULL).
 */
int dh_cc_attr_set_target(dh_cc *cc, dh_cc_level level, const char *patient_id,
			  const char *issuer, const char *study_uid, const char *series_uid,
			  const char *sop_uid);
/* UID_FIXUP: the study's old and new UID and the matched order's accession. */
int dh_cc_fixup_set(dh_cc *cc, const char *old_study_uid, const char *new_study_uid,
		    const char *accession_number);

/*
 * Lists shared by several kinds. `target` is the segment target index for
 * SEGMENT and must be -1 for every other kind.
 *
 * dh_cc_add_instance: an object by its old UIDs - moved (SPLIT, MERGE),
 *   assigned to a target (SEGMENT) or deleted (DELETE; series_uid/sop_uid
 *   may be NULL to delete a whole series or study).
 * dh_cc_add_uid_map: an old->new UID (SPLIT, MERGE, SEGMENT, UID_FIXUP).
 * dh_cc_add_attr: an attribute with old and new value (ATTRIBUTE_CHANGE,
 *   SPLIT target, SEGMENT target, UID_FIXUP); tag = (group << 16) | element;
 *   NULL values mean empty/absent.
 * Each returns -1 when the kind has no such list or on no memory.
 */
int dh_cc_add_instance(dh_cc *cc, int target, const char *study_uid, const char *series_uid,
		       const char *sop_uid);
int dh_cc_add_uid_map(dh_cc *cc, int target, dh_cc_level level, const char *old_uid,
		      const char *new_uid);
int dh_cc_add_attr(dh_cc *cc, int target, uint32_t tag, const char *vr, const char *old_value,
		   const char *new_value);

/* ---- codec ---- */

/*
 * Checks every semantic rule (see cc.c, "Validation rules"). Returns 0 when
 * valid, else -1 with the first broken rule in why.
 */
int dh_cc_validate(const dh_cc *cc, char *why, size_t whylen);

/*
 * Validates and serialises cc. On success *buf (malloc'd, the caller frees
 * it with free()) holds *len bytes. Returns -1 (and *buf NULL) when cc is
 * invalid or memory runs out; dh_cc_validate tells why.
 */
int dh_cc_encode(const dh_cc *cc, uint8_t **buf, size_t *len);

/*
 * Parses and validates len bytes (buf may be NULL when len is 0). Total: any
 * input gives either 0 and a valid cc in *out (the caller's), or -1, *out
 * NULL and the reason in why. Never reads outside buf[0..len). Fields
 * this build does not know (added by a newer schema) are dropped, so
 * encoding a decoded cc gives its canonical form.
 */
int dh_cc_decode(const uint8_t *buf, size_t len, dh_cc **out, char *why, size_t whylen);

/* Frees cc and everything it owns; NULL is fine. */
void dh_cc_free(dh_cc *cc);

/* 1 when a and b encode to the same bytes (both must be valid), else 0. */
int dh_cc_equal(const dh_cc *a, const dh_cc *b);

/* ---- reading ---- */

dh_cc_kind dh_cc_get_kind(const dh_cc *cc);
const char *dh_cc_spoke_id(const dh_cc *cc);
uint64_t dh_cc_sequence(const dh_cc *cc);
const char *dh_cc_uuid(const dh_cc *cc);
int64_t dh_cc_created_at_ms(const dh_cc *cc);
const char *dh_cc_operator(const dh_cc *cc);
const char *dh_cc_reason(const dh_cc *cc);
/* The generated message, borrowed (valid until dh_cc_free), for walking the
 * payload: msg->split, msg->merge, ... per msg->payload_case. */
const Dhcc__ChangeContext *dh_cc_message(const dh_cc *cc);

/* ---- printing (hubctl queue show, spokectl) ---- */

/* Human-readable, several lines, ends with '\n'. Returns 0 or -1 (I/O). */
int dh_cc_print_text(const dh_cc *cc, FILE *f);
/* One JSON object (no trailing newline), strings escaped per RFC 8259. */
int dh_cc_print_json(const dh_cc *cc, FILE *f);

#endif
