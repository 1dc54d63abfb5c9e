#!/usr/bin/env bash
# Benchmark of the iteration loop (issue 26). Not a test: it builds in release mode.
#
# A repository of PROMPTS prompts (default 200, in 10 services), each with 5 test cases
# on the offline `echo` model, every answer recorded once with `test --record`. Then:
#
#  1. `promptctl test --watch --replay`: EDITS times (default 20), a prompt's assertion is
#     broken by a save (written in place), then fixed by a save (written aside and renamed
#     over, as editors do). Measured: from the end of the write to the flip's line on
#     stdout (`passed → failed`, then `failed → passed`); target under 1 s. Then a file
#     promptctl does not read is saved: the lines printed in the next 1.5 s (target 0).
#     Then SIGINT: the exit code (0) and how long the watch takes to stop.
#  2. `promptctl lsp`: RUNS times (default 50), `workspace/executeCommand` of a lens's
#     "▶ run" on a test of the open (unsaved, edited) buffer, answered from the recording.
#     Measured: from writing the request to reading the test's diagnostic; target under 1 s.
#  3. `promptctl lsp` with `[lsp] live_runs = true` against a model on loopback that takes
#     2 s to answer (a Python HTTP server speaking OpenAI's format): while 4 "run all" are
#     under way, 20 completion requests; their round trip against the same requests with
#     no run under way (completion must not wait for a run).
#
# usage: scripts/bench-loop.sh   (env: PROMPTS, EDITS, RUNS, PROMPTCTL_BIN, KEEP)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/bench-lib.sh"
bench_git_identity

PROMPTS=${PROMPTS:-200}
EDITS=${EDITS:-20}
RUNS=${RUNS:-50}
BIN=$(bench_binary)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/promptctl-bench-loop.XXXXXX")
[ -n "${KEEP:-}" ] || trap 'rm -rf "$WORK"' EXIT

python3 - "$BIN" "$WORK" "$PROMPTS" "$EDITS" "$RUNS" <<'PY'
import http.server, json, os, select, signal, socketserver, statistics, subprocess, sys
import threading, time

binary, work, prompts, edits, runs = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
os.chdir(work)
open("promptctl.toml", "w").close()

def prompt_text(index, broken=False):
    lines = ["model: echo", "variables:", "  q: {type: string, required: true}",
             f"template: \"Prompt {index}: answer {{{{ q }}}} politely.\"", "tests:"]
    for t in range(5):
        wanted = "never said" if broken and t == 1 else f"question {t}"
        lines += [f"  - name: case {t}", f"    vars: {{q: \"question {t}\"}}", "    assert:",
                  f"      - {{type: contains, value: \"{wanted}\"}}"]
    return "\n".join(lines) + "\n"

def path_of(index):
    return f"prompts/svc{index % 10}/p{index}.yaml"

for index in range(prompts):
    os.makedirs(os.path.dirname(path_of(index)), exist_ok=True)
    with open(path_of(index), "w") as f:
        f.write(prompt_text(index))
subprocess.run([binary, "test", "--record"], check=True, stdout=subprocess.DEVNULL)

def quantiles(values):
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]
    return f"P50 {statistics.median(values) * 1000:.0f} ms, P95 {p95 * 1000:.0f} ms, max {values[-1] * 1000:.0f} ms"

