# Security at the edges: warnings at every start for tls_verify = no and for drop folders anyone
# can write to; the token cache and delivery records are 0600; a verbose daemon with retries, a
# rejection, a re-login and metrics scrapes puts no secret in any output (lib.bash also scans
# every file this and every other e2e test leaves behind).
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
PD_PW="pw-Sec-$RANDOM-never-shown"
start_mock --password "$PD_PW" --script "503,ok,422,401,ok" --latency 100ms
mkdir -p "$T/drop"
write_conf "$T/c.conf" "$T/drop"
printf '[metrics]\nlisten = 127.0.0.1:0\n' >>"$T/c.conf"

# --- world-writable drop folders ---------------------------------------------------------------
chmod 0777 "$T/drop"
"$PD_BIN" check-config --user "$(id -un)" -q -c "$T/c.conf" 2>"$T/cc1.err" && rc=0 || rc=$?
check "check-config still passes" test "$rc" -eq 0
check "but warns that everyone can write the drop folder" \
  grep -q "WARNING: \[watch:drop\] path $T/drop is writable by everyone (mode 0777, no sticky bit)" "$T/cc1.err"
check "and says how to fix it" grep -q "run chmod o-w $T/drop" "$T/cc1.err"
chmod 1777 "$T/drop"
"$PD_BIN" check-config --user "$(id -un)" -q -c "$T/c.conf" 2>"$T/cc2.err"
check "with the sticky bit: no warning" bash -c "! grep -q 'writable by everyone' '$T/cc2.err'"
chmod 0755 "$T/drop"
"$PD_BIN" check-config --user "$(id -un)" -q -c "$T/c.conf" 2>"$T/cc3.err"
check "0755: no warning" test ! -s "$T/cc3.err"

# --- tls_verify = no warns at every start ----------------------------------------------------
sed 's/^\[patchworks\]$/[patchworks]\ntls_verify = no/' "$T/c.conf" >"$T/notls.conf"
chmod 600 "$T/notls.conf"
"$PD_BIN" check-config --user "$(id -un)" -q -c "$T/notls.conf" 2>"$T/tls1.err" || true
check "check-config warns about tls_verify = no" grep -q "WARNING: tls_verify = no in $T/notls.conf: certificates are NOT checked" "$T/tls1.err"
timeout 30 "$PD_BIN" run --once -c "$T/notls.conf" >/dev/null 2>"$T/tls2.err" || true
check "run warns about it at start" grep -q "WARNING: tls_verify = no" "$T/tls2.err"
echo hi >"$T/hi.txt"
timeout 30 "$PD_BIN" send -c "$T/notls.conf" --flow 1 "$T/hi.txt" >/dev/null 2>"$T/tls3.err" || true
check "send warns about it too" grep -q "WARNING: tls_verify = no" "$T/tls3.err"
rm -rf "$T/state"

# --- a verbose daemon through retries, a rejection and a re-login -------------------------------
for i in 1 2 3 4; do echo "{\"n\": $i}" >"$T/drop/f$i.json"; done
start_daemon "$T/c.conf" -v
port() { grep -o 'event=metrics_listening.*port=[0-9]*' "$T/daemon.err" | grep -o '[0-9]*$'; }
check "metrics listen" wait_for 10 port
check "the files are handled (3 delivered, 1 rejected)" wait_for 30 bash -c \
  "[ \$(ls '$T/drop.pd/archive/'*.receipt.json 2>/dev/null | wc -l) -eq 3 ] && [ \$(ls '$T/drop.pd/failed/'*.error.json 2>/dev/null | wc -l) -eq 1 ]"
curl -fsS --max-time 5 "http://127.0.0.1:$(port)/metrics" >"$T/metrics.txt"
curl -sS --max-time 5 "http://127.0.0.1:$(port)/healthz" >"$T/healthz.txt"
check "there was a re-login" bash -c "[ \$(awk '\$1 == \"patchdrop_logins_total\" {print \$2}' '$T/metrics.txt') -ge 2 ]"
check "the token cache is 0600" test "$(stat -c %a "$T/state/token")" = 600
# 0710: the service's group may pass through to the control socket, and read nothing in it.
check "the state folder is 0710" test "$(stat -c %a "$T/state")" = 710
check "the work and state folders are 0700" \
  test "$(stat -c %a "$T/drop.pd/work") $(stat -c %a "$T/drop.pd/state")" = "700 700"
# A delivery record exists only while a file is in work/: hold one there with a hanging request.
kill "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true
kill "$MOCK_PID"; wait "$MOCK_PID" 2>/dev/null || true
start_mock --password "$PD_PW" --script hang
PD_GRACE=1s write_conf "$T/c2.conf" "$T/drop"
echo '{"n": 5}' >"$T/drop/f5.json"
start_daemon "$T/c2.conf"
check "a delivery record appears" wait_for 15 bash -c "ls '$T/drop.pd/state/'*.json >/dev/null 2>&1"
check "delivery records are 0600" \
  bash -c "for f in '$T/drop.pd/state/'*.json; do [ \$(stat -c %a \"\$f\") = 600 ] || exit 1; done"
kill "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true
check "no secret in logs, receipts, error files, state or metrics" \
  bash -c "! grep -rqF -- '$PD_PW' '$T/daemon.err' '$T/daemon.out' '$T/drop' '$T/metrics.txt' '$T/healthz.txt' '$T'/*.err"
tok=$(jq -r .token "$T/state/token")
check "no token either" bash -c "! grep -rqF -- '$tok' '$T/daemon.err' '$T/daemon.out' '$T/drop' '$T/metrics.txt' '$T'/*.err"
finish
