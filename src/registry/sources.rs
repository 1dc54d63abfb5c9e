//! Sources: one registry for many repositories (README, "Sources").
//!
//! Each repository syncs as a named source; every row `sync` writes carries its source,
//! and a sync reads, writes, deletes and locks its own source's rows only. This module
//! holds what is about sources rather than about one sync: the rule for a source's name,
//! the advisory lock of a source, the ownership of `service/name` across the registry
//! (`prompt_owners`), the adoption of a registry's rows from before sources (the
//! unnamed source `''`), and how a prompt may be named with its source
//! (`source:service/name`).

use git2::{Oid, Repository};
use tokio_postgres::Transaction;

use super::RegistryError;

/// The longest source name, in characters.
pub const MAX_SOURCE_LEN: usize = 100;

/// At most this many prompts owned by other sources are named in a refusal.
const MAX_NAMED_IN_REFUSAL: i64 = 20;

/// The tables whose rows a sync writes, each with a `source` column (migration 5), besides
/// `sync_state`.
pub const SOURCE_TABLES: &[&str] = &[
    "prompts",
    "prompt_tests",
    "prompt_environments",
    "prompt_monitors",
    "prompt_descriptions",
    "prompt_owners",
];

/// A `service/name` that another source owns, met by a sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    /// `service/name`.
    pub prompt: String,
    /// The source that owns it (`''`: the registry's rows from before sources).
    pub owner: String,
}

/// Why `name` cannot name a source, or `None` when it can: 1 to [`MAX_SOURCE_LEN`]
/// characters among ASCII letters, digits, `.`, `_` and `-` (no `:` or `/`, which
/// separate it from a prompt's name in `source:service/name`).
pub fn source_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("a source name cannot be empty".to_owned());
    }
    if name.chars().count() > MAX_SOURCE_LEN {
        return Some(format!(
            "a source name has at most {MAX_SOURCE_LEN} characters"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Some(format!(
            "a source name holds ASCII letters, digits, `.`, `_` and `-` only, not {:?}",
            bad
        ));
    }
    None
}

/// The advisory lock key of `source`'s syncs: two syncs of one source run one after the
/// other, syncs of two sources at once (a hash collision would only serialize them).
pub fn lock_key(source: &str) -> i64 {
    let bytes = b"promptctl-sync\0".iter().chain(source.as_bytes()).copied();
    i64::from_ne_bytes(crate::fnv::fnv1a(bytes).to_ne_bytes())
}

/// Takes `source`'s sync lock until `transaction` ends.
pub async fn lock(transaction: &Transaction<'_>, source: &str) -> Result<(), RegistryError> {
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&lock_key(source)])
        .await?;
    Ok(())
}

/// Moves the rows of the unnamed source `''` (a registry synced before sources) to
/// `source` when `repo` holds a commit that `''` was synced at (the repository that
/// synced them is syncing again under a name), or whenever there are some with `force`
/// (`sync --adopt-legacy`: the history was rewritten since). Takes `''`'s lock first.
/// Returns whether rows were adopted. Prompt runs are not rewritten: they are attributed
/// through `prompt_owners`.
pub async fn adopt_legacy(
    transaction: &Transaction<'_>,
    repo: &Repository,
    legacy: &Legacy<'_>,
) -> Result<bool, RegistryError> {
    let (source, force) = (legacy.source, legacy.force);
    if source.is_empty() || !legacy_adoptable(transaction, repo, force).await? {
        return Ok(false);
    }
    lock(transaction, "").await?;
    // Read again under the lock: another source may have adopted them meanwhile.
    if !legacy_adoptable(transaction, repo, force).await? {
        return Ok(false);
    }
    if force {
        refuse_foreign_legacy(transaction, legacy).await?;
    }
    for table in SOURCE_TABLES {
        transaction
            .execute(
                &format!("UPDATE {table} SET source = $1 WHERE source = ''"),
                &[&source],
            )
            .await?;
    }
    transaction
        .execute(
            "UPDATE sync_state s SET source = $1 WHERE s.source = '' AND NOT EXISTS (
               SELECT 1 FROM sync_state o WHERE o.source = $1 AND o.branch = s.branch)",
            &[&source],
        )
        .await?;
    transaction
        .execute("DELETE FROM sync_state WHERE source = ''", &[])
        .await?;
    Ok(true)
}

/// Whether a branch of the unnamed source was synced at a commit `repo` holds, or, with
/// `force`, whether the unnamed source has rows at all.
/// What a sync may adopt of the unnamed source's rows: its source, whether it was asked to
/// (`--adopt-legacy`), and the prompts its history holds.
pub struct Legacy<'a> {
    /// The source syncing.
    pub source: &'a str,
    /// `--adopt-legacy`: adopt without the proof of a synced commit in this history.
    pub force: bool,
    /// The services of the history's prompts, paired with `names`.
    pub services: &'a [String],
    /// The names of the history's prompts.
    pub names: &'a [String],
}

