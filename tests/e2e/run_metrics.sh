# The daemon with [metrics] on: /metrics counts match the files dropped, /healthz turns 503 when
# Patchworks is unreachable for longer than unhealthy_after and 200 again once it is back; logs
# in JSON are one valid object per line; no secret in any of it.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
PD_PW="pw-Metrics-$RANDOM-never-shown"
start_mock --password "$PD_PW"
mport=$(cat "$T/port")
mkdir -p "$T/drop"
write_conf "$T/c.conf" "$T/drop"
cat >>"$T/c.conf" <<EOF
[metrics]
listen = 127.0.0.1:0
unhealthy_after = 2s
EOF
sed -i 's/^\[daemon\]$/[daemon]\nlog_format = json/' "$T/c.conf"

start_daemon "$T/c.conf"
port_line() { grep -o '"event":"metrics_listening".*' "$T/daemon.err" | grep -o '"port":[0-9]*' | grep -o '[0-9]*'; }
check "the daemon says where metrics listen" wait_for 10 port_line
M="http://127.0.0.1:$(port_line)"
metric() { # metric NAME_WITH_LABELS: its value in a fresh scrape (empty if absent)
  curl -fsS --max-time 5 "$M/metrics" | awk -v n="$1" '$1 == n { print $2 }'
}
health() { curl -sS --max-time 5 -o "$T/health.body" -w '%{http_code}' "$M/healthz"; }
check "/healthz is 200 at once" wait_for 10 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' '$M/healthz')\" = 200 ]"
health >/dev/null
check "/healthz says ok" grep -qx ok "$T/health.body"

for i in 1 2 3; do echo "{\"order\": $i}" >"$T/drop/order-$i.json"; done
check "three files are delivered" wait_for 30 bash -c "for i in 1 2 3; do [ -f '$T/drop.pd/archive/order-'\$i'.json' ] || exit 1; done"
curl -fsS --max-time 5 "$M/metrics" >"$T/metrics.1"
val() { awk -v n="$1" '$1 == n { print $2 }' "$2"; }
# The delivered counter moves right after the archive step; give the scrape a moment.
check "delivered_total is 3" wait_for 10 bash -c "[ \"\$(curl -fsS '$M/metrics' | awk '\$1 == \"patchdrop_files_delivered_total{watch=\\\"drop\\\"}\" {print \$2}')\" = 3 ]"
curl -fsS --max-time 5 "$M/metrics" >"$T/metrics.1"
check "discovered_total is 3" test "$(val 'patchdrop_files_discovered_total{watch="drop"}' "$T/metrics.1")" = 3
check "claimed_total is 3" test "$(val 'patchdrop_files_claimed_total{watch="drop"}' "$T/metrics.1")" = 3
check "rejected_total is 0" test "$(val 'patchdrop_files_rejected_total{watch="drop"}' "$T/metrics.1")" = 0
check "chunks_sent_total is 3" test "$(val 'patchdrop_chunks_sent_total{watch="drop"}' "$T/metrics.1")" = 3
check "bytes_sent_total counts the bodies" test "$(val 'patchdrop_bytes_sent_total{watch="drop"}' "$T/metrics.1")" -gt 30
check "one login" test "$(val patchdrop_logins_total "$T/metrics.1")" = 1
check "four 200 answers (login and three starts)" test "$(val 'patchdrop_http_responses_total{status="200"}' "$T/metrics.1")" = 4
check "no retries" test "$(val patchdrop_retries_total "$T/metrics.1")" = 0
check "a last delivery time" test "$(val 'patchdrop_last_delivery_timestamp_seconds{watch="drop"}' "$T/metrics.1")" -gt 1600000000
check "process memory is reported" test "$(val process_resident_memory_bytes "$T/metrics.1")" -gt 100000
check "every family has HELP and TYPE" \
  test "$(grep -c '^# HELP' "$T/metrics.1")" -eq "$(grep -c '^# TYPE' "$T/metrics.1")"
check "an unknown path is 404" test "$(curl -s -o /dev/null -w '%{http_code}' "$M/nope")" = 404
check "a POST is refused" test "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$M/metrics")" = 405

