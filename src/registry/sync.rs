//! `promptctl sync`: publishing a branch's history into the registry.
//!
//! One sync is one transaction under its source's advisory lock: a sync killed at any
//! point leaves the database as it was, two syncs of one source at once run one after the
//! other, and syncs of different sources run side by side, each reading, writing and
//! deleting its own source's rows only ([`super::sources`]). It is incremental:
//! `sync_state` remembers the last synced commit per source and branch, and only the
//! versions made by commits after it are sent (plus the archived flags, the tip's test cases
//! and the environments, which are small). Rows are bulk-loaded with binary `COPY` into
//! temporary tables and merged with `INSERT ... ON CONFLICT ... WHERE ... IS DISTINCT FROM`,
//! so syncing the same history twice changes no row; an empty registry is loaded with
//! `COPY` straight into `prompts`.
//!
//! Test cases are not versioned (SPEC section 2): each sync stores the tip's test cases
//! under each prompt's latest version, so an older version keeps the tests it had when it
//! was last the latest one synced.
//!
//! What the registry cannot store ([`super::columns`]: a NUL character, a name, service or
//! model over its column) is refused at the tip (by `check`, which runs first) but only
//! skipped in the history: an old version that does not fit, every version of a prompt
//! whose identity does not fit, and what hangs on them (an environment pin to a skipped
//! version, the tip's tests of a skipped latest version) are left out and listed in
//! [`SyncSummary::skipped`] with the reason; the rest is published. The published versions
//! keep their history numbers, so a skipped version is a gap (v1, v3): the registry's
//! numbers stay those of `log`, `show`, the environments file and earlier syncs.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use git2::{Oid, Repository};
use serde::Serialize;
use tokio_postgres::Client;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use super::{RegistryError, columns, test_id, version_id};
use crate::config::Config;
use crate::history::{CommitInfo, History, PromptHistory, Version};
use crate::repo::{Body, PromptId, Snapshot};

/// The `prompts` columns, in COPY order.
const PROMPT_COLUMNS: &str = "id, name, service, version, template, model, parameters, created_at, \
     created_by, commit_sha, commit_message, archived, template_format, variables, partials, source";

/// What the branch's tip holds besides the history: its files (for `check` and the test
/// cases) and its environments file.
#[derive(Debug)]
pub struct TipSource {
    /// The tip's prompts folder.
    pub snapshot: Snapshot,
    /// The tip's environments file, when it has one.
    pub environments: Option<String>,
}

/// Reads the prompts folder and the environments file of commit `tip`.
pub fn tip_source(config: &Config, tip: &str) -> Result<TipSource, RegistryError> {
    let snapshot = crate::history::snapshot_at(config, tip)?;
    let repo = Repository::discover(&config.root)?;
    let workdir = repo
        .workdir()
        .map(|dir| dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf()));
    let file = config.root.join(&config.settings.environments);
    let inside = match &workdir {
        Some(workdir) => file
            .strip_prefix(workdir)
            .unwrap_or(&config.settings.environments),
        None => &config.settings.environments,
    };
    let tree = repo.find_commit(Oid::from_str(tip)?)?.tree()?;
    let environments = match tree.get_path(inside) {
        Ok(entry) => match entry.to_object(&repo)?.into_blob() {
            Ok(blob) => Some(String::from_utf8_lossy(blob.content()).into_owned()),
            Err(_) => None,
        },
        Err(_) => None,
    };
    Ok(TipSource {
        snapshot,
        environments,
    })
}

/// Something of the history the registry cannot store, left out of a sync.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    /// The prompt's service.
    pub service: String,
    /// The prompt's name.
    pub name: String,
    /// The version left out; `None` when the whole prompt is (its identity does not fit).
    pub version: Option<u32>,
    /// The commit that made the version.
    pub commit: Option<String>,
    /// The environment whose pin was left out, for a pin.
    pub environment: Option<String>,
    /// Why, e.g. "the template holds a NUL character ...".
    pub reason: String,
}

impl Skipped {
    /// The prompt `id` (or its `version`) left out, for `reason`.
    fn prompt(id: &PromptId, version: Option<u32>, reason: String) -> Skipped {
        Skipped {
            service: id.service.clone(),
            name: id.name.clone(),
            version,
            commit: None,
            environment: None,
            reason,
        }
    }
}

/// What a sync leaves out because the registry cannot store it ([`super::columns`]
/// decides, as it does for `check`): whole prompts whose identity does not fit, single
/// versions whose definition does not, and what hangs on them.
#[derive(Debug, Default)]
struct Exclusions<'h> {
    /// Prompts whose name or service does not fit, with why.
    prompts: BTreeMap<&'h PromptId, String>,
    /// Versions whose definition does not fit (among those examined), with why.
    versions: HashMap<(&'h PromptId, u32), String>,
}

