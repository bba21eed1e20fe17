/*
 * kosdoc.c - reads and checks Key Object Selection Documents (see kosdoc.h).
 *
 * Every reason a document is refused is a sentence naming the attribute
 * (path) at fault, because an operator reads it in `hubctl quarantine show`
 * and has to tell the sending system what to fix.
 */
#include "kosdoc.h"

#include "uid.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dh_kos_is_kos(const char *sop_class)
{
	return sop_class && strcmp(sop_class, DH_KOS_SOP_CLASS) == 0;
}

int dh_kos_is_rejection_title(const char *code, const char *scheme)
{
	static const char *const codes[] = { "113001", "113037", "113038", "113039" };
	if (!code || !scheme || strcmp(scheme, "DCM") != 0)
		return 0;
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (strcmp(code, codes[i]) == 0)
			return 1;
	return 0;
}

void dh_kos_free(dh_kos *k)
{
	if (!k)
		return;
	free(k->refs);
	free(k);
}

typedef struct {
	const dh_dcm_ds *ds;
	dh_kos *k;
	size_t cap;
	char *why;
	size_t whylen;
	int oom;
} parser;

static int refuse(parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int refuse(parser *p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->why, p->whylen, fmt, ap);
	va_end(ap);
	return 1;
}

/* Value at path into buf; "" when absent. Returns 0, or 1 (refused) when too long. */
static int get(parser *p, const char *path, char *buf, size_t len)
{
	int rc = dh_dcm_ds_get_path(p->ds, path, buf, len);
	if (rc == DH_DCM_ERROR) {
		buf[0] = '\0';
		return refuse(p, "%s: value too long or unreadable", path);
	}
	if (rc != DH_DCM_OK)
		buf[0] = '\0';
	return 0;
}

/* A UID at path that must be present and valid. */
static int get_uid(parser *p, const char *path, char out[65])
{
	if (get(p, path, out, 65))
		return 1;
	if (!out[0])
		return refuse(p, "%s: missing", path);
	if (!dh_uid_valid(out))
		return refuse(p, "%s: not a valid UID", path);
	return 0;
}

static dh_kos_ref *add_ref(parser *p)
{
	dh_kos *k = p->k;
	if (k->n_refs == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 16;
		dh_kos_ref *r = realloc(k->refs, cap * sizeof(*r));
		if (!r) {
			p->oom = 1;
			return NULL;
		}
		k->refs = r;
		p->cap = cap;
	}
	dh_kos_ref *r = &k->refs[k->n_refs++];
	memset(r, 0, sizeof(*r));
	return r;
}

/* The evidence refs sorted by SOP UID, for bsearch (documents may list thousands). */
typedef struct {
	const char *sop;
	size_t i; /* index into refs */
} sop_entry;

static int by_sop(const void *a, const void *b)
{
	return strcmp(((const sop_entry *)a)->sop, ((const sop_entry *)b)->sop);
}

static int by_index(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	return x < y ? -1 : x > y;
}

static const dh_kos_ref *find_evidence(const dh_kos *k, const sop_entry *idx, size_t n_evidence, const char *sop)
{
	sop_entry key = { sop, 0 };
	const sop_entry *hit = bsearch(&key, idx, n_evidence, sizeof(*idx), by_sop);
	return hit ? &k->refs[hit->i] : NULL;
}

