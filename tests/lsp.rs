//! `promptctl lsp` driven over stdio with real JSON-RPC messages, as an editor would:
//! initialize, open and edit a prompt, completion, hover, definition, malformed messages,
//! shutdown and exit.

mod common;
#[path = "support/stub_provider.rs"]
mod stub_provider;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use common::Project;
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(20);

/// The address space of a memory-limited server: far below what an unbounded render takes.
const MEMORY_LIMIT_KIB: u64 = 1024 * 1024;

/// A prompt whose tests double a list sixty times: 2^60 items unless a limit stops it.
const DOUBLING: &str = r#"model: echo
variables:
  n: {type: integer, required: true}
template: "{% set ns = namespace(l=[1]) %}{% for i in range(n) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|tojson }}"
tests:
  - name: doubles
    vars: {n: 60}
    assert:
      - {type: contains, value: "1"}
"#;

/// A prompt with 200 tests, each a loop that runs until its fuel is gone.
fn runaway_tests(count: usize) -> String {
    let mut text = String::from(
        "model: echo\nvariables:\n  n: {type: integer, required: true}\ntemplate: \"{% for i in range(n) %}{% for j in range(n) %}x{% endfor %}{% endfor %}\"\ntests:\n",
    );
    for index in 0..count {
        text.push_str(&format!(
            "  - name: t{index}\n    vars: {{n: 100000}}\n    assert:\n      - {{type: contains, value: x}}\n"
        ));
    }
    text
}

const PROMPT: &str = r#"model: echo
variables:
  name: {type: string, required: true, description: Who to greet.}
  tone: {type: string, default: friendly}
template: "Be {{ tone }}. Say hello to {{ name }}. {% include 'shared/_partials/sign.j2' %}"
tests:
  - name: greets Ada
    vars: {name: Ada}
    assert:
      - {type: contains, value: Ada}
"#;

/// A running server and the messages it sent, read on a thread.
struct Server {
    child: Child,
    stdin: ChildStdin,
    messages: Receiver<Value>,
    next_id: i64,
    project: Project,
}

impl Server {
    fn start() -> Server {
        let mut command = Command::new(assert_cmd::cargo::cargo_bin("promptctl"));
        command.arg("lsp");
        Server::spawn(command)
    }

    /// A server whose environment holds the stub provider's key.
    fn start_with_key() -> Server {
        let mut command = Command::new(assert_cmd::cargo::cargo_bin("promptctl"));
        command.arg("lsp").env("TEST_API_KEY", "sk-test");
        Server::spawn(command)
    }

