/*
 * hubctl_kos.h - hubctl's Key Object Selection and quarantine commands:
 *   kos STUDY_UID [--json]
 *       the study's registered Key Object Selection documents (title,
 *       author, date, IOCM rejection, instances hidden) and their
 *       referenced instances
 *   quarantine list [--all] [--json]
 *       objects kept but not shown (open items; --all: settled ones too)
 *   quarantine show ID [--json]
 *       one item in full, with the operator actions taken on it
 *   quarantine release ID --reason TEXT [--operator NAME]
 *       indexes the object as a plain instance (no KOS registration): it
 *       becomes visible to C-FIND, C-MOVE and counts
 *   quarantine discard ID --reason TEXT [--operator NAME]
 *       settles the item for good and removes its file from the cache
 * Every release and discard is recorded in operator_action (who: --operator,
 * else the user running hubctl; when; why) in the transaction that makes it.
 * Exit status: 0 success, 1 failure (unknown item, item not open, index
 * refused the release, database error), 2 bad usage.
 */
#ifndef HUB_HUBCTL_KOS_H
#define HUB_HUBCTL_KOS_H

/* 1 when name is "kos" or "quarantine". */
int hubctl_kos_is_command(const char *name);

/*
 * The command named in argv (hubctl's whole argument vector: it parses
 * -c/--config, --json, --reason, --operator and -h itself), or NULL when
 * argv names none of these commands.
 */
const char *hubctl_kos_command_of(int argc, char **argv);

/* Runs hubctl with argv (see above). Returns the process exit status. */
int hubctl_kos_main(int argc, char **argv);

#endif
