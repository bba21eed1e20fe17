#!/usr/bin/env bash
# WADO-URI (hub/wado/wado.c, conformance §6) with curl against a real hubd:
#  - a stored object comes back byte-identical to the file the hub stored
#    (and with the data set bytes the sender sent), in its stored transfer
#    syntax (a JPEG object stays JPEG), with Content-Type, -Length and
#    -Disposition; HEAD gives the headers only;
#  - every malformed request gets 400 with its reason, other methods 405,
#    other content types / transfer syntaxes 406, unknown objects and
#    paths 404;
#  - the index's truth is applied as C-MOVE applies it (attr_override, a
#    Study UID fix-up: the old Study UID still finds the object; an old SOP
#    Instance UID too; one old UID naming two objects: 409), and nothing
#    else differs; a changed JPEG object from a TAR stays JPEG with its
#    pixel data as stored;
#  - from the nearline archive (archived, evicted) byte-identical; offline
#    volume: 503; online again: 200;
#  - concurrent requests all answered correctly; a burst of thousands of
#    random and malformed requests (python3), after which hubd still
#    answers correctly; wado.max_connections turns extra clients away
#    until slots free up; SIGTERM with HTTP clients connected stops hubd
#    cleanly within 5 s; start-up errors (bad bind address, port in use).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dh_setup wado
dh_pg_start
S=$(dh_samples)
WADO_PORT=$(dh_free_port)
wado_cfg=("[wado]" "enabled = true" "port = $WADO_PORT" "max_connections = 32" "timeout = 30")
dh_hub_config "${wado_cfg[@]}"
dh_hub_start
HUBCTL=$DH_BUILD/hub/hubctl
DSB=$DH_SRC/tests/integration/dsbytes.py
BASE="http://127.0.0.1:$WADO_PORT/wado"

R=1.2.826.0.1.3680043.9.7777.70
ST1=$R.1 SE1=$R.1.1 SE2=$R.1.2
mkdir -p "$T/in" "$T/out"
dh_variant "$S/CT_small.dcm" "$T/in/ct1.dcm" -gin -m "PatientID=W1" -m "StudyInstanceUID=$ST1" -m "SeriesInstanceUID=$SE1"
dh_variant "$S/CT_small.dcm" "$T/in/ct2.dcm" -gin -m "PatientID=W1" -m "StudyInstanceUID=$ST1" -m "SeriesInstanceUID=$SE1"
dh_variant "$S/MR_small.dcm" "$T/in/mr1.dcm" -gin -m "PatientID=W1" -m "StudyInstanceUID=$ST1" -m "SeriesInstanceUID=$SE2"
# study 2 (patient W2) stays untouched: a JPEG object and a CT
ST2=$R.3 SE3=$R.3.1
dh_variant "$S/SC_rgb_jpeg_dcmtk.dcm" "$T/jpeg.dcm" -gin -m "PatientID=W2" -m "StudyInstanceUID=$ST2" \
	-m "SeriesInstanceUID=$SE3"
dh_variant "$S/CT_small.dcm" "$T/in/ct3.dcm" -gin -m "PatientID=W2" -m "StudyInstanceUID=$ST2" -m "SeriesInstanceUID=$SE3"
storescu -aet STORESCU -aec DCMHUB 127.0.0.1 "$HUB_PORT" "$T"/in/*.dcm || dh_fail "storing"
storescu -xy -aet STORESCU -aec DCMHUB 127.0.0.1 "$HUB_PORT" "$T/jpeg.dcm" || dh_fail "storing the JPEG object"
dh_assert_eq 5 "$(dh_psql "SELECT count(*) FROM instance")" "objects stored"

tagval() { dcmdump -q -Un +P "$2" "$1" | head -n 1 | sed -n 's/^[^[]*\[\(.*\)\].*/\1/p' | sed 's/ *$//'; }
declare -A U
for n in ct1 ct2 ct3 mr1; do U[$n]=$(tagval "$T/in/$n.dcm" 0008,0018); done
U[jpeg]=$(tagval "$T/jpeg.dcm" 0008,0018)
cachefile() { echo "$T/cache/$(dh_psql "SELECT file_path FROM instance WHERE sop_uid = :'p1'" "$1")"; }
url() { echo "$BASE?requestType=WADO&studyUID=$1&seriesUID=$2&objectUID=$3&contentType=application%2Fdicom"; }

