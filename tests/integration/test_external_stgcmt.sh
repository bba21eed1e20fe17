#!/usr/bin/env bash
# Export to an external archive with Storage Commitment SCU (conformance
# §2.2.1.5.2), a second hubd (AE EXTHUB, its own database) as the archive:
#   - archive down: the objects stay queued, attempts and the error recorded,
#     `hubctl external list` shows the backlog; once it is up they are sent
#     (retry) and committed;
#   - the Transaction UID is the one the archive recorded, kept with a
#     per-object result (external_txn reported, n_committed);
#   - the objects the archive stores carry the index's current truth (a
#     change made before the export) while the hub's own files stay as
#     received (MD5 unchanged);
#   - failures recorded per object with the archive's Failure Reason: an
#     object the archive does not have (0112, a request left by a crash
#     between C-STORE and N-ACTION) and an object whose UID the archive holds
#     under another SOP class (0119);
#   - `hubctl external show/retry`, --json.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dh_setup external_stgcmt
dh_pg_start
S=$(dh_samples)
dh_psql "CREATE DATABASE ext"
EXT_CONNINFO=${DH_CONNINFO/dbname=dcmhub/dbname=ext}
ext_psql() { psql -XAtq -v ON_ERROR_STOP=1 -d "$EXT_CONNINFO" -c "$1"; }
EXT_PORT=$(dh_free_port)
hubctl() { "$DH_BUILD/hub/hubctl" -c "$T/hub.conf" "$@"; }

# the hub
dh_hub_config "[archive]" "enabled = false" \
	"[external]" "stable_seconds = 0" "scan_interval = 1" "retry_interval = 1" \
	"[remote.EXTHUB]" "host = 127.0.0.1" "port = $EXT_PORT" "export = true"
mv "$T/hub.conf" "$T/main.conf"
MAIN_PORT=$HUB_PORT
# the archive: another hubd, its own database and cache; it reports to DCMHUB on MAIN_PORT
dh_hub_config "[hub]" "ae_title = EXTHUB" \
	"[database]" "conninfo = \"$EXT_CONNINFO\"" \
	"[storage]" "cache_dir = $T/extcache" \
	"[archive]" "enabled = false" \
	"[stgcmt]" "retry_interval = 1" \
	"[remote.DCMHUB]" "host = 127.0.0.1" "port = $MAIN_PORT"
sed -i "s/^port = $HUB_PORT\$/port = $EXT_PORT/" "$T/hub.conf"
mv "$T/hub.conf" "$T/ext.conf"
mv "$T/main.conf" "$T/hub.conf"
HUB_PORT=$MAIN_PORT
mkdir -p "$T/extcache"

EXT_PID=
start_ext() {
	setsid -f bash -c 'exec "$1" -c "$2" >>"$3" 2>&1 </dev/null' x "$DH_BUILD/hub/hubd" "$T/ext.conf" "$T/ext.log"
	dh_wait_echo "$EXT_PORT" EXTHUB
	EXT_PID=$(pgrep -f "hubd -c $T/ext.conf" | head -n 1)
	[ -n "$EXT_PID" ] || dh_fail "external hubd not found"
	DH_BG_PIDS+=("$EXT_PID")
}
# wait_for SQL EXPECTED WHAT: polls the hub's index (20 s at most)
wait_for() {
	local i
	for ((i = 0; i < 100; i++)); do
		[ "$(dh_psql "$1")" = "$2" ] && return 0
		sleep 0.2
	done
	dh_fail "$3: expected '$2', got '$(dh_psql "$1")'"
}

dh_hub_start

# ---- three objects while the archive is down
ST1=1.2.826.0.1.3680043.9.7782.1
mkdir -p "$T/in"
for i in 1 2 3; do
	dh_variant "$S/CT_small.dcm" "$T/in/ct$i.dcm" -gin -m "PatientID=EXP1" -m "StudyInstanceUID=$ST1" \
		-m "SeriesInstanceUID=$ST1.1"
done
storescu -aec DCMHUB +sd 127.0.0.1 "$HUB_PORT" "$T/in"
# a change the index holds before the export (as a cc would make): the archive gets it
dh_psql "INSERT INTO attr_override (level, target_fk, tag, vr, value) SELECT 3, pk, $((0x0008103E)), 'LO',
	'EXPORT TRUTH' FROM series WHERE series_uid = '$ST1.1'"
wait_for "SELECT count(*) FROM external_object WHERE state = 'queued' AND attempts >= 2 AND last_error <> ''" 3 \
	"archive down: queued with attempts and error"
out=$(hubctl external list)
grep -qE "^EXTHUB +yes +3 +0 +0 +0 +0" <<<"$out" || { echo "$out"; dh_fail "external list while the archive is down"; }
grep -q "export to EXTHUB (127.0.0.1:$EXT_PORT): archive not reachable" "$T/hubd.log" ||
	dh_fail "archive down not logged"

# ---- the archive comes up: sent on the next retry, committed on its N-EVENT-REPORT
start_ext
wait_for "SELECT count(*) FROM external_object WHERE state = 'committed'" 3 "committed after the archive came up"
dh_assert_eq 3 "$(ext_psql "SELECT count(*) FROM instance")" "the archive holds the 3 objects"
txn=$(dh_psql "SELECT DISTINCT transaction_uid FROM external_object WHERE state = 'committed'")
dh_assert_eq 1 "$(wc -l <<<"$txn")" "one transaction for the three"
dh_assert_eq "reported|3|3|0|1" "$(dh_psql "SELECT state, n_objects, n_committed, n_failed, event_type
	FROM external_txn WHERE transaction_uid = :'p1'" "$txn")" "transaction recorded with its result"
