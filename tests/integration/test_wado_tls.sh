#!/usr/bin/env bash
# WADO-URI over HTTPS (wado.tls_cert_file / tls_key_file; GnuTLS inside
# libmicrohttpd): curl trusting the hub's certificate gets the stored object
# byte-identical; curl without that trust refuses the certificate; plain HTTP
# to the HTTPS port gets no answer; TLS 1.1 is refused; a key file readable
# by others, a missing file, or only one of the two options stops hubd from
# starting with a clear message.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dh_setup wadotls
dh_pg_start
command -v openssl >/dev/null || dh_fail "openssl not found"
# a self-signed certificate for 127.0.0.1
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" \
	-keyout "$T/wado.key" -out "$T/wado.crt" >/dev/null 2>&1 || dh_fail "openssl req"
chmod 600 "$T/wado.key"
WADO_PORT=$(dh_free_port)
tls_cfg=("[wado]" "enabled = true" "port = $WADO_PORT" "tls_cert_file = $T/wado.crt" "tls_key_file = $T/wado.key")
dh_hub_config "${tls_cfg[@]}"
dh_hub_start
grep -q "WADO-URI listening on https://127.0.0.1:$WADO_PORT/wado" "$T/hubd.log" || dh_fail "no https listening line"

dh_variant "$(dh_samples)/CT_small.dcm" "$T/ct.dcm" -gin
storescu -aet STORESCU -aec DCMHUB 127.0.0.1 "$HUB_PORT" "$T/ct.dcm" || dh_fail "storing"
IFS='|' read -r st se sop fp < <(dh_psql "SELECT st.study_uid, se.series_uid, i.sop_uid, i.file_path FROM instance i
	JOIN series se ON se.pk = i.series_fk JOIN study st ON st.pk = se.study_fk")
q="wado?requestType=WADO&studyUID=$st&seriesUID=$se&objectUID=$sop&contentType=application/dicom"

code=$(curl -sS --max-time 30 --cacert "$T/wado.crt" -o "$T/body" -w '%{http_code}' "https://127.0.0.1:$WADO_PORT/$q")
dh_assert_eq 200 "$code" "HTTPS GET with the hub's certificate trusted"
cmp "$T/body" "$T/cache/$fp" || dh_fail "HTTPS answer differs from the stored file"
code=$(curl -sS --max-time 30 --cacert "$T/wado.crt" -o "$T/body" -w '%{http_code}' "https://127.0.0.1:$WADO_PORT/wado?requestType=x")
dh_assert_eq 400 "$code" "HTTPS: a bad request is still answered"

rc=0
curl -sS --max-time 30 -o /dev/null "https://127.0.0.1:$WADO_PORT/$q" 2>"$T/err" || rc=$?
dh_assert_eq 60 "$rc" "curl without the certificate trusted: peer certificate cannot be authenticated"
rc=0
code=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$WADO_PORT/$q" 2>"$T/err") || rc=$?
dh_assert_ne 0 "$rc" "plain HTTP to the HTTPS port"
dh_assert_ne 200 "$code" "plain HTTP to the HTTPS port gets no object"
rc=0
curl -sS --max-time 10 --cacert "$T/wado.crt" --tls-max 1.1 -o /dev/null "https://127.0.0.1:$WADO_PORT/$q" 2>"$T/err" || rc=$?
dh_assert_ne 0 "$rc" "TLS 1.1 refused"
# the DICOM side is untouched
echoscu -aet ECHOSCU -aec DCMHUB 127.0.0.1 "$HUB_PORT" || dh_fail "C-ECHO"
dh_hub_stop

# start-up errors
chmod 644 "$T/wado.key"
dh_hub_config "${tls_cfg[@]}"
rc=0
timeout 30 "$DH_BUILD/hub/hubd" -c "$T/hub.conf" >"$T/start.log" 2>&1 || rc=$?
dh_assert_eq 1 "$rc" "a key readable by others"
dh_assert_contains "$(cat "$T/start.log")" "readable by group or others" "key permission message"
chmod 600 "$T/wado.key"
dh_hub_config "[wado]" "enabled = true" "port = $WADO_PORT" "tls_cert_file = $T/missing.crt" "tls_key_file = $T/wado.key"
rc=0
timeout 30 "$DH_BUILD/hub/hubd" -c "$T/hub.conf" >"$T/start.log" 2>&1 || rc=$?
dh_assert_eq 1 "$rc" "a missing certificate file"
dh_assert_contains "$(cat "$T/start.log")" "cannot open wado.tls_cert_file" "missing file message"
dh_hub_config "[wado]" "enabled = true" "port = $WADO_PORT" "tls_cert_file = $T/wado.crt"
rc=0
"$DH_BUILD/hub/hubd" -c "$T/hub.conf" --check-config >"$T/start.log" 2>&1 || rc=$?
dh_assert_eq 1 "$rc" "a certificate without its key"
dh_assert_contains "$(cat "$T/start.log")" "go together" "cert without key message"

dh_pass
