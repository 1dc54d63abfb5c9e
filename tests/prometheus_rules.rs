//! The example alert rules are valid: `promtool check rules` (Debian's `prometheus`
//! package, which `.ci/run` installs when missing). Fails, never skips, without promtool.

use std::process::Command;

#[test]
fn example_alert_rules_pass_promtool() {
    let rules = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/prometheus/promptctl-alerts.yml"
    );
    let output = Command::new("promtool")
        .args(["check", "rules", rules])
        .output()
        .unwrap_or_else(|err| {
            panic!("promtool is needed ({err}): `apt-get install -y prometheus` (.ci/run does)")
        });
    assert!(
        output.status.success(),
        "promtool check rules failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(rules).expect("the rules file");
    for metric in [
        "gen_ai_client_operation_duration_seconds_bucket",
        "promptctl_executions_total",
        "promptctl_run_records_dropped_total",
    ] {
        assert!(text.contains(metric), "{metric} in the rules");
    }
}
