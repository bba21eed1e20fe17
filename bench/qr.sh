#!/usr/bin/env bash
# qr.sh - Query/Retrieve benchmark: hubd's C-FIND latency and C-MOVE throughput
# against DCMTK dcmqrscp.
#
# Two parts, each in its own private folder made by the integration test
# harness (tests/integration/lib.sh, /tmp/dh-bench-qr*.XXXXXX):
#
# C-MOVE: the CT data set of the ingest bench (gen_ct.py, same cache in
# bench/.data) is stored into hubd and into dcmqrscp over one association
# each (not timed), then one movescu association asks each archive for every
# study of the set (one study-level C-MOVE per study, Study Root) towards a
# storescp writing into a fresh folder. The clock runs from the start of
# movescu to its exit, i.e. until the last C-MOVE response, which an archive
# sends after the destination acknowledged every sub-operation. Then the
# destination must hold exactly N files. Prints instances/s, MB/s and the
# ratio hubd/dcmqrscp (target >= 1).
#
# C-FIND: index rows are generated straight into hubd's PostgreSQL index
# (INSERT ... SELECT generate_series; 100 instances per study: 4 series of 25,
# two studies per patient), first 10,000 instances, then extended to --big
# (default 1,000,000). At each size Q queries per kind run, one findscu
# process and association each, timed from process start to exit: study
# level by StudyInstanceUID, PatientID, AccessionNumber, PatientName
# "SMITH*" and a 7-day StudyDate range; series level by StudyInstanceUID;
# image level by SeriesInstanceUID. Every query's number of matches is checked
# against the index. At 10k instances the same queries also go to dcmqrscp,
# whose index file holds the same 10k records (small header-only files made
# from the generated rows, indexed with dcmqridx and cached in bench/.data).
# dcmqrscp scans its whole index file per query, so it is only compared at
# 10k. An echoscu call is timed the same way: the fixed cost of starting a
# DCMTK tool and opening an association, which the net figures subtract.
#
# Exits non-zero only when a run failed (an archive held or returned the wrong
# number of objects), never for a missed performance target.
#
# Usage: bench/qr.sh [--find-only|--move-only] [--count N] [--big N]
#                    [--queries Q] [--ref-queries R] [--keep]
#   --find-only      only the C-FIND part
#   --move-only      only the C-MOVE part
#   --count N        instances in the C-MOVE set (default 2000, ~514 KiB each)
#   --big N          index size of the large C-FIND run (default 1000000,
#                    a multiple of 100 above 10000; 0 skips it)
#   --queries Q      queries per kind against hubd (default 200)
#   --ref-queries R  queries per kind against dcmqrscp (default 50; each one
#                    scans its 80 MB index file)
#   --keep           keep the folders (storage, logs, cluster) after a good run
# Environment: DH_BUILD (build folder, default <repo>/build).
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$bench_dir/.." && pwd)
: "${DH_BUILD:=$repo/build}"
export DH_BUILD
lib="$repo/tests/integration/lib.sh"
SEED=20240501 # the ingest bench's seed: both benches share one data set
SMALL=10000   # the C-FIND size compared with dcmqrscp

do_find=1
do_move=1
count=2000
big=1000000
queries=200
ref_queries=50

usage() { sed -n '/^# Usage:/,/^# Environment:/p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --find-only) do_move=0; shift ;;
    --move-only) do_find=0; shift ;;
    --count) count=${2:?--count needs a value}; shift 2 ;;
    --big) big=${2:?--big needs a value}; shift 2 ;;
    --queries) queries=${2:?--queries needs a value}; shift 2 ;;
    --ref-queries) ref_queries=${2:?--ref-queries needs a value}; shift 2 ;;
    --keep) export DH_KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "qr: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
for v in count queries ref_queries; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "qr: --${v/_/-} must be a positive integer" >&2; exit 2; }
done
if ! [[ $big =~ ^[0-9]+$ ]] || { [ "$big" -ne 0 ] && { [ $((big % 100)) -ne 0 ] || [ "$big" -le $SMALL ]; }; }; then
  echo "qr: --big must be 0 or a multiple of 100 above $SMALL" >&2; exit 2
fi
[ $do_find -eq 1 ] || [ $do_move -eq 1 ] || { echo "qr: --find-only and --move-only exclude each other" >&2; exit 2; }
studies=$(( (count + 249) / 250 ))

# Every DCMTK tool leaves Nagle on without this (~88 ms per small message).
export TCP_NODELAY=1
PY=/usr/bin/python3
[ -x $PY ] || PY=python3

log() { echo "qr: $*" >&2; }
now() { date +%s.%N; }

[ -r "$lib" ] || { log "missing $lib"; exit 1; }
for t in findscu movescu storescu storescp echoscu dcmqrscp dcmqridx dump2dcm dcmdump; do
  command -v $t >/dev/null || { log "$t not found; run deploy/install-deps.sh"; exit 1; }
done

