/*
 * external.h - export to external archives and Storage Commitment SCU
 * (conformance §2.2.1.5.2, §2.2.1.5.3; footnote 3 of §2.1.2.3).
 *
 * A [remote.AE] section with `export = true` is an external archive the hub
 * delegates long-term storage to. A worker thread queues every object once
 * its study is stable (external.stable_seconds without a new object), sends
 * it with C-STORE as C-MOVE would (the index's current truth applied,
 * render.h; the stored file is never changed), then, when `commit = true`,
 * requests Storage Commitment (N-ACTION, Transaction UID generated and kept
 * indefinitely in external_txn). The archive's N-EVENT-REPORT, on the same
 * or on a new association, is handled by external_event_report() and
 * recorded per object (external_object: committed, or failed with the
 * archive's Failure Reason). The queue is durable (sql/hub/009_external.sql):
 * an archive that is down is tried again every external.retry_interval
 * seconds; a request without result after external.commit_timeout is
 * requested again under a new Transaction UID.
 *
 * Ownership: the worker state hangs off hub->external (external_start /
 * external_stop); nothing is handed to callers.
 */
#ifndef HUB_EXTERNAL_H
#define HUB_EXTERNAL_H

#include "hub.h"

#include <libpq-fe.h>

/* 1 when some [remote.*] section has export = true. */
int external_configured(const hub_config *cfg);

/* Starts the export worker (no-op when no archive is configured). Returns 0 or -1. */
int external_start(hub *h);
/* Stops and joins it (h->stop must be set). NULL-safe. */
void external_stop(hub *h);

/*
 * Handles an N-EVENT-REPORT-RQ (Storage Commitment result for a request
 * the hub sent): records it and answers 0000, or 0110 when it cannot be
 * recorded (the archive then reports again). Returns 0 when the
 * association can go on, -1 when it is broken.
 */
int external_event_report(hub *h, dh_dcm_assoc *a, const dh_dcm_cmd *cmd);

/*
 * The export backlog for `hubctl status` (or anything else): objects
 * queued (waiting to be sent, including retries), sent and waiting for
 * their commitment result, and failed (need an operator). Returns 0 or -1
 * with err.
 */
typedef struct {
	long queued;
	long awaiting_commit;
	long failed;
	long committed;
} external_backlog;
int external_backlog_read(PGconn *c, external_backlog *out, dh_db_err *err);

#endif
