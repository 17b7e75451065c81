# patchdrop-mock as a script or a benchmark runs it: port file, record folder, scripted faults,
# the request log on stderr (never a secret in it) and a clean exit on SIGTERM, SIGINT and
# --exit-after.
. "$(dirname "$0")/lib.bash"

c() { curl -sS --max-time 5 "$@"; }
jqe() { jq -e "$@" >/dev/null; }

# A clean stop: exit 0 within the time allowed.
stopped_with_0() { # stopped_with_0 PID
  local rc=0
  wait_for 5 bash -c "! kill -0 $1 2>/dev/null" || return 1
  wait "$1" || rc=$?
  [ "$rc" -eq 0 ]
}

start_mock --script "503:4,ok"
login=$(c -X POST -H 'Content-Type: application/json' \
  -d '{"email":"demo@example.com","password":"demo"}' "$MOCK_URL/api/v1/login")
token=$(jq -r .token <<<"$login")
check "login answers a token" test -n "$token" -a "$token" != null
check "and its lifetime" test "$(jq -r .expires_in <<<"$login")" = 86400

hdrs=$(c -i -X POST -H "Authorization: Bearer $token" -d '{"payload":"<order id=\"1\"/>"}' \
  "$MOCK_URL/api/v1/flows/42/start/1")
check "the scripted 503 comes first" grep -q "^HTTP/1.1 503" <<<"$hdrs"
check "with its Retry-After" grep -qi "^Retry-After: 4" <<<"$hdrs"
body=$(c -X POST -H "Authorization: Bearer $token" -d '{"payload":"<order id=\"1\"/>"}' \
  "$MOCK_URL/api/v1/flows/42/start/1")
check "then the flow starts" test "$(jq -r .flow_run_id <<<"$body")" = 1
check "the payload is recorded exactly" test "$(cat "$MOCK_REC/payloads/000001")" = '<order id="1"/>'
check "each request is one JSON line" test "$(jq -s length "$MOCK_REC/requests.jsonl")" = 3
check "the scripted one is marked" test "$(jq -s -r '.[1].outcome' "$MOCK_REC/requests.jsonl")" = scripted
check "the token is never logged" bash -c "! grep -q '$token' '$MOCK_REC/requests.jsonl'"

kill -TERM "$MOCK_PID"
check "SIGTERM stops it with exit 0" stopped_with_0 "$MOCK_PID"

# Not quiet: one line per request on stderr, without secrets.
"$PD_MOCK" --port 0 --port-file "$T/port2" --password 'pw-not-logged' --exit-after 60s \
  2>"$T/stderr" &
pid=$!
PD_PIDS+=("$pid")
wait_for 10 test -s "$T/port2"
url="http://127.0.0.1:$(cat "$T/port2")"
c -o /dev/null -X POST -d '{"email":"demo@example.com","password":"pw-not-logged"}' "$url/api/v1/login"
c -o /dev/null -X POST -d '{"email":"demo@example.com","password":"wrong"}' "$url/api/v1/login"
kill -INT "$pid"
check "SIGINT stops it with exit 0" stopped_with_0 "$pid"
check "it says where it listens" grep -q "listening on $url" "$T/stderr"
check "each request is logged" test "$(grep -c 'POST /api/v1/login' "$T/stderr")" = 2
check "the refused login shows its status" grep -q "POST /api/v1/login -> 401" "$T/stderr"
check "the password is never logged" bash -c "! grep -q pw-not-logged '$T/stderr'"

# --exit-after is a safety net for scripts that forget to stop it.
"$PD_MOCK" --port 0 --quiet --exit-after 300ms &
pid=$!
PD_PIDS+=("$pid")
check "--exit-after stops it with exit 0" stopped_with_0 "$pid"

# Flow runs: running for --run-duration, then the outcome decided at creation (script, then
# marker, then rates); logs and retries; runs.jsonl holds what was decided.
start_mock --run-duration 2s --run-script fail --run-fail-marker BROKEN
auth="Authorization: Bearer $(c -X POST -d '{"email":"demo@example.com","password":"demo"}' \
  "$MOCK_URL/api/v1/login" | jq -r .token)"
