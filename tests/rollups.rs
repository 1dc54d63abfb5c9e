//! Rollups (issue 23) against a real PostgreSQL: what the recorder writes, what `promptctl
//! rollup` rebuilds, and what `stats` reads from them, checked against `count(*)`, `sum`
//! and `percentile_cont` over the same raw runs.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::db::TestDb;
use promptctl::config::MonitoringSettings;
use promptctl::registry::rollups;
use promptctl::registry::runs::{RunRecord, RunRecorder};
use promptctl::registry::stats::{GroupBy, StatsQuery, StatsRow, Width, series, stats};

/// The `i`th run of a small fleet, created `at`.
fn run(i: usize, at: SystemTime) -> RunRecord {
    RunRecord {
        run_id: promptctl::router::new_run_id(),
        source: String::new(),
        trace_id: None,
        service: "billing".into(),
        name: format!("p{}", i % 3),
        version: Some((i % 2) as i32 + 1),
        environment: Some(
            if i.is_multiple_of(5) {
                "staging"
            } else {
                "production"
            }
            .into(),
        ),
        side: None,
        model_requested: "gpt-4o".into(),
        model_used: Some("gpt-4o".into()),
        provider: Some("openai".into()),
        latency_ms: 20.0 + ((i * 7919) % 1000) as f64 * 1.37,
        input_tokens: 100,
        output_tokens: 10 + (i % 7) as i32,
        cache_read_tokens: (i % 3) as i32,
        cache_write_tokens: 0,
        cost_usd: Some(0.001),
        error: i
            .is_multiple_of(13)
            .then(|| "openai answered HTTP 500".into()),
        attempt_errors: None,
        quality_score: i.is_multiple_of(10).then_some((i % 4) as f64 / 3.0),
        sampled: i.is_multiple_of(10),
        input_text: None,
        output_text: None,
        created_at: at,
    }
}

/// Applies the migrations: the rollups hold every run created from now on.
fn migrate(db: &TestDb) {
    db.runtime
        .block_on(async {
            let mut client = promptctl::registry::connect(&db.url).await?;
            promptctl::registry::migrations::migrate(&mut client).await
        })
        .expect("migrate");
}

/// Two minutes from now: runs created then are past the minute the migration ran in, so
/// readings take them from the rollups.
fn soon() -> SystemTime {
    SystemTime::now() + Duration::from_secs(120)
}

/// Writes `runs` into `prompt_runs` as a loader would, around the recorder (no rollups).
fn load(db: &TestDb, runs: &[RunRecord]) {
    db.runtime
        .block_on(async {
            let client = promptctl::registry::connect(&db.url).await?;
            promptctl::registry::runs::write_rows(&client, runs)
                .await
                .map_err(promptctl::registry::RegistryError::from)
        })
        .expect("write runs");
}

fn monitoring() -> MonitoringSettings {
    MonitoringSettings {
        retention_days: 0,
        ..MonitoringSettings::default()
    }
}

/// Records `runs` through a recorder and shuts it down (which appends their rollups).
fn record(db: &TestDb, runs: Vec<RunRecord>) {
    let count = runs.len() as u64;
    let stats = db.runtime.block_on(async {
        let recorder = RunRecorder::start(db.url.clone(), &monitoring());
        for run in runs {
            recorder.record(run);
        }
        recorder.shutdown(Duration::from_secs(20)).await
    });
    assert_eq!(stats.written, count, "{stats:?}");
    assert_eq!(stats.unrolled, 0, "{stats:?}");
}

