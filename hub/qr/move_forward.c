/*
 * move_forward.c - C-MOVE forwarding to external archives (conformance
 * §2.2.1.6.5); see move_forward.h for the contract.
 *
 * NOTES
 * The archive is asked by the UIDs the objects were exported with
 * (external_object), one C-MOVE per series at IMAGE level (Study Root): what
 * every hierarchical Move SCP understands, so no relational retrieve is
 * needed at the archive. The archive's pending and final responses are
 * relayed to the requester as counter changes; what the archive did not
 * account for (it answered fewer sub-operations than objects asked) counts
 * as failed.
 *
 * direct mode: the archive sends to the requester's Move Destination, so it
 * must know that AE; the objects arrive as the archive holds them (the
 * index's truth at export time).
 *
 * proxy mode: the archive sends to the hub. While such a forward runs, a
 * session (archive AE -> the association to the requester's destination,
 * the objects asked) is registered here; the listener's thread that
 * receives the archive's C-STORE streams it to cache/tmp, sends it on over
 * the session's destination association with the index's current truth
 * applied (render.h, so later changes are applied too) and answers the
 * archive with the destination's status. One proxied forward per archive
 * runs at a time (a second waits): the archive's C-STOREs carry no more
 * than the originator's AE title and message id, and ours are not unique
 * across associations. Counters come from what the hub relayed, not from
 * the archive's responses.
 *
 * C-CANCEL from the requester is looked at whenever the counters change
 * (qr_move.c's progress callback); the forwarded C-MOVE is then cancelled
 * at the archive (dh_dcm_move_ex) and what its final response reports is
 * counted, the rest stays "remaining" in the FE00 response.
 */
#include "move_forward.h"

#include "log.h"
#include "qr.h"
#include "render.h"
#include "uid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_PCS 128

typedef struct {
	char *pk;         /* instance pk */
	char *cur_uid;    /* the index's SOP Instance UID now */
	char *sop_uid;    /* as exported (the archive knows it by this) */
	char *sop_class;
	char *ts;         /* as stored at the hub (proxy: proposed to the destination) */
	char *series_uid; /* as exported */
	char *study_uid;
	const hub_remote_ae *archive;
} fwd_obj;

struct move_fwd {
	fwd_obj *o;
	int n;
	render_set *rs; /* proxy mode: the current truth of each object */
};

void move_forward_free(move_fwd *f)
{
	if (!f)
		return;
	for (int i = 0; i < f->n; i++) {
		free(f->o[i].pk);
		free(f->o[i].cur_uid);
		free(f->o[i].sop_uid);
		free(f->o[i].sop_class);
		free(f->o[i].ts);
		free(f->o[i].series_uid);
		free(f->o[i].study_uid);
	}
	free(f->o);
	render_free(f->rs);
	free(f);
}

int move_forward_count(const move_fwd *f)
{
	return f ? f->n : 0;
}

int move_forward_has(const move_fwd *f, const char *pk)
{
	for (int i = 0; f && i < f->n; i++)
		if (strcmp(f->o[i].pk, pk) == 0)
			return 1;
	return 0;
}

static const hub_remote_ae *exporting_archive(const hub_config *cfg, const char *ae)
{
	const hub_remote_ae *r = hub_config_remote(cfg, ae);
	return r && r->export_objects ? r : NULL;
}

