//! Clients generated from the served `/openapi.json`, unmodified, work against the real
//! server (issue 17): `scripts/generated-clients.sh` generates one with
//! openapi-python-client and one with openapi-typescript + openapi-fetch (`tsc --strict`),
//! and each lists prompts, pages through them, gets one by environment, lists its
//! versions, renders, runs, and reads a parsed 403 with a read token.
//!
//! It installs the pinned tools from PyPI and npm on its first run (into
//! `target/client-tools`), so it is ignored by default: run it with
//! `cargo test --test generated_clients -- --ignored`.

mod common;

use std::process::Command;

use common::server::{READ, RUN, Server, setup_with};

#[test]
#[ignore = "installs openapi-python-client and openapi-typescript; run with --ignored"]
fn generated_python_and_typescript_clients_work() {
    let (db, repo) = setup_with(&[
        "billing/refund",
        "support/greeting",
        "support/reply",
        "support/summary",
    ]);
    let server = Server::start(
        &repo,
        &db.url,
        &[
            ("PROMPTCTL_READ_TOKENS", READ),
            ("PROMPTCTL_RUN_TOKENS", RUN),
        ],
        &["--run-rate-limit", "0"],
    );
    let root = env!("CARGO_MANIFEST_DIR");
    let output = Command::new("bash")
        .arg(format!("{root}/scripts/generated-clients.sh"))
        .args([server.base.as_str(), READ, RUN, "5"])
        .env(
            "PROMPTCTL_CLIENT_TOOLS",
            format!("{root}/target/client-tools"),
        )
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("python client: ok"), "{stdout}");
    assert!(stdout.contains("typescript client: ok"), "{stdout}");
}
