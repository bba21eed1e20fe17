/*
 * capture.h - the spoke's ledger and the changes made to it (C API).
 *
 * Every function that changes the ledger does so in ONE PostgreSQL
 * transaction together with the cc that tells the hub: the cc is recorded
 * in cc_history and queued in outbox (sequence from spoke_state), and
 * `NOTIFY dh_outbox` wakes the shipper when the transaction commits.
 * spoked (receive.c) and spokectl both use it.
 *
 * The ledger row of an object holds its *current* identity (UIDs and
 * tracked attributes, as the hub must end up showing them) and, in
 * received_*, the UIDs of the stored file (never changed). A cc names
 * objects by their current UIDs before the change.
 *
 * Every operation takes a lock on spoke_state first, so captures are
 * serialised: the checks against the ledger and the sequence number belong
 * to one consistent state. An invalid request (unknown or deleted objects,
 * objects of another study, a UID already in use, an attribute at the
 * wrong level, nothing to change, ...) changes nothing, consumes no
 * sequence and returns -1 with a sentence in err. Database errors do the
 * same. c must be an idle connection (no transaction open).
 *
 * Ownership: request structs and their strings are the caller's and only
 * read. A capture_result is filled by the call (its items malloc'd) and
 * released by the caller with capture_result_free, also after a failure.
 */
#ifndef SPOKE_CAPTURE_H
#define SPOKE_CAPTURE_H

#include "spoke_config.h"

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* An object spoked received and stored durably, as the file says. */
typedef struct {
	const char *sop_uid, *series_uid, *study_uid, *sop_class_uid;
	const char *transfer_syntax;
	const char *patient_id, *issuer, *patient_name, *birth_date, *sex;
	const char *study_id, *study_date, *study_time, *accession, *referring_physician,
		*study_description;
	const char *modality, *series_number, *series_description, *instance_number;
	const char *file_path; /* relative to spoke.store_dir */
	long long file_size;
	const char *md5;       /* 32 hex digits */
	const char *source_ae; /* calling AE title */
	const char *dataset_digest; /* MD5 of the data set without File Meta (common/dsdigest.h); NULL/"" unknown */
	/*
	 * An IHE IOCM rejection note (hub and spoke read it with
	 * common/kosdoc.h): the instances it rejects, as (SOP UID, study UID)
	 * pairs of valid UIDs, and its title code. When the note is recorded
	 * as a new object, the live ledger rows of these instances get
	 * deleted_at (no cc: the note itself is forwarded, and the hub hides
	 * the same instances when it registers it) and the pairs are kept in
	 * rejected_instance. n_rejected 0: not a rejection note.
	 */
	const char *const *rejected_sops, *const *rejected_studies;
	size_t n_rejected;
	const char *rejection_code;
} capture_object_info;

typedef enum {
	CAPTURE_NEW = 0,      /* new object: ledger row inserted, to be forwarded */
	CAPTURE_SAME,         /* already held, same attributes: nothing to do (the new file is redundant) */
	CAPTURE_CHANGED,      /* already held, attributes differ: ATTRIBUTE_CHANGE cc recorded */
	CAPTURE_SPLIT,        /* known SOP UID under another study, policy split: SPLIT cc recorded */
	CAPTURE_REJECTED      /* known SOP UID under another study, policy reject: answer 0110 */
} capture_verdict;

/*
 * Records a received object in the ledger (see capture_verdict). A new
 * object that a rejection note already rejected (rejected_instance) is
 * recorded as deleted at once; it is still forwarded (the hub hides it
 * too, and must hold what the spoke holds). why gets
 * a sentence for logs and for the Error Comment of a rejection. Returns 0,
 * or -1 on a database error (message in err; nothing recorded).
 *
 * Details: NULL strings count as empty. CHANGED records up to three
 * ATTRIBUTE_CHANGE cc (consecutive sequences): STUDY level for changed
 * patient and study attributes (applied to every ledger row of the study;
 * never PATIENT level, which would reach other spokes' studies at the hub),
 * SERIES level for series attributes (rows of the series), INSTANCE level
 * for the instance number. CHANGED and SAME keep the ledger's stored file;
 * the caller may drop the new one. The same SOP UID in the same study but
 * another series is REJECTED (objects do not move between series of one
 * study). With sop_conflict=split the moved object takes the patient and
 * study attributes of the received file (the SPLIT cc's target attributes)
 * and keeps its series UID unless other objects of that series stay behind
 * (then a new series UID). With sop_conflict=forward the object gets a
 * second ledger row (unique per SOP UID *and* study) and is forwarded
 * again: the hub stores it as a duplicate under a new SOP UID (kb-8993).
 */
