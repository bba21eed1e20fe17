#!/usr/bin/env bash
# MPPS forwarding (conformance §2.2.1.6.6.3) to a second MPPS SCP: another
# hubd (AE HUB2, its own database), which records what it receives.
#  - the destination is down: messages wait in the durable queue, retried
#    with back-off; hubctl mpps backlog shows them
#  - hubd killed (-9) and restarted with the queue non-empty: nothing lost
#  - the destination comes up: it receives every message once, in order,
#    with data sets byte-identical to what the modality sent
#  - a destination that refuses a message (status 0110): the row is marked
#    refused with the status, and the step's later messages still go
#  - two hubd on one database share the queue: each message sent once
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dh_setup mppsfw
dh_pg_start
dh_psql "CREATE DATABASE dcmhub2"
CONN2=${DH_CONNINFO/dbname=dcmhub/dbname=dcmhub2}
psql2() { psql -XAtq -v ON_ERROR_STOP=1 -d "$CONN2" -c "$1"; }
P2=$(dh_free_port)
dh_hub_config "[remote.MPPSSCU]" "host = 127.0.0.1" "[remote.HUB2]" "host = 127.0.0.1" "port = $P2" \
	"[mpps]" "destinations = HUB2" "retry_interval = 1" "retry_max_interval = 2"
dh_hub_start
SCU=$DH_BUILD/tests/tools/mppsscu
HUBCTL=$DH_BUILD/hub/hubctl

mkdir -p "$T/cache2"
cat >"$T/hub2.conf" <<EOF
[hub]
ae_title = HUB2
port = $P2
log_level = debug
[database]
conninfo = "$CONN2"
pool_size = 4
[storage]
cache_dir = $T/cache2
[remote.DCMHUB]
host = 127.0.0.1
[remote.MPPSSCU]
host = 127.0.0.1
[remote.ECHOSCU]
host = 127.0.0.1
EOF
HUB2_PID=
hub2_start() {
	__dh_daemon_launch hubd2 "$DH_BUILD/hub/hubd" "$T/hub2.conf"
	HUB2_PID=$DH_DAEMON_PID
	DH_BG_PIDS+=("$HUB2_PID")
	__dh_daemon_wait_echo hubd2 HUB2 "$P2" true
}

