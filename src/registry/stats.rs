//! `promptctl stats`, `/v1/stats` and the dashboard: calls, error rate, latency
//! percentiles, tokens, cost and mean quality of the recorded runs, per group ([`stats`],
//! [`overview`]) or per time bucket ([`series`]).
//!
//! A window is read from the rollups (`super::rollups`) for its whole days, hours and
//! minutes, and from `prompt_runs` for the partial minute at each end (and for runs older
//! than the rollups), so a reading of 30 days costs about what one of a day does. Sums are
//! exact; percentiles come from the latency sketches, within 1 % of `percentile_cont`
//! over the same runs (`crate::sketch`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use tokio_postgres::Client;

use super::RegistryError;
pub use super::rollups::Width;
use super::rollups::{self, Figures, KeyRef, Measures, Narrowing, RowRef};
use crate::config::AlertSettings;

/// How to group the rows besides by prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupBy {
    /// One row per prompt.
    #[default]
    Prompt,
    /// Per version.
    Version,
    /// Per model that answered (the requested one for failed runs).
    Model,
    /// Per environment.
    Environment,
    /// Per source (the repository that published the prompt, from `prompt_owners`).
    Source,
    /// Per side of a canary split (`baseline`, `canary`; empty outside a split).
    Side,
}

/// Which rows to summarise.
#[derive(Debug, Clone, Default)]
pub struct StatsQuery {
    /// `source:service/name`, `service/name` or `name` (none: every prompt).
    pub prompt: Option<String>,
    /// Only this service's prompts (ignored when `prompt` names a service).
    pub service: Option<String>,
    /// Only this environment.
    pub environment: Option<String>,
    /// The grouping.
    pub by: GroupBy,
}

/// One group's figures.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StatsRow {
    /// `service/name`.
    pub prompt: String,
    /// The group's value (version, model or environment; empty by prompt).
    pub group: String,
    /// Runs.
    pub calls: i64,
    /// Share of runs that failed.
    pub error_rate: f64,
    /// Median latency, milliseconds (within 1 %).
    pub p50_ms: Option<f64>,
    /// 95th percentile latency (within 1 %).
    pub p95_ms: Option<f64>,
    /// 99th percentile latency (within 1 %).
    pub p99_ms: Option<f64>,
    /// Input tokens (cache reads and writes included).
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Cost in US dollars.
    pub cost_usd: f64,
    /// Mean quality of the sampled runs (none sampled: `None`).
    pub quality: Option<f64>,
    /// Sampled runs that were scored.
    pub scored: i64,
}

/// Whether `query` names sources (`--by source`, a `source:` prefix), which a database
/// migrated before them cannot answer ([`super::Registry::require_sources`]).
pub fn names_sources(query: &StatsQuery) -> bool {
    query.by == GroupBy::Source
        || query
            .prompt
            .as_deref()
            .is_some_and(|p| super::sources::split_source(p).is_some())
}

/// The figures of the runs created in `[from, to)`, within the query timeout
/// ([`super::Timeouts::query`]).
pub async fn stats(
    client: &Client,
    query: &StatsQuery,
    from: SystemTime,
    to: SystemTime,
) -> Result<Vec<StatsRow>, RegistryError> {
    Ok(overview(client, query, from, to).await?.rows)
}

/// The figures of a window: per group, and the whole of it in one row.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Overview {
    /// Every run of the window in one row (`prompt` and `group` empty).
    pub total: StatsRow,
    /// Per prompt (and group), ordered by prompt and group.
    pub rows: Vec<StatsRow>,
}

/// The figures of the runs created in `[from, to)` per group and in all, within the
/// query timeout: whole days, hours and minutes from the rollups, the partial minute at
/// each end (and runs older than the rollups) from `prompt_runs`.
pub async fn overview(
    client: &Client,
    query: &StatsQuery,
    from: SystemTime,
    to: SystemTime,
) -> Result<Overview, RegistryError> {
    super::bounded(async {
        let reader = Reader::open(client, query).await?;
        let (from, to) = (rollups::micros(from), rollups::micros(to));
        // Per prompt, then per group; found through two reused buffers, so a row read
        // allocates nothing once its group exists.
        let mut groups: HashMap<String, HashMap<String, Group>> = HashMap::new();
        let (mut prompt, mut group) = (String::new(), String::new());
        for span in spans(from, to, reader.complete_from) {
            reader
                .gather(span, |_, key, item| {
                    prompt_of(key, &mut prompt);
                    if !reader.group_of(key, &prompt, &mut group) {
                        return Ok(());
                    }
                    slot(slot(&mut groups, &prompt), &group).add(key, item)
                })
                .await?;
        }
        let mut total = Group::default();
        let mut rows = Vec::new();
        for (prompt, by_group) in groups {
            for (group, figures) in by_group {
                total.merge(&figures);
                rows.push(figures.row(prompt.clone(), group));
            }
        }
        rows.sort_by(|a, b| (&a.prompt, &a.group).cmp(&(&b.prompt, &b.group)));
        Ok(Overview {
            total: total.row(String::new(), String::new()),
            rows,
        })
    })
    .await
}

