#!/usr/bin/env bash
# hubctl verify --spoke S over a real hub+spoke pair (lib_cc.sh): a clean
# forward verifies equal (exit 0); then each kind of divergence is injected
# directly into one database or the other and verify must name it, with
# the right UIDs and values, and exit 1; --study narrows it; the spoke's
# heartbeat keeps cc_stream.last_seen_at fresh while idle; a progress bar
# shows on a terminal only; a spoke that is
# not connected, or connected on paper but silent, gives exit 3 with its
# message, an unknown spoke exit 2.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dh_setup verify
dh_pg_start
. "$(dirname "$0")/lib_cc.sh"
DH_CC_LOG_LEVEL=${DH_CC_LOG_LEVEL:-info}
dh_cc_pair_start

uid() { python3 -c 'import uuid; print("2.25.%d" % uuid.uuid4().int)'; }
verify() { "$HUBCTL" -c "$T/hub.conf" verify --spoke SITE1 "$@"; }
# jq-less JSON probes: kinds, or the records of one kind as "sop|attribute|spoke|hub"
kinds() { python3 -c 'import json,sys; print(" ".join(sorted(d["kind"] for d in json.load(sys.stdin)["differences"])))'; }
records() {
	python3 -c 'import json,sys
for d in json.load(sys.stdin)["differences"]:
    if d["kind"] == sys.argv[1]:
        print("|".join([d["sop_uid"], d["attribute"], d["spoke_value"], d["hub_value"], str(d["instances"])]))' "$1"
}

# ---- two studies of three CT images each, forwarded and committed ----
STUDY_A=$(uid)
STUDY_B=$(uid)
SRC=$(dh_samples)/CT_small.dcm
mkdir -p "$T/in"
n=0
k=0
for st in "$STUDY_A" "$STUDY_B"; do
	ser=$(uid)
	k=$((k + 1))
	for i in 1 2 3; do
		n=$((n + 1))
		dh_variant "$SRC" "$T/in/ct$n.dcm" -gin -m "StudyInstanceUID=$st" -m "SeriesInstanceUID=$ser" \
			-m "PatientID=PV$k" -m "PatientName=VERIFY^P$k" -m "AccessionNumber=A$k" -m "InstanceNumber=$i"
	done
done
storescu -aet STORESCU -aec SPOKE1 127.0.0.1 "$SPOKE_PORT" "$T"/in/ct*.dcm || dh_fail "storescu to spoked failed"
dh_cc_wait_committed 6 60
dh_hub_wait "SELECT count(*) FROM cc_stream WHERE spoke_id = 'SITE1' AND last_seen_at IS NOT NULL" 1 20 "spoke seen"

# ---- clean: equal ----
out=$(verify) || dh_fail "verify of a clean sync exited $?: $out"
dh_assert_contains "$out" "spoke 6 objects (0 deleted), hub 6 objects: no differences" "clean verify summary"
json=$(verify --json) || dh_fail "verify --json of a clean sync failed"
dh_assert_eq "" "$(kinds <<<"$json")" "clean verify lists nothing"
# the progress bar: on a terminal (script(1) gives hubctl a pty) and only there
tty_out=$(script -qec "$HUBCTL -c $T/hub.conf verify --spoke SITE1" /dev/null) || dh_fail "verify on a pty failed: $tty_out"
dh_assert_contains "$tty_out" "6/6 ledger rows" "progress bar on a terminal"
dh_assert_contains "$tty_out" "no differences" "and the result"
verify 2>"$T/verify.stderr" >/dev/null || dh_fail "verify failed"
dh_assert_eq "" "$(cat "$T/verify.stderr")" "no progress output when stderr is not a terminal"

# ---- liveness: an idle spoke keeps last_seen_at fresh (heartbeat every 5 s) ----
seen1=$(dh_psql "SELECT extract(epoch FROM last_seen_at) FROM cc_stream WHERE spoke_id = 'SITE1'")
sleep 7
seen2=$(dh_psql "SELECT extract(epoch FROM last_seen_at) FROM cc_stream WHERE spoke_id = 'SITE1'")
python3 -c "import sys; sys.exit(0 if float('$seen2') > float('$seen1') else 1)" ||
	dh_fail "idle spoke: last_seen_at did not advance in 7 s ($seen1 -> $seen2)"
dh_assert_eq t "$(dh_psql "SELECT last_seen_at > now() - interval '10 seconds' AND last_peer <> '' FROM cc_stream WHERE spoke_id = 'SITE1'")" "last_seen_at within 10 s, last_peer set"

# ---- inject one divergence of each kind ----
mapfile -t A_SOPS < <(dh_spoke_psql "SELECT sop_uid FROM ledger_instance WHERE study_uid = '$STUDY_A' ORDER BY instance_number")
mapfile -t B_SOPS < <(dh_spoke_psql "SELECT sop_uid FROM ledger_instance WHERE study_uid = '$STUDY_B' ORDER BY instance_number")
# missing at the hub: the spoke holds an object the hub never got
GHOST=$(uid)
dh_spoke_psql "INSERT INTO ledger_instance (sop_uid, series_uid, study_uid, sop_class_uid, received_sop_uid,
  received_series_uid, received_study_uid, patient_id, patient_name, file_path, file_size, md5, transfer_syntax, fwd_state)
  SELECT '$GHOST', series_uid, study_uid, sop_class_uid, '$GHOST', received_series_uid, received_study_uid,
  patient_id, patient_name, file_path, file_size, md5, transfer_syntax, 'failed'
  FROM ledger_instance WHERE sop_uid = '${A_SOPS[0]}'"
