#!/usr/bin/env bash
# archive.sh - nearline archive benchmark (issue 4): archiving throughput
# against a plain sequential write with fsync, and C-MOVE throughput from the
# nearline archive against the online cache.
#
# 1. Archiving. The data set of ingest.sh (gen_ct.py, same seed, same cache in
#    bench/.data; N CT-sized instances in ceil(N/250) studies of 4 series) is
#    stored into a private hubd with archive.stable_seconds = 86400, so nothing
#    is archived while it arrives. hubd is restarted with stable_seconds = 0
#    and scan_interval = 1: every series is eligible and the archiver packs one
#    TAR per series (read the cache files checking their digest, write while
#    hashing, fsync, rename, index). The clock runs from the first TAR's start (tar_file
#    .created_at = now() of the transaction pack_series opens before it reads
#    anything) to the "... archived to ..." log line of the last TAR (logged
#    after its index commit), so hubd's start-up and the scan interval are not
#    in it. The physical limit: one file of the same number of bytes (the sum
#    of the TAR sizes) written sequentially on the volume's filesystem in
#    1 MiB chunks, then fsync'ed (median of 3). Printed: both MB/s and the
#    ratio; target >= 0.70. Beside it, labelled and not judged: the
#    verification that follows (every TAR read back from the device and
#    every member checked before eviction may take its objects), from the
#    last "archived to" line to the last "verified" line.
# 2. Retrieval. One movescu association sends one study-level C-MOVE per study
#    to a storescp (fresh folder each time, in /dev/shm when present) while every object is ONLINE (in
#    the cache; archived too, but read from the cache), then again after
#    eviction (cache_high_mb = 1, cache_low_mb = 0, restart, until every
#    instance has file_path NULL), when every object is read from its TAR
#    (NEARLINE). Each time the destination must hold N files. Printed:
#    instances/s, MB/s and nearline/online; target >= 0.80.
#
# Exits non-zero only when a run fails (lost objects, a timeout, a daemon
# that died), never because a target was missed.
#
# Usage: bench/archive.sh [--count N] [--studies S] [--cold] [--keep] [N]
#   --count N    instances (default 1000, ~514 KiB each)
#   --studies S  studies (default ceil(N/250), 4 series each)
#   --cold       drop the page cache (needs root) before archiving, before each
#                sequential write and before each C-MOVE pass; default: warm,
#                the objects a moment old, as after a real ingest
#   --keep       keep the run's folder in /tmp after a good run
# Environment: DH_BUILD (build folder, default <repo>/build).
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$bench_dir/.." && pwd)
: "${DH_BUILD:=$repo/build}"
export DH_BUILD
SEED=20240501
count=1000
studies=""
cold=0

usage() { sed -n '/^# Usage:/,/^# Environment:/p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --count) count=${2:?--count needs a value}; shift 2 ;;
    --studies) studies=${2:?--studies needs a value}; shift 2 ;;
    --cold) cold=1; shift ;;
    --keep) export DH_KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    [0-9]*) count=$1; shift ;;
    *) echo "archive: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
[[ $count =~ ^[1-9][0-9]*$ ]] || { echo "archive: --count must be a positive integer" >&2; exit 2; }
[ -n "$studies" ] || studies=$(( (count + 249) / 250 ))
if ! [[ $studies =~ ^[1-9][0-9]*$ ]] || [ "$studies" -gt "$count" ]; then
  echo "archive: --studies must be between 1 and --count" >&2; exit 2
fi
if [ "$cold" -eq 1 ] && [ "$(id -u)" -ne 0 ]; then
  echo "archive: --cold needs root (it writes /proc/sys/vm/drop_caches)" >&2; exit 2
fi

log() { echo "archive: $*" >&2; }
now() { date +%s.%N; }
for t in storescu storescp movescu echoscu dcmdump dump2dcm psql; do
  command -v "$t" >/dev/null 2>&1 || { log "$t not found; run deploy/install-deps.sh"; exit 1; }
done
if [ ! -x "$DH_BUILD/hub/hubd" ]; then
  log "building the project into $DH_BUILD"
  { cmake -S "$repo" -B "$DH_BUILD" && cmake --build "$DH_BUILD" -j; } >&2
fi

