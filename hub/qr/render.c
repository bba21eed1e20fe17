/*
 * render.c - see render.h.
 *
 * NOTES
 * Two queries per call, whatever the number of instances (the pks go in as
 * one bigint[] parameter): the first gives, per instance that needs it, the
 * UIDs where the index differs from the file and, for moved objects, the
 * indexed patient and study columns of where the object now is; the second
 * the attr_override rows of each instance's patient, study, series and
 * instance, in seq order. Both are ordered by instance pk and merged into
 * one sorted table; the overrides point into the kept PGresults, so nothing
 * is copied.
 *
 * Order per object: moved-object columns, then attr_override rows in seq
 * order (the latest change of a tag wins; a cc writes a study's overrides
 * together with its indexed columns, so they agree), then the UIDs, which
 * are the object's identity in the index and always win.
 */
#include "render.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	long long pk;
	int off; /* first override in render_set.ov */
	int n;
} render_entry;

struct render_set {
	PGresult *objs; /* query 1 */
	PGresult *attrs; /* query 2 */
	render_entry *e; /* sorted by pk; only instances with n > 0 */
	int n_e;
	dh_dcm_override *ov;
	int n_ov;
};

/* Indexed columns that replace a moved object's values, in query 1's column order. */
static const uint32_t moved_tags[] = {
	DH_TAG(0x0010, 0x0010), DH_TAG(0x0010, 0x0020), DH_TAG(0x0010, 0x0021), DH_TAG(0x0010, 0x0030),
	DH_TAG(0x0010, 0x0040), DH_TAG(0x0020, 0x0010), DH_TAG(0x0008, 0x0020), DH_TAG(0x0008, 0x0030),
	DH_TAG(0x0008, 0x0050), DH_TAG(0x0008, 0x0090), DH_TAG(0x0008, 0x1030)
};
#define N_MOVED ((int)(sizeof(moved_tags) / sizeof(moved_tags[0])))
#define COL_MOVED 4 /* pk, sop, study, series, moved, then the moved columns */

static const char sql_objs[] =
	"SELECT * FROM (SELECT i.pk, "
	"CASE WHEN i.sop_uid <> i.received_sop_uid THEN i.sop_uid END AS sop, "
	"CASE WHEN i.received_study_uid <> '' AND i.received_study_uid <> st.study_uid "
	"THEN st.study_uid END AS study, "
	/* '' = not recorded (stored before 004): only the duplicate policy's series mapping tells */
	"CASE WHEN (i.received_series_uid <> '' AND i.received_series_uid <> se.series_uid) "
	"OR (i.received_series_uid = '' AND EXISTS (SELECT 1 FROM uid_mapping m "
	"WHERE m.kind = 'series' AND m.new_uid = se.series_uid)) THEN se.series_uid END AS series, "
	"i.moved, p.patient_name, p.patient_id, p.issuer, p.birth_date, p.sex, st.study_id, st.study_date, "
	"st.study_time, st.accession, st.referring_physician, st.description "
	"FROM instance i JOIN series se ON se.pk = i.series_fk JOIN study st ON st.pk = se.study_fk "
	"JOIN patient p ON p.pk = st.patient_fk WHERE i.pk = ANY ($1::bigint[])) q "
	"WHERE q.moved OR q.sop IS NOT NULL OR q.study IS NOT NULL OR q.series IS NOT NULL ORDER BY q.pk";

static const char sql_attrs[] =
	"SELECT i.pk, o.tag, o.vr, o.value FROM instance i JOIN series se ON se.pk = i.series_fk "
	"JOIN study st ON st.pk = se.study_fk "
	"CROSS JOIN LATERAL (VALUES (1, st.patient_fk), (2, st.pk), (3, se.pk), (4, i.pk)) AS t(level, fk) "
	"JOIN attr_override o ON o.level = t.level AND o.target_fk = t.fk "
	"WHERE i.pk = ANY ($1::bigint[]) ORDER BY i.pk, o.seq";

/* "{1,2,3}" from the pks; NULL when out of memory. */
static char *pk_array(const char *const *pks, int n)
{
	size_t len = 3;
	for (int i = 0; i < n; i++)
		len += strlen(pks[i]) + 1;
	char *s = malloc(len), *p = s;
	if (!s)
		return NULL;
	*p++ = '{';
	for (int i = 0; i < n; i++) {
		size_t l = strlen(pks[i]);
		if (i)
			*p++ = ',';
		memcpy(p, pks[i], l);
		p += l;
	}
	*p++ = '}';
	*p = '\0';
	return s;
}