# get URL [CURL-OPTION...]: body in $T/body, headers in $T/hdr; prints the status
get() {
	local u=$1
	shift
	curl -sS --max-time 30 -D "$T/hdr" -o "$T/body" -w '%{http_code}' "$@" "$u" || echo "curl-failed"
}
hdr() { grep -i "^$1:" "$T/hdr" | head -n 1 | cut -d: -f2- | sed 's/^ *//' | tr -d '\r'; }
# expect STATUS REASON-SUBSTRING URL [CURL-OPTION...]
expect() {
	local want=$1 reason=$2 u=$3
	shift 3
	local got
	got=$(get "$u" "$@")
	dh_assert_eq "$want" "$got" "status of $u"
	[ -z "$reason" ] || dh_assert_contains "$(cat "$T/body")" "$reason" "reason of $want for $u"
	[ "$want" = 200 ] || dh_assert_contains "$(hdr Content-Type)" "text/plain" "error body type for $u"
}

# ---- 1. byte-identical, native transfer syntax, headers
# where each object is: study and series
declare -A LOC=([ct1]="$ST1 $SE1" [ct2]="$ST1 $SE1" [mr1]="$ST1 $SE2" [ct3]="$ST2 $SE3" [jpeg]="$ST2 $SE3")
urlof() { local l=(${LOC[$1]}); url "${l[0]}" "${l[1]}" "${U[$1]}"; }
for n in ct1 ct2 ct3 mr1; do
	dh_assert_eq 200 "$(get "$(urlof "$n")")" "GET $n"
	cmp "$T/body" "$(cachefile "${U[$n]}")" || dh_fail "$n: WADO answer differs from the stored file"
	dh_assert_eq "$("$DH_PYTHON" "$DSB" "$T/in/$n.dcm")" "$("$DH_PYTHON" "$DSB" "$T/body")" "$n: data set bytes as sent"
	dh_assert_eq "application/dicom" "$(hdr Content-Type)" "$n: Content-Type"
	dh_assert_eq "$(stat -c %s "$T/body")" "$(hdr Content-Length)" "$n: Content-Length"
	dh_assert_eq "attachment; filename=\"${U[$n]}.dcm\"" "$(hdr Content-Disposition)" "$n: Content-Disposition"
done
dh_assert_eq 200 "$(get "$(urlof jpeg)")" "GET the JPEG object"
cmp "$T/body" "$(cachefile "${U[jpeg]}")" || dh_fail "jpeg: WADO answer differs from the stored file"
dh_assert_eq 1.2.840.10008.1.2.4.50 "$(tagval "$T/body" 0002,0010)" "jpeg: sent in its stored transfer syntax"
# HEAD: headers, no body
size=$(stat -c %s "$(cachefile "${U[ct1]}")")
dh_assert_eq "200 0" "$(curl -sS --max-time 30 -I -o /dev/null -D "$T/hdr" -w '%{http_code} %{size_download}' \
	"$(url "$ST1" "$SE1" "${U[ct1]}")")" "HEAD: status, no body"
dh_assert_eq "$size" "$(hdr Content-Length)" "HEAD: Content-Length"
dh_assert_eq "application/dicom" "$(hdr Content-Type)" "HEAD: Content-Type"
# contentType lists and the stored transfer syntax asked for explicitly
ok=$(url "$ST1" "$SE1" "${U[ct1]}")
expect 200 "" "${ok%&contentType=*}&contentType=image/jpeg,%20application/dicom;q=0.5"
expect 200 "" "$ok&transferSyntax=1.2.840.10008.1.2.1"
expect 406 "not offered" "$ok&transferSyntax=1.2.840.10008.1.2.4.50"
expect 406 "only application/dicom" "${ok%&contentType=*}&contentType=image/jpeg"

