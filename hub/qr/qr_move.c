/*
 * qr_move.c - C-MOVE SCP (conformance §2.2.1.6.4, Tables 2-30..2-32) and the
 * Storage SCU it drives (§2.2.1.5.3).
 *
 * NOTES
 * One request runs start to end in the association's thread: the identifier
 * is checked against the information model, the matching objects are read
 * from the index in one query (the connection goes back to the pool before
 * any object is sent), then ONE association is opened to the Move
 * Destination and every object goes over it.
 *
 * Transfer syntaxes (§2.2.1.5.3.2, §2.2.1.6.4.5): for every SOP class we
 * propose one context per stored transfer syntax, alone, so the destination
 * can only say yes or no to it (a context listing several syntaxes lets the
 * acceptor pick an uncompressed one even when it could take the original),
 * and one fallback context with Explicit and Implicit VR Little Endian. An
 * object whose stored syntax was accepted is sent raw: the data set bytes
 * are the ones the hub received. Otherwise DCMTK decodes it into the
 * fallback context's syntax; what DCMTK cannot decode (JPEG 2000, video) is
 * a failed sub-operation. A destination marked `uncompressed` is offered the
 * fallback contexts and native stored syntaxes only.
 *
 * Transmit-time rendering (render.h): stored files are never rewritten, so
 * after the object list is read, render_load fetches in one go (same
 * connection, a couple of queries whatever the number of objects) what the
 * index says differs from each file: UIDs the hub or a change context
 * assigned, the target study's patient and study attributes for objects a
 * change context moved, and attribute overrides. An object with nothing to
 * change is sent raw as before; one with changes is parsed, changed and
 * re-encoded (in its stored syntax when that was accepted). Deleted objects
 * are not in the instance table, so they are never matched nor sent.
 *
 * Old UIDs stay resolvable: a Study Instance UID in the identifier that names
 * no current study moves the objects that came in under it
 * (instance.received_study_uid) and, following uid_mapping kind 'study'
 * (old_uid -> new_uid, transitively while the new UID is not current
 * either), those of the study it became (Study UID fix-up, merge). Series
 * and SOP Instance UIDs that are not current follow uid_mapping kinds
 * 'series' and 'sop' the same way. A UID that is current always means the
 * object that has it now.
 *
 * Status (Table 2-32): A801 unknown destination, A900 identifier not valid
 * for the model, C000 index unreachable, A702 when the destination cannot be
 * reached or refused every object, FE00 after C-CANCEL, B000 when some
 * sub-operations failed or warned (Failed SOP Instance UID List in the
 * identifier), 0000 otherwise. Pending responses carry the counters every
 * qr.pending_interval seconds.
 */
#include "hub.h"
#include "instance.h"
#include "log.h"
#include "move_forward.h"
#include "nearline.h"
#include "qr.h"
#include "move_log.h"
#include "render.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ST_SUCCESS 0x0000
#define ST_REFUSED_OUT_OF_RESOURCES 0xA702
#define ST_DEST_UNKNOWN 0xA801
#define ST_IDENT_MISMATCH 0xA900
#define ST_UNABLE 0xC000
#define ST_CANCEL 0xFE00
#define ST_WARNING 0xB000
#define ST_PENDING 0xFF00

/* A DICOM association has at most 128 presentation contexts. */
#define MAX_PCS 128

enum { LVL_PATIENT = 0, LVL_STUDY, LVL_SERIES, LVL_IMAGE };

typedef struct {
	char *sop_uid;
	char *sop_class;
	char *ts;
	char *path; /* absolute cache path; NULL when evicted (read from its TAR) */
	char *pk;   /* instance primary key: render_get */
	archive_loc *loc; /* evicted: where its TAR member is (malloc'ed), located by the move's query */
} move_obj;

typedef struct {
	move_obj *objs;
	int n;
	render_set *rs; /* what to change in each object as it leaves (render.h) */
	move_fwd *fwd;  /* objects held only by an external archive (move_forward.h) */
} move_set;

