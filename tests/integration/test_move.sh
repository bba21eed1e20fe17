#!/usr/bin/env bash
# C-MOVE SCP (conformance §2.2.1.6.4, Table 2-32) with storescp as the move
# destination: every object arrives with the data set bytes the hub stored
# (compressed ones too), at study, series, image and patient level; partial
# and total refusal by the destination (B000 with the failed UID list, A702);
# decompression for an `uncompressed` destination (JPEG decoded, JPEG 2000
# failing); A801, A900, A702 for a destination that is down; C-CANCEL; C000
# while PostgreSQL is away and recovery without restarting hubd; and
# `spokectl recall` end to end.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dh_setup move
dh_pg_start
S=$(dh_samples)
DEST_PORT=$(dh_free_port)
CT_PORT=$(dh_free_port)
RAW_PORT=$(dh_free_port)
DOWN_PORT=$(dh_free_port)
dh_hub_config "[qr]" "pending_interval = 0" \
	"[remote.DEST]" "host = 127.0.0.1" "port = $DEST_PORT" \
	"[remote.CTONLY]" "host = 127.0.0.1" "port = $CT_PORT" \
	"[remote.NATIVE]" "host = 127.0.0.1" "port = $RAW_PORT" "uncompressed = true" \
	"[remote.DOWN]" "host = 127.0.0.1" "port = $DOWN_PORT" \
	"[remote.SPOKE]" "host = 127.0.0.1" "port = $DEST_PORT"
dh_hub_start

SCP_PIDS=()
# start_scp NAME PORT [STORESCP-OPTION...]: storescp into $T/NAME, bit-preserving
start_scp() {
	local name=$1 port=$2 i
	shift 2
	mkdir -p "$T/$name"
	storescp +B -od "$T/$name" -aet "$name" "$@" "$port" >"$T/$name.log" 2>&1 &
	SCP_PIDS+=("$!")
	for ((i = 0; i < 100; i++)); do
		echoscu -aec "$name" 127.0.0.1 "$port" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	dh_fail "storescp $name did not listen on $port"
}
stop_scps() {
	local p
	for p in "${SCP_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${SCP_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	SCP_PIDS=()
}
trap 'stop_scps; dh_cleanup' EXIT

# a profile that accepts only CT Image Storage (and Verification, for the readiness probe)
cat >"$T/ctonly.cfg" <<'EOF'
[[TransferSyntaxes]]
[Any]
TransferSyntax1 = JPEGBaseline
TransferSyntax2 = LocalEndianExplicit
TransferSyntax3 = LittleEndianImplicit
[[PresentationContexts]]
[CT]
PresentationContext1 = CTImageStorage\Any
PresentationContext2 = VerificationSOPClass\Any
[[Profiles]]
[CTOnly]
PresentationContexts = CT
EOF
start_scp DEST "$DEST_PORT" +xa
start_scp CTONLY "$CT_PORT" -xf "$T/ctonly.cfg" CTOnly
start_scp NATIVE "$RAW_PORT" +xa

# study 1 (patient PAT1): series A 3 CT (Explicit LE), series B 1 SC JPEG baseline, series C 1 MR
ST1=1.2.826.0.1.3680043.9.7777.1
ST2=1.2.826.0.1.3680043.9.7777.2
ST3=1.2.826.0.1.3680043.9.7777.3
SEA=$ST1.1 SEB=$ST1.2 SEC=$ST1.3
mkdir -p "$T/in"
for i in 1 2 3; do
	dh_variant "$S/CT_small.dcm" "$T/in/ct$i.dcm" -gin -m "PatientID=PAT1" -m "StudyInstanceUID=$ST1" \
		-m "SeriesInstanceUID=$SEA"
done
dh_variant "$S/SC_rgb_jpeg_dcmtk.dcm" "$T/jpeg.dcm" -gin -m "PatientID=PAT1" -m "StudyInstanceUID=$ST1" \
	-m "SeriesInstanceUID=$SEB"
