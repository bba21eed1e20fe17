/*
 * capture.c - the spoke's ledger and its changes (see capture.h).
 *
 * NOTES
 * Every operation follows the same course inside one transaction (tx_*):
 * lock spoke_state (serialises captures: checks, UIDs and the sequence
 * belong to one state), load the live ledger rows it touches, check the
 * request, plan the new UIDs, take the next sequence, build the cc from
 * the rows as they were (old UIDs, old values), change the rows, store the
 * cc in cc_history and outbox, NOTIFY dh_outbox, COMMIT. Any failure rolls
 * the whole transaction back, so an invalid request consumes no sequence.
 *
 * The tracked attributes are one table (tracked[]) in the column order of
 * ledger_instance; the SQL column lists below must follow it.
 */
#include "capture.h"

#include "cc.h"
#include "db.h"
#include "uid.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------ */
/* tracked attributes */

#define NATTR 15
enum { LV_PATIENT = 1, LV_STUDY = 2, LV_SERIES = 3, LV_INSTANCE = 4 };
enum { IX_PATIENT_ID = 0, IX_ISSUER = 1, IX_PATIENT_NAME = 2, IX_ACCESSION = 8, IX_MODALITY = 11,
       IX_INSTANCE_NUMBER = 14, N_PATIENT_STUDY = 11 };

static const struct tracked {
	const char *col, *keyword;
	uint32_t tag;
	const char *vr;
	int level;
} tracked[NATTR] = {
	{ "patient_id", "PatientID", 0x00100020u, "LO", LV_PATIENT },
	{ "issuer", "IssuerOfPatientID", 0x00100021u, "LO", LV_PATIENT },
	{ "patient_name", "PatientName", 0x00100010u, "PN", LV_PATIENT },
	{ "birth_date", "PatientBirthDate", 0x00100030u, "DA", LV_PATIENT },
	{ "sex", "PatientSex", 0x00100040u, "CS", LV_PATIENT },
	{ "study_id", "StudyID", 0x00200010u, "SH", LV_STUDY },
	{ "study_date", "StudyDate", 0x00080020u, "DA", LV_STUDY },
	{ "study_time", "StudyTime", 0x00080030u, "TM", LV_STUDY },
	{ "accession", "AccessionNumber", 0x00080050u, "SH", LV_STUDY },
	{ "referring_physician", "ReferringPhysicianName", 0x00080090u, "PN", LV_STUDY },
	{ "study_description", "StudyDescription", 0x00081030u, "LO", LV_STUDY },
	{ "modality", "Modality", 0x00080060u, "CS", LV_SERIES },
	{ "series_number", "SeriesNumber", 0x00200011u, "IS", LV_SERIES },
	{ "series_description", "SeriesDescription", 0x0008103Eu, "LO", LV_SERIES },
	{ "instance_number", "InstanceNumber", 0x00200013u, "IS", LV_INSTANCE },
};

#define ATTR_COLS                                                                                  \
	"patient_id, issuer, patient_name, birth_date, sex, study_id, study_date, study_time, "    \
	"accession, referring_physician, study_description, modality, series_number, "            \
	"series_description, instance_number"

static int tracked_index(uint32_t tag)
{
	for (int i = 0; i < NATTR; i++)
		if (tracked[i].tag == tag)
			return i;
	return -1;
}

const char *capture_attr_keyword(uint32_t tag)
{
	int i = tracked_index(tag);

	return i < 0 ? NULL : tracked[i].keyword;
}

int capture_attr_parse(const char *name, uint32_t *tag, char *err, size_t errlen)
{
	unsigned g, e;
	int n = 0;

	for (int i = 0; i < NATTR; i++)
		if (strcasecmp(name, tracked[i].keyword) == 0) {
			*tag = tracked[i].tag;
			return 0;
		}
	if ((sscanf(name, "(%4x,%4x)%n", &g, &e, &n) == 2 || sscanf(name, "%4x,%4x%n", &g, &e, &n) == 2) &&
	    name[n] == '\0') {
		*tag = (g << 16) | e;
		if (tracked_index(*tag) >= 0)
			return 0;
		snprintf(err, errlen, "attribute (%04X,%04X) is not tracked by the ledger; the tracked ones are "
			 "patient, study, series and instance keys such as PatientName or StudyDescription", g, e);
		return -1;
	}
	snprintf(err, errlen, "unknown attribute '%s' (want gggg,eeee or a keyword such as PatientName)", name);
	return -1;
}

/* ------------------------------------------------------------------ */
/* small containers */

typedef struct {
	char **v;
	size_t n, cap;
} strlist;

static int sl_has(const strlist *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], s) == 0)
			return 1;
	return 0;
}

/* Adds a copy of s unless present. Returns 0 or -1 (no memory). */
static int sl_add(strlist *l, const char *s)
{
	if (sl_has(l, s))
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 8;
		char **v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -1;
		l->v = v;
		l->cap = cap;
	}
	if (!(l->v[l->n] = strdup(s)))
		return -1;
	l->n++;
	return 0;
}

static void sl_free(strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* old -> new UID pairs, in the order they were added */
typedef struct {
	char **old, **neu;
	size_t n, cap;
} uidmap;

static const char *um_get(const uidmap *m, const char *old)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->old[i], old) == 0)
			return m->neu[i];
	return NULL;
}

/* Appends old -> uid (NULL: a fresh UID). Returns the new UID or NULL. */
static const char *um_push(uidmap *m, const char *old, const char *uid)
{
	char fresh[DH_UID_MAX + 1];

	if (!uid) {
		if (dh_uid_generate(fresh) != 0)
			return NULL;
		uid = fresh;
	}
	if (m->n == m->cap) {
		size_t cap = m->cap ? 2 * m->cap : 8;
		char **o = realloc(m->old, cap * sizeof(*o)), **nw;

		if (!o)
			return NULL;
		m->old = o;
		if (!(nw = realloc(m->neu, cap * sizeof(*nw))))
			return NULL;
		m->neu = nw;
		m->cap = cap;
	}
	m->old[m->n] = strdup(old);
	m->neu[m->n] = strdup(uid);
	if (!m->old[m->n] || !m->neu[m->n]) {
		free(m->old[m->n]);
		free(m->neu[m->n]);
		return NULL;
	}
	return m->neu[m->n++];
}

/* The UID old maps to, assigning one (old itself when keep) the first time. */
static const char *um_assign(uidmap *m, const char *old, int keep)
{
	const char *have = um_get(m, old);

	return have ? have : um_push(m, old, keep ? old : NULL);
}

static void um_free(uidmap *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->old[i]), free(m->neu[i]);
	free(m->old);
	free(m->neu);
	memset(m, 0, sizeof(*m));
}

/* ------------------------------------------------------------------ */
/* ledger rows */

typedef struct {
	long long pk;
	char *sop, *series, *study;
	char *v[NATTR];
	int dirty;  /* to be written back */
	int mark;   /* scratch for the operation */
} lrow;

typedef struct {
	lrow *r;
	size_t n;
} rowset;

static void rows_free(rowset *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->r[i].sop), free(s->r[i].series), free(s->r[i].study);
		for (int k = 0; k < NATTR; k++)
			free(s->r[i].v[k]);
	}
	free(s->r);
	memset(s, 0, sizeof(*s));
}

static int set_s(char **field, const char *value)
{
	char *copy = strdup(value ? value : "");

	if (!copy)
		return -1;
	free(*field);
	*field = copy;
	return 0;
}

static lrow *rows_find_sop(const rowset *s, const char *sop)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->r[i].sop, sop) == 0)
			return &s->r[i];
	return NULL;
}

/* ------------------------------------------------------------------ */
/* the transaction */

