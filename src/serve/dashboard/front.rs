//! The front page, `GET /`: what needs me? The fleet's calls, error rate, P95 and cost
//! over the chosen range, then every prompt with its figures, those breaching
//! `[monitoring.alerts]` first (the breach named), sorted by calls, errors, P95, cost,
//! quality or name, narrowed by a search in `service/name`, a service and an environment.
//!
//! One read: the registry's listing (every prompt, runs or not, with its pins) and one
//! [`overview`] of the range from the rollups, side by side on one connection; the
//! window before it too when `max_quality_drop` needs it. No query per prompt.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::{Range, bad_request, clip, page, query_string, range_links, text_param, value};
use crate::registry::RegistryError;
use crate::registry::listing::{EnvironmentPin, ListedPrompt, PromptFilter};
use crate::registry::stats::{GroupBy, Overview, StatsQuery, StatsRow, check, overview};
use crate::serve::AppState;
use crate::serve::api::ApiError;
use crate::serve::listing::{DEFAULT_LIMIT, page_limit};

/// The most prompts of the registry the page lists.
const MAX_PROMPTS: u32 = 5_000;
/// The longest search.
const MAX_SEARCH: usize = 200;
/// The longest service or environment name (their columns' size).
const MAX_NAME: usize = 100;
/// The most environments the filter offers.
const MAX_ENVIRONMENTS: i64 = 200;

/// The front page's query: every field optional.
#[derive(Debug, Default, Deserialize)]
pub struct FrontQuery {
    range: Option<String>,
    sort: Option<String>,
    q: Option<String>,
    service: Option<String>,
    env: Option<String>,
    page: Option<String>,
    limit: Option<String>,
}

/// What the prompts are sorted by, after the breaching ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    /// Most calls first (the default).
    #[default]
    Calls,
    /// Highest error rate first.
    Errors,
    /// Highest P95 latency first.
    P95,
    /// Most spent first.
    Cost,
    /// Lowest mean quality first.
    Quality,
    /// By `service/name`.
    Name,
}

impl SortKey {
    const ALL: [SortKey; 6] = [
        SortKey::Calls,
        SortKey::Errors,
        SortKey::P95,
        SortKey::Cost,
        SortKey::Quality,
        SortKey::Name,
    ];

    fn key(self) -> &'static str {
        match self {
            SortKey::Calls => "calls",
            SortKey::Errors => "errors",
            SortKey::P95 => "p95",
            SortKey::Cost => "cost",
            SortKey::Quality => "quality",
            SortKey::Name => "name",
        }
    }

    /// The key `sort=` names (none: calls); a 400 for anything else.
    fn parse(text: Option<&str>) -> Result<SortKey, ApiError> {
        match text.map(str::trim) {
            None | Some("") => Ok(SortKey::default()),
            Some(text) => SortKey::ALL
                .into_iter()
                .find(|key| key.key() == text)
                .ok_or_else(|| {
                    bad_request(format!(
                        "`sort` must be one of calls, errors, p95, cost, quality, name, not {:?}",
                        clip(text)
                    ))
                }),
        }
    }
}

/// The page's choices, checked.
#[derive(Debug, Clone, Default, PartialEq)]
struct Filters {
    range: Range,
    sort: SortKey,
    search: Option<String>,
    service: Option<String>,
    environment: Option<String>,
    /// From 1.
    page: usize,
    /// Prompts a page (as the listings' `limit`).
    limit: Option<u32>,
}

