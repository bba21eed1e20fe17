/*
 * instance.c - see instance.h.
 *
 * NOTES
 * The resolution fragments were C-MOVE's (qr_move.c) and moved here
 * unchanged so that WADO resolves old UIDs exactly as C-MOVE does.
 */
#include "instance.h"

#include "nearline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t instance_resolve_ctes(char *sql, size_t size, size_t off, int param, const char *kind, const char *table,
			     const char *col)
{
	return off + (size_t)snprintf(sql + off, size - off,
		"%sk%d(u) AS (SELECT unnest(string_to_array($%d, '\\'))), "
		"c%d(u, d) AS (SELECT u, 0 FROM k%d UNION ALL SELECT m.new_uid, c.d + 1 FROM c%d c "
		"JOIN uid_mapping m ON m.kind = '%s' AND m.old_uid = c.u WHERE c.d < 8 "
		"AND NOT EXISTS (SELECT 1 FROM %s z WHERE z.%s = c.u))",
		off > strlen("WITH RECURSIVE ") ? ", " : "", param, param, param, param, param, kind, table, col);
}

size_t instance_study_clause(char *sql, size_t size, size_t off, int param)
{
	/* two index-friendly branches rather than an OR across tables */
	return off + (size_t)snprintf(sql + off, size - off,
		" AND i.pk IN (SELECT x.pk FROM instance x JOIN series xs ON xs.pk = x.series_fk "
		"JOIN study xt ON xt.pk = xs.study_fk WHERE xt.study_uid IN (SELECT u FROM c%d) "
		"UNION ALL SELECT x.pk FROM instance x WHERE x.received_study_uid IN (SELECT u FROM k%d "
		"WHERE NOT EXISTS (SELECT 1 FROM study z WHERE z.study_uid = k%d.u)))", param, param, param);
}

int instance_open(hub *h, const char *pk, const char *cache_path, instance_src *src, char *err, size_t errlen)
{
	archive_loc loc;
	dh_db_err dberr = { "", "" };
	memset(src, 0, sizeof(*src));
	if (cache_path) {
		if (!(src->path = strdup(cache_path))) {
			snprintf(err, errlen, "out of memory");
			return INSTANCE_ERROR;
		}
		return INSTANCE_OK;
	}
	PGconn *c = dh_db_get(h->db, &dberr);
	if (!c) {
		snprintf(err, errlen, "index database unavailable");
		return INSTANCE_DB;
	}
	int lr = archive_locate(h, c, pk, &loc, &dberr);
	int lost = lr < 0 && dh_db_conn_lost(c, &dberr);
	dh_db_put(h->db, c, lost);
	if (lr < 0) {
		snprintf(err, errlen, "%.200s", dberr.msg);
		/* archive_locate's own "not found" comes without a server error */
		return lost ? INSTANCE_DB : dberr.sqlstate[0] ? INSTANCE_ERROR : INSTANCE_GONE;
	}
	return instance_open_loc(&loc, src, err, errlen);
}

int instance_open_loc(const archive_loc *loc, instance_src *src, char *err, size_t errlen)
{
	memset(src, 0, sizeof(*src));
	if (loc->avail == AVAIL_ONLINE) {
		if (!(src->path = strdup(loc->path))) {
			snprintf(err, errlen, "out of memory");
			return INSTANCE_ERROR;
		}
		return INSTANCE_OK;
	}
	if (loc->avail == AVAIL_OFFLINE)
		snprintf(src->volume, sizeof(src->volume), "%s", loc->volume);
	if (archive_read(loc, &src->buf, &src->len, err, errlen) < 0)
		return loc->avail == AVAIL_OFFLINE ? INSTANCE_OFFLINE : INSTANCE_ERROR;
	return INSTANCE_OK;
}

void instance_src_free(instance_src *src)
{
	if (!src)
		return;
	free(src->path);
	free(src->buf);
	src->path = NULL;
	src->buf = NULL;
	src->len = 0;
}
