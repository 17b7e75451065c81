# Names a partner may legally give a file, and what patchdrop does with them: names that look
# like temp files, names of up to 255 bytes, names that are not UTF-8, and two names of one
# file (hard links). Every one is delivered and archived, or refused with a reason; every file
# patchdrop writes parses as JSON; nothing is deleted or stranded.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
start_mock
mkdir -p "$T/drop"
write_conf "$T/c.conf" "$T/drop"
A="$T/drop.pd/archive"
once() { timeout 60 "$PD_BIN" run --once -c "$T/c.conf" >"$T/once.out" 2>>"$T/once.err"; }

# A partner's file named like patchdrop's old temp files, with an old mtime: archived, and
# still there after later starts (the sweeper only ever touches patchdrop's own folders).
echo "temp-looking" >"$T/drop/export.tmp.x7k2p9"
touch -d '2 days ago' "$T/drop/export.tmp.x7k2p9"
once && rc=0 || rc=$?
check "a temp-looking name is delivered (exit 0)" test "$rc" -eq 0
check "and archived" archived export.tmp.x7k2p9 "$T/drop"
once || true
once || true
check "later starts never sweep it from the archive" test -f "$A/export.tmp.x7k2p9"

# A partner's file named exactly like patchdrop's own temp files (hidden names are sent when
# the watch's exclude allows them): delivered and archived, never swept or skipped.
write_conf "$T/c2.conf" "$T/drop" "include = * .*" "exclude = *.part"
echo "looks like ours" >"$T/drop/.pdtmp-abcdef"
touch -d '2 days ago' "$T/drop/.pdtmp-abcdef"
timeout 60 "$PD_BIN" run --once -c "$T/c2.conf" >/dev/null 2>>"$T/once.err" && rc=0 || rc=$?
check "a name like patchdrop's temp files is delivered (exit 0)" test "$rc" -eq 0
check "and archived under its own name" archived .pdtmp-abcdef "$T/drop"

# A crash left orders.tmp.csv in work/: resumed, not stranded.
printf 'id,qty\n1,2\n' >"$T/drop.pd/work/orders.tmp.csv"
once && rc=0 || rc=$?
check "a temp-looking name left in work/ is resumed (exit 0)" test "$rc" -eq 0
check "and archived" archived orders.tmp.csv "$T/drop"
check "work/ is empty" test -z "$(ls -A "$T/drop.pd/work")"

# Legal long names: 232 to 255 bytes.
for n in 232 240 247 250 255; do
  name=$(printf 'n%03d-%*s' "$n" $((n - 9)) '' | tr ' ' 'x').csv
  printf 'a,b\n%s,1\n' "$n" >"$T/drop/$name"
done
once && rc=0 || rc=$?
check "names of 232..255 bytes: run --once exits 0" test "$rc" -eq 0
check "all five delivered" test "$(grep -c ',1$' <(cat "$MOCK_REC"/payloads/* 2>/dev/null))" -ge 5
for n in 232 240 247 250 255; do
  check "the $n-byte name is archived with a receipt naming it" \
    bash -c "for r in '$A'/n$n-*.receipt.json; do jq -e '.file | startswith(\"n$n-\") and length == $n' \"\$r\" >/dev/null && exit 0; done; exit 1"
done
check "no file is left in the drop folder or work/" \
  bash -c "[ -z \"\$(ls -A '$T/drop')\" ] && [ -z \"\$(ls -A '$T/drop.pd/work')\" ]"

# A name from a Latin-1 system: every file patchdrop writes is valid UTF-8 JSON.
printf 'x\n' >"$T/drop/$(printf 'caf\xe9.txt')"
printf '' >"$T/drop/$(printf 'vide\xe9.txt')"
once || true
strict_json() { python3 -c 'import json,sys; [json.load(open(f, encoding="utf-8", errors="strict")) for f in sys.argv[1:]]' "$@"; }
check "the receipt of a non-UTF-8 name is valid UTF-8 JSON" strict_json "$A"/caf*.receipt.json
check "with the exact bytes in file_hex" bash -c "jq -r .file_hex '$A'/caf*.receipt.json | grep -qx 636166e92e747874"
check "the error file too" strict_json "$T/drop.pd/failed"/vide*.error.json