int move_forward_plan(hub *h, PGconn *c, const char *const *pks, int n, move_fwd **out, dh_db_err *err)
{
	move_fwd *f = NULL;
	PGresult *r = NULL;
	char *arr = NULL;
	size_t len = 3, off = 0;
	int rc = -1;
	*out = NULL;
	int any = 0;
	for (int i = 0; i < h->cfg.n_remotes; i++)
		any |= h->cfg.remotes[i].export_objects;
	if (!any || n == 0)
		return 0;
	for (int i = 0; i < n; i++)
		len += strlen(pks[i]) + 1;
	if (!(arr = malloc(len)))
		goto done;
	arr[off++] = '{';
	for (int i = 0; i < n; i++)
		off += (size_t)sprintf(arr + off, "%s%s", i ? "," : "", pks[i]);
	arr[off++] = '}';
	arr[off] = '\0';
	const char *p[1] = { arr };
	/* not held locally = no cache file and no TAR copy; held there = committed (or stored, commit = false) */
	r = dh_db_query(c,
			"SELECT DISTINCT ON (i.pk) i.pk, i.sop_uid, e.sop_uid, e.sop_class_uid, i.transfer_syntax, "
			"e.series_uid, e.study_uid, e.archive_ae FROM instance i "
			"JOIN external_object e ON e.instance_fk = i.pk AND e.state = 'committed' "
			"WHERE i.pk = ANY ($1::bigint[]) AND i.file_path IS NULL AND i.tar_fk IS NULL "
			"ORDER BY i.pk, e.committed_at",
			1, p, err);
	if (!r)
		goto done;
	int rows = PQntuples(r);
	if (!(f = calloc(1, sizeof(*f))) || !(f->o = calloc(rows ? (size_t)rows : 1, sizeof(*f->o))))
		goto done;
	const char **fpks = calloc(rows ? (size_t)rows : 1, sizeof(*fpks));
	if (!fpks)
		goto done;
	for (int i = 0; i < rows; i++) {
		const hub_remote_ae *ae = exporting_archive(&h->cfg, PQgetvalue(r, i, 7));
		if (!ae) {
			DH_WARN("C-MOVE: instance %s is held only by %s, which is no longer an exporting [remote.*]: "
				"cannot forward", PQgetvalue(r, i, 1), PQgetvalue(r, i, 7));
			continue;
		}
		fwd_obj *o = &f->o[f->n];
		o->archive = ae;
		o->pk = strdup(PQgetvalue(r, i, 0));
		o->cur_uid = strdup(PQgetvalue(r, i, 1));
		o->sop_uid = strdup(PQgetvalue(r, i, 2));
		o->sop_class = strdup(PQgetvalue(r, i, 3));
		o->ts = strdup(PQgetvalue(r, i, 4));
		o->series_uid = strdup(PQgetvalue(r, i, 5));
		o->study_uid = strdup(PQgetvalue(r, i, 6));
		f->n++;
		if (!o->pk || !o->cur_uid || !o->sop_uid || !o->sop_class || !o->ts || !o->series_uid || !o->study_uid) {
			free(fpks);
			goto done;
		}
		fpks[f->n - 1] = o->pk;
	}
	if (f->n > 0 && render_load(c, fpks, f->n, &f->rs, err) < 0) {
		free(fpks);
		goto done;
	}
	free(fpks);
	if (f->n > 0) {
		*out = f;
		f = NULL;
	}
	rc = 0;
done:
	if (rc < 0 && !err->msg[0])
		snprintf(err->msg, sizeof(err->msg), "out of memory");
	move_forward_free(f);
	PQclear(r);
	free(arr);
	return rc;
}

/* ---- proxy sessions ---------------------------------------------------- */

typedef struct proxy_session {
	struct proxy_session *next;
	const hub_remote_ae *archive;
	const move_fwd *f;
	dh_dcm_assoc *dest;          /* the association to the requester's destination */
	const char *requester_ae;
	unsigned int msg_id;
	const move_forward_cb *cb;
	int completed, failed, warning;
	int stop;                    /* the requester went away */
	int dest_broken;
	pthread_mutex_t lock;        /* one relayed C-STORE at a time */
} proxy_session;

static pthread_mutex_t proxy_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t proxy_free = PTHREAD_COND_INITIALIZER;
static proxy_session *proxies;

static proxy_session *proxy_find(const char *archive_ae)
{
	for (proxy_session *s = proxies; s; s = s->next)
		if (strcmp(s->archive->ae_title, archive_ae) == 0)
			return s;
	return NULL;
}

