# Issue 12, the .patchdrop takeover: a partner who can write its drop folder replaces
# <drop>/.patchdrop with symlinks (to a folder only the daemon's user may read, to the other
# partner's drop folder, .patchdrop itself to a folder shaped like an old one) or with folders of
# its own full of forged files and records. With the daemon as root and as a service user, at
# start (run --once) and while running (and across a SIGHUP reload): nothing of the secret or of
# partner B reaches Patchworks, nothing there is moved or written, the partner's .patchdrop is
# left as it was, and A's own files are still delivered and archived in A's work_dir. A real old
# .patchdrop/work of the daemon's user is resumed exactly once.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
. "$(dirname "$0")/lib_landing.bash"
start_mock

# flow_of TEXT: the flows of the requests whose payload holds TEXT, one per line.
flow_of() {
  local f
  for f in $(grep -rlF -- "$1" "$MOCK_REC/payloads" 2>/dev/null); do
    jq -r "select(.payload_file == \"payloads/$(basename "$f")\") | .path" "$MOCK_REC/requests.jsonl"
  done
}
# only_a_files WORK_DIR: A's archive holds nothing but A's orders (and their receipts).
only_a_files() { [ -z "$(ls -A "$1/archive" | grep -v '^order-')" ]; }

round() {
  local who=$1 R=$T/$1
  local home=$R/home S=$R/secret A=$R/a B=$R/b
  mkdir -p "$R" "$home" && chmod 0711 "$R"
  chown "$who:" "$home" && chmod 0700 "$home"
  # S: a folder only the daemon's user may read, shaped like an old .patchdrop (attack() fills
  # it). B's invoices wait for their done markers, so B's own watch leaves them where they are.
  partner_dir "$PA" "$A"
  partner_dir "$PB" "$B"
  land_conf "$home/c.conf" "$home/state"
  land_watch "$home/c.conf" a "$A" 42
  land_watch "$home/c.conf" b "$B" 43 "done_marker = {name}.ok"
  chown "$who:" "$home/c.conf"
  local WA=$home/state/watches/a WB=$home/state/watches/b
  local sS sB sP n=0 name

  attack() { # attack NAME SCRIPT: partner A runs SCRIPT in its folder, then drops two orders.
    name=$1
    rm -rf "$A/.patchdrop"
    # Contents new for each attack, so that each attack is judged on its own.
    mkdir -p "$S/work" "$S/state"
    echo "TOP-SECRET-$who-$name" >"$S/secret.txt"
    echo "SECRET-WORK-$who-$name" >"$S/work/secret-work.txt"
    chown -R "$who:" "$S" && chmod -R go-rwx "$S"
    as_user "$PB" sh -c "for i in 1 2 3; do echo B-INVOICE-$who-$name-\$i >$B/invoice-\$i.txt; done"
    as_user "$PA" sh -c "cd $A && $2"
    as_user "$PA" sh -c "echo A-ORDER-$who-$name-1 >$A/order-$name-1.txt; echo A-ORDER-$who-$name-2 >$A/order-$name-2.txt"
    sS=$(snap "$S") sB=$(snap "$B") sP=$(snap "$A/.patchdrop")
  }
  verdict() { # verdict NAME: what must hold after each attack.
    local i
    for i in 1 2; do
      echo "A-ORDER-$who-$name-$i" >"$T/expect"
      check "[$who/$name] A's order $i delivered once" test "$(received_count "$T/expect")" -eq 1
      check "[$who/$name] A's order $i archived in A's work_dir" in_archive "$WA" "order-$name-$i.txt"
    done
    check "[$who/$name] no secret reached the emulator" \
      test "$(payloads_with "TOP-SECRET-$who-$name")$(payloads_with "SECRET-WORK-$who-$name")" = 00
    check "[$who/$name] none of B's files reached the emulator" test "$(payloads_with "B-INVOICE-$who-$name-")" -eq 0
    check "[$who/$name] no forged file reached the emulator" test "$(payloads_with "FORGED-$who")" -eq 0
    check "[$who/$name] the daemon's private folder is unchanged" test "$sS" = "$(snap "$S")"
    check "[$who/$name] B's folder is unchanged" test "$sB" = "$(snap "$B")"
    check "[$who/$name] A's .patchdrop is left as it was" test "$sP" = "$(snap "$A/.patchdrop")"
    check "[$who/$name] A's archive holds only A's orders" only_a_files "$WA"
    check "[$who/$name] A's work/ is empty again" test -z "$(ls -A "$WA/work")"
  }

  # At start: run --once after each attack.
  attack symlinks-to-private 'mkdir .patchdrop && for d in work state archive failed; do ln -s '"$S"' .patchdrop/$d; done'
  once_as "$who" "$home/c.conf" "$R/once-$name.log"
  check "[$who/$name] run --once exits 0" test "$ONCE_RC" -eq 0
  check "[$who/$name] the log says the old folder was left alone" grep -q 'event=legacy_ignored watch=a' "$R/once-$name.log"
  verdict "$name"

  attack symlinks-to-b 'mkdir .patchdrop && for d in work state archive failed; do ln -s '"$B"' .patchdrop/$d; done'
  once_as "$who" "$home/c.conf" "$R/once-$name.log"
  check "[$who/$name] run --once exits 0" test "$ONCE_RC" -eq 0
  verdict "$name"

  attack dot-patchdrop-is-a-symlink "ln -s $S .patchdrop"
  once_as "$who" "$home/c.conf" "$R/once-$name.log"
  check "[$who/$name] run --once exits 0" test "$ONCE_RC" -eq 0
  check "[$who/$name] the log says the old folder was left alone" grep -q 'event=legacy_ignored watch=a' "$R/once-$name.log"
  verdict "$name"

  attack foreign-folders 'mkdir -p .patchdrop/work .patchdrop/state .patchdrop/archive .patchdrop/failed &&
    echo FORGED-'"$who"'-1 >.patchdrop/work/forged-1.txt && echo FORGED-'"$who"'-2 >.patchdrop/work/forged-2.json &&
    echo "{\"file\":\"forged-1.txt\",\"chunks\":[]}" >.patchdrop/state/forged-1.txt.json &&
    chmod 700 .patchdrop .patchdrop/work .patchdrop/state .patchdrop/archive .patchdrop/failed'
  once_as "$who" "$home/c.conf" "$R/once-$name.log"
  check "[$who/$name] run --once exits 0" test "$ONCE_RC" -eq 0
  check "[$who/$name] the log says the old folder was left alone" grep -q 'event=legacy_ignored watch=a' "$R/once-$name.log"
  verdict "$name"

  # The same, readable by everyone (so only the owner tells they are not the daemon's), and the
  # files in them named like what A drops.
  attack foreign-readable 'mkdir -p .patchdrop/work .patchdrop/state .patchdrop/archive .patchdrop/failed &&
    echo FORGED-'"$who"'-3 >.patchdrop/work/order-x.txt &&
    echo "{\"file\":\"order-x.txt\",\"chunks\":[]}" >.patchdrop/state/order-x.txt.json &&
    chmod 755 .patchdrop .patchdrop/work .patchdrop/state .patchdrop/archive .patchdrop/failed'
  once_as "$who" "$home/c.conf" "$R/once-$name.log"
  check "[$who/$name] run --once exits 0" test "$ONCE_RC" -eq 0
  check "[$who/$name] the log says the old folder was left alone" grep -q 'event=legacy_ignored watch=a' "$R/once-$name.log"
  # Following the advice must not hand the partner's folder (and its forged files and records)
  # to patchdrop: the next start would migrate and send them.
  check "[$who/$name] the log does not advise chown-ing the partner's .patchdrop to patchdrop" \
    bash -c "! grep 'event=legacy_ignored' '$R/once-$name.log' | grep -q 'run: chown'"
  verdict "$name"

  # While running: the attack after the start, and a SIGHUP reload (which sets the watches up again).
  rm -rf "$A/.patchdrop"
  : >"$T/daemon.err"
  run_as "$who" "$home/c.conf"
  as_user "$PA" sh -c "echo A-ORDER-$who-warmup >$A/order-warmup.txt"
  check "[$who/live] the daemon runs and delivers" wait_for 15 in_archive "$WA" order-warmup.txt
  attack live 'mkdir .patchdrop && ln -s '"$S"' .patchdrop/work && ln -s '"$B"' .patchdrop/state && ln -s '"$S"' .patchdrop/archive && ln -s '"$B"' .patchdrop/failed'
  check "[$who/live] A's orders are archived" wait_for 15 bash -c "[ -f '$WA/archive/order-live-1.txt.receipt.json' ] && [ -f '$WA/archive/order-live-2.txt.receipt.json' ]"
  kill -HUP "$DAEMON_PID"
  check "[$who/live] the reload is applied" wait_for 15 grep -q 'event=reloaded' "$T/daemon.err"
  as_user "$PA" sh -c "echo A-ORDER-$who-after-reload >$A/order-after-reload.txt"
  check "[$who/live] files still delivered after the reload" wait_for 15 in_archive "$WA" order-after-reload.txt
  stop_daemon
  cp "$T/daemon.err" "$R/live.log"
  verdict live

  # The daemon's user and mode on what it keeps.
  # 0710: the group may pass through to the control socket (patchdrop status), no more.
  check "[$who] the state dir is $who's, 0710" test "$(stat -c '%U %a' "$home/state")" = "$who 710"
  check "[$who] A's work_dir, work/ and state/ are $who's, 0700" \
    test "$(stat -c '%U %a' "$WA" "$WA/work" "$WA/state" | sort -u)" = "$who 700"

  # A real old .patchdrop/work of the daemon's user: its file is resumed exactly once.
  rm -rf "$A/.patchdrop"
  as_user "$who" sh -c "mkdir -m 700 $A/.patchdrop $A/.patchdrop/work $A/.patchdrop/state &&
    echo LEGACY-$who-resume >$A/.patchdrop/work/legacy-1.txt"
  once_as "$who" "$home/c.conf" "$R/legacy1.log"
  check "[$who/legacy] run --once exits 0" test "$ONCE_RC" -eq 0
  check "[$who/legacy] the log says one file was migrated" grep -q 'event=migrated watch=a files=1' "$R/legacy1.log"
  echo "LEGACY-$who-resume" >"$T/expect"
  check "[$who/legacy] the old work file is delivered once" test "$(received_count "$T/expect")" -eq 1
  check "[$who/legacy] and archived in A's work_dir" in_archive "$WA" legacy-1.txt
  check "[$who/legacy] the old work/ is empty" test -z "$(ls -A "$A/.patchdrop/work")"
  once_as "$who" "$home/c.conf" "$R/legacy2.log"
  check "[$who/legacy] a second start sends nothing again" test "$(received_count "$T/expect")" -eq 1
  check "[$who/legacy] and migrates nothing" bash -c "! grep -q 'event=migrated' '$R/legacy2.log'"

  # B's watch had access all along: with its markers, B's invoices go to B's flow only.
  as_user "$PB" sh -c "for i in 1 2 3; do echo B-INVOICE-$who-final-\$i >$B/invoice-\$i.txt && : >$B/invoice-\$i.txt.ok; done"
  once_as "$who" "$home/c.conf" "$R/b.log"
  check "[$who] B's invoices are delivered by B's watch once marked" \
    test "$(payloads_with "B-INVOICE-$who-final-1")$(payloads_with "B-INVOICE-$who-final-2")$(payloads_with "B-INVOICE-$who-final-3")" = 111
  check "[$who] B's invoices went to B's flow only" \
    test "$(for i in 1 2 3; do flow_of "B-INVOICE-$who-final-$i"; done | sort -u)" = "/api/v1/flows/43/start/7"
  check "[$who] and are archived in B's work_dir" \
    bash -c "for i in 1 2 3; do [ -f '$WB/archive/invoice-'\$i'.txt.receipt.json' ] || exit 1; done"
  check "[$who] nothing of A's went to B's flow" test -z "$(flow_of A-ORDER- | grep -v '/flows/42/' || true)"
}

round root
round "$SVC"
finish
