#!/usr/bin/env bash
# verify.sh - `hubctl verify --spoke S` at scale (issue 6): a spoke with N
# instances (default 100,000) verified against the hub, every study.
#
# Set-up: one PostgreSQL cluster, hubd with its cc endpoint, spoked with its
# shipper (connected: its heartbeat is seen). The same N objects (N/100
# studies of one patient each, 2 series of 50 instances) are generated
# directly in both databases with SQL: the hub's index (patient, study
# owned by the spoke, series, instance with its data set digest) and the
# spoke's ledger. Three differences are then injected (one object missing
# at the hub, one wrong data set digest, one patient name changed at the
# spoke); verify must report exactly those three (exit 1).
#
# Measured: the wall-clock time of the whole `hubctl verify` (request,
# the spoke reading its ledger and streaming it in chunks over ZeroMQ, hubd
# storing the chunks, the set-based comparison, output). Target: < 60 s
# for 100,000 instances. Exits non-zero when the run fails (verify does not
# find exactly the injected differences, a daemon died), not when the target
# is missed.
#
# Usage: bench/verify.sh [--count N] [--keep]
# Environment: DH_BUILD (build folder, default <repo>/build).
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$bench_dir/.." && pwd)
: "${DH_BUILD:=$repo/build}"
export DH_BUILD
count=100000
usage() { sed -n '/^# Usage:/,/^# Environment:/p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
	case "$1" in
	--count) count=${2:?--count needs a value}; shift 2 ;;
	--keep) export DH_KEEP=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "verify: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
	esac
done
[ "$count" -ge 100 ] && [ $((count % 100)) -eq 0 ] || { echo "verify: --count must be a multiple of 100" >&2; exit 2; }
log() { echo "verify: $*" >&2; }
if [ ! -x "$DH_BUILD/hub/hubctl" ] || [ ! -x "$DH_BUILD/spoke/spoked" ]; then
	log "building the project into $DH_BUILD"
	{ cmake -S "$repo" -B "$DH_BUILD" && cmake --build "$DH_BUILD" -j; } >&2
fi

# shellcheck source=../tests/integration/lib.sh
. "$repo/tests/integration/lib.sh"
# shellcheck source=../tests/integration/lib_cc.sh
. "$repo/tests/integration/lib_cc.sh"
dh_setup bench-verify
dh_pg_start
DH_CC_LOG_LEVEL=info dh_cc_pair_start
studies=$((count / 100))

# ---- the same objects at both ends ----------------------------------------------
t0=$(date +%s.%N)
dh_psql "
INSERT INTO patient (patient_id, patient_name, birth_date, sex)
  SELECT 'BP' || g, 'BENCH^' || g, '19700101', 'O' FROM generate_series(1, $studies) g;
INSERT INTO study (patient_fk, study_uid, study_date, study_time, accession, description, owner_spoke)
  SELECT p.pk, '2.25.9' || g, '20240101', '120000', 'ACC' || g, 'bench', 'SITE1'
  FROM generate_series(1, $studies) g JOIN patient p ON p.patient_id = 'BP' || g;
INSERT INTO series (study_fk, series_uid, modality, series_number, description)
  SELECT st.pk, st.study_uid || '.' || k, 'CT', k::text, 'axial' FROM study st, generate_series(1, 2) k
  WHERE st.owner_spoke = 'SITE1';
INSERT INTO instance (series_fk, sop_uid, received_sop_uid, received_study_uid, sop_class_uid, instance_number,
  transfer_syntax, file_path, file_size, md5, dataset_digest, received_series_uid)
  SELECT se.pk, se.series_uid || '.' || i, se.series_uid || '.' || i, st.study_uid, '1.2.840.10008.5.1.4.1.1.2',
  i::text, '1.2.840.10008.1.2.1', 'bench/none.dcm', 1000, md5('file' || se.series_uid || '.' || i),
  md5(se.series_uid || '.' || i), se.series_uid
  FROM series se JOIN study st ON st.pk = se.study_fk, generate_series(1, 50) i WHERE st.owner_spoke = 'SITE1';
ANALYZE patient; ANALYZE study; ANALYZE series; ANALYZE instance;" >/dev/null
dh_spoke_psql "
INSERT INTO ledger_instance (sop_uid, series_uid, study_uid, sop_class_uid, received_sop_uid, received_series_uid,
  received_study_uid, patient_id, patient_name, birth_date, sex, study_date, study_time, accession,
  study_description, modality, series_number, series_description, instance_number, file_path, file_size, md5,
  transfer_syntax, fwd_state, dataset_digest)
  SELECT s || '.' || k || '.' || i, s || '.' || k, s, '1.2.840.10008.5.1.4.1.1.2', s || '.' || k || '.' || i,
  s || '.' || k, s, 'BP' || g, 'BENCH^' || g, '19700101', 'O', '20240101', '120000', 'ACC' || g, 'bench', 'CT',
  k::text, 'axial', i::text, 'bench/none.dcm', 1000, md5('spoke' || s || '.' || k || '.' || i),
  '1.2.840.10008.1.2.1', 'committed', md5(s || '.' || k || '.' || i)
  FROM generate_series(1, $studies) g, LATERAL (SELECT '2.25.9' || g AS s) x, generate_series(1, 2) k,
  generate_series(1, 50) i;
ANALYZE ledger_instance;" >/dev/null
log "generated $count instances at both ends in $(python3 -c "import time; print('%.1f' % (time.time() - $t0))") s"
[ "$(dh_psql "SELECT count(*) FROM instance")" = "$count" ] || { log "hub index has the wrong count"; exit 1; }
dh_hub_wait "SELECT count(*) FROM cc_stream WHERE last_seen_at > now() - interval '30 seconds'" 1 30 "spoke connected"

# ---- three differences -----------------------------------------------------------
dh_psql "DELETE FROM instance WHERE sop_uid = '2.25.91.1.1'" >/dev/null                          # missing at the hub
dh_psql "UPDATE instance SET dataset_digest = md5('x') WHERE sop_uid = '2.25.92.2.7'" >/dev/null     # wrong data set digest
dh_spoke_psql "UPDATE ledger_instance SET patient_name = 'OTHER^NAME' WHERE sop_uid = '2.25.93.1.3'" >/dev/null  # attribute

# ---- the measurement ---------------------------------------------------------------
t1=$(date +%s.%N)
rc=0
"$HUBCTL" -c "$T/hub.conf" verify --spoke SITE1 --json --timeout 60 >"$T/verify.json" || rc=$?
secs=$(python3 -c "import time; print('%.1f' % (time.time() - $t1))")
[ "$rc" = 1 ] || { log "hubctl verify exited $rc (expected 1: differences)"; exit 1; }
found=$(python3 -c 'import json,sys; print(" ".join(sorted(d["kind"] + ":" + d["sop_uid"] for d in json.load(open(sys.argv[1]))["differences"])))' "$T/verify.json")
want="attribute:2.25.93.1.3 digest:2.25.92.2.7 missing_at_hub:2.25.91.1.1"
[ "$found" = "$want" ] || { log "verify found '$found', expected '$want'"; exit 1; }
echo "verify: $count instances in $studies studies, every study of the spoke: ${secs} s wall clock, 3 of 3 injected differences found (target < 60 s)"
dh_cc_pair_stop
dh_hub_stop
dh_pass "bench/verify.sh"
