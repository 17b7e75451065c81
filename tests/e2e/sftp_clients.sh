# Real file-transfer programs against a real OpenSSH server (issue 14), not simulations: partners
# upload with sftp (in place, throttled; temp name + rename), scp, rsync (hidden temp + rename),
# lftp mput of many files and curl over sftp://, into a chrooted internal-sftp drop folder that
# patchdrop watches. Each upload must reach the emulator byte for byte, exactly once, and be
# archived with a receipt of its real size and checksum. Two stalled uploads (the writer keeps the
# file open and pauses longer than settle) must never be sent partially.
# Skips (exit 77) only where sshd cannot run: /usr/sbin/sshd missing or not root.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
. "$(dirname "$0")/sshd.bash"

if ! why=$(sshd_usable); then
  echo "SKIP: $why"
  exit 77
fi
for c in ssh sftp scp ssh-keygen rsync lftp curl useradd userdel usermod flock timeout python3; do
  command -v "$c" >/dev/null || { echo "not ok - $c is missing (scripts/setup installs it)"; exit 1; }
done
[ -x /usr/bin/rrsync ] || { echo "not ok - /usr/bin/rrsync is missing (package rsync)"; exit 1; }

sftp_clients_cleanup() {
  local rc=$?
  [ -z "${watcher_pid:-}" ] || kill "$watcher_pid" 2>/dev/null || true
  sshd_cleanup
  set +e
  (exit "$rc")
  cleanup # lib.bash's: stops the mock and the daemon, scans for secrets, removes $T
}
trap sftp_clients_cleanup EXIT
trap 'exit 143' TERM INT HUP

sshd_start || { echo "not ok - sshd did not start"; cat "$T/sshd.log"; exit 1; }
echo "# sshd on 127.0.0.1:$SSH_PORT, partners $SFTP_USER (chroot $SSH_JAIL) and $RSYNC_USER (rrsync)"

start_mock 8>&-
# settle 2 s: the in-place uploads below never pause that long, the stalled ones pause ~5 s.
PD_SETTLE=2s PD_RESCAN=1s write_conf "$T/c.conf" "$SSH_DROP"
check "check-config accepts the chrooted SFTP layout" "$PD_BIN" check-config -q -c "$T/c.conf" --user "$(id -un)"
start_daemon "$T/c.conf" 8>&-
wait_for 10 grep -q 'event=started' "$T/daemon.err" || sleep 1

