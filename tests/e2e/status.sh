# `patchdrop status` against a daemon delivering to patchdrop-mock: a file refused (422) shows as
# failed with its reason; a big file cut into chunks, sent slowly (--latency), shows a retry after
# a 429 (next attempt, last error, the account's pause), then its chunk progress, then as
# delivered with its flow run; garbage, oversized and slow clients on the control socket never
# stop the daemon; with no daemon, status says so, counts what the folders hold and exits 3; a
# stale socket left by a crash is replaced, a symlink in its place is left alone.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
command -v python3 >/dev/null || { echo "skipped: python3 is not installed"; exit 77; }
PD_PW="pw-Status-$RANDOM-never-shown"
start_mock --password "$PD_PW" --latency 300ms --script 422,429:4
mkdir -p "$T/drop"
PD_RATE=600 PD_MAX_BODY=3000 write_conf "$T/c.conf" "$T/drop" "split = csv" "header_lines = 1"
SOCK="$T/state/patchdrop.sock"
st() { timeout 20 "$PD_BIN" status -c "$T/c.conf" "$@"; }
# sock_send BYTES_CMD: what the daemon answers to the bytes python writes (stdin of python).
sock_send() {
  python3 - "$SOCK" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
try:
    s.sendall(eval(sys.argv[2]))
except OSError:
    pass
out = b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
except OSError:
    pass
sys.stdout.write(out.decode("utf-8", "replace"))
PY
}

RC=0; st >"$T/none.out" 2>&1 || RC=$?
check "no daemon: status exits 3" test "$RC" = 3
check "and says the daemon is not running" grep -q "patchdrop is not running" "$T/none.out"

start_daemon "$T/c.conf"
check "the daemon makes its control socket" wait_for 10 test -S "$SOCK"
check "the socket is 0660" test "$(stat -c %a "$SOCK")" = 660

# The first start is refused (422): the file goes to failed/ with the reason.
printf 'id,name\n1,refused\n' >"$T/drop/bad.csv"
check "the refused file lands in failed/" wait_for 20 failed bad.csv "$T/drop"
st --json >"$T/s1.json"
check "status --json lists it as failed with a reason" \
  jqe '.watches[0].failed[0] | .name == "bad.csv" and (.reason | length > 10) and .status == 422' "$T/s1.json"
st >"$T/s1.out"
check "the table says FAILED, the name and the reason" grep -qE "FAILED +bad.csv .*: .+" "$T/s1.out"

# A big file, 3000-byte bodies, each answered after 300 ms: status sees chunk 2 or later go.
python3 -c "
print('id,name')
for i in range(1500): print(f'{i},customer-{i:05d}-padding-padding')" >"$T/big.csv"
cp "$T/big.csv" "$T/drop/.big.tmp" && mv "$T/drop/.big.tmp" "$T/drop/big.csv"
# Its first chunk is answered 429 with Retry-After: 4: a retry waits, and the account pauses.
retry_seen() {
  st --json >"$T/s-retry.json" 2>/dev/null &&
    jqe '.watches[0].files[] | select(.name == "big.csv" and .state == "retrying" and .last_error == "HTTP 429" and .attempts >= 1 and (.next_attempt | test("T")))' "$T/s-retry.json"
}
check "status shows the big file waiting for a retry after a 429, with its next attempt" wait_for 15 retry_seen
check "and the account paused until then" jqe '.account.paused_until | test("T")' "$T/s-retry.json"
st >"$T/s-retry.out" || true
check "the table says retrying, the last error and the next attempt" \
  grep -qE "retrying +big.csv .*last error: HTTP 429, next attempt 20" "$T/s-retry.out"
chunk_seen() {
  st --json >"$T/s2.json" 2>/dev/null &&
    jqe '.watches[0].files[] | select(.name == "big.csv" and .state == "sending" and .chunk >= 3 and .bytes_done > 0 and .size > 50000)' "$T/s2.json"
}
check "status shows the big file being sent, chunk 3 or later, bytes done" wait_for 30 chunk_seen
st >"$T/s2.out" || true
check "the table shows its chunk and bytes" grep -qE "sending +big.csv +[0-9]+/[0-9]+ bytes, chunk [0-9]+ of" "$T/s2.out"
check "the account's window is counted" jqe '.account.requests_used > 1 and .account.requests_limit > 0' "$T/s2.json"
check "the token's expiry is shown" jqe '.account.token_valid_until | test("^20[0-9-]+T")' "$T/s2.json"

