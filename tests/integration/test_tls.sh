#!/usr/bin/env bash
# DICOM over TLS (conformance §5.1): hubd's TLS listener beside the plain
# one, with a throw-away PKI made by the openssl CLI (lib_tls.sh).
#  - echo, store, find over TLS with DCMTK's tools (+tls), mutual
#    authentication: the stored object is in the index, the find answers it;
#  - C-MOVE asked over TLS (spokectl recall -c, TLS to the hub) to a
#    destination reached over TLS ([remote.X] tls = true; storescp +tls):
#    the object arrives byte-identical;
#  - refused: random bytes and truncated TLS records, plain DICOM on the TLS port, a client certificate from an
#    untrusted CA, a self-signed one, no certificate while verify_peer =
#    require; a client that does not trust the hub's certificate gives up;
#  - verify_peer = ignore accepts a client without certificate, check
#    accepts it too but still refuses an untrusted one;
#  - tls.crl_file: a revoked client certificate is refused;
#  - tls.profile: bcp195-nd negotiates TLS 1.3/1.2 and refuses 1.1,
#    bcp195 falls back to 1.1, bcp195-ext is TLS 1.2 only;
#  - require_tls: an AE bound to TLS is rejected on the plain port;
#  - clients silent during the handshake are dropped after the ARTIM
#    time-out, so they block neither other clients nor a shutdown; a
#    silent TLS move destination costs qr.move_timeout;
#  - start-up errors: a missing certificate, a key of another certificate,
#    an encrypted key, no CA: hubd --check-config and hubd itself exit 1
#    with a message naming the file.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_tls.sh"
dh_setup tls
dh_pg_start
S=$(dh_samples)
PROBE=$DH_BUILD/tests/tools/assocprobe
dh_tls_certs hub client dest spoke revoked
DEST_PORT=$(dh_free_port)
SILENT_PORT=$(dh_free_port)
dh_tls_hub_lines require
dh_hub_config "${DH_TLS_HUB_LINES[@]}" "[qr]" "move_timeout = 3" \
	"[remote.TLSDEST]" "host = 127.0.0.1" "port = $DEST_PORT" "tls = true" \
	"[remote.SILENT]" "host = 127.0.0.1" "port = $SILENT_PORT" "tls = true" \
	"[remote.RECALLER]" "host = 127.0.0.1" "require_tls = true"
dh_hub_start
grep -q "listening for DICOM over TLS on port $HUB_TLS_PORT" "$T/hubd.log" || dh_fail "no TLS listener logged"

# ---- echo, store, find over TLS (mutual authentication)
# shellcheck disable=SC2046 # dh_tls prints several options
echoscu $(dh_tls client) -aet ECHOSCU -aec DCMHUB 127.0.0.1 "$HUB_TLS_PORT" || dh_fail "echo over TLS"
dh_variant "$S/CT_small.dcm" "$T/ct.dcm" -gin -m "PatientID=TLS-1"
# shellcheck disable=SC2046
storescu $(dh_tls client) -aet STORESCU -aec DCMHUB 127.0.0.1 "$HUB_TLS_PORT" "$T/ct.dcm" || dh_fail "store over TLS"
sop=$(dcmdump +P 0008,0018 "$T/ct.dcm" | sed 's/.*\[\(.*\)\].*/\1/')
dh_assert_eq 1 "$(dh_psql "SELECT count(*) FROM instance WHERE sop_uid = :'p1'" "$sop")" "object stored over TLS"
# shellcheck disable=SC2046
out=$(findscu $(dh_tls client) -v -S -aet FINDSCU -aec DCMHUB -k QueryRetrieveLevel=STUDY -k PatientID=TLS-1 \
	-k StudyInstanceUID 127.0.0.1 "$HUB_TLS_PORT" 2>&1 | tr -d "\000") || dh_fail "find over TLS: $out"
dh_assert_contains "$out" "Received Final Find Response (Success)" "find over TLS: final status"
study=$(dcmdump +P 0020,000D "$T/ct.dcm" | sed 's/.*\[\(.*\)\].*/\1/')
dh_assert_contains "$out" "$study" "find over TLS: the study answered"
grep -q "TLS from .*, certificate .*CN=client" "$T/hubd.log" || dh_fail "client certificate subject not logged"
# our adapter as TLS client: the hub's certificate is verified, the peer subject known
out=$("$PROBE" --cert "$TLS_DIR/client.pem" --key "$TLS_DIR/client.key" --ca "$TLS_DIR/ca.pem" \
	127.0.0.1 "$HUB_TLS_PORT" echo ct)
dh_assert_contains "$out" "tls peer /CN=hub" "adapter client sees the hub's certificate"
dh_assert_contains "$out" "echo=0000" "adapter client echo over TLS"
# the plain port goes on serving
echoscu -aet ECHOSCU -aec DCMHUB 127.0.0.1 "$HUB_PORT" || dh_fail "plain port after TLS"

