/*
 * test_hub_config.c - unit tests for hub/hub_config.c.
 *
 * hubd's behaviour at the edges (port, PDU size, time-outs, association
 * limit, duplicate policy) comes from these defaults, which the conformance
 * statement fixes, so they are pinned here. The [remote.AETITLE] sections
 * are the list of peers the hub talks to: an AE title too long for DICOM or
 * a misspelt key must stop the daemon with a message, not be ignored. And
 * `hubd --print-config` output must be a valid configuration that means
 * exactly what was loaded (the write/load round trip).
 */
#include "hub_config.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char base[] = "/tmp/dh_test_hub_config.XXXXXX";

static int suite_init(void)
{
	return mkdtemp(base) != NULL ? 0 : -1;
}

static int suite_clean(void)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	return system(cmd) == 0 ? 0 : -1;
}

/* Writes text to base/name and puts the path in path. Returns 0 on success. */
static int write_file(char *path, size_t len, const char *name, const char *text)
{
	FILE *f;

	snprintf(path, len, "%s/%s", base, name);
	f = fopen(path, "w");
	if (f == NULL)
		return -1;
	fputs(text, f);
	return fclose(f) == 0 ? 0 : -1;
}

static void check_defaults(const hub_config *c)
{
	CU_ASSERT_PTR_NOT_NULL_FATAL(c->ae_title);
	CU_ASSERT_STRING_EQUAL(c->ae_title, "DCMHUB");
	CU_ASSERT_EQUAL(c->port, 11112);
	CU_ASSERT_EQUAL(c->max_pdu, 16352);
	CU_ASSERT_EQUAL(c->artim_timeout, 5);
	CU_ASSERT_EQUAL(c->dimse_timeout, 600);
	CU_ASSERT_EQUAL(c->acse_timeout, 10);
	CU_ASSERT_EQUAL(c->max_associations, 512);
	CU_ASSERT_EQUAL(c->validate_calling_ae, 1);
	CU_ASSERT_EQUAL(c->duplicate_policy, HUB_DUP_REJECT);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c->conninfo);
	CU_ASSERT_STRING_EQUAL(c->conninfo, "dbname=dcmhub");
	CU_ASSERT_EQUAL(c->pool_size, 16);
	CU_ASSERT_EQUAL(c->auto_migrate, 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c->cache_dir);
	CU_ASSERT_STRING_EQUAL(c->cache_dir, "var/cache");
	CU_ASSERT_EQUAL(c->min_free_mb, 512);
	CU_ASSERT_EQUAL(c->retry_interval, 10);
	CU_ASSERT_EQUAL(c->max_attempts, 30);
	CU_ASSERT_EQUAL(c->n_remotes, 0);
	CU_ASSERT_PTR_NULL(c->remotes);
}

static void test_defaults(void)
{
	hub_config c;

	CU_ASSERT_EQUAL_FATAL(hub_config_defaults(&c), 0);
	check_defaults(&c);
	hub_config_free(&c);
	/* free resets what it released */
	CU_ASSERT_PTR_NULL(c.ae_title);
	CU_ASSERT_PTR_NULL(c.remotes);
	CU_ASSERT_EQUAL(c.n_remotes, 0);
}

static void test_load_null_path_is_defaults(void)
{
	hub_config c;
	char err[256] = "";

	CU_ASSERT_EQUAL_FATAL(hub_config_load(&c, NULL, err, sizeof(err)), 0);
	check_defaults(&c);
	hub_config_free(&c);
}

