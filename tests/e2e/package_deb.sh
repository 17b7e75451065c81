# Packaging, on this very machine (as root; CI's is thrown away after the run): the .debs cpack
# builds are lintian-clean (no error, no warning); patchdrop installs with the service enabled
# but, its config being the unfilled sample, not started; once the config is filled in, an
# upgrade to a rebuilt version (a separate build folder, Debian revision + 1) restarts it and
# leaves it enabled; an admin's `systemctl disable` survives a reinstall; an upgrade the config
# does not pass restarts nothing and says so; remove stops it; purge leaves nothing but the
# system user. Every install, upgrade and removal runs patchdrop-mock's package alongside, and
# patchdrop's package must not contain it.
#
# systemd is not PID 1 here nor in CI, so the maintainer scripts' calls are checked instead of
# their effect: dpkg runs in a private mount namespace where a tmpfs on /run/systemd holds
# system/ (what the scripts test for "systemd is running") or not, and deb-systemd-invoke and
# systemctl are logging stubs bound over the real programs, whatever PATH the scripts get
# (systemctl passes everything but daemon-reload on to the real one: deb-systemd-helper's
# `systemctl --root=/ preset` works offline). deb-systemd-helper is the real one: its enable
# links and its state in /var/lib/systemd/deb-systemd-helper-enabled/ are checked as they are.
. "$(dirname "$0")/lib.bash"
: "${PD_BUILD:?PD_BUILD must name the build folder}"
: "${PD_SRC:?PD_SRC must name the source folder}"

if ! command -v dpkg >/dev/null || ! command -v dpkg-deb >/dev/null; then
  echo "# dpkg is not available: no Debian packages here"
  exit 77
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "# not root: this test installs packages into the system"
  exit 77
fi

unit=patchdrop.service
link=/etc/systemd/system/multi-user.target.wants/$unit
dsh=/var/lib/systemd/deb-systemd-helper-enabled
conf=/etc/patchdrop/patchdrop.conf
unitdir=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || true)
unitdir=${unitdir:-/lib/systemd/system}
echo "# PID 1 is $(ps -p 1 -o comm= 2>/dev/null || echo '?');" \
  "the maintainer scripts run with systemd simulated"

for p in patchdrop patchdrop-mock; do
  if dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qv '^not-installed$'; then
    echo "not ok - $p is already installed here; the test would replace and purge it (dpkg -P $p first)"
    exit 1
  fi
done

# Whatever happens, the packages do not outlive the test; nor does the patchdrop user when the
# test made it (a purge keeps it, as Debian policy asks), so the machine is left as it was found.
touched=no
had_user=no
getent passwd patchdrop >/dev/null && had_user=yes
pkg_cleanup() {
  local rc=$?
  if [ "$touched" = yes ]; then
    sim_dpkg down -P patchdrop patchdrop-mock >/dev/null 2>&1 ||
      dpkg -P patchdrop patchdrop-mock >/dev/null 2>&1 || true
    # What the test did as the admin, should the package's purge have missed it.
    rm -f /etc/patchdrop/password
    rmdir /etc/patchdrop 2>/dev/null || true
    if [ -L "$link" ] && [ ! -e "$link" ]; then rm -f "$link"; fi
  fi
  if [ "$had_user" = no ] && getent passwd patchdrop >/dev/null; then
    userdel patchdrop 2>/dev/null || true
    groupdel patchdrop 2>/dev/null || true
  fi
  (exit $rc)
  cleanup
}
trap pkg_cleanup EXIT

# --- the stubs and the namespace -------------------------------------------------------------
mkdir -p "$T/sim"
chmod 0711 "$T" # the patchdrop user reaches the drop folder below
: >"$T/calls"
cat >"$T/sim/deb-systemd-invoke" <<EOF
#!/bin/sh
echo "\${DPKG_MAINTSCRIPT_NAME:-none}: deb-systemd-invoke \$*" >>"$T/calls"
EOF
cat >"$T/sim/systemctl" <<EOF
#!/bin/sh
echo "\${DPKG_MAINTSCRIPT_NAME:-none}: systemctl \$*" >>"$T/calls"
case " \$* " in *" daemon-reload "*) exit 0 ;; esac
exec "$T/sim/systemctl.real" "\$@"
EOF
chmod 0755 "$T/sim/deb-systemd-invoke" "$T/sim/systemctl"
: >"$T/sim/systemctl.real"
if ! unshare --mount --propagation private true 2>"$T/unshare.err"; then
  echo "not ok - no private mount namespace for dpkg (unshare --mount: $(cat "$T/unshare.err"))"
  exit 1
fi
if [ ! -d /run/systemd ]; then
  echo "not ok - /run/systemd is missing: is systemd installed (scripts/setup)?"
  exit 1
