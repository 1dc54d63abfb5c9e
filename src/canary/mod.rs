//! Canary analysis: a canary (`canary:` inside an environment) against the baseline it
//! runs beside, over the same window, metric by metric.
//!
//! Each metric gets the two sides' values, the difference (canary − baseline) and a
//! two-sided confidence interval of it ([`statistics`]): Newcombe's hybrid score interval
//! for the error rate, a distribution-free interval of the difference of quantiles for the
//! median and 95th percentile latency, Welch's interval for the mean cost per call and
//! the mean sampled quality. The intervals are taken at `1 − (1 − confidence) / metrics`
//! (Bonferroni), so the chance that any metric is called worse or better when the canary
//! is no different stays at most `1 − confidence`. A metric is **worse** when its whole
//! interval lies beyond the degradation `[canary.max_degradation]` tolerates, **better**
//! when its whole interval lies on the good side of no difference, and has **not enough
//! data** while either side has fewer runs than the metric's interval needs.
//!
//! This module computes; reading the runs is `registry::canary`, printing is the door's.

pub mod statistics;

use serde::Serialize;

use crate::config::CanarySettings;
use crate::environments::Side;
use crate::registry::canary::{RunFacts, RunsOf, SideQuery, read_side};
use crate::registry::{Registry, RegistryError, Selector};
use statistics::{Interval, Moments};

/// The metrics compared, in the order they are reported.
pub const METRICS: [Metric; 5] = [
    Metric::ErrorRate,
    Metric::LatencyP50,
    Metric::LatencyP95,
    Metric::Cost,
    Metric::Quality,
];

/// Runs per side below which a proportion or a mean is not compared.
const MIN_RUNS: u64 = 30;

/// One compared metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// The share of runs that failed after their retries and fallbacks.
    ErrorRate,
    /// Median latency, milliseconds.
    LatencyP50,
    /// 95th percentile latency, milliseconds.
    LatencyP95,
    /// Mean cost per priced call, US dollars.
    Cost,
    /// Mean quality score of sampled runs (0 to 1).
    Quality,
}

impl Metric {
    /// The metric as people read it.
    pub fn label(self) -> &'static str {
        match self {
            Metric::ErrorRate => "error rate",
            Metric::LatencyP50 => "P50 latency",
            Metric::LatencyP95 => "P95 latency",
            Metric::Cost => "cost per call",
            Metric::Quality => "quality",
        }
    }

    /// A value of the metric as people read it: `1.25%`, `312.0 ms`, `$0.00042`, `0.912`.
    pub fn show(self, value: f64) -> String {
        match self {
            Metric::ErrorRate => format!("{:.2}%", value * 100.0),
            Metric::LatencyP50 | Metric::LatencyP95 => format!("{value:.1} ms"),
            Metric::Cost => format!("${value:.6}"),
            Metric::Quality => format!("{value:.3}"),
        }
    }

    /// A difference of the metric as people read it, signed: `+7.00 pp`, `-12.5 ms`.
    pub fn show_difference(self, value: f64) -> String {
        match self {
            Metric::ErrorRate => format!("{:+.2} pp", value * 100.0),
            Metric::LatencyP50 | Metric::LatencyP95 => format!("{value:+.1} ms"),
            Metric::Cost => format!("{value:+.6} $"),
            Metric::Quality => format!("{value:+.3}"),
        }
    }

    /// Whether a higher value is worse (all but quality).
    pub fn higher_is_worse(self) -> bool {
        self != Metric::Quality
    }
}

/// What the comparison says of one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Significantly worse by more than the tolerated degradation.
    Worse,
    /// Significantly better.
    Better,
    /// No significant difference (or one within the tolerated degradation).
    NoSignificantDifference,
    /// A side has fewer runs than the interval needs.
    NotEnoughData,
}

impl Verdict {
    /// The verdict as people read it.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Worse => "worse",
            Verdict::Better => "better",
            Verdict::NoSignificantDifference => "no significant difference",
            Verdict::NotEnoughData => "not enough data",
        }
    }
}