static void move_set_free(move_set *s)
{
	for (int i = 0; s && i < s->n; i++) {
		free(s->objs[i].sop_uid);
		free(s->objs[i].sop_class);
		free(s->objs[i].ts);
		free(s->objs[i].path);
		free(s->objs[i].pk);
		free(s->objs[i].loc);
	}
	if (s) {
		free(s->objs);
		render_free(s->rs);
		move_forward_free(s->fwd);
	}
}

static int is_native_ts(const char *ts)
{
	return strcmp(ts, DH_TS_IMPLICIT_LE) == 0 || strcmp(ts, DH_TS_EXPLICIT_LE) == 0;
}

/* Transfer syntaxes DCMTK (with the codecs dh_dcm_global_init registers) can decode. */
static int is_decodable_ts(const char *ts)
{
	static const char *const ok[] = {
		DH_TS_IMPLICIT_LE, DH_TS_EXPLICIT_LE, DH_TS_EXPLICIT_BE, DH_TS_DEFLATE,
		"1.2.840.10008.1.2.5",                                         /* RLE */
		"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51",            /* JPEG lossy */
		"1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",            /* JPEG lossless */
		"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81", NULL       /* JPEG-LS */
	};
	for (const char *const *p = ok; *p; p++)
		if (strcmp(*p, ts) == 0)
			return 1;
	return 0;
}

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---- the identifier ------------------------------------------------------ */

typedef struct {
	int level;
	char patient_id[1024];
	char study[16384];
	char series[16384];
	char image[65536];
} move_keys;

/* Reads an optional key; absent or empty gives "". Returns 0, or -1 when it is too long. */
static int get_key(const dh_dcm_ds *ds, uint32_t tag, char *buf, size_t len)
{
	int rc = dh_dcm_ds_get(ds, tag, buf, len);
	if (rc == DH_DCM_ABSENT) {
		buf[0] = '\0';
		return 0;
	}
	return rc == DH_DCM_OK ? 0 : -1;
}

/* Checks the identifier against the model (Table 2-32 A900). Returns 0 or -1 with why. */
static int parse_keys(const char *model, const dh_dcm_ds *ds, move_keys *k, char *why, size_t whylen)
{
	char level[32];
	if (dh_dcm_ds_get(ds, DH_TAG(0x0008, 0x0052), level, sizeof(level)) != DH_DCM_OK) {
		snprintf(why, whylen, "no Query/Retrieve Level");
		return -1;
	}
	if (strcmp(level, "PATIENT") == 0)
		k->level = LVL_PATIENT;
	else if (strcmp(level, "STUDY") == 0)
		k->level = LVL_STUDY;
	else if (strcmp(level, "SERIES") == 0)
		k->level = LVL_SERIES;
	else if (strcmp(level, "IMAGE") == 0)
		k->level = LVL_IMAGE;
	else {
		snprintf(why, whylen, "unknown Query/Retrieve Level");
		return -1;
	}
	int lo = LVL_PATIENT, hi = LVL_IMAGE;
	if (strcmp(model, QR_STUDY_MOVE) == 0)
		lo = LVL_STUDY;
	else if (strcmp(model, QR_PSONLY_MOVE) == 0)
		hi = LVL_STUDY;
	if (k->level < lo || k->level > hi) {
		snprintf(why, whylen, "level %s not in this information model", level);
		return -1;
	}
	if (get_key(ds, DH_TAG(0x0010, 0x0020), k->patient_id, sizeof(k->patient_id)) < 0 ||
	    get_key(ds, DH_TAG(0x0020, 0x000D), k->study, sizeof(k->study)) < 0 ||
	    get_key(ds, DH_TAG(0x0020, 0x000E), k->series, sizeof(k->series)) < 0 ||
	    get_key(ds, DH_TAG(0x0008, 0x0018), k->image, sizeof(k->image)) < 0) {
		snprintf(why, whylen, "unique key too long");
		return -1;
	}
	/* the level's own unique key is required; keys below the level are not allowed */
	const char *own[] = { k->patient_id, k->study, k->series, k->image };
	if (!own[k->level][0]) {
		snprintf(why, whylen, "no unique key for level %s", level);
		return -1;
	}
	for (int l = k->level + 1; l <= LVL_IMAGE; l++) {
		if (own[l][0]) {
			snprintf(why, whylen, "key below level %s", level);
			return -1;
		}
	}
	/* universal matching makes no sense for a unique key of a retrieve */
	for (int l = 0; l <= k->level; l++) {
		if (strpbrk(own[l], "*?")) {
			snprintf(why, whylen, "wildcard in a unique key");
			return -1;
		}
	}
	return 0;
}

