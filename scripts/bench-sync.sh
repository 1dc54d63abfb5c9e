#!/usr/bin/env bash
# Benchmark of `promptctl sync` (issue 6): a generated repository of 1,000 prompts edited
# in 100 commits (100,000 versions) synced into an empty database, against loading the very
# same rows with `psql \copy` (exported from the synced table, table truncated, loaded back).
# Prints both times and their ratio (target: at most 2), for a sync whose history cache is
# warm (the usual case: CI ran `promptctl check`/`list` before) and a fully cold one
# (`--no-cache`: the whole Git history read and parsed too), then one new commit.
#
# usage: scripts/bench-sync.sh [WORKDIR]   (env: PROMPTS, COMMITS, BENCH_DATABASE_URL,
#        PROMPTCTL_BIN to use a built binary instead of building one)
# Not a test: it builds with --release. Needs git, python3 and psql; the server is the one
# of BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres), where it
# creates and drops the database promptctl_bench.
set -euo pipefail

PROMPTS=${PROMPTS:-1000}
COMMITS=${COMMITS:-100}
ADMIN=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB_URL="${ADMIN%/*}/promptctl_bench"
WORK=${1:-$(mktemp -d)}
REPO="$WORK/prompts-repo"
. "$(dirname "$0")/bench-lib.sh"
bench_git_identity

BIN=$(bench_binary)

if [ ! -d "$REPO/.git" ]; then
  echo "generating $PROMPTS prompts x $COMMITS commits in $REPO..." >&2
  rm -rf "$REPO" && mkdir -p "$REPO"
  git -C "$REPO" init -q -b main
  python3 - "$PROMPTS" "$COMMITS" <<'PY' | git -C "$REPO" fast-import --quiet
import sys
prompts, commits = int(sys.argv[1]), int(sys.argv[2])
out = sys.stdout.buffer
t = 1_600_000_000
for n in range(1, commits + 1):
    t += 60
    message = f"edit round {n}".encode()
    out.write(b"commit refs/heads/main\n")
    out.write(b"committer Bench <bench@example.com> %d +0000\n" % t)
    out.write(b"data %d\n" % len(message) + message + b"\n")
    for i in range(prompts):
        text = (f"model: gpt-4o\nparameters: {{temperature: 0.2, max_tokens: 800}}\n"
                f"variables:\n  input: {{type: string, required: true}}\n"
                f"messages:\n  - role: system\n    content: \"You are assistant {i}, revision {n}. "
                f"Quote 'this' and \\\"that\\\", a back\\\\slash.\"\n"
                f"  - role: user\n    content: \"{{{{ input }}}}\"\n"
                f"tests:\n  - name: answers\n    vars: {{input: hello}}\n"
                f"    assert: [{{type: contains, value: hello}}]\n").encode()
        path = f"prompts/svc{i % 20:02d}/prompt_{i:04d}.yaml".encode()
        out.write(b"M 100644 inline " + path + b"\ndata %d\n" % len(text) + text + b"\n")
PY
  git -C "$REPO" checkout -q main
fi

psql_admin() { psql -X -q "$ADMIN" "$@"; }
psql_db() { psql -X -q "$DB_URL" "$@"; }
fresh_db() {
  psql_admin -c "DROP DATABASE IF EXISTS promptctl_bench WITH (FORCE)" -c "CREATE DATABASE promptctl_bench"
}
now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.3f}')"; }

cd "$REPO"
"$BIN" check >/dev/null
"$BIN" list >/dev/null   # warms the history cache

# A first sync creates the schema (and warms the history cache of the branch); the timed
# runs start from its tables, emptied.
fresh_db
"$BIN" sync --database-url "$DB_URL" >/dev/null
psql_db -c "TRUNCATE prompt_tests, prompts, prompt_environments, sync_state, prompt_owners"
start=$(now)
"$BIN" sync --database-url "$DB_URL"
warm=$(elapsed "$start" "$(now)")

psql_db -c "TRUNCATE prompt_tests, prompts, prompt_environments, sync_state, prompt_owners"
start=$(now)
"$BIN" sync --no-cache --database-url "$DB_URL" >/dev/null
cold=$(elapsed "$start" "$(now)")

rows=$(psql_db -tAc "SELECT count(*) FROM prompts")
psql_db -c "\\copy prompts TO '$WORK/prompts.copy'"
psql_db -c "TRUNCATE prompt_tests, prompts"
start=$(now)
psql_db -c "\\copy prompts FROM '$WORK/prompts.copy'"
copy=$(elapsed "$start" "$(now)")

# One new commit on top of a synced registry.
psql_db -c "TRUNCATE prompt_tests, prompts, prompt_environments, sync_state, prompt_owners"
"$BIN" sync --database-url "$DB_URL" >/dev/null
sed -i 's/revision/edited revision/' prompts/svc00/prompt_0000.yaml
git add -A && git commit -q -m "one more edit"
start=$(now)
"$BIN" sync --database-url "$DB_URL"
one=$(elapsed "$start" "$(now)")
git reset -q --hard HEAD~1

psql_admin -c "DROP DATABASE IF EXISTS promptctl_bench WITH (FORCE)"
echo
echo "rows: $rows versions"
echo "psql \\copy of the same rows:             ${copy} s"
echo "sync, history cache warm, empty database: ${warm} s  (ratio $(python3 -c "print(f'{$warm / $copy:.2f}')"))"
echo "sync, nothing cached (--no-cache):        ${cold} s  (ratio $(python3 -c "print(f'{$cold / $copy:.2f}')"))"
echo "sync of one new commit:                   ${one} s"
