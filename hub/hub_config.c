/*
 * hub_config.c - the option table of hubd and the [remote.AETITLE] sections.
 *
 * Defaults follow the IMPAX Data Center conformance statement, Table 2-39,
 * where it names one (port 11112, PDU 16352, ARTIM 5 s, DIMSE 600 s,
 * association open time-out 10 s, 512 associations, calling AE validation on).
 */
#include "hub_config.h"

#include "assoc_rules.h"
#include "config.h"

#include <arpa/inet.h>

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
	{ "qr", "pending_interval", DH_CFG_INT, "1", O(pending_interval), 0, 3600, NULL,
	  "seconds between pending C-MOVE responses (0: after every sub-operation)", 1 },
	{ "qr", "restrict_to_source", DH_CFG_BOOL, "false", O(restrict_to_source), 0, 0, NULL,
	  "C-MOVE sends an object only to the AE that sent it to the hub (destination = source, §5.2)", 1 },
	{ "qr", "move_timeout", DH_CFG_INT, "10", O(move_timeout), 1, 3600, NULL,
	  "seconds to wait for a move destination to accept the association", 1 },
	{ "archive", "enabled", DH_CFG_BOOL, "true", O(archive_enabled), 0, 0, NULL,
	  "pack series from the online cache into TAR files on the [volume.*] volumes", 1 },
	{ "archive", "stable_seconds", DH_CFG_INT, "300", O(archive_stable_seconds), 0, 86400 * 30, NULL,
	  "a series is archived once its study received nothing for this many seconds", 1 },
	{ "archive", "scan_interval", DH_CFG_INT, "10", O(archive_scan_interval), 1, 86400, NULL,
	  "seconds between looks for series to archive and cache to evict", 1 },
	{ "archive", "cache_high_mb", DH_CFG_INT, "0", O(cache_high_mb), 0, 1L << 40, NULL,
	  "evict archived objects from the cache when it holds more than this many MiB (0: never)", 1 },
	{ "archive", "cache_low_mb", DH_CFG_INT, "0", O(cache_low_mb), 0, 1L << 40, NULL,
	  "eviction stops when the cache is down to this many MiB", 1 },
	{ "archive", "read_verify", DH_CFG_ENUM, "digest", O(archive_read_verify), 0, 0, "digest|md5",
	  "check of objects read from TARs: digest = XXH3-128 recorded at ingest (MD5 when there is none), "
	  "md5 = always the MD5", 1 },
	{ "stgcmt", "retry_interval", DH_CFG_INT, "10", O(retry_interval), 1, 86400, NULL,
	  "seconds between attempts to deliver a storage commitment result", 1 },
	{ "stgcmt", "max_attempts", DH_CFG_INT, "30", O(max_attempts), 1, 100000, NULL,
	  "delivery attempts before a storage commitment result is marked failed", 1 },
	{ "external", "scan_interval", DH_CFG_INT, "5", O(ext_scan_interval), 1, 86400, NULL,
	  "seconds between looks for objects to export to [remote.*] sections with export = true", 1 },
	{ "external", "stable_seconds", DH_CFG_INT, "300", O(ext_stable_seconds), 0, 86400 * 30, NULL,
	  "an object is exported once its study received nothing for this many seconds", 1 },
	{ "external", "retry_interval", DH_CFG_INT, "60", O(ext_retry_interval), 1, 86400, NULL,
	  "seconds before an export that could not reach its archive is tried again", 1 },
	{ "external", "commit_timeout", DH_CFG_INT, "3600", O(ext_commit_timeout), 1, 86400 * 30, NULL,
	  "seconds to wait for a storage commitment result before requesting commitment again", 1 },
	{ "external", "batch", DH_CFG_INT, "200", O(ext_batch), 1, 10000, NULL,
	  "objects sent per association (and per storage commitment request)", 1 },
	{ "external", "report_wait", DH_CFG_INT, "1", O(ext_report_wait), 0, 600, NULL,
	  "seconds to wait on the association for an N-EVENT-REPORT after the N-ACTION (archives that "
	  "report there); 0: release at once, results come on a new association", 1 },
	{ "cc", "endpoint", DH_CFG_STRING, "tcp://127.0.0.1:11113", O(cc_endpoint), 0, 0, NULL,
	  "ZeroMQ endpoint where spokes deliver change contexts (CURVE encrypted)", 1 },
	{ "cc", "secret_key_file", DH_CFG_STRING, "", O(cc_secret_key_file), 0, 0, NULL,
	  "file holding the hub's CURVE secret key (Z85, from `hubctl keygen`); empty: no cc endpoint", 1 },
	{ "cc", "enforce_ownership", DH_CFG_BOOL, "true", O(cc_enforce_ownership), 0, 0, NULL,
	  "refuse a change context that touches a study another spoke owns", 1 },
	{ "cc", "park_timeout", DH_CFG_INT, "3600", O(cc_park_timeout), 1, 86400 * 365, NULL,
	  "seconds a change context may wait for its objects before it becomes an operator item", 1 },
	{ "cc", "retry_interval", DH_CFG_INT, "2", O(cc_retry_interval), 1, 3600, NULL,
	  "seconds between attempts to apply parked change contexts", 1 },
	{ "wado", "enabled", DH_CFG_BOOL, "false", O(wado_enabled), 0, 0, NULL,
	  "serve WADO-URI (HTTP GET /wado?requestType=WADO&...; conformance §6)", 1 },
	{ "wado", "bind_address", DH_CFG_STRING, "127.0.0.1", O(wado_bind_address), 0, 0, NULL,
	  "IPv4 or IPv6 address the WADO listener binds to (0.0.0.0 or :: for all); WADO has no "
	  "other access control", 1 },
	{ "wado", "port", DH_CFG_INT, "8080", O(wado_port), 1, 65535, NULL, "TCP port of the WADO listener", 1 },
	{ "wado", "max_connections", DH_CFG_INT, "64", O(wado_max_connections), 1, 10000, NULL,
	  "simultaneous HTTP connections (one thread each); more are refused", 1 },
	{ "wado", "timeout", DH_CFG_INT, "30", O(wado_timeout), 1, 3600, NULL,
	  "seconds an idle or stalled HTTP connection is kept before it is closed", 1 },
	{ "wado", "tls_cert_file", DH_CFG_STRING, "", O(wado_tls_cert_file), 0, 0, NULL,
	  "PEM certificate (chain) for HTTPS on the WADO port; empty: plain HTTP", 1 },
	{ "wado", "tls_key_file", DH_CFG_STRING, "", O(wado_tls_key_file), 0, 0, NULL,
	  "PEM private key of tls_cert_file (not readable by group or others)", 1 },
	DH_TLS_CFG_OPTIONS(hub_config, tls),
	{ "mpps", "destinations", DH_CFG_STRING, "", O(mpps_destinations), 0, 0, NULL,
	  "comma-separated AE titles (each with a [remote.AE] section) that receive every MPPS "
	  "N-CREATE/N-SET as received; empty: no forwarding", 1 },
	{ "mpps", "retry_interval", DH_CFG_INT, "10", O(mpps_retry_interval), 1, 86400, NULL,
	  "seconds before the first retry of an unreachable MPPS destination; doubles per attempt", 1 },
	{ "mpps", "retry_max_interval", DH_CFG_INT, "600", O(mpps_retry_max_interval), 1, 86400 * 7, NULL,
	  "longest wait between retries of an unreachable MPPS destination (retried without limit)", 1 },
	DH_CFG_END
};

