/*
 * qr_query.c - C-FIND identifier → SQL (see qr_query.h).
 *
 * Every key of Tables 2-25..2-28 has an entry in a catalogue: its level,
 * the column (under the aliases p patient, st study, se series, i instance)
 * and its kind of matching. Conditions of the query level and the levels
 * above go into the main WHERE over the joined rows; conditions on lower
 * levels (relational queries) become one EXISTS over the levels below.
 * Values only ever reach the SQL as $n parameters. The index this runs
 * against is described in sql/hub/002_query.sql; the operators chosen here
 * (lower(col) LIKE/=, ~>=~, ~<=~) are the ones its indexes serve.
 */
#include "nearline.h"
#include "qr_query.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcm.h"

typedef enum {
	M_WILD,     /* wild card matching, case-sensitive */
	M_WILD_CI,  /* wild card matching, case-insensitive (PN, descriptions, institution) */
	M_SINGLE,   /* single value matching */
	M_UIDS,     /* list of UID matching */
	M_DATE,     /* range matching, a date (its time partner in pair) */
	M_TIME,     /* range matching, a time (its date partner in pair) */
	M_MODS,     /* Modalities in Study: any of the listed values */
	M_RETURN    /* returned only */
} mkind;

typedef struct {
	uint32_t tag;
	int level;
	const char *col;   /* matching column; return expression unless ret is set */
	mkind m;
	uint32_t pair;     /* M_DATE/M_TIME partner, 0 if none */
	const char *ret;   /* return expression when it differs from col */
} keydef;

