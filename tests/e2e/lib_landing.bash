# Helpers for the landing-zone security tests (landing_*.sh), sourced after lib.bash and
# lib_run.bash. Partners are played by two unprivileged users, the daemon runs as root or as a
# service user; the users, mounts and sysctls a test makes are undone by the EXIT trap.
# These tests need root (useradd, mount, setpriv); as anyone else they are skipped (77).
if [ "$(id -u)" != 0 ]; then
  echo "SKIP: the landing-zone tests need root (users, mounts, sysctls)"
  exit 77
fi
PA=pdpartnera # partner A
PB=pdpartnerb # partner B
SVC=pdsvc     # the service user, for the daemon as non-root
LAND_LOCK=/run/lock/patchdrop-landing.lock
LAND_MADE=/run/lock/patchdrop-landing.users # users the landing tests created
LAND_MOUNTS=()
LAND_SYSCTL_HL= # fs.protected_hardlinks before the test changed it

# set_protected_hardlinks 0|1: fs.protected_hardlinks, with sysctl (or /proc when it is missing).
set_protected_hardlinks() {
  sysctl -qw fs.protected_hardlinks="$1" 2>/dev/null || echo "$1" 2>/dev/null >/proc/sys/fs/protected_hardlinks
}

land_cleanup() {
  local rc=$? pid m
  for pid in "${PD_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PD_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PD_PIDS=()
  for m in "${LAND_MOUNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  [ -z "$LAND_SYSCTL_HL" ] || set_protected_hardlinks "$LAND_SYSCTL_HL" || true
  if flock -n -x "$LAND_FD"; then
    (
      flock -x 9
      if [ -f "$LAND_MADE" ]; then
        local left=() u
        while read -r u; do userdel "$u" 2>/dev/null || left+=("$u"); done <"$LAND_MADE"
        rm -f "$LAND_MADE"
        [ ${#left[@]} -eq 0 ] || printf '%s\n' "${left[@]}" >"$LAND_MADE"
      fi
    ) 9>"$LAND_LOCK.create"
  fi
  # PD_LANDING_KEEP=DIR keeps a copy of the test's folder there, for a person to look at.
  if [ -n "${PD_LANDING_KEEP:-}" ]; then mkdir -p "$PD_LANDING_KEEP" && cp -a "$T" "$PD_LANDING_KEEP/" || true; fi
  set +e # (lib.bash's cleanup reads the exit status from $?)
  (exit "$rc")
  cleanup
}

# Several landing scripts may run at once: each holds a shared lock for its whole life; the last
# one out (the only one that can turn it exclusive) removes the users they created.
exec {LAND_FD}>>"$LAND_LOCK"
flock -s "$LAND_FD"
trap land_cleanup EXIT
# Killed (ctest's timeout, ^C): exit, so that the EXIT trap undoes users, mounts and sysctls.
trap 'exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP
(
  flock -x 9
  for u in "$PA" "$PB" "$SVC"; do
    if ! id -u "$u" >/dev/null 2>&1; then
      if getent group "$u" >/dev/null; then g=(--gid "$u"); else g=(--user-group); fi
      useradd --system --no-create-home "${g[@]}" --shell /usr/sbin/nologin "$u"
      echo "$u" >>"$LAND_MADE"
    fi
  done
) 9>"$LAND_LOCK.create"
SVC_GID=$(id -g "$SVC")

# Partners and the service user must reach the folders under $T (mktemp made it 0700).
chmod 0711 "$T"

# as_user USER CMD...: runs CMD as USER (its own group only), umask 022.
as_user() {
  local u=$1; shift
  setpriv --reuid "$u" --regid "$(id -g "$u")" --clear-groups -- sh -c 'umask 022; exec "$@"' as "$@"
}
# partner_dir USER DIR: a drop folder of USER's, mode 0770, group the service user's, so that
# the daemon as $SVC can take files out of it and the other partner cannot look in.
partner_dir() {
  mkdir -p "$2"
  chown "$1:$SVC_GID" "$2"
  chmod 0770 "$2"
}
# snap DIR: everything about DIR and what is in it (names, types, inodes, sizes, modes, owners,
# times, link targets, contents), to compare before and after.
snap() {
  { find -P "$1" -printf '%P|%y|%i|%s|%m|%U|%G|%n|%T@|%C@|%l\n' | LC_ALL=C sort
    find -P "$1" -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum; } 2>&1 || true
}
# land_conf FILE STATE_DIR: the [patchworks], [state] and [daemon] sections for the emulator.
land_conf() {
  local file=$1 state=$2
  (umask 077; cat >"$file" <<EOF
[patchworks]
email = demo@example.com
password = ${PD_PW:-demo}
login_url = $MOCK_URL/api/v1/login
start_url = $MOCK_URL/api/v1
core_url = $MOCK_URL/api/v1
lookups_url = $MOCK_URL/core-main/api/v1
rate_limit = 100000
concurrency = ${PD_CONCURRENCY:-4}
retry_base = 50ms
retry_cap = 500ms
timeout = 10s
[state]
dir = $state
[daemon]
shutdown_grace = 2s
EOF
  )
}
# land_watch FILE NAME PATH FLOW [key = value...]: appends a watch (settle 0, rescan PD_RESCAN).
land_watch() {
  local file=$1 name=$2 path=$3 flow=$4; shift 4
  {
    echo "[watch:$name]"
    echo "path = $path"
    echo "flow_id = $flow"
    echo "version_id = 7"
    echo "settle = ${PD_SETTLE:-0}"
    echo "rescan = ${PD_RESCAN:-1s}"
    echo "follow = no"
    for kv in "$@"; do echo "$kv"; done
  } >>"$file"
}
# land_metrics FILE: metrics and /healthz on a free loopback port.
land_metrics() { printf '[metrics]\nlisten = 127.0.0.1:0\n' >>"$1"; }
# run_as USER CONF [args...]: patchdrop run as USER in the background (root: as is); DAEMON_PID.
run_as() {
  local u=$1 conf=$2; shift 2
  if [ "$u" = root ]; then
    "$PD_BIN" run -c "$conf" "$@" >>"$T/daemon.out" 2>>"$T/daemon.err" &
  else
    setpriv --reuid "$u" --regid "$(id -g "$u")" --clear-groups -- "$PD_BIN" run -c "$conf" "$@" \
      >>"$T/daemon.out" 2>>"$T/daemon.err" &
  fi
  DAEMON_PID=$!
  PD_PIDS+=("$DAEMON_PID")
}
# once_as USER CONF LOG: patchdrop run --once as USER (bounded); its exit status in ONCE_RC.
once_as() {
  local u=$1 conf=$2 log=$3
  if [ "$u" = root ]; then
    timeout 60 "$PD_BIN" run --once -c "$conf" >"$log.out" 2>"$log" && ONCE_RC=0 || ONCE_RC=$?
  else
    timeout 60 setpriv --reuid "$u" --regid "$(id -g "$u")" --clear-groups -- "$PD_BIN" run --once -c "$conf" \
      >"$log.out" 2>"$log" && ONCE_RC=0 || ONCE_RC=$?
  fi
}
stop_daemon() {
  kill -TERM "$DAEMON_PID" 2>/dev/null || true
  wait "$DAEMON_PID" 2>/dev/null || true
}
# in_archive WORK_DIR NAME / in_failed WORK_DIR NAME: where a watch put a file.
in_archive() { [ -f "$1/archive/$2" ] && [ -f "$1/archive/$2.receipt.json" ]; }
in_failed() { [ -f "$1/failed/$2" ] && [ -f "$1/failed/$2.error.json" ]; }
# payloads_with TEXT: how many payloads the emulator got contain TEXT.
payloads_with() { grep -rlF -- "$1" "$MOCK_REC/payloads" 2>/dev/null | wc -l; }
# requests_to FLOW: start requests the emulator answered for that flow.
requests_to() { grep -c "\"path\":\"/api/v1/flows/$1/start/" "$MOCK_REC/requests.jsonl" 2>/dev/null || true; }
# metrics_port LOG: the port the daemon logged for /metrics.
metrics_port() { grep -o 'event=metrics_listening.*port=[0-9]*' "$1" | tail -1 | grep -o '[0-9]*$'; }