static void proxy_register(proxy_session *s)
{
	pthread_mutex_lock(&proxy_lock);
	while (proxy_find(s->archive->ae_title))
		pthread_cond_wait(&proxy_free, &proxy_lock);
	s->next = proxies;
	proxies = s;
	pthread_mutex_unlock(&proxy_lock);
}

static void proxy_unregister(proxy_session *s)
{
	pthread_mutex_lock(&proxy_lock);
	for (proxy_session **p = &proxies; *p; p = &(*p)->next) {
		if (*p == s) {
			*p = s->next;
			break;
		}
	}
	pthread_cond_broadcast(&proxy_free);
	pthread_mutex_unlock(&proxy_lock);
	/* a relay that found the session before it left finishes first */
	pthread_mutex_lock(&s->lock);
	pthread_mutex_unlock(&s->lock);
}

int move_forward_proxy_claims(hub *h, dh_dcm_assoc *a, const dh_dcm_cmd *cmd)
{
	if (strcmp(cmd->move_orig_ae, h->cfg.ae_title) != 0)
		return 0;
	pthread_mutex_lock(&proxy_lock);
	int yes = proxy_find(dh_dcm_assoc_calling_ae(a)) != NULL;
	pthread_mutex_unlock(&proxy_lock);
	return yes;
}

static const fwd_obj *find_exported(const move_fwd *f, const hub_remote_ae *archive, const char *sop_uid)
{
	for (int i = 0; i < f->n; i++)
		if (f->o[i].archive == archive && strcmp(f->o[i].sop_uid, sop_uid) == 0)
			return &f->o[i];
	return NULL;
}

