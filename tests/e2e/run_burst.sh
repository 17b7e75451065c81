# A burst of 20,000 files (enough to overflow inotify's queue on many systems): all arrive,
# each once. On tmpfs so the test measures patchdrop, not the disk.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
N=${PD_BURST:-20000}
start_mock
D=$(mktemp -d /dev/shm/pd-burst.XXXXXX)
trap 'cleanup; rm -rf "$D" "$D.pd"' EXIT
PD_CONCURRENCY=8 PD_RESCAN=2s write_conf "$T/c.conf" "$D"
start_daemon "$T/c.conf"
sleep 0.3
for i in $(seq 1 "$N"); do echo "burst $i" >"$D/b$i.txt"; done
check "all $N files are archived" wait_for 240 bash -c "[ \$(ls '$D.pd/archive' 2>/dev/null | grep -c 'receipt.json$') -eq $N ]"
check "$N payloads, each once" bash -c "[ \$(ls '$MOCK_REC/payloads' | wc -l) -eq $N ] && [ \$(cat '$MOCK_REC'/payloads/* | sort -u | wc -l) -eq $N ]"
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" || true
finish