static void test_load_file(void)
{
	hub_config c;
	char path[512], err[512] = "";
	const hub_remote_ae *r;

	CU_ASSERT_EQUAL_FATAL(write_file(path, sizeof(path), "basic.ini",
		"[hub]\n"
		"port = 4242\n"
		"\n"
		"[remote.PACS1]\n"
		"host = 10.1.2.3\n"
		"port = 2104\n"
		"\n"
		"[storage]\n"
		"duplicate_policy = overwrite\n"
		"\n"
		"[remote.CT01]\n"
		"port = 3104\n"), 0);
	CU_ASSERT_EQUAL_FATAL(hub_config_load(&c, path, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(c.port, 4242);
	CU_ASSERT_EQUAL(c.duplicate_policy, HUB_DUP_OVERWRITE);
	/* what the file does not set keeps its default */
	CU_ASSERT_EQUAL(c.max_pdu, 16352);
	CU_ASSERT_EQUAL(c.dimse_timeout, 600);
	CU_ASSERT_EQUAL(c.n_remotes, 2);

	r = hub_config_remote(&c, "PACS1");
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_STRING_EQUAL(r->ae_title, "PACS1");
	CU_ASSERT_STRING_EQUAL(r->host, "10.1.2.3");
	CU_ASSERT_EQUAL(r->port, 2104);
	CU_ASSERT_EQUAL(r->uncompressed, 0);
	r = hub_config_remote(&c, "CT01");
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_STRING_EQUAL(r->host, "127.0.0.1"); /* remote default */
	CU_ASSERT_EQUAL(r->port, 3104);
	CU_ASSERT_PTR_NULL(hub_config_remote(&c, "PACS2"));
	/* AE titles are matched exactly */
	CU_ASSERT_PTR_NULL(hub_config_remote(&c, "pacs1"));
	CU_ASSERT_PTR_NULL(hub_config_remote(&c, "PACS"));
	hub_config_free(&c);
}

static void test_ae_title_of_16_is_fine(void)
{
	hub_config c;
	char path[512], err[512] = "";

	CU_ASSERT_EQUAL_FATAL(write_file(path, sizeof(path), "ae16.ini",
		"[remote.ABCDEFGHIJKLMNOP]\nport = 104\n"), 0);
	CU_ASSERT_EQUAL(hub_config_load(&c, path, err, sizeof(err)), 0);
	CU_ASSERT_PTR_NOT_NULL(hub_config_remote(&c, "ABCDEFGHIJKLMNOP"));
	hub_config_free(&c);
}

static void test_ae_title_too_long(void)
{
	hub_config c;
	char path[512], err[512] = "";

	CU_ASSERT_EQUAL_FATAL(write_file(path, sizeof(path), "ae17.ini",
		"[hub]\nport = 104\n[remote.ABCDEFGHIJKLMNOPQ]\nhost = 10.0.0.1\n"), 0);
	CU_ASSERT_EQUAL(hub_config_load(&c, path, err, sizeof(err)), -1);
	CU_ASSERT(err[0] != '\0');
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "ABCDEFGHIJKLMNOPQ"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, ":4:")); /* the line of the offending key */
	CU_ASSERT_PTR_NULL(hub_config_remote(&c, "ABCDEFGHIJKLMNOPQ"));
	hub_config_free(&c);
}

static void test_unknown_remote_key(void)
{
	hub_config c;
	char path[512], err[512] = "";

	CU_ASSERT_EQUAL_FATAL(write_file(path, sizeof(path), "badkey.ini",
		"[remote.PACS1]\nhost = 10.0.0.1\nprot = 104\n"), 0);
	CU_ASSERT_EQUAL(hub_config_load(&c, path, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "prot"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "PACS1"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, ":3:"));
	/* a partly filled config is still released cleanly (see the ASan run) */
	hub_config_free(&c);
}

static void test_bad_values(void)
{
	hub_config c;
	char path[512], err[512] = "";

	CU_ASSERT_EQUAL_FATAL(write_file(path, sizeof(path), "badval.ini",
		"[remote.PACS1]\nport = 70000\n"), 0);
	CU_ASSERT_EQUAL(hub_config_load(&c, path, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "70000"));
	hub_config_free(&c);

	err[0] = '\0';
	CU_ASSERT_EQUAL_FATAL(write_file(path, sizeof(path), "badpolicy.ini",
		"[storage]\nduplicate_policy = sometimes\n"), 0);
	CU_ASSERT_EQUAL(hub_config_load(&c, path, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "sometimes"));
	hub_config_free(&c);

	err[0] = '\0';
	CU_ASSERT_EQUAL_FATAL(write_file(path, sizeof(path), "badsection.ini",
		"[remotes.PACS1]\nport = 104\n"), 0);
	CU_ASSERT_EQUAL(hub_config_load(&c, path, err, sizeof(err)), -1);
	CU_ASSERT(err[0] != '\0');
	hub_config_free(&c);

	err[0] = '\0';
	snprintf(path, sizeof(path), "%s/missing.ini", base);
	CU_ASSERT_EQUAL(hub_config_load(&c, path, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "missing.ini"));
	hub_config_free(&c);
}

