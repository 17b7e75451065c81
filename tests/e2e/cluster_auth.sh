# [cluster] password_file: a Redis that asks for a password is used with the one in the file
# (as the ACL user the README proposes),
# which never shows in a log, a status document or anything else the test leaves; a wrong one
# is said clearly (Redis's words, never the password) and the host goes on alone on its share.
# rediss:// with a ca_file that is not there is refused by check-config, naming the key.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
. "$(dirname "$0")/lib_cluster.bash"
REDIS_PW="redis-pw-Kq3-never-shown-$RANDOM"
PD_SECRETS+=("$REDIS_PW")
start_redis
start_mock
# Host a signs in as the ACL user the README proposes: its keys and the commands it runs only.
rcli ACL SETUSER patchdrop on ">$REDIS_PW" '~patchdrop:*' +@scripting +@read +@write +time \
  +ping +select >/dev/null
(umask 077; echo "patchdrop $REDIS_PW" >"$T/redis.secret"; echo "wrong-$REDIS_PW" >"$T/wrong.secret")
host_conf a "$T/a"
echo "password_file = $T/redis.secret" >>"$T/a.conf"
echo "one" >"$T/a/one.txt"
start_host a
check "the file is delivered" wait_for 20 archived one.txt "$T/a"
check "host a is on Redis (authenticated)" wait_for 10 bash -c \
  "timeout 20 '$PD_BIN' status -c '$T/a.conf' --json | jq -e '.account.cluster | .connected and (.fallback | not)' >/dev/null"
beat() { rcli --scan --pattern 'patchdrop:*:host:a' | grep -q host:a; }
check "its heartbeat is in Redis" wait_for 10 beat
timeout 20 "$PD_BIN" status -c "$T/a.conf" --cluster --json >"$T/hosts.json" 2>"$T/hosts.err"
check "status --cluster reads it as that user" jqe '.hosts[0] | .name == "a" and .alive' "$T/hosts.json"
stop_host a
# run --once (cron) with [cluster]: delivers, closes its connection and exits.
echo "three" >"$T/a/three.txt"
RC=0
timeout 30 "$PD_BIN" run --once -c "$T/a.conf" >"$T/once.out" 2>&1 || RC=$?
check "run --once with [cluster] delivers and exits 0 ($RC)" test "$RC" -eq 0
check "its file is archived" archived three.txt "$T/a"

# refused_host NAME SECRET_FILE LOG_PATTERN WHAT: host NAME signs in with SECRET_FILE; its log
# says why Redis cannot be used (LOG_PATTERN), and its file is delivered anyway, on its share.
refused_host() {
  local h=$1
  host_conf "$h" "$T/$h"
  echo "password_file = $2" >>"$T/$h.conf"
  echo "file of $h" >"$T/$h/$h.txt"
  start_host "$h"
  check "$4 is said" wait_for 10 grep -q "$3" "$T/$h.err"
  check "host $h goes on alone: its file is delivered" wait_for 20 archived "$h.txt" "$T/$h"
  stop_host "$h"
}
refused_host b "$T/wrong.secret" 'event=cluster_refused.*step=auth.*WRONGPASS' \
  "a wrong password, in Redis's words,"

# An ACL user (password_file: "USER PASSWORD") that may not run scripts: the host says why and
# goes on alone on its share instead of waiting for ever.
rcli ACL SETUSER noscript on ">$REDIS_PW" '~*' +@all -@scripting >/dev/null
(umask 077; echo "noscript $REDIS_PW" >"$T/acl.secret")
refused_host c "$T/acl.secret" 'event=cluster_fallback.*refused the rate script.*NOPERM' \
  "the refused script"

sed -i "s|^redis = .*|redis = rediss://127.0.0.1:6380/0|" "$T/b.conf"
echo "ca_file = $T/no-such-ca.pem" >>"$T/b.conf"
run_pd "$T/cc" check-config -c "$T/b.conf"
check "rediss:// with a missing ca_file is refused by check-config (exit $RC)" test "$RC" -eq 2
check "naming the key and the file" grep -q "ca_file = $T/no-such-ca.pem cannot be read" "$T/cc.err" "$T/cc.out"
finish