typedef struct {
	PGconn *c;
	const spoke_config *cfg;
	const char *op_name, *reason;
	capture_result *res;
	char *err;
	size_t errlen;
	int open;
} tx;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int
tx_fail(tx *t, const char *fmt, ...)
{
	va_list ap;

	if (t->err && t->errlen) {
		va_start(ap, fmt);
		vsnprintf(t->err, t->errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int tx_exec(tx *t, const char *sql, int n, const char *const *p)
{
	dh_db_err e;

	memset(&e, 0, sizeof(e));
	if (dh_db_exec(t->c, sql, n, p, &e) != 0)
		return tx_fail(t, "database: %s", e.msg);
	return 0;
}

static PGresult *tx_query(tx *t, const char *sql, int n, const char *const *p)
{
	dh_db_err e;
	PGresult *r;

	memset(&e, 0, sizeof(e));
	r = dh_db_query(t->c, sql, n, p, &e);
	if (!r)
		tx_fail(t, "database: %s", e.msg);
	return r;
}

static void res_clear(capture_result *r)
{
	if (!r)
		return;
	free(r->items);
	memset(r, 0, sizeof(*r));
}

void capture_result_free(capture_result *r)
{
	res_clear(r);
}

static int res_add(tx *t, const char *key, const char *old, const char *uid)
{
	capture_result *r = t->res;
	capture_assigned *v;

	if (!r)
		return 0;
	if (!(v = realloc(r->items, (r->n_items + 1) * sizeof(*v))))
		return tx_fail(t, "out of memory");
	r->items = v;
	v += r->n_items++;
	memset(v, 0, sizeof(*v));
	snprintf(v->key, sizeof(v->key), "%s", key);
	snprintf(v->old, sizeof(v->old), "%s", old ? old : "");
	snprintf(v->uid, sizeof(v->uid), "%s", uid);
	return 0;
}

static int tx_begin(tx *t, PGconn *c, const spoke_config *cfg, const capture_who *who, capture_result *res,
		    char *err, size_t errlen)
{
	memset(t, 0, sizeof(*t));
	t->c = c;
	t->cfg = cfg;
	t->op_name = who && who->operator_name ? who->operator_name : "";
	t->reason = who && who->reason ? who->reason : "";
	t->res = res;
	t->err = err;
	t->errlen = errlen;
	if (err && errlen)
		err[0] = '\0';
	if (res)
		memset(res, 0, sizeof(*res));
	if (!c || !cfg)
		return tx_fail(t, "no database connection or configuration");
	if (tx_exec(t, "BEGIN", 0, NULL) != 0)
		return -1;
	t->open = 1;
	return tx_exec(t, "SELECT last_sequence FROM spoke_state WHERE id = 1 FOR UPDATE", 0, NULL);
}

/* Commits when ok (NOTIFY first when a cc was recorded), else rolls back.
 * Returns 0 when committed. */
static int tx_end(tx *t, int ok)
{
	dh_db_err e;

	if (!t->open)
		return -1;
	t->open = 0;
	memset(&e, 0, sizeof(e));
	if (ok && t->res && t->res->n_cc > 0 && tx_exec(t, "NOTIFY dh_outbox", 0, NULL) != 0)
		ok = 0;
	if (ok && tx_exec(t, "COMMIT", 0, NULL) == 0)
		return 0;
	(void)dh_db_exec(t->c, "ROLLBACK", 0, NULL, &e);
	res_clear(t->res);
	return -1;
}

static int tx_next_seq(tx *t, uint64_t *seq)
{
	PGresult *r = tx_query(t, "UPDATE spoke_state SET last_sequence = last_sequence + 1 WHERE id = 1 "
				  "RETURNING last_sequence", 0, NULL);

	if (!r)
		return -1;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return tx_fail(t, "spoke_state has no row");
	}
	*seq = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return 0;
}

/* A new cc with the next sequence (the caller fills and records it). */
static dh_cc *tx_new_cc(tx *t, dh_cc_kind kind)
{
	uint64_t seq = 0;
	dh_cc *cc = NULL;

	if (tx_next_seq(t, &seq) != 0)
		return NULL;
	if (dh_cc_new(&cc, kind, t->cfg->id, seq, NULL, 0, t->op_name, t->reason) != 0)
		tx_fail(t, "cannot create a cc (out of memory)");
	return cc;
}

/* Encodes cc and stores it in cc_history and outbox; takes cc (frees it). */
static int tx_record(tx *t, dh_cc *cc, const strlist *studies)
{
	static const char hex[] = "0123456789abcdef";
	uint8_t *buf = NULL;
	size_t len = 0, alen = 3;
	char *hexbody = NULL, *arr = NULL, seq[24], created[32], why[256];
	int rc = -1;

	if (!cc)
		return -1;
	if (dh_cc_encode(cc, &buf, &len) != 0) {
		dh_cc_validate(cc, why, sizeof(why));
		tx_fail(t, "the change is not valid: %s", why);
		goto done;
	}
	if (!(hexbody = malloc(2 * len + 3)))
		goto oom;
	hexbody[0] = '\\', hexbody[1] = 'x';
	for (size_t i = 0; i < len; i++) {
		hexbody[2 + 2 * i] = hex[buf[i] >> 4];
		hexbody[3 + 2 * i] = hex[buf[i] & 15];
	}
	hexbody[2 + 2 * len] = '\0';
	for (size_t i = 0; i < studies->n; i++)
		alen += strlen(studies->v[i]) + 3;
	if (!(arr = malloc(alen)))
		goto oom;
	/* UIDs are digits and dots (the cc validated them), so quoting is enough */
	strcpy(arr, "{");
	for (size_t i = 0; i < studies->n; i++) {
		if (i)
			strcat(arr, ",");
		strcat(arr, "\"");
		strcat(arr, studies->v[i]);
		strcat(arr, "\"");
	}
	strcat(arr, "}");
	snprintf(seq, sizeof(seq), "%" PRIu64, dh_cc_sequence(cc));
	snprintf(created, sizeof(created), "%" PRId64, dh_cc_created_at_ms(cc));
	{
		const char *p[8] = { seq, dh_cc_uuid(cc), dh_cc_kind_name(dh_cc_get_kind(cc)), t->op_name,
				     t->reason, created, hexbody, arr };

		if (tx_exec(t,
			    "INSERT INTO cc_history (sequence, uuid, kind, operator_name, reason, created_at, "
			    "body, studies) VALUES ($1, $2::uuid, $3, $4, $5, to_timestamp($6::bigint / 1000.0), "
			    "$7::bytea, $8::text[])",
			    8, p) != 0)
			goto done;
		if (tx_exec(t, "INSERT INTO outbox (sequence, body) VALUES ($1, $2::bytea)", 2,
			    (const char *const[]){ seq, hexbody }) != 0)
			goto done;
	}
	if (t->res) {
		t->res->sequence = dh_cc_sequence(cc);
		t->res->n_cc++;
	}
	rc = 0;
	goto done;
oom:
	tx_fail(t, "out of memory");
done:
	free(buf);
	free(hexbody);
	free(arr);
	dh_cc_free(cc);
	return rc;
}

/* Loads the live rows matching `where` (a literal SQL condition on bound
 * parameters), ordered by pk. */
static int rows_load(tx *t, const char *where, int n, const char *const *p, rowset *out)
{
	char sql[1024];
	PGresult *r;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	snprintf(sql, sizeof(sql),
		 "SELECT pk, sop_uid, series_uid, study_uid, " ATTR_COLS
		 " FROM ledger_instance WHERE deleted_at IS NULL AND (%s) ORDER BY pk", where);
	if (!(r = tx_query(t, sql, n, p)))
		return -1;
	if (PQntuples(r) > 0 && !(out->r = calloc((size_t)PQntuples(r), sizeof(*out->r)))) {
		tx_fail(t, "out of memory");
		goto done;
	}
	for (int i = 0; i < PQntuples(r); i++) {
		lrow *w = &out->r[out->n++];

		w->pk = strtoll(PQgetvalue(r, i, 0), NULL, 10);
		if (set_s(&w->sop, PQgetvalue(r, i, 1)) || set_s(&w->series, PQgetvalue(r, i, 2)) ||
		    set_s(&w->study, PQgetvalue(r, i, 3))) {
			tx_fail(t, "out of memory");
			goto done;
		}
		for (int k = 0; k < NATTR; k++)
			if (set_s(&w->v[k], PQgetvalue(r, i, 4 + k))) {
				tx_fail(t, "out of memory");
				goto done;
			}
	}
	rc = 0;
done:
	PQclear(r);
	if (rc != 0)
		rows_free(out);
	return rc;
}

/* 1 when the ledger holds a live object of study, 0 not, -1 error. */
static int study_exists(tx *t, const char *study)
{
	PGresult *r = tx_query(t, "SELECT 1 FROM ledger_instance WHERE study_uid = $1 AND deleted_at IS NULL LIMIT 1",
			       1, &study);
	int n;

	if (!r)
		return -1;
	n = PQntuples(r) > 0;
	PQclear(r);
	return n;
}

/* Writes the current identity and attributes of row back. */
static int row_write(tx *t, const lrow *w)
{
	char pk[24];
	const char *p[4 + NATTR];

	snprintf(pk, sizeof(pk), "%lld", w->pk);
	p[0] = pk, p[1] = w->sop, p[2] = w->series, p[3] = w->study;
	for (int k = 0; k < NATTR; k++)
		p[4 + k] = w->v[k];
	return tx_exec(t,
		       "UPDATE ledger_instance SET sop_uid = $2, series_uid = $3, study_uid = $4, "
		       "patient_id = $5, issuer = $6, patient_name = $7, birth_date = $8, sex = $9, "
		       "study_id = $10, study_date = $11, study_time = $12, accession = $13, "
		       "referring_physician = $14, study_description = $15, modality = $16, "
		       "series_number = $17, series_description = $18, instance_number = $19 WHERE pk = $1",
		       4 + NATTR, p);
}

static int rows_write_dirty(tx *t, rowset *s)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->r[i].dirty) {
			if (row_write(t, &s->r[i]) != 0)
				return -1;
			if (t->res)
				t->res->n_objects++;
		}
	return 0;
}

/* Inserts a copy of row `from` (same stored file) with the identity and
 * attributes of w; never forwarded (fwd_state 'cc'). */
static int row_copy(tx *t, long long from, const lrow *w)
{
	char pk[24];
	const char *p[4 + NATTR];

	snprintf(pk, sizeof(pk), "%lld", from);
	p[0] = pk, p[1] = w->sop, p[2] = w->series, p[3] = w->study;
	for (int k = 0; k < NATTR; k++)
		p[4 + k] = w->v[k];
	if (tx_exec(t,
		    "INSERT INTO ledger_instance (sop_uid, series_uid, study_uid, sop_class_uid, received_sop_uid, "
		    "received_series_uid, received_study_uid, " ATTR_COLS ", file_path, file_size, md5, "
		    "transfer_syntax, source_ae, fwd_state, dataset_digest) SELECT $2, $3, $4, sop_class_uid, "
		    "received_sop_uid, received_series_uid, received_study_uid, $5, $6, $7, $8, $9, $10, $11, $12, "
		    "$13, $14, $15, $16, $17, $18, $19, file_path, file_size, md5, transfer_syntax, source_ae, 'cc', "
		    "dataset_digest "
		    "FROM ledger_instance WHERE pk = $1",
		    4 + NATTR, p) != 0)
		return -1;
	if (t->res)
		t->res->n_objects++;
	return 0;
}