int capture_object(PGconn *c, const spoke_config *cfg, const capture_object_info *o, capture_verdict *v,
		   char *why, size_t whylen, char *err, size_t errlen);

/* ---- operator changes (spokectl) ---- */

/* Who made the change and why (both may be NULL: empty). */
typedef struct {
	const char *operator_name;
	const char *reason;
} capture_who;

/* One attribute to set: tag (group << 16 | element) and its new value
 * (NULL or "": empty). Only the tracked attributes are accepted (see
 * capture_attr_parse). */
typedef struct {
	uint32_t tag;
	const char *value;
} capture_attr;

/* A UID the operation assigned: key "study", "series", "sop" or "target"
 * (segment: old is the accession number); old is "" for a plain value. */
typedef struct {
	char key[8];
	char old[65];
	char uid[65];
} capture_assigned;

typedef struct {
	uint64_t sequence;          /* sequence of the (last) cc recorded; 0 none */
	int n_cc;                   /* cc recorded by the call */
	long long n_objects;        /* ledger rows changed, inserted or deleted */
	capture_assigned *items;    /* malloc'd, n_items entries */
	size_t n_items;
} capture_result;

void capture_result_free(capture_result *r);

/*
 * SPLIT: the listed instances of study_uid move to another study of
 * possibly another patient. target_study_uid names an existing ledger
 * study (target_new 0) or the UID of a new one (target_new 1; NULL:
 * generated). The moved objects take the target's patient and study
 * attributes: an existing target's, or for a new target the source's with
 * attrs (patient and study attributes only) applied; attrs with an
 * existing target are refused (use modify). A series moved whole keeps its
 * UID; the moved part of a series that stays partly behind gets a new one.
 */
typedef struct {
	const char *study_uid;
	const char *const *sops;
	size_t n_sops;
	const char *target_study_uid;
	int target_new;
	const capture_attr *attrs;
	size_t n_attrs;
} capture_split_req;

int capture_split(PGconn *c, const spoke_config *cfg, const capture_who *who, const capture_split_req *req,
		  capture_result *res, char *err, size_t errlen);

/*
 * MERGE: every object of the source studies moves to destination (an
 * existing study, destination_new 0; or a new one, destination_new 1, NULL:
 * generated). Every moved object gets a new SOP UID, every moved series a
 * new series UID; the objects take the destination's patient and study
 * attributes (a new destination: the first source's).
 */
typedef struct {
	const char *const *sources;
	size_t n_sources;
	const char *destination;
	int destination_new;
} capture_merge_req;

int capture_merge(PGconn *c, const spoke_config *cfg, const capture_who *who, const capture_merge_req *req,
		  capture_result *res, char *err, size_t errlen);

/*
 * SEGMENT: study_uid becomes one new study per order (accession number,
 * study UID given or NULL: generated), each with its list of instances.
 * keep_source 0 (break): every object of the source must go to at least
 * one target; an object keeps its SOP UID in the first target naming it
 * and gets a copy with a new SOP UID in any later one. keep_source 1
 * (copy): the source stays; every target holds copies with new SOP UIDs.
 * Copies are new ledger rows on the same stored file (fwd_state 'cc': the
 * hub makes them from the cc, they are never forwarded). A series keeps
 * its UID in a target only when all its objects move there with their SOP
 * UIDs; otherwise it gets a new series UID in that target.
 */
typedef struct {
	const char *accession;
	const char *study_uid;
	const char *const *sops;
	size_t n_sops;
} capture_segment_target;

