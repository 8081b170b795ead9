#!/usr/bin/env bash
# Times POST /api/v1/conversions/batch with 1,000 items against a real server on a scratch
# database (ccs_bench_batch, dropped at the end): the server is the binary in $BIN (release by
# default), rates are the embedded seed, the partner is created with the CLI. Each run is one
# request with a fresh Idempotency-Key; curl's time_total is the client-side wall time of the
# whole request (upload, validation, one transaction, the 1,000-conversion answer).
set -euo pipefail
BIN=${BIN:-target/release/currency-conversion}
RUNS=${RUNS:-20}
PORT=${BENCH_PORT:-18081}
DB=${BENCH_DB:-ccs_bench_batch}
ADMIN_URL=${ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
export DATABASE_URL=${DATABASE_URL_BASE:-postgres://postgres@127.0.0.1:5432}/$DB
psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
"$BIN" migrate >/dev/null
"$BIN" seed >/dev/null
CCS_PASSWORD="bench partner password" "$BIN" user create --email bench-partner@example.com --role partner >/dev/null
CCS__SERVER__PORT=$PORT CCS__REDIS__KEY_PREFIX="benchbatch:" RUST_LOG=warn "$BIN" serve --role api &
server=$!
trap 'kill $server; psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"' EXIT
for _ in $(seq 1 100); do curl -sf "localhost:$PORT/health/live" >/dev/null && break; sleep 0.1; done
token=$(curl -sf "localhost:$PORT/api/v1/auth/token" -H 'content-type: application/json' \
  -d '{"email":"bench-partner@example.com","password":"bench partner password"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
body=$(mktemp)
python3 - "$body" <<'PY'
import json, sys
pairs = [("EUR", "USD"), ("USD", "JPY"), ("GBP", "EUR"), ("EUR", "GBP")]
items = [{"from": f, "to": t, "amount": f"{i % 997 + 1}.{i % 100:02d}"}
         for i, (f, t) in ((i, pairs[i % len(pairs)]) for i in range(1000))]
json.dump({"items": items}, open(sys.argv[1], "w"))
PY
times=()
for run in $(seq 1 "$RUNS"); do
  out=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' "localhost:$PORT/api/v1/conversions/batch" \
    -H "authorization: Bearer $token" -H 'content-type: application/json' \
    -H "Idempotency-Key: bench-$run-$$" --data-binary "@$body")
  [[ ${out%% *} == 201 ]] || { echo "run $run: HTTP ${out%% *}" >&2; exit 1; }
  times+=("${out#* }")
done
rm -f "$body"
printf '%s\n' "${times[@]}" | python3 -c '
import statistics, sys
t = sorted(float(x) * 1000 for x in sys.stdin)
print(f"runs={len(t)} min={t[0]:.1f} ms median={statistics.median(t):.1f} ms p90={t[int(0.9 * (len(t) - 1))]:.1f} ms max={t[-1]:.1f} ms")'
psql -Atq "$DATABASE_URL" -c "SELECT count(*) || ' conversions stored in ' || count(DISTINCT batch_id) || ' batches' FROM conversions"