/// Refuses a forced adoption of unnamed rows this history does not hold: they are another
/// repository's, and adopting them would give its prompts to this source.
async fn refuse_foreign_legacy(
    transaction: &Transaction<'_>,
    legacy: &Legacy<'_>,
) -> Result<(), RegistryError> {
    let rows = transaction
        .query(
            "SELECT o.service, o.name FROM prompt_owners o
             WHERE o.source = '' AND NOT EXISTS (
               SELECT 1 FROM unnest($1::text[], $2::text[]) AS h(service, name)
               WHERE h.service = o.service AND h.name = o.name)
             ORDER BY 1, 2 LIMIT 20",
            &[&legacy.services, &legacy.names],
        )
        .await?;
    if rows.is_empty() {
        return Ok(());
    }
    let foreign: Vec<String> = rows
        .iter()
        .map(|row| format!("{}/{}", row.get::<_, String>(0), row.get::<_, String>(1)))
        .collect();
    Err(RegistryError::Invalid(format!(
        "--adopt-legacy: the registry's unnamed rows hold prompts this repository does not          ({}): they are another repository's; sync from the repository that published them",
        foreign.join(", ")
    )))
}

async fn legacy_adoptable(
    transaction: &Transaction<'_>,
    repo: &Repository,
    force: bool,
) -> Result<bool, RegistryError> {
    if force {
        return Ok(transaction
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM prompt_owners WHERE source = '')
                     OR EXISTS (SELECT 1 FROM sync_state WHERE source = '')",
                &[],
            )
            .await?
            .get(0));
    }
    let rows = transaction
        .query("SELECT commit_sha FROM sync_state WHERE source = ''", &[])
        .await?;
    Ok(rows.iter().any(|row| {
        let commit: String = row.get(0);
        Oid::from_str(&commit).is_ok_and(|oid| repo.find_commit(oid).is_ok())
    }))
}

/// Claims `prompts` (service, name; sorted, so that two claims never wait on each other in
/// a cycle) for `source` in `prompt_owners`, inside the sync's transaction, and refuses
/// those another source owns. A concurrent claim of the same name waits for the other
/// transaction to end, then finds the name owned: two sources can never both publish it.
pub async fn claim(
    transaction: &Transaction<'_>,
    source: &str,
    services: &[String],
    names: &[String],
) -> Result<(), RegistryError> {
    transaction
        .execute(
            "INSERT INTO prompt_owners (service, name, source)
             SELECT s, n, $3 FROM unnest($1::text[], $2::text[]) AS k(s, n)
             ON CONFLICT (service, name) DO NOTHING",
            &[&services, &names, &source],
        )
        .await?;
    let rows = transaction
        .query(
            "SELECT o.service, o.name, o.source
             FROM prompt_owners o JOIN unnest($1::text[], $2::text[]) AS k(s, n)
               ON o.service = k.s AND o.name = k.n
             WHERE o.source <> $3 ORDER BY 1, 2 LIMIT $4",
            &[&services, &names, &source, &MAX_NAMED_IN_REFUSAL],
        )
        .await?;
    if rows.is_empty() {
        return Ok(());
    }
    let taken = rows
        .iter()
        .map(|row| Taken {
            prompt: format!("{}/{}", row.get::<_, String>(0), row.get::<_, String>(1)),
            owner: row.get(2),
        })
        .collect();
    Err(RegistryError::Owned {
        syncing: source.to_owned(),
        taken,
    })
}

/// Releases `source`'s claims on names it no longer has any version of (after a rewrite
/// removed them); returns how many.
pub async fn release_unused(
    transaction: &Transaction<'_>,
    source: &str,
) -> Result<u64, RegistryError> {
    Ok(transaction
        .execute(
            "DELETE FROM prompt_owners o WHERE o.source = $1 AND NOT EXISTS (
               SELECT 1 FROM prompts p
               WHERE p.source = $1 AND p.service = o.service AND p.name = o.name)",
            &[&source],
        )
        .await?)
}

/// The refusal's text for `taken`, e.g. "billing/x belongs to source `payments`".
pub fn describe_taken(taken: &[Taken]) -> String {
    taken
        .iter()
        .map(|t| {
            if t.owner.is_empty() {
                format!(
                    "{} belongs to the unnamed source (rows synced before sources)",
                    t.prompt
                )
            } else {
                format!("{} belongs to source `{}`", t.prompt, t.owner)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `query` split as `source:service/name` into the source and `service/name`, when it has
/// that form (the part before the first `:` is a valid source name and what follows holds
/// a `/`); `None` otherwise.
pub fn split_source(query: &str) -> Option<(&str, &str)> {
    let (source, rest) = query.split_once(':')?;
    (source_name_problem(source).is_none() && rest.contains('/')).then_some((source, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_names_exclude_separators() {
        assert!(source_name_problem("payments").is_none());
        assert!(source_name_problem("a.b_c-1").is_none());
        assert!(source_name_problem("").is_some());
        assert!(source_name_problem("a:b").is_some());
        assert!(source_name_problem("a/b").is_some());
        assert!(source_name_problem(&"x".repeat(MAX_SOURCE_LEN + 1)).is_some());
    }

    #[test]
    fn a_source_prefix_is_split_only_before_a_service() {
        assert_eq!(
            split_source("payments:billing/x"),
            Some(("payments", "billing/x"))
        );
        assert_eq!(split_source("billing/x"), None);
        assert_eq!(split_source("payments:x"), None);
    }

    #[test]
    fn lock_keys_differ_by_source() {
        assert_ne!(lock_key("a"), lock_key("b"));
        assert_eq!(lock_key("a"), lock_key("a"));
    }
}
