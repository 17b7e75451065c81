# `patchdrop lookup` against patchdrop-mock: a 50,000-row CSV synced into an empty lookup, then
# a changed file (adds, updates, deletes counted and checked on the emulator), dry runs that
# change nothing, bad rows named by line, every page of a list read, export round-trips, the
# single-row commands, and a lookup watch whose receipt lists the changes.
# PD_LOOKUP_ROWS sets the size (the sanitizer build uses fewer rows to stay quick).
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"

N=${PD_LOOKUP_ROWS:-50000}
mock
C=$(conf lk "lookups_url = $MOCK_URL/core-main/api/v1" "rate_limit = 1000000" "concurrency = 8")

# The emulator's own view, asked with curl (not through patchdrop).
TOKEN=$(curl -sf -X POST -H 'Content-Type: application/json' \
  -d "{\"email\":\"demo@example.com\",\"password\":\"$PW\"}" "$MOCK_URL/api/v1/login" | jq -r .token)
emu() {
  curl -sf -H "Authorization: Bearer $TOKEN" -H 'Accept: application/json' "$MOCK_URL/core-main/api/v1$1"
}
# emu_total ID: the row count the emulator reports (meta.total).
emu_total() { emu "/cross-reference-lookups/$1/values?per_page=1" | jq .meta.total; }
# emu_dump ID: every row the emulator holds, one JSON object a line, into $T/emu.jsonl.
emu_dump() {
  local last
  last=$(emu "/cross-reference-lookups/$1/values?per_page=100" | jq .meta.last_page)
  # curl's URL globbing fetches every page over one connection.
  emu "/cross-reference-lookups/$1/values?per_page=100&page=[1-$last]" | jq -c '.data[]' >"$T/emu.jsonl"
}
# emu_right LEFT: the right value of LEFT in the last dump.
emu_right() { jq -r --arg l "$1" 'select(.left_value == $l) | .right_value' "$T/emu.jsonl"; }
changes() { count '.method != "GET" and (.path | test("/values"))'; }

# The file: plain rows plus, every 1000th, a value with a comma, quotes and a line break.
awk -v n="$N" 'BEGIN {
  printf "\xef\xbb\xbfleft_value,right_value\r\n";
  for (i = 1; i <= n; i++)
    if (i % 1000 == 0) printf "SKU-%06d,\"Bin %d, \"\"top\"\"\nshelf\"\r\n", i, i;
    else printf "SKU-%06d,BIN-%d\r\n", i, i;
}' >"$T/big.csv"

run_pd "$T/create" lookup -c "$C" --json create --name "Bins" --description "SKU to bin" --default NONE
ID=$(jq -r .id "$T/create.out")
check "create makes a lookup and prints it" test "$RC" -eq 0 -a -n "$ID" -a "$(emu_total "$ID")" -eq 0

run_pd "$T/dry0" lookup -c "$C" --json sync "$ID" "$T/big.csv" --dry-run
check "dry run into the empty lookup plans $N adds" \
  test "$RC" -eq 0 -a "$(jq .planned.add "$T/dry0.out")" -eq "$N"
check "dry run changed nothing on the emulator" test "$(emu_total "$ID")" -eq 0 -a "$(changes)" -eq 0

SECONDS=0
run_pd "$T/sync1" lookup -c "$C" --json sync "$ID" "$T/big.csv"
t1=$SECONDS
check "sync of $N rows into the empty lookup exits 0" test "$RC" -eq 0
check "it reports $N added" test "$(jq .added "$T/sync1.out")" -eq "$N" -a "$(jq .refused "$T/sync1.out")" -eq 0
check "the emulator holds $N rows" test "$(emu_total "$ID")" -eq "$N"
emu_dump "$ID"
check "the emulator's rows are the file's rows" \
  test "$(jq -r '.left_value' "$T/emu.jsonl" | sort | head -1)" = SKU-000001 -a "$(wc -l <"$T/emu.jsonl")" -eq "$N"
check "a quoted value with comma, quotes and newline arrived exactly" \
  test "$(emu_right SKU-001000)" = "$(printf 'Bin 1000, "top"\nshelf')"
echo "# $N rows synced in ${t1}s"

run_pd "$T/again" lookup -c "$C" --json sync "$ID" "$T/big.csv" --delete-missing
check "syncing the same file again changes nothing (every page of $N rows was read)" \
  test "$RC" -eq 0 -a "$(jq '.unchanged' "$T/again.out")" -eq "$N" -a \
  "$(jq '.added + .updated + .deleted' "$T/again.out")" -eq 0

run_pd "$T/rows" lookup -c "$C" --json rows "$ID"
check "rows reads every page: $N rows" test "$(jq length "$T/rows.out")" -eq "$N"

# Export round-trips: the exported file, synced back with --delete-missing, changes nothing.
run_pd "$T/export" lookup -c "$C" export "$ID"
cp "$T/export.out" "$T/exported.csv"
run_pd "$T/rt" lookup -c "$C" --json sync "$ID" "$T/exported.csv" --delete-missing --dry-run
check "export round-trips: its file matches the lookup row for row" \
  test "$(jq '.unchanged' "$T/rt.out")" -eq "$N" -a "$(jq '.planned.add + .planned.update + .planned.delete' "$T/rt.out")" -eq 0
