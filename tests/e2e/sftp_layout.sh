# The README's recipe "An SFTP landing zone", with real users: a partner user writes into an
# OpenSSH-ChrootDirectory-style folder, a service user claims through a default ACL (and, second,
# through a shared group), and patchdrop's own folders live in a /var/lib/patchdrop-style state
# dir on the same file system. `check-config --user` passes that layout and catches what the
# service user could not reach, with the command that fixes it. sshd itself is not run: what it
# would add (the chroot) changes nothing patchdrop sees.
. "$(dirname "$0")/lib.bash" || exit 1
. "$(dirname "$0")/lib_run.bash" || exit 1
# Everything below runs as root and makes users and folders: never without a temp folder.
[ -n "${T:-}" ] && [ -d "$T" ] && [ "$T" != / ] || { echo "no temp folder" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
  echo "skipped: creating users needs root"
  exit 77
fi
for tool in useradd userdel setfacl getfacl setpriv runuser; do
  command -v "$tool" >/dev/null || { echo "skipped: $tool is missing (scripts/setup installs it)"; exit 77; }
done

# Users of this run only (names unique per process), removed however the test ends.
SVC="pdsvc$$"
PARTNER="pdptn$$"
remove_users() {
  userdel "$PARTNER" >/dev/null 2>&1 || true
  userdel "$SVC" >/dev/null 2>&1 || true
  groupdel "$PARTNER" >/dev/null 2>&1 || true
  groupdel "$SVC" >/dev/null 2>&1 || true
}
trap_disabled_for_debug=1; trap 'rc=$?; for p in "${PD_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; remove_users; (exit $rc); cleanup' EXIT
for u in "$SVC" "$PARTNER"; do
  id "$u" >/dev/null 2>&1 ||
    useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$u"
done

PD_PW="pw-Sftp-$RANDOM-never-shown"
start_mock --password "$PD_PW"

# --- the layout -------------------------------------------------------------------------------
chmod 0755 "$T" # mktemp's 0700 would keep both users out of everything below
mkdir -p "$T/bin"
install -m 0755 "$PD_BIN" "$T/bin/patchdrop" # reachable by the service user wherever the build is
PD="$T/bin/patchdrop"
SFTP="$T/srv/sftp"    # /srv/sftp: Match Group sftp-partners -> ChrootDirectory /srv/sftp/%u
CH="$SFTP/$PARTNER"   # the chroot: root-owned, 0755, as sshd demands
UP="$CH/upload"       # the one folder the partner writes
LIB="$T/var/lib/patchdrop" # the state dir, on the drop folders' file system
ETC="$T/etc/patchdrop"
install -d -o root -g root -m 0755 "$T/srv" "$SFTP" "$CH" "$T/var" "$T/var/lib" "$T/etc"
install -d -o "$PARTNER" -g "$PARTNER" -m 0750 "$UP"
setfacl -m "u:$SVC:rwx,d:u:$SVC:rwx" "$UP"
install -d -o "$SVC" -g "$SVC" -m 0700 "$LIB"
install -d -o root -g "$SVC" -m 0750 "$ETC"
(umask 077; printf '%s\n' "$PD_PW" >"$ETC/password")
chown "root:$SVC" "$ETC/password"
chmod 0640 "$ETC/password"
cat >"$ETC/patchdrop.conf" <<CONF
[patchworks]
email = demo@example.com
password_file = $ETC/password
login_url = $MOCK_URL/api/v1/login
start_url = $MOCK_URL/api/v1
core_url = $MOCK_URL/api/v1
retry_base = 50ms
retry_cap = 500ms
timeout = 10s
[state]
dir = $LIB
[watch:partner]
path = $UP
flow_id = 42
settle = 0
rescan = 1s
follow = no
CONF
chown "root:$SVC" "$ETC/patchdrop.conf"
chmod 0640 "$ETC/patchdrop.conf"
CONF="$ETC/patchdrop.conf"
as_svc() { (cd / && setpriv --reuid="$SVC" --regid="$SVC" --init-groups -- "$@"); }
as_partner() { (cd / && runuser -u "$PARTNER" -- "$@"); }
# has FILE FIXED-STRING: the message is there; if not, show what was said instead.
has() {
  grep -qF -- "$2" "$1" && return 0
  echo "# expected: $2"
  sed 's/^/# got: /' "$1"
  return 1
}

# The partner uploads as SFTP clients do (a temporary name, then a rename), with a umask that
# would keep everyone else out: the default ACL still lets the service user read the file.
printf '{"order": 1, "by": "partner"}\n' >"$T/order.json"
as_partner sh -c 'umask 077; cat >"$1/order.json.part" && mv "$1/order.json.part" "$1/order.json"' \
  _ "$UP" <"$T/order.json"
check "the partner's file is the partner's, closed to others" \
  test "$(stat -c '%U %A' "$UP/order.json")" = "$PARTNER -rw-rw----"
check "yet the default ACL lets the service user read it" as_svc test -r "$UP/order.json"

"$PD" check-config -q -c "$CONF" --user "$SVC" >"$T/cc.out" 2>"$T/cc.err" && rc=0 || rc=$?
check "check-config --user passes the recipe's layout" test "$rc" -eq 0
check "and says nothing" test ! -s "$T/cc.err"
as_svc "$PD" check-config -q -c "$CONF" >"$T/cc-self.out" 2>"$T/cc-self.err" && rc=0 || rc=$?
check "the service user itself agrees (check-config as non-root checks as ourselves)" test "$rc" -eq 0

as_svc timeout 60 "$PD" run --once -c "$CONF" >"$T/run.out" 2>"$T/run.err" && rc=0 || rc=$?
check "run --once as the service user exits 0" test "$rc" -eq 0
check "the partner's file was delivered" received "$T/order.json"
check "and archived, with its receipt, in the service user's work_dir" \
  test -f "$LIB/watches/partner/archive/order.json" -a -f "$LIB/watches/partner/archive/order.json.receipt.json"
check "the archive is the service user's, closed to the partners" \
  test "$(stat -c '%U %a' "$LIB/watches/partner/archive")" = "$SVC 750"
check "nothing is left in the upload folder" test -z "$(ls -A "$UP")"
check "the service user's folders are its own and private" \
  test "$(stat -c '%U %a' "$LIB/watches/partner/work")" = "$SVC 700"

# --- the shared-group variant: no ACLs, the upload folder's group is the service's ------------
setfacl -b "$UP"
chgrp "$SVC" "$UP"
chmod 2770 "$UP"
printf '{"order": 2, "via": "group"}\n' >"$T/order2.json"
as_partner sh -c 'umask 027; cat >"$1/order2.json"' _ "$UP" <"$T/order2.json"
"$PD" check-config -q -c "$CONF" --user "$SVC" 2>"$T/cc-group.err" && rc=0 || rc=$?
check "a shared group (setgid folder, umask 027) passes too" test "$rc" -eq 0
# A partner whose umask closes its files to the group: that file would stay behind.
as_partner sh -c 'umask 077; echo "{}" >"$1/closed.json"' _ "$UP"
"$PD" check-config -q -c "$CONF" --user "$SVC" 2>"$T/cc-closed.err" && rc=0 || rc=$?
check "a file the service user cannot read is a warning (exit 0)" test "$rc" -eq 0
check "that names the folder and the fix, not the partner's file name" has "$T/cc-closed.err" \
  "WARNING: [watch:partner] 1 file(s) in $UP cannot be read by $SVC: they cannot be sent and stay there"
rm -f "$UP/closed.json"
as_svc timeout 60 "$PD" run --once -c "$CONF" >>"$T/run.out" 2>>"$T/run.err" && rc=0 || rc=$?
check "and its file is delivered" bash -c "[ $rc -eq 0 ] && [ -f '$LIB/watches/partner/archive/order2.json' ]"
check "byte for byte" received "$T/order2.json"

# --- what root alone could read: check-config --user catches it, with the fix ----------------
chown root:root "$ETC/password"
chmod 0600 "$ETC/password"
"$PD" check-config -q -c "$CONF" --user "$SVC" 2>"$T/neg1.err" && rc=0 || rc=$?
check "a root-only password_file: exit 2" test "$rc" -eq 2
check "it is named, as unreadable by the service user" has "$T/neg1.err" \
  "password_file $ETC/password cannot be read by $SVC, the user patchdrop runs as (owner root, group root, mode 0600)"
check "with the command that fixes it" has "$T/neg1.err" \
  "run: chgrp $SVC $ETC/password && chmod g+r,o-rwx $ETC/password (or: setfacl -m u:$SVC:r $ETC/password)"
as_svc "$PD" check-config -q -c "$CONF" >/dev/null 2>"$T/neg1-self.err" && rc=0 || rc=$?
check "the service user running check-config itself is refused too" \
  bash -c "[ $rc -eq 2 ] && grep -q 'cannot be opened: Permission denied; the user patchdrop runs as must read it' '$T/neg1-self.err'"
chgrp "$SVC" "$ETC/password"
chmod g+r,o-rwx "$ETC/password"
"$PD" check-config -q -c "$CONF" --user "$SVC" 2>"$T/fixed1.err" && rc=0 || rc=$?
check "the suggested fix makes it pass" test "$rc" -eq 0

# A drop folder the partner owns, without the ACL (or group) for the service user.
chgrp "$PARTNER" "$UP"
chmod 0750 "$UP" && chmod g-s "$UP"
"$PD" check-config -q -c "$CONF" --user "$SVC" 2>"$T/neg2.err" && rc=0 || rc=$?
check "a drop folder the service user cannot write: exit 2" test "$rc" -eq 2
check "it says what the user may not do there" has "$T/neg2.err" \
  "[watch:partner] drop folder $UP: $SVC, the user patchdrop runs as, may not list, enter, take files out of it (owner $PARTNER, group $PARTNER, mode 0750)"
check "and the setfacl that fixes it (files to come included)" has "$T/neg2.err" \
  "run: setfacl -m u:$SVC:rwx,d:u:$SVC:rwx $UP"
check "the last line says whose view was checked" has "$T/neg2.err" "checked as $SVC (uid $(id -u "$SVC"))"
setfacl -m "u:$SVC:rwx,d:u:$SVC:rwx" "$UP"
"$PD" check-config -q -c "$CONF" --user "$SVC" 2>"$T/fixed2.err" && rc=0 || rc=$?
check "the suggested setfacl makes it pass" test "$rc" -eq 0

# A folder on the way the service user may not enter, and a state dir that is root's.
chmod 0700 "$T/var"
"$PD" check-config -q -c "$CONF" --user "$SVC" 2>"$T/neg3.err" && rc=0 || rc=$?
check "an unreachable state dir: exit 2" test "$rc" -eq 2
check "the folder in the way is named once, with setfacl u:x" \
  bash -c "[ \$(grep -c 'it may not enter $T/var (owner root' '$T/neg3.err') -eq 1 ] && grep -qF 'run: setfacl -m u:$SVC:x $T/var' '$T/neg3.err'"
chmod 0755 "$T/var"
chown root:root "$LIB"
chmod 0755 "$LIB"
"$PD" check-config -q -c "$CONF" --user "$SVC" 2>"$T/neg4.err" && rc=0 || rc=$?
check "a state dir root owns: exit 2 and chown" \
  bash -c "[ $rc -eq 2 ] && grep -qF 'the state dir $LIB belongs to root, not to $SVC' '$T/neg4.err' && grep -qF 'run: chown $SVC:$SVC $LIB' '$T/neg4.err'"
chown "$SVC:$SVC" "$LIB"
chmod 0700 "$LIB"

# Checking as someone else needs root; a user that does not exist is refused.
as_svc "$PD" check-config -q -c "$CONF" --user root >/dev/null 2>"$T/neg5.err" && rc=0 || rc=$?
check "--user another user, without root: exit 2, needs root" \
  bash -c "[ $rc -eq 2 ] && grep -q 'checking as root needs root' '$T/neg5.err'"
"$PD" check-config -q -c "$CONF" --user "nosuch$$" 2>"$T/neg6.err" && rc=0 || rc=$?
check "--user with no such user: exit 2" \
  bash -c "[ $rc -eq 2 ] && grep -q -- '--user nosuch$$: there is no such user' '$T/neg6.err'"
finish
