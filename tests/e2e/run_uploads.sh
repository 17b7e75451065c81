# Real-world uploads: a slow writer, a .filepart renamed at the end, an OpenSSH-style link and
# unlink, and a copy that keeps an old mtime. Each is sent once, complete, under its final name.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
start_mock
mkdir -p "$T/drop"
PD_SETTLE=1500ms PD_RESCAN=500ms write_conf "$T/c.conf" "$T/drop"
start_daemon "$T/c.conf"
sleep 0.5

# A slow writer: a byte every 100 ms for 3 s. Not sent before it stops.
(for i in $(seq 30); do printf 'x' >>"$T/drop/slow.txt"; sleep 0.1; done) &
wpid=$!
wait "$wpid"
printf '%030d' 0 | tr 0 x >"$T/slow.expected"
check "the slow file arrives" wait_for 20 received "$T/slow.expected"
check "only the complete slow file was sent, once" test "$(payload_count)" -eq 1

# SFTP clients that upload to a temporary name and rename at the end.
seq 1 5000 >"$T/big.txt"
cp "$T/big.txt" "$T/drop/upload.txt.filepart"
sleep 2
check "a .filepart is never sent" test "$(payload_count)" -eq 1
mv "$T/drop/upload.txt.filepart" "$T/drop/upload.txt"
check "the renamed upload arrives" wait_for 20 archived upload.txt "$T/drop"
check "it was sent once, complete" test "$(received_count "$T/big.txt")" -eq 1

# OpenSSH's sftp-server with a temp name: link the final name, then unlink the temp.
seq 5001 9000 >"$T/ssh.txt"
cp "$T/ssh.txt" "$T/drop/.ssh-upload.tmp"
ln "$T/drop/.ssh-upload.tmp" "$T/drop/ssh.txt"
rm "$T/drop/.ssh-upload.tmp"
check "the linked upload arrives" wait_for 20 archived ssh.txt "$T/drop"
check "it was sent once" test "$(received_count "$T/ssh.txt")" -eq 1

# cp --preserve=timestamps of a week-old file: its old mtime does not skip the settle time.
seq 9001 9500 >"$T/old.txt"
touch -d '7 days ago' "$T/old.txt"
before=$(payload_count)
cp --preserve=timestamps "$T/old.txt" "$T/drop/old.txt"
sleep 0.7
check "an old-mtime copy still waits for settle" test "$(payload_count)" -eq "$before"
check "and then arrives" wait_for 20 archived old.txt "$T/drop"
check "once" test "$(received_count "$T/old.txt")" -eq 1

# A writer that pauses longer than settle with the file still open (a stalled sftp put): 2 MB,
# a 4 s pause, then the rest. Never claimed while it is open: the whole file arrives, once.
seq 1 300000 >"$T/stall.txt"
head -c 2000000 "$T/stall.txt" >"$T/stall.head"
tail -c +2000001 "$T/stall.txt" >"$T/stall.tail"
before=$(payload_count)
python3 - "$T/drop/stall.txt" "$T/stall.head" "$T/stall.tail" <<'PY' &
import sys, time
with open(sys.argv[1], "wb") as out:
    out.write(open(sys.argv[2], "rb").read()); out.flush()
    time.sleep(4)
    out.write(open(sys.argv[3], "rb").read())
PY
wpid=$!
sleep 3.5
check "a file still open for writing is not sent, though it settled" test "$(payload_count)" -eq "$before"
wait "$wpid"
check "once closed, the whole stalled file arrives" wait_for 20 archived stall.txt "$T/drop"
check "complete, once" test "$(received_count "$T/stall.txt")" -eq 1
check "the archived copy is the whole file" cmp -s "$T/drop.pd/archive/stall.txt" "$T/stall.txt"

# A writer that appends after the file was taken (it closed the file between two writes, so
# neither settle nor the lease can tell): the appended part arrives as a file of its own, and
# the log says so, naming the file, so a person can check both flow runs.
echo "first part" >"$T/drop/append.txt"
check "the first part is delivered" wait_for 20 archived append.txt "$T/drop"
echo "appended later" >>"$T/drop/append.txt"
echo "appended later" >"$T/append.expected"
check "the appended part arrives as a file of its own" wait_for 20 received "$T/append.expected"
check "and the log says a delivered name came back" \
  wait_for 10 grep -q "event=reappeared watch=drop file=append.txt" "$T/daemon.err"

# SIGTERM with nothing in flight: a clean exit 0.
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" && rc=0 || rc=$?
check "SIGTERM exits 0" test "$rc" -eq 0
check "no error was logged" bash -c "! grep -q 'level=error' '$T/daemon.err'"
finish
