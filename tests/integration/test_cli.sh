#!/usr/bin/env bash
# The programs' command lines: --help everywhere, the printed configuration
# loads back, bad configuration is a clear error, and a database newer than
# the binary is refused.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dh_setup cli
H="$DH_BUILD/hub/hubd"; C="$DH_BUILD/hub/hubctl"
"$H" --help | grep -q "usage: hubd" || dh_fail "hubd --help"
"$C" --help | grep -q "usage: hubctl" || dh_fail "hubctl --help"
"$H" --version | grep -q "hubd " || dh_fail "hubd --version"
"$H" --print-config >"$T/default.conf"
"$H" -c "$T/default.conf" --check-config || dh_fail "printed configuration does not load"
grep -q "^port = 11112" "$T/default.conf" || dh_fail "default port is not 11112"
# the commented example in deploy/ is the generated one, so it cannot drift
diff -u "$DH_SRC/deploy/hubd.conf.example" "$T/default.conf" || dh_fail "deploy/hubd.conf.example is stale: regenerate with hubd --print-config"
# the same for the spoke agent, and --help of every program
S=$DH_BUILD/spoke/spoked
SC=$DH_BUILD/spoke/spokectl
"$S" --print-config >"$T/spoke-default.conf"
"$S" -c "$T/spoke-default.conf" --check-config >/dev/null || dh_fail "spoked's printed configuration does not load"
diff -u "$DH_SRC/deploy/spoked.conf.example" "$T/spoke-default.conf" ||
	dh_fail "deploy/spoked.conf.example is stale: regenerate with spoked --print-config"
"$S" --help | grep -q "usage: spoked" || dh_fail "spoked --help"
"$SC" --help | grep -q "usage: spokectl" || dh_fail "spokectl --help"
for cmd in split merge segment modify delete fix-uid status ledger keygen; do
	"$SC" "$cmd" --help | grep -q "$cmd" || dh_fail "spokectl $cmd --help"
done
printf '[spoke]\nsop_conflict = maybe\n' >"$T/sbad.conf"
if "$S" -c "$T/sbad.conf" --check-config 2>"$T/serr"; then dh_fail "sop_conflict = maybe accepted"; fi
dh_assert_contains "$(cat "$T/serr")" "sop_conflict" "spoked's error names the option"
printf '[hub]\nport = 70000\n' >"$T/bad.conf"
if "$H" -c "$T/bad.conf" --check-config 2>"$T/err"; then dh_fail "port 70000 accepted"; fi
dh_assert_contains "$(cat "$T/err")" "port" "error names the option"
printf '[hub]\nno_such_option = 1\n' >"$T/bad2.conf"
if "$H" -c "$T/bad2.conf" --check-config 2>/dev/null; then dh_fail "unknown option accepted"; fi
if "$H" --bogus 2>/dev/null; then dh_fail "unknown flag accepted"; fi

dh_pg_start
dh_hub_config
"$C" -c "$T/hub.conf" db migrate | grep -q "schema version" || dh_fail "hubctl db migrate"
"$C" -c "$T/hub.conf" db migrate | grep -q "already current" || dh_fail "migrate twice"
dh_psql "INSERT INTO schema_version (version, name) VALUES (999, 'from_the_future')"
if "$H" -c "$T/hub.conf" >"$T/newer.log" 2>&1; then dh_fail "hubd started on a newer schema"; fi
dh_assert_contains "$(cat "$T/newer.log")" "newer than this program" "clear error for a newer schema"
dh_pass
