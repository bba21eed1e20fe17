#!/usr/bin/env bash
# End to end, real processes: a spoke PACS (storescu) stores a study to
# spoked, spoked forwards it to hubd (C-STORE + storage commitment); then
# each of the six change kinds is made at the spoke with spokectl, travels
# as a cc over ZeroMQ/CURVE, and is applied at the hub. After each change
# findscu at the hub must show exactly the spoke's view (`spokectl ledger`:
# studies, patients, accession numbers, counts, SOP Instance UIDs), and
# movescu must deliver the objects rendered with the change (dcmdump), with
# no dciodvfy error that the stored original did not already have; and
# `hubctl verify --spoke SITE1` reports no difference.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dh_setup cce2e
dh_pg_start

. "$(dirname "$0")/lib_cc.sh"
# a second spoke, SITE2 (ccsend plays it), may send cc but owns none of these studies
SITE2_PUB=$("$DH_BUILD/hub/hubctl" keygen --secret-file "$T/site2.key")
dh_cc_pair_start "[spoke.SITE2]" "public_key = $SITE2_PUB" "ae_titles = SITE2PACS"
mkdir -p "$T/pacs"
dh_bg storescp -aet PACS -od "$T/pacs" "$PACS_PORT"
dh_wait_echo "$PACS_PORT" PACS

sc() { "$SPOKECTL" -c "$T/spoked.conf" "$@"; }
uid() { python3 -c 'import uuid; print("2.25.%d" % uuid.uuid4().int)'; }

# ---- a study of patient P1: two series of three CT images ----
STUDY_A=$(uid)
SER1=$(uid)
SER2=$(uid)
SRC=$(dh_samples)/CT_small.dcm
mkdir -p "$T/in"
n=0
for ser in "$SER1" "$SER2"; do
	for i in 1 2 3; do
		n=$((n + 1))
		dh_variant "$SRC" "$T/in/ct$n.dcm" -gin -m "StudyInstanceUID=$STUDY_A" -m "SeriesInstanceUID=$ser" \
			-m "PatientID=P1" -m "PatientName=DOE^JOHN" -m "AccessionNumber=ACC1" -m "InstanceNumber=$i" \
			-m "StudyDescription=original"
	done
done
storescu -aet STORESCU -aec SPOKE1 127.0.0.1 "$SPOKE_PORT" "$T"/in/ct*.dcm || dh_fail "storescu to spoked failed"

hub_count() { dh_psql "SELECT count(*) FROM instance"; }

# everything forwarded and committed at the hub
dh_cc_wait_committed 6 60
dh_assert_eq 6 "$(hub_count)" "hub holds the forwarded objects"
dh_assert_eq SITE1 "$(dh_psql "SELECT owner_spoke FROM study WHERE study_uid = '$STUDY_A'")" "study owned by the spoke"

# waits until the hub applied the spoke's cc up to sequence $1
wait_applied() {
	local seq=$1 deadline=$((SECONDS + 30)) st
	while :; do
		st=$(dh_psql "SELECT state || ' ' || state_reason FROM cc_log WHERE spoke_id = 'SITE1' AND sequence = $seq")
		case "$st" in
		applied*) return 0 ;;
		conflict* | failed*) dh_fail "cc $seq not applied at the hub: $st" ;;
		esac
		[ $SECONDS -lt $deadline ] || dh_fail "cc $seq not applied within 30 s (state: '${st:-not received}')"
		sleep 0.2
	done
}
# runs a capture command, prints its output to the log, returns its sequence
capture() {
	local out
	local cmd=$1
	shift
	out=$(sc "$cmd" --operator tester --reason e2e "$@") || dh_fail "spokectl $cmd failed: $out"
	echo "$out" >>"$T/spokectl.log"
	CAP_OUT=$out
	CAP_SEQ=$(awk '$1 == "sequence" { print $2 }' <<<"$out" | tail -n 1)
	[ -n "$CAP_SEQ" ] || dh_fail "spokectl $cmd printed no sequence: $out"
}

