/*
 * hubctl_echo.c - the hub as Verification SCU (see hubctl_echo.h).
 *
 * The association is opened through hub_connect with a hub made of the
 * configuration alone, so what this proves (address, port, TLS, the peer
 * accepting our AE title) is what C-MOVE, storage commitment and the
 * forwarding workers will meet.
 */
#include "hubctl_echo.h"

#include "dcm.h"
#include "hub.h"
#include "hubctl_out.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

void hubctl_echo_usage(FILE *out)
{
	fprintf(out, "usage: hubctl [-c FILE] [--json] echo AE [--timeout SECONDS]\n"
		     "  C-ECHO from hub.ae_title to the remote AE of section [remote.AE], over TLS when\n"
		     "  it says tls = true. Exit status: 0 answered 0000; 1 not reachable, rejected or\n"
		     "  another status; 2 bad usage or no [remote.AE] section.\n");
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int hubctl_echo_main(const hub_config *cfg, int argc, char **argv, int timeout_s, int json)
{
	static const char *const ts[] = { DH_TS_EXPLICIT_LE, DH_TS_IMPLICIT_LE };
	const dh_dcm_pc_req req = { DH_UID_VERIFICATION, ts, 2, 0 };
	dh_dcm_assoc *a = NULL;
	unsigned int status = 0xFFFF;
	char err[512] = "";
	int rc = 2, pc;
	hub h;

	memset(&h, 0, sizeof(h));
	if (argc != 2) {
		hubctl_echo_usage(stderr);
		return 2;
	}
	const hub_remote_ae *r = hub_config_remote(cfg, argv[1]);
	if (!r) {
		fprintf(stderr, "hubctl: echo: no [remote.%s] section in the configuration\n", argv[1]);
		return 2;
	}
	h.cfg = *cfg; /* shallow: hub_connect reads it; nothing here frees it */
	if (timeout_s <= 0)
		timeout_s = (int)cfg->acse_timeout;
	dh_dcm_global_init(0);
	rc = 1;
	if (hub_tls_open(&h, err, sizeof(err)) < 0)
		goto out;
	double t0 = now_ms();
	int crc = hub_connect(&h, &a, r, timeout_s, &req, 1, err, sizeof(err));
	if (crc == DH_DCM_REJECTED) {
		snprintf(err, sizeof(err), "association rejected by %s", r->ae_title);
		goto out;
	}
	if (crc != DH_DCM_OK)
		goto out;
	if (dh_dcm_assoc_find_pc(a, DH_UID_VERIFICATION, NULL, &pc, NULL) != DH_DCM_OK) {
		snprintf(err, sizeof(err), "%s refused the Verification presentation context", r->ae_title);
		goto out;
	}
	if (dh_dcm_echo(a, timeout_s, &status) != DH_DCM_OK) {
		snprintf(err, sizeof(err), "no C-ECHO response from %s within %d s", r->ae_title, timeout_s);
		goto out;
	}
	double ms = now_ms() - t0;
	dh_dcm_assoc_release(a);
	dh_dcm_assoc_free(a);
	a = NULL;
	rc = status == 0 ? 0 : 1;
	if (json)
		printf("{\"ae_title\": \"%s\", \"host\": \"%s\", \"port\": %ld, \"tls\": %s, \"status\": \"%04X\", "
		       "\"ms\": %.1f}\n",
		       r->ae_title, r->host, r->port, r->tls ? "true" : "false", status, ms);
	else
		printf("%s -> %s (%s:%ld%s): C-ECHO status %04X in %.1f ms\n", cfg->ae_title, r->ae_title, r->host,
		       r->port, r->tls ? ", TLS" : "", status, ms);
out:
	if (rc == 1 && err[0]) {
		if (json) {
			printf("{\"ae_title\": \"%s\", \"host\": \"%s\", \"port\": %ld, \"tls\": %s, \"error\": ",
			       r->ae_title, r->host, r->port, r->tls ? "true" : "false");
			hubctl_json_str(stdout, err);
			printf("}\n");
		}
		fprintf(stderr, "hubctl: echo %s (%s:%ld): %s\n", r->ae_title, r->host, r->port, err);
	}
	if (a) {
		dh_dcm_assoc_abort(a);
		dh_dcm_assoc_free(a);
	}
	hub_tls_close(&h);
	return rc;
}