typedef struct {
	const char *study_uid;
	int keep_source;
	const capture_segment_target *targets;
	size_t n_targets;
} capture_segment_req;

int capture_segment(PGconn *c, const spoke_config *cfg, const capture_who *who,
		    const capture_segment_req *req, capture_result *res, char *err, size_t errlen);

/*
 * ATTRIBUTE_CHANGE at level 1 PATIENT (patient_id: every live ledger row of
 * that patient), 2 STUDY, 3 SERIES or 4 INSTANCE (UIDs down to the level).
 * Patient attributes may be changed at PATIENT or STUDY level, study
 * attributes at STUDY level, series attributes at SERIES level, the
 * instance number at INSTANCE level. Old values come from the ledger;
 * attributes already equal everywhere are left out; nothing left: error.
 */
typedef struct {
	int level; /* DH_CC_LEVEL_* (cc.h) */
	const char *patient_id;
	const char *study_uid, *series_uid, *sop_uid;
	const capture_attr *attrs;
	size_t n_attrs;
} capture_modify_req;

int capture_modify(PGconn *c, const spoke_config *cfg, const capture_who *who, const capture_modify_req *req,
		   capture_result *res, char *err, size_t errlen);

/* DELETE: the study, one series of it, or instances of it (sops; series_uid
 * optional then, and if given they must be in it). Ledger rows get deleted_at. */
typedef struct {
	const char *study_uid;
	const char *series_uid;
	const char *const *sops;
	size_t n_sops;
} capture_delete_req;

int capture_delete(PGconn *c, const spoke_config *cfg, const capture_who *who, const capture_delete_req *req,
		   capture_result *res, char *err, size_t errlen);

/*
 * UID_FIXUP: the study gets new_study_uid (NULL: generated), the order's
 * accession number and attrs (patient and study attributes except the
 * accession number, which is `accession`).
 */
typedef struct {
	const char *study_uid;
	const char *new_study_uid;
	const char *accession;
	const capture_attr *attrs;
	size_t n_attrs;
} capture_fixup_req;

int capture_fixup(PGconn *c, const spoke_config *cfg, const capture_who *who, const capture_fixup_req *req,
		  capture_result *res, char *err, size_t errlen);

/* ---- attributes ---- */

/*
 * Parses "gggg,eeee" (or "(gggg,eeee)") or a keyword of a tracked
 * attribute (PatientName, PatientID, IssuerOfPatientID, PatientBirthDate,
 * PatientSex, StudyID, StudyDate, StudyTime, AccessionNumber,
 * ReferringPhysicianName, StudyDescription, Modality, SeriesNumber,
 * SeriesDescription, InstanceNumber). Returns 0 and *tag, or -1 (message
 * in err) for anything else.
 */
int capture_attr_parse(const char *name, uint32_t *tag, char *err, size_t errlen);

/* Keyword of a tracked tag, or NULL. */
const char *capture_attr_keyword(uint32_t tag);

/* ---- reading (spokectl status, ledger) ---- */

typedef struct {
	long long pending, sent, committed, failed, cc, deleted; /* ledger rows by fwd_state */
	long long outbox;           /* cc not yet acknowledged by the hub */
	long long refused;          /* cc the hub refused (cc_history.state) */
	uint64_t last_sequence, acked_through;
	char last_ack_at[40];       /* "" never */
	struct {
		uint64_t sequence;
		char kind[24];
		char at[40];
		char refusal[256];
	} last_refusals[5];         /* newest first */
	int n_last_refusals;
} capture_status;

int capture_status_get(PGconn *c, capture_status *st, char *err, size_t errlen);

/*
 * Prints the live ledger: study_uid NULL lists every study (UID, patient
 * id and name, accession, series and instance counts); a study lists its
 * instances with current UIDs and tracked attributes. json 0: one line per
 * entry, tab-separated; json 1: one JSON document. Returns 0, or -1 with
 * err (a study that is not in the ledger is an error).
 */
int capture_ledger_print(PGconn *c, const char *study_uid, int json, FILE *out, char *err, size_t errlen);

#endif
