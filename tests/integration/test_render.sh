#!/usr/bin/env bash
# Transmit-time rendering (hub/qr/render.c, hub/qr/qr_move.c): change contexts are
# simulated in SQL the way the applier leaves the index, then C-MOVE to a
# storescp peer must deliver the current truth:
#  (a) attr_override on a patient (non-ASCII PatientName: the data set goes
#      to UTF-8, ISO_IR 192), a series (SeriesDescription) and instances
#      (seq order: the latest write wins; a private tag with its VR; an
#      empty value present with zero length);
#  (b) a Study UID fix-up (study row + uid_mapping 'study');
#  (c) an object moved into another study and given a new SOP UID: it carries
#      the target study's UIDs, patient and study attributes, meta (0002,0003);
#  (d) a deleted object never arrives;
# counts match C-FIND's Number of Study Related Instances, an untouched
# object arrives byte-identical, dciodvfy finds no error in a rendered object
# that it did not find in the original, and old Study / SOP Instance UIDs
# still retrieve what they became.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dh_setup render
dh_pg_start
S=$(dh_samples)
DEST_PORT=$(dh_free_port)
dh_hub_config "[qr]" "pending_interval = 0" "[remote.DEST]" "host = 127.0.0.1" "port = $DEST_PORT"
dh_hub_start

mkdir -p "$T/DEST" "$T/in"
storescp +B -od "$T/DEST" -aet DEST "$DEST_PORT" >"$T/DEST.log" 2>&1 &
SCP_PID=$!
trap 'kill "$SCP_PID" 2>/dev/null || true; wait "$SCP_PID" 2>/dev/null || true; dh_cleanup' EXIT
dh_wait_echo "$DEST_PORT" DEST

R=1.2.826.0.1.3680043.9.7777.50
STA=$R.1 STB=$R.2 STC=$R.3 STB_NEW=$R.22
A1=$STA.1 A2=$STA.2 B1=$STB.1 C1=$STC.1
# study A (patient PA): A1 two CT (ISO_IR 100), A2 one MR (no Specific Character Set)
pat() { echo -i "PatientID=$1" -i "PatientName=$2" -i "StudyInstanceUID=$3" -i "SeriesInstanceUID=$4" \
	-i "StudyDescription=$5" -i "AccessionNumber=$6"; }
# shellcheck disable=SC2046
{
	dh_variant "$S/CT_small.dcm" "$T/in/ct1.dcm" -gin $(pat PA Alpha^Anna $STA $A1 StudyA ACCA)
	dh_variant "$S/CT_small.dcm" "$T/in/ct2.dcm" -gin $(pat PA Alpha^Anna $STA $A1 StudyA ACCA)
	dh_variant "$S/MR_small.dcm" "$T/in/mr1.dcm" -gin $(pat PA Alpha^Anna $STA $A2 StudyA ACCA)
	# study B (patient PB): one MR, one CT (to be deleted)
	dh_variant "$S/MR_small.dcm" "$T/in/mr2.dcm" -gin $(pat PB Bauer^Bernd $STB $B1 StudyB ACCB)
	dh_variant "$S/CT_small.dcm" "$T/in/ct3.dcm" -gin $(pat PB Bauer^Bernd $STB $B1 StudyB ACCB)
	# study C (patient PC): mr3 is moved into study B, mr4 stays untouched
	dh_variant "$S/MR_small.dcm" "$T/in/mr3.dcm" -gin $(pat PC Clark^Carl $STC $C1 StudyC ACCC)
	dh_variant "$S/MR_small.dcm" "$T/in/mr4.dcm" -gin $(pat PC Clark^Carl $STC $C1 StudyC ACCC)
}
storescu -aet STORESCU -aec DCMHUB 127.0.0.1 "$HUB_PORT" "$T"/in/*.dcm || dh_fail "storing the objects"
dh_assert_eq 7 "$(dh_psql "SELECT count(*) FROM instance")" "objects stored"

uid_of() { dcmdump -q +P 0008,0018 "$1" | sed 's/.*\[\(.*\)\].*/\1/' | tr -d '\0 '; }
declare -A U
for n in ct1 ct2 ct3 mr1 mr2 mr3 mr4; do U[$n]=$(uid_of "$T/in/$n.dcm"); done
MR3_NEW=$R.99.3
ipk() { dh_psql "SELECT pk FROM instance WHERE sop_uid = :'p1'" "$1"; }
PA=$(dh_psql "SELECT pk FROM patient WHERE patient_id = 'PA'")
SEA1=$(dh_psql "SELECT pk FROM series WHERE series_uid = :'p1'" "$A1")

