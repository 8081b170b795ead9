#!/usr/bin/env bash
# Rates storage and read benchmarks (docs/benchmarks.md, "Rates storage and reads").
#
#   benches/rates/run.sh            # or: make bench-rates
#
# Needs the release binary (cargo build --release --locked), PostgreSQL 15 with psql, pgbench,
# createdb/dropdb on PATH, Redis, python3. Everything goes to a scratch database that is dropped
# at the end (KEEP_DB=1 keeps it) and to Redis keys under BENCH_REDIS_PREFIX (deleted at the
# end). Raw output: $OUT (default target/bench-rates/).
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=benches/rates

PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
PGUSER=${PGUSER:-postgres}
export PGHOST PGPORT PGUSER
BENCH_DB=${BENCH_DB:-ccs_bench_rates}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/currency-conversion}
ECB_CSV=${ECB_CSV:-data/ecb-eurofxref-hist.csv}
N_OBS=${N_OBS:-60000}               # generated publications (x 169 currencies)
PAIR_OBS=${PAIR_OBS:-50}            # publications stored as every pair, for the comparison
INGEST_RUNS=${INGEST_RUNS:-20}      # timed `rates fetch` runs per case
PGBENCH_SECS=${PGBENCH_SECS:-20}    # per query and client count
STANDIN_PORT=${STANDIN_PORT:-18731}
BENCH_REDIS_PREFIX=${BENCH_REDIS_PREFIX:-benchrates:}
OUT=${OUT:-${CARGO_TARGET_DIR:-target}/bench-rates}
KEEP_DB=${KEEP_DB:-0}
STEPS=${STEPS:-1234}                # which of the numbered sections to run

case "$BENCH_DB" in
  ccs_bench*) ;;
  *) echo "BENCH_DB must be a scratch database named ccs_bench* (it is dropped)"; exit 1 ;;
esac
[ -x "$BIN" ] || { echo "no release binary at $BIN: cargo build --release --locked"; exit 1; }
[ -r "$ECB_CSV" ] || { echo "ECB history not readable at $ECB_CSV (set ECB_CSV)"; exit 1; }

mkdir -p "$OUT"
rm -f "$OUT"/pgbench_log.*
export DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$BENCH_DB"
export CCS__REDIS__KEY_PREFIX=$BENCH_REDIS_PREFIX
export CCS__LOG__FORMAT=json
export RUST_LOG=${RUST_LOG:-warn,currency_conversion::rates=debug}
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -d "$BENCH_DB")
sql() { "${PSQL[@]}" -Atc "$1"; }

STANDIN_PID=
cleanup() {
  [ -n "$STANDIN_PID" ] && kill "$STANDIN_PID" 2>/dev/null || true
  if [ "$KEEP_DB" != 1 ]; then dropdb --if-exists "$BENCH_DB"; else echo "kept database $BENCH_DB"; fi
  redis-cli --scan --pattern "${BENCH_REDIS_PREFIX}*" | while read -r key; do redis-cli del "$key" >/dev/null; done
}
trap cleanup EXIT

