#!/usr/bin/env bash
# C-MOVE forwarding to an external archive (conformance §2.2.1.6.5) with
# DCMTK's dcmqrscp as the archive (configured with commit = false: it has no
# Storage Commitment SCP). The hub exports every object to it, the operator
# releases the local copies (`hubctl external release`), and then:
#   - C-FIND still answers the released objects (the index keeps them);
#   - direct mode: a study-level C-MOVE is forwarded, dcmqrscp sends straight
#     to the requester's destination, the counts echo; an object stored in
#     dcmqrscp directly (never at the hub) is not sent: the hub forwards what
#     its index knows;
#   - mixed: objects the hub still holds are sent by the hub, the others
#     forwarded; the combined counts and final status are right;
#   - archive down: mixed -> B000 (local ones arrive, the forwarded ones
#     counted failed and listed), wholly external -> C000;
#   - a destination refusing some objects: the archive's B000 and its Failed
#     SOP Instance UID List come through, combined with the hub's own failure;
#   - C-CANCEL during a forward: the archive's move is cancelled, FE00 with
#     the counts of what arrived;
#   - archive that does not know the destination (direct): its A801 is echoed;
#   - proxy mode: dcmqrscp sends to the hub, which sends on to a destination
#     the archive does not know, with the counts of its own sub-operations
#     and the index's current truth applied (a change made after the export).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dh_setup move_forward
dh_pg_start
S=$(dh_samples)
EXT_PORT=$(dh_free_port)
DEST_PORT=$(dh_free_port)
HIDDEN_PORT=$(dh_free_port)
CT_PORT=$(dh_free_port)
SLOW_PORT=$(dh_free_port)

# start_scp NAME PORT: storescp into $T/NAME
start_scp() {
	mkdir -p "$T/$1"
	dh_bg storescp +B -od "$T/$1" -aet "$1" "$2"
	dh_wait_echo "$2" "$1"
}
start_scp DEST "$DEST_PORT"
start_scp HIDDEN "$HIDDEN_PORT"
# a destination that accepts only CT Image Storage (and Verification)
cat >"$T/ctonly.cfg" <<'EOF'
[[TransferSyntaxes]]
[Any]
TransferSyntax1 = LocalEndianExplicit
TransferSyntax2 = LittleEndianImplicit
[[PresentationContexts]]
[CT]
PresentationContext1 = CTImageStorage\Any
PresentationContext2 = VerificationSOPClass\Any
[[Profiles]]
[CTOnly]
PresentationContexts = CT
EOF
mkdir -p "$T/CTONLY"
dh_bg storescp +B -od "$T/CTONLY" -aet CTONLY -xf "$T/ctonly.cfg" CTOnly "$CT_PORT"
dh_wait_echo "$CT_PORT" CTONLY
# a destination that takes a second per object (for C-CANCEL)
mkdir -p "$T/SLOW"
dh_bg storescp +B -od "$T/SLOW" -aet SLOW --sleep-after 1 "$SLOW_PORT"
dh_wait_echo "$SLOW_PORT" SLOW

write_hub_conf() { # MODE
	dh_hub_config "[qr]" "pending_interval = 0" \
		"[archive]" "enabled = false" \
		"[external]" "stable_seconds = 0" "scan_interval = 1" "retry_interval = 1" \
		"[remote.EXTARC]" "host = 127.0.0.1" "port = $EXT_PORT" "export = true" "commit = false" \
		"forward_mode = $1" \
		"[remote.DEST]" "host = 127.0.0.1" "port = $DEST_PORT" \
		"[remote.HIDDEN]" "host = 127.0.0.1" "port = $HIDDEN_PORT" \
		"[remote.CTONLY]" "host = 127.0.0.1" "port = $CT_PORT" \
		"[remote.SLOW]" "host = 127.0.0.1" "port = $SLOW_PORT"
}
write_hub_conf direct
dh_hub_start

