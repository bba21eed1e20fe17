/*
 * receive.c - spoked's DICOM listener: the spoke PACS stores here, and the
 * hub delivers its storage commitment results here.
 *
 * NOTES
 * Threads as in the hub (hub/scp.c): a few acceptor threads read
 * association requests, every accepted association gets its own detached
 * thread, and spoke.max_associations caps them (over the cap: "local
 * limit exceeded", transient, so the PACS retries). With tls.port set a
 * second listener takes DICOM over TLS (the PACS, or the hub delivering
 * storage commitment results when its [remote.X] has tls = true), with
 * acceptor threads of its own.
 *
 * Negotiation: the Calling AE must have a [remote.X] section when
 * spoke.validate_calling_ae is on. Accepted: Verification, the standard
 * storage SOP classes (1.2.840.10008.5.1.4.1.1.*; the proposed compressed
 * syntax preferred, so the object is kept and forwarded as the modality
 * made it), and Storage Commitment Push Model with us as SCU: the hub opens
 * an association proposing the SCP role and sends the N-EVENT-REPORT.
 *
 * C-STORE: the object is received into store_dir/<xx>/<uuid>.part, parsed,
 * hashed, fsync'ed and renamed durably to <uuid>.dcm, then recorded in the
 * ledger (capture_object); only after that commit is success answered.
 * A redundant copy (SAME, CHANGED, SPLIT) or a refused one is removed: the
 * ledger keeps the file it already holds.
 */
#include "capture.h"
#include "spoke.h"

#include "dsdigest.h"
#include "durable.h"
#include "hash.h"
#include "kosdoc.h"
#include "log.h"
#include "uid.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define N_ACCEPTORS 2

#define ST_SUCCESS 0x0000
#define ST_PROCESSING_FAILURE 0x0110
#define ST_OUT_OF_RESOURCES 0xA700
#define ST_MISMATCH 0xA900
#define ST_NO_SUCH_EVENT 0x0113
#define ST_INVALID_ARGUMENT 0x0115

#define STORAGE_PREFIX "1.2.840.10008.5.1.4.1.1."

typedef struct {
	spoke *s;
	dh_dcm_assoc *a;
	unsigned long id;
} assoc_job;

/* One listening socket and its acceptor threads (one spoke per process). */
typedef struct {
	spoke *s;
	dh_dcm_net *net;
	long port;
	int n_threads;
} listener;

static listener listeners[2]; /* plain, TLS */

/* ------------------------------------------------------------------ */
/* negotiation */

static const char *choose_plain_ts(const char *const *ts, int n)
{
	static const char *const pref[] = { DH_TS_EXPLICIT_LE, DH_TS_IMPLICIT_LE, NULL };

	for (const char *const *p = pref; *p; p++)
		for (int i = 0; i < n; i++)
			if (strcmp(*p, ts[i]) == 0)
				return ts[i];
	return NULL;
}

/* Storage: compressed (lossless first) over uncompressed, explicit over
 * implicit VR, as the hub prefers (hub/store/sopclass.c). */
static const char *choose_storage_ts(const char *const *ts, int n)
{
	static const char *const pref[] = {
		"1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.90",
		"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.5",    "1.2.840.10008.1.2.4.91",
		"1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.50",
		"1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.101", "1.2.840.10008.1.2.4.102",
		"1.2.840.10008.1.2.4.103", DH_TS_DEFLATE,            DH_TS_EXPLICIT_LE,
		DH_TS_EXPLICIT_BE,         DH_TS_IMPLICIT_LE,        NULL
	};

	for (const char *const *p = pref; *p; p++)
		for (int i = 0; i < n; i++)
			if (strcmp(*p, ts[i]) == 0)
				return ts[i];
	return NULL;
}