# --- data set (shared with ingest.sh and qr.sh) ------------------------------------
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
nfiles=$(find "$data/files" -maxdepth 1 -name '*.dcm' | wc -l)
[ "$nfiles" -eq "$count" ] || { log "data set $data holds $nfiles files, expected $count"; exit 1; }
dbytes=$(find "$data/files" -maxdepth 1 -name '*.dcm' -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f", s }')
# one study-level C-MOVE identifier per study, as qr.sh makes them (same folder)
movekeys="$data/move-keys"
if [ ! -e "$movekeys/.complete" ]; then
  rm -rf "$movekeys"
  mkdir -p "$movekeys"
  n=0
  for f in $(find "$data/files" -maxdepth 1 -name 'ct_*_1_00001.dcm' | sort); do
    uid=$(dcmdump -q +P StudyInstanceUID "$f" | sed 's/.*\[\(.*\)\].*/\1/')
    n=$((n + 1))
    printf '(0008,0052) CS [STUDY]\n(0020,000d) UI [%s]\n' "$uid" >"$movekeys/q$n.txt"
    dump2dcm +te "$movekeys/q$n.txt" "$movekeys/q$n.dcm"
  done
  [ "$n" -eq "$studies" ] || { log "found $n studies in $data, expected $studies"; exit 1; }
  touch "$movekeys/.complete"
fi

# --- harness --------------------------------------------------------------------
# shellcheck source=../tests/integration/lib.sh
. "$repo/tests/integration/lib.sh"
dh_setup bench-arch
dh_pg_start
DEST_PORT=$(dh_free_port)
mkdir -p "$T/nl"

drop() { sync; if [ "$cold" -eq 1 ]; then echo 3 >/proc/sys/vm/drop_caches; fi; }
# hubd with production logging and pool, archive to volume B1 in $T/nl,
# DEST as the move destination; extra [archive] lines as arguments
hub_conf() {
  dh_hub_config "[hub]" "log_level = info" "[database]" "pool_size = 16" \
    "[archive]" "scan_interval = 1" "$@" \
    "[volume.B1]" "path = $T/nl" \
    "[remote.DEST]" "host = 127.0.0.1" "port = $DEST_PORT"
}
# wait_sql SQL WANT TIMEOUT WHAT: poll until SQL prints WANT; fail after TIMEOUT s
wait_sql() {
  local sql=$1 want=$2 limit=$3 what=$4 t0 got
  t0=$SECONDS
  while :; do
    got=$(dh_psql "$sql")
    [ "$got" = "$want" ] && return 0
    [ -e "$T/hubd.status" ] && dh_fail "hubd exited while waiting for $what (status $(cat "$T/hubd.status"))"
    [ $((SECONDS - t0)) -lt "$limit" ] || dh_fail "$what: not done after $limit s (got '$got', want '$want')"
    sleep 0.2
  done
}
f3() { awk -v x="$1" 'BEGIN { printf "%.3f", x }'; }

# --- 1. store, archiving held back ---------------------------------------------------
log "$count instances ($(awk -v b="$dbytes" 'BEGIN { printf "%.1f", b / 1e6 }') MB) in $studies studies; folder $T"
hub_conf "stable_seconds = 86400"
dh_hub_start
cat "$data"/files/*.dcm >/dev/null
storescu -aet STORESCU -aec DCMHUB -nh +sd +r 127.0.0.1 "$HUB_PORT" "$data/files" >"$T/storescu.log" 2>&1 ||
  log "storescu exited non-zero (see $T/storescu.log)"
held=$(dh_psql "SELECT count(*) FROM instance")
[ "$held" -eq "$count" ] || dh_fail "hubd holds $held of $count instances after storing"
dh_assert_eq 0 "$(dh_psql "SELECT count(*) FROM tar_file")" "TARs written while stable_seconds = 86400"
dh_hub_stop
obytes=$(dh_psql "SELECT sum(file_size) FROM instance")

# --- 1. archiving --------------------------------------------------------------------
hub_conf "stable_seconds = 0"
drop
logstart=$(($(wc -l <"$T/hubd.log") + 1))
w0=$(now)
dh_hub_start
wait_sql "SELECT count(*) FROM instance WHERE tar_fk IS NULL" 0 1800 "archiving"
w1=$(now)
wait_sql "SELECT count(*) FROM tar_file WHERE verified_at IS NULL" 0 1800 "verification"
ntar=$(dh_psql "SELECT count(*) FROM tar_file")
tbytes=$(dh_psql "SELECT sum(size) FROM tar_file")
a0=$(dh_psql "SELECT extract(epoch FROM min(created_at)) FROM tar_file")
tail -n +"$logstart" "$T/hubd.log" | grep ' object(s) archived to ' >"$T/archived.log" || true
nlog=$(wc -l <"$T/archived.log")
[ "$nlog" -eq "$ntar" ] || dh_fail "$ntar TARs indexed but $nlog 'archived to' log lines"
tail -n +"$logstart" "$T/hubd.log" | grep -E ' verified \([0-9]+ object' >"$T/verified.log" || true
nver=$(wc -l <"$T/verified.log")
[ "$nver" -eq "$ntar" ] || dh_fail "$ntar TARs indexed but $nver 'verified' log lines"
lastts() {
  "$DH_PYTHON" - "$1" <<'EOF'
import datetime, sys
last = max(l.split()[0] for l in open(sys.argv[1]))
t = datetime.datetime.strptime(last, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
print("%.3f" % t.timestamp())
EOF
}
a1=$(lastts "$T/archived.log")
v1=$(lastts "$T/verified.log")
vsecs=$(awk -v a="$a1" -v b="$v1" 'BEGIN { printf "%.3f", b - a }')
asecs=$(awk -v a="$a0" -v b="$a1" 'BEGIN { printf "%.3f", b - a }')
awk -v s="$asecs" 'BEGIN { exit !(s > 0) }' || dh_fail "archiving time $asecs s from $a0 to $a1"

# the physical limit: the same bytes, one sequential file on the volume's filesystem
seqw() {
  drop
  "$DH_PYTHON" - "$T/nl/plain.bin" "$tbytes" <<'EOF'
import os, sys, time
path, total = sys.argv[1], int(sys.argv[2])
chunk = os.urandom(1 << 20)
t0 = time.monotonic()
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
left = total
while left > 0:
    n = os.write(fd, chunk[:min(left, len(chunk))])
    left -= n
os.fsync(fd)
os.close(fd)
print("%.3f" % (time.monotonic() - t0))
EOF
  rm -f "$T/nl/plain.bin"
  sync
}
s1=$(seqw); s2=$(seqw); s3=$(seqw)
ssecs=$(printf '%s\n' "$s1" "$s2" "$s3" | sort -g | sed -n 2p)

# --- 2. C-MOVE from the cache (ONLINE) ---------------------------------------------
# hubd keeps running as it archived (cache_high_mb = 0: no eviction)
dh_assert_eq 0 "$(dh_psql "SELECT count(*) FROM instance WHERE file_path IS NULL")" "instances evicted before the ONLINE pass"
# The destination writes into memory (tmpfs) when /dev/shm is there: what is
# measured is hubd reading and sending, and the NEARLINE pass follows the
# eviction of N cache files, after which new files on the same ext4 (without a
# journal: inode allocation skips inodes freed in the last minutes) are slower
# to create for storescp. On disk the NEARLINE pass measured 0.52 of ONLINE at
# N = 2000, each study slower than the one before; the ONLINE pass had no such
# deletion before it.
dest_root=$T
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
  dest_root=$(mktemp -d /dev/shm/dh-bench-arch-dest.XXXXXX)
  # shellcheck disable=SC2064 # the folder is fixed now; lib.sh's cleanup still runs last with the status
  trap "bench_rc=\$?; rm -rf '$dest_root'; (exit \$bench_rc); dh_cleanup" EXIT
fi
timed_move() { # $1 pass name; sets msecs and checks the destination
  local pass=$1 dest=$dest_root/dest-$1 st=0 m0 m1 got
  mkdir -p "$dest"
  dh_bg storescp -aet DEST -od "$dest" "$DEST_PORT"
  local scp=$DH_BG_LAST
  dh_wait_echo "$DEST_PORT" DEST
  drop
  m0=$(now)
  movescu -S -aet MOVESCU -aec DCMHUB -aem DEST 127.0.0.1 "$HUB_PORT" "$movekeys"/q*.dcm \
    >"$T/movescu-$pass.log" 2>&1 || st=$?
  m1=$(now)
  kill "$scp" 2>/dev/null || true
  wait "$scp" 2>/dev/null || true
  msecs=$(awk -v a="$m0" -v b="$m1" 'BEGIN { printf "%.3f", b - a }')
  got=$(find "$dest" -type f | wc -l)
  [ "$st" -eq 0 ] || log "$pass: movescu exited with $st (see $T/movescu-$pass.log)"
  [ "$got" -eq "$count" ] || dh_fail "$pass C-MOVE: the destination got $got of $count files (see $T/movescu-$pass.log)"
  find "$dest" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f\n", s }' >"$T/dest-$pass.bytes"
  [ "$dest_root" = "$T" ] || rm -rf "$dest"
}
timed_move online
on_secs=$msecs
dh_assert_eq 0 "$(dh_psql "SELECT count(*) FROM instance WHERE file_path IS NULL")" "instances evicted during the ONLINE pass"

# --- 2. eviction, then C-MOVE from the TARs (NEARLINE) ----------------------------
dh_hub_stop
hub_conf "stable_seconds = 0" "cache_high_mb = 1" "cache_low_mb = 0"
dh_hub_start
wait_sql "SELECT count(*) FROM instance WHERE file_path IS NOT NULL" 0 600 "eviction"
left=$(find "$T/cache" -type f -name '*.dcm' | wc -l)
[ "$left" -eq 0 ] || log "warning: $left .dcm files left in the cache folder after eviction"
timed_move nearline
nl_secs=$msecs
[ "$(cat "$T/dest-online.bytes")" = "$(cat "$T/dest-nearline.bytes")" ] ||
  log "warning: the destination received $(cat "$T/dest-online.bytes") bytes ONLINE but $(cat "$T/dest-nearline.bytes") NEARLINE"
fsinfo() { df -PT "$1" 2>/dev/null | awk 'NR == 2 { print $2 " on " $1 " at " $7 }'; }
facts_nl=$(fsinfo "$T/nl")
facts_cache=$(fsinfo "$T/cache")
dh_hub_stop

# --- report -----------------------------------------------------------------------
rate() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.1f", b / 1e6 / s }'; }
arch_mbs=$(rate "$tbytes" "$asecs")
seq_mbs=$(rate "$tbytes" "$ssecs")
on_ips=$(awk -v n="$count" -v s="$on_secs" 'BEGIN { printf "%.1f", n / s }')
nl_ips=$(awk -v n="$count" -v s="$nl_secs" 'BEGIN { printf "%.1f", n / s }')
on_mbs=$(rate "$dbytes" "$on_secs")
nl_mbs=$(rate "$dbytes" "$nl_secs")
verdict() { awk -v r="$1" -v g="$2" 'BEGIN { printf "%.2f\t%s\n", r, (r >= g) ? "met" : "NOT met" }'; }
IFS=$'\t' read -r arch_ratio arch_ok < <(verdict "$(awk -v a="$ssecs" -v b="$asecs" 'BEGIN { print a / b }')" 0.70)
IFS=$'\t' read -r move_ratio move_ok < <(verdict "$(awk -v a="$on_secs" -v b="$nl_secs" 'BEGIN { print a / b }')" 0.80)

echo
echo "archiving: $count instances, $ntar TARs, $tbytes TAR bytes ($obytes object bytes)"
printf '  %-44s %9s s %9s MB/s\n' "archiver, first TAR start to last TAR indexed" "$asecs" "$arch_mbs"
printf '  %-44s %9s s %9s MB/s   (runs: %s %s %s s)\n' "sequential write + fsync, same bytes" "$ssecs" "$seq_mbs" "$s1" "$s2" "$s3"
printf '  %-44s %9s s %9s MB/s   (not judged: after the last TAR is indexed)\n' "verification, read back from the device" "$vsecs" "$(awk -v b="$tbytes" -v s="$vsecs" 'BEGIN { printf "%.1f", (s > 0) ? b / 1e6 / s : 0 }')"
printf '  %-44s %9s s\n' "(wall clock: hubd start to all archived)" "$(awk -v a="$w0" -v b="$w1" 'BEGIN { printf "%.3f", b - a }')"
echo "C-MOVE: $studies study-level C-MOVEs on one association, $count instances, $dbytes bytes"
printf '  %-10s %9s s %12s instances/s %9s MB/s\n' ONLINE "$on_secs" "$on_ips" "$on_mbs"
printf '  %-10s %9s s %12s instances/s %9s MB/s\n' NEARLINE "$nl_secs" "$nl_ips" "$nl_mbs"
echo
printf '%-34s %12s %12s %7s %8s  %s\n' measure value reference ratio target result
printf '%-34s %7s MB/s %7s MB/s %7s %8s  %s\n' "archiving / sequential write" "$arch_mbs" "$seq_mbs" "$arch_ratio" ">= 0.70" "$arch_ok"
printf '%-34s %7s i/s  %7s i/s  %7s %8s  %s\n' "C-MOVE NEARLINE / ONLINE" "$nl_ips" "$on_ips" "$move_ratio" ">= 0.80" "$move_ok"
echo
echo "machine: $(nproc) CPUs, $(uname -sr), $(free -g | awk '/^Mem:/ { print $2 " GiB RAM" }'); page cache: $([ "$cold" -eq 1 ] && echo "dropped before each pass" || echo warm)"
echo "volume B1: $facts_nl; cache: $facts_cache"
dh_pass