check "export starts with the header" test "$(head -1 "$T/exported.csv")" = "left_value,right_value"

# The changed file: the first D rows gone, U right values changed, A new rows.
D=$((N / 25)); U=$((N / 16)); A=$((N / 20))
awk -v n="$N" -v d="$D" -v u="$U" -v a="$A" 'BEGIN {
  print "left_value,right_value";
  for (i = d + 1; i <= n; i++) {
    if (i % 1000 == 0) { printf "SKU-%06d,\"Bin %d, \"\"top\"\"\nshelf\"\n", i, i; continue }
    if (i <= d + u) printf "SKU-%06d,MOVED-%d\n", i, i; else printf "SKU-%06d,BIN-%d\n", i, i;
  }
  for (i = 1; i <= a; i++) printf "NEW-%06d,\"new, %d\"\n", i, i;
}' >"$T/changed.csv"
# rows d+1..d+u that are multiples of 1000 keep their value: not updates
KEPT=$(awk -v d="$D" -v u="$U" 'BEGIN { k = 0; for (i = d + 1; i <= d + u; i++) if (i % 1000 == 0) k++; print k }')
WANT_U=$((U - KEPT))

before=$(changes)
run_pd "$T/dry1" lookup -c "$C" --json sync "$ID" "$T/changed.csv" --delete-missing --dry-run
check "dry run of the changed file plans $A adds, $WANT_U updates, $D deletes" \
  test "$RC" -eq 0 -a "$(jq -c '[.planned.add, .planned.update, .planned.delete]' "$T/dry1.out")" = "[$A,$WANT_U,$D]"
check "the dry run sent no change" test "$(changes)" -eq "$before" -a "$(emu_total "$ID")" -eq "$N"

run_pd "$T/nodel" lookup -c "$C" --json sync "$ID" "$T/changed.csv" --dry-run
check "without --delete-missing the missing rows are kept" \
  test "$(jq '.planned.delete' "$T/nodel.out")" -eq 0 -a "$(jq '.kept' "$T/nodel.out")" -eq "$D"

run_pd "$T/sync2" lookup -c "$C" --json sync "$ID" "$T/changed.csv" --delete-missing
check "sync of the changed file exits 0" test "$RC" -eq 0
check "it counts $A added, $WANT_U updated, $D deleted" \
  test "$(jq -c '[.added, .updated, .deleted]' "$T/sync2.out")" = "[$A,$WANT_U,$D]"
check "every change is listed with its state" \
  test "$(jq '[.changes[] | select(.state == "done")] | length' "$T/sync2.out")" -eq $((A + WANT_U + D))
check "the emulator holds $((N - D + A)) rows" test "$(emu_total "$ID")" -eq $((N - D + A))
emu_dump "$ID"
check "the emulator has the updated value" test "$(emu_right "$(printf 'SKU-%06d' $((D + 1)))")" = "MOVED-$((D + 1))"
check "the emulator has the added value" test "$(emu_right NEW-000001)" = "new, 1"
check "the emulator lost the deleted row" test -z "$(emu_right SKU-000001)"
methods=$(jq -r 'select(.path | test("/values")) | .method' "$MOCK_REC/requests.jsonl" | sort | uniq -c | awk '{printf "%s=%s ", $2, $1}')
check "add/update/delete requests on the emulator match the counts ($methods)" \
  test "$methods" = "DELETE=$D GET=$(count '.method == "GET" and (.path | test("/values"))') POST=$((N + A)) PUT=$WANT_U "

# Bad rows are named by line, and nothing is sent.
printf 'left_value,right_value\nA,1\nB,2,3\n,4\n"C"x,5\nA,6\n' >"$T/bad.csv"
before=$(changes)
run_pd "$T/bad" lookup -c "$C" sync "$ID" "$T/bad.csv"
check "a file with bad rows exits 1" test "$RC" -eq 1
check "each bad row is named by its line" \
  grep -q "line 3: 3 values where the header has 2" "$T/bad.err"
check "...line 4 (empty left value) and line 5 (text after a quote)" \
  sh -c "grep -q 'line 4: left_value is empty' '$T/bad.err' && grep -q 'line 5: text after the closing quote' '$T/bad.err'"
check "nothing was sent for a bad file" test "$(changes)" -eq "$before"
printf 'left_value,right_value\nA,1\nB,2\nA,3\n' >"$T/dup.csv"
run_pd "$T/dup" lookup -c "$C" sync "$ID" "$T/dup.csv"
check "a duplicate left value names both lines" \
  sh -c "test $RC -eq 1 && grep -q 'line 2 and line 4 both have the left value \"A\"' '$T/dup.err'"
printf 'left_value,right_value\n"A,1\nB,2\n' >"$T/open.csv"
run_pd "$T/open" lookup -c "$C" sync "$ID" "$T/open.csv"
check "an unterminated quote names the line it opens on" \
  sh -c "test $RC -eq 1 && grep -q 'line 2: a quoted field starts here and never ends' '$T/open.err'"