cat >"$T/create.txt" <<'EOF'
(0008,0005) CS [ISO_IR 100]
(0008,0060) CS [MR]
(0010,0010) PN [Roe^Richard]
(0010,0020) LO [PID-FWD-1]
(0040,0241) AE [MR01]
(0040,0244) DA [20261124]
(0040,0245) TM [090000]
(0040,0250) DA []
(0040,0251) TM []
(0040,0252) CS [IN PROGRESS]
(0040,0253) SH [PPS-FWD]
(0040,0270) SQ (Sequence with undefined length #=1)
  (fffe,e000) na (Item with undefined length #=2)
    (0008,0050) SH [ACC-FWD]
    (0020,000d) UI [1.2.826.0.1.3680043.2.1125.2.1]
  (fffe,e00d) na (ItemDelimitationItem)
(fffe,e0dd) na (SequenceDelimitationItem)
(0040,0340) SQ (Sequence with undefined length #=0)
(fffe,e0dd) na (SequenceDelimitationItem)
EOF
cat >"$T/progress.txt" <<'EOF'
(0040,0252) CS [IN PROGRESS]
(0040,0254) LO [MR brain, contrast]
EOF
cat >"$T/final.txt" <<'EOF'
(0040,0250) DA [20261124]
(0040,0251) TM [093000]
(0040,0252) CS [COMPLETED]
(0040,0340) SQ (Sequence with undefined length #=1)
  (fffe,e000) na (Item with undefined length #=2)
    (0008,103e) LO [T1 axial]
    (0020,000e) UI [1.2.826.0.1.3680043.2.1125.2.2]
  (fffe,e00d) na (ItemDelimitationItem)
(fffe,e0dd) na (SequenceDelimitationItem)
EOF
for f in create progress final; do dump2dcm -F +ti "$T/$f.txt" "$T/$f.raw" 2>/dev/null; done
status_of() { sed -n "${2:-1}s/.*status=\([0-9a-f]*\).*/\1/p" <<<"$1"; }
pending() { dh_psql "SELECT count(*) FROM mpps_forward WHERE state = 'pending'"; }
# wait_sent N: until hub 1 has no pending forward (N seconds at most)
wait_drained() {
	local i
	for ((i = 0; i < $1 * 10; i++)); do
		[ "$(pending)" = 0 ] && return 0
		sleep 0.1
	done
	dh_fail "forward queue not drained within $1 s: $(pending) pending; $("$HUBCTL" -c "$T/hub.conf" mpps backlog)"
}

# ---- the destination is down
A=1.2.826.0.1.3680043.2.1125.9.100
out=$("$SCU" --uid $A 127.0.0.1 "$HUB_PORT" "create:$T/create.raw" "set:$T/progress.raw" "set:$T/final.raw")
for i in 1 2 3; do dh_assert_eq 0000 "$(status_of "$out" $i)" "message $i accepted while the destination is down"; done
sleep 3
dh_assert_eq 3 "$(pending)" "three forwards pending"
tries=$(dh_psql "SELECT attempts FROM mpps_forward ORDER BY message_pk LIMIT 1")
[ "$tries" -ge 2 ] || dh_fail "the first message was not retried (attempts=$tries)"
dh_assert_eq 0 "$(dh_psql "SELECT max(attempts) FROM mpps_forward WHERE message_pk > (SELECT min(message_pk) FROM mpps_forward)")" \
	"later messages of the step wait for the first (order)"
backlog=$("$HUBCTL" -c "$T/hub.conf" --json mpps backlog)
dh_assert_eq "HUB2 3 0" "$("$DH_PYTHON" -c 'import json,sys; d=json.load(sys.stdin)[0]; print(d["destination"], d["pending"], d["refused"])' <<<"$backlog")" \
	"hubctl mpps backlog shows the waiting messages"
dh_assert_contains "$("$HUBCTL" -c "$T/hub.conf" mpps backlog)" "HUB2" "backlog as a table"
dh_assert_eq "3|f" "$(dh_psql "SELECT items, attention FROM mpps_forward_status()")" "hubctl status line: 3 waiting, young"
st=$("$HUBCTL" -c "$T/hub.conf" --json status || true)
dh_assert_eq "3 False" "$("$DH_PYTHON" -c 'import json,sys; d=[x for x in json.load(sys.stdin)["services"] if x["service"] == "mpps"][0]; print(d["items"], d["attention"])' <<<"$st")" \
	"hubctl status: the mpps line shows the 3 waiting messages"
[ "$(dh_psql "SELECT oldest_s FROM mpps_forward_status()")" -ge 2 ] || dh_fail "mpps_forward_status: age of the oldest"

# ---- kill -9 and restart with the queue non-empty
dh_hub_kill9
dh_hub_start
dh_assert_eq 3 "$(pending)" "queue survives kill -9 and restart"

# ---- the destination comes up: everything arrives once, in order, as sent
hub2_start
wait_drained 20
dh_assert_eq "sent|3|0" "$(dh_psql "SELECT state, count(*), max(response_status) FROM mpps_forward GROUP BY state")" \
	"all three forwarded with success"
dh_assert_eq "N-CREATE,N-SET,N-SET|DCMHUB" "$(psql2 "SELECT string_agg(kind, ',' ORDER BY pk), min(calling_ae) FROM mpps_message WHERE sop_instance_uid = '$A'")" \
	"destination received each message once, in order"
dh_assert_eq "$(dh_psql "SELECT string_agg(md5(dataset), ',' ORDER BY pk) FROM mpps_message WHERE sop_instance_uid = '$A'")" \
	"$(psql2 "SELECT string_agg(md5(dataset), ',' ORDER BY pk) FROM mpps_message WHERE sop_instance_uid = '$A'")" \
	"forwarded data sets byte-identical to the stored ones"
sent=$(cat "$T/create.raw" "$T/progress.raw" "$T/final.raw" | md5sum | cut -d' ' -f1)
got=$(psql2 "SELECT encode(dataset, 'hex') FROM mpps_message WHERE sop_instance_uid = '$A' ORDER BY pk" | xxd -r -p | md5sum | cut -d' ' -f1)
dh_assert_eq "$sent" "$got" "destination holds exactly the bytes the modality sent"
dh_assert_eq "COMPLETED|MR brain, contrast|1" "$(psql2 "SELECT status, description, series_count FROM mpps WHERE sop_instance_uid = '$A'")" \
	"destination's step is complete"

# ---- destination up: a new step goes at once (SCP-assigned UID forwarded as the UID)
out=$("$SCU" 127.0.0.1 "$HUB_PORT" "create:$T/create.raw" "set:$T/final.raw")
B=$(sed -n '1s/.*uid=\(.*\)/\1/p' <<<"$out")
dh_assert_eq "0000 0000" "$(status_of "$out" 1) $(status_of "$out" 2)" "second step accepted"
wait_drained 10
dh_assert_eq "COMPLETED" "$(psql2 "SELECT status FROM mpps WHERE sop_instance_uid = '$B'")" "second step forwarded"

# ---- the destination refuses a message: recorded, final, later messages go on
C=1.2.826.0.1.3680043.2.1125.9.300
out=$("$SCU" --aec HUB2 --uid $C 127.0.0.1 "$P2" "create:$T/create.raw")
dh_assert_eq 0000 "$(status_of "$out")" "step C created at the destination directly"
out=$("$SCU" --uid $C 127.0.0.1 "$HUB_PORT" "create:$T/create.raw" "set:$T/final.raw")
dh_assert_eq "0000 0000" "$(status_of "$out" 1) $(status_of "$out" 2)" "step C accepted by hub 1"
wait_drained 10
dh_assert_eq "N-CREATE|refused|272,N-SET|sent|0" \
	"$(dh_psql "SELECT string_agg(m.kind || '|' || f.state || '|' || f.response_status, ',' ORDER BY m.pk) FROM mpps_forward f JOIN mpps_message m ON m.pk = f.message_pk WHERE f.sop_instance_uid = '$C'")" \
	"duplicate refused with 0110 (not retried); the N-SET after it delivered"
show=$("$HUBCTL" -c "$T/hub.conf" mpps show $C)
dh_assert_contains "$show" "refused" "hubctl mpps show: the refusal"
dh_assert_contains "$show" "0110" "hubctl mpps show: the destination's status"
dh_assert_eq "0|0|f" "$(dh_psql "SELECT * FROM mpps_forward_status()")" "hubctl status line: nothing waiting"
dh_assert_eq "HUB2 0 1" "$("$DH_PYTHON" -c 'import json,sys; d=json.load(sys.stdin)[0]; print(d["destination"], d["pending"], d["refused"])' <<<"$("$HUBCTL" -c "$T/hub.conf" --json mpps backlog)")" \
	"backlog: nothing pending, one refused"

# ---- two hubd on one database share the queue: destination down, steps
# arrive at both, destination up: each message delivered once, in order
__dh_daemon_terminate hubd2 "$HUB2_PID"
dh_assert_eq 0 "$DH_DAEMON_STATUS" "destination hubd stopped cleanly"
H1B_PORT=$(dh_free_port)
sed -e "s/^port = $HUB_PORT\$/port = $H1B_PORT/" "$T/hub.conf" >"$T/hub1b.conf"
__dh_daemon_launch hubd1b "$DH_BUILD/hub/hubd" "$T/hub1b.conf"
H1B_PID=$DH_DAEMON_PID
DH_BG_PIDS+=("$H1B_PID")
__dh_daemon_wait_echo hubd1b DCMHUB "$H1B_PORT" true
before=$(dh_psql "SELECT count(*) FROM mpps_message")
N=15
"$SCU" --new-uid 127.0.0.1 "$HUB_PORT" $(for ((i = 0; i < N; i++)); do echo "create:$T/create.raw set:$T/final.raw"; done) >"$T/h1.out" &
p1=$!
"$SCU" --new-uid 127.0.0.1 "$H1B_PORT" $(for ((i = 0; i < N; i++)); do echo "create:$T/create.raw set:$T/final.raw"; done) >"$T/h1b.out" &
p2=$!
wait $p1 || dh_fail "steps to hub 1"
wait $p2 || dh_fail "steps to hub 1b"
dh_assert_eq $((4 * N)) "$(cat "$T/h1.out" "$T/h1b.out" | grep -c 'status=0000')" "all accepted by the two hubs"
sleep 2
hub2_start
wait_drained 30
dh_assert_eq "$((before + 4 * N))|0" "$(dh_psql "SELECT count(*), count(*) FILTER (WHERE f.state <> 'sent' AND m.pk > $before) FROM mpps_message m JOIN mpps_forward f ON f.message_pk = m.pk")" \
	"every message forwarded"
dh_assert_eq "$((4 * N))" "$(psql2 "SELECT count(*) FROM mpps_message m JOIN mpps s USING (sop_instance_uid) WHERE s.source_ae = 'DCMHUB' AND s.status = 'COMPLETED' AND m.sop_instance_uid NOT IN ('$A', '$B', '$C')")" \
	"destination received each message of the $((2 * N)) steps once"
dh_assert_eq 0 "$(psql2 "SELECT count(*) FROM (SELECT sop_instance_uid, string_agg(kind, ',' ORDER BY pk) k FROM mpps_message GROUP BY 1) x WHERE k <> 'N-CREATE,N-SET' AND k <> 'N-CREATE,N-SET,N-SET' AND sop_instance_uid <> '$C'")" \
	"in order per step"
__dh_daemon_terminate hubd1b "$H1B_PID"
dh_assert_eq 0 "$DH_DAEMON_STATUS" "second source hubd stopped cleanly"
__dh_daemon_terminate hubd2 "$HUB2_PID"
dh_assert_eq 0 "$DH_DAEMON_STATUS" "destination hubd stopped cleanly"
dh_hub_stop
dh_pass
