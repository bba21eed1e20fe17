#!/usr/bin/env bash
# Out of space -> A700 (storage.min_free_mb above what the disk has, and a
# real 2 MiB filesystem when this machine lets us mount one); a silent peer
# holding a connection open does not block other associations; many
# concurrent associations all store.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dh_setup limits
dh_pg_start
S=$(dh_samples)
RAW="$DH_BUILD/tests/tools/rawstorescu"
dh_variant "$S/CT_small.dcm" "$T/a.dcm" -gin

# quota: more free space required than the filesystem has
dh_hub_config "[storage]" "min_free_mb = 100000000"
dh_hub_start
dh_assert_contains "$("$RAW" 127.0.0.1 "$HUB_PORT" "$T/a.dcm")" "status=a700" "A700 when storage is full"
dh_assert_eq 0 "$(dh_psql "SELECT count(*) FROM instance")" "nothing indexed"
dh_hub_stop

# a real small filesystem (tmpfs of 2 MiB), when mounting is allowed here
mkdir -p "$T/small"
if mount -t tmpfs -o size=2m tmpfs "$T/small" 2>/dev/null; then
  trap 'umount "$T/small" 2>/dev/null || true; dh_cleanup' EXIT
  dh_hub_config "[storage]" "cache_dir = $T/small" "min_free_mb = 0"
  dh_hub_start
  mkdir -p "$T/many"
  for i in $(seq 1 80); do dh_variant "$S/CT_small.dcm" "$T/many/$i.dcm" -gin; done
  out=$("$RAW" 127.0.0.1 "$HUB_PORT" "$T"/many/*.dcm || true)
  dh_assert_contains "$out" "status=a700" "A700 on a full filesystem"
  stored=$(echo "$out" | grep -c "status=0000" || true)
  dh_assert_eq "$stored" "$(dh_psql "SELECT count(*) FROM instance")" "every 0000 is indexed"
  dh_hub_stop
  umount "$T/small"
else
  echo "note: cannot mount tmpfs here; the quota case above covers A700"
fi

# a silent peer and 20 concurrent associations
dh_hub_config
dh_hub_start
python3 -c "
import socket, time
s = socket.create_connection(('127.0.0.1', $HUB_PORT)); time.sleep(8)" &
silent=$!
mkdir -p "$T/conc"
for i in $(seq 1 40); do dh_variant "$S/MR_small.dcm" "$T/conc/$i.dcm" -gin; done
base=$(dh_psql "SELECT count(*) FROM instance")
start=$(date +%s)
pids=()
for i in $(seq 1 20); do
  storescu -aet STORESCU -aec DCMHUB 127.0.0.1 "$HUB_PORT" "$T/conc/$i.dcm" "$T/conc/$((i + 20)).dcm" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || dh_fail "a concurrent store failed"; done
elapsed=$(( $(date +%s) - start ))
[ "$elapsed" -lt 6 ] || dh_fail "concurrent stores took ${elapsed}s with a silent peer connected"
dh_assert_eq $((base + 40)) "$(dh_psql "SELECT count(*) FROM instance")" "all concurrent objects stored"
kill "$silent" 2>/dev/null || true
dh_pass
