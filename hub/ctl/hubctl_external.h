/*
 * hubctl_external.h - hubctl's external archive commands (docs/hubctl.md):
 *   external list
 *       per exporting archive: objects queued, awaiting their commitment
 *       result, committed, failed, released locally; oldest queued; the
 *       last error
 *   external show AE [--state S]
 *       its objects one by one (state, Transaction UID, Failure Reason,
 *       attempts, next attempt, last error) and its commitment transactions
 *   external retry AE
 *       queue its failed objects again (sent again, commitment requested again)
 *   external release --study UID
 *       remove the local cache copies of the study's objects that an archive
 *       holds (committed); C-MOVE then forwards them (hub/qr/move_forward.c)
 */
#ifndef HUB_HUBCTL_EXTERNAL_H
#define HUB_HUBCTL_EXTERNAL_H

#include "hub_config.h"

/* 1 when argv[0] names the command group above. */
int hubctl_external_is_command(const char *name);

/* Runs it (argv[0] is "external"); state/study from hubctl's options (NULL: not given). Returns the exit status. */
int hubctl_external_main(const hub_config *cfg, int argc, char **argv, const char *state, const char *study,
			 int json);

#endif