/*
 * Fills set with the matching objects and what to change in each
 * (render_load, on the same connection). Returns 0, or -1 (database
 * unavailable or failing).
 */
static int select_objects(hub *h, const move_keys *k, const char *dest_ae, move_set *set)
{
	dh_db_err err = { "", "" };
	PGconn *c = dh_db_get(h->db, &err);
	PGresult *r = NULL;
	const char **pks = NULL;
	int rc = -1;
	if (!c) {
		DH_ERROR("C-MOVE: index database unavailable: %s", err.msg);
		return -1;
	}
	char sql[4096];
	const char *params[5];
	int np = 0, pstudy = 0, pseries = 0, psop = 0;
	/* multiple values ("a\b") are lists of UIDs: string_to_array splits them in the server */
	size_t off = (size_t)snprintf(sql, sizeof(sql), "WITH RECURSIVE ");
	if (k->study[0]) {
		params[np] = k->study;
		pstudy = ++np;
		off = instance_resolve_ctes(sql, sizeof(sql), off, pstudy, "study", "study", "study_uid");
	}
	if (k->series[0]) {
		params[np] = k->series;
		pseries = ++np;
		off = instance_resolve_ctes(sql, sizeof(sql), off, pseries, "series", "series", "series_uid");
	}
	if (k->image[0]) {
		params[np] = k->image;
		psop = ++np;
		off = instance_resolve_ctes(sql, sizeof(sql), off, psop, "sop", "instance", "sop_uid");
	}
	if (np == 0)
		off = 0; /* no CTE */
	off += (size_t)snprintf(sql + off, sizeof(sql) - off,
		"SELECT i.sop_uid, i.sop_class_uid, i.transfer_syntax, i.file_path, i.pk, " ARCHIVE_LOC_COLS " "
		"FROM instance i " ARCHIVE_LOC_JOINS " JOIN series se ON se.pk = i.series_fk "
		"JOIN study st ON st.pk = se.study_fk JOIN patient p ON p.pk = st.patient_fk WHERE true");
	if (k->patient_id[0]) {
		params[np++] = k->patient_id;
		off += (size_t)snprintf(sql + off, sizeof(sql) - off,
					" AND p.patient_id = ANY (string_to_array($%d, '\\'))", np);
	}
	if (pstudy)
		off = instance_study_clause(sql, sizeof(sql), off, pstudy);
	if (pseries)
		off += (size_t)snprintf(sql + off, sizeof(sql) - off, " AND se.series_uid IN (SELECT u FROM c%d)",
					pseries);
	if (psop)
		off += (size_t)snprintf(sql + off, sizeof(sql) - off, " AND i.sop_uid IN (SELECT u FROM c%d)", psop);
	if (h->cfg.restrict_to_source) {
		/* §5.2: objects go back only to the AE they came from */
		params[np++] = dest_ae;
		off += (size_t)snprintf(sql + off, sizeof(sql) - off, " AND i.source_ae = $%d", np);
	}
	snprintf(sql + off, sizeof(sql) - off, " ORDER BY st.pk, se.pk, i.pk");
	r = dh_db_query(c, sql, np, params, &err);
	if (!r) {
		DH_ERROR("C-MOVE: query failed: [%s] %s", err.sqlstate, err.msg);
		goto done;
	}
	int n = PQntuples(r);
	set->objs = calloc(n ? (size_t)n : 1, sizeof(move_obj));
	pks = calloc(n ? (size_t)n : 1, sizeof(*pks));
	if (!set->objs || !pks)
		goto done;
	for (int i = 0; i < n; i++) {
		move_obj *o = &set->objs[i];
		o->sop_uid = strdup(PQgetvalue(r, i, 0));
		o->sop_class = strdup(PQgetvalue(r, i, 1));
		o->ts = strdup(PQgetvalue(r, i, 2));
		o->pk = strdup(PQgetvalue(r, i, 4));
		if (!PQgetisnull(r, i, 3) &&
		    asprintf(&o->path, "%s/%s", h->cfg.cache_dir, PQgetvalue(r, i, 3)) < 0)
			goto done;
		/* evicted: its TAR member is located here, in the same query, not one lookup per object */
		if (PQgetisnull(r, i, 3)) {
			if (!(o->loc = malloc(sizeof(*o->loc))))
				goto done;
			archive_loc_from_row(h, r, i, 5, o->loc);
		}
		set->n = i + 1;
		if (!o->sop_uid || !o->sop_class || !o->ts || !o->pk)
			goto done;
		pks[i] = o->pk;
	}
	if (n > 0 && render_load(c, pks, n, &set->rs, &err) < 0) {
		DH_ERROR("C-MOVE: reading what to change in the objects failed: [%s] %s", err.sqlstate, err.msg);
		goto done;
	}
	if (n > 0 && move_forward_plan(h, c, pks, n, &set->fwd, &err) < 0) {
		DH_ERROR("C-MOVE: reading which objects external archives hold failed: [%s] %s", err.sqlstate,
			 err.msg);
		goto done;
	}
	rc = 0;
done:
	free(pks);
	PQclear(r);
	dh_db_put(h->db, c, dh_db_conn_lost(c, &err));
	return rc;
}

