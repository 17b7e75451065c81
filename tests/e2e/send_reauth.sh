# Logging in only when needed: 50 requests refused with 401 at once cost exactly one login, a
# token that expires mid-run costs one login per expiry and no file, and random revocations
# never lose or repeat a file.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"

mkdir -p "$T/in"
for i in $(seq 1 50); do printf '{"n":%d}' "$i" >"$T/in/f$i.json"; done

# 50 concurrent 401s: the first 50 start requests are refused and their token revoked.
script=$(printf '401,%.0s' $(seq 1 50)); script=${script%,}
mock --script "$script" --latency 100ms
C=$(conf burst "concurrency = 50" "rate_limit = 6000")
run_pd "$T/b" send -c "$C" --flow 5 "$T"/in/*.json
check "all 50 files delivered after the 401s (exit 0)" test "$RC" -eq 0
check "the server refused 50 requests with 401" test "$(count '.status == 401')" -eq 50
check "exactly one login besides the first" test "$(logins)" -eq 2
check "every file arrived exactly once" delivered_exactly "$T"/in/*.json
kill "$MOCK_PID"

# A token living 2 s while the run takes about 3 s: renewed once, nothing fails.
mock --token-ttl 2s --latency 300ms
C=$(conf expiry "concurrency = 1")
run_pd "$T/e" send -c "$C" --flow 5 "$T"/in/f{1..10}.json
check "the run survives the token's expiry (exit 0)" test "$RC" -eq 0
check "every file arrived exactly once" delivered_exactly "$T"/in/f{1..10}.json
first=$(jq -s 'map(.time_ms) | min' "$MOCK_REC/requests.jsonl")
last=$(jq -s 'map(.time_ms) | max' "$MOCK_REC/requests.jsonl")
expiries=$(( (last - first) / 1800 ))
echo "# run took $((last - first)) ms, $(logins) logins, $(count '.status == 401') answers 401"
check "one login per expiry, no more" \
  test "$(logins)" -ge 2 -a "$(logins)" -le $((1 + expiries + 1))
kill "$MOCK_PID"

# Tokens revoked at random (a third of the requests): every file still arrives once.
mock --fail-401-rate 0.3 --seed 7
C=$(conf random "concurrency = 8" "rate_limit = 6000")
run_pd "$T/r" send -c "$C" --flow 5 "$T"/in/f{1..30}.json
check "random 401s: exit 0" test "$RC" -eq 0
check "random 401s: every file arrived exactly once" delivered_exactly "$T"/in/f{1..30}.json
check "random 401s: never more logins than 401 answers plus one" \
  test "$(logins)" -le $(( $(count '.status == 401') + 1 ))

check "no secret in any output" no_secret "$T"/*.out "$T"/*.err "$MOCK_REC"
finish