/* Current Requested Procedure Evidence Sequence -> Referenced Series -> Referenced SOP. */
static int read_evidence(parser *p)
{
	char path[256], sp[160];
	int n_st = dh_dcm_ds_count(p->ds, "(0040,A375)");
	if (n_st == 0)
		return refuse(p, "Current Requested Procedure Evidence Sequence (0040,A375) missing or empty");
	for (int i = 0; i < n_st; i++) {
		char study[65];
		snprintf(path, sizeof(path), "(0040,A375)[%d].(0020,000D)", i);
		if (get_uid(p, path, study))
			return 1;
		snprintf(path, sizeof(path), "(0040,A375)[%d].(0008,1115)", i);
		int n_se = dh_dcm_ds_count(p->ds, path);
		if (n_se == 0)
			return refuse(p, "%s: Referenced Series Sequence missing or empty", path);
		for (int j = 0; j < n_se; j++) {
			char series[65];
			snprintf(path, sizeof(path), "(0040,A375)[%d].(0008,1115)[%d].(0020,000E)", i, j);
			if (get_uid(p, path, series))
				return 1;
			snprintf(sp, sizeof(sp), "(0040,A375)[%d].(0008,1115)[%d].(0008,1199)", i, j);
			int n_sop = dh_dcm_ds_count(p->ds, sp);
			if (n_sop == 0)
				return refuse(p, "%s: Referenced SOP Sequence missing or empty", sp);
			/* refused before reading: reading items by path costs O(items) each */
			if (p->k->n_refs + (size_t)n_sop > DH_KOS_MAX_REFS)
				return refuse(p, "more than %d referenced instances", DH_KOS_MAX_REFS);
			for (int m = 0; m < n_sop; m++) {
				if (p->k->n_refs >= DH_KOS_MAX_REFS)
					return refuse(p, "more than %d referenced instances", DH_KOS_MAX_REFS);
				dh_kos_ref *r = add_ref(p);
				if (!r)
					return -1;
				snprintf(r->study_uid, sizeof(r->study_uid), "%s", study);
				snprintf(r->series_uid, sizeof(r->series_uid), "%s", series);
				r->origin = DH_KOS_EVIDENCE;
				snprintf(path, sizeof(path), "%s[%d].(0008,1150)", sp, m);
				if (get_uid(p, path, r->sop_class))
					return 1;
				snprintf(path, sizeof(path), "%s[%d].(0008,1155)", sp, m);
				if (get_uid(p, path, r->sop_uid))
					return 1;
			}
		}
	}
	return 0;
}

static int known_value_type(const char *vt)
{
	static const char *const types[] = { "TEXT", "CODE", "NUM", "DATETIME", "DATE", "TIME", "UIDREF",
					     "PNAME", "COMPOSITE", "IMAGE", "WAVEFORM", "SCOORD", "SCOORD3D",
					     "TCOORD", "CONTAINER" };
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(vt, types[i]) == 0)
			return 1;
	return 0;
}

/*
 * The content tree's first level (TID 2010 is flat): references and the
 * observer's name. Content references are collected in a list of their
 * own (the evidence refs stay put for the sorted index), then appended
 * once, without duplicates.
 */
static int read_content(parser *p, size_t n_evidence)
{
	char path[160], vt[32], v[257];
	int n = dh_dcm_ds_count(p->ds, "(0040,A730)"), rc = -1;
	sop_entry *idx = malloc((n_evidence ? n_evidence : 1) * sizeof(*idx));
	size_t *found = malloc((n > 0 ? (size_t)n : 1) * sizeof(*found)), n_found = 0;
	if (!idx || !found) {
		p->oom = 1;
		goto done;
	}
	if (n > 2 * DH_KOS_MAX_REFS) {
		rc = refuse(p, "more than %d content items", 2 * DH_KOS_MAX_REFS);
		goto done;
	}
	/* refs do not move until the loop below is over: idx may point into them */
	for (size_t i = 0; i < n_evidence; i++) {
		idx[i].sop = p->k->refs[i].sop_uid;
		idx[i].i = i;
	}
	qsort(idx, n_evidence, sizeof(*idx), by_sop);
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "(0040,A730)[%d].(0040,A040)", i);
		if ((rc = get(p, path, vt, sizeof(vt))))
			goto done;
		rc = 1;
		if (!vt[0]) {
			refuse(p, "%s: Value Type missing", path);
			goto done;
		}
		if (!known_value_type(vt)) {
			refuse(p, "%s: unknown Value Type '%s'", path, vt);
			goto done;
		}
		if (strcmp(vt, "PNAME") == 0 && !p->k->author[0]) {
			/* (DCM 121008) Person Observer Name */
			snprintf(path, sizeof(path), "(0040,A730)[%d].(0040,A043)[0].(0008,0100)", i);
			if (get(p, path, v, sizeof(v)))
				goto done;
			if (strcmp(v, "121008") == 0) {
				snprintf(path, sizeof(path), "(0040,A730)[%d].(0040,A123)", i);
				if (get(p, path, p->k->author, sizeof(p->k->author)))
					goto done;
			}
		}
		if (strcmp(vt, "IMAGE") != 0 && strcmp(vt, "COMPOSITE") != 0 && strcmp(vt, "WAVEFORM") != 0)
			continue;
		char sop[65], cls[65];
		snprintf(path, sizeof(path), "(0040,A730)[%d].(0008,1199)[0].(0008,1155)", i);
		if (get_uid(p, path, sop))
			goto done;
		snprintf(path, sizeof(path), "(0040,A730)[%d].(0008,1199)[0].(0008,1150)", i);
		if (get_uid(p, path, cls))
			goto done;
		const dh_kos_ref *e = find_evidence(p->k, idx, n_evidence, sop);
		if (!e) {
			refuse(p, "content item %d references %s, which the evidence sequence does not list", i + 1, sop);
			goto done;
		}
		if (strcmp(e->sop_class, cls) != 0) {
			refuse(p, "content item %d gives %s another SOP class than the evidence", i + 1, sop);
			goto done;
		}
		found[n_found++] = (size_t)(e - p->k->refs);
	}
	/* each evidence ref the content names, once, in evidence order */
	qsort(found, n_found, sizeof(*found), by_index);
	for (size_t j = 0; j < n_found; j++) {
		if (j && found[j] == found[j - 1])
			continue;
		dh_kos_ref *r = add_ref(p); /* may move refs: found[] holds indexes */
		if (!r)
			goto done;
		*r = p->k->refs[found[j]];
		r->origin = DH_KOS_CONTENT;
	}
	rc = 0;