fi
# sim_dpkg up|down DPKG-ARGS...: dpkg with systemd running (up) or not (down), as said above;
# the calls the maintainer scripts made are appended to $T/calls.
sim_dpkg() {
  local mode=$1
  shift
  unshare --mount --propagation private -- /bin/sh -ec '
    T=$1 mode=$2
    shift 2
    mount --bind "$(command -v systemctl)" "$T/sim/systemctl.real"
    for name in systemctl deb-systemd-invoke; do
      for dir in /usr/bin /bin; do
        if [ -e "$dir/$name" ]; then mount --bind "$T/sim/$name" "$dir/$name"; fi
      done
    done
    mount -t tmpfs -o mode=0755 pd-sim /run/systemd
    if [ "$mode" = up ]; then mkdir /run/systemd/system; fi
    exec dpkg "$@"' sim "$T" "$mode" "$@"
}
# step NAME: starts a new section of $T/calls; calls NAME prints the calls made in it.
step() { echo "== $1" >>"$T/calls"; }
calls() { awk -v s="== $1" '$0 == s { on = 1; next } /^== / { on = 0 } on' "$T/calls"; }
called() { grep -qx -- "$2" <<<"$(calls "$1")"; }
not_called() { ! grep -q -- "$2" <<<"$(calls "$1")"; }
has() { command -v "$1" >/dev/null; }
has_user() { getent passwd patchdrop >/dev/null; }

# --- build: this build folder's packages, and a rebuild one Debian revision later --------------
(cd "$PD_BUILD" && cpack -G DEB -B "$T/v1") >"$T/cpack1.out" 2>&1 || cat "$T/cpack1.out"
deb1=$(find "$T/v1" -maxdepth 1 -name 'patchdrop_*.deb' 2>/dev/null | head -1 || true)
mock1=$(find "$T/v1" -maxdepth 1 -name 'patchdrop-mock_*.deb' 2>/dev/null | head -1 || true)
check "cpack builds patchdrop's package" test -n "$deb1"
check "and patchdrop-mock's" test -n "$mock1"
[ -n "$deb1" ] || exit 1
pk1=("$deb1" ${mock1:+"$mock1"})
dpkg-deb -c "$deb1" | awk '{ print $6 }' >"$T/contents"
: >"$T/mock-contents"
[ -z "$mock1" ] || dpkg-deb -c "$mock1" | awk '{ print $6 }' >"$T/mock-contents"
check "patchdrop's package has no patchdrop-mock" bash -c "! grep -q mock '$T/contents'"
check "patchdrop-mock's package has the emulator" grep -qx ./usr/bin/patchdrop-mock "$T/mock-contents"
check "and its man page" grep -qx ./usr/share/man/man1/patchdrop-mock.1.gz "$T/mock-contents"
check "the unit is where bookworm's packages put theirs ($unitdir)" \
  grep -qx ".$unitdir/$unit" "$T/contents"
check "it ships the bash completion where bash-completion loads it" \
  grep -qx ./usr/share/bash-completion/completions/patchdrop "$T/contents"
check "and the zsh completion where Debian's zsh finds it" \
  grep -qx ./usr/share/zsh/vendor-completions/_patchdrop "$T/contents"
for pkg in patchdrop patchdrop-mock; do
  for f in copyright changelog.Debian.gz; do
    c=$T/contents
    [ $pkg = patchdrop ] || c=$T/mock-contents
    check "$pkg ships /usr/share/doc/$pkg/$f" grep -qx "./usr/share/doc/$pkg/$f" "$c"
  done
done
dpkg-deb --fsys-tarfile "$deb1" | tar -xO ./usr/share/doc/patchdrop/copyright \
  >"$T/copyright" 2>/dev/null || true
check "the copyright file is machine-readable (DEP-5)" \
  grep -qx 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/' "$T/copyright"
check "and names the license" grep -qx 'License: MIT' "$T/copyright"
check "patchdrop has an extended description" \
  test "$(dpkg-deb -f "$deb1" Description | wc -l)" -gt 3

# lintian: no error, no warning; the informational tags are listed.
if ! command -v lintian >/dev/null; then
  echo "# lintian is missing: installing it from Debian's archive"
  export DEBIAN_FRONTEND=noninteractive
  apt_get() { apt-get -o DPkg::Lock::Timeout=600 -qq "$@" >>"$T/apt.out" 2>&1; }
  apt_get install -y --no-install-recommends lintian ||
    { apt_get update && apt_get install -y --no-install-recommends lintian; } || cat "$T/apt.out"
