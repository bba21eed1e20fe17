/*
 * ingest.c - the Storage SCP: from C-STORE request to durable, indexed object.
 *
 * NOTES
 * Order of work for one object, chosen so that a success answer is only
 * ever given for an object that is on disk and in the index:
 *   1. the data set streams into cache/tmp/<uuid>.part (bytes as received,
 *      File Meta Information added from the command);
 *   2. it is parsed and checked against the command (A900 when it is not an
 *      instance of the SOP class, lacks its UIDs, or is damaged);
 *   3. it is fsync'ed; its MD5 and the XXH3-128 digests of the file and of
 *      its data set were computed while its bytes were written (step 1), so
 *      it is never read back;
 *   4. one PostgreSQL transaction, serialised per SOP Instance UID by an
 *      advisory lock, applies the duplicate policy (seeds/kb-8993,
 *      conformance §2.2.1.6.1.3), renames the file into place durably and
 *      inserts patient/study/series/instance rows;
 *   5. only after COMMIT is the success status sent.
 * A crash between the rename and the commit leaves an unindexed file in the
 * cache (wasted space, never a lost or phantom object); temp files are
 * removed at start-up.
 *
 * Duplicates: a SOP Instance UID the hub already holds
 *   - in another study (other Study Instance UID, or the same UID under a
 *     different accession number, i.e. another order) is stored under a new
 *     SOP Instance UID, recorded in uid_mapping, status B000;
 *   - in the same study is rejected (0110) by default, or per
 *     storage.duplicate_policy accepted silently (0000) or overwritten when
 *     the MD5 differs.
 * A Study Instance UID received with an accession number different from the
 * study's is another order: it gets its own study UID (uid_mapping kind
 * 'study'), and its series are remapped likewise, so each copy is found by
 * its own accession number.
 * Whatever the policy, an object from a spoke's AE ([spoke.ID] ae_titles)
 * equal to one the hub holds (same SOP UID, same study, as received or
 * after a cc moved it, same MD5) is a resend (the spoke lost a storage-
 * commitment result and forwards again) and gets 0000. Other senders keep
 * the documented policy (0110 by default, conformance §2.2.1.6.1.3).
 * Reconciliation: an object from the owning spoke whose SOP, series and
 * study UIDs are those a cc gave an index instance (the spoke sends the
 * objects its split/merge created) becomes that instance's stored bytes;
 * the old file stays. Every stored object wakes the cc worker
 * (cc_apply_wake): a parked cc may have waited for it.
 * Stored files are never rewritten: new UIDs live in the index and are
 * applied when objects leave the hub.
 */
#include "hub.h"

#include "ccsync.h"
#include "dsdigest.h"
#include "durable.h"
#include "hash.h"
#include "kos.h"
#include "log.h"
#include "qr_index.h"
#include "uid.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_SUCCESS 0x0000
#define ST_OUT_OF_RESOURCES 0xA700
#define ST_MISMATCH 0xA900
#define ST_PROCESSING_FAILURE 0x0110
#define ST_COERCED 0xB000
#define ST_QUARANTINED 0xB007 /* Warning: Data Set does not match SOP Class (kept, quarantined) */

#define TXT 1024

/* The attributes the index keeps, as received (UTF-8). */
typedef struct {
	char sop_class[65], sop_uid[65], study_uid[65], series_uid[65], ts[65];
	char patient_id[TXT], issuer[TXT], patient_name[TXT], birth_date[TXT], sex[TXT];
	char study_id[TXT], study_date[TXT], study_time[TXT], accession[TXT], referring[TXT];
	char study_desc[TXT], status_id[TXT];
	char modality[TXT], series_number[TXT], series_desc[TXT], institution[TXT], department[TXT];
	char pps_date[TXT], pps_time[TXT];
	char instance_number[TXT], content_date[TXT], content_time[TXT];
} obj_attrs;

/* What the index transaction decided. */
typedef struct {
	unsigned int status;
	char comment[160];
	char hub_sop_uid[65];     /* identity in the index (may be newly assigned) */
	char old_file[1024];      /* overwritten file to remove after commit */
	int stored;               /* the new file was renamed into the cache */
	char quarantine_why[300]; /* a KOS whose registration was refused (ownership): quarantine it */
	int unknown;              /* COMMIT failed: the outcome is not known */
} decision;

static void get_attr(const dh_dcm_ds *ds, uint32_t tag, char *buf, size_t len)
{
	int rc = dh_dcm_ds_get(ds, tag, buf, len);
	if (rc == DH_DCM_ERROR) {
		/* longer than any legal value of the index's attributes: keep a prefix */
		DH_DEBUG("attribute (%04x,%04x) too long for the index; truncated", tag >> 16, tag & 0xffff);
		buf[0] = '\0';
	} else if (rc != DH_DCM_OK) {
		buf[0] = '\0';
	}
}