    /// A server whose address space is limited to `MEMORY_LIMIT_KIB` (`ulimit -v`), so a
    /// render that is not bounded in memory aborts it.
    fn start_limited() -> Server {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            &format!("ulimit -v {MEMORY_LIMIT_KIB} && exec \"$0\" lsp"),
        ]);
        command.arg(assert_cmd::cargo::cargo_bin("promptctl"));
        Server::spawn(command)
    }

    fn spawn(mut command: Command) -> Server {
        let project = Project::new();
        project.write("prompts/greet/hello.yaml", PROMPT);
        project.write(
            "prompts/shared/_partials/sign.j2",
            "Sign as {{ tone }} bot.",
        );
        let mut child = command
            .current_dir(project.root())
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn promptctl lsp");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, messages) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            while let Some(body) = read_frame(&mut reader) {
                let value: Value = serde_json::from_slice(&body).expect("server sent JSON");
                if sender.send(value).is_err() {
                    break;
                }
            }
        });
        Server {
            child,
            stdin,
            messages,
            next_id: 0,
            project,
        }
    }

    fn uri(&self, relative: &str) -> String {
        let path = self
            .project
            .root()
            .canonicalize()
            .expect("root")
            .join(relative);
        format!("file://{}", path.display())
    }

    fn send_raw(&mut self, body: &[u8]) {
        write!(self.stdin, "Content-Length: {}\r\n\r\n", body.len()).expect("write");
        self.stdin.write_all(body).expect("write");
        self.stdin.flush().expect("flush");
    }

    fn notify(&mut self, method: &str, params: Value) {
        let message = json!({"jsonrpc": "2.0", "method": method, "params": params});
        self.send_raw(message.to_string().as_bytes());
    }

    /// Sends a request and returns its response (error or result).
    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send_request(method, params);
        self.wait_for(|m| m.get("id") == Some(&json!(id)) && m.get("method").is_none())
    }

    /// Sends a request without waiting for its response; returns its id.
    fn send_request(&mut self, method: &str, params: Value) -> i64 {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send_raw(message.to_string().as_bytes());
        id
    }

    /// Every message up to and including the first that `wanted` accepts, in order.
    fn messages_until(&self, wanted: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                Ok(message) => {
                    let found = wanted(&message);
                    seen.push(message);
                    if found {
                        return seen;
                    }
                }
                Err(_) => panic!("no such message within {TIMEOUT:?}: {seen:#?}"),
            }
        }
    }

    fn wait_for(&self, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                Ok(message) if wanted(&message) => return message,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => panic!("no answer within {TIMEOUT:?}"),
                Err(RecvTimeoutError::Disconnected) => panic!("the server closed stdout"),
            }
        }
    }

    fn diagnostics(&self, uri: &str) -> Vec<Value> {
        let message = self.wait_for(|m| {
            m["method"] == "textDocument/publishDiagnostics" && m["params"]["uri"] == uri
        });
        message["params"]["diagnostics"]
            .as_array()
            .expect("diagnostics")
            .clone()
    }

    fn initialize(&mut self) -> Value {
        let root = self.uri("");
        let response = self.request(
            "initialize",
            json!({"processId": null, "rootUri": root, "capabilities": {}}),
        );
        self.notify("initialized", json!({}));
        response
    }

    fn open(&mut self, relative: &str, text: &str) -> Vec<Value> {
        let uri = self.uri(relative);
        self.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "yaml", "version": 1, "text": text}}),
        );
        self.diagnostics(&uri)
    }

    fn change(&mut self, relative: &str, version: i64, text: &str) -> Vec<Value> {
        let uri = self.uri(relative);
        self.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": text}]}),
        );
        self.diagnostics(&uri)
    }

    fn at(&self, relative: &str, line: u32, character: u32) -> Value {
        json!({"textDocument": {"uri": self.uri(relative)}, "position": {"line": line, "character": character}})
    }

    /// Sends shutdown and exit, and returns the exit code.
    fn stop(mut self) -> i32 {
        let response = self.request("shutdown", Value::Null);
        assert_eq!(response["result"], Value::Null, "{response}");
        assert!(response.get("error").is_none(), "{response}");
        self.notify("exit", Value::Null);
        wait(&mut self.child)
    }
}

fn wait(child: &mut Child) -> i32 {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code().expect("exit code");
        }
        assert!(Instant::now() < deadline, "the server did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn read_frame(reader: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut length = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(value) = line.strip_prefix("Content-Length: ") {
            length = value.parse::<usize>().ok();
        }
    }
    let mut body = vec![0; length?];
    reader.read_exact(&mut body).ok()?;
    Some(body)
}

fn labels(response: &Value) -> Vec<String> {
    let items = match &response["result"] {
        Value::Array(items) => items.clone(),
        other => other["items"].as_array().cloned().unwrap_or_default(),
    };
    items
        .iter()
        .map(|item| item["label"].as_str().expect("label").to_owned())
        .collect()
}

#[test]
fn initialize_advertises_what_the_server_does() {
    let mut server = Server::start();
    let response = server.initialize();
    let capabilities = &response["result"]["capabilities"];
    assert_eq!(capabilities["textDocumentSync"], 1, "{response}");
    assert_eq!(capabilities["hoverProvider"], true);
    assert_eq!(capabilities["definitionProvider"], true);
    assert!(capabilities["completionProvider"].is_object());
    assert_eq!(response["result"]["serverInfo"]["name"], "promptctl");
    assert_eq!(server.stop(), 0);
}

