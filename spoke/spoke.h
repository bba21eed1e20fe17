/*
 * spoke.h - the running spoke agent (spoked): configuration, database pool,
 * DICOM listener and the workers hanging off it.
 *
 * One spoke per process, created by spoked.c; threads borrow it and never
 * free any of it.
 *
 *   receive.c  DICOM SCP for the spoke PACS: Verification, Storage (the
 *              object is stored durably in store_dir, then recorded in the
 *              ledger through capture_object, then answered), and the
 *              storage commitment results (N-EVENT-REPORT) the hub sends.
 *   forward.c  forwards pending ledger objects to the hub (Storage SCU),
 *              asks for storage commitment, retries with back-off.
 *   shipper.c  ships the outbox to the hub over ZeroMQ (CURVE) and drops
 *              each cc once the hub acknowledged it.
 *   capture.c  the ledger and its changes (also spokectl's library).
 */
#ifndef SPOKE_SPOKE_H
#define SPOKE_SPOKE_H

#include "db.h"
#include "dcm.h"
#include "spoke_config.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

/* sql/spoke/ compiled in (dh_embed_migrations). */
extern const dh_db_migration spoke_migrations[];

typedef struct forwarder forwarder;
typedef struct shipper shipper;

typedef struct spoke {
	spoke_config cfg;
	dh_db *db;
	dh_dcm_net *net;
	dh_dcm_net *tls_net;      /* TLS listener (tls.port); NULL when off */
	dh_dcm_tls *tls_server;   /* its TLS context */
	dh_dcm_tls *tls_client;   /* towards the hub when hub.tls; else NULL */
	forwarder *forwarder;
	shipper *shipper;
	volatile sig_atomic_t stop;
	atomic_int active;        /* associations being served */
	atomic_ulong next_assoc;
	pthread_t *acceptors;
	int n_acceptors;
} spoke;

/* ---- receive.c ---- */
int receive_start(spoke *s);   /* acceptor threads on s->net */
void receive_stop(spoke *s);   /* sets s->stop, joins, waits (bounded) for associations */
/* Creates store_dir's fan-out and removes temp files a crash left. Returns 0 or -1. */
int receive_prepare_store(const spoke *s);

/* ---- forward.c ---- */
int forward_start(spoke *s);
void forward_stop(spoke *s);
void forward_wake(spoke *s);   /* new pending objects (receive.c calls it) */
/* A storage commitment result arrived (receive.c): records it per object. */
int forward_commit_result(spoke *s, const char *transaction_uid, const char *const *ok_sops, int n_ok,
			  const char *const *failed_sops, int n_failed);

/* ---- shipper.c ---- */
int shipper_start(spoke *s);   /* does nothing when spoke.secret_key_file is empty */
void shipper_stop(spoke *s);

#endif
