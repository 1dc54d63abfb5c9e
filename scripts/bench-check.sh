#!/usr/bin/env bash
# Benchmark: `promptctl check` over a generated repository of 5,000 prompts.
#
# Each prompt is realistic: a system message that includes its service's partial, a user
# message, three declared variables (one with a default) and two tests. The target is
# under half a second on 2 cores.
#
# Usage: scripts/bench-check.sh [PROMPTS]   (default 5000; keeps nothing behind)
# Env:   PROMPTCTL_BIN=path  benchmark that binary instead of building a release one.
set -euo pipefail

count="${1:-5000}"
work="$(mktemp -d "${TMPDIR:-/tmp}/promptctl-bench.XXXXXX")"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT

services=50
per_service=$(((count + services - 1) / services))
echo "generating $count prompts in $work ..." >&2
: >"$work/promptctl.toml"
made=0
for s in $(seq 1 "$services"); do
  service="service-$s"
  mkdir -p "$work/prompts/$service/_partials"
  cat >"$work/prompts/$service/_partials/style.j2" <<PARTIAL
Write for {{ audience }}. Be precise, cite the input, and never invent facts.
Answer in at most {{ max_words }} words.
PARTIAL
  for p in $(seq 1 "$per_service"); do
    [ "$made" -ge "$count" ] && break
    made=$((made + 1))
    cat >"$work/prompts/$service/prompt_$p.yaml" <<PROMPT
# Generated prompt $p of $service.
description: Summarises a ticket for the $service team (variant $p).
model: gpt-4o-mini
parameters:
  temperature: 0.2
  max_tokens: 400
variables:
  ticket: {type: string, required: true}
  audience: {type: string, default: "support engineers"}
  max_words: {type: integer, default: 120}
  tags: {type: array, default: []}
messages:
  - role: system
    content: |
      You are the $service assistant, variant $p.
      {% include "$service/_partials/style.j2" %}
      {% if tags %}Known tags: {{ tags | join(", ") }}.{% endif %}
  - role: user
    content: "Summarise this ticket:\n{{ ticket }}"
tests:
  - name: short ticket
    vars: {ticket: "The export button does nothing on Safari 17."}
    assert:
      - {type: contains, value: "Safari"}
      - {type: safety_check}
  - name: tagged ticket
    vars:
      ticket: "Invoices since May show the wrong VAT rate."
      tags: [billing, vat]
      max_words: 60
    assert:
      - {type: regex, value: "(?i)vat"}
      - {type: semantic_similarity, value: "VAT on invoices is wrong since May.", threshold: 0.7}
PROMPT
  done
done

. "$(dirname "$0")/bench-lib.sh"
bin=$(bench_binary)

# One run to check the generated repository is clean (and warm the page cache).
"$bin" -C "$work" check --strict >/dev/null 2>"$work/check.log" || {
  echo "check failed on the generated repository:" >&2
  tail -20 "$work/check.log" >&2
  exit 1
}

if command -v hyperfine >/dev/null 2>&1; then
  hyperfine --warmup 2 --runs 10 --export-json "$work/hyperfine.json" \
    "'$bin' -C '$work' check" >&2
  summary=$(python3 -c "
import json, sys
r = json.load(open(sys.argv[1]))['results'][0]
print('mean %.3fs, min %.3fs (cpu: user %.3fs + sys %.3fs)' % (r['mean'], r['min'], r['user'], r['system']))
" "$work/hyperfine.json" 2>/dev/null || echo "see above")
  echo "promptctl check, $count prompts: $summary (hyperfine, 10 runs, load average $(cut -d' ' -f1 /proc/loadavg))"
else
  best=""
  for _ in 1 2 3 4 5; do
    start=$(date +%s%N)
    "$bin" -C "$work" check >/dev/null 2>&1
    end=$(date +%s%N)
    elapsed=$(((end - start) / 1000000))
    if [ -z "$best" ] || [ "$elapsed" -lt "$best" ]; then best=$elapsed; fi
  done
  printf 'promptctl check, %d prompts: best of 5 %d.%03ds (load average %s)\n' "$count" $((best / 1000)) $((best % 1000)) "$(cut -d' ' -f1 /proc/loadavg)"
fi
