# batch = N: small files of one watch go several to a request, merged as their format allows;
# each receipt names the request and flow run it went in; a refused batch is sent again file by
# file, so one bad file cannot sink the others.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"

# mk NAME SECOND CONTENT: a file whose mtime orders it (oldest first is the claim order).
mk() { printf '%b' "$3" >"$T/drop/$1"; touch -d "2020-01-01 00:00:$2" "$T/drop/$1"; }
# payload_with TEXT: the payload file holding TEXT.
payload_with() { grep -l -F -- "$1" "$MOCK_REC"/payloads/* | head -1; }

start_mock
mkdir -p "$T/drop"
for i in 1 2 3 4 5 6; do mk "a$i.json" "0$i" "[{\"id\":$i,\"note\":\"say \\\\\"hi\\\\\"\"}]\n"; done
mk c1.csv 10 'id,name\n1,Ann\n'
mk c2.csv 11 'id,name\n2,"Bob\nJr"\n'
mk c3.csv 12 'id,name\n3,Cy'
mk c4.csv 13 'id,other\n4,x\n'
mk x1.xml 14 '<?xml version="1.0"?>\n<orders xmlns="urn:x">\n  <order id="1"/>\n</orders>\n'
mk x2.xml 15 '<?xml version="1.0"?>\n<orders xmlns="urn:x">\n  <order id="2"/>\n</orders>\n'
mk o1.json 16 '{"not":"an array"}\n'
write_conf "$T/c.conf" "$T/drop" "batch = 10" "batch_window = 300ms"

out=$(timeout 60 "$PD_BIN" run --once -c "$T/c.conf" 2>"$T/err") && rc=0 || rc=$?
check "every file delivered (exit 0)" test "$rc" -eq 0
check "the summary counts 13 files" grep -q "summary: 13 delivered" <<<"$out"
for f in a1.json a2.json a3.json a4.json a5.json a6.json c1.csv c2.csv c3.csv c4.csv x1.xml x2.xml o1.json; do
  check "$f is archived with a receipt" archived "$f" "$T/drop"
done
check "5 requests: JSON x6, CSV x3, the other CSV header, XML x2, the JSON object" \
  test "$(payload_count)" -eq 5

p=$(payload_with '"id":1,')
# Files join as they are ready, so their order in the batch is not the drop order.
check "the six JSON arrays arrived as one array of six" \
  jqe '([.[].id] | sort) == [1,2,3,4,5,6] and .[0].note == "say \"hi\""' "$p"
p=$(payload_with '1,Ann')
check "the three CSV files arrived as one header and their rows" \
  cmp -s <(head -1 "$p"; tail -n +2 "$p" | tr '\n' '|' | sed 's/"Bob|Jr"/"Bob Jr"/; s/|$//' | tr '|' '\n' | sort) \
    <(printf 'id,name\n1,Ann\n2,"Bob Jr"\n3,Cy\n')
check "the CSV file with another header went on its own" received "$T/drop.pd/archive/c4.csv"
p=$(payload_with 'order id="1"')
check "the two XML files arrived under one root" \
  test "$(grep -c '<orders xmlns="urn:x">' "$p")" -eq 1 -a "$(grep -c '<order id=' "$p")" -eq 2 -a \
       "$(grep -c '</orders>' "$p")" -eq 1 -a "$(head -1 "$p")" = '<?xml version="1.0"?>' 
check "the JSON object (not an array) went on its own" received "$T/drop.pd/archive/o1.json"

A="$T/drop.pd/archive"
rid=$(jq -r '.chunks[0].batch.request_id' "$A/a1.json.receipt.json")
run=$(jq -r '.chunks[0].flow_run_id' "$A/a1.json.receipt.json")
same=1
for i in 1 2 3 4 5 6; do
  jqe --arg r "$rid" --arg run "$run" \
    '.chunks[0].batch.request_id == $r and .chunks[0].batch.files == 6 and .chunks[0].flow_run_id == $run' \
    "$A/a$i.json.receipt.json" || same=0
done
check "each JSON file's receipt names the shared request and the flow run" test $same -eq 1
check "and each its own place in it" \
  test "$(cat "$A"/a*.json.receipt.json | jq -s -c '[.[].chunks[0].batch.position] | sort')" = "[1,2,3,4,5,6]"
check "that flow run is the merged payload's" \
  test "$(basename "$(payload_with '"id":1,')")" = "$(printf '%06d' "$run")"
check "a file sent alone has no batch in its receipt" jqe '.chunks[0].batch == null' "$A/o1.json.receipt.json"
check "the batches are logged" grep -q "event=batch_sent.*files=6" "$T/err"

# A small file that joins a batch is read from disk once: hashed, split and batched from that one
# read, and not compared byte for byte again at the finish when nothing wrote to it (its ctime).
kill "$MOCK_PID"
start_mock
rm -rf "$T/drop" "$T/drop.pd" "$T/state"
mkdir -p "$T/drop"
for i in 1 2 3 4; do mk "r$i.json" "0$i" "[{\"id\":$i}]"; done
write_conf "$T/c.conf" "$T/drop" "batch = 10" "batch_window = 300ms"
# (LeakSanitizer cannot work under ptrace: the sanitizer build leaves leak checks to the others.)
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
  timeout 60 strace -f -y -qq -e trace=read,pread64,readv,preadv,preadv2 -o "$T/strace.out" \
  "$PD_BIN" run --once -c "$T/c.conf" >/dev/null 2>"$T/err3" && rc=0 || rc=$?
check "the four files went in one request (exit 0)" test "$rc" -eq 0 -a "$(payload_count)" -eq 1
for i in 1 2 3 4; do
  check "r$i.json was read once" \
    test "$(grep -E "read(64)?\([0-9]+<[^>]*/r$i\.json>" "$T/strace.out" | grep -cv '= 0$')" -eq 1
done

# A refused batch goes again file by file: the batch gets 422, then the second file alone too;
# the other two arrive, the refused one goes to the failed folder with its reason.
kill "$MOCK_PID"
start_mock --script "422,ok,422,ok"
rm -rf "$T/drop" "$T/drop.pd" "$T/state"
mkdir -p "$T/drop"
for i in 1 2 3; do mk "b$i.json" "0$i" "[{\"id\":$i}]"; done
PD_CONCURRENCY=1 write_conf "$T/c.conf" "$T/drop" "batch = 10" "batch_window = 300ms"
out=$(timeout 60 "$PD_BIN" run --once -c "$T/c.conf" 2>"$T/err2") && rc=0 || rc=$?
check "one file refused: exit 1" test "$rc" -eq 1
check "the batch was refused once, then each file went alone" \
  test "$(grep -c '"status":422' "$MOCK_REC/requests.jsonl")" -eq 2 -a "$(payload_count)" -eq 2
check "the refusal is logged" grep -q "event=batch_refused.*files=3" "$T/err2"
n_ok=0 n_failed=0
for i in 1 2 3; do
  archived "b$i.json" "$T/drop" && n_ok=$((n_ok + 1))
  failed "b$i.json" "$T/drop" && n_failed=$((n_failed + 1))
done
check "two files archived, one failed: the bad one did not sink the others" \
  test $n_ok -eq 2 -a $n_failed -eq 1
check "the failed file's reason has the HTTP status" \
  bash -c "jq -e '.http_status == 422' '$T'/drop.pd/failed/*.error.json >/dev/null"
check "receipts of files sent alone have no batch" \
  bash -c "for r in '$T'/drop.pd/archive/*.receipt.json; do jq -e '.chunks[0].batch == null' \"\$r\" >/dev/null || exit 1; done"
# First fit: a file that does not fit one open body goes into another of its kind. Two large
# JSON files (elements 2) and two small ones (elements 1), claimed one at a time in that order,
# where a body holds one large and one small: next fit would send 3 bodies ([L1] [L2 S1] [S2]),
# first fit sends 2, each whole.
# digits N D: a JSON array of N elements D.
digits() { printf '[%s' "$2"; for _ in $(seq 2 "$1"); do printf ',%s' "$2"; done; printf ']'; }
# two_bodies WHAT: 2 requests, each one large file's elements and one small one's, whole, in one
# array (in either order: which file a body takes first depends on which was ready first).
two_bodies() {
  check "$1: in 2 requests" test "$(payload_count)" -eq 2
  for p in "$MOCK_REC"/payloads/*; do
    check "$1: $(basename "$p") holds a large file and a small one, merged into one array" \
      jqe '(map(tostring) | join("")) as $s | $s == ("2" * 300) + ("1" * 200) or $s == ("1" * 200) + ("2" * 300)' "$p"
  done
}
pack_run() {
  kill "$MOCK_PID"
  start_mock
  rm -rf "$T/drop" "$T/drop.pd" "$T/state"
  mkdir -p "$T/drop"
  local i=1
  for f in "$@"; do
    case $f in l*) mk "$f.json" "0$i" "$(digits 300 2)" ;; *) mk "$f.json" "0$i" "$(digits 200 1)" ;; esac
    i=$((i + 1))
  done
  PD_MAX_BODY=1100 write_conf "$T/c.conf" "$T/drop" "batch = 10" "batch_window = 1h"
  out=$(timeout 60 "$PD_BIN" run --once -c "$T/c.conf" 2>"$T/err4") && rc=0 || rc=$?
}
PD_CONCURRENCY=1 pack_run l1 l2 s1 s2
check "first fit: the four files delivered (exit 0)" test "$rc" -eq 0
two_bodies "first fit"

# Files ready together are packed larger first: two small files claimed before two large ones,
# all four prepared at once (first fit in that order would send 3: [S1 S2] [L1] [L2]).
PD_CONCURRENCY=4 pack_run s1 s2 l1 l2
check "larger first: the four files delivered (exit 0)" test "$rc" -eq 0
two_bodies "larger first"

finish
