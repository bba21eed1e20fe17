#!/usr/bin/env bash
# Operator queues, status and history against a running hub and spoke
# (issue 6). Real processes: hubd, spoked SITE1 (spokectl, storescu), and a
# second spoke SITE2 played by ccsend, whose objects a PACS with AE
# SITE2PACS stores straight into the hub. The items are made by real
# scenarios:
#   parked   - SITE2's cc arrives before its objects; applied when they come
#   conflict - SITE2 changes a study SITE1 owns
#   failed   - SITE2's cc names objects that do not come within
#              cc.park_timeout (6 s); a later cc of the same study waits
#              behind it
# then hubctl queue retry|resolve|discard change the outcome, every action is
# in operator_action and in hubctl history, hubctl status exits 3 while
# operator items are open and 0 once they are settled (and 4 when only a
# spoke is not connected), and hubctl history works by the old UID after a
# fix-up and after the study's last object was deleted.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dh_setup opsqueue
dh_pg_start

. "$(dirname "$0")/lib_cc.sh"
SITE2_PUB=$("$DH_BUILD/hub/hubctl" keygen --secret-file "$T/site2.key")
dh_cc_pair_start "[spoke.SITE2]" "public_key = $SITE2_PUB" "ae_titles = SITE2PACS" \
	"[remote.SITE2PACS]" "host = 127.0.0.1" "[cc]" "park_timeout = 6" \
	"[archive]" "stable_seconds = 1" "scan_interval = 1" "[volume.NL1]" "path = $T/nl1" "capacity_mb = 100"
mkdir -p "$T/pacs"
dh_bg storescp -aet PACS -od "$T/pacs" "$PACS_PORT"
dh_wait_echo "$PACS_PORT" PACS

hc() { "$HUBCTL" -c "$T/hub.conf" "$@"; }
sc() { "$SPOKECTL" -c "$T/spoked.conf" "$@"; }
uid() { python3 -c 'import uuid; print("2.25.%d" % uuid.uuid4().int)'; }
# ccs SEQ STUDY: SITE2 sends one attribute change of STUDY; prints the Ack
ccs() {
	"$DH_BUILD/tests/tools/ccsend" --endpoint "tcp://127.0.0.1:$CC_PORT" --server-key "$HUB_PUB" \
		--secret-file "$T/site2.key" --spoke SITE2 --timeout 10 --attr "$2" "$1" || dh_fail "SITE2's cc $1 got no answer"
}
state() { dh_psql "SELECT state FROM cc_log WHERE spoke_id = 'SITE2' AND sequence = $1"; }
ccid() { dh_psql "SELECT pk FROM cc_log WHERE spoke_id = 'SITE2' AND sequence = $1"; }
# wait_state SEQ STATE SECONDS
wait_state() {
	local deadline=$((SECONDS + $3))
	until [ "$(state "$1")" = "$2" ]; do
		[ $SECONDS -lt "$deadline" ] || dh_fail "SITE2 cc $1 not $2 within $3 s (state: $(state "$1"))"
		sleep 0.3
	done
}
# rc CMD...: runs CMD, prints its exit status (output to $T/last.out)
rc() {
	local r=0
	"$@" >"$T/last.out" 2>&1 || r=$?
	echo "$r"
}
# site2_store STUDY: SITE2's PACS stores one object of STUDY straight into the hub
SRC=$(dh_samples)/CT_small.dcm
site2_store() {
	dh_variant "$SRC" "$T/s2-$1.dcm" -gin -m "StudyInstanceUID=$1" -m "SeriesInstanceUID=$1.1" -m "PatientID=P2"
	storescu -aet SITE2PACS -aec DCMHUB 127.0.0.1 "$HUB_PORT" "$T/s2-$1.dcm" || dh_fail "SITE2PACS could not store $1"
}

# ---- SITE1 owns study A (three CT images through spoked) ----
STUDY_A=$(uid)
mkdir -p "$T/in"
for i in 1 2 3; do
	dh_variant "$SRC" "$T/in/a$i.dcm" -gin -m "StudyInstanceUID=$STUDY_A" -m "SeriesInstanceUID=$STUDY_A.1" \
		-m "PatientID=P1" -m "AccessionNumber=ACC1" -m "InstanceNumber=$i"
done
storescu -aet STORESCU -aec SPOKE1 127.0.0.1 "$SPOKE_PORT" "$T"/in/a*.dcm || dh_fail "storescu to spoked failed"
dh_cc_wait_committed 3 60

