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
# Every target gets the same treatment: a private folder from the integration
# test harness (tests/integration/lib.sh: /tmp/dh-bench-<target>.XXXXXX, one
# filesystem for all, removed afterwards unless the run failed or --keep), free
# loopback ports picked at run time, TCP_NODELAY=1 for every DCMTK-based
# process, the data set warm in the page cache and earlier writes flushed
# (sync) before the clock starts. hubd and Orthanc each get a private
# PostgreSQL cluster of the same kind (dh_pg_start). The clock runs from the
# start of the first storescu to the exit of the last one.
#
# Usage: bench/ingest.sh [--count N] [--assocs A] [--studies S]
#                        [--only hubd|dcmqrscp|orthanc] [--keep]
#   --count N    instances to send (default 5000, ~514 KiB each)
#   --assocs A   parallel associations (default 4)
#   --studies S  studies in the data set (default ceil(N/250), 4 series each)
#   --only T     run one target (may be repeated); default: all three
#   --keep       keep each target's folder (storage, logs) after a good run
# Environment: DH_BUILD (build folder, default <repo>/build).
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$bench_dir/.." && pwd)
: "${DH_BUILD:=$repo/build}"
export DH_BUILD
lib="$repo/tests/integration/lib.sh"
SEED=20240501

count=5000
assocs=4
studies=""
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
    --keep) export DH_KEEP=1; shift ;;
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
[ -r "$lib" ] || { log "missing $lib"; exit 1; }

# --- data set -----------------------------------------------------------------
# Generated once per (N, S, seed, generator version) into bench/.data and reused
# by later runs; an edited gen_ct.py gets a new folder, never a stale data set.
gen_id=$(md5sum "$bench_dir/gen_ct.py" | cut -c1-8)
data="$bench_dir/.data/ct-n$count-s$studies-seed$SEED-$gen_id"
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

results=$(mktemp /tmp/dh-bench-results.XXXXXX)
# Each target's folder (its stored files, its PostgreSQL cluster) is removed
# only after the last target ran, not between targets: deleting thousands of
# files makes the next target's new files slower to create for a while on
# ext4 (without a journal, inode allocation skips inodes freed in the last
# minutes: perf showed it at ~15 % of the next target's CPU), which would
# charge one target for the one before it. --keep keeps them all.
deferred=$(mktemp /tmp/dh-bench-deferred.XXXXXX)
user_keep=${DH_KEEP:-0}
export DH_KEEP=1
remove_deferred() {
  local d
  if [ "$user_keep" != 1 ]; then
    while read -r d; do
      t=${d##*/dh-bench-}
      t=${t%%.*}
      # a target that failed keeps its folder (logs), as lib.sh would have
      if grep -q "^$t"$'\t'"ok"$'\t' "$results"; then
        case "$d" in /tmp/dh-bench-*) rm -rf "$d" ;; esac
      else
        log "$t: folder kept: $d"
      fi
    done <"$deferred"
  fi
  rm -f "$results" "$deferred"
}
trap remove_deferred EXIT

# --- helpers used inside the per-target subshells ---------------------------------

# Processes this subshell started besides hubd (which lib.sh owns): storescu
# clients and the reference daemons. bench_on_exit stops them when the
# subshell ends for whatever reason, before lib.sh's cleanup stops PostgreSQL.
bench_pids=()

# True when process $1 exists and is not a zombie (a child we have not reaped
# yet still answers kill -0).
alive() {
  local st
  st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ "$st" != Z* ]]
}

