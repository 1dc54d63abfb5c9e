//! The dashboard: server-rendered HTML from minijinja templates embedded in the binary,
//! usable without JavaScript; charts are SVG drawn on the server.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};

use axum::response::{Html, IntoResponse, Response};
use minijinja::{Environment, context};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::api::{ApiError, ErrorCode};
use super::listing::{self, Paging};
use crate::registry::RegistryError;
use crate::registry::listing::PromptFilter;

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.add_filter("utc", utc);
        env.add_filter("first_line", first_line);
        for (name, source) in [
            ("base.html", include_str!("templates/base.html")),
            ("index.html", include_str!("templates/index.html")),
            ("prompt.html", include_str!("templates/prompt.html")),
        ] {
            if let Err(err) = env.add_template(name, source) {
                tracing::error!(template = name, error = %err, "dashboard template does not compile");
            }
        }
        env
    })
}

fn page(name: &str, context: minijinja::Value) -> Response {
    match templates()
        .get_template(name)
        .and_then(|template| template.render(context))
    {
        Ok(html) => Html(html).into_response(),
        Err(err) => ApiError::new(ErrorCode::Internal, format!("dashboard: {err}")).into_response(),
    }
}

/// `GET /?limit=N&cursor=C`: one page of the registry's listing, prompts grouped by
/// source and then service, with their latest version and pins (the gate checked the
/// token).
pub async fn index(
    State(state): State<Arc<AppState>>,
    paging: Result<Query<Paging>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(paging) = paging?;
    let listed = listing::prompt_page(&state, &paging, PromptFilter::default()).await?;
    let next = listing::next_prompts(&listed).map(|cursor| next_page(&paging, &cursor));
    // By source (the repository that published them), then by service.
    let mut sources: BTreeMap<String, BTreeMap<String, Vec<_>>> = BTreeMap::new();
    for prompt in listed.entries {
        sources
            .entry(prompt.source.clone())
            .or_default()
            .entry(prompt.service.clone())
            .or_default()
            .push(prompt);
    }
    Ok(page(
        "index.html",
        context! {
            sources => minijinja::Value::from(minijinja::value::Serde(&sources)),
            next,
        },
    ))
}

/// The query of the page after this one: the same `limit`, the next `cursor`.
fn next_page(paging: &Paging, cursor: &str) -> String {
    match paging.limit.as_deref() {
        Some(limit) => format!("?limit={limit}&cursor={cursor}"),
        None => format!("?cursor={cursor}"),
    }
}

/// The two versions to compare.
#[derive(Debug, Deserialize)]
pub struct DiffQuery {
    from: Option<u32>,
    to: Option<u32>,
}

#[derive(Debug, Serialize)]
struct DiffLine {
    kind: &'static str,
    sign: &'static str,
    text: String,
}

#[derive(Debug, Serialize)]
struct Chart {
    title: String,
    svg: String,
}

/// `GET /prompts/{service}/{name}?from=A&to=B&cursor=C`: the environments, one page of
/// versions (the registry's listing), a diff between two versions, charts of the runs.
pub async fn prompt_page(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    paging: Result<Query<Paging>, QueryRejection>,
    query: Result<Query<DiffQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path((service, name)) = path?;
    let Query(paging) = paging?;
    let Query(query) = query?;
    // `service` may be `source:service`: the listing checks the source owns the prompt,
    // the reads below take the bare service.
    let versions = listing::version_page(&state, service.clone(), name.clone(), &paging).await?;
    let named = format!("{service}/{name}");
    let service = match crate::registry::sources::split_source(&named) {
        Some((_, rest)) => rest
            .split_once('/')
            .map_or(service.clone(), |(s, _)| s.to_owned()),
        None => service,
    };
    let next = listing::next_versions(&versions).map(|cursor| next_page(&paging, &cursor));
    let newest = versions.entries.first().map(|v| v.version);
    let to = query.to.or(newest);
    let from = query
        .from
        .or_else(|| versions.entries.get(1).map(|v| v.version))
        .or(to);
    let (service_ref, name_ref) = (service.as_str(), name.as_str());
    let compared: Vec<i32> = [from, to]
        .into_iter()
        .flatten()
        .filter_map(|v| i32::try_from(v).ok())
        .collect();
    let (texts, mut pins, runs) = state
        .cache
        .db()
        .read(|registry| async move {
            let texts = registry
                .client()
                .query(
                    "SELECT version, template, model, parameters::text FROM prompts \
                     WHERE service = $1 AND name = $2 AND version = ANY($3)",
                    &[&service_ref, &name_ref, &compared],
                )
                .await?;
            let key = (service_ref.to_owned(), name_ref.to_owned());
            let pins = registry.pins(std::slice::from_ref(&key)).await?;
            let runs = registry
                .client()
                .query(
                    "SELECT extract(epoch FROM date_trunc('hour', created_at))::float8, \
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms), \
                       percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms), \
                       percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms), \
                       coalesce(sum(cost_usd), 0)::float8, avg(quality_score)::float8 \
                     FROM prompt_runs WHERE service = $1 AND name = $2 \
                       AND created_at > now() - interval '14 days' GROUP BY 1 ORDER BY 1",
                    &[&service_ref, &name_ref],
                )
                .await?;
            Ok::<_, RegistryError>((texts, pins, runs))
        })
        .await?;
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
    let diff = match (text_of(from), text_of(to)) {
        (Some(old), Some(new)) if from != to => Some(diff_lines(&old, &new)),
        _ => None,
    };
    let environments = pins
        .remove(&(service.clone(), name.clone()))
        .unwrap_or_default();
    Ok(page(
        "prompt.html",
        context! {
            service, name, from, to, next,
            versions => minijinja::Value::from(minijinja::value::Serde(&versions.entries)),
            environments => minijinja::Value::from(minijinja::value::Serde(&environments)),
            diff => minijinja::Value::from(minijinja::value::Serde(&diff)),
            charts => minijinja::Value::from(minijinja::value::Serde(&charts(&runs))),
        },
    ))
}

