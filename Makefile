# The commands a new user needs: `make run` and `make test`. See README.md.
SHELL := /bin/bash
CARGO ?= cargo
# The same dev profile and feature set as `make test`, so `make run` after `make test` compiles
# nothing again (.ci/run checks it). Honours CARGO_TARGET_DIR like cargo does.
BIN := $(or $(CARGO_TARGET_DIR),target)/debug/currency-conversion
COMPOSE ?= $(shell command -v podman >/dev/null 2>&1 && echo "podman compose" || echo "docker compose")

.PHONY: run test up down fmt lint bench e2e check-services build sqlx-prepare sqlx-check audit docs-test

build:
	$(CARGO) build --locked

## Build, check PostgreSQL and Redis, seed demo data, serve on http://127.0.0.1:8080
## (seed and serve create and migrate the database themselves).
run: build check-services
	$(BIN) seed
	$(BIN) serve --role all

## Unit and integration tests against the real PostgreSQL and Redis, and a streaming replica of
## that PostgreSQL for the read-replica tests (scripts/replica starts it unless it runs).
test:
	@scripts/check-services test
	@url=$$(scripts/replica start) && echo "Read replica: streaming at $$url (scripts/replica)"
	$(CARGO) test --locked --all-targets --no-fail-fast

## The README's walkthrough, run as written (the ```sh runnable blocks, in order, in one shell)
## against a fresh server on a free port, its own database and a scratch directory; fails when a
## command fails or an output no longer has the shape the README shows (scripts/docs-test).
## Reuses the debug binary that `make test` and `make run` build.
docs-test: build check-services
	scripts/docs-test README.md

## Fail fast when the PostgreSQL or Redis the service will use (DATABASE_URL, REDIS_URL,
## CCS__DATABASE__URL, settings/*.toml; see scripts/check-services) is not answering, naming it.
check-services:
	@scripts/check-services run

## Whole stack in containers: PostgreSQL, Redis and the service (compose.yaml)
up:
	$(COMPOSE) up -d --build

down:
	$(COMPOSE) down

## The service against the ceilings it stands on, side by side in each run (docs/benchmarks.md,
## "make bench"): release server on a scratch database; pgbench with each endpoint's own SQL;
## benches/jwt_ceiling.rs for the authenticated reads; wrk (lua scripts in benches/http/);
## 1 M generated history rows; the full ECB import. Installs wrk/pgbench with apt-get if missing.
## RUNS runs (default 3); with BEFORE_BIN (another revision's release binary) and
## BEFORE_SETTINGS_DIR, before and after alternate. Writes the table into docs/benchmarks.md.
## Knobs: RUNS=3 SECS=10 CONNS=32 HIST_CONNS=16 WARM_SECS=2 KEEP_DB=1 (benches/http/compare.sh).
bench: check-services
	$(CARGO) build --release --locked --bin currency-conversion --example jwt_ceiling
	benches/http/compare.sh

fmt:
	$(CARGO) fmt --all

## Regenerate the committed .sqlx query data after changing a query or a migration (README,
## "Changing SQL"). Migrates a private scratch database, which it drops afterwards.
sqlx-prepare: check-services
	.ci/sqlx-prepare

## Fail when .sqlx does not match the queries in the code (CI runs this).
sqlx-check: check-services
	.ci/sqlx-prepare --check

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

## Browser test of the admin monitor: Debian's chromium via playwright-core (deps: .ci/e2e-deps).
## Starts the debug binary against a fresh database; screenshot in target/e2e-monitor.png.
e2e: check-services
	bash .ci/e2e-deps
	$(CARGO) build --locked --bin currency-conversion
	node tests/e2e/monitor.mjs

## Rates storage and read benchmarks: ECB import, snapshot ingest, as-of/series latency on 10M
## generated quotes, storage per update. Scratch database ccs_bench_rates (dropped at the end;
## KEEP_DB=1 keeps it). Figures: docs/benchmarks.md, "Rates storage and reads".
.PHONY: bench-rates
bench-rates: check-services
	$(CARGO) build --release --locked
	benches/rates/run.sh

## Supply chain (docs/supply-chain.md): RustSec advisories with cargo audit, then licences, bans,
## sources and advisories with cargo deny (deny.toml). Fetches the advisory database, so it needs
## network; offline, point ADVISORY_DB at a local clone of the RustSec advisory-db:
##   make audit ADVISORY_DB=/path/to/advisory-db
ADVISORY_DB ?=
audit:
	@tools=$$(scripts/supply-tools) && export PATH="$$tools:$$PATH" && \
	if [ -n "$(ADVISORY_DB)" ]; then \
	  $(CARGO) audit --db "$(ADVISORY_DB)" --no-fetch && \
	  $(CARGO) deny check licenses bans sources; \
	else \
	  $(CARGO) audit && $(CARGO) deny check; \
	fi

## The partner contract, judged by outside tools (pinned in tests/contract/requirements.txt, installed
## into target/contract/venv): openapi-spec-validator, openapi-python-client and schemathesis (all
## checks, partner and admin, stateful) against the debug binary on a scratch database and a random
## port. CONTRACT_EXAMPLES=N bounds the examples per operation (default 25).
.PHONY: contract
contract: check-services
	$(CARGO) build --locked --bin currency-conversion
	bash tests/contract/run.sh