dh_assert_eq "$txn" "$(ext_psql "SELECT transaction_uid FROM stgcmt_txn")" "the archive saw the same Transaction UID"
grep -q "storage commitment result $txn from EXTHUB: 3 committed, 0 failed" "$T/hubd.log" ||
	dh_fail "result not logged"
# current truth at the archive, files unchanged at the hub
for p in $(ext_psql "SELECT file_path FROM instance"); do
	dcmdump +P 0008,103E "$T/extcache/$p" | grep -q "EXPORT TRUTH" || dh_fail "archive's $p lacks the index's change"
done
while IFS='|' read -r p md5; do
	dh_assert_eq "$md5" "$(md5sum "$T/cache/$p" | cut -d' ' -f1)" "hub's file $p unchanged by the export"
	dcmdump +P 0008,103E "$T/cache/$p" | grep -q "EXPORT TRUTH" && dh_fail "hub's stored file was rewritten"
done < <(dh_psql "SELECT file_path, md5 FROM instance")

# ---- an object the archive does not have: a request a crash left between C-STORE and N-ACTION
GHOST=2.25.1$RANDOM$RANDOM$RANDOM$RANDOM
dh_psql "INSERT INTO external_object (instance_fk, archive_ae, state, sop_class_uid, sop_uid, sent_at)
	VALUES (NULL, 'EXTHUB', 'sent', '1.2.840.10008.5.1.4.1.1.2', :'p1', now())" "$GHOST"
wait_for "SELECT state || '|' || failure_reason FROM external_object WHERE sop_uid = '$GHOST'" "failed|$((0x0112))" \
	"object the archive does not have: failed, reason 0112"

# ---- the archive holds that SOP Instance UID as another object (class/instance conflict, 0119)
CONFLICT=2.25.1$RANDOM$RANDOM$RANDOM$RANDOM
dh_variant "$S/CT_small.dcm" "$T/ext_own.dcm" -m "SOPInstanceUID=$CONFLICT" -m "StudyInstanceUID=1.2.826.0.1.3680043.9.7782.9"
storescu -aec EXTHUB 127.0.0.1 "$EXT_PORT" "$T/ext_own.dcm"
dh_variant "$S/MR_small.dcm" "$T/mr.dcm" -m "SOPInstanceUID=$CONFLICT" -m "PatientID=EXP2" \
	-m "StudyInstanceUID=1.2.826.0.1.3680043.9.7782.2"
storescu -aec DCMHUB 127.0.0.1 "$HUB_PORT" "$T/mr.dcm"
wait_for "SELECT state || '|' || COALESCE(failure_reason::text, last_error) FROM external_object
	WHERE sop_uid = '$CONFLICT'" "failed|$((0x0119))" "class/instance conflict at the archive: failed, reason 0119"
dh_assert_eq 3 "$(dh_psql "SELECT count(*) FROM external_object WHERE state = 'committed'")" \
	"the committed ones are untouched"

# ---- what an operator sees and does
out=$(hubctl external list)
grep -qE "^EXTHUB +yes +0 +0 +3 +2 +0" <<<"$out" || { echo "$out"; dh_fail "external list after the failures"; }
out=$(hubctl --json external list)
"$DH_PYTHON" -c 'import json,sys; a=json.load(sys.stdin); assert a[0]["archive"]=="EXTHUB" and a[0]["failed"]==2 and a[0]["committed"]==3, a' <<<"$out" ||
	dh_fail "external list --json"
out=$(hubctl external show EXTHUB --state failed)
dh_assert_contains "$out" "$GHOST" "show: the ghost"
dh_assert_contains "$out" "deleted" "show: the ghost has no local object"
dh_assert_contains "$out" "storage commitment failed at EXTHUB, Failure Reason 281" "show: reason in words"
out=$(hubctl --json external show EXTHUB)
"$DH_PYTHON" -c 'import json,sys; d=json.load(sys.stdin); assert len(d["objects"])==5 and len(d["transactions"])>=3, d' <<<"$out" ||
	dh_fail "external show --json"
out=$(hubctl external retry EXTHUB)
dh_assert_contains "$out" "1 failed object(s) of EXTHUB queued again" "retry (the ghost has no object to send)"
# queued again with attempts 0; failed again (the archive still refuses it) after one more attempt
wait_for "SELECT state || '|' || attempts FROM external_object WHERE sop_uid = '$CONFLICT'" "failed|1" \
	"retried: sent again, refused again"
n=$(dh_psql "SELECT count(*) FROM external_txn WHERE state = 'reported'")
[ "$n" -ge 3 ] || dh_fail "every transaction kept (got $n)"

# ---- transactions survive a restart
dh_hub_stop
dh_hub_start
dh_assert_eq "$n" "$(dh_psql "SELECT count(*) FROM external_txn WHERE state = 'reported'")" "transactions kept"

kill -TERM "$EXT_PID"
for ((i = 0; i < 100; i++)); do kill -0 "$EXT_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$EXT_PID" 2>/dev/null && dh_fail "external hubd did not stop"
grep -E "ERROR: AddressSanitizer|runtime error" "$T/ext.log" && dh_fail "the external hubd reported a sanitizer error"
dh_pass
