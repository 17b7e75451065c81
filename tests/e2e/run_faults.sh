# The fault matrix through the daemon: every way Patchworks (or the network) can misbehave, and
# where the file must end up. Each case is one file, one emulator, one `run --once`.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"

n=0
# one_case NAME [mock options...]: fresh emulator and drop folder holding one file; sets D, F.
one_case() {
  local name=$1; shift
  n=$((n + 1))
  [ -n "${MOCK_PID:-}" ] && kill "$MOCK_PID" 2>/dev/null && wait "$MOCK_PID" 2>/dev/null
  start_mock "$@"
  D="$T/drop$n"
  mkdir -p "$D"
  F="$D/$name"
  printf '<Orders><Order id="%d"/></Orders>\n' "$n" >"$F"
  cp "$F" "$T/expected$n"
  write_conf "$T/c$n.conf" "$D" ${EXTRA:-}
}
# run_once: runs the daemon once, bounded; sets RC and OUT.
run_once() {
  OUT=$(timeout 60 "$PD_BIN" run --once -c "$T/c$n.conf" 2>"$T/err$n") && RC=0 || RC=$?
}
logins() { grep -c '"path":"/api/v1/login"' "$MOCK_REC/requests.jsonl"; }

# Retried until success, the file delivered once.
for fault in 500 502 503 504 408 429 429:1 503:1 drop 500,502,503,drop,504; do
  one_case "retry-$fault.xml" --script "$fault"
  run_once
  check "$fault: retried, exit 0" test "$RC" -eq 0
  check "$fault: archived" archived "retry-$fault.xml" "$D"
  check "$fault: delivered exactly once" test "$(received_count "$T/expected$n")" -eq 1
  # The client's lines are events with fields, each at its level, naming the file they are for.
  check "$fault: the login is one info event" grep -qE '^[0-9T:.Z-]+ level=info event=login expires_in=[0-9]+$' "$T/err$n"
  # (curl itself sends again when a kept-alive connection was dropped: no retry of ours)
  [ "$fault" = drop ] || check "$fault: each retry is one warn event with the file's fields" grep -qE \
    "^[0-9T:.Z-]+ level=warn event=retry watch=drop file=retry-$fault.xml chunk=1 attempt=1 delay_ms=[0-9]+ retry_after=(true|false)( status=[0-9]+)? reason=(\"[^\"]+\"|[^ ]+) url=$MOCK_URL/api/v1/flows/42/start/7$" "$T/err$n"
  check "$fault: no free-text client line" bash -c "! grep -q 'event=client' '$T/err$n'"
  if [ "$fault" = 429:1 ]; then
    check "Retry-After is a field" grep -q 'event=retry .* retry_after=true status=429 reason="HTTP 429: ' "$T/err$n"
  fi
done

# Credentials in start_url never reach the log with the retry's URL.
one_case "userinfo.xml" --script 500
PD_SECRETS+=("url-secret-4711")
sed -i "s|^start_url = http://|start_url = http://demo:url-secret-4711@|" "$T/c$n.conf"
run_once
check "userinfo: retried, exit 0" test "$RC" -eq 0
check "userinfo: the retry's url has no credentials" grep -q "event=retry .* url=$MOCK_URL/api/v1/flows/42/start/7$" "$T/err$n"

# Retry-After is honoured: the retry waits at least that long.
one_case "after.xml" --script 429:2
run_once
gap=$(jq -s '[.[] | select(.path | startswith("/api/v1/flows"))] | (.[1].time_ms - .[0].time_ms)' "$MOCK_REC/requests.jsonl")
check "429 Retry-After: 2 is waited for (gap ${gap} ms)" test "$gap" -ge 1900

# A server that takes the body and never answers: the request times out and is retried.
one_case "hang.xml" --script hang
sed -i 's/^timeout = 10s$/timeout = 2s/' "$T/c$n.conf"
run_once
check "hang: timed out, retried, delivered" bash -c "[ $RC -eq 0 ] && [ \$(ls '$MOCK_REC/payloads' | wc -l) -ge 1 ]"
check "hang: archived" archived hang.xml "$D"

# A truncated 200: the server accepted the payload, so it is not sent again.
one_case "truncated.xml" --script truncate
run_once
check "truncated answer: exit 0, archived" bash -c "[ $RC -eq 0 ] && [ -f '$D.pd/archive/truncated.xml' ]"
check "truncated answer: sent once" test "$(received_count "$T/expected$n")" -eq 1

# 401 in the middle of a run: one login more, nothing failed.
one_case "reauth.xml" --script 401
run_once
check "401 mid-run: exit 0, archived" bash -c "[ $RC -eq 0 ] && [ -f '$D.pd/archive/reauth.xml' ]"
check "401 mid-run: exactly one more login" test "$(logins)" -eq 2

