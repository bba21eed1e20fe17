/*
 * cc_fuzz_replay.c - runs the cc fuzz target without libFuzzer.
 *
 * usage: cc_fuzz_replay [-n ITERATIONS] [-s SEED] DIR|FILE...
 *
 * Every file given (or found in a given directory) is fed to
 * LLVMFuzzerTestOneInput as is, then ITERATIONS (default 20000) mutants of
 * randomly chosen files: bit flips, random bytes, truncation, insertion,
 * deletion, duplicated chunks, splices of two files and corrupted varints
 * (protobuf lengths and tags). The generator is a fixed xorshift seeded
 * with SEED (default 1), so a failure replays exactly with the same
 * arguments (under a debugger, or with -n lowered to bisect). Any crash
 * or sanitizer report fails the ctest run (the target aborts on
 * round-trip errors). This keeps the decoder honest on compilers without
 * libFuzzer; the real campaign is fuzz/run.sh.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
extern unsigned long dh_cc_fuzz_accepted; /* cc_fuzz.c */

#define REPLAY_MAX_INPUT (64u * 1024u)

typedef struct {
	uint8_t *data;
	size_t len;
} input;

static input *inputs;
static size_t n_inputs;
static uint64_t rng_state;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static size_t below(size_t n)
{
	return n ? (size_t)(rnd() % n) : 0;
}

static int load_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t len;
	input *grown;
	int rc = -1;

	if (!f)
		goto done;
	buf = malloc(REPLAY_MAX_INPUT);
	if (!buf)
		goto done;
	len = fread(buf, 1, REPLAY_MAX_INPUT, f);
	grown = realloc(inputs, (n_inputs + 1) * sizeof(*inputs));
	if (!grown)
		goto done;
	inputs = grown;
	inputs[n_inputs].data = buf;
	inputs[n_inputs].len = len;
	n_inputs++;
	buf = NULL; /* owned by inputs */
	rc = 0;
done:
	if (f)
		fclose(f);
	free(buf);
	return rc;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Loads a file, or every regular file of a directory in name order. */
static int load(const char *path)
{
	struct stat st;
	DIR *d;
	struct dirent *e;
	char **names = NULL;
	size_t n = 0;
	int rc = 0;

	if (stat(path, &st) != 0)
		return -1;
	if (!S_ISDIR(st.st_mode))
		return load_file(path);
	if (!(d = opendir(path)))
		return -1;
	while ((e = readdir(d))) {
		char **grown;

		if (e->d_name[0] == '.')
			continue;
		grown = realloc(names, (n + 1) * sizeof(*names));
		if (!grown)
			break;
		names = grown;
		if (asprintf(&names[n], "%s/%s", path, e->d_name) < 0)
			break;
		n++;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_name);
	for (size_t i = 0; i < n; i++) {
		if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode) && load_file(names[i]) != 0)
			rc = -1;
		free(names[i]);
	}
	free(names);
	return rc;
}

/* One to four stacked mutations of a copy of a random input into buf. */
static size_t mutate(uint8_t *buf, size_t cap)
{
	const input *in = &inputs[below(n_inputs)];
	size_t len = in->len < cap ? in->len : cap;
	int rounds = 1 + (int)below(4);

	memcpy(buf, in->data, len);
	for (int r = 0; r < rounds; r++) {
		size_t pos = below(len ? len : 1), k;

		switch (below(9)) {
		case 0: /* bit flip */
			if (len)
				buf[pos] ^= (uint8_t)(1u << below(8));
			break;
		case 1: /* random byte */
			if (len)
				buf[pos] = (uint8_t)rnd();
			break;
		case 2: /* truncate */
			len = below(len + 1);
			break;
		case 3: /* insert random bytes */
			k = 1 + below(16);
			if (len + k <= cap) {
				memmove(buf + pos + k, buf + pos, len - pos);
				for (size_t i = 0; i < k; i++)
					buf[pos + i] = (uint8_t)rnd();
				len += k;
			}
			break;
		case 4: /* delete a range */
			if (len) {
				k = 1 + below(len - pos);
				memmove(buf + pos, buf + pos + k, len - pos - k);
				len -= k;
			}
			break;
		case 5: /* duplicate a chunk (repeated fields, oneof twice) */
			k = 1 + below(64);
			if (pos + k <= len && len + k <= cap) {
				memmove(buf + pos + k, buf + pos, len - pos);
				len += k;
			}
			break;
		case 6: { /* splice: tail of another input */
			const input *o = &inputs[below(n_inputs)];
			size_t from = below(o->len + 1);

			k = o->len - from;
			if (pos + k > cap)
				k = cap - pos;
			memcpy(buf + pos, o->data + from, k);
			len = pos + k;
			break;
		}
		case 7: /* corrupt a length/varint: small, huge or off by one */
			if (len) {
				static const uint8_t v[] = { 0x00, 0x01, 0x7f, 0x80, 0xff };
				if (below(2))
					buf[pos] = v[below(sizeof(v))];
				else
					buf[pos] = (uint8_t)(buf[pos] + (below(2) ? 1 : -1));
			}
			break;
		default: /* overwrite with a wire tag of a random field and type */
			if (len)
				buf[pos] = (uint8_t)((below(20) << 3) | below(6));
			break;
		}
	}
	return len;
}

int main(int argc, char **argv)
{
	long iterations = 20000;
	unsigned long long seed = 1;
	uint8_t *buf;
	int i;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
			iterations = strtol(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc)
			seed = strtoull(argv[++i], NULL, 10);
		else {
			fprintf(stderr, "usage: %s [-n ITERATIONS] [-s SEED] DIR|FILE...\n",
				argv[0]);
			return 2;
		}
	}
	for (; i < argc; i++)
		if (load(argv[i]) != 0) {
			fprintf(stderr, "cc_fuzz_replay: cannot read %s\n", argv[i]);
			return 2;
		}
	if (n_inputs == 0) {
		fprintf(stderr, "cc_fuzz_replay: no inputs\n");
		return 2;
	}
	rng_state = seed ? seed : 1;
	for (size_t k = 0; k < n_inputs; k++)
		LLVMFuzzerTestOneInput(inputs[k].data, inputs[k].len);
	/* Edge cases no corpus holds. */
	LLVMFuzzerTestOneInput(NULL, 0);
	buf = malloc(2 * REPLAY_MAX_INPUT);
	if (!buf)
		return 2;
	for (long it = 0; it < iterations; it++) {
		size_t len = mutate(buf, 2 * REPLAY_MAX_INPUT);
		/* Exact-size heap copy so ASan sees any read past the end. */
		uint8_t *exact = malloc(len ? len : 1);

		if (!exact)
			return 2;
		memcpy(exact, buf, len);
		LLVMFuzzerTestOneInput(exact, len);
		free(exact);
	}
	printf("cc_fuzz_replay: %zu inputs, %ld mutations, seed %llu: ok (%lu decoded valid)\n",
	       n_inputs, iterations, seed, dh_cc_fuzz_accepted);
	free(buf);
	for (size_t k = 0; k < n_inputs; k++)
		free(inputs[k].data);
	free(inputs);
	return 0;
}
