#!/usr/bin/env bash
# Benchmark of monitoring at scale (issue 23). Not a test: it builds in release mode.
#  1. Loads RUNS runs (default 10 million) spread over 29.5 days into `prompt_runs` with one
#     SQL statement: PROMPTS prompts (default 500) in 50 services, versions 1 to 3 deployed
#     at days 10 and 20, production and staging, two models, about 2 % errors, 1 % scored.
#  2. `promptctl rollup` builds their rollups (timed).
#  3. `promptctl stats --since 30d` fleet-wide, `--by version`, and one prompt's
#     (best of REPEAT runs each), against the target of 0.3 s.
#  4. Every P50/P95/P99 of (3), fleet-wide and by version, against `percentile_cont` over
#     the same rows: the largest relative difference, against the sketch's 1 %.
#  5. The dashboard (`promptctl serve`): the front page over 30 days and one prompt's
#     30-day page, time to the last byte (best of REPEAT), against 0.3 s.
# The runs end 5 minutes before the benchmark starts and begin 29.5 days before that, so
# `--since 30d` and the SQL of (4) cover the same rows whatever time passes between them.
# usage: scripts/bench-rollups.sh   (env: BENCH_DATABASE_URL, RUNS, PROMPTS, REPEAT, KEEP=1
#        keeps the database promptctl_bench_rollups for screenshots)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/bench-lib.sh"

ADMIN=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=promptctl_bench_rollups
DB_URL="${ADMIN%/*}/$DB"
RUNS=${RUNS:-10000000}
PROMPTS=${PROMPTS:-500}
REPEAT=${REPEAT:-5}
BIN=$(bench_binary)
WORK=$(mktemp -d)
SERVER=
cleanup() {
  cd /
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null
  rm -rf "$WORK"
  [ "${KEEP:-0}" = 1 ] || psql -q "$ADMIN" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
}
trap cleanup EXIT

psql -q "$ADMIN" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
mkdir -p "$WORK/repo" && git -C "$WORK/repo" init -q && : > "$WORK/repo/promptctl.toml"
cd "$WORK/repo"
"$BIN" rollup --database-url "$DB_URL" >/dev/null   # migrates

echo "== 1: $RUNS runs over 30 days, $PROMPTS prompts"
START=$(date +%s.%N)
psql -q "$DB_URL" <<SQL
SET synchronous_commit = off;
CREATE TEMP TABLE bench_start AS SELECT now() - interval '5 minutes' AS t;
INSERT INTO prompt_runs (run_id, service, name, version, environment, model_requested,
  model_used, provider, latency_ms, input_tokens, output_tokens, cost_usd, error,
  quality_score, sampled, created_at)
SELECT md5(i::text)::uuid, 'svc' || (p % 50), 'prompt_' || p,
  1 + (age_days < 20)::int + (age_days < 10)::int,
  CASE WHEN i % 7 = 0 THEN 'staging' ELSE 'production' END, 'gpt-4o',
  CASE WHEN i % 20 = 0 THEN 'claude-sonnet-4-5' ELSE 'gpt-4o' END, 'openai',
  -- Log-normal-ish latency per prompt; version 3 of every tenth prompt is 40 % slower.
  (200 + (p % 17) * 40) * exp(((hashint4(i) & 65535) / 65536.0 - 0.5) * 2.5)
    * CASE WHEN age_days < 10 AND p % 10 = 0 THEN 1.4 ELSE 1 END,
  100 + i % 400, 20 + i % 300, 0.0005 + (i % 100) * 0.00001,
  CASE WHEN hashint4(i * 7) & 1023 < 20 + (p % 5) * 4 THEN 'openai answered HTTP 500' END,
  CASE WHEN i % 100 = 1 THEN (i % 7) / 6.0 END, i % 100 = 1,
  created
FROM (SELECT i, (i::int8 * 7919) % $PROMPTS AS p,
        (SELECT t FROM bench_start) - ((i::float8 / $RUNS) * 29.5 * 86400) * interval '1 second' AS created
      FROM generate_series(1, $RUNS) AS i) AS runs,
     LATERAL (SELECT extract(epoch FROM (SELECT t FROM bench_start) - created) / 86400 AS age_days) AS age;
-- The registry's side: every prompt with its three versions, pinned in production.
INSERT INTO prompts (id, name, service, version, template, model, commit_sha, commit_message, created_at)
SELECT gen_random_uuid(), 'prompt_' || p, 'svc' || (p % 50), v, 'Answer {{ q }}', 'gpt-4o',
  md5(p::text || '/' || v), 'version ' || v, now() - (30 - 10 * v) * interval '1 day'
FROM generate_series(0, $PROMPTS - 1) AS p, generate_series(1, 3) AS v;
INSERT INTO prompt_environments (service, name, environment, version)
SELECT 'svc' || (p % 50), 'prompt_' || p, 'production', 3 FROM generate_series(0, $PROMPTS - 1) AS p;
ANALYZE prompt_runs;
SQL
END=$(date +%s.%N)
python3 -c "import sys; print(f'loaded in {float(sys.argv[2])-float(sys.argv[1]):.0f} s')" "$START" "$END"

