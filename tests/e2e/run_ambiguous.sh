# A server slower than `timeout`: every attempt's body was sent whole, and the server may have
# started a flow run for each without answering in time. Each such retry is logged every time
# (never folded), counted in the receipt (possible_duplicates) and in the metrics, and bounded
# by max_ambiguous_retries, after which the file goes to the failed folder naming the attempts.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"

# One hang, then an answer: delivered, with one possible duplicate said in the receipt.
start_mock --script hang,ok
mkdir -p "$T/drop"
write_conf "$T/c.conf" "$T/drop"
sed -i 's/^timeout = 10s$/timeout = 1s/' "$T/c.conf"
echo '{"n": 1}' >"$T/drop/once.json"
timeout 60 "$PD_BIN" run --once -c "$T/c.conf" >"$T/out1" 2>"$T/err1" && rc=0 || rc=$?
check "one unanswered attempt, then an answer: delivered (exit 0)" test "$rc" -eq 0
check "the receipt counts one possible duplicate" \
  jqe '.possible_duplicates == 1' "$T/drop.pd/archive/once.json.receipt.json"
check "the retry line says the body was sent and may have started a run" \
  grep -q "event=retry .*file=once.json.*ambiguous=true" "$T/err1"
kill "$MOCK_PID"; wait "$MOCK_PID" 2>/dev/null || true

# Never an answer in time: retried max_ambiguous_retries (2) times, each logged, then failed.
start_mock --script hang,hang,hang,hang,hang,hang
mkdir -p "$T/slow"
write_conf "$T/s.conf" "$T/slow"
sed -i 's/^timeout = 10s$/timeout = 1s/; s/^\[patchworks\]$/[patchworks]\nmax_ambiguous_retries = 2/' "$T/s.conf"
echo '{"n": 2}' >"$T/slow/slow.json"
timeout 60 "$PD_BIN" run --once -c "$T/s.conf" >"$T/out2" 2>"$T/err2" && rc=0 || rc=$?
check "a server slower than timeout: exit 1" test "$rc" -eq 1
check "the file is in the failed folder" failed slow.json "$T/slow"
check "every ambiguous retry is logged, none folded (2 lines)" \
  test "$(grep -c 'event=retry .*ambiguous=true' "$T/err2")" -eq 2
check "no event=repeated folded them" bash -c "! grep -q 'event=repeated' '$T/err2'"
check "the reason names the attempts and their times" \
  bash -c "jq -r .reason '$T/slow.pd/failed/slow.json.error.json' | grep -Eq 'sent whole 3 times without an answer .*at [0-9]{2}:[0-9]{2}:[0-9]{2}.*check the flow runs'"
check "and counts them as possible duplicates" jqe '.possible_duplicates == 3' "$T/slow.pd/failed/slow.json.error.json"
starts=$(grep -c '"path":"/api/v1/flows/42/start/7"' "$MOCK_REC/requests.jsonl" || true)
check "the emulator got exactly those 3 attempts (bounded)" test "$starts" -eq 3
finish
