/*
 * hubctl_mpps.c - hubctl's MPPS commands (see hubctl_mpps.h).
 *
 * They read the tables of sql/hub/008_mpps.sql, which hub/mpps/mpps.c fills
 * when a step arrives and hub/mpps/mpps_forward.c updates as it forwards.
 */
#include "hubctl_mpps.h"

#include "hubctl_out.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int hubctl_mpps_is_command(const char *name)
{
	return name && strcmp(name, "mpps") == 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: hubctl [--json] mpps list [--all]\n"
		   "       hubctl [--json] mpps show UID\n"
		   "       hubctl [--json] mpps backlog\n");
}

int hubctl_mpps_backlog(PGconn *c, long *pending, long *refused, long *oldest_s, dh_db_err *err)
{
	PGresult *r = dh_db_query(c,
		"SELECT COALESCE(sum(pending), 0), COALESCE(sum(refused), 0), "
		"COALESCE(extract(epoch FROM now() - min(oldest_pending))::bigint, 0) FROM mpps_forward_backlog",
		0, NULL, err);
	if (!r)
		return -1;
	*pending = atol(PQgetvalue(r, 0, 0));
	*refused = atol(PQgetvalue(r, 0, 1));
	*oldest_s = atol(PQgetvalue(r, 0, 2));
	PQclear(r);
	return 0;
}

static int print_query(PGconn *c, const char *sql, int n, const char *const *p, int json, const int *num)
{
	dh_db_err err;
	PGresult *r = dh_db_query(c, sql, n, p, &err);
	if (!r) {
		fprintf(stderr, "hubctl: %s\n", err.msg);
		return 1;
	}
	hubctl_print_result(r, json, num);
	PQclear(r);
	return 0;
}

static int cmd_list(PGconn *c, int all, int json)
{
	static const int num[] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1 };
	const char *p[1] = { all ? "t" : "f" };
	return print_query(c,
		"SELECT uid, status, patient_id, patient_name, accession, modality, station, started, updated, messages, "
		"fwd_pending, fwd_refused FROM (SELECT s.sop_instance_uid AS uid, s.status, s.patient_id, s.patient_name, "
		"s.accession_number AS accession, s.modality, s.station_ae AS station, "
		"trim(s.start_date || ' ' || s.start_time) AS started, "
		"to_char(s.updated_at, 'YYYY-MM-DD HH24:MI:SS') AS updated, "
		"(SELECT count(*) FROM mpps_message m WHERE m.sop_instance_uid = s.sop_instance_uid) AS messages, "
		"(SELECT count(*) FROM mpps_forward f WHERE f.sop_instance_uid = s.sop_instance_uid "
		"  AND f.state = 'pending') AS fwd_pending, "
		"(SELECT count(*) FROM mpps_forward f WHERE f.sop_instance_uid = s.sop_instance_uid "
		"  AND f.state = 'refused') AS fwd_refused, s.created_at "
		"FROM mpps s ORDER BY s.created_at DESC LIMIT CASE WHEN $1::boolean THEN NULL ELSE 1000 END) x "
		"ORDER BY created_at",
		1, p, json, num) == 0 ? 0 : 1;
}

/* The step with its messages and forwards, as one JSON document built by the server. */
static const char show_json_sql[] =
	"SELECT json_build_object('uid', s.sop_instance_uid, 'status', s.status, 'patient_id', s.patient_id, "
	"'patient_name', s.patient_name, 'patient_birth_date', s.patient_birth_date, 'patient_sex', s.patient_sex, "
	"'accession', s.accession_number, 'study_uid', s.study_uid, 'pps_id', s.pps_id, 'station_ae', s.station_ae, "
	"'station_name', s.station_name, 'modality', s.modality, 'start_date', s.start_date, "
	"'start_time', s.start_time, 'end_date', s.end_date, 'end_time', s.end_time, "
	"'description', s.description, 'series_count', s.series_count, 'source_ae', s.source_ae, "
	"'created', to_char(s.created_at, 'YYYY-MM-DD HH24:MI:SS'), "
	"'updated', to_char(s.updated_at, 'YYYY-MM-DD HH24:MI:SS'), "
	"'messages', COALESCE((SELECT json_agg(json_build_object('id', m.pk, 'kind', m.kind, "
	"  'calling_ae', m.calling_ae, 'received', to_char(m.received_at, 'YYYY-MM-DD HH24:MI:SS'), "
	"  'bytes', octet_length(m.dataset), 'transfer_syntax', m.transfer_syntax, "
	"  'forwards', COALESCE((SELECT json_agg(json_build_object('destination', f.destination, "
	"    'state', f.state, 'attempts', f.attempts, 'last_error', f.last_error, "
	"    'response_status', lpad(to_hex(f.response_status), 4, '0'), "
	"    'sent', to_char(f.sent_at, 'YYYY-MM-DD HH24:MI:SS'), "
	"    'next_attempt', CASE WHEN f.state = 'pending' THEN "
	"      to_char(f.next_attempt_at, 'YYYY-MM-DD HH24:MI:SS') END) ORDER BY f.destination) "
	"    FROM mpps_forward f WHERE f.message_pk = m.pk), '[]'::json)) ORDER BY m.pk) "
	"  FROM mpps_message m WHERE m.sop_instance_uid = s.sop_instance_uid), '[]'::json)) "
	"FROM mpps s WHERE s.sop_instance_uid = $1";

