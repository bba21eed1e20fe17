#!/usr/bin/env bash
# ingest.sh - C-STORE ingest benchmark: hubd against dcmqrscp and Orthanc+PostgreSQL.
#
# Pushes one generated study set (CT-sized instances, see gen_ct.py) into each
# target over A parallel associations, one storescu process per association,
# and reports instances/s and MB/s per target plus the ratios hubd/dcmqrscp and
# hubd/orthanc. The project's target is hubd >= dcmqrscp and hubd >= 2x Orthanc
# with its PostgreSQL index; the script reports the ratios but exits non-zero
# only when a run failed (a target did not end up holding all N instances),
# never for a missed performance target, so it can run in CI unattended.
#
# Every target gets the same treatment: a fresh storage directory under
# bench/.work (one filesystem for all), free loopback ports picked at run time,
# TCP_NODELAY=1 for every DCMTK-based process, the data set warm in the page
# cache and earlier writes flushed (sync) before the clock starts. The clock
# runs from the start of the first storescu to the exit of the last one.
#
# Usage: bench/ingest.sh [--count N] [--assocs A] [--studies S]
#                        [--only hubd|dcmqrscp|orthanc] [--keep]
#   --count N    instances to send (default 5000, ~512 KiB each)
#   --assocs A   parallel associations (default 4)
#   --studies S  studies in the data set (default ceil(N/250), 4 series each)
#   --only T     run one target (may be repeated); default: all three
#   --keep       keep each target's storage and logs under bench/.work
# Environment: BUILD (build dir, default <repo>/build).
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$bench_dir/.." && pwd)
BUILD=${BUILD:-$repo/build}
# Lets the bench run against a stand-in helper library; normally the project's own.
DH_LIB=${DH_LIB:-$repo/tests/integration/lib.sh}
SEED=20240501

count=5000
assocs=4
studies=""
keep=0
targets=()

usage() { sed -n '/^# Usage:/,/^# Environment:/p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --count) count=${2:?--count needs a value}; shift 2 ;;
    --assocs) assocs=${2:?--assocs needs a value}; shift 2 ;;
    --studies) studies=${2:?--studies needs a value}; shift 2 ;;
    --only)
      case "${2:-}" in
        hubd|dcmqrscp|orthanc) targets+=("$2") ;;
        *) echo "ingest: --only takes hubd, dcmqrscp or orthanc" >&2; exit 2 ;;
      esac
      shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "ingest: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
