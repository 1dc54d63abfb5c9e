//! The dashboard in headless Chromium (Debian's `chromium` package, which `.ci/run`
//! installs when missing; `PROMPTCTL_CHROMIUM` names another Chromium or Chrome, such as
//! GitHub's runners' `/usr/bin/google-chrome`), checked through the DOM Chromium built,
//! with screenshots kept under `target/test-artifacts/`: the front page's fleet totals,
//! sorting (breaching prompts first), search and filters; a prompt's page with its time
//! axis, range picker, per-version series, deploy marker, error-rate chart, recent runs
//! (the sampled quality failure first), the diff between two versions and a canary split's
//! comparison of its sides. The runs are inserted in the past and rolled up with
//! `promptctl rollup`. Fails, never skips, without Chromium.

mod common;

use common::browser::{check_page, chromium};
use common::db::TestDb;
use common::git::TestRepo;
use common::server::{Server, setup_with, sync};

/// The sampled run that failed its quality checks.
const FAILURE: &str = "f0000000-0000-4000-8000-000000000001";

/// `billing/invoice`: 200 runs over the last 20 hours, version 2 from three hours ago,
/// slower and failing a third of its calls, and one sampled quality failure ten hours ago.
/// `support/reply`: 50 runs, 40 % failed (breaching `max_error_rate`). `support/summary`:
/// 20 slow runs in staging. `support/idle`: none.
fn runs(db: &TestDb) {
    db.rows(
        "INSERT INTO prompt_runs (run_id, service, name, version, environment, model_used, \
           latency_ms, cost_usd, error, sampled, quality_score, created_at) \
         SELECT gen_random_uuid(), 'billing', 'invoice', \
           CASE WHEN h <= 3 THEN 2 ELSE 1 END, 'production', 'gpt-4o-mini', \
           CASE WHEN h <= 3 THEN 900 + (i % 5) * 20 ELSE 100 + (i % 7) * 30 END, 0.002, \
           CASE WHEN h <= 3 AND i % 10 = 0 THEN 'timeout' END, i % 10 = 5, \
           CASE WHEN i % 10 = 5 THEN 1.0 END, \
           now() - make_interval(hours => h) - interval '5 minutes' \
         FROM (SELECT i, i % 20 + 1 AS h FROM generate_series(1, 200) AS i) AS s",
    );
    db.rows(&format!(
        "INSERT INTO prompt_runs (run_id, service, name, version, environment, model_used, \
           latency_ms, cost_usd, sampled, quality_score, created_at) \
         VALUES ('{FAILURE}', 'billing', 'invoice', 1, 'production', 'gpt-4o-mini', 150, 0, \
           true, 0.25, now() - interval '10 hours')"
    ));
    db.rows(
        "INSERT INTO prompt_runs (run_id, service, name, version, environment, latency_ms, \
           cost_usd, error, created_at) \
         SELECT gen_random_uuid(), 'support', 'reply', 1, 'production', 50, 0.001, \
           CASE WHEN i % 5 < 2 THEN 'refused' END, \
           now() - make_interval(hours => i % 10 + 1) - interval '10 minutes' \
         FROM generate_series(1, 50) AS i",
    );
    db.rows(
        "INSERT INTO prompt_runs (run_id, service, name, version, environment, latency_ms, \
           cost_usd, created_at) \
         SELECT gen_random_uuid(), 'support', 'summary', 1, 'staging', 2000 + i, 0.01, \
           now() - make_interval(hours => i % 5 + 2) \
         FROM generate_series(1, 20) AS i",
    );
}

