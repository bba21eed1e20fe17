/*
 * hub_config.c - the option table of hubd and the [remote.AETITLE] sections.
 *
 * Defaults follow the IMPAX Data Center conformance statement, Table 2-39,
 * where it names one (port 11112, PDU 16352, ARTIM 5 s, DIMSE 600 s,
 * association open time-out 10 s, 512 associations, calling AE validation on).
 */
#include "hub_config.h"

#include "config.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define O(f) offsetof(hub_config, f)

static const dh_cfg_option hub_options[] = {
	{ "hub", "ae_title", DH_CFG_STRING, "DCMHUB", O(ae_title), 0, 0, NULL,
	  "AE title of the hub; associations calling another title get Verification only", 1 },
	{ "hub", "port", DH_CFG_INT, "11112", O(port), 1, 65535, NULL,
	  "TCP port of the DICOM listener (all IPv4 addresses)", 1 },
	{ "hub", "max_associations", DH_CFG_INT, "512", O(max_associations), 1, 100000, NULL,
	  "simultaneous associations; more are rejected as 'local limit exceeded'", 1 },
	{ "hub", "acceptor_threads", DH_CFG_INT, "4", O(acceptor_threads), 1, 64, NULL,
	  "threads reading new association requests, so a silent peer cannot block others", 1 },
	{ "hub", "max_pdu", DH_CFG_INT, "16352", O(max_pdu), 4096, 131072, NULL,
	  "maximum PDU size we receive, in bytes", 1 },
	{ "hub", "artim_timeout", DH_CFG_INT, "5", O(artim_timeout), 1, 3600, NULL,
	  "seconds to wait for the A-ASSOCIATE-RQ on a new connection", 1 },
	{ "hub", "acse_timeout", DH_CFG_INT, "10", O(acse_timeout), 1, 3600, NULL,
	  "seconds to wait for the answer to an association we request", 1 },
	{ "hub", "dimse_timeout", DH_CFG_INT, "600", O(dimse_timeout), 1, 86400, NULL,
	  "seconds to wait on an open association for the next message", 1 },
	{ "hub", "validate_calling_ae", DH_CFG_BOOL, "true", O(validate_calling_ae), 0, 0, NULL,
	  "reject associations whose Calling AE title has no [remote.AETITLE] section", 1 },
	{ "hub", "log_level", DH_CFG_STRING, "info", O(log_level), 0, 0, NULL,
	  "error, warn, info, debug or trace", 1 },
	{ "hub", "log_target", DH_CFG_STRING, "stderr", O(log_target), 0, 0, NULL,
	  "stderr or syslog", 1 },
	{ "database", "conninfo", DH_CFG_STRING, "dbname=dcmhub", O(conninfo), 0, 0, NULL,
	  "libpq connection string of the index database", 1 },
	{ "database", "pool_size", DH_CFG_INT, "16", O(pool_size), 1, 1000, NULL,
	  "database connections shared by all associations", 1 },
	{ "database", "auto_migrate", DH_CFG_BOOL, "true", O(auto_migrate), 0, 0, NULL,
	  "apply missing schema migrations at start-up", 1 },
	{ "storage", "cache_dir", DH_CFG_STRING, "var/cache", O(cache_dir), 0, 0, NULL,
	  "directory of the online cache (received objects)", 1 },
	{ "storage", "min_free_mb", DH_CFG_INT, "512", O(min_free_mb), 0, 1L << 40, NULL,
	  "refuse objects (status A700) when less than this many MiB would stay free", 1 },
	{ "storage", "duplicate_policy", DH_CFG_ENUM, "reject", O(duplicate_policy), 0, 0,
	  "reject|accept|overwrite",
	  "same SOP Instance UID in the same study: reject (0110), accept silently (0000) "
	  "or overwrite when the MD5 differs", 1 },
	{ "storage", "accept_unlisted_sop_classes", DH_CFG_BOOL, "true",
	  O(accept_unlisted_sop_classes), 0, 0, NULL,
	  "also accept standard storage SOP classes newer than the conformance statement's table", 1 },
	{ "stgcmt", "retry_interval", DH_CFG_INT, "10", O(retry_interval), 1, 86400, NULL,
	  "seconds between attempts to deliver a storage commitment result", 1 },
	{ "stgcmt", "max_attempts", DH_CFG_INT, "30", O(max_attempts), 1, 100000, NULL,
	  "delivery attempts before a storage commitment result is marked failed", 1 },
	DH_CFG_END
};

