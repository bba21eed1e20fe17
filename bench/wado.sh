#!/usr/bin/env bash
# wado.sh - WADO-URI retrieval against C-MOVE of the same objects, both from
# one hubd (its private folder made by tests/integration/lib.sh,
# /tmp/dh-bench-wado.XXXXXX).
#
# The CT data set of the ingest bench (gen_ct.py, cached in bench/.data) is
# stored into hubd over one association (not timed). Then:
#  - C-MOVE: one movescu association asks for every study (one study-level
#    C-MOVE per study, Study Root) towards a storescp writing into a fresh
#    folder; the clock runs from movescu's start to its exit;
#  - WADO, one connection: one curl process fetches every object in turn
#    over one keep-alive HTTP connection into a fresh folder;
#  - WADO, P connections: one curl process with --parallel-max P.
# Each run must deliver exactly N objects (WADO: N files of the stored sizes),
# else the script fails. Prints instances/s, MB/s (10^6 bytes of files) and
# the ratios WADO/C-MOVE. Exits non-zero only when a run went wrong, never
# for the figures.
#
# Usage: bench/wado.sh [--count N] [--parallel P] [--keep]
#   --count N      instances (default 500, ~514 KiB each)
#   --parallel P   HTTP connections of the parallel WADO run (default 4)
#   --keep         keep the folder after a good run
# Environment: DH_BUILD (build folder, default <repo>/build).
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$bench_dir/.." && pwd)
: "${DH_BUILD:=$repo/build}"
export DH_BUILD
SEED=20240501 # the ingest bench's seed: the benches share one data set
count=500
parallel=4
usage() { sed -n '/^# Usage:/,/^# Environment:/p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
	case "$1" in
	--count) count=${2:?--count needs a value}; shift 2 ;;
	--parallel) parallel=${2:?--parallel needs a value}; shift 2 ;;
	--keep) export DH_KEEP=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "wado: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
	esac
done
for v in "$count" "$parallel"; do
	[[ "$v" =~ ^[1-9][0-9]*$ ]] || { echo "wado: counts must be positive integers" >&2; exit 2; }
done
for t in storescu storescp movescu dump2dcm dcmdump curl; do
	command -v "$t" >/dev/null || { echo "wado: $t not found (deploy/install-deps.sh)" >&2; exit 1; }
done
log() { echo "wado: $*" >&2; }
now() { date +%s.%N; }
studies=$(((count + 249) / 250))

# ---- the data set (shared with ingest.sh / qr.sh)
gen_id=$(md5sum "$bench_dir/gen_ct.py" | cut -c1-8)
data="$bench_dir/.data/ct-n$count-s$studies-seed$SEED-$gen_id"
if [ ! -e "$data/.complete" ]; then
	log "generating $count instances in $studies studies into $data"
	rm -rf "$data"
	mkdir -p "$data"
	/usr/bin/python3 "$bench_dir/gen_ct.py" --count "$count" --studies "$studies" --seed "$SEED" --out "$data/files" >&2
	touch "$data/.complete"
fi

# shellcheck source=../tests/integration/lib.sh
. "$repo/tests/integration/lib.sh"
dh_setup bench-wado
dh_pg_start
WADO_PORT=$(dh_free_port)
DEST_PORT=$(dh_free_port)
dh_hub_config "[hub]" "log_level = info" "[qr]" "pending_interval = 5" "[archive]" "enabled = false" \
	"[wado]" "enabled = true" "port = $WADO_PORT" "[remote.DEST]" "host = 127.0.0.1" "port = $DEST_PORT"
dh_hub_start

log "storing $count instances (not timed)"
storescu -aet STORESCU -aec DCMHUB -nh +sd +r 127.0.0.1 "$HUB_PORT" "$data/files" >"$T/store.log" 2>&1 || true
stored=$(dh_psql "SELECT count(*) FROM instance")
[ "$stored" -eq "$count" ] || dh_fail "hubd holds $stored instances, expected $count"
bytes=$(dh_psql "SELECT sum(file_size) FROM instance")

