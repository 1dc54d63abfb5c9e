//! A prompt's page, `GET /prompts/{service}/{name}`: its environments, one page of its
//! versions, a diff between two of them, and its runs over the chosen range: P95 latency,
//! error rate, calls, cost and quality, one line per version on a labelled time axis with
//! each version's first calls marked (so a version that made latency worse shows at a
//! glance), the recent runs with the sampled quality failures first, and each canary
//! split's comparison of its sides as `promptctl canary status` makes it.
//!
//! One [`series`] read from the rollups, the recent runs through the runs' index, the
//! small reads of the listing, and the newest runs of each split's sides (at most
//! [`CANARY_RUNS`] a side, in a read of its own whose failure is a note on the page).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::{Range, diff_lines, page, query_string, range_links, text_param, value};
use crate::canary::{Analysis, Comparison, Verdict, read_and_compare};
use crate::environments::{Pin, VersionRef};
use crate::registry::RegistryError;
use crate::registry::canary::{SideQuery, Split, splits};
use crate::registry::listing::EnvironmentPin;
use crate::registry::recent::{RecentRun, recent_runs};
use crate::registry::stats::{GroupBy, SeriesPoint, StatsQuery, series};
use crate::serve::AppState;
use crate::serve::api::ApiError;
use crate::serve::chart::{Marker, Series, TimeAxis, Unit, line_chart};
use crate::serve::listing::{self, Paging};

/// The most versions drawn: those with the most calls.
const MAX_SERIES: usize = 10;
/// The recent runs listed.
const RECENT_RUNS: u32 = 50;
/// The most canary splits compared on the page (one per environment holding one).
const MAX_SPLITS: usize = 8;
/// The most runs of each side the page reads for one split (fewer when `[canary]
/// max_runs` says so), the newest: a page view's work stays bounded whatever the
/// traffic, where `canary status` reads up to `max_runs`.
const CANARY_RUNS: u64 = 100_000;
/// A split's window when the registry does not say when it last changed: the last day.
const CANARY_WINDOW: Duration = Duration::from_secs(86_400);

/// A prompt page's query: the versions to compare, the range and the environment.
#[derive(Debug, Default, Deserialize)]
pub struct PromptQuery {
    from: Option<u32>,
    to: Option<u32>,
    range: Option<String>,
    env: Option<String>,
}

/// One chart of the page.
#[derive(Debug, Serialize)]
struct Chart {
    id: &'static str,
    title: String,
    svg: String,
}

/// One recent run, as the table shows it.
#[derive(Debug, Serialize)]
struct RunRow {
    #[serde(flatten)]
    run: RecentRun,
    failed_quality: bool,
}

/// A canary split of the prompt, and how its sides compare.
#[derive(Debug, Serialize)]
struct CanaryView {
    environment: String,
    /// What the baseline runs: `v3 (gpt-4o)`, `latest (own model)`.
    baseline: String,
    /// What the canary runs.
    canary: String,
    /// The canary's share of calls, in percent (`20`, `12.5`).
    weight: String,
    /// The window's start, in seconds since the epoch.
    since: i64,
    /// Whether the window starts at the commit that last changed the split (else: a day
    /// ago).
    since_change: bool,
    /// The comparison; none when it could not be read (`note` says why).
    analysis: Option<CanaryAnalysis>,
    note: Option<String>,
}

/// The comparison of a split's sides, worded as `canary status` words it.
#[derive(Debug, Serialize)]
struct CanaryAnalysis {
    baseline_runs: u64,
    canary_runs: u64,
    /// The runs read per side, when a side had more (its newest were compared).
    capped: Option<u64>,
    metrics: Vec<MetricRow>,
    /// The shares of runs with a failed provider attempt: `canary 1.00%, baseline 0.50%`.
    attempts: String,
    /// `intervals at 99.00% each, so 95% across all 5 metrics together`.
    confidence: String,
    /// Whether any metric is significantly worse.
    worse: bool,
}

/// One metric of a comparison, as the table shows it.
#[derive(Debug, Serialize)]
struct MetricRow {
    metric: &'static str,
    baseline: String,
    canary: String,
    difference: String,
    interval: String,
    verdict: String,
    /// The row's class: `worse`, `better`, `same` or `no-data`.
    class: &'static str,
}