fi
check "lintian is installed" has lintian
if command -v lintian >/dev/null; then
  lintian --display-info --fail-on error,warning "${pk1[@]}" >"$T/lintian.out" 2>&1 &&
    rc=0 || rc=$?
  sed 's/^/# lintian: /' "$T/lintian.out"
  check "lintian finds no error and no warning" bash -c "! grep -q '^[EW]: ' '$T/lintian.out'"
  check "and exits 0" test "$rc" -eq 0
fi

v1=$(dpkg-deb -f "$deb1" Version)
rel=0
case $v1 in *-*) rel=${v1##*-} ;; esac
cache() { sed -n "s/^$1:[A-Z]*=//p" "$PD_BUILD/CMakeCache.txt"; }
cmake -S "$PD_SRC" -B "$T/b2" -DCMAKE_BUILD_TYPE="$(cache CMAKE_BUILD_TYPE)" \
  -DCMAKE_C_COMPILER="$(cache CMAKE_C_COMPILER)" -DPD_SANITIZE="$(cache PD_SANITIZE)" \
  -DCPACK_DEBIAN_PACKAGE_RELEASE=$((rel + 1)) >"$T/b2.out" 2>&1 &&
  cmake --build "$T/b2" -j"$(nproc)" --target patchdrop patchdrop-mock man >>"$T/b2.out" 2>&1 &&
  (cd "$T/b2" && cpack -G DEB -B "$T/v2") >>"$T/b2.out" 2>&1 || tail -30 "$T/b2.out"
deb2=$(find "$T/v2" -maxdepth 1 -name 'patchdrop_*.deb' 2>/dev/null | head -1 || true)
mock2=$(find "$T/v2" -maxdepth 1 -name 'patchdrop-mock_*.deb' 2>/dev/null | head -1 || true)
check "the rebuild makes both packages" test -n "$deb2" -a -n "$mock2"
[ -n "$deb2" ] || exit 1
pk2=("$deb2" ${mock2:+"$mock2"})
v2=$(dpkg-deb -f "$deb2" Version)
check "the rebuild's version $v2 is newer than $v1" dpkg --compare-versions "$v2" gt "$v1"

# --- install: enabled, not started (the sample config is not filled in) ----------------------
touched=yes
step install
sim_dpkg up -i "${pk1[@]}" >"$T/dpkg-install.out" 2>&1 && rc=0 || rc=$?
sed 's/^/# dpkg: /' "$T/dpkg-install.out"
check "the packages install" test "$rc" -eq 0
[ "$rc" -eq 0 ] || exit 1
check "the patchdrop user exists" has_user
check "a system user without a login shell" \
  bash -c "getent passwd patchdrop | awk -F: '{ exit !(\$3 < 1000 && \$7 ~ /nologin/) }'"
check "/var/lib/patchdrop is 0700 and the user's" \
  test "$(stat -c '%a %U' /var/lib/patchdrop)" = "700 patchdrop"
check "/etc/patchdrop is 0750 root:patchdrop" \
  test "$(stat -c '%a %U:%G' /etc/patchdrop)" = "750 root:patchdrop"
check "the config is 0640 root:patchdrop" test "$(stat -c '%a %U:%G' $conf)" = "640 root:patchdrop"
check "the unit is in $unitdir" grep -q '^ExecStart=/usr/bin/patchdrop run ' "$unitdir/$unit"
check "patchdrop-mock is installed with its package" test -x /usr/bin/patchdrop-mock
check "deb-systemd-helper enabled the service: $link" test "$(readlink "$link")" = "$unitdir/$unit"
check "and recorded it in its state" grep -qx "$link" "$dsh/$unit.dsh-also"
check "and marked it as enabled by the package" test -f "$dsh/multi-user.target.wants/$unit"
check "systemctl sees it enabled" test "$(systemctl --root=/ is-enabled $unit 2>/dev/null)" = enabled
check "postinst reloaded systemd" called install "postinst: systemctl --system daemon-reload"
check "postinst did not start the service on the unfilled sample" \
  not_called install deb-systemd-invoke
check "and said why and what to do" \
  grep -q "patchdrop: the service is enabled but not started: fill in $conf" "$T/dpkg-install.out"

# --- the admin fills the config in ---------------------------------------------------------------
mkdir -p "$T/drop"
chown patchdrop:patchdrop "$T/drop"
chmod 0750 "$T/drop"
PD_PW="pw-package-$RANDOM$RANDOM"
(umask 077; echo "$PD_PW" >/etc/patchdrop/password)
chown patchdrop:patchdrop /etc/patchdrop/password
sed -i -e "s|^path = .*|path = $T/drop|" $conf
setpriv --reuid=patchdrop --regid=patchdrop --init-groups \
  /usr/bin/patchdrop check-config -q -c $conf >"$T/cc.out" 2>&1 && rc=0 || rc=$?
check "the filled-in config passes check-config as the patchdrop user" test "$rc" -eq 0
[ "$rc" -eq 0 ] || cat "$T/cc.out"

# --- upgrade to the rebuild: restarted, still enabled --------------------------------------------
step upgrade
sim_dpkg up -i "${pk2[@]}" >"$T/dpkg-upgrade.out" 2>&1 && rc=0 || rc=$?
sed 's/^/# dpkg: /' "$T/dpkg-upgrade.out"
check "the packages upgrade to $v2" test "$rc" -eq 0
check "dpkg has $v2" test "$(dpkg-query -W -f='${Version}' patchdrop)" = "$v2"
check "the admin's config is kept" grep -qx "path = $T/drop" $conf
check "prerm did not stop the service" not_called upgrade stop
check "postinst restarted it" called upgrade "postinst: deb-systemd-invoke restart $unit"
check "once" test "$(calls upgrade | grep -c deb-systemd-invoke)" -eq 1
check "the service is still enabled" test "$(readlink "$link")" = "$unitdir/$unit"
check "systemctl still sees it enabled" \
  test "$(systemctl --root=/ is-enabled $unit 2>/dev/null)" = enabled
[ "$FAILS" -eq 0 ] || calls upgrade | sed 's/^/# upgrade calls: /'

# --- disabled by the admin, reinstalled without systemd running: stays disabled ------------------
systemctl --root=/ disable $unit >/dev/null 2>&1 || true
check "the admin disabled the service" test ! -e "$link"
step reinstall
sim_dpkg down -i "$deb2" >"$T/dpkg-reinstall.out" 2>&1 && rc=0 || rc=$?
sed 's/^/# dpkg: /' "$T/dpkg-reinstall.out"
check "the package reinstalls" test "$rc" -eq 0
check "the admin's disable is kept" test ! -e "$link"
check "without systemd, no service is started, stopped or reloaded" test -z "$(calls reinstall)"
systemctl --root=/ enable $unit >/dev/null 2>&1 || true
check "the admin enabled it again" test -L "$link"

# --- an upgrade the config does not pass: nothing restarted, and said so -------------------------
chown root:root /etc/patchdrop/password # root's only: the patchdrop user cannot read it
step broken
sim_dpkg up -i "$deb2" >"$T/dpkg-broken.out" 2>&1 && rc=0 || rc=$?
sed 's/^/# dpkg: /' "$T/dpkg-broken.out"
check "the package reinstalls over a config it does not pass" test "$rc" -eq 0
check "postinst did not restart the service" not_called broken deb-systemd-invoke
check "and said why" \
  grep -q "patchdrop: not restarting the service: 'patchdrop check-config' fails" "$T/dpkg-broken.out"
chown patchdrop:patchdrop /etc/patchdrop/password

# --- remove: stopped, config and state kept ----------------------------------------------------
step remove
sim_dpkg up -r patchdrop patchdrop-mock >"$T/dpkg-remove.out" 2>&1 && rc=0 || rc=$?
sed 's/^/# dpkg: /' "$T/dpkg-remove.out"
check "the packages are removed" test "$rc" -eq 0
check "prerm stopped the service" called remove "prerm: deb-systemd-invoke stop $unit"
check "postrm reloaded systemd" called remove "postrm: systemctl --system daemon-reload"
check "the binaries are gone" test ! -e /usr/bin/patchdrop -a ! -e /usr/bin/patchdrop-mock
check "and the unit" test ! -e "$unitdir/$unit"
check "the config is kept" test -f $conf
check "and the state" test -d /var/lib/patchdrop

# --- purge: nothing left but the user ----------------------------------------------------------
check "patchdrop-mock, which has no conffile, is gone already" \
  bash -c "! dpkg-query -W patchdrop-mock >/dev/null 2>&1"
step purge
sim_dpkg up -P patchdrop >"$T/dpkg-purge.out" 2>&1 && rc=0 || rc=$?
sed 's/^/# dpkg: /' "$T/dpkg-purge.out"
check "patchdrop is purged" test "$rc" -eq 0
for gone in /etc/patchdrop /var/lib/patchdrop "$unitdir/$unit" /usr/lib/systemd/system/$unit \
  "$link" "$dsh/$unit.dsh-also" "$dsh/multi-user.target.wants/$unit" /usr/share/doc/patchdrop \
  /usr/share/doc/patchdrop-mock /usr/share/man/man1/patchdrop.1.gz /usr/bin/patchdrop; do
  check "purge leaves no $gone" test ! -e "$gone" -a ! -L "$gone"
done
check "dpkg forgets both packages" \
  bash -c "! dpkg-query -W patchdrop patchdrop-mock >/dev/null 2>&1"
check "the patchdrop user stays (Debian policy)" has_user
touched=no
finish
