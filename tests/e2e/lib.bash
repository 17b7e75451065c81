# Shared helpers for the end-to-end tests: sourced, never run by ctest on its own.
# Each test gets a private temp folder (removed on exit) and bounded waits.
set -euo pipefail
: "${PD_BIN:?PD_BIN must name the patchdrop binary}"
T=$(mktemp -d /tmp/pd-e2e.XXXXXX)
PD_PIDS=()
PD_SECRETS=() # more secrets a test wants the final scan to look for
# secret_scan: every file a test left under $T (stdout/stderr logs, receipts, error files, state
# files, metrics scrapes...) is searched for the passwords, API keys and tokens the test used
# (PD_SECRETS, PW, APIKEY, PD_PW, and every token cache). Config files, the token caches and
# password files hold them on purpose and are skipped. Short strings ("demo") are not searched.
secret_scan() {
  local secrets=() s t hits found=0
  for s in "${PD_SECRETS[@]}" "${PW:-}" "${APIKEY:-}" "${PD_PW:-}"; do
    [ ${#s} -ge 8 ] && secrets+=("$s")
  done
  while IFS= read -r -d '' t; do
    s=$(jq -r '.token // empty' "$t" 2>/dev/null || true)
    [ ${#s} -ge 8 ] && secrets+=("$s")
  done < <(find "$T" -type f -name token -print0 2>/dev/null)
  for s in "${secrets[@]}"; do
    hits=$(grep -rlF --exclude='*.conf' --exclude=token --exclude='password*' --exclude='*api-key*' \
      --exclude='*.secret' -- "$s" "$T" 2>/dev/null || true)
    if [ -n "$hits" ]; then
      echo "not ok - a secret leaked into: $(tr '\n' ' ' <<<"$hits")"
      found=1
    fi
  done
  return $found
}
cleanup() {
  local rc=$?
  for pid in "${PD_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if ! secret_scan; then
    echo "the secret scan failed"
    rc=1
  fi
  [ -n "${PD_E2E_KEEP:-}" ] && echo "kept $T" || rm -rf "$T"
  exit $rc
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
  # Each emulator records into a folder of its own: a counter, never $RANDOM, whose repeats
  # (1 in 32768 a pair) once mixed two cases' payloads.
  MOCK_STARTS=$((${MOCK_STARTS:-0} + 1))
  MOCK_REC="$T/record.$MOCK_STARTS"
  mkdir "$MOCK_REC" || { echo "start_mock: $MOCK_REC exists" >&2; exit 1; }
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
