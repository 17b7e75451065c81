# A one-shot `patchdrop send` on a host of the cluster takes its permits from Redis like the
# daemons: sending beside a busy daemon on the same account, neither makes the emulator refuse
# with 429, the shared token is used (no login of its own), and send ends as soon as its files
# are done (the cluster's connection does not hold it). Without Redis, send still delivers, on
# its own share.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
. "$(dirname "$0")/lib_cluster.bash"
N=${PD_CLUSTER_N:-90}
NS=${PD_CLUSTER_SEND:-60}
start_redis
export CLUSTER_RATE=30 CLUSTER_HOSTS=2
start_mock --rate-limit "$CLUSTER_RATE" --rate-window 2s
host_conf a "$T/a"
host_conf s "$T/s.drop" # send's host: its config, its own state dir
mkdir -p "$T/src"
for i in $(seq 1 "$N"); do echo "a $i" >"$T/a/a$i.txt"; done
for i in $(seq 1 "$NS"); do echo "s $i" >"$T/src/s$i.txt"; done
start_host a
check "the daemon has begun" wait_for 20 bash -c "[ \$(ls '$MOCK_REC/payloads' | wc -l) -ge 5 ]"
t0=$SECONDS
run_pd "$T/send" send -c "$T/s.conf" --flow 9 "$T"/src/*.txt
check "send of $NS files beside the daemon exits 0 ($(tail -1 "$T/send.out"))" test "$RC" -eq 0
check "send ended once its files were done (in $((SECONDS - t0)) s, under a minute)" test $((SECONDS - t0)) -lt 60
check "all of the daemon's $N files are delivered" wait_for 60 bash -c \
  "[ \$(ls '$T/a.pd/archive' 2>/dev/null | grep -c 'receipt.json$') -eq $N ]"
stop_host a
check "each payload arrived exactly once" bash -c \
  "[ \$(ls '$MOCK_REC/payloads' | wc -l) -eq $((N + NS)) ] && [ \$(cat '$MOCK_REC'/payloads/* | sort -u | wc -l) -eq $((N + NS)) ]"
check "the emulator never had to refuse with 429 ($(count '.status == 429'))" test "$(count '.status == 429')" -eq 0
check "send took the account's token from Redis: one login in all ($(logins))" test "$(logins)" -eq 1
check "send's log has no sanitizer report" bash -c "! grep -qE 'Sanitizer|runtime error' '$T/send.err'"

# Redis gone: send waits one window (what every host took may still count), then sends on its
# own share, and ends.
stop_redis
rm -f "$T"/src/*.txt
for i in 1 2 3; do echo "alone $i" >"$T/src/alone$i.txt"; done
run_pd "$T/send2" send -c "$T/s.conf" --flow 9 "$T"/src/*.txt
check "without Redis send says it is on its own share, delivers its 3 files and exits 0" \
  bash -c "test $RC -eq 0 && grep -q '3 of 3 files delivered' '$T/send2.err' && grep -q event=cluster_fallback '$T/send2.err'"
finish
