/*
 * hubctl_status.h - `hubctl status`: the hub at a glance for operators and
 * monitoring scripts (docs/hubctl.md).
 *
 * Per spoke (configured [spoke.ID] sections and every spoke that ever sent
 * a cc): connected or not, the last sequence received and applied, the lag
 * (open cc: count and age of the oldest) and its parked, conflict and
 * failed counts. Then one line per service backlog (archive, quarantine,
 * storage commitment reports), then what needs attention.
 *
 * Connected: cc_stream.last_seen_at is at most HUBCTL_CONNECTED_SECONDS
 * old (spokes send at least a heartbeat every 10 s; the receiver refreshes
 * last_seen_at on every frame).
 *
 * Exit status: 0 nothing needs attention; 3 operator items are open
 * (conflict or failed cc, quarantined objects); 4 none are, but a
 * configured spoke is not connected; 1 error (database); 2 bad usage.
 */
#ifndef HUB_HUBCTL_STATUS_H
#define HUB_HUBCTL_STATUS_H

#include "hub_config.h"

#define HUBCTL_CONNECTED_SECONDS 30

enum { HUBCTL_STATUS_ITEMS = 3, HUBCTL_STATUS_DISCONNECTED = 4 };

/* Runs `status` (argv[0] "status"). Returns the process exit status. */
int hubctl_status_main(const hub_config *cfg, int argc, char **argv, int json);

#endif
