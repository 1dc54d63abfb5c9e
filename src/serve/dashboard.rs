//! The dashboard: server-rendered HTML from minijinja templates embedded in the binary,
//! usable without JavaScript; charts are SVG drawn on the server.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, UNIX_EPOCH};

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};

use axum::response::{Html, IntoResponse, Response};
use minijinja::{Environment, context};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::api::{ApiError, ErrorCode, Pin, list};
use crate::registry::RegistryError;

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
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

/// `GET /`: prompts by service, latest version and pins (the gate checked the token).
pub async fn index(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let prompts = state
        .cache
        .db()
        .read(|registry| async move { list(&registry).await })
        .await?;
    let mut services: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for prompt in prompts {
        services
            .entry(prompt.service.clone())
            .or_default()
            .push(prompt);
    }
    Ok(page(
        "index.html",
        context! { services => minijinja::Value::from(minijinja::value::Serde(&services)) },
    ))
}

/// The two versions to compare.
#[derive(Debug, Deserialize)]
pub struct DiffQuery {
    from: Option<u32>,
    to: Option<u32>,
}

#[derive(Debug, Serialize)]
struct VersionRow {
    version: u32,
    commit: String,
    author: Option<String>,
    time: String,
    message: Option<String>,
    text: String,
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

/// `GET /prompts/{service}/{name}?from=A&to=B`: versions, environments, a diff, charts.
pub async fn prompt_page(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<DiffQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path((service, name)) = path?;
    let Query(query) = query?;
    let (service_ref, name_ref) = (service.as_str(), name.as_str());
    let (rows, pins, runs) = state
        .cache
        .db()
        .read(|registry| async move {
            let client = registry.client();
            let rows = client
                .query(
                    "SELECT version, commit_sha, created_by, created_at, commit_message, template, model, \
                     parameters::text FROM prompts WHERE service = $1 AND name = $2 ORDER BY version DESC",
                    &[&service_ref, &name_ref],
                )
                .await?;
            let pins = client
                .query(
                    "SELECT environment, version, model FROM prompt_environments \
                     WHERE service = $1 AND name = $2 ORDER BY environment",
                    &[&service_ref, &name_ref],
                )
                .await?;
            let runs = client
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
            Ok::<_, RegistryError>((rows, pins, runs))
        })
        .await?;
    if rows.is_empty() {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no prompt named `{service}/{name}` in the registry"),
        ));
    }
    let versions: Vec<VersionRow> = rows
        .iter()
        .map(|row| {
            let version: i32 = row.get(0);
            let created: Option<std::time::SystemTime> = row.get(3);
            let template: String = row.get(5);
            let model: String = row.get(6);
            let parameters: Option<String> = row.get(7);
            VersionRow {
                version: u32::try_from(version).unwrap_or(0),
                commit: row.get(1),
                author: row.get(2),
                time: created.map(format_time).unwrap_or_default(),
                message: row
                    .get::<_, Option<String>>(4)
                    .map(|m| m.lines().next().unwrap_or("").to_owned()),
                text: format!(
                    "model: {model}\nparameters: {}\n{template}\n",
                    parameters.unwrap_or_else(|| "{}".to_owned())
                ),
            }
        })
        .collect();
    let environments: BTreeMap<String, Pin> = pins
        .iter()
        .map(|row| {
            let version: Option<i32> = row.get(1);
            (
                row.get(0),
                Pin {
                    version: version.and_then(|v| u32::try_from(v).ok()),
                    model: row.get(2),
                },
            )
        })
        .collect();
    let to = query.to.unwrap_or(versions[0].version);
    let from = query
        .from
        .unwrap_or_else(|| versions.get(1).map_or(to, |v| v.version));
    let text_of = |n: u32| {
        versions
            .iter()
            .find(|v| v.version == n)
            .map(|v| v.text.as_str())
    };
    let diff = match (text_of(from), text_of(to)) {
        (Some(old), Some(new)) if from != to => Some(diff_lines(old, new)),
        _ => None,
    };
    let mut charts = Vec::new();
    if !runs.is_empty() {
        let times: Vec<f64> = runs.iter().map(|r| r.get(0)).collect();
        let column = |i: usize| -> Vec<Option<f64>> { runs.iter().map(|r| r.get(i)).collect() };
        charts.push(Chart {
            title: "Latency (ms): P50, P95, P99 per hour".to_owned(),
            svg: svg_chart(
                "latency",
                &times,
                &[("P50", column(1)), ("P95", column(2)), ("P99", column(3))],
            ),
        });
        charts.push(Chart {
            title: "Cost (USD) per hour".to_owned(),
            svg: svg_chart("cost", &times, &[("cost", column(4))]),
        });
        charts.push(Chart {
            title: "Quality (mean score of sampled runs) per hour".to_owned(),
            svg: svg_chart("quality", &times, &[("quality", column(5))]),
        });
    }
    Ok(page(
        "prompt.html",
        context! {
            service, name, from, to,
            versions => minijinja::Value::from(minijinja::value::Serde(&versions)),
            environments => minijinja::Value::from(minijinja::value::Serde(&environments)),
            diff => minijinja::Value::from(minijinja::value::Serde(&diff)),
            charts => minijinja::Value::from(minijinja::value::Serde(&charts)),
        },
    ))
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

fn format_time(time: std::time::SystemTime) -> String {
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    let rest = seconds % 86_400;
    let (year, month, day) = crate::calendar::civil_date(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        (rest % 3600) / 60
    )
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
