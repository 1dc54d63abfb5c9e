#!/usr/bin/env bash
# Benchmark: `promptctl lsp` latency, as an editor sees it.
#
# - start-up: from spawning `promptctl lsp` to the `initialize` response (target < 50 ms);
# - diagnostics: from writing `didChange` of a 1,000-line prompt file to reading its
#   `publishDiagnostics` (target < 10 ms). Changes alternate between a clean file and one
#   with an undeclared variable, so every run really checks and publishes.
#
# Usage: scripts/bench-lsp.sh [CHANGES]   (default 200; keeps nothing behind)
# Env:   PROMPTCTL_BIN=path  benchmark that binary instead of building a release one.
set -euo pipefail

changes="${1:-200}"
work="$(mktemp -d "${TMPDIR:-/tmp}/promptctl-bench-lsp.XXXXXX")"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT

. "$(dirname "$0")/bench-lib.sh"
PROMPTCTL_BIN=$(bench_binary)

: >"$work/promptctl.toml"
mkdir -p "$work/prompts/bench/_partials"
echo 'Write for {{ audience }}. Be precise and never invent facts.' >"$work/prompts/bench/_partials/style.j2"

python3 - "$PROMPTCTL_BIN" "$work" "$changes" <<'PY'
import json, os, statistics, subprocess, sys, time

binary, work, changes = sys.argv[1], sys.argv[2], int(sys.argv[3])
if os.sep in binary:
    binary = os.path.abspath(binary)

# A 1,000-line prompt: 21 variables, a 920-line system message using them, 10 tests.
lines = ["description: A long prompt for the LSP benchmark.", "model: echo", "variables:"]
names = [f"var_{i}" for i in range(20)]
lines += [f"  {n}: {{type: string, default: value {i}}}" for i, n in enumerate(names)]
lines.append("  audience: {type: string, default: engineers}")
lines += ["messages:", "  - role: system", "    content: |"]
body = 1000 - len(lines) - 3 - 10 * 5
for i in range(body):
    lines.append(f"      Rule {i}: consider {{{{ {names[i % 20]} }}}} and answer plainly.")
lines[-1] = "      {% include 'bench/_partials/style.j2' %}"
lines += ["  - role: user", "    content: \"Question: {{ var_0 }}\"", "tests:"]
for t in range(10):
    lines += [f"  - name: test {t}", f"    vars: {{var_0: \"question {t}\"}}", "    assert:",
              f"      - {{type: contains, value: \"question {t}\"}}", ""]
clean = "\n".join(lines[:1000]) + "\n"
assert clean.count("\n") == 1000, clean.count("\n")
broken = clean.replace("consider {{ var_3 }}", "consider {{ var_x }}", 1)
path = os.path.join(work, "prompts/bench/long.yaml")
with open(path, "w") as f:
    f.write(clean)
uri = "file://" + os.path.realpath(path)

def send(proc, message):
    body = json.dumps(message).encode()
    proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    proc.stdin.flush()

def read(proc):
    length = None
    while True:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit("server closed stdout")
        line = line.strip()
        if not line:
            break
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return json.loads(proc.stdout.read(length))

def wait_for(proc, predicate):
    while True:
        message = read(proc)
        if predicate(message):
            return message

starts = []
for _ in range(20):
    began = time.perf_counter()
    proc = subprocess.Popen([binary, "lsp"], cwd=work, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    send(proc, {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"processId": None, "rootUri": "file://" + os.path.realpath(work), "capabilities": {}}})
    wait_for(proc, lambda m: m.get("id") == 1)
    starts.append((time.perf_counter() - began) * 1000)
    send(proc, {"jsonrpc": "2.0", "id": 2, "method": "shutdown"})
    wait_for(proc, lambda m: m.get("id") == 2)
    send(proc, {"jsonrpc": "2.0", "method": "exit"})
    proc.wait()

proc = subprocess.Popen([binary, "lsp"], cwd=work, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
send(proc, {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"processId": None, "rootUri": "file://" + os.path.realpath(work), "capabilities": {}}})
wait_for(proc, lambda m: m.get("id") == 1)
send(proc, {"jsonrpc": "2.0", "method": "initialized", "params": {}})
send(proc, {"jsonrpc": "2.0", "method": "textDocument/didOpen",
            "params": {"textDocument": {"uri": uri, "languageId": "yaml", "version": 1, "text": clean}}})
first = wait_for(proc, lambda m: m.get("method") == "textDocument/publishDiagnostics")
assert first["params"]["diagnostics"] == [], first

def cpu_ms(pid):
    # The server's user + system CPU time, where /proc has it: a figure that a loaded
    # machine does not inflate as it does wall-clock latency.
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None

cpu_before = cpu_ms(proc.pid)
timings = []
for i in range(changes):
    text = broken if i % 2 == 0 else clean
    began = time.perf_counter()
    send(proc, {"jsonrpc": "2.0", "method": "textDocument/didChange",
                "params": {"textDocument": {"uri": uri, "version": i + 2}, "contentChanges": [{"text": text}]}})
    message = wait_for(proc, lambda m: m.get("method") == "textDocument/publishDiagnostics")
    timings.append((time.perf_counter() - began) * 1000)
    found = message["params"]["diagnostics"]
    assert (len(found) > 0) == (text is broken), found
cpu_after = cpu_ms(proc.pid)
send(proc, {"jsonrpc": "2.0", "id": 9, "method": "shutdown"})
wait_for(proc, lambda m: m.get("id") == 9)
send(proc, {"jsonrpc": "2.0", "method": "exit"})
assert proc.wait() == 0

def summary(values):
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
    return f"median {statistics.median(values):.1f} ms, p95 {p95:.1f} ms, max {values[-1]:.1f} ms"

print(f"initialize response after start ({len(starts)} starts): {summary(starts)}  (target < 50 ms)")
print(f"didChange -> publishDiagnostics, 1,000-line file ({changes} changes): {summary(timings)}  (target < 10 ms)")
if cpu_before is not None and cpu_after is not None:
    print(f"server CPU time per change: {(cpu_after - cpu_before) / changes:.1f} ms")
load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
print(f"machine: {os.cpu_count()} cores, load average {load:.1f}")
PY
