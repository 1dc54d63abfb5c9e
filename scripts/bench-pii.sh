#!/usr/bin/env bash
# What `safety_check` costs a model output: 1,000 test cases of the echo model whose output
# is a typical 1.2 KB answer (a code review with versions, dates, times, amounts, order
# numbers, hashes, an e-mail address and a phone number), run once with `safety_check`
# and once with `contains` instead; the difference, divided by 1,000, is the scan's cost
# per output, the one-time load of libphonenumber's metadata included (the output holds a
# phone number). The load alone is measured too: one case with safety_check, once with a
# phone number in its output and once without. Each run is repeated five times and the
# fastest kept. Offline, no server.
# Usage: scripts/bench-pii.sh   (builds --release; PROMPTCTL_BIN=path measures that binary,
#        e.g. an older version's)
# Needs python3 for the arithmetic.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
bench_git_identity
PROMPTCTL_BIN=$(bench_binary)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

output='Review of the change to `billing/invoice.py` (release 2.14.3, build 20240115.3).

The new `apply_discount` function rounds before it multiplies, so an order of $1,234.56 at
12.5 % comes to $1,080.24 instead of $1,080.24; see the failing case in test_invoice.py line
118. Order #48213 and order 4829136 show the same drift. The job ran on 2024-01-15 at
10:30:45 UTC (timestamp 1705314645) and took 00:02:13.

Please also:
1. replace the hard-coded version check `if version >= (3, 11, 7)` with the helper in
   `compat.py`, which already handles 3.12.0rc1;
2. keep the cache key (sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855)
   stable across releases, since commit 3f786850e387 depends on it;
3. move the retry settings (3 attempts, 250 ms backoff, 30 s timeout) to `settings.toml`.

The UUID in the fixture (123e4567-e89b-12d3-a456-426614174000) and ISBN 978-3-16-148410-0
in the sample data are fine to keep. Coordinates 48.8566, 2.3522 in the geo test are public.

Contact the billing team at billing-team@example.com or +1 415 555 0132 before merging.
Verdict: request changes (2 blocking, 3 minor); estimated effort 1.5 days.'

project() {
  local dir="$1" assertion="$2" cases="${3:-100}"
  mkdir -p "$dir/prompts/bench"
  touch "$dir/promptctl.toml"
  for p in $(seq 1 10); do
    {
      echo "model: echo"
      echo "variables: {n: {type: integer, required: true}}"
      echo "template: |"
      printf '%s\n' "$output" | sed 's/^/  /'
      echo "  Case {{ n }}."
      echo "tests:"
      for t in $(seq 1 "$cases"); do
        echo "  - name: case $t"
        echo "    vars: {n: $t}"
        echo "    assert: [$assertion]"
      done
    } > "$dir/prompts/bench/p$p.yaml"
  done
  (cd "$dir" && git init -q)
}
project "$work/scan" "{type: safety_check}"
project "$work/plain" "{type: contains, value: Verdict}"
one_case() {
  mkdir -p "$1/prompts/p"
  touch "$1/promptctl.toml"
  printf 'model: echo\ntemplate: "%s"\ntests:\n  - assert: [{type: safety_check}]\n' "$2" \
    > "$1/prompts/p/one.yaml"
  (cd "$1" && git init -q)
}
one_case "$work/phone" "Call +1 415 555 0132 today"
one_case "$work/nophone" "Call the billing team today"

fastest() {
  local dir="$1" best=""
  for _ in 1 2 3 4 5; do
    local start end
    start=$(date +%s.%N)
    (cd "$dir" && "$PROMPTCTL_BIN" test --concurrency 1 --format json > /dev/null) || true
    end=$(date +%s.%N)
    best=$(python3 -c "print(min(x for x in [$end - $start, ${best:-1e9}]))")
  done
  echo "$best"
}
bytes=$(printf '%s\n  Case 1.' "$output" | wc -c)
scan=$(fastest "$work/scan")
plain=$(fastest "$work/plain")
phone=$(fastest "$work/phone")
nophone=$(fastest "$work/nophone")
python3 - "$scan" "$plain" "$bytes" "$phone" "$nophone" <<'PY'
import sys
scan, plain, size, phone, nophone = map(float, sys.argv[1:])
print(f"output: {size:.0f} bytes; 1,000 cases: {scan:.3f} s with safety_check, {plain:.3f} s with contains")
print(f"safety_check: {(scan - plain) / 1000 * 1e6:.0f} µs an output")
print(f"metadata load (once a process): {(phone - nophone) * 1000:.0f} ms")
PY
