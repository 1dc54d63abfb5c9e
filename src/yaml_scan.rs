//! The small YAML scanner `format` and the environments editor share, for what both scan
//! on a line of text without parsing it: where a quoted scalar closes and where a comment
//! starts. (Both files are parsed by serde-saphyr first; these find byte positions in the
//! text the parser accepted.)

/// The index of the quote closing the quoted scalar whose opening quote (`"` or `'`) is at
/// `start`: a double-quoted scalar escapes with `\`, a single-quoted one doubles its quote.
/// `None` when it does not close on this text.
pub(crate) fn closing_quote(text: &str, start: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    quote_end(bytes, start + 1, *bytes.get(start)?)
}

/// The index of the `quote` that closes a scalar whose text goes on at `from` (inside the
/// quotes), or `None` when it does not close on this text.
pub(crate) fn quote_end(bytes: &[u8], from: usize, quote: u8) -> Option<usize> {
    let mut index = from;
    while index < bytes.len() {
        let b = bytes[index];
        if quote == b'"' && b == b'\\' {
            index += 2;
            continue;
        }
        if b == quote {
            if quote == b'\'' && bytes.get(index + 1) == Some(&b'\'') {
                index += 2;
                continue;
            }
            return Some(index);
        }
        index += 1;
    }
    None
}

/// Whether a comment starts at byte `index`: a `#` at the start of the text or after a
/// space or tab (a `#` inside a plain scalar is text).
pub(crate) fn starts_comment(bytes: &[u8], index: usize) -> bool {
    bytes.get(index) == Some(&b'#') && (index == 0 || matches!(bytes[index - 1], b' ' | b'\t'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_close_past_their_escapes() {
        assert_eq!(closing_quote(r#""a\"b" x"#, 0), Some(5));
        assert_eq!(closing_quote("'it''s' x", 0), Some(6));
        assert_eq!(closing_quote("\"open", 0), None);
        assert_eq!(closing_quote("", 0), None);
        assert!(starts_comment(b"# c", 0));
        assert!(starts_comment(b"a #c", 2) && starts_comment(b"a\t#c", 2));
        assert!(!starts_comment(b"a#c", 1));
    }
}