static void read_attrs(const dh_dcm_ds *ds, obj_attrs *o)
{
	get_attr(ds, DH_TAG(0x0008, 0x0016), o->sop_class, sizeof(o->sop_class));
	get_attr(ds, DH_TAG(0x0008, 0x0018), o->sop_uid, sizeof(o->sop_uid));
	get_attr(ds, DH_TAG(0x0020, 0x000D), o->study_uid, sizeof(o->study_uid));
	get_attr(ds, DH_TAG(0x0020, 0x000E), o->series_uid, sizeof(o->series_uid));
	if (dh_dcm_ds_get_meta(ds, DH_TAG(0x0002, 0x0010), o->ts, sizeof(o->ts)) != DH_DCM_OK)
		o->ts[0] = '\0';
	get_attr(ds, DH_TAG(0x0010, 0x0020), o->patient_id, TXT);
	get_attr(ds, DH_TAG(0x0010, 0x0021), o->issuer, TXT);
	get_attr(ds, DH_TAG(0x0010, 0x0010), o->patient_name, TXT);
	get_attr(ds, DH_TAG(0x0010, 0x0030), o->birth_date, TXT);
	get_attr(ds, DH_TAG(0x0010, 0x0040), o->sex, TXT);
	get_attr(ds, DH_TAG(0x0020, 0x0010), o->study_id, TXT);
	get_attr(ds, DH_TAG(0x0008, 0x0020), o->study_date, TXT);
	get_attr(ds, DH_TAG(0x0008, 0x0030), o->study_time, TXT);
	get_attr(ds, DH_TAG(0x0008, 0x0050), o->accession, TXT);
	get_attr(ds, DH_TAG(0x0008, 0x0090), o->referring, TXT);
	get_attr(ds, DH_TAG(0x0008, 0x1030), o->study_desc, TXT);
	get_attr(ds, DH_TAG(0x0032, 0x000A), o->status_id, TXT);
	get_attr(ds, DH_TAG(0x0008, 0x0060), o->modality, TXT);
	get_attr(ds, DH_TAG(0x0020, 0x0011), o->series_number, TXT);
	get_attr(ds, DH_TAG(0x0008, 0x103E), o->series_desc, TXT);
	get_attr(ds, DH_TAG(0x0008, 0x0080), o->institution, TXT);
	get_attr(ds, DH_TAG(0x0008, 0x1040), o->department, TXT);
	get_attr(ds, DH_TAG(0x0040, 0x0244), o->pps_date, TXT);
	get_attr(ds, DH_TAG(0x0040, 0x0245), o->pps_time, TXT);
	get_attr(ds, DH_TAG(0x0020, 0x0013), o->instance_number, TXT);
	get_attr(ds, DH_TAG(0x0008, 0x0023), o->content_date, TXT);
	get_attr(ds, DH_TAG(0x0008, 0x0033), o->content_time, TXT);
}

/* Checks the data set against the command (A900 cases). Returns 0 or -1 with why. */
static int check_attrs(const obj_attrs *o, const dh_dcm_cmd *cmd, char *why, size_t len)
{
	if (strcmp(o->sop_class, cmd->sop_class) != 0) {
		snprintf(why, len, "SOP Class UID differs from the request's");
		return -1;
	}
	if (strcmp(o->sop_uid, cmd->sop_instance) != 0) {
		snprintf(why, len, "SOP Instance UID differs from the request's");
		return -1;
	}
	if (!dh_uid_valid(o->study_uid)) {
		snprintf(why, len, "missing or invalid Study Instance UID");
		return -1;
	}
	if (!dh_uid_valid(o->series_uid)) {
		snprintf(why, len, "missing or invalid Series Instance UID");
		return -1;
	}
	if (!dh_uid_valid(o->sop_uid)) {
		snprintf(why, len, "invalid SOP Instance UID");
		return -1;
	}
	return 0;
}

/*
 * Starts writing the received file to disk at once, so the disk works while
 * the data set is parsed and hashed and the fsync that follows waits less
 * (35 % more objects/s in bench/ingest.sh). Best effort: errors show at fsync.
 */
static void start_writeback(const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd >= 0) {
		(void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
		close(fd);
	}
}

/* ---- the index transaction --------------------------------------------- */

typedef struct {
	PGconn *c;
	dh_db_err err;
	int failed;
	ingest_pre_commit pre_commit; /* ingest_register_file's: runs just before COMMIT */
	void *pre_arg;
} tx;

/* Runs a query inside the transaction; after the first failure every call is a no-op. */
static PGresult *q(tx *t, const char *sql, int n, const char *const *p)
{
	if (t->failed)
		return NULL;
	/* every text here is static: prepared once per connection, then only bound and run */
	PGresult *r = dh_db_query_prep(t->c, sql, n, p, &t->err);
	if (!r)
		t->failed = 1;
	return r;
}

static void x(tx *t, const char *sql, int n, const char *const *p)
{
	PQclear(q(t, sql, n, p));
}