/* ------------------------------------------------------------------ */
/* checks */

static int uid_arg(tx *t, const char *what, const char *uid)
{
	if (!uid || !*uid)
		return tx_fail(t, "%s: a UID is required", what);
	if (!dh_uid_valid(uid))
		return tx_fail(t, "%s: \"%.70s\" is not a valid UID", what, uid);
	return 0;
}

/* DICOM SH text: 1..16 characters, no control characters, no backslash. */
static int accession_arg(tx *t, const char *acc)
{
	size_t len = acc ? strlen(acc) : 0;

	if (len == 0 || len > 16)
		return tx_fail(t, "accession number \"%.40s\" must have 1 to 16 characters", acc ? acc : "");
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)acc[i] < 0x20 || acc[i] == 0x7f || acc[i] == '\\')
			return tx_fail(t, "accession number \"%s\" has a control character or backslash", acc);
	return 0;
}

/* A new study UID: given (valid, not in the ledger) or generated into buf. */
static int new_study_uid(tx *t, const char *given, char buf[DH_UID_MAX + 1])
{
	int ex;

	if (!given) {
		if (dh_uid_generate(buf) != 0)
			return tx_fail(t, "cannot generate a UID");
		return 0;
	}
	if (uid_arg(t, "new study", given) != 0)
		return -1;
	if ((ex = study_exists(t, given)) < 0)
		return -1;
	if (ex)
		return tx_fail(t, "study %s is already in the ledger", given);
	snprintf(buf, DH_UID_MAX + 1, "%s", given);
	return 0;
}

/*
 * Checks attrs: tracked tags, allowed at one of the levels in mask (bit per
 * LV_*), no tag twice, values without control characters other than
 * none. Fills idx[i] with the tracked index of attrs[i].
 */
static int attrs_check(tx *t, const capture_attr *attrs, size_t n, unsigned mask, const char *where, int *idx)
{
	static const char *const lname[] = { "", "patient", "study", "series", "instance" };

	for (size_t i = 0; i < n; i++) {
		int k = tracked_index(attrs[i].tag);
		const char *v = attrs[i].value ? attrs[i].value : "";

		if (k < 0)
			return tx_fail(t, "attribute (%04X,%04X) is not tracked by the ledger", attrs[i].tag >> 16,
				       attrs[i].tag & 0xffffu);
		if (!(mask & (1u << tracked[k].level)))
			return tx_fail(t, "%s is a %s attribute; it cannot be changed %s", tracked[k].keyword,
				       lname[tracked[k].level], where);
		for (size_t j = 0; j < i; j++)
			if (attrs[j].tag == attrs[i].tag)
				return tx_fail(t, "%s is given twice", tracked[k].keyword);
		if (strlen(v) > 1024)
			return tx_fail(t, "value of %s is too long", tracked[k].keyword);
		for (const char *c = v; *c; c++)
			if ((unsigned char)*c < 0x20)
				return tx_fail(t, "value of %s has a control character", tracked[k].keyword);
		idx[i] = k;
	}
	return 0;
}

#define M(lv) (1u << (lv))

/* ------------------------------------------------------------------ */
/* capture_object */

static const char *nz(const char *s)
{
	return s ? s : "";
}

static int insert_object(tx *t, const capture_object_info *o)
{
	char size[24];
	const char *p[25] = {
		nz(o->sop_uid), nz(o->series_uid), nz(o->study_uid), nz(o->sop_class_uid),
		nz(o->patient_id), nz(o->issuer), nz(o->patient_name), nz(o->birth_date), nz(o->sex),
		nz(o->study_id), nz(o->study_date), nz(o->study_time), nz(o->accession),
		nz(o->referring_physician), nz(o->study_description), nz(o->modality), nz(o->series_number),
		nz(o->series_description), nz(o->instance_number), nz(o->file_path), size, nz(o->md5),
		nz(o->transfer_syntax), nz(o->source_ae), nz(o->dataset_digest),
	};

	snprintf(size, sizeof(size), "%lld", o->file_size);
	return tx_exec(t,
		       "INSERT INTO ledger_instance (sop_uid, series_uid, study_uid, sop_class_uid, "
		       "received_sop_uid, received_series_uid, received_study_uid, " ATTR_COLS
		       ", file_path, file_size, md5, transfer_syntax, source_ae, dataset_digest) VALUES ($1, $2, $3, $4, "
		       "$1, $2, $3, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, "
		       "$21::bigint, $22, $23, $24, $25)",
		       25, p);
}

/* A PostgreSQL array literal of UIDs (digits and dots only: no quoting needed); malloc'd or NULL. */
static char *uid_array(const char *const *v, size_t n)
{
	size_t len = 3;
	for (size_t i = 0; i < n; i++) {
		if (!dh_uid_valid(v[i]))
			return NULL;
		len += strlen(v[i]) + 1;
	}
	char *s = malloc(len), *p = s;
	if (!s)
		return NULL;
	*p++ = '{';
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "%s%s", i ? "," : "", v[i]);
	strcpy(p, "}");
	return s;
}

/*
 * IOCM, in the transaction that records the new object o: a rejection
 * note hides the live rows it names and is remembered; an object rejected
 * before it came is recorded as deleted at once.
 */
static int object_iocm(tx *t, const capture_object_info *o)
{
	int rc = -1;
	char *sops = NULL, *studies = NULL;
	if (o->n_rejected) {
		sops = uid_array(o->rejected_sops, o->n_rejected);
		studies = uid_array(o->rejected_studies, o->n_rejected);
		if (!sops || !studies) {
			tx_fail(t, "rejection note %s: invalid or too many references", nz(o->sop_uid));
			goto done;
		}
		const char *p[4] = { sops, studies, nz(o->sop_uid), nz(o->rejection_code) };
		if (tx_exec(t, "INSERT INTO rejected_instance (sop_uid, study_uid, note_sop_uid, title_code) "
			       "SELECT DISTINCT u.sop, u.st, $3, $4 FROM unnest($1::text[], $2::text[]) AS u(sop, st) "
			       "ON CONFLICT DO NOTHING", 4, p) != 0 ||
		    tx_exec(t, "UPDATE ledger_instance l SET deleted_at = now() FROM unnest($1::text[], $2::text[]) "
			       "AS u(sop, st) WHERE l.deleted_at IS NULL AND l.sop_uid = u.sop AND l.study_uid = u.st",
			    2, p) != 0)
			goto done;
	}
	{
		const char *p[2] = { nz(o->sop_uid), nz(o->study_uid) };
		if (tx_exec(t, "UPDATE ledger_instance l SET deleted_at = now() WHERE l.deleted_at IS NULL "
			       "AND l.sop_uid = $1 AND l.study_uid = $2 AND EXISTS (SELECT 1 FROM rejected_instance r "
			       "WHERE r.sop_uid = $1 AND r.study_uid = $2)", 2, p) != 0)
			goto done;
	}
	rc = 0;
done:
	free(sops);
	free(studies);
	return rc;
}

/* Records one ATTRIBUTE_CHANGE of row r's values against ov[lo..hi). */
static int object_change(tx *t, int level, const lrow *r, const char *const *ov, int lo, int hi,
			 const strlist *studies)
{
	dh_cc *cc = tx_new_cc(t, DH_CC_ATTRIBUTE_CHANGE);

	if (!cc)
		return -1;
	if (dh_cc_attr_set_target(cc, (dh_cc_level)level, NULL, NULL, r->study,
				  level >= LV_SERIES ? r->series : NULL, level >= LV_INSTANCE ? r->sop : NULL)) {
		dh_cc_free(cc);
		return tx_fail(t, "out of memory");
	}
	for (int k = lo; k < hi; k++)
		if (strcmp(r->v[k], ov[k]) != 0 &&
		    dh_cc_add_attr(cc, -1, tracked[k].tag, tracked[k].vr, r->v[k], ov[k]) != 0) {
			dh_cc_free(cc);
			return tx_fail(t, "out of memory");
		}
	return tx_record(t, cc, studies);
}

static int differs(const lrow *r, const char *const *ov, int lo, int hi)
{
	for (int k = lo; k < hi; k++)
		if (strcmp(r->v[k], ov[k]) != 0)
			return 1;
	return 0;
}

/* The received object is known in study r->study with another series set:
 * records the changed attributes. */