#[test]
fn an_undeclared_variable_is_reported_at_its_range_and_a_fix_clears_it() {
    let mut server = Server::start();
    server.initialize();
    let file = "prompts/greet/hello.yaml";
    assert_eq!(server.open(file, PROMPT), Vec::<Value>::new());

    let broken = PROMPT.replace("hello to {{ name }}", "hello to {{ nmae }}");
    let found = server.change(file, 2, &broken);
    let undeclared: Vec<&Value> = found
        .iter()
        .filter(|d| d["code"] == "undeclared-variable")
        .collect();
    assert_eq!(undeclared.len(), 1, "{found:?}");
    let diagnostic = undeclared[0];
    let line = broken.lines().nth(4).expect("template line");
    let column = line.find("nmae").expect("nmae") as u64;
    assert_eq!(
        diagnostic["range"]["start"],
        json!({"line": 4, "character": column})
    );
    assert_eq!(
        diagnostic["range"]["end"],
        json!({"line": 4, "character": column + 4})
    );
    assert_eq!(diagnostic["severity"], 1);
    assert_eq!(diagnostic["source"], "promptctl");
    assert!(
        diagnostic["message"]
            .as_str()
            .expect("message")
            .contains("nmae"),
        "{diagnostic}"
    );

    // The same message as `promptctl check`, at the same place.
    server.project.write(file, &broken);
    let check = server.project.run(["check", "--format", "json"]).json();
    let from_check = check["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .find(|d| d["code"] == "undeclared-variable")
        .expect("check reports it")
        .clone();
    assert_eq!(from_check["message"], diagnostic["message"]);
    assert_eq!(from_check["line"], 5);
    assert_eq!(from_check["column"], column + 1);
    server.project.write(file, PROMPT);

    assert_eq!(server.change(file, 3, PROMPT), Vec::<Value>::new());
    assert_eq!(server.stop(), 0);
}

#[test]
fn a_template_syntax_error_inside_a_yaml_string_is_reported_in_place() {
    let mut server = Server::start();
    server.initialize();
    let file = "prompts/greet/hello.yaml";
    let broken = PROMPT.replace("{{ name }}", "{{ name }");
    let found = server.open(file, &broken);
    let syntax = found
        .iter()
        .find(|d| d["code"] == "template-syntax")
        .unwrap_or_else(|| panic!("no template-syntax diagnostic in {found:?}"));
    assert_eq!(syntax["range"]["start"]["line"], 4, "{syntax}");
    assert_eq!(server.stop(), 0);
}

#[test]
fn completion_offers_variables_partials_models_and_assertions() {
    let mut server = Server::start();
    server
        .project
        .write("promptctl.toml", "[models.gpt-4o]\nprovider = \"openai\"\n");
    server.initialize();
    let file = "prompts/greet/hello.yaml";
    // The user has just typed `{{ ` at the end of the template: the buffer is mid-edit.
    let editing = PROMPT.replace("{% include 'shared/_partials/sign.j2' %}\"", "{{ \"");
    server.open(file, &editing);
    let line = editing.lines().nth(4).expect("line");
    let after = line.rfind("{{ ").expect("open tag") + 3;
    let response = server.request("textDocument/completion", server.at(file, 4, after as u32));
    assert_eq!(labels(&response), ["name", "tone"], "{response}");

    let editing = PROMPT.replace("{% include 'shared/_partials/sign.j2' %}", "{% include '");
    server.change(file, 2, &editing);
    let line = editing.lines().nth(4).expect("line");
    let after = line.find("include '").expect("include") + "include '".len();
    let response = server.request("textDocument/completion", server.at(file, 4, after as u32));
    assert_eq!(
        labels(&response),
        ["shared/_partials/sign.j2"],
        "{response}"
    );

    let editing = PROMPT.replace("model: echo", "model: ");
    server.change(file, 3, &editing);
    let response = server.request("textDocument/completion", server.at(file, 0, 7));
    assert_eq!(labels(&response), ["gpt-4o", "echo"], "{response}");

    let editing = PROMPT.replace("{type: contains, value: Ada}", "{type: ");
    server.change(file, 4, &editing);
    let response = server.request("textDocument/completion", server.at(file, 9, 15));
    let types = labels(&response);
    assert!(
        types.contains(&"semantic_similarity".to_owned()),
        "{response}"
    );
    assert!(types.contains(&"contains".to_owned()));

    let editing = PROMPT.replace("{type: contains, value: Ada}", "{type: contains, ");
    server.change(file, 5, &editing);
    let response = server.request("textDocument/completion", server.at(file, 9, 25));
    let keys = labels(&response);
    assert!(keys.contains(&"threshold".to_owned()), "{response}");
    assert!(keys.contains(&"value".to_owned()));
    assert_eq!(server.stop(), 0);
}

#[test]
fn hover_shows_declarations_and_the_rendered_prompt() {
    let mut server = Server::start();
    server.initialize();
    let file = "prompts/greet/hello.yaml";
    server.open(file, PROMPT);
    let line = PROMPT.lines().nth(4).expect("line");
    let name = line.find("{{ name").expect("name") as u32 + 3;
    let response = server.request("textDocument/hover", server.at(file, 4, name + 1));
    let text = response["result"]["contents"]["value"]
        .as_str()
        .expect("hover");
    assert!(
        text.contains("name: {type: string, required: true}"),
        "{text}"
    );
    assert!(text.contains("Who to greet."), "{text}");
    assert_eq!(response["result"]["range"]["start"]["character"], name);

    let response = server.request("textDocument/hover", server.at(file, 4, 3));
    let text = response["result"]["contents"]["value"]
        .as_str()
        .expect("hover");
    assert!(
        text.contains("Be friendly. Say hello to Ada. Sign as friendly bot."),
        "{text}"
    );
    assert!(text.contains("greets Ada"), "{text}");

    // Outside any tag, nothing.
    let response = server.request("textDocument/hover", server.at(file, 0, 9));
    assert_eq!(response["result"], Value::Null, "{response}");
    assert_eq!(server.stop(), 0);
}

#[test]
fn definition_on_an_include_opens_the_partial() {
    let mut server = Server::start();
    server.initialize();
    let file = "prompts/greet/hello.yaml";
    server.open(file, PROMPT);
    let line = PROMPT.lines().nth(4).expect("line");
    let inside = line.find("_partials").expect("include") as u32;
    let response = server.request("textDocument/definition", server.at(file, 4, inside));
    assert_eq!(
        response["result"]["uri"],
        server.uri("prompts/shared/_partials/sign.j2"),
        "{response}"
    );
    // On a variable: its declaration.
    let name = line.find("{{ name").expect("name") as u32 + 3;
    let response = server.request("textDocument/definition", server.at(file, 4, name));
    assert_eq!(response["result"]["uri"], server.uri(file), "{response}");
    assert_eq!(
        response["result"]["range"]["start"],
        json!({"line": 2, "character": 2})
    );
    assert_eq!(server.stop(), 0);
}

#[test]
fn malformed_messages_are_answered_with_errors_never_a_crash() {
    let mut server = Server::start();
    server.send_raw(b"{this is not json");
    let error = server.wait_for(|m| m.get("error").is_some());
    assert_eq!(error["error"]["code"], -32700, "{error}");
    assert_eq!(error["id"], Value::Null);

    let response = server.request("textDocument/hover", json!({}));
    assert_eq!(response["error"]["code"], -32002, "{response}");

    server.initialize();
    let response = server.request("no/such/method", json!({}));
    assert_eq!(response["error"]["code"], -32601, "{response}");
    let response = server.request("textDocument/completion", json!({"textDocument": 7}));
    assert_eq!(response["error"]["code"], -32602, "{response}");
    server.send_raw(br#"{"jsonrpc":"2.0","id":99,"method":7}"#);
    let error = server.wait_for(|m| m.get("error").is_some());
    assert_eq!(error["error"]["code"], -32600, "{error}");
    assert_eq!(error["id"], 99);
    server.send_raw("\"é\"".as_bytes());
    let error = server.wait_for(|m| m.get("error").is_some());
    assert_eq!(error["error"]["code"], -32600, "{error}");
    // A notification with bad parameters is ignored.
    server.notify("textDocument/didOpen", json!({"textDocument": "no"}));

    // Still serving.
    let file = "prompts/greet/hello.yaml";
    assert_eq!(server.open(file, PROMPT), Vec::<Value>::new());
    assert_eq!(server.stop(), 0);
}

#[test]
fn requests_after_shutdown_are_errors_and_exit_without_shutdown_is_1() {
    let mut server = Server::start();
    server.initialize();
    let response = server.request("shutdown", Value::Null);
    assert_eq!(response["result"], Value::Null);
    let response = server.request("textDocument/hover", json!({}));
    assert_eq!(response["error"]["code"], -32600, "{response}");
    server.notify("exit", Value::Null);
    assert_eq!(wait(&mut server.child), 0);

    let mut server = Server::start();
    server.initialize();
    server.notify("exit", Value::Null);
    assert_eq!(wait(&mut server.child), 1);
}

#[test]
fn formatting_goes_through_promptctl_fmt() {
    let mut server = Server::start();
    let response = server.initialize();
    assert_eq!(
        response["result"]["capabilities"]["documentFormattingProvider"],
        true
    );
    let file = "prompts/greet/hello.yaml";
    let untidy = PROMPT.replace("model: echo\n", "model:    echo\n");
    server.open(file, &untidy);
    let expected = promptctl::format::format_prompt(&untidy).expect("formats");
    let params = json!({"textDocument": {"uri": server.uri(file)}, "options": {"tabSize": 2, "insertSpaces": true}});
    let response = server.request("textDocument/formatting", params.clone());
    let edits = response["result"].as_array().expect("edits").clone();
    assert_eq!(edits.len(), 1, "{response}");
    assert_eq!(edits[0]["newText"], expected);
    assert_eq!(
        edits[0]["range"]["start"],
        json!({"line": 0, "character": 0})
    );
    let lines = untidy.matches('\n').count();
    assert_eq!(
        edits[0]["range"]["end"],
        json!({"line": lines, "character": 0})
    );

    server.change(file, 2, &expected);
    let response = server.request("textDocument/formatting", params.clone());
    assert_eq!(response["result"], json!([]), "{response}");

    server.change(file, 3, "model: [");
    let response = server.request("textDocument/formatting", params);
    assert_eq!(response["error"]["code"], -32803, "{response}");
    assert_eq!(server.stop(), 0);
}

#[test]
fn editing_a_partial_checks_the_open_prompts_again() {
    let mut server = Server::start();
    server.initialize();
    let file = "prompts/greet/hello.yaml";
    assert_eq!(server.open(file, PROMPT), Vec::<Value>::new());
    let partial = "prompts/shared/_partials/sign.j2";
    let prompt_uri = server.uri(file);
    server.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": server.uri(partial), "languageId": "jinja", "version": 1, "text": "Sign as {{ mood }} bot."}}),
    );
    let found = server.diagnostics(&prompt_uri);
    assert!(
        found
            .iter()
            .any(|d| d["message"].as_str().is_some_and(|m| m.contains("mood"))),
        "{found:?}"
    );
    assert_eq!(server.stop(), 0);
}

#[test]
fn a_template_that_doubles_a_value_is_a_render_limit_and_the_server_lives() {
    let mut server = Server::start_limited();
    server.initialize();
    let file = "prompts/greet/doubling.yaml";
    let found = server.open(file, DOUBLING);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["code"], "render-limit", "{found:?}");
    // Every other way of growing a value is stopped the same way.
    for template in [
        "{% set ns = namespace(l=[1]) %}{% for i in range(n) %}{% set ns.l = ns.l|chain(ns.l) %}{% endfor %}{{ ns.l|length }}",
        "{% set ns = namespace(l=[1]) %}{% for i in range(n) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}{{ ns.l|tojson }}",
        "{% set ns = namespace(d={}) %}{% for i in range(n) %}{% set ns.d = {'a': ns.d, 'b': ns.d} %}{% endfor %}{{ ns.d }}",
        "{% set ns = namespace(s='ab') %}{% for i in range(n) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
    ] {
        let text = DOUBLING.replace(
            DOUBLING.lines().nth(3).expect("template line"),
            &format!("template: \"{template}\""),
        );
        let found = server.change(file, 2, &text);
        assert_eq!(found.len(), 1, "{template}: {found:?}");
        assert_eq!(found[0]["code"], "render-limit", "{template}: {found:?}");
    }
    assert_eq!(server.stop(), 0);
}