/// The value of `map` at `key`, made (empty) when missing; `key` is copied only then.
fn slot<'m, V: Default>(map: &'m mut HashMap<String, V>, key: &str) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), V::default());
    }
    map.get_mut(key).expect("the key was inserted above")
}

/// Writes `service/name` of `key` into `out`.
fn prompt_of(key: &KeyRef<'_>, out: &mut String) {
    out.clear();
    out.push_str(key.service);
    out.push('/');
    out.push_str(key.name);
}

/// One bucket of one group of a time series.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SeriesPoint {
    /// The bucket's start, in seconds since the epoch.
    pub at: i64,
    /// The group's value (as [`StatsRow::group`]).
    pub group: String,
    /// Runs.
    pub calls: i64,
    /// Runs that failed.
    pub errors: i64,
    /// Median latency, milliseconds.
    pub p50_ms: Option<f64>,
    /// 95th percentile latency.
    pub p95_ms: Option<f64>,
    /// 99th percentile latency.
    pub p99_ms: Option<f64>,
    /// Cost in US dollars.
    pub cost_usd: f64,
    /// Mean quality of the sampled runs.
    pub quality: Option<f64>,
}

/// The runs of `[from, to)` per bucket of `width` (the first bucket starts at or before
/// `from`) and per group, ordered by bucket and group, from the rollups of that width
/// (and `prompt_runs` before them). A prompt filter and `query.by` as for [`stats`]; the
/// prompt is not part of a point, so a series is of one prompt or of the fleet.
pub async fn series(
    client: &Client,
    query: &StatsQuery,
    from: SystemTime,
    to: SystemTime,
    width: Width,
) -> Result<Vec<SeriesPoint>, RegistryError> {
    super::bounded(async {
        let reader = Reader::open(client, query).await?;
        let (from, to) = (rollups::micros(from), rollups::micros(to));
        // The bucket holding `complete_from` is read raw: its rollups may hold runs
        // created before, which are read raw too.
        let complete = width.ceil(reader.complete_from.clamp(from, to.max(from)));
        let mut points: HashMap<i64, HashMap<String, Group>> = HashMap::new();
        let (mut prompt, mut group) = (String::new(), String::new());
        for span in [
            Span::Runs(from, complete.min(to)),
            Span::Rollups(width, complete, to),
        ] {
            reader
                .gather(span, |at, key, item| {
                    prompt_of(key, &mut prompt);
                    if !reader.group_of(key, &prompt, &mut group) {
                        return Ok(());
                    }
                    let bucket = points.entry(width.floor(at)).or_default();
                    slot(bucket, &group).add(key, item)
                })
                .await?;
        }
        let mut points: Vec<SeriesPoint> = points
            .into_iter()
            .flat_map(|(at, by_group)| {
                by_group
                    .into_iter()
                    .map(move |(group, figures)| figures.point(at.div_euclid(1_000_000), group))
            })
            .collect();
        points.sort_by(|a, b| (a.at, &a.group).cmp(&(b.at, &b.group)));
        Ok(points)
    })
    .await
}

/// What a reading takes from: raw runs or one width of rollups, over `[from, to)`
/// (microseconds since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Span {
    Runs(i64, i64),
    Rollups(Width, i64, i64),
}

/// How `[from, to)` is read: raw runs before `complete_from` (the rollups do not hold
/// them), then the widest whole buckets, narrower ones towards each end, and raw runs for
/// the partial minute at each end.
fn spans(from: i64, to: i64, complete_from: i64) -> Vec<Span> {
    let mut spans = Vec::new();
    if from >= to {
        return spans;
    }
    let start = from.max(complete_from.min(to));
    if from < start {
        spans.push(Span::Runs(from, start));
    }
    cover(start, to, &Width::ALL, &mut spans);
    spans
}

/// Covers `[from, to)` with whole buckets of the widest of `widths` and, at each end, of
/// the narrower ones; raw runs where no whole minute fits.
fn cover(from: i64, to: i64, widths: &[Width], spans: &mut Vec<Span>) {
    if from >= to {
        return;
    }
    let Some((&width, narrower)) = widths.split_last() else {
        spans.push(Span::Runs(from, to));
        return;
    };
    let (start, end) = (width.ceil(from), width.floor(to));
    if start < end {
        cover(from, start, narrower, spans);
        spans.push(Span::Rollups(width, start, end));
        cover(end, to, narrower, spans);
    } else {
        cover(from, to, narrower, spans);
    }
}