static int object_same_study(tx *t, const capture_object_info *o, const char *const *ov, capture_verdict *v)
{
	rowset s = { 0 };
	strlist studies = { 0 };
	lrow *r;
	const char *p[1] = { o->study_uid };
	int dp, ds, di, rc = -1;

	if (rows_load(t, "study_uid = $1", 1, p, &s) != 0)
		goto done;
	if (!(r = rows_find_sop(&s, o->sop_uid))) {
		tx_fail(t, "ledger changed under us");
		goto done;
	}
	dp = differs(r, ov, 0, N_PATIENT_STUDY);
	ds = differs(r, ov, N_PATIENT_STUDY, IX_INSTANCE_NUMBER);
	di = differs(r, ov, IX_INSTANCE_NUMBER, NATTR);
	if (!dp && !ds && !di) {
		*v = CAPTURE_SAME;
		rc = 0;
		goto done;
	}
	if (sl_add(&studies, r->study) != 0) {
		tx_fail(t, "out of memory");
		goto done;
	}
	/* the cc read the old values from r: record them before changing rows */
	if ((dp && object_change(t, LV_STUDY, r, ov, 0, N_PATIENT_STUDY, &studies)) ||
	    (ds && object_change(t, LV_SERIES, r, ov, N_PATIENT_STUDY, IX_INSTANCE_NUMBER, &studies)) ||
	    (di && object_change(t, LV_INSTANCE, r, ov, IX_INSTANCE_NUMBER, NATTR, &studies)))
		goto done;
	/* patient and study values for the whole study, series values for
	 * the series, the instance number for the object itself */
	for (size_t i = 0; i < s.n; i++) {
		lrow *w = &s.r[i];
		int same_series = strcmp(w->series, o->series_uid) == 0;

		for (int k = 0; k < NATTR; k++) {
			int lv = tracked[k].level;

			if (!(lv <= LV_STUDY || (lv == LV_SERIES && same_series) || w == r) ||
			    strcmp(w->v[k], ov[k]) == 0)
				continue;
			if (set_s(&w->v[k], ov[k]) != 0) {
				tx_fail(t, "out of memory");
				goto done;
			}
			w->dirty = 1;
		}
	}
	if (rows_write_dirty(t, &s) != 0)
		goto done;
	*v = CAPTURE_CHANGED;
	rc = 0;
done:
	rows_free(&s);
	sl_free(&studies);
	return rc;
}

/* Policy split: the object held as r (another study) moves to o's study. */
static int object_split(tx *t, const capture_object_info *o, const char *const *ov, const lrow *held)
{
	rowset s = { 0 };
	strlist studies = { 0 };
	lrow *r;
	dh_cc *cc = NULL;
	char series[DH_UID_MAX + 1];
	const char *p[1] = { held->study };
	int exists, partial = 0, rc = -1;

	if (rows_load(t, "study_uid = $1", 1, p, &s) != 0 || (exists = study_exists(t, o->study_uid)) < 0)
		goto done;
	if (!(r = rows_find_sop(&s, held->sop))) {
		tx_fail(t, "ledger changed under us");
		goto done;
	}
	for (size_t i = 0; i < s.n; i++)
		partial |= &s.r[i] != r && strcmp(s.r[i].series, r->series) == 0;
	snprintf(series, sizeof(series), "%s", o->series_uid);
	/* a series may not span two studies: the moved part gets its own UID */
	if (strcmp(series, r->series) == 0 && partial && dh_uid_generate(series) != 0) {
		tx_fail(t, "cannot generate a UID");
		goto done;
	}
	if (sl_add(&studies, r->study) || sl_add(&studies, o->study_uid) || !(cc = tx_new_cc(t, DH_CC_SPLIT)) ||
	    dh_cc_split_set(cc, r->study, o->study_uid, !exists) ||
	    dh_cc_add_instance(cc, -1, r->study, r->series, r->sop) ||
	    dh_cc_add_uid_map(cc, -1, DH_CC_LEVEL_STUDY, r->study, o->study_uid) ||
	    (strcmp(series, r->series) != 0 && dh_cc_add_uid_map(cc, -1, DH_CC_LEVEL_SERIES, r->series, series))) {
		if (t->errlen && !t->err[0])
			tx_fail(t, "out of memory");
		goto done;
	}
	for (int k = 0; k < N_PATIENT_STUDY; k++)
		if (dh_cc_add_attr(cc, -1, tracked[k].tag, tracked[k].vr, r->v[k], ov[k]) != 0) {
			tx_fail(t, "out of memory");
			goto done;
		}
	rc = tx_record(t, cc, &studies);
	cc = NULL; /* tx_record took it */
	if (rc != 0)
		goto done;
	rc = -1;
	if (set_s(&r->study, o->study_uid) || set_s(&r->series, series)) {
		tx_fail(t, "out of memory");
		goto done;
	}
	for (int k = 0; k < N_PATIENT_STUDY; k++)
		if (set_s(&r->v[k], ov[k])) {
			tx_fail(t, "out of memory");
			goto done;
		}
	r->dirty = 1;
	if (rows_write_dirty(t, &s) != 0)
		goto done;
	rc = 0;
done:
	dh_cc_free(cc);
	rows_free(&s);
	sl_free(&studies);
	return rc;
}

int capture_object(PGconn *c, const spoke_config *cfg, const capture_object_info *o, capture_verdict *v,
		   char *why, size_t whylen, char *err, size_t errlen)
{
	capture_result res;
	rowset held = { 0 };
	tx t;
	const char *ov[NATTR];
	const lrow *same = NULL;
	int rc = -1;

	if (why && whylen)
		why[0] = '\0';
	*v = CAPTURE_NEW;
	if (tx_begin(&t, c, cfg, NULL, &res, err, errlen) != 0)
		goto done;
	t.op_name = "spoked";
	t.reason = "the spoke PACS sent the object again";
	if (!o->sop_uid || !*o->sop_uid || !o->study_uid || !*o->study_uid || !o->series_uid) {
		tx_fail(&t, "object without SOP, series or study UID");
		goto done;
	}
	{
		const char *vals[NATTR] = { o->patient_id, o->issuer, o->patient_name, o->birth_date, o->sex,
					    o->study_id, o->study_date, o->study_time, o->accession,
					    o->referring_physician, o->study_description, o->modality,
					    o->series_number, o->series_description, o->instance_number };

		for (int k = 0; k < NATTR; k++)
			ov[k] = nz(vals[k]);
	}
	if (rows_load(&t, "sop_uid = $1", 1, &o->sop_uid, &held) != 0)
		goto done;
	for (size_t i = 0; i < held.n && !same; i++)
		if (strcmp(held.r[i].study, o->study_uid) == 0)
			same = &held.r[i];
	if (held.n == 0) {
		if (insert_object(&t, o) != 0 || object_iocm(&t, o) != 0)
			goto done;
		*v = CAPTURE_NEW;
	} else if (same && strcmp(same->series, o->series_uid) != 0) {
		*v = CAPTURE_REJECTED;
		if (why && whylen)
			snprintf(why, whylen, "SOP instance %s is held in series %s of this study; an object does "
				 "not move between series", o->sop_uid, same->series);
	} else if (same) {
		if (object_same_study(&t, o, ov, v) != 0)
			goto done;
		if (why && whylen)
			snprintf(why, whylen, *v == CAPTURE_SAME ? "SOP instance %s already held unchanged"
								 : "SOP instance %s already held; changed attributes "
								   "recorded as a change", o->sop_uid);
	} else if (cfg->sop_conflict == SPOKE_CONFLICT_SPLIT) {
		if (object_split(&t, o, ov, &held.r[0]) != 0)
			goto done;
		*v = CAPTURE_SPLIT;
		if (why && whylen)
			snprintf(why, whylen, "SOP instance %s was held in study %s; moved to study %s (split)",
				 o->sop_uid, held.r[0].study, o->study_uid);
	} else if (cfg->sop_conflict == SPOKE_CONFLICT_FORWARD) {
		if (insert_object(&t, o) != 0 || object_iocm(&t, o) != 0)
			goto done;
		*v = CAPTURE_NEW;
		if (why && whylen)
			snprintf(why, whylen, "SOP instance %s is also held in study %s; stored again (forward)",
				 o->sop_uid, held.r[0].study);
	} else {
		*v = CAPTURE_REJECTED;
		if (why && whylen)
			snprintf(why, whylen, "SOP instance %s is already held in study %s; a second copy under "
				 "study %s is refused (kb-8993)", o->sop_uid, held.r[0].study, o->study_uid);
	}
	rc = 0;
done:
	if (t.open && tx_end(&t, rc == 0) != 0)
		rc = -1;
	capture_result_free(&res);
	rows_free(&held);
	return rc;
}

/* ------------------------------------------------------------------ */
/* split */

