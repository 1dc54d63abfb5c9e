//! `promptctl serve` against a real PostgreSQL: the real binary on a free port, every
//! endpoint, every error status, auth scopes, ETags, NOTIFY invalidation, cached reads
//! surviving a database that went away, graceful shutdown.

mod common;
#[path = "support/stub_provider.rs"]
mod stub_provider;

use std::process::Command;
use std::time::{Duration, Instant};

use common::server::{READ, RUN, Server, prompt, setup, sync};
use serde_json::json;

#[test]
fn api_endpoints_errors_scopes_etags_and_notify() {
    let (db, repo) = setup();
    db.rows(
        "INSERT INTO prompt_runs (run_id, service, name, version, environment, model_requested, \
         model_used, provider, latency_ms, input_tokens, output_tokens, cost_usd, quality_score, created_at) \
         SELECT gen_random_uuid(), 'billing', 'invoice', 1, 'production', 'gpt-4o-mini', 'gpt-4o-mini', \
           'openai', 100 + i * 10, 50, 20, 0.001 * i, 0.9, now() - (i || ' hours')::interval \
         FROM generate_series(1, 30) AS i",
    );
    let server = Server::start(
        &repo,
        &db.url,
        &[
            ("PROMPTCTL_READ_TOKENS", READ),
            ("PROMPTCTL_RUN_TOKENS", RUN),
        ],
        &["--run-rate-limit", "0"],
    );

    // Open endpoints.
    assert_eq!(server.get("/healthz", None).status, 200);
    assert_eq!(server.get("/readyz", None).status, 200);
    let openapi = server.get("/openapi.json", None).json();
    for path in [
        "/v1/prompts",
        "/v1/prompts/{service}/{name}",
        "/v1/prompts/{service}/{name}/render",
        "/v1/prompts/{service}/{name}/run",
        "/v1/stats",
    ] {
        assert!(
            openapi["paths"][path].is_object(),
            "{path} in the OpenAPI document"
        );
    }
    assert!(openapi["components"]["schemas"]["RenderRequest"].is_object());

    // Auth: 401 without or with an unknown token, 403 for a read token on run.
    server.get("/v1/prompts", None).error(401, "unauthorized");
    server
        .get("/v1/prompts", Some("nope"))
        .error(401, "unauthorized");
    server.get("/metrics", None).error(401, "unauthorized");
    server
        .post(
            "/v1/prompts/billing/invoice/run",
            Some(READ),
            &json!({"vars": {"x": "a"}}),
        )
        .error(403, "forbidden");

    // The list.
    let list = server.get("/v1/prompts", Some(READ));
    assert_eq!(list.status, 200, "{}", list.text);
    let list = list.json();
    assert_eq!(list["prompts"][0]["service"], "billing");
    assert_eq!(list["prompts"][0]["latest_version"], 2);
    assert_eq!(
        list["prompts"][0]["environments"]["production"]["version"],
        1
    );
    // A run token reads too.
    assert_eq!(server.get("/v1/prompts", Some(RUN)).status, 200);

    // One prompt by environment, version and latest; ETag and 304.
    let production = server.get("/v1/prompts/billing/invoice?env=production", Some(READ));
    assert_eq!(production.status, 200, "{}", production.text);
    assert_eq!(production.json()["version"], 1);
    assert_eq!(production.json()["model"], "gpt-4o-mini");
    let etag = production.header("etag").expect("an ETag");
    let again = server.request(
        "GET",
        "/v1/prompts/billing/invoice?env=production",
        Some(READ),
        None,
        &[("if-none-match", &etag)],
    );
    assert_eq!(again.status, 304);
    assert!(again.text.is_empty());
    let other = server.request(
        "GET",
        "/v1/prompts/billing/invoice?env=production",
        Some(READ),
        None,
        &[("if-none-match", "\"something-else\"")],
    );
    assert_eq!(other.status, 200);
    assert_eq!(
        server
            .get("/v1/prompts/billing/invoice?version=2", Some(READ))
            .json()["definition"]["body"]["template"],
        "second {{ x }}"
    );
    server
        .get("/v1/prompts/billing/nothing", Some(READ))
        .error(404, "not_found");
    server
        .get("/v1/prompts/billing/invoice?version=9", Some(READ))
        .error(404, "not_found");
    server
        .get("/v1/prompts/billing/invoice?env=mars", Some(READ))
        .error(404, "not_found");
    server
        .get("/v1/nowhere", Some(READ))
        .error(404, "not_found");

    // Render and its errors.
    let rendered = server.post(
        "/v1/prompts/billing/invoice/render",
        Some(READ),
        &json!({"env": "production", "vars": {"x": "hello"}}),
    );
    assert_eq!(rendered.status, 200, "{}", rendered.text);
    assert_eq!(rendered.json()["messages"][0]["content"], "first hello");
    assert_eq!(rendered.json()["messages"][0]["role"], "user");
    // A prompt that includes a partial renders with the partial of its version.
    repo.write("prompts/shared/signature.j2", "-- the {{ x }} team");
    repo.write(
        "prompts/billing/signed.yaml",
        "model: gpt-4o\nvariables:\n  x: {type: string}\ntemplate: \"Hi. {% include 'shared/signature.j2' %}\"\n",
    );
    repo.commit("signed");
    sync(&repo, &db);
    let signed = server.post(
        "/v1/prompts/billing/signed/render",
        Some(READ),
        &json!({"vars": {"x": "billing"}}),
    );
    assert_eq!(signed.status, 200, "{}", signed.text);
    assert_eq!(
        signed.json()["messages"][0]["content"],
        "Hi. -- the billing team"
    );
    let missing = server.post(
        "/v1/prompts/billing/invoice/render",
        Some(READ),
        &json!({"vars": {}}),
    );
    assert_eq!(missing.status, 422, "{}", missing.text);
    let missing = missing.json()["error"]["message"].to_string();
    assert!(missing.contains("`x`"), "{missing}");
    let wrong = server
        .post(
            "/v1/prompts/billing/invoice/render",
            Some(READ),
            &json!({"vars": {"x": 5}}),
        )
        .error(422, "invalid_variables");
    assert!(wrong.contains("`x`"), "{wrong}");
    server
        .post(
            "/v1/prompts/billing/invoice/render",
            Some(READ),
            &json!({"vars": 3}),
        )
        .error(422, "invalid");
    server
        .request(
            "POST",
            "/v1/prompts/billing/invoice/render",
            Some(READ),
            Some(b"{\"vars\": ".to_vec()),
            &[],
        )
        .error(400, "bad_request");
    let mut big = b"{\"vars\": {\"x\": \"".to_vec();
    big.extend(std::iter::repeat_n(b'a', 1024 * 1024 + 10));
    big.extend(b"\"}}");
    server
        .request(
            "POST",
            "/v1/prompts/billing/invoice/render",
            Some(READ),
            Some(big),
            &[],
        )
        .error(413, "payload_too_large");
    server
        .post(
            "/v1/prompts/billing/nothing/render",
            Some(READ),
            &json!({"vars": {}}),
        )
        .error(404, "not_found");

    // Run through the router (the offline echo provider answers with the prompt).
    let run = server.post(
        "/v1/prompts/billing/invoice/run",
        Some(RUN),
        &json!({"env": "production", "vars": {"x": "ran"}}),
    );
    assert_eq!(run.status, 200, "{}", run.text);
    assert_eq!(run.json()["output"], "first ran");
    assert_eq!(run.json()["version"], 1);
    server
        .post(
            "/v1/prompts/billing/nothing/run",
            Some(RUN),
            &json!({"env": "production", "vars": {"x": "a"}}),
        )
        .error(404, "not_found");

    // Stats from prompt_runs.
    let stats = server.get("/v1/stats?hours=48", Some(READ));
    assert_eq!(stats.status, 200, "{}", stats.text);
    let stats = stats.json();
    assert_eq!(stats["prompts"][0]["prompt"], "billing/invoice");
    assert_eq!(stats["prompts"][0]["calls"], 30);

    // Metrics.
    let metrics = server.get("/metrics", Some(READ));
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.text.contains("promptctl_cache_requests_total"),
        "{}",
        metrics.text
    );
    assert!(metrics.text.contains("promptctl_http_requests_total"));
    assert!(
        metrics
            .text
            .contains("gen_ai_client_operation_duration_seconds_bucket{"),
        "{}",
        metrics.text
    );
    assert!(metrics.text.contains("le=\"0.01\""));
    assert!(metrics.text.contains("gen_ai_client_token_usage_bucket{"));
    assert!(metrics.text.contains("gen_ai_token_type=\"input\""));
    assert!(metrics.text.contains("promptctl_executions_total"));

    // The dashboard.
    let index = server.get("/", Some(READ));
    assert_eq!(index.status, 200);
    assert!(index.text.contains("/prompts/billing/invoice"));
    let page = server.get("/prompts/billing/invoice?from=1&to=2", Some(READ));
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("class=\"del\""));
    assert!(page.text.contains("class=\"ins\""));
    assert!(page.text.contains("<svg"));

    // A sync's new version is visible within a second, to reads and to runs (production,
    // promoted in the same commit) alike.
    let run_production = || {
        let run = server.post(
            "/v1/prompts/billing/invoice/run",
            Some(RUN),
            &json!({"vars": {"x": "ran"}}),
        );
        assert_eq!(run.status, 200, "{}", run.text);
        run.json()["version"].clone()
    };
    assert_eq!(
        server.get("/v1/prompts/billing/invoice", Some(READ)).json()["version"],
        2
    );
    assert_eq!(run_production(), 1);
    repo.write("prompts/billing/invoice.yaml", &prompt("third"));
    repo.write(
        "environments.yaml",
        "prompts:\n  invoice:\n    production: {version: 3, model: gpt-4o-mini}\n",
    );
    repo.commit("v3");
    sync(&repo, &db);
    let synced = Instant::now();
    loop {
        let latest = server.get("/v1/prompts/billing/invoice", Some(READ)).json();
        if latest["version"] == 3 && run_production() == 3 {
            break;
        }
        assert!(
            synced.elapsed() < Duration::from_secs(1),
            "version 3 not read and run a second after sync"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn cached_reads_survive_a_database_that_went_away() {
    let (db, repo) = setup();
    let server = Server::start(&repo, &db.url, &[], &[]);
    let first = server.get("/v1/prompts/billing/invoice?env=production", None);
    assert_eq!(first.status, 200, "{}", first.text);
    assert!(first.header("x-promptctl-stale").is_none());
    // Cut the server off its database.
    let admin = common::db::connect(&db.runtime, &db.admin).expect("admin connection");
    db.runtime
        .block_on(admin.batch_execute(&format!(
            "ALTER DATABASE {0} ALLOW_CONNECTIONS false; \
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{0}' AND pid <> pg_backend_pid();",
            db.name
        )))
        .expect("cut connections");
    let deadline = Instant::now() + Duration::from_secs(5);
    let stale = loop {
        let reply = server.get("/v1/prompts/billing/invoice?env=production", None);
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.json()["version"], 1);
        if reply.header("x-promptctl-stale").is_some() || Instant::now() > deadline {
            break reply;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(stale.header("x-promptctl-stale").as_deref(), Some("true"));
    let ready = server.get("/readyz", None);
    assert_eq!(ready.status, 503, "{}", ready.text);
    assert_eq!(ready.json()["database"], "unreachable");
    // An uncached prompt cannot be read: 503 with the JSON error.
    server
        .get("/v1/prompts/billing/invoice?version=2", None)
        .error(503, "unavailable");
    db.runtime
        .block_on(admin.batch_execute(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS true",
            db.name
        )))
        .expect("reopen");
}

#[test]
fn refuses_the_network_without_tokens_and_stops_on_sigterm() {
    let (db, repo) = setup();
    let (code, _, stderr) =
        repo.run(&["serve", "--database-url", &db.url, "--listen", "0.0.0.0:0"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("refusing to listen"), "{stderr}");

    let mut server = Server::start(&repo, &db.url, &[], &[]);
    let pid = server.child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A client that opens a new connection for every request and gives up after `timeout`.
fn fresh_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(timeout)
        .build()
        .expect("a client")
}

/// Keeps `count` connections open to `address` until `stop`: a third idle, a third
/// sending an endless request head a byte a second (slowloris), a third sending a 100 kB
/// request body a byte a second; a connection the server closes is opened again. `open`
/// counts the connections held.
fn hold_connections(
    address: String,
    count: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> std::thread::JoinHandle<()> {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    std::thread::spawn(move || {
        let target: std::net::SocketAddr = address.parse().expect("an address");
        let mut held: Vec<Option<std::net::TcpStream>> = (0..count).map(|_| None).collect();
        let trickle = b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
        let slow_body: &[u8] = b"POST /v1/prompts/billing/invoice/render HTTP/1.1\r\nHost: x\r\n\
            Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"vars\": ";
        let mut tick = 0usize;
        while !stop.load(Ordering::SeqCst) {
            for (index, slot) in held.iter_mut().enumerate() {
                let slow = index % 3 != 0;
                let alive = match slot {
                    None => false,
                    Some(stream) => {
                        let mut byte = [0u8; 1];
                        let closed = matches!(stream.read(&mut byte), Ok(0))
                            || matches!(stream.read(&mut byte), Err(ref e) if e.kind() != std::io::ErrorKind::WouldBlock);
                        !closed
                            && (!slow
                                || stream
                                    .write_all(&trickle[tick % trickle.len()..][..1])
                                    .is_ok())
                    }
                };
                if !alive {
                    *slot = std::net::TcpStream::connect_timeout(&target, Duration::from_secs(1))
                        .ok()
                        .and_then(|mut stream| {
                            stream.set_nonblocking(true).ok()?;
                            match index % 3 {
                                1 => stream.write_all(b"GET /v1/prompts HTTP/1.1\r\n").ok()?,
                                2 => stream.write_all(slow_body).ok()?,
                                _ => {}
                            }
                            Some(stream)
                        });
                }
            }
            open.store(held.iter().flatten().count().max(1), Ordering::SeqCst);
            tick += 1;
            std::thread::sleep(Duration::from_millis(1000));
        }
    })
}

#[test]
fn idle_and_slowloris_connections_do_not_lock_other_clients_out() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let (db, repo) = setup();
    // A process allowed 256 file descriptors, against 500 connections that never finish
    // a request (kept open, and opened again whenever the server closes one).
    let server =
        Server::start_wrapped(&repo, &db.url, &[], &[], &["prlimit", "--nofile=256", "--"]);
    let stop = Arc::new(AtomicBool::new(false));
    let open = Arc::new(AtomicUsize::new(0));
    let attacker = hold_connections(server.address(), 500, stop.clone(), open.clone());
    // The attacker's first round (a connection it cannot open counts as not open).
    while open.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(100));
    }
    // Other clients are served within seconds, all along, past the header timeout.
    let client = fresh_client(Duration::from_secs(3));
    let url = format!("{}/v1/prompts/billing/invoice?env=production", server.base);
    let started = Instant::now();
    let mut served = 0;
    while started.elapsed() < Duration::from_secs(15) {
        let asked = Instant::now();
        let reply = server
            .runtime
            .block_on(async { client.get(&url).send().await });
        let status = reply.as_ref().map(|r| r.status().as_u16()).ok();
        assert_eq!(
            status,
            Some(200),
            "a client was not served within 3 s ({:?} after {:?}, {} attack connections open): {:?}",
            asked.elapsed(),
            started.elapsed(),
            open.load(Ordering::SeqCst),
            reply.as_ref().err()
        );
        served += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    stop.store(true, Ordering::SeqCst);
    attacker.join().expect("the attacker thread");
    assert!(served >= 10);
    let mut server = server;
    assert!(
        server.child.try_wait().expect("wait").is_none(),
        "the server exited"
    );
}

#[test]
fn idle_keep_alive_and_trickled_headers_are_closed_after_the_header_timeout() {
    use std::io::{Read, Write};
    let (db, repo) = setup();
    let server = Server::start(
        &repo,
        &db.url,
        &[],
        &["--header-timeout", "1", "--body-timeout", "1"],
    );
    let connect = || {
        let stream = std::net::TcpStream::connect(server.address()).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        stream
    };
    // Read until the server closes; how long that took.
    let closed_after = |stream: &mut std::net::TcpStream| {
        let started = Instant::now();
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer) {
                Ok(0) => return started.elapsed(),
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => {
                    return started.elapsed();
                }
                Err(err) => panic!("the connection stayed open: {err}"),
            }
        }
    };
    // A connection that never sends a byte.
    let mut idle = connect();
    assert!(closed_after(&mut idle) < Duration::from_secs(3));
    // A keep-alive connection idle after its first request.
    let mut kept = connect();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let mut head = [0u8; 12];
    kept.read_exact(&mut head).expect("a response");
    assert_eq!(&head, b"HTTP/1.1 200");
    assert!(closed_after(&mut kept) < Duration::from_secs(3));
    // A client trickling its headers a byte every 100 ms.
    let mut slow = connect();
    slow.write_all(b"GET /healthz HTTP/1.1\r\n").expect("write");
    let started = Instant::now();
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(4) {
        if slow.write_all(b"X").is_err() {
            closed = true;
            break;
        }
        slow.set_nonblocking(true).expect("nonblocking");
        let mut byte = [0u8; 64];
        match slow.read(&mut byte) {
            Ok(_) => {
                closed = true;
                break;
            }
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
        slow.set_nonblocking(false).expect("blocking");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(closed, "a trickling client kept its connection for 4 s");
    // A body that never finishes arriving: 400 after the body timeout, then closed.
    let mut body = connect();
    body.write_all(
        b"POST /v1/prompts/billing/invoice/render HTTP/1.1\r\nHost: x\r\n\
          Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"vars\"",
    )
    .expect("write");
    let started = Instant::now();
    let mut reply = String::new();
    let _ = body.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("\"bad_request\""), "{reply}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// GET `base``path` on a new connection and runtime: (status, whether marked stale,
/// body) and how long it took; fails after 20 s without an answer.
fn timed_get(base: &str, path: &str) -> ((u16, bool, String), Duration) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = fresh_client(Duration::from_secs(20));
    let started = Instant::now();
    let reply = runtime
        .block_on(async {
            let response = client.get(format!("{base}{path}")).send().await?;
            let status = response.status().as_u16();
            let stale = response.headers().contains_key("x-promptctl-stale");
            Ok::<_, reqwest::Error>((status, stale, response.text().await?))
        })
        .unwrap_or_else(|err| panic!("GET {path}: no answer in 20 s: {err}"));
    (reply, started.elapsed())
}

#[test]
fn a_read_database_that_never_answers_gives_503_or_the_cache_within_the_timeout() {
    let (db, repo) = setup();
    repo.write(
        "promptctl.toml",
        "default_provider = \"echo\"\n[database]\nconnect_timeout_s = 2\nquery_timeout_s = 2\n",
    );
    // Reads from a host that accepts connections and never answers.
    let hole = format!("postgres://postgres@{}/postgres", common::db::black_hole());
    let server = Server::start(&repo, &db.url, &[], &["--read-database-url", &hole]);
    let get = |path: &str| timed_get(&server.base, path);
    let ((status, _, text), took) = get("/v1/prompts/billing/invoice");
    assert_eq!(status, 503, "{text}");
    assert!(took < Duration::from_secs(5), "503 after {took:?}");

    // A read database that answered, then froze: cached prompts are served (stale), an
    // uncached one is 503 within the timeout, and so are reads asked at the same time.
    let proxy = common::db::FreezingProxy::new(&db.url);
    let server = Server::start(
        &repo,
        &db.url,
        &[],
        &["--read-database-url", &proxy.url, "--cache-ttl", "1"],
    );
    let get = |path: &str| timed_get(&server.base, path);
    let ((status, _, text), _) = get("/v1/prompts/billing/invoice?env=production");
    assert_eq!(status, 200, "{text}");
    proxy.freeze();
    std::thread::sleep(Duration::from_millis(1200));
    let ((status, stale, text), took) = get("/v1/prompts/billing/invoice?env=production");
    assert_eq!(status, 200, "{text}");
    assert!(stale, "a value past its TTL is marked stale");
    assert!(
        took < Duration::from_secs(1),
        "cached answer after {took:?}"
    );
    let started = Instant::now();
    let replies: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = ["?version=1", "?version=2", "", "?env=nowhere"]
            .into_iter()
            .map(|query| {
                let get = &get;
                scope.spawn(move || get(&format!("/v1/prompts/billing/invoice{query}")))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a reader"))
            .collect()
    });
    for ((status, _, text), _) in &replies {
        assert_eq!(*status, 503, "{text}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "four reads took {:?}",
        started.elapsed()
    );
}

#[test]
fn nul_and_malformed_input_is_refused_and_never_marks_the_database_down() {
    let (db, repo) = setup();
    let server = Server::start(&repo, &db.url, &[], &["--run-rate-limit", "0"]);
    let cached = server.get("/v1/prompts/billing/invoice", None);
    assert_eq!(cached.status, 200, "{}", cached.text);
    for path in [
        "/v1/prompts/billing/invoice%00",
        "/v1/prompts/bil%00ling/invoice",
        "/v1/prompts/billing/invoice?env=prod%00uction",
        "/v1/prompts/billing/invoice?version=1%00",
        "/v1/prompts?x=%00",
        "/prompts/billing/inv%00oice",
        "/v1/prompts/billing/invoice?version=abc",
        "/v1/prompts/billing/invoice?version=99999999999",
        "/v1/prompts/billing/%FF",
        "/v1/stats?hours=many",
    ] {
        let reply = server.get(path, None);
        assert!(
            reply.status == 400 || reply.status == 404,
            "{path}: {} {}",
            reply.status,
            reply.text
        );
        let body = reply.json();
        assert!(body["error"]["code"].is_string(), "{path}: {}", reply.text);
        assert!(
            body["error"]["message"].is_string(),
            "{path}: {}",
            reply.text
        );
    }
    // A request head far past the 64 KiB read buffer (hyper's default takes 400 KiB).
    let huge = "a".repeat(300_000);
    let reply = server.request(
        "GET",
        "/v1/prompts/billing/invoice",
        None,
        None,
        &[("x-padding", huge.as_str())],
    );
    assert_eq!(reply.status, 431, "{}", reply.text);
    for route in ["render", "run"] {
        server
            .post(
                &format!("/v1/prompts/billing/invoice/{route}"),
                None,
                &json!({"env": "prod\u{0}uction", "vars": {"x": "a"}}),
            )
            .error(400, "bad_request");
    }
    // A statement the database refuses is an error of that request, not an outage.
    db.rows("ALTER TABLE prompt_environments RENAME TO prompt_environments_away");
    let refused = server.get("/v1/prompts/billing/invoice?env=staging", None);
    assert_eq!(refused.status, 500, "{}", refused.text);
    db.rows("ALTER TABLE prompt_environments_away RENAME TO prompt_environments");

    let health = server.get("/healthz", None).json();
    assert_eq!(health["database"], "reachable", "{health}");
    let again = server.get("/v1/prompts/billing/invoice", None);
    assert_eq!(again.status, 200, "{}", again.text);
    assert!(
        again.header("x-promptctl-stale").is_none(),
        "served as stale"
    );
    let fresh = server.get("/v1/prompts/billing/invoice?version=1", None);
    assert_eq!(fresh.status, 200, "{}", fresh.text);
}

#[test]
fn tokens_in_query_strings_never_reach_the_log() {
    let (db, repo) = setup();
    let server = Server::start(&repo, &db.url, &[("PROMPTCTL_READ_TOKENS", READ)], &[]);
    for path in [
        "/v1/prompts?token=SECRET123",
        "/v1/prompts/billing/invoice?env=production&access_token=SECRET456",
        "/metrics?api_key=SECRET789",
        "/no/such/route?token=SECRET000",
    ] {
        let reply = server.get(path, None);
        assert!(reply.status >= 400, "{path}: {}", reply.status);
    }
    assert_eq!(
        server.get("/v1/prompts?token=SECRET111", Some(READ)).status,
        200
    );
    let log = server.stop();
    assert!(log.contains("/v1/prompts"), "requests are logged:\n{log}");
    for secret in ["SECRET1", "SECRET4", "SECRET7", "SECRET0"] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

#[test]
fn sigterm_lets_the_request_in_flight_finish() {
    let (db, repo) = setup();
    let provider = stub_provider::StubProvider::start(|_, _| {
        stub_provider::openai_answer("late but whole").after(Duration::from_millis(1500))
    });
    repo.write(
        "promptctl.toml",
        &format!(
            "default_provider = \"slow\"\n[providers.slow]\nkind = \"openai\"\nbase_url = \"{}/v1\"\n",
            provider.url()
        ),
    );
    let mut server = Server::start(&repo, &db.url, &[], &["--run-rate-limit", "0"]);
    let base = server.base.clone();
    let in_flight = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let response = reqwest::Client::new()
                .post(format!("{base}/v1/prompts/billing/invoice/run"))
                .json(&json!({"env": "production", "vars": {"x": "a"}}))
                .send()
                .await?;
            let status = response.status().as_u16();
            Ok::<_, reqwest::Error>((status, response.text().await?))
        })
    });
    std::thread::sleep(Duration::from_millis(500));
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let (code, text) = in_flight
        .join()
        .expect("the client")
        .expect("an answer to the request in flight");
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("late but whole"), "{text}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A new connection after the signal is refused: the listener is closed.
    assert!(std::net::TcpStream::connect(server.address()).is_err());
}

#[test]
fn timeouts_and_limits_out_of_range_are_refused() {
    let repo = common::git::TestRepo::new();
    repo.write("promptctl.toml", "");
    let url = "postgres://postgres@127.0.0.1:1/nothing";
    for extra in [
        ["--header-timeout", "0"],
        ["--body-timeout", "0"],
        ["--header-timeout", "99999999999999999"],
        ["--max-connections", "0"],
    ] {
        let mut args = vec!["serve", "--database-url", url, "--listen", "127.0.0.1:0"];
        args.extend(extra);
        let (code, _, stderr) = repo.run(&args);
        assert_eq!(code, 2, "{extra:?}: {stderr}");
    }
    repo.write("promptctl.toml", "[database]\nquery_timeout_s = 0\n");
    let (code, _, stderr) = repo.run(&["get", "x", "--database-url", url]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("query_timeout_s"), "{stderr}");
}