# ---- refusals
if echoscu -aet ECHOSCU -aec DCMHUB -to 5 -ta 5 127.0.0.1 "$HUB_TLS_PORT" >"$T/plain.txt" 2>&1; then
	dh_fail "plain DICOM accepted on the TLS port"
fi
grep -q "TLS port $HUB_TLS_PORT: connection refused" "$T/hubd.log" || dh_fail "plain connection on TLS port not logged"
for who in rogue selfsigned; do
	if echoscu +tls "$TLS_DIR/$who.key" "$TLS_DIR/$who.pem" +cf "$TLS_DIR/ca.pem" -aet ECHOSCU -aec DCMHUB \
		127.0.0.1 "$HUB_TLS_PORT" >"$T/$who.txt" 2>&1; then
		dh_fail "client certificate '$who' accepted"
	fi
	if storescu +tls "$TLS_DIR/$who.key" "$TLS_DIR/$who.pem" +cf "$TLS_DIR/ca.pem" -aet STORESCU -aec DCMHUB \
		127.0.0.1 "$HUB_TLS_PORT" "$T/ct.dcm" >>"$T/$who.txt" 2>&1; then
		dh_fail "store with client certificate '$who' accepted"
	fi
done
if echoscu +tla +cf "$TLS_DIR/ca.pem" -aet ECHOSCU -aec DCMHUB 127.0.0.1 "$HUB_TLS_PORT" >"$T/anon.txt" 2>&1; then
	dh_fail "client without certificate accepted while verify_peer = require"
fi
# a client that does not trust the hub's CA gives up (server authentication)
if echoscu +tls "$TLS_DIR/client.key" "$TLS_DIR/client.pem" +cf "$TLS_DIR/rogue-ca.pem" -aet ECHOSCU \
	-aec DCMHUB 127.0.0.1 "$HUB_TLS_PORT" >"$T/untrusted-hub.txt" 2>&1; then
	dh_fail "client accepted a hub certificate from a CA it does not trust"
fi
# garbage on the TLS port (random bytes, a truncated TLS record, a ClientHello
# cut short) is refused without harm: the hub goes on answering
for i in 1 2 3 4 5 6 7 8; do
	head -c $((i * 700)) /dev/urandom >"/dev/tcp/127.0.0.1/$HUB_TLS_PORT" 2>/dev/null || true
done
printf '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03' >"/dev/tcp/127.0.0.1/$HUB_TLS_PORT" 2>/dev/null || true
printf '\x16\x03\x03\xff\xff' >"/dev/tcp/127.0.0.1/$HUB_TLS_PORT" 2>/dev/null || true
# shellcheck disable=SC2046
echoscu $(dh_tls client) -aet ECHOSCU -aec DCMHUB 127.0.0.1 "$HUB_TLS_PORT" || dh_fail "echo after garbage"
__dh_alive "$HUB_PID" || dh_fail "hubd died on garbage"
# silent clients on the TLS port (more than the acceptor threads) hold the
# handshake no longer than the ARTIM time-out (5 s), not DCMTK's 60 s
exec 5<>"/dev/tcp/127.0.0.1/$HUB_TLS_PORT" 6<>"/dev/tcp/127.0.0.1/$HUB_TLS_PORT" 7<>"/dev/tcp/127.0.0.1/$HUB_TLS_PORT"
exec 8<>"/dev/tcp/127.0.0.1/$HUB_TLS_PORT" 9<>"/dev/tcp/127.0.0.1/$HUB_TLS_PORT"
t0=$SECONDS
# shellcheck disable=SC2046
timeout 30 echoscu $(dh_tls client) -aet ECHOSCU -aec DCMHUB 127.0.0.1 "$HUB_TLS_PORT" ||
	dh_fail "echo over TLS behind silent clients"
[ $((SECONDS - t0)) -le 12 ] || dh_fail "silent TLS clients held the listener for $((SECONDS - t0)) s"
exec 5>&- 6>&- 7>&- 8>&- 9>&-
# require_tls: RECALLER may only come over TLS
out=$("$PROBE" -aet RECALLER 127.0.0.1 "$HUB_PORT" echo) || true
dh_assert_contains "$out" "rejected" "require_tls AE on the plain port"
out=$("$PROBE" -aet RECALLER --cert "$TLS_DIR/client.pem" --key "$TLS_DIR/client.key" --ca "$TLS_DIR/ca.pem" \
	127.0.0.1 "$HUB_TLS_PORT" echo)
dh_assert_contains "$out" "echo=0000" "require_tls AE on the TLS port"

