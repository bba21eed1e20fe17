#!/usr/bin/env bash
# Nearline archive: series packed into TARs that verify on their own, new
# objects of an archived series in a new TAR (the old one unchanged), cache
# eviction without loss, kill -9 during archiving, a damaged member found by
# reads and by `hubctl verify`, volumes offline/online, a full volume closed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dh_setup archive
dh_pg_start
S=$(dh_samples)
HUBCTL=$DH_BUILD/hub/hubctl
ARCH=("[archive]" "stable_seconds = 1" "scan_interval = 1")
VOLS=("[volume.NL1]" "path = $T/nl1" "capacity_mb = 100")
dh_hub_config "${ARCH[@]}" "${VOLS[@]}"
dh_hub_start
hubctl() { "$HUBCTL" -c "$T/hub.conf" "$@"; }

# wait_archived N: until N instances are in TARs (60 s at most)
wait_archived() {
	local i
	for ((i = 0; i < 600; i++)); do
		[ "$(dh_psql "SELECT count(*) FROM instance WHERE tar_fk IS NOT NULL")" -ge "$1" ] && return 0
		sleep 0.1
	done
	dh_fail "only $(dh_psql "SELECT count(*) FROM instance WHERE tar_fk IS NOT NULL") of $1 archived"
}
store() { storescu -aet STORESCU -aec DCMHUB 127.0.0.1 "$HUB_PORT" "$@"; }
# xxh128 FILE: XXH3-128 of the file in tar_file.digest's format (libxxhash through ctypes)
xxh128() {
	"$DH_PYTHON" - "$1" <<'EOF'
import ctypes, sys
class H(ctypes.Structure):
    _fields_ = [("low64", ctypes.c_uint64), ("high64", ctypes.c_uint64)]
lib = ctypes.CDLL("libxxhash.so.0")
lib.XXH3_128bits.restype = H
lib.XXH3_128bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
d = open(sys.argv[1], "rb").read()
h = lib.XXH3_128bits(d, len(d))
print("%016x%016x" % (h.high64, h.low64))
EOF
}
# wait_verified: until every TAR is verified (60 s at most)
wait_verified() {
	local i
	for ((i = 0; i < 600; i++)); do
		[ "$(dh_psql "SELECT count(*) FROM tar_file WHERE verified_at IS NULL")" = 0 ] && return 0
		sleep 0.1
	done
	dh_fail "$(dh_psql "SELECT count(*) FROM tar_file WHERE verified_at IS NULL") TAR(s) still unverified"
}

# ---- a study of 5 objects in one series
mkdir -p "$T/s1"
dh_variant "$S/CT_small.dcm" "$T/s1/0.dcm" -gst -gse -gin
for i in 1 2 3 4; do dh_variant "$T/s1/0.dcm" "$T/s1/$i.dcm" -gin; done
store "$T/s1"/*.dcm
SER=$(dcmdump +P 0020,000e "$T/s1/0.dcm" | sed 's/.*\[\(.*\)\].*/\1/')
wait_archived 5
dh_assert_eq 1 "$(dh_psql "SELECT count(*) FROM tar_file")" "one TAR for the series"
TAR1=$T/nl1/$(dh_psql "SELECT path FROM tar_file")
dh_assert_eq 6 "$(tar -tf "$TAR1" | wc -l)" "members: 5 objects + manifest"
tar -tf "$TAR1" | grep -qx MANIFEST.md5 || dh_fail "no MANIFEST.md5"
mkdir "$T/x" && tar -xf "$TAR1" -C "$T/x" && (cd "$T/x" && md5sum -c --quiet MANIFEST.md5) || dh_fail "TAR does not verify with md5sum -c"
dh_assert_eq 0 "$(find "$T/nl1" -name '*.tmp' | wc -l)" "temp files"
# member bytes at the recorded offset are the object
while IFS='|' read -r uid fp off size md5; do
	got=$("$DH_PYTHON" -c 'import sys,hashlib;f=open(sys.argv[1],"rb");f.seek(int(sys.argv[2]));print(hashlib.md5(f.read(int(sys.argv[3]))).hexdigest())' "$TAR1" "$off" "$size")
	dh_assert_eq "$md5" "$got" "bytes at offset $off of $uid"
	dh_assert_eq "$md5" "$(md5sum <"$T/cache/$fp" | cut -d' ' -f1)" "cached file of $uid"
	hubctl cat "$uid" | cmp - "$T/cache/$fp" || dh_fail "hubctl cat $uid differs from the cache"
