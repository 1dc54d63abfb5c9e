//! A fresh PostgreSQL database per test, dropped at the end, on the server named by
//! `PROMPTCTL_TEST_DATABASE_URL`; shared by the sync, router and server tests.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh database, dropped when the guard is.
pub struct TestDb {
    pub name: String,
    pub admin: String,
    pub url: String,
    pub runtime: tokio::runtime::Runtime,
    pub client: tokio_postgres::Client,
}

pub fn admin_url() -> String {
    std::env::var("PROMPTCTL_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    format!("{host_part}/{database}{query}")
}

pub fn connect(
    runtime: &tokio::runtime::Runtime,
    url: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    })
}

impl TestDb {
    pub fn new() -> TestDb {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let admin = admin_url();
        let admin_client = connect(&runtime, &admin).unwrap_or_else(|err| {
            panic!(
                "the sync tests need PostgreSQL at {admin} ({err:?}); start it (`.ci/run` does) \
                 or point PROMPTCTL_TEST_DATABASE_URL at a server where this user may CREATE DATABASE"
            )
        });
        let name = format!(
            "promptctl_test_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            runtime
                .block_on(admin_client.batch_execute(&sql))
                .expect("create the test database");
        }
        let url = with_database(&admin, &name);
        let client = connect(&runtime, &url).expect("connect to the test database");
        TestDb {
            name,
            admin,
            url,
            runtime,
            client,
        }
    }

    pub fn rows(&self, sql: &str) -> Vec<tokio_postgres::Row> {
        self.runtime
            .block_on(self.client.query(sql, &[]))
            .unwrap_or_else(|err| panic!("{sql}: {err:?}"))
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.rows(sql)[0].get(0)
    }

    /// A digest of every registry row with its `xmin`: any insert, update or delete
    /// changes it.
    pub fn fingerprint(&self) -> String {
        self.rows(
            "SELECT coalesce((SELECT md5(string_agg(p::text || p.xmin::text, ',' ORDER BY id)) FROM prompts p), '')
               || coalesce((SELECT md5(string_agg(t::text || t.xmin::text, ',' ORDER BY id)) FROM prompt_tests t), '')
               || coalesce((SELECT md5(string_agg(e::text || e.xmin::text, ',' ORDER BY service, name, environment)) FROM prompt_environments e), '')
               || coalesce((SELECT md5(string_agg(s::text || s.xmin::text, ',')) FROM sync_state s), '')",
        )[0]
            .get(0)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(admin) = connect(&self.runtime, &self.admin) {
            let _ = self.runtime.block_on(admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )));
        }
    }
}

/// A TCP listener that accepts connections and never answers: a database host whose
/// server hangs. Returns its `host:port`; the connections stay open until the test ends.
pub fn black_hole() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a listener");
    let address = listener.local_addr().expect("its address").to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    address
}

/// A TCP proxy to the database at `url` that can freeze: once frozen, it forwards
/// nothing more either way and answers no new connection (the sockets stay open), as a
/// database server that stopped answering. Returns `url` through the proxy.
pub struct FreezingProxy {
    pub url: String,
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FreezingProxy {
    pub fn new(url: &str) -> FreezingProxy {
        use std::sync::atomic::{AtomicBool, Ordering};
        let start = url
            .find('@')
            .map_or(url.find("://").map_or(0, |i| i + 3), |i| i + 1);
        let end = start + url[start..].find('/').expect("a database in the URL");
        let upstream = url[start..end].to_owned();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a listener");
        let address = listener.local_addr().expect("its address").to_string();
        let frozen = std::sync::Arc::new(AtomicBool::new(false));
        let flag = frozen.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for client in listener.incoming().flatten() {
                if flag.load(Ordering::SeqCst) {
                    held.push(client);
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(&upstream) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (
                        client.try_clone().expect("clone"),
                        server.try_clone().expect("clone"),
                    ),
                    (server, client),
                ] {
                    let flag = flag.clone();
                    std::thread::spawn(move || {
                        let mut buffer = [0u8; 16384];
                        while let Ok(n) = std::io::Read::read(&mut from, &mut buffer) {
                            if n == 0 {
                                break;
                            }
                            if flag.load(Ordering::SeqCst) {
                                continue;
                            }
                            if std::io::Write::write_all(&mut to, &buffer[..n]).is_err() {
                                break;
                            }
                        }
                        if !flag.load(Ordering::SeqCst) {
                            let _ = to.shutdown(std::net::Shutdown::Both);
                        } else {
                            // Frozen: keep the socket open, answer nothing.
                            std::thread::sleep(std::time::Duration::from_secs(600));
                        }
                    });
                }
            }
        });
        FreezingProxy {
            url: format!("{}{address}{}", &url[..start], &url[end..]),
            frozen,
        }
    }

    /// From now on, nothing goes through.
    pub fn freeze(&self) {
        self.frozen.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}
