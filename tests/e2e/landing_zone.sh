# Issue 12, one partner must not hold up or steer the others (the daemon as root):
# 1. sparse files and a file over max_file_size go to the failed folder unread, while another
#    partner's 60 files are all delivered;
# 2. a plain file named .patchdrop in one drop folder, and watches whose work_dir is unusable
#    (another user's, mode 777, a symlink, a work/ that is a symlink): the others deliver; each
#    broken one is disabled (log, metric, /healthz), run --once exits 1, and once fixed it is set
#    up again within the rescan period and its files delivered;
# 3. a hard link to a file the partner cannot read stays untouched in the drop folder with one
#    log line; with allow_hard_links = yes a hard link to the partner's own file is delivered.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
. "$(dirname "$0")/lib_landing.bash"
start_mock

# --- 1. sparse and oversize files beside another partner's 60 files ---------------------------
partner_dir "$PA" "$T/sa"
partner_dir "$PA" "$T/sa2"
partner_dir "$PB" "$T/sb"
land_conf "$T/sparse.conf" "$T/state"
# 20 GB sparse files are under sa's max_file_size: only their holes can refuse them.
land_watch "$T/sparse.conf" sa "$T/sa" 41 "max_file_size = 100GB"
land_watch "$T/sparse.conf" sa2 "$T/sa2" 44 "max_file_size = 1MB"
land_watch "$T/sparse.conf" sb "$T/sb" 43
as_user "$PA" sh -c "cd $T/sa && for i in 1 2 3 4 5 6 7 8; do echo '{\"sparse\": '\$i'}' >big-\$i.json && truncate -s 20G big-\$i.json; done"
as_user "$PA" sh -c "yes 'a real line of text, many times over' | head -c 2000000 >$T/sa2/huge.txt"
as_user "$PB" sh -c "cd $T/sb && for i in \$(seq 1 60); do echo '{\"b\": '\$i'}' >b-\$i.json; done"
start=$SECONDS
run_as root "$T/sparse.conf"
all_b() { [ "$(ls "$T/state/watches/sb/archive/"*.receipt.json 2>/dev/null | wc -l)" -eq 60 ]; }
check "B's 60 files are all delivered and archived (within 60 s)" wait_for 60 all_b
echo "# B's files took $((SECONDS - start)) s"
all_sparse_failed() { local i; for i in 1 2 3 4 5 6 7 8; do in_failed "$T/state/watches/sa" "big-$i.json" || return 1; done; }
check "A's 8 sparse files are in A's failed folder" wait_for 30 all_sparse_failed
check "each with a reason saying sparse" \
  bash -c "for f in '$T/state/watches/sa/failed/'*.error.json; do jq -e '.reason | test(\"sparse\")' \"\$f\" >/dev/null || exit 1; done"
check "none of them was read (no checksum)" \
  bash -c "for f in '$T/state/watches/sa/failed/'*.error.json; do jq -e '.sha256 == null and .chunks_delivered == 0' \"\$f\" >/dev/null || exit 1; done"
check "the oversize file is in its failed folder" wait_for 30 in_failed "$T/state/watches/sa2" huge.txt
check "its reason names max_file_size" jqe '.reason | test("max_file_size")' "$T/state/watches/sa2/failed/huge.txt.error.json"
check "nothing of A's was sent (no request to A's flows)" test "$(requests_to 41)$(requests_to 44)" = 00
check "B's 60 files were each received once" test "$(requests_to 43)" -eq 60
check "and nothing else reached the emulator" test "$(payload_count)" -eq 60
check "nothing was left behind in A's drop folders" test -z "$(find "$T/sa" "$T/sa2" -mindepth 1)"
stop_daemon
cp "$T/daemon.err" "$T/sparse.log"
: >"$T/daemon.err"

