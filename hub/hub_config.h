/*
 * hub_config.h - hubd's configuration: one table, one struct.
 *
 * The table in hub_config.c is the single source of every option: parser,
 * `hubd --print-config` (the commented example in deploy/) and the
 * configuration reference in docs/ derive from it.
 *
 * Ownership: hub_config_load fills a hub_config the caller owns and releases
 * with hub_config_free.
 */
#ifndef HUB_CONFIG_H
#define HUB_CONFIG_H

#include "tls_config.h"

#include <stdio.h>

enum { HUB_DUP_REJECT = 0, HUB_DUP_ACCEPT = 1, HUB_DUP_OVERWRITE = 2 };
enum { HUB_READ_VERIFY_DIGEST = 0, HUB_READ_VERIFY_MD5 = 1 };
enum { HUB_FWD_DIRECT = 0, HUB_FWD_PROXY = 1 };

/* A remote AE from a [remote.AETITLE] section. */
typedef struct {
	char *ae_title; /* from the section name */
	char *host;
	long port;
	int uncompressed; /* C-MOVE: always send native (uncompressed) pixel data */
	int tls;          /* we reach it over TLS (its port is its TLS port) */
	int require_tls;  /* its associations are accepted only on the TLS listener */
	char *services;   /* what it may use as SCU (assoc_rules.h): "all", "none", "store,find"... */
	unsigned services_mask; /* services parsed at load (HUB_SVC_*) */
	/* external archive (hub/archive/external.c, hub/qr/move_forward.c) */
	int export_objects; /* the hub exports objects to it for long-term storage */
	int commit;         /* request Storage Commitment after export */
	int forward_mode;   /* HUB_FWD_*: C-MOVE for objects held only there */
} hub_remote_ae;

/* A nearline volume from a [volume.NAME] section. */
typedef struct {
	char *name; /* from the section name */
	char *path;
	long capacity_mb;
} hub_volume;

/*
 * A spoke from a [spoke.ID] section: who may send change contexts (its
 * CURVE public key) and which AE titles store on its behalf (their studies
 * are the spoke's: it owns them).
 */
typedef struct {
	char *id;         /* from the section name: the cc spoke_id */
	char *public_key; /* Z85, 40 characters */
	char *ae_titles;  /* comma-separated AE titles of the spoke's agent/PACS */
} hub_spoke;

typedef struct {
	/* [hub] */
	char *ae_title;
	long port;
	long max_associations;
	long acceptor_threads;
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
	/* [storage] */
	char *cache_dir;
	long min_free_mb;
	int duplicate_policy; /* HUB_DUP_* */
	int accept_unlisted_sop_classes;
	/* [qr] */
	long pending_interval;
	int restrict_to_source;
	long move_timeout;
	/* [stgcmt] */
	long retry_interval;
	long max_attempts;
	/* [archive] */
	int archive_enabled;
	long archive_stable_seconds;
	long archive_scan_interval;
	long cache_high_mb;
	long cache_low_mb;
	int archive_read_verify; /* HUB_READ_VERIFY_* */
	/* [external] */
	long ext_scan_interval;
	long ext_stable_seconds;
	long ext_retry_interval;
	long ext_commit_timeout;
	long ext_batch;
	long ext_report_wait;
	/* [cc] */
	char *cc_endpoint;
	char *cc_secret_key_file;
	int cc_enforce_ownership;
	long cc_park_timeout;
	long cc_retry_interval;
	/* [wado] (hub/wado/wado.c) */
	int wado_enabled;
	char *wado_bind_address;
	long wado_port;
	long wado_max_connections;
	long wado_timeout;
	char *wado_tls_cert_file;
	char *wado_tls_key_file;
	/* [tls] */
	dh_tls_config tls;
	/* [mpps] */
	char *mpps_destinations;
	long mpps_retry_interval;
	long mpps_retry_max_interval;
	/* [spoke.*] */
	hub_spoke *spokes;
	int n_spokes;
	/* [remote.*] */
	hub_remote_ae *remotes;
	int n_remotes;
	/* [volume.*] */
	hub_volume *volumes;
	int n_volumes;
} hub_config;

/* Defaults only (no file). Returns 0 or -1. */
int hub_config_defaults(hub_config *cfg);

/* Defaults, then path (NULL: defaults only). Returns 0, or -1 with a message in err. */
int hub_config_load(hub_config *cfg, const char *path, char *err, size_t errlen);

/* The volume with this name, or NULL. Borrowed from cfg. */
const hub_volume *hub_config_volume(const hub_config *cfg, const char *name);

/* The remote AE with this title, or NULL. Borrowed from cfg. */
const hub_remote_ae *hub_config_remote(const hub_config *cfg, const char *ae_title);

/* The spoke with this id, or NULL. Borrowed from cfg. */
const hub_spoke *hub_config_spoke(const hub_config *cfg, const char *id);

/* The spoke an AE title stores for (listed in its ae_titles), or NULL. */
const hub_spoke *hub_config_spoke_of_ae(const hub_config *cfg, const char *ae_title);

/* Writes the commented configuration (defaults when cfg is NULL). */
void hub_config_write(FILE *out, const hub_config *cfg);

void hub_config_free(hub_config *cfg);

#endif
