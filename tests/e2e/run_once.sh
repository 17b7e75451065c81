# `patchdrop run --once` over the sample files: everything arrives intact and is archived.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
PD_PW="pw-Secret-9f3"
start_mock --password "$PD_PW"
mkdir -p "$T/drop"
cp "$PD_SRC"/samples/* "$T/drop/"
printf '' >"$T/drop/empty.txt"
mkfifo "$T/drop/a-fifo"
ln -s /etc/passwd "$T/drop/link-out.txt"
mkdir "$T/drop/a-folder.xml"
echo "in progress" >"$T/drop/upload.xml.part"
PD_DEFAULT_WORKDIR=1 write_conf "$T/c.conf" "$T/drop" # the default: <state dir>/watches/<name>

out=$(timeout 60 "$PD_BIN" run --once -c "$T/c.conf" 2>"$T/err") && rc=0 || rc=$?
check "exit 1: one file (the empty one) failed" test "$rc" -eq 1
# Every sample (JSON, CSV, XML, text, X12, EDIFACT) goes whole: each is small.
samples=$(cd "$PD_SRC/samples" && ls)
n=$(wc -w <<<"$samples")
for f in $samples; do
  check "$f arrived byte for byte" received "$PD_SRC/samples/$f"
  check "$f is archived with a receipt" archived "$f" "$T/drop"
  check "$f left the drop folder" test ! -e "$T/drop/$f"
done
check "each sample was sent exactly once" test "$(payload_count)" -eq "$n"
check "the empty file went to failed with its reason" failed empty.txt "$T/drop"
check "the reason says it is empty" grep -q "empty" "$T/state/watches/drop/failed/empty.txt.error.json"
check "the fifo was never read and stays" test -p "$T/drop/a-fifo"
check "the symlink was never followed and stays" test -L "$T/drop/link-out.txt"
check "the folder stays" test -d "$T/drop/a-folder.xml"
check "the .part upload is left alone" test -f "$T/drop/upload.xml.part"
check "the symlink got one clear log line" test "$(grep -c 'link-out.txt.*symbolic link' "$T/err")" -eq 1
check "the fifo got one clear log line" test "$(grep -c 'a-fifo.*fifo' "$T/err")" -eq 1
check "work/ is empty" test -z "$(ls -A "$T/state/watches/drop/work")"
check "no delivery record is left" test -z "$(ls -A "$T/state/watches/drop/state")"
check "the summary counts" grep -q "summary: $n delivered, 0 duplicate(s), 1 failed" <<<"$out"
check "each flow-run id is printed" test "$(grep -c 'flow run [0-9]' <<<"$out")" -eq "$n"

r="$T/state/watches/drop/archive/order-1001.xml.receipt.json"
check "the receipt names the file, flow and version" \
  jqe '.file == "order-1001.xml" and .flow_id == "42" and .version_id == "7" and .watch == "drop"' "$r"
check "the receipt's SHA-256 is the file's" \
  test "$(jq -r .sha256 "$r")" = "$(sha256sum "$PD_SRC/samples/order-1001.xml" | cut -d' ' -f1)"
id=$(jq -r '.chunks[0].flow_run_id' "$r")
check "the receipt's flow-run id is the emulator's" \
  grep -q "\"flow_run_id\":$id[,}]" "$MOCK_REC/requests.jsonl"
check "the receipt has the chunk's range and status" \
  jqe ".chunks[0].start == 0 and .chunks[0].end == $(stat -c %s "$PD_SRC/samples/order-1001.xml") and .chunks[0].status == 200" "$r"
check "the flow and version are in the request path" grep -q '"/api/v1/flows/42/start/7"' "$MOCK_REC/requests.jsonl"
check "no secret in any output or file" bash -c "! grep -rq '$PD_PW' '$T/err' '$T/drop' '$T/state' && ! grep -q '$PD_PW' <<<\"\$1\"" _ "$out"
tok=$(jq -r '.token // empty' "$T/state/token" 2>/dev/null || true)
if [ -n "$tok" ]; then
  check "the token is in no output" bash -c "! grep -rq '$tok' '$T/err' '$T/drop' && ! grep -q '$tok' <<<\"\$1\"" _ "$out"
fi

# A second run finds nothing to do and sends nothing.
out=$(timeout 30 "$PD_BIN" run --once -c "$T/c.conf" 2>"$T/err2") && rc=0 || rc=$?
check "a second run exits 0" test "$rc" -eq 0
check "and sends nothing" test "$(payload_count)" -eq "$n"
# A file with a clashing name is archived beside the first, never over it.
cp "$PD_SRC/samples/customers.csv" "$T/drop/customers.csv"
echo "C-004,New,new@example.com,FR" >>"$T/drop/customers.csv"
timeout 30 "$PD_BIN" run --once -c "$T/c.conf" >/dev/null 2>&1 || true
check "a clashing name gets a suffix" archived customers.1.csv "$T/drop"
check "the first archived copy is untouched" cmp -s "$T/state/watches/drop/archive/customers.csv" "$PD_SRC/samples/customers.csv"
finish