impl<'h> Exclusions<'h> {
    /// The prompts of `history` whose identity does not fit.
    fn of(history: &'h History) -> Exclusions<'h> {
        let prompts = history
            .prompts
            .keys()
            .filter_map(|id| {
                let problems = columns::identity_problems(id);
                (!problems.is_empty()).then(|| (id, join(&problems)))
            })
            .collect();
        Exclusions {
            prompts,
            versions: HashMap::new(),
        }
    }

    /// Examines `version` of `prompt` (its definition must be loadable); returns whether
    /// it is left out.
    fn examine(
        &mut self,
        prompt: &'h PromptHistory,
        version: &Version,
    ) -> Result<bool, RegistryError> {
        if self.prompts.contains_key(&prompt.id) {
            return Ok(true);
        }
        let problems = columns::definition_problems(&*version.definition()?);
        if problems.is_empty() {
            return Ok(false);
        }
        self.versions
            .insert((&prompt.id, version.number), join(&problems));
        Ok(true)
    }

    /// Whether `version` of `id` was left out (as far as examined).
    fn excludes(&self, id: &PromptId, version: u32) -> bool {
        self.prompts.contains_key(id) || self.versions.contains_key(&(id, version))
    }
}

/// The problems as one sentence.
fn join(problems: &[columns::Unfit]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// How to sync.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// The source (repository) synced: every row written carries it, and only its rows
    /// are read, replaced or deleted (README, "Sources").
    pub source: String,
    /// The branch (or revision) synced: with the source, the key of `sync_state`.
    pub branch: String,
    /// Do everything, count what changes, then roll back.
    pub dry_run: bool,
    /// Replace the versions of a rewritten history instead of refusing.
    pub allow_rewrite: bool,
    /// Adopt the rows of a registry synced before sources even when this repository does
    /// not hold the commit they were synced at ([`super::sources::adopt_legacy`]).
    pub adopt_legacy: bool,
    /// Called after every write, just before the commit (a test hook that kills the
    /// process there to prove that a killed sync leaves nothing behind).
    pub before_commit: Option<fn()>,
}

/// A version sent to the registry.
#[derive(Debug, Clone, Serialize)]
pub struct VersionRef {
    /// The service.
    pub service: String,
    /// The name.
    pub name: String,
    /// The version number.
    pub version: u32,
    /// The commit that made it.
    pub commit: String,
}

/// What a sync did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Serialize)]
pub struct SyncSummary {
    /// The source synced.
    pub source: String,
    /// Whether this sync adopted the rows of a registry synced before sources.
    pub adopted: bool,
    /// The branch synced.
    pub branch: String,
    /// The commit synced.
    pub commit: String,
    /// The commit synced before, if any.
    pub previous: Option<String>,
    /// Whether nothing was written because of `dry_run`.
    pub dry_run: bool,
    /// Whether the registry was already at this commit.
    pub up_to_date: bool,
    /// Whether the previous commit was no longer on the branch (with `allow_rewrite`).
    pub rewritten: bool,
    /// Version rows inserted.
    pub versions_added: u64,
    /// Version rows whose content changed (a rewritten history, a registry synced from
    /// elsewhere).
    pub versions_updated: u64,
    /// Version rows deleted because a rewrite removed them.
    pub versions_removed: u64,
    /// Version rows whose archived flag changed.
    pub archived_changed: u64,
    /// Test rows inserted or changed.
    pub tests_changed: u64,
    /// Test rows deleted.
    pub tests_removed: u64,
    /// Environment rows inserted, changed or deleted.
    pub environments_changed: u64,
    /// `prompt_monitors` rows (a prompt's monitor assertions) inserted, changed or deleted.
    pub monitors_changed: u64,
    /// Prompts in the history.
    pub prompts: usize,
    /// Versions in the history.
    pub versions: usize,
    /// The versions sent: those made after the previous synced commit.
    pub sent: Vec<VersionRef>,
    /// What was left out because the registry cannot store it (with why): versions of
    /// the history holding a NUL character or a model over the column's length, prompts
    /// whose name or service is too long, and the test cases, monitor assertions and
    /// environment pins that hang on them. The other versions keep their numbers.
    pub skipped: Vec<Skipped>,
    /// The prompts (service, name) whose stored versions, archived flags, tests,
    /// environment pins or monitor assertions changed: what the notification names.
    #[serde(skip)]
    pub changed: BTreeSet<(String, String)>,
    /// Whether readers must drop everything they cached (a migration, an adoption).
    #[serde(skip)]
    pub everything_changed: bool,
}

impl SyncSummary {
    /// A summary of nothing done yet: syncing `history` at `commit` as `options` say.
    fn new(history: &History, options: &SyncOptions, commit: &str) -> SyncSummary {
        SyncSummary {
            source: options.source.clone(),
            adopted: false,
            branch: options.branch.clone(),
            commit: commit.to_owned(),
            previous: None,
            dry_run: options.dry_run,
            up_to_date: false,
            rewritten: false,
            versions_added: 0,
            versions_updated: 0,
            versions_removed: 0,
            archived_changed: 0,
            tests_changed: 0,
            tests_removed: 0,
            environments_changed: 0,
            monitors_changed: 0,
            prompts: history.prompts.len(),
            versions: history.prompts.values().map(|p| p.versions.len()).sum(),
            sent: Vec::new(),
            skipped: Vec::new(),
            changed: BTreeSet::new(),
            everything_changed: false,
        }
    }
}

/// The commits on `tip`'s first-parent chain after `stored`, or `None` when `stored` is
/// not on that chain (the history was rewritten).
fn commits_after(
    repo: &Repository,
    tip: Oid,
    stored: &str,
) -> Result<Option<HashSet<String>>, RegistryError> {
    let Ok(stored) = Oid::from_str(stored) else {
        return Ok(None);
    };
    let mut after = HashSet::new();
    let mut next = Some(tip);
    while let Some(id) = next {
        if id == stored {
            return Ok(Some(after));
        }
        after.insert(id.to_string());
        next = repo.find_commit(id)?.parent_id(0).ok();
    }
    Ok(None)
}

/// Publishes `history` (read at `history.tip`) into the registry as `options.source`: the
/// versions after the source's last synced commit, the archived flags, the tip's test
/// cases and environments. Applies the schema's pending migrations first, in the same
/// transaction. Reads, writes and locks `options.source`'s rows only, and refuses
/// ([`RegistryError::Owned`]) prompts another source owns.
pub async fn sync(
    client: &mut Client,
    config: &Config,
    history: &History,
    tip: &TipSource,
    options: &SyncOptions,
) -> Result<SyncSummary, RegistryError> {
    let mut exclusions = Exclusions::of(history);
    let Some(tip_commit) = history.tip.clone() else {
        return Err(RegistryError::Invalid(format!(
            "branch `{}` has no commits to sync",
            options.branch
        )));
    };
    let repo = Repository::discover(&config.root)?;
    let tip_oid = Oid::from_str(&tip_commit)?;
    let mut summary = SyncSummary::new(history, options, &tip_commit);
    let environments = environment_rows(config, history, tip.environments.as_deref())?;

    let transaction = client.transaction().await?;
    let source = options.source.as_str();
    begin(
        &transaction,
        &repo,
        history,
        &exclusions,
        options,
        &mut summary,
    )
    .await?;
    let previous = summary.previous.clone();
    let source_empty: bool = transaction
        .query_one(
            "SELECT NOT EXISTS (SELECT 1 FROM prompts WHERE source = $1)",
            &[&source],
        )
        .await?
        .get(0);
    // Which commits' versions to send: `None` sends every version (a first sync, an
    // emptied source, a rewrite being replaced).
    let only: Option<HashSet<String>> = match &previous {
        None => None,
        Some(_) if source_empty => None,
        Some(previous) if *previous == tip_commit && !options.allow_rewrite => {
            return up_to_date(transaction, options, &tip.snapshot, &exclusions, summary).await;
        }
        Some(previous) => commits_to_send(&repo, tip_oid, previous, options, &mut summary)?,
    };
    let sent = select_versions(history, only.as_ref(), &mut exclusions, &mut summary)?;
    let environments = publishable_pins(history, environments, &mut exclusions, &mut summary)?;

    let plan = Plan {
        sent,
        environments,
        incremental: only.is_some(),
        source_empty,
    };
    write_rows(
        &transaction,
        source,
        history,
        tip,
        &exclusions,
        &plan,
        &mut summary,
    )
    .await?;
    transaction
        .execute(
            "INSERT INTO sync_state (source, branch, commit_sha) VALUES ($1, $2, $3)
             ON CONFLICT (source, branch) DO UPDATE SET commit_sha = EXCLUDED.commit_sha, synced_at = NOW()",
            &[&source, &options.branch, &tip_commit],
        )
        .await?;
    notify(&transaction, &summary).await?;
    finish(transaction, options, summary).await
}

/// What a sync writes besides what the tip holds.
struct Plan<'h> {
    /// The versions to send.
    sent: Vec<(&'h PromptHistory, &'h Version, &'h CommitInfo)>,
    /// The environment pins to publish.
    environments: Vec<EnvironmentRow>,
    /// Whether only the versions after the previous sync are sent.
    incremental: bool,
    /// Whether the source had no rows before this sync.
    source_empty: bool,
}

/// Writes the source's rows: the versions, archived flags, tests, monitor assertions,
/// descriptions and environment pins (through temporary tables dropped at commit).
async fn write_rows(
    transaction: &tokio_postgres::Transaction<'_>,
    source: &str,
    history: &History,
    tip: &TipSource,
    exclusions: &Exclusions<'_>,
    plan: &Plan<'_>,
    summary: &mut SyncSummary,
) -> Result<(), RegistryError> {
    transaction
        .batch_execute(
            "CREATE TEMP TABLE promptctl_new_prompts (LIKE prompts INCLUDING DEFAULTS) ON COMMIT DROP;
             CREATE TEMP TABLE promptctl_new_tests (LIKE prompt_tests INCLUDING DEFAULTS) ON COMMIT DROP;
             CREATE TEMP TABLE promptctl_state (service TEXT NOT NULL, name TEXT NOT NULL,
               archived BOOLEAN NOT NULL, latest_id UUID, in_tip BOOLEAN NOT NULL) ON COMMIT DROP;
             CREATE TEMP TABLE promptctl_env (LIKE prompt_environments INCLUDING DEFAULTS) ON COMMIT DROP;",
        )
        .await?;
    let sent = &plan.sent;
    merge_versions(
        transaction,
        source,
        plan.source_empty,
        history,
        sent,
        summary,
    )
    .await?;
    // The archived flags and the tip's test cases.
    copy_state(transaction, history, &tip.snapshot, exclusions).await?;
    if plan.incremental {
        summary.archived_changed = update_archived(
            transaction,
            source,
            history,
            sent,
            exclusions,
            &mut summary.changed,
        )
        .await?;
    }
    merge_tests(transaction, source, history, tip, exclusions, summary).await?;
    // The monitor assertions and descriptions at the tip.
    sync_tip_extras(transaction, source, &tip.snapshot, exclusions, summary).await?;
    summary.environments_changed = merge_environments(
        transaction,
        source,
        &plan.environments,
        &mut summary.changed,
    )
    .await?;
    if summary.rewritten {
        super::sources::release_unused(transaction, source).await?;
    }
    Ok(())
}

/// A sync at the source's synced commit: writes what the registry may lack of the tip (a
/// registry synced before it held monitor assertions, migration 3, or descriptions,
/// migration 4), and commits all the same (the pending migrations, an adoption).
async fn up_to_date(
    transaction: tokio_postgres::Transaction<'_>,
    options: &SyncOptions,
    snapshot: &Snapshot,
    exclusions: &Exclusions<'_>,
    mut summary: SyncSummary,
) -> Result<SyncSummary, RegistryError> {
    summary.up_to_date = true;
    sync_tip_extras(
        &transaction,
        &options.source,
        snapshot,
        exclusions,
        &mut summary,
    )
    .await?;
    if summary.everything_changed || summary.monitors_changed > 0 {
        notify(&transaction, &summary).await?;
    }
    finish(transaction, options, summary).await
}

/// The commits whose versions to send after `previous`: those after it on the tip's
/// first-parent chain, or `None` (every version) for a rewrite `options` allow.
fn commits_to_send(
    repo: &Repository,
    tip: Oid,
    previous: &str,
    options: &SyncOptions,
    summary: &mut SyncSummary,
) -> Result<Option<HashSet<String>>, RegistryError> {
    match commits_after(repo, tip, previous)? {
        Some(after) => Ok(Some(after)),
        None if options.allow_rewrite => {
            summary.rewritten = true;
            Ok(None)
        }
        None => Err(RegistryError::Rewritten {
            branch: options.branch.clone(),
            commit: previous.to_owned(),
        }),
    }
}

/// The start of a sync, in its transaction: the pending migrations, `options.source`'s
/// lock, the adoption of the unnamed source's rows, the claim on the history's prompts
/// and the source's previous synced commit (into `summary`).
async fn begin(
    transaction: &tokio_postgres::Transaction<'_>,
    repo: &Repository,
    history: &History,
    exclusions: &Exclusions<'_>,
    options: &SyncOptions,
    summary: &mut SyncSummary,
) -> Result<(), RegistryError> {
    let source = options.source.as_str();
    // In the same transaction, so a dry run leaves even a missing schema missing.
    let migrated = super::migrations::migrate_in(transaction).await?;
    super::sources::lock(transaction, source).await?;
    let (services, names): (Vec<String>, Vec<String>) = history
        .prompts
        .keys()
        .filter(|id| !exclusions.prompts.contains_key(id))
        .map(|id| (id.service.clone(), id.name.clone()))
        .unzip();
    let legacy = super::sources::Legacy {
        source,
        force: options.adopt_legacy,
        services: &services,
        names: &names,
    };
    summary.adopted = super::sources::adopt_legacy(transaction, repo, &legacy).await?;
    summary.everything_changed = migrated > 0 || summary.adopted;
    super::sources::claim(transaction, source, &services, &names).await?;
    summary.previous = transaction
        .query_opt(
            "SELECT commit_sha FROM sync_state WHERE source = $1 AND branch = $2",
            &[&source, &options.branch],
        )
        .await?
        .map(|row| row.get(0));
    Ok(())
}

/// Sends the sync's notification(s) on [`super::cache::CHANNEL`]: which source and
/// which prompts changed ([`super::notice::Notice`]), in payloads under PostgreSQL's limit.
async fn notify(
    transaction: &tokio_postgres::Transaction<'_>,
    summary: &SyncSummary,
) -> Result<(), RegistryError> {
    let changed = (!summary.everything_changed).then_some(&summary.changed);
    let head = super::notice::NoticeHead {
        source: summary.source.clone(),
        branch: summary.branch.clone(),
        commit: summary.commit.clone(),
        previous: summary.previous.clone(),
        versions_added: summary.versions_added,
    };
    for payload in super::notice::notice_payloads(&head, changed) {
        transaction
            .execute(
                &format!("SELECT pg_notify('{}', $1)", super::cache::CHANNEL),
                &[&payload],
            )
            .await?;
    }
    Ok(())
}

/// Ends the sync: rolls back a dry run, else runs the test hook and commits.
async fn finish(
    transaction: tokio_postgres::Transaction<'_>,
    options: &SyncOptions,
    summary: SyncSummary,
) -> Result<SyncSummary, RegistryError> {
    if options.dry_run {
        transaction.rollback().await?;
        return Ok(summary);
    }
    if let Some(hook) = options.before_commit {
        hook();
    }
    transaction.commit().await?;
    Ok(summary)
}

/// Writes the versions `sent`: straight into `prompts` when the source has none (and is
/// not being rewritten), else through `promptctl_new_prompts`, merged without touching
/// equal rows (and, for a rewrite, deleting the source's rows whose commit changed).
async fn merge_versions(
    transaction: &tokio_postgres::Transaction<'_>,
    source: &str,
    source_empty: bool,
    history: &History,
    sent: &[(&PromptHistory, &Version, &CommitInfo)],
    summary: &mut SyncSummary,
) -> Result<(), RegistryError> {
    let direct = source_empty && !summary.rewritten;
    let table = if direct {
        "prompts"
    } else {
        "promptctl_new_prompts"
    };
    let copied = copy_versions(transaction, table, source, history, sent).await?;
    if direct {
        summary.versions_added = copied;
        for (prompt, _, _) in sent {
            summary
                .changed
                .insert((prompt.id.service.clone(), prompt.id.name.clone()));
        }
        return Ok(());
    }
    if summary.rewritten {
        remove_rewritten(transaction, source, summary).await?;
    }
    let set: Vec<String> = PROMPT_COLUMNS
        .split(", ")
        .filter(|c| *c != "id")
        .map(str::to_owned)
        .collect();
    let list = |prefix: &str| {
        set.iter()
            .map(|c| format!("{prefix}{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    // The guard on `source` never fails while `prompt_owners` holds (ids are per
    // service/name): it keeps another source's rows out of reach all the same.
    let sql = format!(
        "WITH up AS (
           INSERT INTO prompts ({PROMPT_COLUMNS}) SELECT {PROMPT_COLUMNS} FROM promptctl_new_prompts
           ON CONFLICT (id) DO UPDATE SET ({cols}) = ({excluded})
           WHERE prompts.source = EXCLUDED.source AND ({current}) IS DISTINCT FROM ({excluded})
           RETURNING service, name, (xmax = 0) AS inserted)
         SELECT service, name, count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted)
         FROM up GROUP BY service, name",
        cols = list(""),
        excluded = list("EXCLUDED."),
        current = list("prompts."),
    );
    for row in transaction.query(&sql, &[]).await? {
        let inserted: i64 = row.get(2);
        let updated: i64 = row.get(3);
        summary.versions_added += u64::try_from(inserted).unwrap_or(0);
        summary.versions_updated += u64::try_from(updated).unwrap_or(0);
        summary.changed.insert((row.get(0), row.get(1)));
    }
    Ok(())
}

/// A rewrite: deletes the source's version rows (and their tests) that the new history
/// does not hold at the same commit.
async fn remove_rewritten(
    transaction: &tokio_postgres::Transaction<'_>,
    source: &str,
    summary: &mut SyncSummary,
) -> Result<(), RegistryError> {
    summary.tests_removed += transaction
        .execute(
            "DELETE FROM prompt_tests WHERE source = $1 AND prompt_id IN (
               SELECT p.id FROM prompts p WHERE p.source = $1 AND NOT EXISTS (
                 SELECT 1 FROM promptctl_new_prompts n
                 WHERE n.id = p.id AND n.commit_sha = p.commit_sha))",
            &[&source],
        )
        .await?;
    summary.versions_removed = tally(
        transaction,
        "WITH gone AS (
           DELETE FROM prompts p WHERE p.source = $1 AND NOT EXISTS (
             SELECT 1 FROM promptctl_new_prompts n
             WHERE n.id = p.id AND n.commit_sha = p.commit_sha)
           RETURNING service, name)
         SELECT service, name, count(*) FROM gone GROUP BY service, name",
        &[&source],
        &mut summary.changed,
    )
    .await?;
    Ok(())
}