#[test]
fn a_newer_edit_cancels_the_checks_of_the_stale_ones() {
    let mut server = Server::start();
    server.initialize();
    let file = "prompts/greet/hello.yaml";
    assert_eq!(server.open(file, PROMPT), Vec::<Value>::new());
    let uri = server.uri(file);
    // Five quick edits, each a file of 200 runaway tests (seconds of checking each), then
    // the fix. Checked in turn, the fix's diagnostics would come after all five.
    let slow = runaway_tests(200);
    for version in 2..7 {
        server.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": slow}]}),
        );
    }
    server.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 7}, "contentChanges": [{"text": PROMPT}]}),
    );
    let mut stale = 0;
    loop {
        let found = server.diagnostics(&uri);
        if found.is_empty() {
            break;
        }
        stale += 1;
    }
    assert!(stale <= 1, "{stale} stale edits were checked and published");
    assert_eq!(server.stop(), 0);
}

#[test]
fn ids_that_are_not_numbers_or_strings_are_invalid_requests_and_shutdown_stops_diagnostics() {
    let mut server = Server::start();
    server.initialize();
    for id in [
        r#"{"a":1}"#,
        "[1]",
        "true",
        "null",
        "1.5",
        "1000000000000000000000000000000",
    ] {
        server.send_raw(
            format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"textDocument/hover","params":{{}}}}"#)
                .as_bytes(),
        );
        let error = server.wait_for(|m| m.get("error").is_some());
        assert_eq!(error["error"]["code"], -32600, "{id}: {error}");
        assert_eq!(error["id"], Value::Null, "{id}: {error}");
    }
    let response = server.request("shutdown", Value::Null);
    assert_eq!(response["result"], Value::Null);
    // After shutdown an edit publishes nothing: the next message is the refused request.
    let uri = server.uri("prompts/greet/hello.yaml");
    server.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": uri, "languageId": "yaml", "version": 1, "text": "nope: ["}}),
    );
    let response = server.request("textDocument/hover", json!({}));
    assert_eq!(response["error"]["code"], -32600, "{response}");
    let next = server.messages.recv_timeout(Duration::from_millis(300));
    assert!(next.is_err(), "nothing more after shutdown: {next:?}");
    server.notify("exit", Value::Null);
    assert_eq!(wait(&mut server.child), 0);
}

