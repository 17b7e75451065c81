# rediss://: two hosts share one account through a Redis that speaks only TLS (its tls-port, a
# certificate for 127.0.0.1 signed by a CA of the test's). With ca_file that CA, every file
# arrives once, one login serves both hosts (the token went through Redis over TLS) and status
# --cluster lists both. With another CA the certificate is refused, said once in the log with
# what to do, and the host delivers everything on its own share; tls_verify = no connects
# anyway and warns loudly.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
. "$(dirname "$0")/lib_cluster.bash"
command -v openssl >/dev/null || { echo "skip: openssl missing"; exit 77; }
N=${PD_CLUSTER_N:-20}

# ca NAME: a self-signed CA ($T/NAME.pem, $T/NAME.key).
ca() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=patchdrop test $1" -keyout "$T/$1.key" -out "$T/$1.pem" 2>/dev/null
}
ca ca
ca other
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=127.0.0.1 \
  -keyout "$T/server.key" -out "$T/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$T/server.ext"
openssl x509 -req -in "$T/server.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial \
  -days 2 -extfile "$T/server.ext" -out "$T/server.pem" 2>/dev/null
chmod 600 "$T"/*.key
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_redis --tls-port "$PORT" --tls-cert-file "$T/server.pem" --tls-key-file "$T/server.key" \
  --tls-ca-cert-file "$T/ca.pem" --tls-auth-clients no
tcli() { "$REDIS_CLI" --tls --cacert "$T/ca.pem" -h 127.0.0.1 -p "$PORT" "$@" 2>/dev/null; }
export -f tcli
export REDIS_CLI T PORT
check "Redis answers over TLS on 127.0.0.1:$PORT" wait_for 10 bash -c '[ "$(tcli PING)" = PONG ]'

start_mock

# tls_host NAME [cluster keys...]: host NAME on rediss:// with N files of its own.
tls_host() {
  local h=$1; shift
  host_conf "$h" "$T/$h"
  sed -i "s|^redis = unix:.*|redis = rediss://127.0.0.1:$PORT/0|" "$T/$h.conf"
  for kv in "$@"; do echo "$kv" >>"$T/$h.conf"; done
  for i in $(seq 1 "$N"); do echo "$h $i" >"$T/$h/$h$i.txt"; done
}
delivered() { [ "$(archived_count "$T/$1")" -eq "$N" ]; }
once_each() { # once_each HOST...: each file of these hosts arrived exactly once
  local h
  for h in "$@"; do
    [ "$(payloads_of "$h")" -eq "$N" ] || return 1
  done
  [ -z "$(cat "$MOCK_REC"/payloads/* | sort | uniq -d)" ]
}

# 1. The right CA: two hosts through Redis over TLS.
tls_host a "ca_file = $T/ca.pem"
tls_host b "ca_file = $T/ca.pem"
start_host a
start_host b
check "both hosts deliver their $N files each" wait_for 30 bash -c \
  "$(declare -f archived_count delivered); N=$N T=$T; delivered a && delivered b"
check "each file of a and b arrived exactly once" once_each a b
check "one login for both hosts ($(logins)): the token was shared through Redis" test "$(logins)" -eq 1
check "redis-cli --tls sees the shared token and both hosts' heartbeats" wait_for 10 bash -c \
  'tcli --scan --pattern "*login:token" | grep -q . && [ $(tcli --scan --pattern "*:host:*" | wc -l) -eq 2 ]'
check "the bridge's socket is in a private directory of the state dir" bash -c \
  "[ \$(stat -c %a '$T'/a.state/redis-tls.*) = 700 ] && test -S '$T'/a.state/redis-tls.*/s"
timeout 20 "$PD_BIN" status -c "$T/a.conf" --cluster --json >"$T/hosts.json" 2>"$T/hosts.err" || true
check "status --cluster (over TLS too) lists both hosts, alive" \
  jqe '[.hosts[] | select(.alive) | .name] | sort == ["a", "b"]' "$T/hosts.json"
# A large answer (a 300 kB summary) crosses the bridge whole, in many TLS records.
hosts_key=$(tcli --scan --pattern '*:hosts' | head -1)
python3 -c 'import json; print(json.dumps({"pad": "x" * 300000}), end="")' | tcli -x SET "${hosts_key%hosts}host:big" >/dev/null
tcli ZADD "$hosts_key" "$(date +%s%3N)" big >/dev/null
timeout 20 "$PD_BIN" status -c "$T/b.conf" --cluster --json >"$T/hosts2.json" 2>"$T/hosts2.err" || true
check "a 300 kB answer from Redis arrives whole through the bridge" \
  jqe '.hosts[] | select(.name == "big") | .summary.pad | length == 300000' "$T/hosts2.json"
stop_host a
stop_host b
check "neither host lost Redis: no fallback, no TLS failure" bash -c \
  "! grep -qE 'event=cluster_(fallback|unreachable|tls_failed)' '$T/a.err' '$T/b.err'"
check "the bridge left nothing behind in the state dir" bash -c "! ls -d '$T'/a.state/redis-tls.* 2>/dev/null"

# 2. Another CA: the certificate is refused; the host goes on alone, on its share.
tls_host c "ca_file = $T/other.pem"
start_host c
check "with the wrong CA the host still delivers its $N files (on its own share)" wait_for 30 bash -c \
  "$(declare -f archived_count delivered); N=$N T=$T; delivered c"