impl Filters {
    /// The choices of `query`; a 400 for a value out of bounds.
    fn read(query: &FrontQuery) -> Result<Filters, ApiError> {
        let page = match query.page.as_deref().map(str::trim) {
            None | Some("") => 1,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|page| (1..=100_000).contains(page))
                .ok_or_else(|| bad_request("`page` must be a whole number from 1 to 100000"))?,
        };
        Ok(Filters {
            range: Range::parse(query.range.as_deref())?,
            sort: SortKey::parse(query.sort.as_deref())?,
            search: text_param("q", query.q.as_deref(), MAX_SEARCH)?,
            service: text_param("service", query.service.as_deref(), MAX_NAME)?,
            environment: text_param("env", query.env.as_deref(), MAX_NAME)?,
            page,
            // Checked as the listings' `limit`: 1 to 100 (default 50).
            limit: query
                .limit
                .as_deref()
                .map(|limit| page_limit(Some(limit)))
                .transpose()?,
        })
    }

    /// The link to these choices changed by `change` (back to the first page).
    fn link(&self, change: impl FnOnce(&mut Filters)) -> String {
        let mut next = self.clone();
        next.page = 1;
        change(&mut next);
        let page = next.page.to_string();
        let limit = next.limit.map(|limit| limit.to_string());
        query_string(&[
            ("range", Some(next.range.key())),
            ("sort", Some(next.sort.key())),
            ("q", next.search.as_deref()),
            ("service", next.service.as_deref()),
            ("env", next.environment.as_deref()),
            ("limit", limit.as_deref()),
            ("page", (next.page > 1).then_some(page.as_str())),
        ])
    }
}

/// One prompt of the table: what the listing says of it and its figures over the range.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
struct PromptRow {
    /// `service/name`.
    prompt: String,
    source: String,
    service: String,
    name: String,
    /// None for a prompt with runs that the registry does not list.
    latest_version: Option<u32>,
    archived: bool,
    environments: BTreeMap<String, EnvironmentPin>,
    calls: i64,
    /// None without calls.
    error_rate: Option<f64>,
    p95_ms: Option<f64>,
    cost_usd: f64,
    quality: Option<f64>,
    /// The alerts it breaches, as sentences.
    breaches: Vec<String>,
}

impl PromptRow {
    fn listed(prompt: ListedPrompt) -> PromptRow {
        PromptRow {
            prompt: format!("{}/{}", prompt.service, prompt.name),
            source: prompt.source,
            service: prompt.service,
            name: prompt.name,
            latest_version: Some(prompt.latest_version),
            archived: prompt.archived,
            environments: prompt.environments,
            ..PromptRow::default()
        }
    }

    /// A prompt the runs name and the listing does not.
    fn unlisted(prompt: &str) -> PromptRow {
        let (service, name) = prompt.split_once('/').unwrap_or(("", prompt));
        PromptRow {
            prompt: prompt.to_owned(),
            service: service.to_owned(),
            name: name.to_owned(),
            ..PromptRow::default()
        }
    }

    fn with_figures(mut self, stats: &StatsRow) -> PromptRow {
        self.calls = stats.calls;
        self.error_rate = (stats.calls > 0).then_some(stats.error_rate);
        self.p95_ms = stats.p95_ms;
        self.cost_usd = stats.cost_usd;
        self.quality = stats.quality;
        self
    }

    /// Whether the search and the service filter let it through.
    fn passes(&self, filters: &Filters) -> bool {
        filters.service.as_ref().is_none_or(|s| *s == self.service)
            && filters.search.as_ref().is_none_or(|q| {
                self.prompt.to_lowercase().contains(&q.to_lowercase())
                    || (!self.source.is_empty()
                        && format!("{}:{}", self.source, self.prompt)
                            .to_lowercase()
                            .contains(&q.to_lowercase()))
            })
    }
}

/// What the read brings back.
struct Fleet {
    listed: Vec<ListedPrompt>,
    /// Whether the registry holds more prompts than [`MAX_PROMPTS`].
    more: bool,
    current: Overview,
    previous: Option<Overview>,
    environments: Vec<String>,
}

