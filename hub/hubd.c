/*
 * hubd.c - the data center daemon: start-up, signals, shutdown.
 *
 * Start-up order matters: configuration and logging first, then DCMTK's
 * global set-up (before any thread), the cache directories and leftovers
 * of a crash, the database schema, and only then the listener, so that a
 * hub that accepts associations can also store what they send.
 */
#include "nearline.h"
#include "ccsync.h"
#include "external.h"
#include "hub.h"
#include "wado.h"
#include "mpps.h"

#include "durable.h"
#include "log.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef DH_VERSION
#define DH_VERSION "0.1.0"
#endif

static void usage(FILE *out)
{
	fprintf(out,
		"usage: hubd [-c FILE] [--check-config] [--print-config]\n"
		"\n"
		"The dcmhub data center: DICOM Storage, Storage Commitment, Query/Retrieve, MPPS\n"
		"(with forwarding) and Verification SCP\n"
		"with a PostgreSQL index. Runs in the foreground and logs to stderr (or syslog);\n"
		"SIGTERM or SIGINT stops it cleanly.\n"
		"\n"
		"  -c, --config FILE   configuration file (INI); without it the defaults apply\n"
		"      --check-config  load and check the configuration (and the TLS certificates,\n"
		"                      key and CAs it names), then exit\n"
		"      --print-config  print the configuration (every option, commented) and exit;\n"
		"                      with -c the file's values, else the defaults\n"
		"  -h, --help          this help\n"
		"      --version       print the version\n"
		"\n"
		"Exit status: 0 after a clean stop, 1 on a start-up error, 2 on bad usage.\n"
		"See docs/configuration.md and docs/operations.md.\n");
}

static int open_database(hub *h)
{
	dh_db_err err = { "", "" };
	PGconn *c = NULL;
	int rc = -1, from = 0, to = 0;
	if (dh_db_open(&h->db, h->cfg.conninfo, (int)h->cfg.pool_size) < 0) {
		DH_ERROR("out of memory");
		return -1;
	}
	if (!(c = dh_db_get(h->db, &err))) {
		DH_ERROR("%s", err.msg);
		return -1;
	}
	if (h->cfg.auto_migrate) {
		if (dh_db_migrate(c, hub_migrations, &from, &to, &err) < 0) {
			DH_ERROR("schema migration failed: %s", err.msg);
			goto done;
		}
		if (from != to)
			DH_INFO("database schema migrated from version %d to %d", from, to);
	} else {
		if (dh_db_schema_version(c, &to, &err) < 0) {
			DH_ERROR("cannot read the schema version: %s", err.msg);
			goto done;
		}
		if (to != dh_db_latest_version(hub_migrations)) {
			DH_ERROR("database schema version %d, this hubd needs %d: run `hubctl db migrate`", to,
				 dh_db_latest_version(hub_migrations));
			goto done;
		}
	}
	rc = 0;
done:
	dh_db_put(h->db, c, rc < 0);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'k' },
		{ "print-config", no_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	const char *path = NULL;
	int check = 0, print = 0, o, rc = 1;
	static hub h;
	char err[512] = "";
	sigset_t sigs;

	while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (o) {
		case 'c': path = optarg; break;
		case 'k': check = 1; break;
		case 'p': print = 1; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("hubd %s\n", DH_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	if (hub_config_load(&h.cfg, path, err, sizeof(err)) < 0) {
		fprintf(stderr, "hubd: %s\n", err);
		return 1;
	}
	if (print) {
		hub_config_write(stdout, path ? &h.cfg : NULL);
		hub_config_free(&h.cfg);
		return 0;
	}
	if (dh_log_init("hubd", h.cfg.log_target, h.cfg.log_level) < 0) {
		fprintf(stderr, "hubd: invalid hub.log_target or hub.log_level\n");
		goto out;
	}
	if (check) {
		/* certificates and keys are part of the configuration: load them too */
		dh_dcm_global_init(0);
		if (hub_tls_open(&h, err, sizeof(err)) < 0) {
			fprintf(stderr, "hubd: %s\n", err);
			goto out;
		}
		printf("hubd: configuration OK\n");
		rc = 0;
		goto out;
	}

	/* every thread inherits this mask; the main thread waits for them with sigwait */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	dh_dcm_global_init(dh_log_threshold);
	if (hub_tls_open(&h, err, sizeof(err)) < 0) {
		DH_ERROR("%s", err);
		goto out;
	}
	if (ingest_prepare_cache(&h) < 0)
		goto out;
	if (open_database(&h) < 0)
		goto out;
	if (dh_dcm_net_listen(&h.net, (int)h.cfg.port, (int)h.cfg.artim_timeout, err, sizeof(err)) !=
	    DH_DCM_OK) {
		DH_ERROR("port %ld: %s", h.cfg.port, err);
		goto out;
	}
	if (h.tls_server && dh_dcm_net_listen_tls(&h.tls_net, (int)h.cfg.tls.port, (int)h.cfg.artim_timeout,
						  h.tls_server, err, sizeof(err)) != DH_DCM_OK) {
		DH_ERROR("tls.port %ld: %s", h.cfg.tls.port, err);
		goto out;
	}
	if (stgcmt_start(&h) < 0 || archive_start(&h) < 0 || cc_apply_start(&h) < 0 || cc_recv_start(&h) < 0 ||
	    external_start(&h) < 0 ||
	    mpps_forward_start(&h) < 0 || scp_start(&h) < 0) {
		DH_ERROR("cannot start threads");
		goto out;
	}
	if (wado_start(&h) < 0)
		goto out;
	DH_INFO("hubd %s listening as %s on port %ld (cache %s)", DH_VERSION, h.cfg.ae_title, h.cfg.port,
		h.cfg.cache_dir);
	if (h.tls_net)
		DH_INFO("listening for DICOM over TLS on port %ld", h.cfg.tls.port);
	for (;;) {
		int sig = 0;
		if (sigwait(&sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			DH_INFO("SIGHUP: configuration reload is not supported; restart to apply changes");
			continue;
		}
		DH_INFO("signal %d: stopping", sig);
		break;
	}
	wado_stop(&h);
	scp_stop(&h);
	external_stop(&h);
	cc_recv_stop(&h);
	cc_apply_stop(&h);
	archive_stop(&h);
	stgcmt_stop(&h);
	mpps_forward_stop(&h);
	rc = 0;
	DH_INFO("stopped");
out:
	h.stop = 1;
	wado_stop(&h);
	if (rc != 0)
		scp_stop(&h);
	external_stop(&h);
	cc_recv_stop(&h);
	cc_apply_stop(&h);
	archive_stop(&h);
	stgcmt_stop(&h);
	mpps_forward_stop(&h);
	dh_dcm_net_free(h.net);
	dh_dcm_net_free(h.tls_net);
	hub_tls_close(&h);
	dh_db_close(h.db);
	hub_config_free(&h.cfg);
	return rc;
}