/// `stats` (from the rollups) against SQL over the raw runs of the same window: calls,
/// errors, tokens, cost and quality exact, percentiles within 1 %.
fn assert_matches_raw(
    db: &TestDb,
    query: &StatsQuery,
    group: &str,
    from: SystemTime,
    to: SystemTime,
) {
    let got = db
        .runtime
        .block_on(stats(&db.client, query, from, to))
        .expect("stats");
    let filter = query
        .environment
        .as_ref()
        .map_or(String::new(), |e| format!(" AND environment = '{e}'"));
    let exact = db.runtime.block_on(db.client.query(
        &format!(
            "SELECT service || '/' || name, {group}, count(*), \
               avg(CASE WHEN error IS NULL THEN 0.0 ELSE 1.0 END)::float8, \
               percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms), \
               sum(input_tokens + cache_read_tokens + cache_write_tokens)::int8, \
               sum(output_tokens)::int8, avg(quality_score)::float8 \
             FROM prompt_runs WHERE created_at >= $1 AND created_at < $2{filter} \
             GROUP BY 1, 2 ORDER BY 1, 2"
        ),
        &[&from, &to],
    ));
    let exact = exact.expect("exact figures");
    assert_eq!(got.len(), exact.len(), "{got:#?}");
    for (row, want) in got.iter().zip(&exact) {
        let percentiles: Vec<f64> = want.get(4);
        assert_eq!(row.prompt, want.get::<_, String>(0));
        assert_eq!(row.group, want.get::<_, String>(1));
        assert_eq!(row.calls, want.get::<_, i64>(2), "{row:?}");
        assert!(
            (row.error_rate - want.get::<_, f64>(3)).abs() < 1e-12,
            "{row:?}"
        );
        assert_eq!(row.input_tokens, want.get::<_, i64>(5));
        assert_eq!(row.output_tokens, want.get::<_, i64>(6));
        let quality: Option<f64> = want.get(7);
        assert_eq!(row.quality.is_some(), quality.is_some());
        if let (Some(a), Some(b)) = (row.quality, quality) {
            assert!((a - b).abs() < 1e-9);
        }
        for (value, exact) in [row.p50_ms, row.p95_ms, row.p99_ms].iter().zip(percentiles) {
            let value = value.expect("a percentile");
            assert!(
                (value - exact).abs() <= 0.01 * exact,
                "{row:?}: {value} against percentile_cont {exact}"
            );
        }
    }
}

fn minutes_ago(now: SystemTime, minutes: u64) -> SystemTime {
    now - Duration::from_secs(60 * minutes)
}

#[test]
fn the_recorder_rolls_up_what_it_writes_and_stats_reads_it_like_the_raw_runs() {
    let db = TestDb::new();
    let now = SystemTime::now();
    // The recorder migrates, then writes a run created before: read raw, counted once.
    record(&db, vec![run(0, now)]);
    let later = soon();
    let runs: Vec<RunRecord> = (1..3_000)
        .map(|i| run(i, later + Duration::from_millis(i as u64 * 47)))
        .collect();
    record(&db, runs);
    let (from, to) = (minutes_ago(now, 90), now + Duration::from_secs(3_600));
    for (by, group) in [
        (GroupBy::Prompt, "''"),
        (GroupBy::Version, "coalesce(version::text, '')"),
        (GroupBy::Environment, "coalesce(environment, '')"),
    ] {
        let query = StatsQuery {
            by,
            ..StatsQuery::default()
        };
        assert_matches_raw(&db, &query, group, from, to);
    }
    let partial = db.count("SELECT count(*) FROM prompt_rollups WHERE partial");
    assert!(partial > 0, "the recorder appends partial rows");
}

#[test]
fn a_window_is_whole_buckets_from_the_rollups_and_raw_runs_at_its_edges() {
    let db = TestDb::new();
    // Runs over three days, at odd seconds, older than the migration: rolled up by
    // `rollup`, then read back for windows whose ends fall inside minutes, hours and days.
    let now = SystemTime::now();
    let day = 86_400;
    let runs: Vec<RunRecord> = (0..4_000)
        .map(|i| {
            run(
                i,
                now - Duration::from_secs(3 * day - (i as u64 * 3 * day / 4_000) + 1),
            )
        })
        .collect();
    migrate(&db);
    load(&db, &runs);
    let rebuilt = rebuild(&db, 0);
    assert_eq!(rebuilt.runs, 4_000);
    let rows_before = db.count("SELECT count(*) FROM prompt_rollups");
    for (from, to) in [
        (now - Duration::from_secs(3 * day), now),
        (
            now - Duration::from_secs(2 * day + 3_917),
            now - Duration::from_secs(day + 77),
        ),
        (
            now - Duration::from_secs(5_000),
            now - Duration::from_secs(4_980),
        ),
        (
            now - Duration::from_secs(7 * day),
            now - Duration::from_secs(2 * day),
        ),
    ] {
        assert_matches_raw(&db, &StatsQuery::default(), "''", from, to);
        let query = StatsQuery {
            environment: Some("production".into()),
            by: GroupBy::Version,
            ..StatsQuery::default()
        };
        assert_matches_raw(&db, &query, "coalesce(version::text, '')", from, to);
    }
    // Rebuilding again changes nothing.
    rebuild(&db, 0);
    assert_eq!(db.count("SELECT count(*) FROM prompt_rollups"), rows_before);
    assert_matches_raw(
        &db,
        &StatsQuery::default(),
        "''",
        now - Duration::from_secs(3 * day),
        now,
    );
}

