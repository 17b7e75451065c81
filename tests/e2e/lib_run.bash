# The one helper library of the end-to-end tests that talk to patchdrop-mock (run, send, lookup,
# names, progress): sourced after lib.bash, never run alone. Two config writers serve the two kinds
# of test: write_conf (a [watch:drop] for `patchdrop run`) and conf (a [patchworks] section for the
# one-shot commands, with keys given replacing the defaults).

# write_conf FILE DROP_DIR [watch keys...]: a config for patchdrop-mock at $MOCK_URL.
write_conf() {
  local file=$1 drop=$2; shift 2
  (umask 077; {
    echo "[patchworks]"
    echo "email = demo@example.com"
    echo "password = ${PD_PW:-demo}"
    echo "login_url = $MOCK_URL/api/v1/login"
    echo "start_url = $MOCK_URL/api/v1"
    echo "core_url = $MOCK_URL/api/v1"
    echo "lookups_url = $MOCK_URL/core-main/api/v1"
    echo "rate_limit = ${PD_RATE:-100000}"
    echo "concurrency = ${PD_CONCURRENCY:-4}"
    echo "retry_base = 50ms"
    echo "retry_cap = 500ms"
    echo "timeout = 10s"
    [ -z "${PD_MAX_BODY:-}" ] || echo "max_body = $PD_MAX_BODY"
    echo "[state]"
    echo "dir = $T/state"
    echo "[daemon]"
    echo "shutdown_grace = ${PD_GRACE:-5s}"
    echo "[watch:drop]"
    echo "path = $drop"
    # Each drop folder gets its own patchdrop folder beside it (DROP.pd), so tests that use
    # several drop folders with one watch name keep them apart; PD_DEFAULT_WORKDIR=1 leaves the
    # default (<state dir>/watches/<name>).
    [ -n "${PD_DEFAULT_WORKDIR:-}" ] || echo "work_dir = $drop.pd"
    echo "flow_id = 42"
    echo "version_id = 7"
    echo "settle = ${PD_SETTLE:-0}"
    echo "rescan = ${PD_RESCAN:-1s}"
    # Following flow runs (follow = yes, the default) is tested by run_follow.sh; elsewhere a
    # run --once would wait for outcomes the test does not look at. PD_FOLLOW=1 keeps it on.
    [ -n "${PD_FOLLOW:-}" ] || echo "follow = no"
    for kv in "$@"; do echo "$kv"; done
  } >"$file")
}

# payload_count: payloads the emulator accepted so far.
payload_count() { ls "$MOCK_REC/payloads" 2>/dev/null | wc -l; }
# archived NAME DROP: the file sits in the archive with its receipt.
# own_of DROP: the watch's own folder (write_conf's DROP.pd, or the default for [watch:drop]).
own_of() { if [ -d "$1.pd" ]; then echo "$1.pd"; else echo "$T/state/watches/drop"; fi; }
archived() { local o; o=$(own_of "$2"); [ -f "$o/archive/$1" ] && [ -f "$o/archive/$1.receipt.json" ]; }
failed() { local o; o=$(own_of "$2"); [ -f "$o/failed/$1" ] && [ -f "$o/failed/$1.error.json" ]; }
# received FILE: some payload the emulator got equals FILE byte for byte.
received() {
  local f
  for f in "$MOCK_REC"/payloads/*; do cmp -s "$f" "$1" && return 0; done
  return 1
}
# received_count FILE: how many payloads equal FILE.
received_count() {
  local f n=0
  for f in "$MOCK_REC"/payloads/*; do cmp -s "$f" "$1" && n=$((n + 1)); done
  echo $n
}
# start_daemon CONF [args...]: patchdrop run in the background; sets DAEMON_PID.
start_daemon() {
  local conf=$1; shift
  "$PD_BIN" run -c "$conf" "$@" >>"$T/daemon.out" 2>>"$T/daemon.err" &
  DAEMON_PID=$!
  PD_PIDS+=("$DAEMON_PID")
}
# jqe FILTER FILE: true when the filter holds, quietly.
jqe() { jq -e "$@" >/dev/null; }

# ---- the one-shot commands (send, lookup, names, progress) ----
# The mock's password is a string that appears nowhere else, so a leak is found by grep.
PW="pw-Zq7-never-shown-$RANDOM"
APIKEY="key-Xy9-never-shown-$RANDOM"

# mock [options...]: start_mock with our password (the later --password wins).
mock() {
  start_mock --password "$PW" "$@"
}

# conf NAME [key = value ...]: a private config pointing at the mock; prints its path.
# Keys given replace the defaults of the same name.
conf() {
  local name=$1; shift
  local f="$T/$name.conf" key
  declare -A given=()
  for kv in "$@"; do key=${kv%%=*}; given[${key// /}]=1; done
  (
    umask 077
    {
      echo "[patchworks]"
      [ -n "${given[api_key]:-}" ] || { echo "email = demo@example.com"; echo "password = $PW"; }
      echo "login_url = $MOCK_URL/api/v1/login"
      echo "start_url = $MOCK_URL/api/v1"
      echo "core_url = $MOCK_URL/api/v1"
      [ -n "${given[retry_base]:-}" ] || echo "retry_base = 50ms"
      [ -n "${given[retry_cap]:-}" ] || echo "retry_cap = 400ms"
      [ -n "${given[timeout]:-}" ] || echo "timeout = 5s"
      for kv in "$@"; do echo "$kv"; done
      echo "[state]"
      echo "dir = $T/state.$name"
    } >"$f"
  )
  echo "$f"
}

# add_watch CONF NAME PATH FLOW [key = value ...]: appends a [watch:NAME] section to CONF.
add_watch() {
  local file=$1 name=$2 path=$3 flow=$4; shift 4
  {
    echo "[watch:$name]"
    echo "path = $path"
    echo "flow_id = $flow"
    [ -n "${PD_FOLLOW:-}" ] || echo "follow = no"
    for kv in "$@"; do echo "$kv"; done
  } >>"$file"
}

# count JQ_FILTER: how many lines of the mock's requests.jsonl match (a jq select condition).
count() {
  jq -c "select($1)" "$MOCK_REC/requests.jsonl" 2>/dev/null | wc -l
}
logins() { count '.path == "/api/v1/login" or .path == "/fabric/api/login"'; }
starts() { count '.path | test("/flows/")'; }

# delivered_exactly FILE...: the payloads that arrived are exactly these files' bytes, each once.
delivered_exactly() {
  local want got
  want=$(for f in "$@"; do sha256sum <"$f" | cut -d' ' -f1; done | sort)
  got=$(for f in "$MOCK_REC"/payloads/*; do [ -e "$f" ] && sha256sum <"$f" | cut -d' ' -f1; done | sort)
  [ "$want" = "$got" ]
}

# no_secret FILE...: none of the files holds the password, the API key or a token the mock gave.
no_secret() {
  local tokens=() t
  for t in "$T"/state.*/token; do
    [ -e "$t" ] && tokens+=("$(jq -r .token "$t")")
  done
  for s in "$PW" "$APIKEY" "${tokens[@]}"; do
    [ -n "$s" ] || continue
    if grep -rqF -- "$s" "$@"; then echo "secret found in: $(grep -rlF -- "$s" "$@")" >&2; return 1; fi
  done
}

# run_pd OUT_PREFIX args...: runs patchdrop, keeps stdout/stderr in OUT_PREFIX.out/.err, sets RC.
run_pd() {
  local out=$1; shift
  RC=0
  timeout 120 "$PD_BIN" "$@" >"$out.out" 2>"$out.err" || RC=$?
}
