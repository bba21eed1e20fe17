#!/usr/bin/env bash
# MPPS SCP (conformance §2.2.1.6.6): every status of Tables 2.2-36 and
# 2.2-38 with an N-CREATE/N-SET client (tests/tools/mppsscu), the step and
# every accepted message stored (data set as received), nothing stored for
# a refused request, and hubctl mpps list/show.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dh_setup mpps
dh_pg_start
dh_hub_config "[remote.MPPSSCU]" "host = 127.0.0.1"
dh_hub_start
SCU=$DH_BUILD/tests/tools/mppsscu
HUBCTL=$DH_BUILD/hub/hubctl

# mk NAME [SED-ARGS...]: $T/NAME.dcm from the N-CREATE template, edited by sed
cat >"$T/tpl_create.txt" <<'EOF'
(0008,0005) CS [ISO_IR 100]
(0008,0060) CS [CT]
(0010,0010) PN [Doe^Jane]
(0010,0020) LO [PID-MPPS-1]
(0010,0030) DA [19700101]
(0010,0040) CS [F]
(0020,0010) SH [S1]
(0040,0241) AE [CT01]
(0040,0242) SH [CTSTATION]
(0040,0243) SH [ROOM1]
(0040,0244) DA [20261124]
(0040,0245) TM [101500]
(0040,0250) DA []
(0040,0251) TM []
(0040,0252) CS [IN PROGRESS]
(0040,0253) SH [PPS-1]
(0040,0254) LO [CT chest]
(0040,0270) SQ (Sequence with undefined length #=1)
  (fffe,e000) na (Item with undefined length #=4)
    (0008,0050) SH [ACC-1]
    (0020,000d) UI [1.2.826.0.1.3680043.2.1125.1.1]
    (0040,0009) SH [SPS-1]
    (0040,1001) SH [RP-1]
  (fffe,e00d) na (ItemDelimitationItem)
(fffe,e0dd) na (SequenceDelimitationItem)
(0040,0340) SQ (Sequence with undefined length #=0)
(fffe,e0dd) na (SequenceDelimitationItem)
EOF
# the final N-SET: Note 2 attributes and one performed series
cat >"$T/tpl_final.txt" <<'EOF'
(0040,0250) DA [20261124]
(0040,0251) TM [103000]
(0040,0252) CS [COMPLETED]
(0040,0340) SQ (Sequence with undefined length #=1)
  (fffe,e000) na (Item with undefined length #=4)
    (0008,0054) AE [DCMHUB]
    (0008,103e) LO [Chest 1mm]
    (0018,1030) LO [CHEST]
    (0020,000e) UI [1.2.826.0.1.3680043.2.1125.1.2]
  (fffe,e00d) na (ItemDelimitationItem)
(fffe,e0dd) na (SequenceDelimitationItem)
EOF
mk() {
	local name=$1 src=$2
	shift 2
	sed "$@" "$T/tpl_$src.txt" >"$T/$name.txt"
	rm -f "$T/$name.raw"
	dump2dcm -F +ti "$T/$name.txt" "$T/$name.raw" 2>/dev/null && [ -s "$T/$name.raw" ] || dh_fail "dump2dcm $name"
}
mk create create -e ''
mk final final -e ''
# send UID OP:NAME... -> "OP status=XXXX uid=..." lines
send() {
	local uid=$1 args=()
	shift
	for a in "$@"; do args+=("${a%%:*}:$T/${a#*:}.raw"); done
	if [ -n "$uid" ]; then
		"$SCU" --uid "$uid" 127.0.0.1 "$HUB_PORT" "${args[@]}"
	else
		"$SCU" 127.0.0.1 "$HUB_PORT" "${args[@]}"
	fi
}
status_of() { sed -n "${2:-1}s/.*status=\([0-9a-f]*\).*/\1/p" <<<"$1"; }

U1=1.2.826.0.1.3680043.2.1125.9.1
# ---- N-CREATE (Table 2.2-36)
out=$(send $U1 create:create)
dh_assert_eq 0000 "$(status_of "$out")" "valid N-CREATE succeeds"
dh_assert_eq "IN PROGRESS|PID-MPPS-1|ACC-1|1.2.826.0.1.3680043.2.1125.1.1|CT|CT01|PPS-1|MPPSSCU" \
	"$(dh_psql "SELECT status, patient_id, accession_number, study_uid, modality, station_ae, pps_id, source_ae FROM mpps WHERE sop_instance_uid = '$U1'")" \
	"step indexed with its key attributes"
out=$(send $U1 create:create)
dh_assert_eq 0110 "$(status_of "$out")" "duplicate SOP Instance UID: processing failure"
for st in COMPLETED DISCONTINUED BOGUS; do
	mk "c_$st" create -e "s/\[IN PROGRESS\]/[$st]/"
	out=$(send 1.2.826.0.1.3680043.2.1125.9.2 "create:c_$st")
	dh_assert_eq 0106 "$(status_of "$out")" "N-CREATE with status $st: invalid attribute value"
done
n=0
for tag in 0040,0241 0040,0244 0040,0245 0040,0252 0040,0253 0008,0060; do
	n=$((n + 1))
	mk "m_$n" create -e "/^($tag)/d"
	out=$(send "1.2.826.0.1.3680043.2.1125.9.3$n" "create:m_$n")
	dh_assert_eq 0121 "$(status_of "$out")" "N-CREATE without ($tag): missing attribute"
	mk "e_$n" create -e "s/^\(($tag) [A-Z][A-Z]\) \[.*\]/\1 []/"
	out=$(send "1.2.826.0.1.3680043.2.1125.9.4$n" "create:e_$n")
	dh_assert_eq 0121 "$(status_of "$out")" "N-CREATE with ($tag) empty: missing attribute"
done
mk m_study create -e '/^    (0020,000d)/d'
out=$(send 1.2.826.0.1.3680043.2.1125.9.5 create:m_study)
dh_assert_eq 0121 "$(status_of "$out")" "N-CREATE without >Study Instance UID: missing attribute"
mk m_sps create -e '/^(0040,0270)/,/^(fffe,e0dd)/d'
out=$(send 1.2.826.0.1.3680043.2.1125.9.6 create:m_sps)
dh_assert_eq 0121 "$(status_of "$out")" "N-CREATE without Scheduled Step Attribute Sequence: missing attribute"
mk e_sps create -e '/^(0040,0270)/,/^(fffe,e0dd)/c (0040,0270) SQ (Sequence with undefined length #=0)\n(fffe,e0dd) na (SequenceDelimitationItem)'
out=$(send 1.2.826.0.1.3680043.2.1125.9.7 create:e_sps)
dh_assert_eq 0121 "$(status_of "$out")" "N-CREATE with an empty Scheduled Step Attribute Sequence: missing attribute"
dh_assert_eq 1 "$(dh_psql "SELECT count(*) FROM mpps")" "refused N-CREATEs store nothing"

# no Affected SOP Instance UID: the hub assigns one and returns it
out=$(send "" create:create)
dh_assert_eq 0000 "$(status_of "$out")" "N-CREATE without a UID succeeds"
U2=$(sed -n 's/.*uid=\(.*\)/\1/p' <<<"$out")
[[ "$U2" =~ ^2\.25\.[0-9]+$ ]] || dh_fail "assigned UID '$U2' is not a 2.25 UID"
dh_assert_eq 1 "$(dh_psql "SELECT count(*) FROM mpps WHERE sop_instance_uid = :'p1'" "$U2")" "assigned UID stored"

# ---- N-SET (Table 2.2-38)
echo '(0040,0254) LO [CT chest and abdomen]' >>"$T/tpl_final.txt"
mk s_desc final -e '/^(0040,025[01])/d' -e '/^(0040,0340)/,/^(fffe,e0dd)/d' -e 's/\[COMPLETED\]/[IN PROGRESS]/'
sed -i '$d' "$T/tpl_final.txt"
out=$(send 1.2.826.0.1.3680043.2.1125.9.99 set:s_desc)
dh_assert_eq 0112 "$(status_of "$out")" "N-SET of an unknown step: no such object instance"
mk s_bogus final -e 's/\[COMPLETED\]/[FINISHED]/'
out=$(send $U1 set:s_bogus)
dh_assert_eq 0106 "$(status_of "$out")" "N-SET with status FINISHED: invalid attribute value"
mk s_pid final -e '1i (0010,0020) LO [OTHER]'
out=$(send $U1 set:s_pid)
dh_assert_eq 0110 "$(status_of "$out")" "N-SET of Patient ID (not updatable): processing failure"
mk s_start final -e '1i (0040,0244) DA [20200101]'
out=$(send $U1 set:s_start)
dh_assert_eq 0110 "$(status_of "$out")" "N-SET of the start date (not updatable): processing failure"
for tag in 0040,0250 0040,0251; do
	mk "s_no_$tag" final -e "/^($tag)/d"
	out=$(send $U1 "set:s_no_$tag")
	dh_assert_eq 0121 "$(status_of "$out")" "N-SET to COMPLETED without ($tag): missing attribute"
done
mk s_no_series final -e '/^(0040,0340)/,$d'
out=$(send $U1 set:s_no_series)
dh_assert_eq 0121 "$(status_of "$out")" "N-SET to COMPLETED without Performed Series Sequence: missing attribute"
dh_assert_eq "IN PROGRESS|1" "$(dh_psql "SELECT status, (SELECT count(*) FROM mpps_message WHERE sop_instance_uid = '$U1') FROM mpps WHERE sop_instance_uid = '$U1'")" \
	"refused N-SETs change nothing"
# an intermediate N-SET, then the final one, on one association
out=$(send $U1 set:s_desc set:final)
dh_assert_eq 0000 "$(status_of "$out" 1)" "intermediate N-SET (IN PROGRESS) succeeds"
dh_assert_eq 0000 "$(status_of "$out" 2)" "final N-SET (COMPLETED) succeeds"
dh_assert_eq "COMPLETED|20261124|103000|CT chest and abdomen|1|PID-MPPS-1" \
	"$(dh_psql "SELECT status, end_date, end_time, description, series_count, patient_id FROM mpps WHERE sop_instance_uid = '$U1'")" \
	"updates applied to the step"
dh_assert_eq "N-CREATE,N-SET,N-SET" "$(dh_psql "SELECT string_agg(kind, ',' ORDER BY pk) FROM mpps_message WHERE sop_instance_uid = '$U1'")" \
	"each accepted message kept, in order"
out=$(send $U1 set:s_desc)
dh_assert_eq 0110 "$(status_of "$out")" "N-SET after COMPLETED: processing failure"
# DISCONTINUED ends a step too
mk s_disc final -e 's/\[COMPLETED\]/[DISCONTINUED]/'
out=$(send "$U2" set:s_disc set:s_desc)
dh_assert_eq 0000 "$(status_of "$out" 1)" "N-SET to DISCONTINUED succeeds"
dh_assert_eq 0110 "$(status_of "$out" 2)" "N-SET after DISCONTINUED: processing failure"

# the stored messages are the data sets as sent (Implicit VR LE, nothing lost)
dh_psql "SELECT encode(dataset, 'hex') FROM mpps_message WHERE sop_instance_uid = '$U1' ORDER BY pk LIMIT 1" |
	xxd -r -p >"$T/stored_create.raw"
cmp "$T/create.raw" "$T/stored_create.raw" || dh_fail "stored N-CREATE differs from the bytes sent"
dh_psql "SELECT encode(dataset, 'hex') FROM mpps_message WHERE sop_instance_uid = '$U1' ORDER BY pk OFFSET 2" |
	xxd -r -p >"$T/stored_final.raw"
cmp "$T/final.raw" "$T/stored_final.raw" || dh_fail "stored final N-SET differs from the bytes sent"
# the step's current data set: N-CREATE with every N-SET applied
dh_psql "SELECT encode(dataset, 'hex') FROM mpps WHERE sop_instance_uid = '$U1'" | xxd -r -p >"$T/current.raw"
cur=$(dcmdump -q -f -ti "$T/current.raw")
dh_assert_contains "$cur" "[COMPLETED]" "current data set has the final status"
dh_assert_contains "$cur" "[Chest 1mm]" "current data set has the performed series"
dh_assert_contains "$cur" "[Doe^Jane]" "current data set keeps the N-CREATE attributes"

# ---- Latin-1 (ISO_IR 100) text: UTF-8 in the index, the bytes as received in the message
mk c_latin create -e "s/Doe^Jane/M$(printf '\xfc')ller^Hans/"
out=$(send 1.2.826.0.1.3680043.2.1125.9.9 create:c_latin)
dh_assert_eq 0000 "$(status_of "$out")" "Latin-1 N-CREATE accepted"
dh_assert_eq "Müller^Hans" "$(dh_psql "SELECT patient_name FROM mpps WHERE sop_instance_uid = '1.2.826.0.1.3680043.2.1125.9.9'")" \
	"patient name indexed as UTF-8"
dh_assert_eq 1 "$(dh_psql "SELECT count(*) FROM mpps_message WHERE sop_instance_uid = '1.2.826.0.1.3680043.2.1125.9.9' AND position('\\x4dfc6c6c6572'::bytea IN dataset) > 0")" \
	"message kept in its own character set"

# ---- a data set that does not parse: processing failure, association goes on
printf '\x10\x00\x20\x00\xff\xff\xff\x7fXXXX' >"$T/garbage.raw"
head -c 3 "$T/create.raw" >"$T/short.raw"
printf '\x00' >>"$T/short.raw"
out=$("$SCU" --uid 1.2.826.0.1.3680043.2.1125.9.8 127.0.0.1 "$HUB_PORT" "create:$T/garbage.raw" "create:$T/short.raw" "create:$T/create.raw")
dh_assert_eq "0110 0110 0000" "$(status_of "$out" 1) $(status_of "$out" 2) $(status_of "$out" 3)" \
	"unparsable data sets refused with 0110; the association goes on"

# ---- a context other than Implicit VR LE is refused (Table 2.2-34)
if "$SCU" --explicit 127.0.0.1 "$HUB_PORT" create:"$T/create.raw" >"$T/explicit.out" 2>&1; then
	dh_fail "an MPPS context in Explicit VR LE was accepted"
fi
dh_assert_contains "$(cat "$T/explicit.out")" "rejected" "MPPS only in Implicit VR LE (association rejected)"

# ---- hubctl mpps
list=$("$HUBCTL" -c "$T/hub.conf" mpps list)
dh_assert_contains "$list" "$U1" "mpps list shows the step"
dh_assert_contains "$list" "COMPLETED" "mpps list shows its status"
json=$("$HUBCTL" -c "$T/hub.conf" --json mpps list)
dh_assert_eq 4 "$("$DH_PYTHON" -c 'import json,sys; print(len(json.load(sys.stdin)))' <<<"$json")" "mpps list --json: four steps"
show=$("$HUBCTL" -c "$T/hub.conf" mpps show "$U1")
dh_assert_contains "$show" "PID-MPPS-1" "mpps show: patient"
dh_assert_contains "$show" "N-SET" "mpps show: messages"
jshow=$("$HUBCTL" -c "$T/hub.conf" --json mpps show "$U1")
dh_assert_eq "3 COMPLETED" "$("$DH_PYTHON" -c 'import json,sys; d=json.load(sys.stdin); print(len(d["messages"]), d["status"])' <<<"$jshow")" \
	"mpps show --json: step and its three messages"
if "$HUBCTL" -c "$T/hub.conf" mpps show 1.2.3.4.5 >/dev/null 2>&1; then dh_fail "mpps show of an unknown UID succeeded"; fi
dh_hub_stop

# a destination without an address is a configuration error, said at start-up
printf '[mpps]\ndestinations = NOWHERE\n' >"$T/bad.conf"
if "$DH_BUILD/hub/hubd" -c "$T/bad.conf" --check-config 2>"$T/bad.err"; then dh_fail "mpps destination without [remote.NOWHERE] accepted"; fi
dh_assert_contains "$(cat "$T/bad.err")" "NOWHERE has no [remote.NOWHERE] section" "clear configuration error"
dh_pass
