#!/usr/bin/env bash
# Benchmark of `promptctl test` on large offline suites: 1,000 test cases (one prompt file
# of 1,000 cases) and 10,000 (ten files of 1,000), on the built-in echo model, three
# assertions a case (contains, safety_check, latency_ms). Prints the medians of RUNS runs
# of each: wall time, CPU time and peak resident memory (`/usr/bin/time -f %M`, shown in MB
# of 10^6 bytes), stdout to a file (no terminal, so no progress bar). Target for the
# 10,000: at most 0.5 s and 50 MB.
#
# Usage: scripts/bench-test-large.sh        (builds --release; needs python3)
# Env:   PROMPTCTL_BIN=path  benchmark that binary instead of building a release one.
#        RUNS=N              runs of each size (default 5).
#        KEEP=1              keep the generated repositories (their folder is printed).
set -euo pipefail

runs="${RUNS:-5}"
. "$(dirname "$0")/bench-lib.sh"
bench_git_identity
bin=$(bench_binary)
work="$(mktemp -d "${TMPDIR:-/tmp}/promptctl-bench-test.XXXXXX")"
if [ -n "${KEEP:-}" ]; then echo "repositories in $work" >&2; else trap 'rm -rf "$work"' EXIT; fi

# One repository of FILES prompt files of 1,000 cases each, committed to Git.
generate() {
  local dir="$1" files="$2"
  mkdir -p "$dir"
  : >"$dir/promptctl.toml"
  python3 - "$dir" "$files" <<'PY'
import os, sys
root, files = sys.argv[1], int(sys.argv[2])
for f in range(1, files + 1):
    folder = os.path.join(root, "prompts", f"svc{f % 5}")
    os.makedirs(folder, exist_ok=True)
    lines = [
        "model: echo",
        "variables:",
        "  n: {type: integer, required: true}",
        "  topic: {type: string, required: true}",
        f'template: "Question {{{{ n }}}} of prompt {f}: summarise {{{{ topic }}}} in two sentences."',
        "tests:",
    ]
    for t in range(1, 1001):
        lines += [
            f"  - name: case {t}",
            f"    vars: {{n: {t}, topic: \"the release notes of version {t}\"}}",
            f'    assert: [{{type: contains, value: "Question {t} of"}}, {{type: safety_check}}, {{type: latency_ms, value: 5000}}]',
        ]
    with open(os.path.join(folder, f"prompt_{f}.yaml"), "w") as out:
        out.write("\n".join(lines) + "\n")
PY
  git -C "$dir" init -q
  git -C "$dir" add -A
  git -C "$dir" commit -qm "generated suite"
}

# "MILLISECONDS KILOBYTES CPU-SECONDS" of one run of `promptctl test` in DIR (wall time,
# peak resident memory, user + system CPU); fails unless every case passed.
measure() {
  local dir="$1" start end
  start=$(date +%s%N)
  /usr/bin/time -f "%M %U %S" -o "$work/usage" "$bin" -C "$dir" test >"$work/out.txt" 2>"$work/err.txt" || {
    tail -n 5 "$work/out.txt" "$work/err.txt" >&2
    exit 1
  }
  end=$(date +%s%N)
  read -r kb user sys <"$work/usage"
  echo "$(((end - start) / 1000000)) $kb $(echo "$user + $sys" | bc)"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

generate "$work/cases-1000" 1
generate "$work/cases-10000" 10
for size in 1000 10000; do
  dir="$work/cases-$size"
  measure "$dir" >/dev/null # warm the page cache
  : >"$work/times"
  : >"$work/peaks"
  : >"$work/cpus"
  for _ in $(seq 1 "$runs"); do
    read -r ms kb cpu < <(measure "$dir")
    echo "$ms" >>"$work/times"
    echo "$kb" >>"$work/peaks"
    echo "$cpu" >>"$work/cpus"
  done
  grep ' tests\?: ' "$work/out.txt" | tail -n 1 | sed 's/\x1b\[[0-9;]*m//g' >&2
  ms=$(median <"$work/times")
  kb=$(median <"$work/peaks")
  cpu=$(median <"$work/cpus")
  awk -v size="$size" -v ms="$ms" -v kb="$kb" -v cpu="$cpu" -v runs="$runs" \
    -v all="$(tr '\n' ' ' <"$work/times")" -v peaks="$(awk '{ printf "%.1f ", $1 * 1.024 / 1000 }' "$work/peaks")" \
    'BEGIN { printf "%6d cases, echo model, 3 assertions each: %.2f s wall (%.2f s CPU), %.1f MB peak RSS (medians of %d runs; wall ms: %speak MB: %s)\n", size, ms / 1000, cpu, kb * 1.024 / 1000, runs, all, peaks }'
done
echo "target for 10000 cases: <= 0.50 s and <= 50 MB" >&2