/* Accepts what we serve among the proposed contexts; returns the number accepted. */
static int negotiate(dh_dcm_assoc *a, int called_ok)
{
	int accepted = 0;

	for (int i = 0; i < dh_dcm_assoc_pc_count(a); i++) {
		int id, n_ts, role, our_role = 0;
		const char *as, *pick = NULL;
		const char *const *ts;

		if (dh_dcm_assoc_pc_get(a, i, &id, &as, &ts, &n_ts, &role) != DH_DCM_OK)
			continue;
		if (strcmp(as, DH_UID_VERIFICATION) == 0) {
			pick = choose_plain_ts(ts, n_ts);
		} else if (!called_ok) {
			pick = NULL; /* a foreign Called AE gets Verification only */
		} else if (strcmp(as, DH_UID_STGCMT_PUSH) == 0) {
			/* the hub (SCP of the SOP class) reports to us, we are its SCU.
			 * DCMTK states the accepted role from the requester's side (as
			 * proposed): the requester is SCP */
			pick = choose_plain_ts(ts, n_ts);
			our_role = (role == 2 || role == 3) ? 2 : 0;
		} else if (strncmp(as, STORAGE_PREFIX, strlen(STORAGE_PREFIX)) == 0) {
			pick = choose_storage_ts(ts, n_ts);
		}
		if (pick && dh_dcm_assoc_pc_accept(a, id, pick, our_role, NULL, 0) == DH_DCM_OK)
			accepted++;
		else
			DH_DEBUG("refused presentation context %d (%s)", id, as);
	}
	return accepted;
}

/* ------------------------------------------------------------------ */
/* C-STORE */

static void get_attr(const dh_dcm_ds *ds, uint32_t tag, char *buf, size_t len)
{
	if (dh_dcm_ds_get(ds, tag, buf, len) != DH_DCM_OK)
		buf[0] = '\0';
}

#define TXT 1024

typedef struct {
	char sop_class[65], sop_uid[65], study_uid[65], series_uid[65], ts[65];
	char patient_id[TXT], issuer[TXT], patient_name[TXT], birth_date[TXT], sex[TXT];
	char study_id[TXT], study_date[TXT], study_time[TXT], accession[TXT], referring[TXT];
	char study_desc[TXT], modality[TXT], series_number[TXT], series_desc[TXT], instance_number[TXT];
} obj_attrs;

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
	get_attr(ds, DH_TAG(0x0008, 0x0060), o->modality, TXT);
	get_attr(ds, DH_TAG(0x0020, 0x0011), o->series_number, TXT);
	get_attr(ds, DH_TAG(0x0008, 0x103E), o->series_desc, TXT);
	get_attr(ds, DH_TAG(0x0020, 0x0013), o->instance_number, TXT);
}

/* The data set against the command (A900 cases). Returns 0 or -1 with why. */
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
	if (!dh_uid_valid(o->study_uid) || !dh_uid_valid(o->series_uid) || !dh_uid_valid(o->sop_uid)) {
		snprintf(why, len, "missing or invalid Study, Series or SOP Instance UID");
		return -1;
	}
	return 0;
}

/*
 * Records the object in the ledger. Returns 0 with *v and why, or -1 with
 * *unknown set when the transaction's outcome is not known (the connection
 * broke: it may have committed, so the file must stay).
 */
static int record(spoke *s, const capture_object_info *info, capture_verdict *v, char *why, size_t whylen,
		  int *unknown)
{
	char err[512] = "";
	int rc = -1;

	*unknown = 0;
	for (int attempt = 0; attempt < 3; attempt++) {
		dh_db_err dberr = { "", "" };
		PGconn *c = dh_db_get(s->db, &dberr);
		if (!c) {
			DH_ERROR("storing %s: spoke database unavailable: %s", info->sop_uid, dberr.msg);
			break;
		}
		err[0] = '\0';
		rc = capture_object(c, &s->cfg, info, v, why, whylen, err, sizeof(err));
		int lost = rc != 0 && PQstatus(c) != CONNECTION_OK;
		dh_db_put(s->db, c, lost);
		if (rc == 0)
			break;
		DH_ERROR("recording %s in the ledger failed: %s", info->sop_uid, err);
		if (lost) {
			*unknown = 1;
			break;
		}
		/* a serialization failure or deadlock is worth another go */
		if (!strstr(err, "deadlock") && !strstr(err, "serializ"))
			break;
	}
	return rc;
}

