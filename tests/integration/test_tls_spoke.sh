#!/usr/bin/env bash
# spoked and hubd over TLS end to end: the PACS stores to spoked's TLS
# listener (storescu +tls), spoked forwards to the hub's TLS port (hub.tls)
# and asks for storage commitment there, and the hub delivers the result
# to spoked's TLS listener ([remote.SPOKE1] tls = true). The hub accepts
# SPOKE1 only over TLS (require_tls), so success proves the forward used
# TLS; the certificate subjects both sides logged prove who talked.
# Then spoked is restarted without a usable key: it refuses to start.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_spoke.sh"
. "$(dirname "$0")/lib_tls.sh"
dh_setup tlsspoke
dh_pg_start
dh_spoke_db
dh_spoke_prepare
dh_tls_certs hub spoke pacs
SPOKE_TLS_PORT=$(dh_free_port)
dh_tls_hub_lines require
dh_hub_config "${DH_TLS_HUB_LINES[@]}" "${DH_SPOKE_HUB_LINES[@]}" \
	"[remote.$SPOKE_AET]" "port = $SPOKE_TLS_PORT" "tls = true" "require_tls = true"
dh_hub_start
spoke_tls=("[tls]" "port = $SPOKE_TLS_PORT" "certificate = $TLS_DIR/spoke.pem" "private_key = $TLS_DIR/spoke.key"
	"ca_file = $TLS_DIR/ca.pem" "[hub]" "port = $HUB_TLS_PORT" "tls = true")
dh_spoke_config "${spoke_tls[@]}"
dh_spoke_start
grep -q "TLS: listener on, hub reached over TLS" "$T/spoked.log" || dh_fail "spoked did not log its TLS set-up"

S=$(dh_samples)
mkdir -p "$T/a"
dh_variant "$S/CT_small.dcm" "$T/a/base.dcm" -gst -gse -gin
for i in 1 2 3; do dh_variant "$T/a/base.dcm" "$T/a/$i.dcm" -gin -m "InstanceNumber=$i"; done
rm "$T/a/base.dcm"
# shellcheck disable=SC2046 # dh_tls prints several options
storescu $(dh_tls pacs) -aet STORESCU -aec "$SPOKE_AET" 127.0.0.1 "$SPOKE_TLS_PORT" "$T"/a/*.dcm ||
	dh_fail "PACS -> spoked over TLS"
dh_spoke_wait "SELECT count(*) FROM ledger_instance WHERE fwd_state = 'committed'" 3 60 "committed over TLS"
for f in "$T"/a/*.dcm; do
	u=$(dcmdump +P 0008,0018 "$f" | sed 's/.*\[\(.*\)\].*/\1/')
	dh_assert_eq 1 "$(dh_psql "SELECT count(*) FROM instance WHERE sop_uid = :'p1'" "$u")" "$u at the hub"
done
dh_hub_wait "SELECT DISTINCT requester_ae || '|' || state FROM stgcmt_txn" "$SPOKE_AET|reported" 10 \
	"storage commitment result delivered over TLS"
grep -q "\[assoc [0-9]* $SPOKE_AET->DCMHUB\] TLS from .*, certificate .*CN=spoke" "$T/hubd.log" ||
	dh_fail "the hub did not see spoked's certificate"
grep -q "\[assoc [0-9]* DCMHUB->$SPOKE_AET\] TLS from .*, certificate .*CN=hub" "$T/spoked.log" ||
	dh_fail "spoked did not see the hub's certificate (storage commitment result)"
grep -q "\[assoc [0-9]* STORESCU->$SPOKE_AET\] TLS from .*, certificate .*CN=pacs" "$T/spoked.log" ||
	dh_fail "spoked did not see the PACS's certificate"
if grep -q "must use the TLS port" "$T/hubd.log"; then dh_fail "spoked came in plain"; fi

# spoked's TLS listener refuses plain DICOM and untrusted certificates
if echoscu -aet STORESCU -aec "$SPOKE_AET" 127.0.0.1 "$SPOKE_TLS_PORT" >/dev/null 2>&1; then
	dh_fail "plain DICOM accepted on spoked's TLS port"
fi
if echoscu +tls "$TLS_DIR/rogue.key" "$TLS_DIR/rogue.pem" +cf "$TLS_DIR/ca.pem" -aet STORESCU \
	-aec "$SPOKE_AET" 127.0.0.1 "$SPOKE_TLS_PORT" >/dev/null 2>&1; then
	dh_fail "untrusted certificate accepted by spoked"
fi

# a key that does not load is a start-up error, not a crash
dh_spoke_stop
dh_spoke_config "${spoke_tls[@]}" "[tls]" "private_key = $T/missing.key"
rc=0
out=$(timeout 20 "$DH_BUILD/spoke/spoked" -c "$T/spoked.conf" 2>&1) || rc=$?
[ "$rc" -eq 1 ] || dh_fail "spoked with a missing key exited $rc: $out"
dh_assert_contains "$out" "private key '$T/missing.key' cannot be read" "spoked names the missing key"
rc=0
out=$("$DH_BUILD/spoke/spoked" -c "$T/spoked.conf" --check-config 2>&1) || rc=$?
[ "$rc" -eq 1 ] || dh_fail "spoked --check-config with a missing key exited $rc: $out"
dh_pass
