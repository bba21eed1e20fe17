/*
 * assoc_rules.c - which services a remote AE may use (see assoc_rules.h).
 */
#include "assoc_rules.h"

#include "dcm.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const struct {
	const char *name;
	unsigned bit;
} services[] = {
	{ "echo", HUB_SVC_ECHO }, { "store", HUB_SVC_STORE }, { "find", HUB_SVC_FIND },
	{ "move", HUB_SVC_MOVE }, { "get", HUB_SVC_GET },     { "stgcmt", HUB_SVC_STGCMT },
	{ "mpps", HUB_SVC_MPPS },
};

int assoc_rules_parse(const char *text, unsigned *mask, char *err, size_t errlen)
{
	unsigned m = 0;
	const char *p = text ? text : "";
	int words = 0;

	while (*p) {
		char word[32];
		size_t k;
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		k = strcspn(p, " \t,");
		if (k == 0)
			break;
		words++;
		if (k >= sizeof(word))
			k = sizeof(word) - 1;
		memcpy(word, p, k);
		word[k] = '\0';
		p += strcspn(p, " \t,");
		if (strcasecmp(word, "all") == 0) {
			m = HUB_SVC_ALL;
			continue;
		}
		if (strcasecmp(word, "none") == 0)
			continue;
		size_t i;
		for (i = 0; i < sizeof(services) / sizeof(services[0]); i++)
			if (strcasecmp(word, services[i].name) == 0)
				break;
		if (i == sizeof(services) / sizeof(services[0])) {
			snprintf(err, errlen, "unknown service '%s' (all, none, echo, store, find, move, get, stgcmt, mpps)",
				 word);
			return -1;
		}
		m |= services[i].bit;
	}
	if (words == 0) {
		snprintf(err, errlen, "empty services list (say 'none' to refuse every association)");
		return -1;
	}
	*mask = m;
	return 0;
}

/* The Q/R models: 1.2.840.10008.5.1.4.1.2.{1,2,3}.{1 FIND, 2 MOVE, 3 GET}. */
static unsigned qr_service(const char *as)
{
	static const char prefix[] = "1.2.840.10008.5.1.4.1.2.";
	if (strncmp(as, prefix, sizeof(prefix) - 1) != 0)
		return 0;
	const char *m = as + sizeof(prefix) - 1;
	if ((m[0] != '1' && m[0] != '2' && m[0] != '3') || m[1] != '.' || m[3] != '\0')
		return 0;
	switch (m[2]) {
	case '1': return HUB_SVC_FIND;
	case '2': return HUB_SVC_MOVE;
	case '3': return HUB_SVC_GET;
	default: return 0;
	}
}

unsigned assoc_rules_service(const char *as)
{
	unsigned qr;
	if (strcmp(as, DH_UID_VERIFICATION) == 0)
		return HUB_SVC_ECHO;
	if (strcmp(as, DH_UID_STGCMT_PUSH) == 0)
		return HUB_SVC_STGCMT;
	if (strcmp(as, "1.2.840.10008.3.1.2.3.3") == 0) /* Modality Performed Procedure Step */
		return HUB_SVC_MPPS;
	if (strcmp(as, "1.2.840.10008.5.1.4.31") == 0) /* Modality Worklist FIND */
		return HUB_SVC_FIND;
	if ((qr = qr_service(as)) != 0)
		return qr;
	return HUB_SVC_STORE;
}

int assoc_rules_allows(const hub_remote_ae *r, const char *abstract_syntax)
{
	if (!r)
		return 1;
	return (r->services_mask & assoc_rules_service(abstract_syntax)) != 0;
}