/// Runs `sql`, whose rows are `(service, name, count)`, adding each prompt to `changed`;
/// returns the sum of the counts.
async fn tally(
    transaction: &tokio_postgres::Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    changed: &mut BTreeSet<(String, String)>,
) -> Result<u64, RegistryError> {
    let mut total = 0;
    for row in transaction.query(sql, params).await? {
        let count: i64 = row.get(2);
        total += u64::try_from(count).unwrap_or(0);
        changed.insert((row.get(0), row.get(1)));
    }
    Ok(total)
}

/// Writes the tip's test cases (under each prompt's latest version) and deletes the tests
/// the tip no longer has.
async fn merge_tests(
    transaction: &tokio_postgres::Transaction<'_>,
    source: &str,
    history: &History,
    tip: &TipSource,
    exclusions: &Exclusions<'_>,
    summary: &mut SyncSummary,
) -> Result<(), RegistryError> {
    copy_tests(transaction, history, tip, exclusions, &mut summary.skipped).await?;
    summary.tests_changed = tally(
        transaction,
        "WITH up AS (
           INSERT INTO prompt_tests (id, prompt_id, test_input, expected_output, evaluation_criteria, created_at, test_name, source)
           SELECT id, prompt_id, test_input, expected_output, evaluation_criteria, created_at, test_name, $1
           FROM promptctl_new_tests
           ON CONFLICT (id) DO UPDATE SET
             (prompt_id, test_input, expected_output, evaluation_criteria, test_name) =
             (EXCLUDED.prompt_id, EXCLUDED.test_input, EXCLUDED.expected_output, EXCLUDED.evaluation_criteria, EXCLUDED.test_name)
           WHERE prompt_tests.source = EXCLUDED.source
             AND (prompt_tests.prompt_id, prompt_tests.test_input, prompt_tests.expected_output,
                  prompt_tests.evaluation_criteria, prompt_tests.test_name)
             IS DISTINCT FROM
                 (EXCLUDED.prompt_id, EXCLUDED.test_input, EXCLUDED.expected_output,
                  EXCLUDED.evaluation_criteria, EXCLUDED.test_name)
           RETURNING prompt_id)
         SELECT p.service, p.name, count(*) FROM up JOIN prompts p ON p.id = up.prompt_id
         GROUP BY p.service, p.name",
        &[&source],
        &mut summary.changed,
    )
    .await?;
    summary.tests_removed += tally(
        transaction,
        "WITH gone AS (
           DELETE FROM prompt_tests t USING promptctl_state s
           WHERE t.source = $1 AND s.in_tip AND t.prompt_id = s.latest_id
             AND NOT EXISTS (SELECT 1 FROM promptctl_new_tests n WHERE n.id = t.id)
           RETURNING s.service, s.name)
         SELECT service, name, count(*) FROM gone GROUP BY service, name",
        &[&source],
        &mut summary.changed,
    )
    .await?;
    Ok(())
}

