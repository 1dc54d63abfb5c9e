//! Sources: several repositories syncing into one registry (README, "Sources").
//!
//! Three repositories (two services each; one with many versions) sync into one database
//! at once; a rewrite, a killed sync and a refused name in one source leave the others'
//! rows untouched; a registry from the schema before sources migrates in place with the
//! same ids. Each test has its own database on `PROMPTCTL_TEST_DATABASE_URL`.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::db::TestDb;
use common::git::TestRepo;
use promptctl::registry::{Registry, Selector, version_id};

/// How many versions the busy repository's prompt has: `PROMPTCTL_SOURCES_VERSIONS`, else
/// the 1,000 (written with `git fast-import`, they sync in about a second; a
/// larger count measures more, e.g. `PROMPTCTL_SOURCES_VERSIONS=20000`).
fn many_versions() -> u32 {
    std::env::var("PROMPTCTL_SOURCES_VERSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n >= 2)
        .unwrap_or(1000)
}

/// A prompt file whose template is `text`, with one test.
fn prompt(text: &str) -> String {
    format!(
        "model: gpt-4o\ntemplate: \"{text} {{{{ x }}}}\"\nvariables:\n  x: {{type: string}}\ntests:\n  - vars: {{x: a}}\n    assert: [{{type: contains, value: a}}]\n"
    )
}

/// A repository with services `one` and `two` (named `{prefix}_one`, `{prefix}_two`), two
/// prompts each over three commits, and an environments file pinning one of them.
fn small_repo(prefix: &str) -> TestRepo {
    let repo = TestRepo::new();
    for round in 0..3 {
        for (service, name) in [("one", "a"), ("one", "b"), ("two", "c"), ("two", "d")] {
            repo.write(
                &format!("prompts/{prefix}_{service}/{name}.yaml"),
                &prompt(&format!("{prefix} {name} round {round}")),
            );
        }
        repo.commit(&format!("round {round}"));
    }
    repo.write(
        "environments.yaml",
        &format!("prompts:\n  {prefix}_one/a:\n    production: {{version: 2}}\n"),
    );
    repo.commit("environments");
    repo
}

/// A repository whose prompt `busy_index/q` has `versions` versions (one commit each,
/// written with `git fast-import`), plus a second service with one prompt.
fn busy_repo(versions: u32) -> TestRepo {
    let repo = TestRepo::new();
    let mut stream = String::new();
    for n in 1..=versions {
        let file = prompt(&format!("busy version {n}"));
        let message = format!("version {n}");
        stream.push_str(&format!(
            "commit refs/heads/main\nmark :{n}\ncommitter Ada <ada@example.com> {} +0000\ndata {}\n{message}\n",
            1_700_000_000 + u64::from(n) * 60,
            message.len()
        ));
        if n > 1 {
            stream.push_str(&format!("from :{}\n", n - 1));
        }
        stream.push_str(&format!(
            "M 100644 inline prompts/busy_index/q.yaml\ndata {}\n{file}\n",
            file.len()
        ));
    }
    let mut child = Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(repo.path())
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::piped())
        .spawn()
        .expect("git fast-import");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stream.as_bytes())
        .expect("write the stream");
    assert!(child.wait().expect("wait").success());
    repo.git(&["reset", "-q", "--hard", "main"]);
    repo.write("prompts/busy_rank/r.yaml", &prompt("rank"));
    repo.commit("rank");
    repo
}

/// `promptctl sync --source SOURCE --database-url URL ARGS` as a child process.
fn sync_command(repo: &TestRepo, db: &TestDb, source: &str, args: &[&str]) -> Command {
    let mut command = Command::new(common::binary());
    command
        .args([
            "sync",
            "--source",
            source,
            "--database-url",
            db.url.as_str(),
        ])
        .args(args)
        .current_dir(repo.path());
    common::seal(&mut command, repo.path());
    command
}

