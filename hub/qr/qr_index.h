/*
 * qr_index.h - the query attributes ingest records beyond the core index
 * rows: those the C-FIND matching keys of conformance Tables 2-25..2-28 need
 * (Other Patient IDs Sequence, Request Attribute Sequence, Concept Name Code
 * Sequence, Completion/Verification Flag, ...). Called by ingest inside its
 * transaction, so an object is either fully queryable or not stored.
 */
#ifndef HUB_QR_INDEX_H
#define HUB_QR_INDEX_H

#include "db.h"
#include "dcm.h"

/*
 * Records ds's query attributes for the rows just written (primary keys as
 * text). Returns 0, or -1 with err filled (the caller rolls back).
 */
int qr_index_instance(PGconn *c, const dh_dcm_ds *ds, const char *patient_pk, const char *study_pk,
		      const char *series_pk, const char *instance_pk, dh_db_err *err);

#endif
