# bench/chart.py: a results file's section 7 (patchdrop against its baseline) becomes an SVG with
# a pair of bars and the ratio per comparable row; a row whose baseline has no figure in the
# same unit is left out and named; markup in a label stays text; a CSV works the same; a file
# with nothing to compare is an error that says what is expected, and no SVG is written.
. "$(dirname "$0")/lib.bash"
command -v python3 >/dev/null || { echo "skipped: python3 is not installed"; exit 77; }
CHART="$PD_SRC/bench/chart.py"
cat >"$T/results.md" <<'MD'
# patchdrop benchmarks

## 6. Something else

| what | patchdrop (this run) | baseline (this run) |
|---|---|---|
| not this section | **1 files/s** | 2 files/s |

## 7. Patchdrop's own cost: a fast sink

| what | patchdrop (this run) | baseline (this run) | target |
|---|---|---|---|
| 5000 JSON files <b>&</b> more, `run --once` | **479 files/s** (wall 10.44 s; 5000 requests) | jq + curl loop (500 files): 26.8 files/s, **18x** | >= 2,500 files/s |
| the same, `batch = 1000` | **613 files/s** (wall 8.15 s) | the loop is not run by `--only 7b` | >= 6,000 files/s |
| 1024 MiB JSON array, `send` | **112 MB/s**, **8.63 CPU s per GiB** | curl posting the same bodies: 263 MB/s | >= 700 MB/s |

Some prose | with a pipe.
MD
# The SVG as the rows a person sees: label, bars' tooltips, ratio.
svg_rows() {
  python3 - "$1" <<'PY'
import sys, xml.etree.ElementTree as ET
ns = {"s": "http://www.w3.org/2000/svg"}
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "{http://www.w3.org/2000/svg}svg" and root.get("viewBox")
print("bars", len(root.findall(".//s:rect[@class='bar']", ns)))
for t in root.findall(".//s:rect[@class='bar']/s:title", ns): print("bar", t.text)
for t in root.findall(".//s:text[@class='ratio']", ns): print("ratio", t.text)
PY
}
python3 "$CHART" "$T/results.md" -o "$T/results.svg" >"$T/out" 2>"$T/err"
check "the chart is written" test -s "$T/results.svg"
svg_rows "$T/results.svg" >"$T/rows" || true
check "the SVG parses as XML with two bars a comparable row" grep -qx 'bars 4' "$T/rows"
check "patchdrop's figure and the baseline's are the bars' tooltips" \
  bash -c "grep -qF 'bar 5000 JSON files <b>&</b> more, run --once: patchdrop 479 files/s' '$T/rows' &&
           grep -qF 'bar 5000 JSON files <b>&</b> more, run --once: baseline 26.8 files/s' '$T/rows'"
check "the ratios are shown" bash -c "grep -qx 'ratio 17.87x' '$T/rows' && grep -qx 'ratio 0.43x' '$T/rows'"
check "markup in a label stays text" bash -c "! grep -q '<b>' '$T/results.svg'"
check "the row without a baseline is left out and named" grep -qF 'left out (no baseline in the same unit): the same, batch = 1000' "$T/err"
check "the script says how many rows it drew" grep -qF '2 row(s) drawn' "$T/out"

printf 'label,patchdrop,baseline,unit\nsmall files,700,35,files/s\nsend,100,400,MB/s\n' >"$T/r.csv"
python3 "$CHART" "$T/r.csv" -o "$T/csv.svg" >/dev/null 2>&1
svg_rows "$T/csv.svg" >"$T/rows" || true
check "a CSV is drawn the same" bash -c "grep -qx 'bars 4' '$T/rows' && grep -qx 'ratio 20.00x' '$T/rows' && grep -qx 'ratio 0.25x' '$T/rows'"

printf '# nothing\n\n## 7. Empty\n\nno table\n' >"$T/empty.md"
check "a file with nothing to compare fails" bash -c "! python3 '$CHART' '$T/empty.md' -o '$T/e.svg' 2>'$T/err'"
check "and says what it expects" grep -qF "with 'patchdrop' and 'baseline' columns" "$T/err"
check "and writes no SVG" test ! -e "$T/e.svg"
printf 'label,patchdrop,baseline,unit\nx,fast,1,files/s\n' >"$T/bad.csv"
check "a CSV without numbers fails naming its line" \
  bash -c "! python3 '$CHART' '$T/bad.csv' -o '$T/b.svg' 2>'$T/err' && grep -qF 'bad.csv:2: needs numbers' '$T/err'"
finish
