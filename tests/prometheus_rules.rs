//! The example alert rules and deploy/compose.yaml's Prometheus configuration are valid:
//! `promtool check rules` and `promtool check config` (Debian's `prometheus` package, which
//! `.ci/run` installs when missing). Fails, never skips, without promtool.

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

/// deploy/compose.yaml's Prometheus configuration: valid syntax (the token file it names
/// exists only inside the container), and it loads the alert rules that sit beside it.
#[test]
fn compose_prometheus_config_passes_promtool() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus");
    let config = format!("{dir}/prometheus.yml");
    let output = Command::new("promtool")
        .args(["check", "config", "--syntax-only", &config])
        .output()
        .unwrap_or_else(|err| {
            panic!("promtool is needed ({err}): `apt-get install -y prometheus` (.ci/run does)")
        });
    assert!(
        output.status.success(),
        "promtool check config failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&config).expect("the config file");
    assert!(text.contains("- promptctl-alerts.yml"), "rule file loaded");
    assert!(text.contains("credentials_file:"), "scraped with a token");
    let compose = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/compose.yaml");
    let compose = std::fs::read_to_string(compose).expect("deploy/compose.yaml");
    for mount in [
        "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro",
        "./prometheus/promptctl-alerts.yml:/etc/prometheus/promptctl-alerts.yml:ro",
    ] {
        assert!(compose.contains(mount), "compose mounts {mount}");
    }
}