# ---- nothing open yet; spoked's heartbeat keeps SITE1 connected, SITE2 (ccsend) never sent a frame: exit 4 ----
dh_assert_eq 4 "$(rc hc status)" "status: a configured spoke never connected -> exit 4"
dh_assert_contains "$(cat "$T/last.out")" "attention: spoke SITE2 not connected" "status names the spoke"

# ---- parked: a cc before its objects, applied when they arrive ----
STUDY_P=$(uid)
out=$(ccs 1 "$STUDY_P")
dh_assert_contains "$out" "refused 1 parked waiting for" "cc 1 parked at receipt"
dh_assert_eq parked "$(state 1)" "cc 1 parked"
dh_assert_contains "$(hc queue list --state parked)" "$STUDY_P" "queue list --state parked shows it"
dh_assert_eq 0 "$(rc hc status)" "a parked cc is not an operator item (exit 0: both spokes seen within 30 s)"
dh_assert_eq 1 "$(hc --json status | python3 -c 'import json,sys; d=json.load(sys.stdin); print([s for s in d["spokes"] if s["spoke"]=="SITE2"][0]["parked"])')" \
	"status --json: SITE2 has 1 parked"
site2_store "$STUDY_P"
wait_state 1 applied 15
dh_assert_eq "changed by ccsend" "$(dh_psql "SELECT description FROM study WHERE study_uid = '$STUDY_P'")" \
	"the parked change is applied once its object came"

# ---- conflict: SITE2 changes SITE1's study ----
DESC_A=$(dh_psql "SELECT description FROM study WHERE study_uid = '$STUDY_A'")
out=$(ccs 2 "$STUDY_A")
dh_assert_contains "$out" "refused 2 permanent study $STUDY_A is owned by spoke SITE1" "cc 2 refused: owned by SITE1"
dh_assert_eq conflict "$(state 2)" "cc 2 is a conflict"
dh_assert_eq 3 "$(rc hc status)" "status exits 3 while a conflict is open"
dh_assert_contains "$(cat "$T/last.out")" "attention: 1 conflict and 0 failed" "status says what needs attention"

# ---- failed: objects that never come within cc.park_timeout; later cc wait behind ----
STUDY_F=$(uid)
STUDY_G=$(uid)
ccs 3 "$STUDY_F" >/dev/null
ccs 4 "$STUDY_F" >/dev/null
ccs 5 "$STUDY_A" >/dev/null
ccs 6 "$STUDY_G" >/dev/null
ccs 7 "$STUDY_G" >/dev/null
dh_assert_contains "$(dh_psql "SELECT state_reason FROM cc_log WHERE spoke_id = 'SITE2' AND sequence = 4")" \
	"behind parked cc 3" "cc 4 waits behind cc 3"
wait_state 3 failed 20
wait_state 6 failed 10
dh_assert_eq parked "$(state 4)" "cc 4 stays parked behind the failed cc 3 (not an item of its own)"
dh_assert_contains "$(hc queue list --state failed)" "$STUDY_F" "queue list --state failed shows cc 3"
dh_assert_eq "conflict conflict" "$(hc --json queue list --state conflict | python3 -c 'import json,sys; print(" ".join(r["state"] for r in json.load(sys.stdin)))')" \
	"queue list --state conflict: cc 2 and 5"
open=$(hc --json queue list --spoke SITE2 | python3 -c 'import json,sys; print(" ".join(str(r["sequence"]) + ":" + r["state"] for r in json.load(sys.stdin)))')
dh_assert_eq "2:conflict 3:failed 4:parked 5:conflict 6:failed 7:parked" "$open" "queue list: the open items"
dh_assert_contains "$(hc queue list --study "$STUDY_G")" "failed" "queue list --study"
show=$(hc queue show "$(ccid 3)")
dh_assert_contains "$show" "state failed (operator item)" "queue show: state"
dh_assert_contains "$show" "waiting for 1 objects, first: $STUDY_F" "queue show: why"
dh_assert_eq failed "$(hc --json queue show "$(ccid 3)" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')" \
	"queue show --json"
dh_assert_eq 3 "$(rc hc status)" "status exits 3 with failed items"
dh_assert_contains "$(cat "$T/last.out")" "attention: 2 conflict and 2 failed" "status counts them"

# ---- actions: bad usage and nonsense are refused, nothing recorded ----
dh_assert_eq 2 "$(rc hc queue retry "$(ccid 3)")" "retry without --reason: exit 2"
dh_assert_contains "$(cat "$T/last.out")" "needs --reason" "and says so"
dh_assert_eq 4 "$(rc hc queue retry "$(ccid 1)" --reason again)" "retry of an applied cc: exit 4"
dh_assert_contains "$(cat "$T/last.out")" "applied already" "with a clear message"
dh_assert_eq 1 "$(rc hc queue discard 999999 --reason x)" "an unknown id: exit 1"
dh_assert_eq 0 "$(dh_psql "SELECT count(*) FROM operator_action")" "refused actions are not recorded"

