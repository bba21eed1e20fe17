/*
 * mpps_fuzz_replay.c - mutation test of what the MPPS SCP does with the
 * bytes of an N-CREATE/N-SET data set (hub/mpps/mpps.c, common/dcm.cc), without
 * libFuzzer.
 *
 * usage: mpps_fuzz_replay [-n ITERATIONS] [-s SEED]
 *
 * Seeds are built here: an N-CREATE data set with sequences and a final
 * N-SET, encoded in Implicit VR Little Endian as the SCP receives them.
 * Each mutant (bit flips, random bytes, truncation, insertion, deletion,
 * corrupted lengths) goes the way a received data set goes: parse; check
 * as an N-CREATE; apply as an N-SET to a stored step and check; encode the
 * result and parse it again (it must parse: it is what the index keeps).
 * A crash, a sanitizer report or an abort fails the ctest run; the
 * generator is a fixed xorshift, so a failure replays with the same
 * arguments.
 */
#include "mpps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T(g, e) DH_TAG(0x##g, 0x##e)

static uint64_t rng = 1;
static unsigned long parsed, created, set_ok;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static size_t below(size_t n)
{
	return n ? (size_t)(rnd() % n) : 0;
}

static dh_dcm_ds *make_create(void)
{
	dh_dcm_ds *ds = NULL;
	dh_dcm_ds_new(&ds);
	dh_dcm_ds_put(ds, T(0008, 0005), "ISO_IR 100");
	dh_dcm_ds_put(ds, T(0008, 0060), "CT");
	dh_dcm_ds_put(ds, T(0010, 0010), "Doe^Jane");
	dh_dcm_ds_put(ds, T(0010, 0020), "PID1");
	dh_dcm_ds_put(ds, T(0040, 0241), "CT01");
	dh_dcm_ds_put(ds, T(0040, 0244), "20261124");
	dh_dcm_ds_put(ds, T(0040, 0245), "101500");
	dh_dcm_ds_put(ds, T(0040, 0252), "IN PROGRESS");
	dh_dcm_ds_put(ds, T(0040, 0253), "PPS1");
	dh_dcm_ds_put_path(ds, "(0040,0270)[0].(0020,000D)", "1.2.3.4");
	dh_dcm_ds_put_path(ds, "(0040,0270)[0].(0008,0050)", "ACC1");
	dh_dcm_ds_put_path(ds, "(0040,0270)[0].(0040,0008)[0].(0008,0100)", "CODE");
	dh_dcm_ds_put_path(ds, "(0040,0340)", "");
	return ds;
}

static dh_dcm_ds *make_final(void)
{
	dh_dcm_ds *ds = NULL;
	dh_dcm_ds_new(&ds);
	dh_dcm_ds_put(ds, T(0040, 0250), "20261124");
	dh_dcm_ds_put(ds, T(0040, 0251), "103000");
	dh_dcm_ds_put(ds, T(0040, 0252), "COMPLETED");
	dh_dcm_ds_put_path(ds, "(0040,0340)[0].(0020,000E)", "1.2.3.4.1");
	dh_dcm_ds_put_path(ds, "(0040,0340)[0].(0008,1140)[0].(0008,1155)", "1.2.3.4.1.1");
	return ds;
}

static void mutate(unsigned char *b, size_t *len, size_t cap)
{
	int n = 1 + (int)below(4);
	for (int k = 0; k < n && *len > 0; k++) {
		size_t at = below(*len);
		switch (below(6)) {
		case 0: b[at] ^= (unsigned char)(1u << below(8)); break;
		case 1: b[at] = (unsigned char)rnd(); break;
		case 2: *len = at; break; /* truncate */
		case 3:                   /* insert a byte */
			if (*len < cap) {
				memmove(b + at + 1, b + at, *len - at);
				b[at] = (unsigned char)rnd();
				(*len)++;
			}
			break;
		case 4: /* delete a byte */
			memmove(b + at, b + at + 1, *len - at - 1);
			(*len)--;
			break;
		default: /* a length field: big, odd or undefined */
			if (at + 4 <= *len) {
				static const uint32_t odd[] = { 0xFFFFFFFFu, 0x7FFFFFFFu, 0xFFFFFFF0u, 1, 3, 0 };
				uint32_t v = odd[below(6)];
				memcpy(b + at, &v, 4);
			}
			break;
		}
	}
}

