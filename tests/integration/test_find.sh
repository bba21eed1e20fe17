#!/usr/bin/env bash
# C-FIND SCP (conformance §2.2.1.6.3) against findscu: a small archive of
# several patients, studies and series built from pydicom samples, then one
# query per matching type, model and level, asserting the exact set of
# matches; SQL metacharacters in keys; A900 for identifiers that do not fit
# the model; C000 while PostgreSQL is down and recovery once it is back
# (same hubd); cancel (FE00).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dh_setup find
dh_pg_start
dh_hub_config
dh_hub_start
S=$(dh_samples)
mkdir -p "$T/in" "$T/q"

# ---------------------------------------------------------------- the archive
# patient PA1 (Smith^John, issuer HOSP)
#   study A1: 20060705 093000, ACC1, "Chest CT", CT series (2 images, General Hospital / Radiology)
#   study A2: 20060706 080000, "ACC%_2", "Brain MR", MR series with a request (RP42 / SPS7)
# patient PB2 (o'Brien^Ann, issuer HOSP, other ID ALT9/OTHER)
#   study B1: 20060707 190000, accession full of SQL, SR document with concept 121071/DCM, COMPLETE/VERIFIED
# patient PC3 (SMITHERS^JANE, issuer HOSP)
#   study C1: 20060707 170000, ACC3, "chest x-ray", CR series
pat() { echo -i "(0010,0010)=$1" -i "(0010,0020)=$2" -i "(0010,0021)=HOSP"; }
# shellcheck disable=SC2046
dh_variant "$S/CT_small.dcm" "$T/in/a1_1.dcm" -gst -gse -gin $(pat 'Smith^John' PA1) \
  -i "(0008,0020)=20060705" -i "(0008,0030)=093000" -i "(0008,0050)=ACC1" -i "(0008,1030)=Chest CT" \
  -i "(0008,0090)=Welby^Marcus" -i "(0020,0010)=S1" -i "(0008,0080)=General Hospital" \
  -i "(0008,1040)=Radiology" -i "(0020,0011)=1" -i "(0020,0013)=1" -i "(0008,0023)=20060705" \
  -i "(0008,0033)=093500"
dh_variant "$T/in/a1_1.dcm" "$T/in/a1_2.dcm" -gin -i "(0020,0013)=2"
# shellcheck disable=SC2046
dh_variant "$S/MR_small.dcm" "$T/in/a2_1.dcm" -gst -gse -gin $(pat 'Smith^John' PA1) \
  -i "(0008,0020)=20060706" -i "(0008,0030)=080000" -i "(0008,0050)=ACC%_2" -i "(0008,1030)=Brain MR" \
  -i "(0020,0010)=S2" -i "(0008,0080)=Other Clinic" -i "(0020,0011)=7" -i "(0020,0013)=21" \
  -i "(0040,0275)[0].(0040,1001)=RP42" -i "(0040,0275)[0].(0040,0009)=SPS7" \
  -i "(0040,0275)[0].(0040,0007)=Brain protocol"
# shellcheck disable=SC2046
dh_variant "$S/test-SR.dcm" "$T/in/b1_1.dcm" -gst -gse -gin $(pat "o'Brien^Ann" PB2) \
  -i "(0010,1002)[0].(0010,0020)=ALT9" -i "(0010,1002)[0].(0010,0021)=OTHER" \
  -i "(0008,0020)=20060707" -i "(0008,0030)=190000" -i "(0008,0050)=X'; DROP TABLE study;--" \
  -i "(0008,1030)=100% _done_ \\\\ report" -i "(0020,0010)=S3" -i "(0020,0013)=31" \
  -i "(0040,A043)[0].(0008,0100)=121071" -i "(0040,A043)[0].(0008,0102)=DCM" \
  -i "(0040,A043)[0].(0008,0104)=Finding" -i "(0040,A491)=COMPLETE" -i "(0040,A493)=VERIFIED"
