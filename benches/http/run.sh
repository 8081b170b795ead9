#!/usr/bin/env bash
# `make bench`: the service against the ceilings it stands on, side by side in one run.
#
# Each line of the table is a pair measured one after the other on the same machine with the
# same load settings (wrk -t2 -c$CONNS, pgbench -j2 -c$CONNS, -M prepared, $SECS s each):
#   - POST /conversions (with and without Idempotency-Key) vs pgbench running the same INSERT;
#   - GET /me, /currencies, /conversions?limit=20 vs pgbench running that endpoint's SELECT;
#   - GET /rates/latest and /convert vs benches/jwt_ceiling.rs (same JWT check, fixed body).
# Then 1 M conversions (one partner holding 900 k) are generated with SQL and the history pages
# (first, filtered, deep in the cursor chain) are loaded with wrk -c$HIST_CONNS; the summary
# and the CSV export are timed with curl; the full ECB import is timed on its own database.
# The table goes to docs/benchmarks.md (between the make-bench markers) and to stdout.
#
# Needs wrk, pgbench, psql, curl and python3 (installed with apt-get when missing), PostgreSQL
# and Redis as for `make run`, and the release builds of the service and the ceiling (the
# Makefile target builds both). Scratch databases ccs_bench and ccs_bench_import are dropped at
# the end (KEEP_DB=1 keeps them). Knobs: SECS=10 CONNS=32 HIST_CONNS=16 HIST_ROWS=1000000
# HIST_STEP='1 minute' (the time between two generated conversions; '3.1536 seconds' spreads 10 M
# over 12 monthly partitions)
# WARM_SECS=2 (each history page is loaded that long, unmeasured, before it is measured).
# benches/http/compare.sh runs this several times, for two builds, with RESULTS=<file> and
# REPORT=0 (no table written here; it writes the comparison).
set -euo pipefail
cd "$(dirname "$0")/../.."
TARGET=${CARGO_TARGET_DIR:-target}
BIN=${BIN:-$TARGET/release/currency-conversion}
CEILING=${CEILING:-$TARGET/release/examples/jwt_ceiling}
SECS=${SECS:-10}
CONNS=${CONNS:-32}
HIST_CONNS=${HIST_CONNS:-16}
HIST_ROWS=${HIST_ROWS:-1000000}
HIST_STEP=${HIST_STEP:-1 minute}
PORT=${BENCH_PORT:-18080}
CEILING_PORT=${CEILING_PORT:-18090}
PG=${PG_BASE_URL:-postgres://postgres@127.0.0.1:5432}
DB=${BENCH_DB:-ccs_bench}
IMPORT_DB=${BENCH_IMPORT_DB:-ccs_bench_import}
DOC=${BENCH_DOC:-docs/benchmarks.md}
OUT=$TARGET/bench-http
export BENCH_DIR=$PWD/benches/http
NONCE=$(date +%s)
mkdir -p "$OUT"
RESULTS=${RESULTS:-$OUT/results.tsv}
WARM_SECS=${WARM_SECS:-2}
: >"$RESULTS"

need() { # command, Debian package
  command -v "$1" >/dev/null && return
  echo "bench: installing $2 for $1" >&2
  local sudo=; [[ $(id -u) == 0 ]] || sudo=sudo
  $sudo apt-get install -y "$2" >/dev/null || { $sudo apt-get update >/dev/null && $sudo apt-get install -y "$2" >/dev/null; }
}
need wrk wrk
need psql postgresql-client
need pgbench postgresql-client
command -v pgbench >/dev/null || need pgbench postgresql-contrib
need curl curl
need python3 python3
need /usr/bin/time time
for f in "$BIN" "$CEILING"; do [[ -x $f ]] || { echo "bench: $f missing (make bench builds it)" >&2; exit 1; }; done

export DATABASE_URL=$PG/$DB
export CCS__REDIS__KEY_PREFIX="bench$NONCE:"
# The benchmark measures the service, not a partner's request limit: the highest one allowed
# (the limiter still runs: at this limit in leases, one Redis script per lease of up to 256
# requests, see README "Request limits").
export CCS__LIMITS__REQUESTS_PER_MINUTE=1000000
export RUST_LOG=warn
psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
"$BIN" migrate >/dev/null
"$BIN" seed >/dev/null
CCS_PASSWORD="bench partner password" "$BIN" user create --email bench-partner@example.com --role partner >/dev/null
server= ceiling=
cleanup() {
  [[ -n $server ]] && kill "$server" 2>/dev/null
  [[ -n $ceiling ]] && kill "$ceiling" 2>/dev/null
  if [[ -z ${KEEP_DB:-} ]]; then
    psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "DROP DATABASE IF EXISTS $IMPORT_DB WITH (FORCE)" || true
  fi
  redis-cli --scan --pattern "bench$NONCE:*" 2>/dev/null | xargs -r redis-cli del >/dev/null 2>&1 || true
}
trap cleanup EXIT
CCS__SERVER__PORT=$PORT "$BIN" serve --role api &
server=$!
# The ceiling is this revision's build: its settings, even when the service is another
# revision's (compare.sh sets CEILING_SETTINGS_DIR then); the token secret is the same.
env ${CEILING_SETTINGS_DIR:+CCS_SETTINGS_DIR=$CEILING_SETTINGS_DIR} JWT_CEILING_PORT=$CEILING_PORT "$CEILING" &
ceiling=$!
for _ in $(seq 1 100); do curl -sf "localhost:$PORT/health/live" >/dev/null && break; sleep 0.1; done
token=$(curl -sf "localhost:$PORT/api/v1/auth/token" -H 'content-type: application/json' \
  -d '{"email":"bench-partner@example.com","password":"bench partner password"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
export TOKEN=$token
partner=$(psql -Atq "$DATABASE_URL" -c "SELECT id FROM users WHERE email = 'bench-partner@example.com'")
curl -sf "localhost:$CEILING_PORT/" -H "authorization: Bearer $token" >/dev/null || { echo "bench: ceiling refuses the token" >&2; exit 1; }

# One conversion through the service gives the row pgbench inserts (rate, result, quote row).
curl -sf "localhost:$PORT/api/v1/conversions" -H "authorization: Bearer $token" \
  -H 'content-type: application/json' -d '{"from":"EUR","to":"USD","amount":"100.00"}' >/dev/null
IFS='|' read -r rate result as_of to_quote < <(psql -Atq "$DATABASE_URL" -c \
  "SELECT rate, result, rate_as_of, to_quote_id FROM conversions ORDER BY created_at DESC LIMIT 1")

# name, url, lua script, connections
web() {
  local line
  line=$(wrk -t2 -c"${4:-$CONNS}" -d"${SECS}s" -s "$BENCH_DIR/$3" "$2" | grep '^WRK ') ||
    { echo "bench: wrk failed for $1" >&2; exit 1; }
  read -r _ n rps p50 p99 non2xx sockerr <<<"$line"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$rps" "$p50" "$p99" "$non2xx" "$sockerr" >>"$RESULTS"
  printf '%-28s %9s req/s  p50 %6s ms  p99 %7s ms  non-2xx %s  socket errors %s\n' "$1" "$rps" "$p50" "$p99" "$non2xx" "$sockerr"
}
# name, sql file, connections
pgb() {
  local dir=$OUT/pgbench-$1
  rm -rf "$dir"; mkdir -p "$dir"
  (cd "$dir" && pgbench -n -M prepared -j2 -c"${3:-$CONNS}" -T"$SECS" -l \
    -D partner="$partner" -D rate="$rate" -D result="$result" -D as_of="$as_of" \
    -D to_quote="$to_quote" -D inactive=false -f "$BENCH_DIR/$2" "$DATABASE_URL" >summary.txt 2>&1) ||
    { cat "$dir/summary.txt" >&2; exit 1; }
  local stats
  stats=$(cat "$dir"/pgbench_log.* | python3 -c '
import sys
lat = sorted(int(l.split()[2]) for l in sys.stdin)
pick = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] / 1000
print(f"{pick(0.5):.2f} {pick(0.99):.2f}")')
  local tps
  tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$dir/summary.txt")
  printf '%s\t%.1f\t%s\t%s\t0\t0\n' "$1" "$tps" "${stats% *}" "${stats#* }" >>"$RESULTS"
  printf '%-28s %9.1f tps    p50 %6s ms  p99 %7s ms\n' "$1" "$tps" "${stats% *}" "${stats#* }"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
A=http://127.0.0.1:$PORT/api/v1
web ceiling "http://127.0.0.1:$CEILING_PORT/api/v1/rates/latest" get.lua
web latest "$A/rates/latest?base=USD&symbols=EUR,GBP,JPY,CHF" get.lua
web convert "$A/convert?from=GBP&to=JPY&amount=100.00" get.lua
pgb pg_insert insert.sql
web post "$A/conversions" post_conversion.lua
KEYED=1 NONCE=$NONCE web post_keyed "$A/conversions" post_conversion.lua
pgb pg_me me.sql
web me "$A/me" get.lua
pgb pg_currencies currencies.sql
web currencies "$A/currencies" get.lua
pgb pg_history history_page.sql
web history "$A/conversions?limit=20" get.lua

# History at 1 M rows.
t0=$(date +%s.%N)
psql -q -v ON_ERROR_STOP=1 -v partner="$partner" -v rows="$HIST_ROWS" -v step="$HIST_STEP" -f "$BENCH_DIR/history.sql" "$DATABASE_URL"
psql -q -c "VACUUM ANALYZE conversions" "$DATABASE_URL"
gen_secs=$(python3 -c "import time; print(f'{time.time() - $t0:.1f}')")
partner_rows=$(psql -Atq "$DATABASE_URL" -c "SELECT count(*) FROM conversions WHERE partner_id = '$partner'")
all_rows=$(psql -Atq "$DATABASE_URL" -c "SELECT count(*) FROM conversions")
echo "history: $all_rows conversions, $partner_rows of the bench partner (generated in ${gen_secs} s)"
deep=$(psql -Atq "$DATABASE_URL" -c "SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"') || '|' || id
  FROM conversions WHERE partner_id = '$partner' ORDER BY created_at DESC, id DESC OFFSET $((partner_rows / 2)) LIMIT 1" |
  python3 -c 'import sys; print(sys.stdin.read().strip().encode().hex())')
# Warm: each page is loaded for WARM_SECS with the same load, unmeasured, right before it is
# measured (the generated rows and their index pages are then in PostgreSQL's buffers or the
# OS page cache, and the server's statements are prepared on its connections).
warm() { wrk -t2 -c"$HIST_CONNS" -d"${WARM_SECS}s" -s "$BENCH_DIR/get.lua" "$1" >/dev/null; }
warm "$A/conversions?limit=20"
web hist_first "$A/conversions?limit=20" get.lua "$HIST_CONNS"
warm "$A/conversions?limit=20&status=permanent&currency=JPY"
web hist_filtered "$A/conversions?limit=20&status=permanent&currency=JPY" get.lua "$HIST_CONNS"
warm "$A/conversions?limit=20&cursor=$deep"
web hist_deep "$A/conversions?limit=20&cursor=$deep" get.lua "$HIST_CONNS"
timed() { # name, url, runs: median and max of curl's time_total in ms
  local name=$1 url=$2 runs=$3 times=()
  for _ in $(seq 1 "$runs"); do
    times+=("$(curl -s -o /dev/null -w '%{http_code} %{time_total}' "$url" -H "authorization: Bearer $token")")
  done
  printf '%s\n' "${times[@]}" | python3 -c '
import statistics, sys
rows = [l.split() for l in sys.stdin]
bad = [c for c, _ in rows if c != "200"]
t = sorted(float(x) * 1000 for _, x in rows)
print(f"'"$name"'\t{statistics.median(t):.1f}\t{t[0]:.1f}\t{t[-1]:.1f}\t{len(bad)}")' | tee -a "$RESULTS"
}
timed summary_day "$A/conversions/summary?group_by=day" 10
timed summary_pair "$A/conversions/summary?group_by=currency_pair" 10
csv=$(curl -s -o "$OUT/export.csv" -w '%{http_code} %{time_total}' "$A/conversions?format=csv" -H "authorization: Bearer $token")
csv_rows=$(($(wc -l <"$OUT/export.csv") - 1))
printf 'csv_export\t%s\t%s\t%s\n' "$csv_rows" "${csv#* }" "${csv%% *}" | tee -a "$RESULTS"
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
rss_now_kb=$(awk '/VmRSS/ {print $2}' "/proc/$server/status")
printf 'rss\t%s\t%s\n' "$rss_kb" "$rss_now_kb" | tee -a "$RESULTS"

# Full ECB history import on its own fresh database (migrated, nothing else).
psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $IMPORT_DB WITH (FORCE)" -c "CREATE DATABASE $IMPORT_DB"
DATABASE_URL=$PG/$IMPORT_DB "$BIN" migrate >/dev/null
t0=$(date +%s.%N)
DATABASE_URL=$PG/$IMPORT_DB /usr/bin/time -f '%M' -o "$OUT/import.rss" "$BIN" rates import-ecb data/ecb-eurofxref-hist.csv >"$OUT/import.log" 2>&1
import_secs=$(python3 -c "import time; print(f'{time.time() - $t0:.2f}')")
import_rows=$(psql -Atq "$PG/$IMPORT_DB" -c "SELECT (SELECT count(*) FROM rate_snapshots) || ' ' || (SELECT count(*) FROM rate_quotes)")
printf 'ecb_import\t%s\t%s\t%s\n' "$import_secs" "$import_rows" "$(cat "$OUT/import.rss")" | tee -a "$RESULTS"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

[[ ${REPORT:-1} == 0 ]] && exit 0
MACHINE="$(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $(free -g | awk '/Mem:/ {print $2}') GB RAM, $(uname -sr), $(psql -Atq "$DATABASE_URL" -c 'SHOW server_version' | cut -d' ' -f1)" \
STARTED=$started LOAD_BEFORE=$load_before LOAD_AFTER=$load_after SECS=$SECS CONNS=$CONNS \
HIST_CONNS=$HIST_CONNS GEN_SECS=$gen_secs PARTNER_ROWS=$partner_rows ALL_ROWS=$all_rows \
REVISION=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src migrations || echo '+changes') \
python3 "$BENCH_DIR/report.py" "$RESULTS" "$DOC"
