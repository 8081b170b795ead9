#!/usr/bin/env bash
# `make bench`: benches/http/run.sh RUNS times (default 3) for this build and, when BEFORE_BIN
# names the release binary of another revision, for that one too, alternating (before, after,
# before, after, ...) so that both see the same drift of a shared machine. Every figure stays a
# ratio to the ceilings measured in the same invocation of run.sh; the table gives, per line,
# the median of the runs and their spread (min–max), and is written between the make-bench
# markers of docs/benchmarks.md.
#
# Knobs: RUNS=3, BEFORE_BIN=<release binary of the revision to compare with>,
# BEFORE_SETTINGS_DIR=<its settings/ folder> (its own schema; default ./settings), BEFORE_REV
# (its name in the table), and every knob of run.sh (SECS, CONNS, HIST_CONNS, HIST_ROWS, ...).
set -euo pipefail
cd "$(dirname "$0")/../.."
TARGET=${CARGO_TARGET_DIR:-target}
RUNS=${RUNS:-3}
OUT=$TARGET/bench-http
DOC=${BENCH_DOC:-docs/benchmarks.md}
AFTER_BIN=${BIN:-$TARGET/release/currency-conversion}
mkdir -p "$OUT"
started=$(date -u '+%Y-%m-%d %H:%M UTC')
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
files=()
for run in $(seq 1 "$RUNS"); do
  if [[ -n ${BEFORE_BIN:-} ]]; then
    echo "== run $run of $RUNS: before ($BEFORE_BIN)" >&2
    f=$OUT/results-before-$run.tsv
    env ${BEFORE_SETTINGS_DIR:+CCS_SETTINGS_DIR=$BEFORE_SETTINGS_DIR} CEILING_SETTINGS_DIR="$PWD/settings" RESULTS="$f" REPORT=0 \
      BIN="$BEFORE_BIN" benches/http/run.sh
    files+=("before:$f")
  fi
  echo "== run $run of $RUNS: after ($AFTER_BIN)" >&2
  f=$OUT/results-after-$run.tsv
  RESULTS="$f" REPORT=0 BIN="$AFTER_BIN" benches/http/run.sh
  files+=("after:$f")
done
MACHINE="$(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $(free -g | awk '/Mem:/ {print $2}') GB RAM, $(uname -sr), PostgreSQL $(psql -Atq "${PG_BASE_URL:-postgres://postgres@127.0.0.1:5432}/postgres" -c 'SHOW server_version' | cut -d' ' -f1)" \
STARTED=$started LOAD_BEFORE=$load_before LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg) \
SECS=${SECS:-10} CONNS=${CONNS:-32} HIST_CONNS=${HIST_CONNS:-16} WARM_SECS=${WARM_SECS:-2} \
BEFORE_REV=${BEFORE_REV:-} \
REVISION=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src migrations || echo '+changes') \
python3 benches/http/compare.py "$DOC" "${files[@]}"