/// What the page reads besides the listing.
struct Runs {
    texts: Vec<tokio_postgres::Row>,
    pins: crate::registry::listing::PinsByPrompt,
    points: Vec<SeriesPoint>,
    recent: Vec<RecentRun>,
}

/// `GET /prompts/{service}/{name}?range=24h&env=E&from=A&to=B&cursor=C`: the
/// environments, one page of versions (the registry's listing), a diff between two
/// versions, the charts of the range and the recent runs. `service` may be
/// `source:service`.
pub async fn prompt_page(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    paging: Result<Query<Paging>, QueryRejection>,
    query: Result<Query<PromptQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path((service, name)) = path?;
    let Query(paging) = paging?;
    let Query(query) = query?;
    let range = Range::parse(query.range.as_deref())?;
    let environment = text_param("env", query.env.as_deref(), 100)?;
    // The listing checks the source owns the prompt (a 404 otherwise).
    let versions = listing::version_page(&state, service.clone(), name.clone(), &paging).await?;
    let named = format!("{service}/{name}");
    // The reads of runs and texts take the bare service.
    let bare = bare_service(&named).unwrap_or_else(|| service.clone());
    let newest = versions.entries.first().map(|v| v.version);
    let to = query.to.or(newest);
    let from = query
        .from
        .or_else(|| versions.entries.get(1).map(|v| v.version))
        .or(to);
    let (start, end) = range.window(SystemTime::now());
    let stats_query = StatsQuery {
        prompt: Some(named),
        environment: environment.clone(),
        by: GroupBy::Version,
        ..StatsQuery::default()
    };
    let (runs, (canaries, canary_note)) = tokio::join!(
        read_runs(
            &state,
            (&bare, &name),
            [from, to],
            &stats_query,
            (start, end),
            range,
        ),
        read_canaries(&state, (&bare, &name), end),
    );
    let runs = runs?;
    let axis = TimeAxis {
        from: crate::registry::unix_seconds(start),
        to: crate::registry::unix_seconds(end),
        bucket: range.width().seconds(),
    };
    let (charts, deploys, hidden) = charts(&runs.points, axis);
    let diff = diff_of(&runs.texts, from, to);
    let mut pins = runs.pins;
    let environments = pins
        .remove(&(bare.clone(), name.clone()))
        .unwrap_or_default();
    let run_environments = environment_choices(&runs.recent, &environments, &environment);
    let recent: Vec<RunRow> = runs
        .recent
        .into_iter()
        .map(|run| RunRow {
            failed_quality: run.failed_quality(),
            run,
        })
        .collect();
    let keep = |range: Range| {
        let (from, to) = (from.map(|v| v.to_string()), to.map(|v| v.to_string()));
        query_string(&[
            ("range", Some(range.key())),
            ("env", environment.as_deref()),
            ("from", from.as_deref()),
            ("to", to.as_deref()),
        ])
    };
    let next = listing::next_versions(&versions).map(|cursor| {
        query_string(&[
            ("limit", paging.limit.as_deref()),
            ("cursor", Some(cursor.as_str())),
            ("range", Some(range.key())),
            ("env", environment.as_deref()),
        ])
    });
    Ok(page(
        "prompt.html",
        context! {
            service, name, from, to, next,
            versions => value(&versions.entries),
            environments => value(&environments),
            canaries => value(&canaries),
            canary_note => canary_note,
            diff => value(&diff),
            charts => value(&charts),
            deploys => value(&deploys.iter().map(|m| (m.at, &m.label)).collect::<Vec<_>>()),
            hidden => value(&hidden),
            recent => value(&recent),
            ranges => value(&range_links(range, keep)),
            run_environments => value(&run_environments),
            range => range.key(),
            range_label => range.label(),
            env => environment.unwrap_or_default(),
        },
    ))
}

