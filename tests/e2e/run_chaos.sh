# Chaos: a few hundred mixed files (some split into many chunks, a few bad), an emulator with
# 5xx, dropped connections, 429s and short-lived tokens, and the daemon killed with SIGKILL at
# random moments and at chosen steps (mid state write, between receipt and move, after the
# move), then restarted, many times. At the end every record arrived, repeats are only chunks
# that were in flight at a kill, every file sits in exactly one of archive or failed, and every
# receipt agrees with the emulator's log. The flow runs are followed (follow = yes) through the
# kills too: at the end every chunk's run has its final outcome in its receipt and no run is left
# to follow. Seeded and reproducible: PD_CHAOS_SEED=N.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
SEED=${PD_CHAOS_SEED:-$RANDOM}
FILES=${PD_CHAOS_FILES:-300}
TRIALS=${PD_CHAOS_TRIALS:-14}
echo "chaos: seed $SEED, $FILES files, $TRIALS trials (repeat with PD_CHAOS_SEED=$SEED)"
RANDOM=$SEED
start_mock --seed "$SEED" --fail-rate 0.08 --drop-rate 0.04 --token-ttl 2s \
  --rate-limit 150 --rate-window 1s --latency 25ms
D="$T/drop"
mkdir -p "$D"
python3 "$(dirname "$0")/chaos.py" make "$D" "$SEED" "$FILES"
PD_FOLLOW=1 PD_CONCURRENCY=4 PD_RESCAN=1s write_conf "$T/c.conf" "$D" "follow_first = 100ms" \
  "follow_cap = 300ms"
sed -i 's/^\[patchworks\]$/[patchworks]\nmax_body = 6000/' "$T/c.conf"
# The group commit's rounds (not the default) are killed at their crash point group_synced too.
sed -i 's/^\[state\]$/[state]\ngroup_commit = yes/' "$T/c.conf"

points=(atomic_write receipt_written archived follow_saved outcome_written group_synced)
kills=0
for trial in $(seq 1 "$TRIALS"); do
  if [ $((trial % 3)) -eq 0 ]; then
    # Die at a chosen step: the Nth time the daemon reaches it.
    p=${points[$((RANDOM % ${#points[@]}))]}
    PATCHDROP_CRASHPOINT="$p:$((RANDOM % 20 + 1))" start_daemon "$T/c.conf"
    what="at $p"
  else
    start_daemon "$T/c.conf"
    what="at random"
  fi
  sleep "0.$((RANDOM % 9 + 1))"
  kill -9 "$DAEMON_PID" 2>/dev/null || true
  wait "$DAEMON_PID" 2>/dev/null || true
  kills=$((kills + 1))
  echo "chaos: trial $trial killed $what; $(payload_count) payloads so far"
done
# Temp files a minute old when the last run starts are swept by it: mark that minute.
touch -d "@$(($(date +%s) - 61))" "$T/a-minute-before"
out=$(timeout 180 "$PD_BIN" run --once -c "$T/c.conf" 2>"$T/final.err") && rc=0 || rc=$?
check "the last run finishes (exit 0, or 1 for the bad files)" test "$rc" -le 1
if [ "$rc" -gt 1 ]; then
  echo "the last run exited $rc; the end of its log:"
  tail -40 "$T/final.err"
fi
tail -1 <<<"$out"
check "the emulator's record agrees with every file, receipt and error file" \
  python3 "$(dirname "$0")/chaos.py" verify "$D" "$MOCK_REC" "$kills" 4
# A kill mid-write of a record leaves a temp file in state/; it is swept once it is a minute old
# (never sooner, so a live writer of another daemon is never disturbed): the last run's start
# sweeps those a minute old by then. Receipts and copies are written as unnamed files
# (O_TMPFILE), so the archive holds no temp file at all.
check "only young temp files are left behind" \
  test -z "$(find "$D.pd" "$T/state" -name '.pdtmp-*' ! -newer "$T/a-minute-before")"
check "no temp file in the archive or failed folders" \
  test -z "$(find "$D.pd/archive" "$D.pd/failed" -name '.pdtmp-*' 2>/dev/null)"
check "no delivery record is left" \
  test -z "$(ls -A "$D.pd/state" | grep -v '^\.pdtmp-')"
check "no stray file in the archive" \
  test -z "$(ls -A "$D.pd/archive" | grep -v '\.receipt\.json$' | while read -r f; do [ -f "$D.pd/archive/$f.receipt.json" ] || echo "$f"; done)"
check "every run followed through the kills has its final outcome in its receipt" \
  test -z "$(cd "$D.pd/archive" && for r in *.receipt.json; do
    jq -e 'all(.chunks[] | select(.flow_run_id != null); .outcome == "success" and .finished_at != null)
           and .flow_result == "success"' "$r" >/dev/null || echo "$r"; done)"
check "no run is left to follow (young temp files of a kill aside)" \
  test -z "$(ls -A "$T/state/follow" 2>/dev/null | grep -v '^\.pdtmp-')"
check "every receipt has its file" \
  test -z "$(cd "$D.pd/archive" && for r in *.receipt.json; do [ -f "${r%.receipt.json}" ] || echo "$r"; done)"
finish
