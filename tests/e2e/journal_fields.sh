# Under journald, each log line carries EVENT=, WATCH= and FILE= of its own, so that
# `journalctl -u patchdrop WATCH=orders` finds a watch's lines. With a running journald (systemd
# as init) the daemon runs as a transient unit and journalctl is asked; without one, as root, a
# journal socket of our own in a private mount namespace receives what patchdrop sends, in
# journald's native protocol. Neither possible: skipped (77).
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"

# (grep reads all of ldd's output: with -q it may stop early, and under pipefail the
# SIGPIPE ldd gets would read as "no libsystemd")
if ! ldd "$PD_BIN" 2>/dev/null | grep libsystemd >/dev/null; then
  echo "# patchdrop was built without libsystemd: it does not talk to journald"
  exit 77
fi
start_mock
mkdir -p "$T/drop"
echo "id,qty" >"$T/drop/orders-1.csv"
write_conf "$T/c.conf" "$T/drop"

if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null &&
  journalctl -n0 >/dev/null 2>&1 && [ -S /run/systemd/journal/socket ]; then
  unit="pd-e2e-journal-$$"
  systemd-run --quiet --wait --collect --unit "$unit" -p "WorkingDirectory=$T" \
    "$PD_BIN" run --once -c "$T/c.conf" >/dev/null 2>&1 || true
  journalctl --sync 2>/dev/null || true
  journalctl -u "$unit" -o json WATCH=drop >"$T/entries.json" 2>/dev/null || true
  check "journalctl -u UNIT WATCH=drop finds the watch's lines" test -s "$T/entries.json"
  check "the delivery's line has FILE= and EVENT=" \
    jq -se 'any(.[]; .EVENT == "delivered" and .FILE == "orders-1.csv")' "$T/entries.json"
  finish
  exit
fi
if [ "$(id -u)" != 0 ] || ! unshare --mount --propagation private true 2>/dev/null; then
  echo "# no journald here, and no private mount namespace to stand in for its socket"
  exit 77
fi

# Our journal socket: each datagram received is kept, one entry per file.
cat >"$T/journal.py" <<'PY'
import os, socket, sys
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
open(out + "/ready", "w").close()
n = 0
while True:
    data = s.recv(1 << 20)
    n += 1
    with open("%s/entry.%04d" % (out, n), "wb") as f:
        f.write(data)
PY
mkdir "$T/entries"
unshare --mount --propagation private -- bash -ec '
  T=$1 PD_BIN=$2
  mount -t tmpfs -o mode=0755 pd-journal /run/systemd
  mkdir /run/systemd/journal
  python3 "$T/journal.py" /run/systemd/journal/socket "$T/entries" & jpid=$!
  for i in $(seq 100); do [ -e "$T/entries/ready" ] && break; sleep 0.05; done
  # stderr is "the journal stream": JOURNAL_STREAM names it, as systemd does.
  exec 2>"$T/stderr"
  JOURNAL_STREAM=$(stat -c "%d:%i" "$T/stderr") timeout 60 "$PD_BIN" run --once -c "$T/c.conf" \
    >"$T/stdout" || echo $? >"$T/rc"
  kill $jpid' _ "$T" "$PD_BIN"

check "patchdrop delivered the file" test ! -e "$T/rc"
check "it sent its lines to the journal socket" \
  test "$(find "$T/entries" -name 'entry.*' | wc -l)" -gt 1
check "and wrote none of them to stderr as well" bash -c "! grep -q 'event=' '$T/stderr'"
delivered=$(grep -l '^EVENT=delivered$' "$T"/entries/entry.* | head -1 || true)
check "the delivery has EVENT=delivered" test -n "$delivered"
if [ -n "$delivered" ]; then
  check "and WATCH=drop" grep -qx 'WATCH=drop' "$delivered"
  check "and FILE=orders-1.csv" grep -qx 'FILE=orders-1.csv' "$delivered"
  check "its PRIORITY is info" grep -qx 'PRIORITY=6' "$delivered"
  check "its MESSAGE is the line, without a <N> prefix" \
    grep -qx 'MESSAGE=level=info event=delivered watch=drop file=orders-1.csv .*' "$delivered"
  check "its SYSLOG_IDENTIFIER is patchdrop" grep -qx 'SYSLOG_IDENTIFIER=patchdrop' "$delivered"
fi
started=$(grep -l '^EVENT=started$' "$T"/entries/entry.* | head -1 || true)
check "a line without watch= or file= has neither field" \
  bash -c "[ -n '$started' ] && ! grep -qE '^(WATCH|FILE)=' '$started'"
check "no entry carries the place in patchdrop's source" bash -c "! grep -q '^CODE_FILE=' '$T'/entries/entry.*"
finish