done < <(dh_psql "SELECT sop_uid, file_path, tar_offset, tar_size, md5 FROM instance")
# the TAR's checksum is the XXH3-128 of the file as written; the read-back sets verified_at
dh_assert_eq "$(xxh128 "$TAR1")" "$(dh_psql "SELECT digest FROM tar_file")" "TAR digest"
dh_assert_eq t "$(dh_psql "SELECT md5 IS NULL FROM tar_file")" "no whole-TAR MD5 for a new TAR"
wait_verified
dh_assert_contains "$(cat "$T/hubd.log")" "verified (5 object(s)" "verification logged"
echo "ok: TAR members, manifest, offsets, digest, verified"
hubctl tars "$SER"
hubctl --json volumes

# ---- new objects in the archived series -> a second TAR, the first unchanged
SUM1=$(md5sum <"$TAR1")
for i in 5 6; do dh_variant "$T/s1/0.dcm" "$T/s1/$i.dcm" -gin; done
store "$T/s1/5.dcm" "$T/s1/6.dcm"
wait_archived 7
dh_assert_eq 2 "$(dh_psql "SELECT count(*) FROM tar_file WHERE series_fk = (SELECT pk FROM series WHERE series_uid = '$SER')")" "second TAR for the series"
dh_assert_eq "$SUM1" "$(md5sum <"$TAR1")" "first TAR unchanged"
echo "ok: second TAR, first unchanged"

# ---- kill -9 during archiving, repeated
for round in $(seq 1 "${ARCHIVE_CRASH_ROUNDS:-10}"); do
	mkdir -p "$T/k$round"
	dh_variant "$S/CT_small.dcm" "$T/k$round/0.dcm" -gst -gse -gin
	for i in $(seq 1 15); do dh_variant "$T/k$round/0.dcm" "$T/k$round/$i.dcm" -gin; done
	store "$T/k$round"/*.dcm
	sleep "1.$((RANDOM % 10))"
	dh_hub_kill9
	dh_hub_start
	sleep 0.5
	# index and volumes agree: every TAR row has its file with its digest, every file its row
	while IFS='|' read -r p digest; do
		[ -f "$T/nl1/$p" ] || dh_fail "round $round: indexed TAR $p missing"
		dh_assert_eq "$digest" "$(xxh128 "$T/nl1/$p")" "round $round: TAR $p"
	done < <(dh_psql "SELECT path, digest FROM tar_file")
	dh_assert_eq 0 "$(find "$T/nl1" -name '*.tmp' | wc -l)" "round $round: temp files after restart"
	files=$(find "$T/nl1" -name '*.tar' | wc -l)
	rows=$(dh_psql "SELECT count(*) FROM tar_file")
	dh_assert_eq "$rows" "$files" "round $round: TAR files vs index rows"
done
n=$(dh_psql "SELECT count(*) FROM instance")
wait_archived "$n"
wait_verified
echo "ok: $n objects after kill -9 rounds, all archived and verified, index and volume agree"

# ---- objects stored before hub 012 (file_digest ''): copied, verified and read back against their MD5
mkdir -p "$T/old"
dh_variant "$S/CT_small.dcm" "$T/old/0.dcm" -gst -gse -gin
# 30 objects: with the damaged TAR's 16 they stay above the 1 MiB watermark once the rest is evicted
for i in $(seq 1 29); do dh_variant "$T/old/0.dcm" "$T/old/$i.dcm" -gin; done
dh_hub_stop
dh_hub_config "[archive]" "stable_seconds = 86400" "scan_interval = 1" "${VOLS[@]}"
dh_hub_start
store "$T/old"/*.dcm
OLDSER=$(dcmdump +P 0020,000e "$T/old/0.dcm" | sed 's/.*\[\(.*\)\].*/\1/')
OLDQ="SELECT pk FROM instance WHERE series_fk = (SELECT pk FROM series WHERE series_uid = '$OLDSER')"
dh_assert_eq 30 "$(dh_psql "SELECT count(*) FROM instance WHERE pk IN ($OLDQ) AND file_digest <> '' AND tar_fk IS NULL")" "new objects have a digest"
dh_psql "UPDATE instance SET file_digest = '' WHERE pk IN ($OLDQ)" >/dev/null
dh_hub_stop

