# When the disk says no: a full or read-only archive, a file patchdrop may not read, and a file
# cut short while it is being sent. Nothing is lost and nothing delivered is sent again.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
start_mock

MNT="$T/small"
mkdir -p "$MNT"
if mount -t tmpfs -o size=64k tmpfs "$MNT" 2>/dev/null; then
  trap 'umount "$MNT" 2>/dev/null; cleanup' EXIT
  # A full archive: the file stays in work/, then goes once there is room; sent only once.
  mkdir -p "$T/full"
  write_conf "$T/full.conf" "$T/full" "archive_dir = $MNT/archive"
  mkdir -p "$MNT/archive"
  head -c 60000 /dev/zero >"$MNT/filler" 2>/dev/null || true
  seq 1 20000 >"$T/full/big.txt"      # ~110 KB: cannot fit the 64 KB file system
  timeout 30 "$PD_BIN" run --once -c "$T/full.conf" >"$T/full.out" 2>"$T/full.err" && rc=0 || rc=$?
  check "full archive: exit 1 (stuck)" test "$rc" -eq 1
  check "full archive: the file stays in work/" test -f "$T/full.pd/work/big.txt"
  check "full archive: the reason is logged" grep -q "No space left" "$T/full.err"
  check "full archive: it was delivered once" test "$(payload_count)" -eq 1
  rm -f "$MNT/filler"
  mount -o remount,size=1m "$MNT"
  timeout 30 "$PD_BIN" run --once -c "$T/full.conf" >/dev/null 2>&1 && rc=0 || rc=$?
  check "once there is room: archived" bash -c "[ $rc -eq 0 ] && [ -f '$MNT/archive/big.txt' ] && [ -f '$MNT/archive/big.txt.receipt.json' ]"
  check "and not sent again" test "$(payload_count)" -eq 1
  check "the archived copy is whole" cmp -s "$MNT/archive/big.txt" <(seq 1 20000)

  # A read-only archive: the same promise.
  rm -rf "$MOCK_REC"/payloads/*
  mkdir -p "$T/ro"
  write_conf "$T/ro.conf" "$T/ro" "archive_dir = $MNT/ro-archive"
  mkdir -p "$MNT/ro-archive"
  mount -o remount,ro "$MNT"
  echo "read-only day" >"$T/ro/r.txt"
  timeout 30 "$PD_BIN" run --once -c "$T/ro.conf" >/dev/null 2>"$T/ro.err" && rc=0 || rc=$?
  check "read-only archive: exit 1, file kept in work/" bash -c "[ $rc -eq 1 ] && [ -f '$T/ro.pd/work/r.txt' ]"
  check "read-only archive: the reason is logged" grep -q "Read-only file system" "$T/ro.err"
  mount -o remount,rw "$MNT"
  timeout 30 "$PD_BIN" run --once -c "$T/ro.conf" >/dev/null 2>&1 || true
  check "writable again: archived, sent once" bash -c "[ -f '$MNT/ro-archive/r.txt' ] && [ \$(ls '$MOCK_REC/payloads' | wc -l) -eq 1 ]"
else
  echo "# skipped the full/read-only file system cases: this machine cannot mount a tmpfs"
fi

# A file patchdrop may not read: left in place with one clear line, sent once readable.
rm -rf "$MOCK_REC"/payloads/*
mkdir -p "$T/perm"
chmod 777 "$T/perm"
chmod 755 "$T"
write_conf "$T/perm.conf" "$T/perm"
sed -i "s|^dir = $T/state$|dir = $T/perm-state|" "$T/perm.conf"
mkdir -p "$T/perm-state"; chown nobody "$T/perm-state" "$T/perm.conf"
echo "secret stuff" >"$T/perm/locked.txt"
chmod 600 "$T/perm/locked.txt"   # owned by root; the daemon runs as nobody
if setpriv --reuid=nobody --regid=nogroup --clear-groups true 2>/dev/null; then
  timeout 30 setpriv --reuid=nobody --regid=nogroup --clear-groups \
    "$PD_BIN" run --once -c "$T/perm.conf" >/dev/null 2>"$T/perm.err" && rc=0 || rc=$?
  check "unreadable: nothing sent" test "$(payload_count)" -eq 0
  check "unreadable: the file is left where it was" test -f "$T/perm/locked.txt"
  check "unreadable: one clear line says so" test "$(grep -c 'event=unreadable.*locked.txt.*Permission denied' "$T/perm.err")" -eq 1
  chmod 644 "$T/perm/locked.txt"
  timeout 30 setpriv --reuid=nobody --regid=nogroup --clear-groups \
    "$PD_BIN" run --once -c "$T/perm.conf" >/dev/null 2>&1 || true
  check "readable again: delivered" test "$(payload_count)" -eq 1
else
  echo "# skipped the unreadable-file case: cannot switch to user nobody here"
fi

# A file cut short while being sent: the rest is not sent; it fails with the reason.
rm -rf "$MOCK_REC"/payloads/*
kill "$MOCK_PID"; wait "$MOCK_PID" 2>/dev/null || true
start_mock --latency 300ms
mkdir -p "$T/cut"
PD_CONCURRENCY=1 write_conf "$T/cut.conf" "$T/cut" "split = lines"
sed -i 's/^\[patchworks\]$/[patchworks]\nmax_body = 30000/' "$T/cut.conf"
seq -f 'line %06g' 1 30000 >"$T/cut/cut.txt"     # 360 KB: more than the reader's buffers
start_daemon "$T/cut.conf"
wait_for 20 test -f "$T/cut.pd/work/cut.txt"
wait_for 20 bash -c "[ \$(ls '$MOCK_REC/payloads' 2>/dev/null | wc -l) -ge 1 ]"
truncate -s 5000 "$T/cut.pd/work/cut.txt"
check "cut short: the file goes to failed" wait_for 30 failed cut.txt "$T/cut"
check "cut short: the reason says it changed" grep -Eqi "chang|short|end" "$T/cut.pd/failed/cut.txt.error.json"
check "cut short: the reason says what happens next, and never promises another read" \
  bash -c "jq -r .reason '$T/cut.pd/failed/cut.txt.error.json' | grep -q 'drop the complete file again' && ! grep -q 'read again' '$T/cut.pd/failed/cut.txt.error.json'"
check "cut short: far fewer chunks than the whole file needed" test "$(payload_count)" -lt 10
kill -TERM "$DAEMON_PID"; wait "$DAEMON_PID" || true
finish