# ---- 2. malformed requests: 400 with the reason; 405; 404
O=${U[ct1]}
Q="studyUID=$ST1&seriesUID=$SE1&objectUID=$O&contentType=application/dicom"
expect 400 "requestType missing" "$BASE?$Q"
expect 400 "requestType must be WADO" "$BASE?requestType=WADOX&$Q"
expect 400 "requestType must be WADO" "$BASE?requestType=wado&$Q"
expect 400 "studyUID missing" "$BASE?requestType=WADO&seriesUID=$SE1&objectUID=$O&contentType=application/dicom"
expect 400 "seriesUID missing" "$BASE?requestType=WADO&studyUID=$ST1&objectUID=$O&contentType=application/dicom"
expect 400 "objectUID missing" "$BASE?requestType=WADO&studyUID=$ST1&seriesUID=$SE1&contentType=application/dicom"
expect 400 "contentType missing" "$BASE?requestType=WADO&studyUID=$ST1&seriesUID=$SE1&objectUID=$O"
expect 400 "given more than once" "$BASE?requestType=WADO&$Q&objectUID=$O"
expect 400 "given more than once" "$BASE?requestType=WADO&requestType=WADO&$Q"
expect 400 "objectUID is not a UID" "$BASE?requestType=WADO&studyUID=$ST1&seriesUID=$SE1&objectUID=1.2.abc&contentType=application/dicom"
expect 400 "objectUID is not a UID" "$BASE?requestType=WADO&studyUID=$ST1&seriesUID=$SE1&objectUID=1..2&contentType=application/dicom"
expect 400 "studyUID is not a UID" "$BASE?requestType=WADO&studyUID=.1.2&seriesUID=$SE1&objectUID=$O&contentType=application/dicom"
long=1.$(printf '2%.0s' $(seq 1 70))
expect 400 "seriesUID is not a UID" "$BASE?requestType=WADO&studyUID=$ST1&seriesUID=$long&objectUID=$O&contentType=application/dicom"
expect 400 "too long" "$BASE?requestType=WADO&$Q&transferSyntax=$(printf '1%.0s' $(seq 1 1100))"
expect 400 "bad percent-encoding" "$BASE?requestType=WADO&studyUID=$ST1&seriesUID=$SE1&objectUID=1.2%zz3&contentType=application/dicom"
expect 400 "bad percent-encoding" "$BASE?requestType=WADO&$Q%4"
expect 400 "bad percent-encoding" "$BASE?requestType=WADO&studyUID=$ST1%00&seriesUID=$SE1&objectUID=$O&contentType=application/dicom"
expect 400 "unknown parameter 'foo'" "$BASE?requestType=WADO&$Q&foo=1"
expect 400 "parameter 'rows' is not supported" "$BASE?requestType=WADO&$Q&rows=64"
expect 400 "parameter 'anonymize' is not supported" "$BASE?requestType=WADO&$Q&anonymize=yes"
expect 400 "has no value" "$BASE?requestType=WADO&$Q&transferSyntax"
expect 400 "no query" "$BASE"
expect 400 "no query" "$BASE?"
# absolute-form request target (as a proxy sends it)
dh_assert_eq 200 "$(get "$(url "$ST1" "$SE1" "$O")" --proxy "http://127.0.0.1:$WADO_PORT")" "absolute-form request target"
cmp "$T/body" "$(cachefile "$O")" || dh_fail "absolute-form: other bytes"
# percent-encoded names and values are decoded ("%2E" is '.')
expect 200 "" "$BASE?request%54ype=WADO&studyUID=${ST1//./%2E}&seriesUID=$SE1&objectUID=$O&contentType=application%2fdicom"
for m in POST PUT DELETE OPTIONS; do
	expect 405 "GET or HEAD" "$(url "$ST1" "$SE1" "$O")" -X "$m"
	dh_assert_eq "GET, HEAD" "$(hdr Allow)" "$m: Allow header"
