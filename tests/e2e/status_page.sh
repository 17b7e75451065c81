# The status page in a real browser: Debian's headless Chromium loads / from the metrics
# listener while the daemon delivers to patchdrop-mock, and the rendered DOM shows a delivered
# file with its flow run linked to the dashboard, a failed file with its reason, and a big file
# in flight with its chunk progress; a file name with markup in it is shown as text; the charts
# (inline SVG) count the delivered and the failed file and the account's requests against its
# limit. A screenshot
# is kept in the build's Testing/ folder. /api/status is the same JSON as status --json; with a
# [metrics] token_file, /, /api/status and /metrics answer 401 without the token (the token never
# reaches the log), /healthz stays open; on an address that is not loopback without a token, /
# is not served.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
BROWSER=$(command -v chromium || command -v chromium-browser || true)
[ -n "$BROWSER" ] || { echo "skipped: chromium is not installed (scripts/setup installs it)"; exit 77; }
command -v curl >/dev/null || { echo "skipped: curl is not installed"; exit 77; }
command -v python3 >/dev/null || { echo "skipped: python3 is not installed"; exit 77; }
PD_PW="pw-StatusPage-$RANDOM-never-shown"
start_mock --password "$PD_PW" --latency 400ms --script 422
mkdir -p "$T/drop"
PD_MAX_BODY=3000 write_conf "$T/c.conf" "$T/drop" "split = csv" "header_lines = 1"
printf '[metrics]\nlisten = 127.0.0.1:0\n' >>"$T/c.conf"
start_daemon "$T/c.conf"
port_line() { grep -o 'event=metrics_listening.*' "$T/daemon.err" | grep -o 'port=[0-9]*' | grep -o '[0-9]*'; }
check "the daemon says where metrics listen" wait_for 10 port_line
M="http://127.0.0.1:$(port_line)"

# The first start is refused (422); the second file is delivered; then a big one goes slowly.
BAD='bad<b>x<b>&.csv'
printf 'id,name\n1,refused\n' >"$T/drop/$BAD"
check "the refused file lands in failed/" wait_for 20 failed "$BAD" "$T/drop"
printf 'id,name\n1,fine\n' >"$T/drop/good.csv"
check "the good file is delivered" wait_for 20 archived good.csv "$T/drop"
python3 -c "
print('id,name')
for i in range(12000): print(f'{i},customer-{i:05d}-padding-padding')" >"$T/drop/.big.tmp"
mv "$T/drop/.big.tmp" "$T/drop/big.csv"
sending() {
  curl -fsS --max-time 5 "$M/api/status" >"$T/api.json" 2>/dev/null &&
    jqe '.watches[0].files[] | select(.name == "big.csv" and .state == "sending" and .chunk >= 2)' "$T/api.json"
}
check "/api/status shows the big file in flight" wait_for 30 sending
check "/api/status is the status document" \
  jqe '.schema == 1 and .watches[0].delivered[0].name == "good.csv" and .watches[0].failed[0].reason != null' "$T/api.json"
check "/api/status counts the delivered and failed files and the requests a minute" \
  jqe '(.watches[0].history.delivered | add) >= 1 and (.watches[0].history.failed | add) >= 1
       and (.history.requests | add) >= 3 and .history.limit[-1] > 0
       and (.history.requests | length) == (.watches[0].history.delivered | length)' "$T/api.json"
check "/api/status is served as JSON" \
  bash -c "curl -sS -o /dev/null -w '%{content_type}' '$M/api/status' | grep -q application/json"

# The browser, with a profile of its own; --virtual-time-budget lets the page settle.
shot_dir="${PD_BUILD:-$T}/Testing"
mkdir -p "$shot_dir"
browse() {
  timeout 60 "$BROWSER" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --user-data-dir="$T/chrome" --no-first-run "$@" 2>>"$T/chrome.err"
}
browse --dump-dom "$M/" >"$T/dom.html" || true
browse --screenshot="$shot_dir/status_page.png" --window-size=1280,1000 "$M/" >/dev/null || true
check "the browser rendered the page" grep -q "<h1>patchdrop" "$T/dom.html"
# The DOM as text, one row a line: what a person sees.
python3 - "$T/dom.html" >"$T/dom.txt" <<'PY'
import html.parser, sys
class P(html.parser.HTMLParser):
    out, row, links = [], [], []
    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.row.append("[link:%s]" % dict(attrs).get("href", ""))
    def handle_endtag(self, tag):
        if tag in ("tr", "p", "h1", "h2", "h3"):
            self.out.append(" | ".join(x.strip() for x in self.row if x.strip())); self.row = []
    def handle_data(self, d):
        self.row.append(d)
p = P(); p.feed(open(sys.argv[1], encoding="utf-8").read())
print("\n".join(p.out))
PY
check "the page shows the delivered file with its flow run linked to the dashboard" \
  grep -qE '^good\.csv \| [0-9T:-]+Z \| \[link:https://[^]]+\] \| [^ ]+' "$T/dom.txt"
check "the page shows the failed file, its name as text, with its reason" \
  grep -qF "$BAD | " "$T/dom.txt"
