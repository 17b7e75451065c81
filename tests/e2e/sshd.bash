# A real OpenSSH server on loopback for end-to-end tests with real file-transfer clients: sourced
# after lib.bash, never run alone. Needs root (sshd's privilege separation, ChrootDirectory and
# useradd). What it sets up, all removed by sshd_cleanup (call it from the test's EXIT trap):
#   SSH_ROOT   a root-owned 0755 folder under /srv (every component of a chroot must be root-owned
#              and not writable by group or others, so it cannot live under /tmp, which is 1777)
#   SSH_JAIL   $SSH_ROOT/jail, the SFTP partner's chroot (root 0755)
#   SSH_DROP   $SSH_JAIL/upload, the folder both partners write: patchdrop's drop folder
#   SFTP_USER  the partner: key only, chrooted to SSH_JAIL, ForceCommand internal-sftp (sftp, scp in
#              its default SFTP mode, lftp and curl all go through it; paths are /upload/NAME)
#   RSYNC_USER a second partner for rsync, which needs a shell and the rsync binary on the server
#              side: internal-sftp cannot run it, and a chroot would need /bin/sh, rsync, rrsync,
#              python3 and their libraries copied into the jail. So this user has no chroot; its
#              ForceCommand is Debian's `rrsync -wo SSH_DROP` (write-only, confined to the drop
#              folder), the usual way to give a partner rsync and nothing else. Paths are NAME.
#   SSH_PORT   the port sshd listens on (127.0.0.1 only)
#   SSH_OPTS   ssh options for any OpenSSH client (key, known host, batch mode, timeouts)
#   SSH_KEY    the partners' private key; SSH_HOSTKEY_SHA256 the host key's SHA256 in base64
# The server's log (-e) is $T/sshd.log.
SSHD=/usr/sbin/sshd
SSH_USER_MARK="patchdrop e2e test user, safe to remove"
SSH_MADE_USERS=()
SSH_ROOT=""
SSHD_PID=""

# sshd_usable: true when this machine can run sshd for the test; else prints why (the test skips).
sshd_usable() {
  if [ ! -x "$SSHD" ]; then echo "$SSHD is missing (scripts/setup installs openssh-server)"; return 1; fi
  if [ "$(id -u)" -ne 0 ]; then echo "not root: sshd's privilege separation and chroot need root"; return 1; fi
  return 0
}

# sshd_user BASE SHELL: creates a user BASE (or BASE2.. when a user of that name exists that this
# test did not make) with no password (not locked: '*'), and prints the name. A leftover of an
# interrupted run (same marker in GECOS) is reused.
sshd_user() {
  local base=$1 shell=$2 name i
  for i in "" 2 3 4 5; do
    name=$base$i
    if getent passwd "$name" >/dev/null; then
      [ "$(getent passwd "$name" | cut -d: -f5)" = "$SSH_USER_MARK" ] || continue
      usermod -s "$shell" -p '*' "$name" >&2 || return 1
    else
      useradd -M -d / -s "$shell" -c "$SSH_USER_MARK" -p '*' "$name" >&2 || return 1
    fi
    echo "$name"
    return 0
  done
  echo "sshd_user: no free name for $base" >&2
  return 1
}

