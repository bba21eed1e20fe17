/*
 * spoke_config.h - the spoke agent's configuration (spoked and spokectl read
 * the same file): one option table, one struct.
 *
 * The table in spoke_config.c is the single source of every option: parser,
 * `spoked --print-config` (deploy/spoked.conf.example) and the reference in
 * docs/configuration.md derive from it.
 *
 * Ownership: spoke_config_load fills a spoke_config the caller owns and
 * releases with spoke_config_free.
 */
#ifndef SPOKE_CONFIG_H
#define SPOKE_CONFIG_H

#include "tls_config.h"

#include <stdio.h>

/* spoke.sop_conflict: a known SOP Instance UID arrives under another study */
enum { SPOKE_CONFLICT_REJECT = 0, SPOKE_CONFLICT_SPLIT = 1, SPOKE_CONFLICT_FORWARD = 2 };

/* A DICOM peer from a [remote.AETITLE] section: the spoke PACS (may store
 * to spoked; recall destination) and the hub (sends storage commitment
 * results). */
typedef struct {
	char *ae_title; /* from the section name */
	char *host;
	long port;
} spoke_remote_ae;

typedef struct {
	/* [spoke] */
	char *id;               /* spoke_id of every cc, as the hub's [spoke.ID] */
	char *ae_title;         /* spoked's AE title (SCP, and calling AE towards the hub) */
	long port;
	char *store_dir;
	char *secret_key_file;  /* this spoke's CURVE secret key (Z85) */
	int sop_conflict;       /* SPOKE_CONFLICT_* */
	long max_associations;
	long max_pdu;
	long artim_timeout;
	long acse_timeout;
	long dimse_timeout;
	int validate_calling_ae;
	char *log_level;
	char *log_target;
	/* [database] */
	char *conninfo;
	long pool_size;
	int auto_migrate;
	/* [hub] */
	char *hub_host;
	long hub_port;
	char *hub_ae_title;
	char *hub_cc_endpoint;
	char *hub_public_key;   /* Z85, the hub's CURVE public key */
	int hub_tls;            /* forwarding, storage commitment and recall reach the hub over TLS */
	/* [forward] */
	long fwd_batch;
	long fwd_retry_min;
	long fwd_retry_max;
	long fwd_commit_timeout;
	/* [cc] */
	long cc_batch;
	long cc_ack_timeout;
	/* [tls] */
	dh_tls_config tls;
	/* [remote.*] */
	spoke_remote_ae *remotes;
	int n_remotes;
} spoke_config;

/* Defaults, then path (NULL: defaults only). Returns 0, or -1 with a message in err. */
int spoke_config_load(spoke_config *cfg, const char *path, char *err, size_t errlen);

/* The remote AE with this title, or NULL. Borrowed from cfg. */
const spoke_remote_ae *spoke_config_remote(const spoke_config *cfg, const char *ae_title);

/* Writes the commented configuration (defaults when cfg is NULL). */
void spoke_config_write(FILE *out, const spoke_config *cfg);

void spoke_config_free(spoke_config *cfg);

#endif
