# The daemon's life as a service sees it: a clean stop exits 0 whatever happened to files
# before; a stop while Patchworks is down does not wait shutdown_grace for nothing; one
# event=stopped line says what is left in work/; a file retried forever is told about.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"

# A rejected file, then SIGTERM: the unit must not be marked failed (exit 0).
start_mock
mkdir -p "$T/drop"
write_conf "$T/c.conf" "$T/drop"
printf '' >"$T/drop/empty.txt"
echo "fine" >"$T/drop/fine.txt"
start_daemon "$T/c.conf"
check "the empty file is rejected" wait_for 20 failed empty.txt "$T/drop"
check "the good one delivered" wait_for 20 archived fine.txt "$T/drop"
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" && rc=0 || rc=$?
check "a daemon stopped cleanly exits 0 though a file was rejected before" test "$rc" -eq 0
check "one event=stopped line says nothing is left in work/" \
  grep -q "event=stopped files_left_in_work=0" "$T/daemon.err"
check "the default max_retry_time is 5 days" \
  bash -c "'$PD_BIN' check-config -c '$T/c.conf' | grep -qx 'max_retry_time = 5d'"
kill "$MOCK_PID"; wait "$MOCK_PID" 2>/dev/null || true

# Patchworks answers 503 to everything: the file waits for its next retry, nothing is on the
# wire most of the time. A stop must not wait the whole 60 s grace.
start_mock --fail-rate 1
mkdir -p "$T/down"
PD_GRACE=60s write_conf "$T/d.conf" "$T/down"
sed -i 's/^\[daemon\]$/[daemon]\nstuck_warning = 1s/' "$T/d.conf"
echo "waiting" >"$T/down/wait.txt"
: >"$T/daemon.err"
start_daemon "$T/d.conf"
check "the request is retried" wait_for 20 grep -q "level=warn event=retry watch=drop file=wait.txt chunk=1 " "$T/daemon.err"
check "a file retried for longer than stuck_warning is told about" \
  wait_for 20 grep -q "event=still_retrying watch=drop file=wait.txt" "$T/daemon.err"
kill -TERM "$DAEMON_PID"
stopped=no
for _ in $(seq 200); do kill -0 "$DAEMON_PID" 2>/dev/null || { stopped=yes; break; }; sleep 0.05; done
check "with nothing on the wire, SIGTERM does not wait out shutdown_grace (60 s)" test "$stopped" = yes
wait "$DAEMON_PID" && rc=0 || rc=$?
check "and exits 0" test "$rc" -eq 0
check "event=stopped says one file is left in work/" \
  grep -q "event=stopped files_left_in_work=1" "$T/daemon.err"
check "the file waits in work/ for the next start" test -f "$T/down.pd/work/wait.txt"
# A service whose only watch cannot be set up has nothing to do: exit 2 with the reason,
# instead of a cheerful start (systemd then keeps it failed: RestartPreventExitStatus=2).
mkdir -p "$T/elsewhere" "$T/broken"
ln -s "$T/elsewhere" "$T/broken.pd"
write_conf "$T/b.conf" "$T/broken"
timeout 20 "$PD_BIN" run -c "$T/b.conf" >"$T/b.out" 2>"$T/b.err" && rc=0 || rc=$?
check "no watch can be set up: run exits 2" test "$rc" -eq 2
check "with the reason" grep -q "event=watch_disabled watch=drop reason=.*broken.pd is a symbolic link" "$T/b.err"
check "and says it cannot start" grep -q "cannot start: no watch could be set up" "$T/b.err"
finish