# extra at the hub: the spoke forgot an object (its ledger row is gone)
dh_spoke_psql "DELETE FROM ledger_instance WHERE sop_uid = '${A_SOPS[1]}'"
# wrong data set digest at the hub (the file MD5s differ by their File Meta Information)
dh_assert_eq "$(dh_spoke_psql "SELECT dataset_digest FROM ledger_instance WHERE sop_uid = '${A_SOPS[2]}'")" \
	"$(dh_psql "SELECT dataset_digest FROM instance WHERE sop_uid = '${A_SOPS[2]}'")" "spoke and hub record one data set digest"
dh_psql "UPDATE instance SET dataset_digest = '00000000000000000000000000000000' WHERE sop_uid = '${A_SOPS[2]}'"
# attribute differing: the spoke says another instance number for one object
dh_spoke_psql "UPDATE ledger_instance SET instance_number = '99' WHERE sop_uid = '${B_SOPS[0]}'"
# deletion not applied: deleted at the spoke, the DELETE never reached the hub
dh_spoke_psql "UPDATE ledger_instance SET deleted_at = now() WHERE sop_uid = '${B_SOPS[1]}'"
# a move not applied: the spoke holds one object in another series
NEWSER=$(uid)
dh_spoke_psql "UPDATE ledger_instance SET series_uid = '$NEWSER' WHERE sop_uid = '${B_SOPS[2]}'"

rc=0
json=$(verify --json) || rc=$?
dh_assert_eq 1 "$rc" "verify exits 1 when differences exist"
dh_assert_eq "attribute deletion_not_applied digest extra_at_hub missing_at_hub series_uid" "$(kinds <<<"$json")" "one difference of each injected kind"
dh_assert_eq "$GHOST||present|absent|1" "$(records missing_at_hub <<<"$json")" "missing_at_hub names the object"
dh_assert_eq "${A_SOPS[1]}||absent|present|1" "$(records extra_at_hub <<<"$json")" "extra_at_hub names the object"
dh_assert_eq "${A_SOPS[2]}||$(dh_spoke_psql "SELECT dataset_digest FROM ledger_instance WHERE sop_uid = '${A_SOPS[2]}'")|00000000000000000000000000000000|1" \
	"$(records digest <<<"$json")" "digest shows both values"
dh_assert_eq "${B_SOPS[0]}|InstanceNumber|99|1|1" "$(records attribute <<<"$json")" "attribute shows both values"
dh_assert_eq "${B_SOPS[1]}||deleted|present|1" "$(records deletion_not_applied <<<"$json")" "deletion not applied"
HUBSER=$(dh_psql "SELECT se.series_uid FROM instance i JOIN series se ON se.pk = i.series_fk WHERE i.sop_uid = '${B_SOPS[2]}'")
dh_assert_eq "${B_SOPS[2]}|SeriesInstanceUID|$NEWSER|$HUBSER|1" "$(records series_uid <<<"$json")" "series UID differs"

# the human form: one block per difference with a hint
rc=0
out=$(verify) || rc=$?
dh_assert_eq 1 "$rc" "text verify exits 1 too"
dh_assert_contains "$out" "6 differences" "summary counts them"
dh_assert_contains "$out" "forwarding failed at the spoke" "missing object: the hint follows the forwarding state"
dh_assert_contains "$out" "hubctl queue list --spoke SITE1 --study $STUDY_B" "hints name the spoke and study"
[ "$(grep -c '^   hint:' <<<"$out")" = 6 ] || dh_fail "every difference has a hint: $out"

# --study narrows both sides to one study
rc=0
json=$(verify --study "$STUDY_B" --json) || rc=$?
dh_assert_eq 1 "$rc" "verify --study B exits 1"
dh_assert_eq "attribute deletion_not_applied series_uid" "$(kinds <<<"$json")" "only study B's differences"

# ---- a patient-name correction at the hub only (an override) shows as an attribute difference ----
dh_psql "INSERT INTO attr_override (level, target_fk, tag, vr, value)
  SELECT 2, pk, 1048592, 'PN', 'WRONG^NAME' FROM study WHERE study_uid = '$STUDY_A'"
rc=0
json=$(verify --study "$STUDY_A" --json) || rc=$?
dh_assert_contains "$(records attribute <<<"$json")" "|PatientName|VERIFY^" "an override counts as the hub's value"
dh_assert_contains "$(records attribute <<<"$json")" "|WRONG^NAME|" "with the override's value"

# ---- unknown spoke: usage error ----
rc=0
out=$("$HUBCTL" -c "$T/hub.conf" verify --spoke NOPE 2>&1) || rc=$?
dh_assert_eq 2 "$rc" "unknown spoke exits 2"
dh_assert_contains "$out" "no [spoke.NOPE]" "and says so"

# ---- connected on paper but silent: spoked gone, hubd still has its connection in mind ----
dh_spoke_stop
rc=0
out=$(verify --timeout 3 2>&1) || rc=$?
dh_assert_eq 3 "$rc" "a silent spoke exits 3"
dh_assert_contains "$out" "did not answer within 3 s" "silent spoke message"
# ---- not connected: nothing heard for longer than 30 s ----
dh_psql "UPDATE cc_stream SET last_seen_at = now() - interval '5 minutes' WHERE spoke_id = 'SITE1'"
rc=0
out=$(verify 2>&1) || rc=$?
dh_assert_eq 3 "$rc" "a disconnected spoke exits 3"
dh_assert_contains "$out" "spoke SITE1 is not connected" "disconnected spoke message"
dh_assert_eq 0 "$(dh_psql "SELECT count(*) FROM verify_request")" "hubctl leaves no request behind"

dh_hub_stop
dh_pass "verify finds every injected divergence and none after a clean sync"
