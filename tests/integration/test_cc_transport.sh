#!/usr/bin/env bash
# The change-context endpoint (hub/cc/cc_recv.c) from outside, with ccsend as
# the spoke: (1) a hello from a configured CURVE key is answered with the
# hub's acked_through; (2) an unknown key is not heard and the hub logs it;
# (3) garbage, truncated, oversized and wrong-spoke frames each cost one log
# line, and the same spoke and another one are still answered afterwards;
# (4) an ATTRIBUTE_CHANGE of a study the spoke's AE stored is applied and
# acknowledged, and a resend is acknowledged without a second application.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dh_setup cctransport
dh_pg_start

HUBCTL=$DH_BUILD/hub/hubctl
CCSEND=$DH_BUILD/tests/tools/ccsend
[ -x "$CCSEND" ] || dh_fail "ccsend not built: $CCSEND"

HUB_PUB=$("$HUBCTL" keygen --secret-file "$T/hub.key")
S1_PUB=$("$HUBCTL" keygen --secret-file "$T/site1.key")
S2_PUB=$("$HUBCTL" keygen --secret-file "$T/site2.key")
X_PUB=$("$HUBCTL" keygen --secret-file "$T/stranger.key")
dh_assert_eq 600 "$(stat -c %a "$T/hub.key")" "secret key file mode"
dh_assert_eq 40 "${#HUB_PUB}" "hubctl keygen prints a Z85 public key"
# keygen never replaces an existing key
if "$HUBCTL" keygen --secret-file "$T/hub.key" >/dev/null 2>&1; then dh_fail "keygen overwrote a key"; fi

CC_PORT=$(dh_free_port)
EP=tcp://127.0.0.1:$CC_PORT
dh_hub_config "[cc]" "secret_key_file = $T/hub.key" "endpoint = $EP" \
	"[spoke.SITE1]" "public_key = $S1_PUB" "ae_titles = STORESCU" \
	"[spoke.SITE2]" "public_key = $S2_PUB" "ae_titles = SITE2PACS"
dh_hub_start
grep -qF "cc endpoint $EP (CURVE public key $HUB_PUB), 2 spoke key(s) admitted" "$T/hubd.log" ||
	dh_fail "hubd did not log its cc endpoint"

# ccsend KEYFILE SPOKE ARGS...: prints the output, sets RC
ccsend() {
	local key=$1 spoke=$2
	shift 2
	RC=0
	OUT=$("$CCSEND" --endpoint "$EP" --server-key "$HUB_PUB" --secret-file "$T/$key" --spoke "$spoke" "$@" \
		2>>"$T/ccsend.err") || RC=$?
}

# wait_log COUNT PATTERN [GREP-OPTION]: until hubd.log has at least COUNT
# lines matching (5 s); -F for a fixed string (Z85 keys hold regex characters)
wait_log() {
	local i n=0
	for ((i = 0; i < 50; i++)); do
		n=$(grep -c ${3:-} -- "$2" "$T/hubd.log" || true)
		[ "$n" -ge "$1" ] && return 0
		sleep 0.1
	done
	dh_fail "hubd.log has $n lines with '$2', expected $1"
}

# a hello of SPOKE (key file KEY) must be heard: an ack
expect_hello() {
	ccsend "$1" "$2" --timeout 5 --hello
	dh_assert_eq 0 "$RC" "hello of $2 answered"
	dh_assert_eq "${3:-ack 0}" "$OUT" "hello of $2"
}

# (1) a known key
expect_hello site1.key SITE1
expect_hello site2.key SITE2

# (2) an unknown key is not heard, and named in the log
ccsend stranger.key SITE1 --timeout 2 --hello
dh_assert_eq 3 "$RC" "unknown key: no answer"
wait_log 1 "refused a connection from 127.0.0.1: unknown CURVE key $X_PUB " -F
# a known key naming another spoke's id in a fresh connection is dropped too
ccsend site2.key SITE1 --timeout 2 --hello
dh_assert_eq 3 "$RC" "batch naming another spoke: no answer"
wait_log 1 "spoke SITE2 (127.0.0.1): dropped a batch naming spoke 'SITE1'"

# (3) bad frames: one log line each, nothing answered
ccsend site1.key SITE1 --timeout 2 --garbage 1000
dh_assert_eq 3 "$RC" "garbage: no answer"
wait_log 1 "spoke SITE1 (127.0.0.1): dropped a bad frame of 1000 bytes: not a valid protobuf Frame"
ccsend site1.key SITE1 --timeout 2 --truncated
dh_assert_eq 3 "$RC" "truncated: no answer"
wait_log 2 "spoke SITE1 (127.0.0.1): dropped a bad frame of .* bytes: not a valid protobuf Frame"
ccsend site1.key SITE1 --timeout 5 --oversized
dh_assert_eq 3 "$RC" "oversized: no answer"
wait_log 1 "dropped a bad frame of $((64 * 1024 * 1024 + 1)) bytes: frame of .* exceeds the limit"
ccsend site1.key SITE1 --timeout 2 --wrong-spoke
dh_assert_eq 3 "$RC" "wrong spoke: no answer"
wait_log 1 "spoke SITE1 (127.0.0.1): dropped a batch naming spoke 'SITE1-OTHER'"
# one line per bad frame, not more
dh_assert_eq 2 "$(grep -c "dropped a bad frame of .* not a valid protobuf" "$T/hubd.log")" "one line per bad frame"
# hubd is alive and still answers both spokes
kill -0 "$HUB_PID" || dh_fail "hubd died"
expect_hello site1.key SITE1
expect_hello site2.key SITE2

# (4) a real cc, and its resend
dh_variant "$(dh_samples)/CT_small.dcm" "$T/o1.dcm" -gst -gse -gin
storescu -aet STORESCU -aec DCMHUB 127.0.0.1 "$HUB_PORT" "$T/o1.dcm" || dh_fail "store"
STUDY=$(dcmdump +P 0020,000d "$T/o1.dcm" | sed 's/.*\[\(.*\)\].*/\1/')
# (ownership, study.owner_spoke, is ingest's and the applier's business; not checked here)
ccsend site1.key SITE1 --timeout 10 --attr "$STUDY" 1
dh_assert_eq 0 "$RC" "cc 1 answered"
dh_assert_eq "ack 1" "$OUT" "cc 1 acknowledged"
dh_assert_eq "applied" "$(dh_psql "SELECT state FROM cc_log WHERE spoke_id = 'SITE1' AND sequence = 1")" "cc 1 applied"
dh_assert_eq "changed by ccsend" "$(dh_psql "SELECT description FROM study WHERE study_uid = :'p1'" "$STUDY")" \
	"study description changed"
before=$(dh_psql "SELECT count(*), coalesce(max(seq), 0) FROM attr_override")
ccsend site1.key SITE1 --timeout 10 --attr "$STUDY" 1
dh_assert_eq 0 "$RC" "resend answered"
dh_assert_eq "ack 1" "$OUT" "resend acknowledged"
dh_assert_eq 1 "$(dh_psql "SELECT count(*) FROM cc_log WHERE spoke_id = 'SITE1'")" "recorded once"
dh_assert_eq "$before" "$(dh_psql "SELECT count(*), coalesce(max(seq), 0) FROM attr_override")" "not applied twice"
expect_hello site1.key SITE1 "ack 1"
dh_pass
