//! The API contract of `promptctl serve`, checked by independent tools against the real
//! server over a synced test database: `openapi-spec-validator` (PyPI) must accept the
//! served `/openapi.json`, and `schemathesis` (PyPI), driven by that document with every
//! check but `positive_data_acceptance` (a schema-valid body may still lack a prompt's
//! variables, and 422 is right then), must find no failure with a read token and with a
//! run token. Then the contract's details: one error shape, authentication first, and the
//! selection, ETag and rate-limit semantics.
//!
//! The tools are found through `OPENAPI_SPEC_VALIDATOR` and `SCHEMATHESIS`, then the
//! virtualenv `.ci/run` installs under the target folder, then `PATH`. Without them the test
//! fails saying how to install them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::server::{READ, RUN, Server, setup};
use serde_json::{Value, json};

/// The command-line tool `name`: `variable`, the lint virtualenv, or `PATH`.
fn tool(variable: &str, name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(variable) {
        return PathBuf::from(path);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| manifest.join("target"), PathBuf::from);
    let candidate = target.join("lint-venv/bin").join(name);
    if candidate.is_file() {
        return candidate;
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "{name} not found: run `.ci/run` once (it installs it into target/lint-venv), \
         or `pip install openapi-spec-validator schemathesis`, or set {variable} to its path"
    );
}

fn tokens() -> [(&'static str, &'static str); 2] {
    [
        ("PROMPTCTL_READ_TOKENS", READ),
        ("PROMPTCTL_RUN_TOKENS", RUN),
    ]
}

/// Runs `command`, returning (success, stdout and stderr).
fn output(command: &mut Command) -> (bool, String) {
    let out = command.output().expect("the tool runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_served_document_validates_and_fuzzing_it_finds_nothing() {
    let (db, repo) = setup();
    let server = Server::start(&repo, &db.url, &tokens(), &["--run-rate-limit", "0"]);
    let document = server.get("/openapi.json", None);
    assert_eq!(document.status, 200);
    let work = tempfile::tempdir().expect("a temporary folder");
    let file = work.path().join("openapi.json");
    std::fs::write(&file, &document.text).expect("write the document");
    let started = Instant::now();
    let (ok, log) =
        output(Command::new(tool("OPENAPI_SPEC_VALIDATOR", "openapi-spec-validator")).arg(&file));
    assert!(ok, "openapi-spec-validator rejects /openapi.json:\n{log}");

    for token in [READ, RUN] {
        let (ok, log) = output(
            Command::new(tool("SCHEMATHESIS", "schemathesis"))
                .current_dir(work.path())
                .args(["run", &format!("{}/openapi.json", server.base)])
                .args([
                    "--checks",
                    "all",
                    "--exclude-checks",
                    "positive_data_acceptance",
                ])
                .args(["--header", &format!("Authorization: Bearer {token}")])
                .args(["--max-examples", "25", "--max-time", "25", "--workers", "1"])
                .args(["--request-timeout", "10", "--no-color"]),
        );
        assert!(
            ok,
            "schemathesis found failures with the {token} token:\n{log}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "the validator and the fuzz took {:?}",
        started.elapsed()
    );
}

#[test]
fn the_document_declares_what_the_server_does() {
    let (db, repo) = setup();
    let server = Server::start(&repo, &db.url, &tokens(), &[]);
    let document = server.get("/openapi.json", None).json();
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let mut ids = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            let id = operation["operationId"].as_str().expect("an operation id");
            ids.push(id.to_owned());
            let public = ["/healthz", "/readyz", "/openapi.json"].contains(&path.as_str());
            assert_eq!(
                operation["security"].is_null(),
                public,
                "{method} {path}: security"
            );
            for (status, response) in operation["responses"].as_object().expect("responses") {
                assert!(
                    response["description"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty()),
                    "{method} {path} {status}: no description"
                );
                if status.starts_with('4') || status.starts_with('5') && !public {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
            }
            if !public {
                for status in ["400", "401"] {
                    assert!(
                        operation["responses"][status].is_object(),
                        "{method} {path}: {status} not listed"
                    );
                }
                assert!(
                    operation["responses"]["401"]["headers"]["WWW-Authenticate"].is_object(),
                    "{method} {path}: 401 without WWW-Authenticate"
                );
            }
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().expect("a name");
                let declared = parameter["in"].as_str().expect("in");
                let expected = if path.contains(&format!("{{{name}}}")) {
                    "path"
                } else if ["if-none-match", "traceparent", "tracestate"]
                    .iter()
                    .any(|header| name.eq_ignore_ascii_case(header))
                {
                    "header"
                } else {
                    "query"
                };
                assert_eq!(declared, expected, "{method} {path}: {name}");
            }
        }
    }
    for id in [
        "list_prompts",
        "get_prompt",
        "render_prompt",
        "run_prompt",
        "get_stats",
    ] {
        assert!(ids.iter().any(|i| i == id), "no operation {id}: {ids:?}");
    }
    let codes: Vec<&str> = document["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("the error codes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for code in [
        "bad_request",
        "unauthorized",
        "forbidden",
        "not_found",
        "method_not_allowed",
        "payload_too_large",
        "unsupported_media_type",
        "invalid",
        "invalid_variables",
        "render_failed",
        "render_limit",
        "rate_limited",
        "internal",
        "provider_error",
        "unavailable",
    ] {
        assert!(codes.contains(&code), "{code} missing from {codes:?}");
    }
    let vars = &document["components"]["schemas"]["RenderRequest"]["properties"]["vars"];
    assert_eq!(vars["type"], "object", "{vars}");
    assert_eq!(vars["additionalProperties"], true, "{vars}");
    // The defaults are in the document itself.
    let text = document.to_string();
    assert!(text.contains("the latest version"));
    assert!(text.contains("`production` environment"));
}

/// Asserts the SPEC section 7 body as JSON with `code` and `status`.
fn assert_error(reply: &common::server::Reply, status: u16, code: &str) {
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("application/json"),
        "{status} {code}: {}",
        reply.text
    );
    reply.error(status, code);
}

