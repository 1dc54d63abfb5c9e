//! OpenTelemetry export end to end: `promptctl serve` runs prompts and exports each run as a
//! GenAI span over OTLP/HTTP to a real receiver on loopback, which decodes the payloads
//! with the OpenTelemetry protobuf definitions (`opentelemetry-proto`); and with the
//! receiver black-holed, runs go on and the dropped spans are counted on `/metrics`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::server::{READ, RUN, Server, setup, sync};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;

/// Spans received, with their resource's `service.name`.
type Received = Arc<Mutex<Vec<(String, Span)>>>;

/// An OTLP/HTTP receiver: `POST /v1/traces` bodies decoded as `ExportTraceServiceRequest`.
fn receiver() -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let received: Received = Arc::default();
    let spans = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let spans = spans.clone();
            std::thread::spawn(move || serve_exports(stream, &spans));
        }
    });
    (url, received)
}

fn serve_exports(stream: TcpStream, spans: &Received) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut stream = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let mut length = 0;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        assert_eq!(path, "/v1/traces");
        let request =
            ExportTraceServiceRequest::decode(body.as_slice()).expect("an OTLP trace export");
        for resource in request.resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(AnyValue::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    spans.lock().expect("lock").push((service.clone(), span));
                }
            }
        }
        let _ = stream.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
        );
    }
}