# ---- a TAR that is not verified keeps its objects in the cache under eviction pressure; one
# that fails verification leaves the index and its objects are archived again
BADT=$(dh_psql "SELECT pk FROM tar_file ORDER BY pk DESC LIMIT 1")
BADP=$(dh_psql "SELECT path FROM tar_file WHERE pk = $BADT")
BADSER=$(dh_psql "SELECT series_uid FROM tar_file WHERE pk = $BADT")
BADM=$(dh_psql "SELECT tar_offset FROM instance WHERE tar_fk = $BADT ORDER BY tar_offset DESC LIMIT 1")
BADN=$(dh_psql "SELECT count(*) FROM instance WHERE tar_fk = $BADT")
printf '\xff' | dd of="$T/nl1/$BADP" bs=1 seek=$((BADM + 300)) conv=notrunc status=none
dh_psql "UPDATE tar_file SET verified_at = NULL WHERE pk = $BADT" >/dev/null
n=$(dh_psql "SELECT count(*) FROM instance")

# ---- eviction: everything archived leaves the cache, nothing is lost
dh_hub_stop
dh_hub_config "${ARCH[@]}" "cache_high_mb = 1" "cache_low_mb = 0" "${VOLS[@]}"
dh_hub_start
for ((i = 0; i < 300; i++)); do
	[ "$(dh_psql "SELECT count(*) FROM instance WHERE file_path IS NOT NULL")" = 0 ] && break
	sleep 0.1
done
dh_assert_eq 0 "$(dh_psql "SELECT count(*) FROM instance WHERE file_path IS NOT NULL")" "evicted"
dh_assert_eq 0 "$(find "$T/cache" -name '*.dcm' | wc -l)" "cache files left after eviction"
dh_assert_eq "$n" "$(dh_psql "SELECT count(*) FROM instance WHERE tar_fk IS NOT NULL")" "all in TARs"
dh_assert_eq 0 "$(dh_psql "SELECT count(*) FROM tar_file WHERE pk = $BADT")" "the TAR that failed verification left the index"
[ -e "$T/nl1/$BADP" ] && dh_fail "the TAR that failed verification is still on the volume"
dh_assert_contains "$(cat "$T/hubd.log")" "verification of $T/nl1/$BADP failed" "failed verification logged"
dh_assert_eq "$BADN" "$(dh_psql "SELECT count(*) FROM instance i JOIN tar_file t ON t.pk = i.tar_fk WHERE t.series_uid = '$BADSER' AND t.pk > $BADT AND t.verified_at IS NOT NULL")" "its objects in a new, verified TAR"
dh_assert_eq 0 "$(dh_psql "SELECT count(*) FROM instance i JOIN tar_file t ON t.pk = i.tar_fk WHERE t.verified_at IS NULL")" "objects in unverified TARs"
dh_assert_eq 30 "$(dh_psql "SELECT count(*) FROM instance WHERE pk IN ($OLDQ) AND file_digest = '' AND file_path IS NULL AND tar_fk IS NOT NULL")" "objects without digest archived and evicted"
mkdir -p "$T/back"
while IFS='|' read -r uid md5; do
	hubctl cat "$uid" >"$T/back/$uid.dcm" || dh_fail "nearline read of $uid failed"
	dh_assert_eq "$md5" "$(md5sum <"$T/back/$uid.dcm" | cut -d' ' -f1)" "nearline bytes of $uid"
done < <(dh_psql "SELECT sop_uid, md5 FROM instance")
hubctl verify NL1 || dh_fail "verify of an intact volume failed"
echo "ok: eviction only from verified TARs, a failed verification archived again, $n objects read back from TARs"

# ---- nearline reads check the digest (archive.read_verify = digest), the MD5 when there is none or when asked
DIG=$(dh_psql "SELECT sop_uid FROM instance WHERE file_digest <> '' ORDER BY pk LIMIT 1")
DIGD=$(dh_psql "SELECT file_digest FROM instance WHERE sop_uid = '$DIG'")
dh_psql "UPDATE instance SET file_digest = '00000000000000000000000000000000' WHERE sop_uid = '$DIG'" >/dev/null
if hubctl cat "$DIG" >/dev/null 2>"$T/cat.err"; then dh_fail "read whose digest differs succeeded"; fi
dh_assert_contains "$(cat "$T/cat.err")" "damaged: XXH3-128" "digest read error message"
cp "$T/hub.conf" "$T/hub-md5.conf"
printf '[archive]\nread_verify = md5\n' >>"$T/hub-md5.conf"
"$HUBCTL" -c "$T/hub-md5.conf" cat "$DIG" >/dev/null || dh_fail "read_verify = md5 must check the MD5 only"
dh_psql "UPDATE instance SET file_digest = '$DIGD' WHERE sop_uid = '$DIG'" >/dev/null
hubctl cat "$DIG" >/dev/null || dh_fail "read with the right digest failed"
echo "ok: digest checked on read, read_verify = md5 honoured"

