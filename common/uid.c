/*
 * uid.c - DICOM UID generation and syntax checks (see uid.h).
 *
 * A "2.25." UID is the UUID read as one unsigned 128-bit integer, written
 * in decimal (at most 39 digits, so the UID has at most 44 characters). The
 * conversion is schoolbook long division of four 32-bit limbs by 10^9 in
 * plain C11, so it needs no compiler extension such as __int128.
 */
#include "uid.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

/* Fills buf with kernel randomness; getrandom may be interrupted or short. */
static int random_bytes(unsigned char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = getrandom(buf, len, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* 16 random bytes with the version (4) and variant (10xx) bits of RFC 4122. */
static int random_uuid(unsigned char u[16])
{
	if (random_bytes(u, 16) != 0)
		return -1;
	u[6] = (unsigned char)((u[6] & 0x0f) | 0x40);
	u[8] = (unsigned char)((u[8] & 0x3f) | 0x80);
	return 0;
}

/* Decimal form of the big-endian 128-bit number u; out holds >= 40 bytes. */
static void u128_to_decimal(const unsigned char u[16], char *out)
{
	uint32_t limb[4];
	uint32_t chunks[5]; /* base-10^9 digits, least significant first */
	int nchunks = 0;
	int nonzero;
	char *p = out;

	for (size_t i = 0; i < 4; i++) {
		const unsigned char *b = u + 4 * i;

		limb[i] = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
			  (uint32_t)b[3];
	}

	do {
		uint64_t rem = 0;

		nonzero = 0;
		for (int i = 0; i < 4; i++) {
			uint64_t cur = rem << 32 | limb[i];

			limb[i] = (uint32_t)(cur / 1000000000u);
			rem = cur % 1000000000u;
			nonzero |= limb[i] != 0;
		}
		chunks[nchunks++] = (uint32_t)rem;
	} while (nonzero);

	/* The most significant chunk without padding, the rest as 9 digits. */
	p += sprintf(p, "%u", (unsigned)chunks[nchunks - 1]);
	for (int i = nchunks - 2; i >= 0; i--)
		p += sprintf(p, "%09u", (unsigned)chunks[i]);
}

int dh_uid_generate(char out[DH_UID_MAX + 1])
{
	unsigned char u[16];
	char digits[48];

	if (out == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (random_uuid(u) != 0)
		return -1;
	u128_to_decimal(u, digits);
	snprintf(out, DH_UID_MAX + 1, "2.25.%s", digits);
	return 0;
}

int dh_uuid_generate(char out[37])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char u[16];
	char *p = out;

	if (out == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (random_uuid(u) != 0)
		return -1;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = hex[u[i] >> 4];
		*p++ = hex[u[i] & 0x0f];
	}
	*p = '\0';
	return 0;
}

int dh_uid_valid(const char *s)
{
	size_t len;
	size_t comp = 0;     /* length of the current component */
	char first = '\0';   /* first digit of the current component */

	if (s == NULL)
		return 0;
	len = strlen(s);
	if (len == 0 || len > DH_UID_MAX)
		return 0;
	for (size_t i = 0; i <= len; i++) {
		char c = s[i];

		if (c == '.' || c == '\0') {
			if (comp == 0)
				return 0; /* empty component: leading, trailing or double dot */
			if (comp > 1 && first == '0')
				return 0; /* "02": DICOM PS3.5 9.1 forbids leading zeros */
			comp = 0;
			continue;
		}
		if (c < '0' || c > '9')
			return 0;
		if (comp == 0)
			first = c;
		comp++;
	}
	return 1;
}
