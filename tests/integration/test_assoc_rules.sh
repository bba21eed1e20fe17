#!/usr/bin/env bash
# Association-level security (conformance §2.2.1.4.5, §5.2):
#  - a Called AE title that is not the hub's gets Verification only: the
#    A-ASSOCIATE-AC accepts the Verification context and refuses the others
#    (result 1, user rejection); with no Verification proposed the
#    association is rejected (called AE title not recognised), so storescu
#    and findscu fail;
#  - [remote.X] services: an AE gets only the services listed (echo, store,
#    find, move, get, stgcmt, mpps; all; none), the other contexts refused
#    as user rejection, and the association rejected when nothing is left;
#  - an unconfigured Calling AE is rejected, or gets everything when
#    validate_calling_ae = false;
#  - a bad services list is a configuration error.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dh_setup assocrules
dh_pg_start
S=$(dh_samples)
PROBE=$DH_BUILD/tests/tools/assocprobe
dh_hub_config "[remote.QUERYONLY]" "host = 127.0.0.1" "services = echo, find" \
	"[remote.NOECHO]" "host = 127.0.0.1" "services = store" \
	"[remote.DESTONLY]" "host = 127.0.0.1" "services = none" \
	"[remote.MOVER]" "host = 127.0.0.1" "services = move,stgcmt"
dh_hub_start
dh_variant "$S/CT_small.dcm" "$T/ct.dcm" -gin

# ---- foreign Called AE: Verification only (§5.2)
echoscu -aet ECHOSCU -aec NOTTHEHUB 127.0.0.1 "$HUB_PORT" || dh_fail "echo to a foreign called AE"
out=$("$PROBE" -aet STORESCU -aec NOTTHEHUB 127.0.0.1 "$HUB_PORT" echo ct find move stgcmt)
echo "$out"
dh_assert_contains "$out" "echo accepted" "foreign called AE: Verification accepted"
for c in ct find move stgcmt; do
	dh_assert_contains "$out" "$c refused=1" "foreign called AE: $c refused as user rejection"
done
dh_assert_contains "$out" "echo=0000" "foreign called AE: C-ECHO answered"
out=$("$PROBE" -aet STORESCU -aec NOTTHEHUB 127.0.0.1 "$HUB_PORT" ct) || true
dh_assert_contains "$out" "rejected" "foreign called AE, storage only: association rejected"
dh_assert_contains "$out" "Called AE Title Not Recognized" "foreign called AE: the reason"
if storescu -aet STORESCU -aec NOTTHEHUB 127.0.0.1 "$HUB_PORT" "$T/ct.dcm" >/dev/null 2>&1; then
	dh_fail "storescu to a foreign called AE succeeded"
fi
if findscu -S -aet FINDSCU -aec NOTTHEHUB -k QueryRetrieveLevel=STUDY -k StudyInstanceUID \
	127.0.0.1 "$HUB_PORT" >/dev/null 2>&1; then
	dh_fail "findscu to a foreign called AE succeeded"
fi
dh_assert_eq 0 "$(dh_psql "SELECT count(*) FROM instance")" "nothing stored through a foreign called AE"
# the hub's own title: everything it serves
out=$("$PROBE" -aet STORESCU 127.0.0.1 "$HUB_PORT" echo ct find move stgcmt)
for c in echo ct find move stgcmt; do dh_assert_contains "$out" "$c accepted" "own called AE: $c"; done

# ---- per-remote services
out=$("$PROBE" -aet QUERYONLY 127.0.0.1 "$HUB_PORT" echo ct find move get)
echo "$out"
dh_assert_contains "$out" "echo accepted" "QUERYONLY: echo"
dh_assert_contains "$out" "find accepted" "QUERYONLY: find"
for c in ct move get; do dh_assert_contains "$out" "$c refused=1" "QUERYONLY: $c refused"; done
if storescu -aet QUERYONLY -aec DCMHUB 127.0.0.1 "$HUB_PORT" "$T/ct.dcm" >"$T/q.txt" 2>&1; then
	dh_fail "QUERYONLY stored"
fi
findscu -S -aet QUERYONLY -aec DCMHUB -k QueryRetrieveLevel=STUDY -k StudyInstanceUID 127.0.0.1 "$HUB_PORT" \
	>/dev/null 2>&1 || dh_fail "QUERYONLY cannot find"
if echoscu -aet NOECHO -aec DCMHUB 127.0.0.1 "$HUB_PORT" >/dev/null 2>&1; then
	dh_fail "NOECHO (services = store) got Verification"
fi
storescu -aet NOECHO -aec DCMHUB 127.0.0.1 "$HUB_PORT" "$T/ct.dcm" || dh_fail "NOECHO cannot store"
dh_assert_eq 1 "$(dh_psql "SELECT count(*) FROM instance")" "NOECHO stored"
out=$("$PROBE" -aet DESTONLY 127.0.0.1 "$HUB_PORT" echo ct) || true
dh_assert_contains "$out" "rejected" "DESTONLY (services = none) rejected"
out=$("$PROBE" -aet MOVER 127.0.0.1 "$HUB_PORT" echo ct find move stgcmt) || true
for c in echo ct find; do dh_assert_contains "$out" "$c refused=1" "MOVER: $c refused"; done
for c in move stgcmt; do dh_assert_contains "$out" "$c accepted" "MOVER: $c"; done
grep -q "refused presentation context .*service not allowed for this AE" "$T/hubd.log" ||
	dh_fail "refusals by rule not logged"

# ---- Calling AE validation (§2.2.1.4.5), on by default
out=$("$PROBE" -aet STRANGER 127.0.0.1 "$HUB_PORT" echo) || true
dh_assert_contains "$out" "Calling AE Title Not Recognized" "unconfigured calling AE rejected"
dh_hub_stop
dh_hub_config "[hub]" "validate_calling_ae = false" "[remote.QUERYONLY]" "host = 127.0.0.1" "services = find"
dh_hub_start
out=$("$PROBE" -aet STRANGER 127.0.0.1 "$HUB_PORT" echo ct find move)
for c in echo ct find move; do dh_assert_contains "$out" "$c accepted" "validation off: STRANGER gets $c"; done
out=$("$PROBE" -aet QUERYONLY 127.0.0.1 "$HUB_PORT" echo find)
dh_assert_contains "$out" "echo refused=1" "validation off: configured rules still apply"
dh_assert_contains "$out" "find accepted" "validation off: QUERYONLY finds"
dh_hub_stop

# ---- configuration errors
for bad in "services = bogus" "services = " "require_tls = true"; do
	dh_hub_config "[remote.BAD]" "host = 127.0.0.1" "$bad"
	rc=0
	out=$("$DH_BUILD/hub/hubd" -c "$T/hub.conf" --check-config 2>&1) || rc=$?
	[ "$rc" -eq 1 ] || dh_fail "'$bad' accepted: $out"
	dh_assert_contains "$out" "[remote.BAD]" "'$bad' named"
done
dh_pass
