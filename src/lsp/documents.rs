//! The open buffers (full-text sync) and conversions between LSP positions (0-based line,
//! UTF-16 code units) and ours (1-based line, column in characters; byte offsets).

use std::collections::HashMap;
use std::path::PathBuf;

use lsp_types::{Position, TextDocumentContentChangeEvent, TextDocumentPositionParams, Url};

/// The text of every open document, by URI.
#[derive(Debug, Default)]
pub struct Documents {
    open: HashMap<Url, String>,
}

impl Documents {
    /// Records a newly opened document.
    pub fn open(&mut self, uri: Url, text: String) {
        self.open.insert(uri, text);
    }

    /// Applies changes: whole-text replacements, or ranged edits from clients that send
    /// them even under full sync.
    pub fn change(&mut self, uri: &Url, changes: Vec<TextDocumentContentChangeEvent>) {
        let text = self.open.entry(uri.clone()).or_default();
        for change in changes {
            match change.range {
                None => *text = change.text,
                Some(range) => {
                    let start = byte_offset(text, range.start);
                    let end = byte_offset(text, range.end).max(start);
                    text.replace_range(start..end, &change.text);
                }
            }
        }
    }

    /// Forgets a closed document.
    pub fn close(&mut self, uri: &Url) {
        self.open.remove(uri);
    }

    /// Every open document.
    pub fn iter(&self) -> impl Iterator<Item = (&Url, &str)> {
        self.open.iter().map(|(uri, text)| (uri, text.as_str()))
    }

    /// The text of an open document.
    pub fn get(&self, uri: &Url) -> Option<&str> {
        self.open.get(uri).map(String::as_str)
    }

    /// Where a request at a position (hover, completion, definition) points: `None` when
    /// the document is not open or has no such line.
    pub fn at<'d>(&'d self, params: &'d TextDocumentPositionParams) -> Option<Cursor<'d>> {
        let uri = &params.text_document.uri;
        let text = self.get(uri)?;
        let (line, cursor) = line_at(text, params.position)?;
        Some(Cursor {
            uri,
            path: uri.to_file_path().unwrap_or_default(),
            position: params.position,
            text,
            line,
            cursor,
        })
    }
}

/// A position in an open document, read for a request.
pub struct Cursor<'d> {
    /// The document.
    pub uri: &'d Url,
    /// Its file (empty for a URI that names none).
    pub path: PathBuf,
    /// The position, as the client sent it.
    pub position: Position,
    /// The document's text.
    pub text: &'d str,
    /// The line at the position.
    pub line: &'d str,
    /// The byte index of the position in the line.
    pub cursor: usize,
}

/// The byte offset of an LSP position in `text`, clamped to the line's end and the text's.
pub fn byte_offset(text: &str, position: Position) -> usize {
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        if index == position.line as usize {
            let content = line.trim_end_matches(['\n', '\r']);
            return offset + utf16_to_byte(content, position.character as usize);
        }
        offset += line.len();
    }
    text.len()
}

/// The byte index in `line` of UTF-16 column `column`, clamped to the line's length.
pub fn utf16_to_byte(line: &str, column: usize) -> usize {
    let mut units = 0;
    for (index, c) in line.char_indices() {
        if units >= column {
            return index;
        }
        units += c.len_utf16();
    }
    line.len()
}

/// The UTF-16 column of byte index `byte` in `line`.
pub fn byte_to_utf16(line: &str, byte: usize) -> u32 {
    let byte = byte.min(line.len());
    let prefix = line.get(..byte).unwrap_or(line);
    prefix.chars().map(char::len_utf16).sum::<usize>() as u32
}

/// The LSP position of 1-based `line` and 1-based character `column` in `text`.
pub fn from_line_column(text: &str, line: usize, column: usize) -> Position {
    let line_index = line.saturating_sub(1);
    let content = text
        .lines()
        .nth(line_index)
        .unwrap_or_default()
        .trim_end_matches('\r');
    let units: usize = content
        .chars()
        .take(column.saturating_sub(1))
        .map(char::len_utf16)
        .sum();
    Position::new(line_index as u32, units as u32)
}

/// The LSP position `characters` characters after 1-based (`line`, `column`), staying on
/// that line.
pub fn end_on_line(text: &str, line: usize, column: usize, characters: usize) -> Position {
    let content = text
        .lines()
        .nth(line.saturating_sub(1))
        .unwrap_or_default()
        .trim_end_matches('\r');
    let last = content.chars().count() + 1;
    from_line_column(
        text,
        line,
        (column + characters.max(1)).min(last.max(column + 1)),
    )
}

/// The line at an LSP position and the byte index of the cursor in it.
pub fn line_at(text: &str, position: Position) -> Option<(&str, usize)> {
    let line = text
        .split('\n')
        .nth(position.line as usize)?
        .trim_end_matches('\r');
    Some((line, utf16_to_byte(line, position.character as usize)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_count_utf16_units() {
        let text = "a: 😀é {{ x }}\n";
        // `x` is the 10th character; 😀 takes two UTF-16 units.
        assert_eq!(from_line_column(text, 1, 10), Position::new(0, 10));
        let (line, byte) = line_at(text, Position::new(0, 10)).expect("line");
        assert_eq!(&line[byte..byte + 1], "x");
        assert_eq!(byte_to_utf16(line, byte), 10);
    }

    #[test]
    fn ranged_changes_apply() {
        let mut documents = Documents::default();
        let uri = Url::parse("file:///p/a.yaml").expect("uri");
        documents.open(uri.clone(), "one\ntwo\n".to_owned());
        documents.change(
            &uri,
            vec![TextDocumentContentChangeEvent {
                range: Some(lsp_types::Range::new(
                    Position::new(1, 0),
                    Position::new(1, 3),
                )),
                range_length: None,
                text: "2".to_owned(),
            }],
        );
        assert_eq!(documents.get(&uri), Some("one\n2\n"));
    }
}