/// Writes the source's environment rows and deletes those the file no longer has;
/// returns the rows inserted, changed or deleted.
async fn merge_environments(
    transaction: &tokio_postgres::Transaction<'_>,
    source: &str,
    environments: &[EnvironmentRow],
    changed: &mut BTreeSet<(String, String)>,
) -> Result<u64, RegistryError> {
    copy_environments(transaction, environments).await?;
    let upserted = tally(
        transaction,
        "WITH up AS (
           INSERT INTO prompt_environments (service, name, environment, version, model,
             canary_version, canary_model, canary_weight, canary_since, source)
           SELECT service, name, environment, version, model, canary_version, canary_model,
             canary_weight, canary_since, $1 FROM promptctl_env
           ON CONFLICT (service, name, environment) DO UPDATE SET
             (version, model, canary_version, canary_model, canary_weight, canary_since) =
             (EXCLUDED.version, EXCLUDED.model, EXCLUDED.canary_version, EXCLUDED.canary_model,
              EXCLUDED.canary_weight, EXCLUDED.canary_since)
           WHERE prompt_environments.source = EXCLUDED.source
             AND (prompt_environments.version, prompt_environments.model,
                  prompt_environments.canary_version, prompt_environments.canary_model,
                  prompt_environments.canary_weight, prompt_environments.canary_since)
               IS DISTINCT FROM (EXCLUDED.version, EXCLUDED.model, EXCLUDED.canary_version,
                  EXCLUDED.canary_model, EXCLUDED.canary_weight, EXCLUDED.canary_since)
           RETURNING service, name)
         SELECT service, name, count(*) FROM up GROUP BY service, name",
        &[&source],
        changed,
    )
    .await?;
    let deleted = tally(
        transaction,
        "WITH gone AS (
           DELETE FROM prompt_environments e WHERE e.source = $1 AND NOT EXISTS (
             SELECT 1 FROM promptctl_env n
             WHERE n.service = e.service AND n.name = e.name AND n.environment = e.environment)
           RETURNING service, name)
         SELECT service, name, count(*) FROM gone GROUP BY service, name",
        &[&source],
        changed,
    )
    .await?;
    Ok(upserted + deleted)
}