/// The texts of the two versions compared, the pins, the series of the range by
/// version and the recent runs: one connection, the reads side by side.
async fn read_runs(
    state: &AppState,
    (service, name): (&str, &str),
    compared: [Option<u32>; 2],
    query: &StatsQuery,
    (start, end): (SystemTime, SystemTime),
    range: Range,
) -> Result<Runs, ApiError> {
    let compared: Vec<i32> = compared
        .into_iter()
        .flatten()
        .filter_map(|v| i32::try_from(v).ok())
        .collect();
    let environment = query.environment.as_deref();
    let runs = state
        .cache
        .db()
        .read(|registry| async move {
            let client = registry.client();
            let key = (service.to_owned(), name.to_owned());
            let (texts, pins, points, recent) = tokio::try_join!(
                async {
                    client
                        .query(
                            "SELECT version, template, model, parameters::text FROM prompts \
                             WHERE service = $1 AND name = $2 AND version = ANY($3)",
                            &[&service, &name, &compared],
                        )
                        .await
                        .map_err(RegistryError::from)
                },
                registry.pins(std::slice::from_ref(&key)),
                series(client, query, start, end, range.width()),
                recent_runs(
                    client,
                    service,
                    name,
                    environment,
                    (start, end),
                    RECENT_RUNS
                ),
            )?;
            Ok::<_, RegistryError>(Runs {
                texts,
                pins,
                points,
                recent,
            })
        })
        .await?;
    Ok(runs)
}

/// The prompt's canary splits (the first [`MAX_SPLITS`]) with the comparison of each
/// one's sides over its window, up to `now`; and a note when they could not be read, or
/// not all were compared. One read, within the registry's query timeout; a failure is
/// shown on the page, never fails it.
async fn read_canaries(
    state: &AppState,
    (service, name): (&str, &str),
    now: SystemTime,
) -> (Vec<CanaryView>, Option<String>) {
    let settings = &state.router.providers().settings().canary;
    let limit = settings.max_runs.min(CANARY_RUNS);
    let read = state
        .cache
        .db()
        .read(|registry| async move {
            let mut found = splits(&registry, service, name).await?;
            let left_out = found.len().saturating_sub(MAX_SPLITS);
            found.truncate(MAX_SPLITS);
            let mut compared = Vec::with_capacity(found.len());
            for split in found {
                let since = split.since.unwrap_or_else(|| {
                    now.checked_sub(CANARY_WINDOW)
                        .unwrap_or(SystemTime::UNIX_EPOCH)
                });
                let query = SideQuery {
                    service,
                    name,
                    environment: &split.environment,
                    since,
                    until: now,
                    limit,
                };
                let analysis = read_and_compare(&registry, &query, settings).await;
                compared.push((split, since, analysis));
            }
            Ok::<_, RegistryError>((compared, left_out))
        })
        .await;
    match read {
        Ok((compared, left_out)) => {
            let note = (left_out > 0).then(|| {
                let (count, verb) = if left_out == 1 {
                    ("1 more environment".to_owned(), "holds")
                } else {
                    (format!("{left_out} more environments"), "hold")
                };
                format!(
                    "{count} {verb} a canary of this prompt, not compared here: \
                     `promptctl canary status --env E` compares it."
                )
            });
            let views = compared
                .into_iter()
                .map(|(split, since, analysis)| canary_view(split, since, analysis, limit))
                .collect();
            (views, note)
        }
        Err(err) => (
            Vec::new(),
            Some(format!("The canary splits could not be read: {err}")),
        ),
    }
}

/// A split and its comparison (or why there is none) as the page shows them; `limit`:
/// the runs read per side.
fn canary_view(
    split: Split,
    since: SystemTime,
    analysis: Result<Analysis, RegistryError>,
    limit: u64,
) -> CanaryView {
    let label = |version: Option<i32>, model: Option<String>| {
        crate::deploy::pin_label(&Pin {
            version: version
                .and_then(|v| u32::try_from(v).ok())
                .map_or(VersionRef::Latest, VersionRef::Number),
            model,
        })
    };
    let (analysis, note) = match analysis {
        Ok(analysis) => (Some(canary_analysis(&analysis, limit)), None),
        Err(err) => (None, Some(format!("The runs could not be compared: {err}"))),
    };
    CanaryView {
        baseline: label(split.version, split.model),
        canary: label(split.canary_version, split.canary_model),
        weight: crate::environments::weight_label(split.weight),
        since: crate::registry::unix_seconds(since),
        since_change: split.since.is_some(),
        environment: split.environment,
        analysis,
        note,
    }
}

/// The comparison worded as `canary status` words it (`limit`: the runs read per side).
fn canary_analysis(analysis: &Analysis, limit: u64) -> CanaryAnalysis {
    CanaryAnalysis {
        baseline_runs: analysis.baseline_runs,
        canary_runs: analysis.canary_runs,
        capped: (analysis.baseline_runs.max(analysis.canary_runs) >= limit).then_some(limit),
        metrics: analysis.metrics.iter().map(metric_row).collect(),
        attempts: analysis.attempts_line(),
        confidence: analysis.confidence_line(),
        worse: analysis.worse(),
    }
}

