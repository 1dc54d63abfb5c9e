//! The registry's listings over `/v1`: `GET /v1/prompts` (filtered by service, environment
//! and name) and `GET /v1/prompts/{service}/{name}/versions`, both paged with `limit` and an
//! opaque `cursor`, read from the database the way the other reads are (the read URL, the
//! query timeout). The dashboard pages through the same listings ([`prompt_page`],
//! [`version_page`]).
//!
//! A cursor is the base64url (unpadded) of a small JSON value naming where the previous
//! page ended; the server checks everything in it, so a tampered, truncated, oversized or
//! foreign cursor is a 400, never a failed query.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::api::{ApiError, ErrorCode, refuse_nul};
use crate::registry::listing::{ListedPrompt, ListedVersion, Page, PromptFilter};

/// The entries of a page when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 50;
/// The most entries a page holds: a larger `limit` is refused (422).
pub const MAX_LIMIT: u32 = 100;
/// The longest cursor accepted, in characters: four times what the longest service and
/// name the registry holds need.
const MAX_CURSOR: usize = 8192;

/// Paging of a listing: `GET /v1/prompts`, a prompt's versions, the dashboard's pages.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// Entries per page, from 1 to 100 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// Where to start: the `next_cursor` of the previous page (default: the first page).
    pub cursor: Option<String>,
}

/// Filters of `GET /v1/prompts`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListPromptsQuery {
    /// Only the prompts of this service.
    pub service: Option<String>,
    /// Only the prompts the environments file pins in this environment.
    pub env: Option<String>,
    /// Only the prompts whose name contains this text, ignoring case.
    pub q: Option<String>,
    /// Only the prompts of this source (the repository that published them).
    pub source: Option<String>,
}

/// `GET /v1/prompts`: one page of prompts, in (service, name) order.
#[derive(Debug, Serialize, ToSchema)]
pub struct PromptList {
    /// The prompts of this page.
    pub prompts: Vec<ListedPrompt>,
    /// The `cursor` of the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// `GET /v1/prompts/{service}/{name}/versions`: one page of versions, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionList {
    /// The versions of this page.
    pub versions: Vec<ListedVersion>,
    /// The `cursor` of the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// Where a page ends, as a cursor carries it.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
enum Cursor {
    /// After this prompt (the list).
    #[serde(rename = "p")]
    Prompt(String, String),
    /// Below this version (a prompt's versions).
    #[serde(rename = "v")]
    Version(u32),
}

impl Cursor {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// The cursor `text` holds; a 400 for anything this server did not write.
    fn decode(text: &str) -> Result<Cursor, ApiError> {
        let bad = |why: &str| {
            bad_request(format!(
                "`cursor` {why}: pass the `next_cursor` of the previous page as it is"
            ))
        };
        if text.len() > MAX_CURSOR {
            return Err(bad(&format!("is longer than {MAX_CURSOR} characters")));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|_| bad("is not base64url"))?;
        let cursor: Cursor =
            serde_json::from_slice(&bytes).map_err(|_| bad("is not a cursor of this server"))?;
        if let Cursor::Prompt(service, name) = &cursor
            && (service.contains('\0') || name.contains('\0'))
        {
            return Err(bad("is not a cursor of this server"));
        }
        Ok(cursor)
    }
}

/// The page size `limit` asks for: 400 when it is not a whole number, 422 when it is out of
/// 1..=100.
pub(super) fn page_limit(limit: Option<&str>) -> Result<u32, ApiError> {
    let Some(text) = limit else {
        return Ok(DEFAULT_LIMIT);
    };
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad_request(format!(
            "`limit` must be a whole number from 1 to {MAX_LIMIT}"
        )));
    }
    match text.parse::<u32>() {
        Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
        _ => Err(invalid(format!("`limit` must be from 1 to {MAX_LIMIT}"))),
    }
}

impl Paging {
    /// The page size (400 or 422 for a bad `limit`, as [`page_limit`] says) and the cursor
    /// decoded (400 for one this server did not write).
    fn read(&self) -> Result<(u32, Option<Cursor>), ApiError> {
        let limit = page_limit(self.limit.as_deref())?;
        let cursor = self.cursor.as_deref().map(Cursor::decode).transpose()?;
        Ok((limit, cursor))
    }
}

/// One page of the registry's prompts that pass `filter`, where `paging` says.
pub(super) async fn prompt_page(
    state: &AppState,
    paging: &Paging,
    filter: PromptFilter,
) -> Result<Page<ListedPrompt>, ApiError> {
    let (limit, after) = match paging.read()? {
        (limit, None) => (limit, None),
        (limit, Some(Cursor::Prompt(service, name))) => (limit, Some((service, name))),
        (_, Some(Cursor::Version(_))) => return Err(foreign_cursor()),
    };
    let page =
        state
            .cache
            .db()
            .read(move |registry| async move {
                registry.list_prompts(&filter, after.as_ref(), limit).await
            })
            .await?;
    Ok(page)
}

/// One page of the versions of `service/name`, where `paging` says.
pub(super) async fn version_page(
    state: &AppState,
    service: String,
    name: String,
    paging: &Paging,
) -> Result<Page<ListedVersion>, ApiError> {
    refuse_nul("service", &service)?;
    refuse_nul("name", &name)?;
    let (limit, before) = match paging.read()? {
        (limit, None) => (limit, None),
        (limit, Some(Cursor::Version(version))) => (limit, Some(version)),
        (_, Some(Cursor::Prompt(..))) => return Err(foreign_cursor()),
    };
    let page = state
        .cache
        .db()
        .read(move |registry| async move {
            registry.list_versions(&service, &name, before, limit).await
        })
        .await?;
    Ok(page)
}