#[test]
fn every_error_has_one_shape_and_authentication_comes_first() {
    let (db, repo) = setup();
    let server = Server::start(&repo, &db.url, &tokens(), &[]);

    // No valid token: 401, whatever else is wrong.
    for (method, path) in [
        ("GET", "/v1/stats?hours=x"),
        ("GET", "/v1/prompts/billing/invoice?version=x"),
        ("GET", "/v1/prompts/billing/invoice?env=%00"),
        ("GET", "/v1/prompts/%FF/invoice"),
        ("DELETE", "/v1/prompts/billing/invoice"),
        ("GET", "/v1/nowhere"),
        ("POST", "/v1/prompts/billing/invoice/render"),
    ] {
        for token in [None, Some("nope")] {
            let reply = server.request(method, path, token, Some(b"{".to_vec()), &[]);
            assert_error(&reply, 401, "unauthorized");
            assert_eq!(reply.header("www-authenticate").as_deref(), Some("Bearer"));
        }
    }
    // A read token on run: 403 before the body is looked at.
    let reply = server.request(
        "POST",
        "/v1/prompts/billing/invoice/run",
        Some(READ),
        Some(b"{".to_vec()),
        &[],
    );
    assert_error(&reply, 403, "forbidden");
    let both = json!({"env": "production", "version": 2, "vars": {"x": "a"}});
    assert_error(
        &server.post("/v1/prompts/billing/invoice/run", Some(RUN), &both),
        422,
        "invalid",
    );
    assert_error(
        &server.post(
            "/v1/prompts/billing/invoice/run",
            Some(RUN),
            &json!({"version": 9, "vars": {"x": "ran"}}),
        ),
        404,
        "not_found",
    );

    // Framework rejections in the same shape.
    assert_error(
        &server.get("/v1/stats?hours=x", Some(READ)),
        400,
        "bad_request",
    );
    assert_error(
        &server.get("/v1/prompts/billing/invoice?version=-1", Some(READ)),
        400,
        "bad_request",
    );
    assert_error(
        &server.get("/v1/prompts/%FF%FE/invoice", Some(READ)),
        400,
        "bad_request",
    );
    assert_error(&server.get("/v1/nowhere", Some(READ)), 404, "not_found");
    for (method, path, allow) in [
        ("DELETE", "/v1/prompts/billing/invoice", "GET,HEAD"),
        ("GET", "/v1/prompts/billing/invoice/run", "POST"),
        ("PUT", "/v1/prompts", "GET,HEAD"),
    ] {
        let reply = server.request(method, path, Some(RUN), None, &[]);
        assert_error(&reply, 405, "method_not_allowed");
        assert_eq!(
            reply.header("allow").as_deref(),
            Some(allow),
            "{method} {path}"
        );
    }
    let reply = server.runtime.block_on(async {
        let response = server
            .http
            .post(format!("{}/v1/prompts/billing/invoice/render", server.base))
            .bearer_auth(READ)
            .header("content-type", "text/plain")
            .body("{\"vars\": {\"x\": \"a\"}}")
            .send()
            .await
            .expect("a response");
        common::server::Reply {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            text: response.text().await.expect("a body"),
        }
    });
    assert_error(&reply, 415, "unsupported_media_type");
    let mut big = b"{\"vars\": {\"x\": \"".to_vec();
    big.extend(std::iter::repeat_n(b'a', 1024 * 1024 + 10));
    big.extend(b"\"}}");
    let reply = server.request(
        "POST",
        "/v1/prompts/billing/invoice/run",
        Some(RUN),
        Some(big),
        &[],
    );
    assert_error(&reply, 413, "payload_too_large");
    // The open routes stay open.
    assert_eq!(server.get("/healthz", None).status, 200);
    assert_eq!(server.get("/openapi.json", None).status, 200);
}

