#!/usr/bin/env bash
# Memory stays flat over thousands of associations (DcmSCPPool in DCMTK 3.6.7
# grows without bound; our own accept loop must not). Measures hubd's RSS
# after a warm-up and after ASSOCS more associations (echo and store).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dh_setup memory
dh_pg_start
dh_hub_config "[hub]" "log_level = warn"
dh_hub_start
S=$(dh_samples)
ASSOCS=${MEM_ASSOCS:-3000}
rss() { awk '/VmRSS/ {print $2}' "/proc/$HUB_PID/status"; }
dh_variant "$S/CT_small.dcm" "$T/x.dcm" -gin
burst() { # $1 associations, 4 in parallel (wait on these only: hubd is a job too)
  local n=$1 pids=() p
  for _ in $(seq 1 4); do
    ( for _ in $(seq 1 $((n / 4))); do echoscu -aet ECHOSCU -aec DCMHUB 127.0.0.1 "$HUB_PORT" || exit 1; done ) &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || dh_fail "an association failed during the burst"; done
}
burst 400
storescu -aet STORESCU -aec DCMHUB 127.0.0.1 "$HUB_PORT" "$T/x.dcm" || true
before=$(rss)
burst "$ASSOCS"
for _ in $(seq 1 50); do storescu -aet STORESCU -aec DCMHUB 127.0.0.1 "$HUB_PORT" "$T/x.dcm" 2>/dev/null || true; done
after=$(rss)
vmsize=$(awk '/VmSize/ {print $2}' "/proc/$HUB_PID/status")
echo "RSS before ${before} kB, after ${after} kB over $ASSOCS associations; VmSize ${vmsize} kB"
growth=$((after - before))
[ "$growth" -lt 8192 ] || dh_fail "RSS grew by ${growth} kB over $ASSOCS associations"
dh_assert_eq 0 "$(ls /proc/$HUB_PID/task | wc -l | awk '{print ($1 > 40)}')" "threads do not pile up"
dh_pass
