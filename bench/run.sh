#!/usr/bin/env bash
# Runs every benchmark of patchdrop against the baselines a user would otherwise pick, on this
# machine, in this invocation, and writes bench/results.md (also printed). No figure is asserted:
# each is shown next to its baseline and the ratio between them.
#
#   bench/run.sh [--quick] [--build DIR] [--out FILE] [--only N[,N...]]
#
# (--only 7b runs only the batch = 1000 row of section 7.)
#
#   1. large file: `patchdrop send` of a big JSON array (1 GiB; --quick 32 MiB) against curl
#      posting the same request bodies, pre-built, over one keep-alive connection
#   2. many small files: `patchdrop run --once` over 10,000 files of ~2 KB (--quick 300), plain
#      and with batch = 100, against a shell loop calling jq and curl per file
#   3. rate-limited backlog: patchdrop-mock limited to 240 requests per 6 s (a minute scaled
#      down ten times; --quick 60 per 2 s), a mixed backlog, batch off and on (batch_window 200 ms
#      and the default 2 s): time against the floor the limit sets, requests against the fewest
#      possible (and the fewest the format rules allow), 429s provoked
#   4. pickup latency: from a writer closing a file to its request reaching the emulator, with
#      settle = 0.5s (20 files; --quick 5)
#   5. the splitter and escaper (bench_split; the full run adds 2 GiB files for peak RSS)
#   6. following flow runs: 2,000 runs followed at once (--quick 200) while a second wave of
#      files is delivered, the emulator limited to 240 requests per 2 s: polls per window against
#      follow_share, deliveries' time against the floor, 429s provoked, every receipt final
#   7. patchdrop's own cost: the same work against a fast sink (nginx answering every start with
#      a canned run id, bench/nginx-sink.conf) so that the server costs next to nothing: 5,000
#      small files (--quick 300) batch off and batch = 1000 against the jq + curl loop, the large
#      file against curl, the wakeups of an idle daemon over 10 s, and 100,000 files dropped at
#      once (--quick 5,000) with batch = 100; BENCH_ROWS7=idle runs the idle row alone
#
#   8. soak (only with --only 8): 30 minutes (--quick 3) at 500 files a minute; the daemon's
#      RSS, open descriptors and threads each minute
# --quick takes well under a minute and only shows that the benchmarks work. Sections 1-6 talk
# to patchdrop-mock on 127.0.0.1, section 7 to nginx on 127.0.0.1; files live in a temporary
# folder that is removed at the end. Needs curl, jq, python3, /usr/bin/time and, for section 7,
# nginx (Debian's nginx-light; scripts/setup installs them all).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
quick=0
only=""
# want N: section N runs (every section unless --only names some).
want() { [ -z "$only" ] || [[ $only == *",$1,"* ]]; }
build="$top/build"
out="$top/bench/results.md"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --build) build=$(cd "$2" && pwd); shift ;;
    --out) out=$2; shift ;;
    --only) only=",$2,"; shift ;;
    *) echo "usage: bench/run.sh [--quick] [--build DIR] [--out FILE] [--only N[,N...]]" >&2; exit 2 ;;
  esac
  shift
done
for tool in curl jq python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (run scripts/setup)" >&2; exit 2; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if { want 7 || want 7b; } && [ ! -x "$NGINX" ]; then echo "bench: nginx is missing (run scripts/setup)" >&2; exit 2; fi
PD="$build/patchdrop" MOCK="$build/patchdrop-mock" SPLIT="$build/bench/bench_split"
NOSYNC="$build/bench/libpd_nosync.so"
# Built every time (nothing to do when up to date): figures from a stale binary would be about
# code that is no longer there. A --build of another checkout is built from its own sources.
echo "bench: building in $build" >&2
# Configured every time too: a target added since the folder was made is known to it.
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
else
  cmake "$build" >/dev/null
fi
cmake --build "$build" -j2 --target patchdrop patchdrop-mock bench_split pd_nosync >/dev/null

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