# Two names of one file. By default: left untouched, said once.
echo "linked" >"$T/drop/one.txt"
ln "$T/drop/one.txt" "$T/drop/two.txt"
before=$(payload_count)
once && rc=0 || rc=$?
check "hard links: --once exits 1 (not delivered)" test "$rc" -eq 1
check "nothing was sent" test "$(payload_count)" -eq "$before"
check "both names are left untouched" bash -c "[ -f '$T/drop/one.txt' ] && [ -f '$T/drop/two.txt' ]"
check "the log says why" grep -q "event=refused.*one.txt.*hard links" "$T/once.err"
# With allow_hard_links = yes: each name is a file of its own, both delivered.
write_conf "$T/c.conf" "$T/drop" "allow_hard_links = yes"
once && rc=0 || rc=$?
check "allowed: --once exits 0" test "$rc" -eq 0
check "both names archived" bash -c "[ -f '$A/one.txt' ] && [ -f '$A/two.txt' ]"
check "both sent" test "$(received_count "$A/one.txt")" -eq 2
# A file below a path longer than PATH_MAX in a recursive watch cannot be reached: said once per
# scan and counted, never silently skipped.
mkdir -p "$T/deep"
python3 - "$T/deep" <<'PY'
import os, sys
os.chdir(sys.argv[1])
for i in range(22):
    d = ("d%02d" % i) + "x" * 200
    os.mkdir(d)
    os.chdir(d)
open("far.txt", "w").write("far away\n")
PY
echo "near" >"$T/deep/near.txt"
write_conf "$T/deep.conf" "$T/deep" "recursive = yes"
timeout 60 "$PD_BIN" run --once -c "$T/deep.conf" >"$T/deep.out" 2>"$T/deep.err" && rc=0 || rc=$?
check "a file out of reach: --once exits 1" test "$rc" -eq 1
check "the log names the folder and why" grep -q "event=skipped watch=drop" "$T/deep.err"
check "the summary says so" grep -q "out of reach" "$T/deep.out"
check "the near file is delivered" archived near.txt "$T/deep"
# Things that are not files in work/ (a person put them there): never opened or retried, one
# line each, and --once still ends.
mkfifo "$T/drop.pd/work/a-fifo"
ln -s /etc/hostname "$T/drop.pd/work/a-link"
: >"$T/once.err"
timeout 30 "$PD_BIN" run --once -c "$T/c.conf" >"$T/once.out" 2>>"$T/once.err" && rc=0 || rc=$?
check "odd items in work/: --once ends (exit $rc, not a timeout)" test "$rc" -ne 124
check "one line for the fifo" test "$(grep -c 'event=ignored.*a-fifo.*work folder' "$T/once.err")" -eq 1
check "one line for the link" test "$(grep -c 'event=ignored.*a-link.*work folder' "$T/once.err")" -eq 1
check "the link's target is untouched" test -s /etc/hostname
rm -f "$T/drop.pd/work/a-fifo" "$T/drop.pd/work/a-link"
# A file in work/ with another name (an old layout's work/, or a link made there): never read
# or sent; only the name in work/ goes, the file stays under its other name.
echo "secret elsewhere" >"$T/elsewhere-secret.txt"
ln "$T/elsewhere-secret.txt" "$T/drop.pd/work/linked-in-work.txt"
write_conf "$T/c4.conf" "$T/drop" # allow_hard_links = no again
before=$(payload_count)
: >"$T/once.err"
timeout 30 "$PD_BIN" run --once -c "$T/c4.conf" >/dev/null 2>>"$T/once.err" || true
check "a hard-linked file in work/ is not sent" test "$(payload_count)" -eq "$before"
check "its name in work/ is removed, one line says why" \
  bash -c "[ ! -e '$T/drop.pd/work/linked-in-work.txt' ] && grep -q 'event=refused.*linked-in-work.txt.*hard links' '$T/once.err'"
check "the file under its other name is untouched" grep -qx "secret elsewhere" "$T/elsewhere-secret.txt"
finish
