/*
 * durable.c - the one durable-write helper (see durable.h).
 *
 * The sequence follows PostgreSQL's durable_rename(): the data must be on
 * disk before the rename makes it visible, and the directory entry must be
 * on disk before we tell anyone (a DICOM peer, the database) that the file
 * exists. Every failure returns -1 with errno from the failing call; cleanup
 * on the error path never overwrites that errno.
 */
#include "durable.h"

#include "hash.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <xxhash.h>

int dh_durable_fsync_fd(int fd)
{
	int rc;

	do {
		rc = fsync(fd);
	} while (rc != 0 && errno == EINTR);
	return rc == 0 ? 0 : -1;
}

int dh_durable_fsync_path(const char *path)
{
	int fd, rc, e;

	do {
		fd = open(path, O_RDONLY | O_CLOEXEC);
	} while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return -1;
	rc = dh_durable_fsync_fd(fd);
	e = errno;
	if (close(fd) != 0 && rc == 0) {
		rc = -1;
		e = errno;
	}
	errno = e;
	return rc;
}

int dh_durable_fsync_dir(const char *dir)
{
	int fd;
	int rc = -1;

	if (dir == NULL) {
		errno = EINVAL;
		return -1;
	}
	do {
		fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	} while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return -1;
	/* Some filesystems cannot fsync a directory (EINVAL); PostgreSQL accepts that too. */
	if (dh_durable_fsync_fd(fd) == 0 || errno == EINVAL)
		rc = 0;
	if (rc != 0) {
		int e = errno;

		close(fd);
		errno = e;
	} else if (close(fd) != 0) {
		rc = -1;
	}
	return rc;
}

/* Directory part of path as a malloc'ed string ("." when there is none). */
static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *d;

	if (slash == NULL)
		return strdup(".");
	/* Collapse "a//b" and keep "/" for files in the root. */
	while (slash > path && slash[-1] == '/')
		slash--;
	if (slash == path)
		return strdup("/");
	d = strndup(path, (size_t)(slash - path));
	return d;
}

int dh_durable_rename(const char *from, const char *to)
{
	char *from_dir = NULL;
	char *to_dir = NULL;
	int fd = -1;
	int rc = -1;
	int e = 0;

	if (from == NULL || to == NULL) {
		errno = EINVAL;
		return -1;
	}
	from_dir = dir_of(from);
	to_dir = dir_of(to);
	if (from_dir == NULL || to_dir == NULL)
		goto fail;

	/* The content first: once renamed, the file may be trusted by others. */
	do {
		fd = open(from, O_RDONLY | O_CLOEXEC);
	} while (fd < 0 && errno == EINTR);
	if (fd < 0)
		goto fail;
	if (dh_durable_fsync_fd(fd) != 0)
		goto fail;
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;

	if (rename(from, to) != 0)
		goto fail;
	if (dh_durable_fsync_dir(to_dir) != 0)
		goto fail;
	/* The old entry's removal must also persist, or a crash resurrects it. */
	if (strcmp(from_dir, to_dir) != 0 && dh_durable_fsync_dir(from_dir) != 0)
		goto fail;
	rc = 0;
	goto done;
fail:
	e = errno;
done:
	if (fd >= 0)
		close(fd);
	free(from_dir);
	free(to_dir);
	if (rc != 0)
		errno = e;
	return rc;
}

int dh_durable_mkdirs(const char *path)
{
	char *buf = NULL;
	size_t len;
	int rc = -1;
	int e = 0;

	if (path == NULL || path[0] == '\0') {
		errno = ENOENT;
		return -1;
	}
	buf = strdup(path);
	if (buf == NULL)
		return -1;
	len = strlen(buf);
	/* "a/b/" is "a/b"; "/" stays "/". */
	while (len > 1 && buf[len - 1] == '/')
		buf[--len] = '\0';

	/*
	 * Visit every prefix ending before a '/' and finally the whole path.
	 * pos == len marks the whole path.
	 */
	for (size_t pos = 1; pos <= len; pos++) {
		struct stat st;
		char saved;
		char *parent;

		if (pos < len && (buf[pos] != '/' || buf[pos - 1] == '/'))
			continue;
		saved = buf[pos];
		buf[pos] = '\0';

		if (mkdir(buf, 0750) == 0) {
			/* New entry: persist the directory and its entry in the parent. */
			parent = dir_of(buf);
			if (parent == NULL)
				goto fail;
			if (dh_durable_fsync_dir(buf) != 0 || dh_durable_fsync_dir(parent) != 0) {
				e = errno;
				free(parent);
				errno = e;
				goto fail;
			}
			free(parent);
		} else if (errno == EEXIST) {
			/* Someone may have raced us; only a directory will do. */
			if (stat(buf, &st) != 0)
				goto fail;
			if (!S_ISDIR(st.st_mode)) {
				errno = ENOTDIR;
				goto fail;
			}
		} else {
			goto fail;
		}
		buf[pos] = saved;
	}
	rc = 0;
	goto done;
fail:
	e = errno;
done:
	free(buf);
	if (rc != 0)
		errno = e;
	return rc;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			/* Not expected for regular files; do not spin. */
			errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int dh_durable_write_file(const char *path, const void *buf, size_t len)
{
	static unsigned counter;
	char *tmp = NULL;
	char *dir = NULL;
	size_t tmplen;
	int fd = -1;
	int created = 0;
	int rc = -1;
	int e = 0;

	if (path == NULL || (buf == NULL && len > 0)) {
		errno = EINVAL;
		return -1;
	}
	tmplen = strlen(path) + 64;
	tmp = malloc(tmplen);
	dir = dir_of(path);
	if (tmp == NULL || dir == NULL)
		goto fail;

	/*
	 * The temp file lives beside the target so that rename() is atomic.
	 * pid + counter keep concurrent writers (threads and processes) apart;
	 * O_EXCL plus a few retries covers a stale file from a reused pid.
	 */
	for (int attempt = 0; attempt < 100; attempt++) {
		unsigned n = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);

		snprintf(tmp, tmplen, "%s.tmp.%ld.%u", path, (long)getpid(), n);
		do {
			fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
		} while (fd < 0 && errno == EINTR);
		if (fd >= 0 || errno != EEXIST)
			break;
	}
	if (fd < 0)
		goto fail;
	created = 1;

	if (write_all(fd, buf, len) != 0)
		goto fail;
	if (dh_durable_fsync_fd(fd) != 0)
		goto fail;
	/* close() can report a delayed write error (NFS); it counts. */
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;

	/* Already fsync'ed above, so rename directly instead of dh_durable_rename. */
	if (rename(tmp, path) != 0)
		goto fail;
	created = 0;
	if (dh_durable_fsync_dir(dir) != 0)
		goto fail;
	rc = 0;
	goto done;
fail:
	e = errno;
done:
	if (fd >= 0)
		close(fd);
	if (created)
		unlink(tmp);
	free(tmp);
	free(dir);
	if (rc != 0)
		errno = e;
	return rc;
}

