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
#include "hubctl_echo.h"
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
		"  echo AE [--timeout SECONDS]\n"
		"                 C-ECHO from the hub to [remote.AE] (Verification SCU), as hubd connects\n"
		"  keygen [--secret-file PATH]\n"
		"                 make the hub's CURVE key pair: writes the secret key to PATH\n"
		"                 (default cc.secret_key_file; mode 0600, never overwritten)\n"
		"                 and prints the public key, which spokes configure as hub.public_key\n"
		"\n"
		"Options:\n"
		"  -c, --config FILE   hubd's configuration file (default: built-in defaults)\n"
		"      --json          machine-readable output (volumes, backlog, tars, verify, queue,\n"
		"                      status, history, kos, quarantine, external, mpps, echo)\n"
		"      --timeout SECONDS  verify --spoke, echo: how long to wait for the peer\n"
		"      --reason TEXT   queue retry|resolve|discard: why (required, recorded)\n"
		"      --operator NAME queue retry|resolve|discard: who (default: the OS user)\n"
		"      --secret-file PATH  keygen: where to write the secret key\n"
		"  -h, --help          this help; after a command (status, queue, history, verify, echo,\n"
		"                      kos, quarantine): its help\n"
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

/* Everything a command may take from hubctl's own options. */
typedef struct {
	const char *secret_file;
	hubctl_cc_filter qf;
	int json, timeout;
} ctl_opts;

/*
 * One command group: is() says whether argv[0] (and argc) name it; run()
 * gets the loaded configuration and argv from the command's name on.
 */
typedef struct {
	int (*is)(int argc, char **argv, const ctl_opts *o);
	int (*run)(const hub_config *cfg, int argc, char **argv, const ctl_opts *o);
} ctl_command;

static int is_verify_spoke(int argc, char **argv, const ctl_opts *o)
{
	return argc == 1 && strcmp(argv[0], "verify") == 0 && o->qf.spoke;
}
static int run_verify_spoke(const hub_config *cfg, int argc, char **argv, const ctl_opts *o)
{
	(void)argc, (void)argv;
	hubctl_verify_opts vo = { o->qf.spoke, o->qf.study, o->timeout, o->json };
	return hubctl_verify_main(cfg, &vo);
}
static int is_status(int argc, char **argv, const ctl_opts *o)
{
	(void)argc, (void)o;
	return strcmp(argv[0], "status") == 0;
}
static int run_status(const hub_config *cfg, int argc, char **argv, const ctl_opts *o)
{
	return hubctl_status_main(cfg, argc, argv, o->json);
}
static int is_history(int argc, char **argv, const ctl_opts *o)
{
	(void)argc, (void)o;
	return strcmp(argv[0], "history") == 0;
}
static int run_history(const hub_config *cfg, int argc, char **argv, const ctl_opts *o)
{
	return hubctl_history_main(cfg, argc, argv, o->json);
}
static int is_echo(int argc, char **argv, const ctl_opts *o)
{
	(void)argc, (void)o;
	return strcmp(argv[0], "echo") == 0;
}
static int run_echo(const hub_config *cfg, int argc, char **argv, const ctl_opts *o)
{
	return hubctl_echo_main(cfg, argc, argv, o->timeout, o->json);
}
static int is_archive(int argc, char **argv, const ctl_opts *o)
{
	(void)argc, (void)o;
	return hubctl_archive_is_command(argv[0]);
}
static int run_archive(const hub_config *cfg, int argc, char **argv, const ctl_opts *o)
{
	return hubctl_archive_main(cfg, argc, argv, o->json);
}
static int is_cc(int argc, char **argv, const ctl_opts *o)
{
	(void)argc, (void)o;
	return hubctl_cc_is_command(argv[0]);
}
static int run_cc(const hub_config *cfg, int argc, char **argv, const ctl_opts *o)
{
	return hubctl_cc_main(cfg, argc, argv, &o->qf, o->json);
}
static int is_external(int argc, char **argv, const ctl_opts *o)
{
	(void)argc, (void)o;
	return hubctl_external_is_command(argv[0]);
}
static int run_external(const hub_config *cfg, int argc, char **argv, const ctl_opts *o)
{
	return hubctl_external_main(cfg, argc, argv, o->qf.state, o->qf.study, o->json);
}
static int is_mpps(int argc, char **argv, const ctl_opts *o)
{
	(void)argc, (void)o;
	return hubctl_mpps_is_command(argv[0]);
}
static int run_mpps(const hub_config *cfg, int argc, char **argv, const ctl_opts *o)
{
	return hubctl_mpps_main(cfg, argc, argv, o->qf.all, o->json);
}
static int is_keygen(int argc, char **argv, const ctl_opts *o)
{
	(void)o;
	return argc == 1 && strcmp(argv[0], "keygen") == 0;
}
static int run_keygen(const hub_config *cfg, int argc, char **argv, const ctl_opts *o)
{
	(void)argc, (void)argv;
	return keygen(o->secret_file ? o->secret_file : cfg->cc_secret_key_file);
}
static int is_db_config(int argc, char **argv, const ctl_opts *o)
{
	(void)o;
	return argc == 2 && ((strcmp(argv[0], "db") == 0 && (strcmp(argv[1], "migrate") == 0 ||
							      strcmp(argv[1], "version") == 0)) ||
			     (strcmp(argv[0], "config") == 0 && strcmp(argv[1], "show") == 0));
}
static int run_db_config(const hub_config *cfg, int argc, char **argv, const ctl_opts *o)
{
	(void)argc, (void)o;
	if (strcmp(argv[0], "config") == 0) {
		hub_config_write(stdout, cfg);
		return 0;
	}
	return with_db(cfg, strcmp(argv[1], "migrate") == 0);
}