# What the partners upload: text files (sent as they are), each with content of its own.
S=$T/src
mkdir -p "$S" "$S/lftp"
seq -f 'line %07g of the throttled in-place sftp upload' 1 90000 >"$S/sftp_throttled.txt" # ~4.3 MB
seq -f 'line %07g uploaded by sftp to a temp name, then renamed' 1 20000 >"$S/sftp_renamed.txt"
seq -f 'line %07g copied with scp (SFTP mode)' 1 20000 >"$S/scp.txt"
seq -f 'line %07g synced by rsync over ssh' 1 40000 >"$S/rsync.txt" # ~1.3 MB
seq -f 'line %07g sent by curl -T sftp://' 1 20000 >"$S/curl.txt"
seq -f 'line %07g of an upload that stalls with the file open (curl)' 1 40000 >"$S/stalled_curl.txt"
seq -f 'line %07g of an upload that stalls with the file open (sftp -l)' 1 6000 >"$S/stalled_sftp.txt" # 402 kB
for i in $(seq -w 1 50); do
  seq -f "lftp file $i line %g" 1 $((10#$i * 7)) >"$S/lftp/lftp_$i.txt"
done
NAMES=(sftp_throttled.txt sftp_renamed.txt scp.txt rsync.txt curl.txt stalled_curl.txt stalled_sftp.txt)
LFTP_NAMES=()
for f in "$S"/lftp/*.txt; do LFTP_NAMES+=("$(basename "$f")"); done
src_of() { if [ -f "$S/$1" ]; then echo "$S/$1"; else echo "$S/lftp/$1"; fi; }

# Every name that ever shows up in the drop folder, to see the clients' temp names.
(while :; do ls -A "$SSH_DROP" >>"$T/seen.raw" 2>/dev/null; sleep 0.05; done) &
watcher_pid=$!
sftp_batch() { # sftp_batch [sftp options...] < batch: one sftp session as the chrooted partner
  timeout 90 sftp "${SSH_OPTS[@]}" -P "$SSH_PORT" "$@" -b - "$SFTP_USER@127.0.0.1"
}
curl_sftp() { # curl_sftp DEST [curl options...]: curl uploads to sftp://.../DEST as the partner
  local dest=$1; shift
  curl -sS --max-time 60 -u "$SFTP_USER:" --key "$SSH_KEY" --pubkey "$SSH_KEY.pub" \
    --hostpubsha256 "$SSH_HOSTKEY_SHA256" "$@" "sftp://127.0.0.1:$SSH_PORT/upload/$dest"
}

# Stalled uploads first, in the background, so they overlap the others.
# (1) curl reads from a pipe whose writer sends 1 MB, then nothing for 5 s (settle is 2 s) while
#     curl holds the remote file open, then the rest.
{ head -c 1000000 "$S/stalled_curl.txt"; sleep 5; tail -c +1000001 "$S/stalled_curl.txt"; } |
  curl_sftp stalled_curl.txt -T - >"$T/stalled_curl.out" 2>&1 &
stall_curl_pid=$!
# (2) sftp -l 400 (kbit/s): OpenSSH's limiter lets a burst of 255 kB through, then sleeps for
#     what that burst costs at the limit (~5 s) while the remote file stays open, then the rest.
sftp_batch -l 400 >"$T/stalled_sftp.out" 2>&1 <<EOF &
put $S/stalled_sftp.txt /upload/stalled_sftp.txt
EOF
stall_sftp_pid=$!

client_ok() { # client_ok WHAT command...: runs one client, bounded; its output goes to $T
  local what=$1; shift
  local t0=$SECONDS rc=0
  "$@" >"$T/$what.out" 2>&1 || rc=$?
  echo "# $what: exit $rc after $((SECONDS - t0)) s"
  [ "$rc" -eq 0 ] || { sed 's/^/#   /' "$T/$what.out"; return 1; }
}

# sftp in place, throttled to ~1 MB/s (-l 8000 kbit/s): ~4 s of a growing file under its final
# name, with no pause near settle.
t0=$SECONDS
check "sftp -l: the throttled in-place upload succeeds" client_ok sftp_throttled sftp_batch -l 8000 <<EOF
put $S/sftp_throttled.txt /upload/sftp_throttled.txt
EOF
check "sftp -l: the upload took a few seconds (throttled)" test $((SECONDS - t0)) -ge 2

# sftp to a temp name (ignored: *.tmp), throttled so it sits there longer than settle, then renamed.
check "sftp: put to a temp name and rename succeeds" client_ok sftp_renamed sftp_batch -l 3000 <<EOF
put $S/sftp_renamed.txt /upload/sftp_renamed.txt.tmp
rename /upload/sftp_renamed.txt.tmp /upload/sftp_renamed.txt
EOF

# scp: OpenSSH 9 speaks SFTP by default (-s), which is all internal-sftp allows.
check "scp succeeds" client_ok scp timeout 60 scp "${SSH_OPTS[@]}" -P "$SSH_PORT" \
  "$S/scp.txt" "$SFTP_USER@127.0.0.1:/upload/scp.txt"

# rsync over ssh to rrsync: writes .rsync.txt.XXXXXX, renames at the end. --bwlimit makes the
# hidden temp live ~3 s, longer than settle.
check "rsync over ssh succeeds" client_ok rsync timeout 60 rsync --bwlimit=400 \
  -e "ssh ${SSH_OPTS[*]} -p $SSH_PORT" "$S/rsync.txt" "$RSYNC_USER@127.0.0.1:rsync.txt"

# lftp mput of 50 small files over sftp://, 4 at a time.
check "lftp mput succeeds" client_ok lftp timeout 90 lftp -c "
  set sftp:connect-program 'ssh -a -x ${SSH_OPTS[*]}'
  set net:max-retries 1; set net:timeout 15; set cmd:fail-exit yes
  open -u $SFTP_USER, -p $SSH_PORT sftp://127.0.0.1
  cd /upload
  lcd $S/lftp
  mput -P 4 lftp_*.txt"

check "curl -T sftp:// succeeds" client_ok curl curl_sftp curl.txt -T "$S/curl.txt"

rc=0; wait "$stall_curl_pid" || rc=$?
check "stalled curl: the upload itself succeeds (exit $rc)" test "$rc" -eq 0
rc=0; wait "$stall_sftp_pid" || rc=$?
check "stalled sftp: the upload itself succeeds (exit $rc)" test "$rc" -eq 0
echo "# all uploads done after $SECONDS s"

all_archived() {
  local n
  for n in "${NAMES[@]}" "${LFTP_NAMES[@]}"; do archived "$n" "$SSH_DROP" || return 1; done
}
wait_for 30 all_archived || echo "# not everything was archived within 30 s of the last upload"
# Give a late second send of anything a chance to show.
sleep 2
kill "$watcher_pid" 2>/dev/null || true
wait "$watcher_pid" 2>/dev/null || true
watcher_pid=""
sort -u "$T/seen.raw" >"$T/seen.names"

ARCH=$SSH_DROP.pd/archive
# Index the payloads by sha256 so 57 uploads x 57 payloads need no 3,000 cmp runs; every match
# is still confirmed byte for byte with cmp.
declare -A BY_SUM=()
while read -r sum file; do BY_SUM[$sum]+="$file "; done < <(sha256sum "$MOCK_REC"/payloads/* 2>/dev/null)
sum_of() { sha256sum <"$1" | cut -d' ' -f1; }
# copies SRC: how many payloads equal SRC byte for byte.
copies() {
  local f n=0
  for f in ${BY_SUM[$(sum_of "$1")]:-}; do cmp -s "$f" "$1" && n=$((n + 1)); done
  echo "$n"
}
# receipt_ok NAME SRC: the receipt records the uploaded file's size and sha256 (what was sent).
receipt_ok() {
  local r="$ARCH/$1.receipt.json"
  [ -f "$r" ] &&
    jqe --argjson size "$(stat -c %s "$2")" --arg sha "$(sum_of "$2")" \
      '.size == $size and .sha256 == $sha and .result == "delivered"' "$r"
}
for n in "${NAMES[@]}"; do
  src=$(src_of "$n")
  got=$(copies "$src")
  check "$n: arrived byte for byte exactly once (received $got)" test "$got" -eq 1
  check "$n: archived with a receipt" archived "$n" "$SSH_DROP"
  check "$n: the archived file equals the upload" cmp -s "$ARCH/$n" "$src"
  check "$n: the receipt records the upload's size and sha256" receipt_ok "$n" "$src"
done
bad=()
for n in "${LFTP_NAMES[@]}"; do
  src=$(src_of "$n")
  { [ "$(copies "$src")" -eq 1 ] && archived "$n" "$SSH_DROP" && cmp -s "$ARCH/$n" "$src" &&
    receipt_ok "$n" "$src"; } || bad+=("$n")
done
check "lftp: all 50 files arrived exactly once, archived, receipts right (bad: ${bad[*]:-none})" \
  test ${#bad[@]} -eq 0

# Never a partial or foreign payload: every payload equals one uploaded file as a whole.
declare -A SRC_BY_SUM=()
for n in "${NAMES[@]}" "${LFTP_NAMES[@]}"; do SRC_BY_SUM[$(sum_of "$(src_of "$n")")]=$n; done
partial=()
for p in "$MOCK_REC"/payloads/*; do
  [ -f "$p" ] || continue
  n=${SRC_BY_SUM[$(sum_of "$p")]:-}
  if [ -n "$n" ] && cmp -s "$p" "$(src_of "$n")"; then continue; fi
  what="$(basename "$p"): $(stat -c %s "$p") bytes"
  for n in "${NAMES[@]}" "${LFTP_NAMES[@]}"; do
    src=$(src_of "$n")
    if cmp -s -n "$(stat -c %s "$p")" "$p" "$src"; then
      what+=", the first bytes of $n ($(stat -c %s "$src") bytes)"
      break
    fi
  done
  partial+=("$what")
done
check "no payload was partial or unknown (${#partial[@]}: ${partial[*]:-none})" test ${#partial[@]} -eq 0
total=$((${#NAMES[@]} + ${#LFTP_NAMES[@]}))
check "the emulator got exactly $total payloads (got $(payload_count))" test "$(payload_count)" -eq "$total"
check "nothing went to failed/" test -z "$(ls -A "$SSH_DROP.pd/failed" 2>/dev/null)"
check "nothing was left in the drop folder ($(ls -A "$SSH_DROP" | tr '\n' ' '))" \
  test -z "$(ls -A "$SSH_DROP")"
check "the temp names were there and none was sent: sftp's .tmp" grep -qx 'sftp_renamed.txt.tmp' "$T/seen.names"
check "the temp names were there and none was sent: rsync's hidden .rsync.txt.XXXXXX" \
  grep -q '^\.rsync\.txt\.' "$T/seen.names"
check "sshd chrooted the SFTP partner" grep -qF "Changed root directory to \"$SSH_JAIL\"" "$T/sshd.log"
check "rsync ran over ssh through rrsync" \
  grep -qF "forced-command (config) '/usr/bin/rrsync -wo $SSH_DROP' for $RSYNC_USER" "$T/sshd.log"
check "no error was logged" bash -c "! grep -q 'level=error' '$T/daemon.err'"

# Evidence for the stalled uploads (and anything that failed): what the daemon said about them.
for n in stalled_curl.txt stalled_sftp.txt; do
  echo "# daemon log for $n ($(stat -c %s "$S/$n") bytes uploaded):"
  grep -F "$n" "$T/daemon.err" | sed 's/^/#   /' | head -20 || true
  if [ -f "$ARCH/$n.receipt.json" ]; then
    echo "#   receipt: $(jq -c '{size, result}' "$ARCH/$n.receipt.json"), archived file $(stat -c %s "$ARCH/$n") bytes"
  fi
done
if [ "$FAILS" -ne 0 ]; then
  echo "# daemon warnings and errors:"
  grep -E 'level=(warn|error)' "$T/daemon.err" | sed 's/^/#   /' | head -30 || true
  echo "# sshd log (last lines):"
  tail -15 "$T/sshd.log" | sed 's/^/#   /'
fi

kill -TERM "$DAEMON_PID"
rc=0; wait "$DAEMON_PID" || rc=$?
check "SIGTERM exits 0" test "$rc" -eq 0
echo "# took $SECONDS s"
finish
