#!/usr/bin/env bash
# Duplicate SOP Instance UIDs (seeds/kb-8993, conformance §2.2.1.6.1.3),
# including the seed's AAA111/BBB222 scenario, and the three policies for a
# duplicate within the same study.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dh_setup duplicates
dh_pg_start
dh_hub_config
dh_hub_start
S=$(dh_samples)
RAW="$DH_BUILD/tests/tools/rawstorescu"
status() { "$RAW" 127.0.0.1 "$HUB_PORT" "$1" | sed -n 's/.*status=\([0-9a-f]*\).*/\1/p'; }

# image 1.2.3.4-like: fresh UIDs, accession AAA111
dh_variant "$S/CT_small.dcm" "$T/a.dcm" -gst -gse -gin -m "AccessionNumber=AAA111" -m "PatientID=KB8993"
sop=$(dcmdump +P 0008,0018 "$T/a.dcm" | sed 's/.*\[\(.*\)\].*/\1/')
study=$(dcmdump +P 0020,000d "$T/a.dcm" | sed 's/.*\[\(.*\)\].*/\1/')
dh_assert_eq 0000 "$(status "$T/a.dcm")" "first copy under AAA111"

# the technician sends the same image again under accession BBB222
dh_variant "$T/a.dcm" "$T/b.dcm" -m "AccessionNumber=BBB222"
dh_assert_eq b000 "$(status "$T/b.dcm")" "same SOP UID under another accession: accepted with a new UID"
dh_assert_eq 2 "$(dh_psql "SELECT count(*) FROM instance WHERE received_sop_uid = '$sop'")" "two copies"
dh_assert_eq "$sop" "$(dh_psql "SELECT i.sop_uid FROM instance i JOIN series se ON se.pk = i.series_fk JOIN study st ON st.pk = se.study_fk WHERE st.accession = 'AAA111'")" "AAA111 keeps the original UID"
new=$(dh_psql "SELECT i.sop_uid FROM instance i JOIN series se ON se.pk = i.series_fk JOIN study st ON st.pk = se.study_fk WHERE st.accession = 'BBB222'")
dh_assert_ne "" "$new" "a copy under BBB222"
dh_assert_ne "$sop" "$new" "BBB222's copy has a new SOP Instance UID"
# the reassignment is recorded and queryable by study (the dosr_uid_mapping query)
bstudy=$(dh_psql "SELECT study_uid FROM study WHERE accession = 'BBB222'")
dh_assert_eq "$sop|$new" "$(dh_psql "SELECT old_uid, new_uid FROM uid_mapping WHERE kind = 'sop' AND study_uid = '$bstudy'")" "uid_mapping by study"
dh_assert_eq "$study" "$(dh_psql "SELECT old_uid FROM uid_mapping WHERE kind = 'study' AND new_uid = '$bstudy'")" "study remap recorded"

# the same image in an entirely different study (new Study Instance UID)
dh_variant "$T/a.dcm" "$T/c.dcm" -gst -m "AccessionNumber=CCC333"
dh_assert_eq b000 "$(status "$T/c.dcm")" "same SOP UID in another study"
dh_assert_eq 3 "$(dh_psql "SELECT count(*) FROM instance WHERE received_sop_uid = '$sop'")" "three copies"

