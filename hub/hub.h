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
typedef struct cc_worker cc_worker;     /* hub/cc/cc_apply.c */
typedef struct cc_receiver cc_receiver; /* hub/cc/cc_recv.c */
typedef struct wado_server wado_server; /* hub/wado/wado.c */
typedef struct external external;       /* hub/archive/external.c */
typedef struct mpps_fwd mpps_fwd;       /* hub/mpps/mpps_forward.c */

typedef struct hub {
	hub_config cfg;
	dh_db *db;
	dh_dcm_net *net;
	dh_dcm_net *tls_net;      /* TLS listener (tls.port); NULL when off */
	dh_dcm_tls *tls_server;   /* its TLS context (hub_tls.c) */
	dh_dcm_tls *tls_client;   /* for [remote.X] tls = true; NULL when none is */
	stgcmt *stgcmt;
	archiver *archiver;       /* hub/archive/nearline.c; NULL when archiving is off */
	cc_worker *cc_worker;     /* parked-cc retries (hub/cc/cc_apply.c) */
	cc_receiver *cc_receiver; /* ZeroMQ endpoint (hub/cc/cc_recv.c); NULL when off */
	wado_server *wado;        /* HTTP listener (hub/wado/wado.c); NULL when off */
	external *external;       /* export worker (hub/archive/external.c); NULL when no archive exports */
	mpps_fwd *mpps_fwd;       /* MPPS forwarding worker (hub/mpps/mpps_forward.c) */
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

/*
 * Indexes a file already in the cache (rel, relative to storage.cache_dir)
 * exactly as ingest would, received from source_ae but without Key Object
 * registration (hubctl quarantine release). fn (may be NULL) runs in the
 * same transaction just before COMMIT; its failure rolls everything back.
 * c is an idle connection. Returns 0 when the object is in the index
 * (*status 0000 or B000), 1 when the index refused it (*status and comment
 * say why, e.g. a duplicate; nothing changed), -1 on error (err).
 */
typedef int (*ingest_pre_commit)(PGconn *c, void *arg, dh_db_err *err);
int ingest_register_file(hub *h, PGconn *c, const char *rel, const char *source_ae, ingest_pre_commit fn,
			 void *arg, unsigned int *status, char *comment, size_t clen, dh_db_err *err);

/* ---- stgcmt.c: storage commitment SCP ---- */

int stgcmt_start(hub *h);                 /* starts the delivery worker */
void stgcmt_stop(hub *h);                 /* stops and joins it */
/* Handles an N-ACTION (Request Storage Commitment). Returns 0 or -1 as ingest_store. */
int stgcmt_action(hub *h, dh_dcm_assoc *a, const dh_dcm_cmd *cmd);

/* ---- hub_tls.c: DICOM over TLS ---- */

/*
 * Loads the TLS contexts the configuration asks for (listener when tls.port
 * is set, client when a [remote.X] has tls = true). Needs dh_dcm_global_init.
 * Returns 0, or -1 with the reason in err (a start-up error).
 */
int hub_tls_open(hub *h, char *err, size_t errlen);
void hub_tls_close(hub *h);

/*
 * Opens an association from the hub's AE title to remote r (its host,
 * port, and TLS when r->tls), with the hub's max PDU. Every association the
 * hub requests goes through here, so [remote.X] tls applies to all of them.
 * Same returns as dh_dcm_assoc_request.
 */
int hub_connect(hub *h, dh_dcm_assoc **out, const hub_remote_ae *r, int timeout_s, const dh_dcm_pc_req *pcs,
		int n_pcs, char *err, size_t errlen);

#endif
