# Redis killed in the middle of a run and started again, empty: nothing stops, no file is lost
# or sent twice, the emulator's limit is never exceeded (each host waits a window, then sends its
# share), and both hosts rejoin Redis once it is back.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
. "$(dirname "$0")/lib_cluster.bash"
N=${PD_CLUSTER_N:-150}
start_redis
start_mock --rate-limit 60 --rate-window 2s
export CLUSTER_HOSTS=2
for h in a b; do
  host_conf $h "$T/$h"
  for i in $(seq 1 "$N"); do echo "$h $i" >"$T/$h/$h$i.txt"; done
done
# Host a's /healthz tells an operator's probe that it is on its own share (and stays 200).
printf '[metrics]\nlisten = 127.0.0.1:0\n' >>"$T/a.conf"
for h in a b; do start_host $h; done
port_a() { grep -o 'event=metrics_listening.*' "$T/a.err" | grep -o 'port=[0-9]*' | grep -o '[0-9]*'; }
check "host a says where metrics listen" wait_for 10 port_a
check "a third of the files went through Redis" wait_for 30 bash -c "[ \$(ls '$MOCK_REC/payloads' | wc -l) -ge $((2 * N / 3)) ]"
stop_redis
before=$(payload_count)
check "both hosts fall back to their share" wait_for 10 bash -c "grep -q event=cluster_fallback '$T/a.err' && grep -q event=cluster_fallback '$T/b.err'"
check "status shows host a on its share of 30" bash -c \
  "timeout 20 '$PD_BIN' status -c '$T/a.conf' --json | jq -e '.account.cluster | .fallback and (.connected | not) and .fallback_share == 30 and .fallbacks == 1' >/dev/null"
check "host a's /healthz is 200 and says Redis is away" bash -c \
  "curl -sS --max-time 5 -w ' %{http_code}' http://127.0.0.1:$(port_a)/healthz | tr '\n' ' ' | grep -q 'Redis is away.* 200\$'"
check "sending goes on without Redis" wait_for 20 bash -c "[ \$(ls '$MOCK_REC/payloads' | wc -l) -ge $((before + 20)) ]"
start_redis
check "both hosts rejoin Redis" wait_for 20 bash -c "grep -q event=cluster_rejoined '$T/a.err' && grep -q event=cluster_rejoined '$T/b.err'"
check "host a's /healthz is plain ok again" bash -c \
  "curl -sS --max-time 5 http://127.0.0.1:$(port_a)/healthz | grep -qx ok"
check "status shows host b back on Redis" bash -c \
  "timeout 20 '$PD_BIN' status -c '$T/b.conf' --json | jq -e '.account.cluster | .connected and (.fallback | not) and .rejoins == 1 and .permits_local > 0 and .permits_shared > 0' >/dev/null"
check "all $((2 * N)) files are delivered" wait_for 60 bash -c \
  "[ \$(ls '$T/a.pd/archive' '$T/b.pd/archive' 2>/dev/null | grep -c 'receipt.json$') -eq $((2 * N)) ]"
for h in a b; do stop_host $h; done
check "each payload arrived exactly once" bash -c \
  "[ \$(ls '$MOCK_REC/payloads' | wc -l) -eq $((2 * N)) ] && [ \$(cat '$MOCK_REC'/payloads/* | sort -u | wc -l) -eq $((2 * N)) ]"
check "the emulator never had to refuse with 429 ($(count '.status == 429'))" test "$(count '.status == 429')" -eq 0
check "no file failed" bash -c "! ls '$T'/[ab].pd/failed/* >/dev/null 2>&1"
check "the fallback was logged once per host" test "$(grep -c event=cluster_fallback "$T/a.err")" -eq 1
finish
