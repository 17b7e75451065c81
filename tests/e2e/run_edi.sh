# EDI through a watch: a 30 MB X12 file (thousands of 850s in many interchanges and groups,
# three sets of delimiters) and a 30 MB EDIFACT file (release characters in the data, UNA
# present and absent, with and without UNG groups) are each cut into several chunks under
# max_body; every chunk is a valid interchange by an independent reader (edi.py: counts, control
# number pairs), every set and message arrived exactly once, in order. Small EDI files batch as
# whole interchanges; a damaged interchange goes to failed/ naming the segment and byte. TA1
# acknowledgments go once, in the first chunk of their interchange; a trailing Ctrl-Z is never
# sent; a TA1 inside a group fails its file.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"

EDI="$(dirname "$0")/edi.py"
mkdir -p "$T/drop" "$T/ids"
python3 "$EDI" gen x12 "$T/drop/orders.edi" 30 "$T/ids/x12"
python3 "$EDI" gen edifact "$T/drop/orders.edifact" 30 "$T/ids/edifact"
cp "$T/drop/orders.edi" "$T/orig.x12"

# payloads_with PREFIX: the payload files (in arrival order) whose text starts with PREFIX.
payloads_with() {
  local f
  for f in $(jq -r 'select(.status == 200 and .payload_file != null) | .payload_file' \
      "$MOCK_REC/requests.jsonl"); do
    if [ "$(head -c ${#1} "$MOCK_REC/$f")" = "$1" ]; then echo "$MOCK_REC/$f"; fi
  done
}

start_mock
PD_MAX_BODY=4000000 write_conf "$T/c.conf" "$T/drop"
out=$(timeout 120 "$PD_BIN" run --once -c "$T/c.conf" 2>"$T/err") && rc=0 || rc=$?
check "both files delivered (exit 0)" test "$rc" -eq 0
check "the X12 file is archived with its receipt" archived orders.edi "$T/drop"
check "the EDIFACT file is archived with its receipt" archived orders.edifact "$T/drop"
check "every request body fitted max_body" \
  test "$(jq -s '[.[] | select(.body_bytes > 4000000)] | length' "$MOCK_REC/requests.jsonl")" -eq 0
x12=$(payloads_with ISA | wc -l) edf=$(payloads_with UN | wc -l)
check "the X12 file went in several chunks ($x12)" test "$x12" -ge 7
check "the EDIFACT file went in several chunks ($edf)" test "$edf" -ge 7
check "every X12 chunk is interchanges with right counts; every 850 arrived once, in order" \
  python3 "$EDI" check x12 "$T/ids/x12" $(payloads_with ISA)
check "every EDIFACT chunk is interchanges with right counts; every message arrived once, in order" \
  python3 "$EDI" check edifact "$T/ids/edifact" $(payloads_with UN)
r=$(own_of "$T/drop")/archive/orders.edi.receipt.json
check "the receipt lists the X12 chunks" jqe --argjson n "$x12" '.chunks | length == $n' "$r"
check "each receipt chunk names the control numbers it carried" \
  jqe '.chunks[0].control_numbers | test("^ISA13/GS06/ST02 000000001/[0-9]+/[0-9]{4} to [0-9]{9}/")' "$r"
check "the archived file is the file as it came" cmp -s "$T/orig.x12" "$(own_of "$T/drop")/archive/orders.edi"
kill "$MOCK_PID"