/// What one reading step yields: a raw run or a rollup row.
enum Item<'a> {
    Run(Measures),
    Rollup(RowRef<'a>),
}

/// A group's figures as they are added up.
#[derive(Debug, Default)]
struct Group {
    figures: Figures,
    errors: i64,
}

impl Group {
    fn add(&mut self, key: &KeyRef<'_>, item: Item<'_>) -> Result<(), RegistryError> {
        let calls = match item {
            Item::Run(run) => {
                self.figures.add_run(&run);
                1
            }
            Item::Rollup(row) => {
                self.figures.add_sums(&row.sums);
                self.figures
                    .latency
                    .merge_encoded(row.latency)
                    .map_err(|err| RegistryError::Corrupt(err.to_string()))?;
                row.sums.calls
            }
        };
        if key.failed {
            self.errors += calls;
        }
        Ok(())
    }

    fn merge(&mut self, other: &Group) {
        self.figures.merge(&other.figures);
        self.errors += other.errors;
    }

    fn quality(&self) -> Option<f64> {
        (self.figures.quality_count > 0)
            .then(|| self.figures.quality_sum / self.figures.quality_count as f64)
    }

    fn row(&self, prompt: String, group: String) -> StatsRow {
        let f = &self.figures;
        StatsRow {
            prompt,
            group,
            calls: f.calls,
            error_rate: if f.calls > 0 {
                self.errors as f64 / f.calls as f64
            } else {
                0.0
            },
            p50_ms: f.latency.quantile(0.5),
            p95_ms: f.latency.quantile(0.95),
            p99_ms: f.latency.quantile(0.99),
            input_tokens: f
                .input_tokens
                .saturating_add(f.cache_read_tokens)
                .saturating_add(f.cache_write_tokens),
            output_tokens: f.output_tokens,
            cost_usd: f.cost_usd,
            quality: self.quality(),
            scored: f.quality_count,
        }
    }

    fn point(&self, at: i64, group: String) -> SeriesPoint {
        let f = &self.figures;
        SeriesPoint {
            at,
            group,
            calls: f.calls,
            errors: self.errors,
            p50_ms: f.latency.quantile(0.5),
            p95_ms: f.latency.quantile(0.95),
            p99_ms: f.latency.quantile(0.99),
            cost_usd: f.cost_usd,
            quality: self.quality(),
        }
    }
}

/// A reading's setup: the filter, the grouping, the owners (for sources) and how far the
/// rollups reach on this database.
struct Reader<'a> {
    client: &'a Client,
    narrowing: Narrowing,
    source: Option<String>,
    by: GroupBy,
    /// The source owning each `service/name`.
    owners: HashMap<String, String>,
    /// From when the rollups hold every run (never, before the rollups' migration).
    complete_from: i64,
}

