/*
 * rawstorescu.c - a Storage SCU for tests that sends data set bytes as they
 * are in the file, unparsed, so damaged objects reach the SCP as they are
 * (storescu parses and refuses them first). All files go over one
 * association; for each it prints "FILE status=XXXX".
 *
 * Each file's SOP Class and Instance UID come from its File Meta
 * Information (or --class/--instance), and it is offered in the transfer
 * syntax the meta header names.
 * Exit status: 0 when every C-STORE got a response, 1 otherwise, 2 on usage.
 */
#include "dcm.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
	fprintf(out, "usage: rawstorescu [-aet AE] [-aec AE] [--class UID] [--instance UID] HOST PORT FILE...\n"
		     "Sends each FILE's data set bytes unparsed as a C-STORE over one association and\n"
		     "prints \"FILE status=XXXX\". Exit 0 when every store got a response, 1 otherwise.\n");
}

int main(int argc, char **argv)
{
	const char *aet = "STORESCU", *aec = "DCMHUB", *force_class = NULL, *force_inst = NULL;
	static const struct option opts[] = {
		{ "aet", required_argument, NULL, 't' }, { "aec", required_argument, NULL, 'c' },
		{ "class", required_argument, NULL, 'C' }, { "instance", required_argument, NULL, 'I' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 }
	};
	int o;
	while ((o = getopt_long_only(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 't': aet = optarg; break;
		case 'c': aec = optarg; break;
		case 'C': force_class = optarg; break;
		case 'I': force_inst = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (argc - optind < 3) {
		usage(stderr);
		return 2;
	}
	dh_dcm_global_init(1);
	const char *host = argv[optind];
	int port = atoi(argv[optind + 1]);
	int nfiles = argc - optind - 2;
	char (*cls)[65] = calloc((size_t)nfiles, 65), (*inst)[65] = calloc((size_t)nfiles, 65);
	char (*ts)[65] = calloc((size_t)nfiles, 65);
	dh_dcm_pc_req *pcs = calloc((size_t)nfiles, sizeof(*pcs));
	const char **tsp = calloc((size_t)nfiles, sizeof(*tsp));
	char err[512];
	int rc = 0;
	for (int i = 0; i < nfiles; i++) {
		const char *f = argv[optind + 2 + i];
		/* read only the meta header: the data set may be broken on purpose */
		dh_dcm_ds *m = NULL;
		if (dh_dcm_ds_load_meta(f, &m, err, sizeof(err)) == DH_DCM_OK) {
			dh_dcm_ds_get_meta(m, DH_TAG(0x0002, 0x0002), cls[i], 65);
			dh_dcm_ds_get_meta(m, DH_TAG(0x0002, 0x0003), inst[i], 65);
			dh_dcm_ds_get_meta(m, DH_TAG(0x0002, 0x0010), ts[i], 65);
			dh_dcm_ds_free(m);
		}
		if (force_class)
			snprintf(cls[i], 65, "%s", force_class);
		if (force_inst)
			snprintf(inst[i], 65, "%s", force_inst);
		if (!ts[i][0])
			snprintf(ts[i], 65, "%s", DH_TS_EXPLICIT_LE);
		if (!cls[i][0] || !inst[i][0]) {
			fprintf(stderr, "rawstorescu: %s: give --class and --instance (meta header unreadable)\n", f);
			return 2;
		}
		tsp[i] = ts[i];
		pcs[i].abstract_syntax = cls[i];
		pcs[i].ts = &tsp[i];
		pcs[i].n_ts = 1;
	}
	dh_dcm_assoc *a = NULL;
	if (dh_dcm_assoc_request(&a, aet, aec, host, port, 16384, 10, pcs, nfiles > 128 ? 128 : nfiles, err,
				 sizeof(err)) != DH_DCM_OK) {
		fprintf(stderr, "rawstorescu: %s\n", err);
		return 1;
	}
	for (int i = 0; i < nfiles; i++) {
		int pc;
		unsigned int status = 0xFFFF;
		const char *f = argv[optind + 2 + i];
		if (dh_dcm_assoc_find_pc(a, cls[i], ts[i], &pc, NULL) != DH_DCM_OK) {
			printf("%s status=none (no accepted context)\n", f);
			rc = 1;
			continue;
		}
		if (dh_dcm_store_file(a, pc, f, 1, cls[i], inst[i], 60, &status, err, sizeof(err)) != DH_DCM_OK) {
			printf("%s status=none (%s)\n", f, err);
			rc = 1;
			break;
		}
		printf("%s status=%04x\n", f, status);
		fflush(stdout);
	}
	dh_dcm_assoc_release(a);
	dh_dcm_assoc_free(a);
	free(cls); free(inst); free(ts); free(pcs); free(tsp);
	return rc;
}
