# `patchdrop retry` and the dry runs, against the emulator with real files: a failed file put
# back ends archived (run --once, then the daemon) with its old error file in failed/history/
# and linked both ways; a name taken in the drop folder is never replaced; --all-failed
# --since; --dry-run moves nothing; run --once --dry-run and send --dry-run send nothing
# (the emulator's record has no flow start) and move nothing, listing each file's verdict.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
start_mock

D="$T/drop"
mkdir -p "$D/sub"
write_conf "$T/c.conf" "$D" "recursive = yes"
F="$D.pd/failed" A="$D.pd/archive"
printf '{"broken": ' >"$D/bad.json"
printf '{"broken": ' >"$D/sub/deep.json"
printf '{"broken": ' >"$D/old.json"
timeout 60 "$PD_BIN" run --once -c "$T/c.conf" >/dev/null 2>"$T/err0" || true
check "bad.json failed" failed bad.json "$D"
check "sub/deep.json failed" failed deep.json "$D"
check "old.json failed" failed old.json "$D"
touch -d '3 days ago' "$F/old.json.error.json"

# The partner fixes the file in the failed folder (as an admin would, before retrying).
echo '{"fixed": 1}' >"$F/bad.json"
echo '{"fixed": 2}' >"$F/deep.json"
cp "$F/bad.json" "$T/bad.want"
cp "$F/deep.json" "$T/deep.want"

# ---- --dry-run moves nothing ------------------------------------------------------------
out=$("$PD_BIN" retry -c "$T/c.conf" --dry-run bad.json "$F/deep.json" 2>&1) && rc=0 || rc=$?
check "retry --dry-run exits 0" test "$rc" -eq 0
check "it says where bad.json would go" grep -q "drop: bad.json: would move to $D/bad.json" <<<"$out"
check "and deep.json back into sub/" grep -q "drop: deep.json: would move to $D/sub/deep.json" <<<"$out"
check "nothing moved" test -f "$F/bad.json" -a -f "$F/deep.json" -a ! -e "$D/bad.json"

# ---- a name not there, and a name taken in the drop folder ----------------------------------
out=$("$PD_BIN" retry -c "$T/c.conf" nosuch.json 2>&1) && rc=0 || rc=$?
check "a file not in the failed folder: exit 1" test "$rc" -eq 1
check "named in the error" grep -q "nosuch.json: no such failed file" <<<"$out"
echo "the partner's new upload" >"$D/bad.json"
out=$("$PD_BIN" retry -c "$T/c.conf" bad.json 2>&1) && rc=0 || rc=$?
check "a name taken in the drop folder: exit 1" test "$rc" -eq 1
check "it says so" grep -q "bad.json: not moved: the drop folder already has a file of that name" <<<"$out"
check "the partner's file is untouched" grep -q "new upload" "$D/bad.json"
check "the failed file stays, with its error file" failed bad.json "$D"
rm "$D/bad.json"
"$PD_BIN" retry -c "$T/c.conf" >/dev/null 2>&1 && rc=0 || rc=$?
check "usage: neither files nor --all-failed is exit 2" test "$rc" -eq 2
"$PD_BIN" retry -c "$T/c.conf" --since 1h bad.json >/dev/null 2>&1 && rc=0 || rc=$?
check "usage: --since without --all-failed is exit 2" test "$rc" -eq 2
out=$("$PD_BIN" retry -c "$T/c.conf" --all-failed --since soon 2>&1) && rc=0 || rc=$?
check "usage: a --since that is no duration or date is exit 2, said" test "$rc" -eq 2
check "and says what it takes" grep -q "give a duration (1h, 2d) or a date" <<<"$out"

# ---- retry, then run --once: delivered, archived, the failure kept and linked ---------------
out=$("$PD_BIN" retry -c "$T/c.conf" bad.json "$F/deep.json" 2>&1) && rc=0 || rc=$?
check "retry exits 0" test "$rc" -eq 0
check "bad.json is back in the drop folder" cmp -s "$D/bad.json" "$T/bad.want"
check "deep.json is back in sub/" cmp -s "$D/sub/deep.json" "$T/deep.want"
check "the failed folder no longer holds them" test ! -e "$F/bad.json" -a ! -e "$F/bad.json.error.json"
check "the error file is in history/" test -f "$F/history/bad.json.error.json"
check "marked as retried" grep -q '"retried_as": "bad.json"' "$F/history/bad.json.error.json"
check "deep.json's history names sub/" grep -q '"retried_as": "sub/deep.json"' "$F/history/deep.json.error.json"
timeout 60 "$PD_BIN" run --once -c "$T/c.conf" >/dev/null 2>"$T/err1" && rc=0 || rc=$?
check "run --once after the retry exits 0" test "$rc" -eq 0
check "bad.json archived" archived bad.json "$D"
check "sub/deep.json archived" archived deep.json "$D"
check "bad.json arrived as fixed" received "$T/bad.want"
check "the receipt supersedes the kept failure" grep -q '"supersedes": "history/bad.json"' "$A/bad.json.receipt.json"
check "the kept failure is superseded" grep -q '"superseded_by": "bad.json"' "$F/history/bad.json.error.json"

