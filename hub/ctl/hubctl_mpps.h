/*
 * hubctl_mpps.h - hubctl's MPPS commands:
 *   mpps list [--all]
 *       Performed Procedure Steps, oldest first (the last 1000 unless --all),
 *       with their forwarding state (messages pending / refused)
 *   mpps show UID
 *       one step: key attributes, every message received and, per
 *       destination, where its forward stands (state, attempts, last error)
 *   mpps backlog
 *       the forward queue per destination (pending, refused, oldest pending,
 *       last error)
 * All take --json.
 */
#ifndef HUB_HUBCTL_MPPS_H
#define HUB_HUBCTL_MPPS_H

#include "db.h"
#include "hub_config.h"

/* 1 when argv[0] names the command group above. */
int hubctl_mpps_is_command(const char *name);

/* Runs the command (argv[0] is its name). Returns the process exit status. */
int hubctl_mpps_main(const hub_config *cfg, int argc, char **argv, int all, int json);

/*
 * The MPPS forward backlog over all destinations, for `hubctl status`:
 * messages waiting for a destination (*pending), refused by one (*refused),
 * and the age in seconds of the oldest waiting one (*oldest_s, 0 when none).
 * Returns 0 or -1 with err. (The same per destination is the SQL view
 * mpps_forward_backlog.)
 */
int hubctl_mpps_backlog(PGconn *c, long *pending, long *refused, long *oldest_s, dh_db_err *err);

#endif
