/*
 * pgtest.c - see pgtest.h.
 */
#include "pgtest.h"

#include <glob.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[128];
static char pgbin[256];
static int cluster_made; /* dir exists: remove it at exit */
static int server_up;    /* postgres may be running: stop it at exit */
static pid_t owner_pid;  /* only the process that made the cluster cleans it up */

/* Runs a shell command built from fmt; returns its exit status (or -1). */
static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int run(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = system(cmd);
	if (rc == -1 || !WIFEXITED(rc))
		return -1;
	return WEXITSTATUS(rc);
}

/* "runuser -u dcmhub -- " when we are root (PostgreSQL will not run as root), else "". */
static const char *as_pg(void)
{
	return geteuid() == 0 ? "runuser -u dcmhub -- " : "";
}

/* The newest /usr/lib/postgresql/<version>/bin, by version order (15 > 9.6). */
static int find_pgbin(void)
{
	glob_t g;
	int rc = -1;

	if (glob("/usr/lib/postgresql/*/bin", 0, NULL, &g) != 0)
		return -1;
	for (size_t i = 0; i < g.gl_pathc; i++) {
		if (rc < 0 || strverscmp(g.gl_pathv[i], pgbin) > 0) {
			snprintf(pgbin, sizeof(pgbin), "%s", g.gl_pathv[i]);
			rc = 0;
		}
	}
	globfree(&g);
	return rc;
}

int pgtest_ctl(const char *action)
{
	/* cd: the postgres user may not be allowed into the build directory */
	return run("cd '%s' && %s'%s/pg_ctl' -D '%s/data' -l '%s/log' -w -t 60 -m fast "
		   "-o \"-c listen_addresses='' -c unix_socket_directories='%s'\" %s >>'%s/ctl.out' 2>&1",
		   dir, as_pg(), pgbin, dir, dir, dir, action, dir);
}

static void cleanup(void)
{
	if (getpid() != owner_pid)
		return;
	if (server_up) {
		(void)run("cd '%s' && %s'%s/pg_ctl' -D '%s/data' -m immediate -w stop >/dev/null 2>&1", dir,
			  as_pg(), pgbin, dir);
		server_up = 0;
	}
	if (cluster_made) {
		(void)run("rm -rf '%s'", dir);
		cluster_made = 0;
	}
}

static void on_signal(int sig)
{
	/* exit() is not async-signal-safe; acceptable in a test, where leaving a
	 * postgres behind would be worse */
	exit(128 + sig);
}

int pgtest_start(const char *name, char *conninfo, size_t len)
{
	owner_pid = getpid();
	if (atexit(cleanup) != 0)
		return -1;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (find_pgbin() < 0) {
		fprintf(stderr, "no /usr/lib/postgresql/*/bin\n");
		return -1;
	}
	snprintf(dir, sizeof(dir), "/tmp/dh_%s.XXXXXX", name);
	if (mkdtemp(dir) == NULL)
		return -1;
	cluster_made = 1;
	if (geteuid() == 0) {
		if (run("id -u dcmhub >/dev/null 2>&1 || useradd --system --no-create-home "
			"--shell /usr/sbin/nologin dcmhub") != 0 ||
		    run("chown dcmhub: '%s'", dir) != 0) {
			fprintf(stderr, "cannot create or use the user dcmhub\n");
			return -1;
		}
	}
	if (run("cd '%s' && %s'%s/initdb' -D '%s/data' -U dcmhub --auth=trust -E UTF8 --locale=C "
		"--no-sync >'%s/initdb.out' 2>&1", dir, as_pg(), pgbin, dir, dir) != 0) {
		fprintf(stderr, "initdb failed, see %s/initdb.out\n", dir);
		(void)run("cat '%s/initdb.out' >&2", dir);
		return -1;
	}
	server_up = 1;
	if (pgtest_ctl("start") != 0) {
		(void)run("cat '%s/ctl.out' '%s/log' >&2", dir, dir);
		return -1;
	}
	if (run("cd '%s' && %s'%s/createdb' -h '%s' -U dcmhub dcmhub >>'%s/ctl.out' 2>&1", dir, as_pg(), pgbin,
		dir, dir) != 0) {
		(void)run("cat '%s/ctl.out' >&2", dir);
		return -1;
	}
	snprintf(conninfo, len, "host=%s dbname=dcmhub user=dcmhub connect_timeout=10", dir);
	return 0;
}
