//! `promptctl serve` against a real PostgreSQL: the real binary on a free port, every
//! endpoint, every error status, auth scopes, ETags, NOTIFY invalidation, cached reads
//! surviving a database that went away, graceful shutdown.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::server::{READ, RUN, Server, prompt, setup};
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
    let (code, stdout, stderr) = repo.run(&["sync", "--database-url", &db.url]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
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
    let (code, stdout, stderr) = repo.run(&["sync", "--database-url", &db.url]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
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