# dcmqrscp knows DEST and the hub, not HIDDEN
mkdir -p "$T/extdb"
start_ext() {
	cat >"$T/dcmqrscp.cfg" <<EOF
NetworkTCPPort  = $EXT_PORT
MaxPDUSize      = 16384
MaxAssociations = 16
HostTable BEGIN
DEST = (DEST, 127.0.0.1, $DEST_PORT)
CTONLY = (CTONLY, 127.0.0.1, $CT_PORT)
SLOW = (SLOW, 127.0.0.1, $SLOW_PORT)
DCMHUB = (DCMHUB, 127.0.0.1, $HUB_PORT)
HostTable END
VendorTable BEGIN
VendorTable END
AETable BEGIN
EXTARC $T/extdb RW (200, 1024mb) ANY
AETable END
EOF
	dh_bg dcmqrscp -c "$T/dcmqrscp.cfg"
	EXT_PID=$DH_BG_LAST
	dh_wait_echo "$EXT_PORT" EXTARC
}
start_ext

# study 1: series A 3 CT, series B 2 MR; study 2: 2 CT
ST1=1.2.826.0.1.3680043.9.7781.1
ST2=1.2.826.0.1.3680043.9.7781.2
mkdir -p "$T/in"
for i in 1 2 3; do
	dh_variant "$S/CT_small.dcm" "$T/in/a$i.dcm" -gin -m "PatientID=FWD1" -m "StudyInstanceUID=$ST1" \
		-m "SeriesInstanceUID=$ST1.1"
done
for i in 1 2; do
	dh_variant "$S/MR_small.dcm" "$T/in/b$i.dcm" -gin -m "PatientID=FWD1" -m "StudyInstanceUID=$ST1" \
		-m "SeriesInstanceUID=$ST1.2"
	dh_variant "$S/CT_small.dcm" "$T/in/c$i.dcm" -gin -m "PatientID=FWD2" -m "StudyInstanceUID=$ST2" \
		-m "SeriesInstanceUID=$ST2.1"
done
storescu -aec DCMHUB +sd 127.0.0.1 "$HUB_PORT" "$T/in"
dh_assert_eq 7 "$(dh_psql "SELECT count(*) FROM instance")" "objects stored at the hub"

# an object of study 1 that only the archive has (stored there directly)
dh_variant "$S/CT_small.dcm" "$T/only_ext.dcm" -gin -m "PatientID=FWD1" -m "StudyInstanceUID=$ST1" \
	-m "SeriesInstanceUID=$ST1.1"
storescu -aec EXTARC 127.0.0.1 "$EXT_PORT" "$T/only_ext.dcm"

# ---- export (commit = false: the C-STORE success is the record)
for ((i = 0; i < 150; i++)); do
	[ "$(dh_psql "SELECT count(*) FROM external_object WHERE state = 'committed'")" = 7 ] && break
	sleep 0.2
done
dh_assert_eq 7 "$(dh_psql "SELECT count(*) FROM external_object WHERE archive_ae = 'EXTARC' AND state = 'committed'")" \
	"all objects exported to EXTARC"
dh_assert_eq 8 "$(find "$T/extdb" -type f ! -name index.dat | wc -l)" \
	"dcmqrscp holds the 7 exported objects and its own"
"$DH_BUILD/hub/hubctl" -c "$T/hub.conf" external list >"$T/list.txt"
grep -E "^EXTARC +yes +0 +0 +7 +0 +0" "$T/list.txt" >/dev/null || { cat "$T/list.txt"; dh_fail "external list"; }

# ---- release study 1 locally
out=$("$DH_BUILD/hub/hubctl" -c "$T/hub.conf" external release --study "$ST1")
dh_assert_contains "$out" "5 object(s) of study $ST1 released (5 cache file(s) removed)" "release"
dh_assert_eq 5 "$(dh_psql "SELECT count(*) FROM instance i JOIN series se ON se.pk = i.series_fk
	JOIN study st ON st.pk = se.study_fk WHERE st.study_uid = '$ST1' AND i.file_path IS NULL")" "no local copies"
