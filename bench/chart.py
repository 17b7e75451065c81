#!/usr/bin/env python3
"""Draws patchdrop against its baselines as an SVG bar chart, next to bench/results.md.

Reads either results.md (the section's table whose header has "patchdrop" and "baseline"
columns: section 7 by default) or a CSV with the columns label,patchdrop,baseline,unit. For each
row it takes patchdrop's figure (the first bold "number unit", else the first "number unit") and
the baseline's first figure in the same unit; rows without a comparable baseline are left out
(and named on stderr). Each row is a pair of bars on its own scale with the ratio
patchdrop/baseline. Python's standard library only.

    python3 bench/chart.py [--section N] [-o bench/results.svg] [bench/results.md | file.csv]
"""
import argparse
import csv
import os
import re
import sys
from html import escape

NUMBER_UNIT = re.compile(r"(\d[\d,]*(?:\.\d+)?)\s*([A-Za-z%]+(?:/[A-Za-z]+)?)")
BOLD = re.compile(r"\*\*(.+?)\*\*")


def figures(cell):
    """(value, unit) pairs of a cell, the bold ones first."""
    bold = [m for b in BOLD.findall(cell) for m in NUMBER_UNIT.findall(b)]
    rest = NUMBER_UNIT.findall(BOLD.sub(" ", cell))
    return [(float(v.replace(",", "")), u) for v, u in bold + rest]


def plain(cell):
    """A cell as text: no bold markers, no backquotes, no trailing parenthesis."""
    text = re.sub(r"[*`]", "", cell).strip()
    return text


def cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def section_tables(text, section):
    """The tables (lists of rows of cells, header first) under "## SECTION." in TEXT."""
    tables, rows, inside = [], [], False
    for line in text.splitlines() + [""]:
        head = re.match(r"##\s+(\d+)\.", line)
        if line.startswith("## "):
            inside = bool(head) and head.group(1) == str(section)
        if inside and line.lstrip().startswith("|"):
            if not re.fullmatch(r"[|\-: ]+", line.strip()):
                rows.append(cells(line))
            continue
        if rows:
            tables.append(rows)
            rows = []
    return tables


def rows_from_markdown(text, section):
    """(label, patchdrop, baseline, unit) per comparable row; the others' labels."""
    out, skipped = [], []
    for table in section_tables(text, section):
        header = [h.lower() for h in table[0]]
        pi = next((i for i, h in enumerate(header) if h.startswith("patchdrop")), None)
        bi = next((i for i, h in enumerate(header) if h.startswith("baseline")), None)
        if pi is None or bi is None:
            continue
        for row in table[1:]:
            if len(row) <= max(pi, bi):
                continue
            label = plain(row[0])
            mine = figures(row[pi])
            base = [] if not mine else [f for f in figures(row[bi]) if f[1] == mine[0][1]]
            if mine and base and base[0][0] > 0:
                out.append((label, mine[0][0], base[0][0], mine[0][1]))
            else:
                skipped.append(label)
    return out, skipped


def rows_from_csv(path):
    out, skipped = [], []
    with open(path, newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.DictReader(f), start=2):
            try:
                mine, base = float(row["patchdrop"]), float(row["baseline"])
            except (KeyError, TypeError, ValueError):
                raise SystemExit(f"{path}:{n}: needs numbers in the columns patchdrop and "
                                 "baseline (header: label,patchdrop,baseline,unit)")
            if base > 0:
                out.append((row.get("label") or "?", mine, base, row.get("unit") or ""))
            else:
                skipped.append(row.get("label") or "?")
    return out, skipped


def fmt(v):
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def svg(rows, title):
    """The chart: a row per comparison, two bars on the row's own scale, the ratio at the end."""
    width, left, right, row_h, top = 760, 300, 560, 44, 40
    height = top + row_h * len(rows) + 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
           f'width="100%" style="max-width:{width}px" font-family="sans-serif" font-size="12">',
           f"<title>{escape(title)}</title>",
           f'<text x="10" y="20" font-size="14" font-weight="bold">{escape(title)}</text>',
           f'<rect x="{left}" y="26" width="12" height="8" fill="#36c"/>'
           f'<text x="{left + 16}" y="34">patchdrop</text>'
           f'<rect x="{left + 100}" y="26" width="12" height="8" fill="#aaa"/>'
           f'<text x="{left + 116}" y="34">baseline</text>']
    for i, (label, mine, base, unit) in enumerate(rows):
        y = top + i * row_h
        scale = (right - left) / max(mine, base)
        short = label if len(label) <= 44 else label[:43] + "\u2026"
        out.append(f'<text x="10" y="{y + 20}"><title>{escape(label)}</title>'
                   f"{escape(short)}</text>")
        for k, (v, who, color) in enumerate(((mine, "patchdrop", "#36c"),
                                             (base, "baseline", "#aaa"))):
            out.append(f'<rect class="bar" x="{left}" y="{y + 6 + k * 16}" '
                       f'width="{max(v * scale, 1):.1f}" height="14" fill="{color}">'
                       f"<title>{escape(label)}: {escape(who)} {fmt(v)} {escape(unit)}"
                       f"</title></rect>")
            out.append(f'<text x="{left + max(v * scale, 1) + 4:.1f}" y="{y + 17 + k * 16}" '
                       f'fill="#555">{fmt(v)} {escape(unit)}</text>')
        out.append(f'<text class="ratio" x="{width - 10}" y="{y + 24}" text-anchor="end" '
                   f'font-weight="bold">{mine / base:.2f}x</text>')
    out.append(f'<text x="{width - 10}" y="{height - 8}" text-anchor="end" fill="#555">'
               "ratio = patchdrop / baseline, each row on its own scale</text></svg>")
    return "\n".join(out) + "\n"


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("input", nargs="?", default=os.path.join(here, "results.md"),
                    help="results.md or a CSV (label,patchdrop,baseline,unit)")
    ap.add_argument("--section", type=int, default=7, help="results.md's section (default 7)")
    ap.add_argument("-o", "--output", default=os.path.join(here, "results.svg"))
    a = ap.parse_args()
    try:
        if a.input.endswith(".csv"):
            rows, skipped = rows_from_csv(a.input)
            title = f"patchdrop against its baselines ({os.path.basename(a.input)})"
        else:
            with open(a.input, encoding="utf-8") as f:
                rows, skipped = rows_from_markdown(f.read(), a.section)
            title = f"patchdrop against its baselines (bench section {a.section})"
    except OSError as e:
        sys.exit(f"chart.py: cannot read {a.input}: {e.strerror}")
    for label in skipped:
        print(f"chart.py: left out (no baseline in the same unit): {label}", file=sys.stderr)
    if not rows:
        sys.exit(f"chart.py: {a.input} has no row to compare: a table under '## {a.section}.' "
                 "with 'patchdrop' and 'baseline' columns, or a CSV with "
                 "label,patchdrop,baseline,unit")
    tmp = a.output + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(svg(rows, title))
    os.replace(tmp, a.output)
    print(f"chart.py: {len(rows)} row(s) drawn in {a.output}")


if __name__ == "__main__":
    main()