# The list follows pages: 105 more lookups make two pages of 100.
for i in $(seq 1 105); do
  curl -sf -o /dev/null -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d "{\"name\":\"L$i\"}" "$MOCK_URL/core-main/api/v1/cross-reference-lookups"
done
run_pd "$T/list" lookup -c "$C" --json list
check "list reads every page: 106 lookups" test "$RC" -eq 0 -a "$(jq length "$T/list.out")" -eq 106
check "in order" test "$(jq -r '.[105].name' "$T/list.out")" = L105
run_pd "$T/list2" lookup -c "$C" list
check "the table has a header and a line per lookup" \
  test "$(head -1 "$T/list2.out" | tr -s ' ')" = "ID NAME DEFAULT DESCRIPTION" -a "$(wc -l <"$T/list2.out")" -eq 107

# Single rows, in a small lookup of their own.
run_pd "$T/show" lookup -c "$C" --json show "$ID"
check "show prints the lookup" test "$(jq -r .default_value "$T/show.out")" = NONE
run_pd "$T/small" lookup -c "$C" --json create --name Small
SID=$(jq -r .id "$T/small.out")
run_pd "$T/add" lookup -c "$C" --json add "$SID" "Key, one" 'Val "1"'
VID=$(jq -r .id "$T/add.out")
emu_dump "$SID"
check "add creates a row" test "$RC" -eq 0 -a "$(emu_right "Key, one")" = 'Val "1"'
run_pd "$T/upd" lookup -c "$C" update "$SID" "$VID" --right two
emu_dump "$SID"
check "update changes the right value" test "$RC" -eq 0 -a "$(emu_right "Key, one")" = two
run_pd "$T/upd0" lookup -c "$C" update "$SID" "$VID"
check "update without --left or --right is a usage error (2)" test "$RC" -eq 2
run_pd "$T/del" lookup -c "$C" delete "$SID" "$VID"
check "delete removes the row" test "$RC" -eq 0 -a "$(emu_total "$SID")" -eq 0
run_pd "$T/del2" lookup -c "$C" delete "$SID" "$VID"
check "deleting it again is refused (1) with the server's words" \
  sh -c "test $RC -eq 1 && grep -q 'HTTP 404' '$T/del2.err'"
printf 'left_value,right_value\nA,1\n' >"$T/one.csv"
run_pd "$T/nolk" lookup -c "$C" sync 99999 "$T/one.csv"
check "syncing into a lookup that does not exist is refused (1)" \
  sh -c "test $RC -eq 1 && grep -q 'cannot read the rows of lookup 99999' '$T/nolk.err'"
run_pd "$T/badid" lookup -c "$C" rows "../1"
check "an id that is not an id is a usage error (2)" test "$RC" -eq 2

# A lookup watch (on the small lookup): a dropped CSV is synced, the receipt lists the changes.
printf 'left_value,right_value\nW1,one\nW2,two\nW3,three\n' >"$T/w0.csv"
run_pd "$T/w0" lookup -c "$C" sync "$SID" "$T/w0.csv"
LW=$(conf lkw "lookups_url = $MOCK_URL/core-main/api/v1" "rate_limit = 1000000" "concurrency = 8")
mkdir -p "$T/ldrop"
cat >>"$LW" <<CONF
[watch:bins]
path = $T/ldrop
work_dir = $T/ldrop.pd
lookup_id = $SID
delete_missing = yes
settle = 0
rescan = 1s
CONF
printf 'left_value,right_value\nW1,ONE\nW2,two\nW4,four\n' >"$T/ldrop/w.csv"
run_pd "$T/run" run -c "$LW" --once
R="$T/ldrop.pd/archive/w.csv.receipt.json"
check "the watch archives the file with a receipt" test "$RC" -eq 0 -a -f "$R"
check "the receipt counts the changes" \
  test "$(jq -c '.lookup | [.added, .updated, .deleted, .unchanged]' "$R")" = "[1,1,1,1]"
check "the receipt lists each row changed" \
  test "$(jq -c '[.lookup.changes[] | [.op, .left_value, .state]]' "$R")" = \
  '[["update","W1","done"],["add","W4","done"],["delete","W3","done"]]'
emu_dump "$SID"
check "the lookup now matches the file" \
  test "$(jq -r '"\(.left_value)=\(.right_value)"' "$T/emu.jsonl" | sort | tr '\n' ' ')" = "W1=ONE W2=two W4=four "
printf 'left_value,right_value\nX,1\nX,2\n' >"$T/ldrop/bad.csv"
run_pd "$T/run2" run -c "$LW" --once
check "a bad file goes to the failed folder with the lines in the reason" \
  sh -c "jq -r .reason '$T/ldrop.pd/failed/bad.csv.error.json' | grep -q 'line 2 and line 3'"
check "no secret in any output" no_secret "$T"/*.out "$T"/*.err "$T/ldrop.pd"
finish
