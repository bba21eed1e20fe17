/*
 * move_forward.h - C-MOVE forwarding to external archives (conformance
 * §2.2.1.6.5, §2.1.2.5 footnote 4).
 *
 * Which objects are forwarded: those the C-MOVE matched in the index (so
 * C-FIND, which answers from the same index, shows them) whose bytes the hub
 * no longer holds (no cache file and no TAR copy, e.g. after `hubctl
 * external release`) and that an exporting archive holds (external_object
 * state committed). Everything else is sent by the hub itself as before.
 *
 * How: per archive, one association (Study Root MOVE, SCU), one C-MOVE per
 * series at IMAGE level naming the SOP Instance UIDs the objects were
 * exported with. direct mode: the Move Destination is the requester's, the
 * archive sends to it. proxy mode: the Move Destination is the hub itself;
 * the hub's listener hands the incoming C-STOREs (Move Originator = the
 * hub) to move_forward_proxy_store, which sends each on to the requester's
 * destination with the index's current truth applied (render.h), as the
 * hub's own sub-operation. The counters of both parts are combined by the
 * caller (qr_move.c).
 *
 * Ownership: move_forward_plan's result is the caller's (move_forward_free).
 */
#ifndef HUB_MOVE_FORWARD_H
#define HUB_MOVE_FORWARD_H

#include "hub.h"

#include <libpq-fe.h>

typedef struct move_fwd move_fwd;

/*
 * Finds, among the n instance pks (decimal text) a C-MOVE matched, those
 * to forward. *out is NULL when there is none (also when no archive is
 * configured: no query is made). Returns 0 or -1 with err.
 */
int move_forward_plan(hub *h, PGconn *c, const char *const *pks, int n, move_fwd **out, dh_db_err *err);

/* Number of objects to forward (0 for NULL). */
int move_forward_count(const move_fwd *f);

/* 1 when instance pk is forwarded (not sent by the hub itself). */
int move_forward_has(const move_fwd *f, const char *pk);

/* What the C-MOVE SCP is told while forwarding runs. */
typedef struct {
	void *user;
	/* counters changed (delta: completed, failed, warning); return -1 to stop (requester gone) */
	int (*progress)(void *user, int completed, int failed, int warning);
	/* a forwarded object failed (for the Failed SOP Instance UID List) */
	void (*failed_uid)(void *user, const char *sop_uid);
} move_forward_cb;

typedef struct {
	int completed, failed, warning;
	unsigned int status; /* worst final status an archive answered (0 when all 0000) */
	int unreachable;     /* archives that could not be reached */
	char why[200];       /* for the final response's Error Comment */
} move_forward_result;

/*
 * Forwards: dest_ae is the requester's Move Destination (a [remote.*]
 * section), requester_ae/msg_id identify the original request (proxy mode
 * puts them in the C-STOREs it sends on). Every forwarded object ends up
 * counted once in res (completed, failed or warning). Returns 0, or -1
 * when cb->progress asked to stop.
 */
int move_forward_run(hub *h, const move_fwd *f, const hub_remote_ae *dest, const char *requester_ae,
		     unsigned int msg_id, const move_forward_cb *cb, move_forward_result *res);

void move_forward_free(move_fwd *f);

/*
 * proxy mode, called by the listener for every C-STORE-RQ: 1 when cmd is a
 * sub-operation of a proxied forward running now (Move Originator = our AE
 * title, calling AE = the archive), else 0.
 */
int move_forward_proxy_claims(hub *h, dh_dcm_assoc *a, const dh_dcm_cmd *cmd);

/*
 * Receives a claimed C-STORE, sends it on to the requester's destination and
 * answers the archive with the destination's status. Returns 0 or -1 as
 * ingest_store.
 */
int move_forward_proxy_store(hub *h, dh_dcm_assoc *a, const dh_dcm_cmd *cmd);

#endif
