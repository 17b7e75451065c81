# Issue 12, a recursive watch whose subfolder is swapped for a symlink, and setuid programs.
# 1. With recursive = yes and settle = 0, partner A exchanges its subfolder `sub` and a symlink
#    `lnk` -> a folder only root may read (renameat2 RENAME_EXCHANGE, tight loop, 20 s) while new
#    files keep arriving in the real subfolder: the secret never reaches Patchworks, nothing out
#    there is moved or changed, and A's files are delivered, each once.
# 2. A partner's 4755 and 2755 files, archived (and failed) on another file system (a tmpfs the
#    test mounts), with the daemon as root and as a service user, and on the same file system as
#    root: nothing patchdrop puts there keeps a setuid or setgid bit (mode 0640, folders 0750).
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
. "$(dirname "$0")/lib_landing.bash"
start_mock

# --- 1. the recursive swap ---------------------------------------------------------------------
# pd_swap built here, where the partner user can run it.
cc -O2 -Wall -o "$T/pd_swap" "${PD_SRC:-$(dirname "$0")/../..}/tests/tools/pd_swap.c"
chmod 0755 "$T/pd_swap"
O=$T/outside D=$T/r
mkdir -p "$O/deeper"
echo "SWAP-SECRET-$RANDOM" >"$O/secret.txt"
echo "SWAP-SECRET-DEEP-$RANDOM" >"$O/deeper/secret2.txt"
chmod -R go-rwx "$O"
partner_dir "$PA" "$D"
as_user "$PA" sh -c "mkdir $D/sub && echo INNOCENT-0 >$D/sub/innocent-0.txt && ln -s $O $D/lnk"
before=$(snap "$O")
land_conf "$T/r.conf" "$T/state"
PD_RESCAN=200ms land_watch "$T/r.conf" r "$D" 42 "recursive = yes"
WR=$T/state/watches/r
run_as root "$T/r.conf"
check "the recursive watch delivers the first file" wait_for 15 in_archive "$WR" innocent-0.txt
# The writer keeps its working folder in the real subfolder, whatever its name at the moment.
N=36
as_user "$PA" sh -c "cd $D/sub && i=1 && while [ \$i -le $N ]; do echo INNOCENT-\$i >.w\$i && mv .w\$i innocent-\$i.txt; i=\$((i+1)); sleep 0.5; done" &
writer=$!
PD_PIDS+=("$writer")
sleep 0.3
as_user "$PA" "$T/pd_swap" "$D/sub" "$D/lnk" 20 >"$T/swaps" 2>"$T/swaps.err" && rc=0 || rc=$?
wait "$writer" || true
check "the partner swapped sub and lnk ($(cat "$T/swaps") exchanges)" \
  test "$rc" -eq 0 -a "$(cat "$T/swaps")" -gt 0
check "afterwards sub is the folder and lnk the symlink again" \
  bash -c "[ -d '$D/sub' ] && [ ! -L '$D/sub' ] && [ -L '$D/lnk' ] && [ \"\$(readlink '$D/lnk')\" = '$O' ]"
all_innocent() { local i; for i in $(seq 0 $N); do in_archive "$WR" "innocent-$i.txt" || return 1; done; }
check "every innocent file is delivered and archived" wait_for 30 all_innocent
sleep 1 # a few more rescans through the symlink
check "the secret never reached the emulator" test "$(payloads_with SWAP-SECRET)" -eq 0
check "no secret was ever claimed" bash -c "! grep -E 'event=claimed.*secret' '$T/daemon.err'"
check "nothing in the outside folder was moved or changed" test "$before" = "$(snap "$O")"
bad=0
for i in $(seq 0 $N); do
  echo "INNOCENT-$i" >"$T/expect"
  [ "$(received_count "$T/expect")" -eq 1 ] || { bad=$((bad + 1)); echo "# innocent-$i.txt received $(received_count "$T/expect") times"; }
done
check "each innocent file was received exactly once" test "$bad" -eq 0
check "the emulator got nothing else" test "$(payload_count)" -eq $((N + 1))
check "the daemon is still running" kill -0 "$DAEMON_PID"
stop_daemon
cp "$T/daemon.err" "$T/swap.log"