static int cmd_show(PGconn *c, const char *uid, int json)
{
	const char *p[1] = { uid };
	dh_db_err err;
	PGresult *r = dh_db_query(c, show_json_sql, 1, p, &err);
	int rc = 1;
	if (!r) {
		fprintf(stderr, "hubctl: %s\n", err.msg);
		return 1;
	}
	if (PQntuples(r) != 1) {
		fprintf(stderr, "hubctl: no Performed Procedure Step %s\n", uid);
		goto done;
	}
	if (json) {
		printf("%s\n", PQgetvalue(r, 0, 0));
		rc = 0;
		goto done;
	}
	PQclear(r);
	r = dh_db_query(c,
		"SELECT sop_instance_uid, status, patient_id, patient_name, patient_birth_date, patient_sex, "
		"accession_number, study_uid, pps_id, modality, station_ae, station_name, "
		"trim(start_date || ' ' || start_time), trim(end_date || ' ' || end_time), description, series_count, "
		"source_ae, to_char(created_at, 'YYYY-MM-DD HH24:MI:SS'), to_char(updated_at, 'YYYY-MM-DD HH24:MI:SS') "
		"FROM mpps WHERE sop_instance_uid = $1", 1, p, &err);
	if (!r || PQntuples(r) != 1) {
		fprintf(stderr, "hubctl: %s\n", r ? "step vanished" : err.msg);
		goto done;
	}
	static const char *const labels[] = { "step", "status", "patient id", "patient name", "birth date", "sex",
					      "accession", "study uid", "pps id", "modality", "station ae",
					      "station name", "started", "ended", "description", "series",
					      "received from", "created", "updated" };
	for (int i = 0; i < (int)(sizeof(labels) / sizeof(labels[0])); i++)
		printf("%-14s %s\n", labels[i], PQgetvalue(r, 0, i));
	printf("\nmessages and their forwards:\n");
	static const int num[] = { 1, 0, 0, 0, 1, 0, 0, 1, 0, 0 };
	rc = print_query(c,
		"SELECT m.pk AS id, m.kind, m.calling_ae AS from_ae, to_char(m.received_at, 'YYYY-MM-DD HH24:MI:SS') "
		"AS received, octet_length(m.dataset) AS bytes, COALESCE(f.destination, '-') AS destination, "
		"COALESCE(f.state, '') AS state, f.attempts, "
		"COALESCE(CASE WHEN f.state = 'sent' THEN to_char(f.sent_at, 'YYYY-MM-DD HH24:MI:SS') "
		"  WHEN f.state = 'pending' THEN 'next ' || to_char(f.next_attempt_at, 'HH24:MI:SS') "
		"  ELSE 'status ' || lpad(to_hex(f.response_status), 4, '0') END, '') AS at, "
		"COALESCE(f.last_error, '') AS last_error "
		"FROM mpps_message m LEFT JOIN mpps_forward f ON f.message_pk = m.pk "
		"WHERE m.sop_instance_uid = $1 ORDER BY m.pk, f.destination", 1, p, 0, num);
done:
	PQclear(r);
	return rc;
}

static int cmd_backlog(PGconn *c, int json)
{
	static const int num[] = { 0, 1, 1, 0, 1, 0 };
	return print_query(c,
		"SELECT destination, pending, refused, "
		"COALESCE(to_char(oldest_pending, 'YYYY-MM-DD HH24:MI:SS'), '') AS oldest_pending, "
		"COALESCE(max_attempts, 0) AS attempts, COALESCE(last_error, '') AS last_error "
		"FROM mpps_forward_backlog ORDER BY destination", 0, NULL, json, num);
}

int hubctl_mpps_main(const hub_config *cfg, int argc, char **argv, int all, int json)
{
	int rc = 1;
	dh_db *db = NULL;
	PGconn *c = NULL;
	dh_db_err err = { "", "" };
	int list = argc == 2 && strcmp(argv[1], "list") == 0;
	int show = argc == 3 && strcmp(argv[1], "show") == 0;
	int backlog = argc == 2 && strcmp(argv[1], "backlog") == 0;
	if (!list && !show && !backlog) {
		usage(stderr);
		return 2;
	}
	if (dh_db_open(&db, cfg->conninfo, 1) < 0 || !(c = dh_db_get(db, &err))) {
		fprintf(stderr, "hubctl: %s\n", err.msg[0] ? err.msg : "out of memory");
		goto done;
	}
	rc = list ? cmd_list(c, all, json) : show ? cmd_show(c, argv[2], json) : cmd_backlog(c, json);
done:
	if (c)
		dh_db_put(db, c, 0);
	dh_db_close(db);
	return rc;
}
