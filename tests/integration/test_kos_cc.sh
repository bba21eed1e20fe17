#!/usr/bin/env bash
# Key Image Notes through a real hub + spoke pair (seeds kb-119333 and
# kb-119341, issue 6):
#  1. the seed's failure: a study whose KOS cannot be registered (it is not
#     DICOM-compliant) and whose objects are then deleted at the spoke
#     (spokectl delete -> DELETE cc over ZeroMQ). The KOS is kept and
#     quarantined, never half-visible; the deleted objects are never
#     transmitted, also when the spoke forwards them again; C-FIND's counts
#     equal what C-MOVE delivers at every step; every forwarded object is
#     committed (quarantined and deleted ones included), so nothing loops.
#  2. IOCM at the spoke: a rejection note from the PACS hides the instances
#     it names in the ledger at once and at the hub once forwarded, also an
#     instance that arrives after its rejection; ledger and hub agree.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dh_setup kos_cc
dh_pg_start
. "$(dirname "$0")/lib_cc.sh"
dh_cc_pair_start
mkdir -p "$T/pacs" "$T/in"
dh_bg storescp -aet PACS -od "$T/pacs" "$PACS_PORT"
dh_wait_echo "$PACS_PORT" PACS
MKKOS=$DH_SRC/tests/integration/mkkos.py
sc() { "$SPOKECTL" -c "$T/spoked.conf" "$@"; }
hc() { "$HUBCTL" -c "$T/hub.conf" "$@"; }
sop() { dcmdump -q +P 0008,0018 "$1" | sed 's/.*\[\(.*\)\].*/\1/'; }
S=$(dh_samples)