static int store(spoke *s, dh_dcm_assoc *a, const dh_dcm_cmd *cmd)
{
	const int timeout = (int)s->cfg.dimse_timeout;
	const char *dir = s->cfg.store_dir;
	char uuid[37], tmp[1200] = "", rel[128], abs[1200] = "", err[512] = "", md5[DH_MD5_HEX_LEN + 1];
	char dsdig[DH_DSDIGEST_HEX_LEN + 1] = "";
	char why[512] = "", comment[65] = "";
	unsigned int status = ST_PROCESSING_FAILURE;
	obj_attrs *o = NULL;
	dh_dcm_ds *ds = NULL;
	long long size = 0;
	int rc = 0, r, unknown = 0;
	capture_verdict v = CAPTURE_NEW;
	dh_kos *kos = NULL;
	const char **rej_sops = NULL, **rej_studies = NULL;
	size_t n_rej = 0;

	if (dh_uuid_generate(uuid) < 0 || !(o = calloc(1, sizeof(*o)))) {
		dh_dcm_receive_discard(a, timeout);
		snprintf(comment, sizeof(comment), "out of memory");
		goto respond;
	}
	snprintf(tmp, sizeof(tmp), "%s/%.2s/%s.part", dir, uuid, uuid);
	r = dh_dcm_receive_store_file(a, cmd, tmp, timeout, err, sizeof(err));
	if (r == DH_DCM_NOSPACE) {
		status = ST_OUT_OF_RESOURCES;
		snprintf(comment, sizeof(comment), "storage full");
		DH_ERROR("refusing %s: %s", cmd->sop_instance, err);
		goto respond;
	}
	if (r != DH_DCM_OK) {
		DH_WARN("receiving %s failed: %s", cmd->sop_instance, err);
		tmp[0] = '\0';
		rc = -1; /* the association's state is unknown: the caller aborts it */
		goto done;
	}
	if (dh_dcm_ds_load(tmp, &ds, err, sizeof(err)) != DH_DCM_OK) {
		status = ST_MISMATCH;
		snprintf(comment, sizeof(comment), "%.64s", err);
		DH_WARN("refusing %s: %s", cmd->sop_instance, err);
		goto respond;
	}
	read_attrs(ds, o);
	if (check_attrs(o, cmd, err, sizeof(err)) < 0) {
		status = ST_MISMATCH;
		snprintf(comment, sizeof(comment), "%.64s", err);
		DH_WARN("refusing %s: %s", cmd->sop_instance, err);
		goto respond;
	}
	/*
	 * An IOCM rejection note hides what it rejects in the ledger, in the
	 * transaction that records it (capture_object). A KOS that cannot be
	 * registered is an ordinary object here: the hub quarantines it.
	 */
	if (dh_kos_is_kos(o->sop_class)) {
		char kwhy[300];
		int kr = dh_kos_parse(ds, &kos, kwhy, sizeof(kwhy));
		if (kr < 0) {
			snprintf(comment, sizeof(comment), "out of memory");
			goto respond;
		}
		if (kr > 0)
			DH_WARN("%s is a Key Object Selection document the hub will quarantine: %s", o->sop_uid, kwhy);
		if (kr == 0 && kos->rejection) {
			rej_sops = calloc(kos->n_refs ? kos->n_refs : 1, sizeof(*rej_sops));
			rej_studies = calloc(kos->n_refs ? kos->n_refs : 1, sizeof(*rej_studies));
			if (!rej_sops || !rej_studies) {
				snprintf(comment, sizeof(comment), "out of memory");
				goto respond;
			}
			for (size_t i = 0; i < kos->n_refs; i++) {
				if (kos->refs[i].origin != DH_KOS_EVIDENCE)
					continue;
				rej_sops[n_rej] = kos->refs[i].sop_uid;
				rej_studies[n_rej++] = kos->refs[i].study_uid;
			}
		}
	}
	/* one read: the file's MD5 and the data set's, which hubctl verify compares with the hub's ('' unknown) */
	if (dh_durable_md5_sync(tmp, md5, &size, dh_dsdigest_offset(tmp), dsdig, NULL) < 0) {
		int e = errno;
		status = (e == ENOSPC || e == EDQUOT) ? ST_OUT_OF_RESOURCES : ST_PROCESSING_FAILURE;
		snprintf(comment, sizeof(comment), "cannot write object: %.40s", strerror(e));
		DH_ERROR("storing %s: %s", cmd->sop_instance, strerror(e));
		goto respond;
	}
	snprintf(rel, sizeof(rel), "%.2s/%s.dcm", uuid, uuid);
	snprintf(abs, sizeof(abs), "%s/%s", dir, rel);
	if (dh_durable_rename_synced(tmp, abs) < 0) {
		int e = errno;
		status = (e == ENOSPC || e == EDQUOT) ? ST_OUT_OF_RESOURCES : ST_PROCESSING_FAILURE;
		snprintf(comment, sizeof(comment), "cannot write object: %.40s", strerror(e));
		DH_ERROR("storing %s: %s", cmd->sop_instance, strerror(e));
		if (access(abs, F_OK) != 0)
			abs[0] = '\0';
		goto respond;
	}
	tmp[0] = '\0';

	const capture_object_info info = {
		.sop_uid = o->sop_uid, .series_uid = o->series_uid, .study_uid = o->study_uid,
		.sop_class_uid = o->sop_class, .transfer_syntax = o->ts,
		.patient_id = o->patient_id, .issuer = o->issuer, .patient_name = o->patient_name,
		.birth_date = o->birth_date, .sex = o->sex, .study_id = o->study_id,
		.study_date = o->study_date, .study_time = o->study_time, .accession = o->accession,
		.referring_physician = o->referring, .study_description = o->study_desc,
		.modality = o->modality, .series_number = o->series_number,
		.series_description = o->series_desc, .instance_number = o->instance_number,
		.file_path = rel, .file_size = size, .md5 = md5, .source_ae = dh_dcm_assoc_calling_ae(a),
		.dataset_digest = dsdig,
		.rejected_sops = rej_sops, .rejected_studies = rej_studies, .n_rejected = n_rej,
		.rejection_code = kos ? kos->title_code : NULL,
	};
	if (record(s, &info, &v, why, sizeof(why), &unknown) != 0) {
		status = ST_PROCESSING_FAILURE;
		snprintf(comment, sizeof(comment), "unable to process");
		if (unknown) {
			/* the ledger may name it: keeping a stray file beats losing an object */
			DH_ERROR("the outcome of recording %s is unknown (connection lost): %s kept", o->sop_uid, abs);
			abs[0] = '\0';
		}
		goto respond;
	}
	switch (v) {
	case CAPTURE_NEW:
		status = ST_SUCCESS;
		abs[0] = '\0'; /* the ledger's now */
		if (n_rej)
			DH_INFO("rejection note %s (%s %s): %zu instance(s) rejected", o->sop_uid, kos->title_code,
				kos->title_meaning, n_rej);
		DH_DEBUG("stored %s as %s (%lld bytes, md5 %s)%s%s", o->sop_uid, rel, size, md5, why[0] ? ": " : "",
			 why);
		forward_wake(s);
		break;
	case CAPTURE_SAME:
	case CAPTURE_CHANGED:
	case CAPTURE_SPLIT:
		/* the ledger keeps the file it holds (the one forwarded): this copy is redundant */
		status = ST_SUCCESS;
		DH_INFO("%s", why[0] ? why : "object already held");
		if (v != CAPTURE_SAME)
			forward_wake(s);
		break;
	case CAPTURE_REJECTED:
	default:
		status = ST_PROCESSING_FAILURE;
		snprintf(comment, sizeof(comment), "%.64s", why[0] ? why : "refused");
		DH_WARN("refused %s: %s", o->sop_uid, why);
		break;
	}
respond:
	if (dh_dcm_send_response(a, cmd, status, NULL, comment[0] ? comment : NULL, NULL) != DH_DCM_OK)
		rc = -1;
done:
	if (tmp[0])
		unlink(tmp);
	if (abs[0] && unlink(abs) == 0) {
		char d[1200];
		const char *slash = strrchr(abs, '/');
		snprintf(d, sizeof(d), "%.*s", (int)(slash - abs), abs);
		dh_durable_fsync_dir(d);
	}
	dh_dcm_ds_free(ds);
	free(rej_sops);
	free(rej_studies);
	dh_kos_free(kos);
	free(o);
	return rc;
}