/* In order: `verify --spoke` before the archive's `verify VOLUME`. */
static const ctl_command commands[] = {
	{ is_verify_spoke, run_verify_spoke }, { is_status, run_status }, { is_history, run_history },
	{ is_echo, run_echo },		       { is_archive, run_archive }, { is_cc, run_cc },
	{ is_external, run_external },	       { is_mpps, run_mpps },	    { is_keygen, run_keygen },
	{ is_db_config, run_db_config },
};

/* `hubctl COMMAND --help`: the command's own help where it has one. */
static int command_help(const char *name, ctl_opts *o)
{
	char *h[2] = { (char *)name, (char *)"help" };
	if (!name) {
		usage(stdout);
		return 0;
	}
	if (strcmp(name, "status") == 0)
		return hubctl_status_main(NULL, 2, h, 0);
	if (strcmp(name, "history") == 0)
		return hubctl_history_main(NULL, 2, h, 0);
	if (strcmp(name, "verify") == 0) {
		hubctl_verify_usage(stdout);
		return 0;
	}
	if (strcmp(name, "echo") == 0) {
		hubctl_echo_usage(stdout);
		return 0;
	}
	if (hubctl_cc_is_command(name))
		return hubctl_cc_main(NULL, 2, h, &o->qf, 0);
	usage(stdout);
	return 0;
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
	const char *path = NULL;
	ctl_opts o = { NULL, { NULL, NULL, NULL, 0, NULL, NULL }, 0, 0 };
	int help = 0, c;
	hub_config cfg;
	char err[512];

	/* kos and quarantine parse their own options (--reason, --operator) */
	if (hubctl_kos_command_of(argc, argv))
		return hubctl_kos_main(argc, argv);
	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'h': help = 1; break;
		case 'R': o.qf.reason = optarg; break;
		case 'O': o.qf.operator_name = optarg; break;
		case 'j': o.json = 1; break;
		case 's': o.secret_file = optarg; break;
		case 'S': o.qf.state = optarg; break;
		case 'P': o.qf.spoke = optarg; break;
		case 'U': o.qf.study = optarg; break;
		case 'A': o.qf.all = 1; break;
		case 'T': o.timeout = atoi(optarg); break;
		default: usage(stderr); return 2;
		}
	}
	if (help)
		return command_help(optind < argc ? argv[optind] : NULL, &o);
	const ctl_command *cmd = NULL;
	for (size_t i = 0; optind < argc && i < sizeof(commands) / sizeof(commands[0]) && !cmd; i++)
		if (commands[i].is(argc - optind, argv + optind, &o))
			cmd = &commands[i];
	if (!cmd) {
		usage(stderr);
		return 2;
	}
	if (hub_config_load(&cfg, path, err, sizeof(err)) < 0) {
		fprintf(stderr, "hubctl: %s\n", err);
		return 1;
	}
	dh_log_init("hubctl", "stderr", "warn");
	int rc = cmd->run(&cfg, argc - optind, argv + optind, &o);
	hub_config_free(&cfg);
	return rc;
}
