# The documentation keeps up with the program: every command `patchdrop --help` lists, and every
# long option its own --help lists, is in patchdrop(1) (its part of COMMANDS) and in the README's
# command table (its row, in the long or the short form); the patchdrop.conf(5) the build
# generated never gives a key a default and "(no default)" at once.
. "$(dirname "$0")/lib.bash"
: "${PD_SRC:?}" "${PD_BUILD:?}"
MAN="$PD_SRC/docs/patchdrop.1"
README="$PD_SRC/README.md"
CONF5="$PD_BUILD/man/man5/patchdrop.conf.5"

# The man page as text: roff's \- back to -, font changes dropped.
sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' "$MAN" >"$T/man.txt"
commands=$("$PD_BIN" --help | awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 }')
check "patchdrop --help lists commands" test "$(wc -w <<<"$commands")" -ge 7

# man_part CMD: the lines of patchdrop(1) from ".SS patchdrop CMD" to the next heading.
man_part() {
  awk -v want="patchdrop $1" '
    /^\.S[HS]/ { on = ($0 ~ "^\\.SS " want "( |$)") }
    on' "$T/man.txt"
}
# readme_row CMD: the README's command table row of CMD.
readme_row() {
  grep -E "^\| \`patchdrop $1( |\`)" "$README" || true
}

for cmd in $commands; do
  "$PD_BIN" "$cmd" --help >"$T/help.$cmd" 2>&1 || true
  part=$(man_part "$cmd")
  row=$(readme_row "$cmd")
  check "patchdrop(1) has a part on $cmd" test -n "$part"
  check "patchdrop(1)'s synopsis names $cmd" grep -qE "^\.B patchdrop $cmd( |$)" "$T/man.txt"
  check "the README's command table has a row for $cmd" test -n "$row"
  # Every long option the command's --help names, and its short form where it has one.
  for long in $(grep -oE -- '--[a-z][a-z-]*[a-z]' "$T/help.$cmd" | sort -u); do
    [ "$long" = --help ] && continue
    short=$(grep -oE -- "(^|[ ,])-[a-zA-Z], $long\\b" "$T/help.$cmd" | grep -oE -- '-[a-zA-Z],' | tr -d , | head -1 || true)
    check "patchdrop(1) documents $cmd $long" grep -qF -- "$long" <<<"$part"
    if grep -qE -- "(^|[^a-z-])$long([^a-z-]|$)" <<<"$row" ||
      { [ -n "$short" ] && grep -qE -- "(^|[^a-zA-Z-])$short([^a-zA-Z-]|$)" <<<"$row"; }; then
      ok "the README's row for $cmd lists $long${short:+ ($short)}"
    else
      not_ok "the README's row for $cmd lists $long${short:+ ($short)}"
    fi
  done
done

# patchdrop.conf(5): no key's entry (from .TP to the next .TP or heading) says "(no default)"
# when it has a default (" = value" on its first line, or a default its text gives) or is
# required.
check "the build generated patchdrop.conf(5)" test -s "$CONF5"
awk '
  function judge(rest) {
    if (entry !~ /\(no default\)/) return
    rest = entry
    gsub(/\(no default\)/, "", rest)
    if (head ~ / = / || rest ~ /default|required/) print head
  }
  /^\.(TP|SS|SH)/ { judge(); entry = ""; head = ""; tp = ($0 == ".TP"); next }
  tp && head == "" { head = $0 }
  tp { entry = entry " " $0 }
  END { judge() }' "$CONF5" >"$T/contradictions"
check "no key of patchdrop.conf(5) has a default, or is required, and says \"(no default)\"" \
  test ! -s "$T/contradictions"
sed 's/^/#   /' "$T/contradictions"
finish
