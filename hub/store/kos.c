/*
 * kos.c - registration of Key Object Selection documents, IOCM rejection
 * notes and the quarantine (see kos.h).
 *
 * NOTES
 * The failure seeds kb-119333/kb-119341 describe came from registration
 * being a separate job: when it failed, objects stayed in a state where
 * they were invisible yet still transmitted. Here a KOS is either
 * registered in its own ingest transaction (instance row + kos rows) or,
 * when it is not registrable, quarantined without any instance row; a
 * database failure rolls the whole object back. There is no third state.
 *
 * A rejection note hides instances through cc_apply_delete, the very code
 * a DELETE cc runs (series locks of the archiver, deleted_instance rows,
 * empty series/studies removed), so C-FIND, C-MOVE, counts and the
 * archiver see a rejection exactly like a deletion. Its references are
 * kept in kos_reference, which is also the memory for instances rejected
 * before they arrive.
 *
 * Array parameters are built as PostgreSQL array literals; they only ever
 * hold UIDs dh_kos_parse checked (digits and dots), so no quoting is
 * needed.
 */
#include "kos.h"

#include "cc.h"
#include "ccsync.h"
#include "hub.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	char *s;
	size_t len, cap;
	int n, oom;
} arr;

static void arr_add(arr *a, const char *v)
{
	size_t need = a->len + strlen(v) + 3;
	if (a->oom)
		return;
	if (need > a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 256;
		while (cap < need)
			cap *= 2;
		char *p = realloc(a->s, cap);
		if (!p) {
			a->oom = 1;
			return;
		}
		a->s = p;
		a->cap = cap;
	}
	a->len += (size_t)sprintf(a->s + a->len, "%s%s", a->n ? "," : "{", v);
	a->n++;
}

static const char *arr_lit(arr *a)
{
	if (a->oom)
		return NULL;
	if (a->n == 0)
		return "{}";
	if (a->len && a->s[a->len - 1] != '}') {
		strcat(a->s, "}");
		a->len++;
	}
	return a->s;
}

static int oom(dh_db_err *err)
{
	snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", "");
	snprintf(err->msg, sizeof(err->msg), "out of memory");
	return -1;
}

/* Hides the instances of the result rows (study, series, sop in columns 0..2) with reason. */
static int hide_rows(struct hub *h, PGconn *c, PGresult *r, const char *reason, int *hidden, dh_db_err *err)
{
	int n = PQntuples(r), rc = -1;
	Dhcc__InstanceRef *refs = NULL, **ptrs = NULL;
	Dhcc__Delete del = DHCC__DELETE__INIT;

	if (n == 0) {
		*hidden = 0;
		return 0;
	}
	refs = calloc((size_t)n, sizeof(*refs));
	ptrs = calloc((size_t)n, sizeof(*ptrs));
	if (!refs || !ptrs) {
		oom(err);
		goto done;
	}
	for (int i = 0; i < n; i++) {
		Dhcc__InstanceRef init = DHCC__INSTANCE_REF__INIT;
		refs[i] = init;
		refs[i].study_uid = PQgetvalue(r, i, 0);
		refs[i].series_uid = PQgetvalue(r, i, 1);
		refs[i].sop_uid = PQgetvalue(r, i, 2);
		ptrs[i] = &refs[i];
	}
	del.n_objects = (size_t)n;
	del.objects = ptrs;
	rc = cc_apply_delete(h, c, &del, reason, hidden, err);
done:
	free(refs);
	free(ptrs);
	return rc;
}

