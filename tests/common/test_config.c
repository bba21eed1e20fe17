/*
 * test_config.c - unit tests for common/config.c.
 *
 * The tables below mirror the shape of hubd's real configuration (a main
 * table plus a table for [remote.NAME] items filled by a section handler),
 * so the tests exercise the same paths the daemons use: defaults, typed
 * values with their error messages and line numbers, repeated sections,
 * and the round trip through dh_cfg_write.
 */
#include "config.h"

#include <CUnit/Basic.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
	char *ae_title;
	long port;
	int validate;
	int log_level;
	char *conninfo;
	long pool_size;
	char *cache_dir;
	char *note;
	int dup_policy;
} test_cfg;

static const dh_cfg_option table[] = {
	{ "hub", "ae_title", DH_CFG_STRING, "DCMHUB", offsetof(test_cfg, ae_title), 0, 0, NULL,
	  "our AE title", 1 },
	{ "hub", "port", DH_CFG_INT, "11112", offsetof(test_cfg, port), 1, 65535, NULL,
	  "TCP port", 1 },
	{ "hub", "validate_calling_ae", DH_CFG_BOOL, "true", offsetof(test_cfg, validate), 0, 0,
	  NULL, "reject unknown calling AE titles", 0 },
	{ "hub", "log_level", DH_CFG_ENUM, "info", offsetof(test_cfg, log_level), 0, 0,
	  "error|warn|info|debug|trace", "log level", 0 },
	{ "database", "conninfo", DH_CFG_STRING, "dbname=dcmhub", offsetof(test_cfg, conninfo), 0,
	  0, NULL, "libpq connection string", 1 },
	{ "database", "pool_size", DH_CFG_INT, "16", offsetof(test_cfg, pool_size), 1, 1024, NULL,
	  "connections", 1 },
	{ "storage", "cache_dir", DH_CFG_STRING, "var/cache", offsetof(test_cfg, cache_dir), 0, 0,
	  NULL, "cache directory", 1 },
	{ "storage", "note", DH_CFG_STRING, "", offsetof(test_cfg, note), 0, 0, NULL,
	  "free text", 0 },
	{ "storage", "duplicate_policy", DH_CFG_ENUM, "reject", offsetof(test_cfg, dup_policy), 0,
	  0, "reject|accept|overwrite", "what to do with duplicates", 0 },
	DH_CFG_END
};

typedef struct {
	char *host;
	long port;
} remote;

static const dh_cfg_option remote_table[] = {
	{ NULL, "host", DH_CFG_STRING, "127.0.0.1", offsetof(remote, host), 0, 0, NULL,
	  "host name or address", 0 },
	{ NULL, "port", DH_CFG_INT, "104", offsetof(remote, port), 1, 65535, NULL, "TCP port", 0 },
	DH_CFG_END
};

typedef struct {
	char name[5][17];
	remote item[5];
	int count;
} remotes;

/* The handler hubd would use: one item per [remote.NAME], filled by a second table. */
static int remote_handler(void *user, const char *section, const char *key, const char *value,
			  char *err, size_t errlen)
{
	remotes *r = user;
	const char *name;
	int i;

	if (strncmp(section, "remote.", 7) != 0) {
		snprintf(err, errlen, "unknown section [%s]", section);
		return -1;
	}
	name = section + 7;
	for (i = 0; i < r->count; i++) {
		if (strcmp(r->name[i], name) == 0)
			break;
	}
	if (i == r->count) {
		if (r->count == 5 || strlen(name) > 16) {
			snprintf(err, errlen, "[%s]: too many remotes or name too long", section);
			return -1;
		}
		snprintf(r->name[i], sizeof(r->name[i]), "%s", name);
		if (dh_cfg_defaults(remote_table, &r->item[i]) != 0)
			return -1;
		r->count++;
	}
	return dh_cfg_set(remote_table, &r->item[i], section, key, value, err, errlen) == 0 ? 0
											     : -1;
}

