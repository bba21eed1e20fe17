/*
 * qr_index.c - records the C-FIND attributes ingest's core rows do not hold
 * (see qr_index.h and sql/hub/002_query.sql).
 *
 * Runs inside ingest's transaction, once per object, so it must stay cheap:
 * most objects carry none of these attributes and then cost no statement at
 * all. Series- and patient-level items (requests, other patient IDs) are
 * inserted with ON CONFLICT DO NOTHING: the first object of a series
 * records them, later ones only probe the unique index, and no shared row
 * is ever updated (concurrent associations storing into one study would
 * queue on its lock).
 */
#include "qr_index.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VAL 1024

/* Appends v as a double-quoted element of a PostgreSQL array literal. */
static int arr_add(char **buf, size_t *len, size_t *cap, const char *v)
{
	size_t need = *len + strlen(v) * 2 + 4;
	if (need > *cap) {
		size_t c = *cap ? *cap : 512;
		while (c < need)
			c *= 2;
		char *b = realloc(*buf, c);
		if (!b)
			return -1;
		*buf = b;
		*cap = c;
	}
	char *o = *buf + *len;
	*o++ = *len == 0 ? '{' : ',';
	*o++ = '"';
	for (; *v; v++) {
		if (*v == '"' || *v == '\\')
			*o++ = '\\';
		*o++ = *v;
	}
	*o++ = '"';
	*o = '\0';
	*len = (size_t)(o - *buf);
	return 0;
}

typedef struct {
	char *k, *v;
	size_t kl, kc, vl, vc;
	int n, oom;
} kvarr;

static void kv_put(kvarr *a, const char *key, const char *val)
{
	if (a->oom || !val[0])
		return;
	if (arr_add(&a->k, &a->kl, &a->kc, key) < 0 || arr_add(&a->v, &a->vl, &a->vc, val) < 0)
		a->oom = 1;
	else
		a->n++;
}

/* Reads a path into buf; "" when absent or too long. */
static const char *get(const dh_dcm_ds *ds, const char *path, char *buf)
{
	if (dh_dcm_ds_get_path(ds, path, buf, VAL) != 0)
		buf[0] = '\0';
	return buf;
}

/* The code item attributes of a code sequence inside a request item. */
static void code_items(const dh_dcm_ds *ds, kvarr *a, const char *item, const char *seq)
{
	static const char *const code_tags[] = { "(0008,0100)", "(0008,0102)", "(0008,0103)", "(0008,0104)" };
	char path[256], key[128], v[VAL];
	snprintf(path, sizeof(path), "%s.%s", item, seq);
	int n = dh_dcm_ds_count(ds, path);
	for (int j = 0; j < n && j < 16; j++)
		for (int t = 0; t < 4; t++) {
			snprintf(path, sizeof(path), "%s.%s[%d].%s", item, seq, j, code_tags[t]);
			snprintf(key, sizeof(key), "%s[%d].%s", seq, j, code_tags[t]);
			kv_put(a, key, get(ds, path, v));
		}
}

static int index_requests(PGconn *c, const dh_dcm_ds *ds, const char *series_pk, dh_db_err *err)
{
	int n = dh_dcm_ds_count(ds, "(0040,0275)");
	for (int i = 0; i < n && i < 64; i++) {
		static const char *const plain[] = { "(0040,1001)", "(0040,1002)", "(0040,0009)", "(0040,0007)" };
		char item[64], path[128], v[VAL], rp[VAL], sps[VAL];
		kvarr a = { 0 };
		snprintf(item, sizeof(item), "(0040,0275)[%d]", i);
		for (int t = 0; t < 4; t++) {
			snprintf(path, sizeof(path), "%s.%s", item, plain[t]);
			kv_put(&a, plain[t], get(ds, path, v));
		}
		code_items(ds, &a, item, "(0040,100A)");
		code_items(ds, &a, item, "(0040,0008)");
		snprintf(path, sizeof(path), "%s.(0040,1001)", item);
		get(ds, path, rp);
		snprintf(path, sizeof(path), "%s.(0040,0009)", item);
		get(ds, path, sps);
		int rc = 0;
		if (a.oom) {
			snprintf(err->msg, sizeof(err->msg), "out of memory indexing request attributes");
			err->sqlstate[0] = '\0';
			rc = -1;
		} else {
			/* arr_add left room for the closing brace */
			if (a.n) {
				strcat(a.k, "}");
				strcat(a.v, "}");
			}
			const char *p[5] = { series_pk, rp, sps, a.n ? a.k : "{}", a.n ? a.v : "{}" };
			rc = dh_db_exec(c,
					"INSERT INTO series_request (series_fk, requested_procedure_id, sps_id, attrs) "
					"VALUES ($1::bigint, $2, $3, jsonb_object($4::text[], $5::text[])) "
					"ON CONFLICT DO NOTHING", 5, p, err);
		}
		free(a.k);
		free(a.v);
		if (rc < 0)
			return -1;
	}
	return 0;
}

int qr_index_instance(PGconn *c, const dh_dcm_ds *ds, const char *patient_pk, const char *study_pk,
		      const char *series_pk, const char *instance_pk, dh_db_err *err)
{
	int rc = -1;
	char v[VAL], iss[VAL], path[64];
	(void)study_pk;

	/* Other Patient IDs Sequence */
	int n = dh_dcm_ds_count(ds, "(0010,1002)");
	for (int i = 0; i < n && i < 64; i++) {
		snprintf(path, sizeof(path), "(0010,1002)[%d].(0010,0020)", i);
		if (!get(ds, path, v)[0])
			continue;
		snprintf(path, sizeof(path), "(0010,1002)[%d].(0010,0021)", i);
		get(ds, path, iss);
		const char *p[3] = { patient_pk, v, iss };
		if (dh_db_exec(c, "INSERT INTO patient_other_id (patient_fk, patient_id, issuer) "
				  "VALUES ($1::bigint, $2, $3) ON CONFLICT DO NOTHING", 3, p, err) < 0)
			goto done;
	}
	if (index_requests(c, ds, series_pk, err) < 0)
		goto done;

	/* instance keys: one UPDATE of the row just inserted, only when there is something to say */
	{
		char cf[VAL], vf[VAL], cv[VAL], cs[VAL], cver[VAL], cm[VAL];
		get(ds, "(0040,A491)", cf);
		get(ds, "(0040,A493)", vf);
		get(ds, "(0040,A043)[0].(0008,0100)", cv);
		get(ds, "(0040,A043)[0].(0008,0102)", cs);
		get(ds, "(0040,A043)[0].(0008,0103)", cver);
		get(ds, "(0040,A043)[0].(0008,0104)", cm);
		if (cf[0] || vf[0] || cv[0] || cs[0] || cver[0] || cm[0]) {
			const char *p[7] = { instance_pk, cf, vf, cv, cs, cver, cm };
			if (dh_db_exec(c, "UPDATE instance SET completion_flag = $2, verification_flag = $3, "
					  "concept_code_value = $4, concept_scheme = $5, concept_version = $6, "
					  "concept_meaning = $7 WHERE pk = $1::bigint", 7, p, err) < 0)
				goto done;
		}
	}
	rc = 0;
done:
	return rc;
}