/* First column of the first row into out (or "" when no row). Returns rows. */
static int q1(tx *t, const char *sql, int n, const char *const *p, char *out, size_t len)
{
	PGresult *r = q(t, sql, n, p);
	int rows = r ? PQntuples(r) : 0;
	if (out)
		snprintf(out, len, "%s", rows ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
	return rows;
}

static int differs(const char *incoming, const char *kept)
{
	return incoming[0] && strcmp(incoming, kept) != 0;
}

/*
 * Finds or creates the UID the hub uses instead of old_uid. kind is "study"
 * (keyed by accession: one study per order), "series" (keyed by the study it
 * was moved into) or "sop" (always new). new_uid receives the UID.
 */
static void remap_uid(tx *t, const char *kind, const char *old_uid, const char *study_uid,
		      const char *accession, const char *source_ae, const char *reason, char *new_uid)
{
	int is_study = strcmp(kind, "study") == 0, is_series = strcmp(kind, "series") == 0;
	if (is_study || is_series) {
		const char *p[2] = { old_uid, is_study ? accession : study_uid };
		const char *sql = is_study
			? "SELECT new_uid FROM uid_mapping WHERE kind = 'study' AND old_uid = $1 AND accession = $2"
			: "SELECT new_uid FROM uid_mapping WHERE kind = 'series' AND old_uid = $1 AND study_uid = $2";
		if (q1(t, sql, 2, p, new_uid, DH_UID_MAX + 1) > 0)
			return;
	}
	if (dh_uid_generate(new_uid) < 0) {
		t->failed = 1;
		snprintf(t->err.msg, sizeof(t->err.msg), "cannot generate a UID");
		return;
	}
	/* study_uid of a mapping is the study the object now belongs to (kb-8993's study_ref) */
	const char *ip[7] = { kind, is_study ? new_uid : study_uid, accession, old_uid, new_uid,
			      source_ae, reason };
	x(t, "INSERT INTO uid_mapping (kind, study_uid, accession, old_uid, new_uid, source_ae, reason) "
	     "VALUES ($1, $2, $3, $4, $5, $6, $7)", 7, ip);
	DH_INFO("assigned %s UID %s instead of %s (%s)", kind, new_uid, old_uid, reason);
}

/* The probe's row (index_object), copied out of its result. "" for SQL NULL. */
typedef struct {
	char study_pk[32], study_acc[TXT], study_patient[32];
	int known_sop; /* an instance row has this SOP UID (received or assigned) */
	int deleted;   /* deleted_instance names this SOP UID with this MD5 */
	char deleted_why[300];
	char patient_pk[32], patient_name[TXT], birth_date[TXT], sex[TXT];
	char series_pk[32], series_study[32];
} probe;

static void probe_fill(probe *pb, const PGresult *r)
{
#define COPY(dst, col) snprintf(pb->dst, sizeof(pb->dst), "%s", PQgetvalue(r, 0, (col)))
	COPY(study_pk, 0);
	COPY(study_acc, 1);
	COPY(study_patient, 2);
	pb->known_sop = PQgetvalue(r, 0, 3)[0] == 't';
	pb->deleted = !PQgetisnull(r, 0, 4);
	COPY(deleted_why, 4);
	COPY(patient_pk, 5);
	COPY(patient_name, 6);
	COPY(birth_date, 7);
	COPY(sex, 8);
	COPY(series_pk, 9);
	COPY(series_study, 10);
#undef COPY
}

/*
 * The whole index decision for one object. tmp is the fsync'ed temp file;
 * rel/abs the final cache path. Fills d; returns 0 when the transaction
 * committed (or nothing needed committing), -1 on a database error (t->err).
 */
static int index_object(hub *h, tx *t, const obj_attrs *o, const dh_dcm_ds *ds, const dh_kos *kos,
			const char *source_ae, const char *tmp, const char *rel, const char *abs, long long size,
			const char *md5, const char *dsdig, const char *fdig, decision *d)
{
	char study_uid[DH_UID_MAX + 1], series_uid[DH_UID_MAX + 1], sop_uid[DH_UID_MAX + 1];
	char study_acc[TXT] = "", ppk[32], stpk[32], sepk[32], size_s[32];
	char reg_pk[32] = ""; /* the instance row a KOS registers with (new, overwritten or reconciled) */
	int coerced = 0;
	PGresult *r = NULL;
	probe *pb = NULL; /* what the index holds for this object's keys (NULL: unknown, ask) */
	probe pbuf;
	const hub_spoke *sp = hub_config_spoke_of_ae(&h->cfg, source_ae);

	snprintf(study_uid, sizeof(study_uid), "%s", o->study_uid);
	snprintf(series_uid, sizeof(series_uid), "%s", o->series_uid);
	snprintf(sop_uid, sizeof(sop_uid), "%s", o->sop_uid);
	/*
	 * BEGIN, the lock serialising this SOP Instance UID, and the probe: what
	 * the common case decides on (the study and its accession, whether the
	 * SOP UID is known, whether a spoke's resend names a deleted instance,
	 * the patient, study and series rows the object would join), sent in
	 * one round trip (dh_db_query_batch). The probe runs after the lock has
	 * been granted, as its own statement, so its snapshot sees every object
	 * of this SOP UID committed before. Rare cases (duplicates, remaps, rows
	 * missing) take the statements below, as before.
	 */
	{
		const char *lp[1] = { o->sop_uid };
		const char *p[6] = { o->study_uid, o->sop_uid, o->patient_id, o->issuer, o->series_uid, md5 };
		const dh_db_stmt st[3] = {
			{ "BEGIN", 0, NULL },
			/* index lookups only: a plan cached while the tables were small must not scan them */
			{ "SELECT pg_advisory_xact_lock(7243002, hashtext($1)), set_config('enable_seqscan', 'off', true)",
			  1, lp },
			{ "SELECT st.pk, st.accession, st.patient_fk, "
			  "EXISTS (SELECT 1 FROM instance i WHERE i.received_sop_uid = $2 OR i.sop_uid = $2), "
			  "(SELECT reason FROM deleted_instance WHERE sop_uid = $2 AND md5 = $6 LIMIT 1), "
			  "p.pk, p.patient_name, p.birth_date, p.sex, se.pk, se.study_fk "
			  "FROM (SELECT 1) one "
			  "LEFT JOIN study st ON st.study_uid = $1 "
			  "LEFT JOIN patient p ON p.patient_id = $3 AND p.issuer = $4 "
			  "LEFT JOIN series se ON se.series_uid = $5",
			  6, p },
		};
		PGresult *res[3];
		if (dh_db_query_batch(t->c, st, 3, res, &t->err) < 0)
			t->failed = 1;
		PQclear(res[0]);
		PQclear(res[1]);
		PGresult *pr = res[2];
		if (pr && PQntuples(pr) == 1) {
			pb = &pbuf;
			probe_fill(pb, pr);
		}
		PQclear(pr);
	}
	/* another order under the same Study Instance UID gets a study of its own */
	if (pb && pb->study_pk[0]) {
		memcpy(study_acc, pb->study_acc, sizeof(study_acc)); /* same size, terminated */
		if (o->accession[0] && study_acc[0] && strcmp(study_acc, o->accession) != 0) {
			remap_uid(t, "study", o->study_uid, NULL, o->accession, source_ae,
				  "same Study Instance UID received under another accession number",
				  study_uid);
			coerced = 1;
			/* the probe's study and series rows are the old order's: not this object's */
			pb->study_pk[0] = pb->series_pk[0] = '\0';
		}
	}
	/* a spoke's resend of an object deleted here (see below), known from the probe */
	if (pb && !pb->known_sop && sp && pb->deleted) {
		d->status = ST_SUCCESS;
		DH_INFO("%s from spoke %s was deleted here (%s): resend accepted, not shown again", o->sop_uid,
			sp->id, pb->deleted_why);
		x(t, "ROLLBACK", 0, NULL);
		return t->failed ? -1 : 0;
	}
	/* duplicate SOP Instance UID? (the probe says no in the common case; without it, ask) */
	if (!t->failed && (!pb || pb->known_sop)) {
		const char *p[1] = { o->sop_uid };
		r = q(t, "SELECT i.pk, i.md5, i.file_path, st.study_uid, i.received_study_uid, i.sop_uid, "
			 "se.series_uid, st.owner_spoke, (i.moved OR i.sop_uid <> i.received_sop_uid OR "
			 "(i.received_series_uid <> '' AND i.received_series_uid <> se.series_uid)) AS by_cc "
			 "FROM instance i "
			 "JOIN series se ON se.pk = i.series_fk JOIN study st ON st.pk = se.study_fk "
			 "WHERE i.received_sop_uid = $1 OR i.sop_uid = $1", 1, p);
		int same = -1, resend = -1, reconcile = -1;
		for (int i = 0; r && i < PQntuples(r); i++) {
			if (strcmp(PQgetvalue(r, i, 3), study_uid) == 0)
				same = i;
			/* a resend (lost storage-commitment result): same object, also when a cc moved it since */
			if (strcmp(PQgetvalue(r, i, 1), md5) == 0 &&
			    (strcmp(PQgetvalue(r, i, 3), study_uid) == 0 || strcmp(PQgetvalue(r, i, 4), o->study_uid) == 0))
				resend = i;
			/* the object a cc produced, sent by its owning spoke: its bytes from now on */
			if (sp && strcmp(PQgetvalue(r, i, 7), sp->id) == 0 && PQgetvalue(r, i, 8)[0] == 't' &&
			    strcmp(PQgetvalue(r, i, 5), o->sop_uid) == 0 && strcmp(PQgetvalue(r, i, 6), o->series_uid) == 0 &&
			    strcmp(PQgetvalue(r, i, 3), o->study_uid) == 0)
				reconcile = i;
		}
		if (r && sp && resend >= 0) {
			d->status = ST_SUCCESS;
			DH_INFO("%s resent (identical content, study %s): accepted", o->sop_uid, PQgetvalue(r, resend, 3));
			PQclear(r);
			x(t, "ROLLBACK", 0, NULL);
			return t->failed ? -1 : 0;
		}
		if (r && reconcile >= 0) {
			/* the old file stays (a TAR or another row may name it); the new one is archived afresh */
			snprintf(size_s, sizeof(size_s), "%lld", size);
			const char *up[12] = { PQgetvalue(r, reconcile, 0), rel, size_s, md5, o->ts, source_ae,
					       o->sop_uid, o->study_uid, o->accession, o->series_uid, dsdig, fdig };
			if (dh_durable_rename_synced(tmp, abs) < 0) {
				t->failed = 1;
				snprintf(t->err.msg, sizeof(t->err.msg), "cannot move object into cache: %s",
					 strerror(errno));
			} else {
				d->stored = 1;
			}
			x(t, "UPDATE instance SET file_path = $2, file_size = $3::bigint, md5 = $4, "
			     "transfer_syntax = $5, source_ae = $6, received_at = now(), received_sop_uid = $7, "
			     "received_study_uid = $8, received_accession = $9, received_series_uid = $10, moved = false, "
			     "tar_fk = NULL, tar_offset = NULL, tar_size = NULL, dataset_digest = $11, file_digest = $12 "
			     "WHERE pk = $1::bigint",
			  12, up);
			d->status = ST_SUCCESS;
			snprintf(d->hub_sop_uid, sizeof(d->hub_sop_uid), "%s", o->sop_uid);
			snprintf(reg_pk, sizeof(reg_pk), "%s", PQgetvalue(r, reconcile, 0));
			DH_INFO("%s from spoke %s is the object its change produced: stored as its bytes", o->sop_uid,
				sp->id);
			PQclear(r);
			r = NULL;
			goto commit;
		}
		if (r && same >= 0) {
			int policy = h->cfg.duplicate_policy;
			int identical = strcmp(PQgetvalue(r, same, 1), md5) == 0;
			if (policy == HUB_DUP_REJECT) {
				d->status = ST_PROCESSING_FAILURE;
				/* Error Comment is LO: 64 characters at most */
				snprintf(d->comment, sizeof(d->comment), "duplicate SOP UID in same study (%s content)",
					 identical ? "identical" : "different");
				DH_WARN("rejected duplicate %s in study %s (%s content)", o->sop_uid, study_uid,
					identical ? "identical" : "different");
			} else if (policy == HUB_DUP_ACCEPT || identical) {
				d->status = coerced ? ST_COERCED : ST_SUCCESS;
				DH_INFO("duplicate %s in study %s accepted silently", o->sop_uid, study_uid);
			} else {
				/* overwrite: the index points to the new file; the old one goes after commit */
				snprintf(d->old_file, sizeof(d->old_file), "%s", PQgetvalue(r, same, 2));
				if (d->old_file[0]) {
					/* copies made by a segment cc share the file: it stays while one names it */
					const char *fp[2] = { d->old_file, PQgetvalue(r, same, 0) };
					if (q1(t, "SELECT 1 FROM instance WHERE file_path = $1 AND pk <> $2::bigint LIMIT 1", 2,
					       fp, NULL, 0) > 0)
						d->old_file[0] = '\0';
				}
				snprintf(size_s, sizeof(size_s), "%lld", size);
				const char *up[8] = { PQgetvalue(r, same, 0), rel, size_s, md5, o->ts, source_ae, dsdig,
						      fdig };
				if (dh_durable_rename_synced(tmp, abs) < 0) {
					t->failed = 1;
					snprintf(t->err.msg, sizeof(t->err.msg), "cannot move object into cache: %s",
						 strerror(errno));
				} else {
					d->stored = 1;
				}
				/* new content: it is archived afresh (the old TAR keeps the old bytes) */
				x(t, "UPDATE instance SET file_path = $2, file_size = $3::bigint, md5 = $4, "
				     "transfer_syntax = $5, source_ae = $6, received_at = now(), "
				     "tar_fk = NULL, tar_offset = NULL, tar_size = NULL, dataset_digest = $7, "
				     "file_digest = $8 WHERE pk = $1::bigint",
				  8, up);
				d->status = coerced ? ST_COERCED : ST_SUCCESS;
				snprintf(d->hub_sop_uid, sizeof(d->hub_sop_uid), "%s", o->sop_uid);
				snprintf(reg_pk, sizeof(reg_pk), "%s", PQgetvalue(r, same, 0));
				DH_INFO("duplicate %s in study %s overwritten (MD5 differs)", o->sop_uid, study_uid);
			}
			PQclear(r);
			r = NULL;
			if (d->stored)
				goto commit;
			x(t, "ROLLBACK", 0, NULL);
			return t->failed ? -1 : 0;
		}
		/*
		 * A spoke sending again an object the hub deleted (a DELETE cc, an
		 * operator, an IOCM rejection note; e.g. a lost storage-commitment
		 * result): the same bytes must not come back visible (seeds
		 * kb-119333/kb-119341). Accepted, nothing stored.
		 */
		if (r && sp && same < 0 && !t->failed) {
			const char *dp[2] = { o->sop_uid, md5 };
			char why_deleted[300] = "";
			if (q1(t, "SELECT reason FROM deleted_instance WHERE sop_uid = $1 AND md5 = $2 LIMIT 1", 2, dp,
			       why_deleted, sizeof(why_deleted)) > 0) {
				d->status = ST_SUCCESS;
				DH_INFO("%s from spoke %s was deleted here (%s): resend accepted, not shown again",
					o->sop_uid, sp->id, why_deleted);
				PQclear(r);
				x(t, "ROLLBACK", 0, NULL);
				return t->failed ? -1 : 0;
			}
		}
		if (r && PQntuples(r) > 0) {
			remap_uid(t, "sop", o->sop_uid, study_uid, o->accession, source_ae,
				  "SOP Instance UID already held in another study", sop_uid);
			coerced = 1;
		}
		PQclear(r);
		r = NULL;
	}
	/* patient */
	if (pb && pb->patient_pk[0]) {
		snprintf(ppk, sizeof(ppk), "%s", pb->patient_pk);
		if (differs(o->patient_name, pb->patient_name) || differs(o->birth_date, pb->birth_date) ||
		    differs(o->sex, pb->sex)) {
			coerced = 1;
			DH_INFO("patient '%s' attributes differ from the index's; index kept", o->patient_id);
		}
	} else {
		const char *p[5] = { o->patient_id, o->issuer, o->patient_name, o->birth_date, o->sex };
		if (q1(t, "INSERT INTO patient (patient_id, issuer, patient_name, birth_date, sex) "
			  "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (patient_id, issuer) DO NOTHING RETURNING pk",
		       5, p, ppk, sizeof(ppk)) == 0 && !t->failed) {
			r = q(t, "SELECT pk, patient_name, birth_date, sex FROM patient "
				 "WHERE patient_id = $1 AND issuer = $2", 2, p);
			if (r && PQntuples(r) == 1) {
				snprintf(ppk, sizeof(ppk), "%s", PQgetvalue(r, 0, 0));
				if (differs(o->patient_name, PQgetvalue(r, 0, 1)) ||
				    differs(o->birth_date, PQgetvalue(r, 0, 2)) ||
				    differs(o->sex, PQgetvalue(r, 0, 3))) {
					coerced = 1;
					DH_INFO("patient '%s' attributes differ from the index's; index kept",
						o->patient_id);
				}
			}
			PQclear(r);
			r = NULL;
		}
	}
	/* study; its first object's spoke owns it */
	if (pb && pb->study_pk[0]) {
		snprintf(stpk, sizeof(stpk), "%s", pb->study_pk);
		if (strcmp(pb->study_patient, ppk) != 0) {
			coerced = 1;
			DH_INFO("study %s belongs to another patient in the index; index kept", study_uid);
		}
	} else {
		const char *p[10] = { ppk, study_uid, o->study_id, o->study_date, o->study_time, o->accession,
				      o->referring, o->study_desc, o->status_id, sp ? sp->id : "" };
		if (q1(t, "INSERT INTO study (patient_fk, study_uid, study_id, study_date, study_time, "
			  "accession, referring_physician, description, status_id, owner_spoke) "
			  "VALUES ($1::bigint, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
			  "ON CONFLICT (study_uid) DO NOTHING RETURNING pk", 10, p, stpk, sizeof(stpk)) == 0 &&
		    !t->failed) {
			const char *sp[1] = { study_uid };
			r = q(t, "SELECT pk, patient_fk FROM study WHERE study_uid = $1", 1, sp);
			if (r && PQntuples(r) == 1) {
				snprintf(stpk, sizeof(stpk), "%s", PQgetvalue(r, 0, 0));
				if (strcmp(PQgetvalue(r, 0, 1), ppk) != 0) {
					coerced = 1;
					DH_INFO("study %s belongs to another patient in the index; index kept",
						study_uid);
				}
			}
			PQclear(r);
			r = NULL;
		}
	}
	/* series; a series UID already used by another study is remapped into this one */
	int have_series = pb && pb->series_pk[0] && strcmp(pb->series_study, stpk) == 0;
	if (have_series)
		snprintf(sepk, sizeof(sepk), "%s", pb->series_pk);
	for (int attempt = 0; attempt < 2 && !t->failed && !have_series; attempt++) {
		const char *p[9] = { stpk, series_uid, o->modality, o->series_number, o->series_desc,
				     o->institution, o->department, o->pps_date, o->pps_time };
		if (q1(t, "INSERT INTO series (study_fk, series_uid, modality, series_number, description, "
			  "institution, department, pps_start_date, pps_start_time) "
			  "VALUES ($1::bigint, $2, $3, $4, $5, $6, $7, $8, $9) "
			  "ON CONFLICT (series_uid) DO NOTHING RETURNING pk", 9, p, sepk, sizeof(sepk)) > 0)
			break;
		char owner[32] = "";
		const char *sp[1] = { series_uid };
		r = q(t, "SELECT pk, study_fk FROM series WHERE series_uid = $1", 1, sp);
		if (r && PQntuples(r) == 1) {
			snprintf(sepk, sizeof(sepk), "%s", PQgetvalue(r, 0, 0));
			snprintf(owner, sizeof(owner), "%s", PQgetvalue(r, 0, 1));
		}
		PQclear(r);
		r = NULL;
		if (strcmp(owner, stpk) == 0)
			break;
		remap_uid(t, "series", o->series_uid, study_uid, o->accession, source_ae,
			  "Series Instance UID already used by another study", series_uid);
		coerced = 1;
	}
	if (t->failed)
		goto rollback;
	/* the object itself: into the cache, then into the index */
	if (dh_durable_rename_synced(tmp, abs) < 0) {
		t->failed = 1;
		snprintf(t->err.msg, sizeof(t->err.msg), "cannot move object into cache: %s", strerror(errno));
		goto rollback;
	}
	d->stored = 1;
	snprintf(size_s, sizeof(size_s), "%lld", size);
	{
		const char *p[17] = { sepk, sop_uid, o->sop_uid, o->study_uid, o->accession, o->sop_class,
				      o->instance_number, o->content_date, o->content_time, o->ts, rel,
				      size_s, md5, source_ae, o->series_uid, dsdig, fdig };
		char ipk[32] = "";
		r = q(t, "INSERT INTO instance (series_fk, sop_uid, received_sop_uid, received_study_uid, "
		      "received_accession, sop_class_uid, instance_number, content_date, content_time, "
		      "transfer_syntax, file_path, file_size, md5, source_ae, received_series_uid, dataset_digest, "
		      "file_digest) "
		      "VALUES ($1::bigint, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::bigint, $13, $14, $15, $16, $17) "
		      /* whether an IOCM rejection note names it, in the same round trip (most never are) */
		      "RETURNING pk, EXISTS (SELECT 1 FROM kos_reference r JOIN kos_document d ON d.pk = r.kos_fk "
		      "WHERE d.rejection AND r.sop_uid = $3 AND r.study_uid = $4)",
		      17, p);
		int rejected = r && PQntuples(r) == 1 && PQgetvalue(r, 0, 1)[0] == 't';
		if (r && PQntuples(r) == 1)
			snprintf(ipk, sizeof(ipk), "%s", PQgetvalue(r, 0, 0));
		PQclear(r);
		r = NULL;
		if (!t->failed && qr_index_instance(t->c, ds, ppk, stpk, sepk, ipk, &t->err) < 0)
			t->failed = 1;
		snprintf(reg_pk, sizeof(reg_pk), "%s", ipk);
		/* an IOCM rejection note that came first keeps this object hidden */
		int hidden = 0;
		if (!t->failed && rejected &&
		    kos_hide_if_rejected(h, t->c, o->sop_uid, o->study_uid, study_uid, series_uid, sop_uid, &hidden,
					 &t->err) < 0)
			t->failed = 1;
	}
	d->status = coerced ? ST_COERCED : ST_SUCCESS;
	if (coerced)
		snprintf(d->comment, sizeof(d->comment), "stored; identifying values kept consistent by the hub");

	snprintf(d->hub_sop_uid, sizeof(d->hub_sop_uid), "%s", sop_uid);
commit:
	/* a Key Object Selection document is registered with its own rows (hub/store/kos.c); new content
	 * of an instance (overwrite, reconcile) replaces its registration */
	if (!t->failed && kos && reg_pk[0]) {
		const char *kp[1] = { reg_pk };
		x(t, "DELETE FROM kos_document WHERE instance_pk = $1::bigint", 1, kp);
		int kr = t->failed ? -1
				   : kos_register(h, t->c, kos, reg_pk, d->hub_sop_uid, study_uid, series_uid, source_ae,
						  NULL, &t->err);
		if (kr < 0)
			t->failed = 1;
		if (kr > 0) {
			/* not this sender's to apply: nothing of it stays; the caller quarantines it */
			snprintf(d->quarantine_why, sizeof(d->quarantine_why), "%.280s", t->err.msg);
			t->err.msg[0] = '\0';
			PQclear(PQexec(t->c, "ROLLBACK"));
			if (d->stored && rename(abs, tmp) < 0) {
				DH_ERROR("cannot move %s back to %s: %s", abs, tmp, strerror(errno));
				t->failed = 1;
			}
			d->stored = 0;
			d->old_file[0] = '\0';
			return t->failed ? -1 : 0;
		}
	}
	if (!t->failed && t->pre_commit && t->pre_commit(t->c, t->pre_arg, &t->err) < 0)
		t->failed = 1;
	if (t->failed)
		goto rollback;
	x(t, "COMMIT", 0, NULL);
	if (!t->failed)
		return 0;
	if (d->stored) {
		/*
		 * The connection may have died after the server committed: the
		 * index may point at the file, so it stays where it is. At worst it
		 * is an unindexed file (wasted space), never an indexed object
		 * without its bytes.
		 */
		d->unknown = 1;
		return -1;
	}
rollback:
	PQclear(PQexec(t->c, "ROLLBACK"));
	if (d->stored) {
		/* the index did not take it: back to its temp name, so a retry can go on */
		if (rename(abs, tmp) < 0)
			DH_ERROR("cannot move %s back to %s: %s", abs, tmp, strerror(errno));
		d->stored = 0;
	}
	return -1;
}

/*
 * A Key Object Selection document that cannot be registered (why): kept
 * durably in the cache, recorded in quarantine, never in the index (no
 * C-FIND, C-MOVE or count sees it). Same advisory lock as index_object. A
 * resend of an open item (same SOP UID and MD5) stores nothing twice.
 */
static int quarantine_object(tx *t, const obj_attrs *o, const char *source_ae, const char *tmp, const char *rel,
			     const char *abs, long long size, const char *md5, const char *why, decision *d)
{
	char pk[32];
	int resend = 0;
	const kos_quarantine_item qi = { o->sop_uid, o->sop_class, o->study_uid, o->series_uid, o->patient_id,
					 source_ae, o->ts, rel, md5, why, size };
	x(t, "BEGIN", 0, NULL);
	{
		const char *p[1] = { o->sop_uid };
		x(t, "SELECT pg_advisory_xact_lock(7243002, hashtext($1)), set_config('enable_seqscan', 'off', true)",
		  1, p);
	}
	if (t->failed || kos_quarantine_add(t->c, &qi, &resend, pk, &t->err) < 0) {
		t->failed = 1;
		goto rollback;
	}
	d->status = ST_QUARANTINED;
	snprintf(d->comment, sizeof(d->comment), "stored in quarantine: KOS not registrable");
	if (resend) {
		DH_INFO("%s resent: already in quarantine (item %s)", o->sop_uid, pk);
		x(t, "ROLLBACK", 0, NULL);
		return t->failed ? -1 : 0;
	}
	if (dh_durable_rename_synced(tmp, abs) < 0) {
		t->failed = 1;
		snprintf(t->err.msg, sizeof(t->err.msg), "cannot move object into cache: %s", strerror(errno));
		goto rollback;
	}
	d->stored = 1;
	x(t, "COMMIT", 0, NULL);
	if (!t->failed) {
		DH_WARN("quarantined %s from %s (item %s): %s", o->sop_uid, source_ae, pk, why);
		return 0;
	}
	d->unknown = 1; /* as in index_object: the file stays, it may be recorded */
	return -1;
rollback:
	PQclear(PQexec(t->c, "ROLLBACK"));
	if (d->stored) {
		if (rename(abs, tmp) < 0)
			DH_ERROR("cannot move %s back to %s: %s", abs, tmp, strerror(errno));
		d->stored = 0;
	}
	return -1;
}

int ingest_store(hub *h, dh_dcm_assoc *a, const dh_dcm_cmd *cmd)
{
	const int timeout = (int)h->cfg.dimse_timeout;
	const char *cache = h->cfg.cache_dir;
	char uuid[37], tmp[1024], rel[128], abs[1200], err[512] = "", md5[DH_MD5_HEX_LEN + 1];
	char dsdig[DH_DSDIGEST_HEX_LEN + 1] = "", fdig[DH_DSDIGEST_HEX_LEN + 1] = "";
	decision d;
	obj_attrs *o = NULL;
	dh_dcm_ds *ds = NULL;
	dh_kos *kos = NULL;
	char kos_why[300] = "";
	long long size = 0;
	uint64_t free_bytes = 0;
	int rc = 0;

	memset(&d, 0, sizeof(d));
	d.status = ST_PROCESSING_FAILURE;
	tmp[0] = '\0';
	if (dh_uuid_generate(uuid) < 0 || !(o = calloc(1, sizeof(*o)))) {
		dh_dcm_receive_discard(a, timeout);
		snprintf(d.comment, sizeof(d.comment), "out of memory");
		goto respond;
	}
	const uint64_t reserve = (uint64_t)h->cfg.min_free_mb << 20;
	if (dh_durable_free_bytes(cache, &free_bytes) == 0 && free_bytes < reserve) {
		dh_dcm_receive_discard(a, timeout);
		d.status = ST_OUT_OF_RESOURCES;
		snprintf(d.comment, sizeof(d.comment), "storage full");
		DH_ERROR("refusing %s: %llu MiB free in %s, storage.min_free_mb is %ld", cmd->sop_instance,
			 (unsigned long long)(free_bytes >> 20), cache, h->cfg.min_free_mb);
		goto respond;
	}
	/* the temp file lives in its final directory: the rename stays in one
	 * directory, and ext4 does not pile every new inode into one group */
	snprintf(tmp, sizeof(tmp), "%s/%.2s/%s.part", cache, uuid, uuid);
	dh_dcm_received got;
	int r = dh_dcm_receive_store_hashed(a, cmd, tmp, timeout, &got, err, sizeof(err));
	if (r == DH_DCM_NOSPACE) {
		d.status = ST_OUT_OF_RESOURCES;
		snprintf(d.comment, sizeof(d.comment), "storage full");
		DH_ERROR("refusing %s: %s", cmd->sop_instance, err);
		goto respond;
	}
	if (r != DH_DCM_OK) {
		DH_WARN("receiving %s failed: %s", cmd->sop_instance, err);
		tmp[0] = '\0';
		rc = -1; /* the association's state is unknown: the caller aborts it */
		goto done;
	}
	start_writeback(tmp);
	if (dh_dcm_ds_load(tmp, &ds, err, sizeof(err)) != DH_DCM_OK) {
		d.status = ST_MISMATCH;
		snprintf(d.comment, sizeof(d.comment), "%.64s", err);
		DH_WARN("refusing %s: %s", cmd->sop_instance, err);
		goto respond;
	}
	read_attrs(ds, o);
	if (check_attrs(o, cmd, err, sizeof(err)) < 0) {
		d.status = ST_MISMATCH;
		snprintf(d.comment, sizeof(d.comment), "%.64s", err);
		DH_WARN("refusing %s: %s (data set: class %s, instance %s)", cmd->sop_instance, err,
			o->sop_class, o->sop_uid);
		goto respond;
	}
	/* a KOS is registered with the object, or quarantined when it cannot be (kos_why set) */
	if (dh_kos_is_kos(o->sop_class) && dh_kos_parse(ds, &kos, kos_why, sizeof(kos_why)) < 0) {
		snprintf(d.comment, sizeof(d.comment), "out of memory");
		goto respond;
	}
	/* digests from the receive: the file's MD5 and XXH3, the data set's (verify compares it with the spoke's) */
	snprintf(md5, sizeof(md5), "%s", got.md5);
	snprintf(dsdig, sizeof(dsdig), "%s", got.dataset_digest);
	snprintf(fdig, sizeof(fdig), "%s", got.file_digest);
	size = got.size;
	if (dh_durable_fsync_path(tmp) < 0) {
		int e = errno;
		d.status = (e == ENOSPC || e == EDQUOT) ? ST_OUT_OF_RESOURCES : ST_PROCESSING_FAILURE;
		snprintf(d.comment, sizeof(d.comment), "cannot write object: %s", strerror(e));
		DH_ERROR("storing %s: %s", cmd->sop_instance, d.comment);
		goto respond;
	}
	if (dh_durable_free_bytes(cache, &free_bytes) == 0 && free_bytes < reserve) {
		d.status = ST_OUT_OF_RESOURCES;
		snprintf(d.comment, sizeof(d.comment), "storage full");
		DH_ERROR("refusing %s: storage.min_free_mb reached in %s", cmd->sop_instance, cache);
		goto respond;
	}
	snprintf(rel, sizeof(rel), "%.2s/%s.dcm", uuid, uuid);
	snprintf(abs, sizeof(abs), "%s/%s", cache, rel);

	for (int attempt = 0; attempt < 3; attempt++) {
		tx t;
		memset(&t, 0, sizeof(t));
		t.c = dh_db_get(h->db, &t.err);
		if (!t.c) {
			snprintf(d.comment, sizeof(d.comment), "index database unavailable");
			DH_ERROR("storing %s: %s", cmd->sop_instance, t.err.msg);
			break;
		}
		memset(&d, 0, sizeof(d));
		int ir = kos_why[0] ? quarantine_object(&t, o, dh_dcm_assoc_calling_ae(a), tmp, rel, abs, size, md5,
							kos_why, &d)
				    : index_object(h, &t, o, ds, kos, dh_dcm_assoc_calling_ae(a), tmp, rel, abs, size,
						   md5, dsdig, fdig, &d);
		if (ir == 0 && d.quarantine_why[0] && !kos_why[0]) {
			snprintf(kos_why, sizeof(kos_why), "%s", d.quarantine_why);
			memset(&d, 0, sizeof(d));
			ir = quarantine_object(&t, o, dh_dcm_assoc_calling_ae(a), tmp, rel, abs, size, md5, kos_why, &d);
		}
		int lost = ir < 0 && dh_db_conn_lost(t.c, &t.err);
		dh_db_put(h->db, t.c, lost);
		if (ir == 0) {
			if (d.stored)
				cc_apply_wake(h); /* a parked cc may wait for this object */
			break;
		}
		d.status = ST_PROCESSING_FAILURE;
		snprintf(d.comment, sizeof(d.comment), "%s", lost ? "index database unavailable"
								   : "index update failed");
		DH_ERROR("indexing %s failed: [%s] %s", cmd->sop_instance, t.err.sqlstate, t.err.msg);
		if (d.unknown) {
			/* the file stays in the cache (it may be indexed); the sender retries */
			DH_ERROR("the outcome of storing %s is unknown (lost at COMMIT): %s kept", cmd->sop_instance,
				 abs);
			tmp[0] = '\0';
			break;
		}
		if (!dh_db_retryable(&t.err) && !lost)
			break;
	}
	if (d.stored) {
		tmp[0] = '\0'; /* it is the cache's now */
		if (d.old_file[0]) { /* empty when the old copy had been evicted to a TAR */
			char old[1200];
			snprintf(old, sizeof(old), "%s/%s", cache, d.old_file);
			unlink(old);
		}
		DH_DEBUG("stored %s as %s (%lld bytes, md5 %s, status %04x)", o->sop_uid, d.hub_sop_uid, size,
			 md5, d.status);
	}
respond:
	if (dh_dcm_send_response(a, cmd, d.status, NULL, d.comment[0] ? d.comment : NULL, NULL) !=
	    DH_DCM_OK)
		rc = -1;
done:
	if (tmp[0])
		unlink(tmp);
	dh_dcm_ds_free(ds);
	dh_kos_free(kos);
	free(o);
	return rc;
}

int ingest_register_file(hub *h, PGconn *c, const char *rel, const char *source_ae, ingest_pre_commit fn,
			 void *arg, unsigned int *status, char *comment, size_t clen, dh_db_err *err)
{
	char abs[1200], md5[DH_MD5_HEX_LEN + 1], dsdig[DH_DSDIGEST_HEX_LEN + 1] = "", why[512];
	char fdig[DH_DSDIGEST_HEX_LEN + 1] = "";
	obj_attrs *o = NULL;
	dh_dcm_ds *ds = NULL;
	long long size = 0;
	decision d;
	tx t;
	int rc = -1;

	memset(&d, 0, sizeof(d));
	memset(&t, 0, sizeof(t));
	*status = ST_PROCESSING_FAILURE;
	comment[0] = '\0';
	snprintf(abs, sizeof(abs), "%s/%s", h->cfg.cache_dir, rel);
	if (!(o = calloc(1, sizeof(*o)))) {
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		goto done;
	}
	if (dh_dcm_ds_load(abs, &ds, why, sizeof(why)) != DH_DCM_OK) {
		snprintf(err->msg, sizeof(err->msg), "%.200s: %.250s", rel, why);
		goto done;
	}
	read_attrs(ds, o);
	if (dh_durable_md5_sync(abs, md5, &size, dh_dsdigest_offset(abs), dsdig, fdig) < 0) {
		snprintf(err->msg, sizeof(err->msg), "%.200s: %s", rel, strerror(errno));
		goto done;
	}
	t.c = c;
	t.pre_commit = fn;
	t.pre_arg = arg;
	/* the file is already at its place in the cache: "moving" it there is a no-op */
	if (index_object(h, &t, o, ds, NULL, source_ae, abs, rel, abs, size, md5, dsdig, fdig, &d) < 0) {
		*err = t.err;
		goto done;
	}
	*status = d.status;
	snprintf(comment, clen, "%s", d.comment);
	if (d.stored && d.old_file[0]) {
		char old[1200];
		snprintf(old, sizeof(old), "%s/%s", h->cfg.cache_dir, d.old_file);
		unlink(old);
	}
	rc = d.stored ? 0 : 1;
done:
	dh_dcm_ds_free(ds);
	free(o);
	return rc;
}

int ingest_prepare_cache(const hub *h)
{
	int n = 0;
	if (dh_durable_fanout_prepare(h->cfg.cache_dir, &n) < 0) {
		DH_ERROR("cannot create the cache directories under %s: %s", h->cfg.cache_dir, strerror(errno));
		return -1;
	}
	if (n)
		DH_INFO("removed %d unfinished object(s) left in %s by an earlier run", n, h->cfg.cache_dir);
	return 0;
}
