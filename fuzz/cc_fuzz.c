/*
 * cc_fuzz.c - libFuzzer target for the cc decoder (common/cc.c).
 *
 * dh_cc_decode must be total: any bytes give a valid cc or a rejection with
 * a reason, never a crash, a leak or a read outside the input. A cc that
 * decodes must also survive a round trip: its encoding decodes again, and
 * encoding that gives the same bytes (the canonical form is a fixed point;
 * the input itself need not be canonical: field order, unknown fields and
 * over-long varints are legal protobuf). Printing runs too, because
 * hubctl prints whatever the hub accepted.
 *
 * Built with -fsanitize=fuzzer by clang (DH_FUZZ), and with any compiler into
 * cc_fuzz_replay, which replays the corpus and mutations of it under ctest.
 */
#include "cc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Inputs that decoded to a valid cc (read by cc_fuzz_replay's summary). */
unsigned long dh_cc_fuzz_accepted;

static FILE *sink(void)
{
	static FILE *f;

	if (!f)
		f = fopen("/dev/null", "w");
	return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	dh_cc *cc = NULL, *again = NULL;
	uint8_t *b1 = NULL, *b2 = NULL;
	size_t l1 = 0, l2 = 0;
	char why[256];

	if (dh_cc_decode(data, size, &cc, why, sizeof(why)) != 0) {
		if (why[0] == '\0')
			abort(); /* a rejection must say why */
		goto done;
	}
	if (dh_cc_encode(cc, &b1, &l1) != 0)
		abort(); /* a decoded cc is valid, so it must encode */
	if (dh_cc_decode(b1, l1, &again, why, sizeof(why)) != 0) {
		fprintf(stderr, "re-decode failed: %s\n", why);
		abort();
	}
	if (dh_cc_encode(again, &b2, &l2) != 0 || l1 != l2 || memcmp(b1, b2, l1) != 0)
		abort(); /* round trip changed the cc */
	dh_cc_fuzz_accepted++;
	if (sink()) {
		dh_cc_print_text(cc, sink());
		dh_cc_print_json(cc, sink());
	}
done:
	free(b1);
	free(b2);
	dh_cc_free(cc);
	dh_cc_free(again);
	return 0;
}
