//! `promptctl sync`: publish the branch's versions, tests and environments into the
//! PostgreSQL registry, after `check` passes on the branch's tip.

use clap::Args;

use super::output::Format;
use super::shared::{database_url, runtime};
use super::{CliError, Context, ErrorKind, exit, short};
use crate::check::check;
use crate::diagnostic::Severity;
use crate::history::History;
use crate::registry::connect;
use crate::registry::sync::{Skipped, SyncOptions, SyncSummary, sync, tip_source};

/// The test hook that kills the process just before the sync commits (see the README):
/// compiled into debug builds only, so a release binary ignores the variable.
#[cfg(debug_assertions)]
const FAIL_HOOK_ENV: &str = "PROMPTCTL_SYNC_FAIL_BEFORE_COMMIT";

/// Arguments of `promptctl sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The PostgreSQL URL [default: the variable named by `[sync] database_url_env`,
    /// DATABASE_URL].
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Print what would change, and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// When the branch's history was rewritten since the last sync, replace the versions
    /// it rewrote instead of refusing.
    #[arg(long)]
    allow_rewrite: bool,
    /// The source this repository publishes as [default: PROMPTCTL_SYNC_SOURCE, `[sync]
    /// source`, else the repository's top folder name].
    #[arg(long, value_name = "NAME")]
    source: Option<String>,
    /// Adopt the rows of a registry synced before sources into this source even though
    /// this repository's history no longer holds the commit they were synced at.
    #[arg(long)]
    adopt_legacy: bool,
}

/// Runs `promptctl sync`.
pub fn run(context: &Context, args: &SyncArgs) -> Result<u8, CliError> {
    let config = context.config()?;
    let branch = context
        .rev
        .clone()
        .unwrap_or_else(|| config.settings.sync.branch.clone());
    let url = database_url(context, &config, args.database_url.as_deref())?;
    let history = History::load(&config, Some(&branch), context.use_cache).map_err(|err| {
        let bad_branch = matches!(err, crate::history::HistoryError::BadRevision { .. });
        let error = CliError::from(err);
        if bad_branch {
            error.hint("sync publishes `[sync] branch` (default: main); set it in promptctl.toml or pass --rev")
        } else {
            error
        }
    })?;
    let Some(tip) = history.tip.clone() else {
        return Err(CliError::input(format!(
            "branch `{branch}` has no commits to sync"
        )));
    };
    let source = tip_source(&config, &tip)?;
    let output = &context.output;
    let report = check(&source.snapshot);
    let errors = report.count(Severity::Error);
    if errors > 0 {
        for diagnostic in report
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
        {
            output.diagnostic(diagnostic);
        }
        return Err(CliError {
            kind: if report.has_unreadable_files() {
                ErrorKind::Input
            } else {
                ErrorKind::Failed
            },
            ..CliError::input(format!(
                "`promptctl check` found {errors} error{} at {branch} ({}): nothing was published",
                if errors == 1 { "" } else { "s" },
                short(&tip)
            ))
        }
        .hint("fix them on the branch, then sync again"));
    }
    let source_name = context
        .settings(&config)
        .sync_source(args.source.as_deref(), repository_folder(&config))?;
    let options = SyncOptions {
        source: source_name,
        branch: branch.clone(),
        dry_run: args.dry_run,
        allow_rewrite: args.allow_rewrite,
        adopt_legacy: args.adopt_legacy,
        before_commit: fail_hook(&context.env),
    };
    let summary = runtime()?.block_on(async {
        let mut client = connect(&url).await?;
        sync(&mut client, &config, &history, &source, &options).await
    })?;
    print(context, &summary);
    // A synced history can hold a hundred thousand parsed definitions; the process ends
    // here, and handing their memory back one allocation at a time would cost more than
    // the output took.
    std::mem::forget(history);
    Ok(exit::SUCCESS)
}

