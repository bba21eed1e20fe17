# shellcheck shell=bash
# lib_tls.sh - certificates for DICOM-over-TLS tests, sourced after lib.sh.
#
# Nothing is checked in (nothing expires in the repository): every test
# makes its own throw-away PKI with the openssl CLI in $T/pki, valid for
# two days:
#   ca.pem ca.key             the trusted test CA
#   NAME.pem NAME.key         a certificate the CA signed, for each NAME
#                             given to dh_tls_certs (e.g. hub spoke client)
#   rogue-ca.pem              a second CA nobody trusts
#   rogue.pem rogue.key       a certificate the rogue CA signed
#   selfsigned.pem .key       a self-signed certificate
# RSA 2048 keys: the BCP 195 profiles' suites authenticate with RSA.

# dh_tls_certs NAME...: makes the PKI described above in $T/pki (TLS_DIR).
dh_tls_certs() {
	__dh_need_setup
	command -v openssl >/dev/null 2>&1 || dh_fail "openssl not found (deploy/install-deps.sh)"
	TLS_DIR=$T/pki
	export TLS_DIR
	mkdir -p "$TLS_DIR"
	local d=$TLS_DIR n
	__dh_tls_ca "$d/ca" "dcmhub test CA"
	__dh_tls_ca "$d/rogue-ca" "rogue CA"
	for n in "$@"; do
		__dh_tls_leaf "$d/$n" "$n" "$d/ca"
	done
	__dh_tls_leaf "$d/rogue" "rogue" "$d/rogue-ca"
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$d/selfsigned.key" -out "$d/selfsigned.pem" \
		-days 2 -subj "/CN=selfsigned" >/dev/null 2>&1 || dh_fail "openssl: self-signed certificate"
	chmod 0600 "$d"/*.key
}

__dh_tls_ca() {
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.pem" -days 2 \
		-subj "/CN=$2" -addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" >/dev/null 2>&1 || dh_fail "openssl: CA $2"
}

__dh_tls_leaf() {
	local out=$1 cn=$2 ca=$3
	openssl req -newkey rsa:2048 -nodes -keyout "$out.key" -out "$out.csr" -subj "/CN=$cn" \
		>/dev/null 2>&1 || dh_fail "openssl: key for $cn"
	printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$out.ext"
	openssl x509 -req -in "$out.csr" -CA "$ca.pem" -CAkey "$ca.key" -CAcreateserial -out "$out.pem" \
		-days 2 -extfile "$out.ext" >/dev/null 2>&1 || dh_fail "openssl: certificate for $cn"
	rm -f "$out.csr" "$out.ext"
}

# dh_tls_hub_lines [VERIFY]: sets DH_TLS_HUB_LINES, the [tls] section for
# hubd with hub.pem, the test CA and a new free TLS port (HUB_TLS_PORT);
# VERIFY: require (default), check or ignore. Pass it on as
# dh_hub_config "${DH_TLS_HUB_LINES[@]}" ...
dh_tls_hub_lines() {
	HUB_TLS_PORT=$(dh_free_port)
	export HUB_TLS_PORT
	# shellcheck disable=SC2034 # for the test: dh_hub_config "${DH_TLS_HUB_LINES[@]}"
	DH_TLS_HUB_LINES=("[tls]" "port = $HUB_TLS_PORT" "certificate = $TLS_DIR/hub.pem"
		"private_key = $TLS_DIR/hub.key" "ca_file = $TLS_DIR/ca.pem" "verify_peer = ${1:-require}")
}

# dh_tls NAME: the DCMTK client options for a TLS connection with NAME's
# certificate, trusting the test CA (echoscu, storescu, findscu).
dh_tls() {
	echo "+tls $TLS_DIR/$1.key $TLS_DIR/$1.pem +cf $TLS_DIR/ca.pem"
}

# dh_tls_revoke NAME...: revokes NAME's certificate (made by dh_tls_certs) at
# the test CA and writes the CA's CRL to $TLS_DIR/crl.pem.
dh_tls_revoke() {
	local d=$TLS_DIR n
	[ -f "$d/index.txt" ] || : >"$d/index.txt"
	[ -f "$d/crlnumber" ] || echo 01 >"$d/crlnumber"
	printf '[ca]\ndefault_ca = test\n[test]\ndatabase = %s\ncrlnumber = %s\ndefault_md = sha256\ndefault_crl_days = 2\n' \
		"$d/index.txt" "$d/crlnumber" >"$d/ca.cnf"
	for n in "$@"; do
		openssl ca -config "$d/ca.cnf" -revoke "$d/$n.pem" -keyfile "$d/ca.key" -cert "$d/ca.pem" \
			>/dev/null 2>&1 || dh_fail "openssl: revoking $n"
	done
	openssl ca -config "$d/ca.cnf" -gencrl -keyfile "$d/ca.key" -cert "$d/ca.pem" -out "$d/crl.pem" \
		>/dev/null 2>&1 || dh_fail "openssl: CRL"
}
