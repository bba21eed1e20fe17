/*
 * assoc_rules.h - association-level security per remote AE (conformance
 * §5.2): which services a [remote.AETITLE] may use, and whether it must
 * come over TLS.
 *
 * A service is what a presentation context's abstract syntax asks for;
 * a context for a service the calling AE may not use is refused (result
 * "user rejection") while the others are accepted, the way §5.2 treats a
 * foreign Called AE title (Verification only). Calling AE titles without
 * a [remote] section (validate_calling_ae = false) may use every service.
 */
#ifndef HUB_ASSOC_RULES_H
#define HUB_ASSOC_RULES_H

#include "hub_config.h"

#include <stddef.h>

enum {
	HUB_SVC_ECHO = 1 << 0,   /* Verification */
	HUB_SVC_STORE = 1 << 1,  /* Storage SOP classes */
	HUB_SVC_FIND = 1 << 2,   /* Q/R FIND models */
	HUB_SVC_MOVE = 1 << 3,   /* Q/R MOVE models */
	HUB_SVC_GET = 1 << 4,    /* Q/R GET models */
	HUB_SVC_STGCMT = 1 << 5, /* Storage Commitment Push Model */
	HUB_SVC_MPPS = 1 << 6,   /* Modality Performed Procedure Step */
	HUB_SVC_ALL = (1 << 7) - 1
};

/*
 * Parses a services list: "all", "none", or comma-separated names among
 * echo, store, find, move, get, stgcmt, mpps (blanks allowed). Returns 0
 * with *mask set, or -1 with the offending word in err.
 */
int assoc_rules_parse(const char *text, unsigned *mask, char *err, size_t errlen);

/* The service an abstract syntax belongs to (anything unlisted counts as storage). */
unsigned assoc_rules_service(const char *abstract_syntax);

/* 1 when the calling AE r (NULL: not configured) may use abstract_syntax, else 0. */
int assoc_rules_allows(const hub_remote_ae *r, const char *abstract_syntax);

#endif
