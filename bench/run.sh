#!/usr/bin/env bash
# Runs every benchmark of patchdrop against the baselines a user would otherwise pick, on this
# machine, in this invocation, and writes bench/results.md (also printed). No figure is asserted:
# each is shown next to its baseline and the ratio between them.
#
#   bench/run.sh [--quick] [--build DIR] [--out FILE]
#
#   1. large file: `patchdrop send` of a big JSON array (1 GiB; --quick 32 MiB) against curl
#      posting the same request bodies, pre-built, over one keep-alive connection
#   2. many small files: `patchdrop run --once` over 10,000 files of ~2 KB (--quick 300), plain
#      and with batch = 100, against a shell loop calling jq and curl per file
#   3. rate-limited backlog: patchdrop-mock limited to 240 requests per 6 s (a minute scaled
#      down ten times; --quick 60 per 2 s), a mixed backlog, batch off and on: time against the
#      floor the limit sets, requests against the fewest possible, 429s provoked
#   4. pickup latency: from a writer closing a file to its request reaching the emulator, with
#      settle = 0.5s (20 files; --quick 5)
#   5. the splitter and escaper (bench_split; the full run adds 2 GiB files for peak RSS)
#
# --quick takes well under a minute and only shows that the benchmarks work. Everything talks
# to patchdrop-mock on 127.0.0.1; files live in a temporary folder that is removed at the end.
# Needs curl, jq and /usr/bin/time (scripts/setup installs them).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
quick=0
build="$top/build"
out="$top/bench/results.md"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --build) build=$(cd "$2" && pwd); shift ;;
    --out) out=$2; shift ;;
    *) echo "usage: bench/run.sh [--quick] [--build DIR] [--out FILE]" >&2; exit 2 ;;
  esac
  shift
done
for tool in curl jq /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (run scripts/setup)" >&2; exit 2; }
done
PD="$build/patchdrop" MOCK="$build/patchdrop-mock" SPLIT="$build/bench/bench_split"
if [ ! -x "$PD" ] || [ ! -x "$MOCK" ] || [ ! -x "$SPLIT" ]; then
  echo "bench: building in $build" >&2
  cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" -j2 --target patchdrop patchdrop-mock bench_split >/dev/null
fi

W=$(mktemp -d "${TMPDIR:-/tmp}/pd-bench.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
KEY=bench-key-not-a-secret
REPORT="$W/report.md"

say() { echo "$*" | tee -a "$REPORT"; }
# ratio A B: A / B with two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }

# mock NAME [options...]: starts patchdrop-mock on a free port; sets URL and MOCK_PID.
mock() {
  local name=$1; shift
  rm -f "$W/$name.port"
  "$MOCK" --port 0 --port-file "$W/$name.port" --api-key "$KEY" --quiet --exit-after 20m "$@" &
  MOCK_PID=$!
  PIDS+=("$MOCK_PID")
  for _ in $(seq 200); do [ -s "$W/$name.port" ] && break; sleep 0.05; done
  [ -s "$W/$name.port" ] || { echo "bench: patchdrop-mock did not start" >&2; exit 1; }
  URL="http://127.0.0.1:$(cat "$W/$name.port")"
}
stop_mock() { kill "$MOCK_PID" 2>/dev/null || true; wait "$MOCK_PID" 2>/dev/null || true; }

# conf FILE DROP [key = value lines...]: a config for the emulator at $URL.
conf() {
  local file=$1 drop=$2; shift 2
  (umask 077; {
    echo "[patchworks]"
    echo "api_key = $KEY"
    echo "login_url = $URL/api/v1/login"
    echo "start_url = $URL/api/v1"
    echo "core_url = $URL/api/v1"
    echo "lookups_url = $URL/core-main/api/v1"
    echo "retry_base = 100ms"
    echo "retry_cap = 2s"
    for kv in "$@"; do case "$kv" in watch:*) ;; *) echo "$kv" ;; esac; done
    echo "[state]"
    echo "dir = $W/state"
    echo "[watch:bench]"
    echo "path = $drop"
    echo "flow_id = 1"
    echo "version_id = 1"
    # Deliveries are measured; following the runs they start has a benchmark of its own.
    echo "follow = no"
    for kv in "$@"; do case "$kv" in watch:*) echo "${kv#watch:}" ;; esac; done
  } >"$file")
}

# timed OUTFILE command...: runs it under /usr/bin/time; sets T_WALL T_CPU T_RSS_KB.
timed() {
  local tf=$W/time.$$
  local o=$1; shift
  /usr/bin/time -f "%e %U %S %M" -o "$tf" "$@" >"$o" 2>>"$W/stderr.log" || T_RC=$?
  read -r T_WALL u s T_RSS_KB <"$tf"
  T_CPU=$(calc "%.2f" "$u + $s")
}

