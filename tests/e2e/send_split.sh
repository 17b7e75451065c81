# Big files through `send`: the splitter cuts them into record-aware chunks that each fit
# max_body, they arrive in order and together are the file; a server limit below max_body (413)
# makes the chunk be cut smaller and sent again, without losing or repeating a record.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"

mkdir -p "$T/in"
for i in $(seq 1 400); do printf '{"id":%d,"name":"item \\"%d\\"","tags":["a","b"]}\n' "$i" "$i"; done >"$T/in/big.ndjson"
{ echo "id,name,note"; for i in $(seq 1 300); do printf '%d,"Name, %d","line\nbreak"\n' "$i" "$i"; done; } >"$T/in/big.csv"

# payloads_of PATH_REGEX: the payload files of matching start requests, in arrival order.
payloads_of() {
  jq -r --arg p "$1" 'select(.status == 200 and (.path | test($p)) and .payload_file != null)
    | .payload_file' "$MOCK_REC/requests.jsonl" | sed "s|^|$MOCK_REC/|"
}

mock
C=$(conf split "max_body = 4000" "concurrency = 2")
run_pd "$T/s" send -c "$C" --flow 21 "$T/in/big.ndjson"
check "a big NDJSON file is sent in several chunks (exit 0)" test "$RC" -eq 0 -a "$(starts)" -gt 4
n=$(starts)
check "each line names its chunk; the last says how many" grep -q "big.ndjson: chunk $n/$n, " "$T/s.out"
check "every body fitted max_body" test "$(count '.body_bytes > 4000')" -eq 0
check "the chunks in order are the file, byte for byte" \
  cmp -s "$T/in/big.ndjson" <(cat $(payloads_of /flows/21/))

run_pd "$T/c" send -c "$C" --flow 22 "$T/in/big.csv"
check "a big CSV file is sent in several chunks (exit 0)" test "$RC" -eq 0
first=1 ok_hdr=1
for p in $(payloads_of /flows/22/); do
  [ "$(head -1 "$p")" = "id,name,note" ] || ok_hdr=0
done
check "every CSV chunk starts with the header" test $ok_hdr -eq 1
check "the rows in order are the file's rows, none lost or repeated" \
  cmp -s <(tail -n +2 "$T/in/big.csv") <(for p in $(payloads_of /flows/22/); do tail -n +2 "$p"; done)
kill "$MOCK_PID"

# The server takes at most 1500 bytes though max_body says 8000: 413, cut smaller, resent.
mock --max-body 1500
C=$(conf resplit "max_body = 8000")
run_pd "$T/r" send -c "$C" --flow 23 "$T/in/big.ndjson"
check "413s make the chunks smaller until they fit (exit 0)" test "$RC" -eq 0
check "the 413s are reported as cut smaller" grep -q "HTTP 413, too large for the server: cutting it smaller" "$T/r.out"
check "after the 413s every record arrived once, in order" \
  cmp -s "$T/in/big.ndjson" <(cat $(payloads_of /flows/23/))
finish