done
expect 405 "GET or HEAD" "$(url "$ST1" "$SE1" "$O")" --data-binary "@$T/in/ct1.dcm"
expect 404 "no such resource" "http://127.0.0.1:$WADO_PORT/"
expect 404 "no such resource" "http://127.0.0.1:$WADO_PORT/wadox?requestType=WADO"
expect 404 "no such object" "$(url "$ST1" "$SE1" "$R.404")"
expect 404 "no such object" "$(url "$ST1" "$SE2" "$O")"     # the object, under the wrong series
expect 404 "no such object" "$(url "$R.404" "$SE1" "$O")"   # ... and the wrong study
expect 414 "" "$BASE?requestType=WADO&$Q&x=$(printf 'a%.0s' $(seq 1 5000))"
# longer than libmicrohttpd's per-connection memory: it answers 414 itself
dh_assert_eq 414 "$(get "$BASE?requestType=WADO&x=$(head -c 100000 /dev/zero | tr '\0' a)")" "a 100 kB request target"

# ---- 3. concurrent requests: 24 at once, each answered with its object
for i in $(seq 1 24); do
	case $((i % 3)) in 0) n=ct1 ;; 1) n=mr1 ;; 2) n=jpeg ;; esac
	echo "$n $(urlof $n)"
done | nl -ba | xargs -P 24 -L 1 bash -c 'curl -sS --max-time 60 -o "'"$T"'/out/$0.$1" "$2"'
for i in $(seq 1 24); do
	case $((i % 3)) in 0) n=ct1 ;; 1) n=mr1 ;; 2) n=jpeg ;; esac
	cmp "$T/out/$i.$n" "$(cachefile "${U[$n]}")" || dh_fail "concurrent request $i ($n) got other bytes"
done

# ---- 4. a burst of random and malformed requests; hubd keeps answering correctly
cat >"$T/burst.py" <<'EOF'
import random, socket, sys, threading, urllib.parse
port, good_q, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
random.seed(7)
names = ["requestType", "studyUID", "seriesUID", "objectUID", "contentType", "transferSyntax", "rows", "x", ""]
def mutate(q):
    s = list(q)
    for _ in range(random.randint(1, 6)):
        op = random.random()
        pos = random.randint(0, len(s))
        if op < 0.3 and s:
            del s[random.randrange(len(s))]
        elif op < 0.6:
            s.insert(pos, random.choice("%&=.+#?;/\\\"'<> 0123456789abcdefXYZ%%"))
        elif op < 0.8:
            s.insert(pos, "%%%02x" % random.randint(0, 255))
        else:
            s.insert(pos, "&%s=%s" % (random.choice(names), random.choice(["WADO", "1.2.3", "", "%zz", "a" * 80])))
    return "".join(s)
def request(i):
    k = i % 4
    if k == 0:
        target = "/wado?" + mutate(good_q)
    elif k == 1:
        parts = ["%s=%s" % (random.choice(names), "".join(random.choice("0123456789.%&=+") for _ in range(random.randint(0, 70))))
                 for _ in range(random.randint(0, 8))]
        target = "/wado?" + "&".join(parts)
    elif k == 2:
        target = "/" + "".join(chr(random.randint(33, 126)) for _ in range(random.randint(0, 300)))
    else:
        target = "/wado?" + good_q + "&" + "".join(chr(random.randint(33, 126)) for _ in range(random.randint(1, 40)))
    target = target.replace(" ", "%20")
    method = random.choice(["GET"] * 8 + ["HEAD", "POST", "BREW"])
    return method, target
bad = []
lock = threading.Lock()
def worker(ids):
    for i in ids:
        method, target = request(i)
        raw = i % 50 == 49  # now and then raw garbage instead of a request line
        data = bytes(random.randint(0, 255) for _ in range(200)) + b"\r\n\r\n" if raw else \
            ("%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % (method, target)).encode("latin-1")
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=20)
            s.sendall(data)
            resp = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                resp += b
            s.close()
        except OSError as e:
            if not raw:
                with lock:
                    bad.append("%s %s: %s" % (method, target, e))
            continue
        if raw:
            continue
        line = resp.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split(" ")
        code = parts[1] if len(parts) > 1 else ""
        if code not in ("200", "400", "404", "405", "406", "409", "414", "501"):
            with lock:
                bad.append("%s %s -> %r" % (method, target, line))
