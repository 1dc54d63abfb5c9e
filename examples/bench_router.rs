//! The router's benchmark (not a test; `scripts/bench-router.sh` runs it in release mode).
//!
//! 1. Overhead: a tiny HTTP provider in this process answers at once; the harness sends a
//!    fixed rate of calls (open loop, `RATE` per second for `SECONDS`) first as plain HTTP
//!    requests to the provider (the same client library, the same body), then through
//!    `Router::execute` with recording on (into `BENCH_DATABASE_URL`); the overhead is the
//!    difference of the two latency distributions at each percentile.
//!    Then the same rate with the recorder's database down (a closed port): the difference
//!    at each percentile, and how long `shutdown(500 ms)` takes (the test suite asserts
//!    neither; it checks only that records are dropped, not runs).
//! 2. Recording throughput: `ROWS` run rows written in flushes of `BATCH_ROWS` with the writer's
//!    binary COPY.
//!
//! usage: cargo run --release --example bench_router -- DATABASE_URL [RATE] [SECONDS] [ROWS]
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use promptctl::config::Settings;
use promptctl::registry::runs::{BATCH_ROWS, QUEUE_CAPACITY, RunRecord, RunRecorder};
use promptctl::repo::{Body, Definition};
use promptctl::router::{Bundle, PromptSource, ResolvedPrompt, Router, new_run_id};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;

const ANSWER: &str = r#"{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14}}"#;

/// A keep-alive HTTP/1.1 server answering every POST with `ANSWER` at once.
async fn provider() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let mut buffer = Vec::with_capacity(8192);
                let mut chunk = [0u8; 8192];
                loop {
                    // Read one request: headers, then Content-Length bytes of body.
                    let (head_end, length) = loop {
                        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
                            let length = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (end + 4, length);
                        }
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    };
                    while buffer.len() < head_end + length {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buffer.drain(..head_end + length);
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{ANSWER}",
                        ANSWER.len()
                    );
                    if stream.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let position = p * (sorted.len() - 1) as f64;
    let low = position.floor() as usize;
    let high = position.ceil() as usize;
    sorted[low] + (sorted[high] - sorted[low]) * (position - low as f64)
}

/// The latencies of `bench/hello` executed through `router` at `rate` calls a second.
async fn executions(
    router: &Router,
    vars: &Arc<BTreeMap<String, serde_json::Value>>,
    rate: u64,
    seconds: u64,
) -> Vec<f64> {
    let (router, vars) = (router.clone(), vars.clone());
    fixed_rate(rate, seconds, move || {
        let router = router.clone();
        let vars = vars.clone();
        async move {
            router
                .execute("bench/hello", "production", &vars)
                .await
                .unwrap();
        }
    })
    .await
}

/// Sends `rate` calls per second for `seconds` (open loop), returning sorted latencies (ms).
async fn fixed_rate<F, Fut>(rate: u64, seconds: u64, call: F) -> Vec<f64>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let call = Arc::new(call);
    let latencies = Arc::new(Mutex::new(Vec::with_capacity((rate * seconds) as usize)));
    let mut ticker = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity((rate * seconds) as usize);
    for _ in 0..rate * seconds {
        ticker.tick().await;
        let call = call.clone();
        let latencies = latencies.clone();
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            call().await;
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            latencies.lock().await.push(ms);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut all = std::mem::take(&mut *latencies.lock().await);
    all.sort_by(f64::total_cmp);
    all
}

fn summary(name: &str, sorted: &[f64]) {
    println!(
        "{name:<22} n={:<6} p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
        sorted.len(),
        percentile(sorted, 0.5),
        percentile(sorted, 0.9),
        percentile(sorted, 0.99),
        sorted[sorted.len() - 1]
    );
}

/// The `i`th run of a fleet: 500 prompts, three versions each, production and staging,
/// two models, 2 % errors (so up to 12,000 rollup keys).
fn record(i: usize) -> RunRecord {
    RunRecord {
        run_id: new_run_id(),
        source: String::new(),
        trace_id: None,
        service: format!("svc{}", i % 50),
        name: format!("prompt_{}", i % 500),
        version: Some(((i / 500) % 3) as i32 + 1),
        environment: Some(
            if i.is_multiple_of(7) {
                "staging"
            } else {
                "production"
            }
            .into(),
        ),
        side: None,
        model_requested: "gpt-4o".into(),
        model_used: Some(
            if i.is_multiple_of(20) {
                "claude-sonnet-4-5"
            } else {
                "gpt-4o"
            }
            .into(),
        ),
        provider: Some("openai".into()),
        latency_ms: (i % 997) as f64 * 1.7,
        input_tokens: 120,
        output_tokens: 40,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        cost_usd: Some(0.0007),
        error: i
            .is_multiple_of(50)
            .then(|| "openai answered HTTP 500".into()),
        attempt_errors: None,
        quality_score: None,
        sampled: false,
        input_text: None,
        output_text: None,
        created_at: SystemTime::now(),
    }
}

