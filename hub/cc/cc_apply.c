/*
 * cc_apply.c - records and applies change contexts (cc) from spokes to the
 * hub's index, exactly once and in per-spoke order (see ccsync.h).
 *
 * NOTES
 * One transaction per batch, under the spoke's advisory lock (7243004), with
 * a SAVEPOINT per cc: a cc that turns out to contradict the index (a rule
 * says no, or SQL refuses it) is rolled back alone and recorded as conflict
 * (a rule) or failed (SQL),
 * and the others of the batch stand. For each cc, in order:
 *   - sequence <= received_through: a resend, already recorded: skipped;
 *   - sequence > received_through + 1: a gap: the batch stops there;
 *   - a parked cc of the spoke names one of its studies: parked behind it;
 *   - ownership enforced and a named study belongs to another spoke: conflict;
 *   - an object it names is not in the index yet: parked;
 *   - else applied.
 * Every change to the membership of a series happens under the archiver's
 * series lock (7243003) of every series UID touched, old and new, taken in
 * one sorted pass, so the archiver never packs half a change.
 *
 * Stored files are never rewritten: attribute changes become attr_override
 * rows (applied by hub/qr/render.c when objects leave the hub) plus the
 * indexed columns; moves change rows and set instance.moved; deletions
 * move rows to deleted_instance. Copies made by SEGMENT are new instance
 * rows pointing at the same stored bytes.
 *
 * INTERFACE ROUTINES
 *   cc_apply_batch, cc_apply_received_through (cc_recv.c)
 *   cc_apply_retry_parked (the worker; tests)
 *   cc_apply_operator (hubctl queue retry|resolve|discard)
 *   cc_apply_start, cc_apply_stop, cc_apply_wake (hubd.c, ingest.c)
 */
#include "ccsync.h"
#include "hub.h"

#include "log.h"
#include "uid.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SPOKE_LOCK 7243004
#define SERIES_LOCK 7243003

/*
 * Outcomes, and the cc_log.state each is recorded as (sql/hub/006_ops.sql):
 * conflict when a rule says no, failed when the database refuses the
 * change or the stored cc does not decode (and, by the worker, when a cc
 * stays parked longer than cc.park_timeout).
 */
enum { OUT_APPLIED = 0, OUT_PARKED = 1, OUT_CONFLICT = 2, OUT_FAILED = 3 };

/* ---- growable strings and array literals -------------------------------- */

typedef struct {
	char *s;
	size_t len, cap;
	int oom;
	int items; /* array literal: entries so far */
} sbuf;

static void sb_addn(sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->s, cap);
		if (!p) {
			b->oom = 1;
			return;
		}
		b->s = p;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void sb_add(sbuf *b, const char *s)
{
	sb_addn(b, s, strlen(s));
}

static void sb_free(sbuf *b)
{
	free(b->s);
	memset(b, 0, sizeof(*b));
}

/* Appends one element to a PostgreSQL array literal being built ("{...}"). */
static void arr_add(sbuf *b, const char *v)
{
	sb_add(b, b->items++ ? ",\"" : "{\"");
	for (const char *p = v ? v : ""; *p; p++) {
		if (*p == '"' || *p == '\\')
			sb_addn(b, "\\", 1);
		sb_addn(b, p, 1);
	}
	sb_addn(b, "\"", 1);
}

/* The finished literal ("{}" when empty); NULL when memory ran out. Idempotent. */
static const char *arr_end(sbuf *b)
{
	if (b->items == 0) {
		sb_add(b, "{}");
		b->items = -1;
	} else if (b->items > 0) {
		sb_add(b, "}");
		b->items = -b->items;
	}
	return b->oom ? NULL : b->s;
}

/* ---- the transaction context --------------------------------------------- */

typedef struct {
	hub *h;
	PGconn *c;
	dh_db_err err;
	int failed;       /* SQL failed: err */
	int refused;      /* the cc contradicts the index: why */
	char why[256];
	const char *spoke;
	char cc_pk[32];
	char reason[160]; /* uid_mapping.reason: "cc KIND spoke:seq" */
	char target_pk[32];  /* ATTRIBUTE_CHANGE below patient level: resolved by check_cc */
	char target_ppk[32]; /* and its study's patient */
} ctx;

