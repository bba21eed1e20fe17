/*
 * stgcmtscu.c - a Storage Commitment SCU for tests (DCMTK ships none).
 *
 * Sends one N-ACTION (Request Storage Commitment) for the given files (their
 * SOP Class and Instance UIDs are read from them) and/or explicit
 * CLASS:INSTANCE pairs, then waits on --listen PORT for the SCP's
 * association carrying the N-EVENT-REPORT, answers it and prints:
 *   transaction=UID event_type=N committed=N failed=N
 *   committed UID            (one line per committed object)
 *   failed UID REASON(hex)   (one line per failed object)
 * Exit status: 0 when a report arrived, 1 on error or time-out, 2 on usage.
 */
#include "dcm.h"
#include "uid.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(void)
{
	fprintf(stderr, "usage: stgcmtscu [-aet AE] [-aec AE] --listen PORT [--timeout S] [--uid CLASS:INST]... "
			"HOST PORT [FILE...]\n");
}

static int wait_report(dh_dcm_net *net, int timeout_s, const char *txn)
{
	time_t end = time(NULL) + timeout_s;
	char err[256];
	while (time(NULL) < end) {
		dh_dcm_assoc *a = NULL;
		int rc = dh_dcm_net_accept(net, 1, 16384, &a, err, sizeof(err));
		if (rc == DH_DCM_TIMEOUT)
			continue;
		if (rc != DH_DCM_OK) {
			fprintf(stderr, "stgcmtscu: %s\n", err);
			continue;
		}
		for (int i = 0; i < dh_dcm_assoc_pc_count(a); i++) {
			int id, n, role;
			const char *as;
			const char *const *ts;
			dh_dcm_assoc_pc_get(a, i, &id, &as, &ts, &n, &role);
			if (strcmp(as, DH_UID_STGCMT_PUSH) == 0 && n > 0)
				dh_dcm_assoc_pc_accept(a, id, ts[0], role, NULL, 0);
		}
		if (dh_dcm_assoc_acknowledge(a, err, sizeof(err)) != DH_DCM_OK) {
			dh_dcm_assoc_free(a);
			continue;
		}
		int got = 0;
		for (;;) {
			dh_dcm_cmd cmd;
			rc = dh_dcm_receive_command(a, timeout_s, &cmd, err, sizeof(err));
			if (rc != DH_DCM_OK)
				break;
			if (cmd.type != DH_DIMSE_N_EVENT_REPORT_RQ) {
				dh_dcm_assoc_abort(a);
				break;
			}
			dh_dcm_ds *ds = NULL;
			if (dh_dcm_receive_dataset(a, timeout_s, &ds, err, sizeof(err)) != DH_DCM_OK)
				break;
			char t[65] = "", path[64], uid[65], reason[16];
			dh_dcm_ds_get(ds, DH_TAG(0x0008, 0x1195), t, sizeof(t));
			int ok = dh_dcm_ds_count(ds, "(0008,1199)"), bad = dh_dcm_ds_count(ds, "(0008,1198)");
			printf("transaction=%s event_type=%d committed=%d failed=%d\n", t, cmd.type_id, ok, bad);
			for (int i = 0; i < ok; i++) {
				snprintf(path, sizeof(path), "(0008,1199)[%d].(0008,1155)", i);
				if (dh_dcm_ds_get_path(ds, path, uid, sizeof(uid)) == DH_DCM_OK)
					printf("committed %s\n", uid);
			}
			for (int i = 0; i < bad; i++) {
				snprintf(path, sizeof(path), "(0008,1198)[%d].(0008,1155)", i);
				if (dh_dcm_ds_get_path(ds, path, uid, sizeof(uid)) != DH_DCM_OK)
					uid[0] = 0;
				snprintf(path, sizeof(path), "(0008,1198)[%d].(0008,1197)", i);
				if (dh_dcm_ds_get_path(ds, path, reason, sizeof(reason)) != DH_DCM_OK)
					reason[0] = 0;
				printf("failed %s %04x\n", uid, (unsigned)atoi(reason));
			}
			fflush(stdout);
			dh_dcm_send_response(a, &cmd, 0x0000, NULL, NULL, NULL);
			dh_dcm_ds_free(ds);
			got = strcmp(t, txn) == 0;
		}
		dh_dcm_assoc_free(a);
		if (got)
			return 0;
	}
	fprintf(stderr, "stgcmtscu: no N-EVENT-REPORT within %d s\n", timeout_s);
	return 1;
}

