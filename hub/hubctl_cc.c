/*
 * hubctl_cc.c - hubctl's change-context commands (see hubctl_cc.h).
 *
 * They read cc_log, where hub/cc_apply.c records every cc a spoke
 * delivered: the state (applied, parked, refused, discarded), the reason,
 * whether it is an operator item, and the cc itself as received (decoded
 * here with the same total decoder the hub uses).
 */
#include "hubctl_cc.h"

#include "cc.h"
#include "db.h"
#include "hubctl_out.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int hubctl_cc_is_command(const char *name)
{
	return name && strcmp(name, "queue") == 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: hubctl queue list [--state applied|parked|refused|discarded] [--spoke ID] [--study UID] [--all]\n"
		   "       hubctl queue show ID\n");
}

static int cmd_list(PGconn *c, int argc, const hubctl_cc_filter *f, int json)
{
	static const int num[] = { 1, 0, 1, 0, 0, 0, 0, 0 };
	const char *state = f->state, *spoke = f->spoke, *study = f->study;
	int all = f->all;
	if (argc != 2) {
		usage(stderr);
		return 2;
	}
	if (state && strcmp(state, "applied") && strcmp(state, "parked") && strcmp(state, "refused") &&
	    strcmp(state, "discarded")) {
		fprintf(stderr, "hubctl: --state must be applied, parked, refused or discarded\n");
		return 2;
	}
	const char *p[4] = { state, spoke, study, all ? "t" : "f" };
	dh_db_err err;
	PGresult *r = dh_db_query(c,
				  "SELECT pk AS id, spoke_id AS spoke, sequence, kind, state, "
				  "CASE WHEN operator_item THEN 'yes' ELSE '' END AS operator_item, "
				  "to_char(received_at, 'YYYY-MM-DD HH24:MI:SS') AS received, state_reason AS reason "
				  "FROM cc_log WHERE ($1::text IS NULL OR state = $1) "
				  "AND ($2::text IS NULL OR spoke_id = $2) AND ($3::text IS NULL OR $3 = ANY(studies)) "
				  "AND ($1::text IS NOT NULL OR $4::boolean OR state IN ('parked', 'refused') OR operator_item) "
				  "ORDER BY pk",
				  4, p, &err);
	if (!r) {
		fprintf(stderr, "hubctl: %s\n", err.msg);
		return 1;
	}
	hubctl_print_result(r, json, num);
	PQclear(r);
	return 0;
}

static int cmd_show(PGconn *c, int argc, char **argv, int json)
{
	int rc = 1;
	PGresult *r = NULL;
	unsigned char *body = NULL;
	dh_cc *cc = NULL;
	if (argc != 3 || strspn(argv[2], "0123456789") != strlen(argv[2]) || !argv[2][0]) {
		usage(stderr);
		return 2;
	}
	const char *p[1] = { argv[2] };
	dh_db_err err;
	r = dh_db_query(c,
			"SELECT pk, spoke_id, sequence, state, operator_item, state_reason, attempts, "
			"to_char(received_at, 'YYYY-MM-DD HH24:MI:SS'), "
			"COALESCE(to_char(applied_at, 'YYYY-MM-DD HH24:MI:SS'), ''), body "
			"FROM cc_log WHERE pk = $1::bigint",
			1, p, &err);
	if (!r) {
		fprintf(stderr, "hubctl: %s\n", err.msg);
		goto done;
	}
	if (PQntuples(r) != 1) {
		fprintf(stderr, "hubctl: no change context with id %s\n", argv[2]);
		goto done;
	}
	size_t len = 0;
	char why[256] = "";
	body = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 9), &len);
	if (!body || dh_cc_decode(body, len, &cc, why, sizeof(why)) < 0) {
		fprintf(stderr, "hubctl: the stored cc does not decode: %s\n", why[0] ? why : "bad bytea");
		goto done;
	}
	const char *item = PQgetvalue(r, 0, 4)[0] == 't' ? "yes" : "no";
	if (json) {
		printf("{\"id\": %s, \"spoke\": ", PQgetvalue(r, 0, 0));
		hubctl_json_str(stdout, PQgetvalue(r, 0, 1));
		printf(", \"sequence\": %s, \"state\": ", PQgetvalue(r, 0, 2));
		hubctl_json_str(stdout, PQgetvalue(r, 0, 3));
		printf(", \"operator_item\": %s, \"reason\": ", item[0] == 'y' ? "true" : "false");
		hubctl_json_str(stdout, PQgetvalue(r, 0, 5));
		printf(", \"attempts\": %s, \"received\": ", PQgetvalue(r, 0, 6));
		hubctl_json_str(stdout, PQgetvalue(r, 0, 7));
		printf(", \"applied\": ");
		hubctl_json_str(stdout, PQgetvalue(r, 0, 8));
		printf(", \"cc\": ");
		dh_cc_print_json(cc, stdout);
		printf("}\n");
	} else {
		printf("id %s: cc %s:%s, state %s%s\n", PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2),
		       PQgetvalue(r, 0, 3), item[0] == 'y' ? " (operator item)" : "");
		if (PQgetvalue(r, 0, 5)[0])
			printf("why: %s\n", PQgetvalue(r, 0, 5));
		printf("received %s, applied %s, attempts %s\n", PQgetvalue(r, 0, 7),
		       PQgetvalue(r, 0, 8)[0] ? PQgetvalue(r, 0, 8) : "-", PQgetvalue(r, 0, 6));
		dh_cc_print_text(cc, stdout);
	}
	rc = 0;
done:
	dh_cc_free(cc);
	PQfreemem(body);
	PQclear(r);
	return rc;
}

int hubctl_cc_main(const hub_config *cfg, int argc, char **argv, const hubctl_cc_filter *f, int json)
{
	int rc = 1;
	dh_db *db = NULL;
	PGconn *c = NULL;
	dh_db_err err = { "", "" };
	if (argc < 2 || (strcmp(argv[1], "list") != 0 && strcmp(argv[1], "show") != 0)) {
		usage(stderr);
		return 2;
	}
	if (dh_db_open(&db, cfg->conninfo, 1) < 0 || !(c = dh_db_get(db, &err))) {
		fprintf(stderr, "hubctl: %s\n", err.msg[0] ? err.msg : "out of memory");
		goto done;
	}
	rc = strcmp(argv[1], "list") == 0 ? cmd_list(c, argc, f, json) : cmd_show(c, argc, argv, json);
done:
	if (c)
		dh_db_put(db, c, 0);
	dh_db_close(db);
	return rc;
}
