/*
 * mpps.c - Modality Performed Procedure Step SCP (conformance §2.2.1.6.6).
 *
 * NOTES
 * - The statement's rules, applied in this order. N-CREATE (Table 2.2-36):
 *   a Note 1 attribute absent or empty -> 0121; status not IN PROGRESS ->
 *   0106; a SOP Instance UID we already hold -> 0110. N-SET (Table 2.2-38):
 *   unknown step -> 0112 (PS3.4; the table names none); step already
 *   COMPLETED or DISCONTINUED -> 0110; an attribute only N-CREATE may give
 *   (in Table 2.2-35 but not 2.2-37) -> 0110 ("an attribute that cannot be
 *   updated"); status not one of the three defined terms -> 0106; a step
 *   that ends (COMPLETED/DISCONTINUED) without the Note 2 attributes having
 *   values once the N-SET is applied -> 0121. Note 2 is read as PS3.4
 *   F.7.2.2 does: an N-SET that leaves the step IN PROGRESS may still lack
 *   them. Attributes outside both tables are kept and forwarded as sent.
 * - Durable before success: the step, the message bytes as received and one
 *   forward row per destination are committed in one transaction before the
 *   response goes out; the worker in mpps_forward.c sends them later.
 * - Only Implicit VR Little Endian is accepted for the SOP class (Table
 *   2.2-34), so the stored bytes can be forwarded as they came.
 */
#include "mpps.h"

#include "hub.h"
#include "log.h"
#include "uid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T(g, e) DH_TAG(0x##g, 0x##e)

const char *mpps_choose_ts(const char *const *ts, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(ts[i], DH_TS_IMPLICIT_LE) == 0)
			return ts[i];
	return NULL;
}

mpps_status mpps_status_parse(const char *v)
{
	if (!v)
		return MPPS_BAD_STATUS;
	if (strcmp(v, "IN PROGRESS") == 0)
		return MPPS_IN_PROGRESS;
	if (strcmp(v, "COMPLETED") == 0)
		return MPPS_COMPLETED;
	if (strcmp(v, "DISCONTINUED") == 0)
		return MPPS_DISCONTINUED;
	return MPPS_BAD_STATUS;
}

static const char *status_name(mpps_status s)
{
	return s == MPPS_IN_PROGRESS ? "IN PROGRESS" : s == MPPS_COMPLETED ? "COMPLETED"
		: s == MPPS_DISCONTINUED ? "DISCONTINUED" : "?";
}

/* 1 when the top-level attribute is present with a value (a sequence: with an item). */
static int has_value(const dh_dcm_ds *ds, uint32_t tag, int is_sq)
{
	char buf[1024];
	if (!dh_dcm_ds_has(ds, tag))
		return 0;
	if (is_sq) {
		char path[16];
		snprintf(path, sizeof(path), "(%04X,%04X)", (unsigned)(tag >> 16), (unsigned)(tag & 0xFFFF));
		return dh_dcm_ds_count(ds, path) > 0;
	}
	int rc = dh_dcm_ds_get(ds, tag, buf, sizeof(buf));
	/* too long for buf still means a value */
	return rc == DH_DCM_ERROR || (rc == DH_DCM_OK && buf[strspn(buf, " ")] != '\0');
}

typedef struct {
	uint32_t tag;
	int is_sq;
	const char *name;
} attr;

/* Note 1 of Table 2.2-35 (top level; Study Instance UID inside each scheduled step is checked apart). */
static const attr note1[] = {
	{ T(0040, 0270), 1, "Scheduled Step Attribute Sequence" },
	{ T(0040, 0241), 0, "Performed Station AE Title" },
	{ T(0040, 0244), 0, "Performed Procedure Step Start Date" },
	{ T(0040, 0245), 0, "Performed Procedure Step Start Time" },
	{ T(0040, 0252), 0, "Performed Procedure Step Status" },
	{ T(0040, 0253), 0, "Performed Procedure Step ID" },
	{ T(0008, 0060), 0, "Modality" },
};

/* Note 2 of Table 2.2-37: required once the step ends. */
static const attr note2[] = {
	{ T(0040, 0250), 0, "Performed Procedure Step End Date" },
	{ T(0040, 0251), 0, "Performed Procedure Step End Time" },
	{ T(0040, 0340), 1, "Performed Series Sequence" },
};

