/*
 * stgcmtscp.c - a Storage Commitment SCP for tests that reports on the SAME
 * association as the request (as many archives do; hubd itself always opens
 * a new one, and DCMTK ships no Storage Commitment SCP).
 *
 * Accepts every proposed context, answers C-ECHO and C-STORE 0000 (the data
 * set is read and dropped), and answers each N-ACTION (Request Storage
 * Commitment) 0000, then at once sends the N-EVENT-REPORT on the same
 * association: every referenced object committed, except the SOP Instance
 * UIDs given with --fail, reported failed with Failure Reason 0112. Prints
 * "reported TXN committed=N failed=N status=XXXX" per report.
 * Serves associations one at a time until killed.
 *
 * With --report HOST:PORT it is a one-shot sender instead: opens an
 * association to HOST:PORT as --aet (proposing the SCP role for Storage
 * Commitment, as archives do on a new association), sends one
 * N-EVENT-REPORT for --txn with the --uid CLASS:INSTANCE objects committed,
 * prints "status=XXXX" and exits 0 (1 when it could not send).
 */
#include "dcm.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *fails[64];
static int n_fails;

static int failing(const char *uid)
{
	for (int i = 0; i < n_fails; i++)
		if (strcmp(fails[i], uid) == 0)
			return 1;
	return 0;
}

static void report(dh_dcm_assoc *a, const dh_dcm_cmd *cmd, const dh_dcm_ds *rq)
{
	char txn[65] = "", path[64], cls[65], uid[65], err[256] = "";
	dh_dcm_ds *ev = NULL;
	int n = dh_dcm_ds_count(rq, "(0008,1199)"), ok = 0, bad = 0;
	unsigned int st = 0xFFFF;
	dh_dcm_ds_get(rq, DH_TAG(0x0008, 0x1195), txn, sizeof(txn));
	if (dh_dcm_ds_new(&ev) != DH_DCM_OK)
		return;
	dh_dcm_ds_put(ev, DH_TAG(0x0008, 0x1195), txn);
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "(0008,1199)[%d].(0008,1150)", i);
		dh_dcm_ds_get_path(rq, path, cls, sizeof(cls));
		snprintf(path, sizeof(path), "(0008,1199)[%d].(0008,1155)", i);
		dh_dcm_ds_get_path(rq, path, uid, sizeof(uid));
		const char *seq = failing(uid) ? "(0008,1198)" : "(0008,1199)";
		int k = failing(uid) ? bad++ : ok++;
		snprintf(path, sizeof(path), "%s[%d].(0008,1150)", seq, k);
		dh_dcm_ds_put_path(ev, path, cls);
		snprintf(path, sizeof(path), "%s[%d].(0008,1155)", seq, k);
		dh_dcm_ds_put_path(ev, path, uid);
		if (failing(uid)) {
			snprintf(path, sizeof(path), "%s[%d].(0008,1197)", seq, k);
			dh_dcm_ds_put_path(ev, path, "274"); /* 0112: no such object instance */
		}
	}
	if (dh_dcm_n_event_report(a, cmd->pc_id, DH_UID_STGCMT_PUSH, DH_UID_STGCMT_PUSH_INSTANCE, bad ? 2 : 1, ev,
				  10, &st, err, sizeof(err)) != DH_DCM_OK)
		fprintf(stderr, "stgcmtscp: %s\n", err);
	printf("reported %s committed=%d failed=%d status=%04X\n", txn, ok, bad, st);
	fflush(stdout);
	dh_dcm_ds_free(ev);
}

static void serve(dh_dcm_assoc *a)
{
	char err[256];
	for (;;) {
		dh_dcm_cmd cmd;
		if (dh_dcm_receive_command(a, 30, &cmd, err, sizeof(err)) != DH_DCM_OK)
			return;
		if (cmd.type == DH_DIMSE_C_STORE_RQ) {
			dh_dcm_receive_discard(a, 30);
			dh_dcm_send_response(a, &cmd, 0x0000, NULL, NULL, NULL);
		} else if (cmd.type == DH_DIMSE_N_ACTION_RQ) {
			dh_dcm_ds *rq = NULL;
			if (dh_dcm_receive_dataset(a, 30, &rq, err, sizeof(err)) != DH_DCM_OK)
				return;
			dh_dcm_send_response(a, &cmd, 0x0000, NULL, NULL, NULL);
			report(a, &cmd, rq);
			dh_dcm_ds_free(rq);
		} else {
			if (cmd.has_dataset)
				dh_dcm_receive_discard(a, 30);
			dh_dcm_send_response(a, &cmd, 0x0000, NULL, NULL, NULL);
		}
	}
}