# Small files batch as whole interchanges; a damaged one is refused with its segment and byte.
start_mock
mkdir -p "$T/small"
isa='ISA*00*          *00*          *ZZ*ACME           *ZZ*PW             *261130*0915*U*00401*00000000'
printf '%s1*0*P*>~GS*PO*A*P*20261130*0915*1*X*004010~ST*850*0001~BEG*00*SA*P1**20261130~SE*3*0001~GE*1*1~IEA*1*000000001~\n' "$isa" >"$T/small/a.x12"
printf '%s2*0*P*>~GS*PO*A*P*20261130*0915*2*X*004010~ST*850*0002~BEG*00*SA*P2**20261130~SE*3*0002~GE*1*2~IEA*1*000000002~\n' "$isa" >"$T/small/b.x12"
printf '%s3*0*P*>~GS*PO*A*P*20261130*0915*3*X*004010~ST*850*0003~BEG*00*SA*P3**20261130~SE*9*0003~GE*1*3~IEA*1*000000003~\n' "$isa" >"$T/small/bad.x12"
write_conf "$T/s.conf" "$T/small" "batch = 10" "batch_window = 300ms"
out=$(timeout 60 "$PD_BIN" run --once -c "$T/s.conf" 2>"$T/err2") && rc=0 || rc=$?
check "the good files are archived" archived a.x12 "$T/small"
check "... and b.x12" archived b.x12 "$T/small"
check "one request carried both, as two whole interchanges" test "$(payload_count)" -eq 1
printf '%s\n' 1/1/0001 2/2/0002 >"$T/ids/small"
# Files join a batch as they are ready: in either order.
check "the batch reads as two interchanges with their own control numbers" \
  python3 "$EDI" check --any-order x12 "$T/ids/small" "$MOCK_REC"/payloads/*
check "the damaged file is in failed/" failed bad.x12 "$T/small"
e=$(own_of "$T/small")/failed/bad.x12.error.json
check "its reason names SE01, the segment and its byte" \
  grep -q 'SE01 says 9 but 3 segments (ST to SE) are in transaction set 0003.*segment 5 of the file.*at byte 176' "$e"
kill "$MOCK_PID"

# TA1 acknowledgments and a DOS end-of-file mark (Ctrl-Z), as real trading partners send them:
# an interchange of TA1s only, then one with two TA1s before its groups, cut into chunks; each
# TA1 arrives once, in the first chunk of its interchange, and the mark is never sent (nor is
# a small file that ends in one batched as its bytes). A TA1 inside a group fails its file.
start_mock
mkdir -p "$T/acks"
isa_of() { printf 'ISA*00*          *00*          *ZZ*%-15s*ZZ*PW             *261130*0915*U*00401*%09d*0*P*>~' "$1" "$2"; }
set850() { printf 'ST*850*%s~BEG*00*SA*PO-%s**20261130~N1*ST*ACME STORE 17*92*0017~PO1*1*12*EA*4.25**VP*SKU-%s~CTT*1~SE*6*%s~\n' "$1" "$1" "$1" "$1"; }
{
  isa_of ACKS 1; printf 'TA1*000000771*261130*0915*A*000~IEA*0*000000001~\n'
  isa_of ACKS 2; printf 'TA1*000000772*261130*0915*A*000~TA1*000000773*261130*0915*R*022~\n'
  printf 'GS*PO*ACKS*PW*20261130*0915*20*X*004010~\n'
  for n in 0001 0002 0003 0004; do set850 $n; done
  printf 'GE*4*20~GS*PO*ACKS*PW*20261130*0915*21*X*004010~\n'
  for n in 0005 0006 0007; do set850 $n; done
  printf 'GE*3*21~IEA*2*000000002~\r\n\x1a\r\n'
} >"$T/acks/acks.x12"
printf '%s\n' 1/TA1/000000771 2/TA1/000000772 2/TA1/000000773 2/20/0001 2/20/0002 2/20/0003 \
  2/20/0004 2/21/0005 2/21/0006 2/21/0007 >"$T/ids/acks"
{ isa_of SMALL 5; printf 'TA1*000000774*261130*0915*A*000~GS*PO*SMALL*PW*20261130*0915*30*X*004010~'
  set850 0001; printf 'GE*1*30~IEA*1*000000005~\n'; } >"$T/small.x12"
{ cat "$T/small.x12"; printf '\x1a'; } >"$T/acks/small.x12"
{ isa_of BAD 9; printf 'GS*PO*BAD*PW*20261130*0915*40*X*004010~TA1*000000775*261130*0915*A*000~'
  set850 0001; printf 'GE*1*40~IEA*1*000000009~\n'; } >"$T/acks/bad-ta1.x12"
cp "$T/acks/acks.x12" "$T/orig-acks.x12"
PD_MAX_BODY=700 write_conf "$T/a.conf" "$T/acks" "batch = 10" "batch_window = 300ms"
out=$(timeout 60 "$PD_BIN" run --once -c "$T/a.conf" 2>"$T/err3") && rc=0 || rc=$?
check "the files with TA1s are archived" archived acks.x12 "$T/acks"
check "... and small.x12" archived small.x12 "$T/acks"
acks=$(payloads_with 'ISA*00*          *00*          *ZZ*ACKS ' | wc -l)
check "the acks file went in several chunks ($acks)" test "$acks" -ge 3
check "every chunk is interchanges with right counts; every TA1 and 850 arrived once, in order" \
  python3 "$EDI" check x12 "$T/ids/acks" $(payloads_with 'ISA*00*          *00*          *ZZ*ACKS ')
check "no request carried the Ctrl-Z" test "$(cat "$MOCK_REC"/payloads/* | tr -cd '\032' | wc -c)" -eq 0
r=$(own_of "$T/acks")/archive/acks.x12.receipt.json
check "the receipt names the TA1-only interchange by its ISA13" \
  jqe '.chunks[0].control_numbers | startswith("ISA13/GS06/ST02 000000001/-/-")' "$r"
check "the acks file is archived as it came, mark and all" cmp -s "$T/orig-acks.x12" "$(own_of "$T/acks")/archive/acks.x12"
check "the small file went whole and alone, without its mark" received "$T/small.x12"
check "the file with a TA1 inside a group is in failed/" failed bad-ta1.x12 "$T/acks"
e=$(own_of "$T/acks")/failed/bad-ta1.x12.error.json
check "its reason names the TA1, its segment, byte and line and where a TA1 belongs" \
  grep -q 'a TA1 segment inside functional group 40.*segment 3 of the file.*belongs right after the ISA, before the interchange.s first GS.*at byte 145 (line 1' "$e"
finish