#define T DH_TAG
static const keydef KEYS[] = {
	/* patient */
	{ T(0x0010, 0x0010), QR_LEVEL_PATIENT, "p.patient_name", M_WILD_CI, 0, NULL },
	{ T(0x0010, 0x0020), QR_LEVEL_PATIENT, "p.patient_id", M_WILD, 0, NULL },
	{ T(0x0010, 0x0021), QR_LEVEL_PATIENT, "p.issuer", M_SINGLE, 0, NULL },
	{ T(0x0010, 0x0030), QR_LEVEL_PATIENT, "p.birth_date", M_DATE, 0, NULL },
	{ T(0x0010, 0x0040), QR_LEVEL_PATIENT, "p.sex", M_WILD, 0, NULL },
	{ T(0x0020, 0x1200), QR_LEVEL_PATIENT, NULL, M_RETURN, 0,
	  "(SELECT count(*) FROM study x WHERE x.patient_fk = p.pk)::text" },
	{ T(0x0020, 0x1202), QR_LEVEL_PATIENT, NULL, M_RETURN, 0,
	  "(SELECT count(*) FROM study x JOIN series y ON y.study_fk = x.pk WHERE x.patient_fk = p.pk)::text" },
	{ T(0x0020, 0x1204), QR_LEVEL_PATIENT, NULL, M_RETURN, 0,
	  "(SELECT count(*) FROM study x JOIN series y ON y.study_fk = x.pk "
	  "JOIN instance z ON z.series_fk = y.pk WHERE x.patient_fk = p.pk)::text" },
	/* study */
	{ T(0x0020, 0x000D), QR_LEVEL_STUDY, "st.study_uid", M_UIDS, 0, NULL },
	{ T(0x0020, 0x0010), QR_LEVEL_STUDY, "st.study_id", M_WILD, 0, NULL },
	{ T(0x0008, 0x0020), QR_LEVEL_STUDY, "st.study_date", M_DATE, T(0x0008, 0x0030), NULL },
	{ T(0x0008, 0x0030), QR_LEVEL_STUDY, "st.study_time", M_TIME, T(0x0008, 0x0020), NULL },
	{ T(0x0008, 0x0050), QR_LEVEL_STUDY, "st.accession", M_WILD, 0, NULL },
	{ T(0x0008, 0x0061), QR_LEVEL_STUDY, NULL, M_MODS, 0,
	  "(SELECT string_agg(DISTINCT x.modality, '\\') FROM series x "
	  "WHERE x.study_fk = st.pk AND x.modality <> '')" },
	{ T(0x0008, 0x0090), QR_LEVEL_STUDY, "st.referring_physician", M_WILD_CI, 0, NULL },
	{ T(0x0008, 0x1030), QR_LEVEL_STUDY, "st.description", M_WILD_CI, 0, NULL },
	{ T(0x0032, 0x000A), QR_LEVEL_STUDY, "st.status_id", M_SINGLE, 0, NULL },
	{ T(0x0020, 0x1000), QR_LEVEL_STUDY, NULL, M_RETURN, 0,
	  "(SELECT count(*) FROM series x WHERE x.study_fk = st.pk)::text" },
	/* (0020,1206) is the standard tag; IMPAX's Table 2-26 names (0020,1000): both answer */
	{ T(0x0020, 0x1206), QR_LEVEL_STUDY, NULL, M_RETURN, 0,
	  "(SELECT count(*) FROM series x WHERE x.study_fk = st.pk)::text" },
	{ T(0x0020, 0x1208), QR_LEVEL_STUDY, NULL, M_RETURN, 0,
	  "(SELECT count(*) FROM series x JOIN instance y ON y.series_fk = x.pk WHERE x.study_fk = st.pk)::text" },
	{ T(0x0008, 0x0056), QR_LEVEL_STUDY, NULL, M_RETURN, 0, "'ONLINE'::text" },
	/* series */
	{ T(0x0020, 0x000E), QR_LEVEL_SERIES, "se.series_uid", M_UIDS, 0, NULL },
	{ T(0x0020, 0x0011), QR_LEVEL_SERIES, "se.series_number", M_WILD, 0, NULL },
	{ T(0x0008, 0x0060), QR_LEVEL_SERIES, "se.modality", M_WILD, 0, NULL },
	{ T(0x0008, 0x0080), QR_LEVEL_SERIES, "se.institution", M_WILD_CI, 0, NULL },
	{ T(0x0008, 0x1040), QR_LEVEL_SERIES, "se.department", M_WILD_CI, 0, NULL },
	{ T(0x0008, 0x103E), QR_LEVEL_SERIES, "se.description", M_WILD_CI, 0, NULL },
	{ T(0x0040, 0x0244), QR_LEVEL_SERIES, "se.pps_start_date", M_DATE, T(0x0040, 0x0245), NULL },
	{ T(0x0040, 0x0245), QR_LEVEL_SERIES, "se.pps_start_time", M_TIME, T(0x0040, 0x0244), NULL },
	{ T(0x0020, 0x1209), QR_LEVEL_SERIES, NULL, M_RETURN, 0,
	  "(SELECT count(*) FROM instance y WHERE y.series_fk = se.pk)::text" },
	/* instance */
	{ T(0x0020, 0x0013), QR_LEVEL_IMAGE, "i.instance_number", M_WILD, 0, NULL },
	{ T(0x0008, 0x0018), QR_LEVEL_IMAGE, "i.sop_uid", M_UIDS, 0, NULL },
	{ T(0x0008, 0x0016), QR_LEVEL_IMAGE, "i.sop_class_uid", M_UIDS, 0, NULL },
	{ T(0x0008, 0x0023), QR_LEVEL_IMAGE, "i.content_date", M_DATE, T(0x0008, 0x0033), NULL },
	{ T(0x0008, 0x0033), QR_LEVEL_IMAGE, "i.content_time", M_TIME, T(0x0008, 0x0023), NULL },
	{ T(0x0040, 0xA491), QR_LEVEL_IMAGE, "i.completion_flag", M_SINGLE, 0, NULL },
	{ T(0x0040, 0xA493), QR_LEVEL_IMAGE, "i.verification_flag", M_SINGLE, 0, NULL },
};
#undef T
#define N_KEYS ((int)(sizeof(KEYS) / sizeof(KEYS[0])))

#define TAG_OTHER_IDS DH_TAG(0x0010, 0x1002)
#define TAG_REQUEST DH_TAG(0x0040, 0x0275)
#define TAG_CONCEPT DH_TAG(0x0040, 0xA043)

