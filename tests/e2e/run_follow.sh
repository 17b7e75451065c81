# Following flow runs to their end (follow = yes), the emulator ending runs after 2 s and failing
# those whose payload holds a marker: every receipt ends with each chunk's final
# outcome; on_flow_failure = fail moves exactly the files whose run failed, with the run's log;
# retry ends as success with both runs recorded; a kill -9 while following loses no run, and a kill
# in the middle of on_flow_failure = fail leaves no run polled again.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
export PD_FOLLOW=1

# mixed DROP: 50 files: 40 small ones (batched), two cut into chunks, five CSV, three whose run
# fails.
mixed() {
  mkdir -p "$1"
  for i in $(seq 1 40); do printf '[{"id":%d,"sku":"A%d"}]\n' "$i" "$i" >"$1/s$i.json"; done
  for f in big1 big2; do
    { printf '['; for i in $(seq 1 60); do [ "$i" -gt 1 ] && printf ','; printf '{"id":%d,"pad":"%s"}' "$i" "$(printf '%040d' "$i")"; done; printf ']\n'; } >"$1/$f.json"
  done
  # (NDJSON: a batch of its own, so their runs are theirs alone)
  for i in 1 2 3; do printf '{"id":%d,"sku":"BOOM"}\n' "$i" >"$1/bad$i.ndjson"; done
  for i in 1 2 3 4 5; do printf 'id,name\n%d,Ann\n%d,Bob\n' "$i" "$((i + 10))" >"$1/c$i.csv"; done
}
follow_conf() { PD_MAX_BODY=1500 write_conf "$1" "$2" "follow_first = 200ms" "follow_cap = 1s" \
  "batch = 3" "batch_window = 200ms" "${@:3}"; }
