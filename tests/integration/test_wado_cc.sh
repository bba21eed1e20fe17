#!/usr/bin/env bash
# WADO-URI after real change contexts (spoke PACS -> spoked -> hubd, changes
# made with spokectl, shipped over ZeroMQ/CURVE and applied at the hub):
#  - before any change the object comes back byte-identical to the file the
#    hub stored;
#  - after an ATTRIBUTE_CHANGE it shows the new values (dcmdump) and nothing
#    else differs;
#  - after a DELETE: 404 (the other objects still 200);
#  - after a Study UID fix-up both the new and the old Study UID return the
#    object, rendered with the new Study UID and accession.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dh_setup wadocc
dh_pg_start
. "$(dirname "$0")/lib_cc.sh"
WADO_PORT=$(dh_free_port)
dh_cc_pair_start "[wado]" "enabled = true" "port = $WADO_PORT"
BASE="http://127.0.0.1:$WADO_PORT/wado"

sc() { "$SPOKECTL" -c "$T/spoked.conf" "$@"; }
uid() { python3 -c 'import uuid; print("2.25.%d" % uuid.uuid4().int)'; }
tagval() { dcmdump -q -Un +P "$2" "$1" | head -n 1 | sed -n 's/^[^[]*\[\(.*\)\].*/\1/p' | sed 's/ *$//'; }
url() { echo "$BASE?requestType=WADO&studyUID=$1&seriesUID=$2&objectUID=$3&contentType=application/dicom"; }
get() { curl -sS --max-time 30 -o "$T/body" -w '%{http_code}' "$1" || echo curl-failed; }
cachefile() { echo "$T/cache/$(dh_psql "SELECT file_path FROM instance WHERE sop_uid = :'p1'" "$1")"; }
wait_applied() {
	local seq=$1 deadline=$((SECONDS + 30)) st
	while :; do
		st=$(dh_psql "SELECT state || ' ' || state_reason FROM cc_log WHERE spoke_id = 'SITE1' AND sequence = $seq")
		case "$st" in
		applied*) return 0 ;;
		refused*) dh_fail "cc $seq refused at the hub: $st" ;;
		esac
		[ $SECONDS -lt $deadline ] || dh_fail "cc $seq not applied within 30 s (state: '${st:-not received}')"
		sleep 0.2
	done
}
capture() {
	local out cmd=$1
	shift
	out=$(sc "$cmd" --operator tester --reason wado "$@") || dh_fail "spokectl $cmd failed: $out"
	echo "$out" >>"$T/spokectl.log"
	CAP_OUT=$out
	CAP_SEQ=$(awk '$1 == "sequence" { print $2 }' <<<"$out" | tail -n 1)
	[ -n "$CAP_SEQ" ] || dh_fail "spokectl $cmd printed no sequence: $out"
}

STUDY=$(uid)
SER=$(uid)
mkdir -p "$T/in"
for i in 1 2 3; do
	dh_variant "$(dh_samples)/CT_small.dcm" "$T/in/ct$i.dcm" -gin -m "StudyInstanceUID=$STUDY" \
		-m "SeriesInstanceUID=$SER" -m "PatientID=P1" -m "PatientName=DOE^JOHN" -m "AccessionNumber=ACC1" \
		-m "InstanceNumber=$i" -m "StudyDescription=original"
done
storescu -aet STORESCU -aec SPOKE1 127.0.0.1 "$SPOKE_PORT" "$T"/in/ct*.dcm || dh_fail "storescu to spoked failed"
dh_cc_wait_committed 3 60
declare -A U
for i in 1 2 3; do U[$i]=$(tagval "$T/in/ct$i.dcm" 0008,0018); done

# ---- as stored
dh_assert_eq 200 "$(get "$(url "$STUDY" "$SER" "${U[1]}")")" "GET ct1 before any change"
cmp "$T/body" "$(cachefile "${U[1]}")" || dh_fail "ct1: differs from the stored file"
cp "$T/body" "$T/ct1_stored.dcm"

# ---- ATTRIBUTE_CHANGE
capture modify --study "$STUDY" --set "PatientName=DOE^JANE" --set "StudyDescription=corrected"
wait_applied "$CAP_SEQ"
dh_assert_eq 200 "$(get "$(url "$STUDY" "$SER" "${U[1]}")")" "GET ct1 after the change"
dh_assert_eq "DOE^JANE" "$(tagval "$T/body" 0010,0010)" "rendered patient name"
dh_assert_eq "corrected" "$(tagval "$T/body" 0008,1030)" "rendered study description"
# nothing else changed ((0002,0013) Implementation Version Name: DCMTK wrote the rendered file)
strip() { dcmdump -q "$1" | grep -v -e '^(0010,0010)' -e '^(0008,1030)' -e '^(0002,0013)'; }
diff <(strip "$T/ct1_stored.dcm") <(strip "$T/body") >"$T/diff.txt" ||
	dh_fail "the rendered object differs in more than the changed attributes: $(cat "$T/diff.txt")"
dh_assert_eq "$(tagval "$T/ct1_stored.dcm" 0002,0010)" "$(tagval "$T/body" 0002,0010)" "stored transfer syntax kept"

# ---- DELETE
capture delete --study "$STUDY" --series "$SER" --sop "${U[2]}"
wait_applied "$CAP_SEQ"
dh_assert_eq 404 "$(get "$(url "$STUDY" "$SER" "${U[2]}")")" "GET the deleted object"
dh_assert_contains "$(cat "$T/body")" "deleted" "404 says the object was deleted"
dh_assert_eq 200 "$(get "$(url "$STUDY" "$SER" "${U[3]}")")" "GET another object of the series"

# ---- UID_FIXUP: new Study UID; the old one still finds the object
capture fix-uid --study "$STUDY" --accession ORD9
wait_applied "$CAP_SEQ"
FIX=$(awk '$1 == "study" { print $NF }' <<<"$CAP_OUT" | tail -n 1)
[ -n "$FIX" ] && [ "$FIX" != "$STUDY" ] || dh_fail "fix-uid printed no new Study UID: $CAP_OUT"
for st in "$FIX" "$STUDY"; do
	dh_assert_eq 200 "$(get "$(url "$st" "$SER" "${U[3]}")")" "GET ct3 by Study UID $st"
	dh_assert_eq "$FIX" "$(tagval "$T/body" 0020,000d)" "ct3 by $st: the new Study UID"
	dh_assert_eq "ORD9" "$(tagval "$T/body" 0008,0050)" "ct3 by $st: the new accession"
	dh_assert_eq "DOE^JANE" "$(tagval "$T/body" 0010,0010)" "ct3 by $st: the earlier change too"
done
dh_assert_eq 404 "$(get "$(url "$STUDY" "$SER" "${U[2]}")")" "the deleted object by the old Study UID"
dh_assert_eq 404 "$(get "$(url "$FIX" "$SER" "${U[2]}")")" "the deleted object by the new Study UID"

dh_cc_pair_stop
dh_pass
