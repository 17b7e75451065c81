# `patchdrop send`, `login` and `status` against patchdrop-mock: what arrives is exactly the
# files' bytes, one line per chunk with its run id, the token is reused across runs, clear
# refusals, and no secret in any output.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"

mock
C=$(conf basic)
mkdir -p "$T/in"
printf '{"order":"A-1","note":"say \\"hi\\"\\n\\ttab","price":12.5}\n' >"$T/in/a.json"
printf 'id,name\n1,Zoë\n2,"Smith, J"\n' >"$T/in/b.csv"
printf '<?xml version="1.0"?>\n<orders><order id="1">€ &amp; ü</order></orders>\n' >"$T/in/c.xml"
printf 'ctrl\001\037 and \\ backslash' >"$T/in/d.txt"

run_pd "$T/s1" send -c "$C" --flow 12 --flow-version 3 "$T"/in/*
check "send exits 0 when everything is delivered" test "$RC" -eq 0
check "one line per chunk, each with its flow run id" \
  test "$(grep -c 'chunk 1/1, .* bytes, HTTP 200, flow run [0-9]' "$T/s1.out")" -eq 4
check "the payloads that arrived are exactly the files' bytes" delivered_exactly "$T"/in/*
check "they went to /flows/12/start/3" test "$(count '.path == "/api/v1/flows/12/start/3"')" -eq 4
check "one login for the run" test "$(logins)" -eq 1
check "the token is kept with mode 600" test "$(stat -c %a "$T/state.basic/token")" = 600

run_pd "$T/s2" send -c "$C" --flow 12 "$T/in/a.json"
check "a second run reuses the kept token: no new login" test "$(logins)" -eq 1
check "without --flow-version the flow's deployed version is used" \
  test "$(count '.path == "/api/v1/flows/12/start"')" -eq 1

mkdir -p "$T/drop"
add_watch "$C" orders "$T/drop" 77 "version_id = 8"
run_pd "$T/s3" send -c "$C" --watch orders "$T/in/b.csv"
check "--watch uses the watch's flow and version" \
  test "$RC" -eq 0 -a "$(count '.path == "/api/v1/flows/77/start/8"')" -eq 1

run_id=$(grep -o 'flow run [0-9]*' "$T/s1.out" | head -1 | cut -d' ' -f3)
run_pd "$T/st" status -c "$C" "$run_id"
check "status prints the run's status in words" grep -qE "^flow run $run_id: (running|success|failed|stopped|partial success)" "$T/st.out"
run_pd "$T/st404" status -c "$C" 999999
check "status of an unknown run exits 1 and says why" \
  bash -c "[ $RC -eq 1 ] && grep -q 'HTTP 404' '$T/st404.err'"

run_pd "$T/login" login -c "$C"
check "login checks the credentials and prints the expiry" \
  bash -c "[ $RC -eq 0 ] && grep -q 'token expires' '$T/login.out'"
check "login logged in afresh" test "$(logins)" -eq 2

# Refusals the user must understand.
: >"$T/in2-empty.txt"
printf 'caf\xe9\n' >"$T/latin1.txt"
head -c 3000 /dev/zero | tr '\0' 'x' >"$T/big.txt"
C2=$(conf small "max_body = 1000")
before=$(starts)
run_pd "$T/rej" send -c "$C2" --flow 12 "$T/in2-empty.txt" "$T/latin1.txt" "$T/big.txt" "$T/in/a.json"
check "files that cannot be sent make the exit status 1" test "$RC" -eq 1
check "an empty file is refused clearly" grep -q "in2-empty.txt: FAILED: the file is empty" "$T/rej.out"
check "text that is not UTF-8 names the byte" grep -q "latin1.txt: FAILED: invalid UTF-8 at byte 3" "$T/rej.out"
check "a record over max_body is refused, naming the limit" grep -q "big.txt: FAILED: record 1 at byte 0 is 3000 bytes encoded, .*max_body 1000" "$T/rej.out"
check "nothing of a refused file was sent" test "$(starts)" -eq $((before + 1))
check "the other files are still delivered" grep -q "a.json: chunk 1/1.*flow run" "$T/rej.out"

run_pd "$T/u1" send -c "$C" "$T/in/a.json"
check "send without --flow or --watch is a usage error (2)" test "$RC" -eq 2
run_pd "$T/u2" send -c "$C" --watch nope "$T/in/a.json"
check "an unknown watch is a usage error (2)" bash -c "[ $RC -eq 2 ] && grep -q 'no \[watch:nope\]' '$T/u2.err'"
run_pd "$T/u3" send -c "$C" --flow '../x' "$T/in/a.json"
check "a flow id that would change the URL is refused (2)" test "$RC" -eq 2

# Wrong password: a configuration error naming the credential, never its value.
C3=$(conf wrongpw)
sed -i "s/^password = .*/password = not-$PW/" "$C3"
run_pd "$T/bad" send -c "$C3" --flow 12 "$T/in/a.json"
check "refused credentials exit 2" test "$RC" -eq 2
check "the message names the email and where the password came from" \
  grep -q 'check the email "demo@example.com" and the password from password in' "$T/bad.err"
check "the wrong password is not printed" bash -c "! grep -qF 'not-$PW' '$T/bad.err' '$T/bad.out'"
run_pd "$T/badlogin" login -c "$C3"
check "login with refused credentials exits 2" test "$RC" -eq 2

check "no secret in any output or file patchdrop wrote" \
  no_secret "$T"/*.out "$T"/*.err "$MOCK_REC"
finish
