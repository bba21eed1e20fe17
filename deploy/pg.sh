#!/usr/bin/env bash
# pg.sh - the embedded PostgreSQL of one working folder: create, start, stop, query.
#
# dcmhub keeps its database next to its data, in a private cluster that listens
# only on a unix socket (no TCP, no port clash with a system PostgreSQL). The
# layout, for a working folder DIR (default: the repository root):
#   DIR/var/pg/data   the cluster (initdb -U dcmhub --auth=trust -E UTF8 --locale=C)
#   DIR/var/pg/run    the socket directory (absolute path in the settings)
#   DIR/var/pg/log    the server log (postgresql.log)
# Clients connect with: host=DIR/var/pg/run dbname=dcmhub user=dcmhub
#
# Usage: deploy/pg.sh init|start|stop|status|conninfo [DIR]
#        deploy/pg.sh psql [PSQL-ARGS...] [DIR]
#   init      create the cluster and the database `dcmhub` (idempotent), leaves it running
#   start     start the server (no-op when running)
#   stop      stop the server (fast shutdown; no-op when stopped)
#   status    exit 0 when running, 3 when stopped, 4 when there is no cluster
#   conninfo  print the libpq connection string
#   psql      run psql on the database; the last argument is taken as DIR only
#             when it names an existing directory
#
# initdb and postgres refuse to run as root. As root, the server programs run as
# the unprivileged system user `dcmhub` (created when missing) through runuser,
# and DIR/var/pg is owned by it; clients (psql, hubd) may stay root. Settings of
# ours live in DIR/var/pg/data/dcmhub.conf, rewritten at every start so that a
# moved folder keeps a correct socket path.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_USER=dcmhub
PG_DB=dcmhub
# sun_path is 108 bytes with its NUL; PostgreSQL refuses longer socket paths
SOCK_MAX=107
SOCK_NAME=.s.PGSQL.5432

die() {
	echo "pg.sh: $*" >&2
	exit 1
}

usage() {
	sed -n '/^# Usage:/,/^#             when it names/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

# Sets PGBIN to the newest installed server version's bin directory.
find_pgbin() {
	local d
	d=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -type d -name bin 2>/dev/null | sort -V | tail -n 1)
	if [ -z "$d" ] || [ ! -x "$d/initdb" ] || [ ! -x "$d/pg_ctl" ]; then
		die "PostgreSQL server programs not found under /usr/lib/postgresql/*/bin; run deploy/install-deps.sh"
	fi
	PGBIN=$d
}