/// The cursor of the page after `page` of prompts; `None` on the last page.
pub(super) fn next_prompts(page: &Page<ListedPrompt>) -> Option<String> {
    let last = page.entries.last().filter(|_| page.more)?;
    Some(Cursor::Prompt(last.service.clone(), last.name.clone()).encode())
}

/// The cursor of the page after `page` of versions; `None` on the last page.
pub(super) fn next_versions(page: &Page<ListedVersion>) -> Option<String> {
    let last = page.entries.last().filter(|_| page.more)?;
    Some(Cursor::Version(last.version).encode())
}

/// `GET /v1/prompts`: the registry's prompts, one page at a time in (service, name)
/// order, filtered by `service`, `env` (pinned there), `q` (in the name, ignoring case)
/// and `source` (the repository that published it).
#[utoipa::path(get, path = "/v1/prompts", operation_id = "list_prompts",
    params(Paging, ListPromptsQuery),
    responses((status = 200, description = "One page of prompts", body = PromptList),
        (status = 400, description = "A malformed query or cursor (`bad_request`)", body = super::api::ErrorBody),
        (status = 422, description = "`limit` out of 1 to 100 (`invalid`)", body = super::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_prompts(
    State(state): State<Arc<AppState>>,
    paging: Result<Query<Paging>, QueryRejection>,
    query: Result<Query<ListPromptsQuery>, QueryRejection>,
) -> Result<Json<PromptList>, ApiError> {
    let Query(paging) = paging?;
    let Query(query) = query?;
    for (field, value) in [
        ("service", &query.service),
        ("env", &query.env),
        ("q", &query.q),
        ("source", &query.source),
    ] {
        if let Some(value) = value {
            refuse_nul(field, value)?;
        }
    }
    let filter = PromptFilter {
        service: query.service,
        environment: query.env,
        name_contains: query.q,
        source: query.source,
    };
    let page = prompt_page(&state, &paging, filter).await?;
    Ok(Json(PromptList {
        next_cursor: next_prompts(&page),
        prompts: page.entries,
    }))
}

/// `GET /v1/prompts/{service}/{name}/versions`: the prompt's versions, newest first, one
/// page at a time, each with its commit and the environments that run it.
#[utoipa::path(get, path = "/v1/prompts/{service}/{name}/versions",
    operation_id = "list_prompt_versions",
    params(("service" = String, Path, description = "The prompt's service", example = "billing"),
        ("name" = String, Path, description = "The prompt's name", example = "invoice"), Paging),
    responses((status = 200, description = "One page of versions", body = VersionList),
        (status = 400, description = "A malformed path, query or cursor (`bad_request`)", body = super::api::ErrorBody),
        (status = 404, description = "No such prompt", body = super::api::ErrorBody),
        (status = 422, description = "`limit` out of 1 to 100 (`invalid`)", body = super::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_prompt_versions(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    paging: Result<Query<Paging>, QueryRejection>,
) -> Result<Json<VersionList>, ApiError> {
    let Path((service, name)) = path?;
    let Query(paging) = paging?;
    let page = version_page(&state, service, name, &paging).await?;
    Ok(Json(VersionList {
        next_cursor: next_versions(&page),
        versions: page.entries,
    }))
}

fn foreign_cursor() -> ApiError {
    bad_request(
        "`cursor` is the cursor of another listing: pass the `next_cursor` of the previous page as it is",
    )
}

/// A 400 `bad_request`: a malformed query or cursor.
fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::BadRequest, message)
}

/// A 422 `invalid`: a well-formed value out of range.
fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::Invalid, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;

    #[test]
    fn cursors_round_trip_and_refuse_what_the_server_did_not_write() {
        for cursor in [
            Cursor::Prompt("billing".into(), "invoice ünï".into()),
            Cursor::Version(7),
        ] {
            assert_eq!(Cursor::decode(&cursor.encode()).ok(), Some(cursor));
        }
        for text in [
            "",
            "!!!",
            "e30",
            "bm90IGpzb24",
            &"A".repeat(MAX_CURSOR + 1),
            &URL_SAFE_NO_PAD.encode(br#"{"p":["a\u0000","b"]}"#),
            &URL_SAFE_NO_PAD.encode(br#"{"v":-1}"#),
            &URL_SAFE_NO_PAD.encode(br#"{"v":7,"x":1}"#),
        ] {
            assert!(Cursor::decode(text).is_err(), "{text}");
        }
    }

    #[test]
    fn limits() {
        assert_eq!(page_limit(None).ok(), Some(DEFAULT_LIMIT));
        assert_eq!(page_limit(Some("1")).ok(), Some(1));
        assert_eq!(page_limit(Some("100")).ok(), Some(100));
        for (text, status) in [
            ("0", 422),
            ("101", 422),
            ("-1", 422),
            ("99999999999999999999999", 422),
            ("", 400),
            ("ten", 400),
            ("1.5", 400),
            ("-", 400),
        ] {
            let err = page_limit(Some(text))
                .err()
                .map(|e| e.into_response().status());
            assert_eq!(err.map(|s| s.as_u16()), Some(status), "{text}");
        }
    }
}