static void refuse(ctx *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void refuse(ctx *t, const char *fmt, ...)
{
	va_list ap;
	if (t->refused || t->failed)
		return;
	t->refused = 1;
	va_start(ap, fmt);
	vsnprintf(t->why, sizeof(t->why), fmt, ap);
	va_end(ap);
}

static int bad(const ctx *t)
{
	return t->failed || t->refused;
}

static PGresult *q(ctx *t, const char *sql, int n, const char *const *p)
{
	if (bad(t))
		return NULL;
	PGresult *r = dh_db_query(t->c, sql, n, p, &t->err);
	if (!r) {
		t->failed = 1;
		DH_DEBUG("cc apply: [%s] %s in: %.300s", t->err.sqlstate, t->err.msg, sql);
	}
	return r;
}

static void x(ctx *t, const char *sql, int n, const char *const *p)
{
	PQclear(q(t, sql, n, p));
}

/* First column of the first row into out ("" when none). Returns the rows. */
static int q1(ctx *t, const char *sql, int n, const char *const *p, char *out, size_t len)
{
	PGresult *r = q(t, sql, n, p);
	int rows = r ? PQntuples(r) : 0;
	if (out)
		snprintf(out, len, "%s", rows ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
	return rows;
}

/* First column of the first row, malloc'd (NULL when none or failed). */
static char *q1dup(ctx *t, const char *sql, int n, const char *const *p)
{
	PGresult *r = q(t, sql, n, p);
	char *v = r && PQntuples(r) ? strdup(PQgetvalue(r, 0, 0)) : NULL;
	if (r && PQntuples(r) && !v) {
		t->failed = 1;
		snprintf(t->err.msg, sizeof(t->err.msg), "out of memory");
	}
	PQclear(r);
	return v;
}

/* An array literal argument that ran out of memory fails the transaction. */
static const char *lit(ctx *t, sbuf *b)
{
	const char *s = arr_end(b);
	if (!s && !bad(t)) {
		t->failed = 1;
		snprintf(t->err.msg, sizeof(t->err.msg), "out of memory");
	}
	return s;
}

/* ---- indexed attributes ------------------------------------------------- */

typedef struct {
	uint32_t tag;
	int level; /* 1 patient .. 4 instance */
	const char *col;
} idx_col;

static const idx_col idx_cols[] = {
	{ 0x00100010, 1, "patient_name" },	  { 0x00100020, 1, "patient_id" },
	{ 0x00100021, 1, "issuer" },		  { 0x00100030, 1, "birth_date" },
	{ 0x00100040, 1, "sex" },		  { 0x00200010, 2, "study_id" },
	{ 0x00080020, 2, "study_date" },	  { 0x00080030, 2, "study_time" },
	{ 0x00080050, 2, "accession" },		  { 0x00080090, 2, "referring_physician" },
	{ 0x00081030, 2, "description" },	  { 0x0032000A, 2, "status_id" },
	{ 0x00080060, 3, "modality" },		  { 0x00200011, 3, "series_number" },
	{ 0x0008103E, 3, "description" },	  { 0x00080080, 3, "institution" },
	{ 0x00081040, 3, "department" },	  { 0x00400244, 3, "pps_start_date" },
	{ 0x00400245, 3, "pps_start_time" },	  { 0x00200013, 4, "instance_number" },
	{ 0x00080023, 4, "content_date" },	  { 0x00080033, 4, "content_time" },
	{ 0x0040A491, 4, "completion_flag" },	  { 0x0040A493, 4, "verification_flag" },
};

static const char *const level_table[] = { NULL, "patient", "study", "series", "instance" };

static const idx_col *col_of(uint32_t tag)
{
	for (size_t i = 0; i < sizeof(idx_cols) / sizeof(idx_cols[0]); i++)
		if (idx_cols[i].tag == tag)
			return &idx_cols[i];
	return NULL;
}

static const char *attr_value(Dhcc__Attribute **a, size_t n, uint32_t tag)
{
	for (size_t i = 0; i < n; i++)
		if (a[i]->tag == tag)
			return a[i]->new_value ? a[i]->new_value : "";
	return NULL;
}

/* Updates the indexed columns of one row of level from the attributes of that level. */
static void update_columns(ctx *t, int level, const char *pk, Dhcc__Attribute **a, size_t n)
{
	sbuf sql = { 0 };
	const char *p[32];
	int np = 1;
	char num[16];

	p[0] = pk;
	sb_add(&sql, "UPDATE ");
	sb_add(&sql, level_table[level]);
	sb_add(&sql, " SET ");
	for (size_t i = 0; i < n && np < 30; i++) {
		const idx_col *c = col_of(a[i]->tag);
		if (!c || c->level != level)
			continue;
		if (np > 1)
			sb_add(&sql, ", ");
		sb_add(&sql, c->col);
		snprintf(num, sizeof(num), " = $%d", np + 1);
		sb_add(&sql, num);
		p[np++] = a[i]->new_value ? a[i]->new_value : "";
	}
	if (np > 1) {
		if (level == 2)
			sb_add(&sql, ", updated_at = now()");
		sb_add(&sql, " WHERE pk = $1::bigint");
		if (sql.oom) {
			t->failed = 1;
			snprintf(t->err.msg, sizeof(t->err.msg), "out of memory");
		} else {
			x(t, sql.s, np, p);
		}
	}
	sb_free(&sql);
}

/* Upserts attr_override rows of one target; every write takes a new seq. */
static void write_overrides(ctx *t, int level, const char *pk, Dhcc__Attribute **a, size_t n)
{
	sbuf tags = { 0 }, vrs = { 0 }, vals = { 0 };
	char lv[4], tag[16];
	if (n == 0)
		return;
	snprintf(lv, sizeof(lv), "%d", level);
	for (size_t i = 0; i < n; i++) {
		snprintf(tag, sizeof(tag), "%" PRIu32, a[i]->tag);
		arr_add(&tags, tag);
		arr_add(&vrs, a[i]->vr);
		arr_add(&vals, a[i]->new_value);
	}
	const char *p[6] = { lv, pk, t->cc_pk, lit(t, &tags), lit(t, &vrs), lit(t, &vals) };
	if (!bad(t))
		x(t, "INSERT INTO attr_override (level, target_fk, tag, vr, value, cc_fk) "
		     "SELECT $1::smallint, $2::bigint, u.tag, u.vr, u.val, $3::bigint "
		     "FROM unnest($4::bigint[], $5::text[], $6::text[]) WITH ORDINALITY AS u(tag, vr, val, o) "
		     "ORDER BY u.o "
		     "ON CONFLICT (level, target_fk, tag) DO UPDATE SET vr = EXCLUDED.vr, value = EXCLUDED.value, "
		     "seq = nextval('attr_override_seq'), cc_fk = EXCLUDED.cc_fk",
		  6, p);
	sb_free(&tags);
	sb_free(&vrs);
	sb_free(&vals);
}

/* Removes patients left without a study, with their overrides. pks: array literal. */
static void drop_empty_patients(ctx *t, const char *pks)
{
	const char *p[1] = { pks };
	x(t, "WITH d AS (DELETE FROM patient p WHERE p.pk = ANY($1::bigint[]) "
	     "AND NOT EXISTS (SELECT 1 FROM study s WHERE s.patient_fk = p.pk) RETURNING pk) "
	     "DELETE FROM attr_override WHERE level = 1 AND target_fk IN (SELECT pk FROM d)",
	  1, p);
}

/*
 * Removes the empty series of the given studies, then the studies left
 * without series, then patients left without studies, and the overrides of
 * every removed row. studies: array literal of study pks.
 */
static void drop_empty(ctx *t, const char *studies)
{
	const char *p[1] = { studies };
	char *patients;
	x(t, "WITH d AS (DELETE FROM series se WHERE se.study_fk = ANY($1::bigint[]) "
	     "AND NOT EXISTS (SELECT 1 FROM instance i WHERE i.series_fk = se.pk) RETURNING pk) "
	     "DELETE FROM attr_override WHERE level = 3 AND target_fk IN (SELECT pk FROM d)",
	  1, p);
	patients = q1dup(t, "WITH d AS (DELETE FROM study st WHERE st.pk = ANY($1::bigint[]) "
	      "AND NOT EXISTS (SELECT 1 FROM series se WHERE se.study_fk = st.pk) RETURNING pk, patient_fk), "
	      "o AS (DELETE FROM attr_override WHERE level = 2 AND target_fk IN (SELECT pk FROM d)) "
	      "SELECT COALESCE(array_agg(DISTINCT patient_fk), '{}')::text FROM d",
	   1, p);
	if (!bad(t) && patients && strcmp(patients, "{}") != 0)
		drop_empty_patients(t, patients);
	free(patients);
}

/*
 * Moves instances (pks: array literal) to deleted_instance with the reason
 * and removes them and their instance-level overrides from the index.
 */
static void tombstone(ctx *t, const char *pks, const char *reason)
{
	/* no cc behind a deletion made outside a cc (cc_apply_delete): cc_fk NULL */
	const char *p[3] = { pks, t->cc_pk[0] ? t->cc_pk : NULL, reason };
	x(t, "WITH ins AS (INSERT INTO deleted_instance (pk, sop_uid, series_uid, study_uid, patient_id, "
	     "sop_class_uid, md5, file_path, tar_fk, tar_offset, tar_size, source_ae, received_at, cc_fk, reason) "
	     "SELECT i.pk, i.sop_uid, se.series_uid, st.study_uid, p.patient_id, i.sop_class_uid, i.md5, "
	     "i.file_path, i.tar_fk, i.tar_offset, i.tar_size, i.source_ae, i.received_at, $2::bigint, $3 "
	     "FROM instance i JOIN series se ON se.pk = i.series_fk JOIN study st ON st.pk = se.study_fk "
	     "JOIN patient p ON p.pk = st.patient_fk WHERE i.pk = ANY($1::bigint[]) RETURNING pk), "
	     "ov AS (DELETE FROM attr_override WHERE level = 4 AND target_fk IN (SELECT pk FROM ins)) "
	     "DELETE FROM instance WHERE pk IN (SELECT pk FROM ins)",
	  3, p);
}

/*
 * Takes the archiver's series lock of every series of the given studies
 * and of every listed series UID, in one sorted pass (so two appliers never
 * wait for each other in opposite orders).
 */
static void lock_series(ctx *t, sbuf *series_uids, sbuf *study_uids)
{
	const char *p[3] = { lit(t, series_uids), lit(t, study_uids), NULL };
	char lk[16];
	snprintf(lk, sizeof(lk), "%d", SERIES_LOCK);
	p[2] = lk;
	x(t, "SELECT count(pg_advisory_xact_lock($3::int, hashtext(u))) FROM ("
	     "SELECT u FROM (SELECT unnest($1::text[]) AS u UNION "
	     "SELECT se.series_uid FROM series se JOIN study st ON st.pk = se.study_fk "
	     "WHERE st.study_uid = ANY($2::text[])) a WHERE u <> '' ORDER BY u) s",
	  3, p);
}

/* Records this cc's UID mappings (uid_mapping, kb-8993), study_uid being where they now live. */
static void record_map(ctx *t, Dhcc__UidMapping **m, size_t n, const char *study_uid, const char *accession)
{
	sbuf kinds = { 0 }, olds = { 0 }, news = { 0 };
	if (n == 0)
		return;
	for (size_t i = 0; i < n; i++) {
		arr_add(&kinds, m[i]->level == DHCC__LEVEL__LEVEL_STUDY	   ? "study"
				: m[i]->level == DHCC__LEVEL__LEVEL_SERIES ? "series"
									   : "sop");
		arr_add(&olds, m[i]->old_uid);
		arr_add(&news, m[i]->new_uid);
	}
	const char *p[8] = { lit(t, &kinds), lit(t, &olds),    lit(t, &news), study_uid,
			     accession,	     t->reason, t->cc_pk, t->spoke };
	if (!bad(t))
		x(t, "INSERT INTO uid_mapping (kind, study_uid, accession, old_uid, new_uid, source_ae, reason, cc_fk) "
		     "SELECT u.k, $4::text, $5::text, u.o, u.n, $8::text, $6::text, $7::bigint "
		     "FROM unnest($1::text[], $2::text[], $3::text[]) AS u(k, o, n)",
		  8, p);
	sb_free(&kinds);
	sb_free(&olds);
	sb_free(&news);
}

static const char *map_find(Dhcc__UidMapping **m, size_t n, int level, const char *old_uid)
{
	for (size_t i = 0; i < n; i++)
		if ((int)m[i]->level == level && strcmp(m[i]->old_uid, old_uid) == 0)
			return m[i]->new_uid;
	return NULL;
}

/* ---- patients and studies ------------------------------------------------ */

/*
 * The pk of the patient (id, issuer), created when missing with the
 * demographics of patient from_pk (may be NULL: empty ones).
 */
static void patient_get_or_create(ctx *t, const char *id, const char *issuer, const char *from_pk, char out[32])
{
	const char *p[3] = { id, issuer, from_pk };
	out[0] = '\0';
	if (from_pk)
		q1(t, "INSERT INTO patient (patient_id, issuer, patient_name, birth_date, sex) "
		      "SELECT $1::text, $2::text, patient_name, birth_date, sex FROM patient WHERE pk = $3::bigint "
		      "ON CONFLICT (patient_id, issuer) DO NOTHING RETURNING pk",
		   3, p, out, 32);
	else
		q1(t, "INSERT INTO patient (patient_id, issuer) VALUES ($1, $2) "
		      "ON CONFLICT (patient_id, issuer) DO NOTHING RETURNING pk",
		   2, p, out, 32);
	if (!out[0] && !bad(t))
		q1(t, "SELECT pk FROM patient WHERE patient_id = $1 AND issuer = $2", 2, p, out, 32);
}

/*
 * Applies patient-level attributes (a[0..n), other levels ignored).
 * study_pk given: they concern that study's patient only, so a new Patient
 * ID/issuer re-parents the study to the patient of that ID. study_pk NULL:
 * they concern patient ppk itself, and a new ID that another patient row
 * already has merges ppk into it (its patient-level overrides become
 * study-level ones of its studies, which keep them in seq order).
 */
static void patient_change(ctx *t, const char *ppk, const char *study_pk, Dhcc__Attribute **a, size_t n)
{
	const char *nid = attr_value(a, n, 0x00100020), *niss = attr_value(a, n, 0x00100021);
	char cur_id[1100] = "", cur_iss[1100] = "", target[32];
	snprintf(target, sizeof(target), "%s", ppk);
	if (nid || niss) {
		const char *p[1] = { ppk };
		PGresult *r = q(t, "SELECT patient_id, issuer FROM patient WHERE pk = $1::bigint", 1, p);
		if (r && PQntuples(r) == 1) {
			snprintf(cur_id, sizeof(cur_id), "%s", PQgetvalue(r, 0, 0));
			snprintf(cur_iss, sizeof(cur_iss), "%s", PQgetvalue(r, 0, 1));
		}
		PQclear(r);
		if (!nid)
			nid = cur_id;
		if (!niss)
			niss = cur_iss;
	}
	if ((nid || niss) && !bad(t) && (strcmp(nid, cur_id) != 0 || strcmp(niss, cur_iss) != 0)) {
		if (study_pk) {
			patient_get_or_create(t, nid, niss, ppk, target);
			const char *p[2] = { study_pk, target };
			x(t, "UPDATE study SET patient_fk = $2::bigint, updated_at = now() WHERE pk = $1::bigint", 2, p);
			char one[48];
			snprintf(one, sizeof(one), "{%s}", ppk);
			drop_empty_patients(t, one);
		} else {
			const char *p[3] = { nid, niss, ppk };
			q1(t, "SELECT pk FROM patient WHERE patient_id = $1 AND issuer = $2 AND pk <> $3::bigint", 3, p,
			   target, sizeof(target));
			if (target[0]) {
				const char *mp[2] = { ppk, target };
				x(t, "INSERT INTO attr_override (level, target_fk, tag, vr, value, cc_fk) "
				     "SELECT 2, st.pk, o.tag, o.vr, o.value, o.cc_fk FROM attr_override o "
				     "JOIN study st ON st.patient_fk = $1::bigint WHERE o.level = 1 AND o.target_fk = $1::bigint "
				     "ORDER BY o.seq ON CONFLICT (level, target_fk, tag) DO UPDATE SET vr = EXCLUDED.vr, "
				     "value = EXCLUDED.value, seq = nextval('attr_override_seq'), cc_fk = EXCLUDED.cc_fk",
				  1, mp);
				x(t, "UPDATE study SET patient_fk = $2::bigint, updated_at = now() WHERE patient_fk = $1::bigint",
				  2, mp);
				x(t, "UPDATE patient_other_id o SET patient_fk = $2::bigint WHERE patient_fk = $1::bigint "
				     "AND NOT EXISTS (SELECT 1 FROM patient_other_id x WHERE x.patient_fk = $2::bigint "
				     "AND x.patient_id = o.patient_id AND x.issuer = o.issuer)",
				  2, mp);
				char one[48];
				snprintf(one, sizeof(one), "{%s}", ppk);
				drop_empty_patients(t, one);
			} else {
				snprintf(target, sizeof(target), "%s", ppk);
			}
		}
	}
	update_columns(t, 1, target, a, n);
}

/*
 * The pk of study uid, created when missing as a copy of study src_pk's
 * columns under patient ppk, owned by this spoke. accession NULL: copied.
 */
static void study_get_or_create(ctx *t, const char *uid, const char *src_pk, const char *ppk, const char *accession,
				char out[32], int *created)
{
	const char *p[5] = { ppk, uid, src_pk, accession, t->spoke };
	out[0] = '\0';
	*created = q1(t, "INSERT INTO study (patient_fk, study_uid, study_id, study_date, study_time, accession, "
			 "referring_physician, description, status_id, owner_spoke) "
			 "SELECT $1::bigint, $2::text, study_id, study_date, study_time, COALESCE($4::text, accession), "
			 "referring_physician, description, status_id, $5::text FROM study WHERE pk = $3::bigint "
			 "ON CONFLICT (study_uid) DO NOTHING RETURNING pk",
		      5, p, out, 32) > 0;
	if (!out[0] && !bad(t)) {
		const char *sp[1] = { uid };
		q1(t, "SELECT pk FROM study WHERE study_uid = $1", 1, sp, out, 32);
	}
	if (!out[0])
		refuse(t, "cannot create study %s", uid);
}

/* Sets the study's indexed columns and overrides from attributes (a study's order / target). */
static void study_attrs(ctx *t, const char *stpk, const char *ppk, Dhcc__Attribute **a, size_t n)
{
	if (n == 0)
		return;
	update_columns(t, 2, stpk, a, n);
	patient_change(t, ppk, stpk, a, n);
	write_overrides(t, 2, stpk, a, n);
}

/* The pk and patient pk of a study, or refuses. */
static void study_row(ctx *t, const char *uid, char pk[32], char ppk[32])
{
	const char *p[1] = { uid };
	PGresult *r = q(t, "SELECT pk, patient_fk FROM study WHERE study_uid = $1", 1, p);
	pk[0] = ppk[0] = '\0';
	if (r && PQntuples(r) == 1) {
		snprintf(pk, 32, "%s", PQgetvalue(r, 0, 0));
		snprintf(ppk, 32, "%s", PQgetvalue(r, 0, 1));
	}
	PQclear(r);
	if (!pk[0])
		refuse(t, "study %s is not in the index", uid);
}

/* ---- moving instances ----------------------------------------------------- */

/*
 * Moves the instances refs[0..n) (old UIDs) into study tpk: per old series,
 * into the new series its SERIES mapping names (created as a copy), or the
 * whole series row re-parented; a partial series without a new UID is
 * refused. INSTANCE mappings rename; an object the spoke already sent under
 * its new SOP UID supersedes the old row. Every moved row gets moved = true.
 */
static void move_refs(ctx *t, Dhcc__InstanceRef **refs, size_t n, const char *tpk, Dhcc__UidMapping **m, size_t nm)
{
	sbuf sops = { 0 }, olds = { 0 }, news = { 0 };
	PGresult *r = NULL;
	for (size_t i = 0; i < n; i++)
		arr_add(&sops, refs[i]->sop_uid);
	for (size_t i = 0; i < nm; i++)
		if (m[i]->level == DHCC__LEVEL__LEVEL_INSTANCE) {
			arr_add(&olds, m[i]->old_uid);
			arr_add(&news, m[i]->new_uid);
		}
	const char *sl = lit(t, &sops), *ol = lit(t, &olds), *nl = lit(t, &news);
	if (bad(t))
		goto done;
	/* the spoke sent the new object before this cc: it replaces the old row */
	{
		const char *p[2] = { ol, nl };
		char *pks = q1dup(t, "SELECT COALESCE(array_agg(i.pk), '{}')::text FROM unnest($1::text[], $2::text[]) AS m(o, n) "
		      "JOIN instance i ON i.sop_uid = m.o WHERE EXISTS (SELECT 1 FROM instance y WHERE y.sop_uid = m.n)",
		   2, p);
		if (!bad(t) && pks && strcmp(pks, "{}") != 0)
			tombstone(t, pks, "superseded by the object the spoke sent");
		free(pks);
	}
	{
		const char *p[1] = { sl };
		x(t, "UPDATE instance i SET received_series_uid = se.series_uid FROM series se "
		     "WHERE se.pk = i.series_fk AND i.sop_uid = ANY($1::text[]) AND i.received_series_uid = ''",
		  1, p);
		r = q(t, "SELECT se.pk, se.series_uid, count(*), "
			 "(SELECT count(*) FROM instance a WHERE a.series_fk = se.pk), se.study_fk "
			 "FROM instance i JOIN series se ON se.pk = i.series_fk WHERE i.sop_uid = ANY($1::text[]) "
			 "GROUP BY se.pk, se.series_uid ORDER BY se.pk",
		      1, p);
	}
	for (int i = 0; r && i < PQntuples(r) && !bad(t); i++) {
		const char *spk = PQgetvalue(r, i, 0), *suid = PQgetvalue(r, i, 1);
		const char *nuid = map_find(m, nm, DHCC__LEVEL__LEVEL_SERIES, suid);
		int whole = strcmp(PQgetvalue(r, i, 2), PQgetvalue(r, i, 3)) == 0;
		if (nuid) {
			char npk[32] = "", nst[32] = "";
			const char *p[3] = { tpk, nuid, spk };
			q1(t, "INSERT INTO series (study_fk, series_uid, modality, series_number, description, institution, "
			      "department, pps_start_date, pps_start_time) SELECT $1::bigint, $2::text, modality, series_number, "
			      "description, institution, department, pps_start_date, pps_start_time FROM series "
			      "WHERE pk = $3::bigint ON CONFLICT (series_uid) DO NOTHING RETURNING pk",
			   3, p, npk, sizeof(npk));
			if (!npk[0] && !bad(t)) {
				PGresult *s = q(t, "SELECT pk, study_fk FROM series WHERE series_uid = $1", 1, p + 1);
				if (s && PQntuples(s) == 1) {
					snprintf(npk, sizeof(npk), "%s", PQgetvalue(s, 0, 0));
					snprintf(nst, sizeof(nst), "%s", PQgetvalue(s, 0, 1));
				}
				PQclear(s);
				if (strcmp(nst, tpk) != 0)
					refuse(t, "series %s already belongs to another study", nuid);
			}
			const char *up[3] = { npk, spk, sl };
			x(t, "UPDATE instance SET series_fk = $1::bigint, moved = true "
			     "WHERE series_fk = $2::bigint AND sop_uid = ANY($3::text[])",
			  3, up);
		} else if (whole) {
			const char *up[2] = { tpk, spk };
			if (strcmp(PQgetvalue(r, i, 4), tpk) != 0) {
				x(t, "UPDATE series SET study_fk = $1::bigint WHERE pk = $2::bigint", 2, up);
				x(t, "UPDATE instance SET moved = true WHERE series_fk = $1::bigint", 1, up + 1);
			}
		} else {
			refuse(t, "part of series %s moves without a new Series Instance UID", suid);
		}
	}
	{
		const char *p[2] = { ol, nl };
		x(t, "UPDATE instance i SET sop_uid = m.n, moved = true FROM unnest($1::text[], $2::text[]) AS m(o, n) "
		     "WHERE i.sop_uid = m.o",
		  2, p);
	}
done:
	PQclear(r);
	sb_free(&sops);
	sb_free(&olds);
	sb_free(&news);
}

/* ---- the six kinds -------------------------------------------------------- */

static void add_series_uids(sbuf *b, Dhcc__InstanceRef **refs, size_t n, Dhcc__UidMapping **m, size_t nm)
{
	for (size_t i = 0; i < n; i++)
		if (refs[i]->series_uid && refs[i]->series_uid[0])
			arr_add(b, refs[i]->series_uid);
	for (size_t i = 0; i < nm; i++)
		if (m[i]->level == DHCC__LEVEL__LEVEL_SERIES) {
			arr_add(b, m[i]->old_uid);
			arr_add(b, m[i]->new_uid);
		}
}

static void apply_attribute_change(ctx *t, const Dhcc__AttributeChange *a)
{
	char pk[32] = "", ppk[32] = "";
	const Dhcc__InstanceRef *tg = a->target;
	int level = (int)a->level;
	if (level == DHCC__LEVEL__LEVEL_PATIENT) {
		const char *iss = a->issuer_of_patient_id ? a->issuer_of_patient_id : "";
		const char *p[2] = { a->patient_id, iss };
		q1(t, "SELECT pk FROM patient WHERE patient_id = $1 AND ($2 = '' OR issuer = $2) "
		      "ORDER BY (issuer = $2) DESC, pk LIMIT 1",
		   2, p, pk, sizeof(pk));
		if (!pk[0])
			refuse(t, "patient %s is not in the index", a->patient_id);
		write_overrides(t, 1, pk, a->attributes, a->n_attributes);
		patient_change(t, pk, NULL, a->attributes, a->n_attributes);
		return;
	}
	if (!tg) {
		refuse(t, "attribute change without a target");
		return;
	}
	if (t->target_pk[0]) {
		snprintf(pk, sizeof(pk), "%s", t->target_pk);
		snprintf(ppk, sizeof(ppk), "%s", t->target_ppk);
	}
	if (level == DHCC__LEVEL__LEVEL_STUDY) {
		if (!pk[0])
			study_row(t, tg->study_uid, pk, ppk);
		write_overrides(t, 2, pk, a->attributes, a->n_attributes);
		update_columns(t, 2, pk, a->attributes, a->n_attributes);
		patient_change(t, ppk, pk, a->attributes, a->n_attributes);
		return;
	}
	/* attribute changes leave series membership alone: no archiver lock needed */
	if (level == DHCC__LEVEL__LEVEL_SERIES) {
		const char *p[2] = { tg->series_uid, tg->study_uid };
		if (!pk[0])
			q1(t, "SELECT se.pk FROM series se JOIN study st ON st.pk = se.study_fk "
			      "WHERE se.series_uid = $1 AND st.study_uid = $2",
			   2, p, pk, sizeof(pk));
		if (!pk[0])
			refuse(t, "series %s is not in the index", tg->series_uid);
		write_overrides(t, 3, pk, a->attributes, a->n_attributes);
		update_columns(t, 3, pk, a->attributes, a->n_attributes);
		return;
	}
	if (level == DHCC__LEVEL__LEVEL_INSTANCE) {
		const char *p[3] = { tg->sop_uid, tg->series_uid, tg->study_uid };
		if (!pk[0])
			q1(t, "SELECT i.pk FROM instance i JOIN series se ON se.pk = i.series_fk "
			      "JOIN study st ON st.pk = se.study_fk WHERE i.sop_uid = $1 AND se.series_uid = $2 "
			      "AND st.study_uid = $3",
			   3, p, pk, sizeof(pk));
		if (!pk[0])
			refuse(t, "instance %s is not in the index", tg->sop_uid);
		write_overrides(t, 4, pk, a->attributes, a->n_attributes);
		update_columns(t, 4, pk, a->attributes, a->n_attributes);
		return;
	}
	refuse(t, "attribute change at an unknown level");
}

static void apply_split(ctx *t, const Dhcc__Split *s)
{
	char spk[32], sppk[32], tpk[32] = "", tppk[32], acc[64] = "";
	sbuf se = { 0 }, st = { 0 };
	int created = 0;
	arr_add(&st, s->source_study_uid);
	arr_add(&st, s->target_study_uid);
	add_series_uids(&se, s->moved, s->n_moved, s->uid_map, s->n_uid_map);
	lock_series(t, &se, &st);
	study_row(t, s->source_study_uid, spk, sppk);
	snprintf(tppk, sizeof(tppk), "%s", sppk);
	const char *pid = attr_value(s->target_attributes, s->n_target_attributes, 0x00100020);
	if (pid && !bad(t)) {
		const char *iss = attr_value(s->target_attributes, s->n_target_attributes, 0x00100021);
		patient_get_or_create(t, pid, iss ? iss : "", NULL, tppk);
	}
	study_get_or_create(t, s->target_study_uid, spk, tppk, NULL, tpk, &created);
	if (created) {
		update_columns(t, 2, tpk, s->target_attributes, s->n_target_attributes);
		update_columns(t, 1, tppk, s->target_attributes, s->n_target_attributes);
	}
	move_refs(t, s->moved, s->n_moved, tpk, s->uid_map, s->n_uid_map);
	write_overrides(t, 2, tpk, s->target_attributes, s->n_target_attributes);
	{
		char one[48];
		snprintf(one, sizeof(one), "{%s}", spk);
		drop_empty(t, one);
	}
	{
		const char *p[1] = { tpk };
		q1(t, "SELECT accession FROM study WHERE pk = $1::bigint", 1, p, acc, sizeof(acc));
	}
	record_map(t, s->uid_map, s->n_uid_map, s->target_study_uid, acc);
	sb_free(&se);
	sb_free(&st);
}

static void apply_merge(ctx *t, const Dhcc__Merge *m)
{
	char dpk[32] = "", first[32] = "", fppk[32] = "", acc[64] = "";
	sbuf se = { 0 }, st = { 0 }, srcs = { 0 };
	int created = 0;
	for (size_t i = 0; i < m->n_source_study_uids; i++)
		arr_add(&st, m->source_study_uids[i]);
	arr_add(&st, m->destination_study_uid);
	add_series_uids(&se, m->moved, m->n_moved, m->uid_map, m->n_uid_map);
	lock_series(t, &se, &st);
	for (size_t i = 0; i < m->n_source_study_uids && !bad(t); i++) {
		char pk[32], ppk[32];
		study_row(t, m->source_study_uids[i], pk, ppk);
		if (!first[0]) {
			snprintf(first, sizeof(first), "%s", pk);
			snprintf(fppk, sizeof(fppk), "%s", ppk);
		}
		arr_add(&srcs, pk);
	}
	study_get_or_create(t, m->destination_study_uid, first, fppk, NULL, dpk, &created);
	move_refs(t, m->moved, m->n_moved, dpk, m->uid_map, m->n_uid_map);
	const char *sl = lit(t, &srcs);
	if (!bad(t))
		drop_empty(t, sl);
	{
		const char *p[1] = { dpk };
		q1(t, "SELECT accession FROM study WHERE pk = $1::bigint", 1, p, acc, sizeof(acc));
	}
	record_map(t, m->uid_map, m->n_uid_map, m->destination_study_uid, acc);
	sb_free(&se);
	sb_free(&st);
	sb_free(&srcs);
}

/* 1 when some target of the segment lets sop keep its UID. */
static int keeps_uid(const Dhcc__Segment *s, const char *sop)
{
	for (size_t k = 0; k < s->n_targets; k++) {
		const Dhcc__SegmentTarget *g = s->targets[k];
		for (size_t i = 0; i < g->n_instances; i++)
			if (strcmp(g->instances[i]->sop_uid, sop) == 0 &&
			    !map_find(g->uid_map, g->n_uid_map, DHCC__LEVEL__LEVEL_INSTANCE, sop))
				return 1;
	}
	return 0;
}

/*
 * A copy of instance old_sop as new_sop in series (new or existing, of
 * study tpk) new_series: a new row that points at the same stored bytes.
 */
static void copy_instance(ctx *t, const char *old_sop, const char *new_sop, const char *new_series, const char *tpk)
{
	char npk[32] = "", nst[32] = "";
	const char *p[4] = { tpk, new_series, old_sop, new_sop };
	q1(t, "INSERT INTO series (study_fk, series_uid, modality, series_number, description, institution, "
	      "department, pps_start_date, pps_start_time) SELECT $1::bigint, $2::text, se.modality, se.series_number, "
	      "se.description, se.institution, se.department, se.pps_start_date, se.pps_start_time "
	      "FROM instance i JOIN series se ON se.pk = i.series_fk WHERE i.sop_uid = $3 "
	      "ON CONFLICT (series_uid) DO NOTHING RETURNING pk",
	   3, p, npk, sizeof(npk));
	if (!npk[0] && !bad(t)) {
		PGresult *s = q(t, "SELECT pk, study_fk FROM series WHERE series_uid = $1", 1, p + 1);
		if (s && PQntuples(s) == 1) {
			snprintf(npk, sizeof(npk), "%s", PQgetvalue(s, 0, 0));
			snprintf(nst, sizeof(nst), "%s", PQgetvalue(s, 0, 1));
		}
		PQclear(s);
		if (strcmp(nst, tpk) != 0)
			refuse(t, "series %s of the copy of %s belongs to another study", new_series, old_sop);
	}
	const char *cp[3] = { npk, old_sop, new_sop };
	x(t, "INSERT INTO instance (series_fk, sop_uid, received_sop_uid, received_study_uid, received_accession, "
	     "sop_class_uid, instance_number, content_date, content_time, transfer_syntax, file_path, file_size, "
	     "md5, source_ae, received_at, tar_fk, tar_offset, tar_size, received_series_uid, moved, "
	     "completion_flag, verification_flag, concept_code_value, concept_scheme, concept_version, "
	     "concept_meaning, dataset_digest, file_digest) "
	     "SELECT $1::bigint, $3, i.received_sop_uid, i.received_study_uid, i.received_accession, "
	     "i.sop_class_uid, i.instance_number, i.content_date, i.content_time, i.transfer_syntax, i.file_path, "
	     "i.file_size, i.md5, i.source_ae, i.received_at, i.tar_fk, i.tar_offset, i.tar_size, "
	     "CASE WHEN i.received_series_uid = '' THEN se.series_uid ELSE i.received_series_uid END, true, "
	     "i.completion_flag, i.verification_flag, i.concept_code_value, i.concept_scheme, i.concept_version, "
	     "i.concept_meaning, i.dataset_digest, i.file_digest FROM instance i JOIN series se ON se.pk = i.series_fk WHERE i.sop_uid = $2",
	  3, cp);
}

static void apply_segment(ctx *t, const Dhcc__Segment *s)
{
	char spk[32], sppk[32];
	sbuf se = { 0 }, st = { 0 };
	arr_add(&st, s->source_study_uid);
	for (size_t k = 0; k < s->n_targets; k++) {
		arr_add(&st, s->targets[k]->study_uid);
		add_series_uids(&se, s->targets[k]->instances, s->targets[k]->n_instances, s->targets[k]->uid_map,
				s->targets[k]->n_uid_map);
	}
	lock_series(t, &se, &st);
	study_row(t, s->source_study_uid, spk, sppk);
	/* sop UIDs that already left the source (moved or renamed by an earlier target) */
	char **gone = calloc(1, sizeof(char *));
	size_t n_gone = 0;
	Dhcc__InstanceRef **mv = NULL; /* instances of the current target that leave the source */
	Dhcc__UidMapping **mvm = NULL; /* their INSTANCE and SERIES mappings */
	size_t n_mv = 0, n_mvm = 0;
	for (size_t k = 0; k < s->n_targets && !bad(t); k++) {
		const Dhcc__SegmentTarget *g = s->targets[k];
		char tpk[32], acc[64];
		int created = 0;
		study_get_or_create(t, g->study_uid, spk, sppk, g->accession_number, tpk, &created);
		if (!created && !bad(t)) {
			const char *p[2] = { tpk, g->accession_number };
			x(t, "UPDATE study SET accession = $2, updated_at = now() WHERE pk = $1::bigint", 2, p);
		}
		for (size_t i = 0; i < g->n_instances && !bad(t); i++) {
			const Dhcc__InstanceRef *ref = g->instances[i];
			const char *nsop = map_find(g->uid_map, g->n_uid_map, DHCC__LEVEL__LEVEL_INSTANCE, ref->sop_uid);
			const char *nser = map_find(g->uid_map, g->n_uid_map, DHCC__LEVEL__LEVEL_SERIES, ref->series_uid);
			int already = 0;
			for (size_t j = 0; j < n_gone; j++)
				if (strcmp(gone[j], ref->sop_uid) == 0)
					already = 1;
			if (nsop) {
				char have[32] = "";
				const char *p[1] = { nsop };
				q1(t, "SELECT pk FROM instance WHERE sop_uid = $1", 1, p, have, sizeof(have));
				if (have[0])
					continue; /* the spoke sent this object itself */
			}
			if (nsop && (s->keep_source || already || keeps_uid(s, ref->sop_uid))) {
				if (!nser) {
					refuse(t, "copy of %s into %s needs a new Series Instance UID", ref->sop_uid,
					       g->study_uid);
					break;
				}
				copy_instance(t, ref->sop_uid, nsop, nser, tpk);
				continue;
			}
			if (already) {
				refuse(t, "instance %s placed twice without a new SOP Instance UID", ref->sop_uid);
				break;
			}
			/* it leaves the source (moved, renamed when mapped): collected, so that a
			 * series leaving whole is recognised as whole */
			Dhcc__InstanceRef **nm = realloc(mv, (n_mv + 1) * sizeof(*nm));
			Dhcc__UidMapping **nmap = realloc(mvm, (n_mvm + 2) * sizeof(*nmap));
			char **ng = realloc(gone, (n_gone + 1) * sizeof(char *));
			if (nm)
				mv = nm;
			if (nmap)
				mvm = nmap;
			if (ng)
				gone = ng;
			if (!nm || !nmap || !ng) {
				t->failed = 1;
				snprintf(t->err.msg, sizeof(t->err.msg), "out of memory");
				break;
			}
			mv[n_mv++] = (Dhcc__InstanceRef *)ref;
			for (size_t j = 0; j < g->n_uid_map; j++) {
				const Dhcc__UidMapping *um = g->uid_map[j];
				if ((um->level == DHCC__LEVEL__LEVEL_INSTANCE && strcmp(um->old_uid, ref->sop_uid) == 0) ||
				    (um->level == DHCC__LEVEL__LEVEL_SERIES && strcmp(um->old_uid, ref->series_uid) == 0))
					mvm[n_mvm++] = (Dhcc__UidMapping *)um;
			}
			gone[n_gone++] = ref->sop_uid;
		}
		if (n_mv && !bad(t))
			move_refs(t, mv, n_mv, tpk, mvm, n_mvm);
		n_mv = 0;
		n_mvm = 0;
		study_attrs(t, tpk, sppk, g->attributes, g->n_attributes);
		{
			const char *p[1] = { tpk };
			q1(t, "SELECT accession FROM study WHERE pk = $1::bigint", 1, p, acc, sizeof(acc));
		}
		record_map(t, g->uid_map, g->n_uid_map, g->study_uid, acc);
	}
	free(gone);
	free(mv);
	free(mvm);
	if (!s->keep_source && !bad(t)) {
		char one[48];
		snprintf(one, sizeof(one), "{%s}", spk);
		drop_empty(t, one);
	}
	sb_free(&se);
	sb_free(&st);
}

static void apply_delete_why(ctx *t, const Dhcc__Delete *d, const char *reason, int *n_deleted);

static void apply_delete(ctx *t, const Dhcc__Delete *d)
{
	apply_delete_why(t, d, "deleted at the spoke", NULL);
}

static void apply_delete_why(ctx *t, const Dhcc__Delete *d, const char *reason, int *n_deleted)
{
	sbuf sts = { 0 }, ses = { 0 }, sops = { 0 }, lock_se = { 0 };
	char *pks = NULL, *studies = NULL;
	for (size_t i = 0; i < d->n_objects; i++) {
		arr_add(&sts, d->objects[i]->study_uid);
		arr_add(&ses, d->objects[i]->series_uid);
		arr_add(&sops, d->objects[i]->sop_uid);
	}
	const char *stl = lit(t, &sts);
	lock_series(t, &lock_se, &sts);
	const char *p[3] = { stl, lit(t, &ses), lit(t, &sops) };
	PGresult *r = q(t, "SELECT COALESCE(array_agg(DISTINCT i.pk), '{}')::text, "
			   "COALESCE(array_agg(DISTINCT st.pk), '{}')::text "
			   "FROM unnest($1::text[], $2::text[], $3::text[]) AS r(st, se, sop) "
			   "JOIN study st ON st.study_uid = r.st "
			   "JOIN series se ON se.study_fk = st.pk AND (r.se = '' OR se.series_uid = r.se) "
			   "JOIN instance i ON i.series_fk = se.pk AND (r.sop = '' OR i.sop_uid = r.sop)",
			3, p);
	if (r && PQntuples(r) == 1) {
		pks = strdup(PQgetvalue(r, 0, 0));
		studies = strdup(PQgetvalue(r, 0, 1));
		if (!pks || !studies) {
			t->failed = 1;
			snprintf(t->err.msg, sizeof(t->err.msg), "out of memory");
		}
	}
	PQclear(r);
	if (!bad(t) && pks && strcmp(pks, "{}") != 0) {
		tombstone(t, pks, reason);
		drop_empty(t, studies);
		if (n_deleted && !bad(t)) {
			/* pks is an array literal "{1,2,3}": commas + 1 */
			int n = 1;
			for (const char *s = pks; *s; s++)
				n += *s == ',';
			*n_deleted = n;
		}
	}
	free(pks);
	free(studies);
	sb_free(&sts);
	sb_free(&ses);
	sb_free(&sops);
	sb_free(&lock_se);
}

int cc_apply_delete(struct hub *h, PGconn *c, const Dhcc__Delete *d, const char *reason, int *n_deleted,
		    dh_db_err *err)
{
	ctx t;
	memset(&t, 0, sizeof(t));
	t.h = h;
	t.c = c;
	if (n_deleted)
		*n_deleted = 0;
	apply_delete_why(&t, d, reason, n_deleted);
	if (bad(&t)) {
		*err = t.err;
		if (t.refused)
			snprintf(err->msg, sizeof(err->msg), "%s", t.why);
		return -1;
	}
	return 0;
}

static void apply_fixup(ctx *t, const Dhcc__UidFixup *f)
{
	char pk[32], ppk[32], other[32] = "";
	sbuf se = { 0 }, st = { 0 };
	arr_add(&st, f->old_study_uid);
	add_series_uids(&se, NULL, 0, f->uid_map, f->n_uid_map);
	lock_series(t, &se, &st);
	study_row(t, f->old_study_uid, pk, ppk);
	{
		const char *p[1] = { f->new_study_uid };
		q1(t, "SELECT pk FROM study WHERE study_uid = $1", 1, p, other, sizeof(other));
		if (other[0])
			refuse(t, "study %s is already in the index", f->new_study_uid);
	}
	{
		const char *p[1] = { pk };
		x(t, "UPDATE instance i SET received_series_uid = se.series_uid FROM series se "
		     "WHERE se.pk = i.series_fk AND se.study_fk = $1::bigint AND i.received_series_uid = ''",
		  1, p);
	}
	{
		const char *p[3] = { pk, f->new_study_uid, f->accession_number };
		x(t, "UPDATE study SET study_uid = $2, accession = $3, updated_at = now() WHERE pk = $1::bigint", 3, p);
	}
	for (size_t i = 0; i < f->n_uid_map && !bad(t); i++) {
		const Dhcc__UidMapping *m = f->uid_map[i];
		const char *p[3] = { pk, m->old_uid, m->new_uid };
		if (m->level == DHCC__LEVEL__LEVEL_SERIES) {
			x(t, "UPDATE series SET series_uid = $3 WHERE study_fk = $1::bigint AND series_uid = $2", 3, p);
		} else if (m->level == DHCC__LEVEL__LEVEL_INSTANCE) {
			char have[32] = "", pks[64];
			q1(t, "SELECT pk FROM instance WHERE sop_uid = $1", 1, p + 2, have, sizeof(have));
			if (have[0]) {
				char old[32] = "";
				q1(t, "SELECT pk FROM instance WHERE sop_uid = $1", 1, p + 1, old, sizeof(old));
				if (old[0]) {
					snprintf(pks, sizeof(pks), "{%s}", old);
					tombstone(t, pks, "superseded by the object the spoke sent");
				}
			} else {
				x(t, "UPDATE instance i SET sop_uid = $3 FROM series se WHERE se.pk = i.series_fk "
				     "AND se.study_fk = $1::bigint AND i.sop_uid = $2",
				  3, p);
			}
		}
	}
	{
		/* the order's accession reaches the objects like any other attribute */
		Dhcc__Attribute accn = DHCC__ATTRIBUTE__INIT;
		accn.tag = 0x00080050;
		accn.vr = "SH";
		accn.new_value = f->accession_number;
		Dhcc__Attribute *one[1] = { &accn };
		if (!attr_value(f->attributes, f->n_attributes, 0x00080050))
			write_overrides(t, 2, pk, one, 1);
	}
	study_attrs(t, pk, ppk, f->attributes, f->n_attributes);
	Dhcc__UidMapping sm = DHCC__UID_MAPPING__INIT;
	sm.level = DHCC__LEVEL__LEVEL_STUDY;
	sm.old_uid = f->old_study_uid;
	sm.new_uid = f->new_study_uid;
	Dhcc__UidMapping *one[1] = { &sm };
	record_map(t, one, 1, f->new_study_uid, f->accession_number);
	record_map(t, f->uid_map, f->n_uid_map, f->new_study_uid, f->accession_number);
	sb_free(&se);
	sb_free(&st);
}

static void apply_cc(ctx *t, const dh_cc *cc)
{
	const Dhcc__ChangeContext *m = dh_cc_message(cc);
	switch (m->payload_case) {
	case DHCC__CHANGE_CONTEXT__PAYLOAD_ATTRIBUTE_CHANGE:
		apply_attribute_change(t, m->attribute_change);
		break;
	case DHCC__CHANGE_CONTEXT__PAYLOAD_SPLIT:
		apply_split(t, m->split);
		break;
	case DHCC__CHANGE_CONTEXT__PAYLOAD_MERGE:
		apply_merge(t, m->merge);
		break;
	case DHCC__CHANGE_CONTEXT__PAYLOAD_SEGMENT:
		apply_segment(t, m->segment);
		break;
	case DHCC__CHANGE_CONTEXT__PAYLOAD_DELETION:
		apply_delete(t, m->deletion);
		break;
	case DHCC__CHANGE_CONTEXT__PAYLOAD_UID_FIXUP:
		apply_fixup(t, m->uid_fixup);
		break;
	default:
		refuse(t, "unknown kind");
	}
}

/* ---- what a cc names, and whether the index has it ----------------------- */

static void add_refs(sbuf *st, sbuf *se, sbuf *sop, sbuf *nw, Dhcc__InstanceRef **r, size_t n,
		     Dhcc__UidMapping **m, size_t nm)
{
	for (size_t i = 0; i < n; i++) {
		const char *map = r[i]->sop_uid && r[i]->sop_uid[0]
					  ? map_find(m, nm, DHCC__LEVEL__LEVEL_INSTANCE, r[i]->sop_uid)
					  : NULL;
		arr_add(st, r[i]->study_uid);
		arr_add(se, r[i]->series_uid);
		arr_add(sop, r[i]->sop_uid);
		arr_add(nw, map ? map : "");
	}
}

/* Every Study UID the cc names, old and new (cc_log.studies). */
static void cc_studies(const dh_cc *cc, sbuf *b)
{
	const Dhcc__ChangeContext *m = dh_cc_message(cc);
	switch (m->payload_case) {
	case DHCC__CHANGE_CONTEXT__PAYLOAD_ATTRIBUTE_CHANGE:
		if (m->attribute_change->target && m->attribute_change->target->study_uid &&
		    m->attribute_change->target->study_uid[0])
			arr_add(b, m->attribute_change->target->study_uid);
		break;
	case DHCC__CHANGE_CONTEXT__PAYLOAD_SPLIT:
		arr_add(b, m->split->source_study_uid);
		arr_add(b, m->split->target_study_uid);
		break;
	case DHCC__CHANGE_CONTEXT__PAYLOAD_MERGE:
		for (size_t i = 0; i < m->merge->n_source_study_uids; i++)
			arr_add(b, m->merge->source_study_uids[i]);
		arr_add(b, m->merge->destination_study_uid);
		break;
	case DHCC__CHANGE_CONTEXT__PAYLOAD_SEGMENT:
		arr_add(b, m->segment->source_study_uid);
		for (size_t i = 0; i < m->segment->n_targets; i++)
			arr_add(b, m->segment->targets[i]->study_uid);
		break;
	case DHCC__CHANGE_CONTEXT__PAYLOAD_DELETION:
		for (size_t i = 0; i < m->deletion->n_objects; i++) {
			int dup = 0;
			for (size_t j = 0; j < i; j++)
				if (strcmp(m->deletion->objects[j]->study_uid, m->deletion->objects[i]->study_uid) == 0)
					dup = 1;
			if (!dup)
				arr_add(b, m->deletion->objects[i]->study_uid);
		}
		break;
	case DHCC__CHANGE_CONTEXT__PAYLOAD_UID_FIXUP:
		arr_add(b, m->uid_fixup->old_study_uid);
		arr_add(b, m->uid_fixup->new_study_uid);
		break;
	default:
		break;
	}
}

/*
 * The rules that come before applying: ownership (refused) and objects
 * not in the index yet (parked). studies: cc_studies' literal. Returns the
 * outcome (why filled unless applied), or -1 on SQL failure.
 */
static int check_cc(ctx *t, const dh_cc *cc, const char *studies)
{
	const Dhcc__ChangeContext *m = dh_cc_message(cc);
	sbuf st = { 0 }, se = { 0 }, sop = { 0 }, nw = { 0 };
	int out = OUT_APPLIED;
	PGresult *r = NULL;

	int attr_target = m->payload_case == DHCC__CHANGE_CONTEXT__PAYLOAD_ATTRIBUTE_CHANGE &&
			  m->attribute_change->level != DHCC__LEVEL__LEVEL_PATIENT && m->attribute_change->target;
	t->target_pk[0] = t->target_ppk[0] = '\0';
	/* an attribute change's target query below tells its owner too */
	if (t->h->cfg.cc_enforce_ownership && !attr_target && strcmp(studies, "{}") != 0) {
		const char *p[2] = { studies, t->spoke };
		r = q(t, "SELECT study_uid, owner_spoke FROM study WHERE study_uid = ANY($1::text[]) "
			 "AND owner_spoke NOT IN ('', $2) LIMIT 1",
		      2, p);
		if (r && PQntuples(r) > 0) {
			snprintf(t->why, sizeof(t->why), "study %s is owned by spoke %s", PQgetvalue(r, 0, 0),
				 PQgetvalue(r, 0, 1));
			out = OUT_CONFLICT;
		}
		PQclear(r);
		r = NULL;
		if (out != OUT_APPLIED || t->failed)
			goto done;
	}
	switch (m->payload_case) {
	case DHCC__CHANGE_CONTEXT__PAYLOAD_ATTRIBUTE_CHANGE: {
		const Dhcc__AttributeChange *a = m->attribute_change;
		if (a->level == DHCC__LEVEL__LEVEL_PATIENT) {
			const char *iss = a->issuer_of_patient_id ? a->issuer_of_patient_id : "";
			const char *p[2] = { a->patient_id, iss };
			if (q1(t, "SELECT 1 FROM patient WHERE patient_id = $1 AND ($2 = '' OR issuer = $2) LIMIT 1", 2,
			       p, NULL, 0) == 0 && !t->failed) {
				snprintf(t->why, sizeof(t->why), "waiting for patient %s", a->patient_id);
				out = OUT_PARKED;
			}
			goto done;
		}
		if (a->target) {
			/* one query: the target, its study's patient and owner */
			const Dhcc__InstanceRef *g = a->target;
			const char *p[3] = { g->study_uid, g->series_uid, g->sop_uid };
			const char *sql =
				a->level == DHCC__LEVEL__LEVEL_STUDY
					? "SELECT st.pk, st.patient_fk, st.owner_spoke FROM study st WHERE st.study_uid = $1"
				: a->level == DHCC__LEVEL__LEVEL_SERIES
					? "SELECT se.pk, st.patient_fk, st.owner_spoke FROM series se JOIN study st "
					  "ON st.pk = se.study_fk WHERE st.study_uid = $1 AND se.series_uid = $2"
					: "SELECT i.pk, st.patient_fk, st.owner_spoke FROM instance i JOIN series se "
					  "ON se.pk = i.series_fk JOIN study st ON st.pk = se.study_fk "
					  "WHERE st.study_uid = $1 AND se.series_uid = $2 AND i.sop_uid = $3";
			int np = a->level == DHCC__LEVEL__LEVEL_STUDY ? 1 : a->level == DHCC__LEVEL__LEVEL_SERIES ? 2 : 3;
			r = q(t, sql, np, p);
			const char *owner = r && PQntuples(r) == 1 ? PQgetvalue(r, 0, 2) : "";
			if (t->h->cfg.cc_enforce_ownership && owner[0] && strcmp(owner, t->spoke) != 0) {
				snprintf(t->why, sizeof(t->why), "study %s is owned by spoke %s", g->study_uid, owner);
				out = OUT_CONFLICT;
			} else if (r && PQntuples(r) == 1) {
				snprintf(t->target_pk, sizeof(t->target_pk), "%s", PQgetvalue(r, 0, 0));
				snprintf(t->target_ppk, sizeof(t->target_ppk), "%s", PQgetvalue(r, 0, 1));
			} else if (r) {
				snprintf(t->why, sizeof(t->why), "waiting for 1 objects, first: %s",
					 np == 1 ? g->study_uid : np == 2 ? g->series_uid : g->sop_uid);
				out = OUT_PARKED;
			}
		}
		goto done;
	}
	case DHCC__CHANGE_CONTEXT__PAYLOAD_SPLIT:
		add_refs(&st, &se, &sop, &nw, m->split->moved, m->split->n_moved, m->split->uid_map,
			 m->split->n_uid_map);
		break;
	case DHCC__CHANGE_CONTEXT__PAYLOAD_MERGE:
		add_refs(&st, &se, &sop, &nw, m->merge->moved, m->merge->n_moved, m->merge->uid_map,
			 m->merge->n_uid_map);
		break;
	case DHCC__CHANGE_CONTEXT__PAYLOAD_SEGMENT:
		for (size_t k = 0; k < m->segment->n_targets; k++)
			add_refs(&st, &se, &sop, &nw, m->segment->targets[k]->instances,
				 m->segment->targets[k]->n_instances, m->segment->targets[k]->uid_map,
				 m->segment->targets[k]->n_uid_map);
		break;
	case DHCC__CHANGE_CONTEXT__PAYLOAD_DELETION:
		add_refs(&st, &se, &sop, &nw, m->deletion->objects, m->deletion->n_objects, NULL, 0);
		break;
	case DHCC__CHANGE_CONTEXT__PAYLOAD_UID_FIXUP: {
		Dhcc__InstanceRef ref = DHCC__INSTANCE_REF__INIT, *one[1] = { &ref };
		ref.study_uid = m->uid_fixup->old_study_uid;
		add_refs(&st, &se, &sop, &nw, one, 1, NULL, 0);
		break;
	}
	default:
		break;
	}
	if (st.items == 0)
		goto done;
	{
		const char *p[4] = { lit(t, &st), lit(t, &se), lit(t, &sop), lit(t, &nw) };
		r = q(t, "SELECT count(*) OVER (), COALESCE(NULLIF(r.sop, ''), NULLIF(r.se, ''), r.st) "
			 "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS r(st, se, sop, nw) "
			 "WHERE NOT EXISTS (SELECT 1 FROM study st JOIN series se ON se.study_fk = st.pk "
			 "  JOIN instance i ON i.series_fk = se.pk WHERE st.study_uid = r.st "
			 "  AND (r.se = '' OR se.series_uid = r.se) AND (r.sop = '' OR i.sop_uid = r.sop)) "
			 "AND (r.nw = '' OR NOT EXISTS (SELECT 1 FROM instance y WHERE y.sop_uid = r.nw)) LIMIT 1",
		      4, p);
		if (r && PQntuples(r) > 0) {
			snprintf(t->why, sizeof(t->why), "waiting for %s objects, first: %s", PQgetvalue(r, 0, 0),
				 PQgetvalue(r, 0, 1));
			out = OUT_PARKED;
		}
	}
done:
	PQclear(r);
	sb_free(&st);
	sb_free(&se);
	sb_free(&sop);
	sb_free(&nw);
	return t->failed ? -1 : out;
}

/* Hex text of body for a bytea parameter ("\x..."); malloc'd, NULL on no memory. */
static char *bytea_hex(const uint8_t *d, size_t n)
{
	static const char hx[] = "0123456789abcdef";
	char *s = malloc(2 * n + 3);
	if (!s)
		return NULL;
	s[0] = '\\';
	s[1] = 'x';
	for (size_t i = 0; i < n; i++) {
		s[2 + 2 * i] = hx[d[i] >> 4];
		s[3 + 2 * i] = hx[d[i] & 15];
	}
	s[2 + 2 * n] = '\0';
	return s;
}

static const char *state_name(int out)
{
	return out == OUT_APPLIED ? "applied" : out == OUT_PARKED ? "parked" : out == OUT_CONFLICT ? "conflict" : "failed";
}

#define LOG_COLS                                                                                          \
	"INSERT INTO cc_log (spoke_id, sequence, uuid, kind, operator_name, reason, created_at, body, studies, " \
	"state, state_reason, operator_item, applied_at) VALUES ($1, $2::bigint, $3::uuid, $4, $5, $6, "       \
	"to_timestamp($7::double precision / 1000), $8::bytea, $9::text[], $10, $11, $10 IN ('conflict', 'failed'), "        \
	"CASE WHEN $10 = 'applied' THEN now() END) RETURNING pk"

typedef struct {
	char seq[24], created[32];
	const char *p[11];
} log_params;

static void log_params_fill(log_params *lp, const ctx *t, const dh_cc *cc, const char *body_hex,
			    const char *studies, int out, const char *why)
{
	snprintf(lp->seq, sizeof(lp->seq), "%" PRIu64, dh_cc_sequence(cc));
	snprintf(lp->created, sizeof(lp->created), "%" PRId64, dh_cc_created_at_ms(cc));
	lp->p[0] = t->spoke;
	lp->p[1] = lp->seq;
	lp->p[2] = dh_cc_uuid(cc);
	lp->p[3] = dh_cc_kind_name(dh_cc_get_kind(cc));
	lp->p[4] = dh_cc_operator(cc) ? dh_cc_operator(cc) : "";
	lp->p[5] = dh_cc_reason(cc) ? dh_cc_reason(cc) : "";
	lp->p[6] = lp->created;
	lp->p[7] = body_hex;
	lp->p[8] = studies;
	lp->p[9] = state_name(out);
	lp->p[10] = why;
}

/* Inserts the cc_log row; fills t->cc_pk. */
static void log_cc(ctx *t, const dh_cc *cc, const char *body_hex, const char *studies, int out, const char *why)
{
	log_params lp;
	log_params_fill(&lp, t, cc, body_hex, studies, out, why);
	q1(t, LOG_COLS, 11, lp.p, t->cc_pk, sizeof(t->cc_pk));
}

/*
 * The common case in one round trip: an attribute change whose target
 * check_cc resolved and that touches no patient attributes: the cc_log row,
 * its overrides and the indexed columns in one statement. Returns 1 when
 * it applied the cc, 0 when the cc needs the general path.
 */
static int fast_attribute_change(ctx *t, const dh_cc *cc, const char *body_hex, const char *studies)
{
	const Dhcc__ChangeContext *m = dh_cc_message(cc);
	const Dhcc__AttributeChange *a;
	sbuf sql = { 0 }, tags = { 0 }, vrs = { 0 }, vals = { 0 };
	const char *p[48];
	char lv[4], tag[16], num[16];
	int np = 16, rc = 0, ncol = 0;

	if (m->payload_case != DHCC__CHANGE_CONTEXT__PAYLOAD_ATTRIBUTE_CHANGE || !t->target_pk[0])
		return 0;
	a = m->attribute_change;
	if (a->level < DHCC__LEVEL__LEVEL_STUDY || a->level > DHCC__LEVEL__LEVEL_INSTANCE || a->n_attributes > 30)
		return 0;
	for (size_t i = 0; i < a->n_attributes; i++) {
		const idx_col *c = col_of(a->attributes[i]->tag);
		if (c && c->level < (int)a->level)
			return 0; /* patient attributes at study level: the general path */
	}
	log_params lp;
	log_params_fill(&lp, t, cc, body_hex, studies, OUT_APPLIED, "");
	memcpy(p, lp.p, sizeof(lp.p));
	snprintf(lv, sizeof(lv), "%d", (int)a->level);
	for (size_t i = 0; i < a->n_attributes; i++) {
		snprintf(tag, sizeof(tag), "%" PRIu32, a->attributes[i]->tag);
		arr_add(&tags, tag);
		arr_add(&vrs, a->attributes[i]->vr);
		arr_add(&vals, a->attributes[i]->new_value);
	}
	p[11] = lv;
	p[12] = t->target_pk;
	p[13] = lit(t, &tags);
	p[14] = lit(t, &vrs);
	p[15] = lit(t, &vals);
	sb_add(&sql, "WITH l AS (" LOG_COLS "), o AS (INSERT INTO attr_override (level, target_fk, tag, vr, value, "
		     "cc_fk) SELECT $12::smallint, $13::bigint, u.tag, u.vr, u.val, l.pk FROM l, "
		     "unnest($14::bigint[], $15::text[], $16::text[]) WITH ORDINALITY AS u(tag, vr, val, o) "
		     "ORDER BY u.o ON CONFLICT (level, target_fk, tag) DO UPDATE SET vr = EXCLUDED.vr, "
		     "value = EXCLUDED.value, seq = nextval('attr_override_seq'), cc_fk = EXCLUDED.cc_fk)");
	for (size_t i = 0; i < a->n_attributes; i++) {
		const idx_col *c = col_of(a->attributes[i]->tag);
		if (!c || c->level != (int)a->level)
			continue;
		sb_add(&sql, ncol++ ? ", " : ", c AS (UPDATE ");
		if (ncol == 1) {
			sb_add(&sql, level_table[a->level]);
			sb_add(&sql, " SET ");
		}
		sb_add(&sql, c->col);
		snprintf(num, sizeof(num), " = $%d", np + 1);
		sb_add(&sql, num);
		p[np++] = a->attributes[i]->new_value ? a->attributes[i]->new_value : "";
	}
	if (ncol)
		sb_add(&sql, a->level == DHCC__LEVEL__LEVEL_STUDY ? ", updated_at = now() WHERE pk = $13::bigint)"
								   : " WHERE pk = $13::bigint)");
	sb_add(&sql, " SELECT pk FROM l");
	if (sql.oom && !bad(t)) {
		t->failed = 1;
		snprintf(t->err.msg, sizeof(t->err.msg), "out of memory");
	}
	if (!bad(t)) {
		q1(t, sql.s, np, p, t->cc_pk, sizeof(t->cc_pk));
		rc = 1;
	}
	sb_free(&sql);
	sb_free(&tags);
	sb_free(&vrs);
	sb_free(&vals);
	return rc;
}

/*
 * 1 when cc is an attribute change fast_attribute_change applies in one
 * statement (the same static conditions): its checks write nothing and its
 * application is that one statement, so it needs no savepoint of its own
 * (see cc_apply_batch).
 */
static int fast_ok(const dh_cc *cc)
{
	const Dhcc__ChangeContext *m = dh_cc_message(cc);
	if (m->payload_case != DHCC__CHANGE_CONTEXT__PAYLOAD_ATTRIBUTE_CHANGE || !m->attribute_change->target)
		return 0;
	const Dhcc__AttributeChange *a = m->attribute_change;
	if (a->level < DHCC__LEVEL__LEVEL_STUDY || a->level > DHCC__LEVEL__LEVEL_INSTANCE || a->n_attributes > 30)
		return 0;
	for (size_t i = 0; i < a->n_attributes; i++) {
		const idx_col *c = col_of(a->attributes[i]->tag);
		if (c && c->level < (int)a->level)
			return 0;
	}
	return 1;
}

/*
 * Decides and, when it may, applies one cc inside the open transaction.
 * behind: the sequence of a parked cc it waits behind (0: none).
 * body_hex given (a new cc): the cc_log row is inserted before applying
 * (overrides, mappings and tombstones name it); NULL: t->cc_pk is its row.
 * Returns the outcome with why filled (-1: SQL failure, t->err); on a
 * refusal the caller rolls back to the savepoint "cc".
 */
static int decide_and_apply(ctx *t, const dh_cc *cc, const char *studies, uint64_t behind, const char *body_hex,
			    char *why, size_t whylen)
{
	int out;
	why[0] = '\0';
	t->why[0] = '\0';
	snprintf(t->reason, sizeof(t->reason), "cc %s %s:%" PRIu64, dh_cc_kind_name(dh_cc_get_kind(cc)), t->spoke,
		 dh_cc_sequence(cc));
	if (behind) {
		snprintf(why, whylen, "behind parked cc %" PRIu64, behind);
		return OUT_PARKED;
	}
	out = check_cc(t, cc, studies);
	if (out < 0)
		return -1;
	if (out != OUT_APPLIED) {
		snprintf(why, whylen, "%s", t->why);
		return out;
	}
	if (body_hex && fast_attribute_change(t, cc, body_hex, studies)) {
		/* done in one statement */
	} else {
		if (body_hex)
			log_cc(t, cc, body_hex, studies, OUT_APPLIED, "");
		if (t->failed)
			return -1;
		apply_cc(t, cc);
	}
	if (t->failed && dh_db_conn_lost(t->c, &t->err))
		return -1;
	if (t->failed) {
		/* SQL said no: a bug in the cc relative to the index */
		snprintf(why, whylen, "%.250s", t->err.msg);
		return OUT_FAILED;
	}
	if (t->refused) {
		snprintf(why, whylen, "%s", t->why);
		return OUT_CONFLICT;
	}
	return OUT_APPLIED;
}

/* Rolls back to savepoint "cc" after a refused apply and clears the error state. */
static int rollback_cc(ctx *t)
{
	PGresult *r = PQexec(t->c, "ROLLBACK TO SAVEPOINT cc");
	int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok)
		snprintf(t->err.msg, sizeof(t->err.msg), "rollback to savepoint: %s", PQerrorMessage(t->c));
	PQclear(r);
	t->failed = !ok;
	t->refused = 0;
	return ok ? 0 : -1;
}

/* Runs a fixed statement list without parameters (no data in it). */
static int exec_fixed(ctx *t, const char *sql)
{
	PGresult *r = PQexec(t->c, sql);
	int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok) {
		t->failed = 1;
		snprintf(t->err.msg, sizeof(t->err.msg), "%s", PQerrorMessage(t->c));
	}
	PQclear(r);
	return ok ? 0 : -1;
}

