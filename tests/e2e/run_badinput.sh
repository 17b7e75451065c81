# The bad-input corpus through the daemon: each bad file gets a clear reason in the failed
# folder (or is left alone), nothing crashes, and good files beside them still go out.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
start_mock
D="$T/drop"
mkdir -p "$D"
write_conf "$T/c.conf" "$D"
sed -i 's/^\[patchworks\]$/[patchworks]\nmax_body = 100000/' "$T/c.conf"

printf '' >"$D/empty.txt"
printf '  \n\t \r\n' >"$D/blank.txt"
printf 'caf\xe9 au lait\n' >"$D/latin1.txt"
printf '\xff\xfeh\x00i\x00\n\x00' >"$D/utf16.txt"
printf 'PK\x03\x04\x00\x00binary' >"$D/archive.txt"
printf 'hello, not json\n' >"$D/notjson.json"
printf '<order/>\n' >"$D/xml-named.json"
printf 'just words, no root\n' >"$D/noroot.xml"
printf '<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY x "expanded!">]>\n<r><a>&x;</a></r>\n' >"$D/doctype.xml"
printf '<?xml version="1.0"?>\n<r>\n  <a>A & B</a>\n</r>\n' >"$D/amp.xml"
head -c 20000000 /dev/zero | tr '\0' 'x' >"$D/one-long-line.txt"   # a single line of 20 MB
{ echo '['; for i in $(seq 1 3000); do echo "{\"n\": $i, \"pad\": \"$(printf '%030d' $i)\"},"; done; echo '{"n": 0, "big": "'"$(head -c 150000 /dev/zero | tr '\0' y)"'"}]'; } >"$D/big-record.json"
{ echo 'a,b'; for i in $(seq 1 4000); do echo "$i,\"row $i with padding to make it longer\""; done; echo '9,"unterminated'; for i in $(seq 1 100); do echo "x,y"; done; } >"$D/badquote.csv"
{ echo '['; for i in $(seq 1 5000); do echo "{\"n\": $i, \"pad\": \"$(printf '%030d' $i)\"},"; done; echo '{"n": 0}'; } >"$D/truncated.json"
python3 -c "print('[' * 5000 + ']' * 5000)" >"$D/deep.json"
echo 'weird name' >"$D/with space 'and' \"quotes\" é.txt"
echo 'newline name' >"$D/$(printf 'line\nbreak.txt')"
echo 'good one' >"$D/good.txt"
ln -s /etc/hostname "$D/escape.txt"
mkfifo "$D/pipe.txt"
mkdir "$D/folder.txt"

out=$(timeout 90 "$PD_BIN" run --once -c "$T/c.conf" 2>"$T/err") && rc=0 || rc=$?
check "exit 1: some files failed" test "$rc" -eq 1
check "the daemon did not crash (a summary was printed)" grep -q '^summary:' <<<"$out"
err() { jq -r .reason "$D.pd/failed/$1.error.json" 2>/dev/null; }
expect_failed() { # NAME WORDS...: NAME is in failed/ and its reason contains WORDS
  local name=$1 words=$2
  check "$name: failed" failed "$name" "$D"
  check "$name: reason mentions '$words'" grep -qi -- "$words" <<<"$(err "$name")"
}
expect_failed empty.txt "empty"
expect_failed blank.txt "whitespace"
expect_failed latin1.txt "byte 3"
check "utf16.txt: delivered, its byte-order mark read (encoding = auto)" archived utf16.txt "$D"
check "utf16.txt: arrived as UTF-8" grep -rqx 'hi' "$MOCK_REC/payloads"
expect_failed archive.txt "binary"
expect_failed notjson.json "json"
expect_failed xml-named.json "split"
expect_failed noroot.xml "xml"
expect_failed doctype.xml "DOCTYPE with an internal subset"
expect_failed amp.xml "not well-formed XML (expat: not well-formed (invalid token)) at byte 34 (line 3"
expect_failed one-long-line.txt "max_body"
expect_failed big-record.json "record 3001"
expect_failed badquote.csv "line 4002"
expect_failed truncated.json "end"
check "latin1.txt: the fix is suggested" grep -q "encoding" <<<"$(err latin1.txt)"
# Each line names the file once: not again at the start of its reason, in the report, the log
# or the error file; a file refused here (nothing sent) logs no HTTP status at all.
for name in empty.txt blank.txt latin1.txt archive.txt notjson.json xml-named.json noroot.xml \
  doctype.xml amp.xml \
  one-long-line.txt big-record.json badquote.csv truncated.json; do
  check "$name: the report names it once" bash -c "grep -qF -- '$name: FAILED: ' <<<\"\$1\" && ! grep -qF -- '$name: FAILED: $name' <<<\"\$1\"" _ "$out"
  check "$name: the reason does not repeat the name" bash -c "! grep -qF -- '$name' <<<\"\$1\"" _ "$(err "$name")"
  check "$name: logged rejected without status=0" \
    grep -qE "level=error event=rejected watch=drop file=$name moved=[^ ]+ reason=" "$T/err"
  # Where the reason names a byte, byte_offset is that byte.
  named=$(err "$name" | grep -oE '(^|[^[:alnum:]])byte [0-9]+' | head -1 | grep -oE '[0-9]+$' || true)
  if [ -n "$named" ]; then
    check "$name: byte_offset is the byte the reason names ($named)" \
      jqe ".byte_offset == $named" "$D.pd/failed/$name.error.json"
  fi