/// The versions to send: those made by the commits in `only` (every version when `None`),
/// their definitions loaded, less those the registry cannot store (recorded in
/// `summary.skipped`, once per version, or once per prompt whose identity does not fit).
fn select_versions<'h>(
    history: &'h History,
    only: Option<&HashSet<String>>,
    exclusions: &mut Exclusions<'h>,
    summary: &mut SyncSummary,
) -> Result<Vec<(&'h PromptHistory, &'h Version, &'h CommitInfo)>, RegistryError> {
    let candidates: Vec<(&PromptHistory, &Version, &CommitInfo)> = history
        .prompts
        .values()
        .flat_map(|prompt| {
            prompt.versions.iter().filter_map(move |version| {
                let commit = version.commit.as_deref()?;
                match only {
                    Some(after) if !after.contains(&commit.id) => None,
                    _ => Some((prompt, version, commit)),
                }
            })
        })
        .collect();
    // Every definition sent at once: from the definitions store, or parsed on every core.
    history.load_definitions(
        candidates
            .iter()
            .filter(|(prompt, _, _)| !exclusions.prompts.contains_key(&prompt.id))
            .map(|(_, version, _)| *version),
    )?;
    let mut sent = Vec::with_capacity(candidates.len());
    let mut reported: HashSet<&PromptId> = HashSet::new();
    for (prompt, version, commit) in candidates {
        if !exclusions.examine(prompt, version)? {
            sent.push((prompt, version, commit));
            continue;
        }
        let whole = exclusions.prompts.get(&prompt.id);
        if whole.is_some() && !reported.insert(&prompt.id) {
            continue;
        }
        summary.skipped.push(Skipped {
            service: prompt.id.service.clone(),
            name: prompt.id.name.clone(),
            version: whole.is_none().then_some(version.number),
            commit: whole.is_none().then(|| commit.id.clone()),
            environment: None,
            reason: whole
                .or_else(|| exclusions.versions.get(&(&prompt.id, version.number)))
                .cloned()
                .unwrap_or_default(),
        });
    }
    summary.sent = sent
        .iter()
        .map(|(prompt, version, commit)| VersionRef {
            service: prompt.id.service.clone(),
            name: prompt.id.name.clone(),
            version: version.number,
            commit: commit.id.clone(),
        })
        .collect();
    Ok(sent)
}

/// The environment rows the registry can store: not those of a prompt or a pinned version
/// left out (each recorded in `summary.skipped`). The environment names and models are the
/// tip's, refused as the file is read ([`environment_rows`]).
fn publishable_pins<'h>(
    history: &'h History,
    rows: Vec<EnvironmentRow>,
    exclusions: &mut Exclusions<'h>,
    summary: &mut SyncSummary,
) -> Result<Vec<EnvironmentRow>, RegistryError> {
    let pinned: Vec<(&PromptHistory, &Version)> = rows
        .iter()
        .flat_map(|row| {
            let canary = row.canary.as_ref().and_then(|c| c.version);
            [row.version, canary]
                .into_iter()
                .flatten()
                .filter_map(|number| {
                    let prompt = history
                        .prompts
                        .get(&PromptId::new(&row.service, &row.name))?;
                    Some((prompt, prompt.version(u32::try_from(number).ok()?)?))
                })
        })
        .collect();
    history.load_definitions(pinned.iter().map(|(_, version)| *version))?;
    for (prompt, version) in pinned {
        exclusions.examine(prompt, version)?;
    }
    let mut kept = Vec::with_capacity(rows.len());
    for mut row in rows {
        let id = PromptId::new(&row.service, &row.name);
        let canary_version = row.canary.as_ref().and_then(|c| c.version);
        if let Some(number) = canary_version.and_then(|v| u32::try_from(v).ok())
            && let Some(why) = exclusions.versions.get(&(&id, number))
        {
            summary.skipped.push(Skipped {
                service: row.service.clone(),
                name: row.name.clone(),
                version: Some(number),
                commit: None,
                environment: Some(row.environment.clone()),
                reason: format!("its canary is left out: version {number} is left out: {why}"),
            });
            row.canary = None;
        }
        let version = row.version.and_then(|v| u32::try_from(v).ok());
        let reason = exclusions.prompts.get(&id).cloned().or_else(|| {
            let number = version?;
            let why = exclusions.versions.get(&(&id, number))?;
            Some(format!("version {number} is left out: {why}"))
        });
        match reason {
            None => kept.push(row),
            Some(reason) => summary.skipped.push(Skipped {
                service: row.service,
                name: row.name,
                version,
                commit: None,
                environment: Some(row.environment),
                reason,
            }),
        }
    }
    Ok(kept)
}

