#!/usr/bin/env bash
# Two hubd processes on one database (the "beyond one machine" design): a
# spoke's change contexts reach both at once, every sequence sent to both
# concurrently. The per-spoke advisory lock and the (spoke, sequence) key
# must make each cc applied exactly once, in sequence order, whichever hub
# got it first; both hubs acknowledge.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dh_setup cc2hubs
dh_pg_start

HUBCTL=$DH_BUILD/hub/hubctl
CCSEND=$DH_BUILD/tests/tools/ccsend
HUB_PUB=$("$HUBCTL" keygen --secret-file "$T/hub.key")
S1_PUB=$("$HUBCTL" keygen --secret-file "$T/site1.key")
CC1=$(dh_free_port)
CC2=$(dh_free_port)
dh_hub_config "[hub]" "log_level = info" "[cc]" "secret_key_file = $T/hub.key" "endpoint = tcp://127.0.0.1:$CC1" \
	"[spoke.SITE1]" "public_key = $S1_PUB" "ae_titles = STORESCU"
dh_hub_start

# the second hubd: same database, cache and keys; its own ports
HUB2_PORT=$(dh_free_port)
sed -e "s/^port = $HUB_PORT\$/port = $HUB2_PORT/" -e "s|tcp://127.0.0.1:$CC1|tcp://127.0.0.1:$CC2|" \
	"$T/hub.conf" >"$T/hub2.conf"
setsid -f bash -c 'exec "$1" -c "$2" >>"$3" 2>&1 </dev/null' x "$DH_BUILD/hub/hubd" "$T/hub2.conf" "$T/hubd2.log"
dh_wait_echo "$HUB2_PORT" DCMHUB
HUB2_PID=$(pgrep -f "hubd -c $T/hub2.conf" | head -n 1)
[ -n "$HUB2_PID" ] || dh_fail "second hubd not found"
DH_BG_PIDS+=("$HUB2_PID")

STUDY=$(python3 -c 'import uuid; print("2.25.%d" % uuid.uuid4().int)')
dh_variant "$(dh_samples)/CT_small.dcm" "$T/a.dcm" -gin -m "StudyInstanceUID=$STUDY"
storescu -aet STORESCU -aec DCMHUB 127.0.0.1 "$HUB_PORT" "$T/a.dcm" || dh_fail "storescu failed"

N=40
for ((seq = 1; seq <= N; seq++)); do
	"$CCSEND" --endpoint "tcp://127.0.0.1:$CC1" --server-key "$HUB_PUB" --secret-file "$T/site1.key" \
		--spoke SITE1 --timeout 15 --attr "$STUDY" "$seq" >"$T/a1.$seq" 2>&1 &
	p1=$!
	"$CCSEND" --endpoint "tcp://127.0.0.1:$CC2" --server-key "$HUB_PUB" --secret-file "$T/site1.key" \
		--spoke SITE1 --timeout 15 --attr "$STUDY" "$seq" >"$T/a2.$seq" 2>&1 &
	p2=$!
	wait "$p1" || dh_fail "hub 1 did not acknowledge cc $seq: $(cat "$T/a1.$seq")"
	wait "$p2" || dh_fail "hub 2 did not acknowledge cc $seq: $(cat "$T/a2.$seq")"
	dh_assert_eq "ack $seq" "$(head -n 1 "$T/a1.$seq")" "hub 1 acknowledges through $seq"
	dh_assert_eq "ack $seq" "$(head -n 1 "$T/a2.$seq")" "hub 2 acknowledges through $seq"
done

dh_assert_eq "$N" "$(dh_psql "SELECT count(*) FROM cc_log WHERE spoke_id = 'SITE1'")" "each cc recorded once"
dh_assert_eq "$N" "$(dh_psql "SELECT count(*) FROM cc_log WHERE spoke_id = 'SITE1' AND state = 'applied'")" "each cc applied"
dh_assert_eq 0 "$(dh_psql "SELECT count(*) FROM (SELECT sequence, lag(sequence) OVER (ORDER BY pk) AS prev FROM cc_log WHERE spoke_id = 'SITE1') x WHERE prev IS NOT NULL AND sequence <> prev + 1")" "applied in sequence order"
dh_assert_eq "$N" "$(dh_psql "SELECT received_through FROM cc_stream WHERE spoke_id = 'SITE1'")" "stream position"
dh_assert_eq "changed by ccsend" "$(dh_psql "SELECT description FROM study WHERE study_uid = '$STUDY'")" "the change is in the index"

kill -TERM "$HUB2_PID"
for ((i = 0; i < 100; i++)); do kill -0 "$HUB2_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$HUB2_PID" 2>/dev/null && dh_fail "second hubd did not stop"
dh_hub_stop
dh_pass "$N cc sent to two hubs at once: each applied once, in order"
