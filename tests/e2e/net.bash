# Helpers for the tests that talk to patchdrop-mock: sourced after lib.bash, never run alone.
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
  timeout 60 "$PD_BIN" "$@" >"$out.out" 2>"$out.err" || RC=$?
}
