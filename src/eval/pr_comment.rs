//! One comment on the pull request that holds a CI run's Markdown report: created on the
//! first run, updated in place on every later one (`promptctl test --github --comment`).
//!
//! The comment is found again by a hidden marker ([`Report::marker`]), an HTML comment at
//! the very start of its body. Everything goes through GitHub's REST API with the job's
//! `GITHUB_TOKEN` ([`Target::from_env`] reads what the runner exports): the comments of
//! the pull request are listed page by page (at most [`MAX_PAGES`]), the marked one is
//! PATCHed, or a new one POSTed. The token travels in the `Authorization` header only, is
//! never formatted into a message, and is sent to the API's own address only (a `Link`
//! header pointing elsewhere is not followed, redirects are not followed).
//!
//! Not here: the report itself ([`super::github`]), and what a failure means for the run
//! (the command line turns every [`CommentError`] into a warning: the run's verdict is
//! the tests', never the comment's).

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue, LINK};
use serde::Deserialize;

use crate::diagnostic::display_path;
use crate::providers::http::{error_message, retry_after};
use crate::retry::RetryPolicy;
use crate::serve::health::root_cause;
use crate::settings::Env;

/// The longest comment body GitHub accepts, in characters. The body is measured in UTF-16
/// code units, which are never fewer than GitHub's characters, so a body within it fits.
pub const MAX_BODY: usize = 65_536;
/// The API of github.com, when `GITHUB_API_URL` is unset.
pub const DEFAULT_API_URL: &str = "https://api.github.com";
/// Comments asked for per page of the listing (the most GitHub gives).
pub const PER_PAGE: usize = 100;
/// Pages of comments read at most (5,000 comments); a marker beyond them is not found and
/// a new comment is posted.
pub const MAX_PAGES: usize = 50;
/// How long connecting to the API may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request may take, its answer read in full.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long finding and writing the comment may take in all, retries included.
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(120);
/// The largest event file (`GITHUB_EVENT_PATH`) read.
pub const MAX_EVENT_BYTES: u64 = 32 << 20;
/// The largest answer read from the API (a page of 100 long comments).
pub const MAX_ANSWER_BYTES: usize = 32 << 20;

/// Listing and updating are retried when transient (429, 5xx, timeouts, dropped
/// connections); posting never is, so a comment is not posted twice.
const RETRY: RetryPolicy = RetryPolicy {
    max_retries: 2,
    base_delay: Duration::from_secs(1),
    max_delay: Duration::from_secs(10),
};
/// The footer's longest link; a longer one (an odd server address) is left out.
const MAX_FOOTER: usize = 1_000;
/// What a report cut to fit ends with.
const CUT_NOTE: &str = "\n\n**The report is cut here**: it is longer than a comment may be. \
    The step summary and the run's artifacts hold all of it.";
const USER_AGENT: &str = concat!("promptctl/", env!("CARGO_PKG_VERSION"));

/// Which report a comment holds: each has its own marker, so `check` and `test` never
/// overwrite each other's comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// `promptctl test`, of one shard under `--shard` (each shard has its own comment).
    Test(Option<crate::eval::selection::Shard>),
    /// `promptctl check`.
    Check,
}

impl Report {
    /// The hidden first line of the comment holding this report.
    pub fn marker(self) -> String {
        match self {
            Report::Test(None) => "<!-- promptctl:test-report -->".to_owned(),
            Report::Test(Some(shard)) => format!("<!-- promptctl:test-report shard {shard} -->"),
            Report::Check => "<!-- promptctl:check-report -->".to_owned(),
        }
    }
}