# Patchworks goes away: a new file keeps failing; after unhealthy_after /healthz says 503.
kill "$MOCK_PID"; wait "$MOCK_PID" 2>/dev/null || true
echo '{"order": 4}' >"$T/drop/order-4.json"
check "/healthz turns 503 while deliveries fail" wait_for 20 bash -c "[ \"\$(curl -s -o '$T/health.body' -w '%{http_code}' '$M/healthz')\" = 503 ]"
check "and says why" grep -q "unhealthy: deliveries have been failing for .* no answer" "$T/health.body"
curl -fsS --max-time 5 "$M/metrics" >"$T/metrics.2"
check "retries are counted" test "$(val patchdrop_retries_total "$T/metrics.2")" -gt 0
check "answers that never came are counted" test "$(val 'patchdrop_http_responses_total{status="none"}' "$T/metrics.2")" -gt 0
check "one file is pending" test "$(val 'patchdrop_files_pending{watch="drop"}' "$T/metrics.2")" = 1
check "healthy gauge is 0" test "$(val patchdrop_healthy "$T/metrics.2")" = 0
check "failing_seconds is at least 2" test "$(val patchdrop_failing_seconds "$T/metrics.2")" -ge 2

# Patchworks is back on the same port: the file goes, health is 200 again.
"$PD_MOCK" --port "$mport" --port-file "$T/port2" --record "$MOCK_REC" --quiet --exit-after 120s \
  --user demo@example.com --password "$PD_PW" &
PD_PIDS+=($!)
check "the emulator is back" wait_for 10 test -s "$T/port2"
check "the waiting file is delivered" wait_for 30 archived order-4.json "$T/drop"
check "/healthz is 200 again" wait_for 10 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' '$M/healthz')\" = 200 ]"
check "delivered_total is 4" wait_for 10 bash -c "[ \"\$(curl -fsS '$M/metrics' | awk '\$1 == \"patchdrop_files_delivered_total{watch=\\\"drop\\\"}\" {print \$2}')\" = 4 ]"
# Counters move at once; the gauges are a sample the loop hands over once a second (its beat),
# so the pending gauge may lag the delivered counter by up to a beat: wait for the next one.
check "nothing is pending" wait_for 5 bash -c "[ \"\$(curl -fsS '$M/metrics' | awk '\$1 == \"patchdrop_files_pending{watch=\\\"drop\\\"}\" {print \$2}')\" = 0 ]"
curl -fsS --max-time 5 "$M/metrics" >"$T/metrics.3"
check "the oldest pending age is 0" test "$(val 'patchdrop_oldest_pending_file_age_seconds{watch="drop"}' "$T/metrics.3")" = 0

# Logs: JSON, one object per line, each with a level and an event; repeats were folded.
check "every log line is a JSON object with level and event" \
  jq -e -s 'length > 5 and all(.[]; has("level") and has("event") and has("time"))' "$T/daemon.err"
check "the failures were logged, but not once per retry" \
  bash -c "n=\$(grep -c '\"event\":\"retry\"' '$T/daemon.err'); r=\$(awk '\$1 == \"patchdrop_retries_total\" {print \$2}' '$T/metrics.3'); [ \$n -ge 1 ] && [ \$n -lt \$r ]"
check "numbers and booleans are JSON numbers and booleans, names strings" \
  jqe -s '[.[] | select(.event == "retry")] | length > 0 and all(.[]; (.attempt | type) == "number" and (.delay_ms | type) == "number" and (.retry_after | type) == "boolean" and (.file | type) == "string" and (.chunk | type) == "number")' "$T/daemon.err"
check "the login is an info event with a number" \
  jqe -s 'any(.[]; .event == "login" and .level == "info" and (.expires_in | type) == "number")' "$T/daemon.err"
check "the metrics port is a number" jqe -s 'any(.[]; .event == "metrics_listening" and (.port | type) == "number")' "$T/daemon.err"
check "a flow-run id is a string, as in the receipt; sizes are numbers" \
  jqe -s '[.[] | select(.event == "chunk_delivered")] | length > 0 and all(.[]; (.flow_run_id | type) == "string" and (.bytes | type) == "number" and (.status | type) == "number")' "$T/daemon.err"
check "the password is not on the command line" bash -c "! grep -qF '$PD_PW' /proc/$DAEMON_PID/cmdline"
kill -TERM "$DAEMON_PID"
timeout 20 tail --pid="$DAEMON_PID" -f /dev/null || true
wait "$DAEMON_PID" && rc=0 || rc=$?
check "SIGTERM stops the daemon with exit 0 (metrics thread and all freed)" test "$rc" -eq 0
check "a repeat summary was written at exit" grep -q '"event":"repeated"' "$T/daemon.err"
finish