/// Runs a sync to its end: (exit code, stdout, stderr).
fn sync(repo: &TestRepo, db: &TestDb, source: &str, args: &[&str]) -> (i32, String, String) {
    let out = sync_command(repo, db, source, args)
        .output()
        .expect("promptctl runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Syncs, expecting success.
fn sync_ok(repo: &TestRepo, db: &TestDb, source: &str, args: &[&str]) {
    let (code, stdout, stderr) = sync(repo, db, source, args);
    assert_eq!(code, 0, "sync of {source} failed:\n{stdout}\n{stderr}");
}

/// Syncs the `(repo, source)` pairs at once, each expected to succeed.
fn sync_all_at_once(db: &TestDb, repos: &[(&TestRepo, &str)]) {
    let children: Vec<_> = repos
        .iter()
        .map(|(repo, source)| {
            let child = sync_command(repo, db, source, &[])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn");
            (source.to_string(), child)
        })
        .collect();
    for (source, child) in children {
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "sync of {source} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `promptctl get payments:pay_one/a --version 1` reads the first version.
fn get_reads_payments_first_version(repo: &TestRepo, db: &TestDb) {
    let (code, stdout, stderr) = repo.run(&[
        "get",
        "payments:pay_one/a",
        "--version",
        "1",
        "--database-url",
        db.url.as_str(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("pay a round 0"), "{stdout}");
}

/// Every row of `sources` in every table sync writes, as text with its `xmin` (so a row
/// rewritten with equal values differs too), in a stable order.
fn dump(db: &TestDb, sources: &[&str]) -> String {
    let list = sources
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut text = String::new();
    let tables = promptctl::registry::sources::SOURCE_TABLES;
    for table in tables.iter().chain(&["sync_state"]) {
        for row in db.rows(&format!(
            "SELECT t::text || ' ' || t.xmin::text FROM {table} t WHERE source IN ({list}) ORDER BY 1"
        )) {
            text.push_str(table);
            text.push(' ');
            text.push_str(&row.get::<_, String>(0));
            text.push('\n');
        }
    }
    text
}

/// The three repositories of the tests, synced at once into `db`.
fn three_sources(db: &TestDb) -> (TestRepo, TestRepo, TestRepo) {
    let payments = small_repo("pay");
    let orders = small_repo("ord");
    let search = busy_repo(many_versions());
    sync_all_at_once(
        db,
        &[
            (&payments, "payments"),
            (&orders, "orders"),
            (&search, "search"),
        ],
    );
    (payments, orders, search)
}

#[test]
fn three_sources_sync_at_once_and_every_version_reads_back() {
    let db = TestDb::new();
    let repos = three_sources(&db);
    let versions = many_versions();
    for (source, expected) in [("payments", 12), ("orders", 12), ("search", versions + 1)] {
        let count = db.count(&format!(
            "SELECT count(*) FROM prompts WHERE source = '{source}'"
        ));
        assert_eq!(count, i64::from(expected), "{source}");
    }
    db.runtime.block_on(async {
        let registry = Registry::connect(&db.url).await.expect("connect");
        for n in 1..=versions {
            let read = registry
                .get_prompt("search:busy_index/q", &Selector::Version(n))
                .await
                .expect("every version reads");
            assert_eq!(read.id, version_id("busy_index", "q", n));
            assert!(format!("{:?}", read.definition.body).contains(&format!("busy version {n} ")));
        }
        for query in ["payments:pay_one/a", "pay_two/d", "orders:ord_one/b", "c"] {
            let found = registry.get_prompt(query, &Selector::Latest).await;
            // `c` is ambiguous (pay_two/c and ord_two/c); the others read.
            assert_eq!(found.is_ok(), query != "c", "{query}");
        }
        let pinned = registry
            .get_prompt(
                "orders:ord_one/a",
                &Selector::Environment("production".into()),
            )
            .await
            .expect("pinned");
        assert_eq!(pinned.version, 2);
        // The wrong source does not find it.
        assert!(
            registry
                .get_prompt("orders:pay_one/a", &Selector::Latest)
                .await
                .is_err()
        );
    });
    // The CLI names prompts with their source too.
    get_reads_payments_first_version(&repos.0, &db);
}

#[test]
fn a_rewrite_in_one_source_leaves_the_others_byte_identical() {
    let db = TestDb::new();
    let (payments, _orders, _search) = three_sources(&db);
    let others = dump(&db, &["orders", "search"]);
    assert!(others.lines().count() > 20, "{others}");
    // Force-push: drop the last two commits and publish another history.
    payments.git(&["reset", "-q", "--hard", "HEAD~2"]);
    payments.write("prompts/pay_one/a.yaml", &prompt("pay a rewritten"));
    payments.commit("rewritten");
    let (code, _, stderr) = sync(&payments, &db, "payments", &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("rewritten"), "{stderr}");
    sync_ok(&payments, &db, "payments", &["--allow-rewrite"]);
    assert_eq!(dump(&db, &["orders", "search"]), others);
    // Its own rows were replaced: round 2 is gone, the rewritten version is there.
    assert_eq!(
        db.count(
            "SELECT count(*) FROM prompts WHERE source = 'payments' AND template LIKE '%round 2%'"
        ),
        0
    );
    assert_eq!(
        db.count(
            "SELECT count(*) FROM prompts WHERE source = 'payments' AND template LIKE '%rewritten%'"
        ),
        1
    );
}

#[test]
fn a_killed_sync_of_one_source_leaves_the_others_completing() {
    let db = TestDb::new();
    let (payments, orders, search) = three_sources(&db);
    for (repo, prefix) in [(&payments, "pay"), (&orders, "ord"), (&search, "busy")] {
        repo.write(&format!("prompts/{prefix}_new/n.yaml"), &prompt("new"));
        repo.commit("a new prompt");
    }
    let before = dump(&db, &["payments"]);
    // payments' sync stops with every write done, its transaction open and its locks held.
    let mut stuck = sync_command(&payments, &db, "payments", &[]);
    stuck.env("PROMPTCTL_SYNC_FAIL_BEFORE_COMMIT", "pause");
    let mut stuck = stuck
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let paused = std::time::Instant::now();
    while db.count(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
           AND state = 'idle in transaction' AND query LIKE '%pg_notify%'",
    ) == 0
    {
        assert!(
            paused.elapsed() < std::time::Duration::from_secs(30),
            "the sync did not reach its commit"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The other two sync completely meanwhile; then it is killed (SIGKILL).
    sync_all_at_once(&db, &[(&orders, "orders"), (&search, "search")]);
    assert_eq!(
        stuck.try_wait().expect("poll"),
        None,
        "the paused sync ended"
    );
    stuck.kill().expect("kill -9");
    stuck.wait().expect("reaped");
    assert_eq!(dump(&db, &["payments"]), before);
    // A sync killed just before its commit (the debug hook) leaves nothing either, while
    // the others sync.
    let mut killed = sync_command(&payments, &db, "payments", &[]);
    killed.env("PROMPTCTL_SYNC_FAIL_BEFORE_COMMIT", "1");
    let killed = killed
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    orders.write("prompts/ord_new/m.yaml", &prompt("another"));
    orders.commit("another");
    sync_ok(&orders, &db, "orders", &[]);
    assert!(!killed.wait_with_output().expect("wait").status.success());
    assert_eq!(dump(&db, &["payments"]), before);
    for (source, prompts) in [("orders", 6), ("search", 3)] {
        assert_eq!(
            db.count(&format!(
                "SELECT count(DISTINCT (service, name)) FROM prompts WHERE source = '{source}'"
            )),
            prompts,
            "{source}"
        );
    }
    sync_ok(&payments, &db, "payments", &[]);
    assert_eq!(
        db.count("SELECT count(*) FROM prompts WHERE source = 'payments' AND service = 'pay_new'"),
        1
    );
}

#[test]
fn a_name_another_source_owns_is_refused_naming_the_owner() {
    let db = TestDb::new();
    let payments = small_repo("pay");
    sync_ok(&payments, &db, "payments", &[]);
    let before = dump(&db, &["payments"]);
    let intruder = TestRepo::new();
    intruder.write("prompts/pay_one/a.yaml", &prompt("mine"));
    intruder.write("prompts/fresh/x.yaml", &prompt("fresh"));
    intruder.commit("collides");
    let (code, _, stderr) = sync(&intruder, &db, "intruder", &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("pay_one/a belongs to source `payments`"),
        "{stderr}"
    );
    assert!(stderr.contains("new service or name"), "{stderr}");
    assert!(stderr.contains("pass `--source payments`"), "{stderr}");
    assert_eq!(dump(&db, &["payments"]), before);
    assert_eq!(
        db.count("SELECT count(*) FROM prompts WHERE source = 'intruder'"),
        0
    );
    // Two sources racing for one new name: exactly one wins.
    let (left, right) = (TestRepo::new(), TestRepo::new());
    for repo in [&left, &right] {
        repo.write("prompts/race/x.yaml", &prompt("race"));
        repo.commit("race");
    }
    let children: Vec<_> = [(&left, "left"), (&right, "right")]
        .into_iter()
        .map(|(repo, source)| {
            sync_command(repo, &db, source, &[])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let codes: Vec<i32> = children
        .into_iter()
        .map(|child| {
            child
                .wait_with_output()
                .expect("wait")
                .status
                .code()
                .unwrap_or(-1)
        })
        .collect();
    let mut sorted = codes.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, vec![0, 2], "{codes:?}");
    assert_eq!(
        db.count("SELECT count(*) FROM prompts WHERE service = 'race'"),
        1
    );
}

#[test]
fn the_default_source_is_the_repository_folder_and_bad_names_are_refused() {
    let db = TestDb::new();
    let repo = TestRepo::new();
    repo.write("prompts/s/a.yaml", &prompt("a"));
    repo.commit("a");
    let (code, _, stderr) = repo.run(&[
        "sync",
        "--source",
        "no:colons",
        "--database-url",
        db.url.as_str(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("source `no:colons`"), "{stderr}");
    let (code, _, stderr) = repo.run(&["sync", "--database-url", db.url.as_str()]);
    assert_eq!(code, 0, "{stderr}");
    let folder = repo
        .path()
        .canonicalize()
        .expect("canonical")
        .file_name()
        .expect("a name")
        .to_string_lossy()
        .into_owned();
    let rows = db.rows("SELECT DISTINCT source FROM prompts");
    assert_eq!(rows[0].get::<_, String>(0), folder);
    // `[sync] source` in promptctl.toml is taken over the folder.
    repo.write("promptctl.toml", "[sync]\nsource = \"named\"\n");
    repo.write("prompts/s/b.yaml", &prompt("b"));
    repo.commit("b");
    let (code, _, stderr) = repo.run(&["sync", "--database-url", db.url.as_str()]);
    // Another source now: `s/a` belongs to the folder's source.
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!("belongs to source `{folder}`")),
        "{stderr}"
    );
}

/// Brings a registry at the sources schema back to the one before it (as an older
/// promptctl left it): the `source` columns and `prompt_owners` dropped, `sync_state`
/// keyed by branch, migration 5 unrecorded.
fn downgrade_to_schema_4(db: &TestDb) {
    db.runtime
        .block_on(db.client.batch_execute(
            "ALTER TABLE prompt_environments DROP COLUMN canary_version,
               DROP COLUMN canary_model, DROP COLUMN canary_weight, DROP COLUMN canary_since;
             ALTER TABLE prompt_runs DROP COLUMN side;
             DROP TABLE prompt_rollups;
             DROP INDEX prompt_runs_sampled;
             DROP TABLE prompt_rollup_state;
             DROP TABLE prompt_owners;
             ALTER TABLE sync_state DROP CONSTRAINT sync_state_pkey;
             ALTER TABLE sync_state DROP COLUMN source;
             ALTER TABLE sync_state ADD PRIMARY KEY (branch);
             ALTER TABLE prompts DROP COLUMN source;
             ALTER TABLE prompt_tests DROP COLUMN source;
             ALTER TABLE prompt_environments DROP COLUMN source;
             ALTER TABLE prompt_monitors DROP COLUMN source;
             ALTER TABLE prompt_descriptions DROP COLUMN source;
             ALTER TABLE prompt_runs DROP COLUMN source;
             DELETE FROM schema_migrations WHERE version >= 5;",
        ))
        .expect("downgrade");
}

/// The columns and indexes of the public schema, as text.
fn schema_of(db: &TestDb) -> String {
    let mut text = String::new();
    for row in db.rows(
        "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '')
         FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name <> 'schema_migrations' ORDER BY 1",
    ) {
        text.push_str(&row.get::<_, String>(0));
        text.push('\n');
    }
    for row in db.rows(
        "SELECT indexdef FROM pg_indexes
         WHERE schemaname = 'public' AND tablename <> 'schema_migrations' ORDER BY 1",
    ) {
        text.push_str(&row.get::<_, String>(0));
        text.push('\n');
    }
    text
}

#[test]
fn a_registry_from_before_sources_is_migrated_with_the_same_ids() {
    // The schema before sources, as its migrations make it.
    let reference = TestDb::new();
    for migration in &promptctl::registry::migrations::MIGRATIONS[..4] {
        reference
            .runtime
            .block_on(reference.client.batch_execute(migration.sql))
            .expect("migration");
    }
    let db = TestDb::new();
    let payments = small_repo("pay");
    sync_ok(&payments, &db, "payments", &[]);
    downgrade_to_schema_4(&db);
    assert_eq!(schema_of(&db), schema_of(&reference));
    let ids = |db: &TestDb| -> Vec<String> {
        db.rows("SELECT id::text || ' ' || service || '/' || name || ' v' || version FROM prompts ORDER BY 1")
            .iter()
            .map(|row| row.get(0))
            .collect()
    };
    let test_ids: Vec<String> = db
        .rows("SELECT id::text FROM prompt_tests ORDER BY 1")
        .iter()
        .map(|row| row.get(0))
        .collect();
    let before = ids(&db);
    assert_eq!(before.len(), 12);
    // Before its upgrade, reads that name sources say what to do; the others answer.
    let url = db.url.as_str();
    let (code, _, stderr) = payments.run(&["stats", "--by", "source", "--database-url", url]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("needs a registry with sources"), "{stderr}");
    assert!(stderr.contains("`promptctl sync`"), "{stderr}");
    let (code, _, stderr) = payments.run(&["stats", "--database-url", url]);
    assert_eq!(code, 0, "{stderr}");
    // Another repository syncing first neither adopts the legacy rows nor may take their
    // names.
    let other = TestRepo::new();
    other.write("prompts/pay_one/a.yaml", &prompt("other"));
    other.commit("other");
    let (code, _, stderr) = sync(&other, &db, "other", &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("unnamed source"), "{stderr}");
    // The repository that synced them adopts them with its next named sync.
    payments.write("prompts/pay_one/a.yaml", &prompt("after the upgrade"));
    payments.commit("after the upgrade");
    let (code, stdout, stderr) = sync(&payments, &db, "payments", &["--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(summary["adopted"], true, "{summary}");
    assert_eq!(summary["versions_added"], 1, "{summary}");
    let after = ids(&db);
    assert_eq!(after.len(), 13);
    assert!(before.iter().all(|id| after.contains(id)));
    let test_ids_after: Vec<String> = db
        .rows("SELECT id::text FROM prompt_tests ORDER BY 1")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(
        test_ids
            .iter()
            .filter(|id| test_ids_after.contains(id))
            .count()
            >= 3
    );
    for table in [
        "prompts",
        "prompt_tests",
        "prompt_environments",
        "prompt_owners",
        "sync_state",
    ] {
        assert_eq!(
            db.count(&format!(
                "SELECT count(*) FROM {table} WHERE source <> 'payments'"
            )),
            0,
            "{table}"
        );
    }
    get_reads_payments_first_version(&payments, &db);
}

/// The value of the counter line `name{labels}` in a Prometheus page (0 when absent).
fn counter(page: &str, name_and_labels: &str) -> f64 {
    page.lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn after_one_source_syncs_serve_keeps_the_others_cached_and_the_change_fresh() {
    use common::server::{READ, RUN, Server};
    let db = TestDb::new();
    let payments = small_repo("pay");
    let orders = small_repo("ord");
    sync_all_at_once(&db, &[(&payments, "payments"), (&orders, "orders")]);
    payments.write("promptctl.toml", "default_provider = \"echo\"\n");
    let server = Server::start(
        &payments,
        &db.url,
        &[
            ("PROMPTCTL_READ_TOKENS", READ),
            ("PROMPTCTL_RUN_TOKENS", RUN),
        ],
        &[],
    );
    let others = [
        "/v1/prompts/ord_one/a",
        "/v1/prompts/orders:ord_two/c",
        "/v1/prompts/pay_two/d",
    ];
    let read = |path: &str| {
        let reply = server.get(path, Some(READ));
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        reply.json()
    };
    for path in others {
        read(path);
    }
    assert_eq!(read("/v1/prompts/payments:pay_one/a")["version"], 3);
    assert_eq!(read("/v1/prompts/ord_one/a")["source"], "orders");
    let metrics = |name: &str| counter(&server.get("/metrics", Some(READ)).text, name);
    let misses = metrics("promptctl_cache_requests_total{result=\"miss\"}");
    assert_eq!(misses, 4.0);
    payments.write("prompts/pay_one/a.yaml", &prompt("pay a round 3"));
    payments.commit("round 3");
    sync_ok(&payments, &db, "payments", &[]);
    let synced = std::time::Instant::now();
    while read("/v1/prompts/payments:pay_one/a")["version"] != 4 {
        assert!(
            synced.elapsed() < std::time::Duration::from_secs(1),
            "the changed prompt is not fresh a second after the sync"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for path in others {
        read(path);
    }
    // One refetch: the changed prompt's; the others were served from the cache.
    assert_eq!(
        metrics("promptctl_cache_requests_total{result=\"miss\"}"),
        misses + 1.0
    );
    assert!(metrics("promptctl_cache_invalidations_total{kind=\"keys\"}") >= 1.0);
    assert_eq!(
        metrics("promptctl_cache_invalidations_total{kind=\"everything\"}"),
        0.0
    );
    let versions = read("/v1/prompts/orders:ord_one/a/versions");
    assert_eq!(
        versions["versions"].as_array().map(Vec::len),
        Some(3),
        "{versions}"
    );
    // The list filters by source and says each prompt's; the dashboard names each
    // prompt's source when there is more than one.
    let listed = read("/v1/prompts?source=orders");
    let prompts = listed["prompts"].as_array().expect("a list");
    assert_eq!(prompts.len(), 4, "{listed}");
    assert!(prompts.iter().all(|p| p["source"] == "orders"), "{listed}");
    let page = server.get("/", Some(READ));
    assert_eq!(page.status, 200);
    for source in ["payments", "orders"] {
        assert!(
            page.text
                .contains(&format!("<span class=\"source\">from {source}</span>")),
            "{}",
            page.text
        );
    }
    // A prompt's page takes `source:service/name` like the API.
    let page = server.get("/prompts/orders:ord_one/a", Some(READ));
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("id=\"versions\""), "{}", page.text);
    let page = server.get("/prompts/payments:ord_one/a", Some(READ));
    assert_eq!(page.status, 404, "another source's prompt: {}", page.text);
    // A run records the source of the prompt it ran.
    let run = server.post(
        "/v1/prompts/orders:ord_two/c/run",
        Some(RUN),
        &serde_json::json!({"vars": {"x": "ran"}}),
    );
    assert_eq!(run.status, 200, "{}", run.text);
    let recorded = std::time::Instant::now();
    while db.count("SELECT count(*) FROM prompt_runs WHERE source = 'orders' AND name = 'c'") == 0 {
        assert!(
            recorded.elapsed() < std::time::Duration::from_secs(10),
            "the run was not recorded with its source"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    server.stop();
}

#[test]
fn stats_group_and_filter_by_source() {
    let db = TestDb::new();
    let payments = small_repo("pay");
    let orders = small_repo("ord");
    sync_all_at_once(&db, &[(&payments, "payments"), (&orders, "orders")]);
    db.rows(
        "INSERT INTO prompt_runs (run_id, service, name, version, latency_ms, created_at)
         SELECT gen_random_uuid(), s, 'a', 1, 100, now() - interval '1 hour'
         FROM unnest(ARRAY['pay_one', 'pay_one', 'ord_one']) AS s RETURNING 1",
    );
    // A run the router recorded with its source counts there even without an owner.
    db.rows(
        "INSERT INTO prompt_runs (run_id, service, name, version, latency_ms, created_at, source)
         VALUES (gen_random_uuid(), 'gone', 'z', 1, 100, now() - interval '1 hour', 'orders')
         RETURNING 1",
    );
    let url = db.url.as_str();
    let by_source = payments.json(&["stats", "--by", "source", "--database-url", url]);
    let groups: Vec<(String, i64)> = by_source["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["group"].as_str().unwrap_or("").to_owned(),
                r["calls"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        groups,
        vec![
            ("orders".to_owned(), 1),
            ("orders".to_owned(), 1),
            ("payments".to_owned(), 2)
        ],
        "{by_source}"
    );
    let one = payments.json(&["stats", "payments:pay_one/a", "--database-url", url]);
    assert_eq!(one["rows"][0]["calls"], 2, "{one}");
    let none = payments.json(&["stats", "orders:pay_one/a", "--database-url", url]);
    assert_eq!(none["rows"].as_array().map(Vec::len), Some(0), "{none}");
}

#[test]
fn a_rewritten_repository_adopts_legacy_rows_only_when_asked() {
    let db = TestDb::new();
    let payments = small_repo("pay");
    sync_ok(&payments, &db, "payments", &[]);
    downgrade_to_schema_4(&db);
    let before: Vec<String> = db
        .rows("SELECT id::text FROM prompts ORDER BY 1")
        .iter()
        .map(|row| row.get(0))
        .collect();
    // Another repository may not adopt them, even when asked: they are not its prompts.
    let stranger = small_repo("find");
    let (code, _, stderr) = sync(&stranger, &db, "search", &["--adopt-legacy"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("another repository's"), "{stderr}");
    assert!(stderr.contains("pay_one/a"), "{stderr}");
    // Refused in its transaction: the migration rolled back with it, nothing changed.
    assert_eq!(
        db.count("SELECT count(*) FROM prompts"),
        before.len() as i64
    );
    // The history synced last is gone (force-push): nothing says this is its repository.
    payments.git(&["reset", "-q", "--hard", "HEAD~1"]);
    payments.git(&["commit", "-q", "--amend", "-m", "rewritten"]);
    payments.git(&["reflog", "expire", "--expire=now", "--all"]);
    payments.git(&["gc", "-q", "--prune=now"]);
    let (code, _, stderr) = sync(&payments, &db, "payments", &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("unnamed source"), "{stderr}");
    assert!(stderr.contains("--adopt-legacy"), "{stderr}");
    let (code, stdout, stderr) = sync(
        &payments,
        &db,
        "payments",
        &["--adopt-legacy", "--allow-rewrite", "--format", "json"],
    );
    assert_eq!(code, 0, "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(summary["adopted"], true, "{summary}");
    assert_eq!(
        db.count("SELECT count(*) FROM prompts WHERE source <> 'payments'"),
        0
    );
    let after: Vec<String> = db
        .rows("SELECT id::text FROM prompts ORDER BY 1")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(after, before, "the same versions, the same ids");
}

#[test]
fn export_from_the_registry_bundles_every_source_and_the_router_boots_from_it() {
    let db = TestDb::new();
    let payments = small_repo("pay");
    let search = small_repo("find");
    sync_ok(&payments, &db, "payments", &[]);
    sync_ok(&search, &db, "search", &[]);
    let url = db.url.as_str();
    let (code, stdout, stderr) = search.run(&["export", "--registry", "--database-url", url]);
    assert_eq!(code, 0, "{stderr}");
    let bundle: serde_json::Value = serde_json::from_str(&stdout).expect("a bundle");
    let entries = bundle["prompts"].as_array().expect("prompts");
    let services: std::collections::BTreeSet<&str> = entries
        .iter()
        .filter_map(|p| p["service"].as_str())
        .collect();
    assert_eq!(
        services.into_iter().collect::<Vec<_>>(),
        ["find_one", "find_two", "pay_one", "pay_two"]
    );
    // Eight prompts, each latest and in the two environments the sources pin.
    assert_eq!(bundle["environments"], serde_json::json!(["production"]));
    assert_eq!(entries.len(), 16);
    let pinned = entries
        .iter()
        .find(|p| p["service"] == "pay_one" && p["name"] == "a" && p["environment"] == "production")
        .expect("the pinned entry");
    assert_eq!(pinned["version"], 2, "{pinned}");

    // One source only; and a service reading the whole organisation boots from the file.
    let args = [
        "export",
        "--registry",
        "--source",
        "payments",
        "--database-url",
        url,
    ];
    let (code, stdout, stderr) = search.run(&args);
    assert_eq!(code, 0, "{stderr}");
    let one: serde_json::Value = serde_json::from_str(&stdout).expect("a bundle");
    assert!(
        one["prompts"]
            .as_array()
            .expect("prompts")
            .iter()
            .all(|p| { p["service"].as_str().is_some_and(|s| s.starts_with("pay_")) })
    );
    // The service's own configuration answers `gpt-4o` with the offline echo provider.
    search.write(
        "promptctl.toml",
        "[providers.offline]\nkind = \"echo\"\n[models.\"gpt-4o\"]\nprovider = \"offline\"\n",
    );
    // A prompt asked for under another source than its owner names the owner.
    let (code, _, stderr) = search.run(&["get", "search:pay_one/a", "--database-url", url]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("did you mean `payments:pay_one/a`"),
        "{stderr}"
    );
    // A source the registry does not have (a typo) is an error, not an empty bundle.
    let args = [
        "export",
        "--registry",
        "--source",
        "paymnets",
        "--database-url",
        url,
    ];
    let (code, stdout, stderr) = search.run(&args);
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("no prompt of source `paymnets`"),
        "{stderr}"
    );
    assert!(stderr.contains("`payments`, `search`"), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    let file = search.path().join("org.bundle.json");
    std::fs::write(&file, serde_json::to_string(&bundle).expect("json")).expect("write");
    let bundle_path = file.to_string_lossy().into_owned();
    let run = [
        "run",
        "pay_one/a",
        "--env",
        "production",
        "--var",
        "x=ok",
        "--bundle",
        &bundle_path,
    ];
    let (code, stdout, stderr) = search.run(&run);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("pay a round 1"),
        "version 2 of pay_one/a: {stdout}"
    );
}

#[test]
fn a_service_named_with_a_colon_is_refused_because_it_would_read_as_a_source() {
    let repo = TestRepo::new();
    repo.write("prompts/orders:search/p1.yaml", &prompt("shadow"));
    repo.write("prompts/search/p2.yaml", &prompt("kept"));
    repo.commit("add");
    let (code, stdout, stderr) = repo.run(&["check"]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stderr.contains("registry-unfit"), "{stderr}");
    assert!(stderr.contains("holds `:`"), "{stderr}");
    let db = TestDb::new();
    let (code, _, stderr) = sync(&repo, &db, "shop", &[]);
    assert_eq!(code, 1, "sync checks the tip first: {stderr}");
    assert!(stderr.contains("holds `:`"), "{stderr}");
    assert!(stderr.contains("nothing was published"), "{stderr}");
}