# Sets the layout variables for working folder $1 (made absolute).
set_layout() {
	local dir=$1
	W=$(realpath -m -- "$dir")
	BASE=$W/var/pg
	DATA=$BASE/data
	RUN=$BASE/run
	LOGDIR=$BASE/log
	LOGFILE=$LOGDIR/postgresql.log
	CONNINFO="host=$RUN dbname=$PG_DB user=$PG_USER"
	local sock=$RUN/$SOCK_NAME
	if [ ${#sock} -gt $SOCK_MAX ]; then
		die "socket path $sock is ${#sock} bytes, longer than the $SOCK_MAX a unix socket allows; use a working folder whose absolute path has at most $((SOCK_MAX - ${#sock} + ${#W})) bytes"
	fi
	if [ ! -d "$W" ]; then
		[ "$CMD" = init ] || die "working folder $W does not exist"
		mkdir -p "$W" || die "cannot create working folder $W"
	fi
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# Runs a server program as the cluster owner. cd / because the caller's
# directory (/root) may be unreadable to that user and PostgreSQL complains;
# fd 9 (our lock) is closed, or the postmaster would hold the lock for life.
as_owner() {
	if is_root; then
		(cd / && runuser -u "$PG_USER" -- "$@" 9>&-)
	else
		(cd / && "$@" 9>&-)
	fi
}

ensure_user() {
	is_root || return 0
	id -u "$PG_USER" >/dev/null 2>&1 && return 0
	command -v useradd >/dev/null 2>&1 || die "useradd not found: cannot create the system user $PG_USER"
	useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER" ||
		die "cannot create the system user $PG_USER"
}

# Creates var/pg and its subdirectories, gives them to the cluster owner and
# checks that the owner can reach them (a 0700 parent directory would stop it).
prepare_dirs() {
	mkdir -p "$W/var" "$BASE" "$RUN" "$LOGDIR"
	# others need to traverse these to reach the socket (root clients always can)
	chmod 0755 "$BASE" "$RUN"
	if is_root; then
		find "$BASE" ! -user "$PG_USER" -exec chown "$PG_USER:$PG_USER" {} + ||
			die "cannot give $BASE to user $PG_USER"
		if ! runuser -u "$PG_USER" -- test -w "$RUN" 2>/dev/null; then
			die "user $PG_USER cannot reach $BASE: a parent directory is not searchable by others; run chmod o+x on the parents of $W (or use another folder)"
		fi
	fi
}

cluster_exists() { [ -f "$DATA/PG_VERSION" ]; }

check_version() {
	local have want
	have=$(cat "$DATA/PG_VERSION")
	want=$(basename "$(dirname "$PGBIN")")
	[ "$have" = "$want" ] ||
		die "cluster $DATA was created by PostgreSQL $have but the newest installed server is $want ($PGBIN); upgrade it with pg_upgrade or remove $BASE"
}

# Our settings; an include at the end of postgresql.conf so they win.
write_settings() {
	local conf=$DATA/dcmhub.conf
	cat >"$conf.tmp" <<EOF
# Written by deploy/pg.sh at every start; edit postgresql.conf for your own settings
# (they lose against these unless placed after the include line).
listen_addresses = ''
unix_socket_directories = '$RUN'
unix_socket_permissions = 0777
fsync = on
synchronous_commit = on
max_connections = 300
shared_buffers = 256MB
EOF
	mv -f "$conf.tmp" "$conf"
	if ! grep -q "^include_if_exists = 'dcmhub.conf'" "$DATA/postgresql.conf"; then
		printf "\n# dcmhub settings (deploy/pg.sh)\ninclude_if_exists = 'dcmhub.conf'\n" >>"$DATA/postgresql.conf"
	fi
	if is_root; then chown "$PG_USER:$PG_USER" "$conf" "$DATA/postgresql.conf"; fi
}

# True when the postmaster of postmaster.pid is alive. Not `pg_ctl status`: a
# postmaster killed with -9 stays a zombie until reaped, which pg_ctl counts as
# running (and `pg_ctl stop` then waits for a pid file that never goes away).
running() {
	local pid state
	pid=$(head -n 1 "$DATA/postmaster.pid" 2>/dev/null) || return 1
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	state=$(ps -o stat= -o comm= -p "$pid" 2>/dev/null) || return 1
	[[ "$state" != Z* && "$state" == *postgres* ]]
}

do_initdb() {
	if cluster_exists; then
		check_version
		return 0
	fi
	if [ -d "$DATA" ] && [ -n "$(ls -A "$DATA")" ]; then
		die "$DATA exists and is not empty, but holds no cluster (no PG_VERSION); move it away first"
	fi
	echo "pg.sh: creating cluster in $DATA" >&2
	if ! as_owner "$PGBIN/initdb" -D "$DATA" -U "$PG_USER" --auth=trust -E UTF8 --locale=C \
		>"$LOGDIR/initdb.log" 2>&1; then
		cat "$LOGDIR/initdb.log" >&2
		die "initdb failed (log above, also in $LOGDIR/initdb.log)"
	fi
}

do_start() {
	cluster_exists || die "no cluster in $DATA; run: deploy/pg.sh init $W"
	check_version
	if running; then
		return 0
	fi
	# a postmaster just killed with -9 lingers as a zombie until reaped, and
	# the new postmaster would take it for a live owner of the data directory
	local pid i
	pid=$(head -n 1 "$DATA/postmaster.pid" 2>/dev/null) || pid=
	if [[ "$pid" =~ ^[0-9]+$ ]]; then
		for ((i = 0; i < 300; i++)); do
			[[ "$(ps -o comm= -p "$pid" 2>/dev/null)" == postgres* ]] || break
			sleep 0.1
		done
	fi
	write_settings
	# only this cluster uses RUN: with the server down, a socket lock left by a
	# killed server is stale, and its PID may belong to another process by now
	rm -f "$RUN/$SOCK_NAME.lock"
	if ! as_owner "$PGBIN/pg_ctl" -D "$DATA" -l "$LOGFILE" -w -t 120 start >/dev/null; then
		tail -n 30 "$LOGFILE" >&2 || true
		die "PostgreSQL did not start (log above, full log in $LOGFILE)"
	fi
}

do_stop() {
	if ! running; then
		return 0
	fi
	if ! as_owner "$PGBIN/pg_ctl" -D "$DATA" -m fast -w -t 120 stop >/dev/null; then
		running || return 0
		die "PostgreSQL did not stop within 120 s (see $LOGFILE)"
	fi
}

# psql as a client, on connection string $1: it may run as root, since trust
# authentication takes user=dcmhub from the connection string.
client_psql() {
	local conn=$1 psql=$PGBIN/psql
	shift
	[ -x "$psql" ] || psql=$(command -v psql) || die "psql not found; run deploy/install-deps.sh"
	"$psql" -X -d "$conn" "$@"
}

do_createdb() {
	local have
	have=$(client_psql "host=$RUN dbname=postgres user=$PG_USER" -Atq \
		-c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'") ||
		die "cannot query the server at $RUN"
	[ "$have" = 1 ] && return 0
	"$PGBIN/createdb" -h "$RUN" -U "$PG_USER" "$PG_DB" || die "createdb $PG_DB failed"
}

# Serialises init/start/stop on one folder (two quickstarts at once, say).
lock() {
	exec 9>"$BASE/.pg.sh.lock"
	flock -w 300 9 || die "another pg.sh has held $BASE/.pg.sh.lock for 300 s"
}

CMD=${1:-}
[ -n "$CMD" ] || usage
shift
unset PGHOST PGPORT PGDATABASE PGUSER PGSERVICE PGOPTIONS
case "$CMD" in
psql)
	dir=$ROOT
	if [ $# -gt 0 ] && [ -d "${!#}" ]; then
		dir=${!#}
		set -- "${@:1:$#-1}"
	fi
	;;
init | start | stop | status | conninfo)
	[ $# -le 1 ] || usage
	dir=${1:-$ROOT}
	;;
-h | --help | help) usage ;;
*) usage ;;
esac

set_layout "$dir"
case "$CMD" in
conninfo)
	echo "$CONNINFO"
	;;
init)
	find_pgbin
	command -v flock >/dev/null 2>&1 || die "flock not found; run deploy/install-deps.sh"
	ensure_user
	prepare_dirs
	lock
	do_initdb
	do_start
	do_createdb
	echo "pg.sh: ready: $CONNINFO" >&2
	;;
start)
	find_pgbin
	ensure_user
	prepare_dirs
	lock
	do_start
	;;
stop)
	find_pgbin
	[ -d "$BASE" ] || exit 0
	lock
	do_stop
	;;
status)
	find_pgbin
	if ! cluster_exists; then
		echo "no cluster in $DATA"
		exit 4
	fi
	if running; then
		echo "running: $CONNINFO"
		exit 0
	fi
	echo "stopped: $DATA"
	exit 3
	;;
psql)
	find_pgbin
	cluster_exists || die "no cluster in $DATA; run: deploy/pg.sh init $W"
	running || die "PostgreSQL is not running; run: deploy/pg.sh start $W"
	client_psql "$CONNINFO" "$@"
	;;
esac
