//! The registry's listings, page by page: its prompts in `(service, name)` order with
//! filters, and one prompt's versions newest first, each with the environments that run
//! it. Pages are keyset pages: a page starts after a key the previous page ended on, so a
//! sync between two pages neither repeats nor skips a prompt that was there before it.
//!
//! The entries are what `GET /v1/prompts` and `GET /v1/prompts/{service}/{name}/versions`
//! send and what the dashboard shows, so they serialize as the API's schemas (`Pin`,
//! `PromptListItem`, `PromptVersion`); their doc comments are the document's descriptions.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;
use utoipa::ToSchema;

use super::{Registry, RegistryError, SideColumn, bounded, unix_seconds};
use crate::repo::{LookupError, Place};

/// A prompt's description (schema 4): an older database lists none.
const DESCRIPTIONS: SideColumn = SideColumn {
    since: 4,
    table: "prompt_descriptions",
    column: "description",
    sql_type: "text",
};

/// Environment pins by `(service, name)`, then by environment.
pub type PinsByPrompt = BTreeMap<(String, String), BTreeMap<String, EnvironmentPin>>;

/// Which prompts to list; every filter left `None` lets all through.
#[derive(Debug, Clone, Default)]
pub struct PromptFilter {
    /// Only this service's prompts.
    pub service: Option<String>,
    /// Only the prompts the environments file pins in this environment.
    pub environment: Option<String>,
    /// Only the prompts whose name holds this text, ignoring case.
    pub name_contains: Option<String>,
    /// Only the prompts of this source (the repository that published them).
    pub source: Option<String>,
}

/// One environment's pin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = Pin)]
pub struct EnvironmentPin {
    /// The version (null: latest).
    pub version: Option<u32>,
    /// The model (null: the prompt's own).
    pub model: Option<String>,
}

/// A prompt in the list.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = PromptListItem)]
pub struct ListedPrompt {
    /// The source (repository) that published it; empty for a registry synced before
    /// sources.
    pub source: String,
    /// The service.
    pub service: String,
    /// The name.
    pub name: String,
    /// The latest version.
    pub latest_version: u32,
    /// The latest version's model.
    pub model: String,
    /// What the prompt is for (its file's `description` at the synced commit).
    pub description: Option<String>,
    /// When the latest version was committed, seconds since the epoch.
    pub updated_at: Option<i64>,
    /// Whether the prompt is deleted at the synced commit.
    pub archived: bool,
    /// The environments that pin it: environment to version (null: latest) and model
    /// (null: the prompt's own). An environment not listed runs the latest version.
    pub environments: BTreeMap<String, EnvironmentPin>,
}

/// One version of a prompt.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = PromptVersion)]
pub struct ListedVersion {
    /// The version number.
    pub version: u32,
    /// The commit that made it.
    pub commit_sha: String,
    /// The commit's author.
    pub created_by: Option<String>,
    /// The commit's time, seconds since the epoch.
    pub created_at: Option<i64>,
    /// The commit's message.
    pub commit_message: Option<String>,
    /// The environments that run this version, sorted: those that pin it, and, for the
    /// latest version, those that pin `latest` or do not mention the prompt.
    pub environments: Vec<String>,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The entries, at most the page's limit.
    pub entries: Vec<T>,
    /// Whether entries follow the last one.
    pub more: bool,
}

impl<T> Page<T> {
    /// The first `limit` of `entries`, read with one more to learn whether more follow.
    fn of(mut entries: Vec<T>, limit: u32) -> Page<T> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let more = entries.len() > limit;
        entries.truncate(limit);
        Page { entries, more }
    }

    /// The same page, each entry turned by `entry`.
    fn map<U>(self, entry: impl FnMut(T) -> U) -> Page<U> {
        Page {
            entries: self.entries.into_iter().map(entry).collect(),
            more: self.more,
        }
    }
}

/// Asks for one row more than `limit`, to learn whether a page follows.
fn one_more(limit: u32) -> i64 {
    i64::from(limit) + 1
}