#[test]
fn selection_etags_and_the_rate_limit_follow_the_document() {
    let (db, repo) = setup();
    let server = Server::start(&repo, &db.url, &tokens(), &["--run-rate-limit", "0.05"]);

    // `env` and `version` together: 422, never one silently dropped.
    assert_error(
        &server.get(
            "/v1/prompts/billing/invoice?version=2&env=production",
            Some(READ),
        ),
        422,
        "invalid",
    );
    let both = json!({"env": "production", "version": 2, "vars": {"x": "a"}});
    assert_error(
        &server.post("/v1/prompts/billing/invoice/render", Some(READ), &both),
        422,
        "invalid",
    );

    // Run with a version runs that version on its own model (production pins version 1
    // on gpt-4o-mini; version 2 is on gpt-4o).
    let run = server.post(
        "/v1/prompts/billing/invoice/run",
        Some(RUN),
        &json!({"version": 2, "vars": {"x": "ran"}}),
    );
    assert_eq!(run.status, 200, "{}", run.text);
    let run = run.json();
    assert_eq!(run["version"], 2);
    assert_eq!(run["output"], "second ran");
    assert_eq!(run["model_requested"], "gpt-4o");
    assert_eq!(run["environment"], Value::Null);
    let rendered = server.post(
        "/v1/prompts/billing/invoice/render",
        Some(READ),
        &json!({"version": 2, "vars": {"x": "ran"}}),
    );
    assert_eq!(rendered.json()["messages"][0]["content"], "second ran");

    // The rate limit (0.05 a second, bursts of 1, which the run above took): the next run
    // waits, and says how long.
    let limited = server.post(
        "/v1/prompts/billing/invoice/run",
        Some(RUN),
        &json!({"vars": {"x": "ran"}}),
    );
    assert_error(&limited, 429, "rate_limited");
    let wait: u64 = limited
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=20).contains(&wait), "Retry-After: {wait}");

    // ETags compare weakly, in lists, and `*` matches.
    let latest = server.get("/v1/prompts/billing/invoice", Some(READ));
    let etag = latest.header("etag").expect("an ETag");
    for value in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", W/{etag}"),
        format!("W/\"a,b\" ,{etag}"),
        "*".to_owned(),
    ] {
        let reply = server.request(
            "GET",
            "/v1/prompts/billing/invoice",
            Some(READ),
            None,
            &[("if-none-match", &value)],
        );
        assert_eq!(reply.status, 304, "If-None-Match: {value}");
        assert_eq!(reply.header("etag").as_deref(), Some(etag.as_str()));
    }
    for value in ["\"other\"", "W/\"other\", \"x\"", "garbage", &etag[1..]] {
        let reply = server.request(
            "GET",
            "/v1/prompts/billing/invoice",
            Some(READ),
            None,
            &[("if-none-match", value)],
        );
        assert_eq!(reply.status, 200, "If-None-Match: {value}");
    }
}
