/*
 * spoked.c - the spoke agent daemon: start-up, signals, shutdown.
 *
 * Start-up order as in hubd: configuration and logging, DCMTK's global
 * set-up (before any thread), the store directory and the leftovers of a
 * crash, the ledger schema, and only then the listener, so that a spoke
 * that accepts associations can also store what they send. The forwarder
 * and the shipper start last; they only read what is already durable.
 */
#include "spoke.h"

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
		"usage: spoked [-c FILE] [--check-config] [--print-config]\n"
		"\n"
		"The dcmhub spoke agent: DICOM Storage SCP for the spoke PACS, forwarding to the\n"
		"hub (Storage SCU with Storage Commitment) and shipping of change contexts.\n"
		"Runs in the foreground and logs to stderr (or syslog); SIGTERM or SIGINT stops it\n"
		"cleanly.\n"
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

static int open_database(spoke *s)
{
	dh_db_err err = { "", "" };
	PGconn *c = NULL;
	int rc = -1, from = 0, to = 0;

	if (dh_db_open(&s->db, s->cfg.conninfo, (int)s->cfg.pool_size) < 0) {
		DH_ERROR("out of memory");
		return -1;
	}
	if (!(c = dh_db_get(s->db, &err))) {
		DH_ERROR("%s", err.msg);
		return -1;
	}
	if (s->cfg.auto_migrate) {
		if (dh_db_migrate(c, spoke_migrations, &from, &to, &err) < 0) {
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
		if (to != dh_db_latest_version(spoke_migrations)) {
			DH_ERROR("database schema version %d, this spoked needs %d: run spokectl with "
				 "database.auto_migrate = true, or apply sql/spoke/",
				 to, dh_db_latest_version(spoke_migrations));
			goto done;
		}
	}
	rc = 0;
done:
	dh_db_put(s->db, c, rc < 0);
	return rc;
}

static void stop_all(spoke *s)
{
	/* the listener first: nothing new arrives while the workers wind down */
	receive_stop(s);
	shipper_stop(s);
	forward_stop(s);
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
	static spoke s;
	char err[512] = "";
	sigset_t sigs;

	while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (o) {
		case 'c': path = optarg; break;
		case 'k': check = 1; break;
		case 'p': print = 1; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("spoked %s\n", DH_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	if (spoke_config_load(&s.cfg, path, err, sizeof(err)) < 0) {
		fprintf(stderr, "spoked: %s\n", err);
		return 1;
	}
	if (print) {
		spoke_config_write(stdout, path ? &s.cfg : NULL);
		spoke_config_free(&s.cfg);
		return 0;
	}
	if (dh_log_init("spoked", s.cfg.log_target, s.cfg.log_level) < 0) {
		fprintf(stderr, "spoked: invalid spoke.log_target or spoke.log_level\n");
		goto out;
	}
	if (check) {
		/* certificates and keys are part of the configuration: load them too */
		dh_dcm_global_init(0);
		if (dh_tls_config_open(&s.cfg.tls, s.cfg.hub_tls, &s.tls_server, &s.tls_client, err, sizeof(err)) < 0) {
			fprintf(stderr, "spoked: %s\n", err);
			goto out;
		}
		printf("spoked: configuration OK\n");
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
	if (dh_tls_config_open(&s.cfg.tls, s.cfg.hub_tls, &s.tls_server, &s.tls_client, err, sizeof(err)) < 0) {
		DH_ERROR("%s", err);
		goto out;
	}
	if (receive_prepare_store(&s) < 0)
		goto out;
	if (open_database(&s) < 0)
		goto out;
	if (dh_dcm_net_listen(&s.net, (int)s.cfg.port, (int)s.cfg.artim_timeout, err, sizeof(err)) != DH_DCM_OK) {
		DH_ERROR("port %ld: %s", s.cfg.port, err);
		goto out;
	}
	if (s.tls_server && dh_dcm_net_listen_tls(&s.tls_net, (int)s.cfg.tls.port, (int)s.cfg.artim_timeout,
						  s.tls_server, err, sizeof(err)) != DH_DCM_OK) {
		DH_ERROR("tls.port %ld: %s", s.cfg.tls.port, err);
		goto out;
	}
	if (receive_start(&s) < 0 || forward_start(&s) < 0 || shipper_start(&s) < 0) {
		DH_ERROR("cannot start threads");
		goto out;
	}
	DH_INFO("spoked %s (spoke %s) listening as %s on port %ld (store %s), hub %s at %s:%ld", DH_VERSION,
		s.cfg.id, s.cfg.ae_title, s.cfg.port, s.cfg.store_dir, s.cfg.hub_ae_title, s.cfg.hub_host,
		s.cfg.hub_port);
	if (s.tls_net || s.tls_client)
		DH_INFO("TLS: listener %s, hub reached %s", s.tls_net ? "on" : "off", s.tls_client ? "over TLS" : "plain");
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
	stop_all(&s);
	rc = 0;
	DH_INFO("stopped");
out:
	s.stop = 1;
	if (rc != 0)
		stop_all(&s);
	dh_dcm_net_free(s.net);
	dh_dcm_net_free(s.tls_net);
	dh_dcm_tls_free(s.tls_server);
	dh_dcm_tls_free(s.tls_client);
	if (!s.forwarder) /* else an association thread may still use the pool */
		dh_db_close(s.db);
	spoke_config_free(&s.cfg);
	return rc;
}