/// A prompt on a real model whose tests the lenses run.
const TESTED: &str = r#"model: gpt-4o
variables:
  name: {type: string, required: true}
template: "Say hello to {{ name }}."
tests:
  - name: greets Ada
    vars: {name: Ada}
    assert:
      - {type: contains, value: Ada}
  - vars: {name: Grace}
    assert:
      - {type: contains, value: Grace}
"#;

/// The project's configuration with the stub at `url` as its provider.
fn stub_config(url: &str, extra: &str) -> String {
    format!(
        "default_provider = \"stub\"\n[providers.stub]\nkind = \"openai\"\nbase_url = \"{url}\"\napi_key_env = \"TEST_API_KEY\"\nmax_retries = 0\n{extra}"
    )
}

/// The stub model's answer: the greeting asked for.
fn greeting(request: &stub_provider::SeenRequest) -> stub_provider::Reply {
    let message = stub_provider::last_user_message(&request.body);
    let name = message
        .trim_end_matches('.')
        .rsplit(' ')
        .next()
        .unwrap_or("you");
    stub_provider::openai_answer(&format!("Hello, {name}!"))
}

/// The diagnostics of the test results in a publishDiagnostics message.
fn test_results(message: &Value) -> Vec<Value> {
    message["params"]["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .filter(|d| d["code"] == "test-result")
        .cloned()
        .collect()
}

#[test]
fn a_lens_runs_one_test_from_the_unsaved_buffer_replayed_and_reports_it() {
    let mut server = Server::start();
    let file = "prompts/greet/tested.yaml";
    {
        // Record the answers once, live, against the stub; then the stub is gone.
        let stub = stub_provider::StubProvider::start(|request, _| greeting(request));
        server
            .project
            .write("promptctl.toml", &stub_config(&stub.url(), ""));
        server.project.write(file, TESTED);
        let outcome = common::Outcome::of(
            server
                .project
                .promptctl(["test", "--record", "greet/tested"])
                .env("TEST_API_KEY", "sk-test"),
        );
        assert_eq!(outcome.code, 0, "{}\n{}", outcome.stdout, outcome.stderr);
    }
    let capabilities = server.initialize()["result"]["capabilities"].clone();
    assert_eq!(capabilities["codeLensProvider"]["resolveProvider"], false);
    assert_eq!(
        capabilities["executeCommandProvider"]["commands"],
        json!(["promptctl.runTest", "promptctl.runAllTests"])
    );
    // The buffer is edited and not saved: the second test now expects what it cannot get.
    let editing = TESTED.replace("value: Grace}", "value: Lovelace}");
    server.open(file, &editing);
    let uri = server.uri(file);
    let lenses = server.request(
        "textDocument/codeLens",
        json!({"textDocument": {"uri": uri}}),
    );
    let lenses = lenses["result"].as_array().expect("lenses").clone();
    let shown: Vec<(u64, &str)> = lenses
        .iter()
        .map(|l| {
            (
                l["range"]["start"]["line"].as_u64().expect("line"),
                l["command"]["title"].as_str().expect("title"),
            )
        })
        .collect();
    assert_eq!(shown, [(4, "▶ run all"), (5, "▶ run"), (9, "▶ run")]);

    // Run the second test; ask for a completion while it runs.
    let started = Instant::now();
    let run = server.send_request("workspace/executeCommand", lenses[2]["command"].clone());
    let completion = server.send_request("textDocument/completion", server.at(file, 0, 7));
    let seen = server.messages_until(|m| m["id"] == json!(run));
    let elapsed = started.elapsed();
    let completion_at = seen.iter().position(|m| m["id"] == json!(completion));
    assert!(completion_at.is_some(), "{seen:#?}");
    let published = seen
        .iter()
        .find(|m| m["method"] == "textDocument/publishDiagnostics" && !test_results(m).is_empty())
        .expect("the result is published");
    let results = test_results(published);
    assert_eq!(results.len(), 1, "{results:#?}");
    assert_eq!(results[0]["severity"], 1, "a failure is an error");
    assert_eq!(results[0]["range"]["start"]["line"], 9);
    let message = results[0]["message"].as_str().expect("message");
    assert!(
        message.starts_with("failed, score 0.00: contains (line 12)"),
        "{message}"
    );
    let answer = &seen.last().expect("answer")["result"][0];
    assert_eq!(answer["status"], "failed", "{answer}");
    // Replayed: far below a second even for a debug build (the bench measures it).
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");

    // The hover on the test shows the answer.
    let hover = server.request("textDocument/hover", server.at(file, 10, 6));
    let text = hover["result"]["contents"]["value"]
        .as_str()
        .expect("hover");
    assert!(
        text.contains("failed") && text.contains("Hello, Grace!"),
        "{text}"
    );

    // Run them all: the first passes (information), the second fails.
    let all = server.send_request("workspace/executeCommand", lenses[0]["command"].clone());
    let seen = server.messages_until(|m| m["id"] == json!(all));
    let published = seen
        .iter()
        .rev()
        .find(|m| m["method"] == "textDocument/publishDiagnostics")
        .expect("published");
    let mut results = test_results(published);
    results.sort_by_key(|d| d["range"]["start"]["line"].as_u64());
    assert_eq!(results.len(), 2, "{results:#?}");
    assert_eq!(results[0]["severity"], 3, "a pass is information");
    assert!(
        results[0]["message"]
            .as_str()
            .expect("message")
            .starts_with("passed, score 1.00"),
        "{results:#?}"
    );
    // An edit forgets the results: they describe text that is gone.
    let diagnostics = server.change(file, 2, TESTED);
    assert!(
        diagnostics.iter().all(|d| d["code"] != "test-result"),
        "{diagnostics:#?}"
    );
    assert_eq!(server.stop(), 0);
}

#[test]
fn a_run_without_a_recording_says_so_and_a_live_run_is_cancelled_by_an_edit() {
    let mut server = Server::start();
    let file = "prompts/greet/tested.yaml";
    server.project.write(file, TESTED);
    server
        .project
        .write("promptctl.toml", &stub_config("http://127.0.0.1:9", ""));
    server.initialize();
    server.open(file, TESTED);
    let uri = server.uri(file);
    let run = server.send_request(
        "workspace/executeCommand",
        json!({"command": "promptctl.runTest", "arguments": [uri, 0]}),
    );
    let seen = server.messages_until(|m| m["id"] == json!(run));
    let published = seen
        .iter()
        .find(|m| m["method"] == "textDocument/publishDiagnostics")
        .expect("published");
    let results = test_results(published);
    assert_eq!(results[0]["severity"], 2, "{results:#?}");
    let message = results[0]["message"].as_str().expect("message");
    assert!(message.contains("no recording"), "{message}");
    assert!(message.contains("live_runs = true"), "{message}");
    // Without arguments (Helix has no lenses), "run all" runs the document edited last.
    let all = server.send_request(
        "workspace/executeCommand",
        json!({"command": "promptctl.runAllTests"}),
    );
    let seen = server.messages_until(|m| m["id"] == json!(all));
    let answer = &seen.last().expect("answer")["result"];
    assert_eq!(answer.as_array().map(Vec::len), Some(2), "{seen:#?}");
    // A test that does not exist is refused.
    let response = server.request(
        "workspace/executeCommand",
        json!({"command": "promptctl.runTest", "arguments": [uri, 7]}),
    );
    assert_eq!(response["error"]["code"], -32803, "{response}");
    assert_eq!(server.stop(), 0);

    // Live, against a model that takes its time: an edit cancels the run.
    let stub = stub_provider::StubProvider::start(|request, _| {
        greeting(request).after(Duration::from_secs(3))
    });
    let mut server = Server::start_with_key();
    server.project.write(file, TESTED);
    server.project.write(
        "promptctl.toml",
        &stub_config(&stub.url(), "[lsp]\nlive_runs = true\n"),
    );
    server.initialize();
    server.open(file, TESTED);
    let run = server.send_request(
        "workspace/executeCommand",
        json!({"command": "promptctl.runTest", "arguments": [server.uri(file), 0]}),
    );
    // Completion and an edit are answered while the model is still thinking.
    let started = Instant::now();
    let completion = server.request("textDocument/completion", server.at(file, 0, 7));
    assert!(completion.get("result").is_some(), "{completion}");
    assert!(started.elapsed() < Duration::from_secs(2));
    server.change(file, 2, &TESTED.replace("Ada}", "Ada Lovelace}"));
    let seen = server.messages_until(|m| m["id"] == json!(run));
    assert_eq!(
        seen.last().expect("answer")["error"]["code"],
        -32800,
        "{seen:#?}"
    );
    assert!(
        seen.iter()
            .filter(|m| m["method"] == "textDocument/publishDiagnostics")
            .all(|m| test_results(m).is_empty()),
        "{seen:#?}"
    );
    // Unchanged, the buffer's run reaches the model and comes back.
    let run = server.send_request(
        "workspace/executeCommand",
        json!({"command": "promptctl.runTest", "arguments": [server.uri(file), 1]}),
    );
    let seen = server.messages_until(|m| m["id"] == json!(run));
    assert_eq!(
        seen.last().expect("answer")["result"][0]["status"],
        "passed",
        "{seen:#?}"
    );
    assert_eq!(server.stop(), 0);
}

#[test]
fn a_reused_request_id_is_refused_and_shutdown_cancels_the_runs() {
    let stub = stub_provider::StubProvider::start(|request, _| {
        greeting(request).after(Duration::from_secs(2))
    });
    let mut server = Server::start_with_key();
    let file = "prompts/greet/tested.yaml";
    server.project.write(file, TESTED);
    server.project.write(
        "promptctl.toml",
        &stub_config(&stub.url(), "[lsp]\nlive_runs = true\n"),
    );
    server.initialize();
    server.open(file, TESTED);
    let uri = server.uri(file);
    let run = json!({"jsonrpc": "2.0", "id": 777, "method": "workspace/executeCommand",
        "params": {"command": "promptctl.runAllTests", "arguments": [uri]}});
    server.send_raw(run.to_string().as_bytes());
    server.send_raw(run.to_string().as_bytes());
    let refused = server.wait_for(|m| m["id"] == 777);
    assert_eq!(refused["error"]["code"], -32803, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("under way")),
        "{refused}"
    );
    // Shutdown during the run: the run is cancelled, nothing more is published.
    let shutdown = server.send_request("shutdown", Value::Null);
    let seen = server.messages_until(|m| m["id"] == 777);
    assert_eq!(
        seen.last().expect("answer")["error"]["code"],
        -32800,
        "{seen:#?}"
    );
    assert!(seen.iter().any(|m| m["id"] == json!(shutdown)), "{seen:#?}");
    assert!(
        seen.iter()
            .filter(|m| m["method"] == "textDocument/publishDiagnostics")
            .all(|m| test_results(m).is_empty()),
        "{seen:#?}"
    );
    server.notify("exit", Value::Null);
    assert_eq!(wait(&mut server.child), 0);
}