/// One side's runs as the analysis keeps them: counts, latencies, running moments.
#[derive(Debug, Clone, Default)]
pub struct SideSample {
    /// Runs.
    pub runs: u64,
    /// Runs that failed after their retries and fallbacks.
    pub failed: u64,
    /// Runs with a failed provider attempt (failed, or answered by a fallback).
    pub faltered: u64,
    /// Latencies of the answered runs in milliseconds (sorted by [`SideSample::finish`]):
    /// a run that fails fast must not make its side look faster.
    pub latencies: Vec<f64>,
    /// Cost per priced call.
    pub cost: Moments,
    /// Quality of sampled runs.
    pub quality: Moments,
}

impl SideSample {
    /// Adds one run.
    pub fn add(&mut self, run: RunFacts) {
        self.runs += 1;
        self.failed += u64::from(run.failed);
        self.faltered += u64::from(run.faltered);
        if let Some(latency) = run.latency_ms.filter(|l| l.is_finite() && !run.failed) {
            self.latencies.push(latency);
        }
        if let Some(cost) = run.cost_usd {
            self.cost.push(cost);
        }
        if let Some(quality) = run.quality {
            self.quality.push(quality);
        }
    }

    /// Sorts the latencies, once every run is added.
    pub fn finish(&mut self) {
        self.latencies.sort_by(f64::total_cmp);
    }

    /// The share of runs with a failed provider attempt (`None` without runs).
    pub fn attempt_error_rate(&self) -> Option<f64> {
        (self.runs > 0).then(|| self.faltered as f64 / self.runs as f64)
    }
}

/// A confidence interval of canary − baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bounds {
    /// The lower bound.
    pub low: f64,
    /// The upper bound.
    pub high: f64,
}

/// One metric compared.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The metric.
    pub metric: Metric,
    /// The baseline's value.
    pub baseline: Option<f64>,
    /// The canary's value.
    pub canary: Option<f64>,
    /// canary − baseline.
    pub difference: Option<f64>,
    /// The confidence interval of the difference.
    pub interval: Option<Bounds>,
    /// The degradation tolerated, in the metric's unit (a difference beyond it is worse).
    pub tolerance: f64,
    /// The verdict.
    pub verdict: Verdict,
    /// The values each side has for this metric.
    pub samples: [u64; 2],
    /// The fewest values per side the interval needs.
    pub needs: u64,
}

/// Every metric of a canary against its baseline.
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    /// The confidence across all metrics together.
    pub confidence: f64,
    /// The confidence of each metric's interval (Bonferroni-corrected).
    pub per_metric_confidence: f64,
    /// Runs read of the baseline.
    pub baseline_runs: u64,
    /// Runs read of the canary.
    pub canary_runs: u64,
    /// The baseline's share of runs with a failed provider attempt.
    pub baseline_attempt_error_rate: Option<f64>,
    /// The canary's share of runs with a failed provider attempt.
    pub canary_attempt_error_rate: Option<f64>,
    /// The metrics, in [`METRICS`] order.
    pub metrics: Vec<Comparison>,
    /// What the baseline and the canary run, when the comparison kept to them.
    pub sides: Option<[RunsOf; 2]>,
}

impl Analysis {
    /// Whether any metric is significantly worse (`canary status --check` fails).
    pub fn worse(&self) -> bool {
        self.metrics.iter().any(|m| m.verdict == Verdict::Worse)
    }

    /// `canary 1.25%, baseline 0.40%`: each side's share of runs with a failed provider
    /// attempt.
    pub fn attempts_line(&self) -> String {
        let share = |value: Option<f64>| {
            value.map_or_else(|| "-".to_owned(), |v| format!("{:.2}%", v * 100.0))
        };
        format!(
            "canary {}, baseline {}",
            share(self.canary_attempt_error_rate),
            share(self.baseline_attempt_error_rate)
        )
    }

    /// `intervals at 99.00% each, so 95% across all 5 metrics together`.
    pub fn confidence_line(&self) -> String {
        format!(
            "intervals at {:.2}% each, so {:.0}% across all {} metrics together",
            self.per_metric_confidence * 100.0,
            self.confidence * 100.0,
            self.metrics.len()
        )
    }
}