/// The registry, its runs rolled up, and the server with `[monitoring.alerts]`.
fn start() -> (TestDb, TestRepo, Server) {
    let (db, repo) = setup_with(&["support/reply", "support/summary", "support/idle"]);
    runs(&db);
    let (code, stdout, stderr) = repo.run(&["rollup", "--since", "30d", "--database-url", &db.url]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    repo.write(
        "promptctl.toml",
        "default_provider = \"echo\"\n\n[monitoring.alerts]\nmax_error_rate = 0.2\n",
    );
    let server = Server::start(&repo, &db.url, &[], &[]);
    (db, repo, server)
}

/// Where `needle` is in `dom`; a failure naming it when it is not.
fn at(dom: &str, needle: &str) -> usize {
    dom.find(needle)
        .unwrap_or_else(|| panic!("{needle} in the DOM:\n{dom}"))
}

/// The prompts of the front page's table, in the order the DOM holds them.
fn prompt_order(dom: &str) -> Vec<String> {
    dom.split("<tr class=\"prompt")
        .skip(1)
        .filter_map(|row| {
            let start = row.find("data-prompt=\"")? + "data-prompt=\"".len();
            row[start..].split('"').next().map(str::to_owned)
        })
        .collect()
}

#[test]
fn front_page_totals_sorting_search_and_filters() {
    let (_db, _repo, server) = start();
    // Choices out of bounds are the API's 400 (first: the client's pooled connection from
    // the server's start must not idle past the server's timeouts).
    for query in [
        "?sort=speed",
        "?range=2h",
        "?page=0",
        &format!("?q={}", "x".repeat(201)),
    ] {
        server
            .get(&format!("/{query}"), None)
            .error(400, "bad_request");
    }
    let profile = tempfile::tempdir().expect("profile");
    let page = |query: &str| {
        chromium(
            profile.path(),
            &["--dump-dom"],
            &format!("{}/{query}", server.base),
        )
    };
    check_page(
        profile.path(),
        &format!("{}/", server.base),
        "dashboard-index.png",
        &[
            "id=\"fleet-calls\">271</dd>",
            // 30 failed of 271.
            "id=\"fleet-error-rate\">11.1%</dd>",
            "id=\"fleet-cost\">$0.6500</dd>",
            "id=\"fleet-breaching\">1</dd>",
            "href=\"/prompts/billing/invoice\"",
            "production: v1",
            "<option value=\"billing\">billing</option>",
            "<option value=\"production\">production</option>",
            "class=\"range-current\" data-range=\"24h\"",
            "data-range=\"30d\"",
            "error rate 40.00% is above 20.00%",
        ],
    );
    let dom = page("");
    assert!(!dom.contains("id=\"fleet-p95\">–"), "a fleet P95:\n{dom}");
    // Breaching first, then most calls; the prompt without runs last.
    assert_eq!(
        prompt_order(&dom),
        [
            "support/reply",
            "billing/invoice",
            "support/summary",
            "support/idle"
        ]
    );
    assert!(dom.contains("<tr class=\"prompt breach\" data-prompt=\"support/reply\""));
    // The slowest after the breaching one.
    assert_eq!(
        prompt_order(&page("?sort=p95")),
        [
            "support/reply",
            "support/summary",
            "billing/invoice",
            "support/idle"
        ]
    );
    assert_eq!(
        prompt_order(&page("?sort=name"))[1..],
        ["billing/invoice", "support/idle", "support/summary"]
    );
    // The search is in `service/name`; the filters keep the choices in their links.
    assert_eq!(prompt_order(&page("?q=SUPPORT/SUMM")), ["support/summary"]);
    let billing = page("?service=billing&sort=cost&range=7d");
    assert_eq!(prompt_order(&billing), ["billing/invoice"]);
    assert!(billing.contains("class=\"range-current\" data-range=\"7d\""));
    assert!(billing.contains("href=\"?range=1h&amp;sort=cost&amp;service=billing\""));
    // The totals are the service's.
    assert!(billing.contains("<h2>billing, last 7 d</h2>"), "{billing}");
    assert!(billing.contains("id=\"fleet-calls\">201</dd>"), "{billing}");
    // An environment narrows the figures, not the prompts.
    let staging = page("?env=staging");
    assert!(staging.contains("id=\"fleet-calls\">20</dd>"), "{staging}");
    assert_eq!(prompt_order(&staging)[0], "support/summary");
    assert_eq!(prompt_order(&staging).len(), 4);
}

#[test]
fn prompt_page_over_time() {
    let (_db, _repo, server) = start();
    server
        .get("/prompts/billing/invoice?range=2h", None)
        .error(400, "bad_request");
    let profile = tempfile::tempdir().expect("profile");
    let url = format!("{}/prompts/billing/invoice?from=1&to=2", server.base);
    check_page(
        profile.path(),
        &url,
        "dashboard-prompt.png",
        &[
            "id=\"versions\"",
            "class=\"version\"",
            "Ada Lovelace",
            "id=\"diff\"",
            "class=\"del\">- first {{ x }}",
            "class=\"ins\">+ second {{ x }}",
            "class=\"range-current\" data-range=\"24h\"",
            "data-range=\"7d\" href=\"?range=7d&amp;from=1&amp;to=2#runs\"",
            "id=\"chart-latency\"",
            "data-series=\"v1\"",
            "data-series=\"v2\"",
            "class=\"deploy\" data-version=\"v2\"",
            "id=\"chart-errors\"",
            "id=\"chart-calls\"",
            "id=\"chart-cost\"",
            "id=\"chart-quality\"",
            ">UTC</text>",
            "id=\"recent-runs\"",
        ],
    );
    let dom = chromium(profile.path(), &["--dump-dom"], &url);
    // The time axis of a day: a label every three hours.
    let ticks = ticks(&dom);
    assert!(ticks.len() >= 7, "{ticks:?}");
    assert!(ticks.iter().all(|(at, _)| at % 10_800 == 0), "{ticks:?}");
    // The sampled failure first, then the newest.
    let failure = at(&dom, &format!("data-run=\"{FAILURE}\""));
    assert!(failure < at(&dom, "<tr class=\"run\""));
    assert!(dom.contains("<tr class=\"run quality-failure\""));
    // A week: a label a day, named by its date.
    let week = chromium(
        profile.path(),
        &["--dump-dom"],
        &format!("{}/prompts/billing/invoice?range=7d", server.base),
    );
    let ticks = self::ticks(&week);
    assert!(ticks.len() >= 6, "{ticks:?}");
    for (at, label) in &ticks {
        assert_eq!(at % 86_400, 0, "{label}");
        let (month, day) = label.split_once(' ').expect("a date");
        assert!(month.len() == 3 && day.len() == 2, "{label}");
    }
    // The last hour holds no runs; an environment without runs neither.
    for query in ["range=1h", "env=staging"] {
        let dom = chromium(
            profile.path(),
            &["--dump-dom"],
            &format!("{}/prompts/billing/invoice?{query}", server.base),
        );
        assert!(dom.contains("id=\"no-runs\""), "{query}: {dom}");
        assert!(dom.contains("id=\"no-recent-runs\""), "{query}: {dom}");
    }
}

/// The time axis's ticks of the first chart: `(seconds since the epoch, label)`.
fn ticks(dom: &str) -> Vec<(i64, String)> {
    let chart = &dom[at(dom, "id=\"chart-latency\"")..];
    let chart = &chart[..chart.find("</svg>").unwrap_or(chart.len())];
    chart
        .split("class=\"tick\" data-at=\"")
        .skip(1)
        .filter_map(|tick| {
            let (at, rest) = tick.split_once('"')?;
            let label = rest.split_once('>')?.1.split('<').next()?;
            Some((at.parse().ok()?, label.to_owned()))
        })
        .collect()
}

/// `billing/invoice` split in production (v1 on gpt-4o-mini, a canary of v2 at 25 %),
/// synced, the split's start moved two hours back; inside that window 600 baseline runs
/// (1 % failed) and 200 canary runs (20 % failed), before it 300 canary runs without
/// errors, which the comparison leaves out. `support/reply` has no split.
#[test]
fn prompt_page_compares_a_canary_split() {
    let (db, repo) = setup_with(&["support/reply"]);
    repo.write(
        "environments.yaml",
        "prompts:\n  invoice:\n    production: {version: 1, model: gpt-4o-mini, canary: {version: 2, weight: 25}}\n",
    );
    repo.commit("Split production");
    sync(&repo, &db);
    db.rows(
        "UPDATE prompt_environments SET canary_since = now() - interval '2 hours' \
         WHERE service = 'billing' AND name = 'invoice' AND environment = 'production'",
    );
    db.rows(
        "INSERT INTO prompt_runs (run_id, service, name, version, environment, \
           model_requested, latency_ms, error, side, created_at, source, sampled) \
         SELECT gen_random_uuid(), 'billing', 'invoice', CASE WHEN i <= 600 THEN 1 ELSE 2 END, \
           'production', 'gpt-4o-mini', 100 + i % 50, \
           CASE WHEN i <= 600 AND i % 100 = 0 THEN 'timeout' \
                WHEN i > 600 AND i <= 800 AND i % 5 = 0 THEN 'timeout' END, \
           CASE WHEN i <= 600 THEN 'baseline' ELSE 'canary' END, \
           CASE WHEN i <= 800 THEN now() - make_interval(secs => i * 4) \
                ELSE now() - interval '3 hours' - make_interval(secs => i) END, \
           '', false \
         FROM generate_series(1, 1100) AS i",
    );
    let server = Server::start(&repo, &db.url, &[], &[]);
    let profile = tempfile::tempdir().expect("profile");
    check_page(
        profile.path(),
        &format!("{}/prompts/billing/invoice", server.base),
        "dashboard-canary.png",
        &[
            "<h2>Canary in production</h2>",
            "Baseline <strong>v1 (gpt-4o-mini)</strong> against canary \
             <strong>v2 (gpt-4o-mini)</strong> at 25 % of calls",
            "(the commit that last changed the split)",
            "<span data-side=\"baseline\">600</span> runs",
            "<span data-side=\"canary\">200</span> runs",
            "<tr class=\"metric worse\" data-metric=\"error rate\"><td>error rate</td>\
             <td class=\"num\">1.00%</td><td class=\"num\">20.00%</td>\
             <td class=\"num\">+19.00 pp</td>",
            "<td class=\"verdict\">worse</td>",
            "data-metric=\"P95 latency\"",
            "not enough data (needs 30 per side, has baseline 0, canary 0)",
            "Runs with a failed provider attempt (retried or fallen back): canary 20.00%, \
             baseline 1.00%; intervals at 99.00% each, so 95% across all 5 metrics together.",
        ],
    );
    let dom = chromium(
        profile.path(),
        &["--dump-dom"],
        &format!("{}/prompts/billing/invoice", server.base),
    );
    // One worse metric: the error rate; the latencies are the same on both sides.
    assert_eq!(dom.matches("class=\"metric worse\"").count(), 1, "{dom}");
    assert!(!dom.contains("id=\"canary-note\""), "{dom}");
    // A prompt without a split shows nothing of canaries.
    let reply = server.get("/prompts/support/reply", None);
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(!reply.text.contains("Canary in"), "{}", reply.text);
    assert!(!reply.text.contains("class=\"canary"), "{}", reply.text);
}
