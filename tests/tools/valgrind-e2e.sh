#!/usr/bin/env bash
# Runs end-to-end tests with patchdrop and patchdrop-mock under valgrind's memcheck, then reports
# every error and leak it found. Slow (minutes): not part of ./dev test; run it by hand:
#   tests/tools/valgrind-e2e.sh BUILD_DIR [TEST...]      (default: the tests listed below)
set -uo pipefail
build=${1:?usage: valgrind-e2e.sh BUILD_DIR [TEST...]}; shift
src=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$build" && pwd)
tests=("$@")
[ ${#tests[@]} -eq 0 ] && tests=(check_config run_once run_faults run_badinput run_options send_basic send_reject send_split lookup_sync)
logs=$(mktemp -d /tmp/pd-valgrind.XXXXXX)
for b in patchdrop patchdrop-mock; do
  cat >"$logs/$b" <<WRAP
#!/bin/sh
exec valgrind --quiet --error-exitcode=0 --leak-check=full --errors-for-leak-kinds=definite,indirect \\
  --show-leak-kinds=definite,indirect --track-fds=no --log-file="$logs/vg.$b.%p" "$build/$b" "\$@"
WRAP
  chmod +x "$logs/$b"
done
status=0
for t in "${tests[@]}"; do
  echo "== $t under valgrind"
  PD_BIN="$logs/patchdrop" PD_MOCK="$logs/patchdrop-mock" PD_SRC="$src" \
    timeout 900 bash "$src/tests/e2e/$t.sh" >"$logs/$t.out" 2>&1 || { echo "   (test failed under valgrind: $logs/$t.out)"; tail -3 "$logs/$t.out"; }
  tail -1 "$logs/$t.out"
done
runs=$(ls "$logs"/vg.* 2>/dev/null | wc -l)
bad=$(grep -l -E "ERROR SUMMARY: [1-9]|definitely lost: [1-9]|indirectly lost: [1-9]|Invalid (read|write)|uninitialised" "$logs"/vg.* 2>/dev/null)
echo "valgrind: $runs processes checked, $(echo -n "$bad" | grep -c . ) with errors or leaks (logs in $logs)"
for f in $bad; do echo "--- $f"; head -40 "$f"; status=1; done
exit $status