# sink NAME: starts nginx as the fast sink in $W/NAME (its pid, logs and temp files stay there);
# sets URL, SINK_PID and SINK_DIR.
sink() {
  local port
  SINK_DIR=$W/$1
  rm -rf "$SINK_DIR"
  mkdir -p "$SINK_DIR/tmp"
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  sed "s/@PORT@/$port/" "$top/bench/nginx-sink.conf" >"$SINK_DIR/nginx.conf"
  "$NGINX" -p "$SINK_DIR/" -e error.log -c "$SINK_DIR/nginx.conf" 2>>"$W/stderr.log" &
  SINK_PID=$!
  PIDS+=("$SINK_PID")
  URL="http://127.0.0.1:$port"
  for _ in $(seq 200); do curl -s -o /dev/null "$URL/ready" && return; sleep 0.05; done
  echo "bench: nginx did not start (see $SINK_DIR/error.log)" >&2; exit 1
}
# stop_sink: stops it gracefully, which writes out its access log; sets SINK_STARTS (flow starts).
stop_sink() {
  kill -QUIT "$SINK_PID" 2>/dev/null || true
  wait "$SINK_PID" 2>/dev/null || true
  SINK_STARTS=$(grep -c '^200 ' "$SINK_DIR/access.log" || true)
}

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
    for kv in "$@"; do case "$kv" in watch:* | state:*) ;; *) echo "$kv" ;; esac; done
    echo "[state]"
    echo "dir = $W/state"
    for kv in "$@"; do case "$kv" in state:*) echo "${kv#state:}" ;; esac; done
    echo "[watch:bench]"
    echo "path = $drop"
    echo "flow_id = 1"
    echo "version_id = 1"
    # Deliveries are measured; following the runs they start has a benchmark of its own (6).
    case "$*" in *"watch:follow ="*) ;; *) echo "follow = no" ;; esac
    for kv in "$@"; do case "$kv" in watch:*) echo "${kv#watch:}" ;; esac; done
  } >"$file")
}

