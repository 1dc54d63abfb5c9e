//! `promptctl canary status|promote|abort PROMPT --env E`: how a canary split compares with
//! its baseline ([`crate::canary`]), and the decision on it as a commit of
//! `environments.yaml` ([`crate::deploy::canary`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};

use super::output::Format;
use super::shared::{database_url, runtime};
use super::{CliError, Context, exit};
use crate::canary::{Analysis, read_and_compare};
use crate::deploy::canary::{CanaryPlan, Decision, plan};
use crate::environments::Side;
use crate::eval::report::{self, Summary};
use crate::eval::{Keep, Run, run_tests};
use crate::providers::{Mode, Providers, Recordings};
use crate::registry::canary::SideQuery;

/// Arguments of `promptctl canary`.
#[derive(Debug, Args)]
pub struct CanaryArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Compare the canary with its baseline: error rate, latency, cost and quality.
    Status(StatusArgs),
    /// Make the canary the environment's version and model, after its tests pass.
    Promote(DecideArgs),
    /// Remove the split: the environment runs its own pin again.
    Abort(DecideArgs),
}

/// Arguments of `canary status`.
#[derive(Debug, Args)]
struct StatusArgs {
    /// The prompt: `name` or `service/name`.
    prompt: String,
    /// The environment holding the split.
    #[arg(long = "env", value_name = "E", default_value = "production")]
    environment: String,
    /// Compare the runs of this last window (e.g. `6h`, `2d`) instead of those since the
    /// commit that last changed the split.
    #[arg(long, value_name = "DURATION")]
    since: Option<String>,
    /// Exit 1 when any metric is significantly worse.
    #[arg(long)]
    check: bool,
    /// The PostgreSQL URL [default: the variable named by `[sync] database_url_env`].
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
}

/// Arguments of `canary promote` and `canary abort`.
#[derive(Debug, Args)]
struct DecideArgs {
    /// The prompt: `name` or `service/name`.
    prompt: String,
    /// The environment holding the split.
    #[arg(long = "env", value_name = "E", default_value = "production")]
    environment: String,
    /// Edit environments.yaml without committing it.
    #[arg(long)]
    no_commit: bool,
    /// Promote without running the canary's tests (the commit message says so).
    #[arg(long)]
    skip_tests: bool,
    /// Answer the tests from recordings only (see `promptctl test --replay`).
    #[arg(long)]
    replay: bool,
}

/// Runs `promptctl canary`.
pub fn run(context: &Context, args: &CanaryArgs) -> Result<u8, CliError> {
    match &args.action {
        Action::Status(args) => status(context, args),
        Action::Promote(args) => decide(context, args, Decision::Promote),
        Action::Abort(args) => decide(context, args, Decision::Abort),
    }
}

/// `canary status`.
fn status(context: &Context, args: &StatusArgs) -> Result<u8, CliError> {
    let config = context.config()?;
    let history = context.history(&config)?;
    let prompt = history.find(&args.prompt)?;
    let id = prompt.id.clone();
    let env = args.environment.as_str();
    let (since, since_commit) = window(context, &config, args, &id)?;
    let url = database_url(context, &config, args.database_url.as_deref())?;
    let settings = &config.settings.canary;
    let query = SideQuery {
        service: &id.service,
        name: &id.name,
        environment: env,
        since,
        until: SystemTime::now(),
        limit: settings.max_runs,
    };
    let analysis = runtime()?.block_on(async {
        let registry = crate::registry::Registry::connect(&url).await?;
        read_and_compare(&registry, &query, settings).await
    })?;
    if analysis.baseline_runs + analysis.canary_runs == 0 {
        context.output.note(&format!(
            "note: no run of {id} in {} took a side of a split in the window: is the split synced (`promptctl sync`), and do services call it in this environment?",
            args.environment
        ));
    }
    print_status(
        context,
        args,
        &id.to_string(),
        (since, since_commit.as_deref()),
        &analysis,
    );
    Ok(if args.check && analysis.worse() {
        exit::FAILED
    } else {
        exit::SUCCESS
    })
}

/// Where the comparison starts: `--since` back from now, else the commit that last
/// changed the split (and that commit).
fn window(
    context: &Context,
    config: &crate::config::Config,
    args: &StatusArgs,
    id: &crate::repo::PromptId,
) -> Result<(SystemTime, Option<String>), CliError> {
    let env = args.environment.as_str();
    if let Some(window) = &args.since {
        let window = crate::config::parse_duration(window)
            .map_err(|why| CliError::input(format!("--since: {why}")))?;
        return Ok((SystemTime::now() - window, None));
    }
    let no_split = || {
        CliError::input(format!("{id} has no canary in {env} at the current commit")).hint(format!(
            "add `canary: {{version: N, weight: 10}}` inside `{env}` in environments.yaml and commit it, or pass --since to look back at a past one"
        ))
    };
    let environments = crate::deploy::load_environments(config)?;
    let entry = environments.entry(id).ok_or_else(no_split)?;
    let changes = crate::environments::split_changes(config, context.rev.as_deref())?;
    let change = changes
        .get(&(entry.key.clone(), env.to_owned()))
        .ok_or_else(no_split)?;
    let since = SystemTime::UNIX_EPOCH + Duration::from_secs(change.time.max(0).unsigned_abs());
    Ok((since, Some(change.commit.clone())))
}

