# shellcheck shell=bash
# lib_spoke.sh - spoked helpers for integration tests; source it after lib.sh.
#
#   . "$(dirname "$0")/lib.sh"
#   . "$(dirname "$0")/lib_spoke.sh"
#   dh_setup fwd
#   dh_pg_start
#   dh_spoke_db                             # database dcmspoke, SPOKE_CONNINFO
#   dh_spoke_prepare                        # SPOKE_PORT, DH_SPOKE_HUB_LINES
#   dh_hub_config "${DH_SPOKE_HUB_LINES[@]}"
#   dh_hub_start
#   dh_spoke_config "[forward]" "commit_timeout = 10"   # $T/spoked.conf
#   dh_spoke_start                          # SPOKE_PID; waits for C-ECHO
#   storescu -aet STORESCU -aec SPOKE1 127.0.0.1 "$SPOKE_PORT" file.dcm
#   dh_spoke_psql "SELECT count(*) FROM ledger_instance WHERE fwd_state = 'committed'"
#   dh_spoke_stop                           # fails unless spoked exits 0
#   dh_pass
#
# spoked runs detached like hubd (see dh_hub_start), its log in
# $T/spoked.log; the test's exit stops it (SIGKILL after 10 s), and a
# watchdog kills it if the test shell itself is SIGKILLed.
# The spoke is SPOKE1 (AE title) of spoke SITE1; it accepts STORESCU,
# ECHOSCU and the hub (DCMHUB) as calling AE titles.

SPOKE_PID=
SPOKE_AET=${SPOKE_AET:-SPOKE1}
SPOKE_ID=${SPOKE_ID:-SITE1}
DH_SPOKE_STATUS=

__dh_spoke_log_tail() {
	[ -f "$T/spoked.log" ] || return 0
	echo "--- last 50 lines of $T/spoked.log:" >&2
	tail -n 50 "$T/spoked.log" >&2
	echo "---" >&2
}

__dh_spoke_set_status() { return "$1"; }

# EXIT hook in front of dh_cleanup: spoked goes first (it talks to the
# hub and to PostgreSQL, which dh_cleanup stops).
__dh_spoke_on_exit() {
	local rc=$1
	set +e
	if [ -n "$SPOKE_PID" ]; then
		__dh_spoke_terminate
		if [ "$rc" -eq 0 ] && [ "$DH_SPOKE_STATUS" != 0 ]; then
			echo "FAIL: spoked exited with status $DH_SPOKE_STATUS when stopped at cleanup" >&2
			rc=1
		fi
	fi
	if [ "$rc" -ne 0 ] || [ "$DH_FAILED" != 0 ]; then __dh_spoke_log_tail; fi
	__dh_spoke_set_status "$rc"
	dh_cleanup
}

__dh_spoke_watchdog() {
	# shellcheck disable=SC2016 # expanded by the watchdog's own bash
	setsid -f bash -c '
		me=$1 t=$2
		while kill -0 "$me" 2>/dev/null && [ -d "$t" ]; do sleep 2; done
		[ -d "$t" ] || exit 0
		pid=$(cat "$t/spoked.pid" 2>/dev/null) || pid=
		if [[ "$pid" =~ ^[0-9]+$ ]] && [[ "$(ps -o args= -p "$pid")" == *"$t/spoked.conf"* ]]; then
			kill -KILL "$pid"
		fi' dh-spoke-watchdog "$$" "$T" </dev/null >/dev/null 2>&1
}

# dh_spoke_db: creates the spoke's database (dcmspoke) in the test's cluster
# and exports SPOKE_CONNINFO. spoked migrates it at start-up.
dh_spoke_db() {
	__dh_need_setup
	[ -n "${DH_CONNINFO:-}" ] || dh_fail "dh_spoke_db: call dh_pg_start first"
	if [ "$(dh_psql "SELECT count(*) FROM pg_database WHERE datname = 'dcmspoke'")" = 0 ]; then
		dh_psql "CREATE DATABASE dcmspoke" || dh_fail "cannot create the spoke database"
	fi
	SPOKE_CONNINFO=${DH_CONNINFO/dbname=dcmhub/dbname=dcmspoke}
	export SPOKE_CONNINFO
}

# dh_spoke_psql SQL [VALUE...]: like dh_psql, on the spoke's database.
dh_spoke_psql() {
	[ -n "${SPOKE_CONNINFO:-}" ] || dh_fail "dh_spoke_psql: call dh_spoke_db first"
	local sql=$1 i=1 v
	shift
	local vars=()
	for v in "$@"; do
		vars+=(-v "p$i=$v")
		i=$((i + 1))
	done
	psql -XAtq -v ON_ERROR_STOP=1 -d "$SPOKE_CONNINFO" "${vars[@]}" -f - <<<"$sql"
}

