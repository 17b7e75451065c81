# The command line as a user meets it: the version three ways, one meaning of -v, and every
# command's refusals (unknown option, missing value, bad value, stray argument): the first line
# on stderr is "patchdrop CMD: why", then the usage line and where --help is; exit status 2,
# nothing on stdout. No network: every refusal comes before patchdrop would reach Patchworks.
. "$(dirname "$0")/lib.bash"

for form in --version -V version; do
  out=$("$PD_BIN" $form 2>"$T/version.err") && rc=0 || rc=$?
  check "patchdrop $form prints one line, the program and its version, and exits 0" \
    bash -c '[ "$1" -eq 0 ] && [[ "$2" =~ ^patchdrop\ [0-9]+\.[0-9]+\.[0-9]+$ ]] && [ ! -s "$3" ]' \
    _ "$rc" "$out" "$T/version.err"
done
help=$("$PD_BIN" --help)
check "--help lists the version command" grep -qE '^  version +' <<<"$help"
check "--help names --version and -V" bash -c 'grep -q -- "--version" <<<"$1" && grep -qw -- "-V" <<<"$1"' _ "$help"

# -v is verbose wherever it exists; the flow's version is --flow-version.
check "run: -v, --verbose" bash -c "'$PD_BIN' run --help | grep -qE '^ +-v, --verbose'"
send_help=$("$PD_BIN" send --help)
check "send: --flow-version ID is the flow's version" grep -qE '^ +--flow-version ID' <<<"$send_help"
check "send: -v is no longer the flow's version" bash -c '! grep -qE -- "-v,|--version" <<<"$1"' _ "$send_help"

mkdir -p "$T/drop" "$T/state"
(umask 077; cat >"$T/good.conf" <<CONF
[patchworks]
email = ops@example.com
password = pa55-word-never-shown
; Nothing may reach Patchworks; were something to try, it would find nobody here and give up.
login_url = http://127.0.0.1:1/api/v1/login
start_url = http://127.0.0.1:1/api/v1
core_url = http://127.0.0.1:1/api/v1
lookups_url = http://127.0.0.1:1/api/v1
retry_base = 10ms
retry_cap = 50ms
max_retry_time = 1s
[state]
dir = $T/state
[watch:orders]
path = $T/drop
flow_id = 123
CONF
)
printf '{"a":1}\n' >"$T/a.json"
C="$T/good.conf"

# refused CMD "what" ARGS...: patchdrop ARGS exits 2, prints nothing on stdout, and on stderr
# "patchdrop CMD: ..." (or "patchdrop CMD SUB: ..." for lookup's commands) first, then the
# usage line and the pointer to --help. Keeps stderr in $T/refused.err for further checks.
refused() {
  local cmd=$1 what=$2 rc
  shift 2
  timeout 30 "$PD_BIN" "$@" >"$T/refused.out" 2>"$T/refused.err" && rc=0 || rc=$?
  if [ "$rc" -eq 2 ] && [ ! -s "$T/refused.out" ] &&
    head -1 "$T/refused.err" | grep -qE "^patchdrop $cmd( [a-z]+)?: " &&
    grep -q "^usage: patchdrop $cmd" "$T/refused.err" &&
    grep -qF "'patchdrop $cmd --help'" "$T/refused.err"; then
    ok "$cmd: $what"
  else
    not_ok "$cmd: $what (exit $rc)"
    sed 's/^/#   /' "$T/refused.err" "$T/refused.out"
  fi
}

for cmd in run send login status flow-run lookup check-config version; do
  refused "$cmd" "an unknown option" "$cmd" --bogus
done
refused run "-c without its file" run -c
refused run "--config without its file" run --config
refused run "a value given to --once" run --once=yes
refused run "a stray argument" run extra
refused run "--no-follow without --once" run -c "$C" --no-follow
refused send "--flow without its id" send -c "$C" "$T/a.json" --flow
refused send "neither --watch nor --flow" send -c "$C" "$T/a.json"
refused send "no file" send -c "$C" --flow 12
refused send "--flow-version without --flow" send -c "$C" --watch orders --flow-version 3 "$T/a.json"
refused send "a flow id that would change the URL" send -c "$C" --flow ../x "$T/a.json"
refused send "an unknown watch" send -c "$C" --watch nope "$T/a.json"
refused send "-v ID, the flow version of old" send -c "$C" --flow 12 -v 3 "$T/a.json"
check "which says to use --flow-version" grep -q -- "--flow-version" "$T/refused.err"
refused send "--version ID, the flow version of old" send -c "$C" --flow 12 --version 3 "$T/a.json"
check "which says to use --flow-version" grep -q -- "--flow-version" "$T/refused.err"
refused login "-c without its file" login -c
refused login "a stray argument" login -c "$C" extra
refused status "-c without its file" status -c
refused status "an operand that is not a run id" status -c "$C" abc
refused status "--watch without its name" status -c "$C" --watch
refused status "two run ids" status -c "$C" 1 2
refused status "a run id that would change the URL" status -c "$C" ../x
refused lookup "-c without its file" lookup -c
refused lookup "no command" lookup -c "$C"
refused lookup "an unknown command" lookup -c "$C" frob
refused lookup "create without --name" lookup -c "$C" create
refused lookup "--name without its value" lookup -c "$C" create --name
refused lookup "an id that would change the URL" lookup -c "$C" show ../x
refused lookup "--json with export" lookup -c "$C" --json export 1
refused check-config "-u without its user" check-config -c "$C" -u
refused check-config "a user that does not exist" check-config -c "$C" --user no-such-user-pd13
refused check-config "a stray argument" check-config -c "$C" extra
refused version "a stray argument" version extra
"$PD_BIN" frobnicate >"$T/unknown.out" 2>"$T/unknown.err" && rc=0 || rc=$?
check "an unknown command exits 2 and is named" \
  bash -c "[ $rc -eq 2 ] && grep -q \"^patchdrop: unknown command 'frobnicate'\" '$T/unknown.err'"
finish