static long long row_pk(PGresult *r, int row)
{
	return strtoll(PQgetvalue(r, row, 0), NULL, 10);
}

int render_load(PGconn *c, const char *const *instance_pks, int n, render_set **out, dh_db_err *err)
{
	render_set *rs = calloc(1, sizeof(*rs));
	char *arr = pk_array(instance_pks, n);
	int rc = -1;
	*out = NULL;
	if (!rs || !arr) {
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		goto done;
	}
	const char *p[1] = { arr };
	if (!(rs->objs = dh_db_query(c, sql_objs, 1, p, err)) || !(rs->attrs = dh_db_query(c, sql_attrs, 1, p, err)))
		goto done;
	int n1 = PQntuples(rs->objs), n2 = PQntuples(rs->attrs);
	/* at most: every object row with all its values, every override row */
	size_t max_ov = (size_t)n1 * (3 + N_MOVED) + (size_t)n2;
	size_t max_e = (size_t)n1 + (size_t)n2;
	rs->ov = malloc((max_ov ? max_ov : 1) * sizeof(*rs->ov));
	rs->e = malloc((max_e ? max_e : 1) * sizeof(*rs->e));
	if (!rs->ov || !rs->e) {
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		goto done;
	}
	/* merge the two pk-ordered results */
	int a = 0, b = 0;
	while (a < n1 || b < n2) {
		long long pa = a < n1 ? row_pk(rs->objs, a) : 0, pb = b < n2 ? row_pk(rs->attrs, b) : 0;
		long long pk = a >= n1 ? pb : b >= n2 ? pa : pa < pb ? pa : pb;
		render_entry *e = &rs->e[rs->n_e];
		e->pk = pk;
		e->off = rs->n_ov;
		const char *uid[3] = { NULL, NULL, NULL };
		if (a < n1 && pa == pk) {
			PGresult *r = rs->objs;
			if (strcmp(PQgetvalue(r, a, COL_MOVED), "t") == 0)
				for (int k = 0; k < N_MOVED; k++)
					rs->ov[rs->n_ov++] = (dh_dcm_override){ moved_tags[k],
										PQgetvalue(r, a, COL_MOVED + 1 + k), NULL };
			for (int k = 0; k < 3; k++)
				uid[k] = PQgetisnull(r, a, 1 + k) ? NULL : PQgetvalue(r, a, 1 + k);
			a++;
		}
		for (; b < n2 && row_pk(rs->attrs, b) == pk; b++) {
			PGresult *r = rs->attrs;
			rs->ov[rs->n_ov++] = (dh_dcm_override){ (uint32_t)strtoull(PQgetvalue(r, b, 1), NULL, 10),
								PQgetvalue(r, b, 3), PQgetvalue(r, b, 2) };
		}
		static const uint32_t uid_tags[3] = { DH_TAG(0x0008, 0x0018), DH_TAG(0x0020, 0x000D),
						      DH_TAG(0x0020, 0x000E) };
		for (int k = 0; k < 3; k++)
			if (uid[k])
				rs->ov[rs->n_ov++] = (dh_dcm_override){ uid_tags[k], uid[k], NULL };
		e->n = rs->n_ov - e->off;
		if (e->n > 0)
			rs->n_e++;
	}
	rc = 0;
done:
	free(arr);
	if (rc == 0)
		*out = rs;
	else
		render_free(rs);
	return rc;
}

static int cmp_entry(const void *k, const void *e)
{
	long long a = *(const long long *)k, b = ((const render_entry *)e)->pk;
	return a < b ? -1 : a > b;
}

void render_get(const render_set *rs, const char *instance_pk, const dh_dcm_override **ov, int *n)
{
	*ov = NULL;
	*n = 0;
	if (!rs || !instance_pk)
		return;
	long long pk = strtoll(instance_pk, NULL, 10);
	const render_entry *e = bsearch(&pk, rs->e, (size_t)rs->n_e, sizeof(*rs->e), cmp_entry);
	if (e) {
		*ov = rs->ov + e->off;
		*n = e->n;
	}
}

void render_free(render_set *rs)
{
	if (!rs)
		return;
	PQclear(rs->objs);
	PQclear(rs->attrs);
	free(rs->e);
	free(rs->ov);
	free(rs);
}