impl Comparison {
    /// The row as `canary status` and the dashboard show it: baseline, canary,
    /// difference, interval and verdict (`-` for a missing figure).
    pub fn cells(&self) -> [String; 5] {
        let metric = self.metric;
        let show = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| metric.show(v));
        let verdict = match self.verdict {
            Verdict::NotEnoughData => format!(
                "not enough data (needs {} per side, has baseline {}, canary {})",
                self.needs, self.samples[0], self.samples[1]
            ),
            verdict => verdict.label().to_owned(),
        };
        [
            show(self.baseline),
            show(self.canary),
            self.difference
                .map_or_else(|| "-".to_owned(), |d| metric.show_difference(d)),
            self.interval.map_or_else(
                || "-".to_owned(),
                |i| {
                    format!(
                        "[{}, {}]",
                        metric.show_difference(i.low),
                        metric.show_difference(i.high)
                    )
                },
            ),
            verdict,
        ]
    }
}

/// Compares `canary` with `baseline` (both [finished](SideSample::finish)) as `settings`
/// say.
pub fn analyze(baseline: &SideSample, canary: &SideSample, settings: &CanarySettings) -> Analysis {
    let confidence = settings.confidence;
    let per_metric = 1.0 - (1.0 - confidence) / METRICS.len() as f64;
    let metrics = METRICS
        .iter()
        .map(|&metric| compare_metric(metric, baseline, canary, settings, per_metric))
        .collect();
    Analysis {
        confidence,
        per_metric_confidence: per_metric,
        baseline_runs: baseline.runs,
        canary_runs: canary.runs,
        baseline_attempt_error_rate: baseline.attempt_error_rate(),
        canary_attempt_error_rate: canary.attempt_error_rate(),
        metrics,
        sides: None,
    }
}

/// What one metric measures on both sides: their values, the interval of the difference
/// (`None`: it cannot be built), the values each side has and the fewest it needs.
struct Measured {
    values: (Option<f64>, Option<f64>),
    interval: Option<Interval>,
    samples: [u64; 2],
    needs: u64,
}

impl Measured {
    /// A proportion of events among runs: Newcombe's interval.
    fn proportion(baseline: (u64, u64), canary: (u64, u64), level: f64) -> Measured {
        let rate = |(events, runs): (u64, u64)| (runs > 0).then(|| events as f64 / runs as f64);
        Measured {
            values: (rate(baseline), rate(canary)),
            interval: statistics::proportion_difference(baseline, canary, level),
            samples: [baseline.1, canary.1],
            needs: MIN_RUNS,
        }
    }

    /// The `p`-quantile of sorted latencies: the order-statistic interval.
    fn quantile(baseline: &[f64], canary: &[f64], p: f64, level: f64) -> Measured {
        Measured {
            values: (
                statistics::quantile(baseline, p),
                statistics::quantile(canary, p),
            ),
            interval: statistics::quantile_difference(baseline, canary, p, level),
            samples: [baseline.len() as u64, canary.len() as u64],
            needs: statistics::min_quantile_sample(p) as u64,
        }
    }

    /// A mean: Welch's interval.
    fn mean(baseline: &Moments, canary: &Moments, level: f64) -> Measured {
        let mean = |m: &Moments| (m.n > 0).then_some(m.mean);
        Measured {
            values: (mean(baseline), mean(canary)),
            interval: statistics::mean_difference(baseline, canary, level),
            samples: [baseline.n, canary.n],
            needs: MIN_RUNS,
        }
    }
}