/// One metric's row: both values, the difference, its interval and the verdict.
fn metric_row(m: &Comparison) -> MetricRow {
    let class = match m.verdict {
        Verdict::NotEnoughData => "no-data",
        Verdict::Worse => "worse",
        Verdict::Better => "better",
        Verdict::NoSignificantDifference => "same",
    };
    let [baseline, canary, difference, interval, verdict] = m.cells();
    MetricRow {
        metric: m.metric.label(),
        baseline,
        canary,
        difference,
        interval,
        verdict,
        class,
    }
}

/// The diff between versions `from` and `to` of `texts` (model, parameters and
/// template); none when they are the same or either is missing.
fn diff_of(
    texts: &[tokio_postgres::Row],
    from: Option<u32>,
    to: Option<u32>,
) -> Option<Vec<super::DiffLine>> {
    let text_of = |n: Option<u32>| {
        texts.iter().find_map(|row| {
            let version: i32 = row.get(0);
            let template: String = row.get(1);
            let model: String = row.get(2);
            let parameters: Option<String> = row.get(3);
            (n? == u32::try_from(version).ok()?).then(|| {
                format!(
                    "model: {model}\nparameters: {}\n{template}\n",
                    parameters.unwrap_or_else(|| "{}".to_owned())
                )
            })
        })
    };
    match (text_of(from), text_of(to)) {
        (Some(old), Some(new)) if from != to => Some(diff_lines(&old, &new)),
        _ => None,
    }
}

/// The service of `source:service/name` without its source; none without a source.
fn bare_service(named: &str) -> Option<String> {
    let (_, rest) = crate::registry::sources::split_source(named)?;
    rest.split_once('/').map(|(service, _)| service.to_owned())
}

/// The environments the filter offers: those of the recent runs, those pinned, and the
/// chosen one, sorted.
fn environment_choices(
    recent: &[RecentRun],
    pinned: &BTreeMap<String, EnvironmentPin>,
    chosen: &Option<String>,
) -> Vec<String> {
    recent
        .iter()
        .filter_map(|run| run.environment.clone())
        .chain(pinned.keys().cloned())
        .chain(chosen.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// A version's label: `v3`, or `unversioned`.
fn version_label(group: &str) -> String {
    if group.is_empty() {
        "unversioned".to_owned()
    } else {
        format!("v{group}")
    }
}

/// Where each version first got calls in the range, in time order: a deploy. A version
/// already called in the range's first bucket was deployed before it, and is not marked.
fn deploys(points: &[SeriesPoint], axis: TimeAxis) -> Vec<Marker> {
    let first_bucket = axis.from - axis.from.rem_euclid(axis.bucket.max(1));
    let mut first: BTreeMap<&str, i64> = BTreeMap::new();
    for point in points.iter().filter(|p| p.calls > 0) {
        let at = first.entry(point.group.as_str()).or_insert(point.at);
        *at = (*at).min(point.at);
    }
    let mut markers: Vec<Marker> = first
        .into_iter()
        .filter(|(_, at)| *at > first_bucket)
        .map(|(group, at)| Marker {
            at,
            label: version_label(group),
        })
        .collect();
    markers.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.label.cmp(&b.label)));
    markers
}

/// The figure a chart draws of a point (none: no point).
type Figure<'a> = &'a dyn Fn(&SeriesPoint) -> Option<f64>;

