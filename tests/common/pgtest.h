/*
 * pgtest.h - a private PostgreSQL cluster for the CUnit tests that need a
 * real server (test_db, test_cc_apply, test_capture).
 *
 * pgtest_start makes a cluster in a fresh /tmp/dh_NAME.XXXXXX (initdb as
 * the unprivileged user dcmhub when run as root, created when missing),
 * starts it on a unix socket only, creates the database dcmhub and writes
 * its connection string. The cluster is stopped and removed when the
 * process that made it exits, also on SIGINT/SIGTERM. One cluster per
 * process.
 */
#ifndef DH_TESTS_PGTEST_H
#define DH_TESTS_PGTEST_H

#include <stddef.h>

/* Returns 0, or -1 with what failed on stderr. */
int pgtest_start(const char *name, char *conninfo, size_t len);

/* pg_ctl ACTION ("stop", "start", "restart") on the cluster; returns its exit status. */
int pgtest_ctl(const char *action);

#endif