dh_variant "$S/MR_small.dcm" "$T/in/mr.dcm" -gin -m "PatientID=PAT1" -m "StudyInstanceUID=$ST1" \
	-m "SeriesInstanceUID=$SEC"
# study 2 (patient PAT2): one JPEG 2000 object (DCMTK cannot decode it)
dh_variant "$S/JPEG2000.dcm" "$T/j2k.dcm" -gin -m "PatientID=PAT2" -m "StudyInstanceUID=$ST2" \
	-m "SeriesInstanceUID=$ST2.1"
storescu -aet STORESCU -aec DCMHUB 127.0.0.1 "$HUB_PORT" "$T"/in/*.dcm || dh_fail "storing the study set"
# compressed objects: storescu proposes their transfer syntax only when told to
storescu -xy -aet STORESCU -aec DCMHUB 127.0.0.1 "$HUB_PORT" "$T/jpeg.dcm" || dh_fail "storing the JPEG object"
storescu -xw -aet STORESCU -aec DCMHUB 127.0.0.1 "$HUB_PORT" "$T/j2k.dcm" || dh_fail "storing the JPEG 2000 object"
dh_assert_eq 6 "$(dh_psql "SELECT count(*) FROM instance")" "study set stored"
dh_assert_eq "1.2.840.10008.1.2.4.50" \
	"$(dh_psql "SELECT i.transfer_syntax FROM instance i JOIN series s ON s.pk = i.series_fk
	            WHERE s.series_uid = '$SEB'")" "JPEG object stored compressed"

uid_of() { dcmdump +P 0008,0018 "$1" | sed 's/.*\[\(.*\)\].*/\1/' | tr -d '\0 '; }
ts_of() {
	"$DH_PYTHON" -c 'import sys, pydicom
print(pydicom.dcmread(sys.argv[1], stop_before_pixels=True).file_meta.TransferSyntaxUID)' "$1"
}

