//! `promptctl fmt [PATH...] [--check]`: rewrite prompt files in the canonical layout.
//!
//! The layout itself lives in [`crate::format`]; this file walks the folders, writes the
//! files and reports. A file that does not parse, or that the formatter refuses (anchors,
//! several documents, ...), is reported and left alone; the others are still formatted.
//! `environments.yaml` is not touched: `pin` and `promote` edit it in place.

use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;

use super::output::Format;
use super::{CliError, Context, exit};
use crate::diagnostic::display_path;
use crate::repo::FileKind;

/// Arguments of `promptctl fmt`.
#[derive(Debug, Args)]
pub struct FmtArgs {
    /// Prompt files or folders to format (default: every prompt file under the prompts
    /// folder).
    paths: Vec<PathBuf>,
    /// Change nothing; exit 1 naming each file that would change (for CI).
    #[arg(long)]
    check: bool,
}

/// What `fmt --format json` prints.
#[derive(Serialize, Default)]
struct Report {
    /// Files changed (or, with `--check`, that would change).
    changed: Vec<String>,
    /// Files already in the canonical layout.
    unchanged: usize,
    /// Files left alone, with why.
    skipped: Vec<crate::diagnostic::Diagnostic>,
}

/// Runs `promptctl fmt`.
pub fn run(context: &Context, args: &FmtArgs) -> Result<u8, CliError> {
    let config = context.config()?;
    let files = if args.paths.is_empty() {
        let dir = config.prompts_dir();
        if !dir.is_dir() {
            return Err(CliError::from(crate::repo::RepoError::NoPromptsDir {
                path: dir,
            }));
        }
        prompt_files(&dir)?
    } else {
        let mut files = Vec::new();
        for path in &args.paths {
            let full = context.directory.join(path);
            match std::fs::symlink_metadata(&full) {
                Ok(metadata) if metadata.is_dir() => files.extend(prompt_files(&full)?),
                Ok(metadata) if metadata.is_file() => files.push(full),
                Ok(_) => {
                    return Err(CliError::input(format!(
                        "{} is not a regular file: fmt formats only regular files, never through a symbolic link",
                        display_path(path)
                    )));
                }
                Err(_) => {
                    return Err(CliError::input(format!(
                        "{} does not exist",
                        display_path(path)
                    )));
                }
            }
        }
        files
    };
    let output = &context.output;
    let mut report = Report::default();
    for file in &files {
        let shown = shown_path(&config.root, file);
        let bytes = match crate::repo::read_working_file(file, Path::new(&shown)) {
            Ok(bytes) => bytes,
            Err(diagnostic) => {
                report.skipped.push(diagnostic);
                continue;
            }
        };
        let text = match crate::repo::file::decode_text(Path::new(&shown), &bytes) {
            Ok(text) => text,
            Err(diagnostic) => {
                report.skipped.push(diagnostic);
                continue;
            }
        };
        let formatted = match crate::format::format_prompt_at(Path::new(&shown), &text) {
            Ok(formatted) => formatted,
            Err(diagnostic) => {
                report.skipped.push(diagnostic);
                continue;
            }
        };
        // A byte-order mark is kept: decode_text strips it before formatting.
        let had_bom = bytes.starts_with("\u{feff}".as_bytes());
        if formatted == text {
            report.unchanged += 1;
            continue;
        }
        if !args.check {
            let mut new = formatted.into_bytes();
            if had_bom {
                new.splice(0..0, "\u{feff}".bytes());
            }
            crate::files::replace(file, &new)
                .map_err(|err| CliError::input(format!("cannot write {shown}: {err}")))?;
        }
        report.changed.push(shown);
    }
    if output.format == Format::Json {
        output.json(&report);
    } else {
        for path in &report.changed {
            if args.check {
                output.data(&format!("would reformat {path}"));
            } else {
                output.data(&format!("formatted {path}"));
            }
        }
    }
    for diagnostic in &report.skipped {
        output.diagnostic(diagnostic);
    }
    if output.format != Format::Json {
        let verb = if args.check {
            "would be reformatted"
        } else {
            "reformatted"
        };
        output.note(&format!(
            "{} file(s) {verb}, {} unchanged, {} skipped",
            report.changed.len(),
            report.unchanged,
            report.skipped.len()
        ));
    }
    if !report.skipped.is_empty() {
        let unparsable = report
            .skipped
            .iter()
            .any(|d| d.code != crate::format::UNSUPPORTED);
        if unparsable {
            return Ok(exit::BAD_INPUT);
        }
    }
    if args.check && !report.changed.is_empty() {
        return Ok(exit::FAILED);
    }
    Ok(exit::SUCCESS)
}

/// Every prompt file under `dir`, sorted (hidden folders such as recordings skipped), as
/// every command finds them.
fn prompt_files(dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    Ok(crate::repo::working_files(dir)?
        .into_iter()
        .filter(|(_, kind)| *kind == FileKind::Prompt)
        .map(|(relative, _)| dir.join(relative))
        .collect())
}

/// `file` relative to the project root when it is inside it.
fn shown_path(root: &Path, file: &Path) -> String {
    // The folder is made canonical, not the file: a link is named, never what it points to.
    let file = match (file.parent(), file.file_name()) {
        (Some(folder), Some(name)) => folder
            .canonicalize()
            .map_or_else(|_| file.to_path_buf(), |folder| folder.join(name)),
        _ => file.to_path_buf(),
    };
    display_path(file.strip_prefix(root).unwrap_or(&file))
}
