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