/// Why the comment could not be written.
#[derive(Debug, thiserror::Error)]
pub enum CommentError {
    /// A variable is unset or empty.
    #[error("{} is not set{}", .0, missing_hint(.0))]
    Missing(&'static str),
    /// `GITHUB_REPOSITORY` is not `owner/name`.
    #[error("GITHUB_REPOSITORY is not `owner/name`")]
    Repository,
    /// `GITHUB_API_URL` is not an `http(s)://` address without credentials.
    #[error("GITHUB_API_URL is not an http:// or https:// address")]
    ApiUrl,
    /// The event file could not be read.
    #[error("cannot read the event file: {0}")]
    Event(#[source] crate::files::ReadError),
    /// The event file is not JSON.
    #[error("the event file {} is not JSON: {reason}", display_path(.path))]
    EventJson {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// The event names no pull request (a push, a schedule...).
    #[error("this run is not for a pull request (the `{event}` event names none)")]
    NotPullRequest {
        /// `GITHUB_EVENT_NAME`.
        event: String,
    },
    /// 403 or 404: the token may not write to the pull request.
    #[error(
        "GitHub refused {what} with {status} ({message}): the token cannot write to pull \
         request #{number}; a pull request from a fork gets a read-only token, and the job \
         needs `permissions: pull-requests: write`"
    )]
    Refused {
        /// What was asked.
        what: &'static str,
        /// 403 or 404.
        status: u16,
        /// GitHub's message.
        message: String,
        /// The pull request.
        number: u64,
    },
    /// Another status that is no success.
    #[error("GitHub answered {status} to {what}: {message}")]
    Status {
        /// What was asked.
        what: &'static str,
        /// The status.
        status: u16,
        /// GitHub's message.
        message: String,
    },
    /// The request did not get through.
    #[error("cannot reach GitHub for {what}: {reason}")]
    Transport {
        /// What was asked.
        what: &'static str,
        /// The innermost cause (the address is never part of it).
        reason: String,
    },
    /// A request, or the whole, took too long.
    #[error("{what} took longer than {seconds} s")]
    Timeout {
        /// What was asked.
        what: &'static str,
        /// The limit.
        seconds: u64,
    },
    /// An answer that cannot be used.
    #[error("GitHub's answer to {what} {reason}")]
    Answer {
        /// What was asked.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client or the runtime could not start.
    #[error("cannot start the HTTP client: {0}")]
    Client(String),
}

/// Where a missing variable comes from.
fn missing_hint(name: &str) -> &'static str {
    if name == "GITHUB_TOKEN" {
        ": give it to the step (`env: GITHUB_TOKEN: ${{ github.token }}`)"
    } else {
        " (GitHub Actions sets it: is this a workflow run?)"
    }
}

impl CommentError {
    /// Whether trying again may mend it: a 429, a 5xx, a timeout or a dropped connection.
    pub fn is_transient(&self) -> bool {
        match self {
            CommentError::Status { status, .. } => crate::retry::transient_status(*status),
            CommentError::Transport { .. } | CommentError::Timeout { .. } => true,
            _ => false,
        }
    }
}

/// The token the requests carry; its value is never formatted.
#[derive(Clone)]
struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(hidden)")
    }
}

/// Where the comment goes and how to get there, from the variables GitHub Actions exports.
#[derive(Debug, Clone)]
pub struct Target {
    /// The REST API's root (`GITHUB_API_URL`), without a trailing slash.
    pub api_url: String,
    /// `owner/name` (`GITHUB_REPOSITORY`).
    pub repository: String,
    /// The pull request's number, from the event at `GITHUB_EVENT_PATH`.
    pub number: u64,
    /// `{GITHUB_SERVER_URL}/{GITHUB_REPOSITORY}/actions/runs/{GITHUB_RUN_ID}`, when set.
    pub run_url: Option<String>,
    token: Token,
}

impl Target {
    /// The target of this run: `GITHUB_TOKEN`, `GITHUB_REPOSITORY`, `GITHUB_API_URL`
    /// (default [`DEFAULT_API_URL`]) and the pull request's number from the event file.
    pub fn from_env(env: &Env) -> Result<Target, CommentError> {
        let token = required(env, "GITHUB_TOKEN")?;
        let repository = required(env, "GITHUB_REPOSITORY")?;
        if !valid_repository(repository) {
            return Err(CommentError::Repository);
        }
        let api_url = api_url(env.get("GITHUB_API_URL"))?;
        let event = Path::new(required(env, "GITHUB_EVENT_PATH")?);
        let number = event_number(event, env.get("GITHUB_EVENT_NAME"))?;
        Ok(Target {
            api_url,
            repository: repository.to_owned(),
            number,
            run_url: run_url(env, repository),
            token: Token(token.to_owned()),
        })
    }
}

