//! The dashboard: server-rendered HTML from minijinja templates embedded in the binary,
//! usable without JavaScript (every choice is a link or a GET form); charts are SVG drawn
//! on the server ([`super::chart`]). The front page ([`front`]) answers "what needs me?"
//! over a range; a prompt's page ([`prompt`]) shows its runs over time by version. Both
//! read the rollups through [`crate::registry::stats`].

pub mod front;
pub mod prompt;

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use axum::response::{Html, IntoResponse, Response};
use minijinja::Environment;
use serde::Serialize;

pub use front::index;
pub use prompt::prompt_page;

use super::api::{ApiError, ErrorCode, refuse_nul};
use crate::registry::stats::Width;

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.add_filter("utc", utc);
        env.add_filter("first_line", first_line);
        env.add_filter("count", count);
        env.add_filter("percent", percent);
        env.add_filter("millis", millis);
        env.add_filter("usd", usd);
        env.add_filter("score", score);
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

/// `name` rendered with `context`; a 500 if it does not render.
fn page(name: &str, context: minijinja::Value) -> Response {
    match templates()
        .get_template(name)
        .and_then(|template| template.render(context))
    {
        Ok(html) => Html(html).into_response(),
        Err(err) => ApiError::new(ErrorCode::Internal, format!("dashboard: {err}")).into_response(),
    }
}

/// `data` as a template value.
fn value<T: Serialize + ?Sized>(data: &T) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(data))
}

/// One line of a diff between two versions.
#[derive(Debug, Serialize)]
struct DiffLine {
    kind: &'static str,
    sign: &'static str,
    text: String,
}

/// The lines of a unified diff from `old` to `new`.
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
    seconds.map(crate::calendar::utc_minute).unwrap_or_default()
}

/// `{{ text|first_line }}`: a commit message's subject.
fn first_line(text: Option<String>) -> String {
    text.and_then(|text| text.lines().next().map(str::to_owned))
        .unwrap_or_default()
}

/// `{{ n|count }}`: a whole number with thousands separated (`12,345`).
fn count(value: Option<f64>) -> String {
    let Some(value) = value.filter(|v| v.is_finite()) else {
        return "–".to_owned();
    };
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    if value < -0.5 {
        out.insert(0, '-');
    }
    out
}

/// `{{ share|percent }}`: a share as a percentage (`3.25%`); none as a dash.
fn percent(value: Option<f64>) -> String {
    match value.filter(|v| v.is_finite()) {
        Some(v) if v * 100.0 >= 10.0 => format!("{:.1}%", v * 100.0),
        Some(v) => format!("{:.2}%", v * 100.0),
        None => "–".to_owned(),
    }
}

/// `{{ ms|millis }}`: milliseconds (`1,234 ms`); none as a dash.
fn millis(value: Option<f64>) -> String {
    match value.filter(|v| v.is_finite()) {
        Some(v) => format!("{} ms", count(Some(v))),
        None => "–".to_owned(),
    }
}

/// `{{ dollars|usd }}`: US dollars, cents or finer for small sums (`$12.34`, `$0.0042`).
fn usd(value: Option<f64>) -> String {
    match value.filter(|v| v.is_finite()) {
        Some(v) if v == 0.0 || v.abs() >= 1.0 => format!("${v:.2}"),
        Some(v) => format!("${v:.4}"),
        None => "–".to_owned(),
    }
}

/// `{{ quality|score }}`: a score from 0 to 1 (`0.912`); none as a dash.
fn score(value: Option<f64>) -> String {
    match value.filter(|v| v.is_finite()) {
        Some(v) => format!("{v:.3}"),
        None => "–".to_owned(),
    }
}

/// The window a page shows: the last hour, day, week or thirty days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Range {
    /// The last hour, in minutes.
    Hour,
    /// The last 24 hours, in hours (the default).
    #[default]
    Day,
    /// The last 7 days, in hours.
    Week,
    /// The last 30 days, in hours.
    Month,
}

impl Range {
    /// Every range, shortest first.
    pub const ALL: [Range; 4] = [Range::Hour, Range::Day, Range::Week, Range::Month];

    /// The range `range=` names (`1h`, `24h`, `7d`, `30d`; none: 24 hours); a 400 for
    /// anything else.
    pub fn parse(text: Option<&str>) -> Result<Range, ApiError> {
        match text.map(str::trim) {
            None | Some("") => Ok(Range::default()),
            Some(text) => Range::ALL
                .into_iter()
                .find(|range| range.key() == text)
                .ok_or_else(|| {
                    bad_request(format!(
                        "`range` must be one of 1h, 24h, 7d, 30d, not {:?}",
                        clip(text)
                    ))
                }),
        }
    }

