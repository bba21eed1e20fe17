/*
 * hub.h - the running hub: configuration, database pool, listener and the
 * services that hang off an association.
 *
 * One hub per process, created by hubd.c. Association threads borrow it;
 * they never free any of it.
 */
#ifndef HUB_HUB_H
#define HUB_HUB_H

#include "db.h"
#include "dcm.h"
#include "hub_config.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

/* sql/hub/ compiled in (dh_embed_migrations). */
extern const dh_db_migration hub_migrations[];

typedef struct stgcmt stgcmt;
typedef struct archiver archiver;
typedef struct cc_worker cc_worker;     /* hub/cc_apply.c */
typedef struct cc_receiver cc_receiver; /* hub/cc_recv.c */
typedef struct mpps_fwd mpps_fwd;       /* hub/mpps_forward.c */

typedef struct hub {
	hub_config cfg;
	dh_db *db;
	dh_dcm_net *net;
	stgcmt *stgcmt;
	archiver *archiver;       /* hub/nearline.c; NULL when archiving is off */
	cc_worker *cc_worker;     /* parked-cc retries (hub/cc_apply.c) */
	cc_receiver *cc_receiver; /* ZeroMQ endpoint (hub/cc_recv.c); NULL when off */
	mpps_fwd *mpps_fwd;       /* MPPS forwarding worker (hub/mpps_forward.c) */
	volatile sig_atomic_t stop;
	atomic_int active;        /* associations being served */
	atomic_ulong next_assoc;  /* association ids for log context */
	pthread_t *acceptors;
	int n_acceptors;
} hub;

/* ---- scp.c: listener and association threads ---- */

/* Starts the acceptor threads on h->net. Returns 0 or -1. */
int scp_start(hub *h);
/* Sets h->stop, joins the acceptors and waits (bounded) for open associations. */
void scp_stop(hub *h);

/* ---- ingest.c: C-STORE ---- */

/*
 * Handles one C-STORE request: receives the data set, stores it durably,
 * indexes it and answers. Returns 0 when the association can go on, -1 when
 * it is broken (the caller aborts it).
 */
int ingest_store(hub *h, dh_dcm_assoc *a, const dh_dcm_cmd *cmd);

/*
 * Creates the cache's fan-out directories and removes temp files a crash
 * left in them. Returns 0 or -1.
 */
int ingest_prepare_cache(const hub *h);

/* ---- stgcmt.c: storage commitment SCP ---- */

int stgcmt_start(hub *h);                 /* starts the delivery worker */
void stgcmt_stop(hub *h);                 /* stops and joins it */
/* Handles an N-ACTION (Request Storage Commitment). Returns 0 or -1 as ingest_store. */
int stgcmt_action(hub *h, dh_dcm_assoc *a, const dh_dcm_cmd *cmd);

#endif