# --- 2. setuid and setgid files ----------------------------------------------------------------
mkdir -p "$T/mnt"
mount -t tmpfs -o size=16m,mode=0755 tmpfs "$T/mnt"
LAND_MOUNTS+=("$T/mnt")
# drop_programs DIR: partner A drops a 4755 and a 2755 script and a 4755 file that will fail.
drop_programs() {
  as_user "$PA" sh -c "cd $1 && printf '#!/bin/sh\nid -u # SUID-$RANDOM\n' >prog.sh && chmod 4755 prog.sh &&
    printf '#!/bin/sh\nid -g # SGID-$RANDOM\n' >prog2.sh && chmod 2755 prog2.sh &&
    printf '{bad' >bad.json && chmod 4755 bad.json"
  check "partner A's programs are 4755, 2755, 4755 ($1)" \
    test "$(stat -c %a "$1/prog.sh" "$1/prog2.sh" "$1/bad.json" | tr '\n' ' ')" = "4755 2755 4755 "
}
# placed WHO ARCHIVE FAILED: where the programs ended up, and how.
placed() {
  local who=$1 arc=$2 fld=$3 tag=$4
  check "[$tag] both programs archived, the bad one failed" \
    bash -c "[ -f '$arc/prog.sh.receipt.json' ] && [ -f '$arc/prog2.sh.receipt.json' ] && [ -f '$fld/bad.json.error.json' ]"
  check "[$tag] archived and failed copies are 0640" \
    test "$(stat -c %a "$arc/prog.sh" "$arc/prog2.sh" "$fld/bad.json" | tr '\n' ' ')" = "640 640 640 "
  check "[$tag] no setuid, setgid or sticky bit anywhere in archive or failed" \
    test -z "$(find "$arc" "$fld" -perm /7000)"
  check "[$tag] the archive and failed folders are 0750" test "$(stat -c %a "$arc" "$fld" | tr '\n' ' ')" = "750 750 "
  [ -z "$who" ] || check "[$tag] the copies are $who's" \
    test "$(stat -c %U "$arc/prog.sh" "$arc/prog2.sh" "$fld/bad.json" | sort -u)" = "$who"
}

# As root: x archives to the tmpfs (a copy), y to its own folder on the drop folder's file system.
partner_dir "$PA" "$T/x"
partner_dir "$PA" "$T/y"
drop_programs "$T/x"
drop_programs "$T/y"
land_conf "$T/s.conf" "$T/state"
land_watch "$T/s.conf" x "$T/x" 42 "archive_dir = $T/mnt/root/archive" "failed_dir = $T/mnt/root/failed"
land_watch "$T/s.conf" y "$T/y" 42
once_as root "$T/s.conf" "$T/suid-root.log"
check "[root] run --once exits 1 (bad.json failed)" test "$ONCE_RC" -eq 1
check "[root] the archive really is on another file system" \
  test "$(stat -c %d "$T/mnt/root/archive")" != "$(stat -c %d "$T/x")"
placed root "$T/mnt/root/archive" "$T/mnt/root/failed" "root, across file systems"
placed "" "$T/state/watches/y/archive" "$T/state/watches/y/failed" "root, same file system"

# As the service user, archiving to the tmpfs.
mkdir -p "$T/svc" "$T/mnt/svc"
chown "$SVC:" "$T/svc" "$T/mnt/svc"
chmod 0700 "$T/svc" "$T/mnt/svc"
partner_dir "$PA" "$T/x2"
drop_programs "$T/x2"
land_conf "$T/svc/s.conf" "$T/svc/state"
land_watch "$T/svc/s.conf" x2 "$T/x2" 42 "archive_dir = $T/mnt/svc/archive" "failed_dir = $T/mnt/svc/failed"
chown "$SVC:" "$T/svc/s.conf"
once_as "$SVC" "$T/svc/s.conf" "$T/suid-svc.log"
check "[$SVC] run --once exits 1 (bad.json failed)" test "$ONCE_RC" -eq 1
placed "$SVC" "$T/mnt/svc/archive" "$T/mnt/svc/failed" "$SVC, across file systems"
finish