#define S(f) offsetof(hub_spoke, f)
static const dh_cfg_option spoke_options[] = {
	{ NULL, "public_key", DH_CFG_STRING, "", S(public_key), 0, 0, NULL,
	  "the spoke's CURVE public key (Z85, 40 characters; `spokectl keygen` prints it)", 0 },
	{ NULL, "ae_titles", DH_CFG_STRING, "", S(ae_titles), 0, 0, NULL,
	  "comma-separated AE titles that store the spoke's studies (they become the spoke's)", 0 },
	DH_CFG_END
};

#define R(f) offsetof(hub_remote_ae, f)
static const dh_cfg_option remote_options[] = {
	{ NULL, "host", DH_CFG_STRING, "127.0.0.1", R(host), 0, 0, NULL,
	  "host name or address of the remote AE", 0 },
	{ NULL, "port", DH_CFG_INT, "104", R(port), 1, 65535, NULL, "its DICOM port", 0 },
	{ NULL, "uncompressed", DH_CFG_BOOL, "false", R(uncompressed), 0, 0, NULL,
	  "as a C-MOVE destination, always receive native (uncompressed) pixel data", 0 },
	{ NULL, "tls", DH_CFG_BOOL, "false", R(tls), 0, 0, NULL,
	  "the hub reaches it over TLS (port is then its TLS port): C-MOVE, storage commitment results", 0 },
	{ NULL, "require_tls", DH_CFG_BOOL, "false", R(require_tls), 0, 0, NULL,
	  "accept its associations only on the TLS listener (tls.port)", 0 },
	{ NULL, "services", DH_CFG_STRING, "all", R(services), 0, 0, NULL,
	  "services it may use: all, none, or a list of echo, store, find, move, get, stgcmt, mpps", 0 },
	{ NULL, "export", DH_CFG_BOOL, "false", R(export_objects), 0, 0, NULL,
	  "external archive: the hub exports every object to it (C-STORE) for long-term storage", 0 },
	{ NULL, "commit", DH_CFG_BOOL, "true", R(commit), 0, 0, NULL,
	  "with export: request Storage Commitment; false: a C-STORE success counts as held", 0 },
	{ NULL, "forward_mode", DH_CFG_ENUM, "direct", R(forward_mode), 0, 0, "direct|proxy",
	  "with export: a C-MOVE for objects held only there is forwarded to it; direct: it sends to "
	  "the move destination, proxy: to the hub, which sends on", 0 },
	DH_CFG_END
};