bench_on_exit() {
  local p i left
  [ ${#bench_pids[@]} -gt 0 ] || return 0
  for p in "${bench_pids[@]}"; do
    if alive "$p"; then
      pkill -TERM -P "$p" 2>/dev/null # dcmqrscp's forked children
      kill -TERM "$p" 2>/dev/null
    fi
  done
  for i in $(seq 1 150); do
    left=0
    for p in "${bench_pids[@]}"; do if alive "$p"; then left=1; fi; done
    [ "$left" -eq 1 ] || break
    sleep 0.2
  done
  for p in "${bench_pids[@]}"; do
    if alive "$p"; then kill -KILL "$p" 2>/dev/null; fi
  done
  return 0
}

# Source lib.sh, make the target's folder $T and put bench_on_exit in front of
# lib.sh's EXIT trap. The prefix keeps the exit status for lib.sh's cleanup
# (which reads $? to decide whether the run failed and $T must stay) and drops
# errexit and the ERR trap, so a process already gone cannot cut it short.
bench_setup() {
  local prev=""
  # shellcheck source=../tests/integration/lib.sh
  . "$lib"
  dh_setup "bench-$1"
  echo "$T" >>"$deferred"
  # trap -p prints "trap -- 'command' EXIT", quoted for reuse as shell input
  eval "set -- $(trap -p EXIT)"
  prev=${3:-}
  # shellcheck disable=SC2064,SC2154 # $prev is expanded now on purpose; bench_rc at exit
  trap "bench_rc=\$?; trap - ERR; set +e; bench_on_exit; (exit \$bench_rc); $prev" EXIT
}

# Wait until an AE answers C-ECHO or the process dies; $1 pid, $2 AE, $3 port.
wait_echo() {
  local pid=$1 ae=$2 port=$3 i
  for i in $(seq 1 300); do
    alive "$pid" || { log "$ae (pid $pid) exited during start-up"; return 1; }
    echoscu -aet STORESCU -aec "$ae" 127.0.0.1 "$port" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  log "$ae on port $port did not answer C-ECHO within 60 s"
  return 1
}

# Stop a daemon we started: SIGTERM, then SIGKILL after 30 s; reap it.
stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 1 150); do alive "$pid" || break; sleep 0.2; done
  if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
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
    bench_pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || fail=1; done
  t1=$(now)
  elapsed=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  [ "$fail" -eq 0 ] || log "$ae: a storescu exited non-zero (see $logs/storescu.*.log)"
  # storescu does not report failed stores at its default log level, so
  # this rarely fires: the instance count afterwards is the real check
  if grep -q '^E:' "$logs"/storescu.*.log; then
    log "$ae: storescu reported errors, first ones:"
    grep -h '^E:' "$logs"/storescu.*.log | head -n 5 >&2 || true
  fi
}

# Filesystem type and device of a storage directory, for the report.
fsinfo() { df -PT "$1" 2>/dev/null | awk 'NR == 2 { print $2 " on " $1 " at " $7 }'; }

# PostgreSQL settings that decide durability and speed, for the report.
pg_facts() {
  dh_psql "select string_agg(name || '=' || current_setting(name), ' ' order by name)
           from pg_settings where name in ('fsync', 'synchronous_commit', 'shared_buffers')" || true
}

# One result line per target: name status instances seconds filesystem note
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$results"; }

# Record the outcome of a run that got as far as counting; fails the subshell
# (which keeps $T with its logs) when the target does not hold all instances.
finish() {
  local t=$1 held=${2:-0} dir=$3 note=$4
  if [ "$held" -eq "$count" ]; then
    record "$t" ok "$held" "$elapsed" "$(fsinfo "$dir")" "$note"
  else
    record "$t" FAILED "$held" "$elapsed" "$(fsinfo "$dir")" "holds $held of $count; logs in $T"
    exit 1
  fi
}

# --- hubd -----------------------------------------------------------------------
run_hubd() {
  local held facts
  if [ ! -x "$DH_BUILD/hub/hubd" ]; then
    log "building the project into $DH_BUILD"
    if ! { cmake -S "$repo" -B "$DH_BUILD" && cmake --build "$DH_BUILD" -j; } >&2 ||
       [ ! -x "$DH_BUILD/hub/hubd" ]; then
      record hubd FAILED 0 0 - "build failed or produced no $DH_BUILD/hub/hubd"
      exit 1
    fi
  fi
  bench_setup hubd
  dh_pg_start
  # dh_hub_config writes a test configuration (debug logging, a smaller
  # database pool, [remote.STORESCU] and the other DCMTK tools' AEs) and
  # appends these lines, whose repeated sections override it: the bench
  # measures hubd with its production defaults.
  dh_hub_config "[hub]" "log_level = info" "[database]" "pool_size = 16"
  dh_hub_start
  warm_caches
  send_all "${HUB_AET:-DCMHUB}" "$HUB_PORT" "$T"
  held=$(dh_psql "select count(*) from instance")
  facts=$(pg_facts)
  dh_hub_stop
  finish hubd "$held" "$T/cache" "postgresql: $facts"
}

