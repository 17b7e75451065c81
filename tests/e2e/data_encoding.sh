# Charsets end to end (issue 13): a Latin-1 XML file split into chunks arrives as UTF-8 XML whose
# declaration says so, with encoding = ISO-8859-1 and with the default (auto, which reads the
# declaration); UTF-16 files are read by their byte-order mark; an unknown declared charset fails
# the file, naming the byte and the fix. Every payload is checked with a real XML parser
# (python3's xml.etree, which honours the declaration: a wrong one turns "é" into "Ã©").
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"

# latin1_orders FILE N: an order file in ISO-8859-1 with N records, "é" in each and in the
# comment and root attribute every chunk repeats.
latin1_orders() {
  python3 - "$1" "$2" "${3:-ISO-8859-1}" <<'EOF'
import sys
path, n, declared = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = '<?xml version="1.0" encoding="%s"?>\n<!-- café -->\n<orders note="été">' % declared
for i in range(n):
    s += '\n  <order id="%d"><name>Renée %d</name><city>Génes</city></order>' % (i, i)
s += '\n</orders>\n'
open(path, 'wb').write(s.encode('latin-1'))
EOF
}

# payloads_ok N_IDS: every payload holding <orders is UTF-8 XML that parses, says UTF-8 (or
# nothing) in its declaration, has "é" right in the repeated text and in every record, and the
# records 0..N_IDS-1 arrived exactly once across all of them. Prints what is wrong.
payloads_ok() {
  python3 - "$MOCK_REC/payloads" "$1" <<'EOF'
import os, re, sys
import xml.etree.ElementTree as ET
d, want = sys.argv[1], int(sys.argv[2])
ids, bad = [], []
for name in sorted(os.listdir(d)):
    raw = open(os.path.join(d, name), 'rb').read()
    if b'<orders' not in raw:
        continue
    try:
        raw.decode('utf-8')
    except UnicodeDecodeError as e:
        bad.append('%s: not UTF-8: %s' % (name, e)); continue
    m = re.match(rb'<\?xml[^>]*?encoding\s*=\s*["\']([^"\']*)', raw)
    if m and m.group(1).upper() != b'UTF-8':
        bad.append('%s: the declaration says %s' % (name, m.group(1))); continue
    root = ET.fromstring(raw)  # bytes: the parser decodes by the declaration
    if root.get('note') != 'été':
        bad.append('%s: root note %r' % (name, root.get('note'))); continue
    for o in root.findall('order'):
        if o.findtext('name') != 'Renée %s' % o.get('id') or o.findtext('city') != 'Génes':
            bad.append('%s: record %s reads %r %r' % (name, o.get('id'), o.findtext('name'), o.findtext('city')))
        ids.append(int(o.get('id')))
if sorted(ids) != list(range(want)):
    bad.append('records: %d arrived, want 0..%d once each' % (len(ids), want - 1))
print('\n'.join(bad))
sys.exit(1 if bad else 0)
EOF
}
chunks_of() { jq '.chunks | length' "$(own_of "$2")/archive/$1.receipt.json" 2>/dev/null || echo 0; }
payload_sum() { find "$MOCK_REC/payloads" -type f | sort | xargs -r cat | sha256sum; }
err() { jq -r .reason "$(own_of "$2")/failed/$1.error.json" 2>/dev/null; }

# 1. The default, encoding = auto: the declaration names the charset.
start_mock
D="$T/auto"
mkdir -p "$D"
write_conf "$T/auto.conf" "$D"
sed -i 's/^\[patchworks\]$/[patchworks]\nmax_body = 2000/' "$T/auto.conf"
check "the default is encoding = auto" \
  grep -Eq '^encoding = auto' <<<"$("$PD_BIN" check-config -c "$T/auto.conf" 2>&1)"
latin1_orders "$D/orders.xml" 200
out=$(timeout 60 "$PD_BIN" run --once -c "$T/auto.conf" 2>"$T/err") && rc=0 || rc=$?
check "auto: the Latin-1 XML file is delivered (exit 0)" test "$rc" -eq 0
check "auto: it is archived" archived orders.xml "$D"
check "auto: it went in several chunks" test "$(chunks_of orders.xml "$D")" -gt 3
check "auto: every payload parses as UTF-8 XML holding é, every record once" payloads_ok 200
auto_payloads=$(payload_sum)

