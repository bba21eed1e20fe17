#!/usr/bin/env bash
# C-MOVE from the nearline archive (issue 4): a study is archived and evicted
# from the cache, then moved: every object arrives with the data set bytes
# the hub received. Objects added to an archived series go into a second TAR
# and a move returns all of them. An offline volume fails the sub-operations
# (movescu sees a failure status); online again, the move succeeds.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dh_setup nearline_move
dh_pg_start
S=$(dh_samples)
DEST_PORT=$(dh_free_port)
dh_hub_config "[archive]" "stable_seconds = 1" "scan_interval = 1" "cache_high_mb = 1" "cache_low_mb = 0" \
	"[volume.NL1]" "path = $T/nl1" "[remote.DEST]" "host = 127.0.0.1" "port = $DEST_PORT"
dh_hub_start
HUBCTL=$DH_BUILD/hub/hubctl
DSB="$DH_SRC/tests/integration/dsbytes.py"

mkdir -p "$T/in" "$T/out"
dh_variant "$S/CT_small.dcm" "$T/in/0.dcm" -gst -gse -gin -m "PatientID=NL-1"
# 30 x 39 KB: over the 1 MiB high watermark, so all of it is evicted
for i in $(seq 1 29); do dh_variant "$T/in/0.dcm" "$T/in/$i.dcm" -gin; done
study=$(dcmdump +P 0020,000d "$T/in/0.dcm" | sed 's/.*\[\(.*\)\].*/\1/')
storescu -aet STORESCU -aec DCMHUB 127.0.0.1 "$HUB_PORT" "$T"/in/*.dcm || dh_fail "store"
# what the hub holds, per SOP Instance UID (data set bytes as received)
declare -A want
while IFS='|' read -r uid fp; do
	want[$uid]=$(/usr/bin/python3 "$DSB" "$T/cache/$fp")
done < <(dh_psql "SELECT sop_uid, file_path FROM instance")

wait_evicted() { # all N objects archived and gone from the cache
	for _ in $(seq 1 300); do
		[ "$(dh_psql "SELECT count(*) FROM instance WHERE tar_fk IS NOT NULL AND file_path IS NULL")" = "$1" ] && return 0
		sleep 0.1
	done
	dh_fail "objects not archived and evicted: $(dh_psql "SELECT count(*), count(tar_fk), count(file_path) FROM instance")"
}
wait_evicted 30

dh_bg storescp -od "$T/out" "$DEST_PORT"
scp=$DH_BG_LAST
dh_wait_echo "$DEST_PORT"
move() { movescu -S -aet MOVESCU -aec DCMHUB -aem DEST -k 0008,0052=STUDY -k "0020,000d=$study" 127.0.0.1 "$HUB_PORT"; }
move || dh_fail "C-MOVE from the nearline archive failed"
dh_assert_eq 30 "$(ls "$T/out" | wc -l)" "objects received from the archive"
for f in "$T"/out/*; do
	uid=$(dcmdump +P 0008,0018 "$f" | sed 's/.*\[\(.*\)\].*/\1/')
	dh_assert_eq "${want[$uid]}" "$(/usr/bin/python3 "$DSB" "$f")" "data set bytes of $uid from its TAR"
done

# new objects in the archived series: a second TAR; a move returns all
tar1_sum=$(md5sum <"$T/nl1/$(dh_psql "SELECT path FROM tar_file ORDER BY pk LIMIT 1")")
for i in 30 31; do dh_variant "$T/in/0.dcm" "$T/in/$i.dcm" -gin; done
storescu -aet STORESCU -aec DCMHUB 127.0.0.1 "$HUB_PORT" "$T/in/30.dcm" "$T/in/31.dcm" || dh_fail "store more"
for _ in $(seq 1 300); do
	[ "$(dh_psql "SELECT count(*) FROM instance WHERE tar_fk IS NOT NULL")" = 32 ] && break
	sleep 0.1
done
dh_assert_eq 2 "$(dh_psql "SELECT count(*) FROM tar_file")" "a second TAR for the series"
dh_assert_eq "$tar1_sum" "$(md5sum <"$T/nl1/$(dh_psql "SELECT path FROM tar_file ORDER BY pk LIMIT 1")")" "first TAR unchanged"
rm -f "$T"/out/*
move || dh_fail "C-MOVE of the grown series failed"
dh_assert_eq 32 "$(ls "$T/out" | wc -l)" "all objects of both TARs"

# offline volume: the objects only in a TAR fail and the final status says so
[ "$(dh_psql "SELECT count(*) FROM instance WHERE file_path IS NULL")" -ge 30 ] || dh_fail "evicted objects expected"
"$HUBCTL" -c "$T/hub.conf" volume offline NL1 >/dev/null
rm -f "$T"/out/*
rc=0
move >"$T/off.log" 2>&1 || rc=$?
dh_assert_ne 0 "$rc" "C-MOVE status while the volume is offline"
dh_assert_eq "$(dh_psql "SELECT count(*) FROM instance WHERE file_path IS NOT NULL")" "$(ls "$T/out" | wc -l)" "only objects still in the cache are sent"
availability() { # the study's Instance Availability (0008,0056) by C-FIND
	findscu -v -S -aet FINDSCU -aec DCMHUB -k 0008,0052=STUDY -k "0020,000d=$study" -k 0008,0056 \
		127.0.0.1 "$HUB_PORT" >"$T/find.log" 2>&1 || true
	sed -n 's/.*(0008,0056) CS \[\([A-Z]*\) *\].*/\1/p' "$T/find.log" | head -1
}
avail=$(availability)
[ -n "$avail" ] || cat "$T/find.log" >&2
dh_assert_eq OFFLINE "$avail" "Instance Availability of the study while its volume is offline"
"$HUBCTL" -c "$T/hub.conf" volume online NL1 >/dev/null
avail=$(availability)
[ -n "$avail" ] || cat "$T/find.log" >&2
dh_assert_eq NEARLINE "$avail" "Instance Availability once the volume is online (all evicted but two)"
move || dh_fail "C-MOVE after the volume came back online"
dh_assert_eq 32 "$(ls "$T/out" | wc -l)" "all objects once the volume is online again"
kill "$scp" 2>/dev/null || true
dh_pass