CR=$(ls "$S"/dicomdirtests/77654033/CR1/* | head -1)
# shellcheck disable=SC2046
dh_variant "$CR" "$T/in/c1_1.dcm" -gst -gse -gin $(pat 'SMITHERS^JANE' PC3) \
  -i "(0008,0020)=20060707" -i "(0008,0030)=170000" -i "(0008,0050)=ACC3" -i "(0008,1030)=chest x-ray" \
  -i "(0020,0010)=S4" -i "(0020,0013)=41"
storescu -aet STORESCU -aec DCMHUB +sd 127.0.0.1 "$HUB_PORT" "$T/in" >"$T/storescu.log" 2>&1 ||
  dh_fail "storescu failed: $(cat "$T/storescu.log")"
dh_assert_eq 5 "$(dh_psql "SELECT count(*) FROM instance")" "five objects stored"
dh_assert_eq 3 "$(dh_psql "SELECT count(*) FROM patient")" "three patients"

# top-level elements only (an SR has study UIDs nested in its content)
uid() { dcmdump -q "$T/in/$1.dcm" | sed -n "s/^($2) .. \\[\\(.*\\)\\].*/\\1/p"; }
A1=$(uid a1_1 0020,000d); A2=$(uid a2_1 0020,000d); B1=$(uid b1_1 0020,000d); C1=$(uid c1_1 0020,000d)
A1S=$(uid a1_1 0020,000e); A1I1=$(uid a1_1 0008,0018); A1I2=$(uid a1_2 0008,0018)

# ---------------------------------------------------------------- helpers
# cfind NAME MODEL KEY...: one C-FIND (findscu -d: DIMSE statuses in the log),
# responses extracted into $T/q/NAME/rsp*.dcm
cfind() {
  local name=$1 model=$2
  shift 2
  local d=$T/q/$name args=() k
  rm -rf "$d"
  mkdir -p "$d"
  for k in "$@"; do
    case $k in
      --cancel=*) args+=(--cancel "${k#--cancel=}") ;;
      *) args+=(-k "$k") ;;
    esac
  done
  findscu -d "$model" -aet FINDSCU -aec DCMHUB -X -od "$d" "${args[@]}" 127.0.0.1 "$HUB_PORT" \
    >"$d.log" 2>&1 || true
}
# final NAME: the final response's status (hex, lower case)
final() {
  grep -a -i "DIMSE Status" "$T/q/$1.log" | tail -1 | grep -o '0x[0-9a-fA-F]*' | tr 'A-F' 'a-f' || true
}
# vals NAME TAG: TAG's value in every response, sorted, one line
vals() {
  local f
  for f in "$T/q/$1"/rsp*.dcm; do
    [ -f "$f" ] || continue
    dcmdump -q "$f" | sed -n "s/^($2) .. \\[\\(.*\\)\\].*/\\1/p"
  done | sort | tr '\n' ' ' | sed 's/ $//'
}
count() { local n=0 f; for f in "$T/q/$1"/rsp*.dcm; do [ -f "$f" ] && n=$((n + 1)); done; echo "$n"; }
# expect NAME TAG "VALUES" [STATUS]: the matches' TAG values and the final status
expect() {
  dh_assert_eq "${4:-0x0000}" "$(final "$1")" "$1: final status"
  dh_assert_eq "$3" "$(vals "$1" "$2")" "$1: matches"
}

# ---------------------------------------------------------------- matching
# universal, study root, study level: every study, with the counts asked for
cfind all -S 0008,0052=STUDY 0020,000D 0020,1000 0020,1208 0008,0061 0008,0056 0010,0010
expect all 0020,000d "$(printf '%s\n' "$A1" "$A2" "$B1" "$C1" | sort | tr '\n' ' ' | sed 's/ $//')"
f=
for r in "$T"/q/all/rsp*.dcm; do
  if dcmdump -q +P 0020,000d "$r" | grep -q "\[$A1\]"; then f=$r; fi