/* ------------------------------------------------------------------ */
/* N-EVENT-REPORT (storage commitment result) */

/* The SOP Instance UIDs of sequence seq ("(0008,1199)" or "(0008,1198)"); malloc'd array of malloc'd strings. */
static char **read_refs(const dh_dcm_ds *ds, const char *seq, int *n)
{
	int count = dh_dcm_ds_count(ds, seq), k = 0;
	char **out = calloc((size_t)(count > 0 ? count : 1), sizeof(*out));
	char path[64], uid[DH_UID_MAX + 1];

	*n = 0;
	if (!out)
		return NULL;
	for (int i = 0; i < count; i++) {
		snprintf(path, sizeof(path), "%s[%d].(0008,1155)", seq, i);
		if (dh_dcm_ds_get_path(ds, path, uid, sizeof(uid)) != DH_DCM_OK || !uid[0])
			continue;
		if (!(out[k] = strdup(uid)))
			break;
		k++;
	}
	*n = k;
	return out;
}

static void free_refs(char **r, int n)
{
	for (int i = 0; r && i < n; i++)
		free(r[i]);
	free(r);
}

static int event_report(spoke *s, dh_dcm_assoc *a, const dh_dcm_cmd *cmd)
{
	const int timeout = (int)s->cfg.dimse_timeout;
	dh_dcm_ds *ds = NULL;
	char err[256] = "", txn[DH_UID_MAX + 1] = "", why[128] = "";
	char **ok = NULL, **failed = NULL;
	int n_ok = 0, n_failed = 0, rc;
	unsigned int status = ST_SUCCESS;

	if (strcmp(cmd->sop_class, DH_UID_STGCMT_PUSH) != 0 || (cmd->type_id != 1 && cmd->type_id != 2)) {
		if (cmd->has_dataset)
			dh_dcm_receive_discard(a, timeout);
		return dh_dcm_send_response(a, cmd, ST_NO_SUCH_EVENT, NULL, "no such event type", NULL) ==
			DH_DCM_OK ? 0 : -1;
	}
	if (!cmd->has_dataset) {
		status = ST_INVALID_ARGUMENT;
		snprintf(why, sizeof(why), "no event information");
		goto respond;
	}
	if (dh_dcm_receive_dataset(a, timeout, &ds, err, sizeof(err)) != DH_DCM_OK) {
		DH_WARN("storage commitment result: %s", err);
		return -1;
	}
	if (dh_dcm_ds_get(ds, DH_TAG(0x0008, 0x1195), txn, sizeof(txn)) != DH_DCM_OK || !dh_uid_valid(txn)) {
		status = ST_INVALID_ARGUMENT;
		snprintf(why, sizeof(why), "missing or invalid Transaction UID");
		goto respond;
	}
	ok = read_refs(ds, "(0008,1199)", &n_ok);
	failed = read_refs(ds, "(0008,1198)", &n_failed);
	if (!ok || !failed) {
		status = ST_PROCESSING_FAILURE;
		snprintf(why, sizeof(why), "out of memory");
		goto respond;
	}
	DH_INFO("storage commitment result %s from %s: %d committed, %d failed", txn, dh_dcm_assoc_calling_ae(a),
		n_ok, n_failed);
	if (forward_commit_result(s, txn, (const char *const *)ok, n_ok, (const char *const *)failed,
				  n_failed) != 0) {
		/* the hub keeps the result and delivers it again */
		status = ST_PROCESSING_FAILURE;
		snprintf(why, sizeof(why), "cannot record the result");
	}
respond:
	rc = dh_dcm_send_response(a, cmd, status, NULL, status ? why : NULL, NULL) == DH_DCM_OK ? 0 : -1;
	free_refs(ok, n_ok);
	free_refs(failed, n_failed);
	dh_dcm_ds_free(ds);
	return rc;
}

