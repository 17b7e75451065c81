# The metrics listener under a connection flood: 2,000 idle connections and a few slowloris
# connections (one header byte every 2 s), each opened again as soon as patchdrop closes it,
# all from 127.0.0.1 like the scrapes. /healthz and /metrics must keep answering (each within a
# bounded number of 2-second tries) while files are still delivered; afterwards the daemon still
# answers and has not run out of file descriptors. The flooder is tests/e2e/flood.py, bounded in
# connections and time, loopback only.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
command -v python3 >/dev/null || { echo "skipped: python3 is not installed"; exit 77; }
command -v curl >/dev/null || { echo "skipped: curl is not installed"; exit 77; }
# 2,000 sockets in the flooder, a few hundred in the daemon: more than the usual 1024.
ulimit -n 8192 2>/dev/null || { echo "skipped: cannot raise the open files limit to 8192"; exit 77; }

PD_PW="pw-Flood-$RANDOM-never-shown"
start_mock --password "$PD_PW"
mkdir -p "$T/drop" "$T/in"
write_conf "$T/c.conf" "$T/drop"
printf '[metrics]\nlisten = 127.0.0.1:0\n' >>"$T/c.conf"
start_daemon "$T/c.conf"
port() { grep -o 'event=metrics_listening.*port=[0-9]*' "$T/daemon.err" | grep -o '[0-9]*$'; }
check "metrics listen" wait_for 10 port
M="http://127.0.0.1:$(port)"
code() { rm -f "$T/scrape.body"; curl -s -o "$T/scrape.body" --max-time 2 -w '%{http_code}' "$M$1" 2>/dev/null || true; }
# answered PATH TRIES: the path answers 200 within TRIES tries of at most 2 s each.
answered() {
  local i
  for ((i = 0; i < $2; i++)); do
    [ "$(code "$1")" = 200 ] && return 0
    sleep 0.2
  done
  return 1
}
check "/healthz answers before the flood" answered /healthz 10

python3 "$PD_SRC/tests/e2e/flood.py" "$(port)" "$T/flood.status" --idle 2000 --slow 5 \
  --seconds 150 --max-connects 60000 --rate 500 &
FLOOD_PID=$!
PD_PIDS+=("$FLOOD_PID")
# flood_stat NAME: a number from the flooder's status line (0 before the first).
flood_stat() { local v; v=$(sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" "$T/flood.status" 2>/dev/null); echo "${v:-0}"; }
flood_started() { [ "$(flood_stat connects)" -ge 2005 ]; }
check "the flooder made 2,000 connections" wait_for 30 flood_started
sleep 3 # the flood settles: connections cut are being opened again

check "/healthz answers 200 during the flood (within 30 tries)" answered /healthz 30
check "and says ok" grep -qx ok "$T/scrape.body"
check "/metrics answers 200 during the flood (within 30 tries)" answered /metrics 30
check "with the metrics" grep -q '^patchdrop_healthy 1$' "$T/scrape.body"
evicted=$(awk '$1 == "patchdrop_metrics_connections_evicted_total" {print $2}' "$T/scrape.body" 2>/dev/null || true)
check "stale flood connections were evicted to make room ($evicted)" test "${evicted:-0}" -gt 0
misses=0
for i in $(seq 1 20); do answered /healthz 5 || misses=$((misses + 1)); done
check "20 scrapes in a row are each answered within 5 tries (missed: $misses)" test "$misses" -eq 0

for i in 1 2 3; do echo "{\"flood\": $i}" >"$T/in/f$i.json"; done
cp "$T"/in/f*.json "$T/drop/"
check "files dropped during the flood are delivered" wait_for 60 bash -c \
  "for i in 1 2 3; do for f in '$MOCK_REC'/payloads/*; do cmp -s \"\$f\" '$T/in/f'\$i'.json' && continue 2; done; exit 1; done"
flood_on() { kill -0 "$FLOOD_PID" && [ "$(flood_stat open)" -gt 0 ]; }
check "the flood was still on (the flooder runs, and holds connections)" flood_on
echo "flood: $(cat "$T/flood.status")"

kill "$FLOOD_PID" 2>/dev/null || true
wait "$FLOOD_PID" 2>/dev/null || true
check "after the flood /healthz answers at once" answered /healthz 3
check "the daemon never ran out of file descriptors" bash -c "! grep -qi 'too many open files' '$T/daemon.err'"
check "the daemon is still running" kill -0 "$DAEMON_PID"
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" && rc=0 || rc=$?
check "and stops cleanly (exit 0)" test "$rc" -eq 0
finish
