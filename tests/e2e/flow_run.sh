# `patchdrop flow-run` against patchdrop-mock: a run's status in words, its times and dashboard
# link, --json, the old `status RUN_ID` with its note, refusals and unknown runs. Where the
# emulator follows runs (`patchdrop-mock --help` lists --run-duration): --wait to each final
# status and its exit status, --timeout on a run still running, --logs over every page, retry.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"

# start_run CONF FILE: sends FILE to flow 12 and prints the run id the start answered.
start_run() {
  "$PD_BIN" send -c "$1" --flow 12 "$2" >"$T/send.out" 2>&1 || true
  grep -o 'flow run [0-9]*' "$T/send.out" | head -1 | cut -d' ' -f3
}

mock
C=$(conf basic "dashboard_url = https://dash.example/runs/{id}/logs")
printf '{"order":"A-1"}\n' >"$T/a.json"
run_id=$(start_run "$C" "$T/a.json")
check "a run was started" test -n "$run_id"

run_pd "$T/fr" flow-run -c "$C" "$run_id"
check "flow-run exits 0 and names the status in words" \
  bash -c "[ $RC -eq 0 ] && grep -qE '^flow run $run_id: (running|success|failed|stopped|partial success) \(status [1-5]\)$' '$T/fr.out'"
check "it prints when the run started" grep -qE '^  started: +[0-9]{4}-' "$T/fr.out"
check "it prints the dashboard link from dashboard_url" \
  grep -qx "  dashboard: https://dash.example/runs/$run_id/logs" "$T/fr.out"
check "it asked for the run at core_url/flow-runs/ID" \
  test "$(count ".path == \"/api/v1/flow-runs/$run_id\"")" -ge 1

run_pd "$T/js" flow-run -c "$C" --json "$run_id"
check "--json prints one JSON object with id, status, outcome, times and the link" \
  bash -c "[ $RC -eq 0 ] && [ \$(wc -l <'$T/js.out') -eq 1 ] && jq -e --arg id '$run_id' \
    '.id == \$id and (.status | type == \"number\") and (.outcome | type == \"string\") and
     has(\"started_at\") and has(\"finished_at\") and (.dashboard | endswith(\"/\" + \$id + \"/logs\"))
     and (has(\"logs\") | not)' '$T/js.out' >/dev/null"

run_pd "$T/st" status -c "$C" "$run_id"
check "status RUN_ID still works: the same first line" \
  bash -c "[ $RC -eq 0 ] && [ \"\$(head -1 '$T/st.out')\" = \"\$(head -1 '$T/fr.out')\" ]"
check "and says on stderr to use flow-run" grep -q "^patchdrop status: deprecated: use patchdrop flow-run $run_id" "$T/st.err"

run_pd "$T/nf" flow-run -c "$C" 999999
check "an unknown run exits 1 and says why" bash -c "[ $RC -eq 1 ] && grep -q 'HTTP 404' '$T/nf.err'"
run_pd "$T/bad" flow-run -c "$C" ../x
check "an id that would change the URL is refused (exit 2)" \
  bash -c "[ $RC -eq 2 ] && grep -q \"'../x' is not a flow run id\" '$T/bad.err'"
run_pd "$T/to" flow-run -c "$C" --timeout 5s "$run_id"
check "--timeout without --wait is refused" bash -c "[ $RC -eq 2 ] && grep -q 'goes with --wait' '$T/to.err'"
run_pd "$T/td" flow-run -c "$C" --wait --timeout soon "$run_id"
check "--timeout that is no duration is refused" bash -c "[ $RC -eq 2 ] && grep -q 'not a duration' '$T/td.err'"
run_pd "$T/two" flow-run -c "$C" 1 2
check "two ids are refused" bash -c "[ $RC -eq 2 ] && grep -q 'one flow run id' '$T/two.err'"

# (The emulator has followed runs since issue 16: a build without them is a failure, not a skip.)
check "the emulator follows runs (--run-duration)" \
  bash -c "'$PD_MOCK' --help 2>&1 | grep -- '--run-duration' >/dev/null"

# ---- the emulator follows runs ----
kill "$MOCK_PID" 2>/dev/null || true
mock --run-duration 2s --run-script ok,fail,ok
C=$(conf follow)
ok_id=$(start_run "$C" "$T/a.json")
fail_id=$(start_run "$C" "$T/a.json")

run_pd "$T/r1" flow-run -c "$C" "$ok_id"
check "a fresh run is running" bash -c "[ $RC -eq 0 ] && grep -q '^flow run $ok_id: running' '$T/r1.out'"
run_pd "$T/short" flow-run -c "$C" --wait --timeout 300ms "$ok_id"
check "--wait exits 3 when the run is still running at --timeout" \
  bash -c "[ $RC -eq 3 ] && grep -q '^flow run $ok_id: running' '$T/short.out'"
SECONDS=0
run_pd "$T/w1" flow-run -c "$C" --wait --timeout 30s "$ok_id"
check "--wait follows a run to success and exits 0" \
  bash -c "[ $RC -eq 0 ] && grep -q '^flow run $ok_id: success' '$T/w1.out'"
check "it took the run's time, not the timeout" test "$SECONDS" -lt 15
check "a finished run has its finish time" grep -qE '^  finished: +[0-9]{4}-' "$T/w1.out"
check "polls back off: a few, not one a moment" \
  test "$(count ".path == \"/api/v1/flow-runs/$ok_id\"")" -le 8
run_pd "$T/w2" flow-run -c "$C" --wait --json "$fail_id"
check "--wait exits 1 for a failed run, --json says failed" \
  bash -c "[ $RC -eq 1 ] && jq -e '.status == 3 and .outcome == \"failed\"' '$T/w2.out' >/dev/null"

run_pd "$T/lg" flow-run -c "$C" --logs "$fail_id"
check "--logs prints the run's log entries" \
  bash -c "[ $RC -eq 0 ] && grep -q '^  logs:' '$T/lg.out' && [ \$(grep -c '^    ' '$T/lg.out') -ge 1 ]"
run_pd "$T/lj" flow-run -c "$C" --logs --json "$fail_id"
check "--logs --json has the entries, as many as the text" \
  bash -c "[ $RC -eq 0 ] && jq -e --argjson n \$(grep -c '^    ' '$T/lg.out') \
    '(.logs | length) == \$n and all(.logs[]; has(\"time\") and has(\"level\") and has(\"message\"))' \
    '$T/lj.out' >/dev/null"
check "the logs were read at core_url/flow-runs/ID/flow-run-logs" \
  test "$(count ".path | startswith(\"/api/v1/flow-runs/$fail_id/flow-run-logs\")")" -ge 2

run_pd "$T/rt" flow-run -c "$C" retry "$fail_id"
new_id=$(grep -o 'retried: flow run [0-9A-Za-z_.-]*' "$T/rt.out" | cut -d' ' -f4)
check "retry prints the new run's id and exits 0" \
  bash -c "[ $RC -eq 0 ] && [ -n '$new_id' ] && [ '$new_id' != '$fail_id' ]"
check "retry POSTed to flow-runs/ID/retry" \
  test "$(count ".method == \"POST\" and .path == \"/api/v1/flow-runs/$fail_id/retry\"")" -eq 1
run_pd "$T/rw" flow-run -c "$C" --wait --json retry "$new_id"
check "retry --wait follows the new run (the script's next word: ok)" \
  bash -c "[ $RC -eq 0 ] && jq -e '.outcome == \"success\" and .retried == \"$new_id\"' '$T/rw.out' >/dev/null"
finish
