/*
 * hubctl.c - operator command line of the hub.
 *
 * It talks to the index database with the same configuration file as hubd;
 * it holds no business logic of its own.
 */
#include "ccwire.h"
#include "db.h"
#include "hub.h"
#include "hub_config.h"
#include "hubctl_archive.h"
#include "hubctl_cc.h"
#include "hubctl_mpps.h"
#include "log.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out)
{
	fprintf(out,
		"usage: hubctl [-c FILE] COMMAND\n"
		"\n"
		"Commands:\n"
		"  db migrate     apply missing schema migrations\n"
		"  db version     print the schema version of the database and of this program\n"
		"  config show    print the effective configuration\n"
		"  volumes        nearline volumes: capacity, use, state\n"
		"  volume online|offline NAME\n"
		"                 mark a volume mounted / unmounted\n"
		"  backlog        series waiting to be archived\n"
		"  tars SERIES_UID\n"
		"                 the TAR files of a series\n"
		"  verify VOLUME  check every TAR of a volume against the index and its manifest\n"
		"  cat SOP_UID    write an object's bytes (from the cache or its TAR) to stdout\n"
		"  queue list [--state S] [--spoke ID] [--study UID] [--all]\n"
		"                 change contexts needing attention (parked, refused, operator items)\n"
		"  queue show ID  one change context decoded in full, and why it is where it is\n"
		"  mpps list [--all]\n"
		"                 Modality Performed Procedure Steps received, with forwarding state\n"
		"  mpps show UID  one step: key attributes, its messages and their forwards\n"
		"  mpps backlog   MPPS messages waiting for (or refused by) each destination\n"
		"  keygen [--secret-file PATH]\n"
		"                 make the hub's CURVE key pair: writes the secret key to PATH\n"
		"                 (default cc.secret_key_file; mode 0600, never overwritten)\n"
		"                 and prints the public key, which spokes configure as hub.public_key\n"
		"\n"
		"Options:\n"
		"  -c, --config FILE   hubd's configuration file (default: built-in defaults)\n"
		"      --json          machine-readable output (volumes, backlog, tars, verify, queue, mpps)\n"
		"      --secret-file PATH  keygen: where to write the secret key\n"
		"  -h, --help          this help\n"
		"\n"
		"Exit status: 0 success, 1 failure (for verify: problems found), 2 bad usage.\n");
}

static int with_db(const hub_config *cfg, int migrate)
{
	dh_db *db = NULL;
	dh_db_err err = { "", "" };
	PGconn *c = NULL;
	int rc = 1, from = 0, to = 0;
	if (dh_db_open(&db, cfg->conninfo, 1) < 0 || !(c = dh_db_get(db, &err))) {
		fprintf(stderr, "hubctl: %s\n", err.msg[0] ? err.msg : "out of memory");
		goto done;
	}
	if (migrate) {
		if (dh_db_migrate(c, hub_migrations, &from, &to, &err) < 0) {
			fprintf(stderr, "hubctl: %s\n", err.msg);
			goto done;
		}
		printf("schema version %d%s\n", to, from == to ? " (already current)" : "");
	} else {
		if (dh_db_schema_version(c, &to, &err) < 0) {
			fprintf(stderr, "hubctl: %s\n", err.msg);
			goto done;
		}
		printf("database schema version %d; this program's %d\n", to, dh_db_latest_version(hub_migrations));
	}
	rc = 0;
done:
	dh_db_put(db, c, 0);
	dh_db_close(db);
	return rc;
}

