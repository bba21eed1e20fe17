#!/usr/bin/env bash
# Storage Commitment round trip with a real peer: N-ACTION in, N-EVENT-REPORT
# out on a separate association. Stored objects are committed (event type 1);
# an unknown object and one whose cached file no longer verifies are reported
# in the Failed SOP Sequence (event type 2); the transaction is kept.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dh_setup stgcmt
dh_pg_start
SCU_PORT=$(dh_free_port)
dh_hub_config "[remote.STGCMTSCU]" "host = 127.0.0.1" "port = $SCU_PORT"
dh_hub_start
S=$(dh_samples)
SCU="$DH_BUILD/tests/tools/stgcmtscu"
for i in 1 2 3; do dh_variant "$S/CT_small.dcm" "$T/o$i.dcm" -gin; done
storescu -aet STORESCU -aec DCMHUB 127.0.0.1 "$HUB_PORT" "$T"/o*.dcm || dh_fail "store"

out=$("$SCU" --listen "$SCU_PORT" --timeout 30 127.0.0.1 "$HUB_PORT" "$T"/o*.dcm)
echo "$out"
dh_assert_contains "$out" "n-action status=0000" "N-ACTION accepted"
dh_assert_contains "$out" "event_type=1 committed=3 failed=0" "all committed"
txn=$(echo "$out" | sed -n 's/^transaction=\([^ ]*\).*/\1/p')
dh_assert_eq "reported|1" "$(dh_psql "SELECT state, event_type FROM stgcmt_txn WHERE transaction_uid = '$txn'")" "transaction kept"

# damage one cached file and ask for an object the hub never received
uid1=$(dcmdump +P 0008,0018 "$T/o1.dcm" | sed 's/.*\[\(.*\)\].*/\1/')
path=$(dh_psql "SELECT file_path FROM instance WHERE sop_uid = '$uid1'")
printf 'X' | dd of="$T/cache/$path" bs=1 seek=2000 conv=notrunc status=none
out=$("$SCU" --listen "$SCU_PORT" --timeout 30 --uid 1.2.840.10008.5.1.4.1.1.2:1.2.826.0.1.999.1 \
      127.0.0.1 "$HUB_PORT" "$T"/o*.dcm)
echo "$out"
dh_assert_contains "$out" "event_type=2 committed=2 failed=2" "failures reported"
dh_assert_contains "$out" "failed $uid1 0110" "damaged object not committed"
dh_assert_contains "$out" "failed 1.2.826.0.1.999.1 0112" "unknown object: no such instance"
dh_assert_eq 2 "$(dh_psql "SELECT count(*) FROM stgcmt_txn")" "both transactions kept"

# a requester that is not listening: the result waits and is retried
dh_hub_stop
dh_hub_config "[remote.STGCMTSCU]" "host = 127.0.0.1" "port = $SCU_PORT" "[stgcmt]" "retry_interval = 1"
dh_hub_start
"$SCU" --listen "$(dh_free_port)" --timeout 3 127.0.0.1 "$HUB_PORT" "$T/o2.dcm" >"$T/lost.txt" 2>&1 || true
sleep 3
attempts=$(dh_psql "SELECT max(attempts) FROM stgcmt_txn WHERE state = 'pending'")
[ "${attempts:-0}" -ge 2 ] || dh_fail "undelivered result not retried (attempts=$attempts)"
dh_pass