/* Every scalar field and every remote of a must equal b's. */
static void check_same(const hub_config *a, const hub_config *b)
{
	CU_ASSERT_STRING_EQUAL(a->ae_title, b->ae_title);
	CU_ASSERT_EQUAL(a->port, b->port);
	CU_ASSERT_EQUAL(a->max_associations, b->max_associations);
	CU_ASSERT_EQUAL(a->acceptor_threads, b->acceptor_threads);
	CU_ASSERT_EQUAL(a->max_pdu, b->max_pdu);
	CU_ASSERT_EQUAL(a->artim_timeout, b->artim_timeout);
	CU_ASSERT_EQUAL(a->acse_timeout, b->acse_timeout);
	CU_ASSERT_EQUAL(a->dimse_timeout, b->dimse_timeout);
	CU_ASSERT_EQUAL(a->validate_calling_ae, b->validate_calling_ae);
	CU_ASSERT_STRING_EQUAL(a->log_level, b->log_level);
	CU_ASSERT_STRING_EQUAL(a->log_target, b->log_target);
	CU_ASSERT_STRING_EQUAL(a->conninfo, b->conninfo);
	CU_ASSERT_EQUAL(a->pool_size, b->pool_size);
	CU_ASSERT_EQUAL(a->auto_migrate, b->auto_migrate);
	CU_ASSERT_STRING_EQUAL(a->cache_dir, b->cache_dir);
	CU_ASSERT_EQUAL(a->min_free_mb, b->min_free_mb);
	CU_ASSERT_EQUAL(a->duplicate_policy, b->duplicate_policy);
	CU_ASSERT_EQUAL(a->accept_unlisted_sop_classes, b->accept_unlisted_sop_classes);
	CU_ASSERT_EQUAL(a->pending_interval, b->pending_interval);
	CU_ASSERT_EQUAL(a->restrict_to_source, b->restrict_to_source);
	CU_ASSERT_EQUAL(a->move_timeout, b->move_timeout);
	CU_ASSERT_EQUAL(a->retry_interval, b->retry_interval);
	CU_ASSERT_EQUAL(a->max_attempts, b->max_attempts);
	CU_ASSERT_EQUAL(a->archive_enabled, b->archive_enabled);
	CU_ASSERT_EQUAL(a->archive_stable_seconds, b->archive_stable_seconds);
	CU_ASSERT_EQUAL(a->archive_scan_interval, b->archive_scan_interval);
	CU_ASSERT_EQUAL(a->cache_high_mb, b->cache_high_mb);
	CU_ASSERT_EQUAL(a->cache_low_mb, b->cache_low_mb);
	CU_ASSERT_EQUAL_FATAL(a->n_remotes, b->n_remotes);
	for (int i = 0; i < a->n_remotes; i++) {
		const hub_remote_ae *x = &a->remotes[i];
		const hub_remote_ae *y = hub_config_remote(b, x->ae_title);

		CU_ASSERT_PTR_NOT_NULL_FATAL(y);
		CU_ASSERT_STRING_EQUAL(x->host, y->host);
		CU_ASSERT_EQUAL(x->port, y->port);
		CU_ASSERT_EQUAL(x->uncompressed, y->uncompressed);
	}
	CU_ASSERT_EQUAL_FATAL(a->n_volumes, b->n_volumes);
	for (int i = 0; i < a->n_volumes; i++) {
		const hub_volume *y = hub_config_volume(b, a->volumes[i].name);

		CU_ASSERT_PTR_NOT_NULL_FATAL(y);
		CU_ASSERT_STRING_EQUAL(a->volumes[i].path, y->path);
		CU_ASSERT_EQUAL(a->volumes[i].capacity_mb, y->capacity_mb);
	}
}

/* Writes cfg (NULL: defaults) to base/name, loads it into back; returns the load's result. */
static int write_and_load(const hub_config *cfg, const char *name, hub_config *back, char *err,
			  size_t errlen)
{
	char path[512];
	FILE *f;

	memset(back, 0, sizeof(*back));
	snprintf(path, sizeof(path), "%s/%s", base, name);
	f = fopen(path, "w");
	if (f == NULL)
		return -2;
	hub_config_write(f, cfg);
	if (fclose(f) != 0)
		return -2;
	return hub_config_load(back, path, err, errlen);
}

