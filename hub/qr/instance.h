/*
 * instance.h - the current version of a stored instance, for whatever sends
 * objects out of the hub (C-MOVE in qr_move.c, WADO in wado.c).
 *
 * Two parts both senders share, so that they agree on what an object is:
 *  - resolving UIDs: SQL fragments that find the instances a Study, Series
 *    or SOP Instance UID names now, following old UIDs (fix-up, merge,
 *    split, duplicate reassignment) through uid_mapping and
 *    instance.received_study_uid;
 *  - opening an instance's bytes wherever they are: the online cache or
 *    its member in a series TAR on a nearline volume (read at its recorded
 *    offset and checked against its digest or MD5 as archive.read_verify
 *    says, never extracted to disk).
 * What to change in the bytes as they leave is render.h's business.
 *
 * Ownership: an instance_src is the caller's (instance_src_free).
 */
#ifndef HUB_INSTANCE_H
#define HUB_INSTANCE_H

#include "hub.h"
#include "nearline.h"

#include <stddef.h>

/*
 * Appends to sql (at off, within size) the recursive CTEs that resolve a
 * UID key given as a backslash-separated list in parameter $param:
 * k<param>(u) the UIDs asked for, c<param>(u, d) those and, for every one
 * that is not current in table.col, the UIDs uid_mapping of kind led to
 * (at most 8 steps). kind/table/col: "study"/"study"/"study_uid",
 * "series"/"series"/"series_uid" or "sop"/"instance"/"sop_uid". The first
 * call must follow "WITH RECURSIVE " already in sql. Returns the new offset.
 */
size_t instance_resolve_ctes(char *sql, size_t size, size_t off, int param, const char *kind, const char *table,
			     const char *col);

/*
 * Appends " AND i.pk IN (...)": the instance aliased `i` belongs now to a
 * study the CTEs of $param resolve to, or came in under a Study UID of
 * $param that names no current study. Returns the new offset.
 */
size_t instance_study_clause(char *sql, size_t size, size_t off, int param);

typedef enum {
	INSTANCE_OK = 0,
	INSTANCE_ERROR = -1,   /* I/O error, damaged bytes, no copy anywhere (message in err) */
	INSTANCE_OFFLINE = -2, /* only on a volume that is offline */
	INSTANCE_DB = -3,      /* the index database is unavailable */
	INSTANCE_GONE = -4     /* no longer in the index (deleted meanwhile) */
} instance_rc;

/* Where an instance's bytes are: a cache file to read, or the bytes themselves. */
typedef struct {
	char *path;         /* the cache file (malloc'ed), or NULL */
	unsigned char *buf; /* when path is NULL: the complete DICOM file read from its TAR (malloc'ed) */
	size_t len;
	char volume[64];    /* INSTANCE_OFFLINE: the volume's name */
} instance_src;

/*
 * Opens instance pk (decimal text). cache_path (may be NULL) is the cache
 * file the caller's query found: it is used as it is. Without it the index
 * says where the object is now, and an evicted object is read from its TAR
 * member. Borrows a pool connection only in that case. Returns INSTANCE_OK
 * with src filled, or an instance_rc with a message in err.
 */
int instance_open(hub *h, const char *pk, const char *cache_path, instance_src *src, char *err, size_t errlen);

/*
 * Same as instance_open for an object the caller already located (loc from
 * its own query, archive_loc_from_row): no index lookup per object.
 */
int instance_open_loc(const archive_loc *loc, instance_src *src, char *err, size_t errlen);

void instance_src_free(instance_src *src);

#endif
