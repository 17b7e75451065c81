# Three hosts, one account, one token: with a short token lifetime one host logs in per
# expiry for all of them (the others take the token from Redis), and when the server revokes a
# token (401) one host logs in again for all, however many requests of however many hosts got
# the 401. Every file arrives once either way.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
. "$(dirname "$0")/lib_cluster.bash"
N=${PD_CLUSTER_N:-60}

# run_hosts: three hosts with N files each, until all are delivered.
run_hosts() {
  for h in a b c; do
    rm -rf "$T/$h" "$T/$h.pd" "$T/$h.state"
    host_conf $h "$T/$h"
    for i in $(seq 1 "$N"); do echo "$h $i" >"$T/$h/$h$i.txt"; done
  done
  for h in a b c; do start_host $h; done
  check "all $((3 * N)) files are delivered" wait_for 90 bash -c \
    "[ \$(ls '$T'/[abc].pd/archive 2>/dev/null | grep -c 'receipt.json$') -eq $((3 * N)) ]"
  for h in a b c; do stop_host $h; done
  check "each payload arrived exactly once" bash -c \
    "[ \$(ls '$MOCK_REC/payloads' | wc -l) -eq $((3 * N)) ] && [ \$(cat '$MOCK_REC'/payloads/* | sort -u | wc -l) -eq $((3 * N)) ]"
}

start_redis
# 1. Tokens live 3 s (renewed at 90% of their life): one login per expiry for all three hosts.
start_mock --token-ttl 3s --rate-limit 60 --rate-window 2s
t0=$(date +%s%N)
run_hosts
secs=$((($(date +%s%N) - t0) / 1000000000 + 1))
n=$(logins)
gaps=$(jq -s '[.[] | select(.path == "/api/v1/login") | .time_ms] | sort | [range(1; length) as $i | .[$i] - .[$i - 1]] | min // 99999' "$MOCK_REC/requests.jsonl")
echo "# $n logins in about $secs s; the shortest gap between two: $gaps ms"
check "one login per token lifetime across the hosts ($n in ${secs}s)" test "$n" -le $((secs / 2 + 1))
check "no two logins closer than 2 s (no host logged in beside another)" test "$gaps" -ge 2000
check "each host took the shared token" bash -c "grep -q event=login_shared '$T/b.err' || grep -q event=login_shared '$T/c.err'"
kill "$MOCK_PID"; wait "$MOCK_PID" 2>/dev/null || true
rcli FLUSHALL >/dev/null

# 2. The server revokes 3% of the tokens at a request: each revocation makes one login.
start_mock --fail-401-rate 0.03 --seed 7
run_hosts
revoked=$(count '.status == 401 and .outcome == "fault"')
n=$(logins)
echo "# $revoked revocations, $(count '.status == 401') answers 401, $n logins"
check "there were revocations to test ($revoked)" test "$revoked" -ge 1
check "one login per revocation across the hosts, plus the first ($n <= $revoked + 1)" test "$n" -le $((revoked + 1))
finish
