#!/usr/bin/env bash
# Key Object Selection documents at the hub (issue 6, seeds kb-119333 and
# kb-119341): a compliant KOS (dciodvfy finds no error) is registered in the
# transaction of its ingest and shown by `hubctl kos`; non-compliant ones
# (no title, no evidence, a reference the evidence does not list, a bogus
# value type) are kept with B007 and quarantined: no instance row, so
# C-FIND counts and C-MOVE never include them; a resend adds nothing;
# release and discard are recorded with who and why. IHE IOCM rejection
# notes hide what they reference exactly like a DELETE (C-FIND, counts and
# C-MOVE agree), also for an instance that arrives after its rejection.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dh_setup kos
dh_pg_start
DEST_PORT=$(dh_free_port)
dh_hub_config "[qr]" "pending_interval = 0" "[remote.DEST]" "host = 127.0.0.1" "port = $DEST_PORT"
dh_hub_start
HUBCTL=$DH_BUILD/hub/hubctl
MKKOS=$DH_SRC/tests/integration/mkkos.py
hc() { "$HUBCTL" -c "$T/hub.conf" "$@"; }
mkdir -p "$T/dest" "$T/in"
dh_bg storescp -aet DEST -od "$T/dest" "$DEST_PORT"
dh_wait_echo "$DEST_PORT" DEST

S=$(dh_samples)
ST=1.2.826.0.1.3680043.9.7781.1
SE=$ST.1
for i in 1 2 3 4 5; do
	dh_variant "$S/CT_small.dcm" "$T/in/c$i.dcm" -gin -m "StudyInstanceUID=$ST" -m "SeriesInstanceUID=$SE" \
		-m "PatientID=KOS1" -m "AccessionNumber=KACC" -m "InstanceNumber=$i"
done
sop() { dcmdump -q +P 0008,0018 "$1" | sed 's/.*\[\(.*\)\].*/\1/'; }
# c5 is held back: it is rejected before it arrives
storescu -aec DCMHUB 127.0.0.1 "$HUB_PORT" "$T"/in/c[1-4].dcm || dh_fail "store CT"

