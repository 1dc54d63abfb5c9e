//! The one printer every command writes through: data to stdout (human text or JSON),
//! diagnostics and progress to stderr, colour only where it helps.
//!
//! A closed stdout (`promptctl list | head`) is not an error: writes are dropped quietly,
//! as ripgrep does.
//!
//! Text from outside (file, prompt and test names, authors, commit messages, model answers)
//! never reaches the terminal raw: [`escape_control`] shows its control characters as
//! escapes, and every human text the printer writes passes the same escaping (line breaks,
//! tabs and promptctl's own colours excepted). JSON is written exactly.

use std::io::{IsTerminal, Write};

use clap::ValueEnum;
use serde::Serialize;

use crate::diagnostic::{Diagnostic, Severity};
pub use crate::escape::escape_control;
use crate::escape::{escape, is_unsafe};
pub use crate::style::Style;
use crate::style::paint;

/// How data is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Text for people.
    #[default]
    Human,
    /// JSON for machines.
    Json,
}

/// When to colour output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set.
    #[default]
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// The printer.
#[derive(Debug, Clone)]
pub struct Output {
    /// Human or JSON.
    pub format: Format,
    color_stdout: bool,
    color_stderr: bool,
    /// How text is kept from running as GitHub workflow commands.
    github: Guard,
}

/// How the printer keeps GitHub's runner from running text as workflow commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guard {
    /// Not in GitHub Actions.
    Off,
    /// In GitHub Actions (`GITHUB_ACTIONS=true`), in a command without annotations: text
    /// with a line the runner would run (`::...`, `##[...]`, after any indentation) is made
    /// inert; other text is written as it is, so output piped to a file stays exact.
    WhenNeeded,
    /// `--github`: every text is made inert, and only [`Output::workflow_commands`]
    /// writes commands.
    Always,
}

impl Output {
    /// A printer for `format`, colouring as `color` and the environment say
    /// ([`crate::settings::Env::color`]).
    pub fn new(format: Format, color: ColorChoice, env: &crate::settings::Env) -> Output {
        let asked = match color {
            ColorChoice::Always => Some(true),
            ColorChoice::Never => Some(false),
            ColorChoice::Auto => None,
        };
        Output {
            format,
            color_stdout: env.color(asked, std::io::stdout().is_terminal()),
            color_stderr: env.color(asked, std::io::stderr().is_terminal()),
            github: if env.github_actions() {
                Guard::WhenNeeded
            } else {
                Guard::Off
            },
        }
    }

    /// The printer for a run whose output GitHub's runner reads as workflow commands.
    #[must_use]
    pub fn for_github(mut self, github: bool) -> Output {
        if github {
            self.github = Guard::Always;
        }
        self
    }

    /// Writes `text` to `stream`: made inert for GitHub's runner in GitHub mode, with a
    /// final line break either way (added, not copied: a table can be megabytes).
    fn write_guarded(&self, stream: &mut impl Write, text: &str) {
        let needed = match self.github {
            Guard::Off => false,
            Guard::WhenNeeded => crate::eval::github::could_run(text),
            Guard::Always => true,
        };
        if needed {
            write_whole(stream, &crate::eval::github::inert(text));
        } else {
            let _ = stream.write_all(text.as_bytes());
            write_whole(stream, if text.ends_with('\n') { "" } else { "\n" });
        }
    }

    /// Whether stdout gets colour.
    pub fn stdout_colored(&self) -> bool {
        self.color_stdout
    }

    /// Whether stderr is a terminal (progress bars go there).
    pub fn stderr_is_terminal(&self) -> bool {
        std::io::stderr().is_terminal()
    }

    /// `text` in `style` when stdout is coloured.
    pub fn paint(&self, style: Style, text: &str) -> String {
        paint(self.color_stdout, style, text)
    }

    /// `text` in `style` when stderr is coloured.
    pub fn paint_err(&self, style: Style, text: &str) -> String {
        paint(self.color_stderr, style, text)
    }

    /// Writes data to stdout.
    pub fn data(&self, text: &str) {
        let text = escape(text, true, self.color_stdout);
        self.write_guarded(&mut std::io::stdout().lock(), &text);
    }

    /// Writes a value as pretty JSON to stdout, exactly: a JSON line never starts a
    /// workflow command (strings are quoted and their line breaks escaped).
    pub fn json<T: Serialize + ?Sized>(&self, value: &T) {
        match serde_json::to_string_pretty(value) {
            Ok(text) => write_whole(&mut std::io::stdout().lock(), &format!("{text}\n")),
            Err(err) => self.note(&format!("error: cannot encode output as JSON: {err}")),
        }
    }

    /// Writes a line to stderr.
    pub fn note(&self, text: &str) {
        let text = escape(text, true, self.color_stderr);
        self.write_guarded(&mut std::io::stderr().lock(), &text);
    }

    /// Writes GitHub workflow commands, one a line, as they are (each built by
    /// [`crate::eval::github::command`]): to stdout, or to stderr when stdout carries JSON.
    pub fn workflow_commands(&self, commands: &[String]) {
        if commands.is_empty() {
            return;
        }
        let mut text = commands.join("\n");
        text.push('\n');
        match self.format {
            Format::Json => write_whole(&mut std::io::stderr().lock(), &text),
            Format::Human => write_whole(&mut std::io::stdout().lock(), &text),
        }
    }

