/*
 * spokectl.c - the spoke's operator tool (docs/spokectl.md).
 *
 * Changes (split, merge, segment, modify, delete, fix-uid) go through the
 * capture API (spoke/capture.h), which updates the ledger and queues the
 * cc in one transaction; this file only parses arguments and prints. It
 * reads spoked's configuration (-c FILE) and connects to its database.
 * Every change prints `sequence N` and the UIDs it assigned, one
 * `key [old] new` per line. status and ledger read; keygen writes the
 * spoke's CURVE key pair; recall asks the hub (Study Root C-MOVE) to send
 * a study to the spoke PACS.
 *
 * Exit status: 0 success, 1 failure (message on stderr; recall: warning,
 * failure or no answer), 2 usage.
 */
#include "capture.h"
#include "ccwire.h"
#include "cc.h"
#include "dcm.h"
#include "db.h"
#include "log.h"
#include "spoke.h"
#include "spoke_config.h"

#include <getopt.h>
#include <inttypes.h>
#include <pwd.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STUDY_ROOT_MOVE "1.2.840.10008.5.1.4.1.2.2.2"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: spokectl [-c FILE] COMMAND [OPTIONS] ...   (spokectl COMMAND --help for details)\n"
		"\n"
		"changes (recorded in the ledger and queued for the hub in one transaction):\n"
		"  split    --study S (--to STUDY | --new [--new-uid U]) [--patient-id ID --patient-name N ...] SOP...\n"
		"  merge    --into STUDY | --new [--into NEW_UID]  SRC_STUDY...\n"
		"  segment  --study S [--keep] --target ACCESSION[@UID]=SOP[,SOP...] ...\n"
		"  modify   (--patient ID | --study S [--series X [--sop Y]]) --set TAG=VALUE ...\n"
		"  delete   --study S [--series X] [--sop Y ...]\n"
		"  fix-uid  --study S [--new-uid U] --accession A [--set TAG=VALUE ...]\n"
		"common options: -c FILE (spoked's configuration), --operator NAME (default $USER), --reason TEXT\n"
		"\n"
		"  status   [--json]                   forwarding and cc queue state\n"
		"  ledger   [--study S] [--json]       the spoke's current view\n"
		"  keygen   --secret-file PATH         a new CURVE key pair; prints the public key\n"
		"  recall   [--hub HOST:PORT] [--hub-aet AE] [--aet AE] --dest AE STUDY_UID\n"
		"  spokectl --help | --version\n"
		"\n"
		"recall   asks the hub to send a study (Study Root C-MOVE) to the spoke PACS\n"
		"  --hub HOST:PORT   the hub's DICOM address (default 127.0.0.1:11112)\n"
		"  --hub-aet AE      the hub's AE title (default DCMHUB)\n"
		"  --aet AE          our calling AE title; the hub must know it (default SPOKE)\n"
		"  --dest AE         the move destination: the spoke PACS as the hub knows it\n"
		"  --timeout S       seconds to wait for each response (default 600)\n"
		"  with -c FILE the hub's address and AE title, our AE title and TLS (hub.tls, [tls])\n"
		"  come from spoked's configuration; the options above override them\n"
		"\n"
		"\n"
		"Exit status: 0 success, 1 failure (recall: warning or failure), 2 usage error.\n");
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

static const char *config_path; /* -c FILE (defined with the ledger commands below) */

