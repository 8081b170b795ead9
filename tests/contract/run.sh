#!/usr/bin/env bash
# `make contract`: judges the OpenAPI document and the server with outside tools, the way a
# partner would. Starts the debug binary on a scratch database and a random port, then
#   1. openapi-spec-validator: the document is valid OpenAPI 3.1;
#   2. openapi-python-client: a client can be generated from it;
#   3. schemathesis: every operation, all checks, as a partner and as an admin, stateful links on.
# Pinned tools go into a venv under target/contract. The scratch database is dropped at the end
# (KEEP_DB=1 keeps it). CONTRACT_EXAMPLES bounds the examples per operation (CI time).
set -euo pipefail
cd "$(dirname "$0")/../.."

# CONTRACT_OUT: where the venv, the fetched document, the client and the reports go (.ci/run
# keeps it beside the cargo target directory, so the venv outlives the fresh copy it runs in).
out=${CONTRACT_OUT:-target/contract}
mkdir -p "$out"
out=$(cd "$out" && pwd)
venv=$out/venv
config=$PWD/tests/contract
bin=${CARGO_TARGET_DIR:-target}/debug/currency-conversion
examples=${CONTRACT_EXAMPLES:-25}
seed=${CONTRACT_SEED:-20261128}

log() { printf '\n== contract: %s\n' "$*"; }

if [ ! -x "$venv/bin/schemathesis" ] || ! cmp -s tests/contract/requirements.txt "$venv/requirements.txt"; then
    log "installing the pinned tools (tests/contract/requirements.txt)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/contract/requirements.txt
    cp tests/contract/requirements.txt "$venv/requirements.txt"
fi

pg_base=${CONTRACT_PG:-postgres://postgres@127.0.0.1:5432}
db_name="ccs_contract_$$_$RANDOM"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export APP_ENV=local
export DATABASE_URL="$pg_base/$db_name"
export CCS__REDIS__KEY_PREFIX="contract-$db_name:"
export CCS__SERVER__PORT=$port
export CCS__LOG__LEVEL=warn
# A fuzzer logs in wrongly on purpose; a throttle at 5 would turn every later login into 429.
export CCS__AUTH__MAX_FAILED_LOGINS=1000000
# A fuzzer sends thousands of requests a minute on one partner's token; the request limit (its
# own tests check it) would turn the rest of the run into 429s.
export CCS__LIMITS__REQUESTS_PER_MINUTE=1000000
base="http://127.0.0.1:$port"

server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    if [ -z "${KEEP_DB:-}" ]; then
        psql "$pg_base/postgres" -qc "DROP DATABASE IF EXISTS \"$db_name\" WITH (FORCE)" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

log "scratch database $db_name, server on port $port"
"$bin" migrate >/dev/null
"$bin" seed >/dev/null
CCS_PASSWORD="contract admin password" "$bin" user create --email contract-admin@example.com --role admin >/dev/null
CCS_PASSWORD="contract partner password" "$bin" user create --email contract-partner@example.com --role partner >/dev/null
"$bin" serve --role api >"$out/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
    curl -sf "$base/health/live" >/dev/null && break
    sleep 0.2
done
curl -sf "$base/api-docs/openapi.json" -o "$out/openapi.json"

token() {
    curl -sf "$base/api/v1/auth/token" -H 'Content-Type: application/json' \
        -d "{\"email\":\"$1\",\"password\":\"$2\"}" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}

status=0

log "openapi-spec-validator"
"$venv/bin/python" "$config/validate.py" "$out/openapi.json" || status=1

log "openapi-python-client generate"
rm -rf "$out/client"
(cd "$out" && "$venv/bin/openapi-python-client" generate --path openapi.json \
    --output-path client --overwrite --fail-on-warning \
    --config "$config/openapi-python-client.yaml") || status=1

for who in partner admin; do
    log "schemathesis as $who"
    tok=$(token "contract-$who@example.com" "contract $who password")
    "$venv/bin/schemathesis" --config-file "$config/schemathesis.toml" run "$out/openapi.json" --url "$base" \
        --checks all --phases examples,coverage,fuzzing,stateful \
        --max-examples "$examples" --seed "$seed" --workers 1 \
        -H "Authorization: Bearer $tok" \
        --report junit --report-junit-path "$out/schemathesis-$who.xml" \
        --exclude-path /api/v1/auth/logout \
        || status=1
    # Last, because it revokes the token the run above uses.
    log "schemathesis as $who: logout"
    "$venv/bin/schemathesis" --config-file "$config/schemathesis.toml" run "$out/openapi.json" --url "$base" \
        --checks all --max-examples 5 --seed "$seed" \
        -H "Authorization: Bearer $tok" --include-path /api/v1/auth/logout \
        || status=1
done
exit $status