echo "# patchdrop benchmarks" >"$REPORT"
{
  echo
  echo "Command: \`bench/run.sh$([ $quick = 1 ] && echo " --quick")\` on $(date -u +%Y-%m-%d), $(nproc) CPU(s)"
  echo "($(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ //' || echo unknown CPU)),"
  echo "$(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo), patchdrop $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?')."
  echo "patchdrop-mock plays Patchworks on 127.0.0.1 and shares the CPUs with the program measured."
} >>"$REPORT"
cat "$REPORT"

# ---- 1. large file ----------------------------------------------------------------------------
if [ $quick = 1 ]; then big=$((32 << 20)); runs=1; else big=$((1 << 30)); runs=2; fi
say ""
say "## 1. Large file: $((big >> 20)) MiB JSON array, \`patchdrop send\` vs curl"
mkdir -p "$W/big" "$W/bodies"
"$SPLIT" --generate json "$big" "$W/big/orders.json"
nbodies=$("$SPLIT" --bodies "$W/big/orders.json" "$W/bodies")
body_bytes=$(du -cb "$W/bodies" | tail -1 | cut -f1)
mock m1
conf "$W/c1.conf" "$W/big" "rate_limit = 1000000"
for f in "$W"/bodies/body-*; do
  printf 'url = "%s/api/v1/flows/1/start/1"\ndata-binary = "@%s"\nheader = "Authorization: %s"\n' "$URL" "$f" "$KEY"
  printf 'header = "Content-Type: application/json"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\nnext\n'
done | head -n -1 >"$W/curl.cfg"
best_pd=999999 best_curl=999999 pd_rss=0 curl_rss=0 pd_cpu=0 curl_cpu=0
for r in $(seq $runs); do
  T_RC=0
  timed "$W/send.out" "$PD" send -q -c "$W/c1.conf" --watch bench "$W/big/orders.json"
  ok=$(grep -c "HTTP 200" "$W/send.out" || true)
  if [ "$T_RC" != 0 ] || [ "$ok" != "$nbodies" ]; then
    say "patchdrop send FAILED (exit $T_RC, $ok of $nbodies chunks)"; exit 1
  fi
  if awk -v a="$T_WALL" -v b="$best_pd" 'BEGIN {exit !(a < b)}'; then best_pd=$T_WALL pd_cpu=$T_CPU; fi
  [ "$T_RSS_KB" -gt "$pd_rss" ] && pd_rss=$T_RSS_KB
  T_RC=0
  timed "$W/curl.out" curl -s -K "$W/curl.cfg"
  ok=$(grep -c "^200" "$W/curl.out" || true)
  if [ "$T_RC" != 0 ] || [ "$ok" != "$nbodies" ]; then
    say "curl FAILED (exit $T_RC, $ok of $nbodies bodies)"; exit 1
  fi
  if awk -v a="$T_WALL" -v b="$best_curl" 'BEGIN {exit !(a < b)}'; then best_curl=$T_WALL curl_cpu=$T_CPU; fi
  [ "$T_RSS_KB" -gt "$curl_rss" ] && curl_rss=$T_RSS_KB
done
stop_mock
rm -rf "$W/bodies" "$W/big" "$W/state"
pd_mbs=$(calc "%.0f" "$big / 1e6 / $best_pd")
curl_mbs=$(calc "%.0f" "$big / 1e6 / $best_curl")
say ""
say "$nbodies requests, $((body_bytes / 1000000)) MB of request bodies; best of $runs run(s) each; MB/s = file MB / wall time."
say ""
say "| | wall s | MB/s | CPU s | peak RSS |"
say "|---|---|---|---|---|"
say "| patchdrop send (checks the whole file, then cuts and escapes while sending) | $best_pd | $pd_mbs | $pd_cpu | $((pd_rss / 1024)) MiB |"
say "| curl, bodies pre-built, one keep-alive connection | $best_curl | $curl_mbs | $curl_cpu | $((curl_rss / 1024)) MiB |"
say ""
say "**Throughput ratio patchdrop/curl: $(ratio "$pd_mbs" "$curl_mbs")** (target >= 0.70); patchdrop peak RSS $((pd_rss / 1024)) MiB (target < 64 MiB)."

