"""Turns the results of benches/http/compare.sh (several run.sh results.tsv files, each labelled
`before:` or `after:`) into the Markdown table of docs/benchmarks.md: per line, the median of
the runs' ratios to their own ceilings and the spread (min–max).

Usage: compare.py DOC before:FILE after:FILE ... Prints the table and replaces the text between
the make-bench markers of DOC with it. Run facts (machine, load, date) come from the environment.
"""

import os
import re
import statistics
import sys

doc, *labelled = sys.argv[1:]
runs = {"before": [], "after": []}
for item in labelled:
    label, path = item.split(":", 1)
    rows = {}
    for line in open(path):
        name, *values = line.rstrip("\n").split("\t")
        rows[name] = values
    runs[label].append(rows)
env = os.environ
variants = [v for v in ("before", "after") if runs[v]]


def web(rows, name):
    rps, p50, p99, non2xx, sockerr = rows[name]
    return float(rps), float(p50), float(p99), int(non2xx) + int(sockerr)


def spread(values, fmt):
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def ratio_line(label, name, ceiling, goal):
    cells, meets = [], True
    for v in variants:
        ratios = [web(r, name)[0] / web(r, ceiling)[0] for r in runs[v]]
        errors = sum(web(r, name)[3] for r in runs[v])
        cell = spread(ratios, "{:.2f}")
        if errors:
            cell += f", {errors} errors"
        if v == "after":
            meets = statistics.median(ratios) >= goal and not errors
            rps = statistics.median(web(r, name)[0] for r in runs[v])
            p99 = statistics.median(web(r, name)[2] for r in runs[v])
            cell = f"**{cell}** ({rps:,.0f} req/s, p99 {p99:.1f} ms)"
        cells.append(cell)
    return f"| {label} | " + " | ".join(cells) + f" | ≥ {goal:.2f} {'yes' if meets else '**no**'} |"


def ms_line(label, name, goal_ms):
    cells, meets = [], True
    for v in variants:
        p99s = [web(r, name)[2] for r in runs[v]]
        errors = sum(web(r, name)[3] for r in runs[v])
        cell = spread(p99s, "{:.1f} ms")
        if errors:
            cell += f", {errors} errors"
        if v == "after":
            meets = statistics.median(p99s) < goal_ms and not errors
            rps = statistics.median(web(r, name)[0] for r in runs[v])
            cell = f"**{cell}** ({rps:,.0f} req/s)"
        cells.append(cell)
    return f"| {label} | " + " | ".join(cells) + f" | < {goal_ms} ms {'yes' if meets else '**no**'} |"


n = len(runs["after"])
out = []
out.append(f"Runs of {env['STARTED']}: {n} run(s) of `benches/http/run.sh` per build, alternating "
           f"{'before, after' if 'before' in variants else 'after only'}; after = revision "
           f"`{env['REVISION']}`" + (f", before = `{env['BEFORE_REV']}`" if env.get('BEFORE_REV') else "")
           + f". {env['MACHINE']}. Load average (1/5/15 min) {env['LOAD_BEFORE']} before, "
           f"{env['LOAD_AFTER']} after. wrk -t2 -c{env['CONNS']} and pgbench -j2 -c{env['CONNS']} "
           f"-M prepared, {env['SECS']} s per line. Each cell: the median of the runs' ratios "
           f"(min–max); a ratio compares lines measured one right after the other in the same run.")
out.append("")
head = " | ".join(f"{v}: ratio" for v in variants)
out.append(f"| what (against its ceiling) | {head} | goal (issue 26) |")
out.append("|---|" + "---:|" * len(variants) + "---|")
out.append(ratio_line("`POST /conversions` / pgbench, the same INSERT", "post", "pg_insert", 1.0))
out.append(ratio_line("`POST /conversions` + `Idempotency-Key` / the same", "post_keyed", "pg_insert", 0.9))
out.append(ratio_line("`GET /me` / `jwt_ceiling` (token check, fixed body)", "me", "ceiling", 0.6))
out.append(ratio_line("`GET /currencies` / `jwt_ceiling`", "currencies", "ceiling", 0.6))
out.append(ratio_line("`GET /rates/latest` / `jwt_ceiling`", "latest", "ceiling", 0.6))
out.append(ratio_line("`GET /convert` / `jwt_ceiling`", "convert", "ceiling", 0.6))
out.append(ratio_line("`GET /conversions?limit=20` (small table) / pgbench, its SELECT", "history", "pg_history", 0.5))
out.append("")
out.append(f"History at 1 M rows (the bench partner holds 9 in 10), wrk -c{env['HIST_CONNS']}, each page "
           f"warmed by {env['WARM_SECS']} s of the same load right before it is measured: p99, median of "
           f"the runs (min–max).")
out.append("")
head = " | ".join(f"{v}: p99" for v in variants)
out.append(f"| page | {head} | goal |")
out.append("|---|" + "---:|" * len(variants) + "---|")
out.append(ms_line("first (`limit=20`)", "hist_first", 10))
out.append(ms_line("filtered (`status=permanent&currency=JPY`)", "hist_filtered", 10))
out.append(ms_line("deep in the cursor chain (row 450 k)", "hist_deep", 10))
out.append("")
after = runs["after"]
for label, name in [("Summary by day", "summary_day"), ("Summary by currency pair", "summary_pair")]:
    out.append(f"{label} (after; 10 requests one at a time, max per run): "
               + spread([float(r[name][2]) for r in after], "{:.1f} ms") + " (goal < 100 ms).")
rates = [int(r["csv_export"][0]) / float(r["csv_export"][1]) for r in after]
out.append("CSV export (after): " + spread(rates, "{:,.0f}") + " rows/s (goal ≥ 100 k rows/s).")
out.append("Full ECB import (after, whole command): "
           + spread([float(r["ecb_import"][0]) for r in after], "{:.2f} s") + " (goal < 5 s).")
for v in variants:
    hwm = max(int(r["rss"][0]) for r in runs[v]) / 1024
    out.append(f"Server peak RSS ({v}), highest of the runs: {hwm:.1f} MB (goal < 64 MB: "
               f"{'yes' if hwm < 64 else '**no**'}).")
table = "\n".join(out)
print()
print(table)

text = open(doc).read()
begin, end = "<!-- make-bench:begin -->", "<!-- make-bench:end -->"
if begin in text and end in text:
    text = re.sub(re.escape(begin) + ".*?" + re.escape(end),
                  lambda _: f"{begin}\n{table}\n{end}", text, flags=re.S)
else:
    text += f"\n{begin}\n{table}\n{end}\n"
open(doc, "w").write(text)
print(f"\nwritten to {doc}")
