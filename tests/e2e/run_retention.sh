# Retention (archive_keep, receipt_keep, archive_max_size, failed_keep) enforced at the end of
# `run --once` and by the daemon at start, each removal logged; and a file that failed, then
# was delivered under the same name, linked both ways (receipt "supersedes", error file
# "superseded_by").
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
start_mock

# ---- retention at the end of run --once ------------------------------------------------------
D="$T/drop"
mkdir -p "$D"
write_conf "$T/deliver.conf" "$D" # the defaults (30d, no size cap): nothing delivered now goes
for f in a b c d e; do head -c 1000 /dev/zero | tr '\0' "$f" >"$D/$f.txt"; done
printf '{"broken": ' >"$D/f.json"
printf '{"broken": ' >"$D/g.json"
timeout 60 "$PD_BIN" run --once -c "$T/deliver.conf" >"$T/out1" 2>"$T/err1" || true
A="$D.pd/archive" F="$D.pd/failed"
for f in a b c d e; do check "$f.txt delivered" archived "$f.txt" "$D"; done
check "f.json failed" failed f.json "$D"
check "g.json failed" failed g.json "$D"
check "the defaults removed nothing just delivered" bash -c "! grep -q event=retention_removed '$T/err1'"

# Age comes from the receipt (written when the file was archived), never from the file's own
# mtime, which is the partner's: a.txt and b.txt were archived days ago, c.txt half a day ago.
touch -d '3 days ago' "$A/a.txt.receipt.json"
touch -d '2 days ago' "$A/b.txt.receipt.json"
touch -d '12 hours ago' "$A/c.txt.receipt.json"
touch -d '6 hours ago' "$A/d.txt.receipt.json"
touch -d '400 days ago' "$A/d.txt" "$A/e.txt" # partners' old mtimes: no reason to remove
# A receipt whose file went earlier, and a symlink dressed up as an old archived file.
cp "$A/e.txt.receipt.json" "$A/gone.txt.receipt.json"
touch -d '3 days ago' "$A/gone.txt.receipt.json"
ln -s /etc/hostname "$A/link.txt"
touch -h -d '300 days ago' "$A/link.txt"
touch -d '100 days ago' "$F/f.json.error.json" # failed_keep = 90d (the default)

# archive_keep = 1d removes a and b with their receipts; then c, d, e hold 3000 bytes over a
# 2500-byte cap: the oldest, c, goes; its receipt stays (receipt_keep: the same 1d, and it is
# 12 hours old).
write_conf "$T/keep.conf" "$D" "archive_keep = 1d" "archive_max_size = 2500"
out=$(timeout 60 "$PD_BIN" run --once -c "$T/keep.conf" 2>"$T/err2") && rc=0 || rc=$?
check "run --once with nothing to deliver exits 0" test "$rc" -eq 0
want_archive=$(printf '%s\n' c.txt.receipt.json d.txt d.txt.receipt.json e.txt e.txt.receipt.json \
  link.txt | sort)
check "exactly these stay in the archive" test "$(ls -A "$A" | sort)" = "$want_archive"
want_failed=$(printf '%s\n' g.json g.json.error.json | sort)
check "exactly these stay in the failed folder" test "$(ls -A "$F" | sort)" = "$want_failed"
check "the symlink was not followed" test -s /etc/hostname
removed() { # NAME FOLDER REASON: one log line for the removal of NAME
  test "$(grep -c "event=retention_removed watch=drop folder=$2 file=$1 age_s=[0-9]* bytes=[0-9]* reason=$3\$" "$T/err2")" -eq 1
}
check "a.txt: logged, archive_keep" removed a.txt archive archive_keep
check "a.txt's receipt: logged, archive_keep" removed a.txt.receipt.json archive archive_keep
check "b.txt: logged, archive_keep" removed b.txt archive archive_keep
check "b.txt's receipt: logged, archive_keep" removed b.txt.receipt.json archive archive_keep
check "c.txt: logged, archive_max_size" removed c.txt archive archive_max_size
check "the lone receipt: logged, receipt_keep" removed gone.txt.receipt.json archive receipt_keep
check "f.json: logged, failed_keep" removed f.json failed failed_keep
check "f.json's error: logged, failed_keep" removed f.json.error.json failed failed_keep
check "a.txt's age is its receipt's (3 days)" grep -q "file=a.txt age_s=2592[0-9][0-9] bytes=1000 " "$T/err2"
check "exactly eight removals" test "$(grep -c event=retention_removed "$T/err2")" -eq 8
check "one summary line" \
  test "$(grep -c 'event=retention_swept watch=drop removed=8 removed_bytes=[0-9]* archive_files=2 archive_bytes=2000 failed_files=1 ignored=1 errors=0 more=no' "$T/err2")" -eq 1