# Refusals: the file goes to the failed folder with the server's words, exit 1.
for status in 403 404 422; do
  one_case "refused-$status.xml" --script "$status"
  run_once
  check "$status: exit 1" test "$RC" -eq 1
  check "$status: in the failed folder" failed "refused-$status.xml" "$D"
  check "$status: the error file has the status" \
    jqe ".http_status == $status and .chunk == 0 and .byte_offset == 0" "$D.pd/failed/refused-$status.xml.error.json"
  check "$status: not retried" test "$(payload_count)" -eq 0
  check "$status: the reason gives the status once" bash -c \
    "jq -r .reason '$D.pd/failed/refused-$status.xml.error.json' | grep -q '(bytes 0-34): HTTP $status: ' && ! jq -r .reason '$D.pd/failed/refused-$status.xml.error.json' | grep -q 'HTTP $status.*HTTP $status'"
  check "$status: logged with its status" grep -q "event=rejected watch=drop file=refused-$status.xml status=$status moved=" "$T/err$n"
done
check "422: the server's message is kept" jqe '.server_message | length > 0' "$D.pd/failed/refused-422.xml.error.json"

# Still failing when max_retry_time runs out: failed, the reason said once.
one_case "giveup.xml" --fail-rate 1
sed -i 's/^timeout = 10s$/timeout = 10s\nmax_retry_time = 1s/' "$T/c$n.conf"
run_once
check "max_retry_time: exit 1" test "$RC" -eq 1
check "max_retry_time: in the failed folder" failed giveup.xml "$D"
check "max_retry_time: the reason says it gave up, once" bash -c \
  "jq -r .reason '$D.pd/failed/giveup.xml.error.json' | grep -qE '^chunk 1 \(bytes 0-[0-9]+\): gave up after [0-9]+ attempts in [0-9]+ s \(max_retry_time\): HTTP 50[023]: ' && [ \$(jq -r .reason '$D.pd/failed/giveup.xml.error.json' | grep -o 'gave up\|max_retry_time' | wc -l) -eq 2 ]"

# 413 from a server whose limit is lower than ours: cut smaller until it fits.
one_case "big.txt" --max-body 700
seq -f 'line %05g of a file that is bigger than the server allows' 1 200 >"$F"
cp "$F" "$T/expected$n"
run_once
check "413: re-split and delivered" bash -c "[ $RC -eq 0 ] && [ -f '$D.pd/archive/big.txt' ]"
[ "$RC" -eq 0 ] || { echo "413: the run exited $RC; the end of its log:"; tail -20 "$T/err$n"; }
cat "$MOCK_REC"/payloads/* >"$T/joined$n"
check "413: the chunks add up to the file" cmp -s "$T/joined$n" "$T/expected$n"
check "413: every accepted body fit the server's limit" \
  jqe -s '[.[] | select(.status == 200 and (.path | startswith("/api/v1/flows"))) | .body_bytes <= 700] | all' "$MOCK_REC/requests.jsonl"

# Credentials refused at login: a configuration error; the file is not blamed.
one_case "badpw.xml" --password not-the-configured-one
run_once
check "login refused: exit 2" test "$RC" -eq 2
check "login refused: says which credential" grep -q "demo@example.com" "$T/err$n"
check "login refused: the file is not in the failed folder" test ! -e "$D.pd/failed/badpw.xml"
check "login refused: the file is kept" bash -c "[ -f '$D/badpw.xml' ] || [ -f '$D.pd/work/badpw.xml' ]"
check "login refused: no password printed" bash -c "! grep -q 'password = ' '$T/err$n'"

# Connection refused for a while, then the server comes back: delivered.
one_case "later.xml"
port=$(cat "$T/port")
kill "$MOCK_PID"; wait "$MOCK_PID" 2>/dev/null || true
( timeout 60 "$PD_BIN" run --once -c "$T/c$n.conf" >"$T/out$n" 2>"$T/err$n"; echo $? >"$T/rc$n" ) &
rp=$!
sleep 2
"$PD_MOCK" --port "$port" --record "$MOCK_REC" --quiet --exit-after 60s --user demo@example.com --password demo &
PD_PIDS+=($!)
wait "$rp"
check "refused then back: exit 0" test "$(cat "$T/rc$n")" -eq 0
check "refused then back: archived" archived later.xml "$D"
check "refused then back: the login's retries say why, with no status field" grep -qE \
  "^[0-9T:.Z-]+ level=warn event=retry attempt=1 delay_ms=[0-9]+ retry_after=false reason=\"Couldn't connect to server\" url=$MOCK_URL/api/v1/login$" "$T/err$n"
finish
