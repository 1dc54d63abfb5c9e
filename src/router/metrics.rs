//! In-process metrics of the router's runs, named after the OpenTelemetry GenAI semantic
//! conventions and rendered in the Prometheus text format (for `serve`'s `/metrics`):
//! `gen_ai_client_operation_duration_seconds` and `gen_ai_client_token_usage` histograms
//! (explicit buckets, the conventions' advice), labelled by model, prompt and environment,
//! plus `promptctl_runs_total` and `promptctl_run_errors_total` counters and
//! `promptctl_run_cost_usd_total`. Bounded by the number of (prompt, environment, model)
//! combinations; no upkeep task.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use serde::Serialize;

/// Duration buckets in seconds (OpenTelemetry GenAI advice).
pub const DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
/// Token buckets (OpenTelemetry GenAI advice).
pub const TOKEN_BUCKETS: [f64; 14] = [
    1.0,
    4.0,
    16.0,
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
];

/// A histogram with fixed buckets.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Histogram {
    /// Cumulative-free counts per bucket (the last is +Inf).
    pub counts: Vec<u64>,
    /// Sum of the observations.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

impl Histogram {
    fn observe(&mut self, buckets: &[f64], value: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; buckets.len() + 1];
        }
        let index = buckets
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(buckets.len());
        self.counts[index] += 1;
        self.sum += value;
        self.count += 1;
    }
}

/// The figures of one (prompt, environment, model).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Series {
    /// Runs.
    pub runs: u64,
    /// Failed runs.
    pub errors: u64,
    /// Cost in US dollars.
    pub cost_usd: f64,
    /// Operation duration in seconds.
    pub duration: Histogram,
    /// Input tokens per run.
    pub input_tokens: Histogram,
    /// Output tokens per run.
    pub output_tokens: Histogram,
}

/// Labels of a series.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Labels {
    /// `service/name`.
    pub prompt: String,
    /// The environment.
    pub environment: String,
    /// The model that answered (the requested one for a failed run).
    pub model: String,
}

/// The router's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<Labels, Series>>,
}

impl Metrics {
    pub(crate) fn observe(
        &self,
        labels: Labels,
        seconds: f64,
        tokens: Option<(u64, u64)>,
        cost: Option<f64>,
    ) {
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let entry = series.entry(labels).or_default();
        entry.runs += 1;
        entry.duration.observe(&DURATION_BUCKETS, seconds);
        match tokens {
            Some((input, output)) => {
                entry.input_tokens.observe(&TOKEN_BUCKETS, input as f64);
                entry.output_tokens.observe(&TOKEN_BUCKETS, output as f64);
            }
            None => entry.errors += 1,
        }
        entry.cost_usd += cost.unwrap_or(0.0);
    }

    /// A copy of every series.
    pub fn snapshot(&self) -> Vec<(Labels, Series)> {
        self.series
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(l, s)| (l.clone(), s.clone()))
            .collect()
    }

    /// The Prometheus text exposition of every series.
    pub fn prometheus(&self) -> String {
        let snapshot = self.snapshot();
        let mut out = String::new();
        let label = |l: &Labels| {
            format!(
                "gen_ai_request_model=\"{}\",prompt=\"{}\",environment=\"{}\"",
                escape(&l.model),
                escape(&l.prompt),
                escape(&l.environment)
            )
        };
        let _ = writeln!(
            out,
            "# HELP gen_ai_client_operation_duration_seconds GenAI operation duration.\n# TYPE gen_ai_client_operation_duration_seconds histogram"
        );
        for (labels, series) in &snapshot {
            histogram(
                &mut out,
                "gen_ai_client_operation_duration_seconds",
                &label(labels),
                &DURATION_BUCKETS,
                &series.duration,
            );
        }
        let _ = writeln!(
            out,
            "# HELP gen_ai_client_token_usage Measures number of input and output tokens used.\n# TYPE gen_ai_client_token_usage histogram"
        );
        for (labels, series) in &snapshot {
            for (kind, histo) in [
                ("input", &series.input_tokens),
                ("output", &series.output_tokens),
            ] {
                if histo.count > 0 {
                    histogram(
                        &mut out,
                        "gen_ai_client_token_usage",
                        &format!("{},gen_ai_token_type=\"{kind}\"", label(labels)),
                        &TOKEN_BUCKETS,
                        histo,
                    );
                }
            }
        }
        for (name, help, value) in [
            (
                "promptctl_runs_total",
                "Prompt executions through the router.",
                (|s: &Series| s.runs as f64) as fn(&Series) -> f64,
            ),
            (
                "promptctl_run_errors_total",
                "Executions where every model failed or the request was rejected.",
                |s: &Series| s.errors as f64,
            ),
            (
                "promptctl_run_cost_usd_total",
                "Cost of the executions in US dollars.",
                |s: &Series| s.cost_usd,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (labels, series) in &snapshot {
                let _ = writeln!(out, "{name}{{{}}} {}", label(labels), value(series));
            }
        }
        out
    }
}

fn histogram(out: &mut String, name: &str, labels: &str, buckets: &[f64], histo: &Histogram) {
    let mut cumulative = 0;
    for (index, bound) in buckets.iter().enumerate() {
        cumulative += histo.counts.get(index).copied().unwrap_or(0);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", histo.count);
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", histo.sum);
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", histo.count);
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_histograms_and_counters() {
        let metrics = Metrics::default();
        let labels = Labels {
            prompt: "a/b".into(),
            environment: "production".into(),
            model: "gpt-4o".into(),
        };
        metrics.observe(labels.clone(), 0.015, Some((10, 3)), Some(0.5));
        metrics.observe(labels, 0.5, None, None);
        let text = metrics.prometheus();
        assert!(text.contains("gen_ai_client_operation_duration_seconds_bucket{gen_ai_request_model=\"gpt-4o\",prompt=\"a/b\",environment=\"production\",le=\"0.02\"} 1"), "{text}");
        assert!(text.contains("gen_ai_client_operation_duration_seconds_count{gen_ai_request_model=\"gpt-4o\",prompt=\"a/b\",environment=\"production\"} 2"));
        assert!(text.contains("gen_ai_token_type=\"input\""));
        assert!(text.contains("promptctl_run_errors_total{gen_ai_request_model=\"gpt-4o\",prompt=\"a/b\",environment=\"production\"} 1"));
    }
}