# ---- the daemon picks a retried file up as new; a second failure numbers history ------------
start_daemon "$T/c.conf"
printf '{"broken": ' >"$D/twice.json"
check "twice.json fails" wait_for 20 failed twice.json "$D"
"$PD_BIN" retry -c "$T/c.conf" twice.json >/dev/null 2>&1
check "it fails again, a new error" wait_for 20 failed twice.json "$D"
echo '[1]' >"$F/twice.json"
"$PD_BIN" retry -c "$T/c.conf" --watch drop twice.json >/dev/null 2>&1
check "then, fixed, the daemon delivers it" wait_for 20 archived twice.json "$D"
check "both failures kept in history" test -f "$F/history/twice.json.error.json" -a -f "$F/history/twice.1.json.error.json"
linked_twice() { test "$(grep -l '"superseded_by": "twice.json"' "$F"/history/twice*.error.json | wc -l)" -eq 2; }
check "both linked" wait_for 10 linked_twice
kill -TERM "$DAEMON_PID"; wait "$DAEMON_PID" || true

# ---- --all-failed --since ---------------------------------------------------------------------
printf '{"broken": ' >"$D/new.json"
timeout 60 "$PD_BIN" run --once -c "$T/c.conf" >/dev/null 2>&1 || true
out=$("$PD_BIN" retry -c "$T/c.conf" --all-failed --since 1d 2>&1) && rc=0 || rc=$?
check "--all-failed --since 1d exits 0" test "$rc" -eq 0
check "it moved new.json (failed just now)" test -f "$D/new.json"
check "not old.json (failed 3 days ago)" test -f "$F/old.json" -a ! -e "$D/old.json"
check "--since takes a date" "$PD_BIN" retry -c "$T/c.conf" --all-failed --since 2000-01-01 --dry-run
rm -f "$D/new.json"

# ---- run --once --dry-run and send --dry-run: nothing sent, nothing moved --------------------
start_mock
PD_SETTLE=1h write_conf "$T/d.conf" "$D" "recursive = yes" "exclude = *.tmp"
rm -rf "$D"/* "$D.pd/work"/*
printf '[1,2,3]\n' >"$D/ready.json"
touch -d '2 hours ago' "$D/ready.json"
printf 'a,b\n1,2\n3,4\n' >"$D/rows.csv"
touch -d '2 hours ago' "$D/rows.csv"
echo fresh >"$D/fresh.txt"
echo x >"$D/skip.tmp"
ln -s /etc/hostname "$D/link.txt"
mkfifo "$D/pipe.txt"
ln "$D/rows.csv" "$D/rows-link.csv"
printf '[1]' >"$D/upload.json"
touch -d '2 hours ago' "$D/upload.json"
exec 7>>"$D/upload.json" # a writer holds it open: the claim's lease would be refused
(cd "$D" && ls -lR) >"$T/before"
out=$(timeout 60 "$PD_BIN" run --once --dry-run -c "$T/d.conf" 2>&1) && rc=0 || rc=$?
echo "$out" >"$T/dry.out"
check "run --once --dry-run exits 0" test "$rc" -eq 0 || cat "$T/dry.out"
check "ready.json would be taken, json, 1 chunk" grep -q "drop: ready.json: take: 8 bytes, json, 1 chunk" "$T/dry.out"
check "rows.csv is a hard link: skipped" grep -q "rows.csv: skip (hard-link)" "$T/dry.out"
check "fresh.txt is settling" grep -q "fresh.txt: skip (settling)" "$T/dry.out"
check "skip.tmp is excluded, by its glob" grep -q "skip.tmp: skip (excluded): excluded by the glob \*.tmp" "$T/dry.out"
check "link.txt: a symbolic link" grep -q "link.txt: skip (not-a-file): a symbolic link" "$T/dry.out"
check "pipe.txt: a fifo" grep -q "pipe.txt: skip (not-a-file): a fifo" "$T/dry.out"
check "upload.json is open for writing: skipped" grep -q "upload.json: skip (writing): a process holds it open for writing" "$T/dry.out"
check "a summary line" grep -q "^dry run: 1 file(s) would be taken (1 chunk(s), 8 bytes), 7 skipped, 0 would fail" "$T/dry.out"
(cd "$D" && ls -lR) >"$T/after"
check "the drop folder is unchanged" cmp -s "$T/before" "$T/after"
check "work/ is empty" test -z "$(ls -A "$D.pd/work")"
check "the emulator saw no flow start" test "$(payload_count)" -eq 0
exec 7>&-
rm "$D/rows-link.csv"
seq 1 3000 | sed 's/.*/{"n": &}/' | paste -sd, | sed 's/^/[/; s/$/]/' >"$T/big.json"
PD_MAX_BODY=4096 write_conf "$T/s.conf" "$D"
out=$(timeout 60 "$PD_BIN" send --dry-run -c "$T/s.conf" --watch drop "$T/big.json" "$T/nosuch" 2>&1) && rc=0 || rc=$?
check "send --dry-run: a missing file is exit 1" test "$rc" -eq 1
check "big.json is cut into chunks, with its records" grep -Eq "big.json: take: [0-9]+ bytes, json, [0-9]+ chunk\(s\) of [0-9]+ request bytes, 3000 record" <<<"$out"
check "the missing file is named" grep -q "nosuch: would fail" <<<"$out" || echo "$out"
check "still no flow start at the emulator" test "$(payload_count)" -eq 0
finish
