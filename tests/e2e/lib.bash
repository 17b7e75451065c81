# Shared helpers for the end-to-end tests: sourced, never run by ctest on its own.
# Each test gets a private temp folder (removed on exit) and bounded waits.
set -euo pipefail
: "${PD_BIN:?PD_BIN must name the patchdrop binary}"
T=$(mktemp -d /tmp/pd-e2e.XXXXXX)
PD_PIDS=()
cleanup() {
  for pid in "${PD_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
FAILS=0
PASSES=0
ok() { PASSES=$((PASSES + 1)); echo "ok - $*"; }
not_ok() { FAILS=$((FAILS + 1)); echo "not ok - $*"; }
check() { # check "description" command...
  local what=$1; shift
  if "$@"; then ok "$what"; else not_ok "$what"; fi
}
# wait_for SECONDS command...: polls until the command succeeds or the time is up.
wait_for() {
  local limit=$1; shift
  local end=$((SECONDS + limit))
  until "$@"; do
    [ $SECONDS -ge $end ] && return 1
    sleep 0.05
  done
}
# start_mock [options...]: starts patchdrop-mock on a free loopback port; sets MOCK_URL, MOCK_REC.
start_mock() {
  : "${PD_MOCK:?PD_MOCK must name the patchdrop-mock binary}"
  MOCK_REC="$T/record.$RANDOM"
  mkdir -p "$MOCK_REC"
  rm -f "$T/port"
  "$PD_MOCK" --port 0 --port-file "$T/port" --record "$MOCK_REC" --quiet --exit-after 240s \
    --user demo@example.com --password demo "$@" &
  MOCK_PID=$!
  PD_PIDS+=("$MOCK_PID")
  wait_for 10 test -s "$T/port" || { echo "patchdrop-mock did not start" >&2; exit 1; }
  MOCK_URL="http://127.0.0.1:$(cat "$T/port")"
}
finish() {
  echo "$PASSES passed, $FAILS failed"
  [ "$FAILS" -eq 0 ]
}