# timed OUTFILE command...: runs it under /usr/bin/time; sets T_WALL T_CPU T_RSS_KB.
timed() {
  local tf=$W/time.$$
  local o=$1; shift
  /usr/bin/time -f "%e %U %S %M" -o "$tf" "$@" >"$o" 2>>"$W/stderr.log" || T_RC=$?
  read -r T_WALL T_USR T_SYS T_RSS_KB <"$tf"
  T_CPU=$(calc "%.2f" "$T_USR + $T_SYS")
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

# send_vs_curl SIZE RUNS: `patchdrop send` of a SIZE-byte JSON array to the server at $URL against
# curl posting the same bodies, pre-built, over one keep-alive connection; the best wall time of
# RUNS each. Sets nbodies body_bytes best_pd pd_cpu pd_rss best_curl curl_cpu curl_rss (KB).
send_vs_curl() {
  mkdir -p "$W/big" "$W/bodies"
  "$SPLIT" --generate json "$1" "$W/big/orders.json"
  nbodies=$("$SPLIT" --bodies "$W/big/orders.json" "$W/bodies")
  body_bytes=$(du -cb "$W/bodies" | tail -1 | cut -f1)
  conf "$W/c-big.conf" "$W/big" "rate_limit = 1000000"
  for f in "$W"/bodies/body-*; do
    printf 'url = "%s/api/v1/flows/1/start/1"\ndata-binary = "@%s"\nheader = "Authorization: %s"\n' "$URL" "$f" "$KEY"
    printf 'header = "Content-Type: application/json"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\nnext\n'
  done | head -n -1 >"$W/curl.cfg"
  best_pd=999999 best_curl=999999 pd_rss=0 curl_rss=0 pd_cpu=0 curl_cpu=0
  for _ in $(seq "$2"); do
    T_RC=0
    timed "$W/send.out" "$PD" send -q -c "$W/c-big.conf" --watch bench "$W/big/orders.json"
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
  rm -rf "$W/bodies" "$W/big" "$W/state"
}

# jq_curl_loop N: the baseline a user would write, run over N files of ~2 KB against the server at
# $URL (its rate is per file). Sets script_rate (files/s), script_cpu (CPU s per 1,000 files) and
# script_sys (sys CPU s per 1,000 files).
jq_curl_loop() {
  mkdir -p "$W/script/in" "$W/script/done"
  "$SPLIT" --files json "$1" 2000 "$W/script/in"
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
  [ "$moved" = "$1" ] || { say "the baseline script FAILED ($moved of $1)"; exit 1; }
  script_rate=$(calc "%.1f" "$1 / $T_WALL")
  script_cpu=$(calc "%.2f" "$T_CPU / $1 * 1000")
  script_sys=$(calc "%.2f" "$T_SYS / $1 * 1000")
  rm -rf "$W/script"
}

# ---- 1. large file ----------------------------------------------------------------------------
if want 1; then
if [ $quick = 1 ]; then big=$((32 << 20)); runs=1; else big=$((1 << 30)); runs=2; fi
say ""
say "## 1. Large file: $((big >> 20)) MiB JSON array, \`patchdrop send\` vs curl"
mock m1
send_vs_curl "$big" "$runs"
stop_mock
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

fi

# ---- 2. many small files ----------------------------------------------------------------------
if want 2; then
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
# The baseline: what a user would write, run over part of the backlog.
jq_curl_loop "$nscript"
stop_mock
say ""
say "| | files/s | ratio to the script | CPU s per 1,000 files |"
say "|---|---|---|---|"
say "| patchdrop run --once (one request per file) | ${S_RATE[plain]} | **$(ratio "${S_RATE[plain]}" "$script_rate")** | ${S_CPU[plain]} |"
say "| patchdrop run --once, batch = 100 | ${S_RATE[batch]} | **$(ratio "${S_RATE[batch]}" "$script_rate")** | ${S_CPU[batch]} |"
say "| shell loop: jq + curl per file ($nscript files) | $script_rate | 1 | $script_cpu |"
say ""
say "Target: >= 20 times the script's rate. patchdrop writes each file's delivery record and receipt durably (fsync) and archives it; the script does neither."

fi

# ---- 3. rate-limited backlog ------------------------------------------------------------------
if want 3; then
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
# fewest_by_rules DIR MAXB CAP: the fewest requests patchdrop's rules allow: a file over max_body
# alone in its chunks, small files only with files of their format (extension), at most CAP
# (`batch`) to a body, the {"payload":""} wrapper once per body.
fewest_by_rules() {
  local f e ext n total=0 by_bytes by_count
  declare -A n_of sum_of
  for f in "$1"/*; do
    e=$("$SPLIT" --encoded-size "$f") ext=${f##*.}
    if [ "$e" -gt "$2" ]; then total=$((total + (e + $2 - 1) / $2)); continue; fi
    n_of[$ext]=$(( ${n_of[$ext]:-0} + 1 )) sum_of[$ext]=$(( ${sum_of[$ext]:-0} + e - 14 ))
  done
  for ext in "${!n_of[@]}"; do
    n=${n_of[$ext]}
    by_bytes=$(( (sum_of[$ext] + $2 - 15) / ($2 - 14) )) by_count=$(( (n + $3 - 1) / $3 ))
    total=$(( total + (by_bytes > by_count ? by_bytes : by_count) ))
  done
  echo "$total"
}
say ""
say "Backlog: $nfiles files ($nj JSON of 2 KB, $nc CSV of 100 KB, $nn NDJSON of $((nsize / 1000000)) MB), $((enc / 1000)) kB of request bodies: at least $minreq requests. patchdrop: rate_limit = $rl, rate_window = ${rw}s (the emulator's window), concurrency 4."
say ""
say "| | requests | fewest possible | **requests / fewest possible** | fewest under the format rules | requests / that | wall s | floor s (requests / rate) | wall / floor | 429s |"
say "|---|---|---|---|---|---|---|---|---|---|"
for mode in plain batch batch2s; do
  rm -rf "$W/backlog/drop" "$W/state" "$W/rec"
  mkdir -p "$W/rec"
  cp -r "$W/backlog/src" "$W/backlog/drop"
  mock m3 --rate-limit "$rl" --rate-window "${rw}s" --max-body "$maxb" --record "$W/rec"
  case $mode in
    plain) extra=() cap=1 label="batch off" ;;
    batch) extra=("watch:batch = 100" "watch:batch_window = 200ms") cap=100 label="batch = 100, batch_window = 200ms" ;;
    *) extra=("watch:batch = 100") cap=100 label="batch = 100, batch_window = 2s (the default)" ;;
  esac
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
  rules=$(fewest_by_rules "$W/backlog/src" "$maxb" "$cap")
  say "| $label | $reqs | $minreq | **$(ratio "$reqs" "$minreq")** | $rules | **$(ratio "$reqs" "$rules")** | $T_WALL | $floor | **$(ratio "$T_WALL" "$floor")** | **$n429** |"
done
rm -rf "$W/backlog" "$W/rec" "$W/state"
say ""
say "Target: within 5% of the floor (wall / floor <= 1.05) with no 429, and requests within 5% of the fewest possible. The fewest possible is the request bodies' bytes over max_body, as if every file could share a body with any other; patchdrop's format rules forbid that (a body holds one format; a file over max_body goes in chunks of its own; \`batch\` caps the files to a body), so the fewest under those rules is shown too. The floor counts the requests actually made; with batching there are far fewer, so start-up and the batch window weigh more."

fi

# ---- 4. pickup latency ------------------------------------------------------------------------
if want 4; then
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
say "Target: within 100 ms of settle. The daemon wakes when a file's settle ends (no tick), so the overhead is the daemon's own work and the emulator's."
rm -rf "$W/pick" "$W/rec" "$W/state"

fi

# ---- 5. splitter and escaper ------------------------------------------------------------------
if want 5; then
say ""
say "## 5. Splitter and escaper (bench_split$([ $quick = 1 ] && echo " --size 5" || echo " --big"))"
say ""
say '```'
if [ $quick = 1 ]; then "$SPLIT" --size 5 --dir "$W" | tee -a "$REPORT"; else "$SPLIT" --big --dir "$W" | tee -a "$REPORT"; fi
say '```'

fi

# ---- 6. following flow runs -------------------------------------------------------------------
if want 6; then
# A minute scaled down 30 times (a 6 s window would take over 3 minutes of polls alone: every
# run costs at least one poll and polls get 60 a window): follow_first and follow_cap likewise.
if [ $quick = 1 ]; then n1=200 n2=50 dur=4s; else n1=2000 n2=500 dur=30s; fi
rl=240 rw=2 share=25
say ""
say "## 6. Following flow runs: $n1 runs followed while $n2 more files are delivered, patchdrop-mock at $rl requests per ${rw}s"
rm -rf "$W/fw" "$W/rec" "$W/state"
mkdir -p "$W/fw/drop" "$W/fw/wave2" "$W/rec"
"$SPLIT" --files json "$n1" 2000 "$W/fw/drop"
"$SPLIT" --files json "$n2" 2000 "$W/fw/wave2"
mock m6 --rate-limit "$rl" --rate-window "${rw}s" --run-duration "$dur" --record "$W/rec"
conf "$W/c6.conf" "$W/fw/drop" "rate_limit = $rl" "rate_window = ${rw}s" "follow_share = $share" \
  "watch:settle = 0" "watch:follow = yes" "watch:follow_first = 200ms" "watch:follow_cap = 10s"
/usr/bin/time -f "%e %U %S %M" -o "$W/time6" "$PD" run --once -c "$W/c6.conf" >"$W/run6.out" \
  2>>"$W/stderr.log" &
RUN6=$!
PIDS+=("$RUN6")
# The second wave lands once the first is delivered: its deliveries meet every first-wave run's polls.
starts() { local n; n=$(grep -c '"status":200,.*"route":"start"' "$W/rec/requests.jsonl" 2>/dev/null || true); echo "${n:-0}"; }
until [ "$(starts)" -ge "$n1" ]; do
  kill -0 "$RUN6" 2>/dev/null || { say "patchdrop run (follow) ended before the first wave was delivered"; exit 1; }
  sleep 0.1
done
drop2=$(( ${EPOCHREALTIME/[.,]/} / 1000 ))
for f in "$W"/fw/wave2/*; do mv "$f" "$W/fw/drop/w2-${f##*/}"; done
rc6=0
wait "$RUN6" || rc6=$?
stop_mock
read -r wall6 _ <"$W/time6"
if [ "$rc6" != 0 ] || ! grep -q "summary: $((n1 + n2)) delivered" "$W/run6.out"; then
  say "patchdrop run (follow) FAILED (exit $rc6): $(grep -E 'summary|flow runs' "$W/run6.out" | tr '\n' ' ')"; exit 1
fi
runs_line=$(grep -m1 '^flow runs:' "$W/run6.out" || echo "flow runs: (not printed)")
# Every receipt ends with a final outcome on each chunk with a run, and a final flow_result.
receipts=$(ls "$W/state/watches/bench/archive/"*.receipt.json | wc -l)
final=$(jq -n '[inputs | select(([.chunks[] | select(.flow_run_id != null)] | length > 0 and
    all(.outcome != null and .outcome != "running" and .finished_at != null)) and
    .flow_result != null and .flow_result != "running")] | length' \
  "$W/state/watches/bench/archive/"*.receipt.json)
