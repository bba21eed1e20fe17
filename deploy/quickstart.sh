#!/usr/bin/env bash
# quickstart.sh - from a fresh checkout to a running hub and spoke with one command (README command 1).
#
# Installs the Debian packages (deploy/install-deps.sh), builds into build/,
# creates and starts the embedded PostgreSQL of the repository (var/pg, see
# deploy/pg.sh), writes var/hubd.conf and var/spoked.conf when there are none
# (with CURVE key pairs in var/keys/ for the change-context link, the spoke's
# ledger in the database dcmspoke of the same cluster), applies the schema
# migrations and starts hubd and spoked on loopback: in the background (logs
# var/log/hubd.log and spoked.log, pids in var/run/) or, with --foreground,
# hubd in this terminal (spoked then stays stopped). Everything it
# creates lives in var/ and build/, both ignored by git. Running it again is
# harmless: what exists is kept, what runs keeps running.
#
# Usage: deploy/quickstart.sh [--foreground]   set up and start
#        deploy/quickstart.sh stop             stop spoked, hubd and PostgreSQL
#        deploy/quickstart.sh status           say what runs
# Environment: HUB_PORT, the DICOM port written into a new var/hubd.conf (default 11112).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONF=$ROOT/var/hubd.conf
PIDFILE=$ROOT/var/run/hubd.pid
LOG=$ROOT/var/log/hubd.log
HUBD=$ROOT/build/hub/hubd
HUBCTL=$ROOT/build/hub/hubctl
SPOKED=$ROOT/build/spoke/spoked
SPOKECTL=$ROOT/build/spoke/spokectl
SCONF=$ROOT/var/spoked.conf
SPIDFILE=$ROOT/var/run/spoked.pid
SLOG=$ROOT/var/log/spoked.log
SPOKE_PORT=11114
CC_PORT=11113
PG=$ROOT/deploy/pg.sh
SAMPLES=/usr/lib/python3/dist-packages/pydicom/data/test_files
# the calling AE titles of the DCMTK tools when run without -aet
DCMTK_AES=(STORESCU FINDSCU MOVESCU ECHOSCU)
export TCP_NODELAY=1

die() {
	echo "quickstart: $*" >&2
	exit 1
}

say() { echo "quickstart: $*" >&2; }