# retry while the objects are still missing: still failed (exit 3)
dh_assert_eq 3 "$(rc hc queue retry "$(ccid 3)" --reason "try now" --operator alice)" "retry without objects: exit 3"
dh_assert_contains "$(cat "$T/last.out")" "now failed: waiting for" "retry reports the outcome"
# the objects arrive: a failed cc is not retried automatically, cc 4 stays behind it
site2_store "$STUDY_F"
site2_store "$STUDY_G"
sleep 3
dh_assert_eq "failed parked" "$(state 3) $(state 4)" "failed cc 3 waits for an operator; cc 4 behind it"
dh_assert_eq 0 "$(rc hc queue retry "$(ccid 3)" --reason "objects arrived" --operator alice)" "retry: applied"
dh_assert_contains "$(cat "$T/last.out")" "1 parked cc applied after it" "the cc behind it applies at once"
dh_assert_eq "applied applied" "$(state 3) $(state 4)" "cc 3 and 4 applied"
# resolve the failed cc 6: never applied, and cc 7 stops waiting behind it
dh_assert_eq 0 "$(rc hc queue resolve "$(ccid 6)" --reason "corrected by hand at SITE2")" "resolve: exit 0"
dh_assert_eq "resolved applied" "$(state 6) $(state 7)" "cc 6 resolved, cc 7 applied after it"
# discard and resolve the conflicts
dh_assert_eq 0 "$(rc hc --json queue discard "$(ccid 2)" --reason "SITE2 has no say on this study" --operator bob)" "discard: exit 0"
dh_assert_eq discarded "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["state"])' "$T/last.out")" "discard --json"
dh_assert_eq "discarded by bob: SITE2 has no say on this study; was conflict: study $STUDY_A is owned by spoke SITE1" \
	"$(dh_psql "SELECT state_reason FROM cc_log WHERE spoke_id = 'SITE2' AND sequence = 2")" \
	"the settled cc keeps who, why and where it was"
dh_assert_eq 0 "$(rc hc queue resolve "$(ccid 5)" --reason "agreed with SITE1" --operator bob)" "resolve conflict: exit 0"
dh_assert_eq 4 "$(rc hc queue discard "$(ccid 5)" --reason again)" "discard of a resolved cc: exit 4"
dh_assert_eq "$DESC_A" "$(dh_psql "SELECT description FROM study WHERE study_uid = '$STUDY_A'")" \
	"neither conflict touched SITE1's study"
me=$(id -un)
dh_assert_eq "alice|retry|try now|failed: waiting for 1 objects, first: $STUDY_F
alice|retry|objects arrived|applied
$me|resolve|corrected by hand at SITE2|resolved (was failed: waiting for 1 objects, first: $STUDY_G)
bob|discard|SITE2 has no say on this study|discarded (was conflict: study $STUDY_A is owned by spoke SITE1)
bob|resolve|agreed with SITE1|resolved (was conflict: study $STUDY_A is owned by spoke SITE1)" \
	"$(dh_psql "SELECT operator_name, action, reason, outcome FROM operator_action ORDER BY pk")" \
	"every action in operator_action: who (--operator or the OS user), why, outcome"
dh_assert_contains "$(hc queue list)" "(none)" "no open items left"
show=$(hc queue show "$(ccid 3)")
dh_assert_contains "$show" "state applied" "queue show after the retry: applied"
dh_assert_contains "$show" "operator actions:" "and lists what operators did"
dh_assert_contains "$show" "objects arrived" "with their reasons"
dh_assert_eq "try now|objects arrived" "$(hc --json queue show "$(ccid 3)" | python3 -c 'import json,sys; print("|".join(a["reason"] for a in json.load(sys.stdin)["actions"]))')" \
	"queue show --json: the actions"

