# XML files are checked well formed (by expat) before anything of them is sent: a bad small
# file never rides in a batch with good ones; a big file is cut into chunks that each parse
# with a namespace-aware parser (prefixes declared on the root are repeated), a UTF-16 file
# arrives as UTF-8 with its declaration saying so, and text after the last record arrives once,
# with the last record, never repeated in every chunk.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"

# parses FILE...: each file is one well-formed document for Python's expat, namespaces on.
parses() {
  python3 - "$@" <<'EOF'
import sys, xml.parsers.expat as E
for f in sys.argv[1:]:
    p = E.ParserCreate(namespace_separator=' ')
    p.Parse(open(f, 'rb').read(), True)
EOF
}

start_mock
D="$T/drop"
mkdir -p "$D"
mk() { printf '%b' "$3" >"$D/$1"; touch -d "2020-01-01 00:00:$2" "$D/$1"; }
mk good1.xml 01 '<?xml version="1.0"?>\n<orders xmlns="urn:x">\n  <order id="1"/>\n</orders>\n'
mk bad-amp.xml 02 '<?xml version="1.0"?>\n<orders xmlns="urn:x">\n  <order id="2">A & B</order>\n</orders>\n'
mk good2.xml 03 '<?xml version="1.0"?>\n<orders xmlns="urn:x">\n  <order id="3"/>\n</orders>\n'
mk bad-nbsp.xml 04 '<?xml version="1.0"?>\n<orders xmlns="urn:x">\n  <order id="4">a&nbsp;b</order>\n</orders>\n'
mk bad-dup.xml 05 '<?xml version="1.0"?>\n<orders xmlns="urn:x">\n  <order id="5" id="6"/>\n</orders>\n'
write_conf "$T/c.conf" "$D" "batch = 10" "batch_window = 300ms"
out=$(timeout 60 "$PD_BIN" run --once -c "$T/c.conf" 2>"$T/err") && rc=0 || rc=$?
check "exit 1: some files failed" test "$rc" -eq 1
reason() { jq -r .reason "$D.pd/failed/$1.error.json" 2>/dev/null; }
check "bad-amp.xml: failed with expat's words, byte and line" \
  grep -qF "not well-formed XML (expat: not well-formed (invalid token)) at byte 64 (line 3, column 20)" \
  <<<"$(reason bad-amp.xml)"
check "bad-nbsp.xml: failed, undefined entity" grep -qF "(expat: undefined entity)" <<<"$(reason bad-nbsp.xml)"
check "bad-dup.xml: failed, duplicate attribute" grep -qF "(expat: duplicate attribute)" <<<"$(reason bad-dup.xml)"
for f in bad-amp.xml bad-nbsp.xml bad-dup.xml; do
  check "$f: in the failed folder" failed "$f" "$D"
done
check "good1.xml and good2.xml: delivered" bash -c "$(declare -f archived own_of); archived good1.xml '$D' && archived good2.xml '$D'"
check "one request: the two good files under one root" test "$(payload_count)" -eq 1
p=$(ls "$MOCK_REC"/payloads/* | head -1)
check "that request holds both good records and none of the bad ones" \
  test "$(grep -c '<order id=' "$p")" -eq 2 -a "$(grep -c 'A & B\|nbsp\|id="5"' "$p")" -eq 0
check "the batch parses" parses "$p"

# Big files, cut: namespaces, UTF-16, text after the last record.
kill "$MOCK_PID"
start_mock
rm -rf "$D" "$D.pd" "$T/state"
mkdir -p "$D"
python3 - "$D" <<'EOF'
import sys
d = sys.argv[1]
recs = ''.join('  <p:order q:n="%d"><p:sku>A-%d</p:sku><note>caf\u00e9 %d</note></p:order>\n' % (i, i, i)
               for i in range(3000))
ns = '<?xml version="1.0"?>\n<p:orders xmlns:p="urn:p" xmlns:q="urn:q" xmlns="urn:d">\n' + recs + '</p:orders>\n'
open(d + '/ns.xml', 'w', encoding='utf-8').write(ns)
u16 = ('<?xml version="1.0" encoding="UTF-16"?>\n<p:orders xmlns:p="urn:p" xmlns:q="urn:q" xmlns="urn:d">\n'
       + recs + '</p:orders>\n')
open(d + '/u16.xml', 'wb').write(u16.encode('utf-16'))  # with a byte-order mark
open(d + '/tail.xml', 'w', encoding='utf-8').write(ns.replace('</p:orders>', 'closing words</p:orders>'))
EOF
PD_MAX_BODY=60000 write_conf "$T/c.conf" "$D"
out=$(timeout 120 "$PD_BIN" run --once -c "$T/c.conf" 2>"$T/err") && rc=0 || rc=$?
check "exit 0: every file delivered" test "$rc" -eq 0
check "ns.xml: delivered in chunks" bash -c "$(declare -f archived own_of); archived ns.xml '$D'"
check "u16.xml: delivered in chunks" bash -c "$(declare -f archived own_of); archived u16.xml '$D'"
check "tail.xml: delivered in chunks" bash -c "$(declare -f archived own_of); archived tail.xml '$D'"
check "4 requests or more each" test "$(payload_count)" -ge 12
check "every chunk parses with namespaces on" parses "$MOCK_REC"/payloads/*
check "every chunk's root declares the prefixes" \
  test "$(grep -L '<p:orders xmlns:p="urn:p" xmlns:q="urn:q" xmlns="urn:d">' "$MOCK_REC"/payloads/* | wc -l)" -eq 0
check "every order arrived exactly once per file (three times in all)" \
  test "$(cat "$MOCK_REC"/payloads/* | grep -o 'q:n="[0-9]*"' | sort | uniq -c | awk '$1 != 3' | wc -l)" -eq 0 -a \
       "$(cat "$MOCK_REC"/payloads/* | grep -c '<p:order ')" -eq 9000
check "the UTF-16 file's chunks say UTF-8 and hold the é" \
  test "$(grep -l 'encoding="UTF-8"' "$MOCK_REC"/payloads/* | wc -l)" -ge 4 -a \
       "$(grep -l 'encoding="UTF-16"' "$MOCK_REC"/payloads/* | wc -l)" -eq 0 -a \
       "$(grep -l 'café 2999' "$MOCK_REC"/payloads/* | wc -l)" -eq 3
check "tail.xml: the text after the last record arrived once, after the last order" \
  test "$(grep -l 'closing words' "$MOCK_REC"/payloads/* | wc -l)" -eq 1 -a \
       "$(grep -c 'q:n="2999".*\|closing words</p:orders>' "$(grep -l 'closing words' "$MOCK_REC"/payloads/*)")" -eq 2
finish
