/*
 * dsmd5.c - MD5 of a DICOM file's data set (see dsmd5.h).
 */
#include "dsmd5.h"

#include "dcm.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

int dh_dsmd5_file(const char *path, char out[DH_MD5_HEX_LEN + 1])
{
	long off = dh_dcm_file_dataset_offset(path);
	dh_md5 *h = NULL;
	char buf[65536];
	int fd = -1, rc = -1;

	out[0] = '\0';
	if (off < 0 || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || lseek(fd, off, SEEK_SET) != off ||
	    dh_md5_new(&h) < 0)
		goto done;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto done;
		if (n == 0)
			break;
		if (dh_md5_update(h, buf, (size_t)n) < 0)
			goto done;
	}
	rc = dh_md5_final(h, out);
done:
	dh_md5_free(h);
	if (fd >= 0)
		close(fd);
	if (rc != 0)
		out[0] = '\0';
	return rc;
}
