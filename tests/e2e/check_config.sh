# `patchdrop check-config` as a user runs it: exit codes, messages, masking.
. "$(dirname "$0")/lib.bash"
# These checks are about the file, so they take our own view: as root, check-config would
# otherwise check as the user `patchdrop` where it exists, who may not enter $T (sftp_layout.sh
# tests that view).
ME=$(id -un)

mkdir -p "$T/drop"
(umask 077; cat >"$T/good.conf" <<CONF
[patchworks]
email = ops@example.com
password = pa55-word-never-shown
[watch:orders]
path = drop
flow_id = 123
CONF
)
out=$("$PD_BIN" check-config --user "$ME" -c "$T/good.conf" 2>&1) && rc=0 || rc=$?
check "a good config exits 0" test "$rc" -eq 0
check "it prints the effective config with defaults" grep -q "rate_limit = 240" <<<"$out"
check "relative paths are resolved from the config's folder" grep -q "path = $T/drop" <<<"$out"
check "the password is masked" grep -q "password = \*\*\*\*\*\*\*\*" <<<"$out"
check "the password never appears" bash -c "! grep -q pa55-word-never-shown <<<\"\$1\"" _ "$out"
check "-q prints nothing for a good file" test -z "$("$PD_BIN" check-config --user "$ME" -q -c "$T/good.conf" 2>&1)"
check "PATCHDROP_CONFIG is used without -c" env PATCHDROP_CONFIG="$T/good.conf" "$PD_BIN" check-config --user "$ME" -q

cat >"$T/bad.conf" <<CONF
[patchworks]
api_key = k
timout = 5s
[watch:orders]
path = nowhere
CONF
chmod 600 "$T/bad.conf"
out=$("$PD_BIN" check-config --user "$ME" -c "$T/bad.conf" 2>&1) && rc=0 || rc=$?
check "a bad config exits 2" test "$rc" -eq 2
check "a typo names its file and line" grep -q "^$T/bad.conf:3: unknown key 'timout'" <<<"$out"
check "and the key it misspells, not the whole table" \
  bash -c "grep -q 'did you mean \`timeout\`?' <<<\"\$1\" && ! grep -q 'known keys' <<<\"\$1\"" _ "$out"
check "a missing folder is named" grep -q "bad.conf:5: path $T/nowhere: No such file" <<<"$out"
check "a missing flow_id is named" grep -q "bad.conf:4: \[watch:orders\] has no flow_id" <<<"$out"

chmod 640 "$T/good.conf"
"$PD_BIN" check-config --user "$ME" -q -c "$T/good.conf" 2>&1 && rc=0 || rc=$?
check "an inline secret readable by the file's group only is fine (root:patchdrop 0640)" test "$rc" -eq 0
chmod 644 "$T/good.conf"
out=$("$PD_BIN" check-config --user "$ME" -c "$T/good.conf" 2>&1) && rc=0 || rc=$?
check "an inline secret in a readable file is refused" test "$rc" -eq 2
check "and the fix is given" grep -q "chmod o-r $T/good.conf" <<<"$out"

out=$("$PD_BIN" check-config --user "$ME" -c "$T/missing.conf" 2>&1) && rc=0 || rc=$?
check "a missing file exits 2 and says so" bash -c "[ $rc -eq 2 ] && grep -q 'cannot open' <<<\"\$1\"" _ "$out"
"$PD_BIN" check-config --bogus >/dev/null 2>&1 && rc=0 || rc=$?
check "an unknown option exits 2" test "$rc" -eq 2
"$PD_BIN" frobnicate >/dev/null 2>&1 && rc=0 || rc=$?
check "an unknown command exits 2" test "$rc" -eq 2
check "--help lists check-config" bash -c "'$PD_BIN' --help | grep -q check-config"
# The trust boundary: patchdrop's own folders are outside the drop folder and its own.
mkdir -p "$T/d2" "$T/outside"
(umask 077; cat >"$T/own.conf" <<CONF
[patchworks]
email = ops@example.com
password = pa55-word-never-shown
[state]
dir = state
[watch:orders]
path = d2
flow_id = 123
CONF
)
out=$("$PD_BIN" check-config --user "$ME" -c "$T/own.conf" 2>&1) && rc=0 || rc=$?
check "by default work_dir is in the state dir" grep -q "work_dir = $T/state/watches/orders" <<<"$out"
check "and archive_dir in work_dir" grep -q "archive_dir = $T/state/watches/orders/archive" <<<"$out"
mkdir -p "$T/state/watches"
ln -s "$T/outside" "$T/state/watches/orders"
"$PD_BIN" check-config --user "$ME" -q -c "$T/own.conf" 2>"$T/own.err" && rc=0 || rc=$?
check "a symlinked work_dir exits 2" test "$rc" -eq 2
check "and says to replace the link" grep -q "work/\?.* is a symbolic link\|orders is a symbolic link" "$T/own.err"
rm "$T/state/watches/orders"
mkdir -p "$T/state/watches/orders/archive"
chmod 777 "$T/state/watches/orders/archive"
"$PD_BIN" check-config --user "$ME" -q -c "$T/own.conf" 2>"$T/own2.err" && rc=0 || rc=$?
check "an archive others may write exits 2" test "$rc" -eq 2
check "and says chmod go-w" grep -q "chmod go-w $T/state/watches/orders/archive" "$T/own2.err"
chmod 750 "$T/state/watches/orders/archive"
printf 'archive_dir = d2/archive\n' >>"$T/own.conf"
"$PD_BIN" check-config --user "$ME" -q -c "$T/own.conf" 2>"$T/own3.err" && rc=0 || rc=$?
check "an archive inside the drop folder is refused" \
  bash -c "[ $rc -eq 2 ] && grep -q 'inside the drop folder of \[watch:orders\]' '$T/own3.err'"
finish