static void check(const unsigned char *data, size_t len, const dh_dcm_ds *stored)
{
	dh_dcm_ds *ds = NULL, *merged = NULL, *again = NULL;
	unsigned char *enc = NULL;
	size_t elen = 0;
	char why[160], err[256];
	if (dh_dcm_ds_parse(data, len, DH_TS_IMPLICIT_LE, &ds, err, sizeof(err)) != DH_DCM_OK)
		return;
	parsed++;
	why[0] = '\0';
	unsigned int st = mpps_check_create(ds, why, sizeof(why));
	if (st != MPPS_SUCCESS && !why[0])
		abort(); /* a refusal always says why */
	created += st == MPPS_SUCCESS;
	/* as an N-SET on the stored step: merge through its bytes, as the SCP does */
	if (dh_dcm_ds_encode(stored, DH_TS_IMPLICIT_LE, &enc, &elen, err, sizeof(err)) != DH_DCM_OK ||
	    dh_dcm_ds_parse(enc, elen, DH_TS_IMPLICIT_LE, &merged, err, sizeof(err)) != DH_DCM_OK)
		abort();
	free(enc);
	enc = NULL;
	if (dh_dcm_ds_merge(merged, ds) == DH_DCM_OK) {
		why[0] = '\0';
		st = mpps_check_set(ds, MPPS_IN_PROGRESS, merged, why, sizeof(why));
		if (st != MPPS_SUCCESS && !why[0])
			abort();
		if (st == MPPS_SUCCESS) {
			set_ok++;
			/* what the index would keep must be readable again */
			if (dh_dcm_ds_encode(merged, DH_TS_IMPLICIT_LE, &enc, &elen, err, sizeof(err)) == DH_DCM_OK &&
			    dh_dcm_ds_parse(enc, elen, DH_TS_IMPLICIT_LE, &again, err, sizeof(err)) != DH_DCM_OK) {
				fprintf(stderr, "merged step does not parse again: %s\n", err);
				abort();
			}
			(void)dh_dcm_ds_to_utf8(merged);
		}
	}
	free(enc);
	dh_dcm_ds_free(again);
	dh_dcm_ds_free(merged);
	dh_dcm_ds_free(ds);
}

int main(int argc, char **argv)
{
	unsigned long iterations = 20000;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "-n") == 0)
			iterations = strtoul(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "-s") == 0)
			rng = strtoull(argv[i + 1], NULL, 10) | 1;
	}
	dh_dcm_global_init(0);
	dh_dcm_ds *create = make_create(), *final = make_final();
	unsigned char *seed[2] = { NULL, NULL };
	size_t seed_len[2] = { 0, 0 };
	char err[256];
	if (dh_dcm_ds_encode(create, NULL, &seed[0], &seed_len[0], err, sizeof(err)) != DH_DCM_OK ||
	    dh_dcm_ds_encode(final, NULL, &seed[1], &seed_len[1], err, sizeof(err)) != DH_DCM_OK) {
		fprintf(stderr, "mpps_fuzz_replay: %s\n", err);
		return 1;
	}
	/* the seeds themselves: a valid N-CREATE and a valid final N-SET */
	check(seed[0], seed_len[0], create);
	check(seed[1], seed_len[1], create);
	if (parsed != 2 || created != 1 || set_ok != 1) {
		fprintf(stderr, "mpps_fuzz_replay: seeds not handled as expected (%lu %lu %lu)\n", parsed, created,
			set_ok);
		return 1;
	}
	size_t cap = seed_len[0] + seed_len[1] + 64;
	unsigned char *buf = malloc(cap);
	if (!buf)
		return 1;
	for (unsigned long i = 0; i < iterations; i++) {
		int s = (int)below(2);
		size_t len = seed_len[s];
		memcpy(buf, seed[s], len);
		mutate(buf, &len, cap);
		check(buf, len, create);
	}
	printf("mpps_fuzz_replay: %lu mutants, %lu parsed, %lu valid N-CREATE, %lu valid N-SET\n", iterations, parsed,
	       created, set_ok);
	free(buf);
	free(seed[0]);
	free(seed[1]);
	dh_dcm_ds_free(create);
	dh_dcm_ds_free(final);
	return 0;
}