/// An OTLP/HTTP receiver on its own thread (not the benchmark's runtime): reads each
/// export and answers 200.
fn otlp_receiver() -> u16 {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line.trim().is_empty() {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':')
                            && name.eq_ignore_ascii_case("content-length")
                        {
                            length = value.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err()
                        || stream
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                            .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .expect("usage: bench_router DATABASE_URL [RATE] [SECONDS] [ROWS]");
    let rate: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let seconds: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(10);
    let rows: usize = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(200_000);

    let port = provider().await;
    let base = format!("http://127.0.0.1:{port}/v1");
    let settings = Settings::parse(
        &format!(
            "[providers.local]\nkind = \"openai\"\nbase_url = \"{base}\"\n\n[models.bench-model]\nprovider = \"local\"\ninput_usd_per_mtok = 2.5\noutput_usd_per_mtok = 10\n"
        ),
        std::path::Path::new("promptctl.toml"),
    )
    .unwrap();
    let prompt = ResolvedPrompt {
        service: "bench".into(),
        name: "hello".into(),
        environment: Some("production".into()),
        side: None,
        canary_weight: None,
        version: Some(1),
        model: "bench-model".into(),
        definition: Definition {
            model: "bench-model".into(),
            parameters: BTreeMap::new(),
            variables: BTreeMap::new(),
            body: Body::Template("Say hello to {{ name }}.".into()),
        },
        partials: BTreeMap::new(),
        monitor: Vec::new(),
    };
    let bundle = Bundle {
        format: 1,
        commit: None,
        environments: vec!["production".into()],
        prompts: vec![prompt],
    };
    let router = Router::new(
        &settings,
        PromptSource::Static(Box::new(bundle.clone())),
        Some(url.clone()),
    );
    let vars: Arc<BTreeMap<String, serde_json::Value>> = Arc::new(BTreeMap::from([(
        "name".to_owned(),
        serde_json::json!("Ada"),
    )]));

    // The same request the router sends, as plain HTTP from the same harness.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let body = serde_json::json!({"model": "bench-model", "messages": [{"role": "user", "content": "Say hello to Ada."}]});
    let endpoint = format!("{base}/chat/completions");
    // Warm both paths (connections, the recorder's connection and partitions).
    for _ in 0..200 {
        client
            .post(&endpoint)
            .json(&body)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        router
            .execute("bench/hello", "production", &vars)
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let plain = {
        let client = client.clone();
        let body = body.clone();
        let endpoint = endpoint.clone();
        fixed_rate(rate, seconds, move || {
            let client = client.clone();
            let body = body.clone();
            let endpoint = endpoint.clone();
            async move {
                let response = client.post(&endpoint).json(&body).send().await.unwrap();
                let _: serde_json::Value = response.json().await.unwrap();
            }
        })
        .await
    };
    let routed = executions(&router, &vars, rate, seconds).await;
    // The same with every run exported as an OpenTelemetry span (OTLP/HTTP, protobuf) to a
    // receiver on loopback (the local provider's server answers the exports with 200).
    let telemetry = promptctl::config::TelemetrySettings::default();
    let traces = format!("http://127.0.0.1:{}/v1/traces", otlp_receiver());
    let export = tokio::task::spawn_blocking(move || {
        promptctl::telemetry::otlp::SpanExport::install(&telemetry, traces, None)
    })
    .await
    .unwrap()
    .unwrap();
    let exported = executions(&router, &vars, rate, seconds).await;
    tokio::task::spawn_blocking(move || export.shutdown(Duration::from_secs(10)))
        .await
        .unwrap();
    let stats = router.shutdown(Duration::from_secs(10)).await;
    println!("overhead at {rate} calls/s for {seconds} s, recording on:");
    summary("plain HTTP", &plain);
    summary("Router::execute", &routed);
    summary("execute, spans exported", &exported);
    for p in [0.5, 0.9, 0.99] {
        println!(
            "overhead p{:<4} {:+.3} ms, with span export {:+.3} ms",
            (p * 100.0) as u32,
            percentile(&routed, p) - percentile(&plain, p),
            percentile(&exported, p) - percentile(&plain, p)
        );
    }
    println!(
        "recorder: {} rows written, {} dropped",
        stats.written, stats.dropped
    );

    // A database that is down costs dropped records, never slower runs: the same rate with
    // the recorder pointed at a port nothing listens on.
    let down = Router::new(
        &settings,
        PromptSource::Static(Box::new(bundle)),
        Some("postgres://postgres@127.0.0.1:1/nothing".to_owned()),
    );
    let routed_down = executions(&down, &vars, rate, seconds).await;
    let started = Instant::now();
    let stats = down.shutdown(Duration::from_millis(500)).await;
    summary("execute, database down", &routed_down);
    for p in [0.5, 0.9, 0.99] {
        println!(
            "database down p{:<4} {:+.3} ms",
            (p * 100.0) as u32,
            percentile(&routed_down, p) - percentile(&routed, p)
        );
    }
    println!(
        "database down: {} rows dropped, shutdown(500 ms) took {:.0} ms",
        stats.dropped,
        started.elapsed().as_secs_f64() * 1000.0
    );

    // Recording throughput: the recorder itself (queue, batches of BATCH_ROWS, binary
    // COPY, the rollups of every row added up and appended once a second), fed as fast as
    // its queue takes rows; the time runs until shutdown has flushed the last row and the
    // last rollups.
    let monitoring = promptctl::config::MonitoringSettings::default();
    let runs: Vec<RunRecord> = (0..rows).map(record).collect();
    let recorder = RunRecorder::start(url.clone(), &monitoring);
    // Connect and migrate before the clock starts.
    recorder.record(record(rows));
    while recorder.stats().written == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    for (index, run) in runs.into_iter().enumerate() {
        while (index as u64 + 1).saturating_sub(recorder.stats().written)
            >= (QUEUE_CAPACITY as u64) - 1_000
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        recorder.record(run);
    }
    let stats = recorder.shutdown(Duration::from_secs(60)).await;
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "recording: {} rows in {elapsed:.2} s = {:.0} rows/s (recorder with rollups, {BATCH_ROWS} rows a flush, {} dropped, {} unrolled)",
        stats.written - 1,
        (stats.written - 1) as f64 / elapsed,
        stats.dropped,
        stats.unrolled
    );
}