# ---- (a) attribute changes; tag = (group << 16) | element
ov() { dh_psql "INSERT INTO attr_override (level, target_fk, tag, vr, value) VALUES (:p1, :p2, :p3, :'p4', :'p5')" "$@"; }
PN=$((0x00100010))
ov 4 "$(ipk "${U[ct1]}")" $PN PN "Erster^Name"   # older than the patient's: loses
ov 1 "$PA" $PN PN "Müller^Hans"
ov 4 "$(ipk "${U[ct2]}")" $PN PN "Zweiter^Name"  # newer: wins for ct2
ov 3 "$SEA1" $((0x0008103E)) LO "Corrected series"
MR2=$(ipk "${U[mr2]}")
ov 4 "$MR2" $((0x00110010)) LO "DCMHUB TEST"     # private creator and a private element, VR given
ov 4 "$MR2" $((0x00111001)) LO "private value"
ov 4 "$MR2" $((0x00080080)) LO ""                # present, zero length

# ---- (b) Study UID fix-up of study B
dh_psql "UPDATE study SET study_uid = :'p2' WHERE study_uid = :'p1'" "$STB" "$STB_NEW"
dh_psql "INSERT INTO uid_mapping (kind, study_uid, old_uid, new_uid, reason) VALUES ('study', :'p2', :'p1', :'p2', 'fix-up')" \
	"$STB" "$STB_NEW"

# ---- (c) mr3 moved into series B1 (study B) with a new SOP Instance UID
dh_psql "UPDATE instance SET series_fk = (SELECT pk FROM series WHERE series_uid = :'p2'), moved = true,
         sop_uid = :'p3' WHERE sop_uid = :'p1'" "${U[mr3]}" "$B1" "$MR3_NEW"
dh_psql "INSERT INTO uid_mapping (kind, study_uid, old_uid, new_uid, reason) VALUES ('sop', :'p2', :'p1', :'p3', 'segment')" \
	"${U[mr3]}" "$STB_NEW" "$MR3_NEW"

# ---- (d) ct3 deleted
dh_psql "WITH d AS (DELETE FROM instance i WHERE i.sop_uid = :'p1' RETURNING i.*)
         INSERT INTO deleted_instance (pk, sop_uid, series_uid, study_uid, patient_id, sop_class_uid, md5, file_path,
                                       source_ae, received_at, reason)
         SELECT d.pk, d.sop_uid, :'p2', :'p3', 'PB', d.sop_class_uid, d.md5, d.file_path, d.source_ae, d.received_at, 'test'
         FROM d" "${U[ct3]}" "$B1" "$STB_NEW"
dh_assert_eq 6 "$(dh_psql "SELECT count(*) FROM instance")" "one object deleted"

# ---------------------------------------------------------------- helpers
move() {
	set +e
	MV=$(movescu -v -aet MOVESCU -aec DCMHUB -S -aem DEST "$@" 127.0.0.1 "$HUB_PORT" 2>&1)
	MV_RC=$?
	set -e
	echo "$MV" >>"$T/movescu.log"
}
# the received file with SOP Instance UID $1 (empty when none)
received() {
	local f
	for f in "$T"/DEST/*; do
		[ -f "$f" ] || continue
		[ "$(uid_of "$f")" = "$1" ] && { echo "$f"; return 0; }
	done
	return 0
}
# val FILE TAG: the value dcmdump shows ("(no value available)" for zero length)
val() {
	dcmdump -q +P "$2" "$1" | head -n 1 |
		sed -e 's/^([0-9a-f,]*) .. \[\(.*\)\] *#.*/\1/' -e 's/^([0-9a-f,]*) .. (no value available).*/(no value available)/'
}
# study_count UID: C-FIND's Number of Study Related Instances
study_count() {
	rm -rf "$T/q" && mkdir -p "$T/q"
	findscu -S -aet FINDSCU -aec DCMHUB -X -od "$T/q" -k QueryRetrieveLevel=STUDY -k "StudyInstanceUID=$1" \
		-k NumberOfStudyRelatedInstances 127.0.0.1 "$HUB_PORT" >/dev/null 2>&1 || dh_fail "C-FIND $1"
	local f
	for f in "$T"/q/rsp*.dcm; do [ -f "$f" ] && val "$f" 0020,1208; done
}
errors() { dciodvfy "$1" 2>&1 | grep '^Error' | sort -u || true; }
# no_new_errors NAME FILE: dciodvfy reports nothing for FILE it did not for the original
no_new_errors() {
	errors "$T/in/$1.dcm" >"$T/err.orig"
	errors "$2" >"$T/err.new"
	local extra
	extra=$(comm -13 "$T/err.orig" "$T/err.new")
	[ -z "$extra" ] || dh_fail "$1: dciodvfy errors the rendered object adds: $extra"
}

