//! `promptctl healthcheck` (a container's `HEALTHCHECK`) against the real `promptctl serve`
//! on a free port: exit 0 when `/healthz` answers 200, also with the database down; 1 for
//! any other status, a refused connection or a server that never answers; 2 for bad input.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;

use common::git::TestRepo;
use common::server::{READ, RUN, Server, free_port, setup};
use common::{Outcome, Project, promptctl_command};

/// `promptctl healthcheck ARGS` run in `dir`, its URL variable cleared.
fn healthcheck(dir: &Path, args: &[&str]) -> Outcome {
    let mut command = promptctl_command();
    command
        .current_dir(dir)
        .env_remove("PROMPTCTL_HEALTHCHECK_URL")
        .arg("healthcheck")
        .args(args);
    Outcome::of(&mut command)
}

#[test]
fn a_running_server_is_healthy_and_any_other_answer_is_not() {
    let (db, repo) = setup();
    let server = Server::start(
        &repo,
        &db.url,
        &[
            ("PROMPTCTL_READ_TOKENS", READ),
            ("PROMPTCTL_RUN_TOKENS", RUN),
        ],
        &[],
    );
    let healthz = format!("{}/healthz", server.base);
    let here = repo.path();

    healthcheck(here, &["--url", &healthz])
        .code(0)
        .stdout_has(&format!("healthy: {healthz} answered 200"));
    let json = healthcheck(here, &["--format", "json", "--url", &healthz])
        .code(0)
        .json();
    assert_eq!(json["healthy"], true);
    assert_eq!(json["status"], 200);

    // The URL from the environment, as a container sets it.
    let mut command = promptctl_command();
    command
        .current_dir(here)
        .env("PROMPTCTL_HEALTHCHECK_URL", &healthz)
        .arg("healthcheck");
    Outcome::of(&mut command).code(0);

    // Without --url: `/healthz` at `[serve] listen`, the unspecified address on loopback.
    let project = Project::new();
    project.write(
        "promptctl.toml",
        &format!("[serve]\nlisten = \"0.0.0.0:{}\"\n", server_port(&server)),
    );
    healthcheck(project.root(), &[])
        .code(0)
        .stdout_has("http://127.0.0.1:");

    // An answer that is not 200: a route behind a token (401).
    healthcheck(here, &["--url", &format!("{}/v1/prompts", server.base)])
        .code(1)
        .stderr_has("answered 401, not 200");
    let json = healthcheck(
        here,
        &[
            "--format",
            "json",
            "--url",
            &format!("{}/v1/prompts", server.base),
        ],
    )
    .code(1)
    .json();
    assert_eq!(json["healthy"], false);
    assert_eq!(json["status"], 401);

    // The server gone: nothing listens on its port.
    let _ = server.stop();
    healthcheck(here, &["--url", &healthz])
        .code(1)
        .stderr_has("cannot reach")
        .stderr_has("Connection refused")
        .stderr_has("is `promptctl serve` running");
}

fn server_port(server: &Server) -> String {
    server
        .address()
        .rsplit_once(':')
        .map(|(_, port)| port.to_owned())
        .expect("host:port")
}

#[test]
fn healthz_answers_while_the_database_is_unreachable() {
    let repo = TestRepo::new();
    repo.write("promptctl.toml", "");
    // Nothing listens on this port: the server starts, /healthz says "unreachable".
    let nowhere = format!("postgres://postgres@127.0.0.1:{}/none", free_port());
    let server = Server::start(&repo, &nowhere, &[], &[]);
    let body = server.get("/healthz", None).json();
    assert_eq!(body["database"], "unreachable", "{body}");
    healthcheck(repo.path(), &["--url", &format!("{}/healthz", server.base)]).code(0);
    // /readyz is the probe that wants the database.
    healthcheck(repo.path(), &["--url", &format!("{}/readyz", server.base)])
        .code(1)
        .stderr_has("answered 503, not 200");
    // Without tokens (loopback), an unknown route is a plain 404.
    healthcheck(repo.path(), &["--url", &format!("{}/nope", server.base)])
        .code(1)
        .stderr_has("answered 404, not 200");
}

#[test]
fn a_server_that_never_answers_is_unhealthy_after_the_timeout() {
    // Accepts connections and reads, never writes.
    let listener = TcpListener::bind("127.0.0.1:0").expect("a listener");
    let address = listener.local_addr().expect("its address");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(4).flatten() {
            let mut reader = stream.try_clone().expect("a clone");
            std::thread::spawn(move || {
                let mut buffer = [0u8; 1024];
                while matches!(reader.read(&mut buffer), Ok(n) if n > 0) {}
            });
            held.push(stream);
        }
        std::thread::park();
    });
    let project = Project::new();
    healthcheck(
        project.root(),
        &[
            "--timeout",
            "1",
            "--url",
            &format!("http://{address}/healthz"),
        ],
    )
    .code(1)
    .stderr_has("no answer from")
    .stderr_has("within 1 s");
}

#[test]
fn bad_urls_and_timeouts_are_bad_input() {
    let project = Project::new();
    for url in ["ftp://127.0.0.1/healthz", "127.0.0.1:8080", "http://"] {
        healthcheck(project.root(), &["--url", url])
            .code(2)
            .stderr_has("is not an http:// or https:// URL")
            .no_panic();
    }
    healthcheck(project.root(), &["--timeout", "0"])
        .code(2)
        .stderr_has("timeout");
    project.write("promptctl.toml", "[serve]\nlisten = \"localhost\"\n");
    healthcheck(project.root(), &[])
        .code(2)
        .stderr_has("cannot derive the health URL from the listen address `localhost`");
}

#[test]
fn messages_hide_the_urls_credentials_and_cut_a_huge_url() {
    let project = Project::new();
    // Nothing listens on this port.
    let port = free_port();
    let secret = format!("http://ada:hunter2@127.0.0.1:{port}/healthz");
    let refused = healthcheck(project.root(), &["--url", &secret]);
    refused
        .code(1)
        .stderr_has("cannot reach")
        .stderr_has(&format!("http://***@127.0.0.1:{port}/healthz"));
    assert!(!refused.stderr.contains("hunter2"), "{}", refused.stderr);
    let json = healthcheck(project.root(), &["--format", "json", "--url", &secret]);
    json.code(1);
    assert!(!json.stdout.contains("hunter2"), "{}", json.stdout);
    assert_eq!(
        json.json()["url"],
        format!("http://***@127.0.0.1:{port}/healthz")
    );
    // Refused as bad input, the credentials hidden all the same.
    let bad = healthcheck(
        project.root(),
        &["--url", "ftp://ada:hunter2@127.0.0.1/healthz"],
    );
    bad.code(2).stderr_has("ftp://***@127.0.0.1/healthz");
    assert!(!bad.stderr.contains("hunter2"), "{}", bad.stderr);

    // A 100,000-character URL is cut to its first 200 characters in the message.
    let huge = format!("http://127.0.0.1:{port}/{}", "a".repeat(100_000));
    let cut = healthcheck(project.root(), &["--url", &huge]);
    cut.code(1).stderr_has("cannot reach").stderr_has("a…");
    assert!(cut.stderr.len() < 2_000, "{} bytes", cut.stderr.len());
    let scheme = format!("{}://127.0.0.1/healthz", "s".repeat(100_000));
    let cut = healthcheck(project.root(), &["--url", &scheme]);
    cut.code(2).no_panic();
    assert!(cut.stderr.len() < 2_000, "{} bytes", cut.stderr.len());
}