int move_forward_proxy_store(hub *h, dh_dcm_assoc *a, const dh_dcm_cmd *cmd)
{
	const int timeout = (int)h->cfg.dimse_timeout;
	char tmp[1200], uid[DH_UID_MAX + 1], err[300] = "";
	unsigned int status = 0xA700, st = 0xFFFF;
	const char *comment = NULL;
	proxy_session *s;

	pthread_mutex_lock(&proxy_lock);
	s = proxy_find(dh_dcm_assoc_calling_ae(a));
	if (s)
		pthread_mutex_lock(&s->lock);
	pthread_mutex_unlock(&proxy_lock);
	if (!s) /* the forward ended between claim and now */
		return ingest_store(h, a, cmd);
	if (dh_uid_generate(uid) != 0) {
		pthread_mutex_unlock(&s->lock);
		dh_dcm_receive_discard(a, timeout);
		return dh_dcm_send_response(a, cmd, 0xA700, NULL, "out of resources", NULL) == DH_DCM_OK ? 0 : -1;
	}
	/* in a fan-out directory of the cache: ingest_prepare_cache removes what a crash leaves */
	snprintf(tmp, sizeof(tmp), "%s/00/%s-proxy.part", h->cfg.cache_dir, uid);
	int rc = dh_dcm_receive_store_file(a, cmd, tmp, timeout, err, sizeof(err));
	if (rc != DH_DCM_OK) {
		pthread_mutex_unlock(&s->lock);
		DH_WARN("proxy C-MOVE: cannot receive %s from %s: %s", cmd->sop_instance, s->archive->ae_title, err);
		if (rc == DH_DCM_NOSPACE)
			return dh_dcm_send_response(a, cmd, 0xA700, NULL, "out of resources", NULL) == DH_DCM_OK ? 0 : -1;
		return -1;
	}
	const fwd_obj *o = find_exported(s->f, s->archive, cmd->sop_instance);
	if (s->stop) {
		/* the requester cancelled or went away: nothing more goes to its destination */
		status = 0xA700;
		comment = "retrieve cancelled by its requester";
		goto answer;
	}
	if (!o) {
		/* not one we asked for: refuse it rather than pass on something unknown */
		status = 0xA900;
		comment = "not requested by this hub";
		DH_WARN("proxy C-MOVE: %s sent %s, which the hub did not ask for: refused", s->archive->ae_title,
			cmd->sop_instance);
		goto answer;
	}
	int pc = -1, raw = 0;
	const char *in_ts = dh_dcm_assoc_pc_ts(a, cmd->pc_id);
	if (!s->dest_broken) {
		if (in_ts && dh_dcm_assoc_find_pc(s->dest, o->sop_class, in_ts, &pc, NULL) == DH_DCM_OK)
			raw = 1;
		else if (dh_dcm_assoc_find_pc(s->dest, o->sop_class, DH_TS_EXPLICIT_LE, &pc, NULL) != DH_DCM_OK &&
			 dh_dcm_assoc_find_pc(s->dest, o->sop_class, DH_TS_IMPLICIT_LE, &pc, NULL) != DH_DCM_OK)
			pc = -1;
	}
	if (pc < 0) {
		status = 0xA700;
		comment = s->dest_broken ? "move destination lost" : "move destination accepts no context for it";
		s->failed++;
		if (s->cb->failed_uid)
			s->cb->failed_uid(s->cb->user, o->cur_uid);
		goto progress;
	}
	const dh_dcm_override *ov = NULL;
	int n_ov = 0;
	render_get(s->f->rs, o->pk, &ov, &n_ov);
	rc = dh_dcm_store_file_ex(s->dest, pc, tmp, raw, o->sop_class, o->cur_uid, s->requester_ae, s->msg_id, ov,
				  n_ov, timeout, &st, err, sizeof(err));
	if (rc == DH_DCM_OK && st == 0x0000) {
		s->completed++;
		status = 0x0000;
	} else if (rc == DH_DCM_OK && (st & 0xF000) == 0xB000) {
		s->warning++;
		status = st;
	} else {
		if (rc == DH_DCM_ABORTED || rc == DH_DCM_TIMEOUT)
			s->dest_broken = 1;
		DH_WARN("proxy C-MOVE: storing %s on the move destination failed: %s", o->cur_uid,
			rc == DH_DCM_OK ? "error status" : err);
		status = rc == DH_DCM_OK ? st : 0xA700;
		comment = "move destination refused or lost";
		s->failed++;
		if (s->cb->failed_uid)
			s->cb->failed_uid(s->cb->user, o->cur_uid);
	}
progress:
	if (!s->stop && s->cb->progress &&
	    s->cb->progress(s->cb->user, status == 0 ? 1 : 0, (status & 0xF000) == 0xB000 ? 0 : status ? 1 : 0,
			    (status & 0xF000) == 0xB000 ? 1 : 0) < 0)
		s->stop = 1;
answer:
	unlink(tmp);
	pthread_mutex_unlock(&s->lock);
	return dh_dcm_send_response(a, cmd, status, NULL, comment, NULL) == DH_DCM_OK ? 0 : -1;
}

/* ---- forwarding -------------------------------------------------------- */

typedef struct {
	const move_forward_cb *cb;
	int last[3];  /* the archive's completed, failed, warning so far in this C-MOVE */
	int stop;
	int relay;    /* direct: relay the archive's counters; proxy: ours come from the relays */
	const int *cancel;
} move_ctx;

static void on_pending(void *user, unsigned int status, const int counts[4])
{
	move_ctx *m = user;
	(void)status;
	if (!m->relay || m->stop)
		return;
	int d[3] = { counts[1] - m->last[0], counts[2] - m->last[1], counts[3] - m->last[2] };
	if (d[0] < 0 || d[1] < 0 || d[2] < 0)
		return; /* a confused archive: the final response settles it */
	m->last[0] = counts[1];
	m->last[1] = counts[2];
	m->last[2] = counts[3];
	if ((d[0] || d[1] || d[2]) && m->cb->progress && m->cb->progress(m->cb->user, d[0], d[1], d[2]) < 0)
		m->stop = 1;
}

static void set_why(move_forward_result *res, const char *fmt, const char *a, const char *b)
{
	if (!res->why[0])
		snprintf(res->why, sizeof(res->why), fmt, a, b);
}