# ---- C-MOVE over TLS both ways: requested over TLS, sent to a TLS destination
mkdir -p "$T/dest"
dh_bg storescp +B -od "$T/dest" -aet TLSDEST +tls "$TLS_DIR/dest.key" "$TLS_DIR/dest.pem" +cf "$TLS_DIR/ca.pem" \
	"$DEST_PORT"
for ((i = 0; i < 100; i++)); do
	# shellcheck disable=SC2046
	echoscu $(dh_tls client) -aec TLSDEST 127.0.0.1 "$DEST_PORT" >/dev/null 2>&1 && break
	sleep 0.1
done
cat >"$T/recall.conf" <<CONF
[hub]
host = 127.0.0.1
port = $HUB_TLS_PORT
tls = true
[tls]
certificate = $TLS_DIR/client.pem
private_key = $TLS_DIR/client.key
ca_file = $TLS_DIR/ca.pem
CONF
out=$("$DH_BUILD/spoke/spokectl" -c "$T/recall.conf" recall --aet RECALLER --dest TLSDEST "$study" 2>&1) ||
	dh_fail "recall over TLS: $out"
dh_assert_contains "$out" "status 0000" "C-MOVE over TLS"
got=$(find "$T/dest" -type f | head -n 1)
[ -n "$got" ] || dh_fail "nothing arrived at the TLS move destination"
cached=$T/cache/$(dh_psql "SELECT file_path FROM instance WHERE sop_uid = :'p1'" "$sop")
off_a=$("$DH_PYTHON" "$(dirname "$0")/dsbytes.py" "$cached" | md5sum)
off_b=$("$DH_PYTHON" "$(dirname "$0")/dsbytes.py" "$got" | md5sum)
dh_assert_eq "$off_a" "$off_b" "object moved over TLS byte-identical (data set)"
# a destination that accepts the TCP connection but never answers the TLS
# handshake costs the C-MOVE qr.move_timeout (3 s), not DCMTK's 60 s
dh_bg "$DH_PYTHON" -c 'import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8); held = []
while True: held.append(s.accept()[0])' "$SILENT_PORT"
sleep 0.5
t0=$SECONDS
rc=0
movescu -S -aet MOVESCU -aec DCMHUB -aem SILENT -k QueryRetrieveLevel=STUDY -k "StudyInstanceUID=$study" \
	127.0.0.1 "$HUB_PORT" >"$T/silent.txt" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || dh_fail "C-MOVE to a silent TLS destination reported success"
[ $((SECONDS - t0)) -le 20 ] || dh_fail "C-MOVE to a silent TLS destination took $((SECONDS - t0)) s"
grep -q "C-MOVE: cannot open an association to SILENT" "$T/hubd.log" || dh_fail "silent destination not logged"

# ---- verify_peer = ignore / check
dh_hub_stop
dh_tls_hub_lines ignore
dh_hub_config "${DH_TLS_HUB_LINES[@]}"
dh_hub_start
echoscu +tla +cf "$TLS_DIR/ca.pem" -aet ECHOSCU -aec DCMHUB 127.0.0.1 "$HUB_TLS_PORT" ||
	dh_fail "client without certificate refused while verify_peer = ignore"
dh_hub_stop
dh_tls_hub_lines check
dh_hub_config "${DH_TLS_HUB_LINES[@]}"
dh_hub_start
echoscu +tla +cf "$TLS_DIR/ca.pem" -aet ECHOSCU -aec DCMHUB 127.0.0.1 "$HUB_TLS_PORT" ||
	dh_fail "client without certificate refused while verify_peer = check"
if echoscu +tls "$TLS_DIR/rogue.key" "$TLS_DIR/rogue.pem" +cf "$TLS_DIR/ca.pem" -aet ECHOSCU -aec DCMHUB \
	127.0.0.1 "$HUB_TLS_PORT" >/dev/null 2>&1; then
	dh_fail "untrusted certificate accepted while verify_peer = check"
fi
dh_hub_stop

# ---- revocation: tls.crl_file refuses a revoked client certificate, accepts the others
dh_tls_revoke revoked
dh_tls_hub_lines require
dh_hub_config "${DH_TLS_HUB_LINES[@]}" "crl_file = $TLS_DIR/crl.pem"
dh_hub_start
# shellcheck disable=SC2046
echoscu $(dh_tls client) -aet ECHOSCU -aec DCMHUB 127.0.0.1 "$HUB_TLS_PORT" || dh_fail "good client refused with a CRL"
# shellcheck disable=SC2046
if echoscu $(dh_tls revoked) -aet ECHOSCU -aec DCMHUB 127.0.0.1 "$HUB_TLS_PORT" >/dev/null 2>&1; then
	dh_fail "revoked client certificate accepted"
fi
grep -q "TLS port $HUB_TLS_PORT: connection refused: .*certificate verify failed" "$T/hubd.log" ||
	dh_fail "revocation not logged"