# Last value of KEY in [SECTION] of the configuration (quotes and comments removed).
conf_get() {
	awk -v want_sec="$1" -v want_key="$2" '
		/^[ \t]*\[/ { sec = $0; gsub(/^[ \t]*\[|\][ \t]*$/, "", sec); next }
		sec == want_sec && $0 ~ "^[ \t]*" want_key "[ \t]*=" {
			v = $0; sub(/^[^=]*=[ \t]*/, "", v)
			if (v ~ /^"/) { sub(/^"/, "", v); sub(/".*$/, "", v) }
			else { sub(/[ \t]+[;#].*$/, "", v); sub(/[ \t]+$/, "", v) }
			val = v
		}
		END { print val }' "$CONF"
}

# PID of the running hubd of this folder, or nothing.
hubd_pid() {
	local pid
	pid=$(cat "$PIDFILE" 2>/dev/null) || return 0
	[[ "$pid" =~ ^[0-9]+$ ]] || return 0
	# the PID must still be our hubd, not a later process that got the number
	if [[ "$(ps -o stat= -p "$pid" 2>/dev/null)" != Z* ]] &&
		[[ "$(ps -o args= -p "$pid" 2>/dev/null)" == *"$HUBD"* ]]; then
		echo "$pid"
	fi
}

# PID of the running spoked of this folder, or nothing.
spoked_pid() {
	local pid
	pid=$(cat "$SPIDFILE" 2>/dev/null) || return 0
	[[ "$pid" =~ ^[0-9]+$ ]] || return 0
	if [[ "$(ps -o stat= -p "$pid" 2>/dev/null)" != Z* ]] &&
		[[ "$(ps -o args= -p "$pid" 2>/dev/null)" == *"$SPOKED"* ]]; then
		echo "$pid"
	fi
}

stop_spoked() {
	local pid i
	pid=$(spoked_pid)
	[ -n "$pid" ] || return 0
	say "stopping spoked (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 300; i++)); do
		[ -n "$(spoked_pid)" ] || break
		sleep 0.1
	done
	[ -z "$(spoked_pid)" ] || kill -KILL "$pid" 2>/dev/null || true
	rm -f "$SPIDFILE"
}

stop_all() {
	local pid i
	stop_spoked
	pid=$(hubd_pid)
	if [ -n "$pid" ]; then
		say "stopping hubd (pid $pid)"
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 300; i++)); do
			[ -n "$(hubd_pid)" ] || break
			sleep 0.1
		done
		if [ -n "$(hubd_pid)" ]; then
			say "hubd still running 30 s after SIGTERM: SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	rm -f "$PIDFILE"
	say "stopping PostgreSQL"
	"$PG" stop "$ROOT"
}

status_all() {
	local pid rc=0
	pid=$(hubd_pid)
	if [ -n "$pid" ]; then
		echo "hubd: running (pid $pid), log $LOG"
	else
		echo "hubd: stopped"
		rc=3
	fi
	pid=$(spoked_pid)
	if [ -n "$pid" ]; then
		echo "spoked: running (pid $pid), log $SLOG"
	else
		echo "spoked: stopped"
		rc=3
	fi
	echo -n "PostgreSQL: "
	"$PG" status "$ROOT" || rc=3
	return "$rc"
}

# Writes var/hubd.conf from the defaults hubd prints, with the embedded
# database, an absolute cache folder, the port, and the DCMTK tools' AE titles.
write_conf() {
	local port=$1 conninfo tmp ae
	conninfo=$("$PG" conninfo "$ROOT")
	tmp=$CONF.tmp
	"$HUBD" --print-config >"$tmp.defaults" || die "$HUBD --print-config failed"
	# replace the keys where the defaults have them; add them when missing
	awk -v port="$port" -v conninfo="\"$conninfo\"" -v cache="$ROOT/var/cache" '
		BEGIN {
			want["hub", "port"] = port
			want["database", "conninfo"] = conninfo
			want["storage", "cache_dir"] = cache
			want["wado", "enabled"] = "true"
			n = split("hub port|database conninfo|storage cache_dir|wado enabled", order, "|")
		}
		function add_missing(s,   i, a) {
			for (i = 1; i <= n; i++) {
				split(order[i], a, " ")
				if (a[1] == s && !done[a[1], a[2]]) {
					print a[2] " = " want[a[1], a[2]]
					done[a[1], a[2]] = 1
				}
			}
		}
		/^[ \t]*\[[^]]*\][ \t]*$/ {
			add_missing(sec)
			sec = $0; gsub(/^[ \t]*\[|\][ \t]*$/, "", sec)
			print; next
		}
		match($0, /^[ \t]*[A-Za-z0-9_]+[ \t]*=/) {
			key = substr($0, RSTART, RLENGTH); sub(/=$/, "", key); gsub(/[ \t]/, "", key)
			if ((sec, key) in want) { print key " = " want[sec, key]; done[sec, key] = 1; next }
		}
		{ print }
		END {
			add_missing(sec)
			for (i = 1; i <= n; i++) {
				split(order[i], a, " ")
				if (!done[a[1], a[2]]) print "\n[" a[1] "]\n" a[2] " = " want[a[1], a[2]]
			}
		}' "$tmp.defaults" >"$tmp"
	rm -f "$tmp.defaults"
	local missing=()
	for ae in "${DCMTK_AES[@]}"; do
		grep -q "^\[remote\.$ae\]" "$tmp" || missing+=("$ae")
	done
	{
		echo
		echo "# Added by deploy/quickstart.sh: the DCMTK tools' default calling AE titles,"
		echo "# so that echoscu, storescu, findscu and movescu work without -aet."
		for ae in "${missing[@]}"; do
			echo "[remote.$ae]"
			echo "host = 127.0.0.1"
			echo
		done
		echo "# Added by deploy/quickstart.sh: the local spoke (spoked, var/spoked.conf)."
		echo "[cc]"
		echo "endpoint = tcp://127.0.0.1:$CC_PORT"
		echo "secret_key_file = $ROOT/var/keys/hub.key"
		echo
		echo "[spoke.SITE1]"
		echo "public_key = $(cat "$ROOT/var/keys/spoke.pub")"
		echo "ae_titles = SPOKE1"
		echo
		echo "[remote.SPOKE1]"
		echo "host = 127.0.0.1"
		echo "port = $SPOKE_PORT"
	} >>"$tmp"
	mv -f "$tmp" "$CONF"
	say "wrote $CONF"
}

# Key pairs of the change-context link (kept once made: the other side trusts them).
make_keys() {
	mkdir -p "$ROOT/var/keys"
	chmod 0700 "$ROOT/var/keys"
	if [ ! -f "$ROOT/var/keys/hub.key" ]; then
		"$HUBCTL" keygen --secret-file "$ROOT/var/keys/hub.key" >"$ROOT/var/keys/hub.pub"
	fi
	if [ ! -f "$ROOT/var/keys/spoke.key" ]; then
		# spokectl prints "public KEY"
		"$SPOKECTL" keygen --secret-file "$ROOT/var/keys/spoke.key" | awk '{ print $NF }' >"$ROOT/var/keys/spoke.pub"
	fi
}

# Writes var/spoked.conf: spoke SITE1 (AE SPOKE1) forwarding to this hub.
write_spoke_conf() {
	local hubport=$1 conninfo
	conninfo=$("$PG" conninfo "$ROOT")
	conninfo=${conninfo/dbname=dcmhub/dbname=dcmspoke}
	cat >"$SCONF.tmp" <<EOF
# Written by deploy/quickstart.sh; every option: build/spoke/spoked --print-config
[spoke]
id = SITE1
ae_title = SPOKE1
port = $SPOKE_PORT
store_dir = $ROOT/var/spoke
secret_key_file = $ROOT/var/keys/spoke.key

[database]
conninfo = "$conninfo"

[hub]
host = 127.0.0.1
port = $hubport
ae_title = $aet
cc_endpoint = tcp://127.0.0.1:$CC_PORT
public_key = $(cat "$ROOT/var/keys/hub.pub")

# the spoke PACS (here: the DCMTK tools) and the hub
[remote.STORESCU]
host = 127.0.0.1
[remote.ECHOSCU]
host = 127.0.0.1
[remote.$aet]
host = 127.0.0.1
port = $hubport
EOF
	mv -f "$SCONF.tmp" "$SCONF"
	say "wrote $SCONF"
}

start_spoked() {
	local pid deadline
	pid=$(spoked_pid)
	if [ -n "$pid" ]; then
		say "spoked is already running"
		return 0
	fi
	echo "=== started by deploy/quickstart.sh $(date '+%F %T')" >>"$SLOG"
	setsid "$SPOKED" -c "$SCONF" >>"$SLOG" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"$SPIDFILE"
	deadline=$((SECONDS + 30))
	until echoscu -to 2 -ta 5 -td 5 -aet ECHOSCU -aec SPOKE1 127.0.0.1 "$SPOKE_PORT" >/dev/null 2>&1; do
		if ! kill -0 "$pid" 2>/dev/null || [[ "$(ps -o stat= -p "$pid")" == Z* ]]; then
			rm -f "$SPIDFILE"
			tail -n 30 "$SLOG" >&2
			die "spoked exited during start-up (log above, full log in $SLOG)"
		fi
		[ "$SECONDS" -lt "$deadline" ] || die "spoked did not answer C-ECHO on port $SPOKE_PORT within 30 s"
		sleep 0.2
	done
}

print_info() {
	local pid=$1 aet=$2 port=$3 where=$LOG state="is running (pid $1)"
	if [ -z "$pid" ]; then
		where="this terminal"
		state="starts in the foreground"
	fi
	cat <<EOF

dcmhub $state: AE title $aet, port $port.
  configuration  $CONF
  log            $where
  database       $("$PG" conninfo "$ROOT")   (deploy/pg.sh psql)
Try it (the DCMTK tools' default AE titles are configured):
  TCP_NODELAY=1 echoscu -aec $aet 127.0.0.1 $port
  TCP_NODELAY=1 storescu -aec $aet 127.0.0.1 $port $SAMPLES/CT_small.dcm
  TCP_NODELAY=1 storescu -aec $aet +sd +r -nh 127.0.0.1 $port $SAMPLES/dicomdirtests
The spoke (spoked, AE SPOKE1, port $SPOKE_PORT, config $SCONF, log $SLOG)
forwards what it receives to the hub and ships changes made with spokectl:
  TCP_NODELAY=1 storescu -aec SPOKE1 127.0.0.1 $SPOKE_PORT $SAMPLES/CT_small.dcm
  build/spoke/spokectl -c $SCONF ledger
  build/spoke/spokectl -c $SCONF modify --study STUDY_UID --set PatientName=DOE^JANE
  build/spoke/spokectl -c $SCONF status
Stop it:
  deploy/quickstart.sh stop      (stops spoked, hubd and PostgreSQL)
EOF
	if [ "$(conf_get wado enabled)" = true ]; then
		local wport
		wport=$(conf_get wado port)
		u() { dcmdump -q +P "$1" "$SAMPLES/CT_small.dcm" | sed 's/.*\[\(.*\)\].*/\1/'; }
		cat <<EOF
WADO-URI (HTTP, loopback only; docs/conformance.md section 6), e.g. CT_small.dcm once stored:
  curl -o ct.dcm "http://$(conf_get wado bind_address):${wport:-8080}/wado?requestType=WADO&studyUID=$(u 0020,000d)&seriesUID=$(u 0020,000e)&objectUID=$(u 0008,0018)&contentType=application/dicom"
EOF
	fi
}

foreground=0
case "${1:-}" in
"") ;;
--foreground) foreground=1 ;;
stop)
	stop_all
	exit 0
	;;
