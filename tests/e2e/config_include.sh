# `include = PATTERN` and ${VAR} in the config, as check-config shows them: every value with the
# file and line it came from, a secret from the environment masked, mistakes at their file:line.
. "$(dirname "$0")/lib.bash"
ME=$(id -un)

mkdir -p "$T/drop-a" "$T/drop-b" "$T/conf.d"
umask 077
cat >"$T/main.conf" <<'CONF'
; the watches live in conf.d, one file each
include = conf.d/*.conf
[patchworks]
email = ${PD_E2E_EMAIL:-ops@example.com}
password = ${PD_E2E_PASSWORD}
CONF
printf '[watch:a]\npath = drop-a\nflow_id = ${PD_E2E_FLOW}\n' >"$T/conf.d/10-a.conf"
printf '\n[watch:b]\npath = drop-b\nflow_id = 2\nexclude = *.tmp $${not-a-var}\n' >"$T/conf.d/20-b.conf"
echo 'ignored' >"$T/conf.d/README"
PW=env-secret-never-shown-42
export PD_E2E_PASSWORD=$PW PD_E2E_FLOW=flow-a

"$PD_BIN" check-config --user "$ME" -c "$T/main.conf" >"$T/out.txt" 2>&1 && rc=0 || rc=$?
out=$(cat "$T/out.txt")
check "a config of included files exits 0" test "$rc" -eq 0
check "both included watches are there, sorted" \
  test "$(grep '^\[watch:' "$T/out.txt" | tr '\n' ' ')" = "[watch:a] [watch:b] "
check "a value says its included file and line and its variable" \
  grep -qxF "; from $T/conf.d/10-a.conf:3, through \${PD_E2E_FLOW}" <<<"$out"
check "and holds the variable's value" grep -qx "flow_id = flow-a" <<<"$out"
check "a default applies when the variable is unset" grep -qx "email = ops@example.com" <<<"$out"
check "a secret from a variable is masked, its variable named" \
  bash -c "grep -A1 -xF '; from $T/main.conf:5, through \${PD_E2E_PASSWORD}' '$T/out.txt' | grep -qx 'password = \*\*\*\*\*\*\*\*'"
check "\$\${ is a literal \${" grep -qxF 'exclude = *.tmp ${not-a-var}' <<<"$out"

unset PD_E2E_FLOW
"$PD_BIN" check-config --user "$ME" -q -c "$T/main.conf" >"$T/out2.txt" 2>&1 && rc=0 || rc=$?
check "an unset variable without a default exits 2" test "$rc" -eq 2
check "and is named at its file and line" \
  grep -q "^$T/conf.d/10-a.conf:3: \${PD_E2E_FLOW} is not set in patchdrop's environment" "$T/out2.txt"

export PD_E2E_FLOW=flow-a
printf 'include = ../main.conf\n' >"$T/conf.d/30-loop.conf"
printf 'include = missing.conf\n' >>"$T/main.conf"
"$PD_BIN" check-config --user "$ME" -q -c "$T/main.conf" >"$T/out3.txt" 2>&1 && rc=0 || rc=$?
check "an include loop and a late include exit 2" test "$rc" -eq 2
check "the loop is said at the including line" \
  grep -q "^$T/conf.d/30-loop.conf:1: include: .*already being read: an include loop" "$T/out3.txt"
check "an include after a section is said" \
  grep -q "^$T/main.conf:6: include = goes before the file's first \[section\]" "$T/out3.txt"

rm "$T/conf.d/30-loop.conf"
sed -i '6d' "$T/main.conf"
sed -i 's|^include = conf.d/\*.conf|include = conf.d/*.conf\ninclude = conf.d/nowhere.conf|' "$T/main.conf"
"$PD_BIN" check-config --user "$ME" -q -c "$T/main.conf" >"$T/out4.txt" 2>&1 && rc=0 || rc=$?
check "a missing file named without a wildcard is an error" \
  bash -c "[ $rc -eq 2 ] && grep -q '^$T/main.conf:3: include: cannot open $T/conf.d/nowhere.conf: No such file' '$T/out4.txt'"
finish