# C-FIND at the hub (responses extracted to files, so the request's own
# keys never count), one value per line, sorted: find_hub LEVEL RETURN-TAG KEY=VALUE...
find_hub() {
	local level=$1 ret=$2 d=$T/find f
	shift 2
	local keys=() k
	for k in "$@"; do keys+=(-k "$k"); done
	rm -rf "$d"
	mkdir -p "$d"
	findscu -S -aet FINDSCU -aec DCMHUB -X -od "$d" -k QueryRetrieveLevel="$level" -k "$ret" "${keys[@]}" \
		127.0.0.1 "$HUB_PORT" >>"$T/findscu.log" 2>&1 || dh_fail "findscu failed (see findscu.log)"
	for f in "$d"/rsp*.dcm; do
		[ -f "$f" ] || continue
		dcmdump -q +P "$ret" "$f" | head -n 1 | sed -n 's/^[^[]*\[\(.*\)\].*/\1/p' | sed 's/ *$//'
	done | sort
}

# the hub equals the spoke: per study of the ledger its patient, accession,
# counts and the SOP UIDs of its instances; and no other study at the hub
compare_views() {
	local what=$1 line st pid pname acc nser ninst
	local spoke_studies hub_studies
	spoke_studies=$(sc ledger | cut -f1 | sort)
	hub_studies=$(find_hub STUDY 0020,000D "StudyInstanceUID=")
	dh_assert_eq "$spoke_studies" "$hub_studies" "$what: the same studies at spoke and hub"
	while IFS=$'\t' read -r st pid pname acc nser ninst; do
		dh_assert_eq "$pid" "$(find_hub STUDY 0010,0020 "StudyInstanceUID=$st")" "$what: patient ID of $st"
		dh_assert_eq "$pname" "$(find_hub STUDY 0010,0010 "StudyInstanceUID=$st")" "$what: patient name of $st"
		dh_assert_eq "$acc" "$(find_hub STUDY 0008,0050 "StudyInstanceUID=$st")" "$what: accession of $st"
		dh_assert_eq "$nser" "$(find_hub STUDY 0020,1206 "StudyInstanceUID=$st")" "$what: series of $st"
		dh_assert_eq "$ninst" "$(find_hub STUDY 0020,1208 "StudyInstanceUID=$st")" "$what: instances of $st"
		dh_assert_eq "$(sc ledger --study "$st" | cut -f3 | sort)" \
			"$(find_hub IMAGE 0008,0018 "StudyInstanceUID=$st" "SeriesInstanceUID=" "SOPInstanceUID=")" \
			"$what: SOP Instance UIDs of $st"
	done < <(sc ledger)
	verify_equal "$what"
}

# hubctl verify (the spoke's ledger fetched over the cc link, compared with
# the index: UIDs, data set MD5s, key attributes, deletions) finds nothing
verify_equal() {
	local out
	out=$("$HUBCTL" -c "$T/hub.conf" verify --spoke SITE1) || dh_fail "$1: hubctl verify exited $?: $out"
	dh_assert_contains "$out" "no differences" "$1: hubctl verify"
}

