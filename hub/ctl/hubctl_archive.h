/*
 * hubctl_archive.h - the archive's operator commands of hubctl:
 *   volumes                   volumes with capacity, use and state
 *   volume online|offline N   mark a volume mounted or not
 *   backlog                   series waiting to be archived
 *   tars SERIES_UID           the TAR files of a series
 *   verify VOLUME             check every TAR of a volume against the index
 *                             and its manifest (progress bar on a terminal)
 *   cat SOP_UID               write an object's bytes to stdout, from the
 *                             cache or straight from its TAR (MD5 checked)
 */
#ifndef HUB_HUBCTL_ARCHIVE_H
#define HUB_HUBCTL_ARCHIVE_H

#include "hub_config.h"

#include <libpq-fe.h>
#include <stddef.h>

/* 1 when argv[0] names one of the commands above. */
int hubctl_archive_is_command(const char *name);

/* The archive backlog in figures (hubctl status): what `backlog` lists, summed. */
typedef struct {
	long long series, objects, bytes;
	long long oldest_age_s; /* seconds since the oldest unarchived object arrived; 0: none */
} hubctl_backlog;

/* Fills out from the index on c. Returns 0, or -1 with err. */
int hubctl_archive_backlog_summary(const hub_config *cfg, PGconn *c, hubctl_backlog *out, char *err, size_t errlen);

/* Runs the command (argv[0] is its name). Returns the process exit status. */
int hubctl_archive_main(const hub_config *cfg, int argc, char **argv, int json);

#endif