impl Registry {
    /// Up to `limit` prompts that pass `filter`, in `(service, name)` order, after the
    /// prompt `after` when it is given; within [`super::Timeouts::query`].
    pub async fn list_prompts(
        &self,
        filter: &PromptFilter,
        after: Option<&(String, String)>,
        limit: u32,
    ) -> Result<Page<ListedPrompt>, RegistryError> {
        let description = self.side_column(&DESCRIPTIONS, "latest");
        // A database synced before sources (schema 4 and older) holds the unnamed one.
        let source = if self.schema >= super::SOURCES_SCHEMA {
            "p.source"
        } else {
            "''::text"
        };
        let sql = format!(
            "WITH latest AS (
               SELECT DISTINCT ON (service, name) service, name, version, model, created_at, archived,
                 {source} AS source
               FROM prompts p
               WHERE ($1::text IS NULL OR p.service = $1)
                 AND ($7::text IS NULL OR {source} = $7)
                 AND ($2::text IS NULL OR strpos(lower(p.name), lower($2)) > 0)
                 AND ($3::text IS NULL OR EXISTS (SELECT 1 FROM prompt_environments e
                      WHERE e.service = p.service AND e.name = p.name AND e.environment = $3))
                 AND ($4::text IS NULL OR (p.service, p.name) > ($4::text, $5::text))
               ORDER BY service, name, version DESC)
             SELECT service, name, version, model, created_at, archived, {description}, source
             FROM latest ORDER BY service, name LIMIT $6"
        );
        let (after_service, after_name) = match after {
            Some((service, name)) => (Some(service.as_str()), Some(name.as_str())),
            None => (None, None),
        };
        bounded(async {
            let rows = self
                .client
                .query(
                    &sql,
                    &[
                        &filter.service,
                        &filter.name_contains,
                        &filter.environment,
                        &after_service,
                        &after_name,
                        &one_more(limit),
                        &filter.source,
                    ],
                )
                .await?;
            let page = Page::of(rows, limit);
            let keys: Vec<(String, String)> = page
                .entries
                .iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect();
            let mut pins = self.pins(&keys).await?;
            Ok(page.map(|row| {
                let service: String = row.get(0);
                let name: String = row.get(1);
                let version: i32 = row.get(2);
                let updated: Option<SystemTime> = row.get(4);
                let environments = pins
                    .remove(&(service.clone(), name.clone()))
                    .unwrap_or_default();
                ListedPrompt {
                    source: row.get(7),
                    service,
                    name,
                    latest_version: u32::try_from(version).unwrap_or(0),
                    model: row.get(3),
                    description: row.get(6),
                    updated_at: updated.map(unix_seconds),
                    archived: row.get(5),
                    environments,
                }
            }))
        })
        .await
    }

    /// The environment pins of `prompts` (`(service, name)`), by prompt; a prompt no
    /// environment pins is left out.
    pub async fn pins(&self, prompts: &[(String, String)]) -> Result<PinsByPrompt, RegistryError> {
        let (services, names): (Vec<&str>, Vec<&str>) = prompts
            .iter()
            .map(|(service, name)| (service.as_str(), name.as_str()))
            .unzip();
        let pins = self
            .client
            .query(
                "SELECT e.service, e.name, e.environment, e.version, e.model
                 FROM prompt_environments e
                 JOIN unnest($1::text[], $2::text[]) AS k(service, name)
                   ON k.service = e.service AND k.name = e.name
                 ORDER BY e.environment",
                &[&services, &names],
            )
            .await?;
        let mut by_prompt = PinsByPrompt::new();
        for row in &pins {
            let version: Option<i32> = row.get(3);
            by_prompt
                .entry((row.get(0), row.get(1)))
                .or_default()
                .insert(
                    row.get(2),
                    EnvironmentPin {
                        version: version.and_then(|v| u32::try_from(v).ok()),
                        model: row.get(4),
                    },
                );
        }
        Ok(by_prompt)
    }

    /// Up to `limit` versions of `service/name`, newest first, below version `before`
    /// when it is given; within [`super::Timeouts::query`].
    pub async fn list_versions(
        &self,
        service: &str,
        name: &str,
        before: Option<u32>,
        limit: u32,
    ) -> Result<Page<ListedVersion>, RegistryError> {
        let before = before.map(|v| i32::try_from(v).unwrap_or(i32::MAX));
        bounded(async {
            // `service` may be `source:service`.
            let query = format!("{service}/{name}");
            let owned = match super::sources::split_source(&query) {
                Some(_) => Some(self.identity(&query).await?),
                None => None,
            };
            let (service, name) = owned
                .as_ref()
                .map_or((service, name), |(s, n)| (s.as_str(), n.as_str()));
            let Some(latest) = self.latest_version(service, name).await? else {
                // The same error, with a suggestion, as reading the prompt.
                self.identity(&format!("{service}/{name}")).await?;
                return Err(LookupError::NotFound {
                    query: format!("{service}/{name}"),
                    place: Place::Registry,
                    suggestion: None,
                }
                .into());
            };
            let rows = self
                .client
                .query(
                    "SELECT version, commit_sha, created_by, created_at, commit_message FROM prompts
                     WHERE service = $1 AND name = $2 AND ($3::int IS NULL OR version < $3)
                     ORDER BY version DESC LIMIT $4",
                    &[&service, &name, &before, &one_more(limit)],
                )
                .await?;
            let running = self.running(service, name, latest).await?;
            Ok(Page::of(rows, limit).map(|row| {
                let version: i32 = row.get(0);
                let created_at: Option<SystemTime> = row.get(3);
                ListedVersion {
                    version: u32::try_from(version).unwrap_or(0),
                    commit_sha: row.get(1),
                    created_by: row.get(2),
                    created_at: created_at.map(unix_seconds),
                    commit_message: row.get(4),
                    environments: running
                        .iter()
                        .filter(|(_, runs)| *runs == version)
                        .map(|(environment, _)| environment.clone())
                        .collect(),
                }
            }))
        })
        .await
    }

    /// Every environment the registry knows, with the version it runs `service/name` at:
    /// its pin, or `latest` without a pin or with a pin that names no version.
    async fn running(
        &self,
        service: &str,
        name: &str,
        latest: i32,
    ) -> Result<Vec<(String, i32)>, RegistryError> {
        let rows = self
            .client
            .query(
                "SELECT k.environment, e.version
                 FROM (SELECT DISTINCT environment FROM prompt_environments) k
                 LEFT JOIN prompt_environments e
                   ON e.environment = k.environment AND e.service = $1 AND e.name = $2
                 ORDER BY k.environment",
                &[&service, &name],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| {
                let pinned: Option<i32> = row.get(1);
                (row.get(0), pinned.unwrap_or(latest))
            })
            .collect())
    }
}