int capture_split(PGconn *c, const spoke_config *cfg, const capture_who *who, const capture_split_req *req,
		  capture_result *res, char *err, size_t errlen)
{
	rowset src = { 0 }, tgt = { 0 };
	strlist studies = { 0 };
	uidmap series = { 0 };
	dh_cc *cc = NULL;
	tx t;
	char target[DH_UID_MAX + 1];
	const char *tv[NATTR] = { 0 };
	lrow *first = NULL;
	int *idx = NULL, rc = -1;

	if (tx_begin(&t, c, cfg, who, res, err, errlen) != 0)
		goto done;
	if (uid_arg(&t, "source study", req->study_uid) != 0)
		goto done;
	if (req->n_sops == 0) {
		tx_fail(&t, "split: no instances given");
		goto done;
	}
	if (req->n_attrs && !(idx = calloc(req->n_attrs, sizeof(*idx)))) {
		tx_fail(&t, "out of memory");
		goto done;
	}
	if (attrs_check(&t, req->attrs, req->n_attrs, M(LV_PATIENT) | M(LV_STUDY), "by a split", idx) != 0)
		goto done;
	if (rows_load(&t, "study_uid = $1", 1, &req->study_uid, &src) != 0)
		goto done;
	if (src.n == 0) {
		tx_fail(&t, "study %s is not in the ledger", req->study_uid);
		goto done;
	}
	for (size_t i = 0; i < req->n_sops; i++) {
		lrow *w = rows_find_sop(&src, req->sops[i]);

		if (!w) {
			tx_fail(&t, "SOP instance %.70s is not a live object of study %s", req->sops[i],
				req->study_uid);
			goto done;
		}
		if (w->mark) {
			tx_fail(&t, "SOP instance %s is given twice", w->sop);
			goto done;
		}
		w->mark = 1;
		if (!first)
			first = w;
	}
	if (req->target_new || !req->target_study_uid) {
		if (new_study_uid(&t, req->target_study_uid, target) != 0)
			goto done;
		for (int k = 0; k < NATTR; k++)
			tv[k] = first->v[k];
		for (size_t i = 0; i < req->n_attrs; i++)
			tv[idx[i]] = nz(req->attrs[i].value);
	} else {
		if (uid_arg(&t, "target study", req->target_study_uid) != 0)
			goto done;
		if (strcmp(req->target_study_uid, req->study_uid) == 0) {
			tx_fail(&t, "split: the target is the source study");
			goto done;
		}
		if (rows_load(&t, "study_uid = $1", 1, &req->target_study_uid, &tgt) != 0)
			goto done;
		if (tgt.n == 0) {
			tx_fail(&t, "target study %s is not in the ledger (a new study needs --new)",
				req->target_study_uid);
			goto done;
		}
		if (req->n_attrs) {
			tx_fail(&t, "split into the existing study %s takes its patient and study attributes; "
				"change them with modify", req->target_study_uid);
			goto done;
		}
		snprintf(target, sizeof(target), "%s", req->target_study_uid);
		for (int k = 0; k < NATTR; k++)
			tv[k] = tgt.r[0].v[k];
	}
	/* series plan: kept when moved whole, else a new UID for the moved part */
	for (size_t i = 0; i < src.n; i++) {
		lrow *w = &src.r[i];
		int whole = 1;

		if (!w->mark || um_get(&series, w->series))
			continue;
		for (size_t j = 0; j < src.n; j++)
			if (!src.r[j].mark && strcmp(src.r[j].series, w->series) == 0)
				whole = 0;
		if (!um_assign(&series, w->series, whole)) {
			tx_fail(&t, "out of memory");
			goto done;
		}
	}
	if (sl_add(&studies, req->study_uid) || sl_add(&studies, target) || !(cc = tx_new_cc(&t, DH_CC_SPLIT)) ||
	    dh_cc_split_set(cc, req->study_uid, target, tgt.n == 0) ||
	    dh_cc_add_uid_map(cc, -1, DH_CC_LEVEL_STUDY, req->study_uid, target))
		goto oom;
	for (size_t i = 0; i < src.n; i++)
		if (src.r[i].mark && dh_cc_add_instance(cc, -1, src.r[i].study, src.r[i].series, src.r[i].sop))
			goto oom;
	for (size_t i = 0; i < series.n; i++)
		if (strcmp(series.old[i], series.neu[i]) != 0 &&
		    dh_cc_add_uid_map(cc, -1, DH_CC_LEVEL_SERIES, series.old[i], series.neu[i]))
			goto oom;
	for (int k = 0; k < N_PATIENT_STUDY; k++)
		if (dh_cc_add_attr(cc, -1, tracked[k].tag, tracked[k].vr, first->v[k], tv[k]))
			goto oom;
	for (size_t i = 0; i < src.n; i++) {
		lrow *w = &src.r[i];

		if (!w->mark)
			continue;
		if (set_s(&w->series, um_get(&series, w->series)) || set_s(&w->study, target))
			goto oom;
		for (int k = 0; k < N_PATIENT_STUDY; k++)
			if (w != first && set_s(&w->v[k], tv[k]))
				goto oom;
		w->dirty = 1;
	}
	/* first last: tv may point into it */
	for (int k = 0; k < N_PATIENT_STUDY; k++)
		if (tv[k] != first->v[k] && set_s(&first->v[k], tv[k]))
			goto oom;
	if (rows_write_dirty(&t, &src) != 0)
		goto done;
	rc = tx_record(&t, cc, &studies);
	cc = NULL; /* taken */
	if (rc != 0)
		goto done;
	rc = -1;
	if (res_add(&t, "study", "", target) != 0)
		goto done;
	for (size_t i = 0; i < series.n; i++)
		if (strcmp(series.old[i], series.neu[i]) != 0 &&
		    res_add(&t, "series", series.old[i], series.neu[i]) != 0)
			goto done;
	rc = 0;
	goto done;
oom:
	if (t.errlen && !t.err[0])
		tx_fail(&t, "out of memory");
done:
	dh_cc_free(cc);
	if (t.open && tx_end(&t, rc == 0) != 0)
		rc = -1;
	rows_free(&src);
	rows_free(&tgt);
	sl_free(&studies);
	um_free(&series);
	free(idx);
	return rc;
}

/* ------------------------------------------------------------------ */
/* merge */

int capture_merge(PGconn *c, const spoke_config *cfg, const capture_who *who, const capture_merge_req *req,
		  capture_result *res, char *err, size_t errlen)
{
	rowset all = { 0 }, one = { 0 }, dst = { 0 };
	strlist studies = { 0 };
	uidmap series = { 0 }, sops = { 0 };
	dh_cc *cc = NULL;
	tx t;
	char dest[DH_UID_MAX + 1];
	char **dv = NULL;
	int rc = -1;

	if (tx_begin(&t, c, cfg, who, res, err, errlen) != 0)
		goto done;
	if (req->n_sources == 0) {
		tx_fail(&t, "merge: no source studies given");
		goto done;
	}
	for (size_t i = 0; i < req->n_sources; i++) {
		lrow *grown;

		if (uid_arg(&t, "source study", req->sources[i]) != 0)
			goto done;
		if (sl_has(&studies, req->sources[i])) {
			tx_fail(&t, "source study %s is given twice", req->sources[i]);
			goto done;
		}
		if (sl_add(&studies, req->sources[i]) != 0)
			goto oom;
		if (rows_load(&t, "study_uid = $1", 1, &req->sources[i], &one) != 0)
			goto done;
		if (one.n == 0) {
			tx_fail(&t, "source study %s is not in the ledger", req->sources[i]);
			goto done;
		}
		if (!(grown = realloc(all.r, (all.n + one.n) * sizeof(*grown))))
			goto oom;
		all.r = grown;
		memcpy(all.r + all.n, one.r, one.n * sizeof(*one.r));
		all.n += one.n;
		free(one.r); /* the strings now belong to all */
		memset(&one, 0, sizeof(one));
	}
	if (req->destination_new || !req->destination) {
		if (new_study_uid(&t, req->destination, dest) != 0)
			goto done;
		dv = all.r[0].v;
	} else {
		if (uid_arg(&t, "destination study", req->destination) != 0)
			goto done;
		if (sl_has(&studies, req->destination)) {
			tx_fail(&t, "merge: the destination %s is also a source", req->destination);
			goto done;
		}
		if (rows_load(&t, "study_uid = $1", 1, &req->destination, &dst) != 0)
			goto done;
		if (dst.n == 0) {
			tx_fail(&t, "destination study %s is not in the ledger (a new study needs --new)",
				req->destination);
			goto done;
		}
		snprintf(dest, sizeof(dest), "%s", req->destination);
		dv = dst.r[0].v;
	}
	for (size_t i = 0; i < all.n; i++)
		if (!um_assign(&series, all.r[i].series, 0) || !um_assign(&sops, all.r[i].sop, 0))
			goto oom;
	if (!(cc = tx_new_cc(&t, DH_CC_MERGE)) || dh_cc_merge_set_destination(cc, dest))
		goto oom;
	for (size_t i = 0; i < req->n_sources; i++)
		if (dh_cc_merge_add_source(cc, req->sources[i]) ||
		    dh_cc_add_uid_map(cc, -1, DH_CC_LEVEL_STUDY, req->sources[i], dest))
			goto oom;
	for (size_t i = 0; i < all.n; i++)
		if (dh_cc_add_instance(cc, -1, all.r[i].study, all.r[i].series, all.r[i].sop))
			goto oom;
	for (size_t i = 0; i < series.n; i++)
		if (dh_cc_add_uid_map(cc, -1, DH_CC_LEVEL_SERIES, series.old[i], series.neu[i]))
			goto oom;
	for (size_t i = 0; i < sops.n; i++)
		if (dh_cc_add_uid_map(cc, -1, DH_CC_LEVEL_INSTANCE, sops.old[i], sops.neu[i]))
			goto oom;
	if (sl_add(&studies, dest) != 0)
		goto oom;
	{
		/* copy the destination values first: dv may point into all.r[0] */
		char *keep[N_PATIENT_STUDY] = { 0 };
		int bad = 0;

		for (int k = 0; k < N_PATIENT_STUDY; k++)
			bad |= !(keep[k] = strdup(dv[k]));
		for (size_t i = 0; i < all.n && !bad; i++) {
			lrow *w = &all.r[i];

			bad |= set_s(&w->series, um_get(&series, w->series)) || set_s(&w->sop, um_get(&sops, w->sop)) ||
			       set_s(&w->study, dest);
			for (int k = 0; k < N_PATIENT_STUDY; k++)
				bad |= set_s(&w->v[k], keep[k]);
			w->dirty = 1;
		}
		for (int k = 0; k < N_PATIENT_STUDY; k++)
			free(keep[k]);
		if (bad)
			goto oom;
	}
	if (rows_write_dirty(&t, &all) != 0)
		goto done;
	rc = tx_record(&t, cc, &studies);
	cc = NULL; /* taken */
	if (rc != 0)
		goto done;
	rc = -1;
	if (res_add(&t, "study", "", dest) != 0)
		goto done;
	for (size_t i = 0; i < series.n; i++)
		if (res_add(&t, "series", series.old[i], series.neu[i]) != 0)
			goto done;
	for (size_t i = 0; i < sops.n; i++)
		if (res_add(&t, "sop", sops.old[i], sops.neu[i]) != 0)
			goto done;
	rc = 0;
	goto done;
oom:
	if (t.errlen && !t.err[0])
		tx_fail(&t, "out of memory");
done:
	dh_cc_free(cc);
	if (t.open && tx_end(&t, rc == 0) != 0)
		rc = -1;
	rows_free(&all);
	rows_free(&one);
	rows_free(&dst);
	sl_free(&studies);
	um_free(&series);
	um_free(&sops);
	return rc;
}