/// Prints the comparison: JSON, or a table of metrics and the verdict.
fn print_status(
    context: &Context,
    args: &StatusArgs,
    prompt: &str,
    (since, commit): (SystemTime, Option<&str>),
    analysis: &Analysis,
) {
    let output = &context.output;
    let since_text = crate::calendar::utc_minute(crate::registry::unix_seconds(since));
    match output.format {
        Format::Json => output.json(&serde_json::json!({
            "prompt": prompt,
            "environment": args.environment,
            "since": since_text,
            "since_commit": commit,
            "worse": analysis.worse(),
            "analysis": analysis,
        })),
        Format::Human => {
            let from = match commit {
                Some(commit) => format!("since {since_text} (commit {})", super::short(commit)),
                None => format!("since {since_text}"),
            };
            let of = |index: usize| {
                analysis.sides.as_ref().map_or_else(String::new, |sides| {
                    let side = &sides[index];
                    format!(" v{} on {}", side.version, side.model)
                })
            };
            let mut text = format!(
                "{prompt} in {}: canary{} {} runs, baseline{} {} runs, {from}\n",
                args.environment,
                of(1),
                analysis.canary_runs,
                of(0),
                analysis.baseline_runs
            );
            text.push_str(&table(analysis));
            text.push_str(&format!(
                "\nruns with a failed provider attempt (retried or fallen back): {}\n{}",
                analysis.attempts_line(),
                analysis.confidence_line()
            ));
            output.data(&text);
        }
    }
}

/// `canary promote` and `canary abort`.
fn decide(context: &Context, args: &DecideArgs, decision: Decision) -> Result<u8, CliError> {
    if context.rev.is_some() {
        return Err(CliError::input(
            "a canary decision commits on the current branch; leave out --rev",
        ));
    }
    let config = context.config()?;
    let history = context.history(&config)?;
    let prompt = history.find(&args.prompt)?;
    let plan = plan(&config, prompt, &args.environment, decision)?;
    let tests = match (decision, args.skip_tests) {
        (Decision::Abort, _) => None,
        (Decision::Promote, true) => Some("Tests: skipped (--skip-tests).".to_owned()),
        (Decision::Promote, false) => match canary_tests(context, &config, args, &plan)? {
            Ok(line) => Some(line),
            Err(code) => return Ok(code),
        },
    };
    let message = plan.commit_message(tests.as_deref());
    let commit = plan.write((!args.no_commit).then_some(message.as_str()))?;
    let output = &context.output;
    match output.format {
        Format::Json => output.json(&serde_json::json!({
            "prompt": plan.prompt.to_string(),
            "environment": plan.env,
            "decision": match decision { Decision::Promote => "promote", Decision::Abort => "abort" },
            "before": plan.before,
            "canary": plan.canary,
            "after": plan.after,
            "commit": commit,
        })),
        Format::Human => output.data(&match &commit {
            Some(commit) => format!("{}: committed {}", plan.subject(), super::short(commit)),
            None => format!(
                "{} (written to {}, not committed)",
                plan.subject(),
                crate::diagnostic::display_path(&plan.path)
            ),
        }),
    }
    Ok(exit::SUCCESS)
}

/// Runs the prompt's tests against the canary side: `Ok(line for the commit message)`
/// when they pass, else prints them and gives the exit code (nothing is written).
fn canary_tests(
    context: &Context,
    config: &crate::config::Config,
    args: &DecideArgs,
    plan: &CanaryPlan,
) -> Result<Result<String, u8>, CliError> {
    let snapshot = context.snapshot(config)?;
    let prompt = snapshot
        .prompts
        .iter()
        .find(|p| p.id.as_ref() == Some(&plan.prompt))
        .ok_or_else(|| {
            CliError::input(format!("{} has no file in the working tree", plan.prompt))
        })?;
    let jobs = super::env::test_jobs(
        context,
        config,
        &snapshot,
        &[prompt],
        &args.environment,
        Side::Canary,
        None,
    )?;
    if jobs.is_empty() {
        return Err(CliError::input(format!(
            "{} has no tests to run against its canary",
            plan.prompt
        ))
        .hint("add test cases to its file, or promote with --skip-tests"));
    }
    let mode = if args.replay {
        Mode::Replay
    } else {
        Mode::Live
    };
    let recordings = Recordings {
        mode,
        dir: config.root.join(&config.settings.test.recordings),
    };
    let run = Run {
        providers: Providers::new(&config.settings, recordings),
        concurrency: config.settings.test.concurrency.max(1),
        keep: Keep::Everything,
        on_done: Arc::new(|_: &crate::eval::CaseResult| {}),
    };
    let results = runtime()?.block_on(run_tests(jobs, run));
    let summary = Summary::of(&results);
    let Some(code) = super::shared::refusal_code(&summary) else {
        return Ok(Ok(format!(
            "Tests: {} passed on the canary.",
            results.len()
        )));
    };
    let output = &context.output;
    let color = output.stdout_colored();
    match output.format {
        Format::Json => output.json(&serde_json::json!({
            "prompt": plan.prompt.to_string(),
            "environment": plan.env,
            "refused": "the canary's tests did not pass",
            "summary": summary,
            "results": results,
        })),
        Format::Human => {
            let mut text = report::result_table(&results, color);
            text.push_str(&report::failure_details(&results, color));
            output.data(&text);
        }
    }
    output.error(
        &format!(
            "promotion of the canary of {} in {} refused: its tests do not pass; nothing was written",
            plan.prompt, plan.env
        ),
        &["`promptctl test --env E --canary` shows the same results".to_owned()],
    );
    Ok(Err(code))
}

/// The metrics as a table: both values, the difference, its interval and the verdict.
fn table(analysis: &Analysis) -> String {
    let header = [
        "METRIC",
        "BASELINE",
        "CANARY",
        "DIFFERENCE",
        "INTERVAL",
        "VERDICT",
    ];
    let rows: Vec<Vec<String>> = analysis
        .metrics
        .iter()
        .map(|m| {
            let mut row = vec![m.metric.label().to_owned()];
            row.extend(m.cells());
            row
        })
        .collect();
    super::output::table(&header, &rows)
}