dh_hub_stop

# ---- profiles: protocol versions as PS3.15 / DCMTK define them (openssl s_client as the peer)
proto() { # [S_CLIENT-OPTION...]: the protocol negotiated with the hub, or "none"
	local out p
	out=$(openssl s_client "$@" -connect "127.0.0.1:$HUB_TLS_PORT" -cert "$TLS_DIR/client.pem" \
		-key "$TLS_DIR/client.key" -CAfile "$TLS_DIR/ca.pem" </dev/null 2>/dev/null) || true
	# a failed handshake still prints the version it tried: only a cipher means success.
	# "New, V, Cipher is C" names the cipher's version (SSLv3 for TLS 1.1's suites); the
	# session's "Protocol :" line is exact but, with TLS 1.3, only printed once a ticket came
	if ! grep -q "^New, .*, Cipher is " <<<"$out" || [[ "$out" == *"Cipher is (NONE)"* ]]; then
		p=
	else
		p=$(sed -n 's/^ *Protocol *: *//p' <<<"$out" | head -n 1)
		[ -n "$p" ] || p=$(sed -n 's/^New, \([^,]*\), Cipher is .*/\1/p' <<<"$out" | head -n 1)
	fi
	echo "${p:-none}"
}
for prof in bcp195-nd bcp195 bcp195-ext; do
	dh_tls_hub_lines require
	dh_hub_config "${DH_TLS_HUB_LINES[@]}" "profile = $prof"
	dh_hub_start
	# shellcheck disable=SC2046
	echoscu $(dh_tls client) -aet ECHOSCU -aec DCMHUB 127.0.0.1 "$HUB_TLS_PORT" || dh_fail "$prof: echo"
	v12=$(proto -tls1_2) v11=$(proto -tls1_1 -cipher 'ALL:@SECLEVEL=0') any=$(proto)
	dh_assert_eq TLSv1.2 "$v12" "$prof: TLS 1.2"
	case $prof in
	bcp195-nd) dh_assert_eq none "$v11" "$prof: no fall-back to TLS 1.1"; dh_assert_eq TLSv1.3 "$any" "$prof: best" ;;
	bcp195) dh_assert_eq TLSv1.1 "$v11" "$prof: falls back to TLS 1.1" ;;
	bcp195-ext) dh_assert_eq none "$v11" "$prof: no TLS 1.1"; dh_assert_eq TLSv1.2 "$any" "$prof: TLS 1.2 only" ;;
	esac
	dh_hub_stop
done

# ---- start-up errors name the file and the reason
openssl rsa -in "$TLS_DIR/hub.key" -aes256 -passout pass:secret -out "$TLS_DIR/enc.key" 2>/dev/null
check_fails() { # WHAT EXPECTED-TEXT CONFIG-LINE...
	local what=$1 want=$2
	shift 2
	dh_tls_hub_lines require
	dh_hub_config "${DH_TLS_HUB_LINES[@]}" "$@"
	local out rc=0
	out=$("$DH_BUILD/hub/hubd" -c "$T/hub.conf" --check-config 2>&1) || rc=$?
	[ "$rc" -eq 1 ] || dh_fail "$what: hubd --check-config exited $rc: $out"
	dh_assert_contains "$out" "$want" "$what: --check-config message"
	rc=0
	out=$(timeout 20 "$DH_BUILD/hub/hubd" -c "$T/hub.conf" 2>&1) || rc=$?
	[ "$rc" -eq 1 ] || dh_fail "$what: hubd exited $rc: $out"
	dh_assert_contains "$out" "$want" "$what: start-up message"
}
check_fails "missing certificate" "certificate '$T/nope.pem' cannot be read: No such file" "[tls]" "certificate = $T/nope.pem"
check_fails "foreign key" "does not belong to certificate" "[tls]" "private_key = $TLS_DIR/client.key"
check_fails "encrypted key" "private key '$TLS_DIR/enc.key' cannot be loaded" "[tls]" "private_key = $TLS_DIR/enc.key"
check_fails "no CA" "no trusted CA" "[tls]" "ca_file = "
check_fails "not a certificate" "is not a usable PEM certificate" "[tls]" "certificate = $TLS_DIR/hub.key"
check_fails "missing CRL" "CRL file '$T/nope.crl' cannot be read" "[tls]" "crl_file = $T/nope.crl"
check_fails "client side only" "for peers configured with tls = true" "[tls]" "port = 0" "ca_file = " \
	"[remote.X]" "tls = true"
# no [tls] at all and no TLS remote: TLS stays off and nothing is asked for
dh_hub_config
out=$("$DH_BUILD/hub/hubd" -c "$T/hub.conf" --check-config 2>&1) || dh_fail "plain configuration refused: $out"
dh_pass