stop_host c
check "each file of c arrived exactly once" once_each c
check "its log says the TLS verification of 127.0.0.1 failed and names ca_file" \
  grep -qE 'event=cluster_tls_failed redis=127.0.0.1:[0-9]+ reason="TLS verification of 127.0.0.1 failed: .*ca_file' "$T/c.err"
check "said once, not at every retry ($(grep -c event=cluster_tls_failed "$T/c.err"))" \
  test "$(grep -c event=cluster_tls_failed "$T/c.err")" -eq 1
check "and it fell back to its share" grep -q event=cluster_fallback "$T/c.err"
run_pd "$T/status_c" status -c "$T/c.conf" --cluster
check "status --cluster with the wrong CA fails (exit $RC) saying why" bash -c \
  "test $RC -ne 0 && grep -q 'TLS verification of 127.0.0.1 failed.*ca_file' '$T/status_c.err'"
(umask 077; sed "s|^redis = .*|redis = rediss://localhost:$PORT/0|" "$T/a.conf" >"$T/byname.conf")
run_pd "$T/status_n" status -c "$T/byname.conf" --cluster
check "the right CA but a certificate for 127.0.0.1 reached as localhost: refused (exit $RC)" \
  bash -c "test $RC -ne 0 && grep -qi 'TLS verification of localhost failed: hostname mismatch' '$T/status_n.err'"

# 3. tls_verify = no against the wrong CA: connects, with a loud warning.
tls_host d "ca_file = $T/other.pem" "tls_verify = no"
run_pd "$T/check" check-config -c "$T/d.conf"
check "check-config warns that Redis's certificate is not checked" \
  grep -q "WARNING: tls_verify = no in \[cluster\]" "$T/check.err"
start_host d
check "with tls_verify = no the host delivers its $N files" wait_for 30 bash -c \
  "$(declare -f archived_count delivered); N=$N T=$T; delivered d"
stop_host d
check "each file of d arrived exactly once" once_each d
check "its log warns at start that the certificate is NOT checked" \
  grep -q 'event=cluster_tls_verify_off.*NOT checked' "$T/d.err"
check "and it used Redis: no TLS failure, no fallback" bash -c \
  "! grep -qE 'event=cluster_(fallback|tls_failed)' '$T/d.err'"

# 4. Redis asks for client certificates (tls-auth-clients yes): without one the host is told
# what to set; with tls_cert_file and tls_key_file (signed by Redis's CA) it is in.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=patchdrop \
  -keyout "$T/client.key" -out "$T/client.csr" 2>/dev/null
openssl x509 -req -in "$T/client.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial \
  -days 2 -out "$T/client.pem" 2>/dev/null
chmod 600 "$T/client.key"
stop_redis
start_redis --tls-port "$PORT" --tls-cert-file "$T/server.pem" --tls-key-file "$T/server.key" \
  --tls-ca-cert-file "$T/ca.pem" --tls-auth-clients yes
run_pd "$T/status_nocert" status -c "$T/a.conf" --cluster
check "without a client certificate status --cluster fails (exit $RC) naming tls_cert_file" \
  bash -c "test $RC -ne 0 && grep -q 'tls_cert_file and tls_key_file' '$T/status_nocert.err'"
printf 'tls_cert_file = %s\ntls_key_file = %s\n' "$T/client.pem" "$T/client.key" >>"$T/a.conf"
run_pd "$T/status_cert" status -c "$T/a.conf" --cluster --json
check "with tls_cert_file and tls_key_file it reads Redis (exit $RC)" \
  jqe '.hosts | type == "array"' "$T/status_cert.out"

# 5. Redis killed and started again under a running host: it falls back, then rejoins through
# the bridge; a TLS session cut without close_notify is no TLS failure.
# Beside it: the directory of a bridge killed outright a while ago (swept at start), and that of
# one just setting up (kept).
for d in stale fresh; do
  mkdir -m 700 "$T/a.state/redis-tls.$d"
  python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$T/a.state/redis-tls.$d/s"
done
touch -d '5 minutes ago' "$T/a.state/redis-tls.stale"
: >"$T/a.err"
start_host a
on_redis() { timeout 20 "$PD_BIN" status -c "$T/a.conf" --json | jq -e '.account.cluster.connected' >/dev/null; }
check "host a is on Redis with its client certificate" wait_for 15 on_redis
stop_redis
check "Redis killed: host a falls back" wait_for 15 grep -q event=cluster_fallback "$T/a.err"
start_redis --tls-port "$PORT" --tls-cert-file "$T/server.pem" --tls-key-file "$T/server.key" \
  --tls-ca-cert-file "$T/ca.pem" --tls-auth-clients yes
check "Redis back: host a rejoins through the bridge" wait_for 20 grep -q event=cluster_rejoined "$T/a.err"
stop_host a
check "the cut session was no TLS failure" bash -c "! grep -q event=cluster_tls_failed.*session '$T/a.err'"
check "a killed bridge's old directory is swept, a new one's kept, its own removed" bash -c \
  "[ \"\$(cd '$T/a.state' && echo redis-tls.*)\" = redis-tls.fresh ]"
finish