/// Latency, cost and quality per hour, from the rows of the runs query; none without runs.
fn charts(runs: &[tokio_postgres::Row]) -> Vec<Chart> {
    if runs.is_empty() {
        return Vec::new();
    }
    let times: Vec<f64> = runs.iter().map(|r| r.get(0)).collect();
    let column = |i: usize| -> Vec<Option<f64>> { runs.iter().map(|r| r.get(i)).collect() };
    vec![
        Chart {
            title: "Latency (ms): P50, P95, P99 per hour".to_owned(),
            svg: svg_chart(
                "latency",
                &times,
                &[("P50", column(1)), ("P95", column(2)), ("P99", column(3))],
            ),
        },
        Chart {
            title: "Cost (USD) per hour".to_owned(),
            svg: svg_chart("cost", &times, &[("cost", column(4))]),
        },
        Chart {
            title: "Quality (mean score of sampled runs) per hour".to_owned(),
            svg: svg_chart("quality", &times, &[("quality", column(5))]),
        },
    ]
}

fn diff_lines(old: &str, new: &str) -> Vec<DiffLine> {
    similar::TextDiff::from_lines(old, new)
        .iter_all_changes()
        .map(|change| {
            let (kind, sign) = match change.tag() {
                similar::ChangeTag::Delete => ("del", "-"),
                similar::ChangeTag::Insert => ("ins", "+"),
                similar::ChangeTag::Equal => ("same", " "),
            };
            DiffLine {
                kind,
                sign,
                text: change.value().trim_end_matches(['\n', '\r']).to_owned(),
            }
        })
        .collect()
}

/// `{{ seconds|utc }}`: a time in seconds since the epoch as `2024-05-01 09:30 UTC`.
fn utc(seconds: Option<i64>) -> String {
    let Some(seconds) = seconds else {
        return String::new();
    };
    let seconds = u64::try_from(seconds).unwrap_or(0);
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    let rest = seconds % 86_400;
    let (year, month, day) = crate::calendar::civil_date(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        (rest % 3600) / 60
    )
}

/// `{{ text|first_line }}`: a commit message's subject.
fn first_line(text: Option<String>) -> String {
    text.and_then(|text| text.lines().next().map(str::to_owned))
        .unwrap_or_default()
}

const COLOURS: [&str; 3] = ["#1f77b4", "#ff7f0e", "#d62728"];

/// A line chart as SVG: one polyline per series, axes labelled with the range.
fn svg_chart(id: &str, times: &[f64], series: &[(&str, Vec<Option<f64>>)]) -> String {
    let (width, height, pad) = (600.0_f64, 200.0_f64, 40.0_f64);
    let t0 = times.first().copied().unwrap_or(0.0);
    let t1 = times.last().copied().unwrap_or(1.0).max(t0 + 1.0);
    let max = series
        .iter()
        .flat_map(|(_, values)| values.iter().flatten())
        .fold(0.0_f64, |a, &b| a.max(b))
        .max(f64::EPSILON);
    let x = |t: f64| pad + (t - t0) / (t1 - t0) * (width - 2.0 * pad);
    let y = |v: f64| height - pad + -(v / max) * (height - 2.0 * pad);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart-svg\" id=\"chart-{id}\" \
         width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\">"
    );
    let _ = write!(
        svg,
        "<line x1=\"{pad}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"#888\"/>\
         <line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{0}\" stroke=\"#888\"/>\
         <text x=\"2\" y=\"{2}\" font-size=\"10\">{max:.3}</text>\
         <text x=\"2\" y=\"{0}\" font-size=\"10\">0</text>",
        height - pad,
        width - pad,
        pad + 4.0
    );
    for (index, (label, values)) in series.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let points: Vec<String> = times
            .iter()
            .zip(values)
            .filter_map(|(t, v)| v.map(|v| format!("{:.1},{:.1}", x(*t), y(v))))
            .collect();
        let _ = write!(
            svg,
            "<polyline class=\"series\" data-series=\"{label}\" fill=\"none\" stroke=\"{colour}\" \
             stroke-width=\"2\" points=\"{}\"/>",
            points.join(" ")
        );
        for point in &points {
            if let Some((px, py)) = point.split_once(',') {
                let _ = write!(
                    svg,
                    "<circle cx=\"{px}\" cy=\"{py}\" r=\"2.5\" fill=\"{colour}\"/>"
                );
            }
        }
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"{colour}\">{label}</text>",
            width - pad + 2.0,
            pad + 14.0 * index as f64
        );
    }
    svg.push_str("</svg>");
    svg
}