# ---- 2. many small files ----------------------------------------------------------------------
if [ $quick = 1 ]; then nsmall=300; nscript=40; else nsmall=10000; nscript=400; fi
say ""
say "## 2. Many small files: $nsmall files of ~2 KB, \`patchdrop run --once\` vs a jq + curl loop"
mock m2
declare -A S_RATE S_CPU
for mode in plain batch; do
  rm -rf "$W/small" "$W/state"
  mkdir -p "$W/small"
  "$SPLIT" --files json "$nsmall" 2000 "$W/small"
  if [ $mode = plain ]; then extra=(); else extra=("watch:batch = 100" "watch:batch_window = 200ms"); fi
  conf "$W/c2.conf" "$W/small" "rate_limit = 1000000" "watch:settle = 0" "${extra[@]}"
  T_RC=0
  timed "$W/run.out" "$PD" run --once -c "$W/c2.conf"
  if [ "$T_RC" != 0 ] || ! grep -q "summary: $nsmall delivered" "$W/run.out"; then
    say "patchdrop run ($mode) FAILED (exit $T_RC): $(tail -1 "$W/run.out")"; exit 1
  fi
  S_RATE[$mode]=$(calc "%.0f" "$nsmall / $T_WALL")
  S_CPU[$mode]=$(calc "%.2f" "$T_CPU / $nsmall * 1000")
