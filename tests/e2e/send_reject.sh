# Refusals: a 422 comes back as a rejection with the server's message (exit 1) and the other
# files still go; a 413 is reported; API-key mode sends the raw key and never logs in, and a
# refused key is a configuration error (exit 2).
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"

mkdir -p "$T/in"
printf '{"a":1}' >"$T/in/one.json"
printf '{"b":2}' >"$T/in/two.json"

mock --script 422
C=$(conf reject "concurrency = 1")
run_pd "$T/r" send -c "$C" --flow 4 "$T/in/one.json" "$T/in/two.json"
check "a rejected file makes the exit status 1" test "$RC" -eq 1
check "the rejection carries the server's message" \
  grep -q 'one.json: chunk 1/1, 7 bytes, REJECTED: HTTP 422: The payload field is required.' "$T/r.out"
check "the status is said once (no HTTP 422: HTTP 422)" bash -c "! grep -q 'HTTP 422.*HTTP 422' '$T/r.out'"
check "the rejected file is not retried" test "$(count '.status == 422')" -eq 1 -a "$(starts)" -eq 2
check "the other file is delivered" grep -q 'two.json: chunk 1/1, 7 bytes, HTTP 200, flow run' "$T/r.out"
kill "$MOCK_PID"

mock --max-body 30 --api-key "$APIKEY"
C=$(conf toolarge "api_key = $APIKEY")
printf '{"payload is longer":"than twenty bytes"}' >"$T/in/long.json"
run_pd "$T/big" send -c "$C" --flow 4 "$T/in/long.json"
# The same 413 rule as the daemon's (pd_deliver.h): cut smaller while the record may fit, then
# refused with the reason.
check "a 413 is reported as too large (exit 1)" \
  bash -c "[ $RC -eq 1 ] && grep -q 'HTTP 413, too large for the server: cutting it smaller' '$T/big.out' &&
    grep -q 'long.json: FAILED: Patchworks refused a [0-9]*-byte request as too large (HTTP 413)' '$T/big.out'"
kill "$MOCK_PID"

mock --api-key "$APIKEY"
C=$(conf key "api_key = $APIKEY")
run_pd "$T/k" send -c "$C" --flow 4 "$T/in/one.json"
check "API-key mode delivers (exit 0)" test "$RC" -eq 0
check "API-key mode never logs in" test "$(logins)" -eq 0
run_pd "$T/kl" login -c "$C"
check "login in API-key mode checks the key" \
  bash -c "[ $RC -eq 0 ] && grep -q 'API key was not refused' '$T/kl.out'"
C2=$(conf badkey "api_key = wrong-$APIKEY")
run_pd "$T/kb" send -c "$C2" --flow 4 "$T/in/one.json"
check "a refused API key is a configuration error (exit 2)" test "$RC" -eq 2
check "the message says which key was refused, not its value" \
  bash -c "grep -q 'refused the API key (HTTP 401) from api_key in' '$T/kb.err' && ! grep -qF '$APIKEY' '$T/kb.err'"

# A login URL that is wrong is a configuration error that says so, not a credential problem.
C3=$(conf badurl)
sed -i "s|^login_url = .*|login_url = $MOCK_URL/no/such/login|" "$C3"
run_pd "$T/bu" send -c "$C3" --flow 4 "$T/in/one.json"
check "a wrong login_url exits 2 and points at login_url" \
  bash -c "[ $RC -eq 2 ] && grep -q 'HTTP 404.*check login_url' '$T/bu.err'"

check "no secret in any output" no_secret "$T"/*.out "$T"/*.err "$MOCK_REC"
finish