#define V(f) offsetof(hub_volume, f)
static const dh_cfg_option volume_options[] = {
	{ NULL, "path", DH_CFG_STRING, "", V(path), 0, 0, NULL, "directory of the nearline volume", 0 },
	{ NULL, "capacity_mb", DH_CFG_INT, "0", V(capacity_mb), 0, 1L << 40, NULL,
	  "MiB the volume may hold; when full the next volume is used (0: no limit)", 0 },
	DH_CFG_END
};

static int volume_section(hub_config *cfg, const char *section, const char *key, const char *value,
			  char *err, size_t errlen)
{
	const char *name = section + 7;
	hub_volume *v = NULL;
	for (int i = 0; i < cfg->n_volumes; i++)
		if (strcmp(cfg->volumes[i].name, name) == 0)
			v = &cfg->volumes[i];
	if (!v) {
		hub_volume *n = realloc(cfg->volumes, sizeof(*n) * (size_t)(cfg->n_volumes + 1));
		if (!n)
			return -1;
		cfg->volumes = n;
		v = &cfg->volumes[cfg->n_volumes++];
		memset(v, 0, sizeof(*v));
		if (dh_cfg_defaults(volume_options, v) < 0 || !(v->name = strdup(name)))
			return -1;
	}
	int rc = dh_cfg_set(volume_options, v, NULL, key, value, err, errlen);
	if (rc == 1)
		snprintf(err, errlen, "[%s]: unknown key '%s'", section, key);
	return rc == 0 ? 0 : -1;
}

static int spoke_section(hub_config *cfg, const char *section, const char *key, const char *value,
			 char *err, size_t errlen)
{
	const char *id = section + 6;
	hub_spoke *sp = NULL;
	for (int i = 0; i < cfg->n_spokes; i++)
		if (strcmp(cfg->spokes[i].id, id) == 0)
			sp = &cfg->spokes[i];
	if (!sp) {
		hub_spoke *n = realloc(cfg->spokes, sizeof(*n) * (size_t)(cfg->n_spokes + 1));
		if (!n)
			return -1;
		cfg->spokes = n;
		sp = &cfg->spokes[cfg->n_spokes++];
		memset(sp, 0, sizeof(*sp));
		if (dh_cfg_defaults(spoke_options, sp) < 0 || !(sp->id = strdup(id)))
			return -1;
	}
	int rc = dh_cfg_set(spoke_options, sp, NULL, key, value, err, errlen);
	if (rc == 1)
		snprintf(err, errlen, "[%s]: unknown key '%s'", section, key);
	return rc == 0 ? 0 : -1;
}