done
rm -rf "$W/small" "$W/state"
# The baseline: what a user would write, run over part of the backlog (its rate is per file).
mkdir -p "$W/script/in" "$W/script/done"
"$SPLIT" --files json "$nscript" 2000 "$W/script/in"
cat >"$W/script/send.sh" <<'SH'
#!/usr/bin/env bash
# For each file: wrap it as {"payload": "<file>"} with jq, POST it with curl, move it away.
for f in "$1"/*; do
  jq -Rs '{payload: .}' "$f" |
    curl -sf -o /dev/null -H "Authorization: $KEY" -H "Content-Type: application/json" \
      --data-binary @- "$URL/api/v1/flows/1/start/1" && mv "$f" "$2/"
done
SH
T_RC=0
KEY=$KEY URL=$URL timed "$W/script.out" bash "$W/script/send.sh" "$W/script/in" "$W/script/done"
moved=$(ls "$W/script/done" | wc -l)
[ "$moved" = "$nscript" ] || { say "the baseline script FAILED ($moved of $nscript)"; exit 1; }
script_rate=$(calc "%.1f" "$nscript / $T_WALL")
script_cpu=$(calc "%.2f" "$T_CPU / $nscript * 1000")
stop_mock
rm -rf "$W/script"
say ""
say "| | files/s | ratio to the script | CPU s per 1,000 files |"
say "|---|---|---|---|"
say "| patchdrop run --once (one request per file) | ${S_RATE[plain]} | **$(ratio "${S_RATE[plain]}" "$script_rate")** | ${S_CPU[plain]} |"
say "| patchdrop run --once, batch = 100 | ${S_RATE[batch]} | **$(ratio "${S_RATE[batch]}" "$script_rate")** | ${S_CPU[batch]} |"
say "| shell loop: jq + curl per file ($nscript files) | $script_rate | 1 | $script_cpu |"
say ""
say "Target: >= 20 times the script's rate. patchdrop writes each file's delivery record and receipt durably (fsync) and archives it; the script does neither."

# ---- 3. rate-limited backlog ------------------------------------------------------------------
if [ $quick = 1 ]; then
  rl=60 rw=2 nj=60 nc=6 nn=1 nsize=1500000
else
  rl=240 rw=6 nj=400 nc=30 nn=4 nsize=3000000
fi
maxb=1000000
say ""
say "## 3. Rate-limited backlog: patchdrop-mock at $rl requests per ${rw}s, max_body $maxb"
rm -rf "$W/backlog"
mkdir -p "$W/backlog/src"
"$SPLIT" --files json "$nj" 2000 "$W/backlog/src"
for i in $(seq "$nc"); do "$SPLIT" --generate csv 100000 "$W/backlog/src/rows-$i.csv"; done
for i in $(seq "$nn"); do "$SPLIT" --generate ndjson "$nsize" "$W/backlog/src/events-$i.ndjson"; done
nfiles=$(ls "$W/backlog/src" | wc -l)
enc=$("$SPLIT" --encoded-size "$W"/backlog/src/*)
minreq=$(( (enc + maxb - 1) / maxb ))
say ""
say "Backlog: $nfiles files ($nj JSON of 2 KB, $nc CSV of 100 KB, $nn NDJSON of $((nsize / 1000000)) MB), $((enc / 1000)) kB of request bodies: at least $minreq requests. patchdrop: rate_limit = $rl, rate_window = ${rw}s (the emulator's window), concurrency 4."
say ""
say "| | requests | fewest possible | wall s | floor s (requests / rate) | wall / floor | 429s |"
say "|---|---|---|---|---|---|---|"
for mode in plain batch; do
  rm -rf "$W/backlog/drop" "$W/state" "$W/rec"
  mkdir -p "$W/rec"
  cp -r "$W/backlog/src" "$W/backlog/drop"
  mock m3 --rate-limit "$rl" --rate-window "${rw}s" --max-body "$maxb" --record "$W/rec"
  if [ $mode = plain ]; then extra=(); else extra=("watch:batch = 100" "watch:batch_window = 200ms"); fi
  conf "$W/c3.conf" "$W/backlog/drop" "rate_limit = $rl" "rate_window = ${rw}s" "max_body = $maxb" \
    "watch:settle = 0" "${extra[@]}"
  T_RC=0
  timed "$W/run3.out" "$PD" run --once -c "$W/c3.conf"
  stop_mock
  if [ "$T_RC" != 0 ] || ! grep -q "summary: $nfiles delivered" "$W/run3.out"; then
    say "patchdrop run ($mode) FAILED (exit $T_RC): $(tail -1 "$W/run3.out")"; exit 1
  fi
  reqs=$(wc -l <"$W/rec/requests.jsonl")
  n429=$(grep -c '"status":429' "$W/rec/requests.jsonl" || true)
  floor=$(calc "%.2f" "$reqs * $rw / $rl")
  say "| batch $([ $mode = plain ] && echo off || echo '= 100') | $reqs | $minreq | $T_WALL | $floor | **$(ratio "$T_WALL" "$floor")** | **$n429** |"
done
rm -rf "$W/backlog" "$W/rec" "$W/state"
say ""
say "Target: within 5% of the floor (wall / floor <= 1.05) with no 429. The floor counts the requests actually made; with batching there are far fewer, so start-up and the batch window weigh more."

# ---- 4. pickup latency ------------------------------------------------------------------------
if [ $quick = 1 ]; then npick=5; else npick=20; fi
say ""
say "## 4. Pickup latency: settle = 0.5s, $npick files written one after another"
rm -rf "$W/pick" "$W/rec" "$W/state"
mkdir -p "$W/pick" "$W/rec"
mock m4 --record "$W/rec"
conf "$W/c4.conf" "$W/pick" "watch:settle = 500ms" "watch:rescan = 30s"
"$PD" run -c "$W/c4.conf" >/dev/null 2>>"$W/stderr.log" &
DPID=$!
PIDS+=("$DPID")
sleep 1
: >"$W/closes"
for i in $(seq "$npick"); do
  printf '[{"id":%d,"note":"pickup"}]\n' "$i" >"$W/pick/p$i.json"
  echo "$i ${EPOCHREALTIME/[.,]/}" >>"$W/closes"   # microseconds, right after the close
  for _ in $(seq 200); do
    [ "$(grep -c '"status":200' "$W/rec/requests.jsonl" 2>/dev/null || true)" -ge "$i" ] && break
    sleep 0.02
  done
  sleep 0.$((RANDOM % 3))
done
kill "$DPID" 2>/dev/null || true
wait "$DPID" 2>/dev/null || true
stop_mock
# arrival = when the emulator logged the request minus how long it spent on it.
jq -r 'select(.status == 200) | (.time_ms - .elapsed_ms)' "$W/rec/requests.jsonl" >"$W/arrivals"
paste -d' ' "$W/closes" "$W/arrivals" | awk '{ print $3 - $2 / 1000 - 500 }' | sort -n >"$W/over"
n=$(wc -l <"$W/over")
if [ "$n" -lt "$npick" ]; then say "pickup FAILED: $n of $npick files arrived"; exit 1; fi
med=$(awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}' "$W/over")
p95=$(awk '{a[NR]=$1} END {i=int(NR*0.95+0.999); if (i>NR) i=NR; print a[i]}' "$W/over")
mx=$(tail -1 "$W/over")
say ""
say "| overhead after settle (ms) | median | p95 | max |"
say "|---|---|---|---|"
say "| close -> request at the emulator, minus 500 ms | $(calc "%.0f" "$med") | $(calc "%.0f" "$p95") | $(calc "%.0f" "$mx") |"
say ""
say "Target: within 100 ms of settle. The daemon looks at candidates every 50 ms, so up to two ticks are part of it."
rm -rf "$W/pick" "$W/rec" "$W/state"

# ---- 5. splitter and escaper ------------------------------------------------------------------
say ""
say "## 5. Splitter and escaper (bench_split$([ $quick = 1 ] && echo " --size 5" || echo " --big"))"
say ""
say '```'
if [ $quick = 1 ]; then "$SPLIT" --size 5 --dir "$W" | tee -a "$REPORT"; else "$SPLIT" --big --dir "$W" | tee -a "$REPORT"; fi
say '```'

cp "$REPORT" "$out"
echo
echo "bench: results written to $out"
