#!/usr/bin/env bash
# cc.sh - change-context benchmark (issue 5): sustained apply throughput at
# the hub and spoke-to-hub lag, for ATTRIBUTE_CHANGE and SPLIT streams,
# against the raw PostgreSQL commit rate of the same cluster.
#
# Set-up: one PostgreSQL cluster (hub index and spoke ledger), hubd with its
# cc endpoint, spoked (forwarder + shipper) with production logging. A study
# of two CT images is stored through spoked and committed at the hub.
#
# 1. Physical limit: pgbench, one client, one single-row INSERT per
#    transaction (synchronous commit, as the applier's), for 5 s: tps.
# 2. Throughput (per kind): hubd is stopped, bench/ccload records N changes
#    at the spoke (the outbox fills), hubd is started; the clock runs from the
#    hub's first receipt (cc_log.received_at of the first cc) to the spoke's
#    last acknowledgement (cc_history.acked_at of the last cc): everything
#    received, applied, committed and acknowledged. cc/s and the ratio to (1).
#    Target: >= 2,000 ATTRIBUTE_CHANGE/s.
# 3. Lag (per kind): with both running, ccload records M changes paced at
#    R per second; lag of each cc = cc_history.acked_at - created_at (capture
#    commit to the spoke holding the hub's Ack, which the hub sends only after
#    its commit). Median and p99. Target: p99 < 250 ms.
#
# Exits non-zero only when a run fails (a cc missing, a daemon died), never
# because a target was missed.
#
# Usage: bench/cc.sh [--count N] [--lag-count M] [--rate R] [--split-rate R] [--keep]
#   --count N      changes per throughput run (default 20000)
#   --lag-count M  changes per lag run (default 3000)
#   --rate R       pace of the ATTRIBUTE_CHANGE lag run, changes per second (default 500)
#   --split-rate R pace of the SPLIT lag run (default 100: a split is a
#                  person's decision; far more than a site makes)
#   --keep         keep the run's folder in /tmp after a good run
# Environment: DH_BUILD (build folder, default <repo>/build).
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$bench_dir/.." && pwd)
: "${DH_BUILD:=$repo/build}"
export DH_BUILD
count=20000
lag_count=3000
rate=500
split_rate=100

usage() { sed -n '/^# Usage:/,/^# Environment:/p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
	case "$1" in
	--count) count=${2:?--count needs a value}; shift 2 ;;
	--lag-count) lag_count=${2:?--lag-count needs a value}; shift 2 ;;
	--rate) rate=${2:?--rate needs a value}; shift 2 ;;
	--split-rate) split_rate=${2:?--split-rate needs a value}; shift 2 ;;
	--keep) export DH_KEEP=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "cc: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
	esac
done
log() { echo "cc: $*" >&2; }
if [ ! -x "$DH_BUILD/bench/ccload" ] || [ ! -x "$DH_BUILD/spoke/spoked" ]; then
	log "building the project into $DH_BUILD"
	{ cmake -S "$repo" -B "$DH_BUILD" && cmake --build "$DH_BUILD" -j; } >&2
fi
CCLOAD=$DH_BUILD/bench/ccload
PGBENCH=$(ls -d /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | sort -V | tail -n 1)
[ -x "$PGBENCH" ] || { log "pgbench not found (postgresql package)"; exit 1; }

# shellcheck source=../tests/integration/lib.sh
. "$repo/tests/integration/lib.sh"
# shellcheck source=../tests/integration/lib_cc.sh
. "$repo/tests/integration/lib_cc.sh"
dh_setup bench-cc
dh_pg_start
DH_CC_LOG_LEVEL=info dh_cc_pair_start

