/*
 * hubctl_verify.h - `hubctl verify --spoke S [--study UID] [--timeout N] [--json]`:
 * proves a spoke and the hub agree, or lists every difference.
 *
 * The hub and the spoke meet only on the wire: hubctl asks hubd (a
 * verify_request row), hubd fetches the spoke's ledger over the spoke's
 * authenticated cc connection into verify_ledger (hub/cc/verify.h), and
 * hubctl compares that snapshot with the index in one SQL statement:
 * objects missing at the hub, deleted at the hub, extra at the hub,
 * deletions not applied, Study/Series UIDs differing (a split, merge,
 * segment or fix-up not applied), SOP class or MD5 differing, and the
 * tracked key attributes differing (the index's columns with the
 * attr_override values applied, which is what leaves the hub).
 *
 * Exit status: 0 no difference; 1 differences found; 2 bad usage or
 * unknown spoke; 3 the spoke is not connected, did not answer within the
 * timeout, or answered an error; 4 the hub's database failed.
 */
#ifndef HUB_HUBCTL_VERIFY_H
#define HUB_HUBCTL_VERIFY_H

#include "hub_config.h"

#include <stdio.h>

typedef struct {
	const char *spoke;  /* required */
	const char *study;  /* NULL: every study */
	int timeout;        /* seconds without progress before giving up (0: default 30) */
	int json;
} hubctl_verify_opts;

/* The command's help (`hubctl verify --help` after the merge with the ops helper's per-command help). */
void hubctl_verify_usage(FILE *out);

/* Runs the verify. Returns the exit status above. */
int hubctl_verify_main(const hub_config *cfg, const hubctl_verify_opts *o);

#endif