static const char *const SEQ_RET_OTHER =
	"(SELECT string_agg(format('(0010,1002)[%s].(0010,0020)', o.n - 1) || chr(31) || o.patient_id || chr(30) || "
	"format('(0010,1002)[%s].(0010,0021)', o.n - 1) || chr(31) || o.issuer, chr(30) ORDER BY o.n) "
	"FROM (SELECT patient_id, issuer, row_number() OVER (ORDER BY pk) AS n FROM patient_other_id "
	"WHERE patient_fk = p.pk) o)";
static const char *const SEQ_RET_REQUEST =
	"(SELECT string_agg(format('(0040,0275)[%s].%s', r.n - 1, kv.key) || chr(31) || kv.value, chr(30) "
	"ORDER BY r.n, kv.key) FROM (SELECT attrs, row_number() OVER (ORDER BY pk) AS n FROM series_request "
	"WHERE series_fk = se.pk) r, jsonb_each_text(r.attrs) kv)";
static const char *const SEQ_RET_CONCEPT =
	"(CASE WHEN i.concept_code_value <> '' THEN "
	"'(0040,A043)[0].(0008,0100)' || chr(31) || i.concept_code_value || chr(30) || "
	"'(0040,A043)[0].(0008,0102)' || chr(31) || i.concept_scheme || chr(30) || "
	"'(0040,A043)[0].(0008,0103)' || chr(31) || i.concept_version || chr(30) || "
	"'(0040,A043)[0].(0008,0104)' || chr(31) || i.concept_meaning END)";

int qr_query_known_count(void)
{
	return N_KEYS;
}

uint32_t qr_query_known_tag(int i)
{
	return i >= 0 && i < N_KEYS ? KEYS[i].tag : 0;
}

static const keydef *find_key(uint32_t tag)
{
	for (int k = 0; k < N_KEYS; k++)
		if (KEYS[k].tag == tag)
			return &KEYS[k];
	return NULL;
}

int qr_query_tag_level(uint32_t tag)
{
	const keydef *d = find_key(tag);
	if (d)
		return d->level;
	if (tag == TAG_OTHER_IDS)
		return QR_LEVEL_PATIENT;
	if (tag == TAG_REQUEST)
		return QR_LEVEL_SERIES;
	if (tag == TAG_CONCEPT)
		return QR_LEVEL_IMAGE;
	return -1;
}

/* ---- building blocks ---------------------------------------------------- */

typedef struct {
	char *buf;
	size_t len, cap;
	int oom;
} sbuf;

static void sb_add(sbuf *s, const char *txt)
{
	size_t n = strlen(txt);
	if (s->oom)
		return;
	if (s->len + n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		while (cap < s->len + n + 1)
			cap *= 2;
		char *b = realloc(s->buf, cap);
		if (!b) {
			s->oom = 1;
			return;
		}
		s->buf = b;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, txt, n + 1);
	s->len += n;
}

typedef struct {
	qr_sql *q;
	sbuf cond[4];   /* per level, each condition prefixed with " AND " */
	int oom;
} builder;

/* Adds a parameter (copied); returns its number ($n) or 0 on allocation failure. */
static int param(builder *b, const char *v)
{
	char **p = realloc(b->q->params, sizeof(char *) * (size_t)(b->q->n_params + 1));
	if (!p) {
		b->oom = 1;
		return 0;
	}
	b->q->params = p;
	p[b->q->n_params] = strdup(v);
	if (!p[b->q->n_params]) {
		b->oom = 1;
		return 0;
	}
	return ++b->q->n_params;
}

/* Appends " AND " + the formatted condition to level's list; %d's are parameter numbers. */
static void cond(builder *b, int level, const char *fmt, int n1, int n2)
{
	char tmp[1024];
	snprintf(tmp, sizeof(tmp), fmt, n1, n2);
	sb_add(&b->cond[level], " AND ");
	sb_add(&b->cond[level], tmp);
}

static int has_wild(const char *v)
{
	return strchr(v, '*') || strchr(v, '?');
}