results=$(mktemp /tmp/dh-bench-qr-results.XXXXXX)
trap 'rm -f "$results"' EXIT
# One line per measurement, tab-separated:
#   move TARGET STATUS INSTANCES SECONDS BYTES NOTE
#   find SIZE TARGET KIND QUERIES RESULTS MEDIAN_MS P99_MS SRV_MEDIAN_MS SRV_P99_MS STATUS
#   find SIZE TARGET echo QUERIES - MEDIAN_MS P99_MS - - ok
record() { local IFS=$'\t'; echo "$*" >>"$results"; }

# --- helpers shared with ingest.sh's way of running targets -----------------------

bench_pids=()

alive() {
  local st
  st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ "$st" != Z* ]]
}

# Stops what this subshell started besides hubd (storescp, dcmqrscp and the
# latter's forked children) before lib.sh's cleanup stops PostgreSQL.
bench_on_exit() {
  local p left
  [ ${#bench_pids[@]} -gt 0 ] || return 0
  for p in "${bench_pids[@]}"; do
    if alive "$p"; then
      pkill -TERM -P "$p" 2>/dev/null
      kill -TERM "$p" 2>/dev/null
    fi
  done
  for _ in $(seq 1 150); do
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

# Source lib.sh, make $T, chain bench_on_exit in front of lib.sh's EXIT trap
# (keeping the exit status lib.sh's cleanup reads), as ingest.sh does.
bench_setup() {
  local prev=""
  # shellcheck source=../tests/integration/lib.sh
  . "$lib"
  dh_setup "bench-$1"
  eval "set -- $(trap -p EXIT)"
  prev=${3:-}
  # shellcheck disable=SC2064,SC2154
  trap "bench_rc=\$?; trap - ERR; set +e; bench_on_exit; (exit \$bench_rc); $prev" EXIT
}

wait_echo() {
  local pid=$1 ae=$2 port=$3
  for _ in $(seq 1 300); do
    alive "$pid" || { log "$ae (pid $pid) exited during start-up"; return 1; }
    echoscu -aet ECHOSCU -aec "$ae" 127.0.0.1 "$port" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  log "$ae on port $port did not answer C-ECHO within 60 s"
  return 1
}

stop_pid() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 150); do alive "$pid" || break; sleep 0.2; done
  if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
}

build_hubd() {
  [ -x "$DH_BUILD/hub/hubd" ] && return 0
  log "building the project into $DH_BUILD"
  { cmake -S "$repo" -B "$DH_BUILD" && cmake --build "$DH_BUILD" -j; } >&2 && [ -x "$DH_BUILD/hub/hubd" ]
}

# hubd with production logging and pool size (dh_hub_config's test defaults
# are overridden by the repeated sections), plus extra config lines "$@".
start_hubd() {
  dh_pg_start
  dh_hub_config "[hub]" "log_level = info" "[database]" "pool_size = 16" "$@"
  dh_hub_start
}

# dcmqrscp configuration: $1 file, $2 port, $3 AETable line, $4 move
# destination port (0: none).
dcmqrscp_cfg() {
  cat >"$1" <<EOF
# generated by bench/qr.sh
NetworkTCPPort  = $2
MaxPDUSize      = 16384
MaxAssociations = 16

HostTable BEGIN
dest = (DEST, localhost, $4)
HostTable END

VendorTable BEGIN
VendorTable END

AETable BEGIN
$3
AETable END
EOF
}

# =============================================================== C-MOVE ====

move_data() {
  gen_id=$(md5sum "$bench_dir/gen_ct.py" | cut -c1-8)
  data="$bench_dir/.data/ct-n$count-s$studies-seed$SEED-$gen_id"
  if [ ! -e "$data/.complete" ]; then
    log "generating $count instances in $studies studies into $data"
    rm -rf "$data"
    mkdir -p "$data"
    $PY "$bench_dir/gen_ct.py" --count "$count" --studies "$studies" --seed "$SEED" --out "$data/files" >&2
    touch "$data/.complete"
  fi
  bytes=$(find "$data/files" -maxdepth 1 -name '*.dcm' -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f", s }')
  nfiles=$(find "$data/files" -maxdepth 1 -name '*.dcm' | wc -l)
  [ "$nfiles" -eq "$count" ] || { log "data set $data holds $nfiles files, expected $count"; exit 1; }
  # one study-level C-MOVE identifier per study (files are named
  # ct_<study>_<series>_<instance>.dcm, so the first of each prefix will do)
  movekeys="$data/move-keys"
  if [ ! -e "$movekeys/.complete" ]; then
    rm -rf "$movekeys"
    mkdir -p "$movekeys"
    local f uid n=0
    for f in $(find "$data/files" -maxdepth 1 -name 'ct_*_1_00001.dcm' | sort); do
      uid=$(dcmdump -q +P StudyInstanceUID "$f" | sed 's/.*\[\(.*\)\].*/\1/')
      n=$((n + 1))
      printf '(0008,0052) CS [STUDY]\n(0020,000d) UI [%s]\n' "$uid" >"$movekeys/q$n.txt"
      dump2dcm +te "$movekeys/q$n.txt" "$movekeys/q$n.dcm"
    done
    [ "$n" -eq "$studies" ] || { log "found $n studies in $data, expected $studies"; exit 1; }
    touch "$movekeys/.complete"
  fi
}

# Store the set into an archive over one association (not timed).
store_set() {
  local ae=$1 port=$2 logf=$3
  cat "$data"/files/*.dcm >/dev/null
  storescu -aet STORESCU -aec "$ae" -nh +sd +r 127.0.0.1 "$port" "$data/files" >"$logf" 2>&1 ||
    log "$ae: storescu exited non-zero (see $logf)"
}

# Start a storescp destination writing into a fresh $1 on port $2.
start_dest() {
  mkdir -p "$1"
  storescp -aet DEST -od "$1" "$2" >"$1.log" 2>&1 &
  dest_pid=$!
  bench_pids+=("$dest_pid")
  wait_echo "$dest_pid" DEST "$2"
}

# Timed C-MOVE of every study from AE $1 on port $2 to DEST; sets $elapsed and
# $moved (files the destination holds afterwards).
timed_move() {
  local ae=$1 port=$2 dest=$3 logf=$4 t0 t1 st=0
  sync
  t0=$(now)
  movescu -S -aet MOVESCU -aec "$ae" -aem DEST 127.0.0.1 "$port" "$movekeys"/q*.dcm >"$logf" 2>&1 || st=$?
  t1=$(now)
  elapsed=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  [ "$st" -eq 0 ] || log "$ae: movescu exited with $st (see $logf)"
  moved=$(find "$dest" -type f | wc -l)
}

move_finish() {
  local t=$1 note=$2
  if [ "$moved" -eq "$count" ]; then
    record move "$t" ok "$moved" "$elapsed" "$bytes" "$note"
  else
    record move "$t" FAILED "$moved" "$elapsed" "$bytes" "destination got $moved of $count; logs in $T"
    exit 1
  fi
}

run_move_hubd() {
  local dport held
  build_hubd || { record move hubd FAILED 0 0 "$bytes" "build failed"; exit 1; }
  bench_setup qr-move-hubd
  dport=$(dh_free_port)
  start_hubd "[remote.DEST]" "host = 127.0.0.1" "port = $dport"
  store_set "${HUB_AET:-DCMHUB}" "$HUB_PORT" "$T/storescu.log"
  held=$(dh_psql "select count(*) from instance")
  if [ "$held" -ne "$count" ]; then
    moved=0 elapsed=0
    record move hubd FAILED "$held" 0 "$bytes" "holds $held of $count after storing; logs in $T"
    exit 1
  fi
  start_dest "$T/dest" "$dport"
  timed_move "${HUB_AET:-DCMHUB}" "$HUB_PORT" "$T/dest" "$T/movescu.log"
  stop_pid "$dest_pid"
  dh_hub_stop
  move_finish hubd "cache on $(df -PT "$T" | awk 'NR == 2 { print $2 }')"
}

run_move_dcmqrscp() {
  local dir port pid dport held
  bench_setup qr-move-dcmqrscp
  dir=$T/dcmqrscp
  mkdir -p "$dir/storage"
  port=$(dh_free_port)
  dport=$(dh_free_port)
  dcmqrscp_cfg "$dir/dcmqrscp.cfg" "$port" "DCMQRSCP $dir/storage RW (500, 1024mb) ANY" "$dport"
  dcmqrscp -c "$dir/dcmqrscp.cfg" >"$dir/dcmqrscp.log" 2>&1 &
  pid=$!
  bench_pids+=("$pid")
  if ! wait_echo "$pid" DCMQRSCP "$port"; then
    record move dcmqrscp FAILED 0 0 "$bytes" "did not start; see $dir/dcmqrscp.log"
    exit 1
  fi
  store_set DCMQRSCP "$port" "$dir/storescu.log"
  held=$(find "$dir/storage" -type f ! -name index.dat | wc -l)
  if [ "$held" -ne "$count" ]; then
    record move dcmqrscp FAILED "$held" 0 "$bytes" "holds $held of $count after storing; logs in $T"
    exit 1
  fi
  start_dest "$T/dest" "$dport"
  timed_move DCMQRSCP "$port" "$T/dest" "$dir/movescu.log"
  stop_pid "$dest_pid"
  pkill -TERM -P "$pid" 2>/dev/null || true
  stop_pid "$pid"
  move_finish dcmqrscp "forking mode, one storage area"
}

# =============================================================== C-FIND ====

# The query driver: runs findscu twice per query line (kind, expected matches,
# level, ';'-separated match keys): once with -v, which prints every response
# and lets the driver check the number of pending responses and the final
# status, and once with -q, which prints nothing (a program that consumes the
# answers, like a viewer). Both are timed; the quiet call is the judged
# figure: printing 200 data sets costs findscu ~19 ms of its own CPU, more
# than the archive's whole answer (bench/README.md). Prints one tab-separated
# line per kind:
#   kind queries results-per-query(min-max) median_ms p99_ms v_median v_p99 srv_median srv_p99 status
# plus "echo" for the echoscu calls. Exit 1 when a query got a wrong answer.
# srv_* is the archive's own time per query when a log is given (hubd logs
# "C-FIND <level> level: N matches in X ms" after its final response): an
# added figure that separates the server's share from findscu's; "-" when
# there is no log or its lines cannot be matched to the queries one to one.
FIND_DRIVER='
import statistics, subprocess, sys, time, re
ae, port, qfile, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
logpath = sys.argv[5] if len(sys.argv) > 5 and sys.argv[5] != "-" else None
srvline = re.compile(r"C-FIND \w+ level: \d+ matches in ([0-9.]+) ms")
def logsize():
    try:
        with open(logpath, "rb") as f:
            return f.seek(0, 2)
    except OSError:
        return 0
def srvtimes(since, runs):
    # the line follows the final response: give the last one a moment
    time.sleep(0.3)
    with open(logpath, "rb") as f:
        f.seek(since)
        v = [float(x) for x in srvline.findall(f.read().decode("utf-8", "replace"))]
    return v[6:] if len(v) == 2 * runs else None
RET = {
    "STUDY": ["PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
              "StudyDate", "StudyTime", "AccessionNumber", "StudyID", "StudyDescription",
              "ReferringPhysicianName", "ModalitiesInStudy", "NumberOfStudyRelatedSeries",
              "NumberOfStudyRelatedInstances"],
    "SERIES": ["StudyInstanceUID", "SeriesInstanceUID", "Modality", "SeriesNumber",
               "SeriesDescription", "NumberOfSeriesRelatedInstances"],
    "IMAGE": ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID",
              "InstanceNumber"],
}
base = ["findscu", "-v", "-S", "-aet", "FINDSCU", "-aec", ae, "127.0.0.1", port]
quiet = ["findscu", "-q", "-S", "-aet", "FINDSCU", "-aec", ae, "127.0.0.1", port]
pend = re.compile(r"^I: Find Response: \d+ \(Pending\)", re.M)
final = re.compile(r"Received Final Find Response \(([^)]*)\)")
kinds, per = [], {}
for line in open(qfile):
    kind, expected, level, keys = line.rstrip("\n").split("\t")
    if kind not in per:
        kinds.append(kind)
        per[kind] = []
    if len(per[kind]) < limit:
        per[kind].append((int(expected), level, keys))
def p99(v):
    v = sorted(v)
    return v[min(len(v) - 1, max(0, -(-99 * len(v) // 100) - 1))]
def run(cmd):
    t0 = time.perf_counter_ns()
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return (time.perf_counter_ns() - t0) / 1e6, p
bad = 0
echo = []
def echoes(n):
    # the first three warm up; half before the queries, half after, so that
    # the baseline sees the same machine load as the queries did
    for i in range(n + 3):
        ms, p = run(["echoscu", "-aet", "ECHOSCU", "-aec", ae, "127.0.0.1", port])
        if p.returncode != 0:
            sys.exit("echoscu failed: " + p.stdout[-500:])
        if i >= 3:
            echo.append(ms)
echoes(max(1, min(limit, 50) // 2))
for kind in kinds:
    times, vtimes, counts, status = [], [], [], "ok"
    since = logsize() if logpath else 0
    for i, (expected, level, keys) in enumerate(per[kind][:3] + per[kind]):
        args = {k: "" for k in RET[level]}
        for kv in keys.split(";"):
            k, v = kv.split("=", 1)
            args[k] = v
        keyargs = ["-k", "QueryRetrieveLevel=" + level]
        for k, v in args.items():
            keyargs += ["-k", k + "=" + v if v else k]
        qms, q = run(quiet + keyargs)
        ms, p = run(base + keyargs)
        if q.returncode != 0 and p.returncode == 0:
            p = q
        n = len(pend.findall(p.stdout))
        m = final.search(p.stdout)
        if p.returncode != 0 or not m or m.group(1) != "Success" or n != expected:
            if status == "ok":
                sys.stderr.write("qr: %s %s: %s %s: expected %d matches and Success, got %d and %s\n"
                                 % (ae, kind, level, keys, expected, n, m.group(1) if m else "no final response"))
                sys.stderr.write(p.stdout[-1500:] + "\n")
            status = "FAILED"
            bad = 1
        if i >= 3:  # the first three warm caches and connections up
            times.append(qms)
            vtimes.append(ms)
            counts.append(n)
    srv = srvtimes(since, len(per[kind][:3] + per[kind])) if logpath else None
    print("%s\t%d\t%s\t%.2f\t%.2f\t%.2f\t%.2f\t%s\t%s\t%s" % (kind, len(times), "%d-%d" % (min(counts), max(counts))
          if min(counts) != max(counts) else str(counts[0]), statistics.median(times), p99(times),
          statistics.median(vtimes), p99(vtimes),
          "%.2f" % statistics.median(srv) if srv else "-", "%.2f" % p99(srv) if srv else "-", status))
    sys.stdout.flush()
echoes(max(1, min(limit, 50) // 2))
print("echo\t%d\t-\t%.2f\t%.2f\t-\t-\t-\t-\tok" % (len(echo), statistics.median(echo), p99(echo)))
sys.exit(bad)
'

# Rows for study indices [$1, $2): patient p = s/2 (two studies each),
# 4 series of 25 instances per study. Primary keys are computed (study s has
# pk s+1, and so on) so that nothing needs a join; the sequences are moved past
# them afterwards. About 2 % of patients are SMITH or SMITHSON; study dates
# spread over ten years; every NOT NULL column is filled, the columns of
# sql/hub/002_query.sql keep their defaults (they describe SR/KOS objects).
# file_path points every instance at one real file: C-FIND never opens it.
gen_rows() {
  local s0=$1 s1=$2 fpath=$3 fsize=$4 fmd5=$5
  dh_psql "
BEGIN;
INSERT INTO patient (pk, patient_id, issuer, patient_name, birth_date, sex)
SELECT p + 1, 'QRB' || lpad(p::text, 7, '0'), '',
       CASE WHEN p % 100 = 7 THEN 'SMITH' WHEN p % 100 = 57 THEN 'SMITHSON'
            ELSE (ARRAY['MUELLER','DUBOIS','ROSSI','JANSSEN','NOVAK','GARCIA','NIELSEN','KOWALSKI',
                        'MARTIN','BAUER','PETERS','SILVA','OLSEN','HORVAT','MOREAU'])[1 + (p * 7) % 15]
       END || '^' ||
       CASE WHEN p % 2 = 0
            THEN (ARRAY['JOHN','PETER','LUCA','JAN','TOMAS','MARC','HANS','PEDRO'])[1 + (p / 2) % 8]
            ELSE (ARRAY['ANNA','MARIE','SOFIA','EVA','CLARA','JULIA','LENA','INES'])[1 + (p / 2) % 8]
       END,
       to_char(date '1930-01-01' + ((p::bigint * 7919) % 25000)::int, 'YYYYMMDD'),
       CASE WHEN p % 2 = 0 THEN 'M' ELSE 'F' END
FROM generate_series($s0 / 2, ($s1 + 1) / 2 - 1) p;

INSERT INTO study (pk, patient_fk, study_uid, study_id, study_date, study_time, accession,
                   referring_physician, description)
SELECT s + 1, s / 2 + 1, '2.25.1' || lpad(s::text, 9, '0'), (s % 10000)::text,
       to_char(date '2016-01-01' + ((s::bigint * 2654435761) % 3653)::int, 'YYYYMMDD'),
       lpad(((s * 37) % 24)::text, 2, '0') || lpad(((s * 11) % 60)::text, 2, '0') || '00',
       'QRA' || lpad(s::text, 8, '0'), 'REFERRER^' || (s % 50),
       (ARRAY['CT CHEST ABDOMEN PELVIS W CONTRAST','CT THORAX W/O CONTRAST',
              'CT ABDOMEN PELVIS W CONTRAST','CT ANGIO CHEST'])[1 + s % 4]
FROM generate_series($s0, $s1 - 1) s;

INSERT INTO series (pk, study_fk, series_uid, modality, series_number, description, institution, department)
SELECT s * 4 + k + 1, s + 1, '2.25.2' || lpad((s * 4 + k)::text, 10, '0'), 'CT', (k + 1)::text,
       (ARRAY['Topogram 0.6 T20f','Thorax 5.0 B31f','Abdomen 3.0 B30f','Abdomen 1.0 B20f'])[1 + k],
       'BENCH HOSPITAL', 'RADIOLOGY'
FROM generate_series($s0, $s1 - 1) s, generate_series(0, 3) k;

INSERT INTO instance (pk, series_fk, sop_uid, received_sop_uid, received_study_uid, received_accession,
                      sop_class_uid, instance_number, content_date, content_time, transfer_syntax,
                      file_path, file_size, md5, source_ae)
SELECT i + 1, i / 25 + 1, u, u, st.study_uid, st.accession, '1.2.840.10008.5.1.4.1.1.2',
       (i % 25 + 1)::text, st.study_date, st.study_time, '1.2.840.10008.1.2.1',
       :'p1', $fsize, :'p2', 'STORESCU'
FROM (SELECT i, '2.25.3' || lpad(i::text, 11, '0') AS u FROM generate_series($s0 * 100, $s1 * 100 - 1) i) g
JOIN study st ON st.pk = g.i / 100 + 1;

SELECT setval(pg_get_serial_sequence('patient', 'pk'), (SELECT max(pk) FROM patient));
SELECT setval(pg_get_serial_sequence('study', 'pk'), (SELECT max(pk) FROM study));
SELECT setval(pg_get_serial_sequence('series', 'pk'), (SELECT max(pk) FROM series));
SELECT setval(pg_get_serial_sequence('instance', 'pk'), (SELECT max(pk) FROM instance));
COMMIT;
VACUUM ANALYZE patient, study, series, instance;
" "$fpath" "$fmd5" >/dev/null
}

# The query list for an index of $1 studies, Q per kind, spread over the
# studies by a fixed stride; expected match counts come from the index itself.
gen_queries() {
  local S=$1 q=$2
  dh_psql "
WITH g AS (SELECT g, (g::bigint * 7919 + 13) % $S + 1 AS spk FROM generate_series(1, $q) g),
     st AS (SELECT g.g, s.*, p.patient_id FROM g JOIN study s ON s.pk = g.spk JOIN patient p ON p.pk = s.patient_fk)
SELECT kind, expected, level, keys FROM (
  SELECT 1 AS o, g, 'study:uid' AS kind, 1::bigint AS expected, 'STUDY' AS level,
         'StudyInstanceUID=' || study_uid AS keys FROM st
  UNION ALL
  SELECT 2, g, 'study:patient-id', (SELECT count(*) FROM study x WHERE x.patient_fk = st.patient_fk),
         'STUDY', 'PatientID=' || patient_id FROM st
  UNION ALL
  SELECT 3, g, 'study:accession', 1, 'STUDY', 'AccessionNumber=' || accession FROM st
  UNION ALL
  SELECT 4, g, 'study:name-SMITH*',
         (SELECT count(*) FROM study x JOIN patient y ON y.pk = x.patient_fk WHERE y.patient_name LIKE 'SMITH%'),
         'STUDY', 'PatientName=SMITH*' FROM st
  UNION ALL
  SELECT 5, g, 'study:date-7d',
         (SELECT count(*) FROM study x WHERE x.study_date BETWEEN st.study_date
              AND to_char(to_date(st.study_date, 'YYYYMMDD') + 6, 'YYYYMMDD')),
         'STUDY', 'StudyDate=' || study_date || '-' || to_char(to_date(study_date, 'YYYYMMDD') + 6, 'YYYYMMDD') FROM st
  UNION ALL
  SELECT 6, g, 'series:study-uid', 4, 'SERIES', 'StudyInstanceUID=' || study_uid FROM st
  UNION ALL
  SELECT 7, g, 'image:series-uid', 25, 'IMAGE',
         'StudyInstanceUID=' || study_uid || ';SeriesInstanceUID=' || se.series_uid
  FROM st JOIN series se ON se.pk = (st.pk - 1) * 4 + 1 + st.g % 4
) q ORDER BY o, g" | tr '|' '\t'
}

# Run the driver against AE $1 port $2 with the first $4 queries per kind of
# file $3; records one line per kind for index size $5, target $6. $7: the
# archive's log with per-query times (hubd's), or "-".
find_run() {
  local ae=$1 port=$2 qf=$3 lim=$4 size=$5 target=$6 alog=${7:--} out st=0 kind n res med p99 vmed vp99 smed sp99 status
  log "C-FIND on $target at $size instances: $lim queries per kind"
  out=$($PY -c "$FIND_DRIVER" "$ae" "$port" "$qf" "$lim" "$alog") || st=$?
  while IFS=$'\t' read -r kind n res med p99 vmed vp99 smed sp99 status; do
    [ -n "$kind" ] || continue
    record find "$size" "$target" "$kind" "$n" "$res" "$med" "$p99" "$vmed" "$vp99" "$smed" "$sp99" "$status"
  done <<<"$out"
  return "$st"
}

# The dcmqrscp copy of the 10k index: one small file per instance row
# (headers only, 8x8 pixels) written from the rows themselves, indexed with
# dcmqridx once and cached (its index update scans the whole index file per
# object: ~2 minutes for 10k). Sets $ref_area.
ref_index() {
  local id csv
  # keyed by the code that makes the rows and the files, not the whole script
  id=$(declare -f gen_rows ref_index | md5sum | cut -c1-8)
  ref_area="$bench_dir/.data/qr-dcmqrscp-$SMALL-$id"
  [ -e "$ref_area/.complete" ] && return 0
  log "building dcmqrscp's index of $SMALL instances in $ref_area (once; about 2 minutes)"
  rm -rf "$ref_area"
  mkdir -p "$ref_area/files"
  csv=$T/rows.tsv
  dh_psql "SELECT i.sop_uid, se.series_uid, s.study_uid, p.patient_id, p.patient_name, p.birth_date, p.sex,
                  s.study_date, s.study_time, s.accession, s.study_id, s.description, s.referring_physician,
                  se.series_number, se.description, i.instance_number
           FROM instance i JOIN series se ON se.pk = i.series_fk JOIN study s ON s.pk = se.study_fk
           JOIN patient p ON p.pk = s.patient_fk ORDER BY i.pk" >"$csv"
  $PY - "$csv" "$ref_area/files" <<'EOF'
import sys
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID
rows, out = sys.argv[1], sys.argv[2]
for n, line in enumerate(open(rows)):
    (sop, ser, stu, pid, pname, birth, sex, sdate, stime, acc, sid, sdesc, ref,
     sernum, serdesc, inum) = line.rstrip("\n").split("|")
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    fm.MediaStorageSOPInstanceUID = sop
    fm.TransferSyntaxUID = ExplicitVRLittleEndian
    fm.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = fm
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.SOPClassUID, ds.SOPInstanceUID = fm.MediaStorageSOPClassUID, sop
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.Modality = sdate, stime, acc, "CT"
    ds.ReferringPhysicianName, ds.StudyDescription, ds.SeriesDescription = ref, sdesc, serdesc
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = pname, pid, birth, sex
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.StudyID = stu, ser, sid
    ds.SeriesNumber, ds.InstanceNumber = sernum, inum
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 16, 12, 11
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PixelRepresentation = 1, "MONOCHROME2", 0
    ds.PixelData = bytes(128)
    ds.save_as("%s/%06d.dcm" % (out, n), write_like_original=False)
EOF
  (cd "$ref_area" && find files -name '*.dcm' | sort | xargs dcmqridx "$ref_area") >&2
  touch "$ref_area/.complete"
}

run_find() {
  local spath fsize fmd5 qsmall qbig rport rpid st=0
  build_hubd || { record find "$SMALL" hubd - 0 - - - - - - - "FAILED (build)"; exit 1; }
  bench_setup qr-find
  start_hubd
  # the one file every instance row points at
  mkdir -p "$T/cache/bench"
  cp "$(dh_samples)/CT_small.dcm" "$T/cache/bench/ct.dcm"
  spath=bench/ct.dcm
  fsize=$(stat -c %s "$T/cache/$spath")
  fmd5=$(md5sum "$T/cache/$spath" | cut -c1-32)
  if [ "$(dh_psql "select count(*) from instance")" -ne 0 ]; then
    log "the new index is not empty"; exit 1
  fi

  log "generating $SMALL index rows in PostgreSQL"
  gen_rows 0 $((SMALL / 100)) "$spath" "$fsize" "$fmd5"
  qsmall=$T/queries-$SMALL.tsv
  gen_queries $((SMALL / 100)) "$queries" >"$qsmall"
  find_run "${HUB_AET:-DCMHUB}" "$HUB_PORT" "$qsmall" "$queries" "$SMALL" hubd "$T/hubd.log" || st=1

  # dcmqrscp on the same 10k records, read-only
  ref_index
  rport=$(dh_free_port)
  mkdir -p "$T/dcmqrscp"
  dcmqrscp_cfg "$T/dcmqrscp/dcmqrscp.cfg" "$rport" "DCMQRSCP $ref_area R (500, 1024mb) ANY" 0
  dcmqrscp -c "$T/dcmqrscp/dcmqrscp.cfg" >"$T/dcmqrscp/dcmqrscp.log" 2>&1 &
  rpid=$!
  bench_pids+=("$rpid")
  if wait_echo "$rpid" DCMQRSCP "$rport"; then
    find_run DCMQRSCP "$rport" "$qsmall" "$ref_queries" "$SMALL" dcmqrscp || st=1
  else
    record find "$SMALL" dcmqrscp - 0 - - - - - - - "FAILED (did not start; see $T/dcmqrscp/dcmqrscp.log)"
    st=1
  fi
  pkill -TERM -P "$rpid" 2>/dev/null || true
  stop_pid "$rpid"

  if [ "$big" -gt 0 ]; then
    log "extending the index to $big instances (about a minute per million)"
    local t0 t1
    t0=$(now)
    gen_rows $((SMALL / 100)) $((big / 100)) "$spath" "$fsize" "$fmd5"
    t1=$(now)
    log "generated in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", b - a }') s; index size $(dh_psql "select pg_size_pretty(pg_database_size(current_database()))")"
    qbig=$T/queries-$big.tsv
    gen_queries $((big / 100)) "$queries" >"$qbig"
    find_run "${HUB_AET:-DCMHUB}" "$HUB_PORT" "$qbig" "$queries" "$big" hubd "$T/hubd.log" || st=1
  fi
  dh_hub_stop
  [ "$st" -eq 0 ] || { log "some queries got wrong answers; folder kept: $T"; exit 1; }
}

# =============================================================== run =======

failed=0
run_part() {
  local st
  set +e
  ( trap - EXIT; "$@" )
  st=$?
  set -e
  if [ $st -eq 130 ] || [ $st -eq 143 ]; then log "interrupted"; exit $st; fi
  [ $st -eq 0 ] || failed=1
}

bytes=0
if [ $do_move -eq 1 ]; then
  move_data
  log "C-MOVE: $count instances ($(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1e6 }') MB) in $studies studies"
  log "running hubd"
  run_part run_move_hubd
  log "running dcmqrscp"
  run_part run_move_dcmqrscp
fi
if [ $do_find -eq 1 ]; then
  run_part run_find
fi

# --- report ---------------------------------------------------------------------
echo
if [ $do_move -eq 1 ]; then
  echo "C-MOVE: $count instances, $bytes bytes, $studies studies, one study-level C-MOVE per study over one association"
  printf '%-9s %9s %9s %12s %9s  %s\n' target instances seconds instances/s MB/s status
  declare -A ips
  while IFS=$'\t' read -r _ t status held secs b note; do
    if [ "$status" = ok ]; then
      read -r rate mbs < <(awk -v n="$held" -v s="$secs" -v b="$b" \
        'BEGIN { if (s > 0) printf "%.1f %.1f\n", n / s, b / 1e6 / s; else print "0 0" }')
      ips[$t]=$rate
    else
      rate=-; mbs=-
    fi
    printf '%-9s %9s %9s %12s %9s  %s\n' "$t" "$held" "$secs" "$rate" "$mbs" "$status${note:+ ($note)}"
  done < <(grep '^move' "$results")
  if [ -n "${ips[hubd]:-}" ] && [ -n "${ips[dcmqrscp]:-}" ]; then
    awk -v x="${ips[hubd]}" -v y="${ips[dcmqrscp]}" 'BEGIN {
      r = (y > 0) ? x / y : 0
      printf "hubd/dcmqrscp  %6.2f   (target >= 1: %s)\n", r, (r >= 1) ? "met" : "NOT met" }'
  else
    echo "hubd/dcmqrscp     n/a   (needs both runs)"
  fi
  echo
fi
if [ $do_find -eq 1 ]; then
  echo "C-FIND latency, ms per findscu -q call (process start, association, query, all responses, release;"
  echo "      -q: findscu prints nothing, as a program consuming the answers would); judged figure"
  echo "net = minus the median echoscu call to the same archive (process start + association + C-ECHO)"
  echo "v-net = the same query with findscu -v (prints every response; the run that checks the match"
  echo "      count and final status of every query), minus the echoscu median: not judged"
  echo "srv = hubd's own time per query from its log (C-FIND command received to final response written)"
  printf '%-9s %-9s %-18s %7s %9s %8s %8s %8s %8s %8s %8s %8s %8s  %s\n' \
    index target kind queries matches median p99 net-med net-p99 v-net-med v-net-p99 srv-med srv-p99 status
  declare -A echo_med
  while IFS=$'\t' read -r _ size t kind n res med p99 vmed vp99 smed sp99 status; do
    [ "$kind" != echo ] || echo_med[$size.$t]=$med
  done < <(grep '^find' "$results")
  while IFS=$'\t' read -r _ size t kind n res med p99 vmed vp99 smed sp99 status; do
    if [ "$kind" = echo ]; then
      printf '%-9s %-9s %-18s %7s %9s %8s %8s %8s %8s %8s %8s %8s %8s  %s\n' "$size" "$t" "(echoscu)" "$n" - "$med" "$p99" - - - - - - "$status"
      continue
    fi
    read -r nm np vm vp < <(awk -v a="$med" -v b="$p99" -v c="$vmed" -v d="$vp99" -v e="${echo_med[$size.$t]:-0}" \
      'BEGIN { if (a == "-") print "- - - -"; else printf "%.2f %.2f %.2f %.2f\n", a - e, b - e, c - e, d - e }')
    printf '%-9s %-9s %-18s %7s %9s %8s %8s %8s %8s %8s %8s %8s %8s  %s\n' "$size" "$t" "$kind" "$n" "$res" "$med" "$p99" "$nm" "$np" "$vm" "$vp" "$smed" "$sp99" "$status"
  done < <(grep '^find' "$results")
  echo
  # ratios at 10k: dcmqrscp median / hubd median per kind (above 1: hubd faster)
  awk -F'\t' -v s=$SMALL '$1 == "find" && $2 == s && $4 != "echo" && $13 == "ok" { m[$3 "," $4] = $7; k[$4] = 1 }
    END { for (x in k) if ((("hubd," x) in m) && (("dcmqrscp," x) in m) && m["hubd," x] > 0)
            printf "dcmqrscp/hubd median at %d, %-18s %6.2f\n", s, x, m["dcmqrscp," x] / m["hubd," x] }' "$results" | sort
  if [ "$big" -gt 0 ]; then
    # the target applies to study-level queries; judged per kind on the net p99
    awk -F'\t' -v s="$big" '$1 == "find" && $2 == s && $3 == "hubd" {
        if ($4 == "echo") e = $7; else if ($4 ~ /^study:/ && $13 == "ok") { n++; k[n] = $4; p[n] = $8; m[n] = $6; v[n] = $10 } }
      END { for (i = 1; i <= n; i++)
              printf "study-level p99 at %d, %-18s net %7.2f ms (%s matches; target < 20 ms: %s; findscu -v: %.2f)\n",
                s, k[i], p[i] - e, m[i], (p[i] - e < 20) ? "met" : "NOT met", v[i] - e }' "$results"
  fi
  echo "dcmqrscp is compared at $SMALL instances only: it scans its whole index file (8 KiB per"
  echo "instance) for every query, so its latency grows linearly with the archive and 1M is out of its reach."
  echo
fi
echo "machine: $(nproc) CPUs, $(uname -sr), $(free -g | awk '/^Mem:/ { print $2 " GiB RAM" }')"
while IFS=$'\t' read -r what rest; do
  case "$what" in
    move) IFS=$'\t' read -r t status _ <<<"$rest"; [ "$status" = ok ] || failed=1 ;;
    find) [[ "$rest" == *FAILED* ]] && failed=1 ;;
  esac
done <"$results"
exit $failed