int main(int argc, char **argv)
{
	const char *aet = "STGCMTSCU", *aec = "DCMHUB";
	int listen_port = 0, timeout_s = 30, n_uids = 0;
	char *uids[4096];
	static const struct option opts[] = {
		{ "aet", required_argument, NULL, 't' }, { "aec", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'l' }, { "timeout", required_argument, NULL, 'T' },
		{ "uid", required_argument, NULL, 'u' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int o;
	while ((o = getopt_long_only(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 't': aet = optarg; break;
		case 'c': aec = optarg; break;
		case 'l': listen_port = atoi(optarg); break;
		case 'T': timeout_s = atoi(optarg); break;
		case 'u': if (n_uids < 4096) uids[n_uids++] = optarg; break;
		case 'h':
			usage();
			return 0;
		default: usage(); return 2;
		}
	}
	if (argc - optind < 2 || listen_port <= 0) {
		usage();
		return 2;
	}
	dh_dcm_global_init(1);
	const char *host = argv[optind];
	int port = atoi(argv[optind + 1]);
	char err[512], txn[65];
	dh_dcm_net *net = NULL;
	dh_dcm_assoc *a = NULL;
	dh_dcm_ds *req = NULL;
	int rc = 1, k = 0, pc;
	unsigned int status = 0xFFFF;

	if (dh_dcm_net_listen(&net, listen_port, 10, err, sizeof(err)) != DH_DCM_OK) {
		fprintf(stderr, "stgcmtscu: %s\n", err);
		return 1;
	}
	dh_uid_generate(txn);
	dh_dcm_ds_new(&req);
	dh_dcm_ds_put(req, DH_TAG(0x0008, 0x1195), txn);
	for (int i = optind + 2; i < argc; i++) {
		dh_dcm_ds *f = NULL;
		char cls[65], inst[65], path[64];
		if (dh_dcm_ds_load(argv[i], &f, err, sizeof(err)) != DH_DCM_OK ||
		    dh_dcm_ds_get(f, DH_TAG(0x0008, 0x0016), cls, sizeof(cls)) != DH_DCM_OK ||
		    dh_dcm_ds_get(f, DH_TAG(0x0008, 0x0018), inst, sizeof(inst)) != DH_DCM_OK) {
			fprintf(stderr, "stgcmtscu: %s: not usable\n", argv[i]);
			dh_dcm_ds_free(f);
			goto done;
		}
		dh_dcm_ds_free(f);
		snprintf(path, sizeof(path), "(0008,1199)[%d].(0008,1150)", k);
		dh_dcm_ds_put_path(req, path, cls);
		snprintf(path, sizeof(path), "(0008,1199)[%d].(0008,1155)", k++);
		dh_dcm_ds_put_path(req, path, inst);
	}
	for (int i = 0; i < n_uids; i++) {
		char path[64], *colon = strchr(uids[i], ':');
		if (!colon) {
			usage();
			goto done;
		}
		*colon = '\0';
		snprintf(path, sizeof(path), "(0008,1199)[%d].(0008,1150)", k);
		dh_dcm_ds_put_path(req, path, uids[i]);
		snprintf(path, sizeof(path), "(0008,1199)[%d].(0008,1155)", k++);
		dh_dcm_ds_put_path(req, path, colon + 1);
	}
	static const char *const ts[] = { DH_TS_EXPLICIT_LE, DH_TS_IMPLICIT_LE };
	dh_dcm_pc_req pcr = { DH_UID_STGCMT_PUSH, ts, 2, 0 };
	if (dh_dcm_assoc_request(&a, aet, aec, host, port, 16384, 10, &pcr, 1, err, sizeof(err)) != DH_DCM_OK ||
	    dh_dcm_assoc_find_pc(a, DH_UID_STGCMT_PUSH, NULL, &pc, NULL) != DH_DCM_OK) {
		fprintf(stderr, "stgcmtscu: %s\n", err);
		goto done;
	}
	if (dh_dcm_n_action(a, pc, DH_UID_STGCMT_PUSH, DH_UID_STGCMT_PUSH_INSTANCE, 1, req, 30, &status, err,
			    sizeof(err)) != DH_DCM_OK) {
		fprintf(stderr, "stgcmtscu: %s\n", err);
		goto done;
	}
	dh_dcm_assoc_release(a);
	printf("n-action status=%04x\n", status);
	fflush(stdout);
	if (status != 0)
		goto done;
	rc = wait_report(net, timeout_s, txn);
done:
	dh_dcm_assoc_free(a);
	dh_dcm_ds_free(req);
	dh_dcm_net_free(net);
	return rc;
}
