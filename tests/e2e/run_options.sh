# Watch options end to end: done markers, ordered delivery, dedupe, recursive folders, polling,
# min_age, and SIGHUP reloads (a good config is applied, a bad one is refused and the old kept).
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
start_mock
flow_of() { # flow_of PAYLOAD_TEXT: the flow id of the request that carried it
  local f
  for f in "$MOCK_REC"/payloads/*; do
    if grep -q "$1" "$f"; then
      jq -r "select(.payload_file == \"payloads/$(basename "$f")\") | .path" "$MOCK_REC/requests.jsonl"
      return
    fi
  done
}

# done_marker: a file waits for its marker; the marker is removed after delivery.
mkdir -p "$T/m"
write_conf "$T/m.conf" "$T/m" "done_marker = {name}.ok"
echo "marked file" >"$T/m/a.csv"
timeout 30 "$PD_BIN" run --once -c "$T/m.conf" >/dev/null 2>&1 || true
check "without its marker a file is not sent" bash -c "[ -f '$T/m/a.csv' ] && [ $(payload_count) -eq 0 ]"
touch "$T/m/a.csv.ok"
timeout 30 "$PD_BIN" run --once -c "$T/m.conf" >/dev/null 2>&1 || true
check "with its marker it is sent" archived a.csv "$T/m"
check "the marker is removed after delivery" test ! -e "$T/m/a.csv.ok"
check "the marker itself was never sent" test "$(payload_count)" -eq 1

# ordered: one at a time, oldest first (mtime, then name).
rm -rf "$MOCK_REC"/payloads/*
mkdir -p "$T/o"
for i in 5 3 9 1 7; do echo "ordered $i" >"$T/o/n$i.txt"; touch -d "2026-01-01 00:0$i:00" "$T/o/n$i.txt"; done
echo "ordered 0" >"$T/o/z.txt"; touch -d "2025-12-31" "$T/o/z.txt"
PD_CONCURRENCY=8 write_conf "$T/o.conf" "$T/o" "ordered = yes"
timeout 30 "$PD_BIN" run --once -c "$T/o.conf" >/dev/null 2>&1 || true
order=$(cat "$MOCK_REC"/payloads/* | tr -d '\n')
check "ordered: sent oldest first ($order)" test "$order" = "ordered 0ordered 1ordered 3ordered 5ordered 7ordered 9"

# dedupe: the same content to the same flow within the window is archived, not sent.
rm -rf "$MOCK_REC"/payloads/*
mkdir -p "$T/d"
write_conf "$T/d.conf" "$T/d" "dedupe = 1h"
echo "same content" >"$T/d/first.txt"
timeout 30 "$PD_BIN" run --once -c "$T/d.conf" >/dev/null 2>&1 || true
echo "same content" >"$T/d/again.txt"
out=$(timeout 30 "$PD_BIN" run --once -c "$T/d.conf" 2>/dev/null) || true
check "dedupe: the repeat is not sent" test "$(payload_count)" -eq 1
check "dedupe: the repeat is archived" archived again.txt "$T/d"
check "dedupe: its receipt says duplicate of the first" \
  jqe '.result == "duplicate" and (.duplicate_of | test("first.txt.receipt.json$"))' "$T/d.pd/archive/again.txt.receipt.json"
check "dedupe: the summary counts it" grep -q "1 duplicate" <<<"$out"
# Identical files arriving together: the window covers files in flight too, one is sent.
rm -rf "$MOCK_REC"/payloads/*
for i in 1 2 3 4 5 6; do echo "together content" >"$T/d/together-$i.txt"; done
out=$(timeout 30 "$PD_BIN" run --once -c "$T/d.conf" 2>/dev/null) && rc=0 || rc=$?
check "dedupe in flight: six identical files together, exit 0" test "$rc" -eq 0
check "dedupe in flight: sent once" test "$(payload_count)" -eq 1
check "dedupe in flight: all six archived" \
  bash -c "for i in 1 2 3 4 5 6; do [ -f '$T/d.pd/archive/together-'\$i'.txt.receipt.json' ] || exit 1; done"
check "dedupe in flight: five of them as duplicates" \
  test "$(cat "$T"/d.pd/archive/together-*.receipt.json | jq -s '[.[] | select(.result == "duplicate")] | length')" -eq 5

# recursive and poll: files in subfolders, found by rescans alone.
rm -rf "$MOCK_REC"/payloads/*
mkdir -p "$T/r/partner-a/2026"
write_conf "$T/r.conf" "$T/r" "recursive = yes" "poll = yes"
echo "deep one" >"$T/r/partner-a/2026/deep.xml.txt"
echo "top one" >"$T/r/top.txt"
timeout 30 "$PD_BIN" run --once -c "$T/r.conf" >/dev/null 2>&1 || true
echo 'deep one' >"$T/deep.expected"
check "recursive: a file two folders down is sent" test "$(received_count "$T/deep.expected")" -eq 1
check "recursive: and archived" archived deep.xml.txt "$T/r"
check "recursive: its receipt names its path" \
  jqe '.file == "partner-a/2026/deep.xml.txt"' "$T/r.pd/archive/deep.xml.txt.receipt.json"

# min_age: a fresh file waits until its mtime is old enough.
rm -rf "$MOCK_REC"/payloads/*
mkdir -p "$T/a"
PD_RESCAN=300ms write_conf "$T/a.conf" "$T/a" "min_age = 2s"
start_daemon "$T/a.conf"
echo "young" >"$T/a/young.txt"
sleep 1
check "min_age: not sent while young" test "$(payload_count)" -eq 0
check "min_age: sent once old enough" wait_for 15 archived young.txt "$T/a"

# SIGHUP: a bad config is refused (the old one keeps working), a good one is applied.
cp "$T/a.conf" "$T/a.conf.good"
echo "bogus_key = 1" >>"$T/a.conf"
kill -HUP "$DAEMON_PID"
sleep 0.5
check "a bad reload is refused and logged" grep -q "reload_refused" "$T/daemon.err"
echo "still old flow" >"$T/a/old-flow.txt"
check "the old config keeps working" wait_for 15 archived old-flow.txt "$T/a"
# A config that parses but cannot start (a new watch whose work_dir is a symlink, which the
# daemon refuses to trust) is refused too: the daemon keeps running on the old one.
mkdir -p "$T/b2"
mkdir -p "$T/elsewhere"
ln -s "$T/elsewhere" "$T/b2.pd"
{ cat "$T/a.conf.good"; printf '[watch:b2]\npath = %s\nflow_id = 5\nwork_dir = %s\n' "$T/b2" "$T/b2.pd"; } >"$T/a.conf"
: >"$T/hup.err"
kill -HUP "$DAEMON_PID"
check "a reload whose folders cannot be set up is refused with the reason" \
  wait_for 10 grep -q "event=reload_refused reason=.*b2.pd is a symbolic link" "$T/daemon.err"
check "the daemon is still running" kill -0 "$DAEMON_PID"
echo "still old flow too" >"$T/a/old-flow2.txt"
check "and the old config keeps working" wait_for 15 archived old-flow2.txt "$T/a"
sed 's/^flow_id = 42$/flow_id = 99/' "$T/a.conf.good" >"$T/a.conf"
kill -HUP "$DAEMON_PID"
check "a good reload is applied" wait_for 10 grep -q "event=reloaded" "$T/daemon.err"
check "a reload says event=reloaded, not a second event=started" \
  test "$(grep -c 'event=started' "$T/daemon.err")" -eq 1
echo "new flow" >"$T/a/new-flow.txt"
check "new files go to the new flow" wait_for 15 archived new-flow.txt "$T/a"
check "to flow 99" test "$(flow_of 'new flow')" = "/api/v1/flows/99/start/7"
check "the daemon survived both reloads" kill -0 "$DAEMON_PID"
kill -TERM "$DAEMON_PID"; wait "$DAEMON_PID" && rc=0 || rc=$?
check "and stops with exit 0" test "$rc" -eq 0
finish
