/*
 * hash.c - MD5 of files and buffers through OpenSSL's EVP interface (see hash.h).
 *
 * EVP rather than the deprecated MD5_* functions, which OpenSSL 3 warns
 * about. OpenSSL failures have no errno of their own; they are reported as
 * EIO (ENOMEM for a failed context allocation) so callers have one error
 * convention. Files are read in 1 MiB blocks: large enough that a DICOM
 * object of a few hundred MB costs few system calls, small enough to keep
 * off the stack (the buffer is heap-allocated).
 */
#include "hash.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define READ_BLOCK ((size_t)1 << 20)

struct dh_md5 {
	EVP_MD_CTX *ctx;
	int finished; /* dh_md5_final ran; further updates are refused */
};

static void to_hex(const unsigned char *d, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 0x0f];
	}
	out[2 * n] = '\0';
}

int dh_md5_new(dh_md5 **out)
{
	dh_md5 *h = NULL;

	if (out == NULL) {
		errno = EINVAL;
		return -1;
	}
	*out = NULL;
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return -1;
	h->ctx = EVP_MD_CTX_new();
	if (h->ctx == NULL) {
		free(h);
		errno = ENOMEM;
		return -1;
	}
	if (EVP_DigestInit_ex(h->ctx, EVP_md5(), NULL) != 1) {
		dh_md5_free(h);
		errno = EIO;
		return -1;
	}
	*out = h;
	return 0;
}

int dh_md5_update(dh_md5 *h, const void *buf, size_t len)
{
	if (h == NULL || h->finished || (buf == NULL && len > 0)) {
		errno = EINVAL;
		return -1;
	}
	if (len == 0)
		return 0;
	if (EVP_DigestUpdate(h->ctx, buf, len) != 1) {
		errno = EIO;
		return -1;
	}
	return 0;
}

int dh_md5_final(dh_md5 *h, char out[DH_MD5_HEX_LEN + 1])
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (h == NULL || out == NULL || h->finished) {
		errno = EINVAL;
		return -1;
	}
	h->finished = 1;
	if (EVP_DigestFinal_ex(h->ctx, digest, &n) != 1 || n * 2 != DH_MD5_HEX_LEN) {
		errno = EIO;
		return -1;
	}
	to_hex(digest, n, out);
	return 0;
}

void dh_md5_free(dh_md5 *h)
{
	if (h == NULL)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

int dh_md5_buffer(const void *buf, size_t len, char out[DH_MD5_HEX_LEN + 1])
{
	dh_md5 *h = NULL;
	int rc = -1;
	int e = 0;

	if (dh_md5_new(&h) != 0)
		goto fail;
	if (dh_md5_update(h, buf, len) != 0)
		goto fail;
	if (dh_md5_final(h, out) != 0)
		goto fail;
	rc = 0;
	goto done;
fail:
	e = errno;
done:
	dh_md5_free(h);
	if (rc != 0)
		errno = e;
	return rc;
}

int dh_md5_file(const char *path, char out[DH_MD5_HEX_LEN + 1])
{
	dh_md5 *h = NULL;
	unsigned char *block = NULL;
	int fd = -1;
	int rc = -1;
	int e = 0;

	if (path == NULL || out == NULL) {
		errno = EINVAL;
		return -1;
	}
	do {
		fd = open(path, O_RDONLY | O_CLOEXEC);
	} while (fd < 0 && errno == EINTR);
	if (fd < 0)
		goto fail;
	block = malloc(READ_BLOCK);
	if (block == NULL)
		goto fail;
	if (dh_md5_new(&h) != 0)
		goto fail;
	for (;;) {
		ssize_t n = read(fd, block, READ_BLOCK);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		if (n == 0)
			break;
		if (dh_md5_update(h, block, (size_t)n) != 0)
			goto fail;
	}
	if (dh_md5_final(h, out) != 0)
		goto fail;
	rc = 0;
	goto done;
fail:
	e = errno;
done:
	if (fd >= 0)
		close(fd);
	free(block);
	dh_md5_free(h);
	if (rc != 0)
		errno = e;
	return rc;
}

void dh_xxh128_hex(unsigned long long high64, unsigned long long low64, char out[33])
{
	snprintf(out, 33, "%016llx%016llx", high64, low64);
}
