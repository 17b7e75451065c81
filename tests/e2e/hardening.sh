# Process hardening and the warnings about settings that expose something beyond this machine:
#  - every command that holds the password or token is not dumpable: no core file, and its
#    /proc/PID files belong to root instead of the user it runs as (checked on a running
#    daemon and a running send, against a plain process of the same user as the control);
#  - check-config and every start warn when a Patchworks URL is plain http:// to a host that is
#    not loopback (only check-config here: nothing is sent anywhere but 127.0.0.1), and when
#    [metrics] listen is not a loopback address.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
PD_PW="pw-Hard-$RANDOM-never-shown"

# --- not dumpable -----------------------------------------------------------------------------
# /proc/PID/* of a non-dumpable process are owned by root. As root the test runs patchdrop as
# nobody, so that root stands out; as another user, that user is the one that must not show.
if [ "$(id -u)" -eq 0 ]; then
  command -v setpriv >/dev/null || { echo "skipped: running as root and setpriv is missing"; exit 77; }
  USER_NAME=nobody
  AS=(setpriv --reuid="$(id -u nobody)" --regid="$(id -g nobody)" --clear-groups --)
else
  USER_NAME=$(id -un)
  AS=()
fi
start_mock --password "$PD_PW" --latency 3s
P="$T/priv"
mkdir -p "$P/drop" "$P/state"
chmod 0711 "$T"
cp "$PD_BIN" "$P/patchdrop" # the build folder may be out of the user's reach
write_conf "$P/c.conf" "$P/drop"
sed -i "s|^dir = .*|dir = $P/state|" "$P/c.conf"
echo '{"n": 1}' >"$P/one.json"
[ "$(id -u)" -eq 0 ] && chown -R nobody "$P"
# owner PID: who owns the process's environment file (root when not dumpable).
owner() { stat -c %U "/proc/$1/environ" 2>/dev/null; }
owner_is() { [ "$(owner "$1")" = "$2" ]; }
# launched PID: the background job is patchdrop itself by now, running as the user (before the
# exec it is still the shell, which as root would pass for non-dumpable).
launched() {
  tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q "^$P/patchdrop " &&
    [ "$(awk '/^Uid:/ {print $2}' "/proc/$1/status" 2>/dev/null)" = "$(id -u "$USER_NAME")" ]
}

"${AS[@]}" sleep 30 &
CONTROL=$!
PD_PIDS+=("$CONTROL")
check "control: a plain process of $USER_NAME owns its /proc files" wait_for 10 owner_is "$CONTROL" "$USER_NAME"
kill "$CONTROL"

"${AS[@]}" "$P/patchdrop" run -c "$P/c.conf" >"$T/run.out" 2>"$T/run.err" &
RUN=$!
PD_PIDS+=("$RUN")
check "the daemon started" wait_for 10 grep -q 'event=started' "$T/run.err"
check "as $USER_NAME" launched "$RUN"
if [ "$(id -u)" -eq 0 ]; then
  check "without CAP_LEASE it warns once that settle alone judges open files" \
    grep -q "event=lease_unavailable" "$T/run.err"
  "${AS[@]}" "$P/patchdrop" check-config -q -c "$P/c.conf" --user "$USER_NAME" 2>"$T/cc-lease.err" || true
  check "and check-config says so" grep -q "no CAP_LEASE here" "$T/cc-lease.err"
fi
check "patchdrop run is not dumpable (its /proc files belong to root)" owner_is "$RUN" root
check "its environment cannot be read by $USER_NAME" \
  bash -c "! ${AS[*]:-} cat /proc/$RUN/environ >/dev/null 2>&1"
kill -TERM "$RUN"
wait "$RUN" && rc=0 || rc=$?
check "and it stops cleanly (exit 0)" test "$rc" -eq 0

# send waits 3 s for the emulator's answer: look at it meanwhile.
"${AS[@]}" "$P/patchdrop" send -c "$P/c.conf" --flow 42 "$P/one.json" >"$T/send.out" 2>"$T/send.err" &
SEND=$!
PD_PIDS+=("$SEND")
check "send started" wait_for 10 launched "$SEND"
check "patchdrop send is not dumpable either" wait_for 2 owner_is "$SEND" root
wait "$SEND" && rc=0 || rc=$?
check "and the file was sent (exit 0)" test "$rc" -eq 0
check "the file arrived" received "$P/one.json"