# move ARGS...: movescu -v to the hub; output in $MV, exit status in $MV_RC
move() {
	set +e
	MV=$(movescu -v -aet MOVESCU -aec DCMHUB "$@" 127.0.0.1 "$HUB_PORT" 2>&1)
	MV_RC=$?
	set -e
	echo "$MV" >>"$T/movescu.log"
}
# check_received DIR N: DIR holds N objects, each with the hub's stored data set bytes
check_received() {
	local dir=$1 n=$2 f uid path
	dh_assert_eq "$n" "$(find "$dir" -type f | wc -l)" "objects received in $dir"
	for f in "$dir"/*; do
		uid=$(uid_of "$f")
		path=$(dh_psql "SELECT file_path FROM instance WHERE sop_uid = :'p1'" "$uid")
		[ -n "$path" ] || dh_fail "$f: $uid is not in the index"
		dh_assert_eq "$("$DH_PYTHON" "$DH_SRC/tests/integration/dsbytes.py" "$T/cache/$path")" \
			"$("$DH_PYTHON" "$DH_SRC/tests/integration/dsbytes.py" "$f")" "data set bytes of $uid"
	done
}
# the final status hubd logged for the last C-MOVE (movescu names statuses its own way)
last_status() { grep "C-MOVE from .* status " "$T/hubd.log" | tail -n 1 | sed 's/.* status \([0-9A-F]\{4\}\).*/\1/'; }
clear_dir() { rm -f "$T/$1"/*; }

# ---- study level, Study Root: all 5 objects, byte-identical (JPEG sent compressed)
move -S -aem DEST -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=$ST1
dh_assert_eq 0 "$MV_RC" "study move: movescu exit status"
dh_assert_contains "$MV" "Success" "study move: final status"
check_received "$T/DEST" 5
for f in "$T"/DEST/SC*; do dh_assert_eq "1.2.840.10008.1.2.4.50" "$(ts_of "$f")" "JPEG object kept compressed"; done
grep -q "Move Originator" "$T/DEST.log" 2>/dev/null || true # storescp does not log it; see the -d run below
clear_dir DEST

# ---- series level (two series as a list) and image level (UID list), relational keys
move -S -aem DEST -k QueryRetrieveLevel=SERIES -k StudyInstanceUID=$ST1 -k "SeriesInstanceUID=$SEA\\$SEC"
dh_assert_eq 0 "$MV_RC" "series move"
check_received "$T/DEST" 4
clear_dir DEST
u1=$(uid_of "$T/in/ct1.dcm") u2=$(uid_of "$T/jpeg.dcm")
move -S -aem DEST -k QueryRetrieveLevel=IMAGE -k StudyInstanceUID=$ST1 -k "SOPInstanceUID=$u1\\$u2"
dh_assert_eq 0 "$MV_RC" "image move"
check_received "$T/DEST" 2
clear_dir DEST

# ---- patient level, Patient Root
move -P -aem DEST -k QueryRetrieveLevel=PATIENT -k PatientID=PAT1
dh_assert_eq 0 "$MV_RC" "patient move"
check_received "$T/DEST" 5
clear_dir DEST
# no match: success with zero sub-operations
move -S -aem DEST -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=1.2.3.4.5.6.7
dh_assert_eq 0 "$MV_RC" "move without matches"
dh_assert_eq 0 "$(find "$T/DEST" -type f | wc -l)" "nothing sent without matches"

# ---- identifier not matching the model: A900
move -S -aem DEST -k QueryRetrieveLevel=PATIENT -k PatientID=PAT1
dh_assert_ne 0 "$MV_RC" "PATIENT level in Study Root"
dh_assert_eq A900 "$(last_status)" "A900 for a level outside the model"
move -O -aem DEST -k QueryRetrieveLevel=SERIES -k StudyInstanceUID=$ST1 -k SeriesInstanceUID=$SEA
dh_assert_eq A900 "$(last_status)" "A900 for SERIES in Patient/Study Only"

# ---- unknown destination: A801
move -S -aem NOSUCH -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=$ST1
dh_assert_ne 0 "$MV_RC" "unknown destination"
dh_assert_eq A801 "$(last_status)" "A801 for an unknown destination"

# ---- destination that accepts CT only: B000, the two others listed as failed
move -S -aem CTONLY -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=$ST1
dh_assert_eq 68 "$MV_RC" "partial refusal: movescu warning"
dh_assert_eq B000 "$(last_status)" "B000 when some sub-operations fail"
check_received "$T/CTONLY" 3
grep -q "C-MOVE from MOVESCU to CTONLY: 5 matched, 3 completed, 2 failed" "$T/hubd.log" ||
	dh_fail "move not logged with its counts"
# the failed list, through movescu's debug output of the final response identifier
set +e
movescu -d -S -aet MOVESCU -aec DCMHUB -aem CTONLY -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=$ST1 \
	127.0.0.1 "$HUB_PORT" >"$T/failed.txt" 2>&1
set -e
for f in jpeg mr; do
	grep -q "$(uid_of "$T/in/$f.dcm")" "$T/failed.txt" || dh_fail "$f not in the Failed SOP Instance UID List"
done
grep -q "(0008,0058)" "$T/failed.txt" || dh_fail "no Failed SOP Instance UID List in the final response"
clear_dir CTONLY
# ... and refuses every object of a series: A702
move -S -aem CTONLY -k QueryRetrieveLevel=SERIES -k StudyInstanceUID=$ST1 -k SeriesInstanceUID=$SEB
dh_assert_eq A702 "$(last_status)" "A702 when the destination refuses everything"

# ---- uncompressed destination: the JPEG object arrives decoded, JPEG 2000 fails
move -S -aem NATIVE -k QueryRetrieveLevel=SERIES -k StudyInstanceUID=$ST1 -k SeriesInstanceUID=$SEB
dh_assert_eq 0 "$MV_RC" "JPEG to an uncompressed destination"
f=$(find "$T/NATIVE" -type f | head -n 1)
case "$(ts_of "$f")" in
1.2.840.10008.1.2 | 1.2.840.10008.1.2.1) ;;
*) dh_fail "JPEG object not decompressed for NATIVE: $(ts_of "$f")" ;;
esac
dh_assert_eq "$(uid_of "$T/jpeg.dcm")" "$(uid_of "$f")" "decompressed object keeps its UID"
clear_dir NATIVE
move -P -aem NATIVE -k QueryRetrieveLevel=PATIENT -k PatientID=PAT2
dh_assert_eq 68 "$MV_RC" "JPEG 2000 cannot be decoded: warning"
dh_assert_eq B000 "$(last_status)" "B000 when an object cannot be decoded"

# ---- destination down: A702
move -S -aem DOWN -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=$ST1
dh_assert_eq A702 "$(last_status)" "A702 when the destination is down"

# ---- cancel: a 60-object study, cancelled after the second response
mkdir -p "$T/big"
dh_variant "$S/CT_small.dcm" "$T/big/b0.dcm" -m "PatientID=PAT3" -m "StudyInstanceUID=$ST3" \
	-m "SeriesInstanceUID=$ST3.1"
for i in $(seq 1 59); do dh_variant "$T/big/b0.dcm" "$T/big/b$i.dcm" -gin; done
dcmodify -nb -q -gin "$T/big/b0.dcm"
storescu -aet STORESCU -aec DCMHUB 127.0.0.1 "$HUB_PORT" "$T"/big/*.dcm || dh_fail "storing the big study"
move -S --cancel 2 -aem DEST -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=$ST3
dh_assert_eq FE00 "$(last_status)" "cancelled move"
got=$(find "$T/DEST" -type f | wc -l)
[ "$got" -lt 60 ] || dh_fail "cancel did not stop the move ($got objects sent)"
clear_dir DEST
# throughput: the whole study
t0=$(date +%s.%N)
move -S -aem DEST -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=$ST3
t1=$(date +%s.%N)
dh_assert_eq 0 "$MV_RC" "big study move"
check_received "$T/DEST" 60
echo "C-MOVE throughput: $(echo "60 / ($t1 - $t0)" | bc -l | cut -c1-6) instances/s"
clear_dir DEST

# ---- PostgreSQL away: C000; back: success without restarting hubd
dh_pg_stop
move -S -aem DEST -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=$ST1
dh_assert_eq C000 "$(last_status)" "C000 while the database is down"
dh_pg_start
move -S -aem DEST -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=$ST1
dh_assert_eq 0 "$MV_RC" "move after the database came back"
check_received "$T/DEST" 5
clear_dir DEST

# ---- spokectl recall end to end
SPOKECTL=$DH_BUILD/spoke/spokectl
"$SPOKECTL" --help | grep -q "recall" || dh_fail "spokectl --help"
set +e
"$SPOKECTL" recall >/dev/null 2>&1
rc=$?
set -e
dh_assert_eq 2 "$rc" "spokectl usage error"
out=$("$SPOKECTL" recall --hub "127.0.0.1:$HUB_PORT" --hub-aet DCMHUB --aet SPOKE --dest DEST "$ST1")
echo "$out"
dh_assert_contains "$out" "remaining 5 completed 0 failed 0 warning 0" "first pending response"
dh_assert_contains "$out" "status 0000" "recall final status"
dh_assert_contains "$out" "completed 5 failed 0 warning 0" "recall counts"
check_received "$T/DEST" 5
set +e
out=$("$SPOKECTL" recall --hub "127.0.0.1:$HUB_PORT" --aet SPOKE --dest CTONLY "$ST1")
rc=$?
set -e
dh_assert_eq 1 "$rc" "spokectl exit status on a warning"
dh_assert_contains "$out" "status B000" "recall with failures"

stop_scps
dh_pass