threads = [threading.Thread(target=worker, args=(range(t, n, 8),)) for t in range(8)]
for t in threads: t.start()
for t in threads: t.join()
for b in bad[:20]:
    print(b)
print("bad", len(bad))
EOF
good_q="requestType=WADO&studyUID=$ST1&seriesUID=$SE1&objectUID=${U[ct1]}&contentType=application/dicom"
out=$("$DH_PYTHON" "$T/burst.py" "$WADO_PORT" "$good_q" 3000)
echo "$out" | tail -n 21 >&2
dh_assert_eq "bad 0" "$(echo "$out" | tail -n 1)" "burst: every request answered with an expected status"
dh_assert_eq 200 "$(get "$(urlof ct1)")" "after the burst: GET"
cmp "$T/body" "$(cachefile "${U[ct1]}")" || dh_fail "after the burst: other bytes"
echoscu -aet ECHOSCU -aec DCMHUB 127.0.0.1 "$HUB_PORT" || dh_fail "after the burst: DICOM still answers"

# ---- 5. the current truth, as C-MOVE renders it (index changed the way a cc leaves it)
ct2pk=$(dh_psql "SELECT pk FROM instance WHERE sop_uid = :'p1'" "${U[ct2]}")
dh_psql "INSERT INTO attr_override (level, target_fk, tag, vr, value) VALUES (4, :p1, $((0x00100010)), 'PN', 'Renamed^Wado')" "$ct2pk"
ST1_NEW=$R.2
dh_psql "UPDATE study SET study_uid = :'p2' WHERE study_uid = :'p1'" "$ST1" "$ST1_NEW"
dh_psql "INSERT INTO uid_mapping (kind, study_uid, old_uid, new_uid, reason) VALUES ('study', :'p2', :'p1', :'p2', 'fix-up')" \
	"$ST1" "$ST1_NEW"
for st in "$ST1_NEW" "$ST1"; do
	dh_assert_eq 200 "$(get "$(url "$st" "$SE1" "${U[ct2]}")")" "GET ct2 by study $st"
	dh_assert_eq "Renamed^Wado" "$(tagval "$T/body" 0010,0010)" "ct2 by $st: attribute override applied"
	dh_assert_eq "$ST1_NEW" "$(tagval "$T/body" 0020,000d)" "ct2 by $st: current Study UID"
	dh_assert_eq "${U[ct2]}" "$(tagval "$T/body" 0002,0003)" "ct2 by $st: meta SOP Instance UID"
	dh_assert_eq "$(tagval "$T/in/ct2.dcm" 0002,0010)" "$(tagval "$T/body" 0002,0010)" "ct2: stored transfer syntax"
	dh_assert_eq "$(stat -c %s "$T/body")" "$(hdr Content-Length)" "ct2 rendered: Content-Length"
done
# the rendered object differs from the stored one in those two attributes only
for f in "$(cachefile "${U[ct2]}")" "$T/body"; do
	# (0002,0013) Implementation Version Name: DCMTK wrote the rendered file
	dcmdump -q "$f" | grep -v -e '^(0010,0010)' -e '^(0020,000d)' -e '^(0002,0013)'
done >"$T/both.txt"
half=$(($(wc -l <"$T/both.txt") / 2))
diff <(head -n "$half" "$T/both.txt") <(tail -n "$half" "$T/both.txt") >"$T/diff.txt" ||
	dh_fail "rendered ct2 differs in more than the changed attributes: $(cat "$T/diff.txt")"
cp "$T/body" "$T/ct2_rendered.dcm"

# an old SOP Instance UID (reassigned) finds the object, sent under its new UID
MR1_NEW=$R.99.1
dh_psql "UPDATE instance SET sop_uid = :'p2' WHERE sop_uid = :'p1'" "${U[mr1]}" "$MR1_NEW"
dh_psql "INSERT INTO uid_mapping (kind, study_uid, old_uid, new_uid, reason) VALUES ('sop', :'p3', :'p1', :'p2', 'test')" \
	"${U[mr1]}" "$MR1_NEW" "$ST1_NEW"