done
[ -n "$f" ] || dh_fail "no response for study A1"
dh_assert_eq "1" "$(dcmdump -q +P 0020,1000 "$f" | sed -n 's/.*\[\(.*\)\].*/\1/p')" "A1: series count"
dh_assert_eq "2" "$(dcmdump -q +P 0020,1208 "$f" | sed -n 's/.*\[\(.*\)\].*/\1/p')" "A1: instance count"
dh_assert_eq "CT" "$(dcmdump -q +P 0008,0061 "$f" | sed -n 's/.*\[\(.*\)\].*/\1/p')" "A1: modalities"
dh_assert_eq "ONLINE" "$(dcmdump -q +P 0008,0056 "$f" | sed -n 's/.*\[\(.*\)\].*/\1/p')" "availability"
dh_assert_eq "DCMHUB" "$(dcmdump -q +P 0008,0054 "$f" | sed -n 's/.*\[\(.*\)\].*/\1/p')" "retrieve AE"
dh_assert_eq "ISO_IR 192" "$(dcmdump -q +P 0008,0005 "$f" | sed -n 's/.*\[\(.*\)\].*/\1/p')" "charset"
dh_assert_eq "" "$(dcmdump -q +P 0008,0060 "$f")" "keys not asked are not returned"

# wild card, case-insensitive PN: smith* matches Smith^John and SMITHERS^JANE
cfind pn -P 0008,0052=PATIENT 0010,0020 "0010,0010=smith*"
expect pn 0010,0020 "PA1 PC3"
cfind pn2 -P 0008,0052=PATIENT 0010,0020 "0010,0010=?'brien^a*"
expect pn2 0010,0020 "PB2"
# Patient ID is case-sensitive
cfind pid -P 0008,0052=PATIENT 0010,0010 "0010,0020=pa1"
expect pid 0010,0020 ""
# single value: issuer
cfind iss -O 0008,0052=PATIENT 0010,0020 "0010,0021=HOSP"
expect iss 0010,0020 "PA1 PB2 PC3"
# Study Description case-insensitive, wild card
cfind desc -S 0008,0052=STUDY 0008,0050 "0008,1030=CHEST*"
expect desc 0008,0050 "ACC1 ACC3"
# LIKE metacharacters are literal: % and _ in the key match only themselves
cfind meta1 -S 0008,0052=STUDY 0008,0050 "0008,0050=ACC%_*"
expect meta1 0008,0050 "ACC%_2"
cfind meta2 -S 0008,0052=STUDY 0008,0050 "0008,0050=ACC_"
expect meta2 0008,0050 ""
cfind meta3 -S 0008,0052=STUDY 0020,0010 "0008,1030=100% _done_*"
expect meta3 0020,0010 "S3"
cfind meta4 -S 0008,0052=STUDY 0020,0010 "0008,1030=1%"
expect meta4 0020,0010 ""
# SQL metacharacters: matched as data, nothing else happens
cfind sql -S 0008,0052=STUDY 0020,0010 "0008,0050=X'; DROP TABLE study;--"
expect sql 0020,0010 "S3"
cfind sql2 -S 0008,0052=STUDY 0020,0010 "0008,0050=' OR '1'='1"
expect sql2 0020,0010 ""
dh_assert_eq 4 "$(dh_psql "SELECT count(*) FROM study")" "study table intact"
# UID list
cfind uids -S 0008,0052=STUDY 0020,0010 "0020,000D=$A1\\$C1\\1.2.3.999"
expect uids 0020,0010 "S1 S4"
# date range, open ranges
cfind d1 -S 0008,0052=STUDY 0020,0010 "0008,0020=20060706-20060707"
expect d1 0020,0010 "S2 S3 S4"
cfind d2 -S 0008,0052=STUDY 0020,0010 "0008,0020=-20060705"
expect d2 0020,0010 "S1"
cfind d3 -S 0008,0052=STUDY 0020,0010 "0008,0020=20060707-"
expect d3 0020,0010 "S3 S4"
# footnote 6: one interval July 5 10:00 .. July 7 18:00 (A2 at 08:00 on July 6 is inside)
cfind dt -S 0008,0052=STUDY 0020,0010 "0008,0020=20060705-20060707" "0008,0030=1000-1800"
expect dt 0020,0010 "S2 S4"
# time alone: a daily window
cfind tm -S 0008,0052=STUDY 0020,0010 "0008,0020" "0008,0030=0900-1000"
expect tm 0020,0010 "S1"
# Modalities in Study (any of)
cfind mods -S 0008,0052=STUDY 0020,0010 "0008,0061=MR\\CR"
expect mods 0020,0010 "S2 S4"
# Referring Physician (PN, case-insensitive)
cfind ref -S 0008,0052=STUDY 0020,0010 "0008,0090=WELBY*"
expect ref 0020,0010 "S1"