/* 1 when the value matches everything: empty or nothing but '*'. */
static int universal(const char *v)
{
	for (; *v; v++)
		if (*v != '*')
			return 0;
	return 1;
}

/*
 * A DICOM wild card value as a LIKE pattern with '\' as escape: the SQL
 * metacharacters %, _ and \ of the value are escaped first, then * → % and
 * ? → _. Caller frees.
 */
static char *like_pattern(const char *v)
{
	char *out = malloc(strlen(v) * 2 + 1), *o = out;
	if (!out)
		return NULL;
	for (; *v; v++) {
		if (*v == '%' || *v == '_' || *v == '\\') {
			*o++ = '\\';
			*o++ = *v;
		} else if (*v == '*') {
			*o++ = '%';
		} else if (*v == '?') {
			*o++ = '_';
		} else {
			*o++ = *v;
		}
	}
	*o = '\0';
	return out;
}

/* A PostgreSQL text[] literal of v's backslash-separated values. Caller frees. */
static char *array_literal(const char *v)
{
	char *out = malloc(strlen(v) * 2 + 8), *o = out;
	if (!out)
		return NULL;
	*o++ = '{';
	*o++ = '"';
	for (; *v; v++) {
		if (*v == '\\') {
			*o++ = '"';
			*o++ = ',';
			*o++ = '"';
		} else {
			if (*v == '"')
				*o++ = '\\';
			*o++ = *v;
		}
	}
	*o++ = '"';
	*o++ = '}';
	*o = '\0';
	return out;
}

/* Same, for n separate values. Caller frees. */
static char *array_of(const char *const *vals, int n)
{
	size_t len = 3;
	for (int k = 0; k < n; k++)
		len += strlen(vals[k]) * 2 + 3;
	char *out = malloc(len), *o = out;
	if (!out)
		return NULL;
	*o++ = '{';
	for (int k = 0; k < n; k++) {
		if (k)
			*o++ = ',';
		*o++ = '"';
		for (const char *v = vals[k]; *v; v++) {
			if (*v == '"' || *v == '\\')
				*o++ = '\\';
			*o++ = *v;
		}
		*o++ = '"';
	}
	*o++ = '}';
	*o = '\0';
	return out;
}

/* Wild card or single value matching of col against v. */
static void match_text(builder *b, int level, const char *col, const char *v, int ci, int wild_ok)
{
	char fmt[512];
	if (universal(v))
		return;
	if (wild_ok && has_wild(v)) {
		char *pat = like_pattern(v);
		if (!pat) {
			b->oom = 1;
			return;
		}
		int n = param(b, pat);
		free(pat);
		if (ci)
			snprintf(fmt, sizeof(fmt), "lower(%s) LIKE lower($%%d) ESCAPE '\\'", col);
		else
			snprintf(fmt, sizeof(fmt), "%s LIKE $%%d ESCAPE '\\'", col);
		cond(b, level, fmt, n, 0);
	} else {
		int n = param(b, v);
		if (ci)
			snprintf(fmt, sizeof(fmt), "lower(%s) = lower($%%d)", col);
		else
			snprintf(fmt, sizeof(fmt), "%s = $%%d", col);
		cond(b, level, fmt, n, 0);
	}
}

/* Splits a range value "A-B", "A-", "-B" or "A" (lo = hi = A). */
static void split_range(const char *v, char *lo, char *hi, size_t len)
{
	const char *dash = strchr(v, '-');
	if (!dash) {
		snprintf(lo, len, "%s", v);
		snprintf(hi, len, "%s", v);
		return;
	}
	snprintf(lo, len, "%.*s", (int)(dash - v), v);
	snprintf(hi, len, "%s", dash + 1);
}

/*
 * Range matching on one text column holding DICOM DA/TM text (or their
 * concatenation). Comparisons are byte-wise (~>=~, ~<=~): digits sort as
 * numbers. The upper bound gets '~' appended, which sorts after every digit
 * and '.', so "1800" includes 18:00:59.999 and a lone date includes its
 * whole day when the column holds date||time.
 */