# --- 2. a .patchdrop file, and broken work_dirs ----------------------------------------------
rm -rf "$MOCK_REC"/payloads/*
partner_dir "$PB" "$T/g"        # good: a normal watch
partner_dir "$PA" "$T/dot"      # a partner's plain file named .patchdrop in it
for w in owner mode link inner; do partner_dir "$PA" "$T/$w"; done
as_user "$PA" sh -c "echo 'not a folder' >$T/dot/.patchdrop"
mkdir -m 0700 "$T/owner.pd" && chown "$PA:" "$T/owner.pd"     # another user's
mkdir -m 0700 "$T/mode.pd" && chmod 0777 "$T/mode.pd"            # everyone may write it
mkdir -m 0700 "$T/link.real" && ln -s "$T/link.real" "$T/link.pd" # a symlink
mkdir -m 0700 "$T/inner.pd" "$T/inner.elsewhere" && ln -s "$T/inner.elsewhere" "$T/inner.pd/work"
land_conf "$T/z.conf" "$T/state"
PD_RESCAN=2s land_watch "$T/z.conf" good "$T/g" 43
PD_RESCAN=2s land_watch "$T/z.conf" dot "$T/dot" 45
for w in owner mode link inner; do PD_RESCAN=2s land_watch "$T/z.conf" "$w" "$T/$w" 46 "work_dir = $T/$w.pd"; done
drop() { as_user "$2" sh -c "echo 'file $1 $3' >$T/$1/$3"; }
drop g "$PB" g1.txt
drop dot "$PA" d1.txt
for w in owner mode link inner; do drop "$w" "$PA" "${w}1.txt"; done
before_inner=$(snap "$T/inner.elsewhere") before_link=$(snap "$T/link.real")

once_as root "$T/z.conf" "$T/z-once.log"
check "run --once exits 1 while a watch is disabled" test "$ONCE_RC" -eq 1
check "run --once still delivers the good watch" in_archive "$T/state/watches/good" g1.txt
check "and the watch with a .patchdrop file (which it leaves alone)" \
  bash -c "[ -f '$T/state/watches/dot/archive/d1.txt.receipt.json' ] && [ \"\$(cat '$T/dot/.patchdrop')\" = 'not a folder' ]"
check "the .patchdrop file is logged as left alone" grep -q 'event=legacy_ignored watch=dot' "$T/z-once.log"
for w in owner mode link inner; do
  check "run --once: watch $w is disabled and its file left in place" \
    bash -c "grep -q 'event=watch_disabled watch=$w ' '$T/z-once.log' && [ -f '$T/$w/${w}1.txt' ]"
done
check "the reason for owner names the folder and chown" grep -qE "event=watch_disabled watch=owner reason=\"[^\"]*$T/owner.pd[^\"]*chown" "$T/z-once.log"
check "the reason for mode names the folder and chmod" grep -qE "event=watch_disabled watch=mode reason=\"[^\"]*$T/mode.pd[^\"]*chmod" "$T/z-once.log"
check "the reason for link names the folder and says symbolic link" grep -qE "event=watch_disabled watch=link reason=\"[^\"]*$T/link.pd[^\"]*symbolic link" "$T/z-once.log"
check "the reason for inner names its work/ folder" grep -qE "event=watch_disabled watch=inner reason=\"[^\"]*$T/inner.pd/work" "$T/z-once.log"
check "the summary says some watches could not be set up" grep -q 'could not be set up' "$T/z-once.log.out" "$T/z-once.log"
unchanged_targets() { [ "$before_inner" = "$(snap "$T/inner.elsewhere")" ] && [ "$before_link" = "$(snap "$T/link.real")" ]; }
check "nothing was written where the symlinks point" unchanged_targets

# The daemon: the broken watches are shown, fixed one by one, and set up again.
land_metrics "$T/z.conf"
run_as root "$T/z.conf"
check "metrics listen" wait_for 10 grep -q 'event=metrics_listening' "$T/daemon.err"
M="http://127.0.0.1:$(metrics_port "$T/daemon.err")"
up() { curl -fsS --max-time 5 "$M/metrics" | awk -v n="patchdrop_watch_up{watch=\"$1\"}" '$1 == n { print $2 }'; }
health() { curl -sS --max-time 5 -o "$T/health.body" -w '%{http_code}' "$M/healthz"; }
drop g "$PB" g2.txt
check "the good watch delivers while the others are disabled" wait_for 15 in_archive "$T/state/watches/good" g2.txt
check "watch_up is 1 for good and dot" test "$(up good) $(up dot)" = "1 1"
for w in owner mode link inner; do
  check "watch_up is 0 for $w" test "$(up "$w")" = 0
done
fixes=("chown root: $T/owner.pd" "chmod 0700 $T/mode.pd" "rm $T/link.pd && mkdir -m 0700 $T/link.pd" "rm $T/inner.pd/work")
i=0
for w in owner mode link inner; do
  check "/healthz is 503 naming watch $w" bash -c "[ \"\$(curl -sS --max-time 5 -o '$T/health.body' -w '%{http_code}' '$M/healthz')\" = 503 ] && grep -q 'watch $w is disabled' '$T/health.body'"
  t0=$SECONDS
  eval "${fixes[$i]}"
  check "after '${fixes[$i]}' watch $w is set up again within the rescan period" \
    wait_for 4 grep -q "event=watch_enabled watch=$w\$" "$T/daemon.err"
  echo "# watch $w came back after $((SECONDS - t0)) s"
  check "and its waiting file is delivered" wait_for 10 in_archive "$T/$w.pd" "${w}1.txt"
  check "watch_up is 1 for $w" test "$(up "$w")" = 1
  i=$((i + 1))
done
check "/healthz is 200 once every watch is set up" test "$(health)" = 200
check "the disabled watches were said once each" \
  test "$(grep -c 'event=watch_disabled' "$T/daemon.err")" -eq 4
check "the good watch's files were each received once" \
  bash -c "[ \$(grep -rl 'file g ' '$MOCK_REC/payloads' | wc -l) -eq 2 ]"
stop_daemon
cp "$T/daemon.err" "$T/disabled.log"
: >"$T/daemon.err"
once_as root "$T/z.conf" "$T/z-once2.log"
check "run --once exits 0 once every watch is set up" test "$ONCE_RC" -eq 0

# --- 3. hard links ---------------------------------------------------------------------------
rm -rf "$MOCK_REC"/payloads/*
mkdir -m 0755 "$T/rootfiles"
echo "HARDLINK-SECRET-$RANDOM" >"$T/rootfiles/secret.txt"
chmod 0600 "$T/rootfiles/secret.txt"
partner_dir "$PA" "$T/ha"
partner_dir "$PA" "$T/hb"
mkdir -m 0700 "$T/ahome" && chown "$PA:" "$T/ahome"
as_user "$PA" sh -c "echo 'A-OWN-LINKED' >$T/ahome/own.txt && echo 'A-NORMAL' >$T/ha/normal.txt"
# fs.protected_hardlinks = 0 only for as long as the partner's ln takes (the trap restores it
# too); where it cannot be written, root makes the same link: the daemon must refuse it either way.
LAND_SYSCTL_HL=$(cat /proc/sys/fs/protected_hardlinks)
how="the partner"
if ! { set_protected_hardlinks 0 && as_user "$PA" ln "$T/rootfiles/secret.txt" "$T/ha/report.txt"; }; then
  how="root (emulated: fs.protected_hardlinks could not be set)"
  ln "$T/rootfiles/secret.txt" "$T/ha/report.txt"
fi
set_protected_hardlinks "$LAND_SYSCTL_HL" || true
check "fs.protected_hardlinks is back to $LAND_SYSCTL_HL" test "$(cat /proc/sys/fs/protected_hardlinks)" = "$LAND_SYSCTL_HL"
check "the link to root's 0600 file was made by $how" test "$(stat -c %i "$T/ha/report.txt")" = "$(stat -c %i "$T/rootfiles/secret.txt")"
as_user "$PA" ln "$T/ahome/own.txt" "$T/hb/own.txt"
linkstat() { stat -c '%i %h %a %U %s %Y %Z' "$T/ha/report.txt" "$T/rootfiles/secret.txt"; }
before=$(linkstat) before_own=$(stat -c '%i %a %U %s %Y' "$T/ahome/own.txt")
land_conf "$T/h.conf" "$T/state"
PD_RESCAN=300ms land_watch "$T/h.conf" ha "$T/ha" 47
PD_RESCAN=300ms land_watch "$T/h.conf" hb "$T/hb" 48 "allow_hard_links = yes"
run_as root "$T/h.conf"
check "A's normal file is delivered" wait_for 15 in_archive "$T/state/watches/ha" normal.txt
check "with allow_hard_links = yes, A's hard-linked own file is delivered" wait_for 15 in_archive "$T/state/watches/hb" own.txt
sleep 2 # several rescans
check "the secret never reached the emulator" test "$(payloads_with HARDLINK-SECRET)" -eq 0
check "the link stays untouched in the drop folder (and the secret too)" test "$before" = "$(linkstat)"
check "one log line says why (hard links)" \
  test "$(grep -E 'event=refused watch=ha file=report.txt' "$T/daemon.err" | grep -c 'hard links')" -eq 1
check "A's own file outside the drop folder is unchanged" \
  test "$before_own" = "$(stat -c '%i %a %U %s %Y' "$T/ahome/own.txt")"
echo A-OWN-LINKED >"$T/expect"
check "and was received once" test "$(received_count "$T/expect")" -eq 1
stop_daemon
cp "$T/daemon.err" "$T/hardlinks.log"
: >"$T/daemon.err"

# --- 4. the per-watch job cap ------------------------------------------------------------------
# Requests that never get an answer hold their jobs: with two watches (concurrency 4) a watch
# holds at most concurrency - 1 = 3 files, so a request slot stays for the other partner; one
# with max_jobs = 1 holds only one.
start_mock --script hang,hang,hang,hang,hang,hang
partner_dir "$PA" "$T/ca"
partner_dir "$PA" "$T/cc"
land_conf "$T/cap.conf" "$T/state"
land_watch "$T/cap.conf" ca "$T/ca" 41
land_watch "$T/cap.conf" cc "$T/cc" 49 "max_jobs = 1"
as_user "$PA" sh -c "for i in \$(seq 1 10); do echo A-SLOW-\$i >$T/ca/a-\$i.txt; done; for i in 1 2 3; do echo C-SLOW-\$i >$T/cc/c-\$i.txt; done"
run_as root "$T/cap.conf"
claims() { grep -c "event=claimed watch=$1 " "$T/daemon.err" || true; }
wait_for 5 bash -c "[ \$(grep -c 'event=claimed' '$T/daemon.err') -ge 5 ]" || true
sleep 1
check "a watch holds at most concurrency - 1 (3): $(claims ca) claimed" test "$(claims ca)" -eq 3
check "the other 7 files wait in its drop folder" test "$(ls "$T/ca" | wc -l)" -eq 7
check "a watch with max_jobs = 1 holds one: $(claims cc) claimed" test "$(claims cc)" -eq 1
stop_daemon
cp "$T/daemon.err" "$T/cap.log"
finish
