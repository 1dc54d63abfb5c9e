#!/usr/bin/env bash
# Generates clients from a running `promptctl serve`'s /openapi.json, unmodified, and
# drives them against it (issue 17): openapi-python-client (PyPI), and openapi-typescript +
# openapi-fetch (npm), the TypeScript type-checked with `tsc --strict`. Each lists prompts,
# pages through them, gets one by environment, lists its versions, renders, runs, and reads
# a parsed 403 with a read token (scripts/clients/drive.py and drive.ts).
#
# Usage: scripts/generated-clients.sh BASE_URL READ_TOKEN RUN_TOKEN EXPECTED_PROMPTS
# The tools (pinned in scripts/clients/) are installed once into $PROMPTCTL_CLIENT_TOOLS
# (default: target/client-tools); the generated code goes to a fresh temporary folder.
# Exits 0 when both clients pass, 1 when one fails, 3 when a tool cannot be installed.
set -euo pipefail

if [[ $# -ne 4 ]]; then
  echo "usage: $0 BASE_URL READ_TOKEN RUN_TOKEN EXPECTED_PROMPTS" >&2
  exit 2
fi
base=$1 read_token=$2 run_token=$3 expected=$4
here=$(cd "$(dirname "$0")" && pwd)
tools=${PROMPTCTL_CLIENT_TOOLS:-$here/../target/client-tools}
python_client_version=0.29.1

mkdir -p "$tools"
tools=$(cd "$tools" && pwd)
if [[ ! -x $tools/venv/bin/openapi-python-client ]] ||
  ! "$tools/venv/bin/openapi-python-client" --version | grep -q "$python_client_version"; then
  { python3 -m venv "$tools/venv" &&
    "$tools/venv/bin/pip" install -q "openapi-python-client==$python_client_version"; } >&2 ||
    { echo "cannot install openapi-python-client" >&2; exit 3; }
fi
if ! cmp -s "$here/clients/package.json" "$tools/package.json"; then
  cp "$here/clients/package.json" "$tools/package.json"
  (cd "$tools" && npm install --no-audit --no-fund --silent) >&2 ||
    { echo "cannot install openapi-typescript, openapi-fetch and typescript" >&2; exit 3; }
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
curl -fsS "$base/openapi.json" -o "$work/openapi.json"

status=0

# Python.
if (cd "$work" && "$tools/venv/bin/openapi-python-client" generate --path openapi.json \
  --output-path python --overwrite --fail-on-warning --config "$here/clients/python-client.yaml") >"$work/python.log" 2>&1; then
  "$tools/venv/bin/python" "$here/clients/drive.py" "$work/python" "$base" "$read_token" \
    "$run_token" "$expected" || status=1
else
  cat "$work/python.log" >&2
  echo "python client: openapi-python-client refused the document" >&2
  status=1
fi

# TypeScript.
mkdir -p "$work/ts"
cp "$here/clients/drive.ts" "$here/clients/tsconfig.json" "$here/clients/package.json" "$work/ts/"
ln -s "$tools/node_modules" "$work/ts/node_modules"
if "$tools/node_modules/.bin/openapi-typescript" "$work/openapi.json" -o "$work/ts/schema.d.ts" \
  >"$work/ts.log" 2>&1 && (cd "$work/ts" && "$tools/node_modules/.bin/tsc" -p . --strict) >>"$work/ts.log" 2>&1; then
  node "$work/ts/out/drive.js" "$base" "$read_token" "$run_token" "$expected" || status=1
else
  cat "$work/ts.log" >&2
  echo "typescript client: generation or tsc --strict failed" >&2
  status=1
fi
exit $status