/* In Table 2.2-35 (N-CREATE) but not in Table 2.2-37 (N-SET): fixed at creation. */
static const attr create_only[] = {
	{ T(0010, 0010), 0, "Patient's Name" },
	{ T(0010, 0020), 0, "Patient ID" },
	{ T(0010, 0030), 0, "Patient's Birth Date" },
	{ T(0010, 0040), 0, "Patient's Sex" },
	{ T(0040, 0270), 1, "Scheduled Step Attribute Sequence" },
	{ T(0040, 0241), 0, "Performed Station AE Title" },
	{ T(0040, 0242), 0, "Performed Station Name" },
	{ T(0040, 0243), 0, "Performed Location" },
	{ T(0040, 0244), 0, "Performed Procedure Step Start Date" },
	{ T(0040, 0245), 0, "Performed Procedure Step Start Time" },
	{ T(0040, 0253), 0, "Performed Procedure Step ID" },
	{ T(0008, 0060), 0, "Modality" },
	{ T(0020, 0010), 0, "Study ID" },
};

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

unsigned int mpps_check_create(const dh_dcm_ds *ds, char *why, size_t whylen)
{
	char v[256];
	for (int i = 0; i < N(note1); i++) {
		if (!has_value(ds, note1[i].tag, note1[i].is_sq)) {
			snprintf(why, whylen, "missing or empty %s", note1[i].name);
			return MPPS_MISSING_VALUE;
		}
	}
	int n = dh_dcm_ds_count(ds, "(0040,0270)");
	for (int i = 0; i < n; i++) {
		char path[48];
		snprintf(path, sizeof(path), "(0040,0270)[%d].(0020,000D)", i);
		if (dh_dcm_ds_get_path(ds, path, v, sizeof(v)) != DH_DCM_OK || !v[strspn(v, " ")]) {
			snprintf(why, whylen, "missing or empty Study Instance UID in scheduled step %d", i + 1);
			return MPPS_MISSING_VALUE;
		}
	}
	if (dh_dcm_ds_get(ds, T(0040, 0252), v, sizeof(v)) != DH_DCM_OK || mpps_status_parse(v) != MPPS_IN_PROGRESS) {
		snprintf(why, whylen, "Performed Procedure Step Status must be IN PROGRESS");
		return MPPS_INVALID_VALUE;
	}
	return MPPS_SUCCESS;
}

unsigned int mpps_check_set(const dh_dcm_ds *set, mpps_status stored, const dh_dcm_ds *merged, char *why,
			    size_t whylen)
{
	char v[256];
	if (stored != MPPS_IN_PROGRESS) {
		snprintf(why, whylen, "the step is already %s", status_name(stored));
		return MPPS_PROCESSING_FAILURE;
	}
	for (int i = 0; i < N(create_only); i++) {
		if (dh_dcm_ds_has(set, create_only[i].tag)) {
			snprintf(why, whylen, "%s cannot be updated", create_only[i].name);
			return MPPS_PROCESSING_FAILURE;
		}
	}
	if (dh_dcm_ds_has(set, T(0040, 0252)) &&
	    (dh_dcm_ds_get(set, T(0040, 0252), v, sizeof(v)) != DH_DCM_OK || mpps_status_parse(v) == MPPS_BAD_STATUS)) {
		snprintf(why, whylen, "status must be IN PROGRESS, COMPLETED or DISCONTINUED");
		return MPPS_INVALID_VALUE;
	}
	if (dh_dcm_ds_get(merged, T(0040, 0252), v, sizeof(v)) == DH_DCM_OK && mpps_status_parse(v) != MPPS_IN_PROGRESS) {
		for (int i = 0; i < N(note2); i++) {
			if (!has_value(merged, note2[i].tag, note2[i].is_sq)) {
				snprintf(why, whylen, "missing or empty %s", note2[i].name);
				return MPPS_MISSING_VALUE;
			}
		}
	}
	return MPPS_SUCCESS;
}

/* ---- storing ------------------------------------------------------------ */