/// A span's attribute as text (strings and integers).
fn attribute(span: &Span, key: &str) -> Option<String> {
    let value = span
        .attributes
        .iter()
        .find(|a| a.key == key)?
        .value
        .as_ref()?;
    match value.value.as_ref()? {
        AnyValue::StringValue(s) => Some(s.clone()),
        AnyValue::IntValue(n) => Some(n.to_string()),
        other => Some(format!("{other:?}")),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Waits until `received` holds `count` spans (at most 20 s).
fn wait_for(received: &Received, count: usize) -> Vec<(String, Span)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let spans = received.lock().expect("lock").clone();
        if spans.len() >= count {
            return spans;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    received.lock().expect("lock").clone()
}

const TELEMETRY: &str = "\n[telemetry]\nexport_interval_s = 0.1\n";

#[test]
fn serve_exports_one_genai_span_per_run_inside_the_callers_trace() {
    let (db, repo) = setup();
    sync(&repo, &db);
    let (url, received) = receiver();
    let config = std::fs::read_to_string(repo.path().join("promptctl.toml")).expect("config");
    repo.write("promptctl.toml", &format!("{config}{TELEMETRY}"));
    let server = Server::start(
        &repo,
        &db.url,
        &[
            ("PROMPTCTL_RUN_TOKENS", RUN),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &url),
            ("OTEL_SERVICE_NAME", "billing-api"),
        ],
        &["--run-rate-limit", "0"],
    );
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let parent = "b7ad6b7169203331";
    let body =
        serde_json::to_vec(&json!({"env": "production", "vars": {"x": "hi"}})).expect("json");
    let traceparent = format!("00-{trace}-{parent}-01");
    let run = server.request(
        "POST",
        "/v1/prompts/billing/invoice/run",
        Some(RUN),
        Some(body.clone()),
        &[
            ("traceparent", &traceparent),
            ("tracestate", "vendor=opaque"),
        ],
    );
    assert_eq!(run.status, 200, "{}", run.text);
    let run_id = run.json()["run_id"].as_str().expect("a run id").to_owned();
    // Without a traceparent: a trace of its own.
    let alone = server.request(
        "POST",
        "/v1/prompts/billing/invoice/run",
        Some(RUN),
        Some(body),
        &[],
    );
    assert_eq!(alone.status, 200, "{}", alone.text);
    // A run that fails before a model is called has a span too, with its error type.
    let unfit = serde_json::to_vec(&json!({"env": "production", "vars": {}})).expect("json");
    let failed = server.request(
        "POST",
        "/v1/prompts/billing/invoice/run",
        Some(RUN),
        Some(unfit),
        &[("traceparent", &traceparent)],
    );
    assert_eq!(failed.status, 422, "{}", failed.text);
    let spans = wait_for(&received, 3);
    let deadline = Instant::now() + Duration::from_secs(10);
    while db.count("SELECT count(*) FROM prompt_runs") < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = server.stop();
    assert_eq!(spans.len(), 3, "{log}");
    let (_, unfit) = spans
        .iter()
        .find(|(_, s)| attribute(s, "error.type").is_some())
        .expect("the failed run's span");
    assert_eq!(
        attribute(unfit, "error.type").as_deref(),
        Some("render_failed")
    );
    assert_eq!(hex(&unfit.trace_id), trace);
    let spans: Vec<(String, Span)> = spans
        .iter()
        .filter(|(_, s)| attribute(s, "error.type").is_none())
        .cloned()
        .collect();
    let (service, span) = spans
        .iter()
        .find(|(_, s)| attribute(s, "promptctl.run_id").as_deref() == Some(run_id.as_str()))
        .expect("the run's span");
    assert_eq!(service, "billing-api");
    assert_eq!(span.name, "chat gpt-4o-mini");
    assert_eq!(hex(&span.trace_id), trace, "the caller's trace continues");
    assert_eq!(hex(&span.parent_span_id), parent);
    assert_eq!(span.trace_state, "vendor=opaque");
    for (key, value) in [
        ("gen_ai.operation.name", "chat"),
        ("gen_ai.provider.name", "echo"),
        ("gen_ai.request.model", "gpt-4o-mini"),
        ("gen_ai.response.model", "gpt-4o-mini"),
        ("promptctl.prompt", "billing/invoice"),
        ("promptctl.version", "1"),
        ("promptctl.environment", "production"),
    ] {
        assert_eq!(
            attribute(span, key).as_deref(),
            Some(value),
            "{key}: {span:?}"
        );
    }
    for key in ["gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"] {
        assert!(attribute(span, key).is_some(), "{key}: {span:?}");
    }
    assert!(
        attribute(span, "gen_ai.input.messages").is_none(),
        "content only when opted in"
    );
    let (_, other) = spans
        .iter()
        .find(|(_, s)| s.span_id != span.span_id)
        .expect("the other span");
    assert_ne!(hex(&other.trace_id), trace);
    assert!(other.parent_span_id.is_empty());
    // The trace id is stored with the run.
    let stored = db.rows(&format!(
        "SELECT trace_id FROM prompt_runs WHERE run_id = '{run_id}'"
    ));
    assert_eq!(stored.len(), 1, "{log}");
    assert_eq!(
        stored[0].get::<_, Option<String>>(0).as_deref(),
        Some(trace)
    );
}

#[test]
fn a_black_holed_receiver_costs_runs_nothing_and_the_drops_are_counted() {
    let (db, repo) = setup();
    sync(&repo, &db);
    // Accepts connections and never answers.
    let hole = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", hole.local_addr().expect("address"));
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in hole.incoming().flatten() {
            held.push(stream);
        }
    });
    let config = std::fs::read_to_string(repo.path().join("promptctl.toml")).expect("config");
    repo.write(
        "promptctl.toml",
        &format!("{config}\n[telemetry]\nendpoint = \"{url}\"\nexport_interval_s = 0.05\ntimeout_s = 0.5\nmax_queue = 16\n"),
    );
    let server = Server::start(
        &repo,
        &db.url,
        &[
            ("PROMPTCTL_RUN_TOKENS", RUN),
            ("PROMPTCTL_READ_TOKENS", READ),
        ],
        &["--run-rate-limit", "0"],
    );
    let body = json!({"env": "production", "vars": {"x": "hi"}});
    let started = Instant::now();
    for _ in 0..300 {
        let run = server.post("/v1/prompts/billing/invoice/run", Some(RUN), &body);
        assert_eq!(run.status, 200, "{}", run.text);
    }
    // Generous: only a hang (a run waiting on the exporter) would pass it.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    let metrics = server.get("/metrics", Some(READ)).text;
    let dropped: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("promptctl_otel_spans_dropped_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    server.stop();
    assert!(dropped > 0.0, "no drops counted:\n{metrics}");
}

#[path = "support/stub_provider.rs"]
mod stub_provider;