/* ------------------------------------------------------------------ */
/* segment */

int capture_segment(PGconn *c, const spoke_config *cfg, const capture_who *who,
		    const capture_segment_req *req, capture_result *res, char *err, size_t errlen)
{
	rowset src = { 0 };
	strlist studies = { 0 };
	uidmap *tseries = NULL; /* per target */
	dh_cc *cc = NULL;
	tx t;
	char (*tuid)[DH_UID_MAX + 1] = NULL;
	int **owner = NULL; /* owner[target][i]: 1 the object keeps its SOP UID there */
	lrow ***objs = NULL; /* objs[target][i]: the ledger row of sops[i] */
	uidmap copies = { 0 };
	size_t nt = req->n_targets;
	int rc = -1;

	if (tx_begin(&t, c, cfg, who, res, err, errlen) != 0)
		goto done;
	if (uid_arg(&t, "source study", req->study_uid) != 0)
		goto done;
	if (nt < (req->keep_source ? 1u : 2u)) {
		tx_fail(&t, "segment needs at least %d targets%s", req->keep_source ? 1 : 2,
			req->keep_source ? "" : " (one, when the source is kept)");
		goto done;
	}
	if (!(tseries = calloc(nt, sizeof(*tseries))) || !(tuid = calloc(nt, sizeof(*tuid))) ||
	    !(owner = calloc(nt, sizeof(*owner))) || !(objs = calloc(nt, sizeof(*objs))))
		goto oom;
	if (rows_load(&t, "study_uid = $1", 1, &req->study_uid, &src) != 0)
		goto done;
	if (src.n == 0) {
		tx_fail(&t, "study %s is not in the ledger", req->study_uid);
		goto done;
	}
	if (sl_add(&studies, req->study_uid) != 0)
		goto oom;
	for (size_t ti = 0; ti < nt; ti++) {
		const capture_segment_target *tg = &req->targets[ti];

		if (accession_arg(&t, tg->accession) != 0 || new_study_uid(&t, tg->study_uid, tuid[ti]) != 0)
			goto done;
		if (sl_has(&studies, tuid[ti])) {
			tx_fail(&t, "segment: study %s is named twice or is the source", tuid[ti]);
			goto done;
		}
		if (sl_add(&studies, tuid[ti]) != 0)
			goto oom;
		if (tg->n_sops == 0) {
			tx_fail(&t, "segment: target %s has no instances", tg->accession);
			goto done;
		}
		if (!(owner[ti] = calloc(tg->n_sops, sizeof(int))) ||
		    !(objs[ti] = calloc(tg->n_sops, sizeof(lrow *))))
			goto oom;
		for (size_t i = 0; i < tg->n_sops; i++) {
			lrow *w = rows_find_sop(&src, tg->sops[i]);

			if (!w) {
				tx_fail(&t, "SOP instance %.70s is not a live object of study %s", tg->sops[i],
					req->study_uid);
				goto done;
			}
			for (size_t j = 0; j < i; j++)
				if (objs[ti][j] == w) {
					tx_fail(&t, "SOP instance %s is given twice for %s", w->sop, tg->accession);
					goto done;
				}
			objs[ti][i] = w;
			/* mark: 0 unassigned, 1 assigned (its SOP UID taken by a target when breaking) */
			if (!req->keep_source && !w->mark)
				owner[ti][i] = 1;
			w->mark = 1;
		}
	}
	if (!req->keep_source)
		for (size_t i = 0; i < src.n; i++)
			if (!src.r[i].mark) {
				tx_fail(&t, "segment without keeping the source must assign every object of the "
					"study; SOP instance %s is in no target", src.r[i].sop);
				goto done;
			}
	/* series plan per target: kept only where every object of the series
	 * arrives with its own SOP UID */
	for (size_t ti = 0; ti < nt; ti++)
		for (size_t i = 0; i < req->targets[ti].n_sops; i++) {
			const lrow *w = objs[ti][i];
			int keep = 1;

			if (um_get(&tseries[ti], w->series))
				continue;
			for (size_t j = 0; j < src.n && keep; j++) {
				int found = 0;

				if (strcmp(src.r[j].series, w->series) != 0)
					continue;
				for (size_t k = 0; k < req->targets[ti].n_sops; k++)
					found |= objs[ti][k] == &src.r[j] && owner[ti][k];
				keep = found;
			}
			if (!um_assign(&tseries[ti], w->series, keep))
				goto oom;
		}
	if (!(cc = tx_new_cc(&t, DH_CC_SEGMENT)) || dh_cc_segment_set_source(cc, req->study_uid, req->keep_source))
		goto oom;
	for (size_t ti = 0; ti < nt; ti++) {
		const capture_segment_target *tg = &req->targets[ti];
		int x = dh_cc_segment_add_target(cc, tuid[ti], tg->accession);

		if (x < 0 || dh_cc_add_uid_map(cc, x, DH_CC_LEVEL_STUDY, req->study_uid, tuid[ti]))
			goto oom;
		for (size_t i = 0; i < tg->n_sops; i++)
			if (dh_cc_add_instance(cc, x, objs[ti][i]->study, objs[ti][i]->series, objs[ti][i]->sop))
				goto oom;
		for (size_t i = 0; i < tseries[ti].n; i++)
			if (strcmp(tseries[ti].old[i], tseries[ti].neu[i]) != 0 &&
			    dh_cc_add_uid_map(cc, x, DH_CC_LEVEL_SERIES, tseries[ti].old[i], tseries[ti].neu[i]))
				goto oom;
		for (size_t i = 0; i < tg->n_sops; i++) {
			char uid[DH_UID_MAX + 1];

			if (owner[ti][i])
				continue;
			/* copies holds (old, copy UID) for each (ti, i) in loop order */
			if (dh_uid_generate(uid) != 0 || !um_push(&copies, objs[ti][i]->sop, uid) ||
			    dh_cc_add_uid_map(cc, x, DH_CC_LEVEL_INSTANCE, objs[ti][i]->sop, uid))
				goto oom;
		}
	}
	/* the ledger: copies first (they read the rows as they were), then moves */
	{
		size_t cx = 0;

		for (size_t ti = 0; ti < nt; ti++)
			for (size_t i = 0; i < req->targets[ti].n_sops; i++) {
				lrow *w = objs[ti][i], cp;

				if (owner[ti][i])
					continue;
				cp = *w;
				cp.sop = copies.neu[cx++];
				cp.series = (char *)um_get(&tseries[ti], w->series);
				cp.study = tuid[ti];
				cp.v[IX_ACCESSION] = (char *)req->targets[ti].accession;
				if (row_copy(&t, w->pk, &cp) != 0)
					goto done;
				if (res_add(&t, "sop", w->sop, cp.sop) != 0)
					goto done;
			}
		for (size_t ti = 0; ti < nt; ti++)
			for (size_t i = 0; i < req->targets[ti].n_sops; i++) {
				lrow *w = objs[ti][i];

				if (!owner[ti][i])
					continue;
				if (set_s(&w->series, um_get(&tseries[ti], w->series)) || set_s(&w->study, tuid[ti]) ||
				    set_s(&w->v[IX_ACCESSION], req->targets[ti].accession))
					goto oom;
				w->dirty = 1;
			}
	}
	if (rows_write_dirty(&t, &src) != 0)
		goto done;
	rc = tx_record(&t, cc, &studies);
	cc = NULL; /* taken */
	if (rc != 0)
		goto done;
	rc = -1;
	for (size_t ti = 0; ti < nt; ti++) {
		if (res_add(&t, "target", req->targets[ti].accession, tuid[ti]) != 0)
			goto done;
		for (size_t i = 0; i < tseries[ti].n; i++)
			if (strcmp(tseries[ti].old[i], tseries[ti].neu[i]) != 0 &&
			    res_add(&t, "series", tseries[ti].old[i], tseries[ti].neu[i]) != 0)
				goto done;
	}
	rc = 0;
	goto done;
oom:
	if (t.errlen && !t.err[0])
		tx_fail(&t, "out of memory");
done:
	dh_cc_free(cc);
	if (t.open && tx_end(&t, rc == 0) != 0)
		rc = -1;
	rows_free(&src);
	sl_free(&studies);
	um_free(&copies);
	for (size_t ti = 0; ti < nt; ti++) {
		if (tseries)
			um_free(&tseries[ti]);
		if (owner)
			free(owner[ti]);
		if (objs)
			free(objs[ti]);
	}
	free(tseries);
	free(tuid);
	free(owner);
	free(objs);
	return rc;
}

/* ------------------------------------------------------------------ */
/* modify */