start() { c -X POST -H "$auth" -d "{\"payload\":\"$1\"}" "$MOCK_URL/api/v1/flows/42/start/7" | jq -r .flow_run_id; }
status() { c -H "$auth" "$MOCK_URL/api/v1/flow-runs/$1" | jq -r .data.attributes.status; }
check "runs are created" test "$(start '<a/>')$(start '<a>BROKEN</a>')" = 12
check "a run is running at first" test "$(status 1)" = 1
both_final() { [ "$(status 1)" != 1 ] && [ "$(status 2)" != 1 ]; }
check "then both are final" wait_for 10 both_final
check "the script's word fails the first, the marker the second" test "$(status 1)$(status 2)" = 33
logs=$(c -H "$auth" "$MOCK_URL/api/v1/flow-runs/1/flow-run-logs?page=1&per_page=100")
check "the log names the failing record" \
  jqe '.data | any(.level == "error" and (.message | test("^Mapping failed: field .sku. missing in record [0-9]+$")))' <<<"$logs"
check "the log is a page" jqe '.meta.current_page == 1 and .meta.last_page == 1 and .links.next == null' <<<"$logs"
retried=$(c -X POST -H "$auth" "$MOCK_URL/api/v1/flow-runs/2/retry")
check "a retry is a new run" jqe '.message == "Flow run retried." and .flow_run_id == 3' <<<"$retried"
check "an unknown run is 404" test "$(c -o /dev/null -w '%{http_code}' -H "$auth" "$MOCK_URL/api/v1/flow-runs/9")" = 404
check "polls are counted by route" test "$(jq -s '[.[] | select(.route == "run")] | length' "$MOCK_REC/requests.jsonl")" -ge 3
check "runs.jsonl has what was decided" \
  jqe -s '[.[] | [.flow_run_id, .status, .cause, (.retry_of // 0)]] == [[1,3,"script",0],[2,3,"marker",0],[3,3,"marker",2]]' "$MOCK_REC/runs.jsonl"
kill -TERM "$MOCK_PID"
check "it stops cleanly" stopped_with_0 "$MOCK_PID"

start_mock --run-fail-marker BROKEN --run-retry-succeeds --run-stop-rate 1
auth="Authorization: Bearer $(c -X POST -d '{"email":"demo@example.com","password":"demo"}' \
  "$MOCK_URL/api/v1/login" | jq -r .token)"
check "without --run-duration a run is final at once" test "$(start BROKEN)$(status 1)" = 13
c -o /dev/null -X POST -H "$auth" "$MOCK_URL/api/v1/flow-runs/1/retry"
check "--run-retry-succeeds: the retry escapes the marker, the rate decides" test "$(status 2)" = 4
kill -TERM "$MOCK_PID"
check "it stops cleanly again" stopped_with_0 "$MOCK_PID"

rc=0; out=$("$PD_MOCK" --run-script ok,boom 2>&1) || rc=$?
check "a bad run script exits 2" test "$rc" -eq 2
check "and says which word" grep -q "run script word 'boom'" <<<"$out"
rc=0; out=$("$PD_MOCK" --fail-rate 2 2>&1) || rc=$?
check "a bad option exits 2" test "$rc" -eq 2
check "and says what is expected" grep -q "fail-rate '2': expected a probability" <<<"$out"
rc=0; "$PD_MOCK" --help >/dev/null || rc=$?
check "--help exits 0" test "$rc" -eq 0

"$PD_MOCK" --port 0 --port-file "$T/port3" --quiet --exit-after 30s &
pid=$!
PD_PIDS+=("$pid")
wait_for 10 test -s "$T/port3"
rc=0; out=$("$PD_MOCK" --port "$(cat "$T/port3")" --exit-after 5s 2>&1) || rc=$?
check "a port in use exits 1" test "$rc" -eq 1
check "and says so" grep -q "cannot listen" <<<"$out"
kill -TERM "$pid"
check "the first one still stops cleanly" stopped_with_0 "$pid"

finish