#define R(f) offsetof(hub_remote_ae, f)
static const dh_cfg_option remote_options[] = {
	{ NULL, "host", DH_CFG_STRING, "127.0.0.1", R(host), 0, 0, NULL,
	  "host name or address of the remote AE", 0 },
	{ NULL, "port", DH_CFG_INT, "104", R(port), 1, 65535, NULL, "its DICOM port", 0 },
	DH_CFG_END
};

static int remote_section(void *user, const char *section, const char *key, const char *value,
			  char *err, size_t errlen)
{
	hub_config *cfg = user;
	if (strncmp(section, "remote.", 7) != 0 || !section[7]) {
		snprintf(err, errlen, "unknown section [%s]", section);
		return -1;
	}
	const char *ae = section + 7;
	if (strlen(ae) > 16) {
		snprintf(err, errlen, "[%s]: an AE title has at most 16 characters", section);
		return -1;
	}
	hub_remote_ae *r = NULL;
	for (int i = 0; i < cfg->n_remotes; i++)
		if (strcmp(cfg->remotes[i].ae_title, ae) == 0)
			r = &cfg->remotes[i];
	if (!r) {
		hub_remote_ae *n = realloc(cfg->remotes, sizeof(*n) * (size_t)(cfg->n_remotes + 1));
		if (!n)
			return -1;
		cfg->remotes = n;
		r = &cfg->remotes[cfg->n_remotes++];
		memset(r, 0, sizeof(*r));
		if (dh_cfg_defaults(remote_options, r) < 0 || !(r->ae_title = strdup(ae)))
			return -1;
	}
	int rc = dh_cfg_set(remote_options, r, NULL, key, value, err, errlen);
	if (rc == 1)
		snprintf(err, errlen, "[%s]: unknown key '%s'", section, key);
	return rc == 0 ? 0 : -1;
}

int hub_config_defaults(hub_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	return dh_cfg_defaults(hub_options, cfg);
}

int hub_config_load(hub_config *cfg, const char *path, char *err, size_t errlen)
{
	memset(cfg, 0, sizeof(*cfg));
	if (!path)
		return dh_cfg_defaults(hub_options, cfg);
	return dh_cfg_load(path, hub_options, cfg, remote_section, cfg, err, errlen);
}

const hub_remote_ae *hub_config_remote(const hub_config *cfg, const char *ae_title)
{
	for (int i = 0; i < cfg->n_remotes; i++)
		if (strcmp(cfg->remotes[i].ae_title, ae_title) == 0)
			return &cfg->remotes[i];
	return NULL;
}

void hub_config_write(FILE *out, const hub_config *cfg)
{
	fprintf(out, "# hubd configuration (INI). Every option is shown with its default.\n"
		     "# Generated by `hubd --print-config`; see docs/configuration.md.\n\n");
	dh_cfg_write(out, hub_options, cfg);
	fprintf(out, "\n# One section per remote AE allowed to associate (and reachable for\n"
		     "# storage commitment results and C-MOVE destinations). The section name\n"
		     "# carries the AE title.\n");
	if (cfg && cfg->n_remotes) {
		for (int i = 0; i < cfg->n_remotes; i++)
			fprintf(out, "\n[remote.%s]\nhost = %s\nport = %ld\n", cfg->remotes[i].ae_title,
				cfg->remotes[i].host, cfg->remotes[i].port);
	} else {
		fprintf(out, "# [remote.MODALITY1]\n# host = 127.0.0.1\n# port = 104\n");
	}
}

void hub_config_free(hub_config *cfg)
{
	if (!cfg)
		return;
	for (int i = 0; i < cfg->n_remotes; i++) {
		dh_cfg_free(remote_options, &cfg->remotes[i]);
		free(cfg->remotes[i].ae_title);
	}
	free(cfg->remotes);
	cfg->remotes = NULL;
	cfg->n_remotes = 0;
	dh_cfg_free(hub_options, cfg);
}
