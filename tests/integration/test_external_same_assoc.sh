#!/usr/bin/env bash
# Storage Commitment SCU (conformance §2.2.1.5.2) against an archive that
# reports on the request's own association (tests/tools/stgcmtscp, built on
# the adapter: DCMTK has no Storage Commitment SCP): the hub waits
# external.report_wait seconds after the N-ACTION and records the result
# there, one object committed and one failed (Failure Reason 0112). With
# report_wait = 0 the hub releases at once: the result is not taken, the
# objects stay awaiting their commitment (and are requested again after
# external.commit_timeout); a report then sent on a new association counts
# only when it comes from the archive the request went to.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dh_setup external_same_assoc
dh_pg_start
S=$(dh_samples)
ARC_PORT=$(dh_free_port)
TOOL=$DH_BUILD/tests/tools/stgcmtscp
[ -x "$TOOL" ] || dh_fail "$TOOL not built"

mkdir -p "$T/in"
dh_variant "$S/CT_small.dcm" "$T/in/a.dcm" -gin -m "StudyInstanceUID=1.2.826.0.1.3680043.9.7783.1"
dh_variant "$S/CT_small.dcm" "$T/in/b.dcm" -gin -m "StudyInstanceUID=1.2.826.0.1.3680043.9.7783.1"
BAD=$(dcmdump +P 0008,0018 "$T/in/b.dcm" | sed 's/.*\[\(.*\)\].*/\1/')
dh_bg "$TOOL" --fail "$BAD" "$ARC_PORT"
dh_wait_echo "$ARC_PORT" SAMEARC

conf() { # REPORT_WAIT
	dh_hub_config "[archive]" "enabled = false" \
		"[external]" "stable_seconds = 0" "scan_interval = 1" "retry_interval = 1" "report_wait = $1" \
		"[remote.SAMEARC]" "host = 127.0.0.1" "port = $ARC_PORT" "export = true"
}
wait_for() {
	local i
	for ((i = 0; i < 100; i++)); do
		[ "$(dh_psql "$1")" = "$2" ] && return 0
		sleep 0.2
	done
	dh_fail "$3: expected '$2', got '$(dh_psql "$1")'"
}

conf 2
dh_hub_start
storescu -aec DCMHUB +sd 127.0.0.1 "$HUB_PORT" "$T/in"
wait_for "SELECT string_agg(state || ':' || COALESCE(failure_reason::text, ''), ',' ORDER BY sop_uid = '$BAD')
	FROM external_object" "committed:,failed:$((0x0112))" "result taken on the same association"
dh_assert_eq "reported|2|1|1|2" "$(dh_psql "SELECT state, n_objects, n_committed, n_failed, event_type FROM external_txn")" \
	"transaction reported"
grep -q "storage commitment result .* from SAMEARC: 1 committed, 1 failed" "$T/hubd.log" || dh_fail "result not logged"
grep -q "reported .* committed=1 failed=1 status=0000" "$T/bg.log" || dh_fail "the archive did not get 0000 for its report"

# report_wait = 0: released at once, the report cannot be delivered
dh_hub_stop
conf 0
dh_hub_start
dh_variant "$S/CT_small.dcm" "$T/c.dcm" -gin -m "StudyInstanceUID=1.2.826.0.1.3680043.9.7783.2"
storescu -aec DCMHUB 127.0.0.1 "$HUB_PORT" "$T/c.dcm"
wait_for "SELECT count(*) FROM external_txn" 2 "second request sent"
sleep 2
dh_assert_eq "sent" "$(dh_psql "SELECT state FROM external_object WHERE sop_uid <> '$BAD' ORDER BY pk DESC LIMIT 1")" \
	"report_wait = 0: still awaiting its result"
dh_assert_eq "requested" "$(dh_psql "SELECT state FROM external_txn ORDER BY requested_at DESC LIMIT 1")" \
	"report_wait = 0: transaction still open"

# a report on a new association: from another AE it is ignored, from the archive it counts
txn=$(dh_psql "SELECT transaction_uid FROM external_txn WHERE state = 'requested'")
uid=$(dh_psql "SELECT sop_class_uid || ':' || sop_uid FROM external_object WHERE transaction_uid = :'p1'" "$txn")
out=$("$TOOL" --report "127.0.0.1:$HUB_PORT" --aet STORESCU --txn "$txn" --uid "$uid")
dh_assert_eq "status=0000" "$out" "forged report answered (and ignored)"
dh_assert_eq "sent" "$(dh_psql "SELECT state FROM external_object WHERE transaction_uid = :'p1'" "$txn")" \
	"a report from another AE changes nothing"
grep -q "storage commitment result from STORESCU for transaction $txn, which the hub did not send to STORESCU" \
	"$T/hubd.log" || dh_fail "forged report not logged"
out=$("$TOOL" --report "127.0.0.1:$HUB_PORT" --aet SAMEARC --txn "$txn" --uid "$uid")
dh_assert_eq "status=0000" "$out" "the archive's report on a new association"
dh_assert_eq "committed" "$(dh_psql "SELECT state FROM external_object WHERE transaction_uid = :'p1'" "$txn")" \
	"the archive's report on a new association is recorded"
dh_assert_eq "reported" "$(dh_psql "SELECT state FROM external_txn WHERE transaction_uid = :'p1'" "$txn")" \
	"transaction reported"
dh_pass
