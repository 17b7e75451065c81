# Compressed files in a drop folder: a .json.gz, a .csv.zst and a zip of three CSV files arrive
# at the emulator as their inner records, each inner file in the receipt, the compressed file
# archived as it came; a zip bomb and hostile zips land in failed/ with their reasons, and the
# daemon's peak memory stays under 64 MiB.
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