/// `GET /?range=24h&sort=calls&q=&service=&env=&limit=50&page=1`: the fleet over the range
/// and its prompts, breaching first, a page of `limit` (the gate checked the token). A
/// value out of bounds is the API's error: 400, or 422 for a `limit` out of 1 to 100 as
/// for the listings.
pub async fn index(
    State(state): State<Arc<AppState>>,
    query: Result<Query<FrontQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let filters = Filters::read(&query)?;
    let alerts = state
        .router
        .providers()
        .settings()
        .monitoring
        .alerts
        .clone();
    let fleet = read_fleet(&state, &filters, alerts.max_quality_drop.is_some()).await?;
    let window = filters.range.duration();
    let previous = fleet.previous.as_ref().map_or(&[][..], |p| &p.rows[..]);
    let mut breaches: HashMap<String, Vec<String>> = HashMap::new();
    for breach in check(&fleet.current.rows, previous, &alerts, window) {
        breaches
            .entry(breach.prompt)
            .or_default()
            .push(breach.message);
    }
    let services: BTreeSet<String> = fleet
        .listed
        .iter()
        .map(|p| p.service.clone())
        .chain(
            fleet
                .current
                .rows
                .iter()
                .filter_map(|r| r.prompt.split_once('/').map(|(s, _)| s.to_owned())),
        )
        .collect();
    // The source of each prompt is worth a column only when there are several.
    let sources: BTreeSet<&str> = fleet.listed.iter().map(|p| p.source.as_str()).collect();
    let show_sources = sources.len() > 1;
    let mut environments = fleet.environments;
    if let Some(chosen) = &filters.environment
        && !environments.contains(chosen)
    {
        environments.push(chosen.clone());
    }
    let mut rows = table(fleet.listed, &fleet.current.rows, breaches, &filters);
    let shown = rows.len();
    let breaching = rows.iter().filter(|r| !r.breaches.is_empty()).count();
    let per_page = usize::try_from(filters.limit.unwrap_or(DEFAULT_LIMIT)).unwrap_or(1);
    let pages = shown.div_ceil(per_page).max(1);
    let first = (filters.page - 1).saturating_mul(per_page).min(shown);
    let rows: Vec<PromptRow> = rows.drain(first..(first + per_page).min(shown)).collect();
    let sort_links: BTreeMap<&str, String> = SortKey::ALL
        .into_iter()
        .map(|key| (key.key(), filters.link(|f| f.sort = key)))
        .collect();
    Ok(page(
        "index.html",
        context! {
            total => value(&fleet.current.total),
            rows => value(&rows),
            services => value(&services),
            environments => value(&environments),
            ranges => value(&range_links(filters.range, |range| {
                filters.link(|f| f.range = range)
            })),
            sort_links => value(&sort_links),
            range => filters.range.key(),
            range_label => filters.range.label(),
            sort => filters.sort.key(),
            q => filters.search.clone().unwrap_or_default(),
            service => filters.service.clone().unwrap_or_default(),
            env => filters.environment.clone().unwrap_or_default(),
            filtered => filters.search.is_some() || filters.service.is_some() || filters.environment.is_some(),
            clear => filters.link(|f| { f.search = None; f.service = None; f.environment = None; }),
            shown, breaching, pages, show_sources,
            page => filters.page,
            truncated => fleet.more.then_some(MAX_PROMPTS),
            next => (filters.page < pages).then(|| filters.link(|f| f.page = filters.page + 1)),
            previous => (filters.page > 1).then(|| filters.link(|f| f.page = filters.page - 1)),
        },
    ))
}