/// Brings the archived flags of older rows in line with the history, for the prompts whose
/// flag may have changed since the last sync: those with new versions, and those whose
/// latest row's flag differs (deleted or restored without a new version). A full send
/// needs none of this: its merge already compares the flag of every row.
async fn update_archived(
    transaction: &tokio_postgres::Transaction<'_>,
    source: &str,
    history: &History,
    sent: &[(&PromptHistory, &Version, &CommitInfo)],
    exclusions: &Exclusions<'_>,
    changed_prompts: &mut BTreeSet<(String, String)>,
) -> Result<u64, RegistryError> {
    let mut latest_ids = Vec::new();
    let mut by_latest = HashMap::new();
    for (id, prompt) in &history.prompts {
        if exclusions.prompts.contains_key(id) {
            continue;
        }
        if let Some(latest) = prompt.latest() {
            let uuid = version_id(&id.service, &id.name, latest.number);
            latest_ids.push(uuid);
            by_latest.insert(uuid, prompt);
        }
    }
    let rows = transaction
        .query(
            "SELECT id, archived FROM prompts WHERE source = $2 AND id = ANY($1)",
            &[&latest_ids, &source],
        )
        .await?;
    let mut changed: BTreeMap<&PromptId, bool> = BTreeMap::new();
    for row in rows {
        let id: uuid::Uuid = row.get(0);
        let archived: bool = row.get(1);
        if let Some(prompt) = by_latest.remove(&id)
            && prompt.archived != archived
        {
            changed.insert(&prompt.id, prompt.archived);
        }
    }
    // A prompt whose latest version was left out (the registry cannot store it): its
    // newest stored row holds the flag.
    for prompt in by_latest.into_values() {
        let newest = transaction
            .query_opt(
                "SELECT archived FROM prompts WHERE source = $3 AND service = $1 AND name = $2
                 ORDER BY version DESC LIMIT 1",
                &[&prompt.id.service, &prompt.id.name, &source],
            )
            .await?;
        if newest.is_some_and(|row| row.get::<_, bool>(0) != prompt.archived) {
            changed.insert(&prompt.id, prompt.archived);
        }
    }
    for (prompt, _, _) in sent {
        changed.insert(&prompt.id, prompt.archived);
    }
    let mut updated = 0;
    for (id, archived) in changed {
        let rows = transaction
            .execute(
                "UPDATE prompts SET archived = $1
                 WHERE source = $4 AND name = $2 AND service = $3 AND archived IS DISTINCT FROM $1",
                &[&archived, &id.name, &id.service, &source],
            )
            .await?;
        if rows > 0 {
            changed_prompts.insert((id.service.clone(), id.name.clone()));
        }
        updated += rows;
    }
    Ok(updated)
}

/// The tip commit's time (the test cases' `created_at` when first stored).
fn tip_commit_time(history: &History) -> SystemTime {
    history
        .prompts
        .values()
        .flat_map(|p| p.versions.iter())
        .filter_map(|v| v.commit.as_deref())
        .map(|c| c.time)
        .max()
        .map_or_else(SystemTime::now, system_time)
}

/// Seconds since the epoch as a `SystemTime`.
fn system_time(seconds: i64) -> SystemTime {
    // A commit's time is whatever its object says; PostgreSQL's `timestamp` (and
    // `SystemTime` arithmetic) hold less than an `i64` of seconds: years 1 to 9999 it is.
    let seconds = seconds.clamp(-62_135_596_800, 253_402_300_799);
    if seconds >= 0 {
        UNIX_EPOCH + Duration::from_secs(seconds.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs())
    }
}

/// `text` made to fit a column: NUL characters replaced (U+FFFD), cut to `limit`
/// characters when the column has one.
fn fitted(text: &str, limit: Option<usize>) -> std::borrow::Cow<'_, str> {
    if columns::text_problem(text, limit).is_none() {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut owned = text.to_owned();
    columns::clean(&mut owned);
    if let Some(limit) = limit {
        columns::clip(&mut owned, limit);
    }
    std::borrow::Cow::Owned(owned)
}

async fn copy_versions(
    transaction: &tokio_postgres::Transaction<'_>,
    table: &str,
    source: &str,
    history: &History,
    sent: &[(&PromptHistory, &Version, &CommitInfo)],
) -> Result<u64, RegistryError> {
    // The partials of each commit whose versions include some, read once per commit.
    let mut partials_at: std::collections::HashMap<&str, serde_json::Value> =
        std::collections::HashMap::new();
    let sink = transaction
        .copy_in(&format!(
            "COPY {table} ({PROMPT_COLUMNS}) FROM STDIN (FORMAT binary)"
        ))
        .await?;
    let types = [
        Type::UUID,
        Type::VARCHAR,
        Type::VARCHAR,
        Type::INT4,
        Type::TEXT,
        Type::VARCHAR,
        Type::JSONB,
        Type::TIMESTAMP,
        Type::VARCHAR,
        Type::TEXT,
        Type::TEXT,
        Type::BOOL,
        Type::VARCHAR,
        Type::JSONB,
        Type::JSONB,
        Type::TEXT,
    ];
    let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, &types));
    for (prompt, version, commit) in sent {
        let definition = version.definition()?;
        let includes = definition
            .body
            .messages()
            .iter()
            .any(|(_, text)| !crate::render::find_includes(text).is_empty());
        let partials = if includes {
            if !partials_at.contains_key(commit.id.as_str()) {
                let partials = history
                    .partials_at(&commit.id)
                    .map_err(|err| RegistryError::Invalid(format!("partials: {err}")))?;
                partials_at.insert(
                    &commit.id,
                    serde_json::to_value(&*partials).unwrap_or(serde_json::Value::Null),
                );
            }
            partials_at.get(commit.id.as_str())
        } else {
            None
        };
        let id = version_id(&prompt.id.service, &prompt.id.name, version.number);
        let number = i32::try_from(version.number).unwrap_or(i32::MAX);
        let template = definition.body.registry_text();
        let parameters =
            serde_json::to_value(&definition.parameters).unwrap_or(serde_json::Value::Null);
        let variables =
            serde_json::to_value(&definition.variables).unwrap_or(serde_json::Value::Null);
        let created_at = system_time(commit.time);
        // The commit's metadata is not the user's to fix: made to fit rather than refused.
        let created_by = fitted(&commit.author_name, Some(columns::MAX_CREATED_BY));
        let message = fitted(&commit.message, None);
        let format = match definition.body {
            Body::Template(_) => "template",
            Body::Messages(_) => "messages",
        };
        let row: [&(dyn ToSql + Sync); 16] = [
            &id,
            &prompt.id.name,
            &prompt.id.service,
            &number,
            &template,
            &definition.model,
            &parameters,
            &created_at,
            &created_by,
            &commit.id,
            &message,
            &prompt.archived,
            &format,
            &variables,
            &partials,
            &source,
        ];
        writer.as_mut().write(&row).await?;
    }
    Ok(writer.as_mut().finish().await?)
}

async fn copy_state(
    transaction: &tokio_postgres::Transaction<'_>,
    history: &History,
    snapshot: &Snapshot,
    exclusions: &Exclusions<'_>,
) -> Result<(), RegistryError> {
    let in_tip: HashSet<&crate::repo::PromptId> = snapshot
        .prompts
        .iter()
        .filter_map(|p| p.id.as_ref())
        .collect();
    let sink = transaction
        .copy_in(
            "COPY promptctl_state (service, name, archived, latest_id, in_tip) FROM STDIN (FORMAT binary)",
        )
        .await?;
    let types = [Type::TEXT, Type::TEXT, Type::BOOL, Type::UUID, Type::BOOL];
    let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, &types));
    for (id, prompt) in &history.prompts {
        if exclusions.prompts.contains_key(id) {
            continue;
        }
        let latest = prompt
            .latest()
            .map(|v| version_id(&id.service, &id.name, v.number));
        let present = in_tip.contains(id);
        let row: [&(dyn ToSql + Sync); 5] =
            [&id.service, &id.name, &prompt.archived, &latest, &present];
        writer.as_mut().write(&row).await?;
    }
    writer.as_mut().finish().await?;
    Ok(())
}

