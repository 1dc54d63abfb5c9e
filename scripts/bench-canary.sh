#!/usr/bin/env bash
# Benchmark of canary analysis (issue 24). Not a test: it builds in release mode.
# A repository with a split (`production: {version: 1, canary: {version: 2, weight: 20}}`)
# synced into a fresh database; then, for each scenario and each of SEEDS seeds, RUNS runs
# (default 2,000) are loaded into `prompt_runs` with one SQL statement (each run on the
# canary with probability 20 %, the seed fixing PostgreSQL's random()) and
# `promptctl canary status --check` decides:
#  1. identical sides (2 % errors, log-normal latency around 300 ms, costs, a tenth scored):
#     how many seeds call a metric worse (the false alarms; the confidence promises at most
#     5 %, so at most 1 of 20);
#  2. the canary errs on 8 % of calls, the baseline on 1 %: how many seeds catch it;
#  3. the canary is 200 ms slower on every call (its P95 + 200 ms): how many seeds catch it,
#     and on which metrics;
#  4. the time of `canary status` over LARGE runs per side (default 1,000,000), best of 3.
# usage: scripts/bench-canary.sh   (env: BENCH_DATABASE_URL, RUNS, SEEDS, LARGE)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/bench-lib.sh"
bench_git_identity

ADMIN=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=promptctl_bench_canary
DB_URL="${ADMIN%/*}/$DB"
RUNS=${RUNS:-2000}
SEEDS=${SEEDS:-20}
LARGE=${LARGE:-1000000}
BIN=$(bench_binary)
WORK=$(mktemp -d)
cleanup() {
  cd /
  rm -rf "$WORK"
  psql -q "$ADMIN" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
}
trap cleanup EXIT

psql -q "$ADMIN" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
mkdir -p "$WORK/repo/prompts/billing" && cd "$WORK/repo" && git init -q -b main
: > promptctl.toml
prompt() { printf 'model: gpt-4o\nvariables:\n  x: {type: string}\ntemplate: "%s {{ x }}"\n' "$1"; }
prompt One > prompts/billing/invoice.yaml && git add -A && git commit -qm v1
prompt Two > prompts/billing/invoice.yaml && git add -A && git commit -qm v2
printf 'prompts:\n  invoice:\n    production: {version: 1, canary: {version: 2, weight: 20}}\n' \
  > environments.yaml && git add -A && git commit -qm split
"$BIN" sync --database-url "$DB_URL" >/dev/null

# Loads $1 runs for seed $2: canary error rate $3, baseline $4, canary extra latency $5 ms.
load() {
  psql -q "$DB_URL" <<SQL
SET synchronous_commit = off;
TRUNCATE prompt_runs;
SELECT setseed($2 / 1000.0) \g /dev/null
INSERT INTO prompt_runs (run_id, service, name, version, environment, side, model_requested,
  model_used, provider, latency_ms, cost_usd, error, quality_score, sampled, created_at)
SELECT gen_random_uuid(), 'billing', 'invoice', CASE WHEN canary THEN 2 ELSE 1 END,
  'production', CASE WHEN canary THEN 'canary' ELSE 'baseline' END, 'gpt-4o', 'gpt-4o',
  'openai',
  round(300 * exp(0.5 * sqrt(-2 * ln(1 - u1)) * cos(2 * pi() * u2)))
    + CASE WHEN canary THEN $5 ELSE 0 END,
  0.001 + 0.0005 * random(),
  CASE WHEN random() < CASE WHEN canary THEN $3 ELSE $4 END THEN 'HTTP 500' END,
  CASE WHEN scored THEN (random() < 0.9)::int END, scored,
  now() - interval '1 minute'
FROM (SELECT random() < 0.2 AS canary, random() AS u1, random() AS u2,
        random() < 0.1 AS scored
      FROM generate_series(1, $1)) AS draws;
ANALYZE prompt_runs;
SQL
}

# Runs the status of the loaded runs; prints the worse metrics (none: nothing).
worse() {
  "$BIN" canary status invoice --env production --since 1d --database-url "$DB_URL" \
    --format json | python3 -c '
import json, sys
status = json.load(sys.stdin)
print(" ".join(m["metric"] for m in status["analysis"]["metrics"] if m["verdict"] == "worse"))'
}

scenario() {
  local title=$1 canary_errors=$2 baseline_errors=$3 extra=$4 hits=0 seed found
  declare -A metrics=()
  for seed in $(seq 1 "$SEEDS"); do
    load "$RUNS" "$seed" "$canary_errors" "$baseline_errors" "$extra"
    found=$(worse)
    if [ -n "$found" ]; then
      hits=$((hits + 1))
      for metric in $found; do metrics[$metric]=$(( ${metrics[$metric]:-0} + 1 )); done
    fi
  done
  local detail=""
  for metric in "${!metrics[@]}"; do detail+=" $metric=${metrics[$metric]}"; done
  echo "$title: $hits of $SEEDS seeds called worse${detail:+ (}${detail# }${detail:+)}"
}

echo "== $RUNS runs per seed, canary weight 20 %, $SEEDS seeds"
scenario "1 identical sides (false alarms)" 0.02 0.02 0
scenario "2 canary 8 % errors, baseline 1 %" 0.08 0.01 0
scenario "3 canary 200 ms slower" 0.02 0.02 200

echo "== 4: canary status over $LARGE runs per side"
load $((LARGE * 5 / 4)) 1 0.02 0.02 0
psql -q "$DB_URL" -c "UPDATE prompt_runs SET side = 'canary', version = 2 WHERE side = 'baseline' AND random() < 0.6667" >/dev/null
psql -qtA "$DB_URL" -c "SELECT side, count(*) FROM prompt_runs GROUP BY side ORDER BY side"
best=
for _ in 1 2 3; do
  start=$(date +%s.%N)
  "$BIN" canary status invoice --env production --since 1d --database-url "$DB_URL" >/dev/null
  took=$(echo "$(date +%s.%N) - $start" | bc)
  if [ -z "$best" ] || [ "$(echo "$took < $best" | bc)" = 1 ]; then best=$took; fi
done
printf 'canary status: best of 3 %.2f s\n' "$best"
