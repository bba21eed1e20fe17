/*
 * nearline.c - the nearline archive worker: packs stable series from the
 * online cache into TAR files on the [volume.*] volumes, evicts archived
 * objects from the cache, and reads objects wherever they are.
 *
 * NOTES
 * Order of work for one series, chosen so that the index only ever names
 * complete, fsync'ed TARs and eviction only takes objects of verified ones:
 *   1. one transaction takes the series' advisory lock (7243003, the lock
 *      every change to a series takes) and selects the objects not yet in
 *      any TAR; the lock is held until the outcome is recorded;
 *   2. the TAR is written to <volume>/<xx>/<series>.<id>.tar.tmp (ustar:
 *      <sop uid>.dcm per object, then MANIFEST.md5 in `md5sum -c` format
 *      with the index's MD5s). A reader thread reads the cache files into a
 *      ring of chunks and checks each against its file_digest (XXH3-128
 *      from ingest; its MD5 when the digest is '', objects stored before
 *      hub 012) while this thread writes them: the copy is proven to be the
 *      bytes received without an MD5 pass. libarchive (block size 0) hands
 *      its output to tar_out_write, which hashes the TAR as it is written
 *      (tar_file.digest) and starts writeback as it goes; then fsync, and
 *      the file is renamed into place (directory fsync'ed);
 *   3. tar_file (verified_at NULL) and the instances' tar columns (one
 *      UPDATE over arrays) are written and committed.
 * Two series are packed at once (archive_pass, pass_helper), each under its
 * own series lock and connection.
 * A crash before 3 leaves a temp file or an unindexed TAR: both are removed
 * at start-up, so index and volumes agree. A TAR is never rewritten: later
 * objects of an archived series go into a TAR of their own.
 *
 * Verification is off the archiving path: after each archiving pass every
 * TAR with verified_at NULL (this pass's, or left by a crash or restart) is
 * read back from the device (its clean pages dropped first) and every
 * member checked; then verified_at is set. A TAR that fails leaves the
 * index under the series lock (its objects, still cached, become
 * unarchived) and the volume; the next pass archives them again.
 *
 * Eviction removes cache files of objects in verified TARs, oldest first,
 * from the high watermark down to the low one. Each member is re-read from
 * its TAR and checked before the index forgets the cache file, so the cache
 * copy is never the last one. The index is updated first and the file unlinked
 * after commit: a crash in between only leaves an unindexed cache file.
 * Several instance rows may name one cache file (copies made by a SEGMENT
 * cc): the file is unlinked only with the last row that names it, decided
 * in the same statement that forgets it (the applier copies rows under the
 * series lock taken here too). The archiver packs each row as its own
 * member, reading the shared file once per row.
 */
#include "nearline.h"

#include <archive.h>

#include "durable.h"
#include "hash.h"
#include "log.h"
#include "uid.h"

#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>
#if defined(__x86_64__) && defined(__has_include)
#if __has_include(<xxh_x86dispatch.h>)
/* libxxhash's run-time dispatch: AVX2 where the CPU has it (~4x SSE2), same digests */
#include <xxh_x86dispatch.h>
#endif
#endif

#define MIB (1024LL * 1024LL)
#define TAR_BLOCK 512LL
#define COPY_BUF (1 << 20)
/* archiving hashes and writes in chunks that stay in the CPU cache between the two hashes and the write */
#define CHUNK (256 * 1024)
/* written TAR bytes handed to writeback at a time, so the final fsync finds little left to do */
#define WRITEBACK_CHUNK (8LL * MIB)
#define MAX_SKIPPED 256

struct archiver {
	hub *h;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	atomic_int stop;
	/* series whose cache files do not match the index: not retried until restart */
	long long skipped[MAX_SKIPPED];
	int n_skipped;
	/*
	 * Two series are packed at once (archive_pass): while one waits for its
	 * fsync and commit the other writes. vmu guards skipped and reserved,
	 * the bytes of TARs being written per configured volume, so that the two
	 * never overfill a volume between them.
	 */
	pthread_mutex_t vmu;
	long long *reserved;
};

typedef struct {
	const char *pk;
	const char *sop_uid;
	const char *file_path;
	long long size;
	const char *md5;
	const char *digest; /* instance.file_digest: XXH3-128 hex, "" for objects stored before hub 012 */
	long long offset; /* data offset in the TAR */
} member;

static long long round_block(long long n)
{
	return (n + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK;
}

/* ------------------------------------------------------------ reading */

static void xxh_hex(XXH3_state_t *x, char out[DH_MD5_HEX_LEN + 1])
{
	XXH128_hash_t d = XXH3_128bits_digest(x);
	dh_xxh128_hex(d.high64, d.low64, out);
}

/* XXH3-128 of a buffer, hex in the format of instance.file_digest. */
static void xxh_buffer_hex(const void *buf, size_t len, char out[DH_MD5_HEX_LEN + 1])
{
	XXH128_hash_t d = XXH3_128bits(buf, len);
	dh_xxh128_hex(d.high64, d.low64, out);
}

/*
 * Reads len bytes at offset of fd into buf (cap bytes, reused) chunk by
 * chunk and compares them with digest (XXH3-128) when it is not empty,
 * else with md5. Returns 0, 1 when they differ, -1 on I/O errors (message
 * in err; what names the file).
 */
static int check_fd_range(int fd, const char *what, off_t offset, size_t len, const char *md5, const char *digest,
			  unsigned char *buf, size_t cap, char *err, size_t errlen)
{
	int rc = -1, use_digest = digest && digest[0];
	dh_md5 *h = NULL;
	XXH3_state_t *x = NULL;
	char got[DH_MD5_HEX_LEN + 1];
	size_t done_n = 0;

	if (use_digest ? !(x = XXH3_createState()) || XXH3_128bits_reset(x) != XXH_OK : dh_md5_new(&h) < 0) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	while (done_n < len) {
		size_t want = len - done_n < cap ? len - done_n : cap;
		ssize_t n = pread(fd, buf, want, offset + (off_t)done_n);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "cannot read %s at %lld: %s", what, (long long)(offset + (off_t)done_n),
				 n == 0 ? "unexpected end of file" : strerror(errno));
			goto done;
		}
		if (use_digest)
			XXH3_128bits_update(x, buf, (size_t)n);
		else
			dh_md5_update(h, buf, (size_t)n);
		done_n += (size_t)n;
	}
	if (use_digest)
		xxh_hex(x, got);
	else
		dh_md5_final(h, got);
	rc = strcmp(got, use_digest ? digest : md5) != 0 ? 1 : 0;
	if (rc == 1)
		snprintf(err, errlen, "%s mismatch in %s at offset %lld: %s, index says %s",
			 use_digest ? "XXH3-128" : "MD5", what, (long long)offset, got, use_digest ? digest : md5);
done:
	dh_md5_free(h);
	if (x)
		XXH3_freeState(x);
	return rc;
}

int archive_check_range(const char *path, off_t offset, size_t len, const char *md5,
			char md5_out[33], char *err, size_t errlen)
{
	int rc = -1, fd = -1;
	unsigned char *buf = NULL;
	dh_md5 *h = NULL;
	char got[DH_MD5_HEX_LEN + 1];
	size_t done_n = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		goto done;
	}
	if (!(buf = malloc(COPY_BUF)) || dh_md5_new(&h) < 0) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	while (done_n < len) {
		size_t want = len - done_n < COPY_BUF ? len - done_n : COPY_BUF;
		ssize_t n = pread(fd, buf, want, offset + (off_t)done_n);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "cannot read %s at %lld: %s", path, (long long)(offset + (off_t)done_n),
				 n == 0 ? "unexpected end of file" : strerror(errno));
			goto done;
		}
		dh_md5_update(h, buf, (size_t)n);
		done_n += (size_t)n;
	}
	dh_md5_final(h, got);
	if (md5_out)
		memcpy(md5_out, got, sizeof(got));
	rc = (md5 && strcmp(got, md5) != 0) ? 1 : 0;
	if (rc == 1)
		snprintf(err, errlen, "MD5 mismatch in %s at offset %lld: %s, index says %s", path,
			 (long long)offset, got, md5);