# dh_spoke_prepare: picks SPOKE_PORT and fills DH_SPOKE_HUB_LINES, the hub
# configuration lines that make the hub know the spoke: its address (for
# storage commitment results) and its [spoke.SITE1] section (a public key
# from `hubctl keygen`, or any 40 Z85 characters; [cc] stays off).
dh_spoke_prepare() {
	__dh_need_setup
	SPOKE_PORT=$(dh_free_port)
	export SPOKE_PORT
	local pub="" hubctl=$DH_BUILD/hub/hubctl
	if [ -x "$hubctl" ]; then
		rm -f "$T/spoke.key"
		pub=$("$hubctl" keygen --secret-file "$T/spoke.key" 2>/dev/null) || pub=""
	fi
	if [ ${#pub} -ne 40 ]; then
		pub=$("$DH_PYTHON" -c 'import random, string
z = string.digits + string.ascii_letters + ".-:+=^!/*?&<>()[]{}@%$#"
print("".join(random.choice(z) for _ in range(40)))')
	fi
	SPOKE_PUBLIC_KEY=$pub
	export SPOKE_PUBLIC_KEY
	# shellcheck disable=SC2034 # read by the test
	DH_SPOKE_HUB_LINES=("[remote.$SPOKE_AET]" "host = 127.0.0.1" "port = $SPOKE_PORT"
		"[spoke.$SPOKE_ID]" "public_key = $pub" "ae_titles = $SPOKE_AET")
}

# dh_spoke_config [LINE...]: writes $T/spoked.conf (spoke database, store in
# $T/spoke, the test's hub on HUB_PORT, short retry and commit time-outs).
# LINEs are appended verbatim; a repeated key wins.
dh_spoke_config() {
	__dh_need_setup
	[ -n "${SPOKE_CONNINFO:-}" ] || dh_fail "dh_spoke_config: call dh_spoke_db first"
	[ -n "${SPOKE_PORT:-}" ] || dh_fail "dh_spoke_config: call dh_spoke_prepare first"
	[ -n "${HUB_PORT:-}" ] || dh_fail "dh_spoke_config: call dh_hub_config first"
	mkdir -p "$T/spoke"
	local ae line
	{
		echo "; written by tests/integration/lib_spoke.sh for $DH_TEST_NAME"
		echo "[spoke]"
		echo "id = $SPOKE_ID"
		echo "ae_title = $SPOKE_AET"
		echo "port = $SPOKE_PORT"
		echo "store_dir = $T/spoke"
		echo "log_level = debug"
		echo
		echo "[database]"
		echo "conninfo = \"$SPOKE_CONNINFO\""
		echo "pool_size = 8"
		echo
		echo "[hub]"
		echo "host = 127.0.0.1"
		echo "port = $HUB_PORT"
		echo "ae_title = ${HUB_AET:-DCMHUB}"
		echo
		echo "[forward]"
		echo "retry_min = 1"
		echo "retry_max = 4"
		echo "commit_timeout = 20"
		echo
		for ae in STORESCU ECHOSCU "${HUB_AET:-DCMHUB}"; do
			echo "[remote.$ae]"
			echo "host = 127.0.0.1"
			echo
		done
		for line in "$@"; do
			echo "$line"
		done
	} >"$T/spoked.conf"
}

# dh_spoke_start: starts spoked on $T/spoked.conf (log appended to
# $T/spoked.log) and waits (30 s at most) until it answers C-ECHO.
dh_spoke_start() {
	__dh_need_setup
	local spoked=$DH_BUILD/spoke/spoked
	[ -x "$spoked" ] || dh_fail "spoked not built: $spoked is missing (cmake --build $DH_BUILD)"
	[ -f "$T/spoked.conf" ] || dh_fail "dh_spoke_start: call dh_spoke_config first"
	if [ -n "$SPOKE_PID" ] && __dh_alive "$SPOKE_PID"; then
		dh_fail "dh_spoke_start: spoked is already running (pid $SPOKE_PID)"
	fi
	if [ -z "${__DH_SPOKE_HOOKED:-}" ]; then
		trap '__dh_spoke_on_exit $?' EXIT
		__dh_spoke_watchdog
		__DH_SPOKE_HOOKED=1
	fi
	__dh_daemon_launch spoked "$spoked" "$T/spoked.conf"
	SPOKE_PID=$DH_DAEMON_PID
	export SPOKE_PID
	__dh_daemon_wait_echo spoked "$SPOKE_AET" "$SPOKE_PORT" __dh_spoke_log_tail
}

# TERM (KILL after 10 s); DH_SPOKE_STATUS gets the exit status, "killed", or "".
__dh_spoke_terminate() {
	__dh_daemon_terminate spoked "$SPOKE_PID"
	DH_SPOKE_STATUS=$DH_DAEMON_STATUS
	SPOKE_PID=
}

# dh_spoke_stop: SIGTERM; fails the test unless spoked exits 0 within 10 s.
dh_spoke_stop() {
	__dh_spoke_terminate
	case "$DH_SPOKE_STATUS" in
	"" | 0) return 0 ;;
	killed) dh_fail "spoked did not exit within 10 s of SIGTERM" ;;
	*)
		__dh_spoke_log_tail
		dh_fail "spoked exited with status $DH_SPOKE_STATUS after SIGTERM (expected 0)"
		;;
	esac
}

# dh_spoke_kill9: kills spoked without warning; returns once it is gone.
dh_spoke_kill9() {
	__dh_daemon_kill9 spoked "$SPOKE_PID"
	SPOKE_PID=
}

# dh_spoke_wait SQL EXPECTED [SECONDS] [WHAT]: polls the spoke database until
# SQL prints EXPECTED (default 60 s); fails the test with the last value.
dh_spoke_wait() {
	local sql=$1 want=$2 secs=${3:-60} what=${4:-spoke ledger} got="" deadline
	deadline=$((SECONDS + secs))
	while :; do
		got=$(dh_spoke_psql "$sql") || got="(query failed)"
		[ "$got" = "$want" ] && return 0
		[ "$SECONDS" -lt "$deadline" ] || dh_fail "$what: expected '$want' within $secs s, got '$got'"
		sleep 0.5
	done
}

# dh_hub_wait SQL EXPECTED [SECONDS] [WHAT]: the same on the hub's database.
dh_hub_wait() {
	local sql=$1 want=$2 secs=${3:-60} what=${4:-hub index} got="" deadline
	deadline=$((SECONDS + secs))
	while :; do
		got=$(dh_psql "$sql") || got="(query failed)"
		[ "$got" = "$want" ] && return 0
		[ "$SECONDS" -lt "$deadline" ] || dh_fail "$what: expected '$want' within $secs s, got '$got'"
		sleep 0.5
	done
}