static int remote_section(void *user, const char *section, const char *key, const char *value,
			  char *err, size_t errlen)
{
	hub_config *cfg = user;
	if (strncmp(section, "volume.", 7) == 0 && section[7])
		return volume_section(cfg, section, key, value, err, errlen);
	if (strncmp(section, "spoke.", 6) == 0 && section[6])
		return spoke_section(cfg, section, key, value, err, errlen);
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

/* Every MPPS destination must be an AE title with a [remote.AE] section (its address). */
static int hub_config_check_mpps(const hub_config *cfg, const char *path, char *err, size_t errlen)
{
	const char *p = cfg->mpps_destinations;
	while (p && *p) {
		while (*p == ' ' || *p == ',')
			p++;
		size_t k = strcspn(p, ","), e = k;
		while (e > 0 && p[e - 1] == ' ')
			e--;
		if (e > 0) {
			char ae[17];
			if (e > 16) {
				snprintf(err, errlen, "%s: mpps.destinations: '%.*s' is not an AE title", path, (int)e, p);
				return -1;
			}
			memcpy(ae, p, e);
			ae[e] = '\0';
			if (!hub_config_remote(cfg, ae)) {
				snprintf(err, errlen, "%s: mpps.destinations: %s has no [remote.%s] section", path, ae, ae);
				return -1;
			}
		}
		p += k;
	}
	return 0;
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
	if (dh_cfg_load(path, hub_options, cfg, remote_section, cfg, err, errlen) < 0)
		return -1;
	if (!dh_cfg_ae_title_ok(cfg->ae_title)) {
		snprintf(err, errlen, "%s: hub.ae_title '%s' is not an AE title (1-16 characters, no "
			 "leading or trailing blanks, no backslash)", path, cfg->ae_title ? cfg->ae_title : "");
		return -1;
	}
	unsigned char addr[sizeof(struct in6_addr)];
	if (inet_pton(AF_INET, cfg->wado_bind_address, addr) != 1 &&
	    inet_pton(AF_INET6, cfg->wado_bind_address, addr) != 1) {
		snprintf(err, errlen, "%s: wado.bind_address '%s' is not an IPv4 or IPv6 address", path,
			 cfg->wado_bind_address);
		return -1;
	}
	if (!cfg->wado_tls_cert_file[0] != !cfg->wado_tls_key_file[0]) {
		snprintf(err, errlen, "%s: wado.tls_cert_file and wado.tls_key_file go together", path);
		return -1;
	}
	for (int i = 0; i < cfg->n_remotes; i++) {
		if (!dh_cfg_ae_title_ok(cfg->remotes[i].ae_title)) {
			snprintf(err, errlen, "%s: [remote.%s]: not an AE title", path, cfg->remotes[i].ae_title);
			return -1;
		}
		char why[200];
		if (assoc_rules_parse(cfg->remotes[i].services, &cfg->remotes[i].services_mask, why,
				      sizeof(why)) < 0) {
			snprintf(err, errlen, "%s: [remote.%s]: services: %s", path, cfg->remotes[i].ae_title, why);
			return -1;
		}
		if (cfg->remotes[i].require_tls && cfg->tls.port == 0) {
			snprintf(err, errlen, "%s: [remote.%s]: require_tls needs a TLS listener (tls.port)", path,
				 cfg->remotes[i].ae_title);
			return -1;
		}
	}
	if (cfg->tls.port == cfg->port) {
		snprintf(err, errlen, "%s: tls.port %ld is hub.port too: the TLS listener needs a port of its own",
			 path, cfg->tls.port);
		return -1;
	}
	if (hub_config_check_mpps(cfg, path, err, errlen) < 0)
		return -1;
	for (int i = 0; i < cfg->n_spokes; i++) {
		const hub_spoke *sp = &cfg->spokes[i];
		if (strlen(sp->id) > 64 || strspn(sp->id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
						     "0123456789._:-") != strlen(sp->id)) {
			snprintf(err, errlen, "%s: [spoke.%s]: a spoke id has 1-64 characters of A-Z a-z 0-9 . _ : -",
				 path, sp->id);
			return -1;
		}
		if (strlen(sp->public_key) != 40) {
			snprintf(err, errlen, "%s: [spoke.%s]: public_key must be a Z85 CURVE key (40 characters)",
				 path, sp->id);
			return -1;
		}
	}
	return 0;
}

const hub_spoke *hub_config_spoke(const hub_config *cfg, const char *id)
{
	for (int i = 0; i < cfg->n_spokes; i++)
		if (strcmp(cfg->spokes[i].id, id) == 0)
			return &cfg->spokes[i];
	return NULL;
}

const hub_spoke *hub_config_spoke_of_ae(const hub_config *cfg, const char *ae_title)
{
	size_t n = strlen(ae_title);
	for (int i = 0; i < cfg->n_spokes; i++) {
		const char *p = cfg->spokes[i].ae_titles;
		while (p && *p) {
			while (*p == ' ' || *p == ',')
				p++;
			size_t k = strcspn(p, ",");
			size_t e = k;
			while (e > 0 && p[e - 1] == ' ')
				e--;
			if (e == n && e > 0 && strncmp(p, ae_title, n) == 0)
				return &cfg->spokes[i];
			p += k;
		}
	}
	return NULL;
}

const hub_volume *hub_config_volume(const hub_config *cfg, const char *name)
{
	for (int i = 0; i < cfg->n_volumes; i++)
		if (strcmp(cfg->volumes[i].name, name) == 0)
			return &cfg->volumes[i];
	return NULL;
}

const hub_remote_ae *hub_config_remote(const hub_config *cfg, const char *ae_title)
{
	for (int i = 0; i < cfg->n_remotes; i++)
		if (strcmp(cfg->remotes[i].ae_title, ae_title) == 0)
			return &cfg->remotes[i];
	return NULL;
}

static void write_volumes(FILE *out, const hub_config *cfg)
{
	fprintf(out, "\n# One section per nearline volume, used in the order given; a volume\n"
		     "# whose capacity is reached is closed and the next one used.\n");
	if (cfg && cfg->n_volumes) {
		for (int i = 0; i < cfg->n_volumes; i++)
			fprintf(out, "\n[volume.%s]\npath = %s\ncapacity_mb = %ld\n", cfg->volumes[i].name,
				cfg->volumes[i].path, cfg->volumes[i].capacity_mb);
	} else {
		fprintf(out, "# [volume.NL1]\n# path = /srv/dcmhub/nearline1\n# capacity_mb = 0\n");
	}
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
		for (int i = 0; i < cfg->n_remotes; i++) {
			fprintf(out, "\n[remote.%s]\nhost = %s\nport = %ld\nuncompressed = %s\n",
				cfg->remotes[i].ae_title, cfg->remotes[i].host, cfg->remotes[i].port,
				cfg->remotes[i].uncompressed ? "true" : "false");
			fprintf(out, "tls = %s\nrequire_tls = %s\nservices = %s\n", cfg->remotes[i].tls ? "true" : "false",
				cfg->remotes[i].require_tls ? "true" : "false", cfg->remotes[i].services);
			if (cfg->remotes[i].export_objects)
				fprintf(out, "export = true\ncommit = %s\nforward_mode = %s\n",
					cfg->remotes[i].commit ? "true" : "false",
					cfg->remotes[i].forward_mode == HUB_FWD_PROXY ? "proxy" : "direct");
		}
	} else {
		fprintf(out, "# [remote.MODALITY1]\n# host = 127.0.0.1\n# port = 104\n# uncompressed = false\n");
		fprintf(out, "# tls = false\n# require_tls = false\n# services = all\n");
		fprintf(out, "# An external archive also has (see docs/configuration.md):\n"
			     "# export = false\n# commit = true\n# forward_mode = direct\n");
	}
	write_volumes(out, cfg);
	fprintf(out, "\n# One section per spoke allowed to send change contexts. The section name\n"
		     "# carries the spoke id (its spoked's spoke.id).\n");
	if (cfg && cfg->n_spokes) {
		for (int i = 0; i < cfg->n_spokes; i++)
			fprintf(out, "\n[spoke.%s]\npublic_key = %s\nae_titles = %s\n", cfg->spokes[i].id,
				cfg->spokes[i].public_key, cfg->spokes[i].ae_titles);
	} else {
		fprintf(out, "# [spoke.SITE1]\n# public_key = <40 Z85 characters from `spokectl keygen`>\n"
			     "# ae_titles = SPOKE1\n");
	}
}

void hub_config_free(hub_config *cfg)
{
	if (!cfg)
		return;
	for (int i = 0; i < cfg->n_volumes; i++) {
		dh_cfg_free(volume_options, &cfg->volumes[i]);
		free(cfg->volumes[i].name);
	}
	free(cfg->volumes);
	cfg->volumes = NULL;
	for (int i = 0; i < cfg->n_spokes; i++) {
		dh_cfg_free(spoke_options, &cfg->spokes[i]);
		free(cfg->spokes[i].id);
	}
	free(cfg->spokes);
	cfg->spokes = NULL;
	cfg->n_spokes = 0;
	cfg->n_volumes = 0;
	for (int i = 0; i < cfg->n_remotes; i++) {
		dh_cfg_free(remote_options, &cfg->remotes[i]);
		free(cfg->remotes[i].ae_title);
	}
	free(cfg->remotes);
	cfg->remotes = NULL;
	cfg->n_remotes = 0;
	dh_cfg_free(hub_options, cfg);
}
