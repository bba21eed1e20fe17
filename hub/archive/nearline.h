/*
 * nearline.h - nearline archive: series-level TAR files on volumes, cache
 * eviction and reading an object wherever it is (seeds/kb-13876, conformance
 * Table 2-13 image states).
 *
 * A worker thread in hubd packs every eligible series from the online cache
 * into a TAR file (libarchive) on the current [volume.*] volume: one member
 * per instance plus a manifest member in `md5sum -c` format. Objects that
 * arrive after a series was archived go into a new TAR for that series; a
 * TAR is never rewritten. After each pass the same worker reads the new
 * TARs back and marks them verified, and evicts objects of verified TARs
 * from the cache between the high and low watermarks.
 */
#ifndef HUB_NEARLINE_H
#define HUB_NEARLINE_H

#include "hub.h"

#include <stddef.h>
#include <sys/types.h>

typedef enum { AVAIL_ONLINE = 0, AVAIL_NEARLINE = 1, AVAIL_OFFLINE = 2, AVAIL_UNAVAILABLE = 3 } archive_avail;

/* Where an object's bytes are. */
typedef struct {
	archive_avail avail;
	char path[1200];   /* ONLINE: the cache file; NEARLINE/OFFLINE: the TAR file */
	off_t offset;      /* NEARLINE: member data offset in the TAR */
	size_t size;       /* bytes of the object */
	char md5[33];      /* MD5 recorded at ingest */
	char digest[33];   /* XXH3-128 recorded at ingest (instance.file_digest), "" when unknown */
	int verify_md5;    /* archive_read checks the MD5 even when digest is known */
	char volume[64];   /* NEARLINE/OFFLINE: the volume's name */
} archive_loc;

/* Starts / stops the archiving and eviction worker (no-op when archive.enabled is false). */
int archive_start(hub *h);
void archive_stop(hub *h);

/*
 * The columns and joins that locate instance rows aliased `i`, for callers
 * that locate many objects in their own query: select ARCHIVE_LOC_COLS
 * (10 columns) FROM instance i ARCHIVE_LOC_JOINS, then archive_loc_from_row
 * with the index of the first of those columns. Static text.
 */
#define ARCHIVE_LOC_COLS                                                                          \
	"i.file_path, i.file_size, i.md5, i.tar_offset, i.tar_size, alt.path, alv.path, alv.state, " \
	"alv.name, i.file_digest"
#define ARCHIVE_LOC_JOINS \
	"LEFT JOIN tar_file alt ON alt.pk = i.tar_fk LEFT JOIN volume alv ON alv.pk = alt.volume_fk"

/* Fills loc from row of r, ARCHIVE_LOC_COLS starting at column col. Returns loc->avail. */
int archive_loc_from_row(const hub *h, const PGresult *r, int row, int col, archive_loc *loc);

/* Finds instance pk (text) in the index. Returns 0, or -1 with err (not found, DB error). */
int archive_locate(hub *h, PGconn *c, const char *instance_pk, archive_loc *loc, dh_db_err *err);

/*
 * Reads the object's bytes (a complete DICOM file) into a malloc'ed buffer
 * (caller frees) and checks them: against loc->digest (XXH3-128) when it is
 * known and loc->verify_md5 is not set (archive.read_verify = digest, the
 * default), else against loc->md5. Fails (-1, message in err) when the
 * volume is offline, the bytes do not verify, or on I/O errors.
 */
int archive_read(const archive_loc *loc, unsigned char **buf, size_t *len, char *err, size_t errlen);

/*
 * SQL expression giving 'ONLINE', 'NEARLINE' or 'OFFLINE' for the instance
 * row aliased `i` (for C-FIND's Instance Availability). Static text.
 */
const char *archive_avail_sql(void);

/*
 * SQL aggregate over instance rows aliased `i` (GROUP BY series or study):
 * the worst availability of the set wins. Static text.
 */
const char *archive_avail_agg_sql(void);

/*
 * Reads len bytes at offset of the file at path and compares their MD5 with
 * md5 (NULL: no comparison). md5_out (may be NULL) receives the digest.
 * Returns 0, 1 when the digest differs, -1 on I/O errors (message in err).
 */
int archive_check_range(const char *path, off_t offset, size_t len, const char *md5,
			char md5_out[33], char *err, size_t errlen);

/*
 * Same as archive_check_range for an object: compares the range with digest
 * (XXH3-128) when it is not empty, else with md5. Returns 0, 1 when the
 * bytes differ, -1 on I/O errors (message in err).
 */
int archive_check_member(const char *path, off_t offset, size_t len, const char *md5, const char *digest,
			 char *err, size_t errlen);

/*
 * Asks the kernel to start reading a NEARLINE object's TAR member now
 * (asynchronous; does nothing for other locations): a sender calls it for
 * the next object while it sends the current one.
 */
void archive_prefetch(const archive_loc *loc);

/* XXH3-128 (hex, as tar_file.digest) of the file at path. Returns 0 or -1 (errno set). */
int archive_digest_file(const char *path, char out[33]);

#endif