#[test]
fn runs_older_than_the_rollups_are_read_raw_until_rolled_up() {
    let db = TestDb::new();
    let now = SystemTime::now();
    let old: Vec<RunRecord> = (0..500)
        .map(|i| run(i, now - Duration::from_secs(86_400 + i as u64 * 11)))
        .collect();
    migrate(&db);
    load(&db, &old);
    assert_eq!(db.count("SELECT count(*) FROM prompt_rollups"), 0);
    let window = (now - Duration::from_secs(3 * 86_400), now);
    assert_matches_raw(&db, &StatsQuery::default(), "''", window.0, window.1);
    let points = db
        .runtime
        .block_on(series(
            &db.client,
            &StatsQuery::default(),
            window.0,
            window.1,
            Width::Hour,
        ))
        .expect("series");
    assert_eq!(points.iter().map(|p| p.calls).sum::<i64>(), 500);
}

#[test]
fn compaction_merges_partial_rows_and_changes_no_figure() {
    let db = TestDb::new();
    migrate(&db);
    let now = soon();
    for round in 0..3 {
        record(&db, (0..300).map(|i| run(i + round * 300, now)).collect());
    }
    let read = |db: &TestDb| -> Vec<StatsRow> {
        db.runtime
            .block_on(stats(
                &db.client,
                &StatsQuery {
                    by: GroupBy::Version,
                    ..StatsQuery::default()
                },
                minutes_ago(now, 10),
                now + Duration::from_secs(600),
            ))
            .expect("stats")
    };
    let before = read(&db);
    let rows_before = db.count("SELECT count(*) FROM prompt_rollups");
    let removed = db
        .runtime
        .block_on(rollups::compact(&db.client))
        .expect("compact");
    let rows_after = db.count("SELECT count(*) FROM prompt_rollups");
    assert_eq!(rows_before - rows_after, removed as i64);
    assert!(
        removed > 0,
        "three recorders appended rows of the same keys"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM prompt_rollups WHERE partial"),
        0
    );
    let duplicates = db.count(
        "SELECT count(*) FROM (SELECT 1 FROM prompt_rollups GROUP BY width, bucket, source, \
         service, name, version, environment, model, failed HAVING count(*) > 1) d",
    );
    assert_eq!(duplicates, 0);
    // The same figures; sums may differ in their last bit (another order of addition).
    let rounded = |rows: Vec<StatsRow>| -> Vec<String> {
        rows.iter()
            .map(|r| {
                format!(
                    "{} {} {} {} {:?} {:?} {:?} {} {} {:.9} {:?} {}",
                    r.prompt,
                    r.group,
                    r.calls,
                    r.error_rate,
                    r.p50_ms,
                    r.p95_ms,
                    r.p99_ms,
                    r.input_tokens,
                    r.output_tokens,
                    r.cost_usd,
                    r.quality.map(|q| format!("{q:.9}")),
                    r.scored
                )
            })
            .collect()
    };
    assert_eq!(rounded(read(&db)), rounded(before));
}

#[test]
fn a_series_has_one_point_per_bucket_and_group() {
    let db = TestDb::new();
    migrate(&db);
    let base = soon()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
        / 60
        * 60;
    let start = UNIX_EPOCH + Duration::from_secs(base);
    let runs: Vec<RunRecord> = (0..600)
        .map(|i| run(i, start + Duration::from_secs((i as u64 / 3 % 3) * 60 + 1)))
        .collect();
    record(&db, runs);
    let query = StatsQuery {
        prompt: Some("billing/p0".into()),
        by: GroupBy::Version,
        ..StatsQuery::default()
    };
    let points = db
        .runtime
        .block_on(series(
            &db.client,
            &query,
            start,
            start + Duration::from_secs(600),
            Width::Minute,
        ))
        .expect("series");
    let buckets: std::collections::BTreeSet<i64> = points.iter().map(|p| p.at).collect();
    assert_eq!(buckets.len(), 3, "{points:#?}");
    assert!(points.iter().all(|p| p.group == "1" || p.group == "2"));
    assert_eq!(points.iter().map(|p| p.calls).sum::<i64>(), 200);
    assert!(
        points
            .windows(2)
            .all(|w| (w[0].at, &w[0].group) < (w[1].at, &w[1].group))
    );
}

#[test]
fn a_sketch_that_cannot_be_read_is_an_error_not_a_panic() {
    let db = TestDb::new();
    migrate(&db);
    let now = soon();
    record(&db, vec![run(1, now)]);
    db.rows("UPDATE prompt_rollups SET latency = '\\x07ffff'::bytea");
    let err = db
        .runtime
        .block_on(stats(
            &db.client,
            &StatsQuery::default(),
            now - Duration::from_secs(86_400 * 3),
            now + Duration::from_secs(60),
        ))
        .expect_err("an unreadable sketch");
    assert!(err.to_string().contains("latency sketch"), "{err}");
}

