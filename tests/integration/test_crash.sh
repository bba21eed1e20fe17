#!/usr/bin/env bash
# Durability: kill -9 of hubd at a random moment during a storescu batch,
# restart, and every object that got a success response is indexed, its
# file is there and verifies; no temp files remain. Repeated ROUNDS times.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dh_setup crash
dh_pg_start
dh_hub_config
S=$(dh_samples)
ROUNDS=${CRASH_ROUNDS:-4}
N=150
for round in $(seq 1 "$ROUNDS"); do
  mkdir -p "$T/r$round"
  for i in $(seq 1 $N); do
    dh_variant "$S/CT_small.dcm" "$T/r$round/$i.dcm" -gin
  done
  dh_hub_start
  storescu -v -aet STORESCU -aec DCMHUB -nh 127.0.0.1 "$HUB_PORT" "$T/r$round"/*.dcm >"$T/r$round.log" 2>&1 &
  scu=$!
  sleep "0.$((RANDOM % 9 + 1))"
  dh_hub_kill9
  wait "$scu" || true
  dh_hub_start
  # the SOP Instance UIDs that storescu saw succeed
  grep -B1 'Received Store Response (Success)' "$T/r$round.log" | sed -n 's/.*Sending Store Request (MsgID \([0-9]*\).*/\1/p' >"$T/ok_ids" || true
  acked=0 missing=0
  for id in $(cat "$T/ok_ids"); do
    f=$(ls "$T/r$round"/*.dcm | sort -V | sed -n "${id}p")
    uid=$(dcmdump +P 0008,0018 "$f" | sed 's/.*\[\(.*\)\].*/\1/')
    row=$(dh_psql "SELECT file_path || '|' || md5 FROM instance WHERE sop_uid = '$uid'")
    acked=$((acked + 1))
    if [ -z "$row" ]; then missing=$((missing + 1)); echo "acknowledged but missing: $uid"; continue; fi
    [ "$(md5sum "$T/cache/${row%%|*}" | cut -d' ' -f1)" = "${row##*|}" ] || { echo "does not verify: $uid"; missing=$((missing + 1)); }
  done
  echo "round $round: $acked acknowledged before the kill, $missing lost"
  dh_assert_eq 0 "$missing" "acknowledged objects lost in round $round"
  dh_assert_eq 0 "$(find "$T/cache" -name "*.part" | wc -l)" "temp files after restart"
  dh_hub_stop
done
dh_pass
