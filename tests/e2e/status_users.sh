# The control socket is the daemon's user's and group's only: another user cannot connect (the
# socket is 0660), and even when the socket is made wider the daemon checks SO_PEERCRED and
# refuses; a member of the daemon's group may ask. Needs root to create the users.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
[ -n "${T:-}" ] && [ -d "$T" ] && [ "$T" != / ] || { echo "no temp folder" >&2; exit 1; }
if [ "$(id -u)" -ne 0 ]; then
  echo "skipped: creating users needs root"
  exit 77
fi
for tool in useradd userdel groupdel usermod runuser; do
  command -v "$tool" >/dev/null || { echo "skipped: $tool is missing"; exit 77; }
done

# Users of this run only, removed however the test ends.
SVC="pdst$$"
OTHER="pdso$$"
MEMBER="pdsm$$"
remove_users() {
  for u in "$MEMBER" "$OTHER" "$SVC"; do userdel "$u" >/dev/null 2>&1 || true; done
  for u in "$MEMBER" "$OTHER" "$SVC"; do groupdel "$u" >/dev/null 2>&1 || true; done
}
trap 'rc=$?; for p in "${PD_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; remove_users; (exit $rc); cleanup' EXIT
for u in "$SVC" "$OTHER" "$MEMBER"; do
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$u"
done
usermod -a -G "$SVC" "$MEMBER"

PD_PW="pw-StatusUsers-$RANDOM-never-shown"
start_mock --password "$PD_PW"
chmod 0755 "$T"
mkdir -p "$T/bin" "$T/drop"
install -m 0755 "$PD_BIN" "$T/bin/patchdrop"
PD="$T/bin/patchdrop"
PD_DEFAULT_WORKDIR=1 write_conf "$T/c.conf" "$T/drop"
install -d -o "$SVC" -g "$SVC" -m 0750 "$T/state"
chown "$SVC:$SVC" "$T/drop" "$T/c.conf"
chmod 0640 "$T/c.conf"
# The other users read the config through a copy without the password (status needs none: the
# environment's stands in for it).
grep -v '^password' "$T/c.conf" >"$T/pub.conf"
chmod 0644 "$T/pub.conf"
SOCK="$T/state/patchdrop.sock"

runuser -u "$SVC" -- "$PD" run -c "$T/c.conf" >>"$T/daemon.out" 2>>"$T/daemon.err" &
DAEMON_PID=$!
PD_PIDS+=("$DAEMON_PID")
check "the daemon makes its socket" wait_for 10 test -S "$SOCK"
check "the state dir lets the group pass (0710), no more" test "$(stat -c %a "$T/state")" = 710
check "the socket belongs to the service's user and group, 0660" \
  test "$(stat -c '%U:%G %a' "$SOCK")" = "$SVC:$SVC 660"

as() { local u=$1; shift; RC=0; timeout 20 runuser -u "$u" -- env PATCHDROP_PASSWORD=not-used "$PD" status -c "$T/pub.conf" "$@" >"$T/$u.out" 2>"$T/$u.err" || RC=$?; }
as "$SVC" --json
check "the service's user gets the status" bash -c "[ $RC = 0 ] && jq -e '.state == \"running\"' '$T/$SVC.out' >/dev/null"
as "$MEMBER" --json
check "a member of its group gets the status" bash -c "[ $RC = 0 ] && jq -e '.watches[0].name == \"drop\"' '$T/$MEMBER.out' >/dev/null"
# Others may pass the state dir too here: the socket's mode alone keeps them out.
chmod 0711 "$T/state"
as "$OTHER"
check "another user cannot connect (exit 1)" test "$RC" = 1
check "and is told to be patchdrop's user or group" grep -q "Permission denied (run it as patchdrop's user" "$T/$OTHER.err"
# Someone makes the socket wider: the daemon still refuses by the peer's credentials.
chmod 0666 "$SOCK"
as "$OTHER"
check "with the socket made 0666, another user is still refused" \
  bash -c "[ $RC = 1 ] && grep -q 'refused: only patchdrop' '$T/$OTHER.err'"
check "the refusal is logged with the uid" grep -q "event=control_refused uid=$(id -u "$OTHER")" "$T/daemon.err"
check "and nothing of the state went out" bash -c "! grep -q watches '$T/$OTHER.out' '$T/$OTHER.err'"
check "the daemon keeps running" kill -0 "$DAEMON_PID"
kill "$DAEMON_PID"; wait "$DAEMON_PID" || true
finish
