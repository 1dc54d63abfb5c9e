//! The registry's schema: versioned SQL migrations embedded in the binary.
//!
//! Each migration is a file `migrations/NNNN_name.sql`, applied once, in order, and recorded
//! in `schema_migrations`. All pending migrations run in one transaction under an advisory
//! lock, so two binaries starting at once never apply one twice and a failed migration
//! leaves nothing behind. A database whose newest migration is unknown to this binary (a
//! newer promptctl wrote it) is refused rather than misread.

use tokio_postgres::{Client, GenericClient, Transaction};

use super::RegistryError;

/// One embedded migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Its number, from 1, in order.
    pub version: i32,
    /// Its name (the file name without number and extension).
    pub name: &'static str,
    /// The SQL.
    pub sql: &'static str,
}

/// Every migration this binary knows, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration::new(1, "registry", include_str!("migrations/0001_registry.sql")),
    Migration::new(2, "runs", include_str!("migrations/0002_runs.sql")),
    Migration::new(3, "monitors", include_str!("migrations/0003_monitors.sql")),
    Migration::new(
        4,
        "descriptions",
        include_str!("migrations/0004_descriptions.sql"),
    ),
    Migration::new(5, "sources", include_str!("migrations/0005_sources.sql")),
    Migration::new(6, "rollups", include_str!("migrations/0006_rollups.sql")),
    Migration::new(7, "canary", include_str!("migrations/0007_canary.sql")),
];

impl Migration {
    const fn new(version: i32, name: &'static str, sql: &'static str) -> Migration {
        Migration { version, name, sql }
    }
}

/// The key of the advisory lock taken while migrating.
const MIGRATION_LOCK: i64 = 0x7072_6f6d_7074_0001;

/// The newest migration this binary knows.
pub fn latest_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// The database's newest applied migration, `None` when no migration was ever applied
/// (on a client or inside a transaction).
pub async fn current_version(client: &impl GenericClient) -> Result<Option<i32>, RegistryError> {
    if !table_exists(client).await? {
        return Ok(None);
    }
    let version: Option<i32> = client
        .query_one("SELECT max(version) FROM schema_migrations", &[])
        .await?
        .get(0);
    Ok(version)
}

/// Applies the pending migrations in one transaction; returns how many were applied.
/// Refuses a schema newer than this binary's.
pub async fn migrate(client: &mut Client) -> Result<usize, RegistryError> {
    if let Some(found) = current_version(client).await?
        && found >= latest_version()
    {
        if found > latest_version() {
            return Err(RegistryError::SchemaTooNew {
                found,
                known: latest_version(),
            });
        }
        return Ok(0);
    }
    let transaction = client.transaction().await?;
    let applied = migrate_in(&transaction).await?;
    transaction.commit().await?;
    Ok(applied)
}

/// Applies the pending migrations inside `transaction` (they commit or roll back with
/// it), under an advisory lock held until it ends; returns how many were applied.
pub async fn migrate_in(transaction: &Transaction<'_>) -> Result<usize, RegistryError> {
    // The common case takes no lock, so that syncs of different sources do not wait on
    // each other for it; a pending or concurrent migration is met under the lock below.
    if current_version(transaction).await? == Some(latest_version()) {
        return Ok(0);
    }
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let exists = table_exists(transaction).await?;
    if !exists {
        transaction
            .batch_execute(
                "CREATE TABLE schema_migrations (
                   version INTEGER PRIMARY KEY,
                   name TEXT NOT NULL,
                   applied_at TIMESTAMPTZ NOT NULL DEFAULT NOW())",
            )
            .await?;
    }
    // Read under the lock: another binary may have migrated meanwhile.
    let found = current_version(transaction).await?.unwrap_or(0);
    if found > latest_version() {
        return Err(RegistryError::SchemaTooNew {
            found,
            known: latest_version(),
        });
    }
    let mut applied = 0;
    for migration in MIGRATIONS.iter().filter(|m| m.version > found) {
        transaction.batch_execute(migration.sql).await?;
        transaction
            .execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                &[&migration.version, &migration.name],
            )
            .await?;
        applied += 1;
    }
    Ok(applied)
}

/// Whether `schema_migrations` exists, read from `pg_tables` with the statement's
/// snapshot: a name lookup (`to_regclass`) would leave a cached "no such relation" in
/// the session that a lock wait does not refresh, and a sync that waited for another's
/// migration would then create the table again.
async fn table_exists(client: &impl GenericClient) -> Result<bool, RegistryError> {
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables
               WHERE schemaname = current_schema() AND tablename = 'schema_migrations')",
            &[],
        )
        .await?
        .get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_from_one_in_order() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(usize::try_from(migration.version).ok(), Some(index + 1));
            assert!(!migration.sql.trim().is_empty());
        }
    }
}