# ---- one damaged byte in a member
# (an object without digest: the MD5 finds the damage)
row=$(dh_psql "SELECT i.sop_uid, t.path, i.tar_offset FROM instance i JOIN tar_file t ON t.pk = i.tar_fk WHERE i.file_digest = '' ORDER BY i.pk LIMIT 1")
IFS='|' read -r BAD BADTAR BADOFF <<<"$row"
cp "$T/nl1/$BADTAR" "$T/saved.tar"
printf '\xff' | dd of="$T/nl1/$BADTAR" bs=1 seek=$((BADOFF + 300)) conv=notrunc status=none
if hubctl cat "$BAD" >/dev/null 2>"$T/cat.err"; then dh_fail "damaged object read without error"; fi
dh_assert_contains "$(cat "$T/cat.err")" "damaged: MD5" "read error message"
good=$(dh_psql "SELECT sop_uid FROM instance WHERE sop_uid <> '$BAD' LIMIT 1")
hubctl cat "$good" >/dev/null || dh_fail "other objects must still read"
set +e
hubctl verify NL1 >"$T/verify.out" 2>&1
st=$?
set -e
cat "$T/verify.out"
dh_assert_eq 1 "$st" "verify exit status with a damaged member"
dh_assert_contains "$(cat "$T/verify.out")" "$BAD" "verify names the damaged object"
cp "$T/saved.tar" "$T/nl1/$BADTAR"
echo "ok: damaged member found"

# ---- offline / online
hubctl volume offline NL1
dh_assert_eq OFFLINE "$(dh_psql "SELECT DISTINCT $("$DH_PYTHON" -c 'print("((ARRAY[\x27ONLINE\x27,\x27NEARLINE\x27,\x27OFFLINE\x27])[CASE WHEN i.file_path IS NOT NULL THEN 1 WHEN EXISTS (SELECT 1 FROM tar_file avt JOIN volume avv ON avv.pk = avt.volume_fk WHERE avt.pk = i.tar_fk AND avv.state = \x27online\x27) THEN 2 ELSE 3 END])")') FROM instance i")" "availability offline"
if hubctl cat "$good" >/dev/null 2>"$T/cat.err"; then dh_fail "read from an offline volume succeeded"; fi
dh_assert_contains "$(cat "$T/cat.err")" "offline" "offline read error"
hubctl volume online NL1
hubctl cat "$good" >/dev/null || dh_fail "read after online failed"
echo "ok: offline/online"

# ---- two small volumes: the first fills up and is closed, the second takes over
dh_hub_stop
dh_hub_config "${ARCH[@]}" "[volume.C1]" "path = $T/c1" "capacity_mb = 1" "[volume.C2]" "path = $T/c2" "capacity_mb = 100"
dh_hub_start
for s in 1 2 3; do
	mkdir -p "$T/c$s"s
	dh_variant "$S/CT_small.dcm" "$T/c${s}s/0.dcm" -gst -gse -gin
	for i in $(seq 1 11); do dh_variant "$T/c${s}s/0.dcm" "$T/c${s}s/$i.dcm" -gin; done
	store "$T/c${s}s"/*.dcm
done
n=$(dh_psql "SELECT count(*) FROM instance")
wait_archived "$n"
c1=$(dh_psql "SELECT count(*) FROM tar_file t JOIN volume v ON v.pk = t.volume_fk WHERE v.name = 'C1'")
c2=$(dh_psql "SELECT count(*) FROM tar_file t JOIN volume v ON v.pk = t.volume_fk WHERE v.name = 'C2'")
dh_assert_ne 0 "$c1" "C1 used"
dh_assert_ne 0 "$c2" "C2 used after C1 filled"
dh_assert_eq t "$(dh_psql "SELECT closed FROM volume WHERE name = 'C1'")" "C1 closed"
hubctl volumes
echo "ok: C1 $c1 TAR(s), C2 $c2 TAR(s)"
dh_pass