static void test_write_round_trip(void)
{
	hub_config c, back;
	char path[512], err[512] = "";

	CU_ASSERT_EQUAL_FATAL(write_file(path, sizeof(path), "full.ini",
		"[hub]\n"
		"ae_title = MYHUB\n"
		"port = 4104\n"
		"max_associations = 20\n"
		"acceptor_threads = 2\n"
		"max_pdu = 65536\n"
		"artim_timeout = 7\n"
		"acse_timeout = 11\n"
		"dimse_timeout = 123\n"
		"validate_calling_ae = false\n"
		"log_level = debug\n"
		"log_target = syslog\n"
		"[database]\n"
		"conninfo = \"host=/tmp/some dir/run dbname=dcmhub user=dcmhub\"\n"
		"pool_size = 3\n"
		"auto_migrate = no\n"
		"[storage]\n"
		"cache_dir = /srv/cache\n"
		"min_free_mb = 1\n"
		"duplicate_policy = accept\n"
		"accept_unlisted_sop_classes = off\n"
		"[qr]\n"
		"pending_interval = 0\n"
		"restrict_to_source = yes\n"
		"move_timeout = 4\n"
		"[stgcmt]\n"
		"retry_interval = 2\n"
		"max_attempts = 5\n"
		"[archive]\n"
		"enabled = false\n"
		"stable_seconds = 60\n"
		"scan_interval = 3\n"
		"cache_high_mb = 100\n"
		"cache_low_mb = 50\n"
		"[remote.PACS1]\n"
		"host = pacs.example.org\n"
		"port = 11112\n"
		"uncompressed = true\n"
		"[remote.STORESCU]\n"
		"port = 1104\n"
		"[volume.NL1]\n"
		"path = /srv/nl1\n"
		"capacity_mb = 1000\n"), 0);
	CU_ASSERT_EQUAL_FATAL(hub_config_load(&c, path, err, sizeof(err)), 0);
	/* the file was read: spot-check values that differ from the defaults */
	CU_ASSERT_EQUAL(c.port, 4104);
	CU_ASSERT_EQUAL(c.validate_calling_ae, 0);
	CU_ASSERT_EQUAL(c.duplicate_policy, HUB_DUP_ACCEPT);
	CU_ASSERT_STRING_EQUAL(c.conninfo, "host=/tmp/some dir/run dbname=dcmhub user=dcmhub");
	CU_ASSERT_EQUAL(c.n_remotes, 2);

	CU_ASSERT_EQUAL(write_and_load(&c, "written.ini", &back, err, sizeof(err)), 0);
	if (back.ae_title != NULL)
		check_same(&c, &back);
	hub_config_free(&back);
	hub_config_free(&c);
}

static void test_write_defaults_round_trip(void)
{
	hub_config def, back;
	char err[512] = "";

	CU_ASSERT_EQUAL_FATAL(hub_config_defaults(&def), 0);
	/* NULL: the commented example file `hubd --print-config` prints */
	CU_ASSERT_EQUAL(write_and_load(NULL, "example.ini", &back, err, sizeof(err)), 0);
	if (back.ae_title != NULL)
		check_same(&def, &back);
	hub_config_free(&back);
	/* and the same from a config holding the defaults */
	CU_ASSERT_EQUAL(write_and_load(&def, "defaults.ini", &back, err, sizeof(err)), 0);
	if (back.ae_title != NULL)
		check_same(&def, &back);
	hub_config_free(&back);
	hub_config_free(&def);
}

