#!/usr/bin/env bash
# Benchmark of `promptctl test`: 1,000 test cases against a local OpenAI-compatible server
# that answers every request after 100 ms, at concurrency 50. The ideal is
# 1,000 / 50 × 100 ms = 2 s; the target is at most 1.3 times that.
# The provider is examples/slow_provider.rs (axum), so the server is not the bottleneck.
# Usage: scripts/bench-test.sh   (builds --release; needs python3 for the arithmetic)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
cargo build --release --quiet --example slow_provider
target="${CARGO_TARGET_DIR:-$PWD/target}"
bin="$target/release/promptctl"
work=$(mktemp -d)
trap 'kill "${server_pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$target/release/examples/slow_provider" "$port" 100 &
server_pid=$!
sleep 0.5

cat > "$work/promptctl.toml" <<TOML
default_provider = "local"
[providers.local]
kind = "openai"
base_url = "http://127.0.0.1:$port/v1"
TOML
for p in $(seq 1 100); do
  mkdir -p "$work/prompts/svc$((p % 5))"
  {
    echo "model: bench-model"
    echo "variables: {n: {type: integer, required: true}}"
    echo "template: \"Question {{ n }} of prompt $p\""
    echo "tests:"
    for t in $(seq 1 10); do
      echo "  - name: case $t"
      echo "    vars: {n: $t}"
      echo "    assert: [{type: contains, value: \"ok\"}, {type: safety_check}, {type: latency_ms, value: 5000}]"
    done
  } > "$work/prompts/svc$((p % 5))/prompt_$p.yaml"
done

"$bin" -C "$work" check >/dev/null 2>&1 || { "$bin" -C "$work" check; exit 1; }
start=$(date +%s%N)
/usr/bin/time -f "promptctl cpu: %U s user, %S s sys" "$bin" -C "$work" test --concurrency 50 > "$work/out.txt"
end=$(date +%s%N)
tail -n 2 "$work/out.txt"
python3 - "$start" "$end" <<'PY'
import sys
seconds = (int(sys.argv[2]) - int(sys.argv[1])) / 1e9
print(f"1000 cases, 100 ms each, concurrency 50: {seconds:.2f} s; ideal 2.00 s; ratio {seconds / 2.0:.2f} (target <= 1.30)")
PY
