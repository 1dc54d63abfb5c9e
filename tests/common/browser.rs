//! Headless Chromium for the tests of pages (the dashboard, the HTML test report):
//! Debian's `chromium` package, which `.ci/run` installs when missing, or the browser
//! `PROMPTCTL_CHROMIUM` names (such as GitHub's runners' `/usr/bin/google-chrome`). The
//! DOM Chromium built is checked, and screenshots are kept under `target/test-artifacts/`.
//! Fails, never skips, without Chromium.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian's Chromium, unless `PROMPTCTL_CHROMIUM` names another browser.
pub fn chromium_path() -> PathBuf {
    std::env::var_os("PROMPTCTL_CHROMIUM")
        .filter(|path| !path.is_empty())
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

pub fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts folder");
    dir
}

pub fn chromium(profile: &Path, extra: &[&str], url: &str) -> String {
    let browser = chromium_path();
    assert!(
        browser.exists(),
        "the page tests need Chromium at {}: `apt-get install -y chromium` (.ci/run does), \
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

pub fn check_page(profile: &Path, url: &str, shot: &str, needles: &[&str]) {
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