status)
	status_all
	exit $?
	;;
-h | --help)
	sed -n '/^# Usage:/,/^# Environment:/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
	exit 0
	;;
*) die "unknown argument '$1' (try --help)" ;;
esac
[ $# -le 1 ] || die "too many arguments (try --help)"

port=${HUB_PORT:-11112}
if ! [[ "$port" =~ ^[0-9]+$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
	die "HUB_PORT must be a port number, not '$port'"
fi

cd "$ROOT"
say "installing packages (deploy/install-deps.sh)"
"$ROOT/deploy/install-deps.sh"

say "building into build/"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
for b in "$HUBD" "$HUBCTL" "$SPOKED" "$SPOKECTL"; do
	[ -x "$b" ] || die "the build did not produce $b"
done

say "starting PostgreSQL (var/pg)"
"$PG" init "$ROOT"
"$PG" start "$ROOT"

mkdir -p "$ROOT/var/log" "$ROOT/var/run" "$ROOT/var/cache" "$ROOT/var/spoke"
make_keys
if [ -f "$CONF" ]; then
	say "keeping the existing $CONF"
else
	write_conf "$port"
fi
"$HUBD" -c "$CONF" --check-config || die "$CONF is not valid (see above)"
aet=$(conf_get hub ae_title)
aet=${aet:-DCMHUB}
port=$(conf_get hub port)
port=${port:-11112}
if [ -n "${HUB_PORT:-}" ] && [ "$HUB_PORT" != "$port" ]; then
	say "note: HUB_PORT=$HUB_PORT ignored: the existing $CONF says port = $port"
fi

say "applying database migrations"
"$HUBCTL" -c "$CONF" db migrate
if [ "$("$PG" psql -XAtq -c "SELECT 1 FROM pg_database WHERE datname = 'dcmspoke'" "$ROOT")" != 1 ]; then
	"$PG" psql -XAtq -c "CREATE DATABASE dcmspoke" "$ROOT" >/dev/null
fi
if [ -f "$SCONF" ]; then
	say "keeping the existing $SCONF"
else
	write_spoke_conf "$port"
fi
"$SPOKED" -c "$SCONF" --check-config >/dev/null || die "$SCONF is not valid"

pid=$(hubd_pid)
if [ -n "$pid" ]; then
	say "hubd is already running"
	start_spoked
	print_info "$pid" "$aet" "$port"
	exit 0
fi
if command -v ss >/dev/null 2>&1 && [ -n "$(ss -Hltn "sport = :$port")" ]; then
	die "TCP port $port is already in use (ss -ltnp shows by whom): change port in $CONF (HUB_PORT applies only when that file is written)"
fi
wado_port=$(conf_get wado port)
if [ "$(conf_get wado enabled)" = true ] && command -v ss >/dev/null 2>&1 &&
	[ -n "$(ss -Hltn "sport = :${wado_port:-8080}")" ]; then
	die "TCP port ${wado_port:-8080} (WADO) is already in use: change [wado] port in $CONF, or set enabled = false there"
fi

if [ "$foreground" = 1 ]; then
	print_info "" "$aet" "$port"
	echo "hubd runs in the foreground; Ctrl-C stops it (PostgreSQL keeps running)."
	echo $$ >"$PIDFILE"
	exec "$HUBD" -c "$CONF"
fi

echo "=== started by deploy/quickstart.sh $(date '+%F %T')" >>"$LOG"
# setsid: hubd gets its own session, out of reach of this terminal's signals.
# A background job of a script is never a process group leader, so setsid
# does not fork and $! is hubd's PID.
setsid "$HUBD" -c "$CONF" >>"$LOG" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$PIDFILE"
deadline=$((SECONDS + 30))
until echoscu -to 2 -ta 5 -td 5 -aet ECHOSCU -aec "$aet" 127.0.0.1 "$port" >/dev/null 2>&1; do
	if ! kill -0 "$pid" 2>/dev/null || [[ "$(ps -o stat= -p "$pid")" == Z* ]]; then
		rm -f "$PIDFILE"
		tail -n 30 "$LOG" >&2
		die "hubd exited during start-up (log above, full log in $LOG)"
	fi
	if [ "$SECONDS" -ge "$deadline" ]; then
		tail -n 30 "$LOG" >&2
		die "hubd (pid $pid) did not answer C-ECHO on port $port within 30 s (log above; deploy/quickstart.sh stop)"
	fi
	sleep 0.2
done
start_spoked
print_info "$pid" "$aet" "$port"
