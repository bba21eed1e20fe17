#!/usr/bin/env bash
# Exactly-once delivery of change contexts under crashes. While the spoke
# records a stream of thousands of cc (bench/ccload: study-level attribute
# changes and splits moving one image back and forth), spoked and hubd are
# killed with SIGKILL at random moments and restarted, and the hub is also
# down for a while as a whole (the spoke keeps accepting changes). Then:
# every sequence is at the hub exactly once and applied, in sequence order,
# the spoke's outbox is empty, and the hub's view equals the spoke's (the
# study description, and which study holds the moved image).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dh_setup cccrash
dh_pg_start
. "$(dirname "$0")/lib_cc.sh"
DH_CC_LOG_LEVEL=info dh_cc_pair_start

CCLOAD=$DH_BUILD/bench/ccload
[ -x "$CCLOAD" ] || dh_fail "ccload not built: $CCLOAD"
uid() { python3 -c 'import uuid; print("2.25.%d" % uuid.uuid4().int)'; }
STUDY_A=$(uid)
STUDY_B=$(uid)
mkdir -p "$T/in"
dh_variant "$(dh_samples)/CT_small.dcm" "$T/in/a1.dcm" -gin -gse -m "StudyInstanceUID=$STUDY_A" -m PatientID=C1
dh_variant "$(dh_samples)/CT_small.dcm" "$T/in/a2.dcm" -gin -gse -m "StudyInstanceUID=$STUDY_A" -m PatientID=C1
dh_variant "$(dh_samples)/CT_small.dcm" "$T/in/b1.dcm" -gin -gse -m "StudyInstanceUID=$STUDY_B" -m PatientID=C1
storescu -aet STORESCU -aec SPOKE1 127.0.0.1 "$SPOKE_PORT" "$T"/in/*.dcm >/dev/null 2>&1 || dh_fail "storescu failed"
dh_cc_wait_committed 3 60
SOP=$(dh_spoke_psql "SELECT sop_uid FROM ledger_instance WHERE study_uid = '$STUDY_A' ORDER BY pk LIMIT 1")

# the change streams, in the background (they talk to the spoke's database only)
"$CCLOAD" -c "$T/spoked.conf" attr --study "$STUDY_B" --count 3000 --rate 250 >>"$T/ccload.log" 2>&1 &
ATTR_PID=$!
"$CCLOAD" -c "$T/spoked.conf" split --study "$STUDY_A" --other "$STUDY_B" --sop "$SOP" --count 601 --rate 50 \
	>>"$T/ccload.log" 2>&1 &
SPLIT_PID=$!

RANDOM=$$
rounds=0
extra=0 # changes recorded with spokectl while the hub was down
while kill -0 "$ATTR_PID" 2>/dev/null || kill -0 "$SPLIT_PID" 2>/dev/null; do
	sleep "0.$((RANDOM % 9 + 1))"
	case $((rounds % 5)) in
	0 | 2) dh_spoke_kill9; sleep "0.$((RANDOM % 5))"; dh_spoke_start ;;
	1 | 3) dh_hub_kill9; sleep "0.$((RANDOM % 5))"; dh_hub_start ;;
	4)
		# the hub away for a while: the spoke goes on recording changes
		dh_hub_stop
		before=$(dh_spoke_psql "SELECT last_sequence FROM spoke_state")
		"$SPOKECTL" -c "$T/spoked.conf" modify --study "$STUDY_A" --set "StudyDescription=offline $rounds" \
			>>"$T/spokectl.log" || dh_fail "spokectl modify failed while the hub was down"
		extra=$((extra + 1))
		sleep 2
		after=$(dh_spoke_psql "SELECT last_sequence FROM spoke_state")
		[ "$after" -gt "$before" ] || dh_fail "the spoke recorded no change while the hub was down"
		dh_hub_start
		;;
	esac
	rounds=$((rounds + 1))
done
wait "$ATTR_PID" || dh_fail "ccload attr failed: $(tail -n 3 "$T/ccload.log")"
wait "$SPLIT_PID" || dh_fail "ccload split failed: $(tail -n 3 "$T/ccload.log")"
[ "$rounds" -ge 5 ] || dh_fail "only $rounds crash rounds happened"

last=$(dh_spoke_psql "SELECT last_sequence FROM spoke_state")
dh_assert_eq $((3601 + extra)) "$last" "every change recorded at the spoke"
dh_cc_wait_acked "$last" 120

dh_assert_eq "$last" "$(dh_psql "SELECT count(*) FROM cc_log WHERE spoke_id = 'SITE1'")" "each cc at the hub once"
dh_assert_eq "$last" "$(dh_psql "SELECT count(DISTINCT sequence) FROM cc_log WHERE spoke_id = 'SITE1' AND sequence BETWEEN 1 AND $last")" "no sequence missing"
dh_assert_eq "$last" "$(dh_psql "SELECT count(*) FROM cc_log WHERE spoke_id = 'SITE1' AND state = 'applied'")" "every cc applied"
dh_assert_eq 0 "$(dh_psql "SELECT count(*) FROM (SELECT sequence, lag(sequence) OVER (ORDER BY pk) AS prev FROM cc_log WHERE spoke_id = 'SITE1') x WHERE prev IS NOT NULL AND sequence <> prev + 1")" "applied in sequence order"
dh_assert_eq 0 "$(dh_spoke_psql "SELECT count(*) FROM outbox")" "outbox empty"
dh_assert_eq 0 "$(dh_spoke_psql "SELECT count(*) FROM cc_history WHERE state <> 'acked'")" "every cc acknowledged"

# the hub's view equals the spoke's
spoke_desc=$(dh_spoke_psql "SELECT DISTINCT study_description FROM ledger_instance WHERE study_uid = '$STUDY_B'")
dh_assert_eq "bench 2999" "$spoke_desc" "spoke: last description"
dh_assert_eq "$spoke_desc" "$(dh_psql "SELECT description FROM study WHERE study_uid = '$STUDY_B'")" "hub: study description"
spoke_home=$(dh_spoke_psql "SELECT study_uid FROM ledger_instance WHERE sop_uid = '$SOP' AND deleted_at IS NULL")
dh_assert_eq "$STUDY_B" "$spoke_home" "601 splits leave the image in study B"
dh_assert_eq "$spoke_home" "$(dh_psql "SELECT st.study_uid FROM instance i JOIN series se ON se.pk = i.series_fk JOIN study st ON st.pk = se.study_fk WHERE i.sop_uid = '$SOP'")" "hub: the image's study"
dh_assert_eq 3 "$(dh_psql "SELECT count(*) FROM instance")" "hub: no object lost or duplicated"
if [ "$extra" -gt 0 ]; then
	a_desc=$(dh_spoke_psql "SELECT DISTINCT study_description FROM ledger_instance WHERE study_uid = '$STUDY_A' AND deleted_at IS NULL")
	dh_assert_contains "$a_desc" "offline" "spoke: study A's description from the changes made while the hub was down"
	dh_assert_eq "$a_desc" "$(dh_psql "SELECT description FROM study WHERE study_uid = '$STUDY_A'")" "hub: study A's description"
fi

dh_cc_pair_stop
dh_hub_stop
dh_pass "$last cc through $rounds crash rounds: each applied once, in order; hub equals spoke"