int capture_modify(PGconn *c, const spoke_config *cfg, const capture_who *who, const capture_modify_req *req,
		   capture_result *res, char *err, size_t errlen)
{
	rowset s = { 0 };
	strlist studies = { 0 };
	dh_cc *cc = NULL;
	tx t;
	int *idx = NULL, *use = NULL, n_use = 0, rc = -1;
	unsigned mask;
	const char *where;

	if (tx_begin(&t, c, cfg, who, res, err, errlen) != 0)
		goto done;
	switch (req->level) {
	case DH_CC_LEVEL_PATIENT:
		if (!req->patient_id || !*req->patient_id) {
			tx_fail(&t, "modify: a patient ID is required");
			goto done;
		}
		mask = M(LV_PATIENT);
		where = "patient_id = $1";
		break;
	case DH_CC_LEVEL_STUDY:
		mask = M(LV_PATIENT) | M(LV_STUDY);
		where = "study_uid = $2";
		break;
	case DH_CC_LEVEL_SERIES:
		mask = M(LV_SERIES);
		where = "study_uid = $2 AND series_uid = $3";
		break;
	case DH_CC_LEVEL_INSTANCE:
		mask = M(LV_INSTANCE);
		where = "study_uid = $2 AND series_uid = $3 AND sop_uid = $4";
		break;
	default:
		tx_fail(&t, "modify: unknown level %d", req->level);
		goto done;
	}
	if ((req->level >= DH_CC_LEVEL_STUDY && uid_arg(&t, "study", req->study_uid)) ||
	    (req->level >= DH_CC_LEVEL_SERIES && uid_arg(&t, "series", req->series_uid)) ||
	    (req->level >= DH_CC_LEVEL_INSTANCE && uid_arg(&t, "SOP instance", req->sop_uid)))
		goto done;
	if (req->n_attrs == 0) {
		tx_fail(&t, "modify: no attributes given");
		goto done;
	}
	if (!(idx = calloc(req->n_attrs, sizeof(*idx))) || !(use = calloc(req->n_attrs, sizeof(*use))))
		goto oom;
	if (attrs_check(&t, req->attrs, req->n_attrs, mask,
			req->level == DH_CC_LEVEL_PATIENT  ? "at patient level"
			: req->level == DH_CC_LEVEL_STUDY  ? "at study level"
			: req->level == DH_CC_LEVEL_SERIES ? "at series level"
							   : "at instance level",
			idx) != 0)
		goto done;
	{
		/* unused leading parameters keep the numbering of `where` */
		const char *p[4] = { req->patient_id ? req->patient_id : "", req->study_uid ? req->study_uid : "",
				     req->series_uid ? req->series_uid : "", req->sop_uid ? req->sop_uid : "" };
		char sql[256];

		/* $1..$4 must all be referenced for PostgreSQL to type them */
		snprintf(sql, sizeof(sql), "%s AND $1::text IS NOT NULL AND $2::text IS NOT NULL AND "
			 "$3::text IS NOT NULL AND $4::text IS NOT NULL", where);
		if (rows_load(&t, sql, 4, p, &s) != 0)
			goto done;
	}
	if (s.n == 0) {
		if (req->level == DH_CC_LEVEL_PATIENT)
			tx_fail(&t, "no live object of patient %s in the ledger", req->patient_id);
		else
			tx_fail(&t, "no such live %s in the ledger", dh_cc_level_name(req->level));
		goto done;
	}
	for (size_t a = 0; a < req->n_attrs; a++)
		for (size_t i = 0; i < s.n && !use[a]; i++)
			if (strcmp(s.r[i].v[idx[a]], nz(req->attrs[a].value)) != 0)
				use[a] = 1, n_use++;
	if (n_use == 0) {
		tx_fail(&t, "nothing to change: the ledger already holds these values");
		goto done;
	}
	for (size_t i = 0; i < s.n; i++)
		if (sl_add(&studies, s.r[i].study) != 0)
			goto oom;
	if (!(cc = tx_new_cc(&t, DH_CC_ATTRIBUTE_CHANGE)))
		goto done;
	if (req->level == DH_CC_LEVEL_PATIENT
		    ? dh_cc_attr_set_target(cc, DH_CC_LEVEL_PATIENT, req->patient_id,
					    *s.r[0].v[IX_ISSUER] ? s.r[0].v[IX_ISSUER] : NULL, NULL, NULL, NULL)
		    : dh_cc_attr_set_target(cc, (dh_cc_level)req->level, NULL, NULL, req->study_uid,
					    req->level >= DH_CC_LEVEL_SERIES ? req->series_uid : NULL,
					    req->level >= DH_CC_LEVEL_INSTANCE ? req->sop_uid : NULL))
		goto oom;
	for (size_t a = 0; a < req->n_attrs; a++)
		if (use[a] && dh_cc_add_attr(cc, -1, req->attrs[a].tag, tracked[idx[a]].vr, s.r[0].v[idx[a]],
					     nz(req->attrs[a].value)))
			goto oom;
	for (size_t i = 0; i < s.n; i++)
		for (size_t a = 0; a < req->n_attrs; a++)
			if (use[a] && strcmp(s.r[i].v[idx[a]], nz(req->attrs[a].value)) != 0) {
				if (set_s(&s.r[i].v[idx[a]], req->attrs[a].value))
					goto oom;
				s.r[i].dirty = 1;
			}
	if (rows_write_dirty(&t, &s) != 0)
		goto done;
	rc = tx_record(&t, cc, &studies);
	cc = NULL; /* taken */
	goto done;
oom:
	if (t.errlen && !t.err[0])
		tx_fail(&t, "out of memory");
done:
	dh_cc_free(cc);
	if (t.open && tx_end(&t, rc == 0) != 0)
		rc = -1;
	rows_free(&s);
	sl_free(&studies);
	free(idx);
	free(use);
	return rc;
}

/* ------------------------------------------------------------------ */
/* delete */

int capture_delete(PGconn *c, const spoke_config *cfg, const capture_who *who, const capture_delete_req *req,
		   capture_result *res, char *err, size_t errlen)
{
	rowset s = { 0 };
	strlist studies = { 0 };
	dh_cc *cc = NULL;
	tx t;
	long long n = 0;
	int rc = -1;

	if (tx_begin(&t, c, cfg, who, res, err, errlen) != 0)
		goto done;
	if (uid_arg(&t, "study", req->study_uid) != 0 ||
	    (req->series_uid && uid_arg(&t, "series", req->series_uid) != 0))
		goto done;
	if (rows_load(&t, "study_uid = $1", 1, &req->study_uid, &s) != 0)
		goto done;
	if (s.n == 0) {
		tx_fail(&t, "study %s is not in the ledger", req->study_uid);
		goto done;
	}
	for (size_t i = 0; i < req->n_sops; i++) {
		lrow *w = rows_find_sop(&s, req->sops[i]);

		if (!w || (req->series_uid && strcmp(w->series, req->series_uid) != 0)) {
			tx_fail(&t, "SOP instance %.70s is not a live object of %s %s", req->sops[i],
				req->series_uid ? "series" : "study", req->series_uid ? req->series_uid : req->study_uid);
			goto done;
		}
		if (w->mark) {
			tx_fail(&t, "SOP instance %s is given twice", w->sop);
			goto done;
		}
		w->mark = 1;
	}
	if (req->n_sops == 0)
		for (size_t i = 0; i < s.n; i++)
			if (!req->series_uid || strcmp(s.r[i].series, req->series_uid) == 0)
				s.r[i].mark = 1, n++;
	if (req->n_sops == 0 && n == 0) {
		tx_fail(&t, "series %s is not a live series of study %s", req->series_uid, req->study_uid);
		goto done;
	}
	if (sl_add(&studies, req->study_uid) != 0 || !(cc = tx_new_cc(&t, DH_CC_DELETE)))
		goto oom;
	if (req->n_sops == 0) {
		if (dh_cc_add_instance(cc, -1, req->study_uid, req->series_uid, NULL))
			goto oom;
	} else {
		for (size_t i = 0; i < s.n; i++)
			if (s.r[i].mark && dh_cc_add_instance(cc, -1, s.r[i].study, s.r[i].series, s.r[i].sop))
				goto oom;
	}
	for (size_t i = 0; i < s.n; i++) {
		char pk[24];
		const char *p[1] = { pk };

		if (!s.r[i].mark)
			continue;
		snprintf(pk, sizeof(pk), "%lld", s.r[i].pk);
		if (tx_exec(&t, "UPDATE ledger_instance SET deleted_at = now() WHERE pk = $1", 1, p) != 0)
			goto done;
		if (res)
			res->n_objects++;
	}
	rc = tx_record(&t, cc, &studies);
	cc = NULL; /* taken */
	goto done;
oom:
	if (t.errlen && !t.err[0])
		tx_fail(&t, "out of memory");
done:
	dh_cc_free(cc);
	if (t.open && tx_end(&t, rc == 0) != 0)
		rc = -1;
	rows_free(&s);
	sl_free(&studies);
	return rc;
}

/* ------------------------------------------------------------------ */
/* fix-uid */