done:
	if (fd >= 0)
		close(fd);
	free(buf);
	dh_md5_free(h);
	return rc;
}

int archive_digest_file(const char *path, char out[33])
{
	int rc = -1, e = 0, fd = open(path, O_RDONLY | O_CLOEXEC);
	unsigned char *buf = malloc(COPY_BUF);
	XXH3_state_t *x = XXH3_createState();
	if (fd < 0 || !buf || !x || XXH3_128bits_reset(x) != XXH_OK) {
		e = fd < 0 ? errno : ENOMEM;
		goto done;
	}
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	for (;;) {
		ssize_t n = read(fd, buf, COPY_BUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			e = errno;
			goto done;
		}
		if (n == 0)
			break;
		XXH3_128bits_update(x, buf, (size_t)n);
	}
	xxh_hex(x, out);
	rc = 0;
done:
	if (fd >= 0)
		close(fd);
	free(buf);
	if (x)
		XXH3_freeState(x);
	if (rc < 0)
		errno = e;
	return rc;
}

int archive_check_member(const char *path, off_t offset, size_t len, const char *md5, const char *digest,
			 char *err, size_t errlen)
{
	int rc = -1, fd = open(path, O_RDONLY | O_CLOEXEC);
	unsigned char *buf = NULL;
	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		goto done;
	}
	if (!(buf = malloc(COPY_BUF))) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	rc = check_fd_range(fd, path, offset, len, md5, digest, buf, COPY_BUF, err, errlen);
done:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

int archive_read(const archive_loc *loc, unsigned char **buf, size_t *len, char *err, size_t errlen)
{
	int rc = -1, fd = -1, use_digest = loc->digest[0] && !loc->verify_md5;
	unsigned char *b = NULL;
	char got[DH_MD5_HEX_LEN + 1];
	size_t n_done = 0;

	*buf = NULL;
	*len = 0;
	if (loc->avail == AVAIL_OFFLINE) {
		snprintf(err, errlen, "object is on volume %s, which is offline", loc->volume);
		goto done;
	}
	if (loc->avail == AVAIL_UNAVAILABLE) {
		snprintf(err, errlen, "object is neither in the cache nor in any TAR");
		goto done;
	}
	fd = open(loc->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", loc->path, strerror(errno));
		goto done;
	}
	if (!(b = malloc(loc->size ? loc->size : 1))) {
		snprintf(err, errlen, "out of memory (%zu bytes)", loc->size);
		goto done;
	}
	/* one positioned read at the recorded offset: no scan of the TAR */
	while (n_done < loc->size) {
		ssize_t n = pread(fd, b + n_done, loc->size - n_done, loc->offset + (off_t)n_done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "cannot read %s at %lld: %s", loc->path,
				 (long long)(loc->offset + (off_t)n_done), n == 0 ? "unexpected end of file" : strerror(errno));
			goto done;
		}
		n_done += (size_t)n;
	}
	/* the digest proves the bytes are the ones received as well as their MD5 does, ~20x faster */
	if (use_digest) {
		xxh_buffer_hex(b, loc->size, got);
	} else if (dh_md5_buffer(b, loc->size, got) < 0) {
		snprintf(err, errlen, "cannot compute MD5");
		goto done;
	}
	if (strcmp(got, use_digest ? loc->digest : loc->md5) != 0) {
		snprintf(err, errlen, "object in %s at offset %lld is damaged: %s %s, index says %s", loc->path,
			 (long long)loc->offset, use_digest ? "XXH3-128" : "MD5", got,
			 use_digest ? loc->digest : loc->md5);
		goto done;
	}
	*buf = b;
	*len = loc->size;
	b = NULL;
	rc = 0;
done:
	if (fd >= 0)
		close(fd);
	free(b);
	return rc;
}

void archive_prefetch(const archive_loc *loc)
{
	if (loc->avail != AVAIL_NEARLINE)
		return;
	int fd = open(loc->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return; /* archive_read will say why */
	(void)posix_fadvise(fd, loc->offset, (off_t)loc->size, POSIX_FADV_WILLNEED);
	close(fd);
}

/* The volume's directory: the configuration's, else the one last recorded. */
static const char *volume_dir(const hub_config *cfg, const char *name, const char *db_path)
{
	const hub_volume *v = hub_config_volume(cfg, name);
	return v && v->path && v->path[0] ? v->path : db_path;
}

int archive_loc_from_row(const hub *h, const PGresult *r, int row, int col, archive_loc *loc)
{
	memset(loc, 0, sizeof(*loc));
	loc->verify_md5 = h->cfg.archive_read_verify == HUB_READ_VERIFY_MD5;
	snprintf(loc->md5, sizeof(loc->md5), "%s", PQgetvalue(r, row, col + 2));
	snprintf(loc->digest, sizeof(loc->digest), "%s", PQgetvalue(r, row, col + 9));
	if (!PQgetisnull(r, row, col + 0)) {
		loc->avail = AVAIL_ONLINE;
		snprintf(loc->path, sizeof(loc->path), "%s/%s", h->cfg.cache_dir, PQgetvalue(r, row, col + 0));
		loc->offset = 0;
		loc->size = (size_t)strtoull(PQgetvalue(r, row, col + 1), NULL, 10);
	} else if (!PQgetisnull(r, row, col + 5)) {
		loc->avail = strcmp(PQgetvalue(r, row, col + 7), "online") == 0 ? AVAIL_NEARLINE : AVAIL_OFFLINE;
		snprintf(loc->volume, sizeof(loc->volume), "%s", PQgetvalue(r, row, col + 8));
		snprintf(loc->path, sizeof(loc->path), "%s/%s",
			 volume_dir(&h->cfg, PQgetvalue(r, row, col + 8), PQgetvalue(r, row, col + 6)),
			 PQgetvalue(r, row, col + 5));
		loc->offset = (off_t)strtoll(PQgetvalue(r, row, col + 3), NULL, 10);
		loc->size = (size_t)strtoull(PQgetvalue(r, row, col + 4), NULL, 10);
	} else {
		loc->avail = AVAIL_UNAVAILABLE;
	}
	return loc->avail;
}

int archive_locate(hub *h, PGconn *c, const char *instance_pk, archive_loc *loc, dh_db_err *err)
{
	int rc = -1;
	const char *p[1] = { instance_pk };
	PGresult *r = dh_db_query(c, "SELECT " ARCHIVE_LOC_COLS " FROM instance i " ARCHIVE_LOC_JOINS
				  " WHERE i.pk = $1::bigint", 1, p, err);
	memset(loc, 0, sizeof(*loc));
	if (!r)
		goto done;
	if (PQntuples(r) != 1) {
		err->sqlstate[0] = '\0';
		snprintf(err->msg, sizeof(err->msg), "instance %s not found", instance_pk);
		goto done;
	}
	archive_loc_from_row(h, r, 0, 0, loc);
	rc = 0;
done:
	PQclear(r);
	return rc;
}

#define AVAIL_RANK                                                                                  \
	"CASE WHEN i.file_path IS NOT NULL THEN 1 WHEN EXISTS (SELECT 1 FROM tar_file avt "          \
	"JOIN volume avv ON avv.pk = avt.volume_fk WHERE avt.pk = i.tar_fk AND avv.state = 'online') " \
	"THEN 2 ELSE 3 END"

const char *archive_avail_sql(void)
{
	return "((ARRAY['ONLINE','NEARLINE','OFFLINE'])[" AVAIL_RANK "])";
}

const char *archive_avail_agg_sql(void)
{
	return "((ARRAY['ONLINE','NEARLINE','OFFLINE'])[max(" AVAIL_RANK ")])";
}

/* ------------------------------------------------------------ volumes */

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcmp(s + a - b, suffix) == 0;
}