/* ---- the association to the destination ---------------------------------- */


static const char *const fallback_ts[] = { DH_TS_EXPLICIT_LE, DH_TS_IMPLICIT_LE };

/*
 * Builds the proposed contexts: first the fallback context of every SOP class
 * (so every object has a way to go even when MAX_PCS is reached), then one per
 * (SOP class, stored transfer syntax). Returns the number.
 */
static int plan_contexts(const move_set *set, int uncompressed, dh_dcm_pc_req *req)
{
	int n = 0;
	for (int i = 0; i < set->n && n < MAX_PCS; i++) {
		int seen = 0;
		for (int j = 0; j < n && !seen; j++)
			seen = strcmp(req[j].abstract_syntax, set->objs[i].sop_class) == 0;
		if (!seen)
			req[n++] = (dh_dcm_pc_req){ set->objs[i].sop_class, fallback_ts, 2, 0 };
	}
	int n_fallback = n;
	for (int i = 0; i < set->n && n < MAX_PCS; i++) {
		const move_obj *o = &set->objs[i];
		if (uncompressed && !is_native_ts(o->ts))
			continue;
		int seen = 0;
		for (int j = n_fallback; j < n && !seen; j++)
			seen = strcmp(req[j].abstract_syntax, o->sop_class) == 0 && strcmp(req[j].ts[0], o->ts) == 0;
		if (!seen)
			req[n++] = (dh_dcm_pc_req){ o->sop_class, (const char *const *)&o->ts, 1, 0 };
	}
	return n;
}

/* ---- the request ----------------------------------------------------------- */

typedef struct {
	hub *h;
	dh_dcm_assoc *req;  /* the requester's association */
	const dh_dcm_cmd *cmd;
	int counts[4];      /* remaining, completed, failed, warning */
	char *failed_uids;  /* backslash-separated */
	size_t failed_len;
	int refused;        /* failures the destination caused (not decoding) */
} move_run;

static void add_failed(move_run *m, const char *uid)
{
	size_t n = strlen(uid);
	char *p = realloc(m->failed_uids, m->failed_len + n + 2);
	if (!p)
		return;
	m->failed_uids = p;
	if (m->failed_len)
		p[m->failed_len++] = '\\';
	memcpy(p + m->failed_len, uid, n + 1);
	m->failed_len += n;
}

