/*
 * hubctl_cc.h - hubctl's change-context commands:
 *   queue list [--state S] [--spoke ID] [--study UID] [--all]
 *       change contexts needing attention (parked or refused, or operator
 *       items), newest last; --all lists every state; --state one of
 *       applied, parked, refused, discarded
 *   queue show ID
 *       one cc decoded in full (human-readable, or JSON with --json) and why
 *       it is where it is
 * Operator actions on items (retry, resolve, discard) come with issue 6.
 */
#ifndef HUB_HUBCTL_CC_H
#define HUB_HUBCTL_CC_H

#include "hub_config.h"

/* 1 when argv[0] names one of the commands above. */
int hubctl_cc_is_command(const char *name);

/* queue list's filters (hubctl's own options; NULL / 0: not given). */
typedef struct {
	const char *state, *spoke, *study;
	int all;
} hubctl_cc_filter;

/* Runs the command (argv[0] is its name). Returns the process exit status. */
int hubctl_cc_main(const hub_config *cfg, int argc, char **argv, const hubctl_cc_filter *f, int json);

#endif