/// A variable's value, trimmed, when it is set to something.
fn required<'a>(env: &'a Env, name: &'static str) -> Result<&'a str, CommentError> {
    env.get(name)
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .ok_or(CommentError::Missing(name))
}

/// `owner/name`, each of letters, digits, `-`, `_` and `.` (so it is safe in a URL path).
fn valid_repository(repository: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p != "."
            && p != ".."
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    matches!(repository.split_once('/'), Some((owner, name)) if part(owner) && part(name))
}

/// The API's root: `value` or [`DEFAULT_API_URL`], `http(s)://`, no credentials, no query.
fn api_url(value: Option<&str>) -> Result<String, CommentError> {
    let url = value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or(DEFAULT_API_URL)
        .trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest)
            if !rest.is_empty()
                && !rest.contains(['@', '?', '#'])
                && !rest.contains(char::is_whitespace) =>
        {
            Ok(url.to_owned())
        }
        _ => Err(CommentError::ApiUrl),
    }
}

/// The link to this run's page (where its artifacts are), when the runner says it.
fn run_url(env: &Env, repository: &str) -> Option<String> {
    let server = env.get("GITHUB_SERVER_URL")?.trim().trim_end_matches('/');
    let run = env.get("GITHUB_RUN_ID")?.trim();
    let plain = |c: char| !c.is_whitespace() && !matches!(c, '(' | ')' | '<' | '>' | '[' | ']');
    let ok = (server.starts_with("https://") || server.starts_with("http://"))
        && server.chars().all(plain)
        && !run.is_empty()
        && run.chars().all(|c| c.is_ascii_digit());
    ok.then(|| format!("{server}/{repository}/actions/runs/{run}"))
}

/// The pull request number of the event file at `path`.
fn event_number(path: &Path, event_name: Option<&str>) -> Result<u64, CommentError> {
    let bytes = crate::files::read_bounded(path, MAX_EVENT_BYTES).map_err(CommentError::Event)?;
    let event: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|err| CommentError::EventJson {
            path: path.to_path_buf(),
            reason: err.to_string(),
        })?;
    pull_request_number(&event).ok_or_else(|| CommentError::NotPullRequest {
        event: event_name.unwrap_or("unknown").to_owned(),
    })
}

/// The pull request an event is about: `pull_request.number` (`pull_request`,
/// `pull_request_target`), else `issue.number` (`issue_comment`), else `number`.
pub fn pull_request_number(event: &serde_json::Value) -> Option<u64> {
    ["/pull_request/number", "/issue/number", "/number"]
        .iter()
        .find_map(|pointer| event.pointer(pointer)?.as_u64())
        .filter(|number| *number > 0)
}

