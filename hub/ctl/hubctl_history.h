/*
 * hubctl_history.h - `hubctl history STUDY_UID [--json]`: a study's whole
 * story on the hub, in time order (docs/hubctl.md): objects received (from
 * which AE, when, MD5) and deleted, every cc naming it and what became of
 * it, UID reassignments (kb-8993 and cc mappings), archive events (TAR
 * files), recalls (C-MOVE, move_log), operator actions and quarantined
 * objects.
 *
 * The UID may be an old one: the study UIDs related to it are collected
 * first (study-level uid_mapping in both directions, the studies that
 * objects received under one of them belong to now and back, and the
 * studies an applied split, merge, segment or fix-up names), up to
 * HUBCTL_HISTORY_MAX_STUDIES, and the story covers all of them. Nothing
 * depends on the study row still existing (deleted studies keep their
 * deleted_instance, cc_log, move_log and operator_action rows).
 *
 * Exit status: 0 a history was printed; 1 nothing is known of the UID, or
 * an error; 2 bad usage.
 */
#ifndef HUB_HUBCTL_HISTORY_H
#define HUB_HUBCTL_HISTORY_H

#include "hub_config.h"

#define HUBCTL_HISTORY_MAX_STUDIES 64

/* Runs `history` (argv[0] "history"). Returns the process exit status. */
int hubctl_history_main(const hub_config *cfg, int argc, char **argv, int json);

#endif
