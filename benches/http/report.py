"""Turns benches/http/run.sh's results.tsv into the Markdown table of docs/benchmarks.md.

Usage: report.py RESULTS DOC. Prints the table and replaces the text between the make-bench
markers of DOC with it. Run facts (machine, load, date) come from the environment.
"""

import os
import re
import sys

results, doc = sys.argv[1], sys.argv[2]
rows = {}
for line in open(results):
    name, *values = line.rstrip("\n").split("\t")
    rows[name] = values
env = os.environ


def web(name):
    rps, p50, p99, non2xx, sockerr = rows[name]
    return float(rps), float(p50), float(p99), int(non2xx) + int(sockerr)


def line(label, name, ceiling_label, ceiling, goal):
    rps, p50, p99, errors = web(name)
    c_rps, c_p50, c_p99, _ = web(ceiling)
    ratio = rps / c_rps
    ok = "yes" if ratio >= goal and errors == 0 else "**no**"
    err = f", {errors} errors" if errors else ""
    return (f"| {label} | {rps:,.0f} req/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms{err} "
            f"| {ceiling_label}: {c_rps:,.0f}/s, p99 {c_p99:.1f} ms | **{ratio:.2f}** | ≥ {goal:.2f} {ok} |")


out = []
out.append(f"Run of {env['STARTED']} on revision `{env['REVISION']}`: {env['MACHINE']}. "
           f"Load average (1/5/15 min) {env['LOAD_BEFORE']} before, {env['LOAD_AFTER']} after. "
           f"wrk -t2 -c{env['CONNS']} and pgbench -j2 -c{env['CONNS']} -M prepared, "
           f"{env['SECS']} s per line, one after the other.")
out.append("")
out.append("| what | this service | the ceiling it stands on | ratio | goal |")
out.append("|---|---:|---:|---:|---|")
out.append(line("`POST /api/v1/conversions`", "post", "pgbench, the same INSERT", "pg_insert", 0.70))
out.append(line("`POST /api/v1/conversions` + `Idempotency-Key`", "post_keyed", "pgbench, the same INSERT", "pg_insert", 0.70))
out.append(line("`GET /api/v1/me`", "me", "pgbench, its primary-key SELECT", "pg_me", 0.50))
out.append(line("`GET /api/v1/currencies`", "currencies", "pgbench, its list SELECT", "pg_currencies", 0.50))
out.append(line("`GET /api/v1/conversions?limit=20`", "history", "pgbench, its page SELECT", "pg_history", 0.50))
out.append(line("`GET /api/v1/rates/latest`", "latest", "`jwt_ceiling` (JWT check, fixed body)", "ceiling", 0.60))
out.append(line("`GET /api/v1/convert`", "convert", "`jwt_ceiling` (JWT check, fixed body)", "ceiling", 0.60))
out.append("")
p99_post = max(web("post")[2], web("post_keyed")[2])
out.append(f"`POST /conversions` p99 at {env['CONNS']} connections: {p99_post:.1f} ms "
           f"(goal < 20 ms: {'yes' if p99_post < 20 else '**no**'}).")
out.append("")
out.append(f"History at {int(env['ALL_ROWS']):,} conversions, the bench partner holding "
           f"{int(env['PARTNER_ROWS']):,} (generated with SQL in {env['GEN_SECS']} s), "
           f"wrk -c{env['HIST_CONNS']}:")
out.append("")
out.append("| what | req/s | p50 | p99 | goal |")
out.append("|---|---:|---:|---:|---|")
for label, name in [("first page (`limit=20`)", "hist_first"),
                    ("filtered page (`status=permanent&currency=JPY`)", "hist_filtered"),
                    ("page deep in the cursor chain (row 450 k)", "hist_deep")]:
    rps, p50, p99, errors = web(name)
    err = f", {errors} errors" if errors else ""
    out.append(f"| {label} | {rps:,.0f}{err} | {p50:.1f} ms | {p99:.1f} ms | p99 < 10 ms "
               f"{'yes' if p99 < 10 and not errors else '**no**'} |")
for label, name in [("summary by day", "summary_day"), ("summary by currency pair", "summary_pair")]:
    med, lo, hi, bad = rows[name]
    out.append(f"| {label} (10 requests, one at a time) | – | {float(med):.1f} ms (min {float(lo):.1f}) | "
               f"max {float(hi):.1f} ms | < 100 ms {'yes' if float(hi) < 100 and bad == '0' else '**no**'} |")
csv_rows, csv_secs, csv_code = rows["csv_export"]
rate = int(csv_rows) / float(csv_secs)
out.append(f"| CSV export, all {int(csv_rows):,} rows of the partner | {rate:,.0f} rows/s | – | "
           f"{float(csv_secs):.2f} s | ≥ 100 k rows/s {'yes' if rate >= 100_000 and csv_code == '200' else '**no**'} |")
out.append("")
secs, counts, import_rss = rows["ecb_import"]
snapshots, quotes = counts.split()
hwm, now = rows["rss"]
out.append(f"Full ECB history import (`rates import-ecb data/ecb-eurofxref-hist.csv`, fresh database, "
           f"whole command): **{float(secs):.2f} s** for {int(snapshots):,} days, {int(quotes):,} quote rows "
           f"(goal < 5 s: {'yes' if float(secs) < 5 else '**no**'}), peak RSS {int(import_rss) / 1024:.0f} MB.")
out.append(f"Server memory: peak RSS {int(hwm) / 1024:.1f} MB over the whole run, {int(now) / 1024:.1f} MB at "
           f"the end (goal < 64 MB: {'yes' if int(hwm) < 64 * 1024 else '**no**'}).")
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