static int recall(int argc, char **argv)
{
	const char *hub = "127.0.0.1:11112", *hub_aet = "DCMHUB", *aet = "SPOKE", *dest = NULL;
	/* with -c FILE the hub's address, titles and TLS come from spoked's configuration */
	spoke_config cfg;
	int have_cfg = 0, hub_set = 0, hub_aet_set = 0, aet_set = 0;
	char hub_buf[300];
	dh_dcm_tls *tls = NULL, *tls_unused = NULL;
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
		case 'h': hub = optarg; hub_set = 1; break;
		case 'c': hub_aet = optarg; hub_aet_set = 1; break;
		case 'a': aet = optarg; aet_set = 1; break;
		case 'd': dest = optarg; break;
		case 't': timeout = strtol(optarg, NULL, 10); break;
		case 'H': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (config_path) {
		char cerr[512];
		if (spoke_config_load(&cfg, config_path, cerr, sizeof(cerr)) != 0) {
			fprintf(stderr, "spokectl: %s\n", cerr);
			return 1;
		}
		have_cfg = 1;
		snprintf(hub_buf, sizeof(hub_buf), "%s:%ld", cfg.hub_host, cfg.hub_port);
		hub = hub_set ? hub : hub_buf;
		hub_aet = hub_aet_set ? hub_aet : cfg.hub_ae_title;
		aet = aet_set ? aet : cfg.ae_title;
	}
	if (!dest || optind != argc - 1 || timeout <= 0 || strlen(dest) > 16 || strlen(aet) > 16 ||
	    strlen(hub_aet) > 16) {
		usage(stderr);
		if (have_cfg)
			spoke_config_free(&cfg);
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
		if (have_cfg)
			spoke_config_free(&cfg);
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
	if (have_cfg && cfg.hub_tls) {
		dh_tls_config t = cfg.tls;
		t.port = 0; /* a client only: no listener context */
		if (dh_tls_config_open(&t, 1, &tls_unused, &tls, err, sizeof(err)) < 0) {
			fprintf(stderr, "spokectl: %s\n", err);
			goto done;
		}
	}
	if (dh_dcm_assoc_request_tls(&a, aet, hub_aet, host, (int)port, 16384, 30, &req, 1, tls, err,
				     sizeof(err)) != DH_DCM_OK) {
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
	dh_dcm_tls_free(tls);
	if (have_cfg)
		spoke_config_free(&cfg);
	return rc;
}

/* ---- ledger commands ---- */

static const char *config_path;         /* -c FILE (before or after the command) */
static const char *operator_name, *reason_text;

enum { O_CONFIG = 'c', O_HELP = 1000, O_OPERATOR, O_REASON, O_JSON };

/* Handles the options every ledger command takes; 1 when o was one of them. */
static int common_opt(int o)
{
	switch (o) {
	case O_CONFIG: config_path = optarg; return 1;
	case O_OPERATOR: operator_name = optarg; return 1;
	case O_REASON: reason_text = optarg; return 1;
	default: return 0;
	}
}

#define COMMON_OPTS                                                                                      \
	{ "config", required_argument, NULL, O_CONFIG }, { "operator", required_argument, NULL, O_OPERATOR }, \
	{ "reason", required_argument, NULL, O_REASON }, { "help", no_argument, NULL, O_HELP }

static void quiet_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message; /* "relation ... already exists, skipping" from migrations */
}

/* Loads the configuration and connects (migrating when database.auto_migrate). */
static PGconn *connect_ledger(spoke_config *cfg)
{
	char err[512];
	PGconn *c;
	dh_db_err e;

	memset(&e, 0, sizeof(e));
	if (spoke_config_load(cfg, config_path, err, sizeof(err)) != 0) {
		fprintf(stderr, "spokectl: %s\n", err);
		return NULL;
	}
	c = PQconnectdb(cfg->conninfo);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "spokectl: cannot connect to the spoke database: %s", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	PQsetNoticeProcessor(c, quiet_notice, NULL);
	if (cfg->auto_migrate && dh_db_migrate(c, spoke_migrations, NULL, NULL, &e) != 0) {
		fprintf(stderr, "spokectl: database schema: %s\n", e.msg);
		PQfinish(c);
		return NULL;
	}
	return c;
}

static capture_who who_of(void)
{
	capture_who w = { operator_name, reason_text };

	if (!w.operator_name)
		w.operator_name = getenv("USER");
	if (!w.operator_name) {
		struct passwd *pw = getpwuid(geteuid());

		w.operator_name = pw ? pw->pw_name : "";
	}
	return w;
}

/* Parses TAG=VALUE into a (value borrowed from arg, which is modified). */
static int parse_set(char *arg, capture_attr *a)
{
	char *eq = strchr(arg, '='), err[256];

	if (!eq) {
		fprintf(stderr, "spokectl: --set wants TAG=VALUE, got '%s'\n", arg);
		return -1;
	}
	*eq = '\0';
	if (capture_attr_parse(arg, &a->tag, err, sizeof(err)) != 0) {
		fprintf(stderr, "spokectl: %s\n", err);
		return -1;
	}
	a->value = eq + 1;
	return 0;
}

static void print_result(const capture_result *r)
{
	printf("sequence %" PRIu64 "\n", r->sequence);
	for (size_t i = 0; i < r->n_items; i++) {
		if (r->items[i].old[0])
			printf("%s %s %s\n", r->items[i].key, r->items[i].old, r->items[i].uid);
		else
			printf("%s %s\n", r->items[i].key, r->items[i].uid);
	}
	printf("objects %lld\n", r->n_objects);
}

/* Runs one capture call on a fresh connection and prints the result. */
typedef int (*capture_fn)(PGconn *, const spoke_config *, const capture_who *, const void *, capture_result *,
			  char *, size_t);

static int run_capture(capture_fn fn, const void *req)
{
	spoke_config cfg;
	capture_result res;
	capture_who w = who_of();
	char err[512];
	PGconn *c;
	int rc = 1;

	memset(&cfg, 0, sizeof(cfg));
	memset(&res, 0, sizeof(res));
	if (!(c = connect_ledger(&cfg)))
		goto done;
	if (fn(c, &cfg, &w, req, &res, err, sizeof(err)) != 0) {
		fprintf(stderr, "spokectl: %s\n", err);
		goto done;
	}
	print_result(&res);
	rc = 0;
done:
	capture_result_free(&res);
	PQfinish(c);
	spoke_config_free(&cfg);
	return rc;
}

/* Adapters: the capture functions take typed requests. */
#define ADAPT(name, type)                                                                                 \
	static int name##_fn(PGconn *c, const spoke_config *cfg, const capture_who *w, const void *req,  \
			     capture_result *res, char *err, size_t errlen)                               \
	{                                                                                                 \
		return capture_##name(c, cfg, w, (const type *)req, res, err, errlen);                    \
	}