fn print(context: &Context, summary: &SyncSummary) {
    let output = &context.output;
    if output.format == Format::Json {
        output.json(summary);
        return;
    }
    for skipped in &summary.skipped {
        output.note(&format!(
            "{} {}",
            output.paint_err(super::output::Style::Yellow, "warning:"),
            skipped_line(skipped)
        ));
    }
    if summary.adopted {
        output.note(&format!(
            "source `{}` adopted the registry's rows synced before sources",
            summary.source
        ));
    }
    let at = format!(
        "{} at {} (source {})",
        summary.branch,
        short(&summary.commit),
        summary.source
    );
    if summary.up_to_date {
        output.data(&format!(
            "registry already up to date with {at} ({} prompts, {} versions)\n",
            summary.prompts, summary.versions
        ));
        return;
    }
    let verb = if summary.dry_run {
        "would sync"
    } else {
        "synced"
    };
    let mut text = String::new();
    if summary.dry_run {
        for version in &summary.sent {
            text.push_str(&format!(
                "+ {}/{} v{} ({})\n",
                version.service,
                version.name,
                version.version,
                short(&version.commit)
            ));
        }
    }
    if summary.rewritten {
        text.push_str(&format!(
            "history was rewritten since {}: {} version rows removed, the rest replaced\n",
            summary.previous.as_deref().map_or("", short),
            summary.versions_removed
        ));
    }
    text.push_str(&format!(
        "{verb} {at}: {} versions added, {} updated, {} archived flags, {} tests changed, {} tests removed, {} environment rows changed, {} monitors changed ({} prompts, {} versions)\n",
        summary.versions_added,
        summary.versions_updated,
        summary.archived_changed,
        summary.tests_changed,
        summary.tests_removed,
        summary.environments_changed,
        summary.monitors_changed,
        summary.prompts,
        summary.versions
    ));
    if !summary.skipped.is_empty() {
        text.push_str(&format!(
            "{} left out: the registry cannot store them (see the warnings above)\n",
            summary.skipped.len()
        ));
    }
    output.data(&text);
}

/// The name of the folder at the top of the repository holding the project (the default
/// source name), when there is one.
fn repository_folder(config: &crate::config::Config) -> Option<String> {
    let repo = git2::Repository::discover(&config.root).ok()?;
    let top = match repo.workdir() {
        Some(workdir) => workdir.to_path_buf(),
        None => repo.path().to_path_buf(),
    };
    let top = top.canonicalize().unwrap_or(top);
    let name = top.file_name()?.to_string_lossy().into_owned();
    Some(name.strip_suffix(".git").unwrap_or(&name).to_owned())
}

/// `skipped s/p v2 (abc1234): the template holds a NUL character ...`
fn skipped_line(skipped: &Skipped) -> String {
    let mut what = format!("skipped {}/{}", skipped.service, skipped.name);
    match (&skipped.environment, skipped.version) {
        (Some(environment), Some(version)) => {
            what.push_str(&format!(" v{version} pin in {environment}"))
        }
        (Some(environment), None) => what.push_str(&format!(" pin in {environment}")),
        (None, Some(version)) => what.push_str(&format!(" v{version}")),
        (None, None) => {}
    }
    if let Some(commit) = &skipped.commit {
        what.push_str(&format!(" ({})", short(commit)));
    }
    format!("{what}: {}", skipped.reason)
}

/// The test hook, when the variable asks for it (debug builds only).
#[cfg(debug_assertions)]
fn fail_hook(env: &crate::settings::Env) -> Option<fn()> {
    /// Kills the process at once, as `kill -9` would: the test hook's effect.
    fn abort() {
        std::process::abort();
    }
    /// Stops the sync for good with its transaction open (every write done, its locks
    /// held), for a test to kill it there: the hook's effect with `pause`.
    fn stall() {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
    match env.get(FAIL_HOOK_ENV) {
        Some("pause") => Some(stall as fn()),
        _ => env.contains(FAIL_HOOK_ENV).then_some(abort as fn()),
    }
}

/// A release build has no test hook.
#[cfg(not(debug_assertions))]
fn fail_hook(_: &crate::settings::Env) -> Option<fn()> {
    None
}
