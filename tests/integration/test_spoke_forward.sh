#!/usr/bin/env bash
# spoked forwards what the spoke PACS stores to the hub, with storage
# commitment, and loses nothing:
#  (1) storescu (the PACS) -> spoked -> hubd: the objects are indexed at the
#      hub and every ledger row ends 'committed'; an unknown calling AE is
#      rejected; a resent identical object is answered success and not
#      forwarded twice; unparsable objects get A900, a known SOP UID under
#      another study 0110, a corrected resend 0000 and an ATTRIBUTE_CHANGE;
#  (2) hub down: storing to spoked still succeeds, the rows stay 'pending',
#      the outage is logged once; hub back: they arrive and commit, each
#      exactly once;
#  (3) kill -9 of spoked in the middle of forwarding 200 objects, restart:
#      every object is at the hub exactly once and every row is committed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_spoke.sh"
dh_setup spokefwd
dh_pg_start
dh_spoke_db
dh_spoke_prepare
dh_hub_config "${DH_SPOKE_HUB_LINES[@]}" "[stgcmt]" "retry_interval = 1"
dh_hub_start
dh_spoke_config "[forward]" "batch = 50"
dh_spoke_start
S=$(dh_samples)

# make_study DIR N: N objects of one new study (new study, series and SOP UIDs)
make_study() {
	local dir=$1 n=$2 i
	mkdir -p "$dir"
	dh_variant "$S/CT_small.dcm" "$dir/base.dcm" -gst -gse -gin
	for ((i = 1; i <= n; i++)); do
		dh_variant "$dir/base.dcm" "$dir/$i.dcm" -gin -m "InstanceNumber=$i"
	done
	rm "$dir/base.dcm"
}

uid_of() { dcmdump +P 0008,0018 "$1" | sed 's/.*\[\(.*\)\].*/\1/'; }

hub_count() { dh_psql "SELECT count(*) || '|' || count(DISTINCT sop_uid) FROM instance"; }