# Again: nothing left to do.
timeout 60 "$PD_BIN" run --once -c "$T/keep.conf" >/dev/null 2>"$T/err3" || true
check "a second run removes nothing" bash -c "! grep -q event=retention_removed '$T/err3'"
check "and the archive is as it was" test "$(ls -A "$A" | sort)" = "$want_archive"

# ---- the daemon sweeps at start ----------------------------------------------------------------
touch -d '5 days ago' "$A/d.txt.receipt.json"
start_daemon "$T/keep.conf"
check "the daemon removes an expired file at start" wait_for 20 test ! -e "$A/d.txt"
check "and logs it" wait_for 5 grep -q "event=retention_removed watch=drop folder=archive file=d.txt " "$T/daemon.err"
check "with its receipt" test ! -e "$A/d.txt.receipt.json"
check "e.txt stays" test -f "$A/e.txt"
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" && rc=0 || rc=$?
check "the daemon stops cleanly" test "$rc" -eq 0

# ---- supersede: failed twice, then delivered under the same name -----------------------------
S="$T/again"
mkdir -p "$S"
write_conf "$T/again.conf" "$S"
printf '[1, 2' >"$S/broken.json"
timeout 60 "$PD_BIN" run --once -c "$T/again.conf" >/dev/null 2>&1 || true
printf '[1, 2, ' >"$S/broken.json"
timeout 60 "$PD_BIN" run --once -c "$T/again.conf" >/dev/null 2>&1 || true
check "the first failure is in the failed folder" failed broken.json "$S"
check "the second one beside it" failed broken.1.json "$S"
touch -d '2 days ago' "$S.pd/failed/broken.json.error.json"
t0=$(stat -c %Y "$S.pd/failed/broken.json.error.json")
t1=$(stat -c %Y "$S.pd/failed/broken.1.json.error.json")
printf '[1, 2, 3]' >"$S/broken.json"
printf '[9' >"$S/other.json" # fails too: not the same name, never marked
timeout 60 "$PD_BIN" run --once -c "$T/again.conf" >/dev/null 2>"$T/err4" || true
R="$S.pd/archive/broken.json.receipt.json"
check "the good copy is delivered" archived broken.json "$S"
check "its receipt says which failed copy it supersedes (the latest)" \
  jqe '.supersedes == "broken.1.json" and .result == "delivered" and .file == "broken.json"' "$R"
for e in broken.json broken.1.json; do
  E="$S.pd/failed/$e.error.json"
  check "$e's error file is marked superseded by the archived file" \
    jqe '.superseded_by == "broken.json" and (.superseded_at | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T")) and .result == "failed" and (.reason | length > 0)' "$E"
  check "$e stays in the failed folder" test -f "$S.pd/failed/$e"
done
check "the marked error file keeps its time (retention counts from the failure)" \
  test "$(stat -c %Y "$S.pd/failed/broken.json.error.json")" = "$t0"
check "the other marked error file too" test "$(stat -c %Y "$S.pd/failed/broken.1.json.error.json")" = "$t1"
check "another file's failure is not marked" jqe 'has("superseded_by") | not' "$S.pd/failed/other.json.error.json"
check "each marking logged" test "$(grep -c 'event=superseded watch=drop failed=broken[.1]*json archived=broken.json' "$T/err4")" -eq 2
check "the files are still valid JSON" jqe '.' "$R"
finish
