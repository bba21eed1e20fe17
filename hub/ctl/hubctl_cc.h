/*
 * hubctl_cc.h - hubctl's change-context commands (docs/hubctl.md):
 *   queue list [--state S] [--spoke ID] [--study UID] [--all]
 *       open items (parked, conflict, failed), newest last; --all lists
 *       every state; --state one of parked, conflict, failed, applied,
 *       resolved, discarded
 *   queue show ID
 *       one cc decoded in full (human-readable, or JSON with --json) and why
 *       it is where it is
 *   queue retry|resolve|discard ID --reason TEXT [--operator NAME]
 *       an operator's action on a parked, conflict or failed item, recorded
 *       in operator_action (cc_apply_operator, hub/cc/ccsync.h)
 */
#ifndef HUB_HUBCTL_CC_H
#define HUB_HUBCTL_CC_H

#include "hub_config.h"

/* 1 when argv[0] names one of the commands above. */
int hubctl_cc_is_command(const char *name);

/* queue's options (hubctl's own options; NULL / 0: not given). */
typedef struct {
	const char *state, *spoke, *study;
	int all;
	const char *reason, *operator_name; /* retry|resolve|discard: --reason, --operator */
} hubctl_cc_filter;

/* Runs the command (argv[0] is its name). Returns the process exit status. */
int hubctl_cc_main(const hub_config *cfg, int argc, char **argv, const hubctl_cc_filter *f, int json);

#endif