/* Hex text of bytes for a bytea parameter ("\x..."); malloc'd, NULL on no memory. */
static char *bytea_hex(const unsigned char *d, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	char *s = malloc(2 * n + 3);
	if (!s)
		return NULL;
	s[0] = '\\';
	s[1] = 'x';
	for (size_t i = 0; i < n; i++) {
		s[2 + 2 * i] = hex[d[i] >> 4];
		s[3 + 2 * i] = hex[d[i] & 15];
	}
	s[2 + 2 * n] = '\0';
	return s;
}

/* The key attributes the index keeps of a step (columns of mpps). */
enum { K_STATUS, K_PID, K_PNAME, K_BIRTH, K_SEX, K_ACC, K_STUDY, K_PPSID, K_STATION, K_STATION_NAME, K_MODALITY,
       K_SDATE, K_STIME, K_EDATE, K_ETIME, K_DESC, K_SERIES, K_N };

typedef struct {
	char v[K_N][256];
} keys;

static void get_keys(const dh_dcm_ds *ds, keys *k)
{
	static const uint32_t tags[K_N] = {
		T(0040, 0252), T(0010, 0020), T(0010, 0010), T(0010, 0030), T(0010, 0040), 0, 0,
		T(0040, 0253), T(0040, 0241), T(0040, 0242), T(0008, 0060), T(0040, 0244), T(0040, 0245),
		T(0040, 0250), T(0040, 0251), T(0040, 0254), 0
	};
	memset(k, 0, sizeof(*k));
	for (int i = 0; i < K_N; i++)
		if (tags[i] && dh_dcm_ds_get(ds, tags[i], k->v[i], sizeof(k->v[i])) != DH_DCM_OK)
			k->v[i][0] = '\0';
	if (dh_dcm_ds_get_path(ds, "(0040,0270)[0].(0008,0050)", k->v[K_ACC], sizeof(k->v[K_ACC])) != DH_DCM_OK)
		k->v[K_ACC][0] = '\0';
	if (dh_dcm_ds_get_path(ds, "(0040,0270)[0].(0020,000D)", k->v[K_STUDY], sizeof(k->v[K_STUDY])) != DH_DCM_OK)
		k->v[K_STUDY][0] = '\0';
	snprintf(k->v[K_SERIES], sizeof(k->v[K_SERIES]), "%d", dh_dcm_ds_count(ds, "(0040,0340)"));
}

/* Queues one forward row per configured destination for message pk. Returns 0 or -1. */
static int queue_forwards(const hub *h, PGconn *c, const char *pk, const char *uid, int *n, dh_db_err *err)
{
	const char *p = h->cfg.mpps_destinations;
	*n = 0;
	while (p && *p) {
		while (*p == ' ' || *p == ',')
			p++;
		size_t k = strcspn(p, ","), e = k;
		while (e > 0 && p[e - 1] == ' ')
			e--;
		if (e > 0 && e <= 16) {
			char dest[17];
			memcpy(dest, p, e);
			dest[e] = '\0';
			const char *fp[3] = { pk, dest, uid };
			if (dh_db_exec(c, "INSERT INTO mpps_forward (message_pk, destination, sop_instance_uid) "
					  "VALUES ($1::bigint, $2, $3)", 3, fp, err) < 0)
				return -1;
			(*n)++;
		}
		p += k;
	}
	return 0;
}