/// The charts of `points` (one series per version, the [`MAX_SERIES`] with the most calls,
/// in version order), the deploys marked on them, and the versions left out.
fn charts(points: &[SeriesPoint], axis: TimeAxis) -> (Vec<Chart>, Vec<Marker>, Vec<String>) {
    if points.is_empty() {
        return (Vec::new(), Vec::new(), Vec::new());
    }
    let mut by_version: BTreeMap<&str, (i64, Vec<&SeriesPoint>)> = BTreeMap::new();
    for point in points {
        let entry = by_version.entry(point.group.as_str()).or_default();
        entry.0 += point.calls;
        entry.1.push(point);
    }
    let mut versions: Vec<(&str, (i64, Vec<&SeriesPoint>))> = by_version.into_iter().collect();
    versions.sort_by(|a, b| b.1.0.cmp(&a.1.0).then_with(|| a.0.cmp(b.0)));
    let hidden: Vec<String> = versions
        .iter()
        .skip(MAX_SERIES)
        .map(|(group, _)| version_label(group))
        .collect();
    versions.truncate(MAX_SERIES);
    // Version order: numbers as numbers, the unversioned last.
    versions.sort_by_key(|(group, _)| group.parse::<i64>().map_or((1, 0), |v| (0, v)));
    let markers = deploys(points, axis);
    let line = |value: Figure| -> Vec<Series> {
        versions
            .iter()
            .map(|(group, (_, points))| Series {
                label: version_label(group),
                points: points
                    .iter()
                    .filter_map(|p| value(p).map(|v| (p.at, v)))
                    .collect(),
            })
            .collect()
    };
    let per = if axis.bucket <= 60 { "minute" } else { "hour" };
    let specs: [(&'static str, String, Unit, Figure); 5] = [
        (
            "latency",
            "P95 latency (ms) by version".to_owned(),
            Unit::Millis,
            &|p| p.p95_ms,
        ),
        (
            "errors",
            "Error rate by version".to_owned(),
            Unit::Share,
            &|p| (p.calls > 0).then(|| p.errors as f64 / p.calls as f64),
        ),
        (
            "calls",
            format!("Calls per {per} by version"),
            Unit::Count,
            &|p| Some(p.calls as f64),
        ),
        (
            "cost",
            format!("Cost (USD) per {per} by version"),
            Unit::Usd,
            &|p| Some(p.cost_usd),
        ),
        (
            "quality",
            "Quality (mean score of sampled runs) by version".to_owned(),
            Unit::Score,
            &|p| p.quality,
        ),
    ];
    let charts = specs
        .into_iter()
        .map(|(id, title, unit, value)| Chart {
            id,
            title,
            svg: line_chart(id, axis, unit, &line(value), &markers),
        })
        .collect();
    (charts, markers, hidden)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(at: i64, group: &str, calls: i64, errors: i64, p95: f64) -> SeriesPoint {
        SeriesPoint {
            at,
            group: group.into(),
            calls,
            errors,
            p50_ms: Some(p95 / 2.0),
            p95_ms: Some(p95),
            p99_ms: Some(p95),
            cost_usd: 0.01,
            quality: None,
        }
    }

    const AXIS: TimeAxis = TimeAxis {
        from: 86_400 * 100 + 1_800,
        to: 86_400 * 101 + 1_800,
        bucket: 3_600,
    };

    #[test]
    fn a_version_first_called_inside_the_range_is_a_deploy() {
        let start = 86_400 * 100;
        let points = [
            point(start, "1", 10, 0, 100.0),
            point(start + 3_600, "1", 10, 0, 100.0),
            point(start + 3_600, "2", 0, 0, 100.0),
            point(start + 7_200, "2", 10, 5, 900.0),
            point(start + 7_200, "1", 10, 0, 100.0),
        ];
        let markers = deploys(&points, AXIS);
        assert_eq!(
            markers,
            [Marker {
                at: start + 7_200,
                label: "v2".into()
            }]
        );
        let (charts, markers, hidden) = charts(&points, AXIS);
        assert_eq!(markers.len(), 1);
        assert!(hidden.is_empty());
        let ids: Vec<&str> = charts.iter().map(|c| c.id).collect();
        assert_eq!(ids, ["latency", "errors", "calls", "cost", "quality"]);
        assert!(charts[0].svg.contains("data-series=\"v1\""));
        assert!(charts[0].svg.contains("data-series=\"v2\""));
        assert!(
            charts[1]
                .svg
                .contains("class=\"deploy\" data-version=\"v2\"")
        );
    }

    #[test]
    fn the_versions_with_the_most_calls_are_drawn() {
        let points: Vec<SeriesPoint> = (0..15)
            .map(|v| point(AXIS.from, &v.to_string(), v + 1, 0, 100.0))
            .collect();
        let (charts, _, hidden) = charts(&points, AXIS);
        assert_eq!(hidden, ["v4", "v3", "v2", "v1", "v0"]);
        assert!(charts[0].svg.contains("data-series=\"v14\""));
        assert!(!charts[0].svg.contains("data-series=\"v4\""));
        assert!(charts.is_empty() == points.is_empty());
    }
}