for sop in "${U[mr1]}" "$MR1_NEW"; do
	dh_assert_eq 200 "$(get "$(url "$ST1" "$SE2" "$sop")")" "GET mr1 by SOP UID $sop"
	dh_assert_eq "$MR1_NEW" "$(tagval "$T/body" 0008,0018)" "mr1 by $sop: the new SOP Instance UID"
	dh_assert_eq "$MR1_NEW" "$(tagval "$T/body" 0002,0003)" "mr1 by $sop: meta follows"
	dh_assert_eq "attachment; filename=\"$MR1_NEW.dcm\"" "$(hdr Content-Disposition)" "mr1 by $sop: file name"
done
# one old UID that led to two objects of the same series: ambiguous
dh_psql "INSERT INTO uid_mapping (kind, study_uid, old_uid, new_uid, reason) VALUES
         ('sop', :'p1', :'p2', :'p3', 'test'), ('sop', :'p1', :'p2', :'p4', 'test')" "$ST1_NEW" "$R.98" "${U[ct1]}" "${U[ct2]}"
expect 409 "several objects" "$(url "$ST1" "$SE1" "$R.98")"
expect 200 "" "$(url "$ST1" "$SE1" "${U[ct1]}")"

# the same, many at once: every rendering is the same
for i in $(seq 1 12); do echo "$(url "$ST1" "$SE1" "${U[ct2]}")"; done | nl -ba |
	xargs -P 12 -L 1 bash -c 'curl -sS --max-time 60 -o "'"$T"'/out/r$0" "$1"'
for i in $(seq 1 12); do cmp "$T/out/r$i" "$T/ct2_rendered.dcm" || dh_fail "concurrent rendering $i differs"; done

# ---- 6. from the nearline archive: archived, evicted, byte-identical; offline volume 503
declare -A MD5
for n in ct3 jpeg; do MD5[$n]=$(md5sum <"$(cachefile "${U[$n]}")"); done
dh_hub_stop
dh_hub_config "${wado_cfg[@]}" "[archive]" "stable_seconds = 1" "scan_interval = 1" "[volume.NL1]" "path = $T/nl1"
dh_hub_start
for _ in $(seq 1 300); do
	[ "$(dh_psql "SELECT count(*) FROM instance WHERE tar_fk IS NOT NULL")" = 5 ] && break
	sleep 0.1
done
dh_assert_eq 5 "$(dh_psql "SELECT count(*) FROM instance WHERE tar_fk IS NOT NULL")" "all objects archived"
# evicted as the archiver does it: the index forgets the cache file, then the file goes
paths=$(dh_psql "SELECT file_path FROM instance")
dh_psql "UPDATE instance SET file_path = NULL"
for fp in $paths; do rm -f "$T/cache/$fp"; done
for n in ct3 jpeg; do
	dh_assert_eq 200 "$(get "$(urlof $n)")" "nearline GET $n"
	dh_assert_eq "${MD5[$n]}" "$(md5sum <"$T/body")" "nearline $n: byte-identical to the stored file"
done
dh_assert_eq 200 "$(get "$(url "$ST1" "$SE1" "${U[ct2]}")")" "nearline GET ct2 (rendered)"
cmp "$T/body" "$T/ct2_rendered.dcm" || dh_fail "nearline ct2: rendered differently from the cached original"
# a change to the JPEG object, read from its TAR: re-encoded in its stored
# syntax (JPEG Baseline), the compressed pixel data copied as stored
jpk=$(dh_psql "SELECT pk FROM instance WHERE sop_uid = :'p1'" "${U[jpeg]}")
dh_psql "INSERT INTO attr_override (level, target_fk, tag, vr, value) VALUES (4, :p1, $((0x00100010)), 'PN', 'Jpeg^Changed')" "$jpk"
dh_assert_eq 200 "$(get "$(urlof jpeg)")" "nearline GET jpeg (rendered)"
dh_assert_eq "Jpeg^Changed" "$(tagval "$T/body" 0010,0010)" "jpeg: attribute override applied"
dh_assert_eq 1.2.840.10008.1.2.4.50 "$(tagval "$T/body" 0002,0010)" "jpeg rendered: still JPEG Baseline"
"$DH_PYTHON" - "$T/jpeg.dcm" "$T/body" <<'EOF' || dh_fail "jpeg rendered: pixel data differs from the sent object"
import sys, pydicom
a, b = (pydicom.dcmread(f) for f in sys.argv[1:3])
sys.exit(0 if a.PixelData == b.PixelData and b.file_meta.TransferSyntaxUID == a.file_meta.TransferSyntaxUID else 1)
EOF
"$HUBCTL" -c "$T/hub.conf" volume offline NL1 >/dev/null
expect 503 "offline" "$(urlof ct3)"
expect 503 "offline" "$(url "$ST1" "$SE1" "${U[ct2]}")"
"$HUBCTL" -c "$T/hub.conf" volume online NL1 >/dev/null
expect 200 "" "$(urlof ct3)"