/*
 * Sends one object from wherever it is: the online cache, or its TAR member
 * on a nearline volume (located by the move's query, read at its offset and
 * checked as archive.read_verify says, never extracted to disk). An offline
 * volume or damaged bytes fail the sub-operation.
 */
static int send_object(hub *h, dh_dcm_assoc *d, int pc, int raw, const move_obj *o, const render_set *rs,
		       move_run *m, unsigned int *st, char *err, size_t errlen)
{
	const int timeout = (int)h->cfg.dimse_timeout;
	const char *orig = dh_dcm_assoc_calling_ae(m->req);
	/* the index is the truth: what it says differs from the file is set as the object leaves */
	const dh_dcm_override *ov = NULL;
	int n_ov = 0;
	render_get(rs, o->pk, &ov, &n_ov);
	instance_src src;
	int rc = o->loc ? instance_open_loc(o->loc, &src, err, errlen)
			: instance_open(h, o->pk, o->path, &src, err, errlen);
	if (rc != INSTANCE_OK)
		return DH_DCM_ERROR;
	if (src.path)
		rc = dh_dcm_store_file_ex(d, pc, src.path, raw, o->sop_class, o->sop_uid, orig, m->cmd->msg_id, ov,
					  n_ov, timeout, st, err, errlen);
	else
		rc = dh_dcm_store_buffer(d, pc, src.buf, src.len, raw, o->sop_class, o->sop_uid, orig,
					 m->cmd->msg_id, ov, n_ov, timeout, st, err, errlen);
	instance_src_free(&src);
	return rc;
}

/* Sends a response with the counters (and the failed list when there is one and ident is wanted). */
static int respond(move_run *m, unsigned int status, const char *comment)
{
	dh_dcm_ds *ident = NULL;
	int final = status != ST_PENDING;
	if (final && m->failed_len && status != ST_SUCCESS && dh_dcm_ds_new(&ident) == DH_DCM_OK)
		dh_dcm_ds_put(ident, DH_TAG(0x0008, 0x0058), m->failed_uids);
	int counts[4];
	memcpy(counts, m->counts, sizeof(counts));
	if (final && status != ST_CANCEL)
		counts[0] = 0; /* remaining is only meaningful in pending and cancel responses */
	int rc = dh_dcm_send_response(m->req, m->cmd, status, ident, comment, counts) == DH_DCM_OK ? 0 : -1;
	dh_dcm_ds_free(ident);
	return rc;
}

/* Chooses the context and mode for o. Returns the context id or -1 (with *local when we cannot decode). */
static int choose_pc(dh_dcm_assoc *d, const move_obj *o, int *raw, int *local)
{
	int id;
	*raw = 0;
	*local = 0;
	if (dh_dcm_assoc_find_pc(d, o->sop_class, o->ts, &id, NULL) == DH_DCM_OK) {
		*raw = 1;
		return id;
	}
	int has_native = dh_dcm_assoc_find_pc(d, o->sop_class, DH_TS_EXPLICIT_LE, &id, NULL) == DH_DCM_OK ||
		dh_dcm_assoc_find_pc(d, o->sop_class, DH_TS_IMPLICIT_LE, &id, NULL) == DH_DCM_OK;
	if (!has_native)
		return -1;
	if (!is_decodable_ts(o->ts)) {
		*local = 1;
		return -1;
	}
	return id;
}