# ---- C-MOVE
mkdir -p "$T/dest" "$T/keys"
dh_bg storescp -aet DEST -od "$T/dest" "$DEST_PORT"
dh_wait_echo "$DEST_PORT" DEST
n=0
for st in $(dh_psql "SELECT study_uid FROM study ORDER BY pk"); do
	n=$((n + 1))
	printf '(0008,0052) CS [STUDY]\n(0020,000d) UI [%s]\n' "$st" >"$T/keys/q$n.txt"
	dump2dcm +te "$T/keys/q$n.txt" "$T/keys/q$n.dcm"
done
sync
t0=$(now)
movescu -S -aet MOVESCU -aec DCMHUB -aem DEST 127.0.0.1 "$HUB_PORT" "$T"/keys/q*.dcm >"$T/move.log" 2>&1 ||
	dh_fail "movescu failed (see $T/move.log)"
t_move=$(echo "$(now) - $t0" | bc -l)
got=$(find "$T/dest" -type f | wc -l)
[ "$got" -eq "$count" ] || dh_fail "C-MOVE delivered $got objects, expected $count"

# ---- WADO: a curl config with one url/output pair per object
wado_run() { # NAME PARALLEL
	local dir=$T/$1 cfg=$T/$1.curl
	mkdir -p "$dir"
	dh_psql "SELECT st.study_uid, se.series_uid, i.sop_uid FROM instance i JOIN series se ON se.pk = i.series_fk
	         JOIN study st ON st.pk = se.study_fk ORDER BY i.pk" |
		awk -F'|' -v base="http://127.0.0.1:$WADO_PORT/wado" -v dir="$dir" '{
			printf "url = \"%s?requestType=WADO&studyUID=%s&seriesUID=%s&objectUID=%s&contentType=application/dicom\"\n", base, $1, $2, $3
			printf "output = \"%s/%s.dcm\"\n", dir, $3 }' >"$cfg"
	sync
	local t0 opts=()
	[ "$2" -le 1 ] || opts=(--parallel --parallel-max "$2")
	t0=$(now)
	curl -sS --no-progress-meter --fail "${opts[@]}" -K "$cfg" || dh_fail "curl failed in the WADO run $1"
	WADO_T=$(echo "$(now) - $t0" | bc -l)
	local files size
	files=$(find "$dir" -type f | wc -l)
	size=$(find "$dir" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f", s }')
	[ "$files" -eq "$count" ] || dh_fail "WADO $1 delivered $files objects, expected $count"
	[ "$size" -eq "$bytes" ] || dh_fail "WADO $1 delivered $size bytes, the index holds $bytes"
}
wado_run wado1 1
t_w1=$WADO_T
wado_run wadoP "$parallel"
t_wp=$WADO_T

rate() { echo "scale=1; $count / $1" | bc -l; }
mbs() { echo "scale=1; $bytes / 1000000 / $1" | bc -l; }
printf '\n%d instances, %s MB, hubd %s\n' "$count" "$(echo "scale=1; $bytes / 1000000" | bc -l)" \
	"$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')"
printf '%-28s %10s %10s %10s\n' "run" "seconds" "inst/s" "MB/s"
printf '%-28s %10.2f %10s %10s\n' "C-MOVE (1 association)" "$t_move" "$(rate "$t_move")" "$(mbs "$t_move")"
printf '%-28s %10.2f %10s %10s\n' "WADO (1 connection)" "$t_w1" "$(rate "$t_w1")" "$(mbs "$t_w1")"
printf '%-28s %10.2f %10s %10s\n' "WADO ($parallel connections)" "$t_wp" "$(rate "$t_wp")" "$(mbs "$t_wp")"
printf 'ratio WADO/C-MOVE: %.2f (1 connection), %.2f (%d connections)\n' \
	"$(echo "$t_move / $t_w1" | bc -l)" "$(echo "$t_move / $t_wp" | bc -l)" "$parallel"
printf 'machine: %s CPUs, %s\n' "$(nproc)" "$(df -hT "$T" | awk 'NR == 2 { print $2 " (" $1 ")" }')"
dh_pass
