/*
 * mpps.h - Modality Performed Procedure Step SCP and its forwarding SCU
 * (conformance §2.1.2.6, §2.2.1.6.6, Tables 2.2-34..2.2-38).
 *
 * INTERFACE ROUTINES
 *   mpps_check_create / mpps_check_set   the statement's rules (pure; unit-tested)
 *   mpps_ncreate / mpps_nset             handle one request on an association
 *   mpps_forward_start / _stop           the forwarding worker thread of hubd
 *   mpps_forward_kick                    wake the worker (new messages queued)
 *
 * Every accepted N-CREATE/N-SET is stored with its data set bytes as
 * received, and one forward row per configured destination is queued in
 * the same transaction, committed before the success response: a
 * destination that is down gets the message later, in order, once.
 */
#ifndef HUB_MPPS_H
#define HUB_MPPS_H

#include "dcm.h"

#include <stddef.h>

struct hub;

/* DIMSE statuses of Tables 2.2-36 and 2.2-38 (and PS3.7 for the others). */
#define MPPS_SUCCESS 0x0000
#define MPPS_INVALID_VALUE 0x0106        /* Performed Procedure Step Status not allowed */
#define MPPS_PROCESSING_FAILURE 0x0110   /* duplicate, update after the end, not updatable, failure */
#define MPPS_NO_SUCH_INSTANCE 0x0112     /* N-SET of a step we never created */
#define MPPS_INVALID_INSTANCE 0x0117     /* SOP Instance UID that is not a UID */
#define MPPS_NO_SUCH_CLASS 0x0118        /* request for another SOP class */
#define MPPS_MISSING_VALUE 0x0121        /* Note 1 / Note 2 attribute absent or empty */

/* Performed Procedure Step Status values (0040,0252). */
typedef enum { MPPS_IN_PROGRESS, MPPS_COMPLETED, MPPS_DISCONTINUED, MPPS_BAD_STATUS } mpps_status;

/*
 * The transfer syntax to accept for an MPPS presentation context: Implicit
 * VR Little Endian only (Table 2.2-34), so stored bytes forward as they are.
 * Returns one of the proposed pointers or NULL.
 */
const char *mpps_choose_ts(const char *const *proposed, int n);

/* Parses a Performed Procedure Step Status value (exact defined terms). */
mpps_status mpps_status_parse(const char *value);

/*
 * The N-CREATE rules: Note 1 attributes present and not empty (0121), then
 * the status IN PROGRESS (0106). Returns the DIMSE status; why gets a short
 * reason (for the Error Comment) when it is not success.
 */
unsigned int mpps_check_create(const dh_dcm_ds *ds, char *why, size_t whylen);

/*
 * The N-SET rules for modification list set on a step whose stored status
 * is stored_status and whose data set with set applied is merged: no update
 * after COMPLETED/DISCONTINUED and no attribute outside Table 2.2-37 that
 * only N-CREATE may give (0110); a status other than the three defined
 * terms (0106); when the step ends (COMPLETED/DISCONTINUED) the Note 2
 * attributes present and not empty in merged (0121). Returns the status.
 */
unsigned int mpps_check_set(const dh_dcm_ds *set, mpps_status stored_status, const dh_dcm_ds *merged, char *why,
			    size_t whylen);

/*
 * Handle one N-CREATE / N-SET request (cmd as received on a context of the
 * MPPS SOP class): read the data set, check, store durably, answer. Return
 * 0 when the association can go on, -1 when it broke (the caller aborts).
 */
int mpps_ncreate(struct hub *h, dh_dcm_assoc *a, const dh_dcm_cmd *cmd);
int mpps_nset(struct hub *h, dh_dcm_assoc *a, const dh_dcm_cmd *cmd);

/* ---- mpps_forward.c: the forwarding worker ---- */

/* Starts the worker (also when no destination is configured: rows queued before a reconfiguration still go). Returns 0 or -1. */
int mpps_forward_start(struct hub *h);
/* Stops and joins it (after h->stop is set). NULL-safe and idempotent. */
void mpps_forward_stop(struct hub *h);
/* Wakes the worker: messages were queued. */
void mpps_forward_kick(struct hub *h);

/*
 * Back-off before attempt n+1 after n failed attempts: base * 2^(n-1),
 * at most max_s seconds (pure; unit-tested).
 */
long mpps_backoff_seconds(int failed_attempts, long base_s, long max_s);

#endif