# a study of two images, committed at the hub
uid() { python3 -c 'import uuid; print("2.25.%d" % uuid.uuid4().int)'; }
STUDY_A=$(uid)
STUDY_B=$(uid)
mkdir -p "$T/in"
dh_variant "$(dh_samples)/CT_small.dcm" "$T/in/a1.dcm" -gin -gse -m "StudyInstanceUID=$STUDY_A" -m PatientID=B1
dh_variant "$(dh_samples)/CT_small.dcm" "$T/in/a2.dcm" -gin -gse -m "StudyInstanceUID=$STUDY_A" -m PatientID=B1
dh_variant "$(dh_samples)/CT_small.dcm" "$T/in/b1.dcm" -gin -gse -m "StudyInstanceUID=$STUDY_B" -m PatientID=B1
storescu -aet STORESCU -aec SPOKE1 127.0.0.1 "$SPOKE_PORT" "$T"/in/*.dcm >/dev/null 2>&1 || { log "storescu failed"; exit 1; }
dh_cc_wait_committed 3 60
SPLIT_SOP=$(dh_spoke_psql "SELECT sop_uid FROM ledger_instance WHERE study_uid = '$STUDY_A' ORDER BY pk LIMIT 1")

# ---- 1. the physical limit -------------------------------------------------------
dh_psql "CREATE TABLE bench_commit (pk bigserial PRIMARY KEY, v integer NOT NULL)" >/dev/null
echo "INSERT INTO bench_commit (v) VALUES (1);" >"$T/insert.sql"
pgtps=$("$PGBENCH" -n -c 1 -T 5 -f "$T/insert.sql" "$DH_CONNINFO" 2>/dev/null |
	awk '/^tps/ { printf "%.0f", $3; exit }')
[ -n "$pgtps" ] || { log "pgbench failed"; exit 1; }

last_seq() { dh_spoke_psql "SELECT last_sequence FROM spoke_state"; }

# ---- 2. throughput -----------------------------------------------------------
# (run in this shell, not in $(...): it restarts hubd, whose PID the harness tracks)
throughput() {
	local kind=$1 first last secs
	first=$(($(last_seq) + 1))
	dh_hub_stop
	if [ "$kind" = attr ]; then
		"$CCLOAD" -c "$T/spoked.conf" attr --study "$STUDY_A" --count "$count" >&2
	else
		"$CCLOAD" -c "$T/spoked.conf" split --study "$STUDY_A" --other "$STUDY_B" --sop "$SPLIT_SOP" \
			--count "$count" >&2
	fi
	last=$(last_seq)
	dh_hub_start
	dh_cc_wait_acked "$last" 600
	[ "$(dh_psql "SELECT count(*) FROM cc_log WHERE spoke_id = 'SITE1' AND state = 'applied' AND sequence BETWEEN $first AND $last")" = "$count" ] ||
		{ log "$kind: not every cc applied"; exit 1; }
	local t0 t1
	t0=$(dh_psql "SELECT extract(epoch FROM min(received_at)) FROM cc_log WHERE spoke_id = 'SITE1' AND sequence BETWEEN $first AND $last")
	t1=$(dh_spoke_psql "SELECT extract(epoch FROM max(acked_at)) FROM cc_history WHERE sequence BETWEEN $first AND $last")
	secs=$(python3 -c "print(max($t1 - $t0, 1e-6))")
	TPUT=$(python3 -c "print('%.0f' % ($count / $secs))")
}

# ---- 3. lag ------------------------------------------------------------------
lag() {
	local kind=$1 first last
	first=$(($(last_seq) + 1))
	if [ "$kind" = attr ]; then
		"$CCLOAD" -c "$T/spoked.conf" attr --study "$STUDY_A" --count "$lag_count" --rate "$rate" >&2
	else
		"$CCLOAD" -c "$T/spoked.conf" split --study "$STUDY_A" --other "$STUDY_B" --sop "$SPLIT_SOP" \
			--count "$lag_count" --rate "$split_rate" >&2
	fi
	last=$(last_seq)
	dh_cc_wait_acked "$last" 120
	LAG=$(dh_spoke_psql "SELECT round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM acked_at - created_at)))::int
		|| ' ' || round(1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM acked_at - created_at)))::int
		FROM cc_history WHERE sequence BETWEEN $first AND $last")
}

throughput attr
attr_tput=$TPUT
throughput split
split_tput=$TPUT
lag attr
read -r attr_p50 attr_p99 <<<"$LAG"
lag split
read -r split_p50 split_p99 <<<"$LAG"

ratio() { python3 -c "print('%.2f' % ($1 / $2))"; }
cat <<EOF
cc benchmark ($count changes per throughput run, $lag_count per lag run at $rate/s, splits at $split_rate/s)
  physical limit (pgbench, 1 client, single-row INSERT commits): $pgtps tps
  ATTRIBUTE_CHANGE apply: $attr_tput cc/s   ratio to the commit limit: $(ratio "$attr_tput" "$pgtps")   (target >= 2000 cc/s)
  SPLIT apply:            $split_tput cc/s   ratio to the commit limit: $(ratio "$split_tput" "$pgtps")
  ATTRIBUTE_CHANGE lag:   median $attr_p50 ms, p99 $attr_p99 ms   (target p99 < 250 ms)
  SPLIT lag:              median $split_p50 ms, p99 $split_p99 ms
EOF
dh_cc_pair_stop
dh_hub_stop
