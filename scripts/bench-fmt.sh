#!/usr/bin/env bash
# Benchmark and proof for `promptctl fmt` at scale: generates a Git repository of N prompts
# (default 5,000) in varied, non-canonical layouts with comments, commits it, then runs
# `fmt` twice and checks that
#   - the second run changes nothing (idempotent) and `fmt --check` exits 0,
#   - every comment line is kept,
#   - `check` passes afterwards,
#   - the formatting commit makes no version (`list --format json` is unchanged).
# Prints the times. Usage: scripts/bench-fmt.sh [N]   (builds the release binary, unless
# PROMPTCTL_BIN names one)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
count="${1:-5000}"
. scripts/bench-lib.sh
bin=$(bench_binary)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
bench_git_identity
git init -q -b main .

python3 - "$count" <<'PY'
import os, sys
n = int(sys.argv[1])
shapes = [
    # canonical already
    """# {i}: canonical
description: Prompt {i}.
model: gpt-4o
parameters:
  temperature: 0.2
variables:
  text: {{type: string, required: true}}
messages:
  - role: system
    content: |
      You summarise for team {i}.
      Be brief.
  - role: user
    content: "{{{{ text }}}}"
tests:
  - name: t{i}
    vars: {{text: hello}}
    assert:
      - {{type: contains, value: hello}}
""",
    # keys out of order, four-space indentation, indentless sequences, quoted multi-line
    """tests:
-   name: case {i}   # the only case
    assert:
    -   value: hi
        type: contains
    vars:
        text: hi
# the model comes second
model: gpt-4o-mini
template: "Rewrite for {i}:\\n\\n{{{{ text }}}}"
variables:
    # the input
    text: {{type: string}}
""",
    # messages with content before role, block scalar deeply indented, monitor
    """model: claude-sonnet-4-5
monitor:
      - type: safety_check
messages:
      - content: |
              Line one of {i}.

              {{{{ text }}}}
        role: user
variables:
      text:
            required: true
            type: string
description: >
      Folded description
      of prompt {i}.
tests:
      - vars: {{text: x}}
        assert: [{{type: contains, value: x}}]
        name: folded {i}
""",
]
for i in range(n):
    service = f"svc{i % 50}"
    os.makedirs(f"prompts/{service}", exist_ok=True)
    with open(f"prompts/{service}/p{i}.yaml", "w") as f:
        f.write(shapes[i % len(shapes)].format(i=i))
PY

comments() { grep -rhoE '#.*$' prompts | sed 's/[[:space:]]*$//' | sort | md5sum; }

git add -A && git commit -qm "generated prompts"
before_versions=$("$bin" list --all --format json | md5sum)
before_comments=$(comments)

start=$(date +%s.%N)
"$bin" fmt >/dev/null 2>"$work/fmt1.log"
first=$(echo "$(date +%s.%N) - $start" | bc)

snapshot=$(find prompts -type f -name '*.yaml' -print0 | sort -z | xargs -0 cat | md5sum)

start=$(date +%s.%N)
"$bin" fmt >/dev/null 2>"$work/fmt2.log"
second=$(echo "$(date +%s.%N) - $start" | bc)
again=$(find prompts -type f -name '*.yaml' -print0 | sort -z | xargs -0 cat | md5sum)

status=0
if [ "$snapshot" != "$again" ]; then echo "FAIL: fmt is not idempotent"; status=1; fi
if ! "$bin" fmt --check >/dev/null 2>&1; then echo "FAIL: fmt --check after fmt"; status=1; fi
if [ "$before_comments" != "$(comments)" ]; then echo "FAIL: comments changed"; status=1; fi
if ! "$bin" check >/dev/null 2>&1; then echo "FAIL: check after fmt"; status=1; fi
git add -A && git commit -qm "promptctl fmt"
after_versions=$("$bin" list --all --format json | md5sum)
if [ "$before_versions" != "$after_versions" ]; then echo "FAIL: the formatting commit changed versions"; status=1; fi

echo "prompts: $count"
echo "fmt (first run):  ${first}s  ($(tail -n1 "$work/fmt1.log"))"
echo "fmt (second run): ${second}s  ($(tail -n1 "$work/fmt2.log"))"
[ "$status" -eq 0 ] && echo "ok: idempotent, comments kept, check passes, no new version"
exit "$status"