/// How long `text` is for GitHub's limit: UTF-16 code units, never fewer than characters.
fn units(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

/// The comment's body: `report`'s marker, the Markdown (cut, when it is too long, at a
/// line's end, its open code block and `<details>` closed, with a note saying so), and a
/// last line linking to the run's page, where its artifacts are. Within [`MAX_BODY`].
pub fn comment_body(report: Report, markdown: &str, run_url: Option<&str>) -> String {
    let head = format!("{}\n", report.marker());
    let footer = run_url
        .map(|url| format!("\n\n---\n[The full report and artifacts of this run]({url})"))
        .filter(|footer| units(footer) <= MAX_FOOTER)
        .unwrap_or_default();
    let room = MAX_BODY.saturating_sub(units(&head) + units(&footer));
    let markdown = markdown.trim_end();
    let text = if units(markdown) <= room {
        markdown.to_owned()
    } else {
        cut(markdown, room)
    };
    format!("{head}{text}{footer}")
}

/// `markdown` cut to `room` units with the blocks it leaves open closed and [`CUT_NOTE`].
fn cut(markdown: &str, room: usize) -> String {
    let mut budget = room.saturating_sub(units(CUT_NOTE));
    // Closing what the cut leaves open may not fit: cut more and try again.
    for _ in 0..8 {
        let kept = &markdown[..cut_point(markdown, budget)];
        let closing = closers(kept);
        let used = units(kept) + units(&closing) + units(CUT_NOTE);
        if used <= room {
            return format!("{kept}{closing}{CUT_NOTE}");
        }
        budget = budget.saturating_sub(used - room);
    }
    CUT_NOTE.trim_start().to_owned()
}

/// The byte index where `text` is cut to at most `budget` units: on a character
/// boundary, at the end of a line when one ends within the last 4 KiB.
fn cut_point(text: &str, budget: usize) -> usize {
    let mut used = 0;
    let mut end = 0;
    for (index, c) in text.char_indices() {
        used += c.len_utf16();
        if used > budget {
            break;
        }
        end = index + c.len_utf8();
    }
    match text[..end].rfind('\n') {
        Some(line) if end - line <= 4096 => line + 1,
        _ => end,
    }
}

/// What closes the blocks `text` leaves open: a code fence, and `<details>` elements.
fn closers(text: &str) -> String {
    let mut fence: Option<&str> = None;
    let mut details = 0usize;
    for line in text.lines() {
        let line = line.trim_start();
        match fence {
            Some(open) => {
                let run = fence_run(line);
                if run.is_some_and(|r| r.starts_with(open) && line[r.len()..].trim().is_empty()) {
                    fence = None;
                }
            }
            None => {
                fence = fence_run(line);
                if fence.is_none() {
                    details += line.matches("<details").count();
                    details = details.saturating_sub(line.matches("</details>").count());
                }
            }
        }
    }
    let mut closing = fence.map(|f| format!("\n{f}")).unwrap_or_default();
    closing.push_str(&"\n</details>".repeat(details));
    closing
}

/// The run of three or more backticks or tildes a line starts with (a code fence).
fn fence_run(line: &str) -> Option<&str> {
    let first = line.chars().next().filter(|c| matches!(c, '`' | '~'))?;
    let length = line.len() - line.trim_start_matches(first).len();
    (length >= 3).then(|| &line[..length])
}

/// The next page's address in a `Link` header, when it is on the API at `api_url` (the
/// token is never sent elsewhere).
pub fn next_link(link: &str, api_url: &str) -> Option<String> {
    let next = link.split(',').find_map(|part| {
        let (address, parameters) = part.split_once(';')?;
        let address = address.trim().strip_prefix('<')?.strip_suffix('>')?;
        let is_next = parameters.split(';').any(|parameter| {
            parameter.trim().strip_prefix("rel=").is_some_and(|rel| {
                rel.trim_matches('"')
                    .split_whitespace()
                    .any(|r| r == "next")
            })
        });
        is_next.then_some(address)
    })?;
    next.starts_with(&format!("{api_url}/"))
        .then(|| next.to_owned())
}

/// What [`publish`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// A new comment, with its id.
    Created(u64),
    /// The marked comment, with its id, updated.
    Updated(u64),
}

/// Writes `body` (made by [`comment_body`] for `report`) to the pull request: updates the
/// comment that starts with `report`'s marker (one by a bot account, as
/// `github-actions[bot]`, first), or posts a new one. Within [`TOTAL_TIMEOUT`].
pub async fn publish(
    target: &Target,
    report: Report,
    body: &str,
) -> Result<Published, CommentError> {
    let api = Api::new(target)?;
    tokio::time::timeout(TOTAL_TIMEOUT, api.publish(&report.marker(), body))
        .await
        .unwrap_or(Err(CommentError::Timeout {
            what: "writing the pull request comment",
            seconds: TOTAL_TIMEOUT.as_secs(),
        }))
}

/// [`publish`] on a runtime of its own, for a caller that has none.
pub fn publish_blocking(
    target: &Target,
    report: Report,
    body: &str,
) -> Result<Published, CommentError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| CommentError::Client(err.to_string()))?
        .block_on(publish(target, report, body))
}

const LIST: &str = "listing the pull request's comments";
const UPDATE: &str = "updating the comment";
const POST: &str = "posting the comment";

/// A comment as the API lists it.
#[derive(Deserialize)]
struct Comment {
    id: u64,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    user: Option<User>,
}

