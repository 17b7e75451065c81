# kill -9 in the middle of a multi-chunk delivery, then a restart: every record arrives, no
# chunk is sent twice except one that was in flight at the kill, and the file ends up in
# exactly one place. Then two daemons on one folder, and SIGTERM mid-run.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
start_mock --latency 150ms
mkdir -p "$T/drop"
PD_CONCURRENCY=1 write_conf "$T/c.conf" "$T/drop" "split = lines" 
sed -i 's/^\[patchworks\]$/[patchworks]\nmax_body = 2000/' "$T/c.conf"
seq -f 'record %06g' 1 3000 >"$T/records.txt"   # ~45 KB: about 25 chunks of 2000 bytes
cp "$T/records.txt" "$T/drop/records.txt"

start_daemon "$T/c.conf"
check "some chunks arrive" wait_for 30 bash -c "[ \$(ls '$MOCK_REC/payloads' 2>/dev/null | wc -l) -ge 5 ]"
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
sent_before=$(payload_count)
check "the file is in work/ after the kill" test -f "$T/drop.pd/work/records.txt"
out=$(timeout 60 "$PD_BIN" run --once -c "$T/c.conf" 2>"$T/err") && rc=0 || rc=$?
check "the restart finishes with exit 0" test "$rc" -eq 0
check "the file is archived" archived records.txt "$T/drop"
check "and nowhere else" bash -c "[ ! -e '$T/drop/records.txt' ] && [ -z \"\$(ls -A '$T/drop.pd/work')\" ] && [ ! -e '$T/drop.pd/failed/records.txt' ]"
cat "$MOCK_REC"/payloads/* >"$T/all.txt"
check "every record arrived" bash -c "sort -u '$T/all.txt' | cmp -s - <(sort -u '$T/records.txt')"
dups=$(( $(wc -l <"$T/all.txt") - $(wc -l <"$T/records.txt") ))
chunks=$(jq '.chunks | length' "$T/drop.pd/archive/records.txt.receipt.json")
check "at most one chunk was sent twice (the one in flight): $dups duplicate lines" \
  bash -c "[ $(payload_count) -le $((chunks + 1)) ]"
check "the receipt covers the whole file" \
  jqe "(.chunks | first.start) == 0 and (.chunks | last.end) == $(stat -c %s "$T/records.txt")" \
  "$T/drop.pd/archive/records.txt.receipt.json"
check "chunk ranges tile the file" \
  jqe '[.chunks as $c | range(1; $c | length) | $c[.].start == $c[. - 1].end] | all' \
  "$T/drop.pd/archive/records.txt.receipt.json"

# Two daemons on one folder: each file is delivered once.
rm -rf "$MOCK_REC"/payloads/*
mkdir -p "$T/drop2"
for i in $(seq 1 60); do echo "file $i" >"$T/drop2/f$i.txt"; done
sed "s|path = $T/drop\$|path = $T/drop2|; s|work_dir = $T/drop.pd\$|work_dir = $T/drop2.pd|" "$T/c.conf" >"$T/c2.conf"
sed -i 's/^max_body = 2000$/max_body = 8000000/; s/^concurrency = 1$/concurrency = 4/' "$T/c2.conf"
chmod 600 "$T/c2.conf"
timeout 60 "$PD_BIN" run --once -c "$T/c2.conf" >/dev/null 2>"$T/a.err" &
a=$!
timeout 60 "$PD_BIN" run --once -c "$T/c2.conf" >/dev/null 2>"$T/b.err" &
b=$!
wait $a || true
wait $b || true
check "60 files, 60 payloads" test "$(payload_count)" -eq 60
check "each file arrived once" bash -c "cat '$MOCK_REC'/payloads/* | sort | uniq -d | wc -l | grep -qx 0"
check "all 60 archived" test "$(ls "$T/drop2.pd/archive" | grep -c 'receipt.json$')" -eq 60

# SIGTERM in the middle of a run: nothing is lost, the rest goes after a restart.
rm -rf "$MOCK_REC"/payloads/*
mkdir -p "$T/drop3"
for i in $(seq 1 40); do echo "term $i" >"$T/drop3/t$i.txt"; done
sed "s|path = $T/drop\$|path = $T/drop3|; s|work_dir = $T/drop.pd\$|work_dir = $T/drop3.pd|" "$T/c.conf" >"$T/c3.conf"
chmod 600 "$T/c3.conf"
start_daemon "$T/c3.conf"
wait_for 20 bash -c "[ \$(ls '$MOCK_REC/payloads' | wc -l) -ge 5 ]"
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" && rc=0 || rc=$?
check "SIGTERM mid-run exits 0" test "$rc" -eq 0
timeout 60 "$PD_BIN" run --once -c "$T/c3.conf" >/dev/null 2>&1 || true
check "after a restart all 40 are archived" test "$(ls "$T/drop3.pd/archive" | grep -c 'receipt.json$')" -eq 40
check "each arrived once" bash -c "[ \$(cat '$MOCK_REC'/payloads/* | sort -u | wc -l) -eq 40 ] && [ \$(ls '$MOCK_REC/payloads' | wc -l) -eq 40 ]"
finish
