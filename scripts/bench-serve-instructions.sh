#!/usr/bin/env bash
# The user-space instructions `promptctl serve` spends on one cached
# `GET /v1/prompts/{service}/{name}?env=production` carrying a bearer token, counted by
# valgrind's callgrind: unlike a rate, the same for the same binary whatever else the
# machine is doing, so two binaries compare on a busy machine too. The server runs twice
# under callgrind, once answering one request and once under wrk (1 thread, 4 connections)
# for DURATION; the difference of the totals over the difference of the requests is the
# cost of a request. Valgrind has no SHA extensions: the token's SHA-256 is counted in its
# software form (about 3,000 instructions more than the hardware one).
#
# usage: scripts/bench-serve-instructions.sh   (env: PROMPTCTL_BIN to use a built binary,
#        DURATION (default 6s), BENCH_DATABASE_URL, PORT)
# Needs valgrind and wrk (Debian's packages; installed when missing, as root).
set -euo pipefail

DURATION=${DURATION:-6s}
ADMIN=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=promptctl_bench_instructions
DB_URL="${ADMIN%/*}/$DB"
PORT=${PORT:-18090}
TOKEN=bench-read-token-0123456789abcdef
WORK=$(mktemp -d)
. "$(dirname "$0")/bench-lib.sh"
bench_git_identity

bench_need wrk:wrk valgrind:valgrind
BIN=$(bench_binary)

REPO="$WORK/repo"
bench_invoice_registry "$REPO" "$BIN" "$ADMIN" "$DB"
cleanup() {
  psql -q "$ADMIN" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

URL="http://127.0.0.1:$PORT/v1/prompts/billing/invoice_summary?env=production"
measure() { # DURATION or 0: prints "<requests> <instructions>"
  rm -f "$WORK"/callgrind.out*
  (cd "$REPO" && PROMPTCTL_READ_TOKENS=$TOKEN RUST_LOG=warn exec valgrind --tool=callgrind \
    --callgrind-out-file="$WORK/callgrind.out" "$BIN" serve --database-url "$DB_URL" \
    --listen "127.0.0.1:$PORT") >"$WORK/valgrind.log" 2>&1 &
  local pid=$! requests=1
  for _ in $(seq 1 200); do
    curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break
    sleep 0.2
  done
  curl -fs -H "Authorization: Bearer $TOKEN" "$URL" >/dev/null
  if [ "$1" != 0 ]; then
    requests=$(wrk -t1 -c4 -d"$1" -H "Authorization: Bearer $TOKEN" "$URL" |
      awk '/requests in/ {print $1 + 1}')
  fi
  kill -INT "$pid"
  wait "$pid" || true
  echo "$requests $(awk '/^totals:/ {s += $2} END {print s}' "$WORK"/callgrind.out*)"
}
read -r base_requests base_total < <(measure 0)
read -r requests total < <(measure "$DURATION")
python3 -c "print(f'cached GET with a token: {($total - $base_total) / ($requests - $base_requests):,.0f} user-space instructions per request ({$requests - $base_requests} requests)')"