now() { date +%s.%N; }
# Prints "min median mean max" of the numbers on stdin (seconds -> ms).
stats_ms() { python3 -c '
import statistics, sys
v = [float(x) * 1000 for x in sys.stdin.read().split()]
print(f"n={len(v)} min={min(v):.1f} median={statistics.median(v):.1f} mean={statistics.mean(v):.1f} max={max(v):.1f} ms")'; }

echo "== machine"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  nproc: $(nproc)  $(uname -sr)"
grep -m1 'model name' /proc/cpuinfo || true
free -m | sed -n 2p
echo "load average: $(cut -d" " -f1-3 /proc/loadavg)"
sql "SELECT version()" 2>/dev/null || psql -X -Atc "SELECT version()" -d postgres
"$BIN" --version 2>/dev/null || true

echo "== scratch database $BENCH_DB"
dropdb --if-exists "$BENCH_DB"
"$BIN" migrate >/dev/null
sql "SELECT indexdef FROM pg_indexes WHERE tablename = 'rate_quotes' ORDER BY indexname" > "$OUT/indexes.migration"
# 170 currencies (EUR + 169), as an admin would have added them; the ECB import adds the
# file's other (historic) currencies itself.
"${PSQL[@]}" -f "$HERE/currencies.sql"
echo "usable currencies: $(sql "SELECT count(*) FROM currencies WHERE enabled")"

if [[ $STEPS == *1* ]]; then
echo "== 1. ECB history import: $ECB_CSV ($(($(wc -l < "$ECB_CSV") - 1)) days)"
for run in first rerun; do
  t0=$(now)
  "$BIN" rates import-ecb "$ECB_CSV" > "$OUT/import-$run.log"
  t1=$(now)
  echo "$run: $(grep -h '^imported' "$OUT/import-$run.log")"
  echo "$run: wall $(python3 -c "print(f'{$t1 - $t0:.2f}')") s"
done
sql "SELECT 'rate_quotes rows (ecb): ' || count(*) FROM rate_quotes WHERE provider = 'ecb'"
sql "SELECT 'rate_snapshots rows (ecb): ' || count(*) || ', quotes published (sum of quote_count): ' || sum(quote_count) FROM rate_snapshots WHERE provider = 'ecb'"
sql "SELECT 'rate_quotes total bytes: ' || pg_total_relation_size('rate_quotes') || ', rate_snapshots total bytes: ' || pg_total_relation_size('rate_snapshots')"

fi
if [[ $STEPS == *2* ]]; then
echo "== 2. ingest of a 170-currency snapshot (rates fetch against a local Frankfurter stand-in)"
python3 "$HERE/standin.py" "$STANDIN_PORT" & STANDIN_PID=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$STANDIN_PORT/health" >/dev/null && break; sleep 0.1; done
# The fallback (ECB, from settings/base.toml) is only called if the stand-in fails, and then the
# run stops: `set -e`. (CCS__RATES__FALLBACKS= cannot empty the list: it parses as [""].)
export CCS__RATES__PROVIDER=frankfurter CCS__RATES__MAX_ATTEMPTS=1
fetch() { # mode label -> runs `rates fetch`, appends wall seconds and in-process seconds
  local mode=$1 label=$2 t0 t1
  t0=$(now)
  CCS__RATES__PROVIDER_URL="http://127.0.0.1:$STANDIN_PORT/$mode/v1" "$BIN" rates fetch > "$OUT/fetch.log" 2>&1
  t1=$(now)
  echo "$t0 $t1" | awk '{printf "%.6f\n", $2 - $1}' >> "$OUT/$label.wall"
  # From the client's "fetching rates" line to the service's "rates stored" line: the HTTP call
  # to the stand-in, parsing, validation and the store transaction (no process start-up).
  python3 - "$OUT/fetch.log" >> "$OUT/$label.inproc" <<'PY'
import json, sys, datetime
ts = {}
for line in open(sys.argv[1]):
    try: e = json.loads(line)
    except ValueError: continue
    m = e.get("message", "")
    if m in ("fetching rates", "rates stored"): ts.setdefault(m, e["timestamp"])
p = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00")[:26] + "+00:00")
print(f'{(p(ts["rates stored"]) - p(ts["fetching rates"])).total_seconds():.6f}')
PY
  grep -h '^quotes' "$OUT/fetch.log" >> "$OUT/$label.reports"
}
rm -f "$OUT"/ingest-*.{wall,inproc,reports}
fetch changed ingest-first
echo "first snapshot (every quote new): $(cat "$OUT/ingest-first.reports")"
for case in changed same samevalues; do
  before=$(sql "SELECT count(*) FROM rate_quotes WHERE provider = 'frankfurter'")
  snaps=$(sql "SELECT count(*) FROM rate_snapshots WHERE provider = 'frankfurter'")
  for _ in $(seq "$INGEST_RUNS"); do fetch "$case" "ingest-$case"; done
  after=$(sql "SELECT count(*) FROM rate_quotes WHERE provider = 'frankfurter'")
  snaps2=$(sql "SELECT count(*) FROM rate_snapshots WHERE provider = 'frankfurter'")
  echo "-- $case x $INGEST_RUNS: new quote rows $((after - before)), new snapshot rows $((snaps2 - snaps)); reports: $(sort "$OUT/ingest-$case.reports" | uniq -c | tr -s ' ' | paste -sd';')"
  echo "   wall (whole command):        $(stats_ms < "$OUT/ingest-$case.wall")"
  echo "   fetch+store (in process):    $(stats_ms < "$OUT/ingest-$case.inproc")"
done
kill "$STANDIN_PID"; STANDIN_PID=

fi
if [[ $STEPS == *3* ]]; then
echo "== 3. generated history: $N_OBS publications x 169 currencies"
t0=$(now)
"${PSQL[@]}" -v n_obs="$N_OBS" -f "$HERE/generate.sql"
t1=$(now)
echo "generation total: $(python3 -c "print(f'{$t1 - $t0:.1f}')") s"
sql "SELECT indexdef FROM pg_indexes WHERE tablename = 'rate_quotes' ORDER BY indexname" > "$OUT/indexes.generated"
diff "$OUT/indexes.migration" "$OUT/indexes.generated" && echo "rate_quotes indexes identical to the migration's"
sql "SELECT 'rate_quotes rows: ' || count(*) FROM rate_quotes"

echo "== 3a. plans (EXPLAIN (ANALYZE, BUFFERS), one execution each, after a warm-up)"
"${PSQL[@]}" -f "$HERE/explain.sql" > "$OUT/explain.txt" 2>&1
cat "$OUT/explain.txt"

echo "== 3b. pgbench -M prepared (statements as sqlx sends them: prepared, parameters bound)"
for q in latest asof series; do
  for c in 1 2; do
    pgbench -n -M prepared -c "$c" -j "$c" -T "$PGBENCH_SECS" -r -l --log-prefix="$OUT/pgbench_log.$q.c$c" \
      -f "$HERE/$q.sql" "$BENCH_DB" > "$OUT/pgbench.$q.c$c.txt" 2>&1 || { cat "$OUT/pgbench.$q.c$c.txt"; exit 1; }
    echo "-- $q, $c client(s):"
    grep -E '^(number of transactions actually processed|latency average|tps)' "$OUT/pgbench.$q.c$c.txt" | sed 's/^/   /'
    # Per-statement mean latency (ms) as pgbench -r reports it.
    sed -n '/statement latencies/,$p' "$OUT/pgbench.$q.c$c.txt" | grep -E '^\s+[0-9.]+\s+[0-9]+\s+\S' \
      | awk '{printf "   stmt %-8s ms  %s %s %s %s %s %s\n", $1, $3, $4, $5, $6, $7, $8}'
    # Percentiles from the per-transaction log: the time between one client's consecutive
    # transaction ends (pgbench's own per-transaction "time" field reads a few microseconds for
    # many transactions of the scripts that use \gset, so it is not used).
    cat "$OUT"/pgbench_log."$q".c"$c".* | python3 -c '
import sys, collections
ends = collections.defaultdict(list)
for line in sys.stdin:
    f = line.split()
    ends[f[0]].append(int(f[4]) * 1_000_000 + int(f[5]))
v = sorted((b - a) / 1000 for e in ends.values() for a, b in zip(sorted(e), sorted(e)[1:]))
q = lambda p: v[min(len(v) - 1, int(p * len(v)))]
print(f"   per transaction (all statements incl. the helper): mean={sum(v)/len(v):.3f} p50={q(0.5):.3f} p90={q(0.9):.3f} p99={q(0.99):.3f} max={v[-1]:.3f} ms (n={len(v)})")'
  done
done
# snapshot_at with a custom plan for every execution (what the as-of read costs when the
# generic-plan problem shown in the plans above is avoided), one client.
PGOPTIONS="-c plan_cache_mode=force_custom_plan" pgbench -n -M prepared -c 1 -j 1 -T "$PGBENCH_SECS" -r \
  -f "$HERE/asof.sql" "$BENCH_DB" > "$OUT/pgbench.asof-custom.c1.txt" 2>&1
echo "-- asof with plan_cache_mode=force_custom_plan, 1 client:"
grep -E '^(number of transactions actually processed|latency average|tps)' "$OUT/pgbench.asof-custom.c1.txt" | sed 's/^/   /'
sed -n '/statement latencies/,$p' "$OUT/pgbench.asof-custom.c1.txt" | grep -E '^\s+[0-9.]+\s+[0-9]+\s+\S' \
  | awk '{printf "   stmt %-8s ms  %s %s %s %s %s %s\n", $1, $3, $4, $5, $6, $7, $8}'

fi
if [[ $STEPS == *4* ]]; then
echo "== 4. storage per update, compact vs every pair"
"${PSQL[@]}" -v pair_obs="$PAIR_OBS" -f "$HERE/storage.sql"
fi