# 2. encoding = ISO-8859-1 configured: the same payloads.
start_mock
D="$T/conf"
mkdir -p "$D"
write_conf "$T/conf.conf" "$D" "encoding = ISO-8859-1"
sed -i 's/^\[patchworks\]$/[patchworks]\nmax_body = 2000/' "$T/conf.conf"
latin1_orders "$D/orders.xml" 200
out=$(timeout 60 "$PD_BIN" run --once -c "$T/conf.conf" 2>"$T/err") && rc=0 || rc=$?
check "ISO-8859-1: delivered (exit 0)" test "$rc" -eq 0
check "ISO-8859-1: every payload parses as UTF-8 XML holding é, every record once" payloads_ok 200
check "ISO-8859-1: the same payloads as auto" test "$(payload_sum)" = "$auto_payloads"

# 3. UTF-16 by its byte-order mark, XML or not; a file that goes whole; an unknown charset.
start_mock
D="$T/wide"
mkdir -p "$D"
write_conf "$T/wide.conf" "$D"
sed -i 's/^\[patchworks\]$/[patchworks]\nmax_body = 2000/' "$T/wide.conf"
latin1_orders "$T/u8.xml" 100 UTF-16
{ printf '\xff\xfe'; iconv -f ISO-8859-1 -t UTF-16LE "$T/u8.xml"; } >"$D/orders16.xml"
{ printf '\xfe\xff'; printf 'caf\xc3\xa9 cr\xc3\xa8me\n' | iconv -f UTF-8 -t UTF-16BE; } >"$D/notes.txt"
printf '<?xml version="1.0" encoding="X-NO-SUCH"?>\n<orders/>\n' >"$D/unknown.xml"
out=$(timeout 60 "$PD_BIN" run --once -c "$T/wide.conf" 2>"$T/err") && rc=0 || rc=$?
check "wide: exit 1 (the unknown charset failed)" test "$rc" -eq 1
check "UTF-16 XML: archived" archived orders16.xml "$D"
check "UTF-16 XML: every payload parses as UTF-8 XML holding é, every record once" payloads_ok 100
check "UTF-16 text: arrived as UTF-8" grep -rqx 'café crème' "$MOCK_REC/payloads"
check "unknown charset: failed" failed unknown.xml "$D"
check "unknown charset: the reason names it, the byte and the fix" \
  grep -q 'X-NO-SUCH.*at byte 30.*set encoding =' <<<"$(err unknown.xml "$D")"
check "unknown charset: nothing of it was sent" bash -c "! grep -rq X-NO-SUCH '$MOCK_REC/payloads'"

# 4. Batching with the default: UTF-8 files still share a request; a file that had to be
# transcoded or rewritten goes alone, as UTF-8.
start_mock
D="$T/batch"
mkdir -p "$D"
write_conf "$T/batch.conf" "$D" "batch = 10" "batch_window = 300ms"
printf 'first plain line\n' >"$D/a1.txt"
printf 'second plain line\n' >"$D/a2.txt"
{ printf '\xff\xfe'; printf 'wide \xc3\xa9\n' | iconv -f UTF-8 -t UTF-16LE; } >"$D/a3.txt"
latin1_orders "$D/small.xml" 3
out=$(timeout 60 "$PD_BIN" run --once -c "$T/batch.conf" 2>"$T/err") && rc=0 || rc=$?
check "batch: every file delivered (exit 0)" test "$rc" -eq 0
check "batch: the two UTF-8 text files went in one request" \
  test "$(grep -l 'first plain line' "$MOCK_REC"/payloads/* | xargs grep -l 'second plain line' | wc -l)" -eq 1
check "batch: the UTF-16 file arrived as UTF-8, alone" grep -rqx 'wide é' "$MOCK_REC/payloads"
check "batch: the Latin-1 XML file parses as UTF-8 XML holding é" payloads_ok 3
finish