int dh_durable_free_bytes(const char *path, uint64_t *out)
{
	struct statvfs sv;

	if (path == NULL || out == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (statvfs(path, &sv) != 0)
		return -1;
	/* f_bavail, not f_bfree: the root reserve is not ours to spend. */
	*out = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
	return 0;
}

/* Removes the "*.part" files of dir (a write that never reached its rename); returns how many. */
static int remove_parts(const char *dir)
{
	DIR *dp = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!dp)
		return 0;
	while ((e = readdir(dp))) {
		size_t len = strlen(e->d_name);
		if (len > 5 && strcmp(e->d_name + len - 5, ".part") == 0) {
			char p[PATH_MAX];
			if (snprintf(p, sizeof(p), "%s/%s", dir, e->d_name) < (int)sizeof(p) && unlink(p) == 0)
				n++;
		}
	}
	closedir(dp);
	return n;
}

int dh_durable_fanout_prepare(const char *root, int *removed)
{
	char dir[PATH_MAX];
	int n = 0;

	for (int i = 0; i < 256; i++) {
		if (snprintf(dir, sizeof(dir), "%s/%02x", root, i) >= (int)sizeof(dir)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		if (dh_durable_mkdirs(dir) < 0)
			return -1;
		n += remove_parts(dir);
	}
	if (removed)
		*removed = n;
	return 0;
}

static void xxh_hex(XXH3_state_t *x, char out[33])
{
	XXH128_hash_t d = XXH3_128bits_digest(x);
	dh_xxh128_hex(d.high64, d.low64, out);
}

int dh_durable_md5_sync(const char *path, char *md5, long long *size, long from, char *digest_from,
			char *file_digest)
{
	int rc = -1, e = 0, fd = open(path, O_RDONLY | O_CLOEXEC);
	dh_md5 *h = NULL;
	XXH3_state_t *x = NULL, *fx = NULL;
	char buf[65536];

	*size = 0;
	if (digest_from)
		digest_from[0] = '\0';
	if (file_digest)
		file_digest[0] = '\0';
	if (fd < 0 || dh_md5_new(&h) < 0)
		goto done;
	if (digest_from && from >= 0 && (!(x = XXH3_createState()) || XXH3_128bits_reset(x) != XXH_OK)) {
		errno = ENOMEM;
		goto done;
	}
	if (file_digest && (!(fx = XXH3_createState()) || XXH3_128bits_reset(fx) != XXH_OK)) {
		errno = ENOMEM;
		goto done;
	}
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto done;
		if (n == 0)
			break;
		dh_md5_update(h, buf, (size_t)n);
		if (fx)
			XXH3_128bits_update(fx, buf, (size_t)n);
		if (x && *size + n > from) {
			long long skip = from > *size ? from - *size : 0;
			XXH3_128bits_update(x, buf + skip, (size_t)(n - skip));
		}
		*size += n;
	}
	if (dh_md5_final(h, md5) < 0 || dh_durable_fsync_fd(fd) < 0)
		goto done;
	if (x && from <= *size)
		xxh_hex(x, digest_from);
	if (fx)
		xxh_hex(fx, file_digest);
	rc = 0;
done:
	e = errno;
	dh_md5_free(h);
	if (x)
		XXH3_freeState(x);
	if (fx)
		XXH3_freeState(fx);
	if (fd >= 0)
		close(fd);
	errno = e;
	return rc;
}

int dh_durable_rename_synced(const char *from, const char *to)
{
	char *dir = dir_of(to);
	int rc = -1, e = 0;

	if (!dir)
		return -1;
	if (rename(from, to) == 0)
		rc = dh_durable_fsync_dir(dir);
	e = errno;
	free(dir);
	errno = e;
	return rc;
}
