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
#include "hubctl_history.h"
#include "hubctl_status.h"
#include "hubctl_verify.h"
#include "hubctl_kos.h"
#include "hubctl_external.h"
#include "hubctl_mpps.h"
#include "log.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
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
		"  verify --spoke ID [--study UID] [--timeout SECONDS]\n"
		"                 compare the spoke's ledger with the hub's index and list every\n"
		"                 difference (exit 0 equal, 1 differences, 3 spoke not connected or\n"
		"                 no answer, 4 database error; docs/hubctl.md)\n"
		"  cat SOP_UID    write an object's bytes (from the cache or its TAR) to stdout\n"
		"  status         spokes (connected, received, applied, lag, open items), service\n"
		"                 backlogs; exit 3 when operator items are open, 4 when only a\n"
		"                 configured spoke is not connected (docs/hubctl.md)\n"
		"  queue list [--state parked|conflict|failed|...] [--spoke ID] [--study UID] [--all]\n"
		"                 change contexts needing attention (parked, conflict, failed)\n"
		"  queue show ID  one change context decoded in full, and why it is where it is\n"
		"  queue retry|resolve|discard ID --reason TEXT [--operator NAME]\n"
		"                 act on an item; recorded with who, when, why and the outcome\n"
		"  history STUDY_UID\n"
		"                 the study's story on the hub in time order (old UIDs work too)\n"
		"  kos STUDY_UID  the study's Key Object Selection documents (hubctl kos --help)\n"
		"  quarantine list|show|release|discard [ID] [--reason TEXT] [--operator NAME]\n"
		"                 objects kept but not shown (hubctl quarantine --help)\n"
		"  external list  external archives: export queue, commitment results\n"
		"  external show AE [--state S]\n"
		"                 one archive's objects and storage commitment transactions\n"
		"  external retry AE\n"
		"                 queue an archive's failed objects again\n"
		"  external release --study UID\n"
		"                 remove local copies an archive holds; C-MOVE then forwards\n"
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
		"      --json          machine-readable output (volumes, backlog, tars, verify, queue,\n"
		"                      status, history, mpps)\n"
		"      --reason TEXT   queue retry|resolve|discard: why (required, recorded)\n"
		"      --operator NAME queue retry|resolve|discard: who (default: the OS user)\n"
		"      --secret-file PATH  keygen: where to write the secret key\n"
		"  -h, --help          this help; after a command (status, queue, history): its help\n"
		"\n"
		"Exit status: 0 success, 1 failure (for verify: problems found), 2 bad usage;\n"
		"status and queue retry|resolve|discard add 3 and 4 (see their --help).\n");
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
		{ "reason", required_argument, NULL, 'R' },
		{ "operator", required_argument, NULL, 'O' },
		{ "timeout", required_argument, NULL, 'T' },
		{ NULL, 0, NULL, 0 }
	};
	const char *path = NULL, *secret_file = NULL;
	hubctl_cc_filter qf = { NULL, NULL, NULL, 0, NULL, NULL };
	int help = 0;
	int json = 0, timeout = 0;
	hub_config cfg;
	char err[512];
	int o, rc = 2;

	/* kos and quarantine parse their own options (--reason, --operator) */
	if (hubctl_kos_command_of(argc, argv))
		return hubctl_kos_main(argc, argv);
	while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (o) {
		case 'c': path = optarg; break;
		case 'h': help = 1; break;
		case 'R': qf.reason = optarg; break;
		case 'O': qf.operator_name = optarg; break;
		case 'j': json = 1; break;
		case 's': secret_file = optarg; break;
		case 'S': qf.state = optarg; break;
		case 'P': qf.spoke = optarg; break;
		case 'U': qf.study = optarg; break;
		case 'A': qf.all = 1; break;
		case 'T': timeout = atoi(optarg); break;
		default: usage(stderr); return 2;
		}
	}
	if (help) {
		/* a command's own help (status, queue, history, verify), else this one */
		char *h[2] = { optind < argc ? argv[optind] : NULL, (char *)"help" };
		if (h[0] && strcmp(h[0], "status") == 0)
			return hubctl_status_main(NULL, 2, h, 0);
		if (h[0] && strcmp(h[0], "history") == 0)
			return hubctl_history_main(NULL, 2, h, 0);
		if (h[0] && strcmp(h[0], "verify") == 0) {
			hubctl_verify_usage(stdout);
			return 0;
		}
		if (h[0] && hubctl_cc_is_command(h[0]))
			return hubctl_cc_main(NULL, 2, h, &qf, 0);
		usage(stdout);
		return 0;
	}
	if (argc - optind == 1 && strcmp(argv[optind], "verify") == 0 && qf.spoke) {
		hubctl_verify_opts vo = { qf.spoke, qf.study, timeout, json };
		if (hub_config_load(&cfg, path, err, sizeof(err)) < 0) {
			fprintf(stderr, "hubctl: %s\n", err);
			return 1;
		}
		dh_log_init("hubctl", "stderr", "warn");
		rc = hubctl_verify_main(&cfg, &vo);
		hub_config_free(&cfg);
		return rc;
	}
	if (argc - optind >= 1 && (strcmp(argv[optind], "status") == 0 || strcmp(argv[optind], "history") == 0)) {
		if (hub_config_load(&cfg, path, err, sizeof(err)) < 0) {
			fprintf(stderr, "hubctl: %s\n", err);
			return 1;
		}
		dh_log_init("hubctl", "stderr", "warn");
		rc = argv[optind][0] == 's' ? hubctl_status_main(&cfg, argc - optind, argv + optind, json)
					    : hubctl_history_main(&cfg, argc - optind, argv + optind, json);
		hub_config_free(&cfg);
		return rc;
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
	if (argc - optind >= 1 && hubctl_external_is_command(argv[optind])) {
		if (hub_config_load(&cfg, path, err, sizeof(err)) < 0) {
			fprintf(stderr, "hubctl: %s\n", err);
			return 1;
		}
		dh_log_init("hubctl", "stderr", "warn");
		rc = hubctl_external_main(&cfg, argc - optind, argv + optind, qf.state, qf.study, json);
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
