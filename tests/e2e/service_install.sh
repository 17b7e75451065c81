# Running as a service: the systemd unit passes `systemd-analyze verify`; `cmake --install` puts
# every file in its place (the unit where systemd looks, whatever the prefix); the .deb built by
# cpack installs into a scratch root (dpkg --root: the maintainer scripts honour DPKG_ROOT)
# creating the patchdrop user, a private /var/lib/patchdrop and the service's enable link, its
# installed sample config fails check-config clearly until it is filled in, and removing the
# package keeps the config while purging deletes it and the link. Installing on the real system,
# upgrading and lintian: package_deb.sh.
. "$(dirname "$0")/lib.bash"
: "${PD_BUILD:?PD_BUILD must name the build folder}"

if ! command -v systemd-analyze >/dev/null || ! systemd-analyze --version >/dev/null 2>&1; then
  echo "# systemd-analyze cannot run here (scripts/setup installs systemd)"
  exit 77
fi
if ! command -v cpack >/dev/null || ! command -v dpkg-deb >/dev/null; then
  echo "# cpack or dpkg-deb missing: no Debian packages here"
  exit 77
fi

# --- the unit ---------------------------------------------------------------------------------
mkdir -p "$T/units"
sed "s|/usr/bin/patchdrop|$PD_BIN|g" "$PD_SRC/conf/patchdrop.service" >"$T/units/patchdrop.service"
MANPATH="$PD_BUILD/man" systemd-analyze verify "$T/units/patchdrop.service" >"$T/verify.out" 2>&1 && rc=0 || rc=$?
check "systemd-analyze verify passes" test "$rc" -eq 0
check "and has nothing to say about the unit" bash -c "! grep -q patchdrop.service '$T/verify.out'"
[ "$rc" -eq 0 ] || cat "$T/verify.out"
unit="$PD_SRC/conf/patchdrop.service"
for want in '^Type=notify$' '^WatchdogSec=' '^ExecReload=/bin/kill -HUP \$MAINPID$' '^User=patchdrop$' \
  '^NoNewPrivileges=yes$' '^ProtectSystem=strict$' '^PrivateTmp=yes$' '^ReadWritePaths=' \
  '^StateDirectory=patchdrop$' '^RestartPreventExitStatus=2$' '^LimitCORE=0$' \
  '^CapabilityBoundingSet=CAP_LEASE$' '^AmbientCapabilities=CAP_LEASE$'; do
  check "the unit has $want" grep -q "$want" "$unit"
done
check "patchdrop speaks sd_notify (linked with libsystemd)" \
  bash -c "ldd '$PD_BIN' | grep -q libsystemd"

# --- cmake --install --------------------------------------------------------------------------
DESTDIR="$T/dest" cmake --install "$PD_BUILD" --prefix /opt/pd >"$T/install.out" 2>&1
check "cmake --install puts the binary in the prefix" test -x "$T/dest/opt/pd/bin/patchdrop"
check "the sample config in /etc/patchdrop" cmp -s "$T/dest/etc/patchdrop/patchdrop.conf" "$PD_SRC/conf/patchdrop.conf"
check "the config is not world-readable" test "$(stat -c %a "$T/dest/etc/patchdrop/patchdrop.conf")" = 640
unitdir=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || true)
unitdir=${unitdir:-/lib/systemd/system}
check "the unit in systemd's folder $unitdir, pointing at the installed binary" \
  grep -q '^ExecStart=/opt/pd/bin/patchdrop run -c /etc/patchdrop/patchdrop.conf$' "$T/dest$unitdir/patchdrop.service"
check "patchdrop-mock in the prefix too" test -x "$T/dest/opt/pd/bin/patchdrop-mock"
check "man page patchdrop(1)" test -s "$T/dest/opt/pd/share/man/man1/patchdrop.1.gz"
check "man page patchdrop-mock(1)" test -s "$T/dest/opt/pd/share/man/man1/patchdrop-mock.1.gz"
check "man page patchdrop.conf(5)" test -s "$T/dest/opt/pd/share/man/man5/patchdrop.conf.5.gz"
zcat "$T/dest/opt/pd/share/man/man5/patchdrop.conf.5.gz" >"$T/conf.5"
missing=0
while read -r section key; do
  grep -q "^\\\\fB${key}\\\\fR" "$T/conf.5" || { echo "# patchdrop.conf(5) lacks [$section] $key"; missing=1; }
done < <("$PD_BUILD/gen_conf_man" --keys)
check "patchdrop.conf(5) documents every key of the config table" test "$missing" -eq 0
check "the key list is not empty" test "$("$PD_BUILD/gen_conf_man" --keys | wc -l)" -gt 30
if command -v man >/dev/null; then
  check "the man pages render" bash -c "MANWIDTH=80 man -l '$T/conf.5' 2>/dev/null | grep -q unhealthy_after"
fi