# sshd_start: users, folders, keys, config; starts sshd on a free port and waits until it listens.
sshd_start() {
  # One run at a time per machine: the users' names are fixed. Start long-lived children with
  # 8>&- so none of them keeps the lock after the test.
  mkdir -p /run/lock
  exec 8>/run/lock/patchdrop-e2e-sshd.lock
  flock -w 200 8 || { echo "sshd_start: another run holds /run/lock/patchdrop-e2e-sshd.lock" >&2; return 1; }
  # Holding the lock, any folder of ours under /srv is a leftover of a run that was killed.
  local old
  for old in /srv/pd-e2e-sshd.??????; do
    [ -d "$old" ] && [ "$(stat -c %u "$old")" = 0 ] && rm -rf "$old"
  done
  SFTP_USER=$(sshd_user pdpartner /usr/sbin/nologin) || return 1
  SSH_MADE_USERS+=("$SFTP_USER")
  RSYNC_USER=$(sshd_user pdrsync /bin/sh) || return 1
  SSH_MADE_USERS+=("$RSYNC_USER")

  SSH_ROOT=$(mktemp -d /srv/pd-e2e-sshd.XXXXXX)
  chmod 0755 "$SSH_ROOT"
  SSH_JAIL=$SSH_ROOT/jail
  SSH_DROP=$SSH_JAIL/upload
  mkdir -m 0755 "$SSH_JAIL" "$SSH_ROOT/keys"
  mkdir -m 0770 "$SSH_DROP"
  chown "$SFTP_USER:$(id -gn "$RSYNC_USER")" "$SSH_DROP"
  chmod 0770 "$SSH_DROP"

  ssh-keygen -q -t ed25519 -N '' -C pd-e2e-host -f "$T/ssh_host_ed25519_key"
  ssh-keygen -q -t ed25519 -N '' -C pd-e2e-partner -f "$T/partner_key"
  SSH_KEY=$T/partner_key
  install -m 0644 "$T/partner_key.pub" "$SSH_ROOT/keys/$SFTP_USER"
  install -m 0644 "$T/partner_key.pub" "$SSH_ROOT/keys/$RSYNC_USER"
  # curl (libssh2) checks the host key by its SHA256 in base64 with padding.
  SSH_HOSTKEY_SHA256=$(ssh-keygen -l -E sha256 -f "$T/ssh_host_ed25519_key.pub" | awk '{print $2}')
  SSH_HOSTKEY_SHA256="${SSH_HOSTKEY_SHA256#SHA256:}="
  # The privilege separation folder Debian's init scripts make; /run is a tmpfs.
  [ -d /run/sshd ] || mkdir -m 0755 /run/sshd

  local try
  for try in 1 2 3; do
    SSH_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat >"$T/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $SSH_PORT
HostKey $T/ssh_host_ed25519_key
PidFile $T/sshd.pid
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin no
AllowUsers $SFTP_USER $RSYNC_USER
AuthorizedKeysFile $SSH_ROOT/keys/%u
StrictModes yes
LogLevel VERBOSE
MaxStartups 50:30:100
MaxSessions 20
Subsystem sftp internal-sftp -l VERBOSE
AllowTcpForwarding no
AllowAgentForwarding no
X11Forwarding no
PermitTTY no

Match User $SFTP_USER
  ChrootDirectory $SSH_JAIL
  ForceCommand internal-sftp -l VERBOSE

Match User $RSYNC_USER
  ForceCommand /usr/bin/rrsync -wo $SSH_DROP
EOF
    "$SSHD" -t -f "$T/sshd_config" || { echo "sshd_start: sshd -t refused the config" >&2; return 1; }
    : >"$T/sshd.log"
    # Bounded: ends by itself should the test be killed before its trap runs.
    timeout -k 5 280 "$SSHD" -D -e -f "$T/sshd_config" 2>>"$T/sshd.log" 8>&- &
    SSHD_PID=$!
    if wait_for 10 grep -q "Server listening on 127.0.0.1 port $SSH_PORT" "$T/sshd.log"; then
      break
    fi
    kill "$SSHD_PID" 2>/dev/null || true
    wait "$SSHD_PID" 2>/dev/null || true
    SSHD_PID=""
    echo "sshd_start: sshd did not listen on port $SSH_PORT (try $try):" >&2
    tail -5 "$T/sshd.log" >&2
  done
  [ -n "$SSHD_PID" ] || return 1
  echo "[127.0.0.1]:$SSH_PORT $(cat "$T/ssh_host_ed25519_key.pub")" >"$T/known_hosts"
  # shellcheck disable=SC2034 # for the test that sources this file
  SSH_OPTS=(-F /dev/null -i "$SSH_KEY" -o IdentitiesOnly=yes -o BatchMode=yes
    -o UserKnownHostsFile="$T/known_hosts" -o GlobalKnownHostsFile=/dev/null
    -o StrictHostKeyChecking=yes -o ConnectTimeout=5 -o ServerAliveInterval=5
    -o ServerAliveCountMax=3 -o LogLevel=ERROR)
}

# sshd_cleanup: stops sshd (and the partners' sessions), removes the users and SSH_ROOT.
sshd_cleanup() {
  local u
  if [ -n "$SSHD_PID" ]; then
    kill "$SSHD_PID" 2>/dev/null || true
    wait "$SSHD_PID" 2>/dev/null || true
  fi
  for u in "${SSH_MADE_USERS[@]}"; do
    # A session still open (its sshd child runs as the user) would keep userdel from working:
    # end those processes, by id; only this test's sshd starts processes for these users.
    local pids
    # Closing sessions end by themselves within moments; wait for that first.
    wait_for 5 bash -c "! ps -o pid= -u '$u' >/dev/null 2>&1" || true
    pids=$(ps -o pid= -u "$u" 2>/dev/null | tr -d ' ' || true)
    if [ -n "$pids" ]; then
      echo "sshd_cleanup: ending $u's processes $(tr '\n' ' ' <<<"$pids")" >&2
      # shellcheck disable=SC2086
      kill -KILL $pids 2>/dev/null || true
      sleep 0.2
    fi
    userdel "$u" 2>/dev/null || echo "sshd_cleanup: userdel $u failed" >&2
  done
  if [ -n "$SSH_ROOT" ] && [ -d "$SSH_ROOT" ]; then rm -rf "$SSH_ROOT"; fi
}