nruns=$(wc -l <"$W/rec/runs.jsonl")
# The windows as the emulator counts them (fixed, each opening with the first request after the
# last closed, by arrival: answer time minus time spent), and any window-long span for the polls.
cat >"$W/windows.py" <<'PY'
import json, sys
rl, rw, share, drop2 = int(sys.argv[2]), int(sys.argv[3]) * 1000, int(sys.argv[4]), int(sys.argv[5])
POLL = ("run", "run_logs", "run_retry")
reqs = []
for line in open(sys.argv[1]):
    r = json.loads(line)
    reqs.append((r["time_ms"] - r.get("elapsed_ms", 0), r["route"], r["status"], r["path"],
                 r.get("flow_run_id")))
reqs.sort()
t0 = reqs[0][0]
wins, cur = [], None
for t, route, status, _, _ in reqs:
    if cur is None or t >= cur["start"] + rw:
        cur = {"start": t, "n": 0, "polls": 0, "starts": 0, "r429": 0}
        wins.append(cur)
    cur["n"] += 1
    cur["polls"] += route in POLL
    cur["starts"] += route == "start"
    cur["r429"] += status == 429
# Any rw-long span, not only the emulator's windows.
pt = [t for t, route, *_ in reqs if route in POLL]
slide, j = 0, 0
for i in range(len(pt)):
    while pt[i] - pt[j] >= rw:
        j += 1
    slide = max(slide, i - j + 1)
# Deliveries waited while a wave was not all delivered: windows wholly inside such a span.
st = [t for t, route, status, *_ in reqs if route == "start" and status == 200]
w1 = [t for t in st if t < drop2]
w2 = [t for t in st if t >= drop2]
spans = [(t0, max(w1))] + ([(drop2, max(w2))] if w2 else [])
busy = [w for w in wins if any(a <= w["start"] and w["start"] + rw <= b for a, b in spans)]
# Runs followed at once: from a run's start to its last poll.
began, last = {}, {}
for t, route, status, path, run in reqs:
    if route == "start" and run:
        began[str(run)] = t
    elif route == "run":
        last[path.rstrip("/").rsplit("/", 1)[1]] = t