/// One metric's values, interval and verdict.
fn compare_metric(
    metric: Metric,
    baseline: &SideSample,
    canary: &SideSample,
    settings: &CanarySettings,
    level: f64,
) -> Comparison {
    let degradation = &settings.max_degradation;
    let Measured {
        values: (base, cand),
        interval,
        samples,
        needs,
    } = match metric {
        Metric::ErrorRate => Measured::proportion(
            (baseline.failed, baseline.runs),
            (canary.failed, canary.runs),
            level,
        ),
        Metric::LatencyP50 => {
            Measured::quantile(&baseline.latencies, &canary.latencies, 0.5, level)
        }
        Metric::LatencyP95 => {
            Measured::quantile(&baseline.latencies, &canary.latencies, 0.95, level)
        }
        Metric::Cost => Measured::mean(&baseline.cost, &canary.cost, level),
        Metric::Quality => Measured::mean(&baseline.quality, &canary.quality, level),
    };
    let tolerance = match metric {
        Metric::ErrorRate => degradation.error_rate / 100.0,
        Metric::LatencyP50 => base.unwrap_or(0.0) * degradation.latency_p50 / 100.0,
        Metric::LatencyP95 => base.unwrap_or(0.0) * degradation.latency_p95 / 100.0,
        Metric::Cost => base.unwrap_or(0.0) * degradation.cost / 100.0,
        Metric::Quality => degradation.quality,
    };
    let enough = samples.iter().all(|&n| n >= needs);
    let interval = interval.filter(|_| enough);
    let verdict = match interval {
        None => Verdict::NotEnoughData,
        Some(interval) => verdict(metric, interval, tolerance),
    };
    Comparison {
        metric,
        baseline: base,
        canary: cand,
        difference: base.zip(cand).map(|(b, c)| c - b),
        interval: interval.map(|i| Bounds {
            low: i.low,
            high: i.high,
        }),
        tolerance,
        verdict,
        samples,
        needs,
    }
}

/// Worse when the whole interval lies beyond the tolerated degradation, better when it
/// lies wholly on the good side of no difference.
fn verdict(metric: Metric, interval: Interval, tolerance: f64) -> Verdict {
    // Flip quality so that "higher is worse" holds for every metric.
    let (low, high) = if metric.higher_is_worse() {
        (interval.low, interval.high)
    } else {
        (-interval.high, -interval.low)
    };
    if low > tolerance {
        Verdict::Worse
    } else if high < 0.0 {
        Verdict::Better
    } else {
        Verdict::NoSignificantDifference
    }
}

/// Reads the runs of both sides that `query` selects (the newest `query.limit` of each)
/// and compares them as `settings` say. When the registry holds the split, each side's
/// runs are only those of the version and model it runs now (runs an earlier split left
/// in the window are not compared); without it (a split since removed), every run of
/// each side in the window.
pub async fn read_and_compare(
    registry: &Registry,
    query: &SideQuery<'_>,
    settings: &CanarySettings,
) -> Result<Analysis, RegistryError> {
    let sides = runs_of(registry, query).await?;
    let mut samples = [SideSample::default(), SideSample::default()];
    for (index, side) in [Side::Baseline, Side::Canary].into_iter().enumerate() {
        let of = sides.as_ref().map(|sides| &sides[index]);
        let sample = &mut samples[index];
        read_side(registry, query, (side, of), |run| sample.add(run)).await?;
        sample.finish();
    }
    let [baseline, canary] = samples;
    let mut analysis = analyze(&baseline, &canary, settings);
    analysis.sides = sides;
    Ok(analysis)
}