/* Counts the n objects f->o[idx[0..n-1]] as failed (and lists them). Returns 0, or -1 to stop. */
static int fail_objects(const move_fwd *f, const int *idx, int n, const move_forward_cb *cb, move_forward_result *res)
{
	for (int i = 0; i < n; i++)
		if (cb->failed_uid)
			cb->failed_uid(cb->user, f->o[idx[i]].cur_uid);
	res->failed += n;
	if (n && cb->progress && cb->progress(cb->user, 0, n, 0) < 0)
		return -1;
	return 0;
}

/* The destination association of a proxied forward: contexts for what the archive may send. */
static int open_destination(hub *h, const move_fwd *f, const hub_remote_ae *archive, const hub_remote_ae *dest,
			    dh_dcm_assoc **out, char *err, size_t errlen)
{
	static const char *const fallback[] = { DH_TS_EXPLICIT_LE, DH_TS_IMPLICIT_LE };
	dh_dcm_pc_req *req = calloc(MAX_PCS, sizeof(*req));
	int k = 0;
	if (!req)
		return DH_DCM_ERROR;
	for (int i = 0; i < f->n && k < MAX_PCS; i++) {
		int seen = f->o[i].archive != archive;
		for (int j = 0; j < k && !seen; j++)
			seen = req[j].n_ts == 2 && strcmp(req[j].abstract_syntax, f->o[i].sop_class) == 0;
		if (!seen)
			req[k++] = (dh_dcm_pc_req){ f->o[i].sop_class, fallback, 2, 0 };
	}
	for (int i = 0; i < f->n && k < MAX_PCS; i++) {
		const fwd_obj *o = &f->o[i];
		int seen = o->archive != archive || strcmp(o->ts, DH_TS_EXPLICIT_LE) == 0 ||
			   strcmp(o->ts, DH_TS_IMPLICIT_LE) == 0 || dest->uncompressed;
		for (int j = 0; j < k && !seen; j++)
			seen = req[j].n_ts == 1 && strcmp(req[j].abstract_syntax, o->sop_class) == 0 &&
			       strcmp(req[j].ts[0], o->ts) == 0;
		if (!seen)
			req[k++] = (dh_dcm_pc_req){ o->sop_class, (const char *const *)&o->ts, 1, 0 };
	}
	int rc = hub_connect(h, out, dest, (int)h->cfg.move_timeout, req, k, err, errlen);
	free(req);
	return rc;
}