/* Inserts the message and its forward rows; pk_out gets its pk. Returns 0 or -1. */
static int insert_message(const hub *h, PGconn *c, const char *uid, const char *kind, const char *calling,
			  const char *hex, int *n_fwd, dh_db_err *err)
{
	const char *mp[5] = { uid, kind, calling, DH_TS_IMPLICIT_LE, hex };
	PGresult *r = dh_db_query(c, "INSERT INTO mpps_message (sop_instance_uid, kind, calling_ae, transfer_syntax, "
				     "dataset) VALUES ($1, $2, $3, $4, $5::bytea) RETURNING pk", 5, mp, err);
	if (!r)
		return -1;
	char pk[32];
	snprintf(pk, sizeof(pk), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return queue_forwards(h, c, pk, uid, n_fwd, err);
}

/* Stores a checked N-CREATE. Returns a DIMSE status. */
static unsigned int store_create(hub *h, const char *uid, const char *calling, dh_dcm_ds *ds,
				 const unsigned char *bytes, size_t len, char *why, size_t whylen)
{
	unsigned int status = MPPS_PROCESSING_FAILURE;
	dh_db_err err = { "", "" };
	PGconn *c = NULL;
	char *hex = bytea_hex(bytes, len);
	keys k;
	int n_fwd = 0, began = 0;
	/* the index's columns are UTF-8; the stored bytes stay as received */
	(void)dh_dcm_ds_to_utf8(ds);
	get_keys(ds, &k);
	if (!hex || !(c = dh_db_get(h->db, &err))) {
		snprintf(why, whylen, "index database unavailable");
		goto done;
	}
	if (dh_db_exec(c, "BEGIN", 0, NULL, &err) < 0)
		goto done;
	began = 1;
	const char *p[20] = { uid, k.v[K_STATUS], k.v[K_PID], k.v[K_PNAME], k.v[K_BIRTH], k.v[K_SEX], k.v[K_ACC],
			      k.v[K_STUDY], k.v[K_PPSID], k.v[K_STATION], k.v[K_STATION_NAME], k.v[K_MODALITY],
			      k.v[K_SDATE], k.v[K_STIME], k.v[K_EDATE], k.v[K_ETIME], k.v[K_DESC], k.v[K_SERIES],
			      calling, hex };
	PGresult *r = dh_db_query(c,
		"INSERT INTO mpps (sop_instance_uid, status, patient_id, patient_name, patient_birth_date, patient_sex, "
		"accession_number, study_uid, pps_id, station_ae, station_name, modality, start_date, start_time, "
		"end_date, end_time, description, series_count, source_ae, dataset) VALUES ($1, $2, $3, $4, $5, $6, "
		"$7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18::int, $19, $20::bytea) "
		"ON CONFLICT (sop_instance_uid) DO NOTHING RETURNING 1", 20, p, &err);
	if (!r)
		goto done;
	int fresh = PQntuples(r) == 1;
	PQclear(r);
	if (!fresh) {
		snprintf(why, whylen, "a step with this SOP Instance UID exists");
		status = MPPS_PROCESSING_FAILURE;
		goto done;
	}
	if (insert_message(h, c, uid, "N-CREATE", calling, hex, &n_fwd, &err) < 0)
		goto done;
	if (dh_db_exec(c, "COMMIT", 0, NULL, &err) < 0)
		goto done;
	began = 0;
	status = MPPS_SUCCESS;
	DH_INFO("MPPS %s created by %s (patient %s, %s); %d forward(s) queued", uid, calling, k.v[K_PID],
		k.v[K_MODALITY], n_fwd);
done:
	if (began)
		PQclear(PQexec(c, "ROLLBACK"));
	if (status != MPPS_SUCCESS && err.msg[0]) {
		snprintf(why, whylen, "cannot record the step");
		DH_ERROR("MPPS %s: [%s] %s", uid, err.sqlstate, err.msg);
	}
	if (c)
		dh_db_put(h->db, c, dh_db_conn_lost(c, &err));
	free(hex);
	return status;
}

/* Checks and stores an N-SET. Returns a DIMSE status. */
static unsigned int store_set(hub *h, const char *uid, const char *calling, const dh_dcm_ds *set,
			      const unsigned char *bytes, size_t len, char *why, size_t whylen)
{
	unsigned int status = MPPS_PROCESSING_FAILURE;
	dh_db_err err = { "", "" };
	PGconn *c = NULL;
	char *hex = bytea_hex(bytes, len), *merged_hex = NULL, derr[256] = "";
	unsigned char *stored = NULL, *merged_bytes = NULL;
	size_t stored_len = 0, merged_len = 0;
	dh_dcm_ds *merged = NULL;
	keys k;
	int n_fwd = 0, began = 0;
	if (!hex || !(c = dh_db_get(h->db, &err))) {
		snprintf(why, whylen, "index database unavailable");
		goto done;
	}
	if (dh_db_exec(c, "BEGIN", 0, NULL, &err) < 0)
		goto done;
	began = 1;
	const char *up[1] = { uid };
	PGresult *r = dh_db_query(c, "SELECT status, dataset FROM mpps WHERE sop_instance_uid = $1 FOR UPDATE", 1,
				  up, &err);
	if (!r)
		goto done;
	if (PQntuples(r) == 0) {
		PQclear(r);
		snprintf(why, whylen, "no such Performed Procedure Step");
		status = MPPS_NO_SUCH_INSTANCE;
		goto done;
	}
	mpps_status st = mpps_status_parse(PQgetvalue(r, 0, 0));
	stored = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 1), &stored_len);
	PQclear(r);
	if (!stored || dh_dcm_ds_parse(stored, stored_len, DH_TS_IMPLICIT_LE, &merged, derr, sizeof(derr)) != DH_DCM_OK) {
		snprintf(why, whylen, "stored step unreadable");
		DH_ERROR("MPPS %s: stored data set: %s", uid, derr[0] ? derr : "cannot unescape");
		goto done;
	}
	if (dh_dcm_ds_merge(merged, set) != DH_DCM_OK) {
		snprintf(why, whylen, "cannot apply the modification list");
		goto done;
	}
	if ((status = mpps_check_set(set, st, merged, why, whylen)) != MPPS_SUCCESS)
		goto done;
	status = MPPS_PROCESSING_FAILURE;
	if (dh_dcm_ds_encode(merged, DH_TS_IMPLICIT_LE, &merged_bytes, &merged_len, derr, sizeof(derr)) != DH_DCM_OK ||
	    !(merged_hex = bytea_hex(merged_bytes, merged_len))) {
		snprintf(why, whylen, "cannot encode the updated step");
		DH_ERROR("MPPS %s: %s", uid, derr);
		goto done;
	}
	(void)dh_dcm_ds_to_utf8(merged); /* after encoding: the step's data set keeps its character set */
	get_keys(merged, &k);
	const char *p[10] = { uid, k.v[K_STATUS], k.v[K_EDATE], k.v[K_ETIME], k.v[K_DESC], k.v[K_SERIES], merged_hex };
	if (dh_db_exec(c, "UPDATE mpps SET status = $2, end_date = $3, end_time = $4, description = $5, "
			  "series_count = $6::int, dataset = $7::bytea, updated_at = now() WHERE sop_instance_uid = $1",
		       7, p, &err) < 0)
		goto done;
	if (insert_message(h, c, uid, "N-SET", calling, hex, &n_fwd, &err) < 0)
		goto done;
	if (dh_db_exec(c, "COMMIT", 0, NULL, &err) < 0)
		goto done;
	began = 0;
	status = MPPS_SUCCESS;
	DH_INFO("MPPS %s set by %s: %s; %d forward(s) queued", uid, calling, k.v[K_STATUS], n_fwd);
