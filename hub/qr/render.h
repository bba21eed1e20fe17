/*
 * render.h - the index's current truth applied to objects leaving the hub.
 *
 * Stored files are never rewritten; a cc changes the index only. Whatever
 * sends an object (C-MOVE now, WADO later) asks render_load for the objects
 * it is about to send and gets, per instance, the attribute values to set:
 * the UIDs the index gives it (SOP, series, study; the File Meta
 * Information follows), the patient and study attributes of the study it
 * now belongs to when it was moved there (split, merge, segment), and the
 * attr_override rows of its patient, study, series and instance in the
 * order they were made (seq), in that order, the UIDs last (a later value
 * of the same tag wins when applied in order, as dh_dcm_store_file_ex
 * does). An object with nothing to change is sent as stored (raw).
 * Deleted objects are not in the instance table: nothing to render.
 *
 * Ownership: a render_set is the caller's (render_free); the overrides
 * render_get hands out are borrowed from it.
 */
#ifndef HUB_RENDER_H
#define HUB_RENDER_H

#include "db.h"
#include "dcm.h"

typedef struct render_set render_set;

/*
 * Loads the overrides of the instances whose pks (decimal text) are given,
 * with one or a few queries whatever n is. Returns 0 or -1 with err.
 */
int render_load(PGconn *c, const char *const *instance_pks, int n, render_set **out, dh_db_err *err);

/*
 * The overrides of one instance (*n 0: send as stored; also for a pk that
 * was not loaded). The values are valid until render_free(rs).
 */
void render_get(const render_set *rs, const char *instance_pk, const dh_dcm_override **ov, int *n);

void render_free(render_set *rs);

#endif