/* External archives: the [remote.*] keys and [external] (hub/archive/external.c, hub/qr/move_forward.c). */
static void test_external_keys(void)
{
	hub_config c, back;
	char path[512], err[512] = "";

	CU_ASSERT_EQUAL_FATAL(write_file(path, sizeof(path), "external.ini",
		"[external]\nscan_interval = 2\nstable_seconds = 0\nretry_interval = 7\ncommit_timeout = 99\n"
		"batch = 10\n"
		"[remote.ARC]\nport = 2104\nexport = true\ncommit = false\nforward_mode = proxy\n"
		"[remote.PLAIN]\nport = 3104\n"), 0);
	CU_ASSERT_EQUAL_FATAL(hub_config_load(&c, path, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(c.ext_scan_interval, 2);
	CU_ASSERT_EQUAL(c.ext_stable_seconds, 0);
	CU_ASSERT_EQUAL(c.ext_retry_interval, 7);
	CU_ASSERT_EQUAL(c.ext_commit_timeout, 99);
	CU_ASSERT_EQUAL(c.ext_batch, 10);
	const hub_remote_ae *a = hub_config_remote(&c, "ARC"), *p = hub_config_remote(&c, "PLAIN");
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_EQUAL(a->export_objects, 1);
	CU_ASSERT_EQUAL(a->commit, 0);
	CU_ASSERT_EQUAL(a->forward_mode, HUB_FWD_PROXY);
	/* defaults: not an archive; commitment on and direct forwarding once it is one */
	CU_ASSERT_EQUAL(p->export_objects, 0);
	CU_ASSERT_EQUAL(p->commit, 1);
	CU_ASSERT_EQUAL(p->forward_mode, HUB_FWD_DIRECT);
	/* hub_config_write keeps them */
	CU_ASSERT_EQUAL_FATAL(write_and_load(&c, "external-written.ini", &back, err, sizeof(err)), 0);
	a = hub_config_remote(&back, "ARC");
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_EQUAL(a->export_objects, 1);
	CU_ASSERT_EQUAL(a->commit, 0);
	CU_ASSERT_EQUAL(a->forward_mode, HUB_FWD_PROXY);
	CU_ASSERT_EQUAL(back.ext_retry_interval, 7);
	hub_config_free(&back);
	hub_config_free(&c);

	/* an unknown mode is refused with the key named */
	CU_ASSERT_EQUAL_FATAL(write_file(path, sizeof(path), "external-bad.ini",
		"[remote.ARC]\nexport = true\nforward_mode = relay\n"), 0);
	CU_ASSERT_EQUAL(hub_config_load(&c, path, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "forward_mode"));
	hub_config_free(&c);
	CU_ASSERT_EQUAL_FATAL(write_file(path, sizeof(path), "external-bad2.ini", "[external]\nbatch = 0\n"), 0);
	CU_ASSERT_EQUAL(hub_config_load(&c, path, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "batch"));
	hub_config_free(&c);
}

static void test_free_null_and_twice(void)
{
	hub_config c;
	char path[512], err[512] = "";

	hub_config_free(NULL);
	CU_ASSERT_EQUAL_FATAL(write_file(path, sizeof(path), "twice.ini",
		"[remote.A]\nhost = h\n[volume.V]\npath = /v\n"), 0);
	CU_ASSERT_EQUAL_FATAL(hub_config_load(&c, path, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(c.n_remotes, 1);
	CU_ASSERT_EQUAL(c.n_volumes, 1);
	hub_config_free(&c);
	CU_ASSERT_PTR_NULL(c.remotes);
	CU_ASSERT_PTR_NULL(c.volumes);
	CU_ASSERT_PTR_NULL(c.conninfo);
	hub_config_free(&c); /* harmless */
}

int main(void)
{
	CU_pSuite s;
	unsigned failures;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("hub_config", suite_init, suite_clean);
	if (s == NULL ||
	    CU_add_test(s, "defaults", test_defaults) == NULL ||
	    CU_add_test(s, "load NULL is defaults", test_load_null_path_is_defaults) == NULL ||
	    CU_add_test(s, "load a file with remotes", test_load_file) == NULL ||
	    CU_add_test(s, "AE title of 16 characters", test_ae_title_of_16_is_fine) == NULL ||
	    CU_add_test(s, "AE title too long", test_ae_title_too_long) == NULL ||
	    CU_add_test(s, "unknown key in a remote", test_unknown_remote_key) == NULL ||
	    CU_add_test(s, "bad values", test_bad_values) == NULL ||
	    CU_add_test(s, "write/load round trip", test_write_round_trip) == NULL ||
	    CU_add_test(s, "defaults round trip", test_write_defaults_round_trip) == NULL ||
	    CU_add_test(s, "external archive keys", test_external_keys) == NULL ||
	    CU_add_test(s, "free NULL and twice", test_free_null_and_twice) == NULL) {
		CU_cleanup_registry();
		return 2;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
	CU_cleanup_registry();
	return failures == 0 ? 0 : 1;
}
