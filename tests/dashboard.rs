//! The dashboard in headless Chromium (Debian's `chromium` package, which `.ci/run`
//! installs when missing; `PROMPTCTL_CHROMIUM` names another Chromium or Chrome, such as
//! GitHub's runners' `/usr/bin/google-chrome`): the prompt list, a prompt page, a diff
//! between two versions and a chart, checked through the DOM Chromium built, with
//! screenshots kept under `target/test-artifacts/`. Fails, never skips, without Chromium.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::server::{Server, setup};

/// Debian's Chromium, unless `PROMPTCTL_CHROMIUM` names another browser.
fn chromium_path() -> PathBuf {
    std::env::var_os("PROMPTCTL_CHROMIUM")
        .filter(|path| !path.is_empty())
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts folder");
    dir
}

fn chromium(profile: &Path, extra: &[&str], url: &str) -> String {
    let browser = chromium_path();
    assert!(
        browser.exists(),
        "the dashboard test needs Chromium at {}: `apt-get install -y chromium` (.ci/run does), \
         or PROMPTCTL_CHROMIUM naming a Chromium or Chrome binary",
        browser.display()
    );
    let output = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--disable-dev-shm-usage",
            &format!("--user-data-dir={}", profile.display()),
        ])
        .args(extra)
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn check_page(profile: &Path, url: &str, shot: &str, needles: &[&str]) {
    let dom = chromium(profile, &["--dump-dom"], url);
    for needle in needles {
        assert!(dom.contains(needle), "{needle} in the DOM of {url}:\n{dom}");
    }
    let file = artifacts().join(shot);
    chromium(
        profile,
        &[
            &format!("--screenshot={}", file.display()),
            "--window-size=1200,1400",
        ],
        url,
    );
    assert!(
        std::fs::metadata(&file)
            .map(|m| m.len() > 1000)
            .unwrap_or(false),
        "screenshot {}",
        file.display()
    );
}

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
