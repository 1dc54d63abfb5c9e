//! The dashboard in headless Chromium (Debian's `chromium` package, which `.ci/run`
//! installs when missing; `PROMPTCTL_CHROMIUM` names another Chromium or Chrome, such as
//! GitHub's runners' `/usr/bin/google-chrome`): the prompt list, a prompt page, a diff
//! between two versions and a chart, checked through the DOM Chromium built, with
//! screenshots kept under `target/test-artifacts/`. Fails, never skips, without Chromium.

mod common;

use common::browser::check_page;
use common::server::{Server, setup};

#[test]
fn dashboard_in_headless_chromium() {
    let (db, repo) = setup();
    db.rows(
        "INSERT INTO prompt_runs (run_id, service, name, version, environment, latency_ms, \
         cost_usd, quality_score, created_at) \
         SELECT gen_random_uuid(), 'billing', 'invoice', 1, 'production', 100 + (i % 7) * 30, \
           0.002 * (i % 5), 0.8 + (i % 3) * 0.05, now() - ((i % 24) || ' hours')::interval \
         FROM generate_series(1, 200) AS i",
    );
    let server = Server::start(&repo, &db.url, &[], &[]);
    let profile = tempfile::tempdir().expect("profile");
    check_page(
        profile.path(),
        &format!("{}/", server.base),
        "dashboard-index.png",
        &[
            "id=\"service-billing\"",
            "href=\"/prompts/billing/invoice\"",
            "production: v1",
        ],
    );
    check_page(
        profile.path(),
        &format!("{}/prompts/billing/invoice?from=1&to=2", server.base),
        "dashboard-prompt.png",
        &[
            "id=\"versions\"",
            "class=\"version\"",
            "Ada Lovelace",
            "id=\"diff\"",
            "class=\"del\">- first {{ x }}",
            "class=\"ins\">+ second {{ x }}",
            "id=\"chart-latency\"",
            "class=\"series\"",
            "id=\"chart-cost\"",
            "id=\"chart-quality\"",
        ],
    );
}