    /// Its value in a query (`24h`).
    pub fn key(self) -> &'static str {
        match self {
            Range::Hour => "1h",
            Range::Day => "24h",
            Range::Week => "7d",
            Range::Month => "30d",
        }
    }

    /// How a page names it (`24 h`).
    pub fn label(self) -> &'static str {
        match self {
            Range::Hour => "1 h",
            Range::Day => "24 h",
            Range::Week => "7 d",
            Range::Month => "30 d",
        }
    }

    /// Its length.
    pub fn duration(self) -> Duration {
        Duration::from_secs(match self {
            Range::Hour => 3_600,
            Range::Day => 86_400,
            Range::Week => 7 * 86_400,
            Range::Month => 30 * 86_400,
        })
    }

    /// The buckets its charts are drawn in: minutes for an hour, hours for the others.
    pub fn width(self) -> Width {
        match self {
            Range::Hour => Width::Minute,
            Range::Day | Range::Week | Range::Month => Width::Hour,
        }
    }

    /// `[now - length, now)`.
    pub fn window(self, now: SystemTime) -> (SystemTime, SystemTime) {
        (
            now.checked_sub(self.duration())
                .unwrap_or(SystemTime::UNIX_EPOCH),
            now,
        )
    }
}

/// A link of the range picker.
#[derive(Debug, Serialize)]
struct RangeLink {
    label: &'static str,
    key: &'static str,
    href: String,
    current: bool,
}

/// The range picker's links: `href` of each range, the chosen one marked.
fn range_links(chosen: Range, href: impl Fn(Range) -> String) -> Vec<RangeLink> {
    Range::ALL
        .into_iter()
        .map(|range| RangeLink {
            label: range.label(),
            key: range.key(),
            href: href(range),
            current: range == chosen,
        })
        .collect()
}

/// A 400 `bad_request`: a malformed query.
fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::BadRequest, message)
}

/// The first 40 characters of `text`, for an error message.
fn clip(text: &str) -> String {
    text.chars().take(40).collect()
}

/// A text parameter: trimmed, none when empty; a 400 when longer than `max` characters or
/// holding a NUL.
fn text_param(field: &str, value: Option<&str>, max: usize) -> Result<Option<String>, ApiError> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    refuse_nul(field, value)?;
    if value.chars().count() > max {
        return Err(bad_request(format!(
            "`{field}` is longer than {max} characters"
        )));
    }
    Ok(Some(value.to_owned()))
}

/// A query string (`?a=1&b=x%20y`) of the pairs that have a value, keys and values
/// percent-encoded; `?` alone when none has.
fn query_string(pairs: &[(&str, Option<&str>)]) -> String {
    let encode = |text: &str| {
        let mut out = String::with_capacity(text.len());
        for byte in text.bytes() {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                out.push(char::from(byte));
            } else {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
        out
    };
    let joined: Vec<String> = pairs
        .iter()
        .filter_map(|(key, value)| value.map(|v| format!("{}={}", encode(key), encode(v))))
        .collect();
    format!("?{}", joined.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_compile() {
        for name in ["base.html", "index.html", "prompt.html"] {
            assert!(templates().get_template(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn ranges_parse_and_refuse() {
        assert_eq!(Range::parse(None).ok(), Some(Range::Day));
        assert_eq!(Range::parse(Some("")).ok(), Some(Range::Day));
        assert_eq!(Range::parse(Some("7d")).ok(), Some(Range::Week));
        assert_eq!(
            Range::parse(Some("1h")).map(Range::width).ok(),
            Some(Width::Minute)
        );
        for text in ["1d", "30", "24H", "x"] {
            assert!(Range::parse(Some(text)).is_err(), "{text}");
        }
    }

    #[test]
    fn figures_read_well() {
        assert_eq!(count(Some(1_234_567.0)), "1,234,567");
        assert_eq!(count(Some(12.0)), "12");
        assert_eq!(count(None), "–");
        assert_eq!(percent(Some(0.0325)), "3.25%");
        assert_eq!(percent(Some(0.5)), "50.0%");
        assert_eq!(millis(Some(1_234.4)), "1,234 ms");
        assert_eq!(usd(Some(12.345)), "$12.35");
        assert_eq!(usd(Some(0.00421)), "$0.0042");
        assert_eq!(score(Some(0.9)), "0.900");
    }

    #[test]
    fn query_strings_are_encoded() {
        assert_eq!(
            query_string(&[("q", Some("a b&c")), ("env", None), ("range", Some("7d"))]),
            "?q=a%20b%26c&range=7d"
        );
        assert_eq!(query_string(&[("env", None)]), "?");
    }

    #[test]
    fn text_params_are_bounded() {
        assert_eq!(text_param("q", Some("  "), 5).ok(), Some(None));
        assert_eq!(
            text_param("q", Some(" ab "), 5).ok(),
            Some(Some("ab".into()))
        );
        assert!(text_param("q", Some("abcdef"), 5).is_err());
        assert!(text_param("q", Some("a\0b"), 5).is_err());
    }
}