/*
 * Removes temp files and TARs the index does not know (a crash between the
 * rename and the commit) from one volume. Returns 0 or -1 (DB error).
 */
static int cleanup_volume(PGconn *c, const hub_volume *v)
{
	int rc = -1, removed = 0;
	DIR *top = NULL;
	struct dirent *e;
	dh_db_err err;

	if (!(top = opendir(v->path))) {
		DH_WARN("volume %s: cannot open %s: %s", v->name, v->path, strerror(errno));
		rc = 0;
		goto done;
	}
	while ((e = readdir(top))) {
		if (e->d_name[0] == '.' || strlen(e->d_name) != 2)
			continue;
		char dir[1200];
		snprintf(dir, sizeof(dir), "%s/%s", v->path, e->d_name);
		DIR *d = opendir(dir);
		if (!d)
			continue;
		int here = 0;
		struct dirent *f;
		while ((f = readdir(d))) {
			char rel[600], abs[1900];
			snprintf(rel, sizeof(rel), "%s/%s", e->d_name, f->d_name);
			snprintf(abs, sizeof(abs), "%s/%s", v->path, rel);
			if (ends_with(f->d_name, ".tmp")) {
				if (unlink(abs) == 0)
					here++;
			} else if (ends_with(f->d_name, ".tar")) {
				const char *p[2] = { v->name, rel };
				PGresult *r = dh_db_query(c, "SELECT 1 FROM tar_file t JOIN volume v ON v.pk = t.volume_fk "
							     "WHERE v.name = $1 AND t.path = $2", 2, p, &err);
				if (!r) {
					closedir(d);
					DH_ERROR("volume %s: %s", v->name, err.msg);
					goto done;
				}
				if (PQntuples(r) == 0 && unlink(abs) == 0) {
					DH_INFO("volume %s: removed %s, written by an earlier run but never indexed",
						v->name, rel);
					here++;
				}
				PQclear(r);
			}
		}
		closedir(d);
		if (here)
			dh_durable_fsync_dir(dir);
		removed += here;
	}
	if (removed)
		DH_INFO("volume %s: removed %d unfinished file(s) left by an earlier run", v->name, removed);
	rc = 0;
done:
	if (top)
		closedir(top);
	return rc;
}

/* Records every configured volume (state stays as the DB has it) and cleans it. */
static int prepare_volumes(archiver *ar, PGconn *c)
{
	const hub_config *cfg = &ar->h->cfg;
	dh_db_err err;
	for (int i = 0; i < cfg->n_volumes; i++) {
		const hub_volume *v = &cfg->volumes[i];
		const char *p[2] = { v->name, v->path };
		if (dh_durable_mkdirs(v->path) < 0)
			DH_WARN("volume %s: cannot create %s: %s", v->name, v->path, strerror(errno));
		if (dh_db_exec(c, "INSERT INTO volume (name, path) VALUES ($1, $2) ON CONFLICT (name) "
				  "DO UPDATE SET path = EXCLUDED.path", 2, p, &err) < 0) {
			DH_ERROR("volume %s: %s", v->name, err.msg);
			return -1;
		}
		if (cleanup_volume(c, v) < 0)
			return -1;
	}
	return 0;
}

/*
 * Picks the first configured volume that is online, not closed and has room
 * for need bytes; closes full ones on the way. Returns its index in cfg or
 * -1; *vpk receives its pk.
 */
static int choose_volume(archiver *ar, PGconn *c, long long need, char vpk[32])
{
	const hub_config *cfg = &ar->h->cfg;
	dh_db_err err;
	int chosen = -1;
	pthread_mutex_lock(&ar->vmu);
	for (int i = 0; i < cfg->n_volumes && chosen < 0; i++) {
		const hub_volume *v = &cfg->volumes[i];
		const char *p[1] = { v->name };
		PGresult *r = dh_db_query(c, "SELECT v.pk, v.state, v.closed, "
					     "(SELECT COALESCE(sum(size), 0) FROM tar_file WHERE volume_fk = v.pk) "
					     "FROM volume v WHERE v.name = $1", 1, p, &err);
		if (!r || PQntuples(r) != 1) {
			PQclear(r);
			continue;
		}
		int online = strcmp(PQgetvalue(r, 0, 1), "online") == 0;
		int closed = strcmp(PQgetvalue(r, 0, 2), "t") == 0;
		long long used = strtoll(PQgetvalue(r, 0, 3), NULL, 10);
		snprintf(vpk, 32, "%s", PQgetvalue(r, 0, 0));
		PQclear(r);
		if (!online || closed)
			continue;
		/* what is indexed there plus the TAR the other packer may be writing there */
		used += ar->reserved[i];
		if (v->capacity_mb > 0 && used + need > v->capacity_mb * MIB) {
			if (used > 0) {
				const char *q[1] = { vpk };
				DH_INFO("volume %s is full (%lld of %ld MiB used): closed", v->name, used / MIB,
					v->capacity_mb);
				dh_db_exec(c, "UPDATE volume SET closed = true, updated_at = now() WHERE pk = $1::bigint",
					   1, q, &err);
			} else {
				DH_WARN("volume %s (%ld MiB) cannot hold a TAR of %lld bytes", v->name, v->capacity_mb,
					need);
			}
			continue;
		}
		ar->reserved[i] += need;
		chosen = i;
	}
	pthread_mutex_unlock(&ar->vmu);
	return chosen;
}

/* Gives back what choose_volume reserved on volume vi once the TAR is indexed or abandoned. */
static void release_volume(archiver *ar, int vi, long long need)
{
	pthread_mutex_lock(&ar->vmu);
	ar->reserved[vi] -= need;
	pthread_mutex_unlock(&ar->vmu);
}

/* ------------------------------------------------------------ packing */

/* Where libarchive's output goes: the TAR file, hashed on the way (the TAR's own checksum, no second pass). */
typedef struct {
	int fd;
	XXH3_state_t *x;
	long long written, queued; /* bytes written; bytes handed to writeback */
} tar_out;

static la_ssize_t tar_out_write(struct archive *a, void *user, const void *buf, size_t len)
{
	tar_out *o = user;
	size_t done_n = 0;
	XXH3_128bits_update(o->x, buf, len);
	while (done_n < len) {
		ssize_t n = write(o->fd, (const char *)buf + done_n, len - done_n);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			archive_set_error(a, errno, "write: %s", strerror(errno));
			return -1;
		}
		done_n += (size_t)n;
	}
	o->written += (long long)len;
	if (o->written - o->queued >= WRITEBACK_CHUNK) {
		/* start writeback now: the disk works while we copy, the fsync at the end waits for less */
		(void)sync_file_range(o->fd, o->queued, o->written - o->queued, SYNC_FILE_RANGE_WRITE);
		o->queued = o->written;
	}
	return (la_ssize_t)len;
}