# ---- settled: status 3 -> 0 once both spokes are connected ----
dh_assert_ne 3 "$(rc hc status)" "status no longer exits 3"
# SITE1 sends a real change: a Study UID fix-up of study A
out=$(sc fix-uid --operator tester --reason "wrong order" --study "$STUDY_A" --accession ACC9) || dh_fail "spokectl fix-uid failed: $out"
NEW_A=$(awk '$1 == "study" { print $NF }' <<<"$out" | tail -n 1)
seq=$(awk '$1 == "sequence" { print $2 }' <<<"$out" | tail -n 1)
[ -n "$NEW_A" ] && [ -n "$seq" ] || dh_fail "fix-uid printed no new UID or sequence: $out"
dh_cc_wait_acked "$seq" 30
dh_assert_eq applied "$(dh_psql "SELECT state FROM cc_log WHERE spoke_id = 'SITE1' AND sequence = $seq")" "fix-up applied"
# and SITE2 one of its own study P (applied: nothing new to settle)
ccs 8 "$STUDY_P" >/dev/null
dh_assert_eq applied "$(state 8)" "SITE2's change of its own study applied"
dh_assert_eq 0 "$(rc hc status)" "status exits 0: nothing open, both spokes connected"
dh_assert_contains "$(cat "$T/last.out")" "ok: nothing needs attention" "and says so"
dh_assert_contains "$(cat "$T/last.out")" "archive" "status shows the archive backlog line"
st=$(hc --json status)
dh_assert_eq "0 yes yes $seq $seq" "$(python3 -c 'import json,sys; d=json.load(sys.stdin); s=[x for x in d["spokes"] if x["spoke"]=="SITE1"][0]; print(d["exit"], s["configured"], s["connected"], s["received"], s["applied"])' <<<"$st")" \
	"status --json: SITE1 connected, received and applied through the fix-up"

# a quarantined object (a row as KOS registration writes it) is an operator item
dh_psql "INSERT INTO quarantine (sop_uid, sop_class_uid, study_uid, source_ae, file_path, md5, reason) VALUES ('$NEW_A.99', '1.2.840.10008.5.1.4.1.1.88.59', '$NEW_A', 'SPOKE1', 'q/x.dcm', 'd41d8cd98f00b204e9800998ecf8427e', 'no document title')" >/dev/null
dh_assert_eq 3 "$(rc hc status)" "status exits 3 with a quarantined object"
dh_assert_contains "$(cat "$T/last.out")" "attention: 1 objects held back for an operator (quarantine)" "status names the quarantine"
dh_psql "UPDATE quarantine SET state = 'discarded', settled_at = now()" >/dev/null

# ---- a recall of the new UID, then history by the old UID ----
movescu -S -aet MOVESCU -aec DCMHUB -aem PACS -k QueryRetrieveLevel=STUDY -k "StudyInstanceUID=$NEW_A" \
	127.0.0.1 "$HUB_PORT" >"$T/movescu.log" 2>&1 || dh_fail "movescu failed"
dh_assert_eq 3 "$(ls "$T/pacs" | wc -l)" "the recall delivered study A"
# the archiver packs study A's series into a TAR on NL1
deadline=$((SECONDS + 30))
until [ "$(dh_psql "SELECT count(*) FROM tar_file WHERE series_uid = '$STUDY_A.1'")" -ge 1 ]; do
	[ $SECONDS -lt $deadline ] || dh_fail "study A's series not archived within 30 s"
	sleep 0.5
done
h=$(hc history "$STUDY_A") || dh_fail "history by the old UID failed"
echo "$h" >"$T/history_old.txt"
dh_assert_contains "$h" "archived" "the archive event"
dh_assert_contains "$h" "volume NL1" "names the volume"
dh_assert_contains "$h" "related study UIDs $NEW_A" "history of the old UID covers the new one"
dh_assert_eq 3 "$(grep -c ' received .*from SPOKE1, MD5 [0-9a-f]\{32\}' <<<"$h")" "three objects received from SPOKE1 with MD5"
dh_assert_contains "$h" "cc applied" "the fix-up cc"
dh_assert_contains "$h" "UID_FIXUP SITE1:$seq" "named spoke:sequence"
dh_assert_contains "$h" "uid study" "the UID reassignment"
dh_assert_contains "$h" "$STUDY_A -> $NEW_A" "old -> new"
dh_assert_contains "$h" "cc discarded" "SITE2's discarded conflict"
dh_assert_contains "$h" "operator discard" "the operator's discard"
dh_assert_contains "$h" "by bob: SITE2 has no say on this study" "who and why"
dh_assert_contains "$h" "C-MOVE from MOVESCU to PACS (STUDY): 3 completed, 0 failed, 0 warning of 3, status 0000" "the recall"
dh_assert_contains "$h" "quarantined" "the quarantined object"
# time order
python3 - "$T/history_old.txt" <<'EOF' || dh_fail "history is not in time order"
import sys
rows = [l[:23] for l in open(sys.argv[1]).read().splitlines()[3:] if l[:4].isdigit()]
assert rows and rows == sorted(rows), rows
EOF
j=$(hc --json history "$NEW_A")
dh_assert_eq "yes yes" "$(python3 -c 'import json,sys; d=json.load(sys.stdin); ev=[e["event"] for e in d["events"]]; print("yes" if sys.argv[1] in d["studies"] else "no", "yes" if "recall" in ev and "uid study" in ev else "no")' "$STUDY_A" <<<"$j")" \
	"history --json by the new UID: the old UID related, recall and mapping among the events"