# series level: institution case-insensitive; counts; request attribute sequence
cfind ser -S 0008,0052=SERIES "0020,000D=$A1" 0020,000E 0020,1209 "0008,0080=general*"
expect ser 0020,000e "$A1S"
dh_assert_eq "2" "$(vals ser 0020,1209)" "series: instance count"
cfind dept -S 0008,0052=SERIES 0020,0011 "0008,1040=RADIOLOGY"
expect dept 0020,0011 "1"
cfind req -S 0008,0052=SERIES 0020,0011 "0040,0275[0].0040,1001=RP*" "0040,0275[0].0040,0009"
expect req 0020,0011 "7"
dh_assert_contains "$(dcmdump -q "$T"/q/req/rsp0001.dcm)" "SPS7" "request items returned"
cfind req2 -S 0008,0052=SERIES 0020,0011 "0040,0275[0].0040,0009=SPS8"
expect req2 0020,0011 ""
# relational: series of patient PA1 with modality MR (patient root)
cfind rel -P 0008,0052=SERIES 0020,0011 "0010,0020=PA1" "0008,0060=MR"
expect rel 0020,0011 "7"
# relational downwards: studies having a CT series
cfind reldown -S 0008,0052=STUDY 0020,0010 "0008,0060=CT"
expect reldown 0020,0010 "S1"

# image level: SOP UID list, instance number wild card, concept name, flags
cfind img -S 0008,0052=IMAGE "0020,000D=$A1" "0008,0018=$A1I1\\$A1I2" 0020,0013 0008,0056
expect img 0020,0013 "1 2"
dh_assert_eq "ONLINE ONLINE" "$(vals img 0008,0056)" "instance availability"
cfind inum -P 0008,0052=IMAGE 0008,0018 "0020,0013=?"
expect inum 0008,0018 "$(printf '%s\n' "$A1I1" "$A1I2" | sort | tr '\n' ' ' | sed 's/ $//')"
cfind concept -S 0008,0052=IMAGE 0020,0010 "0040,A043[0].0008,0100=121071" "0040,A043[0].0008,0102=DCM"
expect concept 0020,0010 "S3"
dh_assert_contains "$(dcmdump -q "$T"/q/concept/rsp0001.dcm)" "Finding" "concept returned"
cfind concept2 -S 0008,0052=IMAGE 0020,0010 "0040,A043[0].0008,0100=121071" "0040,A043[0].0008,0102=SRT"
expect concept2 0020,0010 ""
cfind flags -S 0008,0052=IMAGE 0020,0010 "0040,A491=COMPLETE" "0040,A493=VERIFIED"
expect flags 0020,0010 "S3"
cfind cdate -S 0008,0052=IMAGE 0020,0013 "0008,0023=20060705" "0008,0033=0930-0940"
expect cdate 0020,0013 "1 2"

# Other Patient IDs: root + items all given, no wild cards
cfind oid -P 0008,0052=PATIENT 0010,0010 "0010,0020=NOPE" "0010,0021=HOSP" \
  "0010,1002[0].0010,0020=ALT9" "0010,1002[0].0010,0021=OTHER"
expect oid 0010,0010 "o'Brien^Ann"
dh_assert_contains "$(dcmdump -q "$T"/q/oid/rsp0001.dcm)" "ALT9" "other IDs returned"
cfind oidroot -P 0008,0052=PATIENT 0010,0010 "0010,0020=PA1" "0010,0021=HOSP" \
  "0010,1002[0].0010,0020=ALT9" "0010,1002[0].0010,0021=OTHER"
expect oidroot 0010,0010 "Smith^John o'Brien^Ann"
cfind oidbad -P 0008,0052=PATIENT 0010,0010 "0010,0020=PA*" "0010,0021=HOSP" \
  "0010,1002[0].0010,0020=ALT9" "0010,1002[0].0010,0021=OTHER"
expect oidbad 0010,0010 "" 0xa900

