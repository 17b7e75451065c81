# Retrying: 5xx, dropped connections, timeouts and 429 are retried until the file arrives, the
# measured gaps stay inside the backoff bounds (retry_base 50ms, retry_cap 400ms), Retry-After
# is honoured and pauses every request, and max_retry_time gives up clearly.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"

mkdir -p "$T/in"
for i in $(seq 1 20); do printf '<o n="%d"/>' "$i" >"$T/in/f$i.xml"; done

# gaps: the times between consecutive start requests, one per line.
gaps() {
  jq -s '[.[] | select(.path | test("/flows/")) | .time_ms] | sort | . as $t
         | [range(1; length) | $t[.] - $t[. - 1]] | .[]' "$MOCK_REC/requests.jsonl"
}

# A file meets 500, 503, a dropped connection, 502, 504 and 408 before it gets through.
mock --script 500,503,drop,502,504,408
C=$(conf faults)
run_pd "$T/a" send -c "$C" --flow 9 "$T/in/f1.xml"
check "the file gets through after six failures (exit 0)" test "$RC" -eq 0
check "seven attempts, the last accepted" \
  test "$(starts)" -eq 7 -a "$(count '.status == 200 and (.path | test("/flows/"))')" -eq 1
check "it arrived exactly once" delivered_exactly "$T/in/f1.xml"
echo "# gaps between attempts (ms): $(gaps | tr '\n' ' ')"
ok_bounds=1 k=0
while read -r g; do
  ceil=$((50 << k)); [ $ceil -gt 400 ] && ceil=400
  # The slack covers scheduling and the 503's account pause, which uses its own draw.
  [ "$g" -le $((ceil + 400)) ] || { echo "# attempt $k: gap $g > $ceil + slack"; ok_bounds=0; }
  k=$((k + 1))
done < <(gaps)
check "every gap is within the backoff ceiling of its attempt" test $ok_bounds -eq 1
# libcurl itself resends at once on a fresh connection when a reused one died before any
# answer (the drop), so that attempt may have no note of ours.
check "each retry is announced on stderr" test "$(grep -c 'retry in' "$T/a.err")" -ge 5
kill "$MOCK_PID"

# Retry-After: 1 s is waited for, not less.
mock --script 429:1
C=$(conf retryafter)
run_pd "$T/ra" send -c "$C" --flow 9 "$T/in/f1.xml"
g=$(gaps | head -1)
echo "# gap after 429 with Retry-After: 1 -> $g ms"
check "429 with Retry-After: 1 is retried after at least a second" test "$RC" -eq 0 -a "$g" -ge 990
check "and not much later" test "$g" -le 1800
check "the note says Retry-After was honoured" grep -q 'retry in 1.000 s (Retry-After): HTTP 429' "$T/ra.err"
kill "$MOCK_PID"

# A 503 with Retry-After pauses every request of the account, not only the one that got it.
mock --script 503:1 --latency 50ms
C=$(conf pause "concurrency = 4" "rate_limit = 6000")
run_pd "$T/p" send -c "$C" --flow 9 "$T"/in/f{1..12}.xml
t503=$(jq -s '[.[] | select(.status == 503) | .time_ms] | min' "$MOCK_REC/requests.jsonl")
during=$(jq -s --argjson t "$t503" '[.[] | select(.time_ms > $t + 150 and .time_ms < $t + 950)] | length' \
  "$MOCK_REC/requests.jsonl")
check "all 12 files delivered after the pause (exit 0)" test "$RC" -eq 0
check "each of them exactly once" delivered_exactly "$T"/in/f{1..12}.xml
check "no request started while the account was paused" test "$during" -eq 0
kill "$MOCK_PID"

# Random faults: drops and 5xx on a third of the requests each; everything arrives once.
mock --drop-rate 0.3 --fail-rate 0.3 --seed 3
# A third of the requests dropped after their body arrived: each is an ambiguous retry, and a
# file may meet four in a row; this case is about retrying, so their number is not bounded.
C=$(conf random "concurrency = 6" "rate_limit = 6000" "max_ambiguous_retries = 0")
run_pd "$T/r" send -c "$C" --flow 9 "$T"/in/*.xml
check "random drops and 5xx: exit 0" test "$RC" -eq 0
check "random drops and 5xx: every file arrived exactly once" delivered_exactly "$T"/in/*.xml
kill "$MOCK_PID"

# A stalled server: the request times out (timeout = 1s) and is retried.
mock --script hang,truncate
C=$(conf hang "timeout = 1s")
run_pd "$T/h" send -c "$C" --flow 9 "$T/in/f1.xml" "$T/in/f2.xml"
check "a hung request times out and is retried; a cut answer after acceptance is not resent" \
  test "$RC" -eq 0 -a "$(starts)" -eq 3
check "both files arrived exactly once" delivered_exactly "$T/in/f1.xml" "$T/in/f2.xml"
kill "$MOCK_PID"

# max_retry_time: a server failing for good makes the file fail, clearly, with exit 1.
mock --script 500,500,500,500,500,500,500,500,500,500,500,500,500,500,500,500
C=$(conf giveup "max_retry_time = 300ms")
run_pd "$T/g" send -c "$C" --flow 9 "$T/in/f1.xml"
check "max_retry_time gives up with exit 1" test "$RC" -eq 1
check "the reason is printed" grep -q 'chunk 1/1.*HTTP 500, REJECTED: gave up after [0-9]* attempts' "$T/g.out"

check "no secret in any output" no_secret "$T"/*.out "$T"/*.err "$MOCK_REC"
finish
