/*
 * kos.h - Key Object Selection documents in the hub's index (seeds
 * kb-119333, kb-119341; sql/hub/007_kos.sql) and the quarantine of objects
 * that cannot be registered (sql/hub/005_operator.sql).
 *
 * Everything here runs inside a transaction the caller opened on c (the
 * ingest transaction of the object, or hubctl's), so registration and the
 * object's index rows commit together or not at all. Every function
 * returns 0, or -1 with err filled (the caller rolls back); nothing is
 * allocated for the caller.
 */
#ifndef HUB_KOS_H
#define HUB_KOS_H

#include "db.h"
#include "kosdoc.h"

struct hub;

/*
 * Registers document k, stored as instance instance_pk with the hub's
 * SOP UID sop_uid in study/series study_uid/series_uid: a kos_document row
 * and a kos_reference row per reference. A rejection note (k->rejection)
 * then hides every referenced instance the index holds, as a DELETE cc
 * would (cc_apply_delete: rows to deleted_instance with a reason naming
 * the note); references not held yet stay in kos_reference, and
 * kos_hide_if_rejected hides them when they arrive. *hidden (may be NULL)
 * gets the number of instances hidden. Under cc.enforce_ownership a note
 * may only reject instances of studies no spoke owns or that the spoke of
 * its sender (source_ae) owns, as for a DELETE cc: otherwise it returns 1
 * with the reason in err->msg, having changed nothing the caller's
 * rollback does not undo (the caller quarantines the note).
 */
int kos_register(struct hub *h, PGconn *c, const dh_kos *k, const char *instance_pk, const char *sop_uid,
		 const char *study_uid, const char *series_uid, const char *source_ae, int *hidden,
		 dh_db_err *err);

/*
 * The instance just indexed (received as received_sop_uid in study
 * received_study_uid, now in the index as study/series/sop) was rejected
 * by a note that came before it: hides it at once (deleted_instance,
 * reason naming the note). *hidden gets 1 when it did, else 0.
 */
int kos_hide_if_rejected(struct hub *h, PGconn *c, const char *received_sop_uid, const char *received_study_uid,
			 const char *study_uid, const char *series_uid, const char *sop_uid, int *hidden,
			 dh_db_err *err);

/* What the quarantine records of an object (strings borrowed). */
typedef struct {
	const char *sop_uid, *sop_class_uid, *study_uid, *series_uid, *patient_id, *source_ae;
	const char *transfer_syntax, *file_path, *md5, *reason;
	long long file_size;
} kos_quarantine_item;

/*
 * Records q in quarantine (state 'quarantined'), unless an open item with
 * the same SOP UID and MD5 exists (a resend: *resend = 1, nothing
 * written, the caller drops its copy of the file). *pk (32 bytes) gets
 * the item's id.
 */
int kos_quarantine_add(PGconn *c, const kos_quarantine_item *q, int *resend, char pk[32], dh_db_err *err);

#endif
