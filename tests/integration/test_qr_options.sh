#!/usr/bin/env bash
# Q/R details: qr.restrict_to_source sends objects only back to the AE that
# sent them (§5.2); Number of Study Related Series answers on the standard tag
# (0020,1206) and on the one IMPAX's Table 2-26 names (0020,1000).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dh_setup qr_options
dh_pg_start
S=$(dh_samples)
SRC_PORT=$(dh_free_port)
OTHER_PORT=$(dh_free_port)
# STORESCU sends; it is also reachable as a move destination, like a spoke PACS
dh_hub_config "[qr]" "restrict_to_source = true" "[remote.STORESCU]" "host = 127.0.0.1" "port = $SRC_PORT" \
	"[remote.OTHER]" "host = 127.0.0.1" "port = $OTHER_PORT"
dh_hub_start
mkdir -p "$T/in" "$T/src" "$T/other"
dh_variant "$S/CT_small.dcm" "$T/in/0.dcm" -gst -gse -gin
dh_variant "$T/in/0.dcm" "$T/in/1.dcm" -gin -gse
study=$(dcmdump +P 0020,000d "$T/in/0.dcm" | sed 's/.*\[\(.*\)\].*/\1/')
storescu -aet STORESCU -aec DCMHUB 127.0.0.1 "$HUB_PORT" "$T"/in/*.dcm || dh_fail "store"
dh_bg storescp -od "$T/src" -aet STORESCU "$SRC_PORT"
dh_bg storescp -od "$T/other" -aet OTHER "$OTHER_PORT"
dh_wait_echo "$SRC_PORT" STORESCU
dh_wait_echo "$OTHER_PORT" OTHER
move() { movescu -S -aet MOVESCU -aec DCMHUB -aem "$1" -k 0008,0052=STUDY -k "0020,000d=$study" 127.0.0.1 "$HUB_PORT"; }
move OTHER || dh_fail "move to OTHER"
dh_assert_eq 0 "$(ls "$T/other" | wc -l)" "objects sent to an AE that is not their source"
move STORESCU || dh_fail "move back to the source"
dh_assert_eq 2 "$(ls "$T/src" | wc -l)" "objects sent back to their source"

findscu -v -S -aet FINDSCU -aec DCMHUB -k 0008,0052=STUDY -k "0020,000d=$study" -k 0020,1206 -k 0020,1000 \
	-k 0020,1208 127.0.0.1 "$HUB_PORT" >"$T/find.log" 2>&1 || true
resp=$(sed -n '/Find Response: 1/,$p' "$T/find.log")
dh_assert_contains "$resp" "(0020,1206) IS [2 ]" "Number of Study Related Series (0020,1206)"
dh_assert_contains "$resp" "(0020,1000) IS [2 ]" "Series in Study (0020,1000) as IMPAX names it"
dh_assert_contains "$resp" "(0020,1208) IS [2 ]" "Number of Study Related Instances"
dh_pass
