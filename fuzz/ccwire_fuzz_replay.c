/*
 * ccwire_fuzz_replay.c - mutation test of the cc frame decoder
 * (dh_ccwire_decode) without libFuzzer.
 *
 * usage: ccwire_fuzz_replay [-n ITERATIONS] [-s SEED] [CC_CORPUS_DIR]
 *
 * Seeds are built here: a hello, an ack with refusals, batches whose
 * items are the files of the cc corpus (fuzz/corpus/cc), a ledger request
 * and ledger chunks (hubctl verify). Then ITERATIONS
 * mutants (bit flips, random bytes, truncation, insertion, deletion,
 * corrupted varints) go through the decoder. Every accepted frame must
 * survive re-encoding: the same type, spoke id, items, refusals, request
 * and chunk header and rows. A
 * crash, a sanitizer report or an abort fails the ctest run; the generator
 * is a fixed xorshift, so a failure replays with the same arguments.
 */
#include "ccwire.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SEED (64u * 1024u)
#define MAX_SEEDS 64

static uint64_t rng = 1;
static uint8_t *seeds[MAX_SEEDS];
static size_t seed_len[MAX_SEEDS], n_seeds;
static unsigned long accepted;

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

static void add_seed(uint8_t *buf, size_t len)
{
	if (buf && n_seeds < MAX_SEEDS && len <= MAX_SEED) {
		seeds[n_seeds] = buf;
		seed_len[n_seeds++] = len;
	} else {
		free(buf);
	}
}

/* Decodes; an accepted frame must re-encode to an equivalent frame. */
static void check(const uint8_t *data, size_t len)
{
	dh_ccwire_frame *f = NULL, *g = NULL;
	uint8_t *buf = NULL;
	size_t blen = 0, n;
	char why[256];

	if (dh_ccwire_decode(data, len, &f, why, sizeof(why)) != 0) {
		if (f || !why[0])
			abort();
		return;
	}
	accepted++;
	if (dh_ccwire_frame_type(f) == DH_CCWIRE_LEDGER_REQUEST) {
		if (dh_ccwire_encode_ledger_request(dh_ccwire_frame_spoke_id(f), dh_ccwire_request_id(f),
						    dh_ccwire_request_study(f), &buf, &blen) != 0)
			abort();
	} else if (dh_ccwire_frame_type(f) == DH_CCWIRE_LEDGER_CHUNK) {
		dh_ccwire_chunk_head h = dh_ccwire_chunk_header(f);
		n = dh_ccwire_chunk_count(f);
		dh_ccwire_ledger_row *rows = calloc(n ? n : 1, sizeof(*rows));
		if (!rows)
			abort();
		for (size_t i = 0; i < n; i++)
			rows[i] = dh_ccwire_chunk_row(f, i);
		if (dh_ccwire_encode_ledger_chunk(dh_ccwire_frame_spoke_id(f), &h, rows, n, &buf, &blen) != 0)
			abort();
		free(rows);
	} else if (dh_ccwire_frame_type(f) == DH_CCWIRE_BATCH) {
		n = dh_ccwire_batch_count(f);
		dh_ccwire_item *it = calloc(n ? n : 1, sizeof(*it));
		if (!it)
			abort();
		for (size_t i = 0; i < n; i++)
			it[i] = dh_ccwire_batch_item(f, i);
		if (dh_ccwire_encode_batch(dh_ccwire_frame_spoke_id(f), it, n, &buf, &blen) != 0)
			abort();
		free(it);
	} else {
		n = dh_ccwire_ack_refused_count(f);
		dh_ccwire_refusal *r = calloc(n ? n : 1, sizeof(*r));
		if (!r)
			abort();
		for (size_t i = 0; i < n; i++)
			r[i] = dh_ccwire_ack_refused(f, i);
		if (dh_ccwire_encode_ack(dh_ccwire_frame_spoke_id(f), dh_ccwire_ack_through(f), r, n, &buf, &blen) != 0)
			abort();
		free(r);
	}
	if (dh_ccwire_decode(buf, blen, &g, why, sizeof(why)) != 0 ||
	    dh_ccwire_frame_type(g) != dh_ccwire_frame_type(f) ||
	    strcmp(dh_ccwire_frame_spoke_id(g), dh_ccwire_frame_spoke_id(f)) != 0 ||
	    dh_ccwire_batch_count(g) != dh_ccwire_batch_count(f) ||
	    dh_ccwire_ack_through(g) != dh_ccwire_ack_through(f) ||
	    dh_ccwire_ack_refused_count(g) != dh_ccwire_ack_refused_count(f) ||
	    dh_ccwire_request_id(g) != dh_ccwire_request_id(f) ||
	    strcmp(dh_ccwire_request_study(g), dh_ccwire_request_study(f)) != 0 ||
	    dh_ccwire_chunk_count(g) != dh_ccwire_chunk_count(f) ||
	    dh_ccwire_chunk_header(g).total != dh_ccwire_chunk_header(f).total ||
	    dh_ccwire_chunk_header(g).offset != dh_ccwire_chunk_header(f).offset ||
	    dh_ccwire_chunk_header(g).last != dh_ccwire_chunk_header(f).last ||
	    strcmp(dh_ccwire_chunk_header(g).error, dh_ccwire_chunk_header(f).error) != 0)
		abort();
	for (size_t i = 0; i < dh_ccwire_chunk_count(f); i++) {
		dh_ccwire_ledger_row a = dh_ccwire_chunk_row(f, i), b = dh_ccwire_chunk_row(g, i);
		if (strcmp(a.sop_uid, b.sop_uid) || strcmp(a.digest, b.digest) || strcmp(a.patient_name, b.patient_name) ||
		    strcmp(a.transfer_syntax, b.transfer_syntax) || a.deleted != b.deleted)
			abort();
	}
	for (size_t i = 0; i < dh_ccwire_batch_count(f); i++) {
		dh_ccwire_item a = dh_ccwire_batch_item(f, i), b = dh_ccwire_batch_item(g, i);
		if (a.len != b.len || (a.len && memcmp(a.data, b.data, a.len) != 0))
			abort();
	}
	dh_ccwire_frame_free(g);
	dh_ccwire_frame_free(f);
	free(buf);
}