/*
 * The reader half of write_tar: a thread that reads the cache files in
 * order into a ring of chunks and checks each file as it goes (file_digest,
 * or MD5 for objects stored before hub 012), while write_tar's thread
 * writes the previous chunks into the TAR. On two cores reading and writing
 * overlap instead of adding up.
 */
#define RING 8
#define PREFETCH 8 /* cache files asked ahead of the one being read */

enum { CHUNK_EMPTY = 0, CHUNK_READY };
enum { SRC_OK = 0, SRC_MISMATCH = 1 };

typedef struct {
	unsigned char *buf; /* CHUNK bytes */
	size_t len;
	int member;         /* index in m */
	int last;           /* the member's last chunk: status and got are set */
	int status;         /* SRC_* */
	int state;          /* CHUNK_* */
	char got[DH_MD5_HEX_LEN + 1];
} chunk;

typedef struct {
	const char *cache_dir;
	const member *m;
	int n;
	chunk ring[RING];
	long long filled, taken; /* chunks produced / consumed so far */
	int stop;                /* the writer gave up */
	pthread_mutex_t mu;
	pthread_cond_t cv;
} feeder;

/* Waits for the next free chunk. Returns it, or NULL when the writer stopped. */
static chunk *feeder_slot(feeder *f)
{
	chunk *c = NULL;
	pthread_mutex_lock(&f->mu);
	while (!f->stop && f->filled - f->taken >= RING)
		pthread_cond_wait(&f->cv, &f->mu);
	if (!f->stop)
		c = &f->ring[f->filled % RING];
	pthread_mutex_unlock(&f->mu);
	return c;
}