static void remotes_free(remotes *r)
{
	for (int i = 0; i < r->count; i++)
		dh_cfg_free(remote_table, &r->item[i]);
}

static void test_defaults(void)
{
	test_cfg c;

	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL_FATAL(dh_cfg_defaults(table, &c), 0);
	CU_ASSERT_STRING_EQUAL(c.ae_title, "DCMHUB");
	CU_ASSERT_EQUAL(c.port, 11112);
	CU_ASSERT_EQUAL(c.validate, 1);
	CU_ASSERT_EQUAL(c.log_level, 2);
	CU_ASSERT_STRING_EQUAL(c.conninfo, "dbname=dcmhub");
	CU_ASSERT_EQUAL(c.pool_size, 16);
	CU_ASSERT_STRING_EQUAL(c.cache_dir, "var/cache");
	CU_ASSERT_PTR_NOT_NULL(c.note);
	CU_ASSERT_STRING_EQUAL(c.note, "");
	CU_ASSERT_EQUAL(c.dup_policy, 0);
	/* Applying defaults again frees the earlier strings (ASan would tell). */
	CU_ASSERT_EQUAL(dh_cfg_defaults(table, &c), 0);
	dh_cfg_free(table, &c);
}

static void test_bad_default_detected(void)
{
	static const dh_cfg_option bad[] = {
		{ "x", "n", DH_CFG_INT, "99", 0, 1, 10, NULL, "out of range default", 0 },
		DH_CFG_END
	};
	long n = 0;

	CU_ASSERT_EQUAL(dh_cfg_defaults(bad, &n), -1);
}

static void test_load_values(void)
{
	const char *text = "; comment\n"
			   "# another comment\n"
			   "[hub]\n"
			   "ae_title = MYHUB\n"
			   "port = 4242   ; inline comment\n"
			   "  validate_calling_ae = no\n"
			   "log_level = DEBUG\n"
			   "\n"
			   "[database]\n"
			   "conninfo = \"host=/tmp/x dbname=dcmhub user=dcmhub\"\n"
			   "[storage]\n"
			   "duplicate_policy = overwrite\n"
			   "note = \"\"\n";
	test_cfg c;
	char err[256] = "";

	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL_FATAL(dh_cfg_load_string(text, table, &c, NULL, NULL, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(c.ae_title, "MYHUB");
	CU_ASSERT_EQUAL(c.port, 4242);
	CU_ASSERT_EQUAL(c.validate, 0);
	CU_ASSERT_EQUAL(c.log_level, 3);
	CU_ASSERT_STRING_EQUAL(c.conninfo, "host=/tmp/x dbname=dcmhub user=dcmhub");
	CU_ASSERT_EQUAL(c.dup_policy, 2);
	CU_ASSERT_STRING_EQUAL(c.note, "");
	/* Untouched options keep their defaults. */
	CU_ASSERT_EQUAL(c.pool_size, 16);
	CU_ASSERT_STRING_EQUAL(c.cache_dir, "var/cache");

	/* CRLF line ends, and a last line of blanks without a newline. */
	CU_ASSERT_EQUAL(dh_cfg_load_string("[hub]\r\nport = 77\r\n   ", table, &c, NULL, NULL,
					   err, sizeof(err)),
			0);
	CU_ASSERT_EQUAL(c.port, 77);
	dh_cfg_free(table, &c);
}

static void test_int_range_error(void)
{
	test_cfg c;
	char err[256] = "";

	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(dh_cfg_load_string("[hub]\nae_title = A\nport = 70000\n", table, &c, NULL,
					   NULL, err, sizeof(err)),
			-1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "hub.port: 70000 is out of range 1..65535"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, ":3:"));
	dh_cfg_free(table, &c);

	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(dh_cfg_load_string("[hub]\nport = 0\n", table, &c, NULL, NULL, err,
					   sizeof(err)),
			-1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "0 is out of range 1..65535"));
	dh_cfg_free(table, &c);

	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(dh_cfg_load_string("[hub]\nport = 12ab\n", table, &c, NULL, NULL, err,
					   sizeof(err)),
			-1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "hub.port"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "not an integer"));
	dh_cfg_free(table, &c);

	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(dh_cfg_load_string("[hub]\nport = 99999999999999999999999\n", table, &c,
					   NULL, NULL, err, sizeof(err)),
			-1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "out of range"));
	dh_cfg_free(table, &c);

	/* Bounds are inclusive. */
	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(dh_cfg_load_string("[hub]\nport = 65535\n", table, &c, NULL, NULL, err,
					   sizeof(err)),
			0);
	CU_ASSERT_EQUAL(c.port, 65535);
	dh_cfg_free(table, &c);
}