/* Sends every object. Returns the final status, or 0 with *broken when the requester went away. */
static unsigned int run_suboperations(move_run *m, const move_set *set, const hub_remote_ae *dest,
				      int *broken)
{
	hub *h = m->h;
	dh_dcm_pc_req *req = calloc(MAX_PCS, sizeof(*req));
	dh_dcm_assoc *d = NULL;
	char err[300] = "";
	unsigned int final = ST_SUCCESS;
	int cancelled = 0, dest_broken = 0;
	if (!req) {
		m->counts[2] = set->n;
		return ST_UNABLE;
	}
	int n_pc = plan_contexts(set, dest->uncompressed, req);
	int rc = hub_connect(h, &d, dest, (int)h->cfg.move_timeout, req, n_pc, err, sizeof(err));
	free(req);
	if (rc != DH_DCM_OK) {
		DH_WARN("C-MOVE: cannot open an association to %s (%s:%ld): %s", dest->ae_title, dest->host,
			dest->port, err);
		for (int i = 0; i < set->n; i++)
			add_failed(m, set->objs[i].sop_uid);
		m->counts[0] = 0;
		m->counts[2] = set->n;
		dh_dcm_assoc_free(d);
		return ST_REFUSED_OUT_OF_RESOURCES;
	}
	double last_pending = now_s();
	for (int i = 0; i < set->n; i++) {
		const move_obj *o = &set->objs[i];
		/*
		 * Without asynchronous operations negotiated the requester may send
		 * nothing but C-CANCEL while the move runs: any other command
		 * (DH_DCM_ERROR) also stops the move as cancelled; only a lost
		 * association ends the request without a final response.
		 */
		int c = dh_dcm_check_cancel(m->req, m->cmd->msg_id);
		if (c == 1 || c == DH_DCM_ERROR) {
			cancelled = 1;
			break;
		}
		if (c < 0) {
			*broken = 1;
			break;
		}
		int raw, local, pc = dest_broken ? -1 : choose_pc(d, o, &raw, &local);
		unsigned int st = 0xFFFF;
		m->counts[0]--;
		if (pc < 0) {
			if (!dest_broken && !local)
				m->refused++;
			DH_WARN("C-MOVE: %s not sent to %s: %s", o->sop_uid, dest->ae_title,
				dest_broken ? "association lost" :
				local ? "cannot decode its transfer syntax" :
				"no presentation context accepted for its SOP class");
			m->counts[2]++;
			add_failed(m, o->sop_uid);
		} else {
			err[0] = '\0';
			/* from a TAR: the device reads the next member while this one goes out */
			if (i + 1 < set->n && set->objs[i + 1].loc)
				archive_prefetch(set->objs[i + 1].loc);
			rc = send_object(h, d, pc, raw, o, set->rs, m, &st, err, sizeof(err));
			if (rc == DH_DCM_OK && st == 0x0000) {
				m->counts[1]++;
			} else if (rc == DH_DCM_OK && (st & 0xF000) == 0xB000) {
				m->counts[3]++;
			} else {
				if (rc == DH_DCM_OK)
					m->refused++;
				else if (rc == DH_DCM_ABORTED || rc == DH_DCM_TIMEOUT)
					dest_broken = 1;
				DH_WARN("C-MOVE: storing %s on %s failed: %s", o->sop_uid, dest->ae_title,
					rc == DH_DCM_OK ? "status" : err);
				if (rc == DH_DCM_OK)
					DH_WARN("C-MOVE: %s answered status %04x for %s", dest->ae_title, st, o->sop_uid);
				m->counts[2]++;
				add_failed(m, o->sop_uid);
			}
		}
		double t = now_s();
		if (m->counts[0] > 0 && t - last_pending >= (double)h->cfg.pending_interval) {
			last_pending = t;
			if (respond(m, ST_PENDING, NULL) < 0) {
				*broken = 1;
				break;
			}
		}
	}
	if (dest_broken)
		dh_dcm_assoc_abort(d);
	else
		dh_dcm_assoc_release(d);
	dh_dcm_assoc_free(d);
	if (*broken)
		return 0;
	if (cancelled)
		final = ST_CANCEL;
	else if (m->refused == set->n)
		final = ST_REFUSED_OUT_OF_RESOURCES; /* Table 2-32: unable to store on the destination */
	else if (m->counts[2] || m->counts[3])
		final = ST_WARNING;
	return final;
}

/* ---- forwarding to external archives (move_forward.h) ---------------------- */