for v in count assocs; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "ingest: --$v must be a positive integer" >&2; exit 2; }
done
[ ${#targets[@]} -gt 0 ] || targets=(hubd dcmqrscp orthanc)
[ -n "$studies" ] || studies=$(( (count + 249) / 250 ))
if ! [[ $studies =~ ^[1-9][0-9]*$ ]] || [ "$studies" -gt "$count" ]; then
  echo "ingest: --studies must be between 1 and --count" >&2; exit 2
fi
[ "$assocs" -le "$count" ] || assocs=$count

# Every DCMTK tool (storescu, echoscu, dcmqrscp) and Orthanc leave Nagle on
# without this, which costs ~88 ms per object and would measure nothing else.
export TCP_NODELAY=1

want() { local t; for t in "${targets[@]}"; do [ "$t" = "$1" ] && return 0; done; return 1; }
log() { echo "ingest: $*" >&2; }
now() { date +%s.%N; }

# Orthanc, its PostgreSQL plugin and jq are bench-only packages; the script is
# idempotent and returns at once when everything is present.
"$repo/deploy/install-deps.sh" --bench

# --- data set -----------------------------------------------------------------
# Generated once per (N, S, seed) into bench/.data, reused by later runs.
data="$bench_dir/.data/ct-n$count-s$studies-seed$SEED"
if [ ! -e "$data/.complete" ]; then
  log "generating $count instances in $studies studies into $data"
  rm -rf "$data"
  mkdir -p "$data"
  /usr/bin/python3 "$bench_dir/gen_ct.py" --count "$count" --studies "$studies" \
    --seed "$SEED" --out "$data/files" >&2
  touch "$data/.complete"
fi

# One directory per association, filled with hard links (same filesystem as the
# data, so always possible and free): storescu +sd then sends a directory and no
# command line grows with N. Contiguous chunks of the sorted list, so each
# association carries whole studies, as a modality or a spoke would send them.
split="$data/split-a$assocs"
if [ ! -e "$split/.complete" ]; then
  rm -rf "$split"
  per=$(( (count + assocs - 1) / assocs ))
  find "$data/files" -maxdepth 1 -name '*.dcm' -printf '%f\n' | sort >"$data/list"
  for i in $(seq 1 "$assocs"); do
    mkdir -p "$split/$i"
    sed -n "$(( (i - 1) * per + 1 )),$(( i * per ))p" "$data/list" |
      (cd "$data/files" && xargs -r -d '\n' ln -t "$split/$i")
  done
  touch "$split/.complete"
fi
nfiles=$(find "$data/files" -maxdepth 1 -name '*.dcm' | wc -l)
bytes=$(find "$data/files" -maxdepth 1 -name '*.dcm' -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f", s }')
[ "$nfiles" -eq "$count" ] || { log "data set $data holds $nfiles files, expected $count"; exit 1; }

work="$bench_dir/.work"
mkdir -p "$work"
results="$work/results.$$"
: >"$results"
trap 'rm -f "$results"' EXIT

# A free TCP port (or several distinct ones) on all addresses: dcmqrscp and
# Orthanc bind 0.0.0.0, so a port free only on 127.0.0.1 is not enough.
free_ports() {
  /usr/bin/python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# Wait until an AE answers C-ECHO or the process dies; $1 pid, $2 AE, $3 port.
wait_echo() {
  local pid=$1 ae=$2 port=$3 i
  for i in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || { log "$ae (pid $pid) exited during start-up"; return 1; }
    echoscu -aet STORESCU -aec "$ae" 127.0.0.1 "$port" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  log "$ae on port $port did not answer C-ECHO within 60 s"
  return 1
}

# Stop a daemon we started: SIGTERM, then SIGKILL after 30 s.
stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# Prepend a command to the EXIT trap already set (by lib.sh), keeping it. The
# command runs under errexit like everything else here: one that fails (a
# process already gone) must not skip the cleanup that follows, hence || true.
add_exit_trap() {
  local cmd=$1 prev=""
  # trap -p prints "trap -- 'command' EXIT", quoted for reuse as shell input
  if [ -n "$(trap -p EXIT)" ]; then eval "set -- $(trap -p EXIT)"; prev=$3; fi
  # shellcheck disable=SC2064 # expand now: the commands are fixed strings
  trap "{ $cmd; } >/dev/null 2>&1 || true${prev:+; $prev}" EXIT
}

# Flush the previous target's dirty pages and pull the data set into the page
# cache, so that no target pays for another's writeback or for cold reads.
warm_caches() {
  sync
  cat "$data"/files/*.dcm >/dev/null 2>&1 || find "$data/files" -name '*.dcm' -exec cat {} + >/dev/null
  sync
}

# Send the data set to $1 (called AE) on port $2; logs into dir $3; with
# $4 = numbered, association i calls AE "$1<i>". Sets $elapsed (seconds, wall
# clock from the start of the first storescu to the exit of the last).
send_all() {
  local ae=$1 port=$2 logs=$3 numbered=${4:-} i t0 t1 fail=0
  local pids=()
  t0=$(now)
  for i in $(seq 1 "$assocs"); do
    storescu -aet STORESCU -aec "$ae${numbered:+$i}" -nh +sd +r 127.0.0.1 "$port" "$split/$i" \
      >"$logs/storescu.$i.log" 2>&1 &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || fail=1; done
  t1=$(now)
  elapsed=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  [ "$fail" -eq 0 ] || log "$ae: a storescu exited non-zero (see $logs/storescu.*.log)"
  if grep -q '^E:' "$logs"/storescu.*.log; then
    log "$ae: storescu reported errors, first ones:"
    grep -h '^E:' "$logs"/storescu.*.log | head -5 >&2
  fi
}

# Filesystem type and device of a storage directory, for the report.
fsinfo() { df -PT "$1" 2>/dev/null | awk 'NR == 2 { print $2 " on " $1 " at " $7 }'; }

# One result line per target: name status instances seconds filesystem note
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$results"; }

# --- hubd -----------------------------------------------------------------------
run_hubd() {
  local t=hubd logs port held
  if [ ! -x "$BUILD/hub/hubd" ]; then
    log "building the project into $BUILD"
    if ! { cmake -S "$repo" -B "$BUILD" && cmake --build "$BUILD" -j; } >"$work/build.log" 2>&1 \
       || [ ! -x "$BUILD/hub/hubd" ]; then
      log "build failed or produced no $BUILD/hub/hubd (see $work/build.log)"
      record "$t" FAILED 0 0 - "build failed"
      return 1
    fi
  fi
  [ -r "$DH_LIB" ] || { record "$t" FAILED 0 0 - "no $DH_LIB"; return 1; }
  # shellcheck source=../tests/integration/lib.sh
  . "$DH_LIB"
  dh_setup bench
  dh_pg_start
  # dh_hub_config appends its arguments as lines after its own defaults, so the
  # section headers are repeated here: a bare key would land in whatever
  # section the generated file ends with.
  dh_hub_config "[hub]" "max_associations = $((assocs + 16))" \
                "[remote.STORESCU]" "host = 127.0.0.1" "port = 104"
  dh_hub_start
  port=${DH_HUB_PORT:?lib.sh did not set DH_HUB_PORT}
  logs=${DH_WORK:?lib.sh did not set DH_WORK}
  warm_caches
  send_all DCMHUB "$port" "$logs"
  held=$(dh_psql "select count(*) from instance" | tr -dc '0-9')
  pg_facts=$(dh_psql "select string_agg(name || '=' || setting, ' ' order by name) from pg_settings where name in ('fsync','synchronous_commit','shared_buffers')" || true)
  dh_hub_stop
  if [ "${held:-0}" -eq "$count" ]; then
    record "$t" ok "$held" "$elapsed" "$(fsinfo "$DH_WORK")" "postgresql: $pg_facts"
  else
    record "$t" FAILED "${held:-0}" "$elapsed" "$(fsinfo "$DH_WORK")" "index holds ${held:-0} of $count"
    return 1
  fi
}

# --- dcmqrscp -------------------------------------------------------------------
run_dcmqrscp() {
  local t=dcmqrscp dir="$work/dcmqrscp" port pid held i aetable=""
  rm -rf "$dir"
  mkdir -p "$dir/storage"
  # dcmqrscp caps an AE at 500 studies and 1 GiB per study and deletes the
  # oldest beyond that: a larger data set cannot be counted fairly.
  if [ "$studies" -gt 500 ] || [ $(( bytes / studies )) -gt 1000000000 ]; then
    record "$t" FAILED 0 0 "$(fsinfo "$dir/storage")" "data set beyond dcmqrscp quota (500 studies, 1 GiB/study)"
    return 1
  fi
  port=$(free_ports 1)
  # One AE title and storage area per association. dcmqrscp names a new file
  # by stat()ing random candidates seeded alike in every forked child, so two
  # associations writing into one area at the same time pick the same names,
  # overwrite each other's files and fail stores (seen: 44 of 200 lost with
  # 4 associations). Separate areas avoid the race and also spare dcmqrscp
  # the index-file lock contention: the reference gets the better deal.
  for i in $(seq 1 "$assocs"); do
    mkdir -p "$dir/storage/$i"
    aetable+="DCMQRSCP$i $dir/storage/$i RW (500, 1024mb) storescu"$'\n'
  done
  cat >"$dir/dcmqrscp.cfg" <<EOF
# generated by bench/ingest.sh
NetworkTCPPort  = $port
MaxPDUSize      = 16384
MaxAssociations = $((assocs + 16))

HostTable BEGIN
storescu = (STORESCU, localhost, 0)
HostTable END

VendorTable BEGIN
VendorTable END

AETable BEGIN
$aetable
AETable END
EOF
  # default (forking) mode: --single-process crashes after each association in Debian's build
  dcmqrscp -c "$dir/dcmqrscp.cfg" >"$dir/dcmqrscp.log" 2>&1 &
  pid=$!
  add_exit_trap "pkill -TERM -P $pid; kill -TERM $pid"
  wait_echo "$pid" DCMQRSCP1 "$port" || { record "$t" FAILED 0 0 "$(fsinfo "$dir/storage")" "did not start"; return 1; }
  warm_caches
  send_all DCMQRSCP "$port" "$dir" numbered
  # no database: every stored object is one file beside its area's index file
  held=$(find "$dir/storage" -type f ! -name index.dat | wc -l)
  pkill -TERM -P "$pid" 2>/dev/null || true
  stop_pid "$pid"
  if [ "$held" -eq "$count" ]; then
    record "$t" ok "$held" "$elapsed" "$(fsinfo "$dir/storage")" "no fsync, $assocs storage areas with index files"
  else
    record "$t" FAILED "$held" "$elapsed" "$(fsinfo "$dir/storage")" "storage holds $held of $count files"
    return 1
  fi
}

# --- Orthanc + PostgreSQL index -------------------------------------------------
run_orthanc() {
  local t=orthanc dir="$work/orthanc" plugin dport hport pid held pghost pgport i
  rm -rf "$dir"
  mkdir -p "$dir/storage" "$dir/index"
  plugin=$(dpkg -L orthanc-postgresql 2>/dev/null | grep '/libOrthancPostgreSQLIndex\.so' | head -1)
  [ -n "$plugin" ] || { record "$t" FAILED 0 0 - "orthanc-postgresql not installed"; return 1; }
  [ -r "$DH_LIB" ] || { record "$t" FAILED 0 0 - "no $DH_LIB"; return 1; }
  # shellcheck source=../tests/integration/lib.sh
  . "$DH_LIB"
  dh_setup bench-orthanc
  dh_pg_start
  # the same kind of private cluster hubd gets: host is its unix socket directory
  pghost=$(sed -n 's/.*host=\([^ ]*\).*/\1/p' <<<"${DH_CONNINFO:?lib.sh did not set DH_CONNINFO}")
  pgport=$(sed -n 's/.*port=\([0-9]*\).*/\1/p' <<<"$DH_CONNINFO")
  read -r dport hport <<<"$(free_ports 2)"
  cat >"$dir/orthanc.json" <<EOF
{
  "Name" : "dcmhub-bench",
  "StorageDirectory" : "$dir/storage",
  "IndexDirectory" : "$dir/index",
  "StorageCompression" : false,
  "StorageAccessOnFind" : "Never",
  "SyncStorageArea" : true,
  "Plugins" : [ "$plugin" ],
  "DicomServerEnabled" : true,
  "DicomAet" : "ORTHANC",
  "DicomPort" : $dport,
  "DicomCheckCalledAet" : false,
  "DicomAlwaysAllowStore" : true,
  "DicomAlwaysAllowEcho" : true,
  "DicomThreadsCount" : $(( assocs > 4 ? assocs : 4 )),
  "HttpServerEnabled" : true,
  "HttpPort" : $hport,
  "RemoteAccessAllowed" : false,
  "AuthenticationEnabled" : false,
  "SaveJobs" : false,
  "PostgreSQL" : {
    "EnableIndex" : true,
    "EnableStorage" : false,
    "Host" : "$pghost",
    "Port" : ${pgport:-5432},
    "Database" : "dcmhub",
    "Username" : "dcmhub",
    "Password" : "",
    "IndexConnectionsCount" : 4,
    "Lock" : false
  }
}
EOF
  Orthanc "$dir/orthanc.json" >"$dir/orthanc.log" 2>&1 &
  pid=$!
  # stop Orthanc before lib.sh's exit trap stops its database
  add_exit_trap "kill -TERM $pid && sleep 2"
  for i in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || break
    curl -fsS "http://127.0.0.1:$hport/system" >/dev/null 2>&1 && break
    sleep 0.2
  done
  if ! curl -fsS "http://127.0.0.1:$hport/system" >/dev/null 2>&1 || ! wait_echo "$pid" ORTHANC "$dport"; then
    log "orthanc did not come up (see $dir/orthanc.log)"; tail -5 "$dir/orthanc.log" >&2
    record "$t" FAILED 0 0 "$(fsinfo "$dir/storage")" "did not start"
    return 1
  fi
  warm_caches
  send_all ORTHANC "$dport" "$dir"
  held=$(curl -fsS "http://127.0.0.1:$hport/statistics" | jq -r '.CountInstances' | tr -dc '0-9')
  pg_facts=$(psql "$DH_CONNINFO" -XAtq -c "select string_agg(name || '=' || setting, ' ' order by name) from pg_settings where name in ('fsync','synchronous_commit','shared_buffers')" 2>/dev/null || true)
  stop_pid "$pid"
  if [ "${held:-0}" -eq "$count" ]; then
    record "$t" ok "$held" "$elapsed" "$(fsinfo "$dir/storage")" "fsync per file, postgresql: $pg_facts"
  else
    record "$t" FAILED "${held:-0}" "$elapsed" "$(fsinfo "$dir/storage")" "index holds ${held:-0} of $count"
    return 1
  fi
}

# --- run ------------------------------------------------------------------------
log "$count instances ($(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1e6 }') MB), $studies studies, $assocs associations; targets: ${targets[*]}"
for t in hubd dcmqrscp orthanc; do
  want "$t" || continue
  log "running $t"
  # Each target runs in its own subshell: lib.sh state, exit traps (daemons,
  # PostgreSQL clusters) and errexit stay confined to it and are cleaned up
  # when it ends, whatever happened. The subshell starts with no EXIT trap of
  # its own, but trap -p would still show ours: clear it so add_exit_trap
  # does not chain the removal of the results file.
  set +e
  ( set -e; trap - EXIT; trap 'exit 130' INT TERM; "run_$t" )
  st=$?
  set -e
  if [ $st -ne 0 ] && ! grep -q "^$t"$'\t' "$results"; then
    record "$t" FAILED 0 0 - "aborted (exit $st), see messages above"
  fi
done

# --- report ---------------------------------------------------------------------
echo
printf '%-9s %9s %9s %12s %9s  %s\n' target instances seconds instances/s MB/s status
failed=0
declare -A ips
while IFS=$'\t' read -r t status held secs fs note; do
  if [ "$status" = ok ]; then
    read -r rate mbs < <(awk -v n="$held" -v s="$secs" -v b="$bytes" \
      'BEGIN { if (s > 0) printf "%.1f %.1f\n", n / s, b / 1e6 / s; else print "0 0" }')
    ips[$t]=$rate
  else
    rate=-; mbs=-; failed=1
  fi
  printf '%-9s %9s %9s %12s %9s  %s\n' "$t" "$held" "$secs" "$rate" "$mbs" "$status${note:+ ($note)}"
done <"$results"
echo
ratio() {
  local a=$1 b=$2 goal=$3
  if [ -n "${ips[$a]:-}" ] && [ -n "${ips[$b]:-}" ]; then
    awk -v x="${ips[$a]}" -v y="${ips[$b]}" -v g="$goal" -v n="$a/$b" 'BEGIN {
      r = (y > 0) ? x / y : 0
      printf "%-14s %6.2f   (target >= %s: %s)\n", n, r, g, (r >= g) ? "met" : "NOT met" }'
  else
    printf '%-14s %6s   (needs both runs)\n' "$a/$b" n/a
  fi
}
ratio hubd dcmqrscp 1
ratio hubd orthanc 2
echo
echo "machine: $(nproc) CPUs, $(uname -sr), $(free -g | awk '/^Mem:/ { print $2 " GiB RAM, " $7 " GiB available" }')"
echo "data: $count instances, $bytes bytes, $studies studies, $assocs associations, 1 storescu per association"
while IFS=$'\t' read -r t status held secs fs note; do
  [ "$fs" = - ] || echo "storage $t: $fs"
done <"$results"
# Storage is large; keep it only when asked to or when a run failed (logs).
if [ "$keep" -eq 0 ] && [ "$failed" -eq 0 ]; then
  rm -rf "$work/dcmqrscp" "$work/orthanc"
elif [ "$failed" -ne 0 ]; then
  echo "logs and storage kept in $work (remove it when done)"
fi
rm -f "$results"
exit $failed
