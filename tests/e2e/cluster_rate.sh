# Three hosts, one account, one Redis: a combined backlog of 600 files goes out at the account's
# rate (90 per 2 s here, Patchworks' 240 a minute scaled down) with no 429 at the emulator, in
# about the time the limit sets, each host's share following its backlog: a busy host takes the
# permits an idle host does not ask for, and the idle host takes none.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
. "$(dirname "$0")/lib_cluster.bash"
NA=${PD_CLUSTER_A:-400}
NB=${PD_CLUSTER_B:-200}
# PD_CLUSTER_RATE and PD_CLUSTER_WINDOW_S scale it up by hand (the ratio to the floor nears 1 as
# the window grows: each permit also holds its request's own time).
W=${PD_CLUSTER_WINDOW_S:-2}
start_redis
export CLUSTER_RATE=${PD_CLUSTER_RATE:-90} CLUSTER_WINDOW=${W}s
start_mock --rate-limit "$CLUSTER_RATE" --rate-window "${W}s"
for h in a b c; do host_conf $h "$T/$h"; done
for i in $(seq 1 "$NA"); do echo "a $i" >"$T/a/a$i.txt"; done
for i in $(seq 1 "$NB"); do echo "b $i" >"$T/b/b$i.txt"; done
t0=$(date +%s%N)
for h in a b c; do start_host $h; done
check "all $((NA + NB)) files are delivered" wait_for $((120 * W / 2)) bash -c \
  "[ \$(ls '$T/a.pd/archive' '$T/b.pd/archive' 2>/dev/null | grep -c 'receipt.json$') -eq $((NA + NB)) ]"
t1=$(date +%s%N)
# Seeing all hosts: their heartbeats in Redis, read by status --cluster from any host's config.
sleep 5.5 # one heartbeat after the last delivery
timeout 20 "$PD_BIN" status -c "$T/c.conf" --cluster --json >"$T/hosts.json"
check "status --cluster lists the three hosts, alive" \
  jqe '[.hosts[] | select(.alive) | .name] | sort == ["a", "b", "c"]' "$T/hosts.json"
check "each busy host shows a last delivery and no backlog, the idle host none" jqe \
  '[.hosts[] | {(.name): (.summary.watches[0] | [.last_delivery != null, .backlog])}] | add == {"a": [true, 0], "b": [true, 0], "c": [false, 0]}' "$T/hosts.json"
timeout 20 "$PD_BIN" status -c "$T/a.conf" --cluster >"$T/hosts.txt"
check "the text names each host on the shared rate" test "$(grep -c 'on the shared rate' "$T/hosts.txt")" -eq 3
for h in a b c; do stop_host $h; done
check "each payload arrived exactly once" bash -c \
  "[ \$(ls '$MOCK_REC/payloads' | wc -l) -eq $((NA + NB)) ] && [ \$(cat '$MOCK_REC'/payloads/* | sort -u | wc -l) -eq $((NA + NB)) ]"
check "the emulator never had to refuse with 429 ($(count '.status == 429'))" test "$(count '.status == 429')" -eq 0
check "host a sent its $NA files" test "$(payloads_of a)" -eq "$NA"
check "host b sent its $NB files" test "$(payloads_of b)" -eq "$NB"
check "one login for the account ($(logins))" test "$(logins)" -eq 1
check "the idle host c asked for nothing, not even a token" bash -c "! grep -q 'event=login' '$T/c.err'"
# Fair while both have work: until b's last file, a got about as many permits as b.
order=$(cd "$MOCK_REC/payloads" && for f in *; do head -c1 "$f"; done)
upto=${order%b*}
a_meanwhile=$(tr -cd a <<<"$upto" | wc -c)
echo "# while b had work, a sent $a_meanwhile and b $NB"
check "the hosts shared the rate evenly while both had work ($a_meanwhile vs $NB)" \
  test "$a_meanwhile" -ge $((NB * 7 / 10)) -a "$a_meanwhile" -le $((NB * 13 / 10))
# The floor: R requests at CLUSTER_RATE per W s, the first CLUSTER_RATE at once.
total=$(count 'true')
ms=$(((t1 - t0) / 1000000))
floor=$(((total - CLUSTER_RATE) * W * 1000 / CLUSTER_RATE))
# The steady floor bench/run.sh section 3 measures one host against: requests / rate x window.
steady=$((total * W * 1000 / CLUSTER_RATE))
echo "# $total requests in $ms ms; the limit's floor is $floor ms; ratio $(awk "BEGIN{printf \"%.2f\", $ms / $floor}"); against the steady floor ($steady ms, as bench section 3 counts for one host) $(awk "BEGIN{printf \"%.3f\", $ms / $steady}")"
check "it took no less than the floor (the limit held)" test "$ms" -ge "$floor"
check "it took less than twice the floor (the hosts shared the rate)" test "$ms" -le $((floor * 2))
finish