echo "== 2: promptctl rollup"
START=$(date +%s.%N)
"$BIN" rollup --database-url "$DB_URL" --format json 2>/dev/null > "$WORK/rollup.json"
END=$(date +%s.%N)
python3 -c "import json,sys; d=json.load(open(sys.argv[3])); print(f'{d[\"runs\"]} runs over {d[\"days\"]} days rolled up in {float(sys.argv[2])-float(sys.argv[1]):.1f} s')" "$START" "$END" "$WORK/rollup.json"
psql -qAt "$DB_URL" -c "VACUUM ANALYZE prompt_rollups" \
  -c "SELECT 'rollup rows: ' || string_agg(width || ' s: ' || n, ', ' ORDER BY width) FROM (SELECT width, count(*) n FROM prompt_rollups GROUP BY 1) t"

best() { # label command...: the best wall time of REPEAT runs
  local label=$1 best=
  shift
  for _ in $(seq "$REPEAT"); do
    local s e
    s=$(date +%s.%N)
    "$@" > "$WORK/out.json"
    e=$(date +%s.%N)
    best=$(python3 -c "import sys; t=float(sys.argv[2])-float(sys.argv[1]); b=sys.argv[3]; print(t if not b else min(t, float(b)))" "$s" "$e" "$best")
  done
  printf '%-44s best of %s: %.3f s\n' "$label" "$REPEAT" "$best"
}

echo "== 3: stats over 30 days (target <= 0.3 s)"
best "stats --since 30d" "$BIN" stats --since 30d --database-url "$DB_URL" --format json
cp "$WORK/out.json" "$WORK/fleet.json"
best "stats --since 30d --by version" "$BIN" stats --since 30d --by version --database-url "$DB_URL" --format json
cp "$WORK/out.json" "$WORK/version.json"
best "stats svc7/prompt_7 --env production --since 30d" "$BIN" stats svc7/prompt_7 --env production --since 30d --database-url "$DB_URL" --format json

echo "== 4: sketch percentiles against percentile_cont (stated error 1 %)"
exact() { # group expression -> json rows {prompt, grp, calls, p}
  psql -qAt "$DB_URL" -c "SET jit = off" -c "SELECT json_agg(t) FROM (SELECT service || '/' || name AS prompt, $1 AS grp, count(*) AS calls, percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms) AS p FROM prompt_runs GROUP BY 1, 2) t"
}
exact "''" > "$WORK/fleet-exact.json"
exact "coalesce(version::text, '')" > "$WORK/version-exact.json"
python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
for name in ("fleet", "version"):
    got = json.load(open(f"{work}/{name}.json"))["rows"]
    want = {(r["prompt"], r["grp"]): r for r in json.load(open(f"{work}/{name}-exact.json"))}
    worst, where, runs = 0.0, None, 0
    for row in got:
        exact = want[(row["prompt"], row["group"])]
        assert exact["calls"] == row["calls"], (row, exact)
        runs += row["calls"]
        for i, key in enumerate(("p50_ms", "p95_ms", "p99_ms")):
            error = abs(row[key] - exact["p"][i]) / exact["p"][i]
            if error > worst:
                worst, where = error, (row["prompt"], row["group"], key)
    assert len(got) == len(want), (len(got), len(want))
    print(f"{name}: {len(got)} groups, {runs} runs, largest relative difference {worst * 100:.3f} % ({where})")
PY

echo "== 5: the dashboard over 30 days (target <= 0.3 s a page)"
PORT=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
# Alerts, so that the front page lists the prompts breaching them first.
printf '[serve]\nlisten = "127.0.0.1:%s"\n[monitoring.alerts]\nmax_p95_ms = 2600\nmax_error_rate = 0.029\n' "$PORT" > promptctl.toml
RUST_LOG=warn "$BIN" serve --database-url "$DB_URL" > "$WORK/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
best "front page (?range=30d)" curl -fsS -o /dev/null "http://127.0.0.1:$PORT/?range=30d"
best "prompt page svc7/prompt_7 (?range=30d)" curl -fsS -o /dev/null "http://127.0.0.1:$PORT/prompts/svc7/prompt_7?range=30d"

echo "== 6: screenshots in headless Chromium (under ${SHOTS:=$HERE/../target/bench-rollups})"
mkdir -p "$SHOTS"
CHROMIUM=${PROMPTCTL_CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}
if [ -z "$CHROMIUM" ]; then
  echo "no Chromium found: set PROMPTCTL_CHROMIUM (Debian: apt-get install chromium)" >&2
  exit 1
fi
for page in "front:/?range=30d" "front-by-p95:/?range=30d&sort=p95" "prompt:/prompts/svc0/prompt_0?range=30d" "prompt-24h:/prompts/svc0/prompt_0?range=24h"; do
  "$CHROMIUM" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1400,2400 \
    --user-data-dir="$WORK/chromium" --screenshot="$SHOTS/${page%%:*}.png" \
    "http://127.0.0.1:$PORT${page#*:}" >/dev/null 2>&1
  echo "$SHOTS/${page%%:*}.png"
done
