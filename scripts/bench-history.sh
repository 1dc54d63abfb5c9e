#!/usr/bin/env bash
# Benchmark of the history walk (issue 3): a generated monorepo of 100,000 commits, one in
# ten touching prompts/, 5,000 prompts. Prints the ratio of a cold `promptctl list` to
# `git log --first-parent --name-only --format=%H -- prompts` on the same repository, then
# the time of a warm run after one new commit (targets: ratio <= 1.5, warm < 100 ms).
#
# usage: scripts/bench-history.sh [WORKDIR]   (env: COMMITS, PROMPTS, RUNS)
# Not a test: it builds with --release and takes a few minutes. Needs git and python3;
# uses hyperfine when installed.
set -euo pipefail

COMMITS=${COMMITS:-100000}
PROMPTS=${PROMPTS:-5000}
RUNS=${RUNS:-5}
HERE=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-$(mktemp -d)}
REPO="$WORK/monorepo"
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_NAME=Bench GIT_AUTHOR_EMAIL=bench@example.com
export GIT_COMMITTER_NAME=Bench GIT_COMMITTER_EMAIL=bench@example.com

echo "building promptctl (release)..." >&2
(cd "$HERE" && cargo build --release --quiet)
BIN="${CARGO_TARGET_DIR:-$HERE/target}/release/promptctl"

if [ ! -d "$REPO/.git" ]; then
  echo "generating $COMMITS commits, $PROMPTS prompts in $REPO..." >&2
  rm -rf "$REPO" && mkdir -p "$REPO"
  git -C "$REPO" init -q -b main
  python3 - "$COMMITS" "$PROMPTS" <<'PY' | git -C "$REPO" fast-import --quiet
import random, sys
commits, prompts = int(sys.argv[1]), int(sys.argv[2])
out = sys.stdout.buffer
rng = random.Random(42)
services = 50
sources = 2000
state = [[0, 0, 0] for _ in range(prompts)]  # template version, model, style

def prompt_path(i):
    return f"prompts/svc{i % services:02d}/prompt_{i:05d}.yaml"

def prompt_text(i):
    text, model, style = state[i]
    body = (f"description: prompt {i}\n"
            f"model: gpt-4o{'-mini' if model % 2 else ''}\n"
            f"parameters:\n  temperature: 0.{model % 9 + 1}\n  max_tokens: 800\n"
            f"variables:\n  input: {{type: string, required: true}}\n  language: {{type: string, default: en}}\n"
            f"messages:\n  - role: system\n    content: |\n      You are assistant {i}, revision {text}. Answer in {{{{ language }}}}.\n"
            f"  - role: user\n    content: \"{{{{ input }}}}\"\n"
            f"tests:\n  - name: answers\n    vars: {{input: hello}}\n    assert: [{{type: contains, value: hello}}]\n")
    return ("# formatted\n" * style) + body

def blob(path, text):
    data = text.encode()
    out.write(b"M 100644 inline " + path.encode() + b"\ndata %d\n" % len(data) + data + b"\n")

t = 1_600_000_000
for n in range(1, commits + 1):
    t += 60
    message = f"commit {n}".encode()
    out.write(b"commit refs/heads/main\n")
    out.write(b"committer Bench <bench@example.com> %d +0000\n" % t)
    out.write(b"data %d\n" % len(message) + message + b"\n")
    if n == 1:
        for i in range(prompts):
            blob(prompt_path(i), prompt_text(i))
        for s in range(sources):
            blob(f"src/mod{s % 100:03d}/file_{s:05d}.rs", f"// file {s}\nfn f() {{}}\n")
    elif n % 10 == 0:
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(prompts)
            kind = rng.random()
            if kind < 0.6:
                state[i][0] += 1
            elif kind < 0.75:
                state[i][1] += 1
            else:
                state[i][2] = (state[i][2] + 1) % 3
            blob(prompt_path(i), prompt_text(i))
    else:
        s = rng.randrange(sources)
        blob(f"src/mod{s % 100:03d}/file_{s:05d}.rs", f"// file {s} edit {n}\nfn f() {{}}\n")
    out.write(b"\n")
PY
  git -C "$REPO" checkout -q -f main
fi

# Mean wall time of a command over RUNS runs (after one warm-up), in milliseconds.
time_ms() {
  if command -v hyperfine >/dev/null; then
    hyperfine --runs "$RUNS" --warmup 1 --export-json "$WORK/h.json" --style none "$1" >/dev/null 2>&1
    python3 -c "import json;print(round(json.load(open('$WORK/h.json'))['results'][0]['mean']*1000,1))"
  else
    bash -c "$1" >/dev/null 2>&1
    local total=0 start end
    for _ in $(seq "$RUNS"); do
      start=$(date +%s%N); bash -c "$1" >/dev/null 2>&1; end=$(date +%s%N)
      total=$((total + end - start))
    done
    python3 -c "print(round($total / $RUNS / 1e6, 1))"
  fi
}

cd "$REPO"
echo "commits: $(git rev-list --count HEAD), prompts: $(git ls-files prompts | wc -l)"
# The cold comparison alternates the two commands run by run and compares medians, so
# that a machine whose speed drifts during the benchmark (shared virtual machines do)
# slows both alike; each pair's own ratio is printed too.
read -r GIT_MS COLD_MS PAIR_RATIO < <(python3 - "$RUNS" "$BIN" <<'PY'
import statistics, subprocess, sys, time
runs, binary = int(sys.argv[1]), sys.argv[2]
commands = [["git", "log", "--first-parent", "--name-only", "--format=%H", "--", "prompts"],
            [binary, "--no-cache", "list", "--format", "json"]]
def once(command):
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - start) * 1000
for command in commands:
    once(command)  # warm-up: the pack in the page cache
pairs = [(once(commands[0]), once(commands[1])) for _ in range(runs)]
git = statistics.median(p[0] for p in pairs)
cold = statistics.median(p[1] for p in pairs)
print(f"{git:.1f} {cold:.1f} {statistics.median(p[1] / p[0] for p in pairs):.2f}")
PY
)
echo "git log --first-parent --name-only -- prompts: ${GIT_MS} ms (median of $RUNS)"
echo "promptctl --no-cache list (cold):              ${COLD_MS} ms (median of $RUNS, alternating)"
python3 -c "print(f'cold ratio: {$COLD_MS / $GIT_MS:.2f} (median of the pairs: $PAIR_RATIO; target <= 1.5)')"

# Warm: the cache is up to date, then one new commit touching a prompt, then one run.
"$BIN" list --format json >/dev/null
total=0
for n in $(seq "$RUNS"); do
  file=$(git ls-files prompts | sed -n "${n}p")
  printf '# warm edit %s\n' "$n" >> "$file"
  sed -i "s/revision \([0-9]*\)\./revision \1$n./" "$file"
  git commit -q -am "warm edit $n"
  start=$(date +%s%N); "$BIN" list --format json >/dev/null; end=$(date +%s%N)
  total=$((total + end - start))
done
WARM_MS=$(python3 -c "print(round($total / $RUNS / 1e6, 1))")
echo "promptctl list after one new commit (warm):    ${WARM_MS} ms (target < 100)"
UP_MS=$(time_ms "'$BIN' list --format json")
echo "promptctl list, cache up to date:              ${UP_MS} ms"
