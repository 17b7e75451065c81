# File names are chosen by partners: on a terminal (a pty made by script(1)), `run --once` and
# `send` print them escaped, so a name can neither retitle the window (ESC ] 0 ; ... BEL), clear
# the screen (ESC [ 2 J), send C1 controls, nor forge a log line with a newline. The only escape
# sequence on the terminal is the progress bar's own (CR ESC [ K). Valid UTF-8 names stay
# readable, and every file is still delivered. The same holds for the report sent to a pipe.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
command -v script >/dev/null || { echo "skipped: script(1) is not installed"; exit 77; }
export LC_ALL=C # byte-wise grep
# The checks below are "grep -P finds nothing": a grep without -P must skip them, not pass them.
echo x | grep -qP '\x78' 2>/dev/null || { echo "skipped: grep -P (PCRE) is not available"; exit 77; }

mock
C=$(conf tty "concurrency = 2")
mkdir -p "$T/in" "$T/drop"
add_watch "$C" drop "$T/drop" 42 "settle = 0"
names=($'a\e]0;title\a.txt' $'b\e[2J.txt' $'c.txt\n2024-01-01T00:00:00Z level=error event=forged'
  $'d\x9b2J.txt' $'e\xc2\x9b2J.txt' $'caf\xc3\xa9 \xc3\xbcn\xc3\xaf.txt')
# What each must look like on the terminal.
shown=('a\x1b]0;title\x07.txt' 'b\x1b[2J.txt' 'c.txt\n2024-01-01T00:00:00Z level=error event=forged'
  'd\x9b2J.txt' 'e\xc2\x9b2J.txt' $'caf\xc3\xa9 \xc3\xbcn\xc3\xaf.txt')
# Contents differ per file and per phase, so the emulator's record tells who arrived.
make_files() { # make_files DIR PHASE
  mkdir -p "$1"
  for i in "${!names[@]}"; do
    printf '%s: line %d of a file with an odd name\n' "$2" "$i" >"$1/${names[$i]}"
  done
}
make_files "$T/in" send

tty_run() { # tty_run COMMAND OUT: the command on a pseudo-terminal, all it shows in OUT
  TERM=xterm timeout 60 script -qfec "$1" /dev/null >"$2" 2>&1 </dev/null
}
# clean OUT: no escape sequence but the bar's own, no BEL, no C1 control, raw or UTF-8.
only_bar_escapes() { ! grep -aqP '\x1b(?!\[K)' "$1"; }
no_bel() { ! grep -aq $'\a' "$1"; }
no_c1() { ! grep -aqP '\x9b|\xc2[\x80-\x9f]' "$1"; }
# all_received DIR: every file's bytes arrived at the emulator
all_received() {
  local f
  for f in "$1"/*; do received_file "$f" || return 1; done
}
received_file() {
  local p
  for p in "$MOCK_REC"/payloads/*; do cmp -s "$p" "$1" && return 0; done
  return 1
}
# shows OUT TEXT SUFFIX: a line of OUT holds the escaped name followed by SUFFIX.
shows() { grep -aqF -- "$2$3" "$1"; }

# --- send ---------------------------------------------------------------------------------------
tty_run "'$PD_BIN' send -c '$C' --flow 42 '$T'/in/*" "$T/send.tty" && rc=0 || rc=$?
check "send on a terminal exits 0" test "$rc" -eq 0
check "send: every file arrived" all_received "$T/in"
check "send: no escape sequence reaches the terminal but the progress bar's" only_bar_escapes "$T/send.tty"
check "send: no BEL" no_bel "$T/send.tty"
check "send: no C1 control" no_c1 "$T/send.tty"
for i in "${!names[@]}"; do
  check "send shows name $i escaped: ${shown[$i]}" shows "$T/send.tty" "$T/in/${shown[$i]}" ": chunk 1/1"
done
check "send: the forged log line is not a line of its own" \
  bash -c "! grep -aq '^2024-01-01T00:00:00Z level=error' '$T/send.tty'"

# --- run --once ---------------------------------------------------------------------------------
make_files "$T/in.run" run
cp "$T"/in.run/* "$T/drop/"
tty_run "'$PD_BIN' run --once -c '$C'" "$T/run.tty" && rc=0 || rc=$?
check "run --once on a terminal exits 0" test "$rc" -eq 0
check "run --once: every file arrived" all_received "$T/in.run"
check "run --once: no escape sequence reaches the terminal but the progress bar's" only_bar_escapes "$T/run.tty"
check "run --once: no BEL" no_bel "$T/run.tty"
check "run --once: no C1 control" no_c1 "$T/run.tty"
for i in "${!names[@]}"; do
  check "run --once reports name $i escaped: ${shown[$i]}" shows "$T/run.tty" "${shown[$i]}" ": delivered in 1 chunk"
done
check "run --once: the forged log line is not a line of its own" \
  bash -c "! grep -aq '^2024-01-01T00:00:00Z level=error' '$T/run.tty'"

# --- run --once to a pipe: the report is escaped there too ----------------------------------------
make_files "$T/in.pipe" pipe
cp "$T"/in.pipe/* "$T/drop/"
timeout 60 "$PD_BIN" run --once -c "$C" >"$T/run.out" 2>"$T/run.err" && rc=0 || rc=$?
check "run --once to a pipe exits 0" test "$rc" -eq 0
check "run --once to a pipe: every file arrived" all_received "$T/in.pipe"
check "the piped report and log hold no escape character, BEL or C1 control" \
  bash -c "! grep -aqP '\x1b|\x07|\x9b|\xc2[\x80-\x9f]' '$T/run.out' '$T/run.err'"
check "the piped report names the window-title file escaped" \
  shows "$T/run.out" 'a\x1b]0;title\x07.txt' ": delivered in 1 chunk"
check "two report lines per file (its chunk, its end) and the summary: nothing forged" \
  test "$(grep -ac '' "$T/run.out")" -eq $((2 * ${#names[@]} + 1))
check "no secret on the terminal" no_secret "$T/send.tty" "$T/run.tty" "$T/run.out" "$T/run.err"
finish