/*
 * The sequence of a cc of the spoke that names one of studies and waits
 * for objects (0: none): parked, or failed because its objects never came
 * (its reason still says "waiting for", check_cc's words); per-study order
 * holds until an operator settles it. A conflict, or a cc the database
 * refused, does not hold later cc back: it never applies as it is.
 */
static uint64_t parked_behind(ctx *t, const char *studies, uint64_t before)
{
	char seq[24], got[24] = "";
	snprintf(seq, sizeof(seq), "%" PRIu64, before);
	const char *p[3] = { t->spoke, studies, seq };
	q1(t, "SELECT sequence FROM cc_log WHERE spoke_id = $1 AND state IN ('parked', 'failed') AND studies && $2::text[] "
	      "AND (state = 'parked' OR state_reason LIKE 'waiting for %') "
	      "AND sequence < $3::bigint ORDER BY sequence LIMIT 1",
	   3, p, got, sizeof(got));
	return got[0] ? strtoull(got, NULL, 10) : 0;
}

static void lock_spoke(ctx *t)
{
	char lk[16];
	snprintf(lk, sizeof(lk), "%d", SPOKE_LOCK);
	const char *p[2] = { lk, t->spoke };
	x(t, "SELECT pg_advisory_xact_lock($1::int, hashtext($2))", 2, p);
}

