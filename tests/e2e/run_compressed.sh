# Compressed files in a drop folder: a .json.gz, a .csv.zst and a zip of three CSV files arrive
# at the emulator as their inner records, each inner file in the receipt, the compressed file
# archived as it came; a zip bomb and hostile zips land in failed/ with their reasons, and the
# daemon's peak memory stays under 64 MiB; a zip with a corrupt or truncated entry 2 sends
# nothing at all.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
command -v zstd >/dev/null || { echo "# skipped: no zstd command (scripts/setup installs it)"; exit 77; }
PD_PW="pw-Gz-4c81-secret"
start_mock --password "$PD_PW"
D="$T/drop"
mkdir -p "$D" "$T/src"

# The inner files, and their compressed forms made with the system's own tools and python.
python3 - "$T/src" <<'EOF'
import gzip, json, os, sys, zipfile
src = sys.argv[1]
orders = [{"id": i, "sku": "SKU-%05d" % i, "qty": i % 7} for i in range(2000)]
with open(os.path.join(src, "orders.json"), "w") as f:
    json.dump(orders, f)
with open(os.path.join(src, "orders.json"), "rb") as f:
    data = f.read()
# two gzip members, as `cat a.gz b.gz` makes
half = data.index(b"},") + 2
with open(os.path.join(src, "orders.json.gz"), "wb") as f:
    f.write(gzip.compress(data[:half]) + gzip.compress(data[half:]))
for n in ("a", "b", "c"):
    with open(os.path.join(src, n + ".csv"), "w") as f:
        f.write("id,name\n" + "".join("%s%d,item %d\n" % (n, i, i) for i in range(50)))
