# Shell completion made from the command table: `patchdrop completion bash` sourced in bash
# completes commands and each command's long options the way a user presses TAB.
. "$(dirname "$0")/lib.bash"

"$PD_BIN" completion bash >"$T/patchdrop.bash"
check "completion bash prints a script" test -s "$T/patchdrop.bash"
check "the script is valid bash" bash -n "$T/patchdrop.bash"

# complete WORDS...: what TAB offers for the last word, one per line, sorted.
complete_words() {
  bash -c '
    . "$1"; shift
    COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
    _patchdrop patchdrop "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    printf "%s\n" "${COMPREPLY[@]}" | sort' _ "$T/patchdrop.bash" "$@"
}
check "patchdrop ru<TAB> is run" test "$(complete_words patchdrop ru)" = run
check "patchdrop c<TAB> is check-config (the hidden command is not offered)" \
  test "$(complete_words patchdrop c)" = check-config
check "patchdrop run --o<TAB> is --once" test "$(complete_words patchdrop run --o)" = --once
check "patchdrop send --flow<TAB> offers both flow options" \
  test "$(complete_words patchdrop send --flow | tr '\n' ' ')" = "--flow --flow-version "
check "options after -c FILE complete too" test "$(complete_words patchdrop run -c x.conf --no)" = --no-follow
touch "$T/orders.conf"
check "--config FILE completes a file name" \
  test "$(cd "$T" && complete_words patchdrop check-config --config ord)" = orders.conf
check "a value only the user knows offers nothing" \
  test -z "$(cd "$T" && complete_words patchdrop send --watch ord)"

# Every command --help lists, and each long option its --help names, is offered.
for cmd in $("$PD_BIN" --help | awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 }'); do
  words=$(complete_words patchdrop "$cmd" --)
  for long in $("$PD_BIN" "$cmd" --help | grep -oE -- '--[a-z][a-z-]*[a-z]' | sort -u); do
    grep -qx -- "$long" <<<"$words" || not_ok "patchdrop $cmd -- offers $long"
  done
  check "patchdrop $cmd --<TAB> offers its options and --help" grep -qx -- --help <<<"$words"
done

"$PD_BIN" completion zsh >"$T/_patchdrop"
check "completion zsh prints a #compdef script" grep -qx '#compdef patchdrop' "$T/_patchdrop"
if command -v zsh >/dev/null; then
  check "the zsh script is valid zsh" zsh -n "$T/_patchdrop"
else
  echo "# zsh is not installed: its script's syntax is not checked"
fi
"$PD_BIN" completion fish >/dev/null 2>"$T/fish.err" && rc=0 || rc=$?
check "an unknown shell is refused with exit 2" \
  bash -c "[ $rc -eq 2 ] && grep -q \"'fish' is not a shell it knows\" '$T/fish.err'"

# The build made both files for the package to install.
if [ -n "${PD_BUILD:-}" ]; then
  check "the build generated the bash completion" cmp -s "$T/patchdrop.bash" "$PD_BUILD/completion/patchdrop"
  check "the build generated the zsh completion" cmp -s "$T/_patchdrop" "$PD_BUILD/completion/_patchdrop"
fi
finish
