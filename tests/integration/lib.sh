# shellcheck shell=bash
# lib.sh - harness sourced by every integration test (tests/integration/test_*.sh).
#
# A test drives the real binaries from outside, the way a modality would: it
# gets a private folder $T, a private PostgreSQL cluster, a hubd on a free port,
# and the DCMTK tools as peers. Everything it started is stopped when it exits,
# whatever the reason; its folder is removed when it passed, and kept (with the
# end of hubd's log printed) when it failed or DH_KEEP=1.
#
#   . "$(dirname "$0")/lib.sh"
#   dh_setup store            # T=/tmp/dh-store.XXXXXX, cleanup on exit
#   dh_pg_start               # DH_CONNINFO
#   dh_hub_config "[remote.PEER]" "host = 127.0.0.1" "port = $(dh_free_port)"
#   dh_hub_start              # HUB_PORT, HUB_PID
#   storescu -aec DCMHUB 127.0.0.1 "$HUB_PORT" "$(dh_samples)/CT_small.dcm"
#   dh_variant "$(dh_samples)/CT_small.dcm" "$T/a.dcm" -gin   # copy with a new SOP UID
#   dh_assert_eq 1 "$(dh_psql "SELECT count(*) FROM instance")" "one instance stored"
#   dh_pass
#
# Environment: DH_BUILD (build folder; default <repo>/build) and DH_SRC (the
# repository; default: two levels above this file), set by ctest. DH_KEEP=1
# keeps $T after a passing test. HUB_AET (default DCMHUB) is the AE title
# dh_hub_start calls when it probes hubd.
#
# Sourcing this file turns on `set -eEuo pipefail` in the test: any failing
# command fails the test (with the command and line printed). dh_fail and the
# assertions exit the shell they run in; inside $(...) that is a subshell, which
# still fails the test through set -e on a plain assignment (not on `local x=$(...)`).
#
# PostgreSQL: initdb and postgres refuse to run as root, so as root they run as
# the system user `dcmhub` (created when missing, like deploy/pg.sh does). An
# initdb'ed cluster holding the database `dcmhub` is kept as a template in
# $DH_BUILD/tests/pg-template (built once, under flock, by the first test that
# needs it) and copied per test: cp is ten times faster than initdb+createdb.

set -eEuo pipefail

: "${DH_SRC:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${DH_BUILD:=$DH_SRC/build}"
export DH_SRC DH_BUILD
# pydicom and friends come from Debian packages: not a pyenv or venv python
if [ -x /usr/bin/python3 ]; then DH_PYTHON=/usr/bin/python3; else DH_PYTHON=python3; fi
export DH_PYTHON

DH_TEST_NAME=${DH_TEST_NAME:-$(basename "$0" .sh)}
DH_PG_USER=dcmhub
DH_HUB_STATUS=
# the failure seen by the ERR trap or dh_fail: an EXIT trap of the test's own
# that ends in `|| true; dh_cleanup` would otherwise turn a failure into a pass
DH_FAILED=0
# never inherited: cleanup would stop someone else's processes
T=
HUB_PID=

# ---------------------------------------------------------------- assertions

dh_fail() {
	echo "FAIL: $*" >&2
	DH_FAILED=1
	exit 1
}

dh_pass() {
	# a hubd that crashes or reports a sanitizer error on shutdown fails the test
	if [ -n "$HUB_PID" ]; then dh_hub_stop; fi
	echo "PASS: $DH_TEST_NAME"
}

dh_assert_eq() {
	[ "$1" = "$2" ] || dh_fail "${3:-values differ}: expected '$1', got '$2'"
}

dh_assert_ne() {
	[ "$1" != "$2" ] || dh_fail "${3:-values are equal}: both are '$1'"
}

dh_assert_contains() {
	[[ "$1" == *"$2"* ]] || dh_fail "${3:-text lacks a substring}: '$2' not found in: $1"
}

dh_assert_file_exists() {
	[ -e "$1" ] || dh_fail "${2:-file missing}: $1 does not exist"
}

