# A server whose real body limit (200,000 bytes) is far below max_body (8 MB): patchdrop learns
# the limit from its 413s, cuts between what passed and what was refused, never refuses a record
# the server would take, remembers the limit for the account, and refuses a file whose largest
# record can never pass before sending any of it (never half a file).
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
start_mock --max-body 200000
mkdir -p "$T/drop"
write_conf "$T/c.conf" "$T/drop" "split = json"
sed -i 's/^\[patchworks\]$/[patchworks]\nmax_body = 8MB/' "$T/c.conf"
# JSON arrays of records of about SIZE bytes each.
mkjson() { python3 -c '
import json, sys
sizes = [int(x) for x in sys.argv[2:]]
json.dump([{"n": i, "pad": "x" * s} for i, s in enumerate(sizes)], open(sys.argv[1], "w"))' "$@"; }
mkjson "$T/big183.json" 183000 183000 183000 183000 183000 183000 183000 183000 183000 183000
cp "$T/big183.json" "$T/drop/"
timeout 120 "$PD_BIN" run --once -c "$T/c.conf" >"$T/out1" 2>"$T/err1" && rc=0 || rc=$?
check "183 kB records under a 200 kB server limit: delivered (exit 0)" test "$rc" -eq 0
check "archived, not failed" archived big183.json "$T/drop"
check "every record arrived once" \
  bash -c "cat '$MOCK_REC'/payloads/* | python3 -c 'import json,sys; d=sys.stdin.read(); import re; n=re.findall(r\"\\\"n\\\": ?(\\d+)\", d); sys.exit(0 if sorted(map(int,n))==list(range(10)) else 1)'"
check "every accepted body fit the server's limit" \
  jqe -s '[.[] | select(.status == 200 and (.path | startswith("/api/v1/flows"))) | .body_bytes <= 200000] | all' "$MOCK_REC/requests.jsonl"
check "the limit is remembered for the account" test -s "$T/state/body_limit.json"
n413=$(grep -c '"status":413' "$MOCK_REC/requests.jsonl")
check "found with a few 413s (bisection), not one per record ($n413)" test "$n413" -le 10

# The next file: its first chunk would fit, its second record is 195 kB: every record goes (no
# "half a file" for a record the server takes), starting from what was learned, not 8 MB.
mkjson "$T/mixed.json" 1000 195000 1000
cp "$T/mixed.json" "$T/drop/"
timeout 60 "$PD_BIN" run --once -c "$T/c.conf" >"$T/out2" 2>"$T/err2" && rc=0 || rc=$?
check "a 195 kB record after a small one: delivered (exit 0)" test "$rc" -eq 0
check "archived" archived mixed.json "$T/drop"

# A file whose second record (1 MB) is larger than a body the server already refused (the first
# file's 413s taught that): refused before its first chunk goes.
before=$(payload_count)
mkjson "$T/never.json" 1000 1000000 1000
cp "$T/never.json" "$T/drop/"
timeout 60 "$PD_BIN" run --once -c "$T/c.conf" >"$T/out3" 2>"$T/err3" && rc=0 || rc=$?
check "a record larger than the server takes: exit 1" test "$rc" -eq 1
check "nothing of it was sent (never half a file)" test "$(payload_count)" -eq "$before"
check "it is in the failed folder" failed never.json "$T/drop"
check "the reason names the record's size and the server's limit, one piece of advice" \
  bash -c "jq -r .reason '$T/drop.pd/failed/never.json.error.json' | grep -q 'refuses requests of'"
finish