ADAPT(split, capture_split_req)
ADAPT(merge, capture_merge_req)
ADAPT(segment, capture_segment_req)
ADAPT(modify, capture_modify_req)
ADAPT(delete, capture_delete_req)
ADAPT(fixup, capture_fixup_req)

static int cmd_usage(int help, const char *text)
{
	fprintf(help ? stdout : stderr, "usage: spokectl %s\n"
		"common options: -c FILE, --operator NAME (default $USER), --reason TEXT\n", text);
	return help ? 0 : 2;
}

static const char split_usage[] =
	"split --study S (--to STUDY | --new [--new-uid U]) [--patient-id ID] [--patient-name NAME]\n"
	"      [--birth-date YYYYMMDD] [--sex M|F|O] [--set TAG=VALUE ...] SOP_UID...\n"
	"  moves the listed instances of S to an existing study (--to) or a new one (--new);\n"
	"  patient and study attributes of a new target with --patient-* and --set";

static int cmd_split(int argc, char **argv)
{
	static const struct option opts[] = { COMMON_OPTS, { "study", required_argument, NULL, 's' },
					      { "to", required_argument, NULL, 't' }, { "new", no_argument, NULL, 'n' },
					      { "new-uid", required_argument, NULL, 'u' },
					      { "patient-id", required_argument, NULL, 'i' },
					      { "patient-name", required_argument, NULL, 'p' },
					      { "birth-date", required_argument, NULL, 'b' },
					      { "sex", required_argument, NULL, 'x' }, { "set", required_argument, NULL, 'S' },
					      { NULL, 0, NULL, 0 } };
	capture_attr *attrs = calloc((size_t)argc + 1, sizeof(*attrs));
	capture_split_req req = { 0 };
	int o, isnew = 0, rc = 2;
	size_t na = 0;

	if (!attrs)
		return 1;
	optind = 1;
	while ((o = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		if (common_opt(o))
			continue;
		switch (o) {
		case 's': req.study_uid = optarg; break;
		case 't': req.target_study_uid = optarg; break;
		case 'n': isnew = 1; break;
		case 'u': req.target_study_uid = optarg; isnew = 1; break;
		case 'i': attrs[na++] = (capture_attr){ 0x00100020u, optarg }; break;
		case 'p': attrs[na++] = (capture_attr){ 0x00100010u, optarg }; break;
		case 'b': attrs[na++] = (capture_attr){ 0x00100030u, optarg }; break;
		case 'x': attrs[na++] = (capture_attr){ 0x00100040u, optarg }; break;
		case 'S': if (parse_set(optarg, &attrs[na++]) != 0) goto done; break;
		case O_HELP: rc = cmd_usage(1, split_usage); goto done;
		default: rc = cmd_usage(0, split_usage); goto done;
		}
	}
	if (!req.study_uid || optind >= argc || (!isnew && !req.target_study_uid)) {
		rc = cmd_usage(0, split_usage);
		goto done;
	}
	req.target_new = isnew;
	req.sops = (const char *const *)argv + optind;
	req.n_sops = (size_t)(argc - optind);
	req.attrs = attrs;
	req.n_attrs = na;
	rc = run_capture(split_fn, &req);
done:
	free(attrs);
	return rc;
}

static const char merge_usage[] =
	"merge (--into STUDY | --new [--into NEW_UID]) SRC_STUDY...\n"
	"  moves every object of the source studies into STUDY (or a new study); new SOP and series UIDs";

static int cmd_merge(int argc, char **argv)
{
	static const struct option opts[] = { COMMON_OPTS, { "into", required_argument, NULL, 'i' },
					      { "new", no_argument, NULL, 'n' }, { NULL, 0, NULL, 0 } };
	capture_merge_req req = { 0 };
	int o;

	optind = 1;
	while ((o = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		if (common_opt(o))
			continue;
		switch (o) {
		case 'i': req.destination = optarg; break;
		case 'n': req.destination_new = 1; break;
		case O_HELP: return cmd_usage(1, merge_usage);
		default: return cmd_usage(0, merge_usage);
		}
	}
	if (optind >= argc || (!req.destination && !req.destination_new))
		return cmd_usage(0, merge_usage);
	req.sources = (const char *const *)argv + optind;
	req.n_sources = (size_t)(argc - optind);
	return run_capture(merge_fn, &req);
}

static const char segment_usage[] =
	"segment --study S [--keep] --target ACCESSION[@STUDY_UID]=SOP[,SOP...] --target ...\n"
	"  one new study per order; --keep copies (the source stays), else the source is broken up";

static int cmd_segment(int argc, char **argv)
{
	static const struct option opts[] = { COMMON_OPTS, { "study", required_argument, NULL, 's' },
					      { "keep", no_argument, NULL, 'k' },
					      { "target", required_argument, NULL, 't' }, { NULL, 0, NULL, 0 } };
	capture_segment_target *tg = calloc((size_t)argc + 1, sizeof(*tg));
	capture_segment_req req = { 0 };
	const char **sops = calloc((size_t)argc * 64 + 1, sizeof(*sops));
	size_t nsops = 0, cap = (size_t)argc * 64;
	int o, rc = 2;

	if (!tg || !sops) {
		rc = 1;
		goto done;
	}
	optind = 1;
	while ((o = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		char *eq, *at, *tok, *save = NULL;
		capture_segment_target *t;

		if (common_opt(o))
			continue;
		switch (o) {
		case 's': req.study_uid = optarg; break;
		case 'k': req.keep_source = 1; break;
		case 't':
			t = &tg[req.n_targets++];
			if (!(eq = strchr(optarg, '='))) {
				fprintf(stderr, "spokectl: --target wants ACCESSION=SOP[,SOP...], got '%s'\n", optarg);
				goto done;
			}
			*eq = '\0';
			if ((at = strchr(optarg, '@'))) {
				*at = '\0';
				t->study_uid = at + 1;
			}
			t->accession = optarg;
			t->sops = sops + nsops;
			for (tok = strtok_r(eq + 1, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
				if (nsops == cap) {
					fprintf(stderr, "spokectl: too many instances on the command line\n");
					goto done;
				}
				sops[nsops++] = tok;
				t->n_sops++;
			}
			break;
		case O_HELP: rc = cmd_usage(1, segment_usage); goto done;
		default: rc = cmd_usage(0, segment_usage); goto done;
		}
	}
	if (!req.study_uid || req.n_targets == 0 || optind != argc) {
		rc = cmd_usage(0, segment_usage);
		goto done;
	}
	req.targets = tg;
	rc = run_capture(segment_fn, &req);
done:
	free(tg);
	free(sops);
	return rc;
}

static const char modify_usage[] =
	"modify (--patient ID | --study S [--series X [--sop Y]]) --set TAG=VALUE ...\n"
	"  TAG: gggg,eeee or PatientName, PatientID, PatientBirthDate, PatientSex, StudyID, StudyDate,\n"
	"  StudyTime, AccessionNumber, ReferringPhysicianName, StudyDescription, SeriesDescription,\n"
	"  SeriesNumber, Modality, InstanceNumber";

static int cmd_modify(int argc, char **argv)
{
	static const struct option opts[] = { COMMON_OPTS, { "patient", required_argument, NULL, 'p' },
					      { "study", required_argument, NULL, 's' },
					      { "series", required_argument, NULL, 'e' },
					      { "sop", required_argument, NULL, 'i' }, { "set", required_argument, NULL, 'S' },
					      { NULL, 0, NULL, 0 } };
	capture_attr *attrs = calloc((size_t)argc + 1, sizeof(*attrs));
	capture_modify_req req = { 0 };
	int o, rc = 2;

	if (!attrs)
		return 1;
	optind = 1;
	while ((o = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		if (common_opt(o))
			continue;
		switch (o) {
		case 'p': req.patient_id = optarg; break;
		case 's': req.study_uid = optarg; break;
		case 'e': req.series_uid = optarg; break;
		case 'i': req.sop_uid = optarg; break;
		case 'S': if (parse_set(optarg, &attrs[req.n_attrs++]) != 0) goto done; break;
		case O_HELP: rc = cmd_usage(1, modify_usage); goto done;
		default: rc = cmd_usage(0, modify_usage); goto done;
		}
	}
	if (optind != argc || req.n_attrs == 0 || (!req.patient_id == !req.study_uid) ||
	    (req.sop_uid && !req.series_uid) || (req.patient_id && (req.series_uid || req.sop_uid))) {
		rc = cmd_usage(0, modify_usage);
		goto done;
	}
	req.level = req.patient_id ? DH_CC_LEVEL_PATIENT
		    : req.sop_uid  ? DH_CC_LEVEL_INSTANCE
		    : req.series_uid ? DH_CC_LEVEL_SERIES
				     : DH_CC_LEVEL_STUDY;
	req.attrs = attrs;
	rc = run_capture(modify_fn, &req);
done:
	free(attrs);
	return rc;
}

static const char delete_usage[] = "delete --study S [--series X] [--sop Y ...] [SOP_UID...]\n"
				   "  deletes the study, a series of it, or instances of it";

static int cmd_delete(int argc, char **argv)
{
	static const struct option opts[] = { COMMON_OPTS, { "study", required_argument, NULL, 's' },
					      { "series", required_argument, NULL, 'e' },
					      { "sop", required_argument, NULL, 'i' }, { NULL, 0, NULL, 0 } };
	const char **sops = calloc((size_t)argc + 1, sizeof(*sops));
	capture_delete_req req = { 0 };
	size_t n = 0;
	int o, rc = 2;

	if (!sops)
		return 1;
	optind = 1;
	while ((o = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		if (common_opt(o))
			continue;
		switch (o) {
		case 's': req.study_uid = optarg; break;
		case 'e': req.series_uid = optarg; break;
		case 'i': sops[n++] = optarg; break;
		case O_HELP: rc = cmd_usage(1, delete_usage); goto done;
		default: rc = cmd_usage(0, delete_usage); goto done;
		}
	}
	while (optind < argc)
		sops[n++] = argv[optind++];
	if (!req.study_uid) {
		rc = cmd_usage(0, delete_usage);
		goto done;
	}
	req.sops = sops;
	req.n_sops = n;
	rc = run_capture(delete_fn, &req);
done:
	free(sops);
	return rc;
}

static const char fixup_usage[] =
	"fix-uid --study S [--new-uid U] --accession A [--set TAG=VALUE ...]\n"
	"  the study gets a new Study Instance UID and the order's accession number and attributes";

static int cmd_fixup(int argc, char **argv)
{
	static const struct option opts[] = { COMMON_OPTS, { "study", required_argument, NULL, 's' },
					      { "new-uid", required_argument, NULL, 'u' },
					      { "accession", required_argument, NULL, 'a' },
					      { "set", required_argument, NULL, 'S' }, { NULL, 0, NULL, 0 } };
	capture_attr *attrs = calloc((size_t)argc + 1, sizeof(*attrs));
	capture_fixup_req req = { 0 };
	int o, rc = 2;

	if (!attrs)
		return 1;
	optind = 1;
	while ((o = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		if (common_opt(o))
			continue;
		switch (o) {
		case 's': req.study_uid = optarg; break;
		case 'u': req.new_study_uid = optarg; break;
		case 'a': req.accession = optarg; break;
		case 'S': if (parse_set(optarg, &attrs[req.n_attrs++]) != 0) goto done; break;
		case O_HELP: rc = cmd_usage(1, fixup_usage); goto done;
		default: rc = cmd_usage(0, fixup_usage); goto done;
		}
	}
	if (optind != argc || !req.study_uid || !req.accession) {
		rc = cmd_usage(0, fixup_usage);
		goto done;
	}
	req.attrs = attrs;
	rc = run_capture(fixup_fn, &req);
done:
	free(attrs);
	return rc;
}

static void json_text(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static const char status_usage[] = "status [--json]\n"
				   "  ledger objects by forwarding state, cc outbox depth, hub acknowledgements, refusals";

static int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = { COMMON_OPTS, { "json", no_argument, NULL, O_JSON }, { NULL, 0, NULL, 0 } };
	spoke_config cfg;
	capture_status st;
	char err[512];
	PGconn *c = NULL;
	int o, json = 0, rc = 1;

	optind = 1;
	while ((o = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		if (common_opt(o))
			continue;
		switch (o) {
		case O_JSON: json = 1; break;
		case O_HELP: return cmd_usage(1, status_usage);
		default: return cmd_usage(0, status_usage);
		}
	}
	if (optind != argc)
		return cmd_usage(0, status_usage);
	memset(&cfg, 0, sizeof(cfg));
	if (!(c = connect_ledger(&cfg)))
		goto done;
	if (capture_status_get(c, &st, err, sizeof(err)) != 0) {
		fprintf(stderr, "spokectl: %s\n", err);
		goto done;
	}
	if (json) {
		printf("{\"spoke_id\":");
		json_text(cfg.id ? cfg.id : "");
		printf(",\"objects\":{\"pending\":%lld,\"sent\":%lld,\"committed\":%lld,\"failed\":%lld,\"cc\":%lld,"
		       "\"deleted\":%lld},\"outbox\":%lld,\"last_sequence\":%" PRIu64 ",\"acked_through\":%" PRIu64
		       ",\"last_ack_at\":",
		       st.pending, st.sent, st.committed, st.failed, st.cc, st.deleted, st.outbox, st.last_sequence,
		       st.acked_through);
		json_text(st.last_ack_at);
		printf(",\"refused\":%lld,\"last_refusals\":[", st.refused);
		for (int i = 0; i < st.n_last_refusals; i++) {
			printf("%s{\"sequence\":%" PRIu64 ",\"kind\":", i ? "," : "", st.last_refusals[i].sequence);
			json_text(st.last_refusals[i].kind);
			printf(",\"at\":");
			json_text(st.last_refusals[i].at);
			printf(",\"reason\":");
			json_text(st.last_refusals[i].refusal);
			putchar('}');
		}
		printf("]}\n");
	} else {
		printf("spoke_id %s\n", cfg.id ? cfg.id : "");
		printf("pending %lld\nsent %lld\ncommitted %lld\nfailed %lld\ncopies %lld\ndeleted %lld\n", st.pending,
		       st.sent, st.committed, st.failed, st.cc, st.deleted);
		printf("outbox %lld\nlast_sequence %" PRIu64 "\nacked_through %" PRIu64 "\nlast_ack_at %s\nrefused %lld\n",
		       st.outbox, st.last_sequence, st.acked_through, st.last_ack_at[0] ? st.last_ack_at : "-",
		       st.refused);
		for (int i = 0; i < st.n_last_refusals; i++)
			printf("refusal %" PRIu64 " %s %s %s\n", st.last_refusals[i].sequence, st.last_refusals[i].kind,
			       st.last_refusals[i].at, st.last_refusals[i].refusal);
	}
	rc = 0;
done:
	PQfinish(c);
	spoke_config_free(&cfg);
	return rc;
}

static const char ledger_usage[] =
	"ledger [--study S] [--json]\n"
	"  without --study: one line per study (UID, patient ID, patient name, accession, series, instances);\n"
	"  with --study: one line per instance (study, series, SOP, SOP class, tracked attributes,\n"
	"  received SOP UID, forwarding state, MD5), tab-separated";

static int cmd_ledger(int argc, char **argv)
{
	static const struct option opts[] = { COMMON_OPTS, { "json", no_argument, NULL, O_JSON },
					      { "study", required_argument, NULL, 's' }, { NULL, 0, NULL, 0 } };
	spoke_config cfg;
	const char *study = NULL;
	char err[512];
	PGconn *c = NULL;
	int o, json = 0, rc = 1;

	optind = 1;
	while ((o = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		if (common_opt(o))
			continue;
		switch (o) {
		case O_JSON: json = 1; break;
		case 's': study = optarg; break;
		case O_HELP: return cmd_usage(1, ledger_usage);
		default: return cmd_usage(0, ledger_usage);
		}
	}
	if (optind != argc)
		return cmd_usage(0, ledger_usage);
	memset(&cfg, 0, sizeof(cfg));
	if (!(c = connect_ledger(&cfg)))
		goto done;
	if (capture_ledger_print(c, study, json, stdout, err, sizeof(err)) != 0) {
		fprintf(stderr, "spokectl: %s\n", err);
		goto done;
	}
	rc = 0;
done:
	PQfinish(c);
	spoke_config_free(&cfg);
	return rc;
}

static const char keygen_usage[] =
	"keygen --secret-file PATH\n"
	"  writes a new CURVE secret key (mode 0600; an existing file is not replaced) and prints\n"
	"  `public KEY`: the key to put in the hub's [spoke.ID] section";

static int cmd_keygen(int argc, char **argv)
{
	static const struct option opts[] = { { "secret-file", required_argument, NULL, 'f' },
					      { "help", no_argument, NULL, O_HELP }, { NULL, 0, NULL, 0 } };
	const char *path = NULL;
	char pub[41], sec[41], err[512];
	int o;

	optind = 1;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'f': path = optarg; break;
		case O_HELP: return cmd_usage(1, keygen_usage);
		default: return cmd_usage(0, keygen_usage);
		}
	}
	if (!path || optind != argc)
		return cmd_usage(0, keygen_usage);
	if (access(path, F_OK) == 0) {
		fprintf(stderr, "spokectl: %s exists; remove it first to make a new key\n", path);
		return 1;
	}
	if (dh_ccwire_keygen(pub, sec) != 0) {
		fprintf(stderr, "spokectl: cannot make a CURVE key pair (libzmq without CURVE?)\n");
		return 1;
	}
	if (dh_ccwire_save_secret(path, sec, err, sizeof(err)) != 0) {
		fprintf(stderr, "spokectl: %s\n", err);
		return 1;
	}
	printf("public %s\n", pub);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{ "split", cmd_split }, { "merge", cmd_merge }, { "segment", cmd_segment },
		{ "modify", cmd_modify }, { "delete", cmd_delete }, { "fix-uid", cmd_fixup },
		{ "status", cmd_status }, { "ledger", cmd_ledger }, { "keygen", cmd_keygen },
		{ "recall", recall },
	};

	/* -c FILE may come before the command */
	while (argc >= 3 && (strcmp(argv[1], "-c") == 0 || strcmp(argv[1], "--config") == 0)) {
		config_path = argv[2];
		argv[2] = argv[0];
		argc -= 2;
		argv += 2;
	}
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
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[1], cmds[i].name) == 0)
			return cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "spokectl: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
