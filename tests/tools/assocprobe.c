/*
 * assocprobe.c - proposes presentation contexts and reports the answer to
 * each, optionally over TLS: for tests of association-level rules (§5.2:
 * which contexts an AE gets, and why the others were refused) and of TLS
 * with our own adapter as the client.
 *
 * Prints "rejected: ..." when the association is rejected, otherwise one
 * line per context, "CONTEXT accepted" or "CONTEXT refused=N" (N as in PS3.8
 * Table 9-18: 1 user rejection, 2 no reason, 3 abstract syntax not supported,
 * 4 transfer syntaxes not supported), then "echo=XXXX" after a C-ECHO when
 * Verification was accepted.
 * Contexts by name: echo, ct (CT Image Storage), find, move, get (Study
 * Root), stgcmt, mpps; anything else is taken as a SOP class UID.
 * Exit status: 0 associated, 1 rejected or failed, 2 usage.
 */
#include "dcm.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
	fprintf(out, "usage: assocprobe [-aet AE] [-aec AE] [--cert PEM --key PEM] [--ca PEM] HOST PORT CONTEXT...\n"
		     "Proposes the contexts (echo ct find move get stgcmt mpps, or UIDs) and prints each one's\n"
		     "result; with --ca the association runs over TLS (client certificate optional).\n");
}

static const char *uid_of(const char *name)
{
	static const struct {
		const char *name, *uid;
	} map[] = {
		{ "echo", DH_UID_VERIFICATION },
		{ "ct", "1.2.840.10008.5.1.4.1.1.2" },
		{ "find", "1.2.840.10008.5.1.4.1.2.2.1" },
		{ "move", "1.2.840.10008.5.1.4.1.2.2.2" },
		{ "get", "1.2.840.10008.5.1.4.1.2.2.3" },
		{ "stgcmt", DH_UID_STGCMT_PUSH },
		{ "mpps", "1.2.840.10008.3.1.2.3.3" },
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(name, map[i].name) == 0)
			return map[i].uid;
	return name;
}

int main(int argc, char **argv)
{
	const char *aet = "ECHOSCU", *aec = "DCMHUB", *cert = NULL, *key = NULL, *ca = NULL;
	static const struct option opts[] = {
		{ "aet", required_argument, NULL, 't' }, { "aec", required_argument, NULL, 'c' },
		{ "cert", required_argument, NULL, 'C' }, { "key", required_argument, NULL, 'K' },
		{ "ca", required_argument, NULL, 'A' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	static const char *const ts[] = { DH_TS_EXPLICIT_LE, DH_TS_IMPLICIT_LE };
	dh_dcm_pc_req pcs[32];
	dh_dcm_tls *tls = NULL;
	dh_dcm_assoc *a = NULL;
	char err[600] = "";
	int o, rc = 1, n;

	while ((o = getopt_long_only(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 't': aet = optarg; break;
		case 'c': aec = optarg; break;
		case 'C': cert = optarg; break;
		case 'K': key = optarg; break;
		case 'A': ca = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	n = argc - optind - 2;
	if (n < 1 || n > 32 || (cert == NULL) != (key == NULL)) {
		usage(stderr);
		return 2;
	}
	dh_dcm_global_init(1);
	if (ca) {
		dh_dcm_tls_opts t = { cert, key, ca, NULL, DH_TLS_VERIFY_REQUIRE, DH_TLS_PROFILE_BCP195_ND, NULL };
		if (dh_dcm_tls_new(&tls, 0, &t, err, sizeof(err)) != DH_DCM_OK) {
			fprintf(stderr, "assocprobe: %s\n", err);
			return 1;
		}
	}
	for (int i = 0; i < n; i++)
		pcs[i] = (dh_dcm_pc_req){ uid_of(argv[optind + 2 + i]), ts, 2, 0 };
	int r = dh_dcm_assoc_request_tls(&a, aet, aec, argv[optind], atoi(argv[optind + 1]), 16384, 10, pcs, n,
					 tls, err, sizeof(err));
	if (r != DH_DCM_OK) {
		printf("%s: %s\n", r == DH_DCM_REJECTED ? "rejected" : "failed", err);
		goto done;
	}
	if (dh_dcm_assoc_tls_peer(a, err, sizeof(err)))
		printf("tls peer %s\n", err);
	for (int i = 0; i < n; i++) {
		int res = dh_dcm_assoc_pc_result(a, 2 * i + 1);
		if (res == 0)
			printf("%s accepted\n", argv[optind + 2 + i]);
		else
			printf("%s refused=%d\n", argv[optind + 2 + i], res);
	}
	int pc;
	if (dh_dcm_assoc_find_pc(a, DH_UID_VERIFICATION, NULL, &pc, NULL) == DH_DCM_OK) {
		unsigned int st = 0xFFFF;
		if (dh_dcm_echo(a, 10, &st) == DH_DCM_OK)
			printf("echo=%04x\n", st);
		else
			printf("echo failed\n");
	}
	dh_dcm_assoc_release(a);
	rc = 0;
done:
	dh_dcm_assoc_free(a);
	dh_dcm_tls_free(tls);
	return rc;
}