int cc_apply_batch(struct hub *h, const char *spoke_id, const char *peer, dh_cc *const *ccs,
		   const dh_ccwire_item *bodies, size_t n, uint64_t *acked_through, cc_refusal **refused,
		   size_t *n_refused, char *err, size_t errlen)
{
	ctx t;
	char through_s[24] = "";
	uint64_t through = 0;
	long n_parked = 0;
	cc_refusal *out = NULL;
	size_t n_out = 0;
	int rc = -1, in_txn = 0, lost = 0, have_sp = 0;
	/*
	 * Pass 0 takes no savepoint before a simple attribute change (fast_ok):
	 * one round trip less per cc, the bulk of a spoke's stream. Should such
	 * a statement fail (the transaction is then aborted), the batch is
	 * rolled back and run again as pass 1, with a savepoint before every
	 * cc, so that cc is refused alone.
	 */
	int safe = 0;

	memset(&t, 0, sizeof(t));
	t.h = h;
	t.spoke = spoke_id;
	*refused = NULL;
	*n_refused = 0;
	if (n && !(out = calloc(n, sizeof(*out)))) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	t.c = dh_db_get(h->db, &t.err);
	if (!t.c) {
		snprintf(err, errlen, "index database unavailable: %s", t.err.msg);
		free(out);
		return -1;
	}
again:
	x(&t, "BEGIN", 0, NULL);
	in_txn = !t.failed;
	lock_spoke(&t);
	{
		const char *p[2] = { spoke_id, peer ? peer : "" };
		x(&t, "INSERT INTO cc_stream (spoke_id) VALUES ($1) ON CONFLICT DO NOTHING", 1, p);
		q1(&t, "SELECT received_through FROM cc_stream WHERE spoke_id = $1 FOR UPDATE", 1, p, through_s,
		   sizeof(through_s));
		through = strtoull(through_s, NULL, 10);
		char cnt[24] = "";
		q1(&t, "SELECT count(*) FROM cc_log WHERE spoke_id = $1 AND state IN ('parked', 'failed')", 1, p, cnt,
		   sizeof(cnt));
		n_parked = strtol(cnt, NULL, 10);
	}
	if (t.failed)
		goto done;
	for (size_t i = 0; i < n; i++) {
		const dh_cc *cc = ccs[i];
		uint64_t seq = dh_cc_sequence(cc);
		sbuf studies = { 0 };
		char why[256] = "", *hex = NULL;
		int o;

		if (seq <= through)
			continue; /* a resend: recorded already */
		if (seq > through + 1)
			break; /* a gap: acknowledge what we have */
		cc_studies(cc, &studies);
		const char *sl = lit(&t, &studies);
		if (!(hex = bytea_hex(bodies[i].data, bodies[i].len)) && !t.failed) {
			t.failed = 1;
			snprintf(t.err.msg, sizeof(t.err.msg), "out of memory");
		}
		int sp = safe || !fast_ok(cc);
		if (t.failed ||
		    (sp && exec_fixed(&t, have_sp ? "RELEASE SAVEPOINT cc; SAVEPOINT cc" : "SAVEPOINT cc") < 0)) {
			free(hex);
			sb_free(&studies);
			goto done;
		}
		if (sp)
			have_sp = 1;
		if (strcmp(dh_cc_spoke_id(cc), spoke_id) != 0) {
			o = OUT_CONFLICT;
			snprintf(why, sizeof(why), "cc names spoke %s, its connection spoke %s", dh_cc_spoke_id(cc),
				 spoke_id);
		} else {
			uint64_t behind = n_parked ? parked_behind(&t, sl, seq) : 0;
			if (t.failed) {
				o = -1;
			} else {
				/* the cc_log row first: overrides, mappings and tombstones name it */
				o = decide_and_apply(&t, cc, sl, behind, hex, why, sizeof(why));
			}
			if (!sp && t.failed && !dh_db_conn_lost(t.c, &t.err)) {
				/* pass 0 and an SQL error: redo the batch with savepoints */
				DH_INFO("cc %s:%" PRIu64 " failed without a savepoint (%s); applying the batch again "
					"cc by cc",
					spoke_id, seq, t.err.msg);
				free(hex);
				sb_free(&studies);
				PQclear(PQexec(t.c, "ROLLBACK"));
				memset(out, 0, n * sizeof(*out));
				n_out = 0;
				n_parked = 0;
				have_sp = 0;
				safe = 1;
				t.failed = 0;
				t.refused = 0;
				t.err.msg[0] = t.err.sqlstate[0] = '\0';
				goto again;
			}
			/* with no savepoint (pass 0) a parked or refused fast cc wrote nothing */
			if (o > OUT_APPLIED && sp && rollback_cc(&t) < 0)
				o = -1;
		}
		if (o > OUT_APPLIED) {
			log_cc(&t, cc, hex, sl, o, why);
			if (o == OUT_PARKED)
				n_parked++;
			cc_refusal *f = &out[n_out++];
			f->sequence = seq;
			snprintf(f->uuid, sizeof(f->uuid), "%s", dh_cc_uuid(cc));
			snprintf(f->reason, sizeof(f->reason), "%s", why);
			f->permanent = o >= OUT_CONFLICT;
			if (o >= OUT_CONFLICT)
				DH_WARN("cc %s:%" PRIu64 " %s: %s", spoke_id, seq, state_name(o), why);
			else
				DH_INFO("cc %s:%" PRIu64 " parked: %s", spoke_id, seq, why);
		}
		free(hex);
		sb_free(&studies);
		if (o < 0 || t.failed)
			goto done;
		through = seq;
	}
	snprintf(through_s, sizeof(through_s), "%" PRIu64, through);
	{
		const char *p[3] = { spoke_id, through_s, peer ? peer : "" };
		x(&t, "UPDATE cc_stream SET received_through = $2::bigint, last_seen_at = now(), last_peer = $3 "
		      "WHERE spoke_id = $1",
		  3, p);
	}
	x(&t, "COMMIT", 0, NULL);
	if (t.failed)
		goto done;
	in_txn = 0;
	*acked_through = through;
	*refused = out;
	*n_refused = n_out;
	out = NULL;
	rc = 0;
done:
	if (rc < 0) {
		snprintf(err, errlen, "%s", t.err.msg[0] ? t.err.msg : "cannot record the batch");
		lost = dh_db_conn_lost(t.c, &t.err);
		if (in_txn && !lost)
			PQclear(PQexec(t.c, "ROLLBACK"));
	}
	dh_db_put(h->db, t.c, lost);
	free(out);
	return rc;
}