with zipfile.ZipFile(os.path.join(src, "three.zip"), "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr(zipfile.ZipInfo("parts/"), "")
    for n in ("a", "b", "c"):
        # hostile names: a way out of any folder, and a terminal escape
        z.write(os.path.join(src, n + ".csv"), {"a": "parts/a.csv", "b": "../b.csv", "c": "parts/c\x1b[31m.csv"}[n])
# a bomb: 200 MB of zeros in a few hundred KB
with zipfile.ZipFile(os.path.join(src, "bomb.zip"), "w", zipfile.ZIP_DEFLATED) as z:
    with z.open("zeros.csv", "w") as w:
        block = b"\0" * (1 << 20)
        for _ in range(200):
            w.write(block)
EOF
printf 'id,v\n1,x\n2,y\n' >"$T/src/rows.csv"
zstd -q -19 "$T/src/rows.csv" -o "$T/src/rows.csv.zst"
printf 'not gzip at all\n' >"$T/src/liar.csv.gz"
head -c 3000 "$T/src/orders.json.gz" >"$T/src/cut.json.gz"
printf '[{"a": 1}, {"a": ' | gzip >"$T/src/broken.json.gz"
cp "$T/src/orders.json.gz" "$T/src/rows.csv.zst" "$T/src/three.zip" "$T/src/bomb.zip" \
  "$T/src/liar.csv.gz" "$T/src/cut.json.gz" "$T/src/broken.json.gz" "$D/"

# max_expansion_ratio stops the bomb long before max_expanded_size would.
write_conf "$T/c.conf" "$D" "max_expanded_size = 50MB"
start_daemon "$T/c.conf"
O="$D.pd"
wait_for 60 bash -c "[ \$(ls '$O/archive' '$O/failed' 2>/dev/null | grep -c '\.json$') -ge 7 ]" || true
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$DAEMON_PID/status")
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" || true

check "orders.json.gz arrived as the JSON inside" received "$T/src/orders.json"
check "rows.csv.zst arrived as the CSV inside" received "$T/src/rows.csv"
for n in a b c; do check "$n.csv of the zip arrived as itself" received "$T/src/$n.csv"; done
check "each inner file was sent once, nothing else" \
  delivered_exactly "$T/src/orders.json" "$T/src/rows.csv" "$T/src/a.csv" "$T/src/b.csv" "$T/src/c.csv"
for f in orders.json.gz rows.csv.zst three.zip; do
  check "$f is archived as it came" cmp -s "$O/archive/$f" "$T/src/$f"
  check "$f has its receipt" test -f "$O/archive/$f.receipt.json"
done
r="$O/archive/three.zip.receipt.json"
check "the zip's receipt lists its three files in order, folders skipped" \
  jqe '.compression == "zip" and ([.entries[].name] == ["parts/a.csv", "../b.csv", "parts/c\u001b[31m.csv"])' "$r"
check "no entry name was used as a path" \
  test -z "$(find "$T" -name 'b.csv' -not -path "$T/src/*"; find "$T" -name 'parts' -o -name 'c*.csv' -not -path "$T/src/*")"
check "no raw escape byte reached the log" bash -c "! grep -q \$'\\x1b' '$T/daemon.err'"
check "each entry has its size, format, chunk and flow run" \
  jqe '[.entries[] | (.size == 588 and .format == "csv" and (.chunks | length) == 1 and (.flow_run_ids | length) == 1)] | all' "$r"
check "the log names each chunk's inner file" \
  test "$(grep -c 'event=chunk_delivered watch=drop file=three.zip .* entry=' "$T/daemon.err")" -eq 3
check "each chunk names its entry" jqe '[.chunks[].entry] == [0, 1, 2]' "$r"
check "the gzip's receipt names the JSON inside" \
  jqe --argjson n "$(stat -c %s "$T/src/orders.json")" \
  '.compression == "gzip" and .entries[0].name == "orders.json" and .entries[0].size == $n and .entries[0].format == "json"' \
  "$O/archive/orders.json.gz.receipt.json"
check "the zip bomb is in failed/" failed bomb.zip "$D"
check "its reason names the ratio, the entry and the bytes reached" \
  jqe '.reason | test("max_expansion_ratio \\(100\\)") and test("zeros.csv") and test("after [0-9]+ bytes")' \
  "$O/failed/bomb.zip.error.json"
check "a .gz that is not gzip fails with the reason" \
  jqe '.reason | test("says gzip, but the file is not compressed")' "$O/failed/liar.csv.gz.error.json"
check "a truncated .gz fails with the byte" \
  jqe '.reason | test("truncated: it ends at byte 3000")' "$O/failed/cut.json.gz.error.json"
check "broken JSON inside a .json.gz fails naming the inner file" \
  jqe '.reason | startswith("broken.json (expanded from the gzip file): ")' "$O/failed/broken.json.gz.error.json"
check "the compressed files failed as they came" cmp -s "$O/failed/bomb.zip" "$T/src/bomb.zip"
check "no expansion is left behind" test -z "$(find "$O/work" "$O/state" -mindepth 1)"
check "the daemon's peak memory stayed under 64 MiB (VmHWM ${hwm} kB)" test "$hwm" -le 65536

# max_expanded_size: a zstd of 300 MB of zeros, the ratio raised out of the way, is stopped at
# the size and nothing of it stays on disk.
head -c 300000000 /dev/zero | zstd -q -3 -o "$T/src/zeros.csv.zst"
D2="$T/drop2"
mkdir -p "$D2"
cp "$T/src/zeros.csv.zst" "$D2/"
write_conf "$T/c2.conf" "$D2" "max_expanded_size = 20MB" "max_expansion_ratio = 1000000"
run_start=$SECONDS
timeout 60 "$PD_BIN" run --once -c "$T/c2.conf" >/dev/null 2>"$T/err2" || true
check "the zstd bomb is in failed/" failed zeros.csv.zst "$D2"
check "its reason names max_expanded_size, the entry and the bytes reached" \
  jqe '.reason | test("more than max_expanded_size \\(20000000 bytes\\): stopped in zeros.csv after 19[0-9]{6} bytes")' \
  "$D2.pd/failed/zeros.csv.zst.error.json"
check "it was stopped early, not expanded whole ($((SECONDS - run_start)) s)" test $((SECONDS - run_start)) -lt 20

# A file system with little room (a tmpfs of 100 MB holding the drop folder and the watch's
# folders): the expansion stops while 64 MiB are still free, rather than fill it.
MNT="$T/small"
mkdir -p "$MNT"
if mount -t tmpfs -o size=100m tmpfs "$MNT" 2>/dev/null; then
  trap 'umount "$MNT" 2>/dev/null; cleanup' EXIT
  mkdir -p "$MNT/drop"
  head -c 90000000 /dev/zero | gzip -1 >"$MNT/drop/zeros.csv.gz"
  write_conf "$T/c5.conf" "$MNT/drop" "max_expansion_ratio = 1000000"
  timeout 60 "$PD_BIN" run --once -c "$T/c5.conf" >/dev/null 2>"$T/err5" || true
  check "little room: the file is in failed/" failed zeros.csv.gz "$MNT/drop"
  check "little room: the reason says how much is free and what patchdrop keeps" \
    jqe '.reason | test("file system has only [0-9]+ bytes free, and patchdrop keeps at least 67108864 free")' \
    "$MNT/drop.pd/failed/zeros.csv.gz.error.json"
  check "little room: the stopped expansion left nothing behind" test "$(df -k --output=avail "$MNT" | tail -1)" -gt 90000
  umount "$MNT"
  trap cleanup EXIT
else
  echo "# skipped the little-room case: this machine cannot mount a tmpfs"
fi

# SIGTERM while a big file is being expanded: the daemon stops at once (it does not wait for
# the expansion's end), nothing was sent, and the file stays in work/ for the next start.
D6="$T/drop6"
mkdir -p "$D6"
head -c 1000000000 < <(yes 'id,name,qty') | zstd -q -1 -o "$T/src/big.csv.zst"
write_conf "$T/c6.conf" "$D6" "max_expansion_ratio = 1000000"
sent6=$(payload_count)
start_daemon "$T/c6.conf"
cp "$T/src/big.csv.zst" "$D6/"
wait_for 20 grep -q 'event=claimed watch=drop file=big.csv.zst' "$T/daemon.err" || true
sleep 0.1 # the expansion of 1 GB takes seconds; the SIGTERM comes in its first part
kill -TERM "$DAEMON_PID"
stop_start=$(date +%s%3N)
wait "$DAEMON_PID" || true
stop_ms=$(($(date +%s%3N) - stop_start))
check "SIGTERM mid-expansion: stopped within 1.5 s, not after expanding 1 GB (${stop_ms} ms)" \
  test "$stop_ms" -le 1500
check "SIGTERM mid-expansion: the log says the file was left in work/" \
  grep -q 'event=stopped files_left_in_work=1' "$T/daemon.err"
check "SIGTERM mid-expansion: nothing was sent" test "$(payload_count)" -eq "$sent6"
check "SIGTERM mid-expansion: the file stays in work/ for the next start" \
  cmp -s "$D6.pd/work/big.csv.zst" "$T/src/big.csv.zst"
check "SIGTERM mid-expansion: it did not fail" test ! -e "$D6.pd/failed/big.csv.zst"

# kill -9 in the middle of a zip's second entry, then a restart: the rest arrives, at most the
# chunk in flight twice, and the receipt's chunks of each entry tile it.
start_mock --latency 150ms --password "$PD_PW"
D3="$T/drop3"
mkdir -p "$D3"
python3 - "$T/src" <<'PY'
import os, sys, zipfile
src = sys.argv[1]
with zipfile.ZipFile(os.path.join(src, "big3.zip"), "w", zipfile.ZIP_DEFLATED) as z:
    for n in ("x", "y", "z"):
        z.writestr(n + ".csv", "id,name\n" + "".join("%s%05d,row %d\n" % (n, i, i) for i in range(400)))
PY
cp "$T/src/big3.zip" "$D3/"
PD_CONCURRENCY=1 PD_MAX_BODY=2000 write_conf "$T/c3.conf" "$D3"
start_daemon "$T/c3.conf"
check "chunks of the second entry arrive" \
  wait_for 30 bash -c "grep -qh '^y0' '$MOCK_REC'/payloads/* 2>/dev/null"
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
check "the zip is in work/ after the kill" test -f "$D3.pd/work/big3.zip"
timeout 60 "$PD_BIN" run --once -c "$T/c3.conf" >/dev/null 2>"$T/err3" || true
check "after the restart the zip is archived" archived big3.zip "$D3"
cat "$MOCK_REC"/payloads/* | grep -v '^id,name$' >"$T/all3.txt"
python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); sys.stdout.write("".join(z.read(n).decode() for n in z.namelist()))' \
  "$T/src/big3.zip" | grep -v '^id,name$' >"$T/want3.txt"
check "every row of every entry arrived" bash -c "sort -u '$T/all3.txt' | cmp -s - <(sort '$T/want3.txt')"
r3="$D3.pd/archive/big3.zip.receipt.json"
check "at most the chunk in flight went twice" \
  test "$(payload_count)" -le $(($(jq '.chunks | length' "$r3") + 1))
check "each entry's chunks tile it (after its CSV header)" \
  jqe '[.entries as $e | range(0; $e | length) as $i | [.chunks[] | select(.entry == $i)] as $c
        | ($c[0].start == 8) and ($c[-1].end == $e[$i].size)
          and ([range(1; $c | length) | $c[.].start == $c[. - 1].end] | all)] | all' "$r3"
check "the chunks are numbered on across entries" jqe '[.chunks[].index] == [range(0; .chunks | length)]' "$r3"

# A zip whose second entry is corrupt (bytes flipped in its deflated data; a stored entry with
# a byte flipped, caught by its CRC) or truncated (cut short, its directory whole): every entry
# is read through before the first chunk goes, so the emulator gets nothing of it, and the
# error names entry 2. Entries of 650 KB each: past what listing the zip reads of an entry.
start_mock --password "$PD_PW"
D8="$T/drop8"
mkdir -p "$D8" "$T/src8"
python3 - "$T/src8" <<'PY'
import os, struct, sys, zipfile
src = sys.argv[1]
def text(n):
    return "id,v\n" + "".join("%s%05d,%d\n" % (n, i, i * 7919 % 1000) for i in range(60000))
def make(name, b_kind=zipfile.ZIP_DEFLATED):
    path = os.path.join(src, name)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for n in "abc":
            z.writestr(n + ".csv", text(n), b_kind if n == "b" else zipfile.ZIP_DEFLATED)
    raw = bytearray(open(path, "rb").read())
    b = zipfile.ZipFile(path).infolist()[1]
    nl, el = struct.unpack("<HH", raw[b.header_offset + 26:b.header_offset + 30])
    return path, raw, b.header_offset, b.header_offset + 30 + nl + el, b.compress_size
for n in "abc":
    open(os.path.join(src, n + ".csv"), "w").write(text(n))
make("good.zip")
for name, kind in (("flip2.zip", zipfile.ZIP_DEFLATED), ("crc2.zip", zipfile.ZIP_STORED)):
    path, raw, _, at, size = make(name, kind)
    for i in range(4):
        raw[at + size * 3 // 4 + i] ^= 0x5A
    open(path, "wb").write(raw)
# cut2.zip: b.csv's data cut to three quarters, the headers and the directory saying so
path, raw, hdr, at, size = make("cut2.zip")
keep = size * 3 // 4
gone = size - keep
eocd = raw.rindex(b"PK\x05\x06")
cd = struct.unpack("<I", raw[eocd + 16:eocd + 20])[0]
out = raw[:at + keep] + raw[at + size:]
struct.pack_into("<I", out, hdr + 18, keep)
p = cd - gone
while out[p:p + 4] == b"PK\x01\x02":
    off = struct.unpack("<I", out[p + 42:p + 46])[0]
    if off == hdr:
        struct.pack_into("<I", out, p + 20, keep)
    elif off > hdr:
        struct.pack_into("<I", out, p + 42, off - gone)
    nl, el, cl = struct.unpack("<HHH", out[p + 28:p + 34])
    p += 46 + nl + el + cl
struct.pack_into("<I", out, eocd - gone + 16, cd - gone)
open(path, "wb").write(out)
PY
cp "$T/src8/flip2.zip" "$T/src8/crc2.zip" "$T/src8/cut2.zip" "$D8/"
write_conf "$T/c8.conf" "$D8"
timeout 60 "$PD_BIN" run --once -c "$T/c8.conf" >/dev/null 2>"$T/err8" || true
check "a zip with a bad entry 2: the emulator got nothing of it" test "$(payload_count)" -eq 0
for z in flip2 crc2 cut2; do
  check "$z.zip is in failed/ as it came" \
    bash -c "cmp -s '$D8.pd/failed/$z.zip' '$T/src8/$z.zip' && test -f '$D8.pd/failed/$z.zip.error.json'"
  check "$z.zip: the reason names entry 2, the byte and libarchive's words" \
    jqe '.reason | test("^nothing of the zip was sent: zip entry 2 \\(b\\.csv\\) is corrupt or truncated near byte [0-9]+ of the zip \\(libarchive: [^)]")' \
    "$D8.pd/failed/$z.zip.error.json"
done
check "crc2.zip: libarchive's words say the CRC" jqe '.reason | test("CRC")' "$D8.pd/failed/crc2.zip.error.json"
cp "$T/src8/good.zip" "$D8/"
timeout 60 "$PD_BIN" run --once -c "$T/c8.conf" >/dev/null 2>"$T/err8b" || true
check "a good zip of three entries is archived" archived good.zip "$D8"
check "what arrived is its three CSV files, each once" \
  delivered_exactly "$T/src8/a.csv" "$T/src8/b.csv" "$T/src8/c.csv"

# batch = N: a compressed file goes on its own (its expansion is not the bytes read for the
# batch), the small plain files together.
start_mock --password "$PD_PW"
D7="$T/drop7"
mkdir -p "$D7"
printf '[{"n":1}]\n' >"$T/src/p1.json"
printf '[{"n":2}]\n' >"$T/src/p2.json"
printf '[{"n":3}]\n' >"$T/src/small.json"
gzip -c "$T/src/small.json" >"$T/src/small.json.gz"
cp "$T/src/p1.json" "$T/src/p2.json" "$T/src/small.json.gz" "$D7/"
write_conf "$T/c7.conf" "$D7" "batch = 5" "batch_window = 200ms"
timeout 60 "$PD_BIN" run --once -c "$T/c7.conf" >/dev/null 2>"$T/err7" || true
check "batch: the .json.gz arrived alone, as the JSON inside" received "$T/src/small.json"
check "batch: its receipt names no batch" \
  jqe '.chunks[0].batch == null and .entries[0].name == "small.json"' "$D7.pd/archive/small.json.gz.receipt.json"
check "batch: the plain files went together" \
  jqe '.chunks[0].batch.files == 2' "$D7.pd/archive/p1.json.receipt.json"

# `send` of a .json.gz: the JSON inside arrives.
start_mock --password "$PD_PW"
mkdir -p "$T/drop4"
write_conf "$T/c4.conf" "$T/drop4"
run_pd "$T/send" send -c "$T/c4.conf" --flow 9 "$T/src/orders.json.gz"
check "send of a .json.gz exits 0" test "$RC" -eq 0
check "what arrived is the JSON inside" delivered_exactly "$T/src/orders.json"
run_pd "$T/send2" send -c "$T/c4.conf" --flow 9 "$T/src/three.zip"
check "send of a zip: one line per inner file, its name escaped in brackets" \
  bash -c "grep -c 'three.zip \[parts/a.csv\]: chunk 1,\|three.zip \[../b.csv\]: chunk 2,\|three.zip \[parts/c\\\\x1b\[31m.csv\]: chunk 3/3,' '$T/send2.out' | grep -qx 3"
check "send leaves no expansion in the state dir" test -z "$(find "$T/state" -name '.pd-expand*')"
# A state dir not made yet (send before the daemon ever ran): the temp folder holds the
# expansion, and send does not make the state dir (made as another user, it would stop the
# daemon).
sed "s|^dir = .*|dir = $T/nostate|" "$T/c4.conf" >"$T/c5.conf"
mkdir -p "$T/tmp5"
TMPDIR="$T/tmp5" run_pd "$T/send5" send -c "$T/c5.conf" --flow 9 "$T/src/orders.json.gz"
check "send of a .json.gz with no state dir yet: expanded in TMPDIR, delivered" \
  bash -c "test $RC -eq 0 && grep -q 'chunk 1' '$T/send5.out' && test -z \"\$(ls -A '$T/tmp5')\""
finish