/* ------------------------------------------------------------------ */
/* associations */

static void serve(spoke *s, dh_dcm_assoc *a)
{
	char err[256] = "";

	for (;;) {
		dh_dcm_cmd cmd;
		int ok, rc = dh_dcm_receive_command(a, (int)s->cfg.dimse_timeout, &cmd, err, sizeof(err));

		if (rc == DH_DCM_RELEASED) {
			DH_DEBUG("released");
			return;
		}
		if (rc == DH_DCM_TIMEOUT) {
			DH_WARN("no message for %ld s (DIMSE time-out): aborting", s->cfg.dimse_timeout);
			dh_dcm_assoc_abort(a);
			return;
		}
		if (rc == DH_DCM_ABORTED) {
			DH_INFO("peer aborted the association");
			return;
		}
		if (rc != DH_DCM_OK) {
			DH_WARN("%s: aborting", err);
			dh_dcm_assoc_abort(a);
			return;
		}
		switch (cmd.type) {
		case DH_DIMSE_C_ECHO_RQ:
			ok = dh_dcm_send_response(a, &cmd, ST_SUCCESS, NULL, NULL, NULL) == DH_DCM_OK ? 0 : -1;
			break;
		case DH_DIMSE_C_STORE_RQ:
			ok = store(s, a, &cmd);
			break;
		case DH_DIMSE_N_EVENT_REPORT_RQ:
			ok = event_report(s, a, &cmd);
			break;
		case DH_DIMSE_C_CANCEL_RQ:
			ok = 0;
			break;
		default:
			if (cmd.has_dataset)
				dh_dcm_receive_discard(a, (int)s->cfg.dimse_timeout);
			DH_WARN("unsupported command %d on context %d", (int)cmd.type, cmd.pc_id);
			ok = dh_dcm_send_response(a, &cmd, 0x0211, NULL, "unsupported operation", NULL) ==
				DH_DCM_OK ? 0 : -1;
			if (cmd.type == DH_DIMSE_OTHER)
				ok = -1;
			break;
		}
		if (ok < 0) {
			DH_WARN("association broken: aborting");
			dh_dcm_assoc_abort(a);
			return;
		}
	}
}

