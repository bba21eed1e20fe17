/*
 * hubctl_cc.c - hubctl's change-context commands (see hubctl_cc.h).
 *
 * They read cc_log, where hub/cc/cc_apply.c records every cc a spoke
 * delivered: the state (applied, parked, conflict, failed, resolved,
 * discarded: sql/hub/006_ops.sql), the reason, whether it is an operator
 * item, and the cc itself as received (decoded here with the same total
 * decoder the hub uses).
 *
 * retry|resolve|discard call cc_apply_operator, the hub's own code, in
 * hubctl's process: one transaction under the spoke's advisory lock, the
 * same lock hubd's receiver and worker take, so the action is serialised
 * with them and the decision is the worker's to the letter. Asking hubd
 * over NOTIFY instead would need a running hubd (an operator must be able
 * to settle items while it is down), pick one of several hubd processes,
 * and report an outcome asynchronously; the lock gives the same safety
 * with none of that.
 */
#include "hubctl_cc.h"

#include "cc.h"
#include "ccsync.h"
#include "db.h"
#include "hub.h"
#include "hubctl_out.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int hubctl_cc_is_command(const char *name)
{
	return name && strcmp(name, "queue") == 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: hubctl queue list [--state parked|conflict|failed|applied|resolved|discarded]\n"
		"                         [--spoke ID] [--study UID] [--all] [--json]\n"
		"       hubctl queue show ID [--json]\n"
		"       hubctl queue retry|resolve|discard ID --reason TEXT [--operator NAME]\n"
		"\n"
		"list: open items (parked, conflict, failed) unless --state or --all.\n"
		"retry: apply the cc again now; resolve: settled by other means, never applied;\n"
		"discard: never apply it. Only parked, conflict and failed items can be acted on.\n"
		"Every action is recorded (hubctl history) with --operator (default: the OS user)\n"
		"and --reason.\n"
		"Exit status: 0 done (retry: applied); 1 error (no such id, database);\n"
		"2 bad usage; 3 retried but still not applied (its new state is printed);\n"
		"4 the action makes no sense for the item's state (nothing changed).\n");
}

static int valid_state(const char *s)
{
	static const char *const states[] = { "parked", "conflict", "failed", "applied", "resolved", "discarded", NULL };
	for (int i = 0; states[i]; i++)
		if (strcmp(s, states[i]) == 0)
			return 1;
	return 0;
}

static int cmd_list(PGconn *c, int argc, const hubctl_cc_filter *f, int json)
{
	static const int num[] = { 1, 0, 1, 0, 0, 0, 0, 0, 0 };
	const char *state = f->state, *spoke = f->spoke, *study = f->study;
	int all = f->all;
	if (argc != 2) {
		usage(stderr);
		return 2;
	}
	if (state && !valid_state(state)) {
		fprintf(stderr, "hubctl: --state must be parked, conflict, failed, applied, resolved or discarded\n");
		return 2;
	}
	const char *p[4] = { state, spoke, study, all ? "t" : "f" };
	dh_db_err err;
	PGresult *r = dh_db_query(c,
				  "SELECT pk AS id, spoke_id AS spoke, sequence, kind, state, "
				  "CASE WHEN operator_item THEN 'yes' ELSE '' END AS operator_item, "
				  "to_char(received_at, 'YYYY-MM-DD HH24:MI:SS') AS received, "
				  "COALESCE(studies[1], '') AS study, state_reason AS reason "
				  "FROM cc_log WHERE ($1::text IS NULL OR state = $1) "
				  "AND ($2::text IS NULL OR spoke_id = $2) AND ($3::text IS NULL OR $3 = ANY(studies)) "
				  "AND ($1::text IS NOT NULL OR $4::boolean OR state IN ('parked', 'conflict', 'failed')) "
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
	PGresult *r = NULL, *acts = NULL;
	unsigned char *body = NULL;
	dh_cc *cc = NULL;
	if (argc != 3 || strspn(argv[2], "0123456789") != strlen(argv[2]) || !argv[2][0] || strlen(argv[2]) > 18) {
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
	/* what operators did with it */
	acts = dh_db_query(c,
			   "SELECT to_char(at, 'YYYY-MM-DD HH24:MI:SS') AS at, operator_name AS operator, action, reason, "
			   "outcome FROM operator_action WHERE target_kind = 'cc' AND target_pk = $1::bigint ORDER BY pk",
			   1, p, &err);
	if (!acts) {
		fprintf(stderr, "hubctl: %s\n", err.msg);
		goto done;
	}
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
		printf(", \"actions\": ");
		hubctl_print_result(acts, 1, NULL);
		printf("}\n");
	} else {
		printf("id %s: cc %s:%s, state %s%s\n", PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2),
		       PQgetvalue(r, 0, 3), item[0] == 'y' ? " (operator item)" : "");
		if (PQgetvalue(r, 0, 5)[0])
			printf("why: %s\n", PQgetvalue(r, 0, 5));
		printf("received %s, applied %s, attempts %s\n", PQgetvalue(r, 0, 7),
		       PQgetvalue(r, 0, 8)[0] ? PQgetvalue(r, 0, 8) : "-", PQgetvalue(r, 0, 6));
		dh_cc_print_text(cc, stdout);
		if (PQntuples(acts)) {
			printf("operator actions:\n");
			hubctl_print_result(acts, 0, NULL);
		}
	}
	rc = 0;
done:
	dh_cc_free(cc);
	PQfreemem(body);
	PQclear(acts);
	PQclear(r);
	return rc;
}

