/*
 * ccsync.h - receiving and applying change contexts from spokes.
 *
 * cc_recv.c: a ZeroMQ ROUTER socket on cc.endpoint, CURVE server with the
 *   hub's secret key; a ZAP handler admits only the public keys of the
 *   [spoke.ID] sections and names the connection with that spoke id. Each
 *   Batch frame is checked (its spoke_id must be the authenticated one),
 *   its items decoded one by one (dh_cc_decode; decoding stops at the first
 *   bad item, which is logged), handed to cc_apply_batch, and answered with
 *   an Ack only after cc_apply_batch committed. Corrupt, truncated or
 *   oversized frames are logged and dropped; the connection and the other
 *   spokes carry on.
 *
 * cc_apply.c: records and applies the cc of a batch in sequence order,
 *   exactly once per (spoke_id, sequence), under the spoke's advisory lock
 *   (7243004, so two hubd processes on one database keep per-spoke order),
 *   and every series it touches under the archiver's series lock (7243003).
 *   A cc whose objects are not all in the index yet is parked (and so is a
 *   later cc of the spoke that names one of its studies, to keep their
 *   order); a worker retries parked cc every cc.retry_interval seconds and
 *   when ingest stored an object (cc_apply_wake). Refused by a rule
 *   (ownership, conflict) a cc is 'conflict'; parked longer than
 *   cc.park_timeout, or refused by the database, it is 'failed' and no
 *   longer retried automatically; both are operator items
 *   (cc_log.operator_item) with their reason (sql/hub/006_ops.sql).
 */
#ifndef HUB_CCSYNC_H
#define HUB_CCSYNC_H

#include "cc.h"
#include "ccwire.h"
#include "db.h"

#include <stddef.h>
#include <stdint.h>

struct hub;

/* What became of one cc of a batch that was not simply applied. */
typedef struct {
	uint64_t sequence;
	char uuid[37];
	char reason[256];
	int permanent; /* 1 conflict or failed (operator item); 0 parked, retried automatically */
} cc_refusal;

/*
 * Records and applies ccs[0..n) of spoke_id (decoded, in sequence order;
 * bodies[i] is ccs[i]'s encoding, stored as received). Sequences already
 * recorded are skipped (a resend); a gap (a sequence beyond the next
 * expected) stops the batch there. On success (0) everything up to
 * *acked_through is durable at the hub and *refused (malloc'd, the
 * caller's; may be NULL when *n_refused is 0) lists the cc of this batch
 * that were parked or refused. On failure (-1, reason in err) nothing of
 * the batch is committed and nothing may be acknowledged.
 */
int cc_apply_batch(struct hub *h, const char *spoke_id, const char *peer, dh_cc *const *ccs,
		   const dh_ccwire_item *bodies, size_t n, uint64_t *acked_through, cc_refusal **refused,
		   size_t *n_refused, char *err, size_t errlen);

/* The highest sequence of spoke_id the hub holds (0: none). Returns 0 or -1. */
int cc_apply_received_through(struct hub *h, const char *spoke_id, uint64_t *out, char *err, size_t errlen);

/* Starts/stops the worker that retries parked cc and raises operator items. */
int cc_apply_start(struct hub *h);
void cc_apply_stop(struct hub *h);
/* Tells the worker an object arrived (cheap; ingest calls it after each commit). */
void cc_apply_wake(struct hub *h);
/*
 * One pass of the worker, synchronously: retries every parked cc in
 * (spoke, sequence) order, each in its own transaction under its spoke's
 * lock; those parked longer than cc.park_timeout (and not merely behind
 * another) become failed operator items.
 * *applied (may be NULL) counts the ones applied. Returns 0 or -1 with err.
 */
int cc_apply_retry_parked(struct hub *h, int *applied, char *err, size_t errlen);

/* An operator's action on one cc_log item (hubctl queue retry|resolve|discard). */
typedef struct {
	const char *action;        /* "retry", "resolve" or "discard" */
	const char *operator_name; /* who (operator_action.operator_name) */
	const char *reason;        /* why; never empty */
} cc_operator_req;

/*
 * Carries out req on cc_log row pk (decimal) in one transaction under its
 * spoke's lock, recorded in operator_action (who, when, why, outcome) in
 * that same transaction. retry decides and applies the cc again now, with
 * exactly the worker's rules; resolve and discard settle it: it is never
 * applied and later cc of its studies stop waiting behind it. Only
 * parked, conflict and failed cc can be acted on. Returns 0 done (state:
 * the new state, why its reason), 1 refused as making no sense (nothing
 * changed or recorded; why says why; state the current one), -1 error
 * (why; e.g. no such id).
 */
int cc_apply_operator(struct hub *h, const char *pk, const cc_operator_req *req, char state[16], char *why,
		      size_t whylen);
/*
 * Applies a DELETE to the index inside the caller's open transaction on c,
 * exactly as a DELETE cc is applied (same series locks, rows moved to
 * deleted_instance with reason and no cc, empty series/studies/patients
 * removed), for deletions that come from elsewhere (an IOCM rejection
 * note, hub/store/kos.c). Objects of d not in the index are skipped. *n_deleted
 * (may be NULL) gets the number of instances removed. Returns 0, or -1
 * with err (the caller rolls back).
 */
int cc_apply_delete(struct hub *h, PGconn *c, const Dhcc__Delete *d, const char *reason, int *n_deleted,
		    dh_db_err *err);

/* Starts/stops the ZeroMQ receiver (does nothing when cc.secret_key_file is empty). */
int cc_recv_start(struct hub *h);
void cc_recv_stop(struct hub *h);

#endif
