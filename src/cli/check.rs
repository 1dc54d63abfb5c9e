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

/// Runs `promptctl check`.
pub fn run(context: &Context, args: &CheckArgs) -> Result<u8, CliError> {
    let config = context.config()?;
    let snapshot = context.snapshot(&config)?;
    let report = check(&snapshot);
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
        super::ci::write_report(context, &args.github, None, &markdown)?;
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

/// "s" unless there is exactly one.
pub fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}