int kos_register(struct hub *h, PGconn *c, const dh_kos *k, const char *instance_pk, const char *sop_uid,
		 const char *study_uid, const char *series_uid, const char *source_ae, int *hidden,
		 dh_db_err *err)
{
	arr st = { 0 }, se = { 0 }, sop = { 0 }, cls = { 0 }, org = { 0 };
	PGresult *r = NULL;
	char kpk[32] = "";
	int rc = -1, n_hidden = 0;

	if (hidden)
		*hidden = 0;
	{
		const char *p[12] = { instance_pk, sop_uid, study_uid, series_uid, k->title_code, k->title_scheme,
				      k->title_meaning, k->author, k->content_date, k->content_time,
				      k->rejection ? "t" : "f", source_ae };
		r = dh_db_query(c, "INSERT INTO kos_document (instance_pk, sop_uid, study_uid, series_uid, title_code, "
				   "title_scheme, title_meaning, author, content_date, content_time, rejection, "
				   "source_ae) VALUES ($1::bigint, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::boolean, $12) "
				   "RETURNING pk",
				12, p, err);
		if (!r)
			goto done;
		snprintf(kpk, sizeof(kpk), "%s", PQgetvalue(r, 0, 0));
		PQclear(r);
		r = NULL;
	}
	for (size_t i = 0; i < k->n_refs; i++) {
		const dh_kos_ref *f = &k->refs[i];
		arr_add(&st, f->study_uid);
		arr_add(&se, f->series_uid);
		arr_add(&sop, f->sop_uid);
		arr_add(&cls, f->sop_class);
		arr_add(&org, f->origin == DH_KOS_CONTENT ? "content" : "evidence");
	}
	{
		const char *p[6] = { kpk, arr_lit(&st), arr_lit(&se), arr_lit(&sop), arr_lit(&cls), arr_lit(&org) };
		if (!p[1] || !p[2] || !p[3] || !p[4] || !p[5]) {
			oom(err);
			goto done;
		}
		/* a document may list one instance twice (two evidence items): one row each is fine */
		if (dh_db_exec(c, "INSERT INTO kos_reference (kos_fk, seq, study_uid, series_uid, sop_uid, "
				  "sop_class_uid, origin) SELECT $1::bigint, u.o, u.st, u.se, u.sop, u.cls, u.org "
				  "FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) "
				  "WITH ORDINALITY AS u(st, se, sop, cls, org, o)",
			       6, p, err) < 0)
			goto done;
		if (k->rejection) {
			char reason[600];
			snprintf(reason, sizeof(reason), "rejected by KOS %s: (%s, %s) %.200s", sop_uid, k->title_code,
				 k->title_scheme, k->title_meaning);
			/* current identities of what the note names: a cc may have moved them since */
			const char *rp[3] = { p[3], p[1], sop_uid }; /* SOP UIDs, study UIDs */
			r = dh_db_query(c, "SELECT DISTINCT st.study_uid, se.series_uid, i.sop_uid, st.owner_spoke FROM instance i "
					   "JOIN series se ON se.pk = i.series_fk JOIN study st ON st.pk = se.study_fk "
					   "JOIN unnest($1::text[], $2::text[]) AS u(sop, st) "
					   "ON (i.sop_uid = u.sop OR i.received_sop_uid = u.sop) "
					   "AND (st.study_uid = u.st OR i.received_study_uid = u.st) "
					   "WHERE i.sop_uid <> $3",
					3, rp, err);
			if (!r)
				goto done;
			/* as for a DELETE cc: only the owning spoke (or anyone, for a study no spoke owns) */
			if (h->cfg.cc_enforce_ownership) {
				const hub_spoke *sp = hub_config_spoke_of_ae(&h->cfg, source_ae);
				for (int i = 0; i < PQntuples(r); i++) {
					const char *owner = PQgetvalue(r, i, 3);
					if (owner[0] && (!sp || strcmp(owner, sp->id) != 0)) {
						snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", "");
						snprintf(err->msg, sizeof(err->msg),
							 "rejection note from %.16s for study %.64s, which spoke %.32s owns "
							 "(cc.enforce_ownership)", source_ae, PQgetvalue(r, i, 0), owner);
						rc = 1;
						goto done;
					}
				}
			}
			if (hide_rows(h, c, r, reason, &n_hidden, err) < 0)
				goto done;
			char np[16];
			snprintf(np, sizeof(np), "%d", n_hidden);
			const char *up[2] = { kpk, np };
			if (dh_db_exec(c, "UPDATE kos_document SET hidden = $2::int WHERE pk = $1::bigint", 2, up, err) <
			    0)
				goto done;
			DH_INFO("rejection note %s %s: %d of its %zu referenced instance(s) hidden", sop_uid,
				k->title_code, n_hidden, k->n_refs);
		}
	}
	if (hidden)
		*hidden = n_hidden;
	rc = 0;
done:
	PQclear(r);
	free(st.s);
	free(se.s);
	free(sop.s);
	free(cls.s);
	free(org.s);
	return rc;
}

