/*
 * dsdigest.c - where a DICOM file's data set starts (see dsdigest.h).
 */
#include "dsdigest.h"

#include "dcm.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

long dh_dsdigest_offset(const char *path)
{
	unsigned char b[144];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? pread(fd, b, sizeof(b), 0) : -1;

	if (fd >= 0)
		close(fd);
	if (n < 0)
		return -1;
	/* preamble, "DICM", then (0002,0000) UL 4 <group length> in Explicit VR Little Endian */
	if (n == (ssize_t)sizeof(b) && memcmp(b + 128, "DICM", 4) == 0 &&
	    memcmp(b + 132, "\x02\x00\x00\x00UL\x04\x00", 8) == 0) {
		unsigned long glen = b[140] | (unsigned long)b[141] << 8 | (unsigned long)b[142] << 16 |
				     (unsigned long)b[143] << 24;
		if (glen < (1UL << 20))
			return 144 + (long)glen;
	}
	return dh_dcm_file_dataset_offset(path);
}