int cc_apply_received_through(struct hub *h, const char *spoke_id, uint64_t *out, char *err, size_t errlen)
{
	ctx t;
	char v[24] = "";
	memset(&t, 0, sizeof(t));
	t.c = dh_db_get(h->db, &t.err);
	if (!t.c) {
		snprintf(err, errlen, "index database unavailable: %s", t.err.msg);
		return -1;
	}
	const char *p[1] = { spoke_id };
	q1(&t, "SELECT received_through FROM cc_stream WHERE spoke_id = $1", 1, p, v, sizeof(v));
	dh_db_put(h->db, t.c, t.failed && dh_db_conn_lost(t.c, &t.err));
	if (t.failed) {
		snprintf(err, errlen, "%s", t.err.msg);
		return -1;
	}
	*out = strtoull(v, NULL, 10);
	return 0;
}

/* ---- parked cc ------------------------------------------------------------ */

static int unhex(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Ends a retry_one with an error message of its own (no SQL error behind it). */
static int oneerr(ctx *t, const char *msg)
{
	snprintf(t->err.msg, sizeof(t->err.msg), "%s", msg);
	t->failed = 1;
	return -1;
}

/* May an operator's action apply to a cc in state? NULL: yes; else why not. */
static const char *action_refusal(const char *action, const char *state)
{
	if (strcmp(state, "parked") == 0 || strcmp(state, "conflict") == 0 || strcmp(state, "failed") == 0)
		return NULL;
	if (strcmp(state, "applied") == 0)
		return strcmp(action, "retry") == 0
			       ? "it is applied already; a cc is never applied twice"
			       : "it is applied; an applied cc cannot be undone here: the spoke sends a new change";
	return "it was settled by an operator already (see hubctl history); nothing is left to do";
}

/*
 * One cc (cc_log pk) in its own transaction under its spoke's lock.
 * op NULL (the worker): a parked cc is retried; still parked with nothing
 * before it and older than cc.park_timeout, it becomes failed and is no
 * longer retried automatically. op given (hubctl queue): the operator's
 * retry (the same decision as the worker's, for a parked, conflict or
 * failed cc), resolve or discard, recorded in operator_action in the same
 * transaction. Returns the outcome, OUT_NONE when there is nothing to do
 * (the worker: no longer parked; an operator: refused, why says why), or
 * -1 with err. state (may be NULL, 16 bytes) receives the new state.
 */
enum { OUT_NONE = 10 };
static int retry_one(hub *h, PGconn *c, const char *pk, const cc_operator_req *op, char *state, char *why,
		     size_t whylen, dh_db_err *err)
{
	ctx t;
	dh_cc *cc = NULL;
	uint8_t *body = NULL;
	char spoke[80] = "", timeout[24];
	int o = -1, in_txn = 0;
	uint64_t behind = 0;
	PGresult *r = NULL;

	memset(&t, 0, sizeof(t));
	t.h = h;
	t.c = c;
	why[0] = '\0';
	if (state)
		snprintf(state, 16, "%s", "");
	snprintf(t.cc_pk, sizeof(t.cc_pk), "%s", pk);
	{
		const char *p[1] = { pk };
		if (q1(&t, "SELECT spoke_id FROM cc_log WHERE pk = $1::bigint", 1, p, spoke, sizeof(spoke)) == 0 &&
		    !t.failed) {
			o = op ? oneerr(&t, "no change context with this id") : OUT_NONE;
			goto done;
		}
	}
	t.spoke = spoke;
	x(&t, "BEGIN", 0, NULL);
	in_txn = !t.failed;
	lock_spoke(&t);
	{
		const char *p[1] = { pk };
		r = q(&t, "SELECT encode(body, 'hex'), studies::text, sequence, state, studies[1], state_reason FROM cc_log "
			  "WHERE pk = $1::bigint FOR UPDATE",
		      1, p);
	}
	if (!r || PQntuples(r) != 1)
		goto done;
	const char *was = PQgetvalue(r, 0, 3);
	if (!op && strcmp(was, "parked") != 0) {
		o = OUT_NONE; /* settled meanwhile: nothing to do */
		goto done;
	}
	if (op) {
		const char *no = action_refusal(op->action, was);
		if (no) {
			snprintf(why, whylen, "cc %s is %s: %s", pk, was, no);
			if (state)
				snprintf(state, 16, "%s", was);
			o = OUT_NONE;
			goto done;
		}
	}
	if (op && strcmp(op->action, "retry") != 0) {
		/* resolve / discard: settled, never applied; later cc stop waiting behind it */
		const char *settled = strcmp(op->action, "resolve") == 0 ? "resolved" : "discarded";
		char sreason[512];
		/* why it was where it was stays on record, after who settled it and why */
		snprintf(why, whylen, "was %s%s%.200s", was, PQgetvalue(r, 0, 5)[0] ? ": " : "", PQgetvalue(r, 0, 5));
		snprintf(sreason, sizeof(sreason), "%s by %.60s: %.150s; %.250s", settled, op->operator_name, op->reason,
			 why);
		const char *p[3] = { pk, settled, sreason };
		x(&t, "UPDATE cc_log SET state = $2, state_reason = $3, operator_item = false, settled_at = now() "
		      "WHERE pk = $1::bigint",
		  3, p);
		if (state)
			snprintf(state, 16, "%s", settled);
		o = OUT_APPLIED; /* "done": the caller reads state */
		goto record;
	}
	{
		const char *hx = PQgetvalue(r, 0, 0);
		size_t n = strlen(hx) / 2;
		char dwhy[200];
		if (!(body = malloc(n ? n : 1))) {
			oneerr(&t, "out of memory");
			goto done;
		}
		for (size_t i = 0; i < n; i++)
			body[i] = (uint8_t)(unhex(hx[2 * i]) << 4 | unhex(hx[2 * i + 1]));
		if (dh_cc_decode(body, n, &cc, dwhy, sizeof(dwhy)) < 0) {
			o = OUT_FAILED;
			snprintf(why, whylen, "stored cc does not decode: %s", dwhy);
		}
	}
	if (exec_fixed(&t, "SAVEPOINT cc") < 0)
		goto done;
	if (cc) {
		uint64_t seq = strtoull(PQgetvalue(r, 0, 2), NULL, 10);
		behind = parked_behind(&t, PQgetvalue(r, 0, 1), seq);
		o = t.failed ? -1 : decide_and_apply(&t, cc, PQgetvalue(r, 0, 1), behind, NULL, why, whylen);
	}
	if (o > OUT_APPLIED && rollback_cc(&t) < 0)
		o = -1;
	if (o < 0)
		goto done;
	snprintf(timeout, sizeof(timeout), "%ld", h->cfg.cc_park_timeout);
	{
		/* parked with nothing before it for longer than the timeout: failed (objects that never came) */
		const char *p[5] = { pk, state_name(o), why, timeout, behind ? "t" : "f" };
		PGresult *u = q(&t, "UPDATE cc_log l SET state = n.s, operator_item = n.s IN ('conflict', 'failed'), "
				    "state_reason = $3, attempts = l.attempts + 1, "
				    "applied_at = CASE WHEN $2 = 'applied' THEN now() END "
				    "FROM (SELECT CASE WHEN $2 = 'parked' AND NOT $5::boolean AND "
				    "  received_at < now() - make_interval(secs => $4::double precision) "
				    "  THEN 'failed' ELSE $2 END AS s FROM cc_log WHERE pk = $1::bigint) n "
				    "WHERE l.pk = $1::bigint RETURNING l.state",
				 5, p);
		if (u && PQntuples(u) == 1 && strcmp(PQgetvalue(u, 0, 0), "failed") == 0 && o == OUT_PARKED)
			o = OUT_FAILED;
		PQclear(u);
	}
	if (state)
		snprintf(state, 16, "%s", state_name(o));
record:
	if (op) {
		char outcome[300];
		if (strcmp(op->action, "retry") == 0)
			snprintf(outcome, sizeof(outcome), "%s%s%.250s", state ? state : "", why[0] ? ": " : "", why);
		else
			snprintf(outcome, sizeof(outcome), "%s (%.250s)", state ? state : "", why);
		const char *p[6] = { op->operator_name, op->action, pk, PQgetvalue(r, 0, 4), op->reason, outcome };
		x(&t, "INSERT INTO operator_action (operator_name, action, target_kind, target_pk, study_uid, reason, "
		      "outcome) VALUES ($1, $2, 'cc', $3::bigint, $4, $5, $6)",
		  6, p);
	}
	x(&t, "COMMIT", 0, NULL);
	if (t.failed) {
		o = -1;
		goto done;
	}
	in_txn = 0;
	if (op)
		DH_INFO("cc %s:%s: %s by %s (%s): now %s", spoke, PQgetvalue(r, 0, 2), op->action, op->operator_name,
			op->reason, state ? state : "");
	else if (o == OUT_APPLIED)
		DH_INFO("parked cc %s:%s applied", spoke, PQgetvalue(r, 0, 2));
	else if (o >= OUT_CONFLICT)
		DH_WARN("parked cc %s:%s %s: %s", spoke, PQgetvalue(r, 0, 2), state_name(o), why);
done:
	if (o < 0 && !t.err.msg[0])
		snprintf(t.err.msg, sizeof(t.err.msg), "out of memory");
	*err = t.err;
	if (in_txn)
		PQclear(PQexec(c, "ROLLBACK"));
	PQclear(r);
	dh_cc_free(cc);
	free(body);
	return o;
}

int cc_apply_operator(hub *h, const char *pk, const cc_operator_req *req, char state[16], char *why, size_t whylen)
{
	dh_db_err e;
	PGconn *c;
	int rc = -1;

	memset(&e, 0, sizeof(e));
	state[0] = '\0';
	if (!req || !req->action || !req->reason || !req->reason[0] || !req->operator_name ||
	    (strcmp(req->action, "retry") && strcmp(req->action, "resolve") && strcmp(req->action, "discard"))) {
		snprintf(why, whylen, "bad request: action retry|resolve|discard, an operator and a reason are required");
		return -1;
	}
	if (!(c = dh_db_get(h->db, &e))) {
		snprintf(why, whylen, "index database unavailable: %s", e.msg);
		return -1;
	}
	int o = retry_one(h, c, pk, req, state, why, whylen, &e);
	if (o < 0)
		snprintf(why, whylen, "%s", e.msg);
	else
		rc = o == OUT_NONE ? 1 : 0;
	dh_db_put(h->db, c, o < 0 && dh_db_conn_lost(c, &e));
	return rc;
}

int cc_apply_retry_parked(struct hub *h, int *applied, char *err, size_t errlen)
{
	dh_db_err e;
	PGconn *c;
	PGresult *r;
	int rc = 0, lost = 0;

	memset(&e, 0, sizeof(e));
	if (applied)
		*applied = 0;
	if (!(c = dh_db_get(h->db, &e))) {
		snprintf(err, errlen, "index database unavailable: %s", e.msg);
		return -1;
	}
	r = dh_db_query(c, "SELECT pk FROM cc_log WHERE state = 'parked' ORDER BY spoke_id, sequence", 0, NULL, &e);
	if (!r) {
		snprintf(err, errlen, "%s", e.msg);
		lost = dh_db_conn_lost(c, &e);
		dh_db_put(h->db, c, lost);
		return -1;
	}
	for (int i = 0; i < PQntuples(r) && !h->stop; i++) {
		char why[256];
		int o = retry_one(h, c, PQgetvalue(r, i, 0), NULL, NULL, why, sizeof(why), &e);
		if (o < 0) {
			snprintf(err, errlen, "%s", e.msg);
			lost = dh_db_conn_lost(c, &e);
			rc = -1;
			break;
		}
		if (o == OUT_APPLIED && applied)
			(*applied)++;
	}
	PQclear(r);
	dh_db_put(h->db, c, lost);
	return rc;
}

/* ---- the worker ------------------------------------------------------------ */

struct cc_worker {
	hub *h;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	atomic_int woken;
	int stop;
};

static void *worker_main(void *arg)
{
	cc_worker *w = arg;
	hub *h = w->h;
	long interval = h->cfg.cc_retry_interval > 0 ? h->cfg.cc_retry_interval : 30;
	for (;;) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += interval;
		pthread_mutex_lock(&w->mu);
		while (!w->stop && !atomic_load(&w->woken)) {
			if (pthread_cond_timedwait(&w->cv, &w->mu, &until) == ETIMEDOUT)
				break;
		}
		int stop = w->stop;
		pthread_mutex_unlock(&w->mu);
		if (stop || h->stop)
			break;
		atomic_store(&w->woken, 0);
		char err[512];
		if (cc_apply_retry_parked(h, NULL, err, sizeof(err)) < 0)
			DH_ERROR("retrying parked cc: %s", err);
		/* ingest wakes us per object: at most a few passes per second */
		struct timespec pause = { 0, 300 * 1000 * 1000 };
		nanosleep(&pause, NULL);
	}
	return NULL;
}

int cc_apply_start(struct hub *h)
{
	cc_worker *w = calloc(1, sizeof(*w));
	if (!w)
		return -1;
	w->h = h;
	atomic_init(&w->woken, 1); /* one pass at start: cc parked before a restart */
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
		pthread_mutex_destroy(&w->mu);
		pthread_cond_destroy(&w->cv);
		free(w);
		return -1;
	}
	h->cc_worker = w;
	return 0;
}

void cc_apply_stop(struct hub *h)
{
	cc_worker *w = h->cc_worker;
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	free(w);
	h->cc_worker = NULL;
}

void cc_apply_wake(struct hub *h)
{
	cc_worker *w = h->cc_worker;
	if (!w || atomic_exchange(&w->woken, 1))
		return; /* a wake-up is pending already */
	pthread_mutex_lock(&w->mu);
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}
