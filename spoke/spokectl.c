/*
 * spokectl.c - the spoke's operator tool.
 *
 * Only `recall` exists so far: it asks the hub (Study Root C-MOVE) to send a
 * study to the spoke PACS, prints a line per pending response and the final
 * status with its counters. The hub does the work; this tool only asks and
 * reports, like any Move SCU would.
 *
 * Exit status: 0 success (0000), 1 warning, failure or no answer, 2 usage.
 */
#include "dcm.h"
#include "log.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STUDY_ROOT_MOVE "1.2.840.10008.5.1.4.1.2.2.2"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: spokectl recall [--hub HOST:PORT] [--hub-aet AE] [--aet AE] --dest AE STUDY_UID\n"
		"       spokectl --help | --version\n"
		"\n"
		"recall   asks the hub to send a study (Study Root C-MOVE) to the spoke PACS\n"
		"  --hub HOST:PORT   the hub's DICOM address (default 127.0.0.1:11112)\n"
		"  --hub-aet AE      the hub's AE title (default DCMHUB)\n"
		"  --aet AE          our calling AE title; the hub must know it (default SPOKE)\n"
		"  --dest AE         the move destination: the spoke PACS as the hub knows it\n"
		"  --timeout S       seconds to wait for each response (default 600)\n"
		"\n"
		"Exit status: 0 all objects sent, 1 warning or failure, 2 usage error.\n");
}

static void progress(void *user, unsigned int status, const int counts[4])
{
	(void)user;
	(void)status;
	printf("remaining %d completed %d failed %d warning %d\n", counts[0], counts[1], counts[2], counts[3]);
	fflush(stdout);
}

static const char *status_text(unsigned int st)
{
	switch (st) {
	case 0x0000: return "success";
	case 0xB000: return "warning: sub-operations complete with one or more failures";
	case 0xA701: return "refused: out of resources (number of matches)";
	case 0xA702: return "refused: out of resources (unable to perform sub-operations)";
	case 0xA801: return "refused: move destination unknown";
	case 0xA900: return "failed: identifier does not match SOP class";
	case 0xC000: return "failed: unable to process";
	case 0xFE00: return "cancelled";
	default: return "failed";
	}
}

static int recall(int argc, char **argv)
{
	const char *hub = "127.0.0.1:11112", *hub_aet = "DCMHUB", *aet = "SPOKE", *dest = NULL;
	long timeout = 600;
	static const struct option opts[] = {
		{ "hub", required_argument, NULL, 'h' }, { "hub-aet", required_argument, NULL, 'c' },
		{ "aet", required_argument, NULL, 'a' }, { "dest", required_argument, NULL, 'd' },
		{ "timeout", required_argument, NULL, 't' }, { "help", no_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 }
	};
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'h': hub = optarg; break;
		case 'c': hub_aet = optarg; break;
		case 'a': aet = optarg; break;
		case 'd': dest = optarg; break;
		case 't': timeout = strtol(optarg, NULL, 10); break;
		case 'H': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!dest || optind != argc - 1 || timeout <= 0 || strlen(dest) > 16 || strlen(aet) > 16 ||
	    strlen(hub_aet) > 16) {
		usage(stderr);
		return 2;
	}
	const char *study = argv[optind];
	char host[256];
	const char *colon = strrchr(hub, ':');
	char *end = NULL;
	long port = colon ? strtol(colon + 1, &end, 10) : 0;
	if (!colon || colon == hub || (size_t)(colon - hub) >= sizeof(host) || !end || *end || port <= 0 ||
	    port > 65535) {
		fprintf(stderr, "spokectl: --hub wants HOST:PORT, got '%s'\n", hub);
		return 2;
	}
	memcpy(host, hub, (size_t)(colon - hub));
	host[colon - hub] = '\0';

	dh_dcm_global_init(0);
	int rc = 1, counts[4] = { 0, 0, 0, 0 }, pc;
	unsigned int status = 0xFFFF;
	char err[300] = "";
	dh_dcm_assoc *a = NULL;
	dh_dcm_ds *ident = NULL;
	static const char *const ts[] = { DH_TS_EXPLICIT_LE, DH_TS_IMPLICIT_LE };
	dh_dcm_pc_req req = { STUDY_ROOT_MOVE, ts, 2, 0 };
	if (dh_dcm_assoc_request(&a, aet, hub_aet, host, (int)port, 16384, 30, &req, 1, err, sizeof(err)) !=
	    DH_DCM_OK) {
		fprintf(stderr, "spokectl: cannot connect to the hub at %s: %s\n", hub, err);
		goto done;
	}
	if (dh_dcm_assoc_find_pc(a, STUDY_ROOT_MOVE, NULL, &pc, NULL) != DH_DCM_OK) {
		fprintf(stderr, "spokectl: the hub refused Study Root Query/Retrieve - MOVE\n");
		dh_dcm_assoc_abort(a);
		goto done;
	}
	if (dh_dcm_ds_new(&ident) != DH_DCM_OK ||
	    dh_dcm_ds_put(ident, DH_TAG(0x0008, 0x0052), "STUDY") != DH_DCM_OK ||
	    dh_dcm_ds_put(ident, DH_TAG(0x0020, 0x000D), study) != DH_DCM_OK) {
		fprintf(stderr, "spokectl: cannot build the identifier\n");
		dh_dcm_assoc_abort(a);
		goto done;
	}
	printf("recall %s from %s to %s\n", study, hub_aet, dest);
	fflush(stdout);
	if (dh_dcm_move(a, pc, STUDY_ROOT_MOVE, dest, ident, (int)timeout, progress, NULL, &status, counts,
			err, sizeof(err)) != DH_DCM_OK) {
		fprintf(stderr, "spokectl: %s\n", err);
		dh_dcm_assoc_abort(a);
		goto done;
	}
	dh_dcm_assoc_release(a);
	printf("status %04X (%s) completed %d failed %d warning %d\n", status, status_text(status), counts[1],
	       counts[2], counts[3]);
	rc = status == 0x0000 ? 0 : 1;
done:
	dh_dcm_ds_free(ident);
	dh_dcm_assoc_free(a);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("spokectl %s\n", DH_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "recall") == 0)
		return recall(argc - 1, argv + 1);
	fprintf(stderr, "spokectl: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