static size_t mutate(uint8_t *buf, size_t cap)
{
	size_t k = below(n_seeds), len = seed_len[k] < cap ? seed_len[k] : cap;
	int rounds = 1 + (int)below(4);

	memcpy(buf, seeds[k], len);
	for (int r = 0; r < rounds; r++) {
		size_t pos = below(len ? len : 1), m;
		switch (below(6)) {
		case 0:
			if (len)
				buf[pos] ^= (uint8_t)(1u << below(8));
			break;
		case 1:
			if (len)
				buf[pos] = (uint8_t)rnd();
			break;
		case 2:
			len = below(len + 1);
			break;
		case 3:
			m = 1 + below(16);
			if (len + m <= cap) {
				memmove(buf + pos + m, buf + pos, len - pos);
				for (size_t i = 0; i < m; i++)
					buf[pos + i] = (uint8_t)rnd();
				len += m;
			}
			break;
		case 4:
			if (len) {
				m = 1 + below(len - pos);
				memmove(buf + pos, buf + pos + m, len - pos - m);
				len -= m;
			}
			break;
		default: {
			static const uint8_t v[] = { 0x00, 0x01, 0x7f, 0x80, 0xff };
			if (len)
				buf[pos] = v[below(sizeof(v))];
			break;
		}
		}
	}
	return len;
}

int main(int argc, char **argv)
{
	long iterations = 20000;
	const char *dir = NULL;
	dh_ccwire_item items[8];
	uint8_t *ccs[8], *buf;
	size_t n_cc = 0, len;
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
			iterations = strtol(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc)
			rng = strtoull(argv[++i], NULL, 10);
		else
			dir = argv[i];
	}
	if (!rng)
		rng = 1;
	if (dir) {
		DIR *d = opendir(dir);
		struct dirent *e;
		while (d && (e = readdir(d)) && n_cc < 8) {
			char path[4096];
			FILE *f;
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			if (!(f = fopen(path, "rb")))
				continue;
			ccs[n_cc] = malloc(MAX_SEED / 8);
			items[n_cc].len = fread(ccs[n_cc], 1, MAX_SEED / 8, f);
			items[n_cc].data = ccs[n_cc];
			n_cc++;
			fclose(f);
		}
		if (d)
			closedir(d);
	}
	dh_ccwire_refusal refs[2] = { { 3, "0d7c6f0a-1b2c-4d5e-8f90-123456789abc", "owned by SITE2", 1 },
				      { 4, "", "waiting for objects", 0 } };
	if (dh_ccwire_encode_batch("SITE1", NULL, 0, &buf, &len) == 0)
		add_seed(buf, len);
	if (dh_ccwire_encode_ack("SITE1", 42, refs, 2, &buf, &len) == 0)
		add_seed(buf, len);
	for (size_t k = 1; k <= n_cc; k++)
		if (dh_ccwire_encode_batch("SITE-1.a", items, k, &buf, &len) == 0)
			add_seed(buf, len);
	{
		dh_ccwire_ledger_row rows[3] = { { 0 } };
		dh_ccwire_chunk_head h1 = { 5, 10, 2, 0, "" }, h2 = { 5, 0, 0, 1, "reading the ledger: gone" };
		rows[0].sop_uid = "1.2.3.4.5";
		rows[0].series_uid = "1.2.3.4";
		rows[0].study_uid = "1.2.3";
		rows[0].digest = "0123456789abcdef0123456789abcdef";
		rows[0].patient_name = "DOE^JOHN";
		rows[0].transfer_syntax = "1.2.840.10008.1.2.1";
		rows[1].sop_uid = "1.2.3.4.6";
		rows[1].deleted = 1;
		rows[2].instance_number = "7";
		if (dh_ccwire_encode_ledger_request("SITE1", 5, "1.2.3", &buf, &len) == 0)
			add_seed(buf, len);
		if (dh_ccwire_encode_ledger_chunk("SITE1", &h1, rows, 3, &buf, &len) == 0)
			add_seed(buf, len);
		if (dh_ccwire_encode_ledger_chunk("SITE1", &h2, NULL, 0, &buf, &len) == 0)
			add_seed(buf, len);
	}
	if (n_seeds == 0)
		return 2;
	for (size_t k = 0; k < n_seeds; k++)
		check(seeds[k], seed_len[k]);
	check(NULL, 0);
	buf = malloc(2 * MAX_SEED);
	if (!buf)
		return 2;
	for (long it = 0; it < iterations; it++) {
		size_t l = mutate(buf, 2 * MAX_SEED);
		uint8_t *exact = malloc(l ? l : 1); /* exact size: ASan sees overreads */
		if (!exact)
			return 2;
		memcpy(exact, buf, l);
		check(exact, l);
		free(exact);
	}
	printf("ccwire_fuzz_replay: %zu seeds, %ld mutations: ok (%lu frames accepted)\n", n_seeds, iterations,
	       accepted);
	free(buf);
	for (size_t k = 0; k < n_seeds; k++)
		free(seeds[k]);
	for (size_t k = 0; k < n_cc; k++)
		free(ccs[k]);
	return 0;
}