check "the failure's reason is on its row" grep -qE '^bad<b>x<b>&\.csv \| [0-9T:-]+Z \| .{10,}' "$T/dom.txt"
check "no markup from a file name reached the DOM" \
  bash -c "! grep -q '<b>' '$T/dom.html' && grep -qF 'bad&lt;b&gt;x&lt;b&gt;&amp;.csv' '$T/dom.html'"
check "the page shows the big file in flight with its chunk" \
  grep -qE '^big\.csv \| sending \| [0-9]+ of [0-9]+ bytes, chunk [0-9]+ of' "$T/dom.txt"
check "the page shows the account's requests" grep -qE 'Account: [0-9]+ requests in the last' "$T/dom.txt"
# The charts, as the browser built them: one for the account, one for the watch.
check "the DOM holds the two charts as inline SVG" \
  test "$(grep -o '<svg[^>]*class="chart"' "$T/dom.html" | wc -l)" = 2
check "the watch's chart counts the delivered file in a bar with its tooltip" \
  grep -qE '<rect class="bar"[^>]*><title>[0-9]{2}:[0-9]{2} UTC: [0-9]+ delivered files</title>' "$T/dom.html"
check "the watch's chart counts the failed file" \
  grep -qE '<title>[0-9]{2}:[0-9]{2} UTC: 1 failed files</title>' "$T/dom.html"
check "the account's chart draws the requests" \
  grep -qE '<title>[0-9]{2}:[0-9]{2} UTC: [0-9]+ requests</title>' "$T/dom.html"
check "and tells the limit, far above them (rate_limit = 100000 a minute), in words" \
  grep -qF 'limit 100000 a minute, far above</text>' "$T/dom.html"
check "the page refreshes itself" grep -q 'http-equiv="refresh"' "$T/dom.html"
check "the page has no script and no external asset" \
  bash -c "! curl -fsS '$M/' | grep -qiE '<script|<link|src='"
check "a screenshot is kept" test -s "$shot_dir/status_page.png"
# The big file takes a minute or more (150 chunks at 400 ms), so that a browser slowed by a
# loaded machine still finds it in flight; the daemon is stopped in the middle instead.
check "the big file is still in flight after the browser (else the checks above prove little)" \
  bash -c "curl -fsS --max-time 5 '$M/api/status' | jq -e '.watches[0].files[] | select(.name == \"big.csv\")' >/dev/null"
kill "$DAEMON_PID"; rc=0; wait "$DAEMON_PID" || rc=$?
check "stopped mid-file (exit $rc), the big file waits in work/ for the next start" \
  bash -c "test $rc -eq 0 && test -f '$T/drop.pd/work/big.csv' && ! ls '$T/drop.pd/failed/big.csv' 2>/dev/null"

# A token: 401 without it, 200 with it; /healthz stays open; the token is never logged.
TOKEN="tok-$RANDOM-$RANDOM-never-logged"
PD_SECRETS+=("$TOKEN")
(umask 077; printf '%s\n' "$TOKEN" >"$T/token.secret")
sed -i "s|^listen = 127.0.0.1:0$|listen = 127.0.0.1:0\ntoken_file = $T/token.secret|" "$T/c.conf"
: >"$T/daemon.err"
start_daemon "$T/c.conf"
check "the daemon with a token listens" wait_for 10 port_line
M="http://127.0.0.1:$(port_line)"
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@"; }
check "/ without the token is 401" test "$(code "$M/")" = 401
check "/api/status without the token is 401" test "$(code "$M/api/status")" = 401
check "/metrics without the token is 401" test "$(code "$M/metrics")" = 401
check "a wrong token is 401" test "$(code -H "Authorization: Bearer nope" "$M/api/status")" = 401
check "a 401 asks for a bearer token and says which key sets it" bash -c \
  "curl -s -D - --max-time 5 '$M/metrics' | grep -qi '^WWW-Authenticate: Bearer realm=\"patchdrop\"' &&
   curl -s --max-time 5 '$M/metrics' | grep -q 'token_file'"
check "/healthz stays open" wait_for 10 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' '$M/healthz')\" = 200 ]"
check "/api/status with the token is 200" \
  wait_for 10 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer $TOKEN' '$M/api/status')\" = 200 ]"
check "/ with the token is 200" test "$(code -H "Authorization: Bearer $TOKEN" "$M/")" = 200
kill "$DAEMON_PID"; wait "$DAEMON_PID" || true

# Listening beyond loopback without a token: the page and its JSON are not served.
sed -i -e '/^token_file = /d' -e 's|^listen = 127.0.0.1:0$|listen = 0.0.0.0:0|' "$T/c.conf"
: >"$T/daemon.err"
start_daemon "$T/c.conf"
check "the daemon on 0.0.0.0 listens" wait_for 10 port_line
M="http://127.0.0.1:$(port_line)"
check "/ is 403 there" test "$(code "$M/")" = 403
check "/api/status is 403 there" test "$(code "$M/api/status")" = 403
kill "$DAEMON_PID"; wait "$DAEMON_PID" || true
finish
