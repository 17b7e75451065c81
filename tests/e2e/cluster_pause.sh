# One host's 429 pauses every host: its Retry-After is stored in Redis and no host sends until
# it has passed; then all files of both hosts arrive, each once.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
. "$(dirname "$0")/lib_cluster.bash"
start_redis
# The tenth start request is refused with Retry-After: 2 s.
start_mock --script "ok,ok,ok,ok,ok,ok,ok,ok,ok,429:2"
export CLUSTER_RATE=30 # 15 a second: both hosts still have files to send when the 429 comes
for h in a b; do
  host_conf $h "$T/$h"
  for i in $(seq 1 30); do echo "$h $i" >"$T/$h/$h$i.txt"; done
done
for h in a b; do start_host $h; done
check "all 60 files are delivered" wait_for 30 bash -c \
  "[ \$(ls '$T/a.pd/archive' '$T/b.pd/archive' 2>/dev/null | grep -c 'receipt.json$') -eq 60 ]"
for h in a b; do stop_host $h; done
check "each payload arrived exactly once" bash -c \
  "[ \$(ls '$MOCK_REC/payloads' | wc -l) -eq 60 ] && [ \$(cat '$MOCK_REC'/payloads/* | sort -u | wc -l) -eq 60 ]"
t429=$(jq -s '[.[] | select(.status == 429) | .time_ms] | first' "$MOCK_REC/requests.jsonl")
# Requests already on their way when the 429 came may land just after it; none starts later.
during=$(jq -s --argjson t "$t429" '[.[] | select(.time_ms > $t + 300 and .time_ms < $t + 1900)] | length' "$MOCK_REC/requests.jsonl")
echo "# the 429 at $t429; requests in the 1.6 s after it settled: $during"
check "one 429" test "$(count '.status == 429')" -eq 1
check "no host sent during the pause ($during requests)" test "$during" -eq 0
finish