int capture_fixup(PGconn *c, const spoke_config *cfg, const capture_who *who, const capture_fixup_req *req,
		  capture_result *res, char *err, size_t errlen)
{
	rowset s = { 0 };
	strlist studies = { 0 };
	dh_cc *cc = NULL;
	tx t;
	char nu[DH_UID_MAX + 1];
	int *idx = NULL, rc = -1;

	if (tx_begin(&t, c, cfg, who, res, err, errlen) != 0)
		goto done;
	if (uid_arg(&t, "study", req->study_uid) != 0 || accession_arg(&t, req->accession) != 0)
		goto done;
	if (req->n_attrs && !(idx = calloc(req->n_attrs, sizeof(*idx))))
		goto oom;
	if (attrs_check(&t, req->attrs, req->n_attrs, M(LV_PATIENT) | M(LV_STUDY), "by a fix-up", idx) != 0)
		goto done;
	for (size_t i = 0; i < req->n_attrs; i++)
		if (idx[i] == IX_ACCESSION) {
			tx_fail(&t, "fix-uid: the accession number is the order's (--accession), not an attribute");
			goto done;
		}
	if (rows_load(&t, "study_uid = $1", 1, &req->study_uid, &s) != 0)
		goto done;
	if (s.n == 0) {
		tx_fail(&t, "study %s is not in the ledger", req->study_uid);
		goto done;
	}
	if (req->new_study_uid && strcmp(req->new_study_uid, req->study_uid) == 0) {
		tx_fail(&t, "fix-uid: the new study UID equals the old one");
		goto done;
	}
	if (new_study_uid(&t, req->new_study_uid, nu) != 0)
		goto done;
	if (sl_add(&studies, req->study_uid) || sl_add(&studies, nu) || !(cc = tx_new_cc(&t, DH_CC_UID_FIXUP)) ||
	    dh_cc_fixup_set(cc, req->study_uid, nu, req->accession))
		goto oom;
	for (size_t i = 0; i < req->n_attrs; i++)
		if (dh_cc_add_attr(cc, -1, req->attrs[i].tag, tracked[idx[i]].vr, s.r[0].v[idx[i]],
				   nz(req->attrs[i].value)))
			goto oom;
	for (size_t i = 0; i < s.n; i++) {
		lrow *w = &s.r[i];

		if (set_s(&w->study, nu) || set_s(&w->v[IX_ACCESSION], req->accession))
			goto oom;
		for (size_t a = 0; a < req->n_attrs; a++)
			if (set_s(&w->v[idx[a]], req->attrs[a].value))
				goto oom;
		w->dirty = 1;
	}
	if (rows_write_dirty(&t, &s) != 0)
		goto done;
	rc = tx_record(&t, cc, &studies);
	cc = NULL; /* taken */
	if (rc != 0)
		goto done;
	rc = res_add(&t, "study", "", nu);
	goto done;
oom:
	if (t.errlen && !t.err[0])
		tx_fail(&t, "out of memory");
done:
	dh_cc_free(cc);
	if (t.open && tx_end(&t, rc == 0) != 0)
		rc = -1;
	rows_free(&s);
	sl_free(&studies);
	free(idx);
	return rc;
}

/* ------------------------------------------------------------------ */
/* reading */

static PGresult *ro_query(PGconn *c, const char *sql, int n, const char *const *p, char *err, size_t errlen)
{
	dh_db_err e;
	PGresult *r;

	memset(&e, 0, sizeof(e));
	r = dh_db_query(c, sql, n, p, &e);
	if (!r)
		snprintf(err, errlen, "database: %s", e.msg);
	return r;
}

int capture_status_get(PGconn *c, capture_status *st, char *err, size_t errlen)
{
	PGresult *r = NULL;
	int rc = -1;

	memset(st, 0, sizeof(*st));
	if (!(r = ro_query(c,
			   "SELECT count(*) FILTER (WHERE deleted_at IS NULL AND fwd_state = 'pending'), "
			   "count(*) FILTER (WHERE deleted_at IS NULL AND fwd_state = 'sent'), "
			   "count(*) FILTER (WHERE deleted_at IS NULL AND fwd_state = 'committed'), "
			   "count(*) FILTER (WHERE deleted_at IS NULL AND fwd_state = 'failed'), "
			   "count(*) FILTER (WHERE deleted_at IS NULL AND fwd_state = 'cc'), "
			   "count(*) FILTER (WHERE deleted_at IS NOT NULL), "
			   "(SELECT count(*) FROM outbox), "
			   "(SELECT count(*) FROM cc_history WHERE state = 'refused'), "
			   "(SELECT last_sequence FROM spoke_state WHERE id = 1), "
			   "(SELECT acked_through FROM spoke_state WHERE id = 1), "
			   "(SELECT coalesce(to_char(last_ack_at, 'YYYY-MM-DD\"T\"HH24:MI:SSOF'), '') FROM spoke_state "
			   "WHERE id = 1) FROM ledger_instance",
			   0, NULL, err, errlen)))
		goto done;
	if (PQntuples(r) != 1) {
		snprintf(err, errlen, "status: unexpected answer");
		goto done;
	}
	st->pending = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	st->sent = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	st->committed = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
	st->failed = strtoll(PQgetvalue(r, 0, 3), NULL, 10);
	st->cc = strtoll(PQgetvalue(r, 0, 4), NULL, 10);
	st->deleted = strtoll(PQgetvalue(r, 0, 5), NULL, 10);
	st->outbox = strtoll(PQgetvalue(r, 0, 6), NULL, 10);
	st->refused = strtoll(PQgetvalue(r, 0, 7), NULL, 10);
	st->last_sequence = strtoull(PQgetvalue(r, 0, 8), NULL, 10);
	st->acked_through = strtoull(PQgetvalue(r, 0, 9), NULL, 10);
	snprintf(st->last_ack_at, sizeof(st->last_ack_at), "%s", PQgetvalue(r, 0, 10));
	PQclear(r);
	if (!(r = ro_query(c,
			   "SELECT sequence, kind, to_char(coalesce(acked_at, created_at), "
			   "'YYYY-MM-DD\"T\"HH24:MI:SSOF'), refusal FROM cc_history WHERE state = 'refused' "
			   "ORDER BY sequence DESC LIMIT 5",
			   0, NULL, err, errlen)))
		goto done;
	for (int i = 0; i < PQntuples(r) && i < 5; i++) {
		st->last_refusals[i].sequence = strtoull(PQgetvalue(r, i, 0), NULL, 10);
		snprintf(st->last_refusals[i].kind, sizeof(st->last_refusals[i].kind), "%s", PQgetvalue(r, i, 1));
		snprintf(st->last_refusals[i].at, sizeof(st->last_refusals[i].at), "%s", PQgetvalue(r, i, 2));
		snprintf(st->last_refusals[i].refusal, sizeof(st->last_refusals[i].refusal), "%s",
			 PQgetvalue(r, i, 3));
		st->n_last_refusals++;
	}
	rc = 0;
done:
	PQclear(r);
	return rc;
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

int capture_ledger_print(PGconn *c, const char *study_uid, int json, FILE *out, char *err, size_t errlen)
{
	PGresult *r = NULL;
	int rc = -1;

	if (!study_uid) {
		static const char *const names[] = { "study", "patient_id", "patient_name", "accession", "series",
						     "instances" };

		if (!(r = ro_query(c,
				   "SELECT study_uid, min(patient_id), min(patient_name), min(accession), "
				   "count(DISTINCT series_uid), count(*) FROM ledger_instance WHERE deleted_at IS NULL "
				   "GROUP BY study_uid ORDER BY study_uid",
				   0, NULL, err, errlen)))
			goto done;
		if (json)
			fputs("{\"studies\":[", out);
		for (int i = 0; i < PQntuples(r); i++) {
			if (json) {
				fputs(i ? ",{" : "{", out);
				for (int k = 0; k < 6; k++) {
					fprintf(out, "%s\"%s\":", k ? "," : "", names[k]);
					if (k >= 4)
						fputs(PQgetvalue(r, i, k), out);
					else
						json_str(out, PQgetvalue(r, i, k));
				}
				fputc('}', out);
			} else {
				for (int k = 0; k < 6; k++)
					fprintf(out, "%s%s", k ? "\t" : "", PQgetvalue(r, i, k));
				fputc('\n', out);
			}
		}
		if (json)
			fputs("]}\n", out);
		rc = 0;
		goto done;
	}
	if (!(r = ro_query(c,
			   "SELECT study_uid, series_uid, sop_uid, sop_class_uid, " ATTR_COLS
			   ", received_sop_uid, fwd_state, md5 FROM ledger_instance WHERE deleted_at IS NULL AND "
			   "study_uid = $1 ORDER BY series_uid, sop_uid",
			   1, &study_uid, err, errlen)))
		goto done;
	if (PQntuples(r) == 0) {
		snprintf(err, errlen, "study %s is not in the ledger", study_uid);
		goto done;
	}
	if (json)
		fputs("{\"instances\":[", out);
	for (int i = 0; i < PQntuples(r); i++) {
		static const char *const head[] = { "study", "series", "sop", "sop_class" };
		static const char *const tail[] = { "received_sop", "fwd_state", "md5" };

		if (json) {
			fputs(i ? ",{" : "{", out);
			for (int k = 0; k < 4 + NATTR + 3; k++) {
				const char *name = k < 4 ? head[k] : k < 4 + NATTR ? tracked[k - 4].keyword : tail[k - 4 - NATTR];

				fprintf(out, "%s\"%s\":", k ? "," : "", name);
				json_str(out, PQgetvalue(r, i, k));
			}
			fputc('}', out);
		} else {
			for (int k = 0; k < 4 + NATTR + 3; k++)
				fprintf(out, "%s%s", k ? "\t" : "", PQgetvalue(r, i, k));
			fputc('\n', out);
		}
	}
	if (json)
		fputs("]}\n", out);
	rc = 0;
done:
	PQclear(r);
	return rc;
}