# ------------------------------------------------------------ setup, cleanup

# ERR trap: names the failing command with its call stack, once per process
# (it fires again in every function frame the failure returns through). Only
# failures that set -e makes fatal count: not those inside `set +e` or $(...).
__dh_on_err() {
	[[ $- == *e* ]] || return 0
	DH_FAILED=$1
	[ "${DH_ERR_PID:-}" != "$BASHPID" ] || return 0
	DH_ERR_PID=$BASHPID
	local i at=""
	for ((i = 1; i < ${#FUNCNAME[@]}; i++)); do
		at+=" ${BASH_SOURCE[i]##*/}:${BASH_LINENO[i - 1]}"
		[ "${FUNCNAME[i]}" = main ] || at+="(${FUNCNAME[i]})"
	done
	echo "dh: $DH_TEST_NAME: \`$2\` failed with status $1 at$at" >&2
}

# True when process $1 exists and is not a zombie.
__dh_alive() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[[ "$st" != Z* ]]
}

__dh_need_setup() {
	if [ -z "$T" ] || [ ! -d "$T" ]; then dh_fail "${FUNCNAME[1]}: call dh_setup first"; fi
}

__dh_hub_log_tail() {
	[ -f "$T/hubd.log" ] || return 0
	DH_LOG_SHOWN=1
	echo "--- last 50 lines of $T/hubd.log:" >&2
	tail -n 50 "$T/hubd.log" >&2
	echo "---" >&2
}

# If ctest kills a test on timeout (SIGKILL), its EXIT trap never runs, and
# hubd and the postmaster, both detached from the test's process tree, would
# live on. This watchdog outlives the test too (setsid -f; it holds none of
# ctest's pipes) and stops what is left once the test shell is gone.
__dh_watchdog() {
	# shellcheck disable=SC2016 # expanded by the watchdog's own bash
	setsid -f bash -c '
		me=$1 t=$2
		while kill -0 "$me" 2>/dev/null && [ -d "$t" ]; do sleep 2; done
		[ -d "$t" ] || exit 0
		pid=$(cat "$t/hubd.pid" 2>/dev/null) || pid=
		if [[ "$pid" =~ ^[0-9]+$ ]] && [[ "$(ps -o args= -p "$pid")" == *"$t/hub.conf"* ]]; then
			kill -KILL "$pid"
		fi
		pid=$(head -n 1 "$t/pg/data/postmaster.pid" 2>/dev/null) || pid=
		if [[ "$pid" =~ ^[0-9]+$ ]] && [ "$(ps -o comm= -p "$pid")" = postgres ]; then
			kill -QUIT "$pid"   # immediate shutdown
		fi' dh-watchdog "$$" "$T" </dev/null >/dev/null 2>&1
}

# dh_setup NAME: the test's folder $T and the cleanup on exit.
dh_setup() {
	if [ $# -ne 1 ] || ! [[ "$1" =~ ^[A-Za-z0-9_.-]+$ ]]; then
		dh_fail "usage: dh_setup NAME (letters, digits, _ . -)"
	fi
	DH_TEST_NAME=$1
	T=$(mktemp -d "/tmp/dh-$1.XXXXXX")
	# the cluster owner (dcmhub when we are root) must traverse it
	chmod 0755 "$T"
	export T DH_TEST_NAME
	export TCP_NODELAY=1
	trap dh_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap '__dh_on_err $? "$BASH_COMMAND"' ERR
	__dh_watchdog
}

# dh_bg CMD [ARG...]: runs a helper peer (storescp, ...) in the background with
# its output in $T/bg.log; cleanup kills it even when the test fails. Sets DH_BG_LAST.
DH_BG_PIDS=()
dh_bg() {
	"$@" >>"$T/bg.log" 2>&1 &
	DH_BG_LAST=$!
	DH_BG_PIDS+=("$DH_BG_LAST")
}

# dh_wait_echo PORT [AE]: waits (10 s at most) until a DICOM peer on PORT answers C-ECHO.
dh_wait_echo() {
	local i
	for ((i = 0; i < 100; i++)); do
		echoscu -aet ECHOSCU -aec "${2:-ANY-SCP}" 127.0.0.1 "$1" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	dh_fail "no DICOM peer answers on port $1"
}

dh_cleanup() {
	local rc=$?
	trap - EXIT INT TERM ERR
	set +e
	local bgp
	for bgp in "${DH_BG_PIDS[@]}"; do kill "$bgp" 2>/dev/null; done
	if [ "$rc" -eq 0 ] && [ "$DH_FAILED" != 0 ]; then rc=$DH_FAILED; fi
	if [ -n "$HUB_PID" ]; then
		__dh_hub_terminate
		if [ "$rc" -eq 0 ] && [ "$DH_HUB_STATUS" != 0 ]; then
			echo "FAIL: hubd exited with status $DH_HUB_STATUS when stopped at cleanup" >&2
			rc=1
		fi
	fi
	dh_pg_stop || true
	if [ -n "$T" ] && [ -d "$T" ]; then
		if [ "$rc" -ne 0 ]; then
			echo "dh: $DH_TEST_NAME failed (status $rc); its folder is kept: $T" >&2
			[ -n "${DH_LOG_SHOWN:-}" ] || __dh_hub_log_tail
		elif [ "${DH_KEEP:-0}" = 1 ]; then
			echo "dh: DH_KEEP=1: folder kept: $T" >&2
		else
			rm -rf "$T"
		fi
	fi
	exit "$rc"
}

# dh_free_port: prints a TCP port free on 127.0.0.1, outside the kernel's
# ephemeral range (where outgoing connections could take it before hubd binds
# it) and not already handed out to this test.
dh_free_port() {
	local used=/dev/null
	if [ -n "$T" ] && [ -d "$T" ]; then used=$T/.ports; fi
	"$DH_PYTHON" - "$used" <<'EOF'
import random, socket, sys
used_file = sys.argv[1]
lo, hi = (int(x) for x in open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
ranges = [(10000, lo - 1), (hi + 1, 65535)]
ranges = [r for r in ranges if r[1] - r[0] >= 100] or [(lo, hi)]
try:
    used = {int(x) for x in open(used_file).read().split()}
except OSError:
    used = set()
for _ in range(1000):
    a, b = random.choice(ranges)
    port = random.randint(a, b)
    if port in used:
        continue
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))  # fails for listeners on 0.0.0.0 too
    except OSError:
        continue
    finally:
        s.close()
    if used_file != "/dev/null":
        with open(used_file, "a") as f:
            f.write(f"{port}\n")
    print(port)
    sys.exit(0)
sys.exit("dh_free_port: no free port found")
EOF
}

# dh_variant SRC DST [DCMODIFY-OPTION...]: copies SRC to DST and edits the copy
# with dcmodify (-gin: new SOP Instance UID; -gst/-gse: new study/series UIDs;
# -m "Tag=value"; -ea "(gggg,eeee)"). Fails the test when dcmodify does.
dh_variant() {
	[ $# -ge 2 ] || dh_fail "usage: dh_variant SRC DST [DCMODIFY-OPTION...]"
	local src=$1 dst=$2
	shift 2
	cp -- "$src" "$dst" || dh_fail "dh_variant: cannot copy $src to $dst"
	if [ $# -gt 0 ]; then
		dcmodify -nb -q "$@" "$dst" || dh_fail "dh_variant: dcmodify $* $dst failed"
	fi
}

# dh_samples: the pydicom sample folder.
dh_samples() {
	local d=/usr/lib/python3/dist-packages/pydicom/data/test_files
	[ -d "$d" ] || dh_fail "pydicom sample files not found in $d; install python3-pydicom (deploy/install-deps.sh)"
	echo "$d"
}

# ---------------------------------------------------------------- PostgreSQL

__dh_is_root() { [ "$(id -u)" -eq 0 ]; }

__dh_pgbin() {
	local d
	d=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -type d -name bin 2>/dev/null | sort -V | tail -n 1)
	if [ -z "$d" ] || [ ! -x "$d/initdb" ]; then
		dh_fail "PostgreSQL server programs not found under /usr/lib/postgresql/*/bin; run deploy/install-deps.sh"
	fi
	echo "$d"
}

# Runs a server program as the cluster owner, from /, without our lock fd 9
# (a postmaster inheriting it would hold the template lock for life).
__dh_as_owner() {
	if __dh_is_root; then
		if ! id -u "$DH_PG_USER" >/dev/null 2>&1; then
			useradd --system --no-create-home --shell /usr/sbin/nologin "$DH_PG_USER" ||
				dh_fail "cannot create the system user $DH_PG_USER"
		fi
		(cd / && runuser -u "$DH_PG_USER" -- "$@" 9>&-)
	else
		(cd / && "$@" 9>&-)
	fi
}

__dh_chown_pg() {
	if __dh_is_root; then
		find "$1" ! -user "$DH_PG_USER" -exec chown "$DH_PG_USER:$DH_PG_USER" {} +
	fi
}

# Settings of deploy/pg.sh, socket directory $2, into data directory $1.
__dh_pg_settings() {
	cat >"$1/dcmhub.conf" <<EOF
# written by tests/integration/lib.sh
listen_addresses = ''
unix_socket_directories = '$2'
unix_socket_permissions = 0777
fsync = on
synchronous_commit = on
max_connections = 300
shared_buffers = 256MB
EOF
	if ! grep -q "^include_if_exists = 'dcmhub.conf'" "$1/postgresql.conf"; then
		printf "\ninclude_if_exists = 'dcmhub.conf'\n" >>"$1/postgresql.conf"
	fi
}

__dh_pg_running() {
	local pid
	pid=$(head -n 1 "$1/postmaster.pid" 2>/dev/null) || return 1
	[[ "$pid" =~ ^[0-9]+$ ]] && __dh_alive "$pid" && [ "$(ps -o comm= -p "$pid")" = postgres ]
}

# Builds the template in $T/tpl and moves it into place; runs under the
# exclusive template lock (fd 9).
__dh_pg_template_build() {
	local pgbin=$1 tpl=$2 b=$T/tpl
	rm -rf "$b"
	mkdir -p "$b/run"
	chmod 0755 "$b" "$b/run"
	__dh_chown_pg "$b"
	echo "dh: building the PostgreSQL template $tpl" >&2
	if ! __dh_as_owner "$pgbin/initdb" -D "$b/data" -U "$DH_PG_USER" --auth=trust -E UTF8 --locale=C \
		>"$b/initdb.log" 2>&1; then
		cat "$b/initdb.log" >&2
		return 1
	fi
	__dh_pg_settings "$b/data" "$b/run"
	__dh_chown_pg "$b"
	if ! __dh_as_owner "$pgbin/pg_ctl" -D "$b/data" -l "$b/postgresql.log" -w -t 120 start >/dev/null; then
		cat "$b/postgresql.log" >&2
		return 1
	fi
	local rc=0
	"$pgbin/createdb" -h "$b/run" -U "$DH_PG_USER" dcmhub || rc=1
	__dh_as_owner "$pgbin/pg_ctl" -D "$b/data" -m fast -w -t 120 stop >/dev/null || rc=1
	[ "$rc" -eq 0 ] || return 1
	rm -f "$b/data/dcmhub.conf"
	# assemble beside the final place, then one rename: readers see all or nothing
	rm -rf "$tpl.new" "$tpl.old"
	mkdir -p "$tpl.new"
	cp -a "$b/data" "$tpl.new/data"
	touch "$tpl.new/complete"
	if [ -e "$tpl" ]; then mv "$tpl" "$tpl.old"; fi
	mv "$tpl.new" "$tpl"
	rm -rf "$tpl.old" "$b"
}

# dh_pg_start: starts the test's cluster in $T/pg (a copy of the template the
# first time; the same cluster again after dh_pg_stop); exports DH_CONNINFO.
dh_pg_start() {
	__dh_need_setup
	local pgbin base=$T/pg
	pgbin=$(__dh_pgbin)
	local data=$base/data run=$base/run want
	want=$(basename "$(dirname "$pgbin")")
	local sock=$run/.s.PGSQL.5432
	[ ${#sock} -le 107 ] || dh_fail "socket path $sock is longer than 107 bytes; use a shorter dh_setup NAME"
	if [ ! -f "$data/PG_VERSION" ]; then
		local tpldir=$DH_BUILD/tests tpl
		tpl=$tpldir/pg-template
		mkdir -p "$tpldir"
		if ! [ -f "$tpl/complete" ] || [ "$(cat "$tpl/data/PG_VERSION" 2>/dev/null)" != "$want" ]; then
			(
				flock -w 600 9 || exit 1
				if [ -f "$tpl/complete" ] && [ "$(cat "$tpl/data/PG_VERSION" 2>/dev/null)" = "$want" ]; then
					exit 0 # another test built it while we waited
				fi
				__dh_pg_template_build "$pgbin" "$tpl"
			) 9>"$tpldir/pg-template.lock" || dh_fail "could not build the PostgreSQL template $tpl"
		fi
		mkdir -p "$base"
		(flock -s -w 600 9 && cp -a "$tpl/data" "$data") 9>"$tpldir/pg-template.lock" ||
			dh_fail "could not copy the PostgreSQL template $tpl to $data"
	fi
	mkdir -p "$run"
	chmod 0755 "$base" "$run"
	__dh_pg_settings "$data" "$run"
	__dh_chown_pg "$base"
	if ! __dh_pg_running "$data"; then
		# a postmaster killed with -9 is a zombie until reaped; postgres would
		# take it for a live owner of the data directory
		local pid i
		pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null) || pid=
		if [[ "$pid" =~ ^[0-9]+$ ]]; then
			for ((i = 0; i < 300; i++)); do
				[[ "$(ps -o comm= -p "$pid" 2>/dev/null)" == postgres* ]] || break
				sleep 0.1
			done
		fi
		rm -f "$run/.s.PGSQL.5432.lock"
		if ! __dh_as_owner "$pgbin/pg_ctl" -D "$data" -l "$base/postgresql.log" -w -t 120 start >/dev/null; then
			tail -n 30 "$base/postgresql.log" >&2 || true
			dh_fail "PostgreSQL did not start (log: $base/postgresql.log)"
		fi
	fi
	DH_CONNINFO="host=$run dbname=dcmhub user=$DH_PG_USER"
	export DH_CONNINFO
}

# dh_pg_stop: fast shutdown of the test's cluster (immediate if that hangs).
dh_pg_stop() {
	if [ -z "$T" ] || [ ! -f "$T/pg/data/PG_VERSION" ]; then return 0; fi
	local data=$T/pg/data pgbin
	__dh_pg_running "$data" || return 0
	pgbin=$(__dh_pgbin)
	if ! __dh_as_owner "$pgbin/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null; then
		__dh_pg_running "$data" || return 0
		echo "dh: PostgreSQL did not stop within 60 s: immediate shutdown" >&2
		__dh_as_owner "$pgbin/pg_ctl" -D "$data" -m immediate -w -t 60 stop >/dev/null || return 1
	fi
}

dh_pg_restart() {
	dh_pg_stop
	dh_pg_start
}

# dh_psql SQL [VALUE...]: runs SQL, prints rows unaligned ('|' between columns),
# without headers. Values become psql variables p1, p2...: use :'p1' for a
# quoted literal, :p1 for raw text. A failing statement fails the call.
dh_psql() {
	[ -n "${DH_CONNINFO:-}" ] || dh_fail "dh_psql: call dh_pg_start first"
	local sql=$1 i=1 v
	shift
	local vars=()
	for v in "$@"; do
		vars+=(-v "p$i=$v")
		i=$((i + 1))
	done
	psql -XAtq -v ON_ERROR_STOP=1 -d "$DH_CONNINFO" "${vars[@]}" -f - <<<"$sql"
}

# ------------------------------------------------------------- daemons (hubd, spoked)

# __dh_daemon_launch NAME BIN CONF: starts BIN -c CONF detached, its log
# appended to $T/NAME.log; sets DH_DAEMON_PID. The daemon is not a child of
# the test shell (a plain `wait` in a test would otherwise wait for it): a
# detached wrapper runs it, writes its PID to $T/NAME.pid and, when it ends,
# its exit status to $T/NAME.status (set -m: job control, so that the daemon
# does not start with SIGINT ignored, as background jobs of scripts do).
__dh_daemon_launch() {
	local name=$1 bin=$2 conf=$3
	rm -f "$T/$name.pid" "$T/$name.status"
	echo "=== dh_${name%d}_start $(date '+%F %T')" >>"$T/$name.log"
	# shellcheck disable=SC2016 # expanded by the wrapper's own bash
	setsid -f bash -c 'set -m
		"$1" -c "$2" >>"$3" 2>&1 </dev/null &
		pid=$!
		echo "$pid" >"$4.tmp" && mv "$4.tmp" "$4"
		st=0
		wait "$pid" || st=$?
		echo "$st" >"$5.tmp" && mv "$5.tmp" "$5"' "dh-$name" \
		"$bin" "$conf" "$T/$name.log" "$T/$name.pid" "$T/$name.status" </dev/null >/dev/null 2>&1
	local i
	for ((i = 0; i < 100; i++)); do
		[ -s "$T/$name.pid" ] && break
		sleep 0.1
	done
	DH_DAEMON_PID=$(cat "$T/$name.pid" 2>/dev/null) || dh_fail "$name's launcher did not report a PID"
}

# __dh_daemon_wait_echo NAME AET PORT: waits (30 s at most) until the daemon
# answers C-ECHO; fails (after TAILFN) when it exits or stays silent.
__dh_daemon_wait_echo() {
	local name=$1 aet=$2 port=$3 tailfn=$4 deadline=$((SECONDS + 30))
	while :; do
		if [ -f "$T/$name.status" ]; then
			"$tailfn"
			dh_fail "$name exited with status $(cat "$T/$name.status") while starting"
		fi
		if timeout 15 echoscu -to 2 -ta 5 -td 5 -aet ECHOSCU -aec "$aet" 127.0.0.1 "$port" >/dev/null 2>&1; then
			return 0
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			"$tailfn"
			dh_fail "$name did not answer C-ECHO on port $port within 30 s"
		fi
		sleep 0.2
	done
}

# Waits up to $2 tenths of a second for daemon $1's exit status; true when it came.
__dh_daemon_wait_status() {
	local i
	for ((i = 0; i < $2; i++)); do
		[ -f "$T/$1.status" ] && return 0
		sleep 0.1
	done
	[ -f "$T/$1.status" ]
}

# __dh_daemon_terminate NAME PID: TERM (KILL after 10 s); DH_DAEMON_STATUS
# gets its exit status, "killed" when it needed SIGKILL, or "" when PID is
# empty. Never fails.
__dh_daemon_terminate() {
	local name=$1 pid=$2
	DH_DAEMON_STATUS=
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	if ! __dh_daemon_wait_status "$name" 100; then
		echo "dh: $name (pid $pid) still running 10 s after SIGTERM: SIGKILL" >&2
		kill -KILL "$pid" 2>/dev/null || true
		__dh_daemon_wait_status "$name" 50 || true
		DH_DAEMON_STATUS=killed
	fi
	[ -n "$DH_DAEMON_STATUS" ] || DH_DAEMON_STATUS=$(cat "$T/$name.status")
	rm -f "$T/$name.pid" "$T/$name.status"
}

# __dh_daemon_kill9 NAME PID: SIGKILL; returns once it is gone.
__dh_daemon_kill9() {
	local name=$1 pid=$2
	[ -n "$pid" ] || return 0
	kill -KILL "$pid" 2>/dev/null || true
	__dh_daemon_wait_status "$name" 100 || dh_fail "$name (pid $pid) survived SIGKILL for 10 s"
	rm -f "$T/$name.pid" "$T/$name.status"
}

# ----------------------------------------------------------------------- hubd

# dh_hub_config [LINE...]: writes $T/hub.conf for the test's cluster, on a new
# free port (HUB_PORT). LINEs are appended verbatim: more sections, or a
# repeated [section] whose keys override the ones above (last value wins).
dh_hub_config() {
	__dh_need_setup
	[ -n "${DH_CONNINFO:-}" ] || dh_fail "dh_hub_config: call dh_pg_start first"
	HUB_PORT=$(dh_free_port)
	export HUB_PORT
	mkdir -p "$T/cache"
	local ae line
	{
		echo "; written by tests/integration/lib.sh for $DH_TEST_NAME"
		echo "[hub]"
		echo "port = $HUB_PORT"
		echo "log_level = debug"
		echo
		echo "[database]"
		echo "conninfo = \"$DH_CONNINFO\""
		echo "pool_size = 8"
		echo
		echo "[storage]"
		echo "cache_dir = $T/cache"
		echo
		# the DCMTK tools' default calling AE titles
		for ae in STORESCU FINDSCU MOVESCU ECHOSCU; do
			echo "[remote.$ae]"
			echo "host = 127.0.0.1"
			echo
		done
		for line in "$@"; do
			echo "$line"
		done
	} >"$T/hub.conf"
}

# dh_hub_start: starts hubd on $T/hub.conf, log appended to $T/hubd.log, and
# waits (30 s at most) until it answers C-ECHO. Exports HUB_PID.
#
# hubd is not a child of the test shell: a plain `wait` in a test (for its
# own background peers) would otherwise wait for hubd forever. A detached
# wrapper runs it, writes its PID to $T/hubd.pid and, when it ends, its exit
# status to $T/hubd.status (set -m: job control, so that hubd does not start
# with SIGINT ignored, as background jobs of scripts otherwise do).
dh_hub_start() {
	__dh_need_setup
	local hubd=$DH_BUILD/hub/hubd
	[ -x "$hubd" ] || dh_fail "hubd not built: $hubd is missing (cmake --build $DH_BUILD)"
	[ -f "$T/hub.conf" ] || dh_fail "dh_hub_start: call dh_hub_config first"
	command -v echoscu >/dev/null 2>&1 || dh_fail "echoscu not found; install dcmtk (deploy/install-deps.sh)"
	if [ -n "$HUB_PID" ] && __dh_alive "$HUB_PID"; then
		dh_fail "dh_hub_start: hubd is already running (pid $HUB_PID)"
	fi
	__dh_daemon_launch hubd "$hubd" "$T/hub.conf"
	HUB_PID=$DH_DAEMON_PID
	export HUB_PID
	__dh_daemon_wait_echo hubd "${HUB_AET:-DCMHUB}" "$HUB_PORT" __dh_hub_log_tail
}

# Stops hubd (TERM; KILL after 10 s) and sets DH_HUB_STATUS to its exit status,
# "killed" when it needed SIGKILL, or "" when it was not running. Never fails.
__dh_hub_terminate() {
	__dh_daemon_terminate hubd "$HUB_PID"
	DH_HUB_STATUS=$DH_DAEMON_STATUS
	HUB_PID=
}

# dh_hub_stop: SIGTERM, wait; fails the test unless hubd exits 0 within 10 s
# (a crash, or a sanitizer report at exit, shows here).
dh_hub_stop() {
	__dh_hub_terminate
	case "$DH_HUB_STATUS" in
	"" | 0) return 0 ;;
	killed) dh_fail "hubd did not exit within 10 s of SIGTERM" ;;
	*)
		__dh_hub_log_tail
		dh_fail "hubd exited with status $DH_HUB_STATUS after SIGTERM (expected 0)"
		;;
	esac
}

# dh_hub_kill9: kills hubd without warning (crash tests); returns once it is gone.
dh_hub_kill9() {
	__dh_daemon_kill9 hubd "$HUB_PID"
	HUB_PID=
}