# store FILE: prints the C-STORE response status (hex) the hub gave
store() {
	storescu -d -aec DCMHUB 127.0.0.1 "$HUB_PORT" "$1" 2>&1 | tee -a "$T/storescu.log" |
		sed -n 's/.*DIMSE Status *: 0x\([0-9a-fA-F]*\).*/\1/p' | tail -n 1 | tr 'A-F' 'a-f'
}
# C-FIND at study level: number of study related instances
count_find() {
	local d=$T/find
	rm -rf "$d" && mkdir -p "$d"
	findscu -S -aec DCMHUB -X -od "$d" -k QueryRetrieveLevel=STUDY -k StudyInstanceUID="$ST" \
		-k NumberOfStudyRelatedInstances 127.0.0.1 "$HUB_PORT" >>"$T/findscu.log" 2>&1 || dh_fail "findscu"
	dcmdump -q +P 0020,1208 "$d"/rsp*.dcm | sed 's/.*\[\(.*\)\].*/\1/' | head -n 1
}
# C-FIND at image level: the SOP UIDs, sorted
find_sops() {
	local d=$T/find
	rm -rf "$d" && mkdir -p "$d"
	findscu -S -aec DCMHUB -X -od "$d" -k QueryRetrieveLevel=IMAGE -k StudyInstanceUID="$ST" \
		-k SeriesInstanceUID -k SOPInstanceUID 127.0.0.1 "$HUB_PORT" >>"$T/findscu.log" 2>&1 || dh_fail "findscu"
	for f in "$d"/rsp*.dcm; do [ -f "$f" ] && sop "$f"; done | sort
}
# C-MOVE of the study to DEST: the SOP UIDs delivered, sorted
move_sops() {
	rm -f "$T"/dest/*
	movescu -S -aec DCMHUB -aem DEST -k QueryRetrieveLevel=STUDY -k StudyInstanceUID="$ST" \
		127.0.0.1 "$HUB_PORT" >>"$T/movescu.log" 2>&1 || dh_fail "movescu (see movescu.log)"
	for f in "$T"/dest/*; do [ -f "$f" ] && sop "$f"; done | sort
}
# C-FIND's count, its image-level answers and C-MOVE's delivery agree
agree() {
	local n found moved
	n=$(count_find)
	found=$(find_sops)
	moved=$(move_sops)
	dh_assert_eq "$1" "$n" "$2: C-FIND count"
	dh_assert_eq "$found" "$moved" "$2: C-FIND answers equal what C-MOVE delivers"
	dh_assert_eq "$1" "$(grep -c . <<<"$moved")" "$2: C-MOVE delivers the count"
}

# ---- 1. a compliant KOS is registered ----
"$DH_PYTHON" "$MKKOS" "$T/k1.dcm" "$T/in/c1.dcm" "$T/in/c2.dcm" --title "113000:DCM:Of Interest" \
	--author "Reader^Rita" >/dev/null
"$DH_PYTHON" "$MKKOS" "$T/k2.dcm" "$T/in/c3.dcm" --title "TCE001:IHERADTF:For Teaching File Export" >/dev/null
for k in k1 k2; do
	if ! dciodvfy "$T/$k.dcm" >"$T/$k.dvfy" 2>&1; then dh_fail "dciodvfy finds errors in $k: $(cat "$T/$k.dvfy")"; fi
	dh_assert_eq 0000 "$(store "$T/$k.dcm")" "compliant KOS $k stored"
done
K1=$(sop "$T/k1.dcm")
dh_assert_eq 2 "$(dh_psql "SELECT count(*) FROM kos_document")" "two documents registered"
dh_assert_eq "113000|DCM|Of Interest|Reader^Rita|20240102|101500|f" \
	"$(dh_psql "SELECT title_code, title_scheme, title_meaning, author, content_date, content_time, rejection FROM kos_document WHERE sop_uid = '$K1'")" \
	"title, author and date of k1"
dh_assert_eq "content:2 evidence:2" \
	"$(dh_psql "SELECT string_agg(origin || ':' || n, ' ' ORDER BY origin) FROM (SELECT origin, count(*) n FROM kos_reference r JOIN kos_document d ON d.pk = r.kos_fk WHERE d.sop_uid = '$K1' GROUP BY origin) x")" \
	"k1's references"
out=$(hc kos "$ST")
echo "$out" >"$T/kos.txt"
dh_assert_contains "$out" "113000 (DCM)" "hubctl kos: title code"
dh_assert_contains "$out" "For Teaching File Export" "hubctl kos: second title"
dh_assert_contains "$out" "Reader^Rita" "hubctl kos: author"
dh_assert_contains "$out" "$(sop "$T/in/c1.dcm")" "hubctl kos: referenced instance"
hc kos "$ST" --json >"$T/kos.json"
dh_assert_eq "2 Of Interest 4 indexed" "$("$DH_PYTHON" -c '
import json, sys
d = json.load(open(sys.argv[1]))
k = d["documents"][0]
print(len(d["documents"]), k["title"]["meaning"], len(k["references"]), k["references"][0]["state"])' "$T/kos.json")" \
	"hubctl kos --json"
dh_assert_contains "$(hc kos --help)" "usage: hubctl" "hubctl kos --help"
set +e
hc kos >/dev/null 2>&1
rc=$?
set -e
dh_assert_eq 2 "$rc" "hubctl kos without a study: usage error"
agree 6 "4 CT + 2 KOS"

# ---- 1b. registration failing for another reason (the database): no half state ----
dh_psql "ALTER TABLE kos_reference ADD CONSTRAINT test_fault CHECK (origin <> 'content') NOT VALID" >/dev/null
"$DH_PYTHON" "$MKKOS" "$T/k3.dcm" "$T/in/c4.dcm" --title "113000:DCM:Of Interest" >/dev/null
K3=$(sop "$T/k3.dcm")
files_before=$(find "$T/cache" -name '*.dcm' | wc -l)
dh_assert_eq 0110 "$(store "$T/k3.dcm")" "registration failed in the database: processing failure"
dh_assert_eq "0 0 0" "$(dh_psql "SELECT (SELECT count(*) FROM instance WHERE sop_uid = '$K3') || ' ' || (SELECT count(*) FROM kos_document WHERE sop_uid = '$K3') || ' ' || (SELECT count(*) FROM quarantine WHERE sop_uid = '$K3')")" \
	"nothing of it in the index, kos tables or quarantine"
dh_assert_eq "$files_before" "$(find "$T/cache" -name '*.dcm' | wc -l)" "no file left in the cache"
dh_psql "ALTER TABLE kos_reference DROP CONSTRAINT test_fault" >/dev/null
agree 6 "after the failed registration"

# ---- 2. non-compliant KOS: kept, quarantined, invisible ----
for b in notitle noevidence badref badvt; do
	"$DH_PYTHON" "$MKKOS" "$T/b_$b.dcm" "$T/in/c1.dcm" "$T/in/c2.dcm" --break "$b" >/dev/null
	dh_assert_eq b007 "$(store "$T/b_$b.dcm")" "malformed KOS ($b) kept with B007"
done
dh_assert_eq 4 "$(dh_psql "SELECT count(*) FROM quarantine WHERE state = 'quarantined'")" "four quarantine items"
for b in notitle noevidence badref badvt; do
	u=$(sop "$T/b_$b.dcm")
	dh_assert_eq 0 "$(dh_psql "SELECT count(*) FROM instance WHERE sop_uid = '$u' OR received_sop_uid = '$u'")" \
		"quarantined $b has no instance row"
	f=$(dh_psql "SELECT file_path FROM quarantine WHERE sop_uid = '$u'")
	cmp -s "$T/cache/$f" "$T/b_$b.dcm" || dcmdump -q "$T/cache/$f" >/dev/null || dh_fail "quarantined $b not kept in the cache"
done
dh_assert_contains "$(dh_psql "SELECT reason FROM quarantine WHERE sop_uid = '$(sop "$T/b_badref.dcm")'")" \
	"which the evidence sequence does not list" "reason of badref"
dh_assert_contains "$(dh_psql "SELECT reason FROM quarantine WHERE sop_uid = '$(sop "$T/b_notitle.dcm")'")" \
	"document title" "reason of notitle"
# a resend stores nothing twice
dh_assert_eq b007 "$(store "$T/b_badvt.dcm")" "resend of a quarantined KOS"
dh_assert_eq 4 "$(dh_psql "SELECT count(*) FROM quarantine")" "resend: no new item"
agree 6 "quarantined objects are not counted or moved"
out=$(hc quarantine list)
echo "$out" >"$T/qlist.txt"
for b in notitle noevidence badref badvt; do
	dh_assert_contains "$out" "$(sop "$T/b_$b.dcm")" "quarantine list shows $b"
done
dh_assert_eq 4 "$(hc quarantine list --json | "$DH_PYTHON" -c 'import json,sys; print(len(json.load(sys.stdin)))')" \
	"quarantine list --json"

# ---- 3. operator actions: release and discard, recorded ----
QV=$(dh_psql "SELECT pk FROM quarantine WHERE sop_uid = '$(sop "$T/b_badvt.dcm")'")
QN=$(dh_psql "SELECT pk FROM quarantine WHERE sop_uid = '$(sop "$T/b_notitle.dcm")'")
set +e
hc quarantine release "$QV" >/dev/null 2>&1
rc=$?
set -e
dh_assert_eq 2 "$rc" "release without --reason is a usage error"
out=$(hc quarantine release "$QV" --reason "sender confirmed content" --operator alice)
dh_assert_contains "$out" "released" "release reports"
dh_assert_eq "released" "$(dh_psql "SELECT state FROM quarantine WHERE pk = $QV")" "released state"
dh_assert_eq "alice|release|sender confirmed content|$ST" \
	"$(dh_psql "SELECT operator_name, action, reason, study_uid FROM operator_action WHERE target_kind = 'quarantine' AND target_pk = $QV")" \
	"release recorded"
dh_assert_eq 1 "$(dh_psql "SELECT count(*) FROM instance WHERE sop_uid = '$(sop "$T/b_badvt.dcm")'")" "released object indexed"
agree 7 "released object visible"
fq=$(dh_psql "SELECT file_path FROM quarantine WHERE pk = $QN")
hc quarantine discard "$QN" --reason "garbage from test" --operator bob >/dev/null
dh_assert_eq "discarded" "$(dh_psql "SELECT state FROM quarantine WHERE pk = $QN")" "discarded state"
dh_assert_eq "bob|discard" \
	"$(dh_psql "SELECT operator_name, action FROM operator_action WHERE target_kind = 'quarantine' AND target_pk = $QN")" \
	"discard recorded"
[ ! -e "$T/cache/$fq" ] || dh_fail "discarded file still in the cache"
set +e
hc quarantine discard "$QN" --reason again >/dev/null 2>&1
rc=$?
set -e
dh_assert_eq 1 "$rc" "a settled item cannot be settled again"
out=$(hc quarantine show "$QV")
dh_assert_contains "$out" "sender confirmed content" "show: the action"
dh_assert_contains "$out" "unknown Value Type" "show: why it was quarantined"
dh_assert_eq "released alice" "$(hc quarantine show "$QV" --json | "$DH_PYTHON" -c '
import json, sys
d = json.load(sys.stdin)
print(d["state"], d["actions"][0]["operator"])')" "quarantine show --json"
dh_assert_eq 2 "$(hc quarantine list | grep -c '^[0-9]')" "two items left open"
agree 7 "after the operator actions"

# ---- 4. IOCM rejection at the hub ----
C3=$(sop "$T/in/c3.dcm")
C4=$(sop "$T/in/c4.dcm")
C5=$(sop "$T/in/c5.dcm")
"$DH_PYTHON" "$MKKOS" "$T/rej.dcm" "$T/in/c3.dcm" "$T/in/c4.dcm" --title "113001:DCM:Rejected for Quality Reasons" >/dev/null
dciodvfy "$T/rej.dcm" >"$T/rej.dvfy" 2>&1 || dh_fail "dciodvfy finds errors in the rejection note: $(cat "$T/rej.dvfy")"
dh_assert_eq 0000 "$(store "$T/rej.dcm")" "rejection note stored"
dh_assert_eq "t|2" "$(dh_psql "SELECT rejection, hidden FROM kos_document WHERE sop_uid = '$(sop "$T/rej.dcm")'")" \
	"note registered, two hidden"
dh_assert_eq 2 "$(dh_psql "SELECT count(*) FROM deleted_instance WHERE sop_uid IN ('$C3', '$C4') AND reason LIKE 'rejected by KOS%113001%'")" \
	"rejected instances moved to deleted_instance with the reason"
found=$(find_sops)
case "$found" in *"$C3"* | *"$C4"*) dh_fail "C-FIND still finds rejected instances" ;; esac
agree 6 "after the rejection (7 - 2 rejected + the note)"
dh_assert_contains "$(hc kos "$ST")" "deleted" "hubctl kos shows the rejected references as deleted"

# rejected before it arrives: stays hidden on arrival
"$DH_PYTHON" "$MKKOS" "$T/rej2.dcm" "$T/in/c5.dcm" --title "113039:DCM:Data Retention Policy Expired" >/dev/null
dh_assert_eq 0000 "$(store "$T/rej2.dcm")" "rejection note for an instance not yet received"
dh_assert_eq 0 "$(dh_psql "SELECT hidden FROM kos_document WHERE sop_uid = '$(sop "$T/rej2.dcm")'")" "nothing hidden yet"
dh_assert_eq 0000 "$(store "$T/in/c5.dcm")" "the rejected instance arrives: accepted"
dh_assert_eq 0 "$(dh_psql "SELECT count(*) FROM instance WHERE sop_uid = '$C5'")" "and hidden at once"
dh_assert_contains "$(dh_psql "SELECT reason FROM deleted_instance WHERE sop_uid = '$C5'")" "before it arrived" \
	"recorded as rejected before arrival"
agree 7 "after the second note"
# the rejection note of the quality case, sent again: nothing changes
dh_assert_eq 0110 "$(store "$T/rej.dcm")" "rejection note resent: the duplicate policy answers"
agree 7 "after the resend"

# ---- 5. new content for a registered KOS (duplicate_policy = overwrite) replaces its registration ----
dh_hub_stop
dh_hub_config "[qr]" "pending_interval = 0" "[remote.DEST]" "host = 127.0.0.1" "port = $DEST_PORT" \
	"[storage]" "duplicate_policy = overwrite"
dh_hub_start
dh_variant "$T/k1.dcm" "$T/k1b.dcm" -m "(0040,A043)[0].(0008,0100)=TEST01" -m "(0040,A043)[0].(0008,0102)=99TEST" \
	-m "(0040,A043)[0].(0008,0104)=For Surgery"
dh_assert_eq 0000 "$(store "$T/k1b.dcm")" "corrected KOS overwrites"
dh_assert_eq "TEST01|99TEST|For Surgery" \
	"$(dh_psql "SELECT title_code, title_scheme, title_meaning FROM kos_document WHERE sop_uid = '$K1'")" \
	"one registration, with the new title"
agree 7 "after the overwrite"
dh_pass
