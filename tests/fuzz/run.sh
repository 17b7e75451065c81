#!/usr/bin/env bash
# Builds the libFuzzer targets with clang in BUILD_DIR and runs each for SECONDS.
# Fails when any target finds a crash; the input is left as BUILD_DIR/crash-<target>-*
# (copy it to tests/data/split/ so the unit tests replay it from then on).
# Usage: tests/fuzz/run.sh BUILD_DIR SECONDS
set -euo pipefail
build=${1:?usage: run.sh BUILD_DIR SECONDS}
secs=${2:?usage: run.sh BUILD_DIR SECONDS}
src=$(cd "$(dirname "$0")/../.." && pwd)

CC=clang cmake -S "$src" -B "$build" -DPD_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target fuzz -j2 >/dev/null

status=0
for t in fuzz_split_json fuzz_split_ndjson fuzz_split_xml fuzz_xml_expat fuzz_split_csv \
         fuzz_split_lines fuzz_split_x12 fuzz_split_edifact fuzz_encode \
         fuzz_config fuzz_api fuzz_expand; do
    corpus="$build/corpus/$t"
    mkdir -p "$corpus"
    # Seeds: the regression inputs, which are also good starting points.
    case $t in
        fuzz_config) seeds="$src/conf" ;;
        fuzz_api) seeds="$src/tests/data/api" ;;
        fuzz_expand) seeds="$src/tests/data/expand" ;;
        *) seeds="$src/tests/data/split" ;;
    esac
    if [ -d "$seeds" ]; then
        cp -n "$seeds"/* "$corpus"/ 2>/dev/null || true
    fi
    echo "fuzz: $t for ${secs}s"
    if ! "$build/tests/fuzz/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -print_final_stats=0 -artifact_prefix="$build/crash-$t-" "$corpus" \
        >"$build/$t.log" 2>&1; then
        echo "fuzz: $t FAILED; see $build/$t.log and $build/crash-$t-*" >&2
        tail -30 "$build/$t.log" >&2
        status=1
    fi
done
exit $status
