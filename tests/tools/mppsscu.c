/*
 * mppsscu.c - an MPPS SCU for tests (DCMTK ships no N-CREATE/N-SET tool).
 *
 * Sends N-CREATE or N-SET requests of the Modality Performed Procedure Step
 * SOP class on one association, proposing Implicit VR Little Endian. Each
 * request is OP:FILE, where OP is "create" or "set" and FILE a DICOM file
 * (e.g. from dump2dcm) whose data set is sent re-encoded in Implicit VR LE,
 * or a bare data set (no File Meta Information, e.g. `dump2dcm -F +ti`)
 * whose bytes are sent exactly as they are.
 * --uid gives the SOP Instance UID (N-CREATE without it asks the SCP to
 * assign one; N-SET needs it, or takes the one the previous N-CREATE
 * returned). Prints one line per request:
 *   OP status=XXXX uid=UID
 * --explicit proposes Explicit VR Little Endian instead (negotiation tests).
 * Exit status: 0 when every request got a response (whatever its status),
 * 1 on an association or network error, 2 on usage.
 */
#include "dcm.h"
#include "uid.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
	fprintf(f, "usage: mppsscu [--aet AE] [--aec AE] [--timeout S] [--uid UID] HOST PORT "
		   "create|set:FILE [create|set:FILE...]\n"
		   "  --uid UID   SOP Instance UID of the step (default: none for N-CREATE, the last\n"
		   "              N-CREATE's for N-SET)\n"
		   "  --new-uid   every N-CREATE gets a fresh UID made here (load tests)\n"
		   "  --explicit  propose Explicit VR Little Endian only (to test refusal)\n");
}

/* 1 with the file's bytes when it is a bare data set (no "DICM" preamble), else 0. */
static int read_raw(const char *path, unsigned char **buf, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *b = NULL;
	size_t n = 0, cap = 0;
	if (!f)
		return 0;
	for (;;) {
		if (n == cap) {
			unsigned char *nb = realloc(b, cap = cap ? 2 * cap : 65536);
			if (!nb)
				break;
			b = nb;
		}
		size_t k = fread(b + n, 1, cap - n, f);
		if (k == 0)
			break;
		n += k;
	}
	fclose(f);
	if (!b || n == 0 || (n >= 132 && memcmp(b + 128, "DICM", 4) == 0)) {
		free(b);
		return 0;
	}
	*buf = b;
	*len = n;
	return 1;
}

int main(int argc, char **argv)
{
	const char *aet = "MPPSSCU", *aec = "DCMHUB";
	char uid[65] = "";
	int timeout_s = 30, o, rc = 1, pc, explicit_vr = 0, new_uid = 0;
	static const struct option opts[] = {
		{ "aet", required_argument, NULL, 't' }, { "aec", required_argument, NULL, 'c' },
		{ "timeout", required_argument, NULL, 'T' }, { "uid", required_argument, NULL, 'u' },
		{ "explicit", no_argument, NULL, 'x' }, { "new-uid", no_argument, NULL, 'n' }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 }
	};
	while ((o = getopt_long_only(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 't': aet = optarg; break;
		case 'c': aec = optarg; break;
		case 'T': timeout_s = atoi(optarg); break;
		case 'u': snprintf(uid, sizeof(uid), "%s", optarg); break;
		case 'x': explicit_vr = 1; break;
		case 'n': new_uid = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (argc - optind < 3) {
		usage(stderr);
		return 2;
	}
	const char *host = argv[optind];
	int port = atoi(argv[optind + 1]);
	char err[512] = "";
	dh_dcm_assoc *a = NULL;
	static const char *const ts[] = { DH_TS_IMPLICIT_LE };
	static const char *const ts_explicit[] = { DH_TS_EXPLICIT_LE };
	dh_dcm_pc_req req = { DH_UID_MPPS, explicit_vr ? ts_explicit : ts, 1, 0 };

	dh_dcm_global_init(0);
	if (dh_dcm_assoc_request(&a, aet, aec, host, port, 16384, timeout_s, &req, 1, err, sizeof(err)) != DH_DCM_OK) {
		fprintf(stderr, "mppsscu: %s\n", err);
		return 1;
	}
	if (dh_dcm_assoc_find_pc(a, DH_UID_MPPS, DH_TS_IMPLICIT_LE, &pc, NULL) != DH_DCM_OK) {
		fprintf(stderr, "mppsscu: MPPS context not accepted\n");
		goto done;
	}
	for (int i = optind + 2; i < argc; i++) {
		const char *arg = argv[i], *file = strchr(arg, ':');
		int create;
		if (file && strncmp(arg, "create:", 7) == 0)
			create = 1;
		else if (file && strncmp(arg, "set:", 4) == 0)
			create = 0;
		else {
			usage(stderr);
			rc = 2;
			goto done;
		}
		file++;
		dh_dcm_ds *ds = NULL;
		unsigned char *buf = NULL;
		size_t len = 0;
		unsigned int status = 0xFFFF;
		char affected[65] = "";
		if (read_raw(file, &buf, &len)) {
			/* a bare data set: sent byte for byte */
		} else if (dh_dcm_ds_load(file, &ds, err, sizeof(err)) != DH_DCM_OK ||
		    dh_dcm_ds_encode(ds, DH_TS_IMPLICIT_LE, &buf, &len, err, sizeof(err)) != DH_DCM_OK) {
			fprintf(stderr, "mppsscu: %s: %s\n", file, err);
			dh_dcm_ds_free(ds);
			goto done;
		}
		dh_dcm_ds_free(ds);
		if (create && new_uid)
			dh_uid_generate(uid);
		int sent = create ? dh_dcm_n_create(a, pc, DH_UID_MPPS, uid, buf, len, timeout_s, &status, affected, err,
						    sizeof(err))
				  : dh_dcm_n_set(a, pc, DH_UID_MPPS, uid, buf, len, timeout_s, &status, err, sizeof(err));
		free(buf);
		if (sent != DH_DCM_OK) {
			fprintf(stderr, "mppsscu: %s\n", err);
			goto done;
		}
		if (create && affected[0])
			snprintf(uid, sizeof(uid), "%s", affected);
		printf("%s status=%04x uid=%s\n", create ? "create" : "set", status, uid);
		fflush(stdout);
	}
	dh_dcm_assoc_release(a);
	rc = rc == 2 ? 2 : 0;
done:
	if (rc != 0)
		dh_dcm_assoc_abort(a);
	dh_dcm_assoc_free(a);
	return rc;
}
