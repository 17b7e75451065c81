# Helpers for the daemon's end-to-end tests (sourced after lib.bash).

# write_conf FILE DROP_DIR [watch keys...]: a config for patchdrop-mock at $MOCK_URL.
write_conf() {
  local file=$1 drop=$2; shift 2
  (umask 077; {
    echo "[patchworks]"
    echo "email = demo@example.com"
    echo "password = ${PD_PW:-demo}"
    echo "login_url = $MOCK_URL/api/v1/login"
    echo "start_url = $MOCK_URL/api/v1"
    echo "core_url = $MOCK_URL/api/v1"
    echo "lookups_url = $MOCK_URL/core-main/api/v1"
    echo "rate_limit = ${PD_RATE:-100000}"
    echo "concurrency = ${PD_CONCURRENCY:-4}"
    echo "retry_base = 50ms"
    echo "retry_cap = 500ms"
    echo "timeout = 10s"
    echo "[state]"
    echo "dir = $T/state"
    echo "[daemon]"
    echo "shutdown_grace = ${PD_GRACE:-5s}"
    echo "[watch:drop]"
    echo "path = $drop"
    # Each drop folder gets its own patchdrop folder beside it (DROP.pd), so tests that use
    # several drop folders with one watch name keep them apart; PD_DEFAULT_WORKDIR=1 leaves the
    # default (<state dir>/watches/<name>).
    [ -n "${PD_DEFAULT_WORKDIR:-}" ] || echo "work_dir = $drop.pd"
    echo "flow_id = 42"
    echo "version_id = 7"
    echo "settle = ${PD_SETTLE:-0}"
    echo "rescan = ${PD_RESCAN:-1s}"
    for kv in "$@"; do echo "$kv"; done
  } >"$file")
}

# payload_count: payloads the emulator accepted so far.
payload_count() { ls "$MOCK_REC/payloads" 2>/dev/null | wc -l; }
# archived NAME DROP: the file sits in the archive with its receipt.
# own_of DROP: the watch's own folder (write_conf's DROP.pd, or the default for [watch:drop]).
own_of() { if [ -d "$1.pd" ]; then echo "$1.pd"; else echo "$T/state/watches/drop"; fi; }
archived() { local o; o=$(own_of "$2"); [ -f "$o/archive/$1" ] && [ -f "$o/archive/$1.receipt.json" ]; }
failed() { local o; o=$(own_of "$2"); [ -f "$o/failed/$1" ] && [ -f "$o/failed/$1.error.json" ]; }
# received FILE: some payload the emulator got equals FILE byte for byte.
received() {
  local f
  for f in "$MOCK_REC"/payloads/*; do cmp -s "$f" "$1" && return 0; done
  return 1
}
# received_count FILE: how many payloads equal FILE.
received_count() {
  local f n=0
  for f in "$MOCK_REC"/payloads/*; do cmp -s "$f" "$1" && n=$((n + 1)); done
  echo $n
}
# start_daemon CONF [args...]: patchdrop run in the background; sets DAEMON_PID.
start_daemon() {
  local conf=$1; shift
  "$PD_BIN" run -c "$conf" "$@" >>"$T/daemon.out" 2>>"$T/daemon.err" &
  DAEMON_PID=$!
  PD_PIDS+=("$DAEMON_PID")
}
# jqe FILTER FILE: true when the filter holds, quietly.
jqe() { jq -e "$@" >/dev/null; }
