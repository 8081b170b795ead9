#!/usr/bin/env bash
# Insert latency while `prune_expired_data` deletes a month of webhook events and deliveries
# (issue 27: "inserts during a prune keep their p99 within 2x of the idle figure").
#
# On a scratch database (ccs_prune, dropped at the end unless KEEP_DB=1), each round:
#   1. generates EVENTS webhook events past retention (created 31-61 days ago, spread evenly over
#      those 30 days), each with one delivered delivery, as `conversion.created` events of the
#      bench partner to one endpoint (deleted since, so new conversions write no outbox rows);
#   2. loads `POST /conversions` with wrk -c$CONNS for 2 s (warm-up), then for $SECS s: the idle
#      figure;
#   3. asks for a `prune_expired_data` run (POST /api/v1/tasks/prune_expired_data/run) and, at
#      once, loads `POST /conversions` the same way again: the figure during the prune;
#   4. reads the run's duration from `task_runs` and checks that every generated event is gone.
# Prints one line per round and the ratio of the p99s. The release build of the service
# (BIN), wrk, psql, curl and python3 as for benches/http/run.sh. Knobs: ROUNDS=3 EVENTS=1000000
# SECS=10 CONNS=8.
set -euo pipefail
cd "$(dirname "$0")/../.."
TARGET=${CARGO_TARGET_DIR:-target}
BIN=${BIN:-$TARGET/release/currency-conversion}
ROUNDS=${ROUNDS:-3}
EVENTS=${EVENTS:-1000000}
SECS=${SECS:-10}
CONNS=${CONNS:-8}
PORT=${BENCH_PORT:-18280}
PG=${PG_BASE_URL:-postgres://postgres@127.0.0.1:5432}
DB=${BENCH_DB:-ccs_prune}
export BENCH_DIR=$PWD/benches/http
NONCE=$(date +%s)
export DATABASE_URL=$PG/$DB
export CCS__REDIS__KEY_PREFIX="prune$NONCE:"
export CCS__LIMITS__REQUESTS_PER_MINUTE=1000000
export RUST_LOG=warn
[[ -x $BIN ]] || { echo "bench: $BIN missing (cargo build --release --bin currency-conversion)" >&2; exit 1; }

psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
"$BIN" migrate >/dev/null
"$BIN" seed >/dev/null
CCS_PASSWORD="bench partner password" "$BIN" user create --email bench-partner@example.com --role partner >/dev/null
CCS_PASSWORD="bench admin password" "$BIN" user create --email bench-admin@example.com --role admin >/dev/null
server=
cleanup() {
  [[ -n $server ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  [[ -z ${KEEP_DB:-} ]] && psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true
  redis-cli --scan --pattern "prune$NONCE:*" 2>/dev/null | xargs -r redis-cli del >/dev/null 2>&1 || true
}
trap cleanup EXIT
CCS__SERVER__PORT=$PORT "$BIN" serve --role all &
server=$!
for _ in $(seq 1 100); do curl -sf "localhost:$PORT/health/live" >/dev/null && break; sleep 0.1; done
token() {
  curl -sf "localhost:$PORT/api/v1/auth/token" -H 'content-type: application/json' -d "$1" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
TOKEN=$(token '{"email":"bench-partner@example.com","password":"bench partner password"}')
ADMIN=$(token '{"email":"bench-admin@example.com","password":"bench admin password"}')
export TOKEN
partner=$(psql -Atq "$DATABASE_URL" -c "SELECT id FROM users WHERE email = 'bench-partner@example.com'")
A=http://127.0.0.1:$PORT/api/v1

post_load() { # prints: requests rps p50 p99 non2xx socket-errors
  wrk -t2 -c"$CONNS" -d"${SECS}s" -s "$BENCH_DIR/post_conversion.lua" "$A/conversions" |
    sed -n 's/^WRK //p'
}

echo "round  events  idle: req/s p50 p99 ms | during the prune: req/s p50 p99 ms | prune s, deleted | p99 during / idle"
for round in $(seq 1 "$ROUNDS"); do
  psql -q -v ON_ERROR_STOP=1 "$DATABASE_URL" <<SQL
INSERT INTO webhook_endpoints (id, partner_id, url, events, secret, created_at, deleted_at)
VALUES (gen_random_uuid(), '$partner', 'https://hooks.example.com/bench', '{conversion.created}',
        'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', now() - interval '90 days', now() - interval '1 day');
CREATE TEMP TABLE generated AS
  SELECT gen_random_uuid() AS id,
         now() - interval '31 days' - g * (interval '30 days' / $EVENTS) AS at
  FROM generate_series(1, $EVENTS) g;
INSERT INTO webhook_events (id, partner_id, event_type, payload, created_at)
SELECT id, '$partner', 'conversion.created',
       '{"type":"conversion.created","timestamp":"' || at || '","data":{"id":"' || id ||
       '","from":"EUR","to":"USD","amount":"100.00","rate":"1.0541","result":"105.41","status":"temporary"}}',
       at
FROM generated;
INSERT INTO webhook_deliveries (id, event_id, endpoint_id, state, attempts, last_attempt_at,
    last_status_code, last_latency_ms, delivered_at, created_at)
SELECT gen_random_uuid(), g.id, (SELECT id FROM webhook_endpoints ORDER BY created_at DESC LIMIT 1),
       'delivered', 1, g.at, 204, 35, g.at, g.at
FROM generated g;
SQL
  psql -q -c "VACUUM ANALYZE webhook_events" -c "VACUUM ANALYZE webhook_deliveries" "$DATABASE_URL"
  # Warm: connections made and statements prepared before the idle figure is taken.
  wrk -t2 -c"$CONNS" -d2s -s "$BENCH_DIR/post_conversion.lua" "$A/conversions" >/dev/null
  read -r _ idle_rps idle_p50 idle_p99 idle_bad _ < <(post_load)
  run=$(curl -sf -X POST "$A/tasks/prune_expired_data/run" -H "authorization: Bearer $ADMIN" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  read -r _ rps p50 p99 bad _ < <(post_load)
  for _ in $(seq 1 600); do
    state=$(psql -Atq "$DATABASE_URL" -c "SELECT state FROM task_runs WHERE id = '$run'")
    [[ $state == succeeded || $state == failed || $state == dead ]] && break
    sleep 1
  done
  [[ $state == succeeded ]] || { echo "bench: the prune run ended $state" >&2; exit 1; }
  read -r secs left < <(psql -Atq -F' ' "$DATABASE_URL" -c "
    SELECT round(duration_ms / 1000.0, 1),
           (SELECT count(*) FROM webhook_events WHERE created_at < now() - interval '30 days')
    FROM task_runs WHERE id = '$run'")
  [[ $left == 0 ]] || { echo "bench: $left generated events left after the prune" >&2; exit 1; }
  [[ $idle_bad == 0 && $bad == 0 ]] || { echo "bench: non-2xx answers ($idle_bad idle, $bad during)" >&2; exit 1; }
  ratio=$(python3 -c "print(f'{$p99 / $idle_p99:.2f}')")
  printf '%5s  %6s  %8s %6s %6s | %8s %6s %6s | %6s, %s | %s\n' "$round" "$EVENTS" "$idle_rps" \
    "$idle_p50" "$idle_p99" "$rps" "$p50" "$p99" "$secs" "$((EVENTS * 2)) rows" "$ratio"
  if python3 -c "import sys; sys.exit(0 if $secs < $SECS else 1)"; then
    echo "       (the prune took less than the $SECS s measured: raise EVENTS for a window that is all prune)"
  fi
done