/// The assertion types whose `value` is an expected output.
const EXPECTED_KINDS: &[&str] = &["exact_match", "contains", "semantic_similarity"];

/// Publishes what the registry holds of the tip alone: its monitor assertions and its
/// descriptions (a sync at an up-to-date tip writes these too).
async fn sync_tip_extras(
    transaction: &tokio_postgres::Transaction<'_>,
    source: &str,
    snapshot: &Snapshot,
    exclusions: &Exclusions<'_>,
    summary: &mut SyncSummary,
) -> Result<(), RegistryError> {
    summary.monitors_changed =
        sync_monitors(transaction, source, snapshot, exclusions, summary).await?;
    sync_descriptions(
        transaction,
        source,
        snapshot,
        exclusions,
        &mut summary.skipped,
    )
    .await
}

/// Writes each prompt's `monitor` assertions at the tip into `prompt_monitors` (rows of
/// prompts without any are deleted); returns the rows inserted, changed or deleted.
/// Assertions the registry cannot store, and those of a prompt left out, are recorded in
/// `skipped` instead.
async fn sync_monitors(
    transaction: &tokio_postgres::Transaction<'_>,
    source: &str,
    snapshot: &Snapshot,
    exclusions: &Exclusions<'_>,
    summary: &mut SyncSummary,
) -> Result<u64, RegistryError> {
    let skipped = &mut summary.skipped;
    let mut services = Vec::new();
    let mut names = Vec::new();
    let mut assertions = Vec::new();
    for loaded in &snapshot.prompts {
        let (Some(id), Some(monitor)) = (&loaded.id, &loaded.file.monitor) else {
            continue;
        };
        if monitor.is_empty() || exclusions.prompts.contains_key(id) {
            continue;
        }
        let plain: Vec<&crate::repo::Assertion> = monitor.iter().map(|a| &a.value).collect();
        if let Some(problem) = plain.iter().find_map(|a| columns::assertion_problem(a)) {
            skipped.push(Skipped::prompt(
                id,
                None,
                format!("its monitor assertions: an assertion {problem}"),
            ));
            continue;
        }
        services.push(id.service.clone());
        names.push(id.name.clone());
        assertions.push(serde_json::to_value(plain).unwrap_or(serde_json::Value::Null));
    }
    let upserted = tally(
        transaction,
        "WITH up AS (
           INSERT INTO prompt_monitors (service, name, assertions, source)
           SELECT s, n, a, $4 FROM unnest($1::text[], $2::text[], $3::jsonb[]) AS k(s, n, a)
           ON CONFLICT (service, name) DO UPDATE SET assertions = EXCLUDED.assertions
           WHERE prompt_monitors.source = EXCLUDED.source
             AND prompt_monitors.assertions IS DISTINCT FROM EXCLUDED.assertions
           RETURNING service, name)
         SELECT service, name, count(*) FROM up GROUP BY service, name",
        &[&services, &names, &assertions, &source],
        &mut summary.changed,
    )
    .await?;
    let deleted = tally(
        transaction,
        "WITH gone AS (
           DELETE FROM prompt_monitors m WHERE m.source = $3 AND NOT EXISTS (
             SELECT 1 FROM unnest($1::text[], $2::text[]) AS k(service, name)
             WHERE k.service = m.service AND k.name = m.name)
           RETURNING service, name)
         SELECT service, name, count(*) FROM gone GROUP BY service, name",
        &[&services, &names, &source],
        &mut summary.changed,
    )
    .await?;
    Ok(upserted + deleted)
}

/// Writes each prompt's `description` at the tip into `prompt_descriptions` (rows of
/// prompts without one are deleted). A description the registry cannot store (a NUL character), and that of a prompt left out,
/// is recorded in `skipped` instead.
async fn sync_descriptions(
    transaction: &tokio_postgres::Transaction<'_>,
    source: &str,
    snapshot: &Snapshot,
    exclusions: &Exclusions<'_>,
    skipped: &mut Vec<Skipped>,
) -> Result<(), RegistryError> {
    let mut services = Vec::new();
    let mut names = Vec::new();
    let mut descriptions = Vec::new();
    for loaded in &snapshot.prompts {
        let (Some(id), Some(description)) = (&loaded.id, &loaded.file.description) else {
            continue;
        };
        if exclusions.prompts.contains_key(id) {
            continue;
        }
        if let Some(problem) = columns::text_problem(description, None) {
            skipped.push(Skipped::prompt(
                id,
                None,
                format!("its description {problem}"),
            ));
            continue;
        }
        services.push(id.service.clone());
        names.push(id.name.clone());
        descriptions.push(description.clone());
    }
    transaction
        .execute(
            "INSERT INTO prompt_descriptions (service, name, description, source)
             SELECT s, n, d, $4 FROM unnest($1::text[], $2::text[], $3::text[]) AS k(s, n, d)
             ON CONFLICT (service, name) DO UPDATE SET description = EXCLUDED.description
             WHERE prompt_descriptions.source = EXCLUDED.source
               AND prompt_descriptions.description IS DISTINCT FROM EXCLUDED.description",
            &[&services, &names, &descriptions, &source],
        )
        .await?;
    transaction
        .execute(
            "DELETE FROM prompt_descriptions d WHERE d.source = $3 AND NOT EXISTS (
               SELECT 1 FROM unnest($1::text[], $2::text[]) AS k(service, name)
               WHERE k.service = d.service AND k.name = d.name)",
            &[&services, &names, &source],
        )
        .await?;
    Ok(())
}

/// Copies the tip's test cases, each under its prompt's latest version, into
/// `promptctl_new_tests`. Those the registry cannot store, and those whose prompt or latest
/// version is left out, are recorded in `skipped` instead.
async fn copy_tests(
    transaction: &tokio_postgres::Transaction<'_>,
    history: &History,
    tip: &TipSource,
    exclusions: &Exclusions<'_>,
    skipped: &mut Vec<Skipped>,
) -> Result<(), RegistryError> {
    let created_at = &tip_commit_time(history);
    let sink = transaction
        .copy_in(
            "COPY promptctl_new_tests (id, prompt_id, test_input, expected_output, evaluation_criteria, created_at, test_name) FROM STDIN (FORMAT binary)",
        )
        .await?;
    let types = [
        Type::UUID,
        Type::UUID,
        Type::TEXT,
        Type::TEXT,
        Type::JSONB,
        Type::TIMESTAMP,
        Type::TEXT,
    ];
    let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, &types));
    for loaded in &tip.snapshot.prompts {
        let Some(id) = &loaded.id else { continue };
        let Some(latest) = history.prompts.get(id).and_then(PromptHistory::latest) else {
            continue;
        };
        let prompt_id = version_id(&id.service, &id.name, latest.number);
        let leave_out = |reason: String| Skipped::prompt(id, Some(latest.number), reason);
        let has_tests = loaded
            .file
            .tests
            .as_ref()
            .is_some_and(|t| !t.value.is_empty());
        if has_tests && exclusions.excludes(id, latest.number) {
            skipped.push(leave_out(
                "its test cases: the version they hang on is left out".to_owned(),
            ));
            continue;
        }
        let Some(tests) = &loaded.file.tests else {
            continue;
        };
        for (index, test) in tests.value.iter().enumerate() {
            let test = &test.value;
            if let Some((_, problem)) = columns::test_problems(test).into_iter().next() {
                let label = test.name.as_deref().map_or_else(
                    || format!("test {}", index + 1),
                    |name| format!("test `{}`", name.escape_debug()),
                );
                skipped.push(leave_out(format!("its {label}: a field {problem}")));
                continue;
            }
            let input = serde_json::to_string(&test.vars).unwrap_or_else(|_| "{}".to_owned());
            let assertions: Vec<&crate::repo::Assertion> =
                test.assert.iter().map(|a| &a.value).collect();
            let expected = assertions
                .iter()
                .find(|a| EXPECTED_KINDS.contains(&a.kind.as_str()))
                .and_then(|a| a.value.as_ref())
                .map(|value| match value {
                    serde_json::Value::String(text) => text.clone(),
                    other => other.to_string(),
                });
            let criteria =
                serde_json::to_value(&assertions).unwrap_or(serde_json::Value::Array(Vec::new()));
            let test_id = test_id(prompt_id, index);
            let row: [&(dyn ToSql + Sync); 7] = [
                &test_id, &prompt_id, &input, &expected, &criteria, created_at, &test.name,
            ];
            writer.as_mut().write(&row).await?;
        }
    }
    writer.as_mut().finish().await?;
    Ok(())
}

