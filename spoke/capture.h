/*
 * capture.h - the spoke's ledger and the changes made to it (C API).
 *
 * Every function that changes the ledger does so in ONE PostgreSQL
 * transaction together with the cc that tells the hub: the cc is recorded
 * in cc_history and queued in outbox (sequence from spoke_state), and
 * `NOTIFY dh_outbox` wakes the shipper when the transaction commits.
 * spoked (receive.c) and spokectl both use it.
 */
#ifndef SPOKE_CAPTURE_H
#define SPOKE_CAPTURE_H

#include "spoke_config.h"

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

/* An object spoked received and stored durably, as the file says. */
typedef struct {
	const char *sop_uid, *series_uid, *study_uid, *sop_class_uid;
	const char *transfer_syntax;
	const char *patient_id, *issuer, *patient_name, *birth_date, *sex;
	const char *study_id, *study_date, *study_time, *accession, *referring_physician,
		*study_description;
	const char *modality, *series_number, *series_description, *instance_number;
	const char *file_path; /* relative to spoke.store_dir */
	long long file_size;
	const char *md5;       /* 32 hex digits */
	const char *source_ae; /* calling AE title */
} capture_object_info;

typedef enum {
	CAPTURE_NEW = 0,      /* new object: ledger row inserted, to be forwarded */
	CAPTURE_SAME,         /* already held, same attributes: nothing to do (the new file is redundant) */
	CAPTURE_CHANGED,      /* already held, attributes differ: ATTRIBUTE_CHANGE cc recorded */
	CAPTURE_SPLIT,        /* known SOP UID under another study, policy split: SPLIT cc recorded */
	CAPTURE_REJECTED      /* known SOP UID under another study, policy reject: answer 0110 */
} capture_verdict;

/*
 * Records a received object in the ledger (see capture_verdict). why gets
 * a sentence for logs and for the Error Comment of a rejection. Returns 0,
 * or -1 on a database error (message in err; nothing recorded).
 */
int capture_object(PGconn *c, const spoke_config *cfg, const capture_object_info *o, capture_verdict *v,
		   char *why, size_t whylen, char *err, size_t errlen);

#endif
