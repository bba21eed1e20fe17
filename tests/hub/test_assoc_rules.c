/*
 * test_assoc_rules.c - unit tests for hub/assoc_rules.c: the services list
 * of a [remote.X] section and the service each abstract syntax belongs to,
 * and the [tls] / [remote.X] tls options through hub_config_load (a bad
 * list or require_tls without a TLS listener is a configuration error).
 */
#include "assoc_rules.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_parse(void)
{
	unsigned m = 0;
	char err[200];
	CU_ASSERT_EQUAL(assoc_rules_parse("all", &m, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(m, HUB_SVC_ALL);
	CU_ASSERT_EQUAL(assoc_rules_parse("none", &m, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(m, 0);
	CU_ASSERT_EQUAL(assoc_rules_parse(" echo , FIND,move ", &m, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(m, HUB_SVC_ECHO | HUB_SVC_FIND | HUB_SVC_MOVE);
	CU_ASSERT_EQUAL(assoc_rules_parse("store stgcmt\tmpps,get", &m, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(m, HUB_SVC_STORE | HUB_SVC_STGCMT | HUB_SVC_MPPS | HUB_SVC_GET);
	m = 77;
	CU_ASSERT_EQUAL(assoc_rules_parse("echo,bogus", &m, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "'bogus'"));
	CU_ASSERT_EQUAL(m, 77); /* untouched on error */
	CU_ASSERT_EQUAL(assoc_rules_parse("", &m, err, sizeof(err)), -1);
	CU_ASSERT_EQUAL(assoc_rules_parse(" , ", &m, err, sizeof(err)), -1);
	CU_ASSERT_EQUAL(assoc_rules_parse(NULL, &m, err, sizeof(err)), -1);
	/* a word longer than any name is refused, not truncated into one */
	CU_ASSERT_EQUAL(assoc_rules_parse("echoechoechoechoechoechoechoechoechoecho", &m, err, sizeof(err)), -1);
}

static void test_service(void)
{
	CU_ASSERT_EQUAL(assoc_rules_service("1.2.840.10008.1.1"), HUB_SVC_ECHO);
	CU_ASSERT_EQUAL(assoc_rules_service("1.2.840.10008.1.20.1"), HUB_SVC_STGCMT);
	CU_ASSERT_EQUAL(assoc_rules_service("1.2.840.10008.3.1.2.3.3"), HUB_SVC_MPPS);
	CU_ASSERT_EQUAL(assoc_rules_service("1.2.840.10008.5.1.4.31"), HUB_SVC_FIND);
	for (int model = 1; model <= 3; model++) {
		char uid[64];
		snprintf(uid, sizeof(uid), "1.2.840.10008.5.1.4.1.2.%d.1", model);
		CU_ASSERT_EQUAL(assoc_rules_service(uid), HUB_SVC_FIND);
		snprintf(uid, sizeof(uid), "1.2.840.10008.5.1.4.1.2.%d.2", model);
		CU_ASSERT_EQUAL(assoc_rules_service(uid), HUB_SVC_MOVE);
		snprintf(uid, sizeof(uid), "1.2.840.10008.5.1.4.1.2.%d.3", model);
		CU_ASSERT_EQUAL(assoc_rules_service(uid), HUB_SVC_GET);
	}
	CU_ASSERT_EQUAL(assoc_rules_service("1.2.840.10008.5.1.4.1.1.2"), HUB_SVC_STORE);      /* CT */
	CU_ASSERT_EQUAL(assoc_rules_service("1.2.840.10008.5.1.4.1.1.88.59"), HUB_SVC_STORE);  /* KOS */
	/* near misses of the Q/R models are not Q/R */
	CU_ASSERT_EQUAL(assoc_rules_service("1.2.840.10008.5.1.4.1.2.2.1.1"), HUB_SVC_STORE);
	CU_ASSERT_EQUAL(assoc_rules_service("1.2.840.10008.5.1.4.1.2.4.1"), HUB_SVC_STORE);
}

static void test_allows(void)
{
	hub_remote_ae r;
	memset(&r, 0, sizeof(r));
	r.services_mask = HUB_SVC_ECHO | HUB_SVC_FIND;
	CU_ASSERT_TRUE(assoc_rules_allows(&r, "1.2.840.10008.1.1"));
	CU_ASSERT_TRUE(assoc_rules_allows(&r, "1.2.840.10008.5.1.4.1.2.2.1"));
	CU_ASSERT_FALSE(assoc_rules_allows(&r, "1.2.840.10008.5.1.4.1.2.2.2"));
	CU_ASSERT_FALSE(assoc_rules_allows(&r, "1.2.840.10008.5.1.4.1.1.2"));
	/* an unconfigured calling AE (validation off) may use everything */
	CU_ASSERT_TRUE(assoc_rules_allows(NULL, "1.2.840.10008.5.1.4.1.1.2"));
}

/* Loads text as a hub configuration file; returns hub_config_load's result. */
static int load(hub_config *cfg, const char *text, char *err, size_t errlen)
{
	char path[] = "/tmp/dh-assoc-rules-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		return -2;
	FILE *f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
	int rc = hub_config_load(cfg, path, err, errlen);
	unlink(path);
	return rc;
}

static void test_config(void)
{
	hub_config cfg;
	char err[512] = "";
	CU_ASSERT_EQUAL_FATAL(load(&cfg, "[tls]\nport = 2762\nverify_peer = check\nprofile = bcp195\n"
				     "certificate = /c.pem\n[remote.A]\nservices = find\ntls = on\nrequire_tls = yes\n"
				     "[remote.B]\nhost = b\n",
				   err, sizeof(err)),
			      0);
	CU_ASSERT_EQUAL(cfg.tls.port, 2762);
	CU_ASSERT_EQUAL(cfg.tls.verify_peer, DH_TLS_VERIFY_CHECK);
	CU_ASSERT_EQUAL(cfg.tls.profile, DH_TLS_PROFILE_BCP195);
	CU_ASSERT_STRING_EQUAL(cfg.tls.certificate, "/c.pem");
	const hub_remote_ae *a = hub_config_remote(&cfg, "A"), *b = hub_config_remote(&cfg, "B");
	CU_ASSERT_FATAL(a && b);
	CU_ASSERT_EQUAL(a->services_mask, HUB_SVC_FIND);
	CU_ASSERT_TRUE(a->tls && a->require_tls);
	CU_ASSERT_EQUAL(b->services_mask, HUB_SVC_ALL); /* default: today's behaviour */
	CU_ASSERT_FALSE(b->tls || b->require_tls);
	hub_config_free(&cfg);

	/* defaults: no TLS anywhere */
	CU_ASSERT_EQUAL_FATAL(load(&cfg, "[hub]\n", err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(cfg.tls.port, 0);
	CU_ASSERT_EQUAL(cfg.tls.verify_peer, DH_TLS_VERIFY_REQUIRE);
	CU_ASSERT_EQUAL(cfg.tls.profile, DH_TLS_PROFILE_BCP195_ND);
	hub_config_free(&cfg);

	CU_ASSERT_EQUAL(load(&cfg, "[remote.A]\nservices = echo,nope\n", err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "[remote.A]: services: unknown service 'nope'"));
	hub_config_free(&cfg);
	CU_ASSERT_EQUAL(load(&cfg, "[remote.A]\nrequire_tls = true\n", err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "require_tls needs a TLS listener"));
	hub_config_free(&cfg);
	CU_ASSERT_EQUAL(load(&cfg, "[tls]\nverify_peer = sometimes\n", err, sizeof(err)), -1);
	hub_config_free(&cfg);
	CU_ASSERT_EQUAL(load(&cfg, "[tls]\nport = 70000\n", err, sizeof(err)), -1);
	hub_config_free(&cfg);
	CU_ASSERT_EQUAL(load(&cfg, "[hub]\nport = 2762\n[tls]\nport = 2762\n", err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "needs a port of its own"));
	hub_config_free(&cfg);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("assoc_rules", NULL, NULL);
	CU_add_test(s, "services lists", test_parse);
	CU_add_test(s, "service of an abstract syntax", test_service);
	CU_add_test(s, "allows", test_allows);
	CU_add_test(s, "[tls] and [remote] options", test_config);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned failed = CU_get_number_of_failures();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
