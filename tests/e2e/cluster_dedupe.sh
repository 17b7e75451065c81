# dedupe across hosts: the same content dropped on two hosts within the window goes to
# Patchworks once; the other host archives its copy as a duplicate, naming the host and the
# receipt of the delivery, exactly as a host alone archives a repeat. Different contents all go.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
. "$(dirname "$0")/lib_cluster.bash"
start_redis
start_mock
for h in a b; do host_conf $h "$T/$h" "dedupe = 1h"; done
# The same order on both hosts at the same moment, and a file of each host's own.
for h in a b; do
  echo '{"order": 1}' >"$T/$h/order-1.json"
  echo "only $h" >"$T/$h/own-$h.txt"
done
for h in a b; do start_host $h; done
check "all four files are archived" wait_for 30 bash -c \
  "[ \$(ls '$T/a.pd/archive' '$T/b.pd/archive' 2>/dev/null | grep -c 'receipt.json$') -eq 4 ]"
check "three payloads reached Patchworks: the shared order once" test "$(payload_count)" -eq 3
check "the order arrived once" test "$(received_count "$T/a/../a.pd/archive/order-1.json")" -eq 1
dups=$(cat "$T"/[ab].pd/archive/order-1.json.receipt.json | jq -s '[.[] | select(.duplicate_of != null)] | length')
check "one host archived its order as a duplicate ($dups)" test "$dups" -eq 1
check "the duplicate names the host and receipt of the delivery" bash -c \
  "cat '$T'/[ab].pd/archive/order-1.json.receipt.json | jq -se '[.[] | .duplicate_of // empty] | .[0] | test(\"^[ab]:/.*order-1.json.receipt.json\$\")' >/dev/null"
# Later, within the window, the same content on the host that did not send it: a duplicate of
# the other host's delivery (its own dedupe records know nothing of it).
o=a
jq -e '.duplicate_of == null' "$T/a.pd/archive/order-1.json.receipt.json" >/dev/null && o=b
echo '{"order": 1}' >"$T/$o/again.json"
check "the repeat on host $o is archived" wait_for 20 test -f "$T/$o.pd/archive/again.json.receipt.json"
check "and not sent" test "$(payload_count)" -eq 3
check "event=duplicate is logged" grep -q "event=duplicate.*again.json" "$T/$o.err"
for h in a b; do stop_host $h; done
finish
