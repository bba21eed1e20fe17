/*
 * spoke_config.c - the option table of spoked/spokectl and the
 * [remote.AETITLE] sections.
 */
#include "spoke_config.h"

#include "config.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define O(f) offsetof(spoke_config, f)

static const dh_cfg_option spoke_options[] = {
	{ "spoke", "id", DH_CFG_STRING, "SITE1", O(id), 0, 0, NULL,
	  "this spoke's id: the spoke_id of its change contexts, as the hub's [spoke.ID] section", 1 },
	{ "spoke", "ae_title", DH_CFG_STRING, "SPOKE1", O(ae_title), 0, 0, NULL,
	  "AE title of spoked: the PACS stores to it, and it calls the hub with it", 1 },
	{ "spoke", "port", DH_CFG_INT, "11114", O(port), 1, 65535, NULL,
	  "TCP port of spoked's DICOM listener (the PACS stores here; storage commitment results arrive here)", 1 },
	{ "spoke", "store_dir", DH_CFG_STRING, "var/spoke", O(store_dir), 0, 0, NULL,
	  "directory where spoked keeps the objects it receives until they are committed at the hub", 1 },
	{ "spoke", "secret_key_file", DH_CFG_STRING, "", O(secret_key_file), 0, 0, NULL,
	  "file holding this spoke's CURVE secret key (Z85, from `spokectl keygen`); empty: no cc shipping", 1 },
	{ "spoke", "sop_conflict", DH_CFG_ENUM, "reject", O(sop_conflict), 0, 0, "reject|split|forward",
	  "known SOP Instance UID under another study: reject (0110), record a SPLIT to that "
	  "study, or forward as is (the hub assigns a new UID, kb-8993)", 1 },
	{ "spoke", "max_associations", DH_CFG_INT, "64", O(max_associations), 1, 10000, NULL,
	  "simultaneous associations from the PACS", 1 },
	{ "spoke", "max_pdu", DH_CFG_INT, "16352", O(max_pdu), 4096, 131072, NULL,
	  "maximum PDU size we receive, in bytes", 1 },
	{ "spoke", "artim_timeout", DH_CFG_INT, "5", O(artim_timeout), 1, 3600, NULL,
	  "seconds to wait for the A-ASSOCIATE-RQ on a new connection", 1 },
	{ "spoke", "acse_timeout", DH_CFG_INT, "10", O(acse_timeout), 1, 3600, NULL,
	  "seconds to wait for the answer to an association we request", 1 },
	{ "spoke", "dimse_timeout", DH_CFG_INT, "600", O(dimse_timeout), 1, 86400, NULL,
	  "seconds to wait on an open association for the next message", 1 },
	{ "spoke", "validate_calling_ae", DH_CFG_BOOL, "true", O(validate_calling_ae), 0, 0, NULL,
	  "reject associations whose Calling AE title has no [remote.AETITLE] section", 1 },
	{ "spoke", "log_level", DH_CFG_STRING, "info", O(log_level), 0, 0, NULL,
	  "error, warn, info, debug or trace", 1 },
	{ "spoke", "log_target", DH_CFG_STRING, "stderr", O(log_target), 0, 0, NULL, "stderr or syslog", 1 },
	{ "database", "conninfo", DH_CFG_STRING, "dbname=dcmspoke", O(conninfo), 0, 0, NULL,
	  "libpq connection string of the spoke's ledger database", 1 },
	{ "database", "pool_size", DH_CFG_INT, "8", O(pool_size), 1, 1000, NULL,
	  "database connections of spoked", 1 },
	{ "database", "auto_migrate", DH_CFG_BOOL, "true", O(auto_migrate), 0, 0, NULL,
	  "apply missing schema migrations at start-up", 1 },
	{ "hub", "host", DH_CFG_STRING, "127.0.0.1", O(hub_host), 0, 0, NULL,
	  "host of the hub's DICOM service", 1 },
	{ "hub", "port", DH_CFG_INT, "11112", O(hub_port), 1, 65535, NULL, "the hub's DICOM port", 1 },
	{ "hub", "ae_title", DH_CFG_STRING, "DCMHUB", O(hub_ae_title), 0, 0, NULL, "the hub's AE title", 1 },
	{ "hub", "cc_endpoint", DH_CFG_STRING, "tcp://127.0.0.1:11113", O(hub_cc_endpoint), 0, 0, NULL,
	  "the hub's ZeroMQ endpoint for change contexts (its cc.endpoint)", 1 },
	{ "hub", "public_key", DH_CFG_STRING, "", O(hub_public_key), 0, 0, NULL,
	  "the hub's CURVE public key (Z85, 40 characters; `hubctl keygen` prints it)", 1 },
	{ "hub", "tls", DH_CFG_BOOL, "false", O(hub_tls), 0, 0, NULL,
	  "reach the hub over TLS (hub.port is then its tls.port): forwarding, commitment, recall", 1 },
	{ "forward", "batch", DH_CFG_INT, "200", O(fwd_batch), 1, 100000, NULL,
	  "objects sent over one association and committed with one storage commitment request", 1 },
	{ "forward", "retry_min", DH_CFG_INT, "1", O(fwd_retry_min), 1, 86400, NULL,
	  "seconds before the first retry after the hub could not be reached or refused", 1 },
	{ "forward", "retry_max", DH_CFG_INT, "300", O(fwd_retry_max), 1, 86400, NULL,
	  "the back-off doubles up to this many seconds", 1 },
	{ "forward", "commit_timeout", DH_CFG_INT, "120", O(fwd_commit_timeout), 1, 86400, NULL,
	  "seconds to wait for the hub's storage commitment result before sending the objects again", 1 },
	{ "cc", "batch", DH_CFG_INT, "256", O(cc_batch), 1, 10000, NULL,
	  "change contexts sent in one message to the hub", 1 },
	{ "cc", "ack_timeout", DH_CFG_INT, "10", O(cc_ack_timeout), 1, 3600, NULL,
	  "seconds to wait for the hub's acknowledgement before reconnecting and sending again", 1 },
	DH_TLS_CFG_OPTIONS(spoke_config, tls),
	DH_CFG_END
};

