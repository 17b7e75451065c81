# Helpers of the cluster tests (several hosts, one account, one Redis): sourced after lib.bash and
# lib_run.bash. start_redis starts a private redis-server on a unix socket in $T (never the
# system's), without persistence unless asked; the tests exit 77 without redis-server.
REDIS_SERVER=$(command -v redis-server || true)
REDIS_CLI=$(command -v redis-cli || true)
[ -n "$REDIS_SERVER" ] && [ -n "$REDIS_CLI" ] || { echo "skip: redis-server or redis-cli missing"; exit 77; }

# start_redis [redis-server options...]: (re)starts the private Redis on $T/redis.sock; sets
# REDIS_PID. With REDIS_PW set, Redis asks for that password (and rcli gives it).
start_redis() {
  mkdir -p "$T/redis"
  "$REDIS_SERVER" --port 0 --unixsocket "$T/redis.sock" --unixsocketperm 700 --dir "$T/redis" \
    --save '' --appendonly no --daemonize no --loglevel warning \
    ${REDIS_PW:+--requirepass "$REDIS_PW"} "$@" >>"$T/redis.log" 2>&1 &
  REDIS_PID=$!
  PD_PIDS+=("$REDIS_PID")
  wait_for 10 rcli PING >/dev/null || { echo "redis-server did not start" >&2; exit 1; }
}
stop_redis() { kill -KILL "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; }
rcli() { REDISCLI_AUTH=${REDIS_PW:-} "$REDIS_CLI" -s "$T/redis.sock" "$@" 2>/dev/null; }

# host_conf NAME DROP [watch keys...]: host NAME's config ($T/NAME.conf): write_conf's, with its own state and
# work folders, the account's rate CLUSTER_RATE per CLUSTER_WINDOW, and the shared Redis.
host_conf() {
  local name=$1 drop=$2; shift 2
  mkdir -p "$drop"
  PD_RATE=${CLUSTER_RATE:-60} PD_GRACE=2s write_conf "$T/$name.conf" "$drop" "$@"
  sed -i -e "s|^dir = $T/state\$|dir = $T/$name.state|" \
    -e "s|^rate_limit = .*|&\nrate_window = ${CLUSTER_WINDOW:-2s}|" "$T/$name.conf"
  printf '[cluster]\nredis = unix:%s\nname = %s\nexpected_hosts = %s\n' \
    "$T/redis.sock" "$name" "${CLUSTER_HOSTS:-3}" >>"$T/$name.conf"
}
# start_host NAME: patchdrop run with $T/NAME.conf; sets HOST_PID[NAME].
declare -A HOST_PID=()
start_host() {
  "$PD_BIN" run -c "$T/$1.conf" >>"$T/$1.out" 2>>"$T/$1.err" &
  HOST_PID[$1]=$!
  PD_PIDS+=("$!")
}
# stop_host NAME: SIGTERM, then checks it stopped cleanly (exit 0: under ASan no leak and no
# handle left open; nothing the sanitizers report in its log).
stop_host() {
  local rc=0
  kill -TERM "${HOST_PID[$1]}" 2>/dev/null || true
  wait "${HOST_PID[$1]}" 2>/dev/null || rc=$?
  check "host $1 stopped cleanly (exit $rc)" test "$rc" -eq 0
  check "host $1's log has no sanitizer report" bash -c "! grep -qE 'Sanitizer|runtime error' '$T/$1.err'"
}
# archived_count DROP: files delivered from DROP (a receipt each).
archived_count() { ls "$1.pd/archive" 2>/dev/null | grep -c 'receipt.json$' || true; }
# payloads_of PREFIX: payloads the emulator got that begin with PREFIX (each host's files
# begin with its name).
payloads_of() { cat "$MOCK_REC"/payloads/* 2>/dev/null | grep -c "^$1 " || true; }