static void feeder_publish(feeder *f, chunk *c)
{
	pthread_mutex_lock(&f->mu);
	c->state = CHUNK_READY;
	f->filled++;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

/* Starts reading a cache file into the page cache (asynchronous; a cold cache is read ahead). */
static void prefetch_source(const char *cache_dir, const member *mi)
{
	char src[1200];
	snprintf(src, sizeof(src), "%s/%s", cache_dir, mi->file_path);
	int fd = open(src, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		(void)posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
		close(fd);
	}
}

/* Reads up to want bytes (fewer only at end of file). Returns the count or -1. */
static ssize_t read_full(int fd, unsigned char *buf, size_t want)
{
	size_t got = 0;
	while (got < want) {
		ssize_t r = read(fd, buf + got, want - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

static void *feeder_main(void *arg)
{
	feeder *f = arg;
	XXH3_state_t *x = XXH3_createState();
	dh_log_set_context("archiver");
	/* keep the device busy: the files PREFETCH ahead are being read while this one is */
	for (int i = 0; i < f->n && i < PREFETCH; i++)
		prefetch_source(f->cache_dir, &f->m[i]);
	for (int i = 0; i < f->n; i++) {
		const member *mi = &f->m[i];
		int use_digest = mi->digest[0] != '\0', fd, status = SRC_OK;
		if (i + PREFETCH < f->n)
			prefetch_source(f->cache_dir, &f->m[i + PREFETCH]);
		long long copied = 0;
		dh_md5 *h = NULL;
		char src[1200], got[DH_MD5_HEX_LEN + 1] = "";
		struct stat st;
		snprintf(src, sizeof(src), "%s/%s", f->cache_dir, mi->file_path);
		fd = open(src, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			DH_ERROR("cannot open %s: %s", src, strerror(errno));
			status = SRC_MISMATCH;
		} else if (fstat(fd, &st) < 0 || st.st_size != mi->size) {
			DH_ERROR("cache file %s does not match the index (%lld bytes, index %lld)", src,
				 (long long)st.st_size, mi->size);
			status = SRC_MISMATCH;
		} else {
			(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
			if (!x || (use_digest ? XXH3_128bits_reset(x) != XXH_OK : dh_md5_new(&h) < 0))
				status = SRC_MISMATCH;
		}
		for (;;) {
			chunk *c = feeder_slot(f);
			if (!c) {
				dh_md5_free(h);
				if (fd >= 0)
					close(fd);
				goto out;
			}
			c->member = i;
			c->len = 0;
			if (status == SRC_OK && copied < mi->size) {
				size_t want = mi->size - copied < CHUNK ? (size_t)(mi->size - copied) : CHUNK;
				ssize_t r = read_full(fd, c->buf, want);
				if (r != (ssize_t)want) {
					DH_ERROR("cannot read %s: %s", src, r < 0 ? strerror(errno) : "file shorter than indexed");
					status = SRC_MISMATCH;
				} else {
					if (use_digest)
						XXH3_128bits_update(x, c->buf, want);
					else
						dh_md5_update(h, c->buf, want);
					c->len = want;
					copied += (long long)want;
				}
			}
			c->last = status != SRC_OK || copied == mi->size;
			if (c->last && status == SRC_OK) {
				if (use_digest)
					xxh_hex(x, got);
				else
					dh_md5_final(h, got);
				if (strcmp(got, use_digest ? mi->digest : mi->md5) != 0) {
					DH_ERROR("cache file %s does not match the index (%s %s, index %s)", src,
						 use_digest ? "XXH3-128" : "MD5", got, use_digest ? mi->digest : mi->md5);
					status = SRC_MISMATCH;
				}
			}
			c->status = status;
			memcpy(c->got, got, sizeof(got));
			int last = c->last;
			feeder_publish(f, c);
			if (last)
				break;
		}
		dh_md5_free(h);
		if (fd >= 0)
			close(fd);
		if (status != SRC_OK)
			break; /* the writer abandons this TAR */
	}
out:
	if (x)
		XXH3_freeState(x);
	return NULL;
}

/* The writer's next chunk, once the reader published it (a failed member ends with a chunk saying so). */
static chunk *feeder_take(feeder *f)
{
	chunk *c;
	pthread_mutex_lock(&f->mu);
	c = &f->ring[f->taken % RING];
	while (c->state != CHUNK_READY)
		pthread_cond_wait(&f->cv, &f->mu);
	pthread_mutex_unlock(&f->mu);
	return c;
}

static void feeder_release(feeder *f, chunk *c)
{
	pthread_mutex_lock(&f->mu);
	c->state = CHUNK_EMPTY;
	f->taken++;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

/*
 * Writes the members into a ustar file at tmp (created exclusively) and
 * fsyncs it. Each cache file is checked as it is copied (feeder_main). The
 * manifest lists the index's MD5s (the MD5 of the bytes received; the check
 * proves the bytes copied are those bytes). Fills each member's data offset
 * and digest_out with the XXH3-128 of the whole file as written. Returns 0,
 * 1 when a cache file does not match the index, -1 on I/O errors.
 */
static int write_tar(const char *cache_dir, const char *tmp, member *m, int n, char digest_out[DH_MD5_HEX_LEN + 1])
{
	int rc = -1, fd = -1, started = 0;
	struct archive *a = NULL;
	struct archive_entry *e = NULL;
	char *manifest = NULL;
	size_t mlen = 0, mcap = 0;
	long long pos = 0;
	time_t now = time(NULL);
	tar_out out = { -1, NULL, 0, 0 };
	feeder f;
	pthread_t reader;

	memset(&f, 0, sizeof(f));
	f.cache_dir = cache_dir;
	f.m = m;
	f.n = n;
	pthread_mutex_init(&f.mu, NULL);
	pthread_cond_init(&f.cv, NULL);
	for (int k = 0; k < RING; k++)
		if (!(f.ring[k].buf = malloc(CHUNK)))
			goto done;
	if (!(out.x = XXH3_createState()) || XXH3_128bits_reset(out.x) != XXH_OK)
		goto done;
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	if (fd < 0) {
		DH_ERROR("cannot create %s: %s", tmp, strerror(errno));
		goto done;
	}
	out.fd = fd;
	a = archive_write_new();
	/* block size 0: libarchive hands every header and data chunk straight to tar_out_write, no re-blocking copy */
	if (!a || archive_write_set_format_ustar(a) != ARCHIVE_OK || archive_write_add_filter_none(a) != ARCHIVE_OK ||
	    archive_write_set_bytes_per_block(a, 0) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
	    archive_write_open(a, &out, NULL, tar_out_write, NULL) != ARCHIVE_OK) {
		DH_ERROR("libarchive: %s", a ? archive_error_string(a) : "out of memory");
		goto done;
	}
	for (int i = 0; i < n; i++)
		if (strlen(m[i].sop_uid) > 90) {
			DH_ERROR("SOP Instance UID too long for a TAR member name: %s", m[i].sop_uid);
			goto done;
		}
	if (n > 0) {
		if (pthread_create(&reader, NULL, feeder_main, &f) != 0)
			goto done;
		started = 1;
	}
	for (int i = 0; i <= n; i++) {
		char name[128];
		long long size;
		if (i < n) {
			snprintf(name, sizeof(name), "%s.dcm", m[i].sop_uid);
			size = m[i].size;
		} else {
			snprintf(name, sizeof(name), "MANIFEST.md5");
			size = (long long)mlen;
		}
		archive_entry_free(e);
		if (!(e = archive_entry_new()))
			goto done;
		archive_entry_set_pathname(e, name);
		archive_entry_set_size(e, size);
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_perm(e, 0640);
		archive_entry_set_mtime(e, now, 0);
		if (archive_write_header(a, e) != ARCHIVE_OK) {
			DH_ERROR("libarchive: %s: %s", tmp, archive_error_string(a));
			goto done;
		}
		/* ustar: one 512-byte header (names are short), data padded to 512 */
		if (i < n)
			m[i].offset = pos + TAR_BLOCK;
		pos += TAR_BLOCK + round_block(size);
		if (i == n) {
			if (mlen && archive_write_data(a, manifest, mlen) != (la_ssize_t)mlen) {
				DH_ERROR("libarchive: %s: %s", tmp, archive_error_string(a));
				goto done;
			}
			break;
		}
		for (;;) {
			chunk *c = feeder_take(&f);
			int last = c->last, status = c->status;
			if (c->len && archive_write_data(a, c->buf, c->len) != (la_ssize_t)c->len) {
				DH_ERROR("libarchive: %s: %s", tmp, archive_error_string(a));
				feeder_release(&f, c);
				goto done;
			}
			feeder_release(&f, c);
			if (status != SRC_OK) {
				rc = 1; /* the reader said why */
				goto done;
			}
			if (last)
				break;
		}
		size_t need = mlen + strlen(m[i].md5) + 2 + strlen(name) + 2;
		if (need > mcap) {
			size_t cap = mcap ? mcap * 2 : 4096;
			while (cap < need)
				cap *= 2;
			char *nm = realloc(manifest, cap);
			if (!nm)
				goto done;
			manifest = nm;
			mcap = cap;
		}
		mlen += (size_t)snprintf(manifest + mlen, mcap - mlen, "%s  %s\n", m[i].md5, name);
	}
	if (archive_write_close(a) != ARCHIVE_OK) {
		DH_ERROR("libarchive: %s: %s", tmp, archive_error_string(a));
		goto done;
	}
	if (dh_durable_fsync_fd(fd) < 0) {
		DH_ERROR("fsync %s: %s", tmp, strerror(errno));
		goto done;
	}
	xxh_hex(out.x, digest_out);
	rc = 0;
done:
	if (started) {
		pthread_mutex_lock(&f.mu);
		f.stop = 1;
		pthread_cond_broadcast(&f.cv);
		pthread_mutex_unlock(&f.mu);
		pthread_join(reader, NULL);
	}
	archive_entry_free(e);
	if (a)
		archive_write_free(a);
	if (fd >= 0)
		close(fd);
	if (out.x)
		XXH3_freeState(out.x);
	for (int k = 0; k < RING; k++)
		free(f.ring[k].buf);
	pthread_mutex_destroy(&f.mu);
	pthread_cond_destroy(&f.cv);
	free(manifest);
	return rc;
}

static int is_skipped(archiver *ar, long long pk)
{
	int found = 0;
	pthread_mutex_lock(&ar->vmu);
	for (int i = 0; i < ar->n_skipped && !found; i++)
		found = ar->skipped[i] == pk;
	pthread_mutex_unlock(&ar->vmu);
	return found;
}

/* Appends v to the PostgreSQL array literal in *buf (grown as needed). Returns 0 or -1. */
static int array_add(char **buf, size_t *len, size_t *cap, const char *v)
{
	size_t need = *len + strlen(v) + 5;
	if (need > *cap) {
		size_t c = *cap ? *cap * 2 : 1024;
		while (c < need)
			c *= 2;
		char *nb = realloc(*buf, c);
		if (!nb)
			return -1;
		*buf = nb;
		*cap = c;
	}
	/* quoted: an empty value stays an element (values never hold quotes or backslashes) */
	*len += (size_t)snprintf(*buf + *len, *cap - *len, "%s\"%s\"", *len ? "," : "{", v);
	return 0;
}

/*
 * Records the series' members in the TAR tpk with one statement (the values
 * as arrays). md5 guards against an overwrite (duplicate policy) since we
 * read the rows. Returns 0 or -1.
 */
static int index_members(PGconn *c, const char *tpk, const member *m, int n, dh_db_err *err)
{
	int rc = -1;
	char *arr[4] = { NULL, NULL, NULL, NULL };
	size_t len[4] = { 0, 0, 0, 0 }, cap[4] = { 0, 0, 0, 0 };
	for (int i = 0; i < n; i++) {
		char off_s[32], size_s[32];
		snprintf(off_s, sizeof(off_s), "%lld", m[i].offset);
		snprintf(size_s, sizeof(size_s), "%lld", m[i].size);
		/* pks and hex digests need no quoting in an array literal */
		if (array_add(&arr[0], &len[0], &cap[0], m[i].pk) < 0 || array_add(&arr[1], &len[1], &cap[1], off_s) < 0 ||
		    array_add(&arr[2], &len[2], &cap[2], size_s) < 0 || array_add(&arr[3], &len[3], &cap[3], m[i].md5) < 0) {
			snprintf(err->msg, sizeof(err->msg), "out of memory");
			goto done;
		}
	}
	for (int k = 0; k < 4; k++) {
		/* close the literal in the room array_add keeps */
		arr[k][len[k]++] = '}';
		arr[k][len[k]] = '\0';
	}
	const char *p[5] = { tpk, arr[0], arr[1], arr[2], arr[3] };
	rc = dh_db_exec(c, "UPDATE instance i SET tar_fk = $1::bigint, tar_offset = u.off, tar_size = u.size "
			   "FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::text[]) AS u(pk, off, size, md5) "
			   "WHERE i.pk = u.pk AND i.md5 = u.md5 AND i.tar_fk IS NULL",
			5, p, err) < 0 ? -1 : 0;
done:
	for (int k = 0; k < 4; k++)
		free(arr[k]);
	return rc;
}

/*
 * Packs the unarchived objects of one series into a new TAR. Returns 1 when
 * a TAR was recorded, 0 when there was nothing to do or no volume had room,
 * -1 on errors (broken set when the connection is gone). The TAR is
 * recorded unverified: verify_pass reads it back later.
 */
static int pack_series(archiver *ar, PGconn *c, const char *series_pk, const char *series_uid, int *broken)
{
	const hub_config *cfg = &ar->h->cfg;
	int rc = -1, in_txn = 0, renamed = 0, n = 0, wr, vi = -1, skip = 0;
	PGresult *r = NULL;
	member *m = NULL;
	dh_db_err err = { "", "" };
	char tmp[1400] = "", final[1400] = "", rel[600], dir[1300], uuid[37], hashdir[DH_MD5_HEX_LEN + 1];
	char vpk[32], tdigest[DH_MD5_HEX_LEN + 1], tpk[32] = "";
	long long need = 2 * 10240, tar_size;
	struct stat st;

	if (dh_db_exec(c, "BEGIN", 0, NULL, &err) < 0)
		goto done;
	in_txn = 1;
	{
		const char *p[1] = { series_uid };
		if (dh_db_exec(c, "SELECT pg_advisory_xact_lock(7243003, hashtext($1))", 1, p, &err) < 0)
			goto done;
	}
	{
		const char *p[1] = { series_pk };
		r = dh_db_query(c, "SELECT pk, sop_uid, file_path, file_size, md5, file_digest FROM instance "
				   "WHERE series_fk = $1::bigint AND tar_fk IS NULL AND file_path IS NOT NULL ORDER BY pk",
				1, p, &err);
	}
	if (!r)
		goto done;
	n = PQntuples(r);
	if (n == 0) {
		rc = 0;
		goto done;
	}
	if (!(m = calloc((size_t)n, sizeof(*m))))
		goto done;
	for (int i = 0; i < n; i++) {
		m[i].pk = PQgetvalue(r, i, 0);
		m[i].sop_uid = PQgetvalue(r, i, 1);
		m[i].file_path = PQgetvalue(r, i, 2);
		m[i].size = strtoll(PQgetvalue(r, i, 3), NULL, 10);
		m[i].md5 = PQgetvalue(r, i, 4);
		m[i].digest = PQgetvalue(r, i, 5);
		need += TAR_BLOCK + round_block(m[i].size) + 32 + 2 + (long long)strlen(m[i].sop_uid) + 5;
	}
	vi = choose_volume(ar, c, need, vpk);
	if (vi < 0) {
		DH_WARN("no online volume with room for series %s (%lld bytes): waiting", series_uid, need);
		rc = 0;
		goto done;
	}
	const hub_volume *v = &cfg->volumes[vi];
	dh_md5_buffer(series_uid, strlen(series_uid), hashdir);
	dh_uuid_generate(uuid);
	snprintf(dir, sizeof(dir), "%s/%.2s", v->path, hashdir);
	snprintf(rel, sizeof(rel), "%.2s/%s.%.8s.tar", hashdir, series_uid, uuid);
	snprintf(final, sizeof(final), "%s/%s", v->path, rel);
	snprintf(tmp, sizeof(tmp), "%s.tmp", final);
	if (dh_durable_mkdirs(dir) < 0) {
		DH_ERROR("cannot create %s: %s", dir, strerror(errno));
		goto done;
	}
	wr = write_tar(cfg->cache_dir, tmp, m, n, tdigest);
	if (wr != 0) {
		if (wr == 1) {
			skip = 1; /* recorded after the ROLLBACK: the other packer may hold vmu waiting for our row lock */
			DH_ERROR("series %s is not archived until restart: a cache file is damaged", series_uid);
		}
		goto done;
	}
	if (stat(tmp, &st) < 0) {
		DH_ERROR("cannot stat %s: %s", tmp, strerror(errno));
		goto done;
	}
	tar_size = (long long)st.st_size;
	/* write_tar fsync'ed the file; this fsyncs the directory after the rename */
	if (dh_durable_rename_synced(tmp, final) < 0) {
		DH_ERROR("cannot rename %s into place: %s", tmp, strerror(errno));
		goto done;
	}
	tmp[0] = '\0';
	renamed = 1;
	{
		char size_s[32], n_s[16];
		snprintf(size_s, sizeof(size_s), "%lld", tar_size);
		snprintf(n_s, sizeof(n_s), "%d", n);
		const char *p[6] = { vpk, series_pk, rel, size_s, tdigest, n_s };
		PGresult *t = dh_db_query(c, "INSERT INTO tar_file (volume_fk, series_fk, path, size, digest, members) "
					     "VALUES ($1::bigint, $2::bigint, $3, $4::bigint, $5, $6::int) RETURNING pk",
					  6, p, &err);
		if (!t)
			goto done;
		snprintf(tpk, sizeof(tpk), "%s", PQgetvalue(t, 0, 0));
		PQclear(t);
	}
	if (index_members(c, tpk, m, n, &err) < 0)
		goto done;
	in_txn = 0;
	if (dh_db_exec(c, "COMMIT", 0, NULL, &err) < 0) {
		/* the outcome is unknown: keep the file; start-up removes it if unindexed */
		renamed = 0;
		goto done;
	}
	DH_INFO("series %s: %d object(s) archived to %s:%s (%lld bytes, XXH3-128 %s); verification follows",
		series_uid, n, v->name, rel, tar_size, tdigest);
	rc = 1;
done:
	if (rc < 0 && err.msg[0])
		DH_ERROR("archiving series %s: %s", series_uid, err.msg);
	if (rc < 0 && dh_db_conn_lost(c, &err))
		*broken = 1;
	if (in_txn)
		PQclear(PQexec(c, "ROLLBACK"));
	if (tmp[0])
		unlink(tmp);
	if (rc < 0 && renamed) {
		unlink(final);
		dh_durable_fsync_dir(dir);
	}
	if (vi >= 0)
		release_volume(ar, vi, need);
	if (skip) {
		pthread_mutex_lock(&ar->vmu);
		if (ar->n_skipped < MAX_SKIPPED)
			ar->skipped[ar->n_skipped++] = strtoll(series_pk, NULL, 10);
		pthread_mutex_unlock(&ar->vmu);
	}
	free(m);
	PQclear(r);
	return rc;
}

/*
 * Takes a TAR that failed verification out of the index: its objects (all
 * still in the cache, eviction waits for verification) become unarchived
 * again and the next pass packs them into a new TAR; then the file goes.
 * Under the series lock, like every change to a series. Returns 0 or -1.
 */
static int drop_unverified(PGconn *c, const char *tpk, const char *series_uid, const char *path, dh_db_err *err)
{
	int dropped = 0;
	PGresult *r = NULL;
	const char *lp[1] = { series_uid };
	const char *tp[1] = { tpk };
	if (dh_db_exec(c, "BEGIN", 0, NULL, err) < 0)
		return -1;
	if (dh_db_exec(c, "SELECT pg_advisory_xact_lock(7243003, hashtext($1))", 1, lp, err) < 0 ||
	    dh_db_exec(c, "UPDATE instance SET tar_fk = NULL, tar_offset = NULL, tar_size = NULL "
			  "WHERE tar_fk = $1::bigint AND file_path IS NOT NULL", 1, tp, err) < 0 ||
	    /* an evicted object names it only if someone marked it verified meanwhile: then it stays */
	    !(r = dh_db_query(c, "DELETE FROM tar_file t WHERE t.pk = $1::bigint AND t.verified_at IS NULL "
				 "AND NOT EXISTS (SELECT 1 FROM instance i WHERE i.tar_fk = t.pk) RETURNING pk",
			      1, tp, err)) ||
	    dh_db_exec(c, "COMMIT", 0, NULL, err) < 0) {
		PQclear(r);
		PQclear(PQexec(c, "ROLLBACK"));
		return -1;
	}
	dropped = PQntuples(r) == 1;
	PQclear(r);
	if (dropped) {
		char dir[1400];
		snprintf(dir, sizeof(dir), "%s", path);
		char *slash = strrchr(dir, '/');
		if (unlink(path) < 0 && errno != ENOENT)
			DH_WARN("cannot remove %s: %s", path, strerror(errno));
		if (slash) {
			*slash = '\0';
			dh_durable_fsync_dir(dir);
		}
		DH_WARN("removed %s from the index and the volume; its objects are archived again", path);
	}
	return 0;
}

/*
 * Verifies the TARs written but not yet verified (this run's and any a crash
 * or restart left): drops the file's pages so the bytes come from the
 * device, reads every member at its offset and checks it (file_digest, or
 * MD5 for objects stored before hub 012), then sets verified_at, which lets
 * eviction take its objects. A TAR that fails is dropped and its objects
 * are archived again. Returns how many TARs were verified, -1 on DB errors.
 */
static int verify_pass(archiver *ar, PGconn *c, int *broken)
{
	const hub_config *cfg = &ar->h->cfg;
	dh_db_err err = { "", "" };
	PGresult *t = NULL, *r = NULL;
	unsigned char *buf = NULL;
	int verified = 0, rc = -1;

	t = dh_db_query(c, "SELECT t.pk, t.path, v.name, v.path, t.series_uid FROM tar_file t "
			   "JOIN volume v ON v.pk = t.volume_fk WHERE t.verified_at IS NULL AND v.state = 'online' "
			   "ORDER BY t.pk LIMIT 200", 0, NULL, &err);
	if (!t)
		goto done;
	if (PQntuples(t) > 0 && !(buf = malloc(COPY_BUF)))
		goto done;
	for (int k = 0; k < PQntuples(t) && !ar->stop && !ar->h->stop; k++) {
		char path[1400], cerr[1700] = "";
		const char *tp[1] = { PQgetvalue(t, k, 0) };
		long long bytes = 0;
		int bad = 0, fd;
		snprintf(path, sizeof(path), "%s/%s", volume_dir(cfg, PQgetvalue(t, k, 2), PQgetvalue(t, k, 3)),
			 PQgetvalue(t, k, 1));
		r = dh_db_query(c, "SELECT pk, tar_offset, tar_size, md5, file_digest FROM instance "
				   "WHERE tar_fk = $1::bigint ORDER BY tar_offset", 1, tp, &err);
		if (!r)
			goto done;
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			snprintf(cerr, sizeof(cerr), "cannot open %s: %s", path, strerror(errno));
			bad = 1;
		} else {
			/* the file is fsync'ed: dropping its clean pages makes us read the device */
			(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
			(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
			for (int i = 0; i < PQntuples(r) && !bad; i++) {
				size_t len = (size_t)strtoull(PQgetvalue(r, i, 2), NULL, 10);
				bad = check_fd_range(fd, path, (off_t)strtoll(PQgetvalue(r, i, 1), NULL, 10), len,
						     PQgetvalue(r, i, 3), PQgetvalue(r, i, 4), buf, COPY_BUF, cerr,
						     sizeof(cerr)) != 0;
				bytes += (long long)len;
			}
			close(fd);
		}
		if (bad) {
			DH_ERROR("verification of %s failed: %s", path, cerr);
			if (drop_unverified(c, PQgetvalue(t, k, 0), PQgetvalue(t, k, 4), path, &err) < 0)
				goto done;
		} else {
			if (dh_db_exec(c, "UPDATE tar_file SET verified_at = now() WHERE pk = $1::bigint", 1, tp, &err) < 0)
				goto done;
			DH_INFO("series %s: %s verified (%d object(s), %lld bytes read back)", PQgetvalue(t, k, 4),
				PQgetvalue(t, k, 1), PQntuples(r), bytes);
			verified++;
		}
		PQclear(r);
		r = NULL;
	}
	rc = verified;
done:
	if (rc < 0) {
		DH_ERROR("TAR verification: %s", err.msg);
		*broken = dh_db_conn_lost(c, &err);
	}
	free(buf);
	PQclear(r);
	PQclear(t);
	return rc;
}

/* The series of one archive_pass, shared by the two packers. */
typedef struct {
	archiver *ar;
	PGresult *r;      /* se.pk, se.series_uid */
	int n;
	atomic_int next;  /* next row to take */
	atomic_int done_n;
	atomic_int failed; /* a packer lost its connection: the other stops too */
} pass_work;

static void pass_run(pass_work *w, PGconn *c, int *broken)
{
	archiver *ar = w->ar;
	while (!ar->stop && !ar->h->stop && !atomic_load(&w->failed)) {
		int i = atomic_fetch_add(&w->next, 1);
		if (i >= w->n)
			break;
		if (is_skipped(ar, strtoll(PQgetvalue(w->r, i, 0), NULL, 10)))
			continue;
		int k = pack_series(ar, c, PQgetvalue(w->r, i, 0), PQgetvalue(w->r, i, 1), broken);
		if (*broken) {
			atomic_store(&w->failed, 1);
			break;
		}
		if (k > 0)
			atomic_fetch_add(&w->done_n, 1);
	}
}

/* The second packer: the same loop on a connection of its own. */
static void *pass_helper(void *arg)
{
	pass_work *w = arg;
	dh_db_err err;
	int broken = 0;
	dh_log_set_context("archiver");
	PGconn *c = dh_db_get(w->ar->h->db, &err);
	if (!c)
		return NULL; /* the worker's own loop does the pass alone */
	pass_run(w, c, &broken);
	dh_db_put(w->ar->h->db, c, broken);
	return NULL;
}

/* Archives every eligible series once, two at a time. Returns how many TARs were written, -1 on DB errors. */
static int archive_pass(archiver *ar, PGconn *c, int *broken)
{
	dh_db_err err;
	char secs[32];
	int done_n = 0;
	snprintf(secs, sizeof(secs), "%ld", ar->h->cfg.archive_stable_seconds);
	const char *p[1] = { secs };
	PGresult *r = dh_db_query(
		c,
		"SELECT se.pk, se.series_uid FROM series se "
		"WHERE EXISTS (SELECT 1 FROM instance i WHERE i.series_fk = se.pk AND i.tar_fk IS NULL "
		"              AND i.file_path IS NOT NULL) "
		"AND NOT EXISTS (SELECT 1 FROM series s2 JOIN instance i2 ON i2.series_fk = s2.pk "
		"                WHERE s2.study_fk = se.study_fk "
		"                AND i2.received_at > now() - make_interval(secs => $1::double precision)) "
		"ORDER BY se.pk LIMIT 100",
		1, p, &err);
	if (!r) {
		DH_ERROR("archive scan: %s", err.msg);
		*broken = dh_db_conn_lost(c, &err);
		return -1;
	}
	pass_work w = { ar, r, PQntuples(r), 0, 0, 0 };
	pthread_t helper;
	int helped = w.n > 1 && pthread_create(&helper, NULL, pass_helper, &w) == 0;
	pass_run(&w, c, broken);
	if (helped)
		pthread_join(helper, NULL);
	done_n = atomic_load(&w.done_n);
	PQclear(r);
	return done_n;
}

/* ------------------------------------------------------------ eviction */

static int evict_pass(archiver *ar, PGconn *c, int *broken)
{
	const hub_config *cfg = &ar->h->cfg;
	dh_db_err err;
	PGresult *r = NULL;
	long long used, low = cfg->cache_low_mb * MIB;
	int evicted = 0, rc = -1;

	if (cfg->cache_high_mb <= 0)
		return 0;
	r = dh_db_query(c, "SELECT COALESCE(sum(file_size), 0) FROM instance WHERE file_path IS NOT NULL", 0, NULL,
			&err);
	if (!r)
		goto done;
	used = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	r = NULL;
	if (used <= cfg->cache_high_mb * MIB)
		return 0;
	DH_INFO("cache holds %lld MiB, above the high watermark (%ld MiB): evicting archived objects", used / MIB,
		cfg->cache_high_mb);
	while (used > low && !ar->stop && !ar->h->stop) {
		r = dh_db_query(c,
				"SELECT i.pk, i.file_path, i.file_size, i.md5, i.tar_offset, i.tar_size, t.path, v.name, "
				"v.path, se.series_uid, i.file_digest FROM instance i JOIN tar_file t ON t.pk = i.tar_fk "
				"JOIN volume v ON v.pk = t.volume_fk JOIN series se ON se.pk = i.series_fk "
				"WHERE i.file_path IS NOT NULL AND v.state = 'online' AND t.verified_at IS NOT NULL "
				"ORDER BY i.received_at, i.pk LIMIT 200",
				0, NULL, &err);
		if (!r)
			goto done;
		int n = PQntuples(r), progressed = 0;
		for (int i = 0; i < n && used > low; i++) {
			char tar[1400], cerr[600], file[1200];
			snprintf(tar, sizeof(tar), "%s/%s", volume_dir(cfg, PQgetvalue(r, i, 7), PQgetvalue(r, i, 8)),
				 PQgetvalue(r, i, 6));
			/* never the last copy: the TAR member must verify now */
			if (archive_check_member(tar, (off_t)strtoll(PQgetvalue(r, i, 4), NULL, 10),
						 (size_t)strtoull(PQgetvalue(r, i, 5), NULL, 10), PQgetvalue(r, i, 3),
						 PQgetvalue(r, i, 10), cerr, sizeof(cerr)) != 0) {
				DH_ERROR("not evicting instance %s: %s", PQgetvalue(r, i, 0), cerr);
				continue;
			}
			const char *lp[1] = { PQgetvalue(r, i, 9) };
			const char *up[3] = { PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 3) };
			PGresult *u = NULL;
			if (dh_db_exec(c, "BEGIN", 0, NULL, &err) < 0)
				goto done;
			if (dh_db_exec(c, "SELECT pg_advisory_xact_lock(7243003, hashtext($1))", 1, lp, &err) < 0 ||
			    !(u = dh_db_query(c, "UPDATE instance SET file_path = NULL WHERE pk = $1::bigint "
						 "AND file_path = $2 AND md5 = $3 AND tar_fk IS NOT NULL RETURNING pk, "
						 "EXISTS (SELECT 1 FROM instance o WHERE o.file_path = $2 "
						 "AND o.pk <> $1::bigint)",
					      3, up, &err)) ||
			    dh_db_exec(c, "COMMIT", 0, NULL, &err) < 0) {
				PQclear(u);
				PQclear(PQexec(c, "ROLLBACK"));
				goto done;
			}
			if (PQntuples(u) == 1 && PQgetvalue(u, 0, 1)[0] == 't') {
				/* a copy made by a segment cc still names the file: it goes with the last row */
				used -= strtoll(PQgetvalue(r, i, 2), NULL, 10);
				progressed = 1;
			} else if (PQntuples(u) == 1) {
				snprintf(file, sizeof(file), "%s/%s", cfg->cache_dir, PQgetvalue(r, i, 1));
				if (unlink(file) < 0 && errno != ENOENT)
					DH_WARN("cannot remove evicted %s: %s", file, strerror(errno));
				used -= strtoll(PQgetvalue(r, i, 2), NULL, 10);
				evicted++;
				progressed = 1;
			}
			PQclear(u);
		}
		PQclear(r);
		r = NULL;
		if (!progressed)
			break;
	}
	if (evicted)
		DH_INFO("evicted %d archived object(s) from the cache; %lld MiB remain", evicted, used / MIB);
	if (used > low)
		DH_DEBUG("cache still above the low watermark: the rest is not archived yet");
	rc = evicted;
done:
	if (rc < 0) {
		DH_ERROR("cache eviction: %s", err.msg);
		*broken = dh_db_conn_lost(c, &err);
	}
	PQclear(r);
	return rc;
}

/* ------------------------------------------------------------ worker */

static void *worker(void *arg)
{
	archiver *ar = arg;
	hub *h = ar->h;
	int prepared = 0;

	dh_log_set_context("archiver");
	while (!ar->stop && !h->stop) {
		dh_db_err err;
		int broken = 0, busy = 0;
		PGconn *c = dh_db_get(h->db, &err);
		if (c) {
			if (!prepared && prepare_volumes(ar, c) == 0)
				prepared = 1;
			if (prepared) {
				int k = archive_pass(ar, c, &broken);
				busy = k > 0;
				/*
				 * Verification follows the whole pass rather than each TAR, so it
				 * never delays the next TAR; eviction runs first and only takes
				 * objects whose TAR is verified, and again once more are.
				 */
				if (!broken)
					evict_pass(ar, c, &broken);
				if (!broken && verify_pass(ar, c, &broken) > 0 && !broken)
					evict_pass(ar, c, &broken);
			}
			dh_db_put(h->db, c, broken);
		} else {
			DH_WARN("archiver: database unavailable: %s", err.msg);
		}
		if (busy)
			continue; /* more may be waiting (the scan is limited) */
		pthread_mutex_lock(&ar->mu);
		if (!ar->stop) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += h->cfg.archive_scan_interval;
			pthread_cond_timedwait(&ar->cv, &ar->mu, &ts);
		}
		pthread_mutex_unlock(&ar->mu);
	}
	return NULL;
}

int archive_start(hub *h)
{
	archiver *ar = NULL;
	if (!h->cfg.archive_enabled || h->cfg.n_volumes == 0) {
		if (h->cfg.archive_enabled)
			DH_INFO("archive: no [volume.*] configured; nothing is archived");
		return 0;
	}
	if (!(ar = calloc(1, sizeof(*ar))))
		return -1;
	ar->h = h;
	if (!(ar->reserved = calloc((size_t)h->cfg.n_volumes, sizeof(*ar->reserved)))) {
		free(ar);
		return -1;
	}
	pthread_mutex_init(&ar->mu, NULL);
	pthread_mutex_init(&ar->vmu, NULL);
	pthread_cond_init(&ar->cv, NULL);
	if (pthread_create(&ar->thread, NULL, worker, ar) != 0) {
		pthread_mutex_destroy(&ar->mu);
		pthread_mutex_destroy(&ar->vmu);
		pthread_cond_destroy(&ar->cv);
		free(ar->reserved);
		free(ar);
		return -1;
	}
	h->archiver = ar;
	DH_INFO("archive: %d volume(s), stable after %ld s, scan every %ld s", h->cfg.n_volumes,
		h->cfg.archive_stable_seconds, h->cfg.archive_scan_interval);
	return 0;
}

void archive_stop(hub *h)
{
	archiver *ar = h ? h->archiver : NULL;
	if (!ar)
		return;
	pthread_mutex_lock(&ar->mu);
	ar->stop = 1;
	pthread_cond_signal(&ar->cv);
	pthread_mutex_unlock(&ar->mu);
	pthread_join(ar->thread, NULL);
	pthread_mutex_destroy(&ar->mu);
	pthread_mutex_destroy(&ar->vmu);
	pthread_cond_destroy(&ar->cv);
	free(ar->reserved);
	free(ar);
	h->archiver = NULL;
}