impl<'a> Reader<'a> {
    async fn open(client: &'a Client, query: &StatsQuery) -> Result<Reader<'a>, RegistryError> {
        let schema = super::migrations::current_version(client)
            .await?
            .unwrap_or(0);
        let (narrowing, source) = narrowing_of(query);
        let mut owners = HashMap::new();
        if (source.is_some() || query.by == GroupBy::Source) && schema >= super::SOURCES_SCHEMA {
            for row in client
                .query(
                    "SELECT service || '/' || name, source FROM prompt_owners",
                    &[],
                )
                .await?
            {
                owners.insert(row.try_get(0)?, row.try_get(1)?);
            }
        }
        let complete_from = if schema >= rollups::ROLLUPS_SCHEMA {
            rollups::complete_from(client).await?
        } else {
            i64::MAX
        };
        Ok(Reader {
            client,
            narrowing: Narrowing {
                schema,
                ..narrowing
            },
            source,
            by: query.by,
            owners,
            complete_from,
        })
    }

    /// The source a run of `prompt` counts under: its own, else its prompt's owner (runs
    /// recorded before sources, or of prompts read from a repository).
    fn source_of<'k>(&'k self, key: &KeyRef<'k>, prompt: &str) -> &'k str {
        if key.source.is_empty() {
            self.owners.get(prompt).map_or("", String::as_str)
        } else {
            key.source
        }
    }

    /// Writes the group of a key of `prompt` into `out`; false when the source filter
    /// leaves the key out.
    fn group_of(&self, key: &KeyRef<'_>, prompt: &str, out: &mut String) -> bool {
        if let Some(source) = &self.source
            && self.source_of(key, prompt) != source
        {
            return false;
        }
        out.clear();
        match self.by {
            GroupBy::Prompt => {}
            GroupBy::Version if key.version == 0 => {}
            GroupBy::Version => {
                let _ = write!(out, "{}", key.version);
            }
            GroupBy::Model => out.push_str(key.model),
            GroupBy::Environment => out.push_str(key.environment),
            GroupBy::Source => out.push_str(self.source_of(key, prompt)),
            GroupBy::Side => out.push_str(key.side),
        }
        true
    }

    /// Reads `span`, calling `visit` with each item's time, key and item.
    async fn gather(
        &self,
        span: Span,
        mut visit: impl FnMut(i64, &KeyRef<'_>, Item<'_>) -> Result<(), RegistryError>,
    ) -> Result<(), RegistryError> {
        match span {
            Span::Runs(from, to) => {
                let mut failed = Ok(());
                rollups::read_runs(self.client, (from, to), &self.narrowing, |at, key, run| {
                    if failed.is_ok() {
                        failed = visit(at, &key, Item::Run(run));
                    }
                })
                .await?;
                failed
            }
            Span::Rollups(width, from, to) => {
                rollups::read_rollups(self.client, width, (from, to), &self.narrowing, |row| {
                    let (at, key) = (row.at, row.key.clone());
                    visit(at, &key, Item::Rollup(row))
                })
                .await
            }
        }
    }
}

/// The service, name and environment a query narrows to, and the source it names.
fn narrowing_of(query: &StatsQuery) -> (Narrowing, Option<String>) {
    let mut narrowing = Narrowing {
        service: query.service.clone(),
        environment: query.environment.clone(),
        ..Narrowing::default()
    };
    let mut source = None;
    if let Some(prompt) = &query.prompt {
        let prompt = match super::sources::split_source(prompt) {
            Some((named, rest)) => {
                source = Some(named.to_owned());
                rest
            }
            None => prompt.as_str(),
        };
        match prompt.split_once('/') {
            Some((service, name)) => {
                narrowing.service = Some(service.to_owned());
                narrowing.name = Some(name.to_owned());
            }
            None => narrowing.name = Some(prompt.to_owned()),
        }
    }
    (narrowing, source)
}

/// One alert crossed.
#[derive(Debug, Clone, Serialize)]
pub struct Breach {
    /// `service/name`.
    pub prompt: String,
    /// The group (version, model or environment), if grouped.
    pub group: String,
    /// The alert's key in `[monitoring.alerts]`.
    pub alert: String,
    /// What happened.
    pub message: String,
}

/// Compares `current` (a window of `window`) with `previous` against `alerts`.
pub fn check(
    current: &[StatsRow],
    previous: &[StatsRow],
    alerts: &AlertSettings,
    window: Duration,
) -> Vec<Breach> {
    let mut breaches = Vec::new();
    // Quality is compared per prompt across both windows; a version is a group of its own
    // only when asked for.
    for row in current {
        let before = previous
            .iter()
            .find(|p| p.prompt == row.prompt && p.group == row.group)
            .or_else(|| {
                previous
                    .iter()
                    .filter(|p| p.prompt == row.prompt)
                    .max_by_key(|p| p.calls)
            });
        let mut breach = |alert: &str, message: String| {
            breaches.push(Breach {
                prompt: row.prompt.clone(),
                group: row.group.clone(),
                alert: alert.to_owned(),
                message,
            });
        };
        if let (Some(min), Some(quality)) = (alerts.min_quality, row.quality)
            && quality < min
        {
            breach(
                "min_quality",
                format!("mean quality {quality:.3} is below {min}"),
            );
        }
        if let (Some(max), Some(quality), Some(was)) = (
            alerts.max_quality_drop,
            row.quality,
            before.and_then(|b| b.quality),
        ) && was - quality > max + 1e-12
        {
            breach(
                "max_quality_drop",
                format!("mean quality fell from {was:.3} to {quality:.3} (more than {max})"),
            );
        }
        if let Some(max) = alerts.max_error_rate
            && row.error_rate > max
        {
            breach(
                "max_error_rate",
                format!(
                    "error rate {:.2}% is above {:.2}%",
                    row.error_rate * 100.0,
                    max * 100.0
                ),
            );
        }
        if let (Some(max), Some(p95)) = (alerts.max_p95_ms, row.p95_ms)
            && p95 > max
        {
            breach(
                "max_p95_ms",
                format!("P95 latency {p95:.0} ms is above {max} ms"),
            );
        }
        if let Some(max) = alerts.max_cost_usd_per_day {
            let days = (window.as_secs_f64() / 86_400.0).max(1.0);
            let per_day = row.cost_usd / days;
            if per_day > max {
                breach(
                    "max_cost_usd_per_day",
                    format!("spend ${per_day:.2}/day is above ${max}"),
                );
            }
        }
    }
    breaches
}