/// One row of `prompt_environments`.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvironmentRow {
    /// The prompt's service.
    pub service: String,
    /// The prompt's name.
    pub name: String,
    /// The environment.
    pub environment: String,
    /// The pinned version; `None` for `latest`.
    pub version: Option<i32>,
    /// The model override; `None` for the prompt's own model.
    pub model: Option<String>,
    /// The environment's canary split, when it has one.
    pub canary: Option<CanaryRow>,
}

/// What the canary side of an environment runs (its `canary:` resolved over the
/// environment's own pin) and the share of calls it takes.
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryRow {
    /// The version; `None` for `latest`.
    pub version: Option<i32>,
    /// The model override; `None` for the prompt's own model.
    pub model: Option<String>,
    /// The percentage of calls.
    pub weight: f64,
    /// The time of the commit that last changed the split (`canary status`'s window).
    pub since: Option<SystemTime>,
}

/// The rows of `prompt_environments` from the environments file
/// (`prompts: {PROMPT: {ENV: {version: N | latest, model: M}}}`, SPEC section 1).
pub fn environment_rows(
    config: &Config,
    history: &History,
    text: Option<&str>,
) -> Result<Vec<EnvironmentRow>, RegistryError> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    let file = &config.settings.environments;
    let bad = |what: String| {
        RegistryError::Invalid(format!("{}: {what}", crate::diagnostic::display_path(file)))
    };
    let environments = crate::environments::Environments::parse(file, text).map_err(|d| {
        bad(format!(
            "{}:{}: {}",
            d.position.line, d.position.column, d.message
        ))
    })?;
    let splits_since = match history.tip.as_deref() {
        Some(tip) => crate::environments::split_changes(config, Some(tip))?,
        None => BTreeMap::new(),
    };
    let mut rows = BTreeMap::new();
    for entry in &environments.prompts {
        let prompt = history
            .find(&entry.key)
            .map_err(|err| bad(format!("{err}")))?;
        for environment in &entry.environments {
            if let Some((place, message, _)) = columns::pin_problems(environment).pop() {
                return Err(bad(format!("{}:{}: {message}", place.line, place.column)));
            }
            let number_of = |version: crate::environments::VersionRef| match version {
                crate::environments::VersionRef::Latest => Ok(None),
                crate::environments::VersionRef::Number(number) => {
                    if prompt.version(number).is_none() {
                        return Err(bad(format!(
                            "{}.{}: {} has no version {number}",
                            entry.key, environment.name, prompt.id
                        )));
                    }
                    Ok(i32::try_from(number).ok())
                }
            };
            let version = number_of(environment.pin.version)?;
            let canary = match &environment.canary {
                Some(split) => {
                    let pin = split.canary.pin_over(&environment.pin);
                    let since = splits_since.get(&(entry.key.clone(), environment.name.clone()));
                    Some(CanaryRow {
                        version: number_of(pin.version)?,
                        model: pin.model,
                        weight: split.canary.weight,
                        since: since.map(|at| {
                            SystemTime::UNIX_EPOCH
                                + std::time::Duration::from_secs(at.time.max(0).unsigned_abs())
                        }),
                    })
                }
                None => None,
            };
            rows.insert(
                (prompt.id.clone(), environment.name.clone()),
                EnvironmentRow {
                    service: prompt.id.service.clone(),
                    name: prompt.id.name.clone(),
                    environment: environment.name.clone(),
                    version,
                    model: environment.pin.model.clone(),
                    canary,
                },
            );
        }
    }
    Ok(rows.into_values().collect())
}

async fn copy_environments(
    transaction: &tokio_postgres::Transaction<'_>,
    rows: &[EnvironmentRow],
) -> Result<(), RegistryError> {
    let sink = transaction
        .copy_in(
            "COPY promptctl_env (service, name, environment, version, model, canary_version, \
             canary_model, canary_weight, canary_since) FROM STDIN (FORMAT binary)",
        )
        .await?;
    let types = [
        Type::VARCHAR,
        Type::VARCHAR,
        Type::VARCHAR,
        Type::INT4,
        Type::VARCHAR,
        Type::INT4,
        Type::VARCHAR,
        Type::FLOAT8,
        Type::TIMESTAMPTZ,
    ];
    let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, &types));
    for row in rows {
        let canary = row.canary.as_ref();
        let canary_version = canary.and_then(|c| c.version);
        let canary_model = canary.and_then(|c| c.model.as_deref());
        let canary_weight = canary.map(|c| c.weight);
        let canary_since = canary.and_then(|c| c.since);
        let values: [&(dyn ToSql + Sync); 9] = [
            &row.service,
            &row.name,
            &row.environment,
            &row.version,
            &row.model,
            &canary_version,
            &canary_model,
            &canary_weight,
            &canary_since,
        ];
        writer.as_mut().write(&values).await?;
    }
    writer.as_mut().finish().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_commit_time_gives_a_time_postgres_holds() {
        for seconds in [i64::MIN, -62_135_596_801, 0, 1_700_000_000, i64::MAX] {
            let time = system_time(seconds);
            let year_10000 = UNIX_EPOCH + Duration::from_secs(253_402_300_800);
            assert!(time < year_10000, "{seconds}");
        }
    }

    #[test]
    fn commit_metadata_is_made_to_fit() {
        assert_eq!(fitted("ééé", Some(2)), "éé");
        assert_eq!(fitted("ab", Some(5)), "ab");
        assert_eq!(fitted("a\0b", None), "a\u{FFFD}b");
    }
}