done:
	if (began)
		PQclear(PQexec(c, "ROLLBACK"));
	if (status == MPPS_PROCESSING_FAILURE && err.msg[0]) {
		snprintf(why, whylen, "cannot record the update");
		DH_ERROR("MPPS %s: [%s] %s", uid, err.sqlstate, err.msg);
	}
	if (c)
		dh_db_put(h->db, c, dh_db_conn_lost(c, &err));
	PQfreemem(stored);
	free(merged_bytes);
	free(merged_hex);
	free(hex);
	dh_dcm_ds_free(merged);
	return status;
}

/* ---- the requests ------------------------------------------------------- */

/* Reads the request's data set. Returns 0 (ds may be NULL: none or unparsable, why says), -1 when broken. */
static int read_dataset(hub *h, dh_dcm_assoc *a, const dh_dcm_cmd *cmd, dh_dcm_ds **ds, unsigned char **bytes,
			size_t *len, char *why, size_t whylen)
{
	char err[256] = "";
	*ds = NULL;
	*bytes = NULL;
	*len = 0;
	if (!cmd->has_dataset) {
		snprintf(why, whylen, "no data set");
		return 0;
	}
	if (dh_dcm_receive_dataset_raw(a, (int)h->cfg.dimse_timeout, bytes, len, ds, err, sizeof(err)) != DH_DCM_OK) {
		DH_WARN("MPPS request: %s", err);
		return -1;
	}
	if (!*ds) {
		DH_WARN("MPPS data set does not parse: %s", err);
		snprintf(why, whylen, "data set does not parse");
	}
	return 0;
}