dh_assert_eq 5 "$(dh_psql "SELECT count(*) FROM operator_action WHERE action = 'release'")" "release recorded"

# C-FIND still shows the released objects (the hub's index keeps them)
findscu -S -aec DCMHUB -k QueryRetrieveLevel=IMAGE -k StudyInstanceUID=$ST1 -k SOPInstanceUID \
	-k InstanceAvailability 127.0.0.1 "$HUB_PORT" -v >"$T/find.txt" 2>&1
dh_assert_eq 5 "$(grep -c "Find Response:.*Pending" "$T/find.txt" || true)" "C-FIND IMAGE matches of the released study"
dh_assert_eq 5 "$(grep -c "(0008,0056).*OFFLINE" "$T/find.txt" || true)" "released objects are OFFLINE"

move() {
	set +e
	MV=$(movescu -v -aet MOVESCU -aec DCMHUB "$@" 127.0.0.1 "$HUB_PORT" 2>&1)
	MV_RC=$?
	set -e
	echo "$MV" >>"$T/movescu.log"
}
# last_move: "matched completed failed warning status" hubd logged for the last C-MOVE
last_move() {
	grep "C-MOVE from .* status " "$T/hubd.log" | tail -n 1 |
		sed 's/.*: \([0-9]*\) matched, \([0-9]*\) completed, \([0-9]*\) failed, \([0-9]*\) warning; status \([0-9A-F]\{4\}\).*/\1 \2 \3 \4 \5/'
}
uids_in() { for f in "$1"/*; do dcmdump +P 0008,0018 "$f" | sed 's/.*\[\(.*\)\].*/\1/'; done | sort; }
hub_uids() { dh_psql "SELECT i.sop_uid FROM instance i JOIN series se ON se.pk = i.series_fk JOIN study st
	ON st.pk = se.study_fk WHERE st.study_uid = '$1' ORDER BY 1" | sort; }

# ---- direct mode: the whole study comes from the archive, straight to DEST
move -S -aem DEST -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=$ST1
dh_assert_eq 0 "$MV_RC" "direct: movescu exit status"
dh_assert_eq "5 5 0 0 0000" "$(last_move)" "direct: matched/completed/failed/warning/status"
dh_assert_eq "$(hub_uids $ST1)" "$(uids_in "$T/DEST")" "direct: the 5 objects the hub knows arrived, not the archive-only one"
grep -q "forwarded to external archives: 5 completed, 0 failed" "$T/hubd.log" || dh_fail "direct: forward not logged"
grep -q "Move Response.*Pending" <<<"$MV" || dh_fail "direct: no pending response relayed"
rm -f "$T/DEST"/*

# image level, a list naming objects of both series
u1=$(dh_psql "SELECT i.sop_uid FROM instance i JOIN series se ON se.pk = i.series_fk WHERE se.series_uid = '$ST1.1' ORDER BY 1 LIMIT 1")
u2=$(dh_psql "SELECT i.sop_uid FROM instance i JOIN series se ON se.pk = i.series_fk WHERE se.series_uid = '$ST1.2' ORDER BY 1 LIMIT 1")
move -S -aem DEST -k QueryRetrieveLevel=IMAGE -k StudyInstanceUID=$ST1 -k "SOPInstanceUID=$u1\\$u2"
dh_assert_eq "2 2 0 0 0000" "$(last_move)" "direct, image level across two series"
dh_assert_eq "$(printf '%s\n%s\n' "$u1" "$u2" | sort)" "$(uids_in "$T/DEST")" "direct, image level: those two"
rm -f "$T/DEST"/*

# ---- mixed: one more object of study 1 arrives at the hub (held locally)
dh_variant "$S/MR_small.dcm" "$T/new.dcm" -gin -m "PatientID=FWD1" -m "StudyInstanceUID=$ST1" \
	-m "SeriesInstanceUID=$ST1.3"
storescu -aec DCMHUB 127.0.0.1 "$HUB_PORT" "$T/new.dcm"
move -P -aem DEST -k QueryRetrieveLevel=PATIENT -k PatientID=FWD1
dh_assert_eq 0 "$MV_RC" "mixed: movescu exit status"
dh_assert_eq "6 6 0 0 0000" "$(last_move)" "mixed: 1 local + 5 forwarded"
dh_assert_eq "$(hub_uids $ST1)" "$(uids_in "$T/DEST")" "mixed: all 6 arrived"
rm -f "$T/DEST"/*

# ---- a destination refusing the MR objects: the archive's B000 and its failed list come through
movescu -d -S -aet MOVESCU -aec DCMHUB -aem CTONLY -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=$ST1 \
	127.0.0.1 "$HUB_PORT" >"$T/partial.txt" 2>&1 || true
dh_assert_eq "6 3 3 0 B000" "$(last_move)" "direct, partial refusal: 3 CT completed, 3 MR failed (2 at the archive, 1 local)"
dh_assert_eq 3 "$(find "$T/CTONLY" -type f | wc -l)" "direct, partial refusal: the 3 CT arrived"
for u in $(dh_psql "SELECT i.sop_uid FROM instance i WHERE i.sop_class_uid = '1.2.840.10008.5.1.4.1.1.4'"); do
	grep -A3 "(0008,0058)" "$T/partial.txt" | grep -q "$u" || dh_fail "direct, partial refusal: MR $u not in the Failed SOP Instance UID List"
done

# ---- C-CANCEL while the archive sends (one object a second): the hub cancels the archive's move,
# FE00 with the counts of what did arrive. Study 3: 6 objects, exported and released.
ST3=1.2.826.0.1.3680043.9.7781.3
mkdir -p "$T/in3"
for i in 1 2 3 4 5 6; do
	dh_variant "$S/CT_small.dcm" "$T/in3/d$i.dcm" -gin -m "PatientID=FWD3" -m "StudyInstanceUID=$ST3" \
		-m "SeriesInstanceUID=$ST3.1"
done
storescu -aec DCMHUB +sd 127.0.0.1 "$HUB_PORT" "$T/in3"
for ((i = 0; i < 150; i++)); do
	[ "$(dh_psql "SELECT count(*) FROM external_object WHERE state = 'committed'")" = 14 ] && break
	sleep 0.2
done
"$DH_BUILD/hub/hubctl" -c "$T/hub.conf" external release --study "$ST3" >/dev/null
move -S --cancel 2 -aem SLOW -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=$ST3
read -r matched completed failed warning st <<<"$(last_move)"
dh_assert_eq "6 FE00" "$matched $st" "direct, cancelled: final status"
sleep 2
n=$(find "$T/SLOW" -type f | wc -l)
dh_assert_eq "$completed" "$n" "direct, cancelled: the completed count is what arrived"
[ "$n" -lt 6 ] || dh_fail "direct, cancelled: all 6 arrived (the archive's move was not cancelled)"
grep -q "Move Response.*Cancel" <<<"$MV" || dh_fail "direct, cancelled: movescu saw no cancel response"

# ---- the archive does not know the destination: its refusal is echoed
move -S -aem HIDDEN -k QueryRetrieveLevel=SERIES -k StudyInstanceUID=$ST1 -k SeriesInstanceUID=$ST1.1
dh_assert_eq "3 0 3 0 A801" "$(last_move)" "direct to a destination the archive does not know"
dh_assert_eq 0 "$(find "$T/HIDDEN" -type f | wc -l)" "nothing reached HIDDEN"

# ---- archive down
kill "$EXT_PID"
wait "$EXT_PID" 2>/dev/null || true
for ((i = 0; i < 50; i++)); do echoscu -aec EXTARC 127.0.0.1 "$EXT_PORT" >/dev/null 2>&1 || break; sleep 0.1; done
move -S -aem DEST -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=$ST1
dh_assert_eq "6 1 5 0 B000" "$(last_move)" "archive down, mixed: the local one sent, 5 failed"
dh_assert_eq 1 "$(find "$T/DEST" -type f | wc -l)" "archive down: only the local object arrived"
movescu -d -S -aet MOVESCU -aec DCMHUB -aem DEST -k QueryRetrieveLevel=SERIES -k StudyInstanceUID=$ST1 \
	-k SeriesInstanceUID=$ST1.2 127.0.0.1 "$HUB_PORT" >"$T/failed.txt" 2>&1 || true
for u in $(dh_psql "SELECT i.sop_uid FROM instance i JOIN series se ON se.pk = i.series_fk WHERE se.series_uid = '$ST1.2'"); do
	grep -q "$u" <(grep -A3 "(0008,0058)" "$T/failed.txt") || dh_fail "archive down: $u not in the Failed SOP Instance UID List"
done
dh_assert_eq "2 0 2 0 C000" "$(last_move)" "archive down, wholly external: C000"
grep -q "external archive EXTARC not reachable" "$T/failed.txt" || dh_fail "archive down: no error comment"
rm -f "$T/DEST"/*

# ---- proxy mode: the archive sends to the hub, the hub to HIDDEN (unknown to the archive)
dh_hub_stop
OLD_PORT=$HUB_PORT
write_hub_conf proxy
# same port as before: dcmqrscp's HostTable names it
sed -i "s/^port = $HUB_PORT\$/port = $OLD_PORT/" "$T/hub.conf"
HUB_PORT=$OLD_PORT
start_ext
dh_hub_start
# a change the index made after the export (as a cc would): proxy mode applies it on the way out
dh_psql "INSERT INTO attr_override (level, target_fk, tag, vr, value) SELECT 3, pk, $((0x0008103E)), 'LO',
	'PROXY TRUTH' FROM series WHERE series_uid = '$ST1.1'"
move -S -aem HIDDEN -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=$ST1
dh_assert_eq 0 "$MV_RC" "proxy: movescu exit status"
dh_assert_eq "6 6 0 0 0000" "$(last_move)" "proxy: 1 local + 5 through the hub"
dh_assert_eq "$(hub_uids $ST1)" "$(uids_in "$T/HIDDEN")" "proxy: all 6 arrived at HIDDEN"
# nothing proxied was ingested as a new object
dh_assert_eq 14 "$(dh_psql "SELECT count(*) FROM instance")" "proxy: the hub's index unchanged"
n=0
for f in "$T/HIDDEN"/*; do dcmdump +P 0008,103E "$f" | grep -q "PROXY TRUTH" && n=$((n + 1)); done
dh_assert_eq 3 "$n" "proxy: the index's current truth applied to the 3 objects of series 1"
grep -q "forwarded to external archives: 5 completed, 0 failed" "$T/hubd.log" || dh_fail "proxy: forward not logged"
rm -f "$T/HIDDEN"/*

# proxy, archive down: wholly external -> C000, nothing arrives
kill "$EXT_PID"
wait "$EXT_PID" 2>/dev/null || true
for ((i = 0; i < 50; i++)); do echoscu -aec EXTARC 127.0.0.1 "$EXT_PORT" >/dev/null 2>&1 || break; sleep 0.1; done
move -S -aem HIDDEN -k QueryRetrieveLevel=SERIES -k StudyInstanceUID=$ST1 -k SeriesInstanceUID=$ST1.1
dh_assert_eq "3 0 3 0 C000" "$(last_move)" "proxy, archive down"
dh_assert_eq 0 "$(find "$T/HIDDEN" -type f | wc -l)" "proxy, archive down: nothing arrived"

dh_pass