# ---- C-MOVE the three studies (B by its current UID)
for st in "$STA" "$STB_NEW" "$STC"; do
	move -k QueryRetrieveLevel=STUDY -k "StudyInstanceUID=$st"
	dh_assert_eq 0 "$MV_RC" "move $st: movescu exit status"
	n=$(find "$T/DEST" -type f | wc -l)
	dh_assert_eq "$(study_count "$st")" "$n" "move $st: objects received = C-FIND Number of Study Related Instances"
	mkdir -p "$T/got/$st" && mv "$T"/DEST/* "$T/got/$st/"
done
dh_assert_eq 3 "$(find "$T/got/$STA" -type f | wc -l)" "study A: 3 objects"
dh_assert_eq 2 "$(find "$T/got/$STB_NEW" -type f | wc -l)" "study B: mr2 and the moved mr3 (ct3 deleted)"
dh_assert_eq 1 "$(find "$T/got/$STC" -type f | wc -l)" "study C: mr4 only"
mv "$T"/got/*/* "$T/DEST/"

# every received object is complete DICOM
for f in "$T"/DEST/*; do dcmdump -q "$f" >/dev/null || dh_fail "$f does not parse"; done

# (d) the deleted object never arrives
[ -z "$(received "${U[ct3]}")" ] || dh_fail "deleted ct3 was sent"

# (a) overrides, in seq order, converted to UTF-8 where needed
f=$(received "${U[ct1]}")
[ -n "$f" ] || dh_fail "ct1 not received"
dh_assert_eq "Müller^Hans" "$(val "$f" 0010,0010)" "ct1: patient-level PatientName (newer than its instance override)"
dh_assert_eq "ISO_IR 192" "$(val "$f" 0008,0005)" "ct1: ISO_IR 100 converted to UTF-8"
dh_assert_eq "Corrected series" "$(val "$f" 0008,103e)" "ct1: series-level SeriesDescription"
dh_assert_eq "StudyA" "$(val "$f" 0008,1030)" "ct1: untouched attribute kept"
no_new_errors ct1 "$f"
f=$(received "${U[ct2]}")
dh_assert_eq "Zweiter^Name" "$(val "$f" 0010,0010)" "ct2: newer instance-level PatientName wins"
dh_assert_eq "Corrected series" "$(val "$f" 0008,103e)" "ct2: series-level SeriesDescription"
no_new_errors ct2 "$f"
f=$(received "${U[mr1]}")
dh_assert_eq "Müller^Hans" "$(val "$f" 0010,0010)" "mr1: patient-level PatientName"
dh_assert_eq "ISO_IR 192" "$(val "$f" 0008,0005)" "mr1: Specific Character Set added"
[ "$(val "$f" 0008,103e)" != "Corrected series" ] || dh_fail "mr1: another series' override applied"
no_new_errors mr1 "$f"
f=$(received "${U[mr2]}")
dh_assert_eq "private value" "$(val "$f" 0011,1001)" "mr2: private element with its VR"
dh_assert_eq "LO" "$(dcmdump -q +P 0011,1001 "$f" | head -n 1 | cut -c13-14)" "mr2: private element VR"
dh_assert_eq "(no value available)" "$(val "$f" 0008,0080)" "mr2: empty override present with zero length"
dh_assert_eq "" "$(val "$f" 0008,0005)" "mr2: ASCII overrides leave the character set alone"
dh_assert_eq "$STB_NEW" "$(val "$f" 0020,000d)" "mr2: fixed-up Study UID"
dh_assert_eq "Bauer^Bernd" "$(val "$f" 0010,0010)" "mr2: its own patient"
no_new_errors mr2 "$f"

# (b)+(c) the moved, renamed object: target study's UIDs, patient and study attributes, meta
f=$(received "$MR3_NEW")
[ -n "$f" ] || dh_fail "moved mr3 not received under its new SOP UID"
[ -z "$(received "${U[mr3]}")" ] || dh_fail "mr3 also sent under its old SOP UID"
dh_assert_eq "$MR3_NEW" "$(val "$f" 0002,0003)" "mr3: Media Storage SOP Instance UID"
dh_assert_eq "$STB_NEW" "$(val "$f" 0020,000d)" "mr3: target study's UID"
dh_assert_eq "$B1" "$(val "$f" 0020,000e)" "mr3: target series' UID"
dh_assert_eq "PB" "$(val "$f" 0010,0020)" "mr3: target patient's ID"
dh_assert_eq "Bauer^Bernd" "$(val "$f" 0010,0010)" "mr3: target patient's name"
dh_assert_eq "StudyB" "$(val "$f" 0008,1030)" "mr3: target study's description"
dh_assert_eq "ACCB" "$(val "$f" 0008,0050)" "mr3: target study's accession"
no_new_errors mr3 "$f"

# untouched: byte-identical data set
f=$(received "${U[mr4]}")
path=$(dh_psql "SELECT file_path FROM instance WHERE sop_uid = :'p1'" "${U[mr4]}")
dh_assert_eq "$("$DH_PYTHON" "$DH_SRC/tests/integration/dsbytes.py" "$T/cache/$path")" \
	"$("$DH_PYTHON" "$DH_SRC/tests/integration/dsbytes.py" "$f")" "mr4: data set bytes as stored"
dh_assert_eq "Clark^Carl" "$(val "$f" 0010,0010)" "mr4: own patient"
rm -f "$T"/DEST/*

# ---- old UIDs still retrieve what they became
move -k QueryRetrieveLevel=STUDY -k "StudyInstanceUID=$STB"
dh_assert_eq 0 "$MV_RC" "move by the old Study UID"
dh_assert_eq 2 "$(find "$T/DEST" -type f | wc -l)" "old Study UID: the fixed-up study's objects"
[ -n "$(received "${U[mr2]}")" ] && [ -n "$(received "$MR3_NEW")" ] || dh_fail "old Study UID: wrong objects"
for f in "$T"/DEST/*; do dh_assert_eq "$STB_NEW" "$(val "$f" 0020,000d)" "old Study UID: sent with the new one"; done
rm -f "$T"/DEST/*
move -k QueryRetrieveLevel=IMAGE -k "StudyInstanceUID=$STB_NEW" -k "SeriesInstanceUID=$B1" -k "SOPInstanceUID=${U[mr3]}"
dh_assert_eq 0 "$MV_RC" "move by an old SOP Instance UID"
dh_assert_eq 1 "$(find "$T/DEST" -type f | wc -l)" "old SOP UID: one object"
[ -n "$(received "$MR3_NEW")" ] || dh_fail "old SOP UID: the renamed object under its new UID"
rm -f "$T"/DEST/*
# a current UID means what has it now: study C no longer holds mr3
move -k QueryRetrieveLevel=STUDY -k "StudyInstanceUID=$STC"
dh_assert_eq 1 "$(find "$T/DEST" -type f | wc -l)" "current Study UID: only its current objects"
rm -f "$T"/DEST/*
# a UID nobody ever had: nothing
move -k QueryRetrieveLevel=STUDY -k "StudyInstanceUID=$R.404"
dh_assert_eq 0 "$MV_RC" "unknown Study UID"
dh_assert_eq 0 "$(find "$T/DEST" -type f | wc -l)" "unknown Study UID: nothing sent"

# ---- from the nearline archive: objects read from their TAR are rendered the same way
dh_hub_stop
dh_hub_config "[qr]" "pending_interval = 0" "[remote.DEST]" "host = 127.0.0.1" "port = $DEST_PORT" \
	"[archive]" "stable_seconds = 1" "scan_interval = 1" "[volume.NL1]" "path = $T/nl1"
dh_hub_start
for _ in $(seq 1 300); do
	[ "$(dh_psql "SELECT count(*) FROM instance WHERE tar_fk IS NOT NULL")" = 6 ] && break
	sleep 0.1
done
dh_assert_eq 6 "$(dh_psql "SELECT count(*) FROM instance WHERE tar_fk IS NOT NULL")" "all objects archived"
# evicted as the archiver would (our few objects stay under any high watermark): the
# index forgets the cache file and the file goes, so only the TAR member can be sent
for fp in $(dh_psql "SELECT file_path FROM instance"); do rm -f "$T/cache/$fp"; done
dh_psql "UPDATE instance SET file_path = NULL"
move -k QueryRetrieveLevel=STUDY -k "StudyInstanceUID=$STA\\$STB_NEW"
dh_assert_eq 0 "$MV_RC" "nearline move"
dh_assert_eq 5 "$(find "$T/DEST" -type f | wc -l)" "nearline: studies A and B"
f=$(received "${U[ct1]}")
dh_assert_eq "Müller^Hans" "$(val "$f" 0010,0010)" "nearline ct1: patient-level PatientName"
dh_assert_eq "ISO_IR 192" "$(val "$f" 0008,0005)" "nearline ct1: UTF-8"
f=$(received "$MR3_NEW")
[ -n "$f" ] || dh_fail "nearline: moved mr3 not received under its new SOP UID"
dh_assert_eq "$STB_NEW" "$(val "$f" 0020,000d)" "nearline mr3: target study's UID"
dh_assert_eq "PB" "$(val "$f" 0010,0020)" "nearline mr3: target patient's ID"
no_new_errors mr3 "$f"

dh_pass
