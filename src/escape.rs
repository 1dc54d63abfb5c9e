//! Untrusted text made safe to show on a terminal: names, paths, authors, commit messages
//! and model answers can hold control characters that would forge a line, move the cursor,
//! clear the screen or retitle the terminal. The one printer (`cli::output`) and the reports
//! (`eval::report`) show them escaped; JSON output never goes through here.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Untrusted text for one line of terminal output (a name, a path, an author, a commit
/// message): every control character (line breaks, tabs, escape, the C1 range) and every
/// bidirectional override shown as an escape (`\n`, `\t`, `\u{1b}`), so that the text
/// can neither forge a line nor move the cursor, clear the screen, retitle the terminal or
/// reorder what is shown. Text without them is returned as it is.
pub fn escape_control(text: &str) -> Cow<'_, str> {
    escape(text, false, false)
}

/// Untrusted text for HTML content and attribute values (the test report, the PR
/// comment, the dashboard's charts): markup characters as entities, and controls and
/// bidirectional overrides (which could make a name read as another) as `\u{..}`; line
/// breaks and tabs kept.
pub fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if is_unsafe(c) && c != '\n' && c != '\t' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Whether a character is shown escaped.
pub(crate) fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The length of the SGR sequence `text` starts with, when it only sets what promptctl's
/// own colours set (reset, bold, dim, italic, underline, the 16 colours): such sequences
/// pass through coloured output; any other escape sequence is shown escaped.
fn own_style_length(text: &str) -> Option<usize> {
    let rest = text.strip_prefix("\x1b[")?;
    let end = rest.find(|c: char| !c.is_ascii_digit() && c != ';')?;
    if rest.as_bytes()[end] != b'm' {
        return None;
    }
    let safe = rest[..end].split(';').all(|code| {
        matches!(
            code.parse::<u8>().unwrap_or(0),
            0..=4 | 22..=24 | 30..=37 | 39 | 90..=97
        ) && code.len() <= 2
    });
    safe.then_some(2 + end + 1)
}

/// [`escape_control`], keeping line breaks and tabs when `keep_layout` and promptctl's own
/// colours when `keep_styles`. Text that needs no escape is returned as it is, however
/// long (a table of 10,000 test results is not copied).
pub(crate) fn escape(text: &str, keep_layout: bool, keep_styles: bool) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    // The text before `index` is already in `out` once something had to be escaped.
    let mut out: Option<String> = None;
    let mut index = 0;
    while let Some(c) = text[index..].chars().next() {
        let rest = &text[index..];
        let mut taken = c.len_utf8();
        let escaped = match c {
            '\n' | '\t' if keep_layout => None,
            '\r' if keep_layout && rest.starts_with("\r\n") => None,
            '\x1b' if keep_styles && own_style_length(rest).is_some() => {
                taken = own_style_length(rest).unwrap_or(taken);
                None
            }
            '\n' => Some(Cow::Borrowed("\\n")),
            '\r' => Some(Cow::Borrowed("\\r")),
            '\t' => Some(Cow::Borrowed("\\t")),
            c if is_unsafe(c) => Some(Cow::Owned(format!("\\u{{{:x}}}", u32::from(c)))),
            _ => None,
        };
        match (escaped, &mut out) {
            (Some(escaped), Some(out)) => out.push_str(&escaped),
            (Some(escaped), None) => {
                let mut copy = String::with_capacity(text.len() + 16);
                copy.push_str(&text[..index]);
                copy.push_str(&escaped);
                out = Some(copy);
            }
            (None, Some(out)) => out.push_str(&rest[..taken]),
            (None, None) => {}
        }
        index += taken;
    }
    out.map_or(Cow::Borrowed(text), Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_that_keeps_its_layout_is_not_copied() {
        let table = " PASS  a › b  echo\n\tFAIL  c › d\r\n\x1b[31mred\x1b[0m\n";
        assert!(matches!(escape(table, true, true), Cow::Borrowed(_)));
        assert_eq!(
            escape(table, false, false),
            " PASS  a › b  echo\\n\\tFAIL  c › d\\r\\n\\u{1b}[31mred\\u{1b}[0m\\n"
        );
    }

    #[test]
    fn escapes_start_where_the_first_unsafe_character_is() {
        let text = "ok\nline\u{7}bell\x1b]0;title\x07\u{202e}";
        assert_eq!(
            escape(text, true, true),
            "ok\nline\\u{7}bell\\u{1b}]0;title\\u{7}\\u{202e}"
        );
        assert_eq!(escape("\rx\r\n", true, false), "\\rx\r\n");
    }
}