typedef struct {
	move_run *m;
	double last_pending;
	int cancelled, broken;
} fwd_glue;

static int fwd_progress(void *user, int completed, int failed, int warning)
{
	fwd_glue *g = user;
	move_run *m = g->m;
	m->counts[0] -= completed + failed + warning;
	if (m->counts[0] < 0)
		m->counts[0] = 0;
	m->counts[1] += completed;
	m->counts[2] += failed;
	m->counts[3] += warning;
	if (g->cancelled || g->broken)
		return -1; /* only counting what the archive still reports */
	int c = dh_dcm_check_cancel(m->req, m->cmd->msg_id);
	if (c == 1 || c == DH_DCM_ERROR) {
		g->cancelled = 1;
		return -1;
	}
	if (c < 0) {
		g->broken = 1;
		return -1;
	}
	double t = now_s();
	if (m->counts[0] > 0 && t - g->last_pending >= (double)m->h->cfg.pending_interval) {
		g->last_pending = t;
		if (respond(m, ST_PENDING, NULL) < 0) {
			g->broken = 1;
			return -1;
		}
	}
	return 0;
}

static void fwd_failed_uid(void *user, const char *uid)
{
	add_failed(((fwd_glue *)user)->m, uid);
}

/* Takes the forwarded objects out of set (the hub does not send them itself). */
static void drop_forwarded(move_set *set)
{
	int k = 0;
	for (int i = 0; i < set->n; i++) {
		move_obj *o = &set->objs[i];
		if (move_forward_has(set->fwd, o->pk)) {
			free(o->sop_uid);
			free(o->sop_class);
			free(o->ts);
			free(o->path);
			free(o->pk);
			continue;
		}
		set->objs[k++] = *o;
	}
	set->n = k;
}

/*
 * Forwards the objects only an external archive holds and combines the
 * final status with the local part's (local_status; n_local objects).
 */
static unsigned int forward_part(move_run *m, const move_set *set, const hub_remote_ae *dest, int n_local,
				 unsigned int local_status, int *broken, char *why, size_t whylen)
{
	fwd_glue g = { m, now_s(), 0, 0 };
	move_forward_cb cb = { &g, fwd_progress, fwd_failed_uid };
	move_forward_result res;
	int c = dh_dcm_check_cancel(m->req, m->cmd->msg_id);
	if (c == 1 || c == DH_DCM_ERROR)
		return ST_CANCEL; /* cancelled during the local part: nothing is forwarded */
	if (c < 0) {
		*broken = 1;
		return 0;
	}
	move_forward_run(m->h, set->fwd, dest, dh_dcm_assoc_calling_ae(m->req), m->cmd->msg_id, &cb, &res);
	DH_INFO("C-MOVE: %d object(s) forwarded to external archives: %d completed, %d failed, %d warning%s%s",
		move_forward_count(set->fwd), res.completed, res.failed, res.warning, res.why[0] ? "; " : "",
		res.why);
	if (g.broken) {
		*broken = 1;
		return 0;
	}
	if (g.cancelled)
		return ST_CANCEL;
	if (res.why[0])
		snprintf(why, whylen, "%.150s", res.why);
	if (n_local == 0 && res.unreachable && res.completed + res.warning == 0)
		return ST_UNABLE; /* the archive holding them cannot be reached */
	if (n_local == 0 && res.status && res.status != ST_WARNING && res.completed + res.warning == 0)
		return res.status; /* echo the archive's refusal (e.g. A801: it does not know the destination) */
	if (m->counts[1] + m->counts[3] == 0 && m->counts[2] > 0 &&
	    (local_status == ST_REFUSED_OUT_OF_RESOURCES || res.status == ST_REFUSED_OUT_OF_RESOURCES))
		return ST_REFUSED_OUT_OF_RESOURCES;
	return m->counts[2] || m->counts[3] ? ST_WARNING : ST_SUCCESS;
}

