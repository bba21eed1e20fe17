#!/usr/bin/env bash
# bench/archive.sh - nearline archive throughput.
#
# Stores N copies of a CT object (one study, one series) into a private
# hubd with archiving held back, then measures:
#   archive: time from "study stable" until every object is in a verified
#            TAR (written, fsync'ed, renamed, read back, indexed), in MB/s of
#            object bytes, against `dd conv=fsync` of the same number of
#            bytes on the same filesystem (the ratio is printed);
#   read:    `hubctl cat` of every object from the cache (ONLINE) and, after
#            eviction, straight from its TAR (NEARLINE), in MB/s (page cache
#            dropped before each pass when we are allowed to).
# Usage: bench/archive.sh [N]   (default 500 objects)
set -euo pipefail
N=${1:-500}
export DH_TEST_NAME=bench-archive
. "$(dirname "$0")/../tests/integration/lib.sh"
dh_setup bench-arch
dh_pg_start
S=$(dh_samples)
HUBCTL=$DH_BUILD/hub/hubctl
drop() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
now() { date +%s.%N; }
mkdir -p "$T/in"
dh_variant "$S/CT_small.dcm" "$T/in/0.dcm" -gst -gse -gin
for i in $(seq 1 $((N - 1))); do dh_variant "$T/in/0.dcm" "$T/in/$i.dcm" -gin; done
# stable_seconds high while storing: nothing is archived yet
dh_hub_config "[archive]" "stable_seconds = 3600" "scan_interval = 1" "[volume.B1]" "path = $T/nl"
dh_hub_start
storescu -aet STORESCU -aec DCMHUB 127.0.0.1 "$HUB_PORT" "$T/in"/*.dcm
dh_hub_stop
BYTES=$(dh_psql "SELECT sum(file_size) FROM instance")
dh_hub_config "[archive]" "stable_seconds = 0" "scan_interval = 1" "[volume.B1]" "path = $T/nl"
drop
dh_hub_start
t0=$(now)
while [ "$(dh_psql "SELECT count(*) FROM instance WHERE tar_fk IS NULL")" != 0 ]; do sleep 0.05; done
t1=$(now)
drop
d0=$(now)
dd if=/dev/zero of="$T/nl/plain.bin" bs=1M count=$(((BYTES + 1048575) / 1048576)) conv=fsync status=none
d1=$(now)
rm -f "$T/nl/plain.bin"
mb() { "$DH_PYTHON" -c "import sys; print('%.1f' % (float(sys.argv[1]) / 1048576 / (float(sys.argv[3]) - float(sys.argv[2]))))" "$@"; }
A=$(mb "$BYTES" "$t0" "$t1")
D=$(mb "$BYTES" "$d0" "$d1")
# reads
readall() { local u; while read -r u; do "$HUBCTL" -c "$T/hub.conf" cat "$u" >/dev/null; done < <(dh_psql "SELECT sop_uid FROM instance"); }
drop; r0=$(now); readall; r1=$(now)
dh_hub_stop
dh_hub_config "[archive]" "stable_seconds = 0" "scan_interval = 1" "cache_high_mb = 1" "cache_low_mb = 0" "[volume.B1]" "path = $T/nl"
dh_hub_start
while [ "$(dh_psql "SELECT count(*) FROM instance WHERE file_path IS NOT NULL")" != 0 ]; do sleep 0.1; done
drop; n0=$(now); readall; n1=$(now)
ON=$(mb "$BYTES" "$r0" "$r1")
NL=$(mb "$BYTES" "$n0" "$n1")
echo "objects: $N, bytes: $BYTES"
echo "archive (pack+fsync+verify+index): $A MB/s; dd conv=fsync same bytes: $D MB/s; ratio $("$DH_PYTHON" -c "print('%.2f' % ($A / $D))")"
echo "hubctl cat, one process per object: ONLINE $ON MB/s, NEARLINE $NL MB/s"
dh_pass
