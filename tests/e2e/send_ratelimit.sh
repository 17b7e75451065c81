# The account's pace: with rate_limit = 300 per minute (a burst of 15, then 5 per second), the
# requests the emulator saw never exceed burst + rate x time in any window, and the emulator's
# own limiter (21 per 1 s window) never had to say 429.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"

mkdir -p "$T/in"
for i in $(seq 1 40); do printf '%d\n' "$i" >"$T/in/f$i.txt"; done
mock --rate-limit 21 --rate-window 1s
C=$(conf pace "rate_limit = 300" "concurrency = 8")
run_pd "$T/p" send -c "$C" --flow 1 "$T"/in/*.txt
check "all 40 files delivered (exit 0)" test "$RC" -eq 0
check "every file arrived exactly once" delivered_exactly "$T"/in/*.txt
check "the emulator never had to refuse with 429" test "$(count '.status == 429')" -eq 0
worst=$(jq -s '[.[].time_ms] | sort | . as $t | [range(0; length) as $i | range($i; length) as $j
  | ($j - $i + 1) - (15 + 5 * ($t[$j] - $t[$i]) / 1000)] | max' "$MOCK_REC/requests.jsonl")
echo "# requests: $(count 'true'); worst excess over burst + rate x time: $worst"
check "no window holds more than burst + rate x time (1 request of slack)" \
  jq -n --argjson w "$worst" '$w <= 1' -e
span=$(jq -s '[.[].time_ms] | max - min' "$MOCK_REC/requests.jsonl")
check "41 requests at 5/s after a burst of 15 took at least 4.5 s ($span ms)" test "$span" -ge 4500
finish
