#!/usr/bin/env bash
# Benchmark of the router (issue 9). Not a test: it builds in release mode.
#  1. Overhead: examples/bench_router.rs sends a fixed rate (1,000 calls/s for 10 s) to a
#     local provider that answers at once, as plain HTTP and through Router::execute with
#     recording on; overhead = the difference of the two latency distributions.
#  2. Recording: ROWS rows (default 1,000,000) through the recorder (queue, binary COPY of
#     5,000-row batches, rollups added up and appended once a second), against loading the
#     same rows with psql `\copy` (the floor; no rollups).
#  3. `promptctl stats` over 1,000,000 runs (rolled up by `promptctl rollup`), fleet-wide
#     and by version (30 days over 10 million runs: scripts/bench-rollups.sh).
# usage: scripts/bench-router.sh   (env: BENCH_DATABASE_URL, RATE, DURATION (seconds), ROWS, RUNS)
# Needs psql; creates and drops the database promptctl_bench_router.
set -euo pipefail

ADMIN=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB_URL="${ADMIN%/*}/promptctl_bench_router"
RATE=${RATE:-1000}
DURATION=${DURATION:-10}
ROWS=${ROWS:-1000000}
RUNS=${RUNS:-1000000}
HERE=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$HERE/target}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "building (release)..." >&2
(cd "$HERE" && cargo build --release --quiet --bin promptctl --example bench_router)

psql -q "$ADMIN" -c "DROP DATABASE IF EXISTS promptctl_bench_router WITH (FORCE)" -c "CREATE DATABASE promptctl_bench_router"

echo "== 1 and 2: overhead and recording throughput"
"$TARGET/release/examples/bench_router" "$DB_URL" "$RATE" "$DURATION" "$ROWS"

echo "== 2b: the floor: psql \\copy of the same $ROWS rows"
psql -q "$DB_URL" -c "\\copy (SELECT * FROM prompt_runs WHERE service LIKE 'svc%') TO '$WORK/runs.copy'"
psql -q "$DB_URL" -c "TRUNCATE prompt_runs"
START=$(date +%s.%N)
psql -q "$DB_URL" -c "\\copy prompt_runs FROM '$WORK/runs.copy'"
END=$(date +%s.%N)
python3 -c "import sys; r=int(sys.argv[1]); t=float(sys.argv[3])-float(sys.argv[2]); print(f'psql \\\\copy: {r} rows in {t:.2f} s = {r/t:.0f} rows/s')" "$(wc -l < "$WORK/runs.copy")" "$START" "$END"

echo "== 3: stats over $RUNS runs"
psql -q "$DB_URL" <<SQL
TRUNCATE prompt_runs;
INSERT INTO prompt_runs (run_id, service, name, version, environment, model_requested, model_used,
  provider, latency_ms, input_tokens, output_tokens, cost_usd, error, quality_score, sampled, created_at)
SELECT md5(i::text)::uuid, 'svc' || (i % 5), 'prompt_' || (i % 50), 1 + i % 4,
  CASE WHEN i % 3 = 0 THEN 'staging' ELSE 'production' END, 'gpt-4o',
  CASE WHEN i % 10 = 0 THEN 'claude-sonnet-4-5' ELSE 'gpt-4o' END, 'openai',
  50 + (hashint4(i) & 2047), 100 + i % 50, 20 + i % 30, 0.001,
  CASE WHEN i % 100 = 0 THEN 'openai answered HTTP 500' END,
  CASE WHEN i % 100 = 1 THEN (i % 7) / 6.0 END, i % 100 = 1,
  now() - (i % 82800) * interval '1 second'
FROM generate_series(1, $RUNS) AS i;
ANALYZE prompt_runs;
SQL
cd "$WORK"
: > promptctl.toml
"$TARGET/release/promptctl" rollup --database-url "$DB_URL" > /dev/null 2>&1
for args in "stats --since 24h" "stats --since 24h --by version" "stats prompt_7 --env production --since 24h --by model"; do
  START=$(date +%s.%N)
  # shellcheck disable=SC2086
  "$TARGET/release/promptctl" $args --database-url "$DB_URL" --format json > out.json
  END=$(date +%s.%N)
  python3 -c "import json,sys; d=json.load(open('out.json')); print(f'{sys.argv[1]}: {len(d[\"rows\"])} groups, {sum(r[\"calls\"] for r in d[\"rows\"])} runs in {float(sys.argv[3])-float(sys.argv[2]):.3f} s')" "$args" "$START" "$END"
done
psql -q "$ADMIN" -c "DROP DATABASE IF EXISTS promptctl_bench_router WITH (FORCE)"