/* The OS user running hubctl, for operator_action when --operator is not given. */
static const char *os_user(void)
{
	struct passwd *pw = getpwuid(geteuid());
	const char *u = pw && pw->pw_name ? pw->pw_name : getenv("USER");
	return u && *u ? u : "unknown";
}

/* retry|resolve|discard ID: cc_apply_operator, then the parked cc it may have freed. */
static int cmd_act(const hub_config *cfg, dh_db *db, int argc, char **argv, const hubctl_cc_filter *f, int json)
{
	char state[16] = "", why[512] = "", err[512] = "";
	const char *id = argc == 3 ? argv[2] : "";
	if (argc != 3 || !id[0] || strspn(id, "0123456789") != strlen(id) || strlen(id) > 18) {
		usage(stderr);
		return 2;
	}
	if (!f->reason || !f->reason[0]) {
		fprintf(stderr, "hubctl: queue %s needs --reason TEXT (it is recorded with the action)\n", argv[1]);
		return 2;
	}
	hub h;
	memset(&h, 0, sizeof(h));
	h.cfg = *cfg; /* borrowed, never freed through h */
	h.db = db;
	cc_operator_req req = { argv[1], f->operator_name && f->operator_name[0] ? f->operator_name : os_user(),
				f->reason };
	int rc = cc_apply_operator(&h, id, &req, state, why, sizeof(why));
	if (rc < 0) {
		fprintf(stderr, "hubctl: queue %s %s: %s\n", argv[1], id, why);
		return 1;
	}
	if (rc == 1) {
		fprintf(stderr, "hubctl: queue %s %s refused: %s\n", argv[1], id, why);
		return 4;
	}
	/* a settled or applied cc may free later ones parked behind it: apply them now, not at the next pass */
	int freed = 0;
	if (cc_apply_retry_parked(&h, &freed, err, sizeof(err)) < 0)
		fprintf(stderr, "hubctl: retrying parked cc afterwards: %s (hubd's worker will)\n", err);
	if (json) {
		printf("{\"id\": %s, \"action\": ", id);
		hubctl_json_str(stdout, argv[1]);
		printf(", \"operator\": ");
		hubctl_json_str(stdout, req.operator_name);
		printf(", \"state\": ");
		hubctl_json_str(stdout, state);
		printf(", \"reason\": ");
		hubctl_json_str(stdout, why);
		printf(", \"parked_applied\": %d}\n", freed);
	} else {
		int settle = strcmp(argv[1], "retry") != 0;
		printf("cc %s: %s by %s: now %s%s%s%s\n", id, argv[1], req.operator_name, state,
		       why[0] ? (settle ? " (" : ": ") : "", why, why[0] && settle ? ")" : "");
		if (freed)
			printf("%d parked cc applied after it\n", freed);
	}
	return strcmp(argv[1], "retry") == 0 && strcmp(state, "applied") != 0 ? 3 : 0;
}

int hubctl_cc_main(const hub_config *cfg, int argc, char **argv, const hubctl_cc_filter *f, int json)
{
	int rc = 1;
	dh_db *db = NULL;
	PGconn *c = NULL;
	dh_db_err err = { "", "" };
	int act = argc >= 2 && (strcmp(argv[1], "retry") == 0 || strcmp(argv[1], "resolve") == 0 ||
				strcmp(argv[1], "discard") == 0);
	if (argc >= 2 && strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (argc < 2 || (strcmp(argv[1], "list") != 0 && strcmp(argv[1], "show") != 0 && !act)) {
		usage(stderr);
		return 2;
	}
	if (act && (argc != 3 || !f->reason || !f->reason[0])) {
		if (argc == 3)
			fprintf(stderr, "hubctl: queue %s needs --reason TEXT (it is recorded with the action)\n", argv[1]);
		else
			usage(stderr);
		return 2;
	}
	if (dh_db_open(&db, cfg->conninfo, 1) < 0 || !(c = dh_db_get(db, &err))) {
		fprintf(stderr, "hubctl: %s\n", err.msg[0] ? err.msg : "out of memory");
		goto done;
	}
	if (act) {
		dh_db_put(db, c, 0); /* cc_apply_operator takes its own from the pool */
		c = NULL;
		rc = cmd_act(cfg, db, argc, argv, f, json);
	} else
		rc = strcmp(argv[1], "list") == 0 ? cmd_list(c, argc, f, json) : cmd_show(c, argc, argv, json);
done:
	if (c)
		dh_db_put(db, c, 0);
	dh_db_close(db);
	return rc;
}