# leaving the hub, each copy carries the UIDs the index gave it (never the duplicate)
DEST_PORT=$(dh_free_port)
mkdir -p "$T/out"
dh_bg storescp -od "$T/out" "$DEST_PORT"
scp=$DH_BG_LAST
dh_wait_echo "$DEST_PORT"
dh_hub_stop
dh_hub_config "[remote.DEST]" "host = 127.0.0.1" "port = $DEST_PORT"
dh_hub_start
uid_of() { dcmdump +P "$1" "$2" | sed 's/.*\[\(.*\)\].*/\1/'; }
for acc in AAA111 BBB222; do
	st_uid=$(dh_psql "SELECT study_uid FROM study WHERE accession = '$acc'")
	rm -f "$T"/out/*
	movescu -S -aet MOVESCU -aec DCMHUB -aem DEST -k 0008,0052=STUDY -k "0020,000d=$st_uid" \
		127.0.0.1 "$HUB_PORT" || dh_fail "C-MOVE of $acc"
	got=$(ls "$T"/out/*)
	want_sop=$(dh_psql "SELECT i.sop_uid FROM instance i JOIN series se ON se.pk = i.series_fk JOIN study st ON st.pk = se.study_fk WHERE st.accession = '$acc'")
	dh_assert_eq "$want_sop" "$(uid_of 0008,0018 "$got")" "SOP Instance UID sent for $acc"
	dh_assert_eq "$st_uid" "$(uid_of 0020,000d "$got")" "Study Instance UID sent for $acc"
	dh_assert_eq "$want_sop" "$(uid_of 0002,0003 "$got")" "meta SOP Instance UID sent for $acc"
	dh_assert_eq "$acc" "$(dcmdump +P 0008,0050 "$got" | sed 's/.*\[\(.*\)\].*/\1/')" "accession sent for $acc"
	# the rendered object is still valid DICOM: no error the original did not have
	new_err=$(comm -13 <(dciodvfy "$T/a.dcm" 2>&1 | grep '^Error' | sort -u) <(dciodvfy "$got" 2>&1 | grep '^Error' | sort -u) || true)
	dh_assert_eq "" "$new_err" "dciodvfy errors added by rendering $acc"
done
kill "$scp" 2>/dev/null || true

# the same image again into the same study: rejected by default
dh_assert_eq 0110 "$(status "$T/a.dcm")" "duplicate in the same study rejected"
dh_assert_eq 0110 "$(status "$T/b.dcm")" "duplicate of the BBB222 copy rejected too"
dh_assert_eq 3 "$(dh_psql "SELECT count(*) FROM instance WHERE received_sop_uid = '$sop'")" "still three copies"
# storescu, the independent peer, sees the error status
storescu -v -aet STORESCU -aec DCMHUB 127.0.0.1 "$HUB_PORT" "$T/a.dcm" >"$T/s.log" 2>&1 || true
grep -q "Received Store Response (.*0x110" "$T/s.log" || { cat "$T/s.log"; dh_fail "storescu did not see 0110"; }

# policy accept: silently 0000, nothing changes
dh_hub_stop
dh_hub_config "[storage]" "duplicate_policy = accept"
dh_hub_start
dh_assert_eq 0000 "$(status "$T/a.dcm")" "accept policy"
dh_assert_eq 3 "$(dh_psql "SELECT count(*) FROM instance WHERE received_sop_uid = '$sop'")" "accept keeps the first"

# policy overwrite: replaced only when the MD5 differs
dh_hub_stop
dh_hub_config "[storage]" "duplicate_policy = overwrite"
dh_hub_start
old_md5=$(dh_psql "SELECT md5 FROM instance WHERE sop_uid = '$sop'")
dh_assert_eq 0000 "$(status "$T/a.dcm")" "identical resend under overwrite"
dh_assert_eq "$old_md5" "$(dh_psql "SELECT md5 FROM instance WHERE sop_uid = '$sop'")" "identical: not rewritten"
dh_variant "$T/a.dcm" "$T/a2.dcm" -m "InstitutionName=Corrected Hospital"
dh_assert_eq 0000 "$(status "$T/a2.dcm")" "changed content under overwrite"
new_md5=$(dh_psql "SELECT md5 FROM instance WHERE sop_uid = '$sop'")
dh_assert_ne "$old_md5" "$new_md5" "overwritten object has the new MD5"
path=$(dh_psql "SELECT file_path FROM instance WHERE sop_uid = '$sop'")
dh_assert_eq "$new_md5" "$(md5sum "$T/cache/$path" | cut -d' ' -f1)" "index points at the new file"
dh_assert_eq 3 "$(dh_psql "SELECT count(*) FROM instance WHERE received_sop_uid = '$sop'")" "still three copies"
dh_pass