/// The listing, the overview of the range (and of the window before it when `previous`),
/// and the environments the registry knows.
async fn read_fleet(
    state: &AppState,
    filters: &Filters,
    previous: bool,
) -> Result<Fleet, ApiError> {
    let query = StatsQuery {
        prompt: None,
        service: filters.service.clone(),
        environment: filters.environment.clone(),
        by: GroupBy::Prompt,
    };
    let (from, to) = filters.range.window(SystemTime::now());
    let before = from
        .checked_sub(filters.range.duration())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let fleet = state
        .cache
        .db()
        .read(|registry| async move {
            let client = registry.client();
            let everything = PromptFilter::default();
            let (listed, current, environments) = tokio::try_join!(
                registry.list_prompts(&everything, None, MAX_PROMPTS),
                overview(client, &query, from, to),
                async {
                    let rows = client
                        .query(
                            "SELECT DISTINCT environment::text FROM prompt_environments \
                             ORDER BY 1 LIMIT $1",
                            &[&MAX_ENVIRONMENTS],
                        )
                        .await?;
                    Ok::<_, RegistryError>(rows.iter().map(|r| r.get(0)).collect())
                },
            )?;
            let previous = if previous {
                Some(overview(client, &query, before, from).await?)
            } else {
                None
            };
            Ok::<_, RegistryError>(Fleet {
                more: listed.more,
                listed: listed.entries,
                current,
                previous,
                environments,
            })
        })
        .await?;
    Ok(fleet)
}

/// The table's rows: every listed prompt and every prompt with runs, with their figures
/// and breaches, narrowed by `filters` and in their order.
fn table(
    listed: Vec<ListedPrompt>,
    stats: &[StatsRow],
    mut breaches: HashMap<String, Vec<String>>,
    filters: &Filters,
) -> Vec<PromptRow> {
    let mut figures: HashMap<&str, &StatsRow> =
        stats.iter().map(|row| (row.prompt.as_str(), row)).collect();
    let mut rows: Vec<PromptRow> = listed.into_iter().map(PromptRow::listed).collect();
    for row in &mut rows {
        if let Some(stats) = figures.remove(row.prompt.as_str()) {
            *row = row.clone().with_figures(stats);
        }
    }
    rows.extend(
        figures
            .into_values()
            .map(|stats| PromptRow::unlisted(&stats.prompt).with_figures(stats)),
    );
    rows.retain(|row| row.passes(filters));
    for row in &mut rows {
        row.breaches = breaches.remove(&row.prompt).unwrap_or_default();
    }
    sort(&mut rows, filters.sort);
    rows
}