static int respond(dh_dcm_assoc *a, const dh_dcm_cmd *cmd, unsigned int status, const char *why)
{
	if (status != MPPS_SUCCESS)
		DH_WARN("%s %s refused with %04x: %s", cmd->type == DH_DIMSE_N_CREATE_RQ ? "N-CREATE" : "N-SET",
			cmd->sop_instance[0] ? cmd->sop_instance : "(no UID)", status, why);
	return dh_dcm_send_response(a, cmd, status, NULL, status != MPPS_SUCCESS ? why : NULL, NULL) == DH_DCM_OK
		? 0 : -1;
}

int mpps_ncreate(hub *h, dh_dcm_assoc *a, const dh_dcm_cmd *cmd_in)
{
	dh_dcm_cmd cmd = *cmd_in;
	dh_dcm_ds *ds = NULL;
	unsigned char *bytes = NULL;
	size_t len = 0;
	char why[160] = "";
	unsigned int status;
	int rc = -1;

	if (read_dataset(h, a, &cmd, &ds, &bytes, &len, why, sizeof(why)) < 0)
		goto done;
	if (strcmp(cmd.sop_class, DH_UID_MPPS) != 0) {
		snprintf(why, sizeof(why), "not the MPPS SOP class");
		status = MPPS_NO_SUCH_CLASS;
	} else if (cmd.sop_instance[0] && !dh_uid_valid(cmd.sop_instance)) {
		snprintf(why, sizeof(why), "Affected SOP Instance UID is not a UID");
		status = MPPS_INVALID_INSTANCE;
	} else if (!ds) {
		status = cmd.has_dataset ? MPPS_PROCESSING_FAILURE : MPPS_MISSING_VALUE;
	} else if ((status = mpps_check_create(ds, why, sizeof(why))) == MPPS_SUCCESS) {
		/* no Affected SOP Instance UID: the SCP assigns one and returns it (PS3.4 F.7.2.1.1) */
		if (!cmd.sop_instance[0] && dh_uid_generate(cmd.sop_instance) < 0) {
			snprintf(why, sizeof(why), "cannot make a UID");
			status = MPPS_PROCESSING_FAILURE;
		} else {
			status = store_create(h, cmd.sop_instance, dh_dcm_assoc_calling_ae(a), ds, bytes, len, why,
					      sizeof(why));
		}
	}
	rc = respond(a, &cmd, status, why);
	if (status == MPPS_SUCCESS)
		mpps_forward_kick(h);
done:
	dh_dcm_ds_free(ds);
	free(bytes);
	return rc;
}

int mpps_nset(hub *h, dh_dcm_assoc *a, const dh_dcm_cmd *cmd)
{
	dh_dcm_ds *ds = NULL;
	unsigned char *bytes = NULL;
	size_t len = 0;
	char why[160] = "";
	unsigned int status;
	int rc = -1;

	if (read_dataset(h, a, cmd, &ds, &bytes, &len, why, sizeof(why)) < 0)
		goto done;
	if (strcmp(cmd->sop_class, DH_UID_MPPS) != 0) {
		snprintf(why, sizeof(why), "not the MPPS SOP class");
		status = MPPS_NO_SUCH_CLASS;
	} else if (!dh_uid_valid(cmd->sop_instance)) {
		snprintf(why, sizeof(why), "Requested SOP Instance UID is not a UID");
		status = MPPS_INVALID_INSTANCE;
	} else if (!ds) {
		status = cmd->has_dataset ? MPPS_PROCESSING_FAILURE : MPPS_MISSING_VALUE;
	} else {
		status = store_set(h, cmd->sop_instance, dh_dcm_assoc_calling_ae(a), ds, bytes, len, why, sizeof(why));
	}
	rc = respond(a, cmd, status, why);
	if (status == MPPS_SUCCESS)
		mpps_forward_kick(h);
done:
	dh_dcm_ds_free(ds);
	free(bytes);
	return rc;
}