ev = sorted([(t, 1) for t in began.values()] + [(t, -1) for r, t in last.items() if r in began])
n = most = 0
for _, d in ev:
    n += d
    most = max(most, n)
out = {
    "reqs": len(reqs), "polls": len(pt), "starts": len(st), "r429": sum(w["r429"] for w in wins),
    "nwin": len(wins), "maxpolls": max(w["polls"] for w in wins), "slide": slide,
    "pollmax": (rl * share + 99) // 100, "nbusy": len(busy),
    "over": sum(w["polls"] > (rl * share + 99) // 100 for w in wins),
    "busyshare": "%.1f" % max([100.0 * w["polls"] / w["n"] for w in busy] or [0]),
    "busyfill": "%.0f" % (100.0 * sum(w["n"] for w in busy) / (rl * len(busy)) if busy else 0),
    "w1n": len(w1), "w1s": "%.2f" % ((max(w1) - t0) / 1000), "w2n": len(w2),
    "w2s": "%.2f" % ((max(w2) - drop2) / 1000 if w2 else 0), "most": most,
    "spans": "%.2f" % ((reqs[-1][0] - t0) / 1000),
}
for k, v in out.items():
    print("%s=%s" % (k, v))
PY
declare -A F
while IFS='=' read -r k v; do F[$k]=$v; done < <(python3 "$W/windows.py" "$W/rec/requests.jsonl" "$rl" "$rw" "$share" "$drop2")
floor1=$(calc "%.2f" "${F[w1n]} * $rw / $rl")
floor2=$(calc "%.2f" "${F[w2n]} * $rw / $rl")
floorall=$(calc "%.2f" "${F[reqs]} * $rw / $rl")
floorpoll=$(calc "%.2f" "${F[polls]} * $rw / ${F[pollmax]}")
# With polls at their whole share, deliveries have the rest of the rate.
rest1=$(calc "%.2f" "${F[w1n]} * $rw / ($rl - ${F[pollmax]})")
rest2=$(calc "%.2f" "${F[w2n]} * $rw / ($rl - ${F[pollmax]})")
say ""
say "$n1 files of 2 KB dropped, then $n2 more once the first $n1 were delivered, batch off (a run per file); runs last $dur; patchdrop: rate_limit = $rl, rate_window = ${rw}s, follow_share = $share% (at most ${F[pollmax]} polls a window), follow_first = 200ms, follow_cap = 10s. Up to **${F[most]} runs followed at once**. \`run --once\` took $wall6 s: $(echo "${runs_line#flow runs: }")."
say ""
say "| requests | polls | deliveries | windows | most polls in a window (limit ${F[pollmax]}) | windows over the limit | most polls in any ${rw} s | windows with deliveries waiting: most poll share, requests / rate | 429s |"
say "|---|---|---|---|---|---|---|---|---|"
say "| ${F[reqs]} | ${F[polls]} | ${F[starts]} | ${F[nwin]} | **${F[maxpolls]}** ($(calc "%.1f" "100 * ${F[maxpolls]} / $rl")% of the rate) | **${F[over]}** | ${F[slide]} | ${F[nbusy]} windows: **${F[busyshare]}%**, ${F[busyfill]}% | **${F[r429]}** |"
say ""
say "| | deliveries | wall s | floor s (deliveries / rate) | wall / floor | floor s with polls at their share | wall / that floor |"
say "|---|---|---|---|---|---|---|"
say "| first wave (from the first request) | ${F[w1n]} | ${F[w1s]} | $floor1 | $(ratio "${F[w1s]}" "$floor1") | $rest1 | **$(ratio "${F[w1s]}" "$rest1")** |"
say "| second wave, under the first wave's polls (from its drop) | ${F[w2n]} | ${F[w2s]} | $floor2 | $(ratio "${F[w2s]}" "$floor2") | $rest2 | **$(ratio "${F[w2s]}" "$rest2")** |"
say "| everything, to the last poll | ${F[reqs]} requests | ${F[spans]} | $floorall (requests / rate) | $(ratio "${F[spans]}" "$floorall") | $floorpoll (polls / their share) | **$(ratio "${F[spans]}" "$floorpoll")** |"
say ""
say "Receipts: $final of $receipts end with every run's final outcome ($nruns runs created at the emulator)."
say ""
say "Target: polls never over follow_share of the rate in any window, no 429, every receipt final. Windows are the emulator's (fixed, each opening with the first request after the last one closed, by arrival time); \"any ${rw} s\" slides over every poll. While deliveries wait, polls take their share and no more, so a wave's deliveries take about the rest of the rate; the run's end is bound by the polls' share (every run costs at least one poll)."
rm -rf "$W/fw" "$W/rec" "$W/state"
fi

# ---- 7. patchdrop's own cost: a fast sink -----------------------------------------------------
# 7b: only the batch = 1000 row of section 7 (its figures, without the rest of the section).
if want 7 || want 7b; then
if [ $quick = 1 ]; then
  nfast=300 nloop=40 nburst=5000 big=$((32 << 20)) runs=1
else
  nfast=5000 nloop=500 nburst=100000 big=$((1 << 30)) runs=2
fi
say ""
say "## 7. Patchdrop's own cost: a fast sink"
# once7 NAME N DROP [key = value lines...]: `run --once` over the N files in DROP to a fresh sink;
# sets R_RATE (files/s), R_REQS (flow starts at the sink), R_RECEIPTS and T_* of the run.
once7() {
  local name=$1 n=$2 drop=$3; shift 3
  rm -rf "$W/state"
  sink "$name"
  conf "$W/c7.conf" "$drop" "rate_limit = 1000000" "watch:settle = 0" "$@"
  T_RC=0
  timed "$W/run7.out" env ${PRELOAD7:+LD_PRELOAD=$PRELOAD7} "$PD" run --once -c "$W/c7.conf"
  stop_sink
  if [ "$T_RC" != 0 ] || ! grep -q "summary: $n delivered" "$W/run7.out"; then
    say "patchdrop run ($name) FAILED (exit $T_RC): $(tail -1 "$W/run7.out")"; exit 1
  fi
  R_RATE=$(calc "%.0f" "$n / $T_WALL")
  R_REQS=$SINK_STARTS
  R_RECEIPTS=$(find "$W/state/watches/bench/archive" -name '*.receipt.json' | wc -l)
}
# BENCH_ROWS7=idle: only the idle daemon's row (it takes 12 s; the others take minutes).
idle_only=0
[ "${BENCH_ROWS7:-}" = idle ] && idle_only=1
if [ $idle_only = 0 ]; then
# Small files, batch off and batch = 1000, then the jq + curl loop against the same sink.
declare -A F7
# gc: batch off with group_commit = yes (syncfs rounds), against the default's fsyncs.
# nosync: batch off with fsync, fdatasync and syncfs made no-ops (bench/nosync.c, preloaded): a
# diagnostic of what the syncs cost here, never a way to run patchdrop.
modes7="plain gc nosync batch"
want 7 || modes7=batch
for mode in $modes7; do
  rm -rf "$W/small"
  mkdir -p "$W/small"
  "$SPLIT" --files json "$nfast" 2000 "$W/small"
  case $mode in
    plain) extra=() ;;
    gc) extra=("state:group_commit = yes") ;;
    batch) extra=("watch:batch = 1000" "watch:batch_window = 200ms") ;;
    nosync) extra=() ;;
  esac
  PRELOAD7=""
  [ "$mode" = nosync ] && PRELOAD7=$NOSYNC
  once7 "sink-$mode" "$nfast" "$W/small" "${extra[@]}"
  F7[$mode.rate]=$R_RATE F7[$mode.sys]=$T_SYS F7[$mode.usr]=$T_USR F7[$mode.wall]=$T_WALL
  F7[$mode.rss]=$((T_RSS_KB / 1024)) F7[$mode.reqs]=$R_REQS
  F7[$mode.steps]=$(grep -o 'durable_steps=[0-9]* rounds=[0-9]* syncs=[0-9]*' "$W/stderr.log" 2>/dev/null | tail -1 || true)
