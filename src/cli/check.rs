//! `promptctl check`: validate every file and report every problem in one run.

use clap::Args;

use super::output::{Format, Style};
use super::{CliError, Context, exit};
use crate::check::check;
use crate::diagnostic::Severity;

/// Arguments of `promptctl check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Fail on warnings too (unused variables, prompts without tests).
    #[arg(long)]
    strict: bool,
    #[command(flatten)]
    github: super::ci::GithubArgs,
}

impl CheckArgs {
    /// Whether GitHub Actions annotations are on (`--github`, or `GITHUB_ACTIONS=true`).
    pub fn github_enabled(&self) -> bool {
        self.github.enabled()
    }
}

/// Runs `promptctl check`.
pub fn run(context: &Context, args: &CheckArgs) -> Result<u8, CliError> {
    let config = context.config()?;
    let snapshot = context.snapshot(&config)?;
    let mut report = check(&snapshot);
    check_environments_file(context, &config, &snapshot, &mut report);
    let errors = report.count(Severity::Error);
    let warnings = report.count(Severity::Warning);
    let code = if report.has_unreadable_files() {
        exit::BAD_INPUT
    } else if errors > 0 || (args.strict && warnings > 0) {
        exit::FAILED
    } else {
        exit::SUCCESS
    };
    let output = &context.output;
    if args.github.enabled() {
        let annotations = crate::eval::github::diagnostic_annotations(&report.diagnostics);
        super::ci::print_annotations(context, &config, &annotations);
        let markdown = crate::eval::github::check_markdown(
            report.prompts,
            &report.diagnostics,
            code == exit::SUCCESS,
        );
        super::ci::write_report_of(
            context,
            &args.github,
            None,
            &markdown,
            crate::eval::pr_comment::Report::Check,
        )?;
    }
    match output.format {
        Format::Json => output.json(&serde_json::json!({
            "ok": code == exit::SUCCESS,
            "prompts": report.prompts,
            "partials": report.partials,
            "errors": errors,
            "warnings": warnings,
            "diagnostics": report.diagnostics,
        })),
        Format::Human => {
            for diagnostic in &report.diagnostics {
                output.diagnostic(diagnostic);
                output.note("");
            }
            let summary = format!(
                "checked {} prompt{} and {} partial{}: {} error{}, {} warning{}",
                report.prompts,
                plural(report.prompts),
                report.partials,
                plural(report.partials),
                errors,
                plural(errors),
                warnings,
                plural(warnings)
            );
            let style = if code == exit::SUCCESS {
                Style::Green
            } else {
                Style::Red
            };
            output.note(&output.paint_err(style, &summary));
        }
    }
    Ok(code)
}

/// Adds the environments file's findings to `report`, when the file exists. The version
/// rules need Git history; without it (outside a repository) they are skipped.
fn check_environments_file(
    context: &Context,
    config: &crate::config::Config,
    snapshot: &crate::repo::Snapshot,
    report: &mut crate::check::CheckReport,
) {
    let found = match crate::environments::Environments::load(config) {
        Ok(None) => return,
        Ok(Some(environments)) => {
            let history = context.load_history(config).ok();
            crate::check::environments::check_environments(
                &environments,
                snapshot,
                history.as_ref(),
            )
        }
        Err(diagnostic) => vec![diagnostic],
    };
    report.diagnostics.extend(found);
    report
        .diagnostics
        .sort_by(|a, b| (&a.path, a.position, &a.message).cmp(&(&b.path, b.position, &b.message)));
}

/// "s" unless there is exactly one.
pub fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}