# 1. The watch.
watch = subprocess.Popen([binary, "test", "--watch", "--replay", "--color", "never"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
pending = b""
def line(timeout):
    global pending
    deadline = time.monotonic() + timeout
    while b"\n" not in pending:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([watch.stdout], [], [], left)[0]:
            return None
        chunk = os.read(watch.stdout.fileno(), 65536)
        if not chunk:
            return None
        pending += chunk
    text, pending = pending.split(b"\n", 1)
    return text.decode()

def until(needle, timeout=30):
    while True:
        text = line(timeout)
        if text is None:
            sys.exit(f"no `{needle}` within {timeout} s")
        if needle in text:
            return

until(f"{prompts * 5} passed")
flips = []
for n in range(edits):
    index = (n * 7) % prompts
    with open(path_of(index), "w") as f:
        f.write(prompt_text(index, broken=True))
    start = time.monotonic()
    until("passed → failed")
    flips.append(time.monotonic() - start)
    aside = path_of(index) + ".tmp~"
    with open(aside, "w") as f:
        f.write(prompt_text(index))
    os.rename(aside, path_of(index))
    start = time.monotonic()
    until("failed → passed")
    flips.append(time.monotonic() - start)
with open("NOTES.md", "w") as f:
    f.write("unrelated\n")
printed = 0
while line(1.5) is not None:
    printed += 1
start = time.monotonic()
watch.send_signal(signal.SIGINT)
code = watch.wait(30)
stopped = time.monotonic() - start
print(f"watch, {prompts} prompts / {prompts * 5} tests, save → flip line over {len(flips)} saves: {quantiles(flips)}")
print(f"watch, unrelated save: {printed} lines printed in 1.5 s")
print(f"watch, SIGINT: exit {code} in {stopped * 1000:.0f} ms")

# 2 and 3. The language server.
def lsp(extra_env=None):
    env = dict(os.environ, **(extra_env or {}))
    return subprocess.Popen([binary, "lsp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env)

class Client:
    def __init__(self, proc):
        self.proc, self.buffer, self.next_id, self.kept = proc, b"", 0, []

    def send(self, message):
        body = json.dumps(message).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def request(self, method, params):
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        return self.next_id

    def notify(self, method, params):
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def read(self):
        while True:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if sep:
                length = int(head.split(b":")[1])
                if len(rest) >= length:
                    self.buffer = rest[length:]
                    return json.loads(rest[:length])
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                sys.exit("the server closed stdout")
            self.buffer += chunk

    def until(self, wanted):
        """The first message `wanted` accepts; the others are kept for later calls."""
        for index, message in enumerate(self.kept):
            if wanted(message):
                return self.kept.pop(index)
        while True:
            message = self.read()
            if wanted(message):
                return message
            self.kept.append(message)

    def start(self, path, text):
        uri = "file://" + os.path.realpath(path)
        answer = self.request("initialize", {"processId": None, "rootUri": "file://" + os.path.realpath(work), "capabilities": {}})
        self.until(lambda m: m.get("id") == answer)
        self.notify("initialized", {})
        self.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "yaml", "version": 1, "text": text}})
        self.until(lambda m: m.get("method") == "textDocument/publishDiagnostics")
        return uri

    def stop(self):
        answer = self.request("shutdown", None)
        self.until(lambda m: m.get("id") == answer)
        self.notify("exit", None)
        self.proc.wait(10)

def has_result(message):
    return message.get("method") == "textDocument/publishDiagnostics" and any(
        d.get("code") == "test-result" for d in message["params"]["diagnostics"])

client = Client(lsp())
# The buffer is edited and unsaved: its third test now fails.
edited = prompt_text(0).replace('value: "question 2"', 'value: "question 9"')
uri = client.start(path_of(0), edited)
lenses = client.request("textDocument/codeLens", {"textDocument": {"uri": uri}})
lenses = client.until(lambda m: m.get("id") == lenses)["result"]
latencies = []
for n in range(runs):
    command = lenses[1 + n % 5]["command"]
    client.kept.clear()
    start = time.monotonic()
    client.request("workspace/executeCommand", command)
    client.until(has_result)
    latencies.append(time.monotonic() - start)
client.stop()
print(f"lsp, executeCommand → test diagnostic (replayed) over {runs} runs: {quantiles(latencies)}")

class Slow(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        time.sleep(2)
        text = body["messages"][-1]["content"]
        answer = json.dumps({"id": "x", "object": "chat.completion", "model": body["model"],
                             "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
                             "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
    def log_message(self, *args):
        pass

class Quiet(socketserver.ThreadingTCPServer):
    daemon_threads = True
    def handle_error(self, request, client_address):
        pass

server = Quiet(("127.0.0.1", 0), Slow)
threading.Thread(target=server.serve_forever, daemon=True).start()
with open("promptctl.toml", "w") as f:
    f.write(f'default_provider = "slow"\n[providers.slow]\nkind = "openai"\nbase_url = "http://127.0.0.1:{server.server_address[1]}"\napi_key_env = "SLOW_KEY"\n[lsp]\nlive_runs = true\n')
live = prompt_text(1).replace("model: echo", "model: gpt-4o")
with open(path_of(1), "w") as f:
    f.write(live)
client = Client(lsp({"SLOW_KEY": "sk-bench"}))
uri = client.start(path_of(1), live)
position = {"textDocument": {"uri": uri}, "position": {"line": 3, "character": 36}}

def completions():
    times = []
    for _ in range(20):
        start = time.monotonic()
        answer = client.request("textDocument/completion", position)
        client.until(lambda m: m.get("id") == answer)
        times.append(time.monotonic() - start)
    return times

idle = completions()
started = time.monotonic()
ids = [client.request("workspace/executeCommand", {"command": "promptctl.runAllTests", "arguments": [uri]})
       for _ in range(4)]
during = completions()
during_window = time.monotonic() - started
for answer in ids:
    reply = client.until(lambda m: m.get("id") == answer)
    assert "result" in reply, reply
runs_took = time.monotonic() - started
client.stop()
server.shutdown()
print(f"lsp, completion with no run under way: {quantiles(idle)}")
print(f"lsp, completion during 4 live runs of a 2 s model (all 20 answered {during_window:.2f} s after the runs began; the runs ended after {runs_took:.2f} s): {quantiles(during)}")
PY
