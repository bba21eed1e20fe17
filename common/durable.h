/*
 * durable.h - the one durable-write helper (after PostgreSQL's durable_rename).
 *
 * Every file that must survive a crash (cached objects, TAR volumes, anything
 * else) is written to a temporary name in its final directory, fsync'ed,
 * renamed into place, and the directory is fsync'ed. After a crash either
 * the old state or the complete new file exists, never a torn one.
 *
 * All functions return 0 on success and -1 on failure with errno set (ENOSPC
 * and EDQUOT pass through so callers can answer "out of resources").
 */
#ifndef DH_DURABLE_H
#define DH_DURABLE_H

#include <stddef.h>
#include <stdint.h>

/* fsync of an open descriptor, retrying on EINTR. */
int dh_durable_fsync_fd(int fd);

/* open, fsync, close of the file at path (written by someone else, e.g. a hashing receive). */
int dh_durable_fsync_path(const char *path);

/* fsync of the directory at path. */
int dh_durable_fsync_dir(const char *dir);

/*
 * fsync(from), rename(from, to), fsync(directory of to) and, when the
 * directories differ, fsync(directory of from).
 */
int dh_durable_rename(const char *from, const char *to);

/*
 * Reads the just-written file at path back once, computing its MD5 (hex,
 * DH_MD5_HEX_LEN + 1 bytes) and size, then fsyncs it: the one pass an
 * incoming object needs before it may be renamed into place. With
 * digest_from (may be NULL; 33 bytes) and from >= 0, the same pass also
 * gives the XXH3-128 digest (hex) of the bytes from offset from on (a DICOM
 * file's data set, common/dsdigest.h); digest_from is "" when from is < 0
 * or past the end. With file_digest (may be NULL; 33 bytes), the XXH3-128
 * of the whole file (hex): the cheap check the archiver and the nearline
 * read path use against the bytes as received (hub 012_file_digest.sql).
 */
int dh_durable_md5_sync(const char *path, char *md5, long long *size, long from, char *digest_from,
			char *file_digest);

/*
 * rename(from, to) of a file already fsync'ed (dh_durable_md5_sync), then
 * fsync of the directory of to: dh_durable_rename without the file's own
 * fsync, for the same directory.
 */
int dh_durable_rename_synced(const char *from, const char *to);

/* mkdir -p with mode 0750; fsyncs each directory it created and its parent. */
int dh_durable_mkdirs(const char *path);

/*
 * Writes len bytes to path durably (temp file "<path>.tmp.<pid>.<n>", fsync,
 * rename, fsync dir). The temp file is removed on failure.
 */
int dh_durable_write_file(const char *path, const void *buf, size_t len);

/*
 * Makes the 256 fan-out directories root/00 .. root/ff (an object's file
 * goes into the one named by the first two hex digits of its UUID) and
 * removes the "*.part" files a crash left in them, counting them in
 * *removed (may be NULL). Returns 0, or -1 with errno (a directory could
 * not be made).
 */
int dh_durable_fanout_prepare(const char *root, int *removed);

/*
 * Free bytes available to an unprivileged writer on the filesystem holding
 * path; sets *out and returns 0, or -1 with errno.
 */
int dh_durable_free_bytes(const char *path, uint64_t *out);

#endif