done:
	if (p->oom)
		rc = -1;
	free(idx);
	free(found);
	return rc;
}

int dh_kos_parse(const dh_dcm_ds *ds, dh_kos **out, char *why, size_t whylen)
{
	parser p = { ds, NULL, 0, why, whylen, 0 };
	char vt[32];
	int rc;

	*out = NULL;
	if (whylen)
		why[0] = '\0';
	if (!(p.k = calloc(1, sizeof(*p.k))))
		return -1;
	dh_kos *k = p.k;
	if (dh_dcm_ds_count(ds, "(0040,A043)") != 1) {
		rc = refuse(&p, "document title: Concept Name Code Sequence (0040,A043) must have one item");
		goto done;
	}
	if ((rc = get(&p, "(0040,A043)[0].(0008,0100)", k->title_code, sizeof(k->title_code))) ||
	    (rc = get(&p, "(0040,A043)[0].(0008,0102)", k->title_scheme, sizeof(k->title_scheme))) ||
	    (rc = get(&p, "(0040,A043)[0].(0008,0104)", k->title_meaning, sizeof(k->title_meaning))))
		goto done;
	if (!k->title_code[0] || !k->title_scheme[0]) {
		rc = refuse(&p, "document title: Code Value (0008,0100) or Coding Scheme Designator (0008,0102) missing");
		goto done;
	}
	if ((rc = get(&p, "(0040,A040)", vt, sizeof(vt))))
		goto done;
	if (strcmp(vt, "CONTAINER") != 0) {
		rc = refuse(&p, "Value Type (0040,A040) of the document must be CONTAINER, not '%s'", vt);
		goto done;
	}
	k->rejection = dh_kos_is_rejection_title(k->title_code, k->title_scheme);
	if ((rc = get(&p, "(0008,0023)", k->content_date, sizeof(k->content_date))) ||
	    (rc = get(&p, "(0008,0033)", k->content_time, sizeof(k->content_time))))
		goto done;
	if ((rc = read_evidence(&p)))
		goto done;
	if ((rc = read_content(&p, k->n_refs)))
		goto done;
	/* no observer in the content tree: the verifying observer, then the content creator */
	if (!k->author[0] && (rc = get(&p, "(0040,A073)[0].(0040,A075)", k->author, sizeof(k->author))))
		goto done;
	if (!k->author[0] && (rc = get(&p, "(0070,0084)", k->author, sizeof(k->author))))
		goto done;
	rc = 0;
done:
	if (p.oom)
		rc = -1;
	if (rc == 0) {
		*out = k;
		k = NULL;
	}
	dh_kos_free(k);
	return rc;
}