#define R(f) offsetof(spoke_remote_ae, f)
static const dh_cfg_option remote_options[] = {
	{ NULL, "host", DH_CFG_STRING, "127.0.0.1", R(host), 0, 0, NULL,
	  "host name or address of the remote AE", 0 },
	{ NULL, "port", DH_CFG_INT, "104", R(port), 1, 65535, NULL, "its DICOM port", 0 },
	DH_CFG_END
};

static int remote_section(void *user, const char *section, const char *key, const char *value,
			  char *err, size_t errlen)
{
	spoke_config *cfg = user;
	if (strncmp(section, "remote.", 7) != 0 || !section[7]) {
		snprintf(err, errlen, "unknown section [%s]", section);
		return -1;
	}
	const char *ae = section + 7;
	if (strlen(ae) > 16) {
		snprintf(err, errlen, "[%s]: an AE title has at most 16 characters", section);
		return -1;
	}
	spoke_remote_ae *r = NULL;
	for (int i = 0; i < cfg->n_remotes; i++)
		if (strcmp(cfg->remotes[i].ae_title, ae) == 0)
			r = &cfg->remotes[i];
	if (!r) {
		spoke_remote_ae *n = realloc(cfg->remotes, sizeof(*n) * (size_t)(cfg->n_remotes + 1));
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

int spoke_config_load(spoke_config *cfg, const char *path, char *err, size_t errlen)
{
	memset(cfg, 0, sizeof(*cfg));
	if (!path)
		return dh_cfg_defaults(spoke_options, cfg);
	if (dh_cfg_load(path, spoke_options, cfg, remote_section, cfg, err, errlen) < 0)
		return -1;
	if (!dh_cfg_ae_title_ok(cfg->ae_title) || !dh_cfg_ae_title_ok(cfg->hub_ae_title)) {
		snprintf(err, errlen, "%s: spoke.ae_title and hub.ae_title must be AE titles (1-16 characters, "
			 "no leading or trailing blanks, no backslash)", path);
		return -1;
	}
	size_t n = strlen(cfg->id);
	if (n == 0 || n > 64 || strspn(cfg->id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
					    "0123456789._:-") != n) {
		snprintf(err, errlen, "%s: spoke.id must have 1-64 characters of A-Z a-z 0-9 . _ : -", path);
		return -1;
	}
	if (cfg->hub_public_key[0] && strlen(cfg->hub_public_key) != 40) {
		snprintf(err, errlen, "%s: hub.public_key must be a Z85 CURVE key (40 characters)", path);
		return -1;
	}
	if (cfg->tls.port == cfg->port) {
		snprintf(err, errlen, "%s: tls.port %ld is spoke.port too: the TLS listener needs a port of its own",
			 path, cfg->tls.port);
		return -1;
	}
	for (int i = 0; i < cfg->n_remotes; i++) {
		if (!dh_cfg_ae_title_ok(cfg->remotes[i].ae_title)) {
			snprintf(err, errlen, "%s: [remote.%s]: not an AE title", path, cfg->remotes[i].ae_title);
			return -1;
		}
	}
	return 0;
}

const spoke_remote_ae *spoke_config_remote(const spoke_config *cfg, const char *ae_title)
{
	for (int i = 0; i < cfg->n_remotes; i++)
		if (strcmp(cfg->remotes[i].ae_title, ae_title) == 0)
			return &cfg->remotes[i];
	return NULL;
}

void spoke_config_write(FILE *out, const spoke_config *cfg)
{
	fprintf(out, "# spoked/spokectl configuration (INI). Every option is shown with its default.\n"
		     "# Generated by `spoked --print-config`; see docs/configuration.md.\n\n");
	dh_cfg_write(out, spoke_options, cfg);
	fprintf(out, "\n# One section per DICOM peer: the spoke PACS (may store to spoked, and is\n"
		     "# the recall destination) and the hub (sends storage commitment results).\n"
		     "# The section name carries the AE title.\n");
	if (cfg && cfg->n_remotes) {
		for (int i = 0; i < cfg->n_remotes; i++)
			fprintf(out, "\n[remote.%s]\nhost = %s\nport = %ld\n", cfg->remotes[i].ae_title,
				cfg->remotes[i].host, cfg->remotes[i].port);
	} else {
		fprintf(out, "# [remote.PACS1]\n# host = 127.0.0.1\n# port = 104\n"
			     "# [remote.DCMHUB]\n# host = 127.0.0.1\n# port = 11112\n");
	}
}

void spoke_config_free(spoke_config *cfg)
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
	dh_cfg_free(spoke_options, cfg);
}
