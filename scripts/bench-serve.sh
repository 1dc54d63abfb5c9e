#!/usr/bin/env bash
# Benchmark of `promptctl serve` (issue 10), not a timed test: cached
# `GET /v1/prompts/{service}/{name}?env=production` at 64 connections, side by side in the
# same run with nginx (`worker_processes auto`) serving the very same JSON bytes as a static
# file, then `POST .../render`. Load tool: wrk (Debian's `wrk`), 2 threads, 64 connections.
# Targets: serve at least half of nginx's requests/s with a P99 at most twice nginx's;
# render at least 20,000 requests/s. The cached GET is measured twice: on a server without
# tokens, and on one that requires a read token, with the token sent on every request as
# deployments do (issue 17: at least 0.8 of nginx's requests/s, P99 no worse than nginx's).
# The load tool shares the machine's cores with the servers: report rate and P99 together.
# Each row also gives the server's CPU time per request (from /proc, user + system), which
# other work on the machine disturbs far less than the rate.
#
# The rate of both servers swings by ±15% from run to run on a 2-core machine: ROUNDS=N
# repeats the token and nginx rows N times, alternating them; COMPARE_BIN=path adds, in each
# round, the same token row for another binary (the one before a change, say).
#
# usage: scripts/bench-serve.sh [WORKDIR]   (env: DURATION (default 10s), BENCH_DATABASE_URL,
#        PROMPTCTL_BIN to use a built binary instead of building one; ROUNDS (default 1),
#        COMPARE_BIN; SERVE_PORT, TOKEN_PORT, COMPARE_PORT, NGINX_PORT)
# Installs wrk and nginx-light from Debian's packages when missing (needs root).
set -euo pipefail

DURATION=${DURATION:-10s}
ADMIN=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=promptctl_bench_serve
DB_URL="${ADMIN%/*}/$DB"
WORK=${1:-$(mktemp -d)}
SERVE_PORT=${SERVE_PORT:-18080}
NGINX_PORT=${NGINX_PORT:-18081}
TOKEN_PORT=${TOKEN_PORT:-18082}
COMPARE_PORT=${COMPARE_PORT:-18083}
ROUNDS=${ROUNDS:-1}
case $ROUNDS in
  '' | *[!0-9]* | 0) echo "ROUNDS must be a whole number of at least 1, not '$ROUNDS'" >&2; exit 2 ;;
esac
TOKEN=bench-read-token-0123456789abcdef
. "$(dirname "$0")/bench-lib.sh"
bench_git_identity

bench_need wrk:wrk nginx:nginx-light
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

BIN=$(bench_binary)

REPO="$WORK/repo"
bench_invoice_registry "$REPO" "$BIN" "$ADMIN" "$DB"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  psql -q "$ADMIN" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

(cd "$REPO" && RUST_LOG=warn exec "$BIN" serve --database-url "$DB_URL" \
  --listen "127.0.0.1:$SERVE_PORT") &
pids+=($!)
# The same server as deployments run it: every request carries a bearer token.
(cd "$REPO" && PROMPTCTL_READ_TOKENS=$TOKEN RUST_LOG=warn exec "$BIN" serve \
  --database-url "$DB_URL" --listen "127.0.0.1:$TOKEN_PORT") &
pids+=($!)
ports=("$SERVE_PORT" "$TOKEN_PORT")
if [ -n "${COMPARE_BIN:-}" ]; then
  (cd "$REPO" && PROMPTCTL_READ_TOKENS=$TOKEN RUST_LOG=warn exec "$COMPARE_BIN" serve \
    --database-url "$DB_URL" --listen "127.0.0.1:$COMPARE_PORT") &
  pids+=($!)
  ports+=("$COMPARE_PORT")
fi
for port in "${ports[@]}"; do
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break
    sleep 0.1
  done
done
URL="http://127.0.0.1:$SERVE_PORT/v1/prompts/billing/invoice_summary?env=production"
mkdir -p "$WORK/www"
curl -fs "$URL" > "$WORK/www/prompt.json"
cat > "$WORK/nginx.conf" <<CONF
worker_processes auto;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $WORK/www;
    location / { default_type application/json; }
  }
}
CONF
"$NGINX" -c "$WORK/nginx.conf"
sleep 0.5
cat > "$WORK/render.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"env": "production", "vars": {"customer": "ACME", "amount": 1250.5, "items": ["hosting", "support"]}}'
LUA
curl -fs -X POST -H 'content-type: application/json' \
  -d '{"env": "production", "vars": {"customer": "ACME", "amount": 1250.5, "items": ["hosting"]}}' \
  "http://127.0.0.1:$SERVE_PORT/v1/prompts/billing/invoice_summary/render" >/dev/null