# Garbage, an oversized line, a silent client and a flood, while the big file goes.
sock_send 'b"\x00\xff garbage\n"' >"$T/g1.out"
check "garbage is answered with an error" grep -q '"error":"unknown request' "$T/g1.out"
sock_send 'b"x" * 100000' >"$T/g2.out"
check "an oversized line is cut off" grep -q '"error":"request too long' "$T/g2.out"
python3 -c "
import socket, time
ss = []
for i in range(60):
    s = socket.socket(socket.AF_UNIX); s.connect('$SOCK'); ss.append(s)
time.sleep(4)" &
SILENT=$!
sleep 0.5
check "status answers while 60 silent clients hold connections" \
  bash -c "timeout 20 '$PD_BIN' status -c '$T/c.conf' --json >/dev/null"
wait "$SILENT" || true
check "the daemon keeps running" kill -0 "$DAEMON_PID"
check "status --watch drop answers" bash -c "timeout 20 '$PD_BIN' status -c '$T/c.conf' --watch drop --json | jq -e '.watches | length == 1' >/dev/null"
RC=0; st --watch nosuch >"$T/nosuch.out" 2>&1 || RC=$?
check "an unknown watch is refused" bash -c "[ $RC = 2 ] && grep -q 'no watch nosuch' '$T/nosuch.out'"

check "the big file is delivered" wait_for 60 archived big.csv "$T/drop"
delivered_seen() {
  st --json >"$T/s3.json" 2>/dev/null &&
    jqe '.watches[0].delivered[0] | .name == "big.csv" and .chunks > 3 and (.runs[0].id | length > 0) and (.runs[0].dashboard | test("^https://"))' "$T/s3.json"
}
check "status lists it as delivered with its flow runs and dashboard links" wait_for 10 delivered_seen
st >"$T/s3.out" || true
check "the table shows it delivered with a run" grep -qE "delivered +big.csv .* run [^ ]+ https://" "$T/s3.out"

# A clean stop removes the socket; status then counts what the folders hold.
kill "$DAEMON_PID"; wait "$DAEMON_PID" || true
check "the socket is removed at stop" test ! -e "$SOCK"
RC=0; st >"$T/stopped.out" 2>&1 || RC=$?
check "stopped: status exits 3" test "$RC" = 3
check "and counts the failed file" grep -qE "^  failed +1 in " "$T/stopped.out"
RC=0; st --json >"$T/stopped.json" 2>/dev/null || RC=$?
check "stopped: --json says not running, with the counts" \
  jqe '.running == false and .watches[0].failed == 1 and .watches[0].work == 0' "$T/stopped.json"

# A crash leaves the socket behind: status says not running; the next daemon replaces it.
start_daemon "$T/c.conf"
wait_for 10 test -S "$SOCK"
kill -9 "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true
check "a crash leaves the socket" test -S "$SOCK"
RC=0; st >/dev/null 2>&1 || RC=$?
check "status on a stale socket exits 3" test "$RC" = 3
start_daemon "$T/c.conf"
check "the next daemon answers on a new socket" wait_for 10 bash -c "timeout 5 '$PD_BIN' status -c '$T/c.conf' >/dev/null 2>&1"
kill "$DAEMON_PID"; wait "$DAEMON_PID" || true

# A symlink where the socket goes is never followed nor removed.
ln -s "$T/elsewhere" "$SOCK"
start_daemon "$T/c.conf"
check "a symlink in the socket's place is said" wait_for 10 grep -q "event=control_unavailable" "$T/daemon.err"
check "and left alone" test -L "$SOCK"
check "nothing was made at its target" test ! -e "$T/elsewhere"
kill "$DAEMON_PID"; wait "$DAEMON_PID" || true
finish