    /// Writes a diagnostic to stderr, compiler style.
    pub fn diagnostic(&self, diagnostic: &Diagnostic) {
        self.note(&render_diagnostic(diagnostic, self.color_stderr));
    }

    /// Writes an error with its hints to stderr, each one line (they quote names and
    /// paths, whose line breaks are shown escaped).
    pub fn error(&self, message: &str, hints: &[String]) {
        let mut text = format!(
            "{} {}",
            self.paint_err(Style::Red, "error:"),
            escape_control(message)
        );
        for hint in hints {
            text.push_str(&format!(
                "\n  {} {}",
                self.paint_err(Style::Blue, "help:"),
                escape_control(hint)
            ));
        }
        self.note(&text);
    }
}

/// Writes `text` in one go and flushes it (a closed pipe is not an error).
fn write_whole(stream: &mut impl Write, text: &str) {
    let _ = stream.write_all(text.as_bytes());
    let _ = stream.flush();
}

/// A diagnostic as compilers show one:
///
/// ```text
/// error[undeclared-variable]: variable `foo` is used but not declared
///   --> prompts/a/b.yaml:12:20
///    |
/// 12 |     content: "Hi {{ foo }}"
///    |                     ^^^
///    = help: declare it under `variables:`
/// ```
pub fn render_diagnostic(diagnostic: &Diagnostic, color: bool) -> String {
    let (label_style, label) = match diagnostic.severity {
        Severity::Error => (Style::Red, "error"),
        Severity::Warning => (Style::Yellow, "warning"),
    };
    let line_number = diagnostic.position.line.to_string();
    let gutter = " ".repeat(line_number.len());
    let bar = paint(color, Style::Blue, "|");
    let mut text = format!(
        "{}{}",
        paint(color, label_style, &format!("{label}[{}]", diagnostic.code)),
        paint(color, Style::Bold, &format!(": {}", diagnostic.message)),
    );
    text.push_str(&format!(
        "\n{gutter}{} {}",
        paint(color, Style::Blue, "-->"),
        escape_control(&diagnostic.location())
    ));
    if let Some(line) = &diagnostic.line_text {
        // A control character is one column wide as the caret counts it.
        let shown: String = line
            .chars()
            .take(200)
            .map(|c| match c {
                '\t' => ' ',
                c if is_unsafe(c) => '?',
                c => c,
            })
            .collect();
        let column = diagnostic.position.column.saturating_sub(1);
        let marker_len = diagnostic
            .length
            .min(shown.chars().count().saturating_sub(column).max(1));
        text.push_str(&format!("\n{gutter} {bar}"));
        text.push_str(&format!(
            "\n{} {bar} {shown}",
            paint(color, Style::Blue, &line_number)
        ));
        text.push_str(&format!(
            "\n{gutter} {bar} {}{}",
            " ".repeat(column.min(200)),
            paint(color, label_style, &"^".repeat(marker_len))
        ));
    }
    if let Some(help) = &diagnostic.help {
        text.push_str(&format!(
            "\n{gutter} {} {help}",
            paint(color, Style::Blue, "= help:")
        ));
    }
    text
}

/// Lays out rows as a table with columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|cell| escape_control(cell).into_owned())
                .collect()
        })
        .collect();
    let rows = rows.as_slice();
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (index, cell) in row.iter().enumerate().take(columns) {
            widths[index] = widths[index].max(cell.chars().count());
        }
    }
    let format_row = |cells: Vec<&str>| -> String {
        let mut line = String::new();
        for (index, cell) in cells.iter().enumerate() {
            if index + 1 == cells.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(widths[index] - cell.chars().count() + 2));
            }
        }
        line.trim_end().to_owned()
    };
    let mut out = format_row(header.to_vec());
    for row in rows {
        out.push('\n');
        out.push_str(&format_row(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic::Position;

    #[test]
    fn diagnostic_shows_the_line_and_a_caret() {
        let d = Diagnostic::error(
            "undeclared-variable",
            "prompts/a/b.yaml",
            Position::new(2, 17),
            "variable `foo` is used but not declared",
        )
        .with_source("model: m\ntemplate: Hi {{ foo }}\n")
        .with_length(3)
        .with_help("declare it");
        insta::assert_snapshot!(render_diagnostic(&d, false), @r"
        error[undeclared-variable]: variable `foo` is used but not declared
         --> prompts/a/b.yaml:2:17
          |
        2 | template: Hi {{ foo }}
          |                 ^^^
          = help: declare it
        ");
    }

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(
            escape_control("a\x1b]0;title\x07b\nc\td\u{202e}e\u{9b}"),
            "a\\u{1b}]0;title\\u{7}b\\nc\\td\\u{202e}e\\u{9b}"
        );
        assert!(matches!(
            escape_control("plain ünïcode"),
            std::borrow::Cow::Borrowed(_)
        ));
        let painted = paint(true, Style::Red, "x");
        assert_eq!(escape(&painted, true, true), painted);
        assert_eq!(
            escape("\x1b[8mhidden\x1b[2J\r\nz\rw", true, true),
            "\\u{1b}[8mhidden\\u{1b}[2J\r\nz\\rw"
        );
        assert_eq!(
            escape(&painted, true, false),
            "\\u{1b}[1m\\u{1b}[31mx\\u{1b}[0m"
        );
    }

    #[test]
    fn table_pads_columns() {
        let out = table(&["a", "bb"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(out, "a    bb\nxxx  y");
    }
}