ticks() { # CPU clock ticks (user + system) of the given processes so far
  local total=0 pid
  for pid in "$@"; do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$total"
}
run() { # name pids url [wrk args]: the pids are the server's, for its CPU per request
  local name=$1 pids=$2 url=$3; shift 3
  local out before after
  # shellcheck disable=SC2086
  before=$(ticks $pids)
  out=$(wrk -t2 -c64 -d"$DURATION" --latency "$@" "$url")
  # shellcheck disable=SC2086
  after=$(ticks $pids)
  local rate p99 requests us
  rate=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  us=$(python3 -c "print(f'{($after - $before) * 1e6 / $(getconf CLK_TCK) / $requests:.1f}')")
  printf '%-36s %12s req/s   P99 %-8s server CPU %s us/request\n' "$name" "$rate" "$p99" "$us"
  echo "$name $us $rate $p99" >> "$WORK/results"
}
: > "$WORK/results"
wrk -t2 -c64 -d2s "$URL" >/dev/null  # warm-up
TOKEN_URL="http://127.0.0.1:$TOKEN_PORT/v1/prompts/billing/invoice_summary?env=production"
AUTH="Authorization: Bearer $TOKEN"
curl -fs -H "$AUTH" "$TOKEN_URL" >/dev/null
wrk -t2 -c64 -d2s -H "$AUTH" "$TOKEN_URL" >/dev/null  # warm-up
NGINX_WORKERS=$(pgrep -P "$(cat "$WORK/nginx.pid")" | tr '\n' ' ')
run "serve GET (cached)" "${pids[0]}" "$URL"
for round in $(seq 1 "$ROUNDS"); do
  run "serve GET (cached, token) #$round" "${pids[1]}" "$TOKEN_URL" -H "$AUTH"
  if [ -n "${COMPARE_BIN:-}" ]; then
    run "compared GET (cached, token) #$round" "${pids[2]}" \
      "http://127.0.0.1:$COMPARE_PORT/v1/prompts/billing/invoice_summary?env=production" -H "$AUTH"
  fi
  run "nginx static (same bytes) #$round" "$NGINX_WORKERS" "http://127.0.0.1:$NGINX_PORT/prompt.json" -H "$AUTH"
done
run "serve POST render" "${pids[0]}" "http://127.0.0.1:$SERVE_PORT/v1/prompts/billing/invoice_summary/render" -s "$WORK/render.lua"
python3 - "$WORK/results" <<'PY'
import statistics
import sys
def ms(t):
    for unit, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if t.endswith(unit) and t[: -len(unit)].replace(".", "").isdigit():
            return float(t[: -len(unit)]) * f
    return float("nan")
rows = {}
for line in open(sys.argv[1]):
    parts = line.split()
    rows[" ".join(parts[:-3])] = (float(parts[-2]), ms(parts[-1]), float(parts[-3]))
rounds = sorted({int(name.rsplit("#", 1)[1]) for name in rows if "#" in name})
nginx1 = rows["nginx static (same bytes) #1"]
serve, render = rows["serve GET (cached)"], rows["serve POST render"]
print(f"serve/nginx throughput: {serve[0] / nginx1[0]:.2f} (target >= 0.5)")
print(f"serve/nginx P99:        {serve[1] / nginx1[1]:.2f} (target <= 2)")
def ratios(name):
    pairs = [(rows[f"{name} #{r}"], rows[f"nginx static (same bytes) #{r}"]) for r in rounds]
    return [t[0] / n[0] for t, n in pairs], [t[1] / n[1] for t, n in pairs], [t[2] / n[2] for t, n in pairs]
for label, name in (("with a token:", "serve GET (cached, token)"), ("compared binary:", "compared GET (cached, token)")):
    if f"{name} #1" not in rows:
        continue
    rate, p99, cpu = ratios(name)
    each = ", ".join(f"{r:.2f}" for r in rate)
    print(f"{label:<23} {statistics.median(rate):.2f} throughput, median of {len(rate)} ({each}; target >= 0.8),"
          f" {statistics.median(p99):.2f} P99 (target <= 1), {statistics.median(cpu):.2f}x nginx's CPU per request")
print(f"render:                 {render[0]:.0f} req/s (target >= 20000)")
print(f"server CPU per request: {serve[2] / nginx1[2]:.2f}x nginx's without a token"
      " (steadier than throughput when other work shares the cores)")
PY
