#!/usr/bin/env bash
# The hub as Verification SCU (IMPAX statement 2.1.2.1): `hubctl echo AE`
# opens an association to [remote.AE] as hubd would and sends C-ECHO.
# An independent peer (storescp) answers; an unknown AE title, a closed
# port and a peer that refuses the association each get their exit status.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dh_setup echo_scu
dh_pg_start
PEER_PORT=$(dh_free_port)
CLOSED_PORT=$(dh_free_port)
PICKY_PORT=$(dh_free_port)
dh_hub_config "[remote.PEER]" "host = 127.0.0.1" "port = $PEER_PORT" \
	"[remote.GONE]" "host = 127.0.0.1" "port = $CLOSED_PORT" \
	"[remote.PICKY]" "host = 127.0.0.1" "port = $PICKY_PORT"
dh_hub_start
HC() { "$DH_BUILD/hub/hubctl" -c "$T/hub.conf" "$@"; }
rc() { "$@" >"$T/last.out" 2>"$T/last.err" && echo 0 || echo $?; }

dh_bg storescp -aet PEER "$PEER_PORT"
# a peer that refuses every association
dh_bg storescp -aet PICKY --refuse "$PICKY_PORT"
dh_wait_echo "$PEER_PORT" PEER

dh_assert_eq 0 "$(rc HC echo PEER)" "echo to a live peer: exit 0"
dh_assert_contains "$(cat "$T/last.out")" "DCMHUB -> PEER (127.0.0.1:$PEER_PORT): C-ECHO status 0000" "echo names both ends and the status"
dh_assert_eq 0 "$(rc HC --json echo PEER)" "--json: exit 0"
dh_assert_eq "0000 PEER" "$("$DH_PYTHON" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["status"], d["ae_title"])' "$T/last.out")" \
	"--json: status and AE title"

dh_assert_eq 2 "$(rc HC echo NOBODY)" "no [remote.NOBODY]: exit 2"
dh_assert_contains "$(cat "$T/last.err")" "no [remote.NOBODY] section" "says which section is missing"
dh_assert_eq 2 "$(rc HC echo)" "no AE title: exit 2"

dh_assert_eq 1 "$(rc HC echo --timeout 3 GONE)" "closed port: exit 1"
dh_assert_contains "$(cat "$T/last.err")" "hubctl: echo GONE (127.0.0.1:$CLOSED_PORT)" "closed port: says where"
dh_assert_eq 1 "$(rc HC --json echo --timeout 3 GONE)" "closed port, --json: exit 1"
"$DH_PYTHON" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["error"], d' "$T/last.out" ||
	dh_fail "closed port, --json: no error member"

dh_assert_eq 1 "$(rc HC echo --timeout 5 PICKY)" "a peer that refuses the association: exit 1"
dh_assert_contains "$(cat "$T/last.err")" "rejected" "says the association was rejected"
dh_pass