static void range_on(builder *b, int level, const char *expr, const char *nonempty_col, const char *lo,
		     const char *hi)
{
	char fmt[512];
	if (lo[0]) {
		snprintf(fmt, sizeof(fmt), "%s ~>=~ $%%d", expr);
		cond(b, level, fmt, param(b, lo), 0);
	}
	if (hi[0]) {
		char h[160];
		snprintf(h, sizeof(h), "%s~", hi);
		snprintf(fmt, sizeof(fmt), "%s ~<=~ $%%d", expr);
		cond(b, level, fmt, param(b, h), 0);
	}
	if (!lo[0] || !hi[0]) {
		/* an open range must not match the empty (unknown) value */
		snprintf(fmt, sizeof(fmt), "%s <> ''", nonempty_col);
		cond(b, level, fmt, 0, 0);
	}
}

static const char *value_of(const qr_ident *id, uint32_t tag)
{
	for (int k = 0; k < id->n_keys; k++)
		if (id->key[k].tag == tag)
			return id->key[k].value;
	return NULL;
}

/*
 * Date (and partner time) matching. Footnote 6: with both keys given, the
 * date range's lower end takes the time range's lower end and the upper end
 * its upper end: one date-time interval, not a time window per day.
 */
static void match_datetime(builder *b, const qr_ident *id, const keydef *d)
{
	const char *dv = value_of(id, d->tag);
	const keydef *t = d->pair ? find_key(d->pair) : NULL;
	const char *tv = t ? value_of(id, t->tag) : NULL;
	char dlo[80], dhi[80], tlo[80], thi[80], expr[256], lo[160], hi[160];
	if (!dv)
		dv = "";
	if (!tv)
		tv = "";
	if (!dv[0] && !tv[0])
		return;
	if (!tv[0]) {
		split_range(dv, dlo, dhi, sizeof(dlo));
		if (strcmp(dlo, dhi) == 0 && dlo[0]) {
			char fmt[256];
			snprintf(fmt, sizeof(fmt), "%s = $%%d", d->col);
			cond(b, d->level, fmt, param(b, dlo), 0);
		} else {
			range_on(b, d->level, d->col, d->col, dlo, dhi);
		}
		return;
	}
	split_range(tv, tlo, thi, sizeof(tlo));
	if (!dv[0]) {
		range_on(b, t->level, t->col, t->col, tlo, thi);
		return;
	}
	split_range(dv, dlo, dhi, sizeof(dlo));
	/* the date bounds alone first: they are what the date index serves */
	range_on(b, d->level, d->col, d->col, dlo, dhi);
	snprintf(expr, sizeof(expr), "(%s || %s)", d->col, t->col);
	snprintf(lo, sizeof(lo), "%s%s", dlo, dlo[0] ? tlo : "");
	snprintf(hi, sizeof(hi), "%s%s", dhi, dhi[0] ? thi : "");
	range_on(b, d->level, expr, d->col, lo, hi);
}

static int contains_wild_any(const qr_ident *id)
{
	for (int k = 0; k < id->n_other; k++)
		if ((id->other_pid[k] && has_wild(id->other_pid[k])) ||
		    (id->other_issuer[k] && has_wild(id->other_issuer[k])))
			return 1;
	return 0;
}

/* ---- the statement ------------------------------------------------------ */

static const char *const FROM[4] = {
	"patient p",
	"study st JOIN patient p ON p.pk = st.patient_fk",
	"series se JOIN study st ON st.pk = se.study_fk JOIN patient p ON p.pk = st.patient_fk",
	"instance i JOIN series se ON se.pk = i.series_fk JOIN study st ON st.pk = se.study_fk "
	"JOIN patient p ON p.pk = st.patient_fk",
};
/* the tables of each level and how a row links to its parent, for EXISTS chains */
static const char *const TBL[4] = { "patient p", "study st", "series se", "instance i" };
static const char *const LINK[4] = { NULL, "st.patient_fk = p.pk", "se.study_fk = st.pk", "i.series_fk = se.pk" };

