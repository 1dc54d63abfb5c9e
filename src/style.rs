//! The one painter: the few ANSI styles promptctl colours terminal text with, rendered by
//! `anstyle` (the styling crate clap already brings). Whether to colour is the caller's
//! decision (the printer's `--color`, `NO_COLOR`, a terminal or not); text painted here
//! passes the printer's escaping as promptctl's own (`escape`).

/// A style of terminal text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Errors, failures, removed lines (bold red).
    Red,
    /// Warnings (bold yellow).
    Yellow,
    /// Added lines, passes (green).
    Green,
    /// A run that passed, summed up (bold green).
    BoldGreen,
    /// Locations, headings (bold blue).
    Blue,
    /// Cases that could not run (bold magenta).
    Magenta,
    /// Emphasis.
    Bold,
    /// Less important text.
    Dim,
    /// Hunk headers (cyan).
    Cyan,
}

impl Style {
    fn anstyle(self) -> anstyle::Style {
        use anstyle::AnsiColor;
        let color = |c: AnsiColor| anstyle::Style::new().fg_color(Some(c.into()));
        match self {
            Style::Red => color(AnsiColor::Red).bold(),
            Style::Yellow => color(AnsiColor::Yellow).bold(),
            Style::Green => color(AnsiColor::Green),
            Style::BoldGreen => color(AnsiColor::Green).bold(),
            Style::Blue => color(AnsiColor::Blue).bold(),
            Style::Magenta => color(AnsiColor::Magenta).bold(),
            Style::Bold => anstyle::Style::new().bold(),
            Style::Dim => anstyle::Style::new().dimmed(),
            Style::Cyan => color(AnsiColor::Cyan),
        }
    }
}

/// `text` in `style` when `enabled`, else as it is.
pub fn paint(enabled: bool, style: Style, text: &str) -> String {
    if enabled {
        let style = style.anstyle();
        format!("{style}{text}{style:#}")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn painted_text_is_wrapped_in_sgr_sequences_and_reset() {
        assert_eq!(paint(true, Style::Green, "+a"), "\x1b[32m+a\x1b[0m");
        assert_eq!(paint(true, Style::Red, "x"), "\x1b[1m\x1b[31mx\x1b[0m");
        assert_eq!(paint(false, Style::Red, "x"), "x");
    }
}