# receipts_final DROP: every receipt's chunks all carry a final outcome and a dashboard link.
receipts_final() {
  local r
  for r in "$(own_of "$1")"/archive/*.receipt.json; do
    jq -e '[.chunks[] | select(.flow_run_id != null)] | length > 0 and
      all(.outcome != null and .outcome != "running" and .finished_at != null and
          (.dashboard | test("/flow-run-logs/")))' "$r" >/dev/null || { echo "not final: $r"; return 1; }
  done
}

start_mock --run-duration 2s --run-fail-marker BOOM
mixed "$T/d1"
follow_conf "$T/c1.conf" "$T/d1"
out=$(timeout 120 "$PD_BIN" run --once -c "$T/c1.conf" 2>"$T/e1") && rc=0 || rc=$?
check "report: three runs failed, so exit 1" test "$rc" -eq 1
check "report: every file archived" test "$(ls "$(own_of "$T/d1")"/archive/*.receipt.json | wc -l)" -eq 50
check "report: every receipt carries every chunk's final outcome" receipts_final "$T/d1"
check "report: a file of several chunks was followed chunk by chunk" \
  jqe '(.chunks | length) > 1 and all(.chunks[]; .outcome == "success") and .flow_result == "success"' \
  "$(own_of "$T/d1")/archive/big1.json.receipt.json"
for i in 1 2 3; do
  check "report: bad$i.ndjson's run failed, and its receipt says so" \
    jqe '.flow_result == "failed" and .chunks[0].outcome == "failed"' \
    "$(own_of "$T/d1")/archive/bad$i.ndjson.receipt.json"
done
check "report: the batched files share their request's outcome" \
  jqe '.flow_result == "success" and .chunks[0].batch != null' "$(own_of "$T/d1")/archive/s1.json.receipt.json"
check "report: the failed runs are said with their last log messages" \
  test "$(grep -c 'event=flow_run_finished.*outcome=failed.*last_messages=' "$T/e1")" -ge 3
check "report: the summary counts the runs" grep -q "flow runs: .* succeeded, .* failed" <<<"$out"
check "report: no run is left to follow" test -z "$(ls "$T/state/follow" 2>/dev/null)"
check "report: polls went at the share's pace, no 429" test "$(count '.status == 429')" -eq 0

# on_flow_failure = fail: exactly the files whose run failed move, with the run's log.
rm -rf "$T/state"
mixed "$T/d2"
follow_conf "$T/c2.conf" "$T/d2" "on_flow_failure = fail"
timeout 120 "$PD_BIN" run --once -c "$T/c2.conf" >"$T/o2" 2>"$T/e2" && rc=0 || rc=$?
check "fail: exit 1" test "$rc" -eq 1
check "fail: exactly the three files whose run failed are in the failed folder" \
  test "$(cd "$(own_of "$T/d2")/failed" && ls *.error.json | sort | tr '\n' ' ')" = \
  "bad1.ndjson.error.json bad2.ndjson.error.json bad3.ndjson.error.json "
for i in 1 2 3; do
  check "fail: bad$i.ndjson's error file holds the run id, its outcome, log entries and the link" \
    jqe '.result == "failed" and .flow_run_outcome == "failed" and .flow_run_status == 3 and
         (.flow_run_id | length > 0) and
         (.flow_run_logs | length > 0) and (.dashboard | test("/flow-run-logs/"))' \
    "$(own_of "$T/d2")/failed/bad$i.ndjson.error.json"
  check "fail: bad$i.ndjson left the archive with its receipt" \
    test ! -e "$(own_of "$T/d2")/archive/bad$i.ndjson" -a ! -e "$(own_of "$T/d2")/archive/bad$i.ndjson.receipt.json"
done
check "fail: the other 47 stay archived, their runs succeeded" \
  test "$(ls "$(own_of "$T/d2")"/archive/*.receipt.json | wc -l)" -eq 47 -a \
  "$(jq -r .flow_result "$(own_of "$T/d2")"/archive/*.receipt.json | sort -u)" = success
kill "$MOCK_PID"

# on_flow_failure = retry: the first run fails, its retry succeeds; both runs recorded.
rm -rf "$T/state"
start_mock --run-script fail
mkdir -p "$T/d3"
printf '[{"id":1}]\n' >"$T/d3/r.json"
write_conf "$T/c3.conf" "$T/d3" "follow_first = 200ms" "follow_cap = 1s" "on_flow_failure = retry"
timeout 60 "$PD_BIN" run --once -c "$T/c3.conf" >"$T/o3" 2>"$T/e3" && rc=0 || rc=$?
check "retry: exit 0" test "$rc" -eq 0
check "retry: the receipt ends success with both runs" \
  jqe '.flow_result == "success" and .chunks[0].outcome == "success" and (.chunks[0].runs | length) == 2' \
  "$(own_of "$T/d3")/archive/r.json.receipt.json"
check "retry: the retry is logged" grep -q "event=flow_run_retried" "$T/e3"
kill "$MOCK_PID"

# kill -9 while following: the records stay; the next start follows every run to its end.
rm -rf "$T/state"
start_mock --run-duration 3s
mkdir -p "$T/d4"
for i in 1 2 3 4; do printf '[{"id":%d}]\n' "$i" >"$T/d4/k$i.json"; done
write_conf "$T/c4.conf" "$T/d4" "follow_first = 200ms" "follow_cap = 500ms"
printf '[metrics]\nlisten = 127.0.0.1:0\n' >>"$T/c4.conf"
"$PD_BIN" run -c "$T/c4.conf" >/dev/null 2>"$T/e4" &
pid=$!
for _ in $(seq 100); do
  [ "$(ls "$(own_of "$T/d4")"/archive/*.receipt.json 2>/dev/null | wc -l)" -eq 4 ] && break
  sleep 0.1
done
port=$(grep -o 'event=metrics_listening.*port=[0-9]*' "$T/e4" | grep -o 'port=[0-9]*' | cut -d= -f2)
sleep 1.2 # the loop hands the metrics what it holds once a second
curl -s --max-time 5 "http://127.0.0.1:$port/metrics" >"$T/m4" || true
check "kill: /metrics shows the runs being followed and the polls made" \
  bash -c "grep -Eq '^patchdrop_flow_runs_followed [1-9]' '$T/m4' && grep -Eq '^patchdrop_polls_total [1-9]' '$T/m4'"
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
check "kill: the runs were still being followed (records on disk)" \
  test "$(ls "$T/state/follow" | wc -l)" -ge 1
check "kill: the receipts said running" \
  bash -c "grep -l '\"flow_result\": \"running\"' '$(own_of "$T/d4")'/archive/*.receipt.json | grep -q ."
timeout 60 "$PD_BIN" run --once -c "$T/c4.conf" >"$T/o4" 2>>"$T/e4" && rc=0 || rc=$?
check "kill: the restart follows every run to its end (exit 0)" test "$rc" -eq 0
check "kill: every receipt is final" receipts_final "$T/d4"
check "kill: no record is left" test -z "$(ls "$T/state/follow" 2>/dev/null)"
# polled_after_outcome: a poll of a run that reached the emulator more than a second after the
# run's outcome was written into its receipt (none may).
polled_after_outcome() {
  jq -r '.chunks[] | "\(.flow_run_id) \(.finished_at | sub("\\.[0-9]+Z$"; "Z") | fromdateiso8601)"' \
    "$(own_of "$T/d4")"/archive/*.receipt.json | while read -r run done_s; do
    jq -r --arg p "/api/v1/flow-runs/$run" --argjson d "$done_s" \
      'select(.route == "run" and .path == $p and (.time_ms / 1000) > $d + 1) | .seq' \
      "$MOCK_REC/requests.jsonl"
  done
}
check "kill: no run was polled after its outcome was saved" test -z "$(polled_after_outcome)"
check "kill: each run was polled (the emulator saw a poll of every run)" \
  test "$(jq -r 'select(.route == "run") | .path' "$MOCK_REC/requests.jsonl" | sort -u | wc -l)" -eq 4

four_final() { [ "$(ls "$(own_of "$1")"/archive/*.receipt.json | wc -l)" -eq 4 ] && receipts_final "$1"; }
# A crash at each step of following: after the records are saved (before the file is archived),
# and after an outcome is written (before its record goes). The restart finishes every run.
for cp in follow_saved:2 outcome_written:2; do
  rm -rf "$T/state" "$T/d5" "$T/d5.pd"
  mkdir -p "$T/d5"
  for i in 1 2 3 4; do printf '[{"id":%d}]\n' "$i" >"$T/d5/p$i.json"; done
  write_conf "$T/c5.conf" "$T/d5" "follow_first = 200ms" "follow_cap = 500ms"
  PATCHDROP_CRASHPOINT=$cp timeout 60 "$PD_BIN" run --once -c "$T/c5.conf" >/dev/null 2>"$T/e5" \
    && rc=0 || rc=$?
  check "crash at $cp: the daemon was killed there" test "$rc" -eq 137
  # The runs whose outcome was in a receipt when the daemon died: never polled again.
  saved=$(cat "$(own_of "$T/d5")"/archive/*.receipt.json 2>/dev/null |
    jq -r '.chunks[] | select(.outcome != null and .outcome != "running") | .flow_run_id' || true)
  restart_ms=$(date +%s%3N)
  timeout 60 "$PD_BIN" run --once -c "$T/c5.conf" >"$T/o5" 2>>"$T/e5" && rc=0 || rc=$?
  check "crash at $cp: the restart delivers and follows everything (exit 0)" test "$rc" -eq 0
  check "crash at $cp: four receipts, every one final" four_final "$T/d5"
  check "crash at $cp: no record is left" test -z "$(ls "$T/state/follow" 2>/dev/null)"
  if [ "$cp" = outcome_written:2 ]; then
    check "crash at $cp: an outcome was in its receipt, its record not yet gone" test -n "$saved"
    polls_again=$(for run in $saved; do
      jq -r --arg p "/api/v1/flow-runs/$run" --argjson t "$restart_ms" \
        'select(.route == "run" and .path == $p and .time_ms >= $t) | "run \(.path) polled again"' \
        "$MOCK_REC/requests.jsonl"
    done)
    check "crash at $cp: a run whose outcome was saved is not polled after the restart" \
      test -z "$polls_again"
    [ -z "$polls_again" ] || echo "$polls_again"
    check "crash at $cp: the restart says it found the outcome" \
      grep -q 'event=flow_run_outcome_found .* action="not polled again"' "$T/e5"
  fi
done

# on_flow_failure = fail, killed after the file moved to the failed folder (before its receipt
# went, or after it but before its record went): the restart finishes the move from what is on
# disk, never polls that run again, and leaves no record polled until follow_timeout.
kill "$MOCK_PID"
start_mock --run-duration 1s --run-fail-marker BOOM
for cp in failed_moved:1 failed_receipt_gone:1; do
  rm -rf "$T/state" "$T/d6" "$T/d6.pd"
  mkdir -p "$T/d6"
  printf '{"id":1,"sku":"BOOM"}\n' >"$T/d6/bad.ndjson"
  printf '[{"id":2}]\n' >"$T/d6/good.json"
  write_conf "$T/c6.conf" "$T/d6" "follow_first = 200ms" "follow_cap = 500ms" "on_flow_failure = fail"
  PATCHDROP_CRASHPOINT=$cp timeout 60 "$PD_BIN" run --once -c "$T/c6.conf" >/dev/null 2>"$T/e6" \
    && rc=0 || rc=$?
  check "fail, crash at $cp: the daemon was killed there" test "$rc" -eq 137
  own=$(own_of "$T/d6")
  check "fail, crash at $cp: the file was in the failed folder, its record still there" \
    test -e "$own/failed/bad.ndjson" -a -n "$(ls "$T/state/follow" 2>/dev/null)"
  run=$(jq -r .flow_run_id "$own/failed/bad.ndjson.error.json")
  restart_ms=$(date +%s%3N)
  timeout 60 "$PD_BIN" run --once -c "$T/c6.conf" >"$T/o6" 2>>"$T/e6" && rc=0 || rc=$?
  check "fail, crash at $cp: the restart ends at once, a run failed (exit 1)" test "$rc" -eq 1
  check "fail, crash at $cp: bad.ndjson is in the failed folder with one error file, not archived" \
    test "$(cd "$own/failed" && ls | tr '\n' ' ')" = "bad.ndjson bad.ndjson.error.json " -a \
    ! -e "$own/archive/bad.ndjson" -a ! -e "$own/archive/bad.ndjson.receipt.json"
  check "fail, crash at $cp: good.json stays archived, its run succeeded" \
    jqe '.flow_result == "success"' "$own/archive/good.json.receipt.json"
  check "fail, crash at $cp: no record is left" test -z "$(ls "$T/state/follow" 2>/dev/null)"
  polls=$(jq -r --arg p "/api/v1/flow-runs/$run" --argjson t "$restart_ms" \
    'select(.route == "run" and .path == $p and .time_ms >= $t) | .seq' "$MOCK_REC/requests.jsonl")
  check "fail, crash at $cp: the failed run is not polled after the restart" test -z "$polls"
  check "fail, crash at $cp: the restart says it found the outcome" \
    grep -q 'event=flow_run_outcome_found .*outcome=failed' "$T/e6"
done
finish
