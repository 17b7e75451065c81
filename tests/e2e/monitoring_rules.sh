# contrib/prometheus: the alert rules load in Prometheus (`promtool check rules`) and fire when
# they should, and only then (`promtool test rules` with the test file beside them). promtool
# comes with Debian's prometheus package (scripts/setup installs it); without it: skipped (77).
. "$(dirname "$0")/lib.bash"
: "${PD_SRC:?}"
if ! command -v promtool >/dev/null; then
  echo "# promtool is missing (Debian's prometheus package): the alert rules are not checked"
  exit 77
fi
K="$PD_SRC/contrib/prometheus"
promtool check rules "$K/patchdrop-alerts.yml" >"$T/check.out" 2>&1 && rc=0 || rc=$?
sed 's/^/# /' "$T/check.out"
check "promtool check rules accepts the alert rules" test "$rc" -eq 0
for a in PatchdropDown PatchdropFilesStuck PatchdropDeliveriesFailing PatchdropFlowRunsFailing \
  PatchdropLoginFailing; do
  check "there is an alert $a" grep -qx "      - alert: $a" "$K/patchdrop-alerts.yml"
done
# promtool reads rule_files relative to the test file.
(cd "$K" && promtool test rules patchdrop-alerts.test.yml) >"$T/test.out" 2>&1 && rc=0 || rc=$?
sed 's/^/# /' "$T/test.out"
check "promtool test rules: each alert fires when it should, and only then" test "$rc" -eq 0
# Every alert is exercised by the test file.
for a in $(grep -oP '^      - alert: \K\w+' "$K/patchdrop-alerts.yml"); do
  check "the test file tests $a" grep -q "alertname: $a\b" "$K/patchdrop-alerts.test.yml"
done
finish