done
rm -rf "$W/small" "$W/state"
if ! want 7; then
  say ""
  say "| what | patchdrop (this run) | target |"
  say "|---|---|---|"
  say "| $nfast JSON files of ~2 KB, \`run --once\`, \`batch = 1000\` | **${F7[batch.rate]} files/s** (wall ${F7[batch.wall]} s, sys ${F7[batch.sys]} s; ${F7[batch.reqs]} requests), **peak RSS ${F7[batch.rss]} MiB** | >= 6,000 files/s, peak RSS <= 48 MiB |"
else
sink sink-loop
jq_curl_loop "$nloop"
stop_sink
x_plain=$(calc "%.0f" "${F7[plain.rate]} / $script_rate")
x_batch=$(calc "%.0f" "${F7[batch.rate]} / $script_rate")
# The large file.
sink sink-big
send_vs_curl "$big" "$runs"
stop_sink
big_mbs=$(calc "%.0f" "$big / 1e6 / $best_pd")
bcurl_mbs=$(calc "%.0f" "$big / 1e6 / $best_curl")
big_gib=$(calc "%.2f" "$pd_cpu * 1073741824 / $big")
bcurl_gib=$(calc "%.2f" "$curl_cpu * 1073741824 / $big")
fi
# Idle cost: a daemon with one empty watch; context switches of all its threads over 10 s.
rm -rf "$W/idle" "$W/state"
mkdir -p "$W/idle"
sink sink-idle
conf "$W/c7i.conf" "$W/idle"
"$PD" run -c "$W/c7i.conf" >/dev/null 2>>"$W/stderr.log" &
IDLE=$!
PIDS+=("$IDLE")
sleep 2
# switches: "all main", the context switches of every thread and of the main one, in one read.
switches() {
  awk -v main="/proc/$IDLE/task/$IDLE/status" '/ctxt_switches/ {n += $2; if (FILENAME == main) m += $2}
    END {print n + 0, m + 0}' /proc/"$IDLE"/task/*/status
}
threads=$(ls /proc/"$IDLE"/task | wc -l)
read -r c0 m0 < <(switches)
t0=${EPOCHREALTIME/[.,]/}
sleep 10
read -r c1 m1 < <(switches)
t1=${EPOCHREALTIME/[.,]/}
kill -0 "$IDLE" 2>/dev/null || { say "the idle daemon ended early"; exit 1; }
kill "$IDLE" 2>/dev/null || true
wait "$IDLE" 2>/dev/null || true
stop_sink
idle_s=$(calc "%.2f" "($t1 - $t0) / 1e6")
wake=$(calc "%.1f" "($c1 - $c0) / $idle_s")
wake_main=$(calc "%.1f" "($m1 - $m0) / $idle_s")
rm -rf "$W/idle" "$W/state"
if [ $idle_only = 0 ]; then
# Many files dropped at once, batch = 100.
rm -rf "$W/burst"
mkdir -p "$W/burst"
"$SPLIT" --files json "$nburst" 2000 "$W/burst"
once7 sink-burst "$nburst" "$W/burst" "watch:batch = 100" "watch:batch_window = 200ms"
burst_wall=$T_WALL burst_rss=$((T_RSS_KB / 1024)) burst_rate=$R_RATE burst_reqs=$R_REQS
burst_receipts=$R_RECEIPTS burst_cpu=$T_CPU
# Oldest first: the files are named in the order they were written; how far each one's place in
# the order of delivery (receipts' delivered_at) is from its place in that order.
burst_fair=$(python3 - "$W/state/watches/bench/archive" <<'PY'
import json, os, sys
d = sys.argv[1]
got = []
for n in os.listdir(d):
    if n.endswith(".receipt.json"):
        r = json.load(open(os.path.join(d, n)))
        got.append((r["delivered_at"], r["file"]))
by_name = {f: i for i, f in enumerate(sorted(f for _, f in got))}
moved = sorted(abs(by_name[f] - j) for j, (_, f) in enumerate(sorted(got)))
n = len(moved)
mean_d = sum(moved) / n
rho = 1 - 6 * sum(m * m for m in moved) / (n * (n * n - 1))
print(f"each file delivered a median {moved[n // 2]}, p99 {moved[n * 99 // 100]}, at most {moved[-1]} "
      f"places from its place in the order written ({100 * moved[n * 99 // 100] / n:.2f}% of the burst at p99); "
      f"rank correlation {rho:.4f}")
PY
)
rm -rf "$W/burst" "$W/state"
fi
say ""
say "nginx (bench/nginx-sink.conf, one worker) answers every flow start at once with a canned run id and reads the body away, so the figures are patchdrop's own cost; it shares the CPUs with the program measured. Every row's baseline is from this run. patchdrop: rate_limit = 1000000, settle = 0, follow = no."
say ""
say "| what | patchdrop (this run) | baseline (this run) | target |"
say "|---|---|---|---|"
[ $idle_only = 1 ] || say "| $nfast JSON files of ~2 KB, \`run --once\`, batch off | **${F7[plain.rate]} files/s** (wall ${F7[plain.wall]} s, user ${F7[plain.usr]} s, **sys ${F7[plain.sys]} s**; ${F7[plain.reqs]} requests) | jq + curl loop ($nloop files): $script_rate files/s, **${x_plain}x**; \`group_commit = yes\`: ${F7[gc.rate]} files/s (sys ${F7[gc.sys]} s; ${F7[gc.steps]:-?}), **$(calc "%.2f" "${F7[gc.rate]} / ${F7[plain.rate]}")x** the default; syncs off (a diagnostic: fsync, fdatasync and syncfs preloaded as no-ops, bench/nosync.c): ${F7[nosync.rate]} files/s (sys ${F7[nosync.sys]} s), **$(calc "%.2f" "${F7[nosync.rate]} / ${F7[plain.rate]}")x** the default | >= 2,500 files/s (>= 40x the loop) |"
[ $idle_only = 1 ] || say "| the same, \`batch = 1000\` | **${F7[batch.rate]} files/s** (wall ${F7[batch.wall]} s, sys ${F7[batch.sys]} s; ${F7[batch.reqs]} requests), **peak RSS ${F7[batch.rss]} MiB** | the loop: **${x_batch}x** | >= 6,000 files/s, peak RSS <= 48 MiB |"
say "| idle daemon, one empty watch, 10 s | **$wake wakeups/s** (voluntary + involuntary context switches of its $threads threads; main thread $wake_main/s) | | <= 1 a second |"
[ $idle_only = 1 ] || say "| $((big >> 20)) MiB JSON array, \`send\` | **$big_mbs MB/s**, **$big_gib CPU s per GiB**, **peak RSS $((pd_rss / 1024)) MiB** ($nbodies requests, best of $runs) | curl posting the same bodies pre-built: $bcurl_mbs MB/s, $bcurl_gib CPU s per GiB, RSS $((curl_rss / 1024)) MiB | >= 700 MB/s, <= 1.4 CPU s per GiB, RSS <= 48 MiB |"
[ $idle_only = 1 ] || say "| $nburst files dropped at once, \`run --once\`, batch = 100 | $burst_receipts of $nburst receipts, $burst_reqs requests, **peak RSS $burst_rss MiB**, wall **$burst_wall s** ($burst_rate files/s, CPU $burst_cpu s); oldest first: $burst_fair | | all delivered, RSS <= 64 MiB, oldest-first fairness kept |"
say ""
say "Wakeups are read from /proc/PID/task/*/status (voluntary_ctxt_switches + nonvoluntary_ctxt_switches) 2 s after start and again 10 s later. Files/s = files / wall time of \`run --once\` (start-up and the last batch window included). Oldest first: a place is a file's rank; the spread comes from concurrency and batches of 100 going together."
fi
fi

