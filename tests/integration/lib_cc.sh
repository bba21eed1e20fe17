# lib_cc.sh - a hub and a spoke wired for change contexts, for tests and
# benchmarks. Source it after lib.sh, after dh_setup and dh_pg_start:
#
#   dh_cc_pair_start [HUB-CONFIG-LINE...]   # hubd + spoked SITE1 (AE SPOKE1)
#   storescu -aec SPOKE1 127.0.0.1 "$SPOKE_PORT" FILE...
#   dh_cc_wait_committed 3 60               # 3 ledger objects committed at the hub
#   "$SPOKECTL" -c "$T/spoked.conf" modify ...
#   dh_cc_wait_acked "$(dh_spoke_psql 'SELECT last_sequence FROM spoke_state')" 30
#
# Built on lib_spoke.sh (sourced here). The spoke's ledger is the database
# dcmspoke of the test's cluster. Keys: $T/hub.key (public in HUB_PUB),
# $T/spoke.key (public in SPOKE_PUBLIC_KEY). The hub knows the
# spoke as [spoke.SITE1] (ae_titles SPOKE1) and [remote.SPOKE1] (storage
# commitment results go to spoked's port); the move destination PACS
# (PACS_PORT) is configured on the hub. DH_CC_LOG_LEVEL sets both daemons'
# log level (default debug).

# shellcheck source=lib_spoke.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_spoke.sh"
SPOKECTL=$DH_BUILD/spoke/spokectl
HUBCTL=$DH_BUILD/hub/hubctl

# dh_cc_pair_start [HUB-CONFIG-LINE...]: keys, hub with its cc endpoint,
# spoke database, spoked with its shipper.
dh_cc_pair_start() {
	HUB_PUB=$("$HUBCTL" keygen --secret-file "$T/hub.key") || dh_fail "hubctl keygen failed"
	export HUB_PUB
	dh_spoke_db
	dh_spoke_prepare
	[ -f "$T/spoke.key" ] || dh_fail "no CURVE key for the spoke"
	CC_PORT=$(dh_free_port)
	PACS_PORT=$(dh_free_port)
	export CC_PORT PACS_PORT
	dh_hub_config "${DH_SPOKE_HUB_LINES[@]}" "[hub]" "log_level = ${DH_CC_LOG_LEVEL:-debug}" \
		"[cc]" "endpoint = tcp://127.0.0.1:$CC_PORT" "secret_key_file = $T/hub.key" "retry_interval = 1" \
		"[remote.PACS]" "host = 127.0.0.1" "port = $PACS_PORT" "$@"
	dh_hub_start
	dh_spoke_config "[spoke]" "secret_key_file = $T/spoke.key" "log_level = ${DH_CC_LOG_LEVEL:-debug}" \
		"[hub]" "cc_endpoint = tcp://127.0.0.1:$CC_PORT" "public_key = $HUB_PUB" \
		"[forward]" "retry_max = 2" "[cc]" "ack_timeout = 3"
	dh_spoke_start
}

dh_cc_pair_stop() { dh_spoke_stop; }

# dh_cc_wait_committed N SECONDS: until N ledger objects are committed at the hub.
dh_cc_wait_committed() {
	local deadline=$((SECONDS + $2))
	until [ "$(dh_spoke_psql "SELECT count(*) FROM ledger_instance WHERE fwd_state = 'committed'")" -ge "$1" ]; do
		[ "$SECONDS" -lt "$deadline" ] ||
			dh_fail "fewer than $1 objects committed within $2 s: $(dh_spoke_psql "SELECT fwd_state || ':' || count(*) FROM ledger_instance GROUP BY fwd_state")"
		sleep 0.3
	done
}

# dh_cc_wait_acked SEQ SECONDS: until the hub acknowledged every cc up to SEQ.
dh_cc_wait_acked() {
	local deadline=$((SECONDS + $2))
	until [ "$(dh_spoke_psql "SELECT acked_through FROM spoke_state")" -ge "$1" ]; do
		[ "$SECONDS" -lt "$deadline" ] ||
			dh_fail "the hub did not acknowledge up to $1 within $2 s (acked: $(dh_spoke_psql "SELECT acked_through FROM spoke_state"))"
		sleep 0.2
	done
}