# ---------------------------------------------------------------- models and levels
cfind ps -O 0008,0052=STUDY 0020,0010 "0010,0020=PA1"
expect ps 0020,0010 "S1 S2"
cfind pslevel -O 0008,0052=SERIES 0020,000E
expect pslevel 0020,000e "" 0xa900
cfind srpat -S 0008,0052=PATIENT 0010,0020
expect srpat 0010,0020 "" 0xa900
cfind nolevel -S 0020,000D
expect nolevel 0020,000d "" 0xa900
cfind badlevel -P 0008,0052=FOO 0010,0020
expect badlevel 0010,0020 "" 0xa900
cfind prpat -P 0008,0052=PATIENT 0010,0020 0008,0056 "0010,0010=SMITHERS*"
expect prpat 0010,0020 "PC3"
dh_assert_eq "" "$(vals prpat 0008,0056)" "no availability at patient level"
cfind prstudy -P 0008,0052=STUDY "0010,0020=PC3" 0020,0010
expect prstudy 0020,0010 "S4"
cfind prseries -P 0008,0052=SERIES "0010,0020=PB2" 0008,0060
expect prseries 0008,0060 "SR"

# ---------------------------------------------------------------- cancel
# enough matches that the C-CANCEL (sent after the first response) arrives
# while the SCP is still answering: with 400 a fast hub had once written
# every response into the socket buffers before the cancel came (a CI run)
mkdir -p "$T/bulk"
dh_variant "$S/test-SR.dcm" "$T/bulk/b0000.dcm" -gst -gse -gin $(pat 'Bulk^Patient' PBULK) -i "(0020,0010)=SB"
for i in $(seq 1 1499); do cp "$T/bulk/b0000.dcm" "$T/bulk/b$i.dcm"; done
dcmodify -nb -q -gin "$T"/bulk/b*.dcm
storescu -aet STORESCU -aec DCMHUB +sd 127.0.0.1 "$HUB_PORT" "$T/bulk" >"$T/storescu-bulk.log" 2>&1 ||
  dh_fail "bulk storescu failed"
dh_assert_eq 1505 "$(dh_psql "SELECT count(*) FROM instance")" "bulk stored"
BULK=$(uid ../bulk/b0000 0020,000d)
cfind nocancel -S 0008,0052=IMAGE "0020,000D=$BULK" 0008,0018
dh_assert_eq 0x0000 "$(final nocancel)" "bulk: success"
dh_assert_eq 1500 "$(count nocancel)" "bulk: every instance answered"
# Number of Study Related Instances at IMAGE level costs the database a count
# of the study's 1500 instances per row: the hub answers slowly enough for
# the cancel to arrive in time however fast it writes its responses (it
# streams rows and writes many responses per write(): without the count all
# 1500 can be in the socket buffers before findscu has read the first)
cfind cancel -S 0008,0052=IMAGE "0020,000D=$BULK" 0008,0018 0020,1208 --cancel=1
dh_assert_eq 0xfe00 "$(final cancel)" "cancel: final FE00"
[ "$(count cancel)" -lt 1500 ] || dh_fail "cancel: all $(count cancel) responses sent"
echo "cancel: $(count cancel) responses before FE00"
# the cancel ended a statement still streaming rows: hubd closed that
# connection, and the next query gets a good one and every match
cfind aftercancel -S 0008,0052=IMAGE "0020,000D=$BULK" 0008,0018
dh_assert_eq 0x0000 "$(final aftercancel)" "after cancel: success"
dh_assert_eq 1500 "$(count aftercancel)" "after cancel: every instance answered"

# ---------------------------------------------------------------- database down
dh_pg_stop
cfind down -S 0008,0052=STUDY 0020,0010
expect down 0020,0010 "" 0xc000
dh_pg_start
ok=0
for _ in $(seq 1 50); do
  cfind up -S 0008,0052=STUDY 0020,0010
  if [ "$(final up)" = 0x0000 ]; then ok=1; break; fi
  sleep 0.2
done
dh_assert_eq 1 "$ok" "C-FIND works again after PostgreSQL restarted, same hubd"
expect up 0020,0010 "S1 S2 S3 S4 SB"
dh_pass
