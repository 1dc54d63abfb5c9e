//! The real `promptctl serve` on a free port over a synced test database, for the server
//! and dashboard tests.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::db::TestDb;
use super::git::TestRepo;
use serde_json::Value;

pub const READ: &str = "read-token-1";
pub const RUN: &str = "run-token-1";

pub fn prompt(template: &str) -> String {
    format!(
        "model: gpt-4o\nparameters: {{temperature: 0.2}}\nvariables:\n  x: {{type: string}}\ntemplate: \"{template} {{{{ x }}}}\"\n"
    )
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The server process, killed when dropped.
pub struct Server {
    pub child: Child,
    /// Everything the server wrote to stderr so far.
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
    pub base: String,
    pub http: reqwest::Client,
    pub runtime: tokio::runtime::Runtime,
}

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|_| panic!("JSON: {}", self.text))
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
    /// The SPEC section 7 error body with `code`.
    pub fn error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "{}", self.text);
        let body = self.json();
        assert_eq!(body["error"]["code"], code, "{}", self.text);
        body["error"]["message"]
            .as_str()
            .expect("a message")
            .to_owned()
    }
}

impl Server {
    pub fn start(repo: &TestRepo, url: &str, env: &[(&str, &str)], extra: &[&str]) -> Server {
        Server::start_wrapped(repo, url, env, extra, &[])
    }

    /// The server started through `wrapper` (a command that runs the rest of its
    /// arguments, such as `prlimit --nofile=256 --`).
    pub fn start_wrapped(
        repo: &TestRepo,
        url: &str,
        env: &[(&str, &str)],
        extra: &[&str],
        wrapper: &[&str],
    ) -> Server {
        let port = free_port();
        let binary = env!("CARGO_BIN_EXE_promptctl");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        super::seal(&mut command, repo.path());
        command
            .args([
                "serve",
                "--database-url",
                url,
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .args(extra)
            .current_dir(repo.path())
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("promptctl serve starts");
        // Drain stderr all along, so a chatty server never blocks on a full pipe.
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        if let Some(mut stderr) = child.stderr.take() {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut buffer = [0u8; 8192];
                while let Ok(n) = std::io::Read::read(&mut stderr, &mut buffer) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut log) = log.lock() {
                        log.push_str(&String::from_utf8_lossy(&buffer[..n]));
                    }
                }
            });
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let server = Server {
            child,
            log,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            runtime,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if server
                .runtime
                .block_on(server.http.get(format!("{}/healthz", server.base)).send())
                .is_ok()
            {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the server did not start");
    }

    /// `host:port`.
    pub fn address(&self) -> String {
        self.base.trim_start_matches("http://").to_owned()
    }

    /// Stops the server and returns what it wrote to stderr.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(100));
        self.log.lock().map(|log| log.clone()).unwrap_or_default()
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self.http.request(
            method.parse().expect("method"),
            format!("{}{path}", self.base),
        );
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.runtime.block_on(async {
            let response = request.send().await.expect("a response");
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let text = response.text().await.expect("a body");
            Reply {
                status,
                headers,
                text,
            }
        })
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.request("GET", path, token, None, &[])
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        self.request(
            "POST",
            path,
            token,
            Some(serde_json::to_vec(body).expect("JSON")),
            &[],
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A synced test database and its repository: `billing/invoice` at two versions, the
/// production environment pinned to the first on `gpt-4o-mini`.
pub fn setup() -> (TestDb, TestRepo) {
    setup_with(&[])
}

/// [`setup`], with more prompts (`service/name`, each rendering its name) in the first
/// commit.
pub fn setup_with(more: &[&str]) -> (TestDb, TestRepo) {
    let db = TestDb::new();
    let repo = TestRepo::new();
    repo.write("promptctl.toml", "default_provider = \"echo\"\n");
    repo.write("prompts/billing/invoice.yaml", &prompt("first"));
    for id in more {
        let name = id.rsplit('/').next().unwrap_or(id);
        repo.write(&format!("prompts/{id}.yaml"), &prompt(name));
    }
    repo.commit("v1");
    repo.write("prompts/billing/invoice.yaml", &prompt("second"));
    repo.write(
        "environments.yaml",
        "prompts:\n  invoice:\n    production: {version: 1, model: gpt-4o-mini}\n",
    );
    repo.commit("v2");
    sync(&repo, &db);
    (db, repo)
}

/// `promptctl sync` of `repo` into `db`, which must succeed.
pub fn sync(repo: &TestRepo, db: &TestDb) {
    let (code, stdout, stderr) = repo.run(&["sync", "--database-url", &db.url]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
}