/// Breaching prompts first, then by `key`, then by name; a prompt without the figure
/// after those with it.
fn sort(rows: &mut [PromptRow], key: SortKey) {
    use std::cmp::Ordering;
    // Highest first (lowest with `ascending`), none last.
    let by = |a: Option<f64>, b: Option<f64>, ascending: bool| match (a, b) {
        (Some(a), Some(b)) if ascending => a.total_cmp(&b),
        (Some(a), Some(b)) => b.total_cmp(&a),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    let called = |row: &PromptRow, value: f64| (row.calls > 0).then_some(value);
    rows.sort_by(|a, b| {
        a.breaches
            .is_empty()
            .cmp(&b.breaches.is_empty())
            .then_with(|| match key {
                SortKey::Calls => b.calls.cmp(&a.calls),
                SortKey::Errors => {
                    by(a.error_rate, b.error_rate, false).then_with(|| b.calls.cmp(&a.calls))
                }
                SortKey::P95 => by(a.p95_ms, b.p95_ms, false),
                SortKey::Cost => by(called(a, a.cost_usd), called(b, b.cost_usd), false),
                SortKey::Quality => by(a.quality, b.quality, true),
                SortKey::Name => Ordering::Equal,
            })
            .then_with(|| a.prompt.cmp(&b.prompt))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(prompt: &str, calls: i64, error_rate: f64, p95: f64, quality: f64) -> StatsRow {
        StatsRow {
            prompt: prompt.into(),
            group: String::new(),
            calls,
            error_rate,
            p50_ms: Some(p95 / 2.0),
            p95_ms: Some(p95),
            p99_ms: Some(p95 * 1.5),
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: calls as f64 * 0.01,
            quality: Some(quality),
            scored: 1,
        }
    }

    fn listed(service: &str, name: &str) -> ListedPrompt {
        ListedPrompt {
            source: String::new(),
            service: service.into(),
            name: name.into(),
            latest_version: 2,
            model: "gpt-4o".into(),
            description: None,
            updated_at: None,
            archived: false,
            environments: BTreeMap::new(),
        }
    }

    fn order(filters: &Filters, breaching: &[&str]) -> Vec<String> {
        let breaches = breaching
            .iter()
            .map(|p| ((*p).to_owned(), vec!["error rate".to_owned()]))
            .collect();
        let rows = table(
            vec![
                listed("billing", "invoice"),
                listed("billing", "refund"),
                listed("support", "reply"),
                listed("support", "idle"),
            ],
            &[
                stats("billing/invoice", 100, 0.01, 300.0, 0.9),
                stats("billing/refund", 10, 0.20, 900.0, 0.95),
                stats("support/reply", 50, 0.05, 100.0, 0.5),
                stats("ops/unlisted", 5, 0.0, 50.0, 1.0),
            ],
            breaches,
            filters,
        );
        rows.into_iter().map(|r| r.prompt).collect()
    }

    #[test]
    fn breaching_first_then_the_key_with_idle_prompts_last() {
        let with = |sort| Filters {
            sort,
            page: 1,
            ..Filters::default()
        };
        assert_eq!(
            order(&with(SortKey::Calls), &[]),
            [
                "billing/invoice",
                "support/reply",
                "billing/refund",
                "ops/unlisted",
                "support/idle"
            ]
        );
        assert_eq!(
            order(&with(SortKey::Errors), &["support/reply"])[..3],
            ["support/reply", "billing/refund", "billing/invoice"]
        );
        assert_eq!(order(&with(SortKey::P95), &[])[0], "billing/refund");
        assert_eq!(order(&with(SortKey::Quality), &[])[0], "support/reply");
        assert_eq!(order(&with(SortKey::Cost), &[])[4], "support/idle");
        assert_eq!(order(&with(SortKey::Name), &[])[0], "billing/invoice");
    }

    #[test]
    fn search_and_service_narrow() {
        let filters = Filters {
            search: Some("RE".into()),
            page: 1,
            ..Filters::default()
        };
        assert_eq!(order(&filters, &[]), ["support/reply", "billing/refund"]);
        let filters = Filters {
            service: Some("support".into()),
            page: 1,
            ..Filters::default()
        };
        assert_eq!(order(&filters, &[]), ["support/reply", "support/idle"]);
    }

    #[test]
    fn queries_are_checked_and_links_keep_the_choices() {
        let query = |sort: &str, page: &str| FrontQuery {
            sort: Some(sort.into()),
            page: Some(page.into()),
            q: Some("inv oice".into()),
            ..FrontQuery::default()
        };
        let filters = Filters::read(&query("p95", "2")).ok();
        assert_eq!(filters.as_ref().map(|f| f.sort), Some(SortKey::P95));
        assert_eq!(
            filters.map(|f| f.link(|f| f.range = Range::Week)),
            Some("?range=7d&sort=p95&q=inv%20oice".to_owned())
        );
        for (sort, page) in [("speed", "1"), ("calls", "0"), ("calls", "x")] {
            assert!(Filters::read(&query(sort, page)).is_err(), "{sort} {page}");
        }
        for limit in ["0", "101", "x"] {
            let query = FrontQuery {
                limit: Some(limit.into()),
                ..FrontQuery::default()
            };
            assert!(Filters::read(&query).is_err(), "{limit}");
        }
        let query = FrontQuery {
            limit: Some("2".into()),
            ..FrontQuery::default()
        };
        let filters = Filters::read(&query).ok();
        assert_eq!(
            filters.map(|f| f.link(|f| f.page = 3)),
            Some("?range=24h&sort=calls&limit=2&page=3".to_owned())
        );
    }
}