# C-MOVE a study to the PACS into a fresh folder; prints the folder
move_study() {
	local st=$1 dir=$T/pacs
	rm -rf "$dir"/*
	movescu -S -aet MOVESCU -aec DCMHUB -aem PACS -k QueryRetrieveLevel=STUDY -k "StudyInstanceUID=$st" \
		127.0.0.1 "$HUB_PORT" >>"$T/movescu.log" 2>&1 || dh_fail "movescu of $st failed (see movescu.log)"
}
tagval() { dcmdump -q +P "$2" "$1" 2>/dev/null | head -n 1 | sed 's/^[^[]*\[\([^]]*\)\].*/\1/' | sed 's/ *$//'; }

# dciodvfy's errors for a file, without the lines naming values we changed on purpose
dvfy_errors() { dciodvfy "$1" 2>&1 | grep '^Error' | sort -u || true; }
ORIG_ERRORS=$(dvfy_errors "$T/in/ct1.dcm")
check_rendered() {
	local f new
	for f in "$T"/pacs/*; do
		[ -f "$f" ] || continue
		dcmdump -q "$f" >/dev/null 2>&1 || dh_fail "rendered object $f does not parse (dcmdump)"
		new=$(comm -13 <(echo "$ORIG_ERRORS") <(dvfy_errors "$f"))
		[ -z "$new" ] || dh_fail "dciodvfy finds new errors in rendered $f: $new"
		dh_assert_eq "$(tagval "$f" 0008,0018)" "$(tagval "$f" 0002,0003)" "meta SOP UID follows the data set in $f"
	done
}

compare_views "after forwarding"

# ---- 1. ATTRIBUTE_CHANGE: patient name and study description of study A ----
capture modify --study "$STUDY_A" --set "PatientName=DOE^JANE" --set "StudyDescription=corrected"
wait_applied "$CAP_SEQ"
compare_views "attribute change"
dh_assert_eq "corrected" "$(find_hub STUDY 0008,1030 "StudyInstanceUID=$STUDY_A")" "C-FIND shows the new description"
move_study "$STUDY_A"
dh_assert_eq 6 "$(ls "$T/pacs" | wc -l)" "attribute change: six objects moved"
for f in "$T"/pacs/*; do
	dh_assert_eq "DOE^JANE" "$(tagval "$f" 0010,0010)" "rendered patient name"
	dh_assert_eq "corrected" "$(tagval "$f" 0008,1030)" "rendered study description"
done
check_rendered

# ---- 2. SPLIT: one image of series 2 to a new study of patient P2 ----
SPLIT_SOP=$(sc ledger --study "$STUDY_A" | awk -F'\t' -v s="$SER2" '$2 == s { print $3 }' | head -n 1)
capture split --study "$STUDY_A" --new --patient-id P2 --patient-name "ROE^RICHARD" "$SPLIT_SOP"
wait_applied "$CAP_SEQ"
STUDY_B=$(awk '$1 == "study" { print $NF }' <<<"$CAP_OUT" | tail -n 1)
[ -n "$STUDY_B" ] || dh_fail "split printed no new study UID: $CAP_OUT"
compare_views "split"
move_study "$STUDY_B"
dh_assert_eq 1 "$(ls "$T/pacs" | wc -l)" "split: one object in the new study"
f=$(ls "$T"/pacs/* | head -n 1)
dh_assert_eq "$STUDY_B" "$(tagval "$f" 0020,000D)" "split: rendered Study UID"
dh_assert_eq "P2" "$(tagval "$f" 0010,0020)" "split: rendered Patient ID"
dh_assert_eq "ROE^RICHARD" "$(tagval "$f" 0010,0010)" "split: rendered patient name"
check_rendered

# ---- 3. MERGE: study B back into study A (new SOP UIDs) ----
capture merge --into "$STUDY_A" "$STUDY_B"
wait_applied "$CAP_SEQ"
compare_views "merge"
move_study "$STUDY_A"
dh_assert_eq 6 "$(ls "$T/pacs" | wc -l)" "merge: six objects in study A again"
for f in "$T"/pacs/*; do
	dh_assert_eq "$STUDY_A" "$(tagval "$f" 0020,000D)" "merge: rendered Study UID"
	dh_assert_eq "P1" "$(tagval "$f" 0010,0020)" "merge: rendered Patient ID of the destination"
done
check_rendered
# the PACS sends the object its merge created (new SOP and series UIDs, the
# study's current attributes): the spoke and the hub already hold it through
# the cc, so it is acknowledged and neither keeps a second copy
MERGED_SOP=$(awk '$1 == "sop" { print $3 }' <<<"$CAP_OUT" | tail -n 1)
MERGED_SER=$(awk '$1 == "series" { print $3 }' <<<"$CAP_OUT" | tail -n 1)
[ -n "$MERGED_SOP" ] && [ -n "$MERGED_SER" ] || dh_fail "merge printed no new SOP/series UID: $CAP_OUT"
orig=
for f in "$T"/in/ct*.dcm; do
	if [ "$(tagval "$f" 0008,0018)" = "$SPLIT_SOP" ]; then orig=$f; fi
done
[ -n "$orig" ] || dh_fail "cannot find the original of $SPLIT_SOP"
dh_variant "$orig" "$T/merged.dcm" -m "SOPInstanceUID=$MERGED_SOP" -m "SeriesInstanceUID=$MERGED_SER" \
	-m "StudyInstanceUID=$STUDY_A" -m "PatientName=DOE^JANE" -m "StudyDescription=corrected"
before_hub=$(hub_count)
before_ledger=$(dh_spoke_psql "SELECT count(*) FROM ledger_instance WHERE deleted_at IS NULL")
storescu -aet STORESCU -aec SPOKE1 127.0.0.1 "$SPOKE_PORT" "$T/merged.dcm" || dh_fail "re-sent merged object refused"
sleep 2
dh_assert_eq "$before_ledger" "$(dh_spoke_psql "SELECT count(*) FROM ledger_instance WHERE deleted_at IS NULL")" "merged object re-sent: no second ledger copy"
dh_assert_eq "$before_hub" "$(hub_count)" "merged object re-sent: no second copy at the hub"
compare_views "merged object re-sent"

# the PACS sends an image again with a corrected Study Description: an
# ATTRIBUTE_CHANGE, not a second copy
last=$(dh_spoke_psql "SELECT last_sequence FROM spoke_state")
dh_variant "$T/in/ct1.dcm" "$T/resent.dcm" -m "PatientName=DOE^JANE" -m "StudyDescription=from the PACS"
storescu -aet STORESCU -aec SPOKE1 127.0.0.1 "$SPOKE_PORT" "$T/resent.dcm" || dh_fail "changed re-send refused"
seq=$(dh_spoke_psql "SELECT last_sequence FROM spoke_state")
[ "$seq" -gt "$last" ] || dh_fail "the changed re-send recorded no change"
dh_assert_eq ATTRIBUTE_CHANGE "$(dh_spoke_psql "SELECT kind FROM cc_history WHERE sequence = $seq")" "the re-send is an ATTRIBUTE_CHANGE"
wait_applied "$seq"
dh_assert_eq "$before_hub" "$(hub_count)" "changed re-send: no second copy at the hub"
dh_assert_eq "from the PACS" "$(find_hub STUDY 0008,1030 "StudyInstanceUID=$STUDY_A")" "C-FIND shows the PACS's correction"
compare_views "changed re-send"

# ---- 4. SEGMENT: study A broken into two orders ----
mapfile -t SOPS < <(sc ledger --study "$STUDY_A" | cut -f3)
capture segment --study "$STUDY_A" --target "ORD1=${SOPS[0]},${SOPS[1]},${SOPS[2]}" \
	--target "ORD2=${SOPS[3]},${SOPS[4]},${SOPS[5]}"
wait_applied "$CAP_SEQ"
compare_views "segment"
ORD2_STUDY=$(find_hub STUDY 0020,000D "AccessionNumber=ORD2")
[ -n "$ORD2_STUDY" ] || dh_fail "segment: no study with accession ORD2 at the hub"
move_study "$ORD2_STUDY"
dh_assert_eq 3 "$(ls "$T/pacs" | wc -l)" "segment: three objects in order ORD2"
for f in "$T"/pacs/*; do
	dh_assert_eq "ORD2" "$(tagval "$f" 0008,0050)" "segment: rendered accession"
done
check_rendered

# ---- 5. DELETE: one image of order ORD2 ----
DEL_SOP=$(sc ledger --study "$ORD2_STUDY" | cut -f3 | head -n 1)
DEL_SER=$(sc ledger --study "$ORD2_STUDY" | awk -F'\t' -v s="$DEL_SOP" '$3 == s { print $2 }')
capture delete --study "$ORD2_STUDY" --series "$DEL_SER" --sop "$DEL_SOP"
wait_applied "$CAP_SEQ"
compare_views "delete"
move_study "$ORD2_STUDY"
dh_assert_eq 2 "$(ls "$T/pacs" | wc -l)" "delete: the deleted object is not sent"
for f in "$T"/pacs/*; do
	dh_assert_ne "$DEL_SOP" "$(tagval "$f" 0008,0018)" "delete: deleted SOP not delivered"
done

# ---- 6. UID_FIXUP: order ORD2's study gets a new Study UID ----
capture fix-uid --study "$ORD2_STUDY" --accession ORD9 --set "StudyDescription=matched"
wait_applied "$CAP_SEQ"
FIX_STUDY=$(awk '$1 == "study" { print $NF }' <<<"$CAP_OUT" | tail -n 1)
compare_views "fix-uid"
dh_assert_eq "" "$(find_hub STUDY 0020,000D "StudyInstanceUID=$ORD2_STUDY")" "fix-uid: old UID not a current study"
move_study "$FIX_STUDY"
dh_assert_eq 2 "$(ls "$T/pacs" | wc -l)" "fix-uid: objects under the new UID"
for f in "$T"/pacs/*; do
	dh_assert_eq "$FIX_STUDY" "$(tagval "$f" 0020,000D)" "fix-uid: rendered Study UID"
	dh_assert_eq "ORD9" "$(tagval "$f" 0008,0050)" "fix-uid: rendered accession"
	dh_assert_eq "matched" "$(tagval "$f" 0008,1030)" "fix-uid: rendered description"
done
check_rendered
# the old UID stays resolvable: a C-MOVE of it delivers the study's objects
move_study "$ORD2_STUDY"
dh_assert_eq 2 "$(ls "$T/pacs" | wc -l)" "fix-uid: C-MOVE of the old Study UID"

# ---- ownership: a cc of another spoke for a study SITE1 owns is refused ----
out=$("$DH_BUILD/tests/tools/ccsend" --endpoint "tcp://127.0.0.1:$CC_PORT" --server-key "$HUB_PUB" \
	--secret-file "$T/site2.key" --spoke SITE2 --timeout 10 --attr "$FIX_STUDY" 1) ||
	dh_fail "SITE2's cc got no answer: $out"
dh_assert_contains "$out" "refused 1 permanent" "the other spoke is told its cc is refused"
dh_assert_contains "$out" "owned by" "the refusal names the owner"
q=$("$DH_BUILD/hub/hubctl" -c "$T/hub.conf" queue list --spoke SITE2)
dh_assert_contains "$q" "conflict" "hubctl queue list shows the refused cc as a conflict"
dh_assert_contains "$q" "yes" "as an operator item"
id=$("$DH_BUILD/hub/hubctl" -c "$T/hub.conf" --json queue list --spoke SITE2 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
show=$("$DH_BUILD/hub/hubctl" -c "$T/hub.conf" queue show "$id")
dh_assert_contains "$show" "ATTRIBUTE_CHANGE" "hubctl queue show decodes the cc"
dh_assert_contains "$show" "owned by" "and says why it was refused"
dh_assert_eq "matched" "$(find_hub STUDY 0008,1030 "StudyInstanceUID=$FIX_STUDY")" "the refused change did not touch the study"

dh_cc_pair_stop
dh_hub_stop
dh_pass "six change kinds applied end to end; hub equals spoke after each"