static void test_bool_words(void)
{
	const char *yes[] = { "true", "yes", "on", "1", "TRUE", "Yes" };
	const char *no[] = { "false", "no", "off", "0", "OFF" };
	test_cfg c;
	char text[128];
	char err[256];

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		CU_ASSERT_EQUAL(dh_cfg_parse_bool(yes[i]), 1);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		CU_ASSERT_EQUAL(dh_cfg_parse_bool(no[i]), 0);
	CU_ASSERT_EQUAL(dh_cfg_parse_bool("maybe"), -1);
	CU_ASSERT_EQUAL(dh_cfg_parse_bool(""), -1);
	CU_ASSERT_EQUAL(dh_cfg_parse_bool("2"), -1);
	CU_ASSERT_EQUAL(dh_cfg_parse_bool(NULL), -1);

	memset(&c, 0, sizeof(c));
	snprintf(text, sizeof(text), "[hub]\nvalidate_calling_ae = off\n");
	CU_ASSERT_EQUAL(dh_cfg_load_string(text, table, &c, NULL, NULL, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(c.validate, 0);
	snprintf(text, sizeof(text), "[hub]\nvalidate_calling_ae = maybe\n");
	CU_ASSERT_EQUAL(dh_cfg_load_string(text, table, &c, NULL, NULL, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "hub.validate_calling_ae"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "maybe"));
	dh_cfg_free(table, &c);
}

static void test_enum_choices(void)
{
	const char *names[] = { "reject", "accept", "overwrite" };
	test_cfg c;
	char text[128];
	char err[256];

	memset(&c, 0, sizeof(c));
	for (int i = 0; i < 3; i++) {
		snprintf(text, sizeof(text), "[storage]\nduplicate_policy = %s\n", names[i]);
		CU_ASSERT_EQUAL(dh_cfg_load_string(text, table, &c, NULL, NULL, err, sizeof(err)), 0);
		CU_ASSERT_EQUAL(c.dup_policy, i);
	}
	CU_ASSERT_EQUAL(dh_cfg_load_string("[storage]\nduplicate_policy = ignore\n", table, &c,
					   NULL, NULL, err, sizeof(err)),
			-1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "storage.duplicate_policy"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "reject|accept|overwrite"));
	/* A prefix of a choice is not a choice. */
	CU_ASSERT_EQUAL(dh_cfg_load_string("[storage]\nduplicate_policy = acc\n", table, &c, NULL,
					   NULL, err, sizeof(err)),
			-1);
	dh_cfg_free(table, &c);
}

static void test_unknown_key_and_section(void)
{
	test_cfg c;
	char err[256] = "";

	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(dh_cfg_load_string("[hub]\nport = 1\nbogus = 1\n", table, &c, NULL, NULL,
					   err, sizeof(err)),
			-1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "hub.bogus"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, ":3:"));

	/* A key of another section is unknown here. */
	CU_ASSERT_EQUAL(dh_cfg_load_string("[database]\nport = 1\n", table, &c, NULL, NULL, err,
					   sizeof(err)),
			-1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "database.port"));

	CU_ASSERT_EQUAL(dh_cfg_load_string("port = 1\n", table, &c, NULL, NULL, err, sizeof(err)),
			-1);

	/* Repeated sections without a handler are errors. */
	CU_ASSERT_EQUAL(dh_cfg_load_string("[remote.PACS]\nhost = x\n", table, &c, NULL, NULL, err,
					   sizeof(err)),
			-1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "remote.PACS"));

	/* dh_cfg_set tells unknown (1) from invalid (-1). */
	CU_ASSERT_EQUAL(dh_cfg_set(table, &c, "hub", "nope", "1", err, sizeof(err)), 1);
	CU_ASSERT_EQUAL(dh_cfg_set(table, &c, "hub", "port", "x", err, sizeof(err)), -1);
	CU_ASSERT_EQUAL(dh_cfg_set(table, &c, "hub", "port", "7", err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(c.port, 7);
	dh_cfg_free(table, &c);
}

static void test_first_error_reported(void)
{
	test_cfg c;
	char err[256] = "";

	memset(&c, 0, sizeof(c));
	/* A syntax error on line 2 comes before the bad value on line 3. */
	CU_ASSERT_EQUAL(dh_cfg_load_string("[hub]\nport 11112\nport = 0\n", table, &c, NULL, NULL,
					   err, sizeof(err)),
			-1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "<string>:2:"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "syntax"));

	/* And the other way round. */
	CU_ASSERT_EQUAL(dh_cfg_load_string("[hub]\nport = 0\nport 11112\n", table, &c, NULL, NULL,
					   err, sizeof(err)),
			-1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "<string>:2:"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "out of range"));
	dh_cfg_free(table, &c);
}

