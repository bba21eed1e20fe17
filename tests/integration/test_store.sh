#!/usr/bin/env bash
# Storage SCP with independent peers: echoscu, storescu of every pydicom sample
# it can send (many SOP classes and transfer syntaxes), and the bytes kept.
# Asserts: every accepted object is indexed once with the MD5 of its cached
# file; a data set sent verbatim comes back byte-identical from the cache;
# unknown Calling AE refused; foreign Called AE gets Verification only.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dh_setup store
dh_pg_start
dh_hub_config
dh_hub_start
S=$(dh_samples)

# Verification, and the association-level rules
echoscu -aet ECHOSCU -aec DCMHUB 127.0.0.1 "$HUB_PORT" || dh_fail "echo from a configured AE"
if echoscu -aet INTRUDER -aec DCMHUB 127.0.0.1 "$HUB_PORT" 2>"$T/rej.txt"; then
  dh_fail "unknown calling AE was accepted"
fi
dh_assert_contains "$(cat "$T/rej.txt")" "Calling AE Title Not Recognized" "rejection reason"
echoscu -aet ECHOSCU -aec SOMEONEELSE 127.0.0.1 "$HUB_PORT" || dh_fail "echo to a foreign called AE must work"
if storescu -aet STORESCU -aec SOMEONEELSE 127.0.0.1 "$HUB_PORT" "$S/CT_small.dcm" 2>/dev/null; then
  dh_fail "storage to a foreign called AE was accepted"
fi

# every sample storescu can read, one association; -nh: go on after errors
mkdir -p "$T/in"
for f in "$S"/*.dcm "$S"/dicomdirtests/*/*/*/* ; do
  [ -f "$f" ] || continue
  case "$(basename "$f")" in *truncated*|no_meta*|*NoMeta*|meta_missing*|badVR*) continue ;; esac
  # several samples share SOP Instance UIDs (the duplicate test covers that): fresh ones here
  dst="$T/in/$(echo "$f" | md5sum | cut -c1-8)_$(basename "$f")"
  cp "$f" "$dst"
  dcmodify -nb -q -gin "$dst" 2>/dev/null || rm -f "$dst"
done
total=$(ls "$T/in" | wc -l)
# storescu proposes a compressed syntax only when told which: one run per syntax
# (-R: only the contexts the files need; it stops at 128 otherwise)
declare -A opt=( [1.2.840.10008.1.2.4.50]=-xy [1.2.840.10008.1.2.4.51]=-xx [1.2.840.10008.1.2.4.70]=-xs
  [1.2.840.10008.1.2.4.90]=-xv [1.2.840.10008.1.2.4.91]=-xw [1.2.840.10008.1.2.4.80]=-xt
  [1.2.840.10008.1.2.4.81]=-xu [1.2.840.10008.1.2.5]=-xr [1.2.840.10008.1.2.1.99]=-xd )
for f in "$T"/in/*; do
  ts=$(dcmdump -q -Un +P 0002,0010 "$f" | sed "s/.*\[\(.*\)\].*/\1/")
  mkdir -p "$T/by/${opt[$ts]:--x=}"; mv "$f" "$T/by/${opt[$ts]:--x=}/"
done
for d in "$T"/by/*; do
  storescu -v -R "$(basename "$d")" -aet STORESCU -aec DCMHUB -nh +sd 127.0.0.1 "$HUB_PORT" "$d" >>"$T/storescu.log" 2>&1 || true
done
sent=$(grep -c 'Sending Store Request' "$T/storescu.log" || true)
ok=$(grep -c 'Received Store Response (Success)' "$T/storescu.log" || true)
warn=$(grep -c 'Received Store Response (Warning' "$T/storescu.log" || true)
echo "$sent of $total samples sent (storescu skips files without SOP UIDs): $ok success, $warn warning"
[ "$sent" -ge 45 ] || dh_fail "storescu sent only $sent samples"
dh_assert_eq "$sent" "$((ok + warn))" "every sample sent is accepted"
dh_assert_eq "$((ok + warn))" "$(dh_psql "SELECT count(*) FROM instance")" "each accepted object indexed once"
n_classes=$(dh_psql "SELECT count(DISTINCT sop_class_uid) FROM instance")
n_ts=$(dh_psql "SELECT count(DISTINCT transfer_syntax) FROM instance")
[ "$n_classes" -ge 8 ] || dh_fail "only $n_classes SOP classes stored"
[ "$n_ts" -ge 6 ] || dh_fail "only $n_ts transfer syntaxes stored"
echo "stored $ok objects, $n_classes SOP classes, $n_ts transfer syntaxes"

# every indexed object's file exists and has the recorded MD5; the digests hubd
# computed while receiving equal those of the file read back (size too)
bad=0
while IFS='|' read -r path md5 fdig dsdig size; do
  actual=$(md5sum "$T/cache/$path" | cut -d' ' -f1)
  [ "$actual" = "$md5" ] || { echo "MD5 mismatch for $path"; bad=$((bad + 1)); }
  back=$("$DH_BUILD/tests/tools/filedigest" "$T/cache/$path")
  [ "$back" = "$md5 $fdig $dsdig $size" ] || { echo "digests of $path: index '$md5 $fdig $dsdig $size', file '$back'"; bad=$((bad + 1)); }
done < <(dh_psql "SELECT file_path, md5, file_digest, dataset_digest, file_size FROM instance")
dh_assert_eq 0 "$bad" "cached files whose MD5 or digests differ from the index"

# a data set sent verbatim is kept verbatim
for f in JPEG2000.dcm MR_small_RLE.dcm rtplan.dcm ExplVR_BigEnd.dcm; do
  dh_variant "$S/$f" "$T/v_$f" -gin
  uid=$(dcmdump +P 0008,0018 "$T/v_$f" | sed 's/.*\[\(.*\)\].*/\1/')
  out=$("$DH_BUILD/tests/tools/rawstorescu" 127.0.0.1 "$HUB_PORT" "$T/v_$f")
  case "$out" in *status=0000*|*status=b000*) ;; *) dh_fail "verbatim store of $f: $out" ;; esac
  path=$(dh_psql "SELECT file_path FROM instance WHERE sop_uid = '$uid'")
  [ -n "$path" ] || dh_fail "$f ($uid) not indexed"
  dh_assert_eq "$(/usr/bin/python3 "$DH_SRC/tests/integration/dsbytes.py" "$T/v_$f")" \
               "$(/usr/bin/python3 "$DH_SRC/tests/integration/dsbytes.py" "$T/cache/$path")" \
               "data set bytes of $f in the cache"
  # and the cache file is a complete DICOM file with File Meta Information
  dh_assert_contains "$(dcmdump -q +P 0002,0010 "$T/cache/$path")" "TransferSyntaxUID" "meta header of cached $f"
done
dh_pass