static int parse_level(const char *v)
{
	if (!v)
		return -1;
	if (strcmp(v, "PATIENT") == 0)
		return QR_LEVEL_PATIENT;
	if (strcmp(v, "STUDY") == 0)
		return QR_LEVEL_STUDY;
	if (strcmp(v, "SERIES") == 0)
		return QR_LEVEL_SERIES;
	if (strcmp(v, "IMAGE") == 0)
		return QR_LEVEL_IMAGE;
	return -1;
}

/*
 * Instance Availability (0008,0056) from the real state (nearline.h): the
 * instance's own at IMAGE level, the worst of its instances for a series
 * or a study (a study with one object on an offline volume is OFFLINE).
 */
static const char *availability_sql(int level, char *buf, size_t len)
{
	if (level == QR_LEVEL_IMAGE)
		snprintf(buf, len, "%s", archive_avail_sql());
	else if (level == QR_LEVEL_SERIES)
		snprintf(buf, len, "(SELECT %s FROM instance i WHERE i.series_fk = se.pk)", archive_avail_agg_sql());
	else
		snprintf(buf, len, "(SELECT %s FROM series x JOIN instance i ON i.series_fk = x.pk "
				   "WHERE x.study_fk = st.pk)", archive_avail_agg_sql());
	return buf;
}

static void add_col(qr_sql *q, sbuf *sel, const char *expr, uint32_t tag, int seq)
{
	sb_add(sel, ", ");
	sb_add(sel, expr);
	q->col[q->n_cols].tag = tag;
	q->col[q->n_cols].seq = seq;
	q->n_cols++;
}

