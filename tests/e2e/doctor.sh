# `patchdrop doctor` against patchdrop-mock: a healthy emulator (every check ok, nothing started
# unless --start-test), a wrong password (login FAIL with what to do, never the password), a TLS
# server whose self-signed certificate is refused (FAIL naming the certificate), an emulator
# answering in another shape (--shape: doctor names the key it expected and the keys it saw),
# --json for scripts, and the refusals of the command line.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"

ME=$(id -un)
# doctor OUT args...: patchdrop doctor, checking access as ourselves (as root it would check as
# the user patchdrop, which cannot enter this test's private folder).
doctor() {
  local out=$1; shift
  run_pd "$out" doctor --user "$ME" "$@"
}

# dconf NAME [KEY VALUE]...: conf's config with every endpoint on the emulator (no check may
# reach beyond this machine), KEY set to VALUE in [patchworks]; prints its path.
dconf() {
  local f
  f=$(conf "$1" "lookups_url = $MOCK_URL/core-main/api/v1"); shift
  while [ $# -ge 2 ]; do
    sed -i "/^$1 = /d" "$f"
    sed -i "s|^\[state\]\$|$1 = $2\n[state]|" "$f"
    shift 2
  done
  echo "$f"
}

# A port that nothing listens on: one the kernel gave and took back.
CLOSED_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# ---- a healthy emulator ----
mock
C=$(dconf healthy)
doctor "$T/h" -c "$C"
check "a healthy emulator: exit 0" test "$RC" -eq 0
check "one line per check, each ok or skip" \
  bash -c "! grep -vE '^(ok|skip) +[a-z]' '$T/h.out' | grep -v '^[0-9]* ok, 0 warnings, 0 failed'"
check "it checked the config, access, DNS, TCP, the login and the lookups list" \
  bash -c "for n in config 'access as $ME' 'dns login_url' 'tcp login_url' login lookups \
    'shape login token' 'shape lookups'; do grep -q \"^ok  *\$n: \" '$T/h.out' || exit 1; done"
check "it says when the token expires" grep -qE '^ok +login: logged in as demo@example.com .* expires in 2[34]h' "$T/h.out"
check "it says where the token and the lookups list were" \
  bash -c "grep -q 'the token in \"token\", as expected' '$T/h.out' && grep -q 'the list in \"data\[\]\"' '$T/h.out'"
check "it started no flow" test "$(starts)" -eq 0
check "it kept no token in the state dir" test ! -e "$T/state.healthy/token"

doctor "$T/st" -c "$C" --start-test 12:3
run_id=$(sed -n 's/^ok  *start-test: started flow 12 version 3 at .*: flow run \([0-9]*\)$/\1/p' "$T/st.out")
check "--start-test starts the flow and shows the run id" test -n "$run_id"
n_started=$(count '.path == "/api/v1/flows/12/start/3"')
check "one start request, to flow 12 version 3, with a tiny payload" \
  bash -c "[ $n_started -eq 1 ] && [ $(starts) -eq 1 ] && grep -q patchdrop_doctor '$MOCK_REC'/payloads/*"
check "and reads the run it started: where its status is" \
  bash -c "[ $RC -eq 0 ] && grep -q '^ok  *flow-run: flow run $run_id at ' '$T/st.out' &&
    grep -q '^ok  *shape flow-run: the run.s status in \"data.attributes.status\"' '$T/st.out'"

doctor "$T/fr" -c "$C" --flow-run "$run_id" --json
check "--json prints one JSON document, status ok, each check with name, status, detail, fix" \
  bash -c "[ $RC -eq 0 ] && jq -e '.status == \"ok\" and (.checks | length > 5) and
    all(.checks[]; has(\"name\") and has(\"status\") and has(\"detail\") and has(\"fix\"))
    and any(.checks[]; .name == \"flow-run\" and .status == \"ok\")' '$T/fr.out' >/dev/null"
check "--flow-run reads the run, starting nothing" test "$(starts)" -eq 1

# ---- a wrong password ----
WRONG="wrong-Pw-4k2-never-shown-$RANDOM"
PD_SECRETS+=("$WRONG")
CW=$(dconf wrong password "$WRONG")
doctor "$T/w" -c "$CW"
check "a wrong password: exit 1" test "$RC" -eq 1
check "the login FAILs, saying what was refused and what to do" \
  grep -qE '^FAIL +login: Patchworks refused the login at .*login \(HTTP 401.* -> check the email "demo@example.com" and the password from password in .*wrong.conf' "$T/w.out"
check "the calls that need a login are skipped, not failed" grep -qE '^skip +lookups: not tried: no login' "$T/w.out"
check "the password is in no output" bash -c "! grep -qF -- '$WRONG' '$T/w.out' '$T/w.err'"

doctor "$T/wj" -c "$CW" --json
check "--json: status fail, the login check with its fix" \
  bash -c "[ $RC -eq 1 ] && jq -e '.status == \"fail\" and any(.checks[]; .name == \"login\" and
    .status == \"fail\" and (.fix | test(\"password\")))' '$T/wj.out' >/dev/null"

# ---- answers in another shape ----
kill "$MOCK_PID" 2>/dev/null || true
mock --shape login
CS=$(dconf shape)
doctor "$T/s" -c "$CS"
check "a login answer in another shape: exit 1" test "$RC" -eq 1
check "it names the keys it expected for the token and the keys it saw" \
  grep -qE '^FAIL +shape login token: the token: expected in token, access_token, data.token, data.access_token; the answer has: message, jwt, expires' "$T/s.out"

kill "$MOCK_PID" 2>/dev/null || true
mock --api-key "$APIKEY" --shape lookups,run
CK=$(dconf key api_key "$APIKEY")
sed -i '/^email = /d; /^password = /d' "$CK"
doctor "$T/k" -c "$CK" --start-test 12
check "an API key skips the login check" grep -qE '^skip +login: an API key is configured' "$T/k.out"
check "the lookups list in another shape: expected data[], saw items[]" \
  grep -qE '^FAIL +shape lookups: the list: expected in data\[\], \[\]; the answer has: .*items\[\]' "$T/k.out"
check "a run in another shape: expected status, saw data.attributes.state" \
  grep -qE '^FAIL +shape flow-run: the run.s status: expected in status, .*; the answer has: .*data\.attributes\.state' "$T/k.out"
check "no value of an answer is printed (no token, no key)" \
  bash -c "[ $RC -eq 1 ] && ! grep -qF -- '$APIKEY' '$T/k.out' '$T/k.err'"

CB=$(dconf badkey api_key "key-wrong-$RANDOM-never-shown")
sed -i '/^email = /d; /^password = /d' "$CB"
doctor "$T/b" -c "$CB"
check "a wrong API key: the lookups list FAILs, saying the credentials were refused and what to do" \
  bash -c "[ $RC -eq 1 ] && grep -qE '^FAIL +lookups: .* refused the credentials: .* -> check the API key' '$T/b.out'"

# ---- a refused TLS certificate ----
if command -v openssl >/dev/null && openssl req -x509 -newkey rsa:2048 -nodes -days 30 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost -keyout "$T/key.pem" \
  -out "$T/cert.pem" >/dev/null 2>&1; then
  openssl s_server -accept 127.0.0.1:0 -cert "$T/cert.pem" -key "$T/key.pem" -www \
    >"$T/tls.out" 2>&1 &
  PD_PIDS+=("$!")
  wait_for 10 grep -q '^ACCEPT' "$T/tls.out" || true
  TP=$(sed -n 's/^ACCEPT .*:\([0-9]*\)$/\1/p' "$T/tls.out")
  # On lookups_url: the login goes to the emulator, so the list is what cannot be reached.
  CT=$(dconf tls lookups_url "https://localhost:$TP/core-main/api/v1")
  doctor "$T/t" -c "$CT"
  check "a refused certificate: exit 1" test "$RC" -eq 1
  check "the TLS check FAILs naming the problem and the certificate presented" \
    grep -qE "^FAIL +tls lookups_url: certificate refused: .*self[- ]signed.*; localhost:$TP presented subject CN=localhost, issued by CN=localhost, expires in (29|30) days -> .*set ca_file" "$T/t.out"
  check "the lookups list is not asked for through it" \
    grep -qE '^skip +lookups: not tried: lookups_url cannot be reached' "$T/t.out"
  check "no secret in the output" bash -c "! grep -qF -- '$PW' '$T/t.out' '$T/t.err'"

  CA=$(dconf tlsca lookups_url "https://localhost:$TP/core-main/api/v1" ca_file "$T/cert.pem")
  doctor "$T/ta" -c "$CA"
  check "with ca_file naming the certificate, the certificate is verified, with its expiry" \
    grep -qE '^ok +tls lookups_url: certificate of localhost verified: subject CN=localhost, issued by CN=localhost, expires in (29|30) days' "$T/ta.out"
  CV=$(dconf tlsno lookups_url "https://localhost:$TP/core-main/api/v1" tls_verify no)
  doctor "$T/tv" -c "$CV"
  check "with tls_verify = no, the handshake passes with a warning that nothing was checked" \
    grep -qE '^warn +tls lookups_url: TLS handshake with localhost:[0-9]+ passed, the certificate NOT checked \(tls_verify = no\): subject CN=localhost -> remove tls_verify = no' "$T/tv.out"
  # A certificate that runs out within 14 days is a warning, not a failure.
  openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost -keyout "$T/key7.pem" -out "$T/cert7.pem" >/dev/null 2>&1
  openssl s_server -accept 127.0.0.1:0 -cert "$T/cert7.pem" -key "$T/key7.pem" -www \
    >"$T/tls7.out" 2>&1 &
  PD_PIDS+=("$!")
  wait_for 10 grep -q '^ACCEPT' "$T/tls7.out" || true
  TP7=$(sed -n 's/^ACCEPT .*:\([0-9]*\)$/\1/p' "$T/tls7.out")
  C7=$(dconf tls7 lookups_url "https://localhost:$TP7/core-main/api/v1" ca_file "$T/cert7.pem")
  doctor "$T/t7" -c "$C7"
  check "a certificate with 7 days left: a warning with what to do" \
    grep -qE '^warn +tls lookups_url: certificate of localhost .* expires in [67] days -> .*renew' "$T/t7.out"
else
  echo "# openssl cannot make a certificate here: the TLS case is skipped"
fi

# ---- what cannot be reached ----
# (A name that does not resolve is not tried: it would ask this machine's DNS server, and tests
# send nothing beyond this machine.)
CN=$(dconf closed start_url "http://127.0.0.1:$CLOSED_PORT/api/v1")
doctor "$T/n" -c "$CN" --start-test 12
check "a port nobody listens on: the TCP check FAILs with what to check; the start is skipped" \
  bash -c "[ $RC -eq 1 ] && grep -qE '^FAIL +tcp start_url: cannot connect to 127.0.0.1 port $CLOSED_PORT \(127.0.0.1\): Connection refused -> check the port' '$T/n.out' &&
    grep -qE '^skip +start-test: not tried: start_url cannot be reached' '$T/n.out'"

# ---- the command line ----
doctor "$T/u1" -c "$C" --start-test 'a/b'
check "--start-test with a bad id: exit 2" bash -c "[ $RC -eq 2 ] && grep -q 'expected FLOW or FLOW:VERSION' '$T/u1.err'"
doctor "$T/u2" -c "$C" --flow-run ../x
check "--flow-run with a bad id: exit 2" bash -c "[ $RC -eq 2 ] && grep -q 'is not a flow run id' '$T/u2.err'"
doctor "$T/u3" -c "$T/missing.conf" --json
check "a config that cannot be loaded: exit 2, and --json still prints one document" \
  bash -c "[ $RC -eq 2 ] && jq -e '.status == \"fail\" and .checks[0].name == \"config\"' '$T/u3.out' >/dev/null"
check "no start request from any of it but --start-test's" test "$(starts)" -le 1
doctor "$T/u4" -c "$C" --user no-such-user-pd
check "--user naming nobody: exit 2" bash -c "[ $RC -eq 2 ] && grep -q 'no such user' '$T/u4.err'"
RC=0
"$PD_MOCK" --shape login,nope >"$T/ms.out" 2>&1 || RC=$?
check "patchdrop-mock --shape refuses what it does not know: exit 2, saying what" \
  bash -c "[ $RC -eq 2 ] && grep -q \"'nope' is not login, lookups or run\" '$T/ms.out'"

# ---- as root, access is checked as the service's user ----
if [ "$(id -u)" -eq 0 ] && id patchdrop >/dev/null 2>&1; then
  run_pd "$T/r" doctor -c "$C"
  check "as root, without --user, access is checked as patchdrop, which cannot read this config" \
    bash -c "[ $RC -eq 1 ] && grep -qE '^FAIL +access as patchdrop: .*$C' '$T/r.out'"
else
  echo "# not root, or no user patchdrop here: access as the service's user not checked"
fi
# As root, another user's view is taken in a child with that user's ids: what it says arrives.
if [ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1; then
  run_pd "$T/nb" doctor -c "$C" --user nobody
  check "as root, --user nobody: each thing nobody cannot reach is a FAIL line with its fix" \
    bash -c "[ $RC -eq 1 ] && grep -qE '^FAIL +access as nobody: .*$C.*(chmod|chgrp|setfacl)' '$T/nb.out'"
fi

finish