done
check "no line logs status=0" bash -c "! grep -q 'status=0\b' '$T/err'"
check "latin1.txt: byte_offset 3, the invalid byte" jqe '.byte_offset == 3' "$D.pd/failed/latin1.txt.error.json"
check "badquote.csv: byte_offset is the opening quote, not the chunk" \
  bash -c "[ \"\$(tail -c +\$((\$(jq .byte_offset '$D.pd/failed/badquote.csv.error.json') + 1)) '$D.pd/failed/badquote.csv' | head -c 1)\" = '\"' ]"
check "doctype.xml, amp.xml: nothing of them was sent" bash -c "! grep -rqE 'ENTITY x|A & B' '$MOCK_REC/payloads'"
check "deep.json: delivered" archived deep.json "$D"
check "odd names are delivered under their own names" archived "with space 'and' \"quotes\" é.txt" "$D"
check "a newline in a name is delivered" archived "$(printf 'line\nbreak.txt')" "$D"
check "good.txt: delivered" archived good.txt "$D"
check "the symlink is left alone, never followed" test -L "$D/escape.txt"
check "the fifo is left alone" test -p "$D/pipe.txt"
check "the folder is left alone" test -d "$D/folder.txt"
check "no bad file reached the server" \
  bash -c "! grep -rlq -e 'not json' -e 'unterminated' -e 'PK' -e 'no root' '$MOCK_REC/payloads'"
check "nothing is left in work/" test -z "$(ls -A "$D.pd/work")"

# A file deleted between detection and claim: nothing sent, nothing logged as an error.
PD_SETTLE=1s write_conf "$T/c2.conf" "$T/drop2"
mkdir -p "$T/drop2"
start_daemon "$T/c2.conf"
echo 'short-lived' >"$T/drop2/gone.txt"
sleep 0.3
rm "$T/drop2/gone.txt"
echo 'stays' >"$T/drop2/stays.txt"
check "the remaining file arrives" wait_for 20 archived stays.txt "$T/drop2"
check "the deleted one was never sent" bash -c "! grep -rq short-lived '$MOCK_REC/payloads'"

# The drop folder deleted and made again while running: new files still arrive.
rm -rf "$T/drop2"
sleep 1.5
mkdir -p "$T/drop2"
echo 'after the folder came back' >"$T/drop2/back.txt"
check "a file in the re-made folder arrives" wait_for 30 archived back.txt "$T/drop2"
check "the daemon is still running" kill -0 "$DAEMON_PID"
kill -TERM "$DAEMON_PID"; wait "$DAEMON_PID" || true

# The failed folder cannot be written: the file stays in work/ and is moved once it can be.
mkdir -p "$T/drop3"
PD_RESCAN=1s write_conf "$T/c3.conf" "$T/drop3" "failed_dir = $T/blocked/failed"
touch "$T/blocked"          # a file where a folder must go: every mkdir under it fails
printf '' >"$T/drop3/empty.txt"
timeout 30 "$PD_BIN" run --once -c "$T/c3.conf" >"$T/out3" 2>"$T/err3" && rc=0 || rc=$?
check "unwritable failed folder: exit 1" test "$rc" -eq 1
check "the file stays in work/" test -f "$T/drop3.pd/work/empty.txt"
check "the reason is logged" grep -q "failed folder" "$T/err3"
rm "$T/blocked"
timeout 30 "$PD_BIN" run --once -c "$T/c3.conf" >/dev/null 2>&1 || true
check "once it can be written, the file is moved there" test -f "$T/blocked/failed/empty.txt"
check "with its reason" grep -q empty "$T/blocked/failed/empty.txt.error.json"
finish