h=$(hc history "$STUDY_F")
dh_assert_contains "$h" "operator retry" "history of F: the operator's retries"
dh_assert_contains "$h" "from SITE2PACS" "and the object from SITE2's PACS"

# ---- split, then merge back: history by a UID that no longer exists ----
STUDY_C=$(uid)
for i in 1 2; do
	dh_variant "$SRC" "$T/in/c$i.dcm" -gin -m "StudyInstanceUID=$STUDY_C" -m "SeriesInstanceUID=$STUDY_C.$i" \
		-m "PatientID=P3" -m "AccessionNumber=ACC3"
done
storescu -aet STORESCU -aec SPOKE1 127.0.0.1 "$SPOKE_PORT" "$T"/in/c*.dcm || dh_fail "storescu of study C failed"
dh_cc_wait_committed 5 60
SOP_C2=$(dh_psql "SELECT i.sop_uid FROM instance i JOIN series se ON se.pk = i.series_fk WHERE se.series_uid = '$STUDY_C.2'")
out=$(sc split --operator tester --reason "wrong patient" --study "$STUDY_C" --new --patient-id P4 "$SOP_C2") ||
	dh_fail "spokectl split failed: $out"
STUDY_D=$(awk '$1 == "study" { print $NF }' <<<"$out" | tail -n 1)
seq=$(awk '$1 == "sequence" { print $2 }' <<<"$out" | tail -n 1)
dh_cc_wait_acked "$seq" 30
dh_assert_eq 1 "$(dh_psql "SELECT count(*) FROM study WHERE study_uid = '$STUDY_D'")" "split: study D exists"
h=$(hc history "$STUDY_C")
dh_assert_contains "$h" "related study UIDs $STUDY_D" "history of the split source names the new study"
out=$(sc merge --operator tester --reason "same patient after all" --into "$STUDY_C" "$STUDY_D") ||
	dh_fail "spokectl merge failed: $out"
seq=$(awk '$1 == "sequence" { print $2 }' <<<"$out" | tail -n 1)
dh_cc_wait_acked "$seq" 30
dh_assert_eq 0 "$(dh_psql "SELECT count(*) FROM study WHERE study_uid = '$STUDY_D'")" "merge: study D is gone"
h=$(hc history "$STUDY_D") || dh_fail "history of the merged-away study failed"
dh_assert_contains "$h" "related study UIDs $STUDY_C" "history of D covers C"
dh_assert_contains "$h" "cc applied" "the cc"
dh_assert_contains "$h" "SPLIT SITE1:" "the split"
dh_assert_contains "$h" "MERGE SITE1:" "the merge"
dh_assert_eq 2 "$(grep -c ' received .*from SPOKE1' <<<"$h")" "both objects' reception, the moved one included"
dh_assert_contains "$h" "uid sop" "the merge's new SOP Instance UID"

# ---- the study's last objects deleted: its row is gone, its history stays ----
out=$(sc delete --operator tester --reason "wrong patient" --study "$NEW_A") || dh_fail "spokectl delete failed: $out"
seq=$(awk '$1 == "sequence" { print $2 }' <<<"$out" | tail -n 1)
dh_cc_wait_acked "$seq" 30
dh_assert_eq 0 "$(dh_psql "SELECT count(*) FROM study WHERE study_uid = '$NEW_A'")" "the study row is gone"
h=$(hc history "$STUDY_A") || dh_fail "history after deletion failed"
dh_assert_eq 3 "$(grep -c ' deleted .*by cc DELETE SITE1:' <<<"$h")" "three deletions by the cc"
dh_assert_eq 3 "$(grep -c 'deleted since' <<<"$h")" "their reception still shown"
dh_assert_contains "$h" "C-MOVE from MOVESCU" "the recall still shown"
dh_assert_contains "$h" "volume NL1" "the TAR of the deleted series still shown"

dh_assert_eq 1 "$(rc hc history 1.2.3.4.5.6.7.8.9)" "history of an unknown UID: exit 1"
dh_assert_eq 2 "$(rc hc history "x'; DROP TABLE cc_log; --")" "history of a non-UID: exit 2"

dh_cc_pair_stop
dh_hub_stop
dh_pass "queues: parked, conflict, failed by real scenarios; retry/resolve/discard recorded; status exit codes; history by old UID and after deletion"