int kos_hide_if_rejected(struct hub *h, PGconn *c, const char *received_sop_uid, const char *received_study_uid,
			 const char *study_uid, const char *series_uid, const char *sop_uid, int *hidden,
			 dh_db_err *err)
{
	char reason[400];
	int rc = -1;
	const char *sp3[3] = { received_sop_uid, received_study_uid, study_uid };
	PGresult *r = dh_db_query(c, "SELECT d.sop_uid, d.title_code, d.title_scheme, d.title_meaning, d.source_ae, "
				     "(SELECT owner_spoke FROM study WHERE study_uid = $3) "
				     "FROM kos_reference r JOIN kos_document d ON d.pk = r.kos_fk "
				     "WHERE d.rejection AND r.sop_uid = $1 AND r.study_uid = $2 ORDER BY d.pk",
				  3, sp3, err);
	*hidden = 0;
	if (!r)
		return -1;
	int row = -1;
	for (int i = 0; i < PQntuples(r) && row < 0; i++) {
		/* ownership as for a note received after the object (kos_register) */
		const char *owner = PQgetvalue(r, i, 5);
		const hub_spoke *sp = hub_config_spoke_of_ae(&h->cfg, PQgetvalue(r, i, 4));
		if (!h->cfg.cc_enforce_ownership || !owner[0] || (sp && strcmp(sp->id, owner) == 0))
			row = i;
		else
			DH_WARN("%s: rejection note %s from %s not applied: study %s is owned by spoke %s", sop_uid,
				PQgetvalue(r, i, 0), PQgetvalue(r, i, 4), study_uid, owner);
	}
	if (row < 0) {
		PQclear(r);
		return 0;
	}
	snprintf(reason, sizeof(reason), "rejected by KOS %.64s before it arrived: (%.16s, %.16s) %.200s",
		 PQgetvalue(r, row, 0), PQgetvalue(r, row, 1), PQgetvalue(r, row, 2), PQgetvalue(r, row, 3));
	PQclear(r);

	Dhcc__InstanceRef ref = DHCC__INSTANCE_REF__INIT, *one[1] = { &ref };
	Dhcc__Delete del = DHCC__DELETE__INIT;
	ref.study_uid = (char *)study_uid;
	ref.series_uid = (char *)series_uid;
	ref.sop_uid = (char *)sop_uid;
	del.n_objects = 1;
	del.objects = one;
	rc = cc_apply_delete(h, c, &del, reason, hidden, err);
	if (rc == 0 && *hidden)
		DH_INFO("%s: %s", sop_uid, reason);
	return rc;
}

int kos_quarantine_add(PGconn *c, const kos_quarantine_item *q, int *resend, char pk[32], dh_db_err *err)
{
	char size[32];
	*resend = 0;
	pk[0] = '\0';
	{
		const char *p[2] = { q->sop_uid, q->md5 };
		PGresult *r = dh_db_query(c, "SELECT pk FROM quarantine WHERE sop_uid = $1 AND md5 = $2 "
					     "AND state = 'quarantined' LIMIT 1",
					  2, p, err);
		if (!r)
			return -1;
		if (PQntuples(r) > 0) {
			snprintf(pk, 32, "%s", PQgetvalue(r, 0, 0));
			*resend = 1;
		}
		PQclear(r);
		if (*resend)
			return 0;
	}
	snprintf(size, sizeof(size), "%lld", q->file_size);
	const char *p[11] = { q->sop_uid, q->sop_class_uid, q->study_uid, q->series_uid, q->patient_id, q->source_ae,
			      q->transfer_syntax, q->file_path, size, q->md5, q->reason };
	PGresult *r = dh_db_query(c, "INSERT INTO quarantine (sop_uid, sop_class_uid, study_uid, series_uid, "
				     "patient_id, source_ae, transfer_syntax, file_path, file_size, md5, reason) "
				     "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::bigint, $10, $11) RETURNING pk",
				  11, p, err);
	if (!r)
		return -1;
	snprintf(pk, 32, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return 0;
}
