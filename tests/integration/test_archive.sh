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
echo "ok: TAR members, manifest, offsets"
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
	# index and volumes agree: every TAR row has its file with its MD5, every file its row
	while IFS='|' read -r p md5; do
		[ -f "$T/nl1/$p" ] || dh_fail "round $round: indexed TAR $p missing"
		dh_assert_eq "$md5" "$(md5sum <"$T/nl1/$p" | cut -d' ' -f1)" "round $round: TAR $p"
	done < <(dh_psql "SELECT path, md5 FROM tar_file")
	dh_assert_eq 0 "$(find "$T/nl1" -name '*.tmp' | wc -l)" "round $round: temp files after restart"
	files=$(find "$T/nl1" -name '*.tar' | wc -l)
	rows=$(dh_psql "SELECT count(*) FROM tar_file")
	dh_assert_eq "$rows" "$files" "round $round: TAR files vs index rows"
done
n=$(dh_psql "SELECT count(*) FROM instance")
wait_archived "$n"
echo "ok: $n objects after kill -9 rounds, all archived, index and volume agree"

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
mkdir -p "$T/back"
while IFS='|' read -r uid md5; do
	hubctl cat "$uid" >"$T/back/$uid.dcm" || dh_fail "nearline read of $uid failed"
	dh_assert_eq "$md5" "$(md5sum <"$T/back/$uid.dcm" | cut -d' ' -f1)" "nearline bytes of $uid"
done < <(dh_psql "SELECT sop_uid, md5 FROM instance")
hubctl verify NL1 || dh_fail "verify of an intact volume failed"
echo "ok: eviction, $n objects read back from TARs"

# ---- one damaged byte in a member
row=$(dh_psql "SELECT i.sop_uid, t.path, i.tar_offset FROM instance i JOIN tar_file t ON t.pk = i.tar_fk ORDER BY i.pk LIMIT 1")
IFS='|' read -r BAD BADTAR BADOFF <<<"$row"
cp "$T/nl1/$BADTAR" "$T/saved.tar"
printf '\xff' | dd of="$T/nl1/$BADTAR" bs=1 seek=$((BADOFF + 300)) conv=notrunc status=none
if hubctl cat "$BAD" >/dev/null 2>"$T/cat.err"; then dh_fail "damaged object read without error"; fi
dh_assert_contains "$(cat "$T/cat.err")" "damaged" "read error message"
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