# C-FIND count of a study at the hub (study level, NumberOfStudyRelatedInstances; "" when no such study)
count_find() {
	local d=$T/find
	rm -rf "$d" && mkdir -p "$d"
	findscu -S -aec DCMHUB -X -od "$d" -k QueryRetrieveLevel=STUDY -k StudyInstanceUID="$1" \
		-k NumberOfStudyRelatedInstances 127.0.0.1 "$HUB_PORT" >>"$T/findscu.log" 2>&1 || dh_fail "findscu"
	for f in "$d"/rsp*.dcm; do [ -f "$f" ] && dcmdump -q +P 0020,1208 "$f" | sed 's/.*\[\(.*\)\].*/\1/'; done
}
find_sops() {
	local d=$T/find
	rm -rf "$d" && mkdir -p "$d"
	findscu -S -aec DCMHUB -X -od "$d" -k QueryRetrieveLevel=IMAGE -k StudyInstanceUID="$1" \
		-k SeriesInstanceUID -k SOPInstanceUID 127.0.0.1 "$HUB_PORT" >>"$T/findscu.log" 2>&1 || dh_fail "findscu"
	for f in "$d"/rsp*.dcm; do [ -f "$f" ] && sop "$f"; done | sort
}
move_sops() {
	rm -f "$T"/pacs/*
	movescu -S -aec DCMHUB -aem PACS -k QueryRetrieveLevel=STUDY -k StudyInstanceUID="$1" \
		127.0.0.1 "$HUB_PORT" >>"$T/movescu.log" 2>&1 || dh_fail "movescu (see movescu.log)"
	for f in "$T"/pacs/*; do [ -f "$f" ] && sop "$f"; done | sort
}
# agree STUDY N WHAT: C-FIND count N, image-level answers == C-MOVE delivery == the spoke's live ledger
agree() {
	local found moved ledger
	found=$(find_sops "$1")
	moved=$(move_sops "$1")
	ledger=$(dh_spoke_psql "SELECT sop_uid FROM ledger_instance WHERE study_uid = '$1' AND deleted_at IS NULL" | sort)
	dh_assert_eq "$2" "$(count_find "$1")" "$3: C-FIND count"
	dh_assert_eq "$found" "$moved" "$3: C-FIND answers equal what C-MOVE delivers"
	dh_assert_eq "$2" "$(grep -c . <<<"$moved")" "$3: C-MOVE delivers the count"
	echo "$ledger" >"$T/ledger.txt"
	echo "$moved" >"$T/moved.txt"
}
wait_applied() {
	local seq=$1 deadline=$((SECONDS + 30)) st
	while :; do
		st=$(dh_psql "SELECT state || ' ' || state_reason FROM cc_log WHERE spoke_id = 'SITE1' AND sequence = $seq")
		case "$st" in
		applied*) return 0 ;;
		refused* | parked*) [ $SECONDS -lt $deadline ] || dh_fail "cc $seq: $st" ;;
		esac
		[ $SECONDS -lt $deadline ] || dh_fail "cc $seq not applied within 30 s (state: '${st:-not received}')"
		sleep 0.2
	done
}

# ---- 1. the seed scenario ----
ST=1.2.826.0.1.3680043.9.7782.1
for i in 1 2 3; do
	dh_variant "$S/CT_small.dcm" "$T/in/c$i.dcm" -gin -m "StudyInstanceUID=$ST" -m "SeriesInstanceUID=$ST.1" \
		-m "PatientID=SEED1" -m "AccessionNumber=SACC" -m "InstanceNumber=$i"
done
"$DH_PYTHON" "$MKKOS" "$T/in/kbad.dcm" "$T/in/c1.dcm" "$T/in/c2.dcm" --break badref >/dev/null
KB=$(sop "$T/in/kbad.dcm")
C1=$(sop "$T/in/c1.dcm")
C2=$(sop "$T/in/c2.dcm")
C3=$(sop "$T/in/c3.dcm")
storescu -aec SPOKE1 127.0.0.1 "$SPOKE_PORT" "$T"/in/c?.dcm "$T/in/kbad.dcm" || dh_fail "store to spoked"
# all four committed at the hub: the quarantined KOS too (kept, so the spoke has no reason to resend)
dh_cc_wait_committed 4 60
dh_assert_eq "quarantined" "$(dh_psql "SELECT string_agg(state, ',') FROM quarantine WHERE sop_uid = '$KB'")" \
	"the non-compliant KOS is quarantined once"
dh_assert_contains "$(hc quarantine list)" "$KB" "hubctl quarantine list shows it"
dh_assert_eq 0 "$(dh_psql "SELECT count(*) FROM instance WHERE sop_uid = '$KB'")" "and it is not in the index"
agree "$ST" 3 "KOS quarantined"
dh_assert_eq "$(printf '%s\n' "$C1" "$C2" "$C3" | sort)" "$(cat "$T/moved.txt")" "the three images, not the KOS"
# hubctl verify names the divergence for what it is: the spoke shows the KOS, the hub keeps it hidden
vout=$("$DH_BUILD/hub/hubctl" -c "$T/hub.conf" verify --spoke SITE1 --study "$ST") && dh_fail "verify: exit 0 with a quarantined object"
dh_assert_contains "$vout" "quarantined_at_hub" "verify reports the quarantined KOS"
dh_assert_contains "$vout" "$KB" "verify names the quarantined KOS"
dh_assert_contains "$vout" "hubctl quarantine list" "verify says what to do"

# objects of the study are deleted at the spoke: a DELETE cc
out=$(sc delete --operator tester --reason "seed scenario" --study "$ST" --sop "$C1" --sop "$C2")
seq=$(awk '$1 == "sequence" { print $2 }' <<<"$out" | tail -n 1)
wait_applied "$seq"
agree "$ST" 1 "after the DELETE"
dh_assert_eq "$C3" "$(cat "$T/moved.txt")" "only the remaining image leaves the hub"

# the spoke forwards the deleted objects again (as after a lost commitment result): still never shown
dh_spoke_psql "UPDATE ledger_instance SET fwd_state = 'pending', fwd_next_at = now(), fwd_attempts = 0 WHERE sop_uid IN ('$C1', '$C2', '$KB')" >/dev/null
deadline=$((SECONDS + 60))
until [ "$(dh_spoke_psql "SELECT count(*) FROM ledger_instance WHERE sop_uid IN ('$C1', '$C2', '$KB') AND fwd_state = 'committed'")" = 3 ]; do
	[ $SECONDS -lt $deadline ] || dh_fail "resent objects not committed: $(dh_spoke_psql "SELECT sop_uid || ' ' || fwd_state || ' ' || fwd_error FROM ledger_instance WHERE sop_uid IN ('$C1', '$C2', '$KB')")"
	sleep 0.3
done
agree "$ST" 1 "after the spoke resent deleted and quarantined objects"
dh_assert_eq 1 "$(dh_psql "SELECT count(*) FROM quarantine WHERE sop_uid = '$KB'")" "resent KOS: still one quarantine item"
dh_assert_eq 0 "$(dh_psql "SELECT count(*) FROM instance WHERE sop_uid IN ('$C1', '$C2')")" "deleted objects not back in the index"

# ---- 2. an IOCM rejection note from the spoke's PACS ----
ST2=1.2.826.0.1.3680043.9.7782.2
for i in 4 5 6; do
	dh_variant "$S/CT_small.dcm" "$T/in/d$i.dcm" -gin -m "StudyInstanceUID=$ST2" -m "SeriesInstanceUID=$ST2.1" \
		-m "PatientID=SEED2" -m "AccessionNumber=SACC2" -m "InstanceNumber=$i"
done
D4=$(sop "$T/in/d4.dcm")
D5=$(sop "$T/in/d5.dcm")
D6=$(sop "$T/in/d6.dcm")
storescu -aec SPOKE1 127.0.0.1 "$SPOKE_PORT" "$T/in/d4.dcm" "$T/in/d5.dcm" || dh_fail "store d4 d5"
dh_cc_wait_committed 6 60
agree "$ST2" 2 "before the rejection"
# the note rejects d4 (held) and d6 (not received yet)
"$DH_PYTHON" "$MKKOS" "$T/in/rej.dcm" "$T/in/d4.dcm" "$T/in/d6.dcm" \
	--title "113037:DCM:Rejected for Patient Safety Reasons" >/dev/null
dciodvfy "$T/in/rej.dcm" >"$T/rej.dvfy" 2>&1 || dh_fail "dciodvfy: $(cat "$T/rej.dvfy")"
REJ=$(sop "$T/in/rej.dcm")
storescu -aec SPOKE1 127.0.0.1 "$SPOKE_PORT" "$T/in/rej.dcm" || dh_fail "store the rejection note"
dh_assert_eq "t" "$(dh_spoke_psql "SELECT deleted_at IS NOT NULL FROM ledger_instance WHERE sop_uid = '$D4'")" \
	"the spoke's ledger hides the rejected instance at once"
dh_assert_eq 2 "$(dh_spoke_psql "SELECT count(*) FROM rejected_instance WHERE note_sop_uid = '$REJ'")" \
	"the spoke remembers both rejected UIDs"
dh_cc_wait_committed 7 60
agree "$ST2" 2 "after the rejection (d5 and the note)"
dh_assert_eq "$(printf '%s\n' "$D5" "$REJ" | sort)" "$(cat "$T/moved.txt")" "the hub delivers d5 and the note"
dh_assert_eq "$(cat "$T/ledger.txt")" "$(cat "$T/moved.txt")" "hub equals the spoke's live ledger"
dh_assert_contains "$(dh_psql "SELECT reason FROM deleted_instance WHERE sop_uid = '$D4'")" "113037" \
	"hub: d4 rejected, with the note's title"
# the rejected instance the PACS sends afterwards
storescu -aec SPOKE1 127.0.0.1 "$SPOKE_PORT" "$T/in/d6.dcm" || dh_fail "store d6"
dh_assert_eq "t" "$(dh_spoke_psql "SELECT deleted_at IS NOT NULL FROM ledger_instance WHERE sop_uid = '$D6'")" \
	"a later arrival is recorded as rejected at the spoke"
dh_cc_wait_committed 8 60
agree "$ST2" 2 "after the rejected instance arrived"
dh_assert_eq "$(cat "$T/ledger.txt")" "$(cat "$T/moved.txt")" "hub still equals the spoke's live ledger"
dh_assert_contains "$(dh_psql "SELECT reason FROM deleted_instance WHERE sop_uid = '$D6'")" "before it arrived" \
	"hub: d6 hidden on arrival"
dh_assert_contains "$(hc kos "$ST2")" "113037" "hubctl kos lists the note"
dh_assert_eq 0 "$(dh_psql "SELECT count(*) FROM cc_log WHERE state <> 'applied'")" "no cc parked or refused"

# ---- 3. a rejection note from someone else than the owning spoke: not applied, quarantined ----
"$DH_PYTHON" "$MKKOS" "$T/rej3.dcm" "$T/in/d5.dcm" --title "113001:DCM:Rejected for Quality Reasons" >/dev/null
REJ3=$(sop "$T/rej3.dcm")
st=$(storescu -d -aet STORESCU -aec DCMHUB 127.0.0.1 "$HUB_PORT" "$T/rej3.dcm" 2>&1 |
	sed -n 's/.*DIMSE Status *: 0x\([0-9a-fA-F]*\).*/\1/p' | tail -n 1)
dh_assert_eq b007 "$(tr 'A-F' 'a-f' <<<"$st")" "note from a non-owner: kept with B007"
dh_assert_contains "$(dh_psql "SELECT reason FROM quarantine WHERE sop_uid = '$REJ3'")" "which spoke SITE1 owns" \
	"quarantined with the ownership reason"
dh_assert_eq 0 "$(dh_psql "SELECT count(*) FROM kos_document WHERE sop_uid = '$REJ3'")" "not registered"
agree "$ST2" 2 "the owner's instances stay visible"
dh_assert_eq "$(cat "$T/ledger.txt")" "$(cat "$T/moved.txt")" "hub still equals the owning spoke's ledger"
dh_pass
