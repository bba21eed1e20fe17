/*
 * filedigest - prints "md5 file_digest dataset_digest size" of a DICOM file
 * as the hub's read-back helpers compute them (dh_durable_md5_sync from
 * dh_dsdigest_offset): the reference the integration tests hold the digests
 * hubd records while it receives against (tests/integration/test_store.sh).
 */
#include "dsdigest.h"
#include "durable.h"
#include "hash.h"

#include <stdio.h>

int main(int argc, char **argv)
{
	char md5[DH_MD5_HEX_LEN + 1], ds[DH_DSDIGEST_HEX_LEN + 1], fd[DH_DSDIGEST_HEX_LEN + 1];
	long long size = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: filedigest FILE\n");
		return 2;
	}
	if (dh_durable_md5_sync(argv[1], md5, &size, dh_dsdigest_offset(argv[1]), ds, fd) < 0) {
		perror(argv[1]);
		return 1;
	}
	printf("%s %s %s %lld\n", md5, fd, ds, size);
	return 0;
}