int qr_move(hub *h, dh_dcm_assoc *a, const dh_dcm_cmd *cmd)
{
	const int timeout = (int)h->cfg.dimse_timeout;
	const char *calling = dh_dcm_assoc_calling_ae(a);
	dh_dcm_ds *ds = NULL;
	move_keys *k = calloc(1, sizeof(*k));
	move_set set = { NULL, 0, NULL, NULL };
	move_run m = { h, a, cmd, { 0, 0, 0, 0 }, NULL, 0, 0 };
	char err[256] = "", why[160] = "";
	unsigned int status = ST_SUCCESS;
	int rc = -1, broken = 0, n_fwd = 0;
	double t0 = now_s();

	if (!k) {
		if (cmd->has_dataset)
			dh_dcm_receive_discard(a, timeout);
		status = ST_UNABLE;
		snprintf(why, sizeof(why), "out of memory");
		goto answer;
	}
	if (!cmd->has_dataset) {
		status = ST_IDENT_MISMATCH;
		snprintf(why, sizeof(why), "no identifier");
		goto answer;
	}
	if (dh_dcm_receive_dataset(a, timeout, &ds, err, sizeof(err)) != DH_DCM_OK) {
		DH_WARN("C-MOVE: cannot receive the identifier: %s", err);
		goto done;
	}
	const hub_remote_ae *dest = hub_config_remote(&h->cfg, cmd->move_dest);
	if (!dest) {
		status = ST_DEST_UNKNOWN;
		snprintf(why, sizeof(why), "move destination unknown");
		DH_WARN("C-MOVE from %s: destination '%s' unknown", calling, cmd->move_dest);
		goto answer;
	}
	if (parse_keys(cmd->sop_class, ds, k, why, sizeof(why)) < 0) {
		status = ST_IDENT_MISMATCH;
		DH_WARN("C-MOVE from %s: identifier does not match the SOP class: %s", calling, why);
		goto answer;
	}
	if (select_objects(h, k, cmd->move_dest, &set) < 0) {
		status = ST_UNABLE;
		snprintf(why, sizeof(why), "index database unavailable");
		goto answer;
	}
	if (set.n == 0) {
		status = ST_SUCCESS;
		goto answer;
	}
	m.counts[0] = set.n;
	/* tell the requester how many sub-operations there will be before the first one */
	if (respond(&m, ST_PENDING, NULL) < 0)
		goto done;
	n_fwd = move_forward_count(set.fwd);
	if (n_fwd > 0)
		drop_forwarded(&set);
	if (set.n > 0)
		status = run_suboperations(&m, &set, dest, &broken);
	if (n_fwd > 0 && !broken && status != ST_CANCEL)
		status = forward_part(&m, &set, dest, set.n, status, &broken, why, sizeof(why));
	if (broken) {
		DH_WARN("C-MOVE from %s to %s: requester went away after %d of %d", calling, cmd->move_dest,
			m.counts[1] + m.counts[2] + m.counts[3], set.n);
		goto done;
	}
	if (status == ST_REFUSED_OUT_OF_RESOURCES && !why[0])
		snprintf(why, sizeof(why), "unable to perform storage of images to move destination");
	else if (status == ST_CANCEL)
		snprintf(why, sizeof(why), "cancelled");

answer:
	if (k) /* the recall on record (hubctl history) before the requester sees its outcome */
		move_log_record(h, calling, cmd->move_dest, k->level, k->patient_id, k->study, k->series, k->image,
				set.n + n_fwd, m.counts, status);
	rc = respond(&m, status, status == ST_SUCCESS || status == ST_WARNING ? NULL : why);
	DH_INFO("C-MOVE from %s to %s: %d matched, %d completed, %d failed, %d warning; status %04X%s%s "
		"(%.2f s)", calling, cmd->move_dest, set.n + n_fwd, m.counts[1], m.counts[2], m.counts[3], status,
		why[0] ? ": " : "", why, now_s() - t0);
done:
	move_set_free(&set);
	free(m.failed_uids);
	dh_dcm_ds_free(ds);
	free(k);
	return rc;
}
