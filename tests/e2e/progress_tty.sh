# On a terminal `send` and `run --once` show a progress bar (files, bytes, rate, ETA) and a
# summary table; with output to files or pipes, nothing of either. The terminal is a pty made
# by script(1).
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
command -v script >/dev/null || { echo "skipped: script(1) is not installed"; exit 77; }

mock --latency 300ms
C=$(conf tty "concurrency = 1")
mkdir -p "$T/in" "$T/drop"
for i in 1 2 3 4; do seq 1 2000 | sed "s/^/file $i line /" >"$T/in/f$i.txt"; done
cp "$T"/in/f*.txt "$T/drop/"
add_watch "$C" drop "$T/drop" 42 "settle = 0"

# screen FILE: the lines as a terminal shows them (what follows the last carriage return).
screen() { sed 's/\r$//; s/\x1b\[K//g' "$1" | awk -F'\r' '{print $NF}'; }
# tty SCRIPT OUT: runs the shell command on a pseudo-terminal, its screen output in OUT.
tty_run() {
  TERM=xterm timeout 60 script -qec "$1" /dev/null >"$2" 2>&1 </dev/null
}

tty_run "'$PD_BIN' send -c '$C' --flow 42 '$T'/in/f*.txt" "$T/send.tty" && rc=0 || rc=$?
check "send on a terminal exits 0" test "$rc" -eq 0
check "the bar shows files, bytes, rate and ETA" grep -aqE '\[[#-]{20}\] [0-4]/4 files  .*B/.*B  .*B/s  ETA ' "$T/send.tty"
check "the bar is redrawn in place" grep -aq $'\r\033\\[K\\[' "$T/send.tty"
check "the summary table ends it" grep -aqE '^  delivered +4' <(screen "$T/send.tty")
check "chunk lines are whole: the bar never lands inside one" \
  test "$(screen "$T/send.tty" | grep -ac '^/.*f[0-9].txt: chunk 1/1, .*flow run [0-9]*$')" -eq 4

run_pd "$T/send.pipe" send -c "$C" --flow 42 "$T"/in/f*.txt
check "send to files exits 0" test "$RC" -eq 0
check "no bar, no table, no control characters when not a terminal" \
  bash -c "! grep -aqE 'ETA|result +files|'$'\r''|'$'\033' '$T/send.pipe.out' '$T/send.pipe.err'"

tty_run "'$PD_BIN' run --once -c '$C'" "$T/run.tty" && rc=0 || rc=$?
check "run --once on a terminal exits 0" test "$rc" -eq 0
check "its bar counts the claimed files" grep -aqE '\[[#-]{20}\] [0-4]/[0-4] claimed files .*ETA ' "$T/run.tty"
check "its summary table" grep -aqE '^  delivered +4' <(screen "$T/run.tty")
check "log lines are whole: the bar never lands inside one" \
  test "$(screen "$T/run.tty" | grep -a 'level=' | grep -acv '^20[0-9-]*T[0-9:.]*Z level=')" -eq 0
check "report lines are whole too" \
  test "$(screen "$T/run.tty" | grep -ac '^f[0-9].txt: delivered in 1 chunk')" -eq 4

cp "$T"/in/f*.txt "$T/drop/"
run_pd "$T/run.pipe" run --once -c "$C"
check "run --once to files exits 0" test "$RC" -eq 0
check "run --once: no bar, no table when not a terminal" \
  bash -c "! grep -aqE 'ETA|result +files|'$'\r''|'$'\033' '$T/run.pipe.out' '$T/run.pipe.err'"
check "no secret on the terminal either" no_secret "$T/send.tty" "$T/run.tty" "$T"/*.pipe.*
finish