# ---- 7. start-up errors: a bad bind address is a configuration error; a
# WADO port in use stops hubd from starting (exit status 1, said in the log)
sed -e "s/^port = $HUB_PORT\$/port = $(dh_free_port)/" "$T/hub.conf" >"$T/second.conf"
printf '[wado]\nbind_address = localhost\n' >>"$T/second.conf"
rc=0
"$DH_BUILD/hub/hubd" -c "$T/second.conf" --check-config >"$T/second.log" 2>&1 || rc=$?
dh_assert_eq 1 "$rc" "--check-config with a host name as wado.bind_address"
dh_assert_contains "$(cat "$T/second.log")" "is not an IPv4 or IPv6 address" "bind address message"
printf '[wado]\nbind_address = 127.0.0.1\n' >>"$T/second.conf"
rc=0
timeout 30 "$DH_BUILD/hub/hubd" -c "$T/second.conf" >"$T/second.log" 2>&1 || rc=$?
dh_assert_eq 1 "$rc" "a second hubd on the same WADO port"
dh_assert_contains "$(cat "$T/second.log")" "WADO: cannot listen on 127.0.0.1 port $WADO_PORT" "port-in-use message"
expect 200 "" "$(urlof ct3)"

# ---- 8. the connection limit; SIGTERM while HTTP clients hold connections
# (idle, half a request): clean stop
cat >"$T/hold.py" <<'EOF'
import socket, sys, time
socks = []
for i in range(6):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    if i % 2:
        s.sendall(b"GET /wado?requestType=WADO HTTP/1.1\r\nHost: x\r\n")  # no end of headers
    socks.append(s)
print("holding", flush=True)
time.sleep(60)
EOF
hold() {
	: >"$T/hold.log"
	"$DH_PYTHON" "$T/hold.py" "$WADO_PORT" >"$T/hold.log" 2>&1 &
	HOLD=$!
	DH_BG_PIDS+=("$HOLD")
	for _ in $(seq 1 50); do grep -q holding "$T/hold.log" && break; sleep 0.1; done
	grep -q holding "$T/hold.log" || dh_fail "the holding client did not connect"
	sleep 0.5
}
# wado.max_connections: with the 4 slots held, a fifth client is turned away;
# once they are gone, requests are served again
dh_hub_stop
wado_cfg=("[wado]" "enabled = true" "port = $WADO_PORT" "max_connections = 4" "timeout = 30")
dh_hub_config "${wado_cfg[@]}"
dh_hub_start
hold
dh_assert_ne 200 "$(get "$(urlof ct3)" 2>/dev/null)" "a fifth connection while four are held"
kill "$HOLD"
wait "$HOLD" 2>/dev/null || true
ok=
for _ in $(seq 1 50); do
	[ "$(get "$(urlof ct3)" 2>/dev/null)" = 200 ] && { ok=1; break; }
	sleep 0.1
done
[ -n "$ok" ] || dh_fail "no answer after the held connections were closed"
hold
t0=$SECONDS
dh_hub_stop
[ $((SECONDS - t0)) -le 5 ] || dh_fail "hubd took $((SECONDS - t0)) s to stop with HTTP clients connected"
grep -q "WADO-URI stopped" "$T/hubd.log" || dh_fail "no 'WADO-URI stopped' in the log"

dh_pass