static void *assoc_main(void *arg)
{
	assoc_job *job = arg;
	spoke *s = job->s;
	dh_dcm_assoc *a = job->a;
	char err[256] = "";
	const char *calling = dh_dcm_assoc_calling_ae(a);
	const char *called = dh_dcm_assoc_called_ae(a);
	int called_ok, n;

	dh_log_set_context("assoc %lu %s->%s", job->id, calling, called);
	char subject[256];
	if (dh_dcm_assoc_tls_peer(a, subject, sizeof(subject)))
		DH_DEBUG("TLS from %s, certificate %s", dh_dcm_assoc_peer_host(a), *subject ? subject : "(none)");
	if (s->cfg.validate_calling_ae && !spoke_config_remote(&s->cfg, calling)) {
		DH_WARN("rejected: calling AE title '%s' from %s is not configured", calling,
			dh_dcm_assoc_peer_host(a));
		dh_dcm_assoc_reject(a, 1, 1, 3);
		goto done;
	}
	called_ok = strcmp(called, s->cfg.ae_title) == 0;
	if (!called_ok)
		DH_INFO("called AE title '%s' is not ours: Verification only", called);
	n = negotiate(a, called_ok);
	if (n == 0) {
		DH_WARN("rejected: no acceptable presentation context%s",
			called_ok ? "" : " (called AE title not ours: Verification only)");
		dh_dcm_assoc_reject(a, 1, 1, called_ok ? 1 : 7);
		goto done;
	}
	if (dh_dcm_assoc_acknowledge(a, err, sizeof(err)) != DH_DCM_OK) {
		DH_WARN("%s", err);
		goto done;
	}
	DH_DEBUG("accepted from %s with %d presentation context(s)", dh_dcm_assoc_peer_host(a), n);
	serve(s, a);
done:
	dh_dcm_assoc_free(a);
	atomic_fetch_sub(&s->active, 1);
	free(job);
	dh_log_set_context(NULL);
	return NULL;
}