# --- plain http:// to another machine ---------------------------------------------------------
# check-config only: it reads the file and connects nowhere.
cc() { # cc NAME LOGIN_URL START_URL: check-config's stderr for such a config, in $T/NAME.err
  (umask 077; cat >"$T/$1.conf" <<EOF
[patchworks]
email = ops@example.com
password = $PD_PW
login_url = $2
start_url = $3
core_url = https://core.example.invalid/api/v1
lookups_url = https://app.example.invalid/core-main/api/v1
[state]
dir = $T/state.$1
[watch:drop]
path = $T/drop.$1
flow_id = 1
EOF
  )
  mkdir -p "$T/drop.$1"
  "$PD_BIN" check-config -q -c "$T/$1.conf" 2>"$T/$1.err" && rc=0 || rc=$?
}
cc clear http://example.invalid/api/v1/login https://start.example.invalid/api/v1
check "a plain http login_url to another host still passes check-config" test "$rc" -eq 0
check "but check-config warns that the password travels in clear" \
  grep -q "WARNING: login_url in $T/clear.conf is plain http:// to example.invalid, not this machine: the email and password travel in clear" "$T/clear.err"
check "and says to use https" grep -q "use https://" "$T/clear.err"
check "only login_url is named (the others are https)" test "$(grep -c WARNING "$T/clear.err")" -eq 1
cc clearstart https://login.example.invalid/api/v1/login http://10.20.30.40:8080/api/v1
check "a plain http start_url to another host: the files and the token" \
  grep -q "WARNING: start_url in $T/clearstart.conf is plain http:// to 10.20.30.40, not this machine: the files and the token travel in clear" "$T/clearstart.err"
cc userinfo "http://ops:$PD_PW@example.invalid/login" https://start.example.invalid/api/v1
check "a URL with a user and password: the warning names the host, never the password" \
  bash -c "grep -q 'plain http:// to example.invalid' '$T/userinfo.err' && ! grep -qF '$PD_PW' '$T/userinfo.err'"
for url in http://127.0.0.1:9/api/v1/login http://127.0.0.2/x "http://[::1]:8080/login" http://localhost/login; do
  cc loop "$url" "${url%/*}"
  check "no warning for loopback $url" test ! -s "$T/loop.err"
done
cc tls https://login.example.invalid/api/v1/login https://start.example.invalid/api/v1
check "no warning for https" test ! -s "$T/tls.err"

# --- a metrics listener beyond loopback ---------------------------------------------------------
cc metrics https://login.example.invalid/api/v1/login https://start.example.invalid/api/v1
printf '[metrics]\nlisten = 0.0.0.0:9465\n' >>"$T/metrics.conf"
"$PD_BIN" check-config -q -c "$T/metrics.conf" 2>"$T/metrics.err" && rc=0 || rc=$?
check "check-config passes with metrics on 0.0.0.0" test "$rc" -eq 0
check "but warns they have no authentication" \
  grep -q "WARNING: \[metrics\] listen = 0.0.0.0:9465 in $T/metrics.conf is not a loopback address: /metrics and /healthz have no authentication" "$T/metrics.err"
printf 'tok-%s\n' "$RANDOM$RANDOM" >"$T/metrics.token"
chmod 600 "$T/metrics.token"
sed -i "s|^listen = .*|listen = 0.0.0.0:9465\ntoken_file = $T/metrics.token|" "$T/metrics.conf"
"$PD_BIN" check-config -q -c "$T/metrics.conf" 2>"$T/metrics.err" && rc=0 || rc=$?
check "with a token_file: the warning says what is still open, not that nothing is guarded" \
  bash -c "test $rc -eq 0 && grep -q 'token_file guards /metrics and the status, but the token travels in clear' '$T/metrics.err' && ! grep -q 'have no authentication' '$T/metrics.err'"
sed -i '/^token_file = /d' "$T/metrics.conf"
for l in 127.0.0.1:9465 "[::1]:9465" localhost:9465; do
  sed -i "s|^listen = .*|listen = $l|" "$T/metrics.conf"
  "$PD_BIN" check-config -q -c "$T/metrics.conf" 2>"$T/metrics.err"
  check "no warning for metrics on $l" test ! -s "$T/metrics.err"
done
# At start: 192.0.2.1 (TEST-NET-1) is no address of this machine, so the bind fails (or, with
# ip_nonlocal_bind, listens where nothing can reach it); the warning comes first either way.
write_conf "$T/m.conf" "$T/drop.m"
mkdir -p "$T/drop.m"
printf '[metrics]\nlisten = 192.0.2.1:0\n' >>"$T/m.conf"
timeout 30 "$PD_BIN" run --once -c "$T/m.conf" >/dev/null 2>"$T/m.err" || true
check "run logs a warning at start for metrics beyond loopback" \
  grep -q 'level=warn event=metrics_exposed listen=192.0.2.1:0 reason="not a loopback address"' "$T/m.err"
finish