/// What each side of `query`'s split runs now, by the registry; `None` when it holds no
/// such split.
async fn runs_of(
    registry: &Registry,
    query: &SideQuery<'_>,
) -> Result<Option<[RunsOf; 2]>, RegistryError> {
    let prompt = format!("{}/{}", query.service, query.name);
    let environment = query.environment.to_owned();
    let mut sides = Vec::with_capacity(2);
    for selector in [
        Selector::Environment(environment.clone()),
        Selector::Canary(environment.clone()),
    ] {
        match registry.get_prompt(&prompt, &selector).await {
            Ok(found) => sides.push(RunsOf {
                version: i32::try_from(found.version).unwrap_or(i32::MAX),
                model: found.model,
            }),
            Err(
                RegistryError::NoCanary { .. }
                | RegistryError::NoSuchEnvironment(_)
                | RegistryError::NoSuchVersion { .. }
                | RegistryError::Lookup(_),
            ) => return Ok(None),
            Err(err) => return Err(err),
        }
    }
    Ok(sides.try_into().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(runs: u64, failed: u64, latency: impl Fn(u64) -> f64) -> SideSample {
        let mut sample = SideSample::default();
        for i in 0..runs {
            sample.add(RunFacts {
                failed: i < failed,
                faltered: i < failed,
                latency_ms: Some(latency(i)),
                cost_usd: Some(0.001),
                quality: None,
            });
        }
        sample.finish();
        sample
    }

    fn verdict_of(analysis: &Analysis, metric: Metric) -> Verdict {
        analysis
            .metrics
            .iter()
            .find(|m| m.metric == metric)
            .map(|m| m.verdict)
            .expect("metric")
    }

    #[test]
    fn a_canary_erring_eight_times_as_often_is_worse_on_error_rate_alone() {
        let baseline = side(1600, 16, |i| 100.0 + (i % 50) as f64);
        let canary = side(400, 32, |i| 100.0 + (i % 50) as f64);
        let analysis = analyze(&baseline, &canary, &CanarySettings::default());
        assert_eq!(verdict_of(&analysis, Metric::ErrorRate), Verdict::Worse);
        assert_eq!(
            verdict_of(&analysis, Metric::LatencyP95),
            Verdict::NoSignificantDifference
        );
        assert_eq!(
            verdict_of(&analysis, Metric::Quality),
            Verdict::NotEnoughData
        );
        assert!(analysis.worse());
    }

    #[test]
    fn too_few_canary_runs_is_not_enough_data_not_a_verdict() {
        let baseline = side(1600, 16, |i| 100.0 + (i % 50) as f64);
        let canary = side(4, 2, |i| 900.0 + i as f64);
        let analysis = analyze(&baseline, &canary, &CanarySettings::default());
        assert!(
            analysis
                .metrics
                .iter()
                .all(|m| m.verdict == Verdict::NotEnoughData)
        );
        assert!(!analysis.worse());
    }

    /// SplitMix64: a seeded stream of uniform numbers in [0, 1).
    struct Stream(u64);

    impl Stream {
        fn next(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// 2,000 runs split at `weight` % between two sides drawn from one distribution: 2 %
    /// errors, lognormal latencies rounded to the millisecond, varying costs, a tenth
    /// sampled for quality.
    fn identical_sides(seed: u64, weight: f64) -> (SideSample, SideSample) {
        let mut stream = Stream(seed);
        let (mut baseline, mut canary) = (SideSample::default(), SideSample::default());
        for _ in 0..2000 {
            let (u1, u2) = (stream.next().max(1e-12), stream.next());
            let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            let run = RunFacts {
                failed: stream.next() < 0.02,
                faltered: false,
                latency_ms: Some((300.0 * (0.5 * normal).exp()).round()),
                cost_usd: Some(0.001 + 0.0005 * stream.next()),
                quality: (stream.next() < 0.1).then(|| f64::from(u8::from(stream.next() < 0.9))),
            };
            if stream.next() * 100.0 < weight {
                canary.add(run);
            } else {
                baseline.add(run);
            }
        }
        baseline.finish();
        canary.finish();
        (baseline, canary)
    }

    #[test]
    fn identical_sides_are_called_worse_in_at_most_one_in_twenty_repetitions() {
        let settings = CanarySettings {
            max_degradation: crate::config::MaxDegradation {
                error_rate: 0.0,
                latency_p50: 0.0,
                latency_p95: 0.0,
                cost: 0.0,
                quality: 0.0,
            },
            ..CanarySettings::default()
        };
        let repetitions = 400;
        let mut alarms = 0;
        for seed in 0..repetitions {
            let (baseline, canary) = identical_sides(seed, 20.0);
            alarms += usize::from(analyze(&baseline, &canary, &settings).worse());
        }
        // Even with no tolerated degradation at all, the corrected intervals keep the
        // false alarms across the five metrics under 1 − confidence.
        assert!(
            alarms * 20 <= repetitions as usize,
            "{alarms} of {repetitions}"
        );
    }

    #[test]
    fn the_intervals_are_bonferroni_corrected() {
        let analysis = analyze(
            &SideSample::default(),
            &SideSample::default(),
            &CanarySettings::default(),
        );
        assert!((analysis.per_metric_confidence - 0.99).abs() < 1e-12);
    }
}