/// A comment's author.
#[derive(Deserialize)]
struct User {
    #[serde(default)]
    login: Option<String>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

impl Comment {
    /// Whether the token's own account wrote it: a bot (the workflow's token, a GitHub
    /// App) or the user `own` (a personal token). Anyone may write the marker; only our
    /// own comment is ever updated, so nobody else's comment is taken over.
    fn by(&self, own: Option<&str>) -> bool {
        let Some(user) = &self.user else { return false };
        user.kind.as_deref() == Some("Bot")
            || own.is_some_and(|own| user.login.as_deref() == Some(own))
    }
}

/// An answer: its body, and the next page's address.
struct Answer {
    body: Vec<u8>,
    next: Option<String>,
}

/// The API of one target.
struct Api<'a> {
    client: reqwest::Client,
    target: &'a Target,
}

impl<'a> Api<'a> {
    fn new(target: &'a Target) -> Result<Api<'a>, CommentError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/vnd.github+json"),
        );
        headers.insert(
            "x-github-api-version",
            HeaderValue::from_static("2022-11-28"),
        );
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(USER_AGENT)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| CommentError::Client(root_cause(&err)))?;
        Ok(Api { client, target })
    }

    /// The login of a personal token's user (`GET /user`); `None` for the workflow's token
    /// and GitHub Apps, which may not read it (their comments are a bot's), or on any
    /// failure.
    async fn own_login(&self) -> Option<String> {
        #[derive(Deserialize)]
        struct Me {
            login: String,
        }
        let url = format!("{}/user", self.target.api_url);
        let answer = self.once(Method::GET, &url, None, LIST).await.0.ok()?;
        serde_json::from_slice::<Me>(&answer.body)
            .ok()
            .map(|me| me.login)
    }

    async fn publish(&self, marker: &str, body: &str) -> Result<Published, CommentError> {
        let (api, repository) = (&self.target.api_url, &self.target.repository);
        let payload = serde_json::json!({ "body": body });
        if let Some(id) = self.find(marker).await? {
            let url = format!("{api}/repos/{repository}/issues/comments/{id}");
            self.call(Method::PATCH, &url, Some(&payload), UPDATE)
                .await?;
            return Ok(Published::Updated(id));
        }
        let url = format!(
            "{api}/repos/{repository}/issues/{}/comments",
            self.target.number
        );
        let answer = self.call(Method::POST, &url, Some(&payload), POST).await?;
        let created: Comment = parse(&answer.body, POST)?;
        Ok(Published::Created(created.id))
    }

    /// The comment starting with `marker`: the first by a bot, else the first.
    async fn find(&self, marker: &str) -> Result<Option<u64>, CommentError> {
        let target = self.target;
        let mut page = Some(format!(
            "{}/repos/{}/issues/{}/comments?per_page={PER_PAGE}",
            target.api_url, target.repository, target.number
        ));
        let own = self.own_login().await;
        for _ in 0..MAX_PAGES {
            let Some(url) = page.take() else { break };
            let answer = self.call(Method::GET, &url, None, LIST).await?;
            let comments: Vec<Comment> = parse(&answer.body, LIST)?;
            let ours = comments.iter().find(|c| {
                c.body.as_deref().is_some_and(|b| b.starts_with(marker)) && c.by(own.as_deref())
            });
            if let Some(comment) = ours {
                return Ok(Some(comment.id));
            }
            page = answer.next;
        }
        Ok(None)
    }

    /// One request, retried as [`RETRY`] says (a POST never).
    async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<&serde_json::Value>,
        what: &'static str,
    ) -> Result<Answer, CommentError> {
        let policy = if method == Method::POST {
            RetryPolicy {
                max_retries: 0,
                ..RETRY
            }
        } else {
            RETRY
        };
        let once = || self.once(method.clone(), url, body, what);
        policy.run(once, CommentError::is_transient).await
    }

    async fn once(
        &self,
        method: Method,
        url: &str,
        body: Option<&serde_json::Value>,
        what: &'static str,
    ) -> (Result<Answer, CommentError>, Option<Duration>) {
        let mut request = self
            .client
            .request(method, url)
            .bearer_auth(&self.target.token.0);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) => return (Err(transport(what, &err)), None),
        };
        let status = response.status().as_u16();
        let wait = retry_after(response.headers());
        let next = response
            .headers()
            .get(LINK)
            .and_then(|link| link.to_str().ok())
            .and_then(|link| next_link(link, &self.target.api_url));
        let body = match read_answer(response, what).await {
            Ok(body) => body,
            Err(err) => return (Err(err), wait),
        };
        if (200..300).contains(&status) {
            return (Ok(Answer { body, next }), None);
        }
        (Err(self.refusal(what, status, &body)), wait)
    }

    /// The error of a status that is no success, GitHub's message without the token.
    fn refusal(&self, what: &'static str, status: u16, body: &[u8]) -> CommentError {
        let message =
            error_message(&String::from_utf8_lossy(body)).replace(&self.target.token.0, "[hidden]");
        match status {
            403 | 404 => CommentError::Refused {
                what,
                status,
                message,
                number: self.target.number,
            },
            _ => CommentError::Status {
                what,
                status,
                message,
            },
        }
    }
}