# ---- 8. soak: memory and descriptors over 30 minutes at 500 files a minute ------------------------
# Runs only when named (--only 8): it takes 30 minutes (--quick: 3), at next to no CPU.
if [[ $only == *",8,"* ]]; then
soak_min=30
[ $quick = 1 ] && soak_min=3
say ""
say "## 8. Soak: $soak_min minutes at 500 files a minute"
rm -rf "$W/soak" "$W/state"
mkdir -p "$W/soak"
sink sink-soak
conf "$W/c8.conf" "$W/soak" "rate_limit = 1000000" "watch:settle = 1s" "watch:archive_keep = 5m" \
  "watch:receipt_keep = 5m"
"$PD" run -c "$W/c8.conf" >/dev/null 2>>"$W/stderr.log" &
SOAK=$!
PIDS+=("$SOAK")
body=$(printf '{"id":%d,"pad":"%01500d"}' 1 0)
# soak_sample MINUTE: one row of the table from the daemon's /proc entries.
soak_sample() {
  local rss fds thr arch
  rss=$(awk '/^VmRSS/ {print int($2 / 1024)}' /proc/"$SOAK"/status)
  fds=$(ls /proc/"$SOAK"/fd | wc -l)
  thr=$(ls /proc/"$SOAK"/task | wc -l)
  arch=$(find "$W/state/watches/bench/archive" -name '*.receipt.json' 2>/dev/null | wc -l)
  say "| $1 | $dropped | $(ls "$W/soak" | wc -l) | $arch | $rss | $fds | $thr |"
  SOAK_RSS[$1]=$rss SOAK_FDS[$1]=$fds
}
declare -A SOAK_RSS SOAK_FDS
say ""
say "| minute | files dropped | waiting in the drop folder | receipts in the archive (archive_keep = 5m) | RSS MiB | open fds | threads |"
say "|---|---|---|---|---|---|---|"
dropped=0
t0=$SECONDS
for m in $(seq 1 "$soak_min"); do
  while [ $((SECONDS - t0)) -lt $((m * 60)) ]; do
    # 500 a minute, a few each second, written and closed as an upload would be.
    want_now=$(((SECONDS - t0 + 1) * 500 / 60))
    while [ $dropped -lt $want_now ]; do
      printf '%s' "$body" >"$W/soak/s$dropped.json"
      dropped=$((dropped + 1))
    done
    sleep 1
  done
  kill -0 "$SOAK" 2>/dev/null || { say "the soaked daemon ended early"; exit 1; }
  soak_sample "$m"
done
kill "$SOAK" 2>/dev/null || true
wait "$SOAK" 2>/dev/null || true
stop_sink
say ""
say "From minute 2 to minute $soak_min: RSS ${SOAK_RSS[2]} -> ${SOAK_RSS[$soak_min]} MiB, open fds ${SOAK_FDS[2]} -> ${SOAK_FDS[$soak_min]}; $SINK_STARTS flow starts for $dropped files. Target: neither grows."
rm -rf "$W/soak" "$W/state"
fi

cp "$REPORT" "$out"
echo
echo "bench: results written to $out"
python3 "$top/bench/chart.py" "$out" -o "$top/bench/results.svg" || echo "bench: no chart drawn (see above)"