static void test_long_line(void)
{
	test_cfg c;
	char err[256] = "";
	char *text = malloc(2048);
	int n;

	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	n = snprintf(text, 2048, "[hub]\nport = 1\n[database]\nconninfo = ");
	memset(text + n, 'x', 1000);
	strcpy(text + n + 1000, "\n");
	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(dh_cfg_load_string(text, table, &c, NULL, NULL, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "<string>:4:"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "longer"));
	dh_cfg_free(table, &c);
	free(text);
}

static void test_repeated_sections(void)
{
	const char *text = "[hub]\n"
			   "port = 2000\n"
			   "[remote.PACS1]\n"
			   "host = 10.0.0.1\n"
			   "port = 4100\n"
			   "[remote.STORESCU]\n"
			   "host = \"localhost\"\n"
			   "[hub]\n"
			   "ae_title = LATE\n"
			   "[remote.PACS1]\n"
			   "port = 4101\n";
	test_cfg c;
	remotes r;
	char err[256] = "";

	memset(&c, 0, sizeof(c));
	memset(&r, 0, sizeof(r));
	CU_ASSERT_EQUAL_FATAL(
		dh_cfg_load_string(text, table, &c, remote_handler, &r, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(c.port, 2000);
	CU_ASSERT_STRING_EQUAL(c.ae_title, "LATE");
	CU_ASSERT_EQUAL_FATAL(r.count, 2);
	CU_ASSERT_STRING_EQUAL(r.name[0], "PACS1");
	CU_ASSERT_STRING_EQUAL(r.item[0].host, "10.0.0.1");
	CU_ASSERT_EQUAL(r.item[0].port, 4101);
	CU_ASSERT_STRING_EQUAL(r.name[1], "STORESCU");
	CU_ASSERT_STRING_EQUAL(r.item[1].host, "localhost");
	CU_ASSERT_EQUAL(r.item[1].port, 104);

	/* A table of repeated sections is written without a header; the
	 * caller writes "[remote.NAME]" itself. */
	{
		char *text = NULL;
		size_t len = 0;
		FILE *out = open_memstream(&text, &len);

		CU_ASSERT_PTR_NOT_NULL_FATAL(out);
		dh_cfg_write(out, remote_table, &r.item[0]);
		CU_ASSERT_EQUAL_FATAL(fclose(out), 0);
		CU_ASSERT_PTR_NULL(strchr(text, '['));
		CU_ASSERT_PTR_NOT_NULL(strstr(text, "host = 10.0.0.1\n"));
		CU_ASSERT_PTR_NOT_NULL(strstr(text, "port = 4101\n"));
		free(text);
	}
	remotes_free(&r);
	dh_cfg_free(table, &c);

	/* The handler's message comes back with the line number. */
	memset(&c, 0, sizeof(c));
	memset(&r, 0, sizeof(r));
	CU_ASSERT_EQUAL(dh_cfg_load_string("[remote.X]\nhost = h\nport = 0\n", table, &c,
					   remote_handler, &r, err, sizeof(err)),
			-1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "<string>:3:"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "remote.X.port: 0 is out of range 1..65535"));
	remotes_free(&r);
	dh_cfg_free(table, &c);
}

static void test_write_round_trip(void)
{
	test_cfg a;
	test_cfg b;
	char *text = NULL;
	size_t len = 0;
	FILE *out;
	char err[256] = "";

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	CU_ASSERT_EQUAL_FATAL(dh_cfg_defaults(table, &a), 0);
	CU_ASSERT_EQUAL(dh_cfg_set(table, &a, "hub", "ae_title", "RT", err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(dh_cfg_set(table, &a, "hub", "port", "1234", err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(dh_cfg_set(table, &a, "hub", "validate_calling_ae", "off", err, sizeof(err)),
			0);
	CU_ASSERT_EQUAL(dh_cfg_set(table, &a, "hub", "log_level", "trace", err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(dh_cfg_set(table, &a, "database", "conninfo", "host=/x y dbname=d", err,
				   sizeof(err)),
			0);
	CU_ASSERT_EQUAL(dh_cfg_set(table, &a, "storage", "cache_dir", "\"quoted\"", err, sizeof(err)),
			0);
	CU_ASSERT_EQUAL(dh_cfg_set(table, &a, "storage", "note", "", err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(dh_cfg_set(table, &a, "storage", "duplicate_policy", "accept", err,
				   sizeof(err)),
			0);

	out = open_memstream(&text, &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(out);
	dh_cfg_write(out, table, &a);
	CU_ASSERT_EQUAL_FATAL(fclose(out), 0);

	CU_ASSERT_PTR_NOT_NULL(strstr(text, "[hub]\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "port = 1234\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "conninfo = \"host=/x y dbname=d\"\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "log_level = trace\n"));
	CU_ASSERT_EQUAL(dh_cfg_load_string(text, table, &b, NULL, NULL, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(b.ae_title, a.ae_title);
	CU_ASSERT_EQUAL(b.port, a.port);
	CU_ASSERT_EQUAL(b.validate, a.validate);
	CU_ASSERT_EQUAL(b.log_level, a.log_level);
	CU_ASSERT_STRING_EQUAL(b.conninfo, a.conninfo);
	CU_ASSERT_EQUAL(b.pool_size, a.pool_size);
	CU_ASSERT_STRING_EQUAL(b.cache_dir, "\"quoted\"");
	CU_ASSERT_STRING_EQUAL(b.note, "");
	CU_ASSERT_EQUAL(b.dup_policy, 1);
	free(text);
	dh_cfg_free(table, &a);
	dh_cfg_free(table, &b);
}

static void test_write_defaults(void)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	const char *hub;
	const char *db;
	const char *st;
	test_cfg c;
	char err[256];

	CU_ASSERT_PTR_NOT_NULL_FATAL(out);
	dh_cfg_write(out, table, NULL);
	CU_ASSERT_EQUAL_FATAL(fclose(out), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "# TCP port (default: 11112; needs restart)\nport = 11112\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "# log level (default: info)\nlog_level = info\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "note = \"\"\n"));
	/* One header per section, in table order. */
	hub = strstr(text, "[hub]\n");
	db = strstr(text, "[database]\n");
	st = strstr(text, "[storage]\n");
	CU_ASSERT(hub != NULL && db != NULL && st != NULL && hub < db && db < st);
	CU_ASSERT_PTR_NULL(strstr(hub + 1, "[hub]"));

	/* The example file is itself a valid configuration. */
	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(dh_cfg_load_string(text, table, &c, NULL, NULL, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(c.port, 11112);
	dh_cfg_free(table, &c);
	free(text);
}

static void test_load_file(void)
{
	char path[] = "/tmp/dh_test_config.XXXXXX";
	int fd = mkstemp(path);
	const char *text = "[hub]\nport = 3000\n\n[storage]\ncache_dir = /srv/cache\nbad = 1\n";
	test_cfg c;
	char err[512] = "";

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL((size_t)write(fd, text, strlen(text)), strlen(text));
	close(fd);

	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(dh_cfg_load(path, table, &c, NULL, NULL, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, path));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, ":6:"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "storage.bad"));
	dh_cfg_free(table, &c);

	/* Without the bad line the file loads. */
	fd = open(path, O_WRONLY | O_TRUNC);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL((size_t)write(fd, text, strlen(text) - 8), strlen(text) - 8);
	close(fd);
	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(dh_cfg_load(path, table, &c, NULL, NULL, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(c.port, 3000);
	CU_ASSERT_STRING_EQUAL(c.cache_dir, "/srv/cache");
	dh_cfg_free(table, &c);
	unlink(path);

	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(dh_cfg_load(path, table, &c, NULL, NULL, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, path));
	dh_cfg_free(table, &c);
}

static void test_free_resets(void)
{
	test_cfg c;

	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL_FATAL(dh_cfg_defaults(table, &c), 0);
	CU_ASSERT_PTR_NOT_NULL(c.ae_title);
	dh_cfg_free(table, &c);
	CU_ASSERT_PTR_NULL(c.ae_title);
	CU_ASSERT_PTR_NULL(c.conninfo);
	CU_ASSERT_PTR_NULL(c.cache_dir);
	CU_ASSERT_PTR_NULL(c.note);
	/* Idempotent, and NULL targets are accepted. */
	dh_cfg_free(table, &c);
	dh_cfg_free(table, NULL);
}

int main(void)
{
	CU_pSuite s;
	unsigned failures;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("config", NULL, NULL);
	if (s == NULL ||
	    CU_add_test(s, "defaults", test_defaults) == NULL ||
	    CU_add_test(s, "bad default detected", test_bad_default_detected) == NULL ||
	    CU_add_test(s, "load values", test_load_values) == NULL ||
	    CU_add_test(s, "integer range errors", test_int_range_error) == NULL ||
	    CU_add_test(s, "boolean words", test_bool_words) == NULL ||
	    CU_add_test(s, "enum choices", test_enum_choices) == NULL ||
	    CU_add_test(s, "unknown key and section", test_unknown_key_and_section) == NULL ||
	    CU_add_test(s, "first error reported", test_first_error_reported) == NULL ||
	    CU_add_test(s, "long line", test_long_line) == NULL ||
	    CU_add_test(s, "repeated sections", test_repeated_sections) == NULL ||
	    CU_add_test(s, "write round trip", test_write_round_trip) == NULL ||
	    CU_add_test(s, "write defaults", test_write_defaults) == NULL ||
	    CU_add_test(s, "load from file", test_load_file) == NULL ||
	    CU_add_test(s, "free resets strings", test_free_resets) == NULL) {
		CU_cleanup_registry();
		return 2;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
	CU_cleanup_registry();
	return failures == 0 ? 0 : 1;
}
