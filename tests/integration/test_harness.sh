#!/usr/bin/env bash
# Self-test of lib.sh that needs no hubd: a private PostgreSQL from the
# template, SQL through dh_psql (with values as psql variables), data kept
# across dh_pg_restart, free ports, the assertions, the sample folder.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC1091
. "$(dirname "$0")/lib.sh"
dh_setup harness
dh_pg_start
dh_assert_contains "$DH_CONNINFO" "host=$T/pg/run" "conninfo points at the test's socket"
dh_assert_eq "dcmhub|dcmhub" "$(dh_psql "SELECT current_database(), current_user")" "database and role"

dh_psql "CREATE TABLE probe (id int PRIMARY KEY, note text NOT NULL)"
dh_psql "INSERT INTO probe VALUES (1, :'p1'), (2, :'p2')" "it's quoted" "two words"
dh_assert_eq "2" "$(dh_psql "SELECT count(*) FROM probe")" "rows inserted"
dh_assert_eq "1|it's quoted" "$(dh_psql "SELECT id, note FROM probe WHERE id = :p1" 1)" "values as variables"
if dh_psql "SELECT no_such_column FROM probe" 2>/dev/null; then dh_fail "a bad statement did not fail"; fi

dh_pg_restart
dh_assert_eq "1|it's quoted
2|two words" "$(dh_psql "SELECT id, note FROM probe ORDER BY id")" "data kept across a restart"

p1=$(dh_free_port)
p2=$(dh_free_port)
dh_assert_ne "$p1" "$p2" "two free ports differ"
dh_assert_file_exists "$(dh_samples)/CT_small.dcm" "pydicom sample"
dh_pass