/* Forwards the objects held by one archive. Returns 0 or -1 (stop). */
static int forward_archive(hub *h, const move_fwd *f, const hub_remote_ae *archive, const hub_remote_ae *dest,
			   const char *requester_ae, unsigned int msg_id, const move_forward_cb *cb,
			   move_forward_result *res)
{
	static const char *const ts[] = { DH_TS_EXPLICIT_LE, DH_TS_IMPLICIT_LE };
	const int proxy = archive->forward_mode == HUB_FWD_PROXY;
	int *idx = calloc((size_t)f->n, sizeof(int));
	int *done = calloc((size_t)f->n, sizeof(int));
	dh_dcm_assoc *a = NULL, *d = NULL;
	dh_dcm_ds *ident = NULL;
	char err[300] = "", *list = NULL;
	proxy_session s;
	int rc = 0, n_all = 0, registered = 0;
	memset(&s, 0, sizeof(s));
	if (!idx || !done) {
		free(idx);
		free(done);
		return -1;
	}
	for (int i = 0; i < f->n; i++)
		if (f->o[i].archive == archive)
			idx[n_all++] = i;
	dh_dcm_pc_req req = { QR_STUDY_MOVE, ts, 2, 0 };
	int arc = hub_connect(h, &a, archive, (int)h->cfg.move_timeout, &req, 1, err, sizeof(err));
	int pc;
	if (arc != DH_DCM_OK || dh_dcm_assoc_find_pc(a, QR_STUDY_MOVE, NULL, &pc, NULL) != DH_DCM_OK) {
		DH_WARN("C-MOVE forward: external archive %s (%s:%ld) not reachable: %s", archive->ae_title,
			archive->host, archive->port, arc == DH_DCM_OK ? "Study Root MOVE refused" :
			arc == DH_DCM_REJECTED ? "association rejected" : err);
		res->unreachable++;
		set_why(res, "external archive %s not reachable%s", archive->ae_title, "");
		rc = fail_objects(f, idx, n_all, cb, res);
		goto done;
	}
	if (proxy) {
		if (open_destination(h, f, archive, dest, &d, err, sizeof(err)) != DH_DCM_OK) {
			DH_WARN("C-MOVE forward: cannot open an association to %s: %s", dest->ae_title, err);
			set_why(res, "unable to perform storage of images to move destination%s%s", "", "");
			res->status = 0xA702;
			rc = fail_objects(f, idx, n_all, cb, res);
			goto done;
		}
		s.archive = archive;
		s.f = f;
		s.dest = d;
		s.requester_ae = requester_ae;
		s.msg_id = msg_id;
		s.cb = cb;
		pthread_mutex_init(&s.lock, NULL);
		proxy_register(&s);
		registered = 1;
	}
	/* one C-MOVE per series, as exported */
	for (int i = 0; i < n_all && rc == 0; i++) {
		const fwd_obj *o = &f->o[idx[i]];
		if (done[i])
			continue;
		size_t len = 1, off = 0;
		int n_series = 0;
		for (int j = i; j < n_all; j++)
			if (!done[j] && strcmp(f->o[idx[j]].series_uid, o->series_uid) == 0)
				len += strlen(f->o[idx[j]].sop_uid) + 1;
		free(list);
		if (!(list = malloc(len))) {
			rc = -1;
			break;
		}
		for (int j = i; j < n_all; j++) {
			if (done[j] || strcmp(f->o[idx[j]].series_uid, o->series_uid) != 0)
				continue;
			off += (size_t)sprintf(list + off, "%s%s", n_series ? "\\" : "", f->o[idx[j]].sop_uid);
			done[j] = 1;
			n_series++;
		}
		dh_dcm_ds_free(ident);
		ident = NULL;
		if (dh_dcm_ds_new(&ident) != DH_DCM_OK) {
			rc = -1;
			break;
		}
		dh_dcm_ds_put(ident, DH_TAG(0x0008, 0x0052), "IMAGE");
		dh_dcm_ds_put(ident, DH_TAG(0x0020, 0x000D), o->study_uid);
		dh_dcm_ds_put(ident, DH_TAG(0x0020, 0x000E), o->series_uid);
		dh_dcm_ds_put(ident, DH_TAG(0x0008, 0x0018), list);
		move_ctx mc = { cb, { 0, 0, 0 }, 0, !proxy, NULL };
		unsigned int st = 0xFFFF;
		int counts[4] = { 0, 0, 0, 0 };
		int before[3] = { s.completed, s.failed, s.warning };
		char *failed_list = NULL;
		/* direct: mc.stop; proxy: the relays' s.stop (read without its lock: a flag, set once) */
		mc.cancel = proxy ? &s.stop : &mc.stop;
		int mr = dh_dcm_move_ex(a, pc, QR_STUDY_MOVE, proxy ? h->cfg.ae_title : dest->ae_title, ident,
					(int)h->cfg.dimse_timeout, on_pending, &mc, mc.cancel, &st, counts,
					&failed_list, err, sizeof(err));
		/* cancelled (or the requester went away): count what was done, the rest stays remaining */
		int stopping = mc.stop || s.stop;
		int c, fl, w;
		if (proxy) {
			pthread_mutex_lock(&s.lock);
			c = s.completed - before[0];
			w = s.warning - before[2];
			fl = s.failed - before[1];
			pthread_mutex_unlock(&s.lock);
			res->completed += c;
			res->warning += w;
			res->failed += fl;
			/* what the archive never sent us: failed, and the requester hears of it now */
			int missing = stopping ? 0 : n_series - c - w - fl;
			if (missing > 0) {
				res->failed += missing;
				if (cb->progress && cb->progress(cb->user, 0, missing, 0) < 0)
					rc = -1;
			}
		} else {
			if (mr != DH_DCM_OK) {
				counts[1] = mc.last[0];
				counts[2] = mc.last[1];
				counts[3] = mc.last[2];
			}
			c = counts[1];
			fl = counts[2];
			w = counts[3];
			int rest = n_series - c - fl - w;
			if (rest < 0 || stopping)
				rest = 0;
			/* tell the requester what the final response added beyond the last pending one */
			int d[3] = { c - mc.last[0], fl - mc.last[1] + rest, w - mc.last[2] };
			if ((d[0] > 0 || d[1] > 0 || d[2] > 0) && cb->progress &&
			    cb->progress(cb->user, d[0] > 0 ? d[0] : 0, d[1] > 0 ? d[1] : 0, d[2] > 0 ? d[2] : 0) < 0)
				rc = -1;
			res->completed += c;
			res->failed += fl + rest;
			res->warning += w;
			if (failed_list && cb->failed_uid) {
				/* the archive's Failed SOP Instance UID List, in the index's UIDs */
				DH_DEBUG("C-MOVE forward to %s: the archive lists failed: %s", archive->ae_title, failed_list);
				for (char *save = NULL, *u = strtok_r(failed_list, "\\", &save); u;
				     u = strtok_r(NULL, "\\", &save)) {
					const fwd_obj *x = find_exported(f, archive, u);
					cb->failed_uid(cb->user, x ? x->cur_uid : u);
				}
			} else if (mr == DH_DCM_OK && fl + rest == n_series && c + w == 0 && cb->failed_uid) {
				/* nothing of the series arrived: those are the failed ones */
				for (int j = 0; j < n_all; j++)
					if (strcmp(f->o[idx[j]].series_uid, o->series_uid) == 0)
						cb->failed_uid(cb->user, f->o[idx[j]].cur_uid);
			}
		}
		free(failed_list);
		if (stopping) {
			rc = -1;
			break;
		}
		if (mr != DH_DCM_OK) {
			DH_WARN("C-MOVE forward to %s: %s", archive->ae_title, err);
			set_why(res, "external archive %s: %s", archive->ae_title, err);
			if (!res->status)
				res->status = 0xC000;
			break; /* the association is gone: the remaining series fail below */
		}
		if (st != 0x0000 && !res->status)
			res->status = st;
		if (st != 0x0000)
			DH_INFO("C-MOVE forward to %s: final status %04X (%d completed, %d failed, %d warning)",
				archive->ae_title, st, c, fl, w);
	}
	/* series never asked (association lost) */
	int left = 0;
	for (int i = 0; i < n_all; i++)
		if (!done[i])
			idx[left++] = idx[i];
	if (rc == 0 && left)
		rc = fail_objects(f, idx, left, cb, res);
done:
	if (registered) {
		proxy_unregister(&s);
		pthread_mutex_destroy(&s.lock);
	}
	if (d) {
		if (s.dest_broken)
			dh_dcm_assoc_abort(d);
		else
			dh_dcm_assoc_release(d);
		dh_dcm_assoc_free(d);
	}
	if (a) {
		if (rc < 0)
			dh_dcm_assoc_abort(a);
		else
			dh_dcm_assoc_release(a);
		dh_dcm_assoc_free(a);
	}
	dh_dcm_ds_free(ident);
	free(list);
	free(idx);
	free(done);
	return rc;
}

int move_forward_run(hub *h, const move_fwd *f, const hub_remote_ae *dest, const char *requester_ae,
		     unsigned int msg_id, const move_forward_cb *cb, move_forward_result *res)
{
	memset(res, 0, sizeof(*res));
	for (int i = 0; f && i < f->n; i++) {
		const hub_remote_ae *archive = f->o[i].archive;
		int first = 1;
		for (int j = 0; j < i && first; j++)
			first = f->o[j].archive != archive;
		if (!first)
			continue;
		if (forward_archive(h, f, archive, dest, requester_ae, msg_id, cb, res) < 0)
			return -1;
	}
	return 0;
}
