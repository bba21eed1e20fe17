#!/usr/bin/env bash
# Bad input gets the documented status and the association goes on:
# truncated data sets (pydicom's MR_truncated, rtplan_truncated) -> A900,
# data set not matching the request's SOP class/instance -> A900, missing
# Study Instance UID -> A900; good objects before and after are stored.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dh_setup malformed
dh_pg_start
dh_hub_config
dh_hub_start
S=$(dh_samples)
RAW="$DH_BUILD/tests/tools/rawstorescu"

dh_variant "$S/CT_small.dcm" "$T/good1.dcm" -gin
dh_variant "$S/CT_small.dcm" "$T/good2.dcm" -gin
dh_variant "$S/CT_small.dcm" "$T/nostudy.dcm" -gin -ea "(0020,000d)"
out=$("$RAW" 127.0.0.1 "$HUB_PORT" "$T/good1.dcm" "$S/MR_truncated.dcm" "$S/rtplan_truncated.dcm" "$T/nostudy.dcm" "$T/good2.dcm")
echo "$out"
dh_assert_contains "$(echo "$out" | sed -n 1p)" "status=0000" "good object before"
dh_assert_contains "$(echo "$out" | sed -n 2p)" "status=a900" "MR_truncated"
dh_assert_contains "$(echo "$out" | sed -n 3p)" "status=a900" "rtplan_truncated"
dh_assert_contains "$(echo "$out" | sed -n 4p)" "status=a900" "no Study Instance UID"
dh_assert_contains "$(echo "$out" | sed -n 5p)" "status=0000" "good object after, same association"

# the data set says CT, the request says MR
dh_variant "$S/CT_small.dcm" "$T/mismatch.dcm" -gin
out=$("$RAW" --class 1.2.840.10008.5.1.4.1.1.4 127.0.0.1 "$HUB_PORT" "$T/mismatch.dcm")
dh_assert_contains "$out" "status=a900" "SOP class mismatch"
# the request names another SOP instance
out=$("$RAW" --instance 1.2.3.4.5.6.7 127.0.0.1 "$HUB_PORT" "$T/mismatch.dcm")
dh_assert_contains "$out" "status=a900" "SOP instance mismatch"

dh_assert_eq 2 "$(dh_psql "SELECT count(*) FROM instance")" "only the two good objects are indexed"
dh_assert_eq 0 "$(find "$T/cache" -name "*.part" | wc -l)" "no temp files left"
kill -0 "$HUB_PID" || dh_fail "hubd died"
echoscu -aet ECHOSCU -aec DCMHUB 127.0.0.1 "$HUB_PORT" || dh_fail "hub answers after bad input"
dh_pass