static int send_report(const char *target, const char *aet, const char *aec, const char *txn, char **uids,
		       int n_uids)
{
	static const char *const ts[] = { DH_TS_EXPLICIT_LE, DH_TS_IMPLICIT_LE };
	dh_dcm_pc_req req = { DH_UID_STGCMT_PUSH, ts, 2, 2 };
	dh_dcm_assoc *a = NULL;
	dh_dcm_ds *ev = NULL;
	char host[256], err[256] = "", path[64];
	unsigned int st = 0xFFFF;
	int pc, rc = 1;
	const char *colon = strrchr(target, ':');
	if (!colon || (size_t)(colon - target) >= sizeof(host))
		return 2;
	memcpy(host, target, (size_t)(colon - target));
	host[colon - target] = '\0';
	if (dh_dcm_assoc_request(&a, aet, aec, host, atoi(colon + 1), 16384, 10, &req, 1, err, sizeof(err)) !=
		    DH_DCM_OK ||
	    dh_dcm_assoc_find_pc(a, DH_UID_STGCMT_PUSH, NULL, &pc, NULL) != DH_DCM_OK || dh_dcm_ds_new(&ev) != DH_DCM_OK)
		goto done;
	dh_dcm_ds_put(ev, DH_TAG(0x0008, 0x1195), txn);
	for (int i = 0; i < n_uids; i++) {
		char *sep = strchr(uids[i], ':');
		if (!sep)
			continue;
		*sep = '\0';
		snprintf(path, sizeof(path), "(0008,1199)[%d].(0008,1150)", i);
		dh_dcm_ds_put_path(ev, path, uids[i]);
		snprintf(path, sizeof(path), "(0008,1199)[%d].(0008,1155)", i);
		dh_dcm_ds_put_path(ev, path, sep + 1);
	}
	if (dh_dcm_n_event_report(a, pc, DH_UID_STGCMT_PUSH, DH_UID_STGCMT_PUSH_INSTANCE, 1, ev, 10, &st, err,
				  sizeof(err)) != DH_DCM_OK)
		goto done;
	printf("status=%04X\n", st);
	dh_dcm_assoc_release(a);
	rc = 0;
done:
	if (rc)
		fprintf(stderr, "stgcmtscp: %s\n", err[0] ? err : "cannot send the report");
	dh_dcm_ds_free(ev);
	dh_dcm_assoc_free(a);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = { { "fail", required_argument, NULL, 'f' },
					      { "report", required_argument, NULL, 'r' },
					      { "aet", required_argument, NULL, 't' },
					      { "aec", required_argument, NULL, 'c' },
					      { "txn", required_argument, NULL, 'x' },
					      { "uid", required_argument, NULL, 'u' },
					      { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 } };
	const char *target = NULL, *aet = "STGCMTSCP", *aec = "DCMHUB", *txn = "";
	char *uids[64];
	int o, n_uids = 0;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o == 'f' && n_fails < 64) {
			fails[n_fails++] = optarg;
		} else if (o == 'r') {
			target = optarg;
		} else if (o == 't') {
			aet = optarg;
		} else if (o == 'c') {
			aec = optarg;
		} else if (o == 'x') {
			txn = optarg;
		} else if (o == 'u' && n_uids < 64) {
			uids[n_uids++] = optarg;
		} else {
			fprintf(o == 'h' ? stdout : stderr, "usage: stgcmtscp [--fail SOP_UID]... PORT\n");
			return o == 'h' ? 0 : 2;
		}
	}
	if (target) {
		dh_dcm_global_init(1);
		return send_report(target, aet, aec, txn, uids, n_uids);
	}
	if (argc - optind != 1) {
		fprintf(stderr, "usage: stgcmtscp [--fail SOP_UID]... PORT\n"
				"       stgcmtscp --report HOST:PORT [--aet AE] [--aec AE] --txn UID --uid CLASS:INST...\n");
		return 2;
	}
	dh_dcm_global_init(1);
	dh_dcm_net *net = NULL;
	char err[256];
	if (dh_dcm_net_listen(&net, atoi(argv[optind]), 10, err, sizeof(err)) != DH_DCM_OK) {
		fprintf(stderr, "stgcmtscp: %s\n", err);
		return 1;
	}
	for (;;) {
		dh_dcm_assoc *a = NULL;
		int rc = dh_dcm_net_accept(net, 1, 16384, &a, err, sizeof(err));
		if (rc != DH_DCM_OK)
			continue;
		for (int i = 0; i < dh_dcm_assoc_pc_count(a); i++) {
			int id, n, role;
			const char *as;
			const char *const *ts;
			if (dh_dcm_assoc_pc_get(a, i, &id, &as, &ts, &n, &role) == DH_DCM_OK && n > 0)
				dh_dcm_assoc_pc_accept(a, id, ts[0], 0, NULL, 0);
		}
		if (dh_dcm_assoc_acknowledge(a, err, sizeof(err)) == DH_DCM_OK)
			serve(a);
		dh_dcm_assoc_free(a);
	}
}
