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
N=400
interrupted=0 total_acked=0
for round in $(seq 1 "$ROUNDS"); do
  mkdir -p "$T/r$round"
  for i in $(seq 1 $N); do
    dh_variant "$S/CT_small.dcm" "$T/r$round/$i.dcm" -gin
  done
  dh_hub_start
  storescu -v -aet STORESCU -aec DCMHUB -nh 127.0.0.1 "$HUB_PORT" "$T/r$round"/*.dcm >"$T/r$round.log" 2>&1 &
  scu=$!
  sleep "0.$((RANDOM % 4))$((RANDOM % 10))"
  dh_hub_kill9
  wait "$scu" || true
  dh_hub_start
  # the files storescu saw succeed: "Sending file: F" followed by a Success response
  awk '/Sending file:/ {f=$NF} /Received Store Response \(Success\)/ {print f}' "$T/r$round.log" >"$T/ok_files"
  acked=0 missing=0
  while read -r f; do
    uid=$(dcmdump +P 0008,0018 "$f" | sed 's/.*\[\(.*\)\].*/\1/')
    row=$(dh_psql "SELECT file_path || '|' || md5 FROM instance WHERE sop_uid = '$uid'")
    acked=$((acked + 1))
    if [ -z "$row" ]; then missing=$((missing + 1)); echo "acknowledged but missing: $uid"; continue; fi
    [ "$(md5sum "$T/cache/${row%%|*}" | cut -d' ' -f1)" = "${row##*|}" ] || { echo "does not verify: $uid"; missing=$((missing + 1)); }
  done <"$T/ok_files"
  [ "$acked" -lt "$N" ] && interrupted=$((interrupted + 1))
  total_acked=$((total_acked + acked))
  echo "round $round: $acked acknowledged before the kill, $missing lost"
  dh_assert_eq 0 "$missing" "acknowledged objects lost in round $round"
  dh_assert_eq 0 "$(find "$T/cache" -name "*.part" | wc -l)" "temp files after restart"
  dh_hub_stop
done
# the test means something only if kills landed mid-batch after some successes
[ "$interrupted" -ge 1 ] || dh_fail "no round was interrupted mid-batch"
[ "$total_acked" -ge 1 ] || dh_fail "no object was acknowledged before a kill"
dh_pass
