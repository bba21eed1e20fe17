/*
 * move_log.c - the record of recalls (see move_log.h).
 *
 * One INSERT ... SELECT on a pooled connection after the sub-operations,
 * before the final response: the recall is on record when the requester
 * sees its outcome. The study UIDs are resolved in the same statement
 * from the keys, so qr_move.c needs to hand over nothing but what it has.
 */
#include "move_log.h"

#include "log.h"

#include <stdio.h>

void move_log_record(hub *h, const char *calling_ae, const char *dest_ae, int level, const char *patient_id,
		     const char *study_uids, const char *series_uids, const char *sop_uids, int matched,
		     const int counts[4], unsigned int status)
{
	static const char *const levels[] = { "PATIENT", "STUDY", "SERIES", "IMAGE" };
	char m[16], c1[16], c2[16], c3[16], st[16];
	dh_db_err err = { "", "" };
	PGconn *c = dh_db_get(h->db, &err);
	if (!c) {
		DH_WARN("C-MOVE from %s to %s not recorded in move_log: %s", calling_ae, dest_ae, err.msg);
		return;
	}
	snprintf(m, sizeof(m), "%d", matched);
	snprintf(c1, sizeof(c1), "%d", counts[1]);
	snprintf(c2, sizeof(c2), "%d", counts[2]);
	snprintf(c3, sizeof(c3), "%d", counts[3]);
	snprintf(st, sizeof(st), "%u", status);
	const char *lv = status != 0xA900 && level >= 0 && level <= 3 ? levels[level] : "";
	const char *p[12] = { calling_ae ? calling_ae : "", dest_ae ? dest_ae : "", lv,
			      study_uids ? study_uids : "", series_uids ? series_uids : "", sop_uids ? sop_uids : "",
			      patient_id ? patient_id : "", m, c1, c2, c3, st };
	int rc = dh_db_exec(
		c,
		"INSERT INTO move_log (calling_ae, destination_ae, level, study_uids, matched, completed, failed, "
		"warning, status) SELECT $1, $2, $3, "
		"(SELECT COALESCE(array_agg(DISTINCT u ORDER BY u) FILTER (WHERE u <> ''), '{}') FROM ("
		"  SELECT unnest(string_to_array($4, '\\')) AS u "
		"  UNION SELECT st.study_uid FROM series se JOIN study st ON st.pk = se.study_fk "
		"    WHERE $5 <> '' AND se.series_uid = ANY(string_to_array($5, '\\')) "
		"  UNION SELECT st.study_uid FROM instance i JOIN series se ON se.pk = i.series_fk "
		"    JOIN study st ON st.pk = se.study_fk WHERE $6 <> '' AND i.sop_uid = ANY(string_to_array($6, '\\')) "
		"  UNION SELECT st.study_uid FROM patient pa JOIN study st ON st.patient_fk = pa.pk "
		"    WHERE $3 = 'PATIENT' AND $7 <> '' AND pa.patient_id = $7) x), "
		"$8::int, $9::int, $10::int, $11::int, $12::int",
		12, p, &err);
	if (rc < 0)
		DH_WARN("C-MOVE from %s to %s not recorded in move_log: %s", calling_ae, dest_ae, err.msg);
	dh_db_put(h->db, c, rc < 0 && dh_db_conn_lost(c, &err));
}