# ---------------------------------------------------------------- (1)
make_study "$T/a" 5
storescu -aet STORESCU -aec "$SPOKE_AET" 127.0.0.1 "$SPOKE_PORT" "$T"/a/*.dcm || dh_fail "store to spoked"
dh_assert_eq 5 "$(dh_spoke_psql "SELECT count(*) FROM ledger_instance")" "ledger rows after storing"
dh_spoke_wait "SELECT count(*) FROM ledger_instance WHERE fwd_state = 'committed'" 5 60 "(1) committed rows"
dh_assert_eq "5|5" "$(hub_count)" "(1) objects at the hub"
for f in "$T"/a/*.dcm; do
	u=$(uid_of "$f")
	dh_assert_eq 1 "$(dh_psql "SELECT count(*) FROM instance WHERE sop_uid = :'p1'" "$u")" "(1) $u at the hub"
done
dh_hub_wait "SELECT DISTINCT requester_ae || '|' || state FROM stgcmt_txn" "SPOKE1|reported" 10 \
	"(1) storage commitment requested by the spoke and reported"
dh_assert_eq 0 "$(dh_spoke_psql "SELECT count(*) FROM ledger_instance WHERE fwd_txn_uid IS NULL")" \
	"(1) every row has its transaction"
# every ledger row names a file that exists; no temp files
while read -r p; do dh_assert_file_exists "$T/spoke/$p" "ledger file"; done \
	< <(dh_spoke_psql "SELECT file_path FROM ledger_instance")

# an unknown calling AE is rejected; an identical resend is success and stays one row
if storescu -aet STRANGER -aec "$SPOKE_AET" 127.0.0.1 "$SPOKE_PORT" "$T/a/1.dcm" >/dev/null 2>&1; then
	dh_fail "(1) association from an unconfigured AE accepted"
fi
storescu -aet STORESCU -aec "$SPOKE_AET" 127.0.0.1 "$SPOKE_PORT" "$T/a/1.dcm" || dh_fail "(1) resend refused"
dh_assert_eq 5 "$(dh_spoke_psql "SELECT count(*) FROM ledger_instance")" "(1) a resend adds no row"
dh_assert_eq 5 "$(find "$T/spoke" -name '*.dcm' | wc -l)" "(1) the redundant copy is removed"

# statuses over one association: a new object, two unparsable ones (A900),
# a known SOP UID under another study (0110, sop_conflict = reject), and a
# known object with a corrected patient name (0000, recorded as a change)
RAW="$DH_BUILD/tests/tools/rawstorescu"
dh_variant "$T/a/1.dcm" "$T/good.dcm" -gin
dh_variant "$T/a/1.dcm" "$T/nostudy.dcm" -gin -ea "(0020,000d)"
dh_variant "$T/a/1.dcm" "$T/conflict.dcm" -gst
dh_variant "$T/a/2.dcm" "$T/renamed.dcm" -m "PatientName=Corrected^Name"
out=$("$RAW" -aec "$SPOKE_AET" 127.0.0.1 "$SPOKE_PORT" "$T/good.dcm" "$S/MR_truncated.dcm" "$T/nostudy.dcm" \
	"$T/conflict.dcm" "$T/renamed.dcm")
echo "$out"
dh_assert_contains "$(echo "$out" | sed -n 1p)" "status=0000" "(1) new object"
dh_assert_contains "$(echo "$out" | sed -n 2p)" "status=a900" "(1) truncated object"
dh_assert_contains "$(echo "$out" | sed -n 3p)" "status=a900" "(1) no Study Instance UID"
dh_assert_contains "$(echo "$out" | sed -n 4p)" "status=0110" "(1) SOP UID known under another study"
dh_assert_contains "$(echo "$out" | sed -n 5p)" "status=0000" "(1) corrected object"
u2=$(uid_of "$T/a/2.dcm")
dh_assert_eq "Corrected^Name" "$(dh_spoke_psql "SELECT patient_name FROM ledger_instance WHERE sop_uid = :'p1'" "$u2")" \
	"(1) the ledger holds the corrected name"
dh_assert_eq "ATTRIBUTE_CHANGE" "$(dh_spoke_psql "SELECT string_agg(DISTINCT kind, ',') FROM cc_history")" \
	"(1) the correction is a change context"
dh_assert_eq 6 "$(dh_spoke_psql "SELECT count(*) FROM ledger_instance")" "(1) only the new object adds a row"
dh_assert_eq 6 "$(find "$T/spoke" -name '*.dcm' | wc -l)" "(1) refused and redundant files are removed"
dh_assert_eq 0 "$(find "$T/spoke" -name '*.part' | wc -l)" "(1) no temp files"
dh_spoke_wait "SELECT count(*) FROM ledger_instance WHERE fwd_state = 'committed'" 6 60 "(1) the new object committed"
dh_assert_eq "6|6" "$(hub_count)" "(1) objects at the hub"

# ---------------------------------------------------------------- (2)
dh_hub_stop
make_study "$T/b" 10
storescu -aet STORESCU -aec "$SPOKE_AET" 127.0.0.1 "$SPOKE_PORT" "$T"/b/*.dcm || dh_fail "(2) store while the hub is down"
sleep 4 # several forward attempts
dh_assert_eq 10 "$(dh_spoke_psql "SELECT count(*) FROM ledger_instance WHERE fwd_state = 'pending'")" \
	"(2) rows pending while the hub is down"
dh_assert_eq 0 "$(dh_spoke_psql "SELECT count(*) FROM ledger_instance WHERE fwd_attempts > 0")" \
	"(2) an unreachable hub is not counted against the objects"
dh_assert_eq 1 "$(grep -c 'is not reachable' "$T/spoked.log")" "(2) the outage is logged once"
dh_hub_start
dh_spoke_wait "SELECT count(*) FROM ledger_instance WHERE fwd_state = 'committed'" 16 60 "(2) committed after the hub returned"
dh_assert_eq "16|16" "$(hub_count)" "(2) each object once at the hub"
grep -q 'answers again' "$T/spoked.log" || dh_fail "(2) the hub's return is not logged"

# ---------------------------------------------------------------- (3)
N=200
make_study "$T/c" "$N"
dh_hub_stop
storescu -aet STORESCU -aec "$SPOKE_AET" 127.0.0.1 "$SPOKE_PORT" "$T"/c/*.dcm || dh_fail "(3) store 200"
dh_assert_eq "$N" "$(dh_spoke_psql "SELECT count(*) FROM ledger_instance WHERE fwd_state = 'pending'")" "(3) pending"
dh_hub_start
# let the forwarder get going, then kill it in the middle
deadline=$((SECONDS + 30))
while :; do
	n=$(dh_psql "SELECT count(*) FROM instance")
	[ "$n" -ge $((16 + 20)) ] && break
	[ "$SECONDS" -lt "$deadline" ] || dh_fail "(3) forwarding did not start"
	sleep 0.05
done
dh_spoke_kill9
at_kill=$(dh_psql "SELECT count(*) FROM instance")
states=$(dh_spoke_psql "SELECT string_agg(fwd_state || '=' || n, ' ' ORDER BY fwd_state) FROM
	(SELECT fwd_state, count(*) n FROM ledger_instance GROUP BY 1) x")
echo "(3) killed spoked with $at_kill objects at the hub; ledger: $states"
[ "$at_kill" -lt $((16 + N)) ] || dh_fail "(3) the kill came too late: everything was already forwarded"
dh_spoke_start
dh_spoke_wait "SELECT count(*) FROM ledger_instance WHERE fwd_state = 'committed'" $((16 + N)) 120 "(3) committed after the restart"
dh_assert_eq "$((16 + N))|$((16 + N))" "$(hub_count)" "(3) every object exactly once at the hub"
dh_assert_eq 0 "$(dh_psql "SELECT count(*) FROM (SELECT sop_uid FROM instance GROUP BY 1 HAVING count(*) > 1) d")" \
	"(3) no duplicates at the hub"
for f in "$T"/c/1.dcm "$T/c/$N.dcm" "$T/c/$((N / 2)).dcm"; do
	u=$(uid_of "$f")
	dh_assert_eq 1 "$(dh_psql "SELECT count(*) FROM instance WHERE sop_uid = :'p1'" "$u")" "(3) $u at the hub"
done
dh_assert_eq 0 "$(find "$T/spoke" -name '*.part' | wc -l)" "(3) temp files left in the store"
dh_spoke_stop
dh_pass
