/*
 * ccload.c - bench/cc.sh's change generator: records a stream of change
 * contexts at a spoke through the capture C API (spoke/capture.h), exactly
 * as spokectl would, but without a process per change.
 *
 *   ccload -c spoked.conf attr  --study UID --count N [--rate R]
 *       N study-level ATTRIBUTE_CHANGEs (Study Description "bench <i>")
 *   ccload -c spoked.conf split --study A --other B --sop SOP --count N [--rate R]
 *       N SPLITs moving SOP from A to B and back again
 *
 * --rate R paces the captures at R per second (0: as fast as the database
 * commits). Prints the number recorded and the capture rate.
 */
#include "capture.h"
#include "cc.h"
#include "db.h"
#include "spoke_config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: ccload -c CONF attr --study UID --count N [--rate R]\n"
		   "       ccload -c CONF split --study A --other B --sop SOP --count N [--rate R]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' }, { "study", required_argument, NULL, 's' },
		{ "other", required_argument, NULL, 'o' },  { "sop", required_argument, NULL, 'p' },
		{ "count", required_argument, NULL, 'n' },  { "rate", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },         { NULL, 0, NULL, 0 }
	};
	const char *conf = NULL, *study = NULL, *other = NULL, *sop = NULL;
	long count = 0;
	double rate = 0;
	int o, rc = 1;
	spoke_config cfg;
	char err[512];
	PGconn *c = NULL;

	while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (o) {
		case 'c': conf = optarg; break;
		case 's': study = optarg; break;
		case 'o': other = optarg; break;
		case 'p': sop = optarg; break;
		case 'n': count = atol(optarg); break;
		case 'r': rate = atof(optarg); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc - 1 || !study || count <= 0) {
		usage(stderr);
		return 2;
	}
	int split = strcmp(argv[optind], "split") == 0;
	if (!split && strcmp(argv[optind], "attr") != 0) {
		usage(stderr);
		return 2;
	}
	if (split && (!other || !sop)) {
		usage(stderr);
		return 2;
	}
	if (spoke_config_load(&cfg, conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "ccload: %s\n", err);
		return 1;
	}
	c = PQconnectdb(cfg.conninfo);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "ccload: %s", PQerrorMessage(c));
		goto done;
	}
	const capture_who who = { "ccload", "benchmark" };
	double t0 = now_s();
	for (long i = 0; i < count; i++) {
		if (rate > 0) {
			double due = t0 + (double)i / rate, t = now_s();
			if (due > t) {
				struct timespec ts = { (time_t)(due - t), (long)((due - t - (double)(time_t)(due - t)) * 1e9) };
				nanosleep(&ts, NULL);
			}
		}
		capture_result res;
		memset(&res, 0, sizeof(res));
		int r;
		if (split) {
			const char *from = (i % 2) ? other : study, *to = (i % 2) ? study : other;
			const char *sops[1] = { sop };
			capture_split_req q = { .study_uid = from, .sops = sops, .n_sops = 1, .target_study_uid = to };
			r = capture_split(c, &cfg, &who, &q, &res, err, sizeof(err));
		} else {
			char value[64];
			snprintf(value, sizeof(value), "bench %ld", i);
			capture_attr a = { 0x00081030u, value };
			capture_modify_req q = { .level = DH_CC_LEVEL_STUDY, .study_uid = study, .attrs = &a, .n_attrs = 1 };
			r = capture_modify(c, &cfg, &who, &q, &res, err, sizeof(err));
		}
		capture_result_free(&res);
		if (r < 0) {
			fprintf(stderr, "ccload: change %ld: %s\n", i, err);
			goto done;
		}
	}
	double dt = now_s() - t0;
	printf("recorded %ld changes in %.3f s (%.0f/s)\n", count, dt, (double)count / dt);
	rc = 0;
done:
	PQfinish(c);
	spoke_config_free(&cfg);
	return rc;
}