/// The answer's body, at most [`MAX_ANSWER_BYTES`].
async fn read_answer(
    mut response: reqwest::Response,
    what: &'static str,
) -> Result<Vec<u8>, CommentError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| transport(what, &err))?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(CommentError::Answer {
                what,
                reason: format!("is larger than {} MiB", MAX_ANSWER_BYTES >> 20),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An answer's JSON as `T`.
fn parse<T: serde::de::DeserializeOwned>(
    body: &[u8],
    what: &'static str,
) -> Result<T, CommentError> {
    serde_json::from_slice(body).map_err(|err| CommentError::Answer {
        what,
        reason: format!("is not understood: {err}"),
    })
}

/// A request that did not get through: a timeout, or its innermost cause (which names
/// no address; reqwest's outer messages do).
fn transport(what: &'static str, err: &reqwest::Error) -> CommentError {
    if err.is_timeout() {
        CommentError::Timeout {
            what,
            seconds: REQUEST_TIMEOUT.as_secs(),
        }
    } else {
        CommentError::Transport {
            what,
            reason: root_cause(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn the_pull_request_number_comes_from_the_event() {
        let number = |json: &str| pull_request_number(&serde_json::from_str(json).expect("json"));
        assert_eq!(
            number(r#"{"number": 7, "pull_request": {"number": 7}}"#),
            Some(7)
        );
        assert_eq!(number(r#"{"pull_request": {"number": 12}}"#), Some(12));
        assert_eq!(
            number(r#"{"issue": {"number": 3, "pull_request": {}}}"#),
            Some(3)
        );
        assert_eq!(number(r#"{"number": 9}"#), Some(9));
        for not_one in [
            r#"{"ref": "refs/heads/main", "commits": []}"#,
            r#"{"number": "7"}"#,
            r#"{"number": -1}"#,
            r#"{"number": 0}"#,
            r#"{"pull_request": {"number": 1.5}}"#,
            "[]",
            "null",
        ] {
            assert_eq!(number(not_one), None, "{not_one}");
        }
    }

    #[test]
    fn the_target_is_read_from_the_runner_s_variables() {
        let folder = tempfile::tempdir().expect("folder");
        let event = folder.path().join("event.json");
        std::fs::write(&event, r#"{"pull_request": {"number": 42}}"#).expect("write");
        let event = event.to_string_lossy().into_owned();
        let mut pairs = vec![
            ("GITHUB_TOKEN", "ghs_SECRETTOKEN123"),
            ("GITHUB_REPOSITORY", "octo/prompts"),
            ("GITHUB_EVENT_PATH", event.as_str()),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_RUN_ID", "1234"),
        ];
        let target = Target::from_env(&env(&pairs)).expect("target");
        assert_eq!(target.api_url, DEFAULT_API_URL);
        assert_eq!(target.number, 42);
        assert_eq!(
            target.run_url.as_deref(),
            Some("https://github.com/octo/prompts/actions/runs/1234")
        );
        assert!(!format!("{target:?}").contains("SECRET"), "{target:?}");

        pairs.push(("GITHUB_API_URL", "https://ghe.example.com/api/v3/"));
        let target = Target::from_env(&env(&pairs)).expect("target");
        assert_eq!(target.api_url, "https://ghe.example.com/api/v3");
    }

    #[test]
    fn a_missing_or_odd_variable_or_event_is_an_error_that_says_which() {
        let folder = tempfile::tempdir().expect("folder");
        let push = folder.path().join("push.json");
        std::fs::write(&push, r#"{"ref": "refs/heads/main"}"#).expect("write");
        let broken = folder.path().join("broken.json");
        std::fs::write(&broken, "{not json").expect("write");
        let (push, broken) = (push.to_string_lossy(), broken.to_string_lossy());
        let missing = folder.path().join("missing.json");
        let missing = missing.to_string_lossy();
        let base = [("GITHUB_TOKEN", "t"), ("GITHUB_REPOSITORY", "o/r")];
        let error = |more: &[(&str, &str)]| {
            let mut pairs = base.to_vec();
            pairs.extend_from_slice(more);
            Target::from_env(&env(&pairs))
                .expect_err("an error")
                .to_string()
        };
        assert!(error(&[]).contains("GITHUB_EVENT_PATH is not set"));
        let on_push = error(&[("GITHUB_EVENT_PATH", &push), ("GITHUB_EVENT_NAME", "push")]);
        assert!(
            on_push.contains("not for a pull request (the `push` event"),
            "{on_push}"
        );
        assert!(error(&[("GITHUB_EVENT_PATH", &broken)]).contains("is not JSON"));
        assert!(error(&[("GITHUB_EVENT_PATH", &missing)]).contains("cannot read the event file"));
        for url in [
            "ftp://x",
            "https://user:pw@example.com",
            "https://",
            "https://a b",
        ] {
            let message = error(&[("GITHUB_EVENT_PATH", &push), ("GITHUB_API_URL", url)]);
            assert!(message.contains("GITHUB_API_URL"), "{url}: {message}");
        }
        for repository in ["nope", "a/b/c", "../x", "a/..", "a b/c", "/x"] {
            let pairs = [("GITHUB_TOKEN", "t"), ("GITHUB_REPOSITORY", repository)];
            let message = Target::from_env(&env(&pairs))
                .expect_err("error")
                .to_string();
            assert!(message.contains("owner/name"), "{repository}: {message}");
        }
        let pairs = [("GITHUB_TOKEN", " "), ("GITHUB_REPOSITORY", "o/r")];
        let message = Target::from_env(&env(&pairs))
            .expect_err("error")
            .to_string();
        assert!(message.contains("GITHUB_TOKEN is not set"), "{message}");
    }

    #[test]
    fn only_our_own_comment_is_ours() {
        let comment = |login: &str, kind: &str| Comment {
            id: 1,
            body: Some("x".to_owned()),
            user: Some(User {
                login: Some(login.to_owned()),
                kind: Some(kind.to_owned()),
            }),
        };
        assert!(comment("github-actions[bot]", "Bot").by(None));
        assert!(!comment("mallory", "User").by(None), "a stranger's comment");
        assert!(
            comment("ada", "User").by(Some("ada")),
            "a personal token's own"
        );
        assert!(!comment("mallory", "User").by(Some("ada")));
        let orphan = Comment {
            id: 2,
            body: None,
            user: None,
        };
        assert!(!orphan.by(Some("ada")));
    }

    #[test]
    fn each_report_and_each_shard_has_its_own_marker() {
        use crate::eval::selection::Shard;
        let markers = [
            Report::Test(None).marker(),
            Report::Test(Some(Shard { index: 1, count: 2 })).marker(),
            Report::Test(Some(Shard { index: 2, count: 2 })).marker(),
            Report::Check.marker(),
        ];
        let distinct: std::collections::BTreeSet<&String> = markers.iter().collect();
        assert_eq!(distinct.len(), markers.len(), "{markers:?}");
        // No marker is the start of another: a comment is found by its first line.
        for a in &markers {
            for b in &markers {
                assert!(a == b || !b.starts_with(a.as_str()), "{a} {b}");
            }
        }
    }

    #[test]
    fn a_short_report_is_kept_whole_under_the_marker_with_the_link_last() {
        let body = comment_body(
            Report::Test(None),
            "## ✅ promptctl test\n\nall good\n\n",
            Some("https://github.com/o/r/actions/runs/1"),
        );
        assert_eq!(
            body,
            "<!-- promptctl:test-report -->\n## ✅ promptctl test\n\nall good\n\n---\n\
             [The full report and artifacts of this run](https://github.com/o/r/actions/runs/1)"
        );
        let bare = comment_body(Report::Check, "report", None);
        assert_eq!(bare, "<!-- promptctl:check-report -->\nreport");
    }

    #[test]
    fn a_long_report_is_cut_at_a_line_within_the_limit_with_the_link() {
        let link = "https://github.com/o/r/actions/runs/1";
        let line = "| ✅ | `svc/p` | a test with a long name 𝄞 | echo | `p.yaml:1` |\n";
        let markdown = line.repeat(5_000);
        let body = comment_body(Report::Test(None), &markdown, Some(link));
        assert!(units(&body) <= MAX_BODY, "{}", units(&body));
        assert!(
            units(&body) > MAX_BODY - 200,
            "cut far too early: {}",
            units(&body)
        );
        assert!(body.starts_with("<!-- promptctl:test-report -->\n| ✅ |"));
        assert!(body.ends_with(&format!("({link})")));
        assert!(body.contains("**The report is cut here**"));
        // Whole rows only.
        let kept = body.split(CUT_NOTE).next().expect("kept");
        assert!(kept.ends_with("|\n"), "{}", &kept[kept.len() - 80..]);
    }

    #[test]
    fn a_cut_closes_the_code_block_and_details_it_leaves_open() {
        let mut markdown = String::from("## report\n\n<details><summary>p</summary>\n\n````diff\n");
        markdown.push_str(&"-old line ```\n+new line ~~~ 😀\n".repeat(4_000));
        markdown.push_str("````\n</details>\n");
        let body = comment_body(Report::Test(None), &markdown, None);
        assert!(units(&body) <= MAX_BODY);
        let kept = body.split(CUT_NOTE).next().expect("kept");
        assert!(
            kept.ends_with("\n````\n</details>"),
            "{}",
            &kept[kept.len() - 60..]
        );
        assert_eq!(closers(kept), "");
        assert_eq!(closers("```\ncode\n```\n<details>\n"), "\n</details>");
        assert_eq!(closers("~~~~\n~~~\n"), "\n~~~~");
    }

    #[test]
    fn a_single_huge_line_is_cut_on_a_character_boundary() {
        let markdown = "é😀".repeat(40_000);
        let body = comment_body(
            Report::Test(None),
            &markdown,
            Some("https://github.com/o/r/actions/runs/9"),
        );
        assert!(units(&body) <= MAX_BODY, "{}", units(&body));
        assert!(body.starts_with("<!-- promptctl:test-report -->\né😀"));
        // The longest footer is left out rather than crowd the report.
        let long = format!("https://github.com/{}", "a".repeat(2_000));
        let body = comment_body(Report::Test(None), "x", Some(&long));
        assert_eq!(body, "<!-- promptctl:test-report -->\nx");
    }

    #[test]
    fn only_a_next_link_on_the_api_itself_is_followed() {
        let api = "https://api.github.com";
        let link = r#"<https://api.github.com/repositories/1/issues/2/comments?per_page=100&page=2>; rel="next", <https://api.github.com/repositories/1/issues/2/comments?per_page=100&page=9>; rel="last""#;
        assert_eq!(
            next_link(link, api).as_deref(),
            Some("https://api.github.com/repositories/1/issues/2/comments?per_page=100&page=2")
        );
        assert_eq!(
            next_link(r#"<https://api.github.com/x?page=1>; rel="prev""#, api),
            None
        );
        assert_eq!(
            next_link(r#"<https://evil.example/x?page=2>; rel="next""#, api),
            None
        );
        assert_eq!(
            next_link(
                r#"<https://api.github.com.evil.example/x>; rel="next""#,
                api
            ),
            None
        );
        assert_eq!(next_link("garbage", api), None);
    }

    #[test]
    fn transient_failures_are_retried_and_refusals_are_not() {
        let status = |status| CommentError::Status {
            what: LIST,
            status,
            message: String::new(),
        };
        assert!(status(502).is_transient() && status(429).is_transient());
        assert!(!status(422).is_transient());
        let refused = CommentError::Refused {
            what: POST,
            status: 403,
            message: "Resource not accessible by integration".into(),
            number: 5,
        };
        assert!(!refused.is_transient());
        assert!(refused.to_string().contains("fork"), "{refused}");
    }
}