# --- dcmqrscp -------------------------------------------------------------------
run_dcmqrscp() {
  local dir port pid held i aetable=""
  # dcmqrscp caps an AE at 500 studies and 1 GiB per study and deletes the
  # oldest beyond that: a larger data set cannot be counted fairly.
  if [ "$studies" -gt 500 ] || [ $(( bytes / studies )) -gt 1000000000 ]; then
    record dcmqrscp FAILED 0 0 - "data set beyond dcmqrscp's quota (500 studies, 1 GiB per study)"
    exit 1
  fi
  bench_setup dcmqrscp
  dir=$T/dcmqrscp
  mkdir -p "$dir/storage"
  port=$(dh_free_port)
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
  bench_pids+=("$pid")
  if ! wait_echo "$pid" DCMQRSCP1 "$port"; then
    record dcmqrscp FAILED 0 0 - "did not start; see $dir/dcmqrscp.log"
    exit 1
  fi
  warm_caches
  send_all DCMQRSCP "$port" "$dir" numbered
  # no database: every stored object is one file beside its area's index file
  held=$(find "$dir/storage" -type f ! -name index.dat | wc -l)
  pkill -TERM -P "$pid" 2>/dev/null || true
  stop_pid "$pid"
  finish dcmqrscp "$held" "$dir/storage" "no fsync, $assocs storage areas with index files"
}

# --- Orthanc + PostgreSQL index -------------------------------------------------
run_orthanc() {
  local dir plugin dport hport pid held pghost pgport i facts
  plugin=$(dpkg -L orthanc-postgresql 2>/dev/null | grep '/libOrthancPostgreSQLIndex\.so' | head -n 1)
  [ -n "$plugin" ] || { record orthanc FAILED 0 0 - "orthanc-postgresql is not installed"; exit 1; }
  bench_setup orthanc
  dir=$T/orthanc
  mkdir -p "$dir/storage" "$dir/index"
  dh_pg_start
  # the same kind of private cluster hubd gets; its host is a socket directory
  pghost=$(sed -n 's/.*host=\([^ ]*\).*/\1/p' <<<"$DH_CONNINFO")
  pgport=$(sed -n 's/.*port=\([0-9]*\).*/\1/p' <<<"$DH_CONNINFO")
  dport=$(dh_free_port)
  hport=$(dh_free_port)
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
  bench_pids+=("$pid")
  for i in $(seq 1 300); do
    alive "$pid" || break
    curl -fsS "http://127.0.0.1:$hport/system" >/dev/null 2>&1 && break
    sleep 0.2
  done
  if ! curl -fsS "http://127.0.0.1:$hport/system" >/dev/null 2>&1 || ! wait_echo "$pid" ORTHANC "$dport"; then
    tail -n 5 "$dir/orthanc.log" >&2
    record orthanc FAILED 0 0 - "did not start; see $dir/orthanc.log"
    exit 1
  fi
  warm_caches
  send_all ORTHANC "$dport" "$dir"
  held=$(curl -fsS "http://127.0.0.1:$hport/statistics" | jq -r '.CountInstances')
  facts=$(pg_facts)
  stop_pid "$pid"
  finish orthanc "$held" "$dir/storage" "fsync per file, postgresql: $facts"
}

# --- run ------------------------------------------------------------------------
log "$count instances ($(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1e6 }') MB), $studies studies, $assocs associations; targets: ${targets[*]}"
for t in hubd dcmqrscp orthanc; do
  want "$t" || continue
  log "running $t"
  # Each target runs in its own subshell: lib.sh's state, traps and cleanup
  # (daemons, PostgreSQL cluster, folder) stay confined to it and run when it
  # ends, whatever happened. A subshell has no EXIT trap of its own, yet
  # trap -p would still show ours: clear it before lib.sh chains onto it.
  set +e
  ( trap - EXIT; "run_$t" )
  st=$?
  set -e
  # lib.sh turns SIGINT/SIGTERM into exit 130/143: stop here, not at the next target
  if [ $st -eq 130 ] || [ $st -eq 143 ]; then log "interrupted"; exit $st; fi
  if [ $st -ne 0 ] && ! grep -q "^$t"$'\t' "$results"; then
    record "$t" FAILED 0 0 - "aborted (exit $st), see the messages above"
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
exit $failed