#[test]
fn promptctl_rollup_says_how_far_it_got_and_stats_reads_what_it_built() {
    let db = TestDb::new();
    migrate(&db);
    let now = SystemTime::now();
    // Two days of runs loaded around the recorder.
    let runs: Vec<RunRecord> = (0..300)
        .map(|i| run(i, now - Duration::from_secs(600 + i as u64 * 500)))
        .collect();
    load(&db, &runs);
    let repo = common::git::TestRepo::new();
    repo.write("promptctl.toml", "");
    // Before: read raw, right, and `stats` says how to make it fast.
    let stats_3d = [
        "stats",
        "--since",
        "3d",
        "--database-url",
        &db.url,
        "--format",
        "json",
    ];
    let (code, _, stderr) = repo.run(&stats_3d);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("not rolled up yet"), "{stderr}");
    assert!(stderr.contains("`promptctl rollup`"), "{stderr}");
    let (code, stdout, stderr) = repo.run(&[
        "rollup",
        "--since",
        "3d",
        "--database-url",
        &db.url,
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(report["runs"], 300, "{report}");
    // The days holding runs, newest first, one line each as it goes.
    let days = db.count(
        "SELECT count(DISTINCT date_trunc('day', created_at AT TIME ZONE 'UTC')) FROM prompt_runs",
    );
    assert_eq!(report["days"], days, "{report}");
    let progress: Vec<&str> = stderr.lines().filter(|l| l.contains("rolled up")).collect();
    assert_eq!(progress.len() as i64, days, "{stderr}");
    assert!(progress[0].contains("(1 day done)"), "{stderr}");
    assert_eq!(
        db.count("SELECT count(*) FROM prompt_rollups WHERE width = 86400"),
        {
            db.count(
                "SELECT count(DISTINCT (date_trunc('day', created_at AT TIME ZONE 'UTC'), service, \
             name, version, environment, coalesce(model_used, model_requested), error IS NULL)) \
             FROM prompt_runs",
            )
        }
    );
    let (code, stdout, stderr) = repo.run(&stats_3d);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("not rolled up"), "{stderr}");
    let stats: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let calls: i64 = stats["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| row["calls"].as_i64().expect("calls"))
        .sum();
    assert_eq!(calls, 300);
    for bad in ["soon", "1y", ""] {
        let (code, _, stderr) = repo.run(&["rollup", "--since", bad, "--database-url", &db.url]);
        assert_eq!(code, 2, "--since {bad:?}: {stderr}");
        assert!(stderr.contains("--since"), "{stderr}");
    }
}

#[test]
fn retention_keeps_hours_and_days_longer_than_minutes() {
    let db = TestDb::new();
    migrate(&db);
    let now = SystemTime::now();
    // Runs 10 and 100 days old, rolled up.
    let runs: Vec<RunRecord> = [10u64, 100]
        .iter()
        .map(|days| run(1, now - Duration::from_secs(days * 86_400)))
        .collect();
    load(&db, &runs);
    rebuild(&db, 0);
    let count = |width: i32| {
        db.count(&format!(
            "SELECT count(*) FROM prompt_rollups WHERE width = {width}"
        ))
    };
    assert_eq!((count(60), count(3600), count(86400)), (2, 2, 2));
    // Raw runs (and minute rows) for 30 days, hours and days for 50.
    db.runtime
        .block_on(rollups::retire(&db.client, 30, 50))
        .expect("retire");
    assert_eq!((count(60), count(3600), count(86400)), (1, 1, 1));
    db.runtime
        .block_on(rollups::retire(&db.client, 5, 0))
        .expect("retire");
    assert_eq!(
        (count(60), count(3600), count(86400)),
        (0, 1, 1),
        "0 keeps them"
    );
}

/// Rolls up with `retention_days`, as `promptctl rollup` does.
fn rebuild(db: &TestDb, retention_days: u32) -> rollups::Rebuilt {
    db.runtime
        .block_on(async {
            let mut client = promptctl::registry::connect(&db.url).await?;
            rollups::rebuild(&mut client, None, retention_days, |_, _, _| {}).await
        })
        .expect("rollup")
}

/// The runs the rollups of one width hold.
fn rolled_up(db: &TestDb, width: i32) -> i64 {
    db.count(&format!(
        "SELECT coalesce(sum(calls), 0)::int8 FROM prompt_rollups WHERE width = {width}"
    ))
}

#[test]
fn two_rollups_at_once_count_each_run_once() {
    let db = TestDb::new();
    migrate(&db);
    let now = SystemTime::now();
    let runs: Vec<RunRecord> = (0..20_000)
        .map(|i| {
            run(
                i,
                now - Duration::from_secs(2 * 86_400 + (i as u64 % 80_000)),
            )
        })
        .collect();
    load(&db, &runs);
    let both: Vec<_> = (0..2)
        .map(|_| {
            let url = db.url.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async {
                    let mut client = promptctl::registry::connect(&url).await?;
                    rollups::rebuild(&mut client, None, 0, |_, _, _| {}).await
                })
            })
        })
        .collect();
    for rollup in both {
        rollup.join().expect("thread").expect("rollup");
    }
    for width in [60, 3_600, 86_400] {
        assert_eq!(rolled_up(&db, width), 20_000, "width {width}");
    }
}