static void *acceptor_main(void *arg)
{
	listener *l = arg;
	spoke *s = l->s;
	char err[256];

	while (!s->stop) {
		dh_dcm_assoc *a = NULL;
		int rc = dh_dcm_net_accept(l->net, 1, (int)s->cfg.max_pdu, &a, err, sizeof(err));
		unsigned long id;
		assoc_job *job;
		pthread_t t;
		pthread_attr_t attr;

		if (rc == DH_DCM_TIMEOUT)
			continue;
		if (rc != DH_DCM_OK) {
			/* on the TLS port a failed handshake (plain DICOM, untrusted certificate) lands here */
			if (l->net == s->tls_net && !s->stop)
				DH_WARN("TLS port %ld: connection refused: %s", l->port, err);
			else
				DH_DEBUG("%s", err);
			continue;
		}
		if (s->stop) { /* our own wake-up connection, or a late caller */
			dh_dcm_assoc_free(a);
			break;
		}
		id = atomic_fetch_add(&s->next_assoc, 1) + 1;
		if (atomic_fetch_add(&s->active, 1) >= s->cfg.max_associations) {
			atomic_fetch_sub(&s->active, 1);
			DH_WARN("association %lu from %s rejected: %ld associations open (limit)", id,
				dh_dcm_assoc_calling_ae(a), s->cfg.max_associations);
			dh_dcm_assoc_reject(a, 2, 3, 2);
			dh_dcm_assoc_free(a);
			continue;
		}
		job = malloc(sizeof(*job));
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&attr, 512 * 1024);
		if (!job || (job->s = s, job->a = a, job->id = id, pthread_create(&t, &attr, assoc_main, job) != 0)) {
			DH_ERROR("cannot start a thread for association %lu", id);
			dh_dcm_assoc_reject(a, 2, 3, 2);
			dh_dcm_assoc_free(a);
			atomic_fetch_sub(&s->active, 1);
			free(job);
		}
		pthread_attr_destroy(&attr);
	}
	return NULL;
}

int receive_start(spoke *s)
{
	listeners[0] = (listener){ s, s->net, s->cfg.port, 0 };
	listeners[1] = (listener){ s, s->tls_net, s->cfg.tls.port, 0 };
	s->acceptors = calloc(2 * N_ACCEPTORS, sizeof(*s->acceptors));
	if (!s->acceptors)
		return -1;
	s->n_acceptors = 0;
	for (int k = 0; k < 2; k++) {
		listener *l = &listeners[k];
		for (; l->net && l->n_threads < N_ACCEPTORS; l->n_threads++, s->n_acceptors++)
			if (pthread_create(&s->acceptors[s->n_acceptors], NULL, acceptor_main, l) != 0)
				break;
		if (l->net && l->n_threads == 0)
			return -1;
	}
	return s->n_acceptors > 0 ? 0 : -1;
}

/* Acceptors blocked in accept() wake up on a connect-and-close each. */
static void wake_acceptors(const spoke *s)
{
	(void)s; /* the listeners know their ports */
	for (int k = 0; k < 2; k++) {
		for (int i = 0; i < listeners[k].n_threads; i++) {
			struct sockaddr_in sa;
			int fd = socket(AF_INET, SOCK_STREAM, 0);

			if (fd < 0)
				return;
			memset(&sa, 0, sizeof(sa));
			sa.sin_family = AF_INET;
			sa.sin_port = htons((uint16_t)listeners[k].port);
			sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			(void)connect(fd, (struct sockaddr *)&sa, sizeof(sa));
			close(fd);
		}
	}
}

void receive_stop(spoke *s)
{
	s->stop = 1;
	if (!s->acceptors)
		return;
	wake_acceptors(s);
	for (int i = 0; i < s->n_acceptors; i++)
		pthread_join(s->acceptors[i], NULL);
	free(s->acceptors);
	s->acceptors = NULL;
	s->n_acceptors = 0;
	listeners[0].n_threads = listeners[1].n_threads = 0;
	/* give open associations a moment to finish their current message */
	for (int i = 0; i < 100 && atomic_load(&s->active) > 0; i++) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	if (atomic_load(&s->active) > 0)
		DH_WARN("%d association(s) still open at shutdown", atomic_load(&s->active));
}

/* ------------------------------------------------------------------ */
/* the store directory */

int receive_prepare_store(const spoke *s)
{
	int n = 0;
	if (dh_durable_fanout_prepare(s->cfg.store_dir, &n) < 0) {
		DH_ERROR("cannot create the store directories under %s: %s", s->cfg.store_dir, strerror(errno));
		return -1;
	}
	if (n)
		DH_INFO("removed %d unfinished object(s) left in %s by an earlier run", n, s->cfg.store_dir);
	return 0;
}