# --- the Debian package ----------------------------------------------------------------------
(cd "$PD_BUILD" && cpack -G DEB -B "$T/pkg") >"$T/cpack.out" 2>&1 || cat "$T/cpack.out"
deb=$(find "$T/pkg" -maxdepth 1 -name 'patchdrop_*.deb' 2>/dev/null | head -1 || true)
check "cpack builds a .deb" test -n "$deb"
dpkg-deb -c "$deb" >"$T/contents"
dpkg-deb -I "$deb" >"$T/info"
for f in ./usr/bin/patchdrop ./etc/patchdrop/patchdrop.conf ".$unitdir/patchdrop.service" \
  ./usr/share/man/man1/patchdrop.1.gz ./usr/share/man/man5/patchdrop.conf.5.gz \
  ./usr/share/doc/patchdrop/copyright ./usr/share/doc/patchdrop/changelog.Debian.gz; do
  check "the package holds $f" grep -q " $f\$" "$T/contents"
done
check "but not patchdrop-mock (a package of its own)" bash -c "! grep -q patchdrop-mock '$T/contents'"
check "the config is a conffile" bash -c "dpkg-deb -I '$deb' conffiles | grep -qx /etc/patchdrop/patchdrop.conf"
check "it depends on its libraries" grep -q 'Depends:.*libuv1.*' "$T/info"

R="$T/root"
if [ "$(id -u)" -eq 0 ]; then
  # A scratch root: dpkg runs the maintainer scripts outside it with DPKG_ROOT set.
  mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/etc"
  : >"$R/var/lib/dpkg/status"
  echo 'root:x:0:0:root:/root:/bin/sh' >"$R/etc/passwd"
  echo 'root:x:0:' >"$R/etc/group"
  echo 'root:*:19000:0:99999:7:::' >"$R/etc/shadow"
  echo 'root:*::' >"$R/etc/gshadow"
  dpk() { dpkg --root="$R" --force-script-chrootless --force-not-root --force-depends --log=/dev/null "$@"; }
  dpk -i "$deb" >"$T/dpkg.out" 2>&1 && rc=0 || rc=$?
else
  echo "# not root: unpacking with dpkg-deb -x, maintainer scripts not run"
  dpkg-deb -x "$deb" "$R"
  rc=0
fi
check "the package installs" test "$rc" -eq 0
[ "$rc" -eq 0 ] || cat "$T/dpkg.out"
if [ "$(id -u)" -eq 0 ]; then
  uid=$(awk -F: '$1 == "patchdrop" { print $3 }' "$R/etc/passwd")
  check "the patchdrop user exists" test -n "$uid"
  check "it is a system user without a login shell" \
    bash -c "awk -F: '\$1 == \"patchdrop\" { exit !(\$3 < 1000 && \$7 ~ /nologin/) }' '$R/etc/passwd'"
  check "/var/lib/patchdrop is 0700 and the user's" \
    test "$(stat -c '%a %u' "$R/var/lib/patchdrop")" = "700 $uid"
  check "the config is root's, readable by the patchdrop group only" \
    test "$(stat -c '%a %U' "$R/etc/patchdrop/patchdrop.conf")" = "640 root"
  check "the service is enabled in the scratch root" \
    test "$(readlink "$R/etc/systemd/system/multi-user.target.wants/patchdrop.service")" = "$unitdir/patchdrop.service"
fi

# The installed sample has placeholders: check-config says exactly what to fill in.
"$PD_BIN" check-config -c "$R/etc/patchdrop/patchdrop.conf" >"$T/cc.out" 2>"$T/cc.err" && rc=0 || rc=$?
check "check-config on the untouched sample exits 2" test "$rc" -eq 2
check "it names the missing password file" grep -q "password_file /etc/patchdrop/password cannot be opened" "$T/cc.err"
check "and the missing drop folder" grep -q "path /srv/sftp/orders: No such file or directory; create the folder" "$T/cc.err"
# Filled in, it passes.
mkdir -p "$T/drop"
(umask 077; echo "pw-installed-$RANDOM" >"$T/password")
sed -e "s|^password_file = .*|password_file = $T/password|" -e "s|^path = .*|path = $T/drop|" \
  "$R/etc/patchdrop/patchdrop.conf" >"$T/filled.conf"
chmod 600 "$T/filled.conf"
# As ourselves: as root, check-config checks as the installed patchdrop user, who may not enter
# $T (sftp_layout.sh tests that view).
"$R/usr/bin/patchdrop" check-config -q -c "$T/filled.conf" --user "$(id -un)" >"$T/cc2.out" 2>&1 && rc=0 || rc=$?
check "the installed binary accepts the filled-in sample" test "$rc" -eq 0
[ "$rc" -eq 0 ] || cat "$T/cc2.out"

if [ "$(id -u)" -eq 0 ]; then
  dpk -r patchdrop >/dev/null 2>&1
  check "removing the package removes the binary" test ! -e "$R/usr/bin/patchdrop"
  check "but keeps the config" test -f "$R/etc/patchdrop/patchdrop.conf"
  check "and the state" test -d "$R/var/lib/patchdrop"
  dpk -P patchdrop >/dev/null 2>&1
  check "purging deletes the config" test ! -e "$R/etc/patchdrop/patchdrop.conf"
  check "and the state" test ! -e "$R/var/lib/patchdrop"
  check "and the enable link" test ! -L "$R/etc/systemd/system/multi-user.target.wants/patchdrop.service"
fi
finish
