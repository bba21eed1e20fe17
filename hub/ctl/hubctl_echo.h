/*
 * hubctl_echo.h - hubctl echo AE: the hub as Verification SCU (IMPAX
 * statement §2.1.2.1, "IMPAX Data Center can also initiate an association
 * and request verification to a remote AE").
 *
 *   echo AE [--timeout SECONDS] [--json]
 *       opens an association from hub.ae_title to [remote.AE] exactly as
 *       hubd would (hub_connect: its host, port and TLS setting), sends one
 *       C-ECHO and reports the status and the round-trip time.
 *
 * Exit status: 0 the peer answered C-ECHO with 0000; 1 it did not (not
 * reachable, association rejected, Verification refused, another status);
 * 2 bad usage or no [remote.AE] section.
 */
#ifndef HUB_HUBCTL_ECHO_H
#define HUB_HUBCTL_ECHO_H

#include "hub_config.h"

#include <stdio.h>

void hubctl_echo_usage(FILE *out);

/* Runs `echo AE` (argv[0] "echo", argv[1] the AE title). timeout_s 0: hub.acse_timeout. */
int hubctl_echo_main(const hub_config *cfg, int argc, char **argv, int timeout_s, int json);

#endif