#[test]
fn a_rollup_leaves_days_past_raw_retention_and_skips_days_without_runs() {
    let db = TestDb::new();
    migrate(&db);
    let now = SystemTime::now();
    let day = 86_400;
    let runs: Vec<RunRecord> = [400u64, 100, 3]
        .iter()
        .flat_map(|days| (0..10).map(move |i| (*days, i)))
        .map(|(days, i)| run(i, now - Duration::from_secs(days * day + i as u64)))
        .collect();
    load(&db, &runs);
    // Three days hold runs: three days rolled up, not the 400 between.
    let first = rebuild(&db, 0);
    assert_eq!((first.days, first.runs), (3, 30));
    assert_eq!(rolled_up(&db, 86_400), 30);
    // Raw retention (90 days) removes the old runs; their hour and day rollups stay, and a
    // rollup leaves them alone.
    db.rows("DELETE FROM prompt_runs WHERE created_at < now() - interval '90 days'");
    let second = rebuild(&db, 90);
    assert_eq!((second.days, second.runs), (1, 10));
    assert_eq!(rolled_up(&db, 86_400), 30);
    assert_eq!(rolled_up(&db, 3_600), 30);
    assert_eq!(second.retained_from, None, "no run left is past retention");
    // With 2 days of retention the runs of 3 days ago are past it: left alone, and said.
    let third = rebuild(&db, 2);
    assert_eq!(third.days, 0);
    assert!(third.retained_from.is_some());
    assert_eq!(rolled_up(&db, 86_400), 30);
}

#[test]
fn a_live_recorder_keeps_the_last_hour() {
    let db = TestDb::new();
    migrate(&db);
    let now = SystemTime::now();
    // Runs of 3 hours ago and of 10 minutes ago, loaded around the recorder.
    let runs: Vec<RunRecord> = [10_800u64, 600]
        .iter()
        .flat_map(|ago| (0..5).map(move |i| run(i, now - Duration::from_secs(ago + i as u64))))
        .collect();
    load(&db, &runs);
    db.rows("UPDATE prompt_rollup_state SET recorder_seen_at = now()");
    let live = rebuild(&db, 0);
    assert!(live.settled.is_some());
    assert_eq!(live.runs, 5, "only the settled runs: {live:?}");
    // The last hour's runs are still read, raw: the rollups are complete only from the
    // migration on, which was within the hour.
    assert_matches_raw(
        &db,
        &StatsQuery::default(),
        "''",
        now - Duration::from_secs(86_400),
        now,
    );
    db.rows("UPDATE prompt_rollup_state SET recorder_seen_at = now() - interval '1 hour'");
    let idle = rebuild(&db, 0);
    assert_eq!((idle.settled, idle.runs), (None, 10));
}

#[test]
fn runs_of_no_environment_are_the_same_from_rollups_and_raw_runs() {
    let db = TestDb::new();
    migrate(&db);
    let now = SystemTime::now();
    let runs: Vec<RunRecord> = (0..200)
        .map(|i| {
            let mut run = run(i, now - Duration::from_secs(7_200 + i as u64 * 13));
            if i % 3 == 0 {
                run.environment = None;
            }
            run
        })
        .collect();
    load(&db, &runs);
    let none = StatsQuery {
        environment: Some(String::new()),
        ..StatsQuery::default()
    };
    let window = (now - Duration::from_secs(86_400), now);
    let read = |db: &TestDb| -> i64 {
        db.runtime
            .block_on(stats(&db.client, &none, window.0, window.1))
            .expect("stats")
            .iter()
            .map(|r| r.calls)
            .sum()
    };
    let raw = read(&db);
    assert_eq!(raw, 67, "read raw, before any rollup");
    rebuild(&db, 0);
    assert_eq!(read(&db), raw, "from the rollups");
}