/* keygen: a fresh CURVE key pair; the secret goes to a 0600 file, the public key to stdout. */
static int keygen(const char *path)
{
	char pub[41], sec[41], err[512];
	int rc = 1;

	if (!path || !*path) {
		fprintf(stderr, "hubctl: keygen: no --secret-file given and cc.secret_key_file is empty\n");
		return 2;
	}
	/* an existing key is the hub's identity: spokes trust it; never replace it silently */
	if (access(path, F_OK) == 0 || errno != ENOENT) {
		fprintf(stderr, "hubctl: keygen: %s already exists; remove it first to make a new key\n", path);
		return 1;
	}
	if (dh_ccwire_keygen(pub, sec) != 0) {
		fprintf(stderr, "hubctl: keygen: this libzmq has no CURVE support\n");
		goto done;
	}
	if (dh_ccwire_save_secret(path, sec, err, sizeof(err)) != 0) {
		fprintf(stderr, "hubctl: keygen: %s\n", err);
		goto done;
	}
	printf("%s\n", pub);
	rc = 0;
done:
	explicit_bzero(sec, sizeof(sec));
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, 'j' },
		{ "secret-file", required_argument, NULL, 's' },
		{ "state", required_argument, NULL, 'S' },
		{ "spoke", required_argument, NULL, 'P' },
		{ "study", required_argument, NULL, 'U' },
		{ "all", no_argument, NULL, 'A' },
		{ NULL, 0, NULL, 0 }
	};
	const char *path = NULL, *secret_file = NULL;
	hubctl_cc_filter qf = { NULL, NULL, NULL, 0 };
	int json = 0;
	hub_config cfg;
	char err[512];
	int o, rc = 2;

	while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (o) {
		case 'c': path = optarg; break;
		case 'h': usage(stdout); return 0;
		case 'j': json = 1; break;
		case 's': secret_file = optarg; break;
		case 'S': qf.state = optarg; break;
		case 'P': qf.spoke = optarg; break;
		case 'U': qf.study = optarg; break;
		case 'A': qf.all = 1; break;
		default: usage(stderr); return 2;
		}
	}
	if (argc - optind >= 1 && hubctl_archive_is_command(argv[optind])) {
		if (hub_config_load(&cfg, path, err, sizeof(err)) < 0) {
			fprintf(stderr, "hubctl: %s\n", err);
			return 1;
		}
		dh_log_init("hubctl", "stderr", "warn");
		rc = hubctl_archive_main(&cfg, argc - optind, argv + optind, json);
		hub_config_free(&cfg);
		return rc;
	}
	if (argc - optind >= 1 && hubctl_cc_is_command(argv[optind])) {
		if (hub_config_load(&cfg, path, err, sizeof(err)) < 0) {
			fprintf(stderr, "hubctl: %s\n", err);
			return 1;
		}
		dh_log_init("hubctl", "stderr", "warn");
		rc = hubctl_cc_main(&cfg, argc - optind, argv + optind, &qf, json);
		hub_config_free(&cfg);
		return rc;
	}
	if (argc - optind >= 1 && hubctl_mpps_is_command(argv[optind])) {
		if (hub_config_load(&cfg, path, err, sizeof(err)) < 0) {
			fprintf(stderr, "hubctl: %s\n", err);
			return 1;
		}
		dh_log_init("hubctl", "stderr", "warn");
		rc = hubctl_mpps_main(&cfg, argc - optind, argv + optind, qf.all, json);
		hub_config_free(&cfg);
		return rc;
	}
	if (argc - optind == 1 && strcmp(argv[optind], "keygen") == 0) {
		if (hub_config_load(&cfg, path, err, sizeof(err)) < 0) {
			fprintf(stderr, "hubctl: %s\n", err);
			return 1;
		}
		rc = keygen(secret_file ? secret_file : cfg.cc_secret_key_file);
		hub_config_free(&cfg);
		return rc;
	}
	if (argc - optind < 2) {
		usage(stderr);
		return 2;
	}
	if (hub_config_load(&cfg, path, err, sizeof(err)) < 0) {
		fprintf(stderr, "hubctl: %s\n", err);
		return 1;
	}
	dh_log_init("hubctl", "stderr", "warn");
	const char *a = argv[optind], *b = argv[optind + 1];
	if (strcmp(a, "db") == 0 && strcmp(b, "migrate") == 0)
		rc = with_db(&cfg, 1);
	else if (strcmp(a, "db") == 0 && strcmp(b, "version") == 0)
		rc = with_db(&cfg, 0);
	else if (strcmp(a, "config") == 0 && strcmp(b, "show") == 0) {
		hub_config_write(stdout, &cfg);
		rc = 0;
	} else
		usage(stderr);
	hub_config_free(&cfg);
	return rc;
}