#[test]
fn a_run_with_retries_and_a_fallback_gets_a_child_span_per_attempt_and_content_on_request() {
    use stub_provider::{Reply, StubProvider, openai_answer};
    let stub = StubProvider::start(|request, _| {
        if request.body["model"] == "first-model" {
            Reply::json(503, json!({"error": {"message": "overloaded"}}))
        } else {
            openai_answer("fallback answer")
        }
    });
    let (url, received) = receiver();
    let repo = common::git::TestRepo::new();
    repo.write(
        "promptctl.toml",
        &format!(
            "[providers.stub]\nkind = \"openai\"\nbase_url = \"{}/v1\"\nmax_retries = 1\n\n[models.first-model]\nprovider = \"stub\"\nfallbacks = [\"second-model\"]\n\n[models.second-model]\nprovider = \"stub\"\n\n[telemetry]\nendpoint = \"{url}\"\ncapture_content = true\n",
            stub.url()
        ),
    );
    repo.write(
        "prompts/support/reply.yaml",
        "model: first-model\nvariables:\n  x: {type: string}\ntemplate: \"Answer {{ x }}\"\n",
    );
    repo.commit("v1");
    let (code, stdout, stderr) =
        repo.run(&["run", "reply", "--env", "production", "--var", "x=me"]);
    assert_eq!(code, 0, "{stdout} {stderr}");
    // The export flushes before the command exits.
    let spans = received.lock().expect("lock").clone();
    assert_eq!(spans.len(), 4, "{spans:#?}");
    let (_, run) = spans
        .iter()
        .find(|(_, s)| s.parent_span_id.is_empty())
        .expect("the run's span");
    assert_eq!(run.name, "chat first-model");
    assert_eq!(
        attribute(run, "gen_ai.response.model").as_deref(),
        Some("second-model")
    );
    assert_eq!(
        attribute(run, "gen_ai.provider.name").as_deref(),
        Some("openai")
    );
    assert_eq!(run.kind, 1, "INTERNAL over the requests' CLIENT spans");
    let input = attribute(run, "gen_ai.input.messages").expect("the rendered prompt, opted in");
    assert!(input.contains("Answer me"), "{input}");
    let output = attribute(run, "gen_ai.output.messages").expect("the answer, opted in");
    assert!(output.contains("fallback answer"), "{output}");
    let mut children: Vec<&Span> = spans
        .iter()
        .map(|(_, s)| s)
        .filter(|s| s.parent_span_id == run.span_id)
        .collect();
    children.sort_by_key(|s| s.start_time_unix_nano);
    let names: Vec<&str> = children.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["chat first-model", "chat first-model", "chat second-model"]
    );
    assert_eq!(
        attribute(children[0], "error.type").as_deref(),
        Some("provider_error")
    );
    assert_eq!(
        attribute(children[0], "server.address").as_deref(),
        Some("127.0.0.1")
    );
    assert!(children.iter().all(|c| c.kind == 3), "CLIENT");
    assert!(attribute(children[2], "error.type").is_none());
    assert!(children.iter().all(|c| c.trace_id == run.trace_id));
}

#[test]
fn a_bad_variable_turns_the_export_off_with_a_warning_and_a_bad_file_is_an_error_at_its_line() {
    let repo = common::git::TestRepo::new();
    repo.write("promptctl.toml", "default_provider = \"echo\"\n");
    repo.write(
        "prompts/support/reply.yaml",
        "model: gpt-4o\nvariables:\n  x: {type: string}\ntemplate: \"Hi {{ x }}\"\n",
    );
    repo.commit("v1");
    let args = ["run", "reply", "--var", "x=me"];
    let (code, stdout, stderr) = repo.run_env(
        &args,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "bogus"),
        ],
    );
    assert_eq!(code, 0, "{stdout} {stderr}");
    assert!(stderr.contains("runs are not exported"), "{stderr}");
    let (code, _, stderr) = repo.run_env(
        &args,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
            ("OTEL_SDK_DISABLED", "TRUE"),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("export"), "{stderr}");
    for (bad, needle) in [
        ("endpoint = \"collector:4318\"", "not an OTLP/HTTP endpoint"),
        ("endpoint = \"\"", "not an OTLP/HTTP endpoint"),
        (
            "headers = { \"x-key\" = \"a\\nb\" }",
            "cannot be sent over HTTP",
        ),
        (
            "headers = { \"bad header\" = \"v\" }",
            "not an HTTP header name",
        ),
    ] {
        repo.write(
            "promptctl.toml",
            &format!("default_provider = \"echo\"\n[telemetry]\n{bad}\n"),
        );
        let (code, _, stderr) = repo.run(&args);
        assert_eq!(code, 2, "{bad}: {stderr}");
        assert!(
            stderr.contains(needle) && stderr.contains("promptctl.toml:3"),
            "{bad}: {stderr}"
        );
    }
}
