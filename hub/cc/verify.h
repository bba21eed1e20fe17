/*
 * verify.h - the hub's side of `hubctl verify --spoke S` on the cc link.
 *
 * hubctl (hub/ctl/hubctl_verify.c) inserts a verify_request row
 * (sql/hub/010_verify.sql) and waits. The cc receiver (hub/cc/cc_recv.c), which
 * holds the spokes' authenticated connections, calls verify_dispatch
 * about twice a second with the spokes it heard from lately: it claims
 * their pending requests (pending -> sent; with two hubd on one database
 * only the one holding the connection claims) and sends each a
 * LedgerRequest through the callback. The spoke's LedgerChunks come back
 * on the same connection and verify_store_chunk stores them, in order, in
 * verify_ledger (one transaction per chunk: COPY, then the request's
 * progress), so hubctl can show progress and compare once the request is
 * 'done'. A chunk out of order, for another spoke's request, or carrying
 * the spoke's error fails the request with a reason hubctl prints.
 */
#ifndef HUB_VERIFY_H
#define HUB_VERIFY_H

#include "ccwire.h"

#include <stddef.h>
#include <stdint.h>

struct hub;

/* Sends a LedgerRequest to spoke_id; returns 0 or -1 (not sent). */
typedef int (*verify_send_fn)(void *arg, const char *spoke_id, uint64_t request_id, const char *study_uid);

/*
 * Claims the pending requests of spokes[0..n) and sends each through send;
 * a request that could not be sent is failed. Returns 0 or -1 (database
 * error in err; nothing claimed is left half-done: claimed requests that
 * were not sent are failed).
 */
int verify_dispatch(struct hub *h, const char *const *spokes, size_t n, verify_send_fn send, void *arg,
		    char *err, size_t errlen);

/*
 * Stores one LedgerChunk f from the authenticated spoke_id. Returns 0 (the
 * chunk stored, or refused and its request failed with the reason), or -1
 * on a database error (err).
 */
int verify_store_chunk(struct hub *h, const char *spoke_id, const dh_ccwire_frame *f, char *err, size_t errlen);

/* Records that spoke_id spoke from peer now (cc_stream.last_seen_at, last_peer). Returns 0 or -1. */
int verify_touch_stream(struct hub *h, const char *spoke_id, const char *peer, char *err, size_t errlen);

#endif