int qr_query_build(const qr_ident *id, qr_sql *out, char *err, size_t errlen)
{
	builder b;
	sbuf sel = { 0 }, sql = { 0 };
	int rc = -1;
	memset(out, 0, sizeof(*out));
	memset(&b, 0, sizeof(b));
	b.q = out;

	int level = parse_level(id->level);
	if (level < 0) {
		snprintf(err, errlen, "%s Query/Retrieve Level (0008,0052)",
			 id->level ? "unknown" : "missing");
		rc = QR_A900;
		goto done;
	}
	int top = id->model == QR_MODEL_STUDY_ROOT ? QR_LEVEL_STUDY : QR_LEVEL_PATIENT;
	int bottom = id->model == QR_MODEL_PSONLY ? QR_LEVEL_STUDY : QR_LEVEL_IMAGE;
	if (level < top || level > bottom) {
		snprintf(err, errlen, "level %s is not part of this information model", id->level);
		rc = QR_A900;
		goto done;
	}
	out->level = (qr_level)level;
	/* keys of levels the model does not have */
	for (int k = 0; k < id->n_keys; k++) {
		int l = qr_query_tag_level(id->key[k].tag);
		if (l > bottom) {
			snprintf(err, errlen, "key (%04X,%04X) is below this model's lowest level",
				 id->key[k].tag >> 16, id->key[k].tag & 0xFFFF);
			rc = QR_A900;
			goto done;
		}
	}
	if ((id->request_attrs && bottom < QR_LEVEL_SERIES) || (id->concept_name && bottom < QR_LEVEL_IMAGE)) {
		snprintf(err, errlen, "sequence key below this model's lowest level");
		rc = QR_A900;
		goto done;
	}

	/* Other Patient IDs Sequence: all or nothing (see qr_query.h) */
	int other_match = 0;
	if (id->other_ids) {
		int any = 0, complete = 1;
		for (int k = 0; k < id->n_other; k++) {
			int has_pid = id->other_pid[k] && id->other_pid[k][0];
			int has_iss = id->other_issuer[k] && id->other_issuer[k][0];
			any |= has_pid || has_iss;
			complete &= has_pid && has_iss;
		}
		const char *rp = value_of(id, DH_TAG(0x0010, 0x0020)), *ri = value_of(id, DH_TAG(0x0010, 0x0021));
		if (any) {
			if (!complete || !rp || !rp[0] || !ri || !ri[0] || has_wild(rp) || has_wild(ri) ||
			    contains_wild_any(id)) {
				snprintf(err, errlen, "Other Patient IDs Sequence needs every item and the root "
						      "Patient ID and Issuer, without wild cards");
				rc = QR_A900;
				goto done;
			}
			other_match = 1;
			const char *pids[QR_MAX_ITEMS + 1], *iss[QR_MAX_ITEMS + 1];
			int n = 0;
			pids[n] = rp;
			iss[n++] = ri;
			for (int k = 0; k < id->n_other && n <= QR_MAX_ITEMS; k++) {
				pids[n] = id->other_pid[k];
				iss[n++] = id->other_issuer[k];
			}
			char *a1 = array_of(pids, n), *a2 = array_of(iss, n);
			if (!a1 || !a2) {
				free(a1);
				free(a2);
				goto done;
			}
			int n1 = param(&b, a1), n2 = param(&b, a2);
			free(a1);
			free(a2);
			cond(&b, QR_LEVEL_PATIENT,
			     "p.pk IN (SELECT x.pk FROM patient x JOIN unnest($%1$d::text[], $%2$d::text[]) k(id, iss) "
			     "ON x.patient_id = k.id AND x.issuer = k.iss UNION "
			     "SELECT o.patient_fk FROM patient_other_id o JOIN unnest($%1$d::text[], $%2$d::text[]) "
			     "k(id, iss) ON o.patient_id = k.id AND o.issuer = k.iss)", n1, n2);
		}
	}

	/* plain keys */
	for (int k = 0; k < id->n_keys; k++) {
		const keydef *d = find_key(id->key[k].tag);
		const char *v = id->key[k].value;
		if (!d || !v)
			continue;
		if (other_match && (d->tag == DH_TAG(0x0010, 0x0020) || d->tag == DH_TAG(0x0010, 0x0021)))
			continue; /* already part of the Other Patient IDs match */
		switch (d->m) {
		case M_WILD:
		case M_WILD_CI:
			match_text(&b, d->level, d->col, v, d->m == M_WILD_CI, 1);
			break;
		case M_SINGLE:
			match_text(&b, d->level, d->col, v, 0, 0);
			break;
		case M_UIDS:
			if (!v[0])
				break;
			if (strchr(v, '\\')) {
				char *a = array_literal(v), fmt[256];
				if (!a)
					goto done;
				snprintf(fmt, sizeof(fmt), "%s = ANY($%%d::text[])", d->col);
				cond(&b, d->level, fmt, param(&b, a), 0);
				free(a);
			} else {
				match_text(&b, d->level, d->col, v, 0, 0);
			}
			break;
		case M_DATE:
			match_datetime(&b, id, d);
			break;
		case M_TIME:
			/* handled with its date, unless the date key is absent */
			if (!d->pair || !value_of(id, d->pair)) {
				char lo[80], hi[80];
				if (v[0]) {
					split_range(v, lo, hi, sizeof(lo));
					range_on(&b, d->level, d->col, d->col, lo, hi);
				}
			}
			break;
		case M_MODS:
			if (v[0] && !universal(v)) {
				char *a = array_literal(v);
				if (!a)
					goto done;
				cond(&b, QR_LEVEL_STUDY, "EXISTS (SELECT 1 FROM series x WHERE x.study_fk = st.pk "
							 "AND x.modality = ANY($%d::text[]))", param(&b, a), 0);
				free(a);
			}
			break;
		case M_RETURN:
			break;
		}
	}

	/* Request Attribute Sequence: one request item of the series matches both keys */
	if (id->request_attrs) {
		sbuf sub = { 0 };
		builder tmp = b;
		memset(tmp.cond, 0, sizeof(tmp.cond));
		if (id->req_proc_id)
			match_text(&tmp, 0, "r.requested_procedure_id", id->req_proc_id, 0, 1);
		if (id->sps_id)
			match_text(&tmp, 0, "r.sps_id", id->sps_id, 0, 1);
		b.oom |= tmp.oom;
		if (tmp.cond[0].len) {
			sb_add(&sub, "EXISTS (SELECT 1 FROM series_request r WHERE r.series_fk = se.pk");
			sb_add(&sub, tmp.cond[0].buf);
			sb_add(&sub, ")");
			if (!sub.oom) {
				sb_add(&b.cond[QR_LEVEL_SERIES], " AND ");
				sb_add(&b.cond[QR_LEVEL_SERIES], sub.buf);
			}
			b.oom |= sub.oom;
		}
		free(sub.buf);
		free(tmp.cond[0].buf);
	}
	if (id->concept_name) {
		if (id->code_value)
			match_text(&b, QR_LEVEL_IMAGE, "i.concept_code_value", id->code_value, 0, 0);
		if (id->code_scheme)
			match_text(&b, QR_LEVEL_IMAGE, "i.concept_scheme", id->code_scheme, 0, 0);
	}
	if (b.oom)
		goto done;

	/* select list: the level's key plus every return key of this level and above */
	static const char *const PK[4] = { "p.pk", "st.pk", "se.pk", "i.pk" };
	char avail[1024];
	sb_add(&sel, PK[level]);
	for (int k = 0; k < id->n_keys && out->n_cols < QR_MAX_KEYS; k++) {
		const keydef *d = find_key(id->key[k].tag);
		if (!d || d->level > level)
			continue;
		if (d->tag == DH_TAG(0x0008, 0x0056)) {
			add_col(out, &sel, availability_sql(level, avail, sizeof(avail)), d->tag, 0);
			continue;
		}
		add_col(out, &sel, d->ret ? d->ret : d->col, d->tag, 0);
	}
	if (id->other_ids)
		add_col(out, &sel, SEQ_RET_OTHER, TAG_OTHER_IDS, 1);
	if (id->request_attrs && level >= QR_LEVEL_SERIES)
		add_col(out, &sel, SEQ_RET_REQUEST, TAG_REQUEST, 1);
	if (id->concept_name && level >= QR_LEVEL_IMAGE)
		add_col(out, &sel, SEQ_RET_CONCEPT, TAG_CONCEPT, 1);

	sb_add(&sql, "SELECT ");
	sb_add(&sql, sel.buf ? sel.buf : "");
	sb_add(&sql, " FROM ");
	sb_add(&sql, FROM[level]);
	sb_add(&sql, " WHERE true");
	for (int l = 0; l <= level; l++)
		if (b.cond[l].len)
			sb_add(&sql, b.cond[l].buf);
	/* relational keys of lower levels: one EXISTS down to the deepest */
	int deepest = level;
	for (int l = level + 1; l <= QR_LEVEL_IMAGE; l++)
		if (b.cond[l].len)
			deepest = l;
	if (deepest > level) {
		sb_add(&sql, " AND EXISTS (SELECT 1 FROM ");
		sb_add(&sql, TBL[level + 1]);
		for (int l = level + 2; l <= deepest; l++) {
			sb_add(&sql, " JOIN ");
			sb_add(&sql, TBL[l]);
			sb_add(&sql, " ON ");
			sb_add(&sql, LINK[l]);
		}
		sb_add(&sql, " WHERE ");
		sb_add(&sql, LINK[level + 1]);
		for (int l = level + 1; l <= deepest; l++)
			if (b.cond[l].len)
				sb_add(&sql, b.cond[l].buf);
		sb_add(&sql, ")");
	}
	if (sql.oom || sel.oom)
		goto done;
	out->sql = sql.buf;
	sql.buf = NULL;
	rc = 0;
done:
	free(sel.buf);
	free(sql.buf);
	for (int l = 0; l < 4; l++)
		free(b.cond[l].buf);
	if (rc != 0) {
		for (int k = 0; k < out->n_params; k++)
			free(out->params[k]);
		free(out->params);
		out->params = NULL;
		out->n_params = 0;
		out->n_cols = 0;
	}
	return rc;
}

void qr_sql_free(qr_sql *q)
{
	if (!q)
		return;
	free(q->sql);
	for (int k = 0; k < q->n_params; k++)
		free(q->params[k]);
	free(q->params);
	memset(q, 0, sizeof(*q));
}
