//! `environments.yaml`: which version and which model each environment runs (SPEC
//! section 1), resolved for rendering and testing, and edited with minimal changes.
//!
//! The file is parsed with serde-saphyr keeping every position, so that `check` points at
//! the offending line and `pin` / `promote` can splice a new value into the exact bytes of
//! the old one: the rest of the file (comments, order, spacing) is never re-serialized.
//! A prompt missing from the file, or an environment missing under a prompt, runs the
//! prompt's latest version on its own model.
//!
//! This module knows the file format and Git history, nothing of providers or printing.

use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use serde_saphyr::Spanned;

use crate::config::Config;
use crate::diagnostic::{Diagnostic, Position, display_path};
use crate::history::{History, HistoryError, PromptHistory};
use crate::repo::{Definition, Partials, PromptId};

/// Which version an environment runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionRef {
    /// Whatever the latest version is.
    Latest,
    /// Exactly this version.
    Number(u32),
}

impl fmt::Display for VersionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionRef::Latest => f.write_str("latest"),
            VersionRef::Number(n) => write!(f, "{n}"),
        }
    }
}

impl serde::Serialize for VersionRef {
    /// As the file writes it: a number, or `"latest"`.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            VersionRef::Latest => serializer.serialize_str("latest"),
            VersionRef::Number(n) => serializer.serialize_u32(*n),
        }
    }
}

impl std::str::FromStr for VersionRef {
    type Err = String;

    fn from_str(text: &str) -> Result<VersionRef, String> {
        if text == "latest" {
            return Ok(VersionRef::Latest);
        }
        match text.trim_start_matches('v').parse::<u32>() {
            Ok(n) if n > 0 => Ok(VersionRef::Number(n)),
            _ => Err(format!(
                "`{text}` is not a version: write a number from 1, or `latest`"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for VersionRef {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<VersionRef, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = VersionRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a version number from 1, or `latest`")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<VersionRef, E> {
                match u32::try_from(n) {
                    Ok(n) if n > 0 => Ok(VersionRef::Number(n)),
                    _ => Err(E::invalid_value(de::Unexpected::Unsigned(n), &self)),
                }
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<VersionRef, E> {
                match u64::try_from(n) {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(E::invalid_value(de::Unexpected::Signed(n), &self)),
                }
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<VersionRef, E> {
                if text == "latest" {
                    Ok(VersionRef::Latest)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(text), &self))
                }
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// What an environment runs for one prompt.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Pin {
    /// The version.
    pub version: VersionRef,
    /// The model overriding the prompt's own, if any.
    pub model: Option<String>,
}

impl Pin {
    /// The pin of a prompt or environment the file does not mention.
    pub fn unpinned() -> Pin {
        Pin {
            version: VersionRef::Latest,
            model: None,
        }
    }
}

/// A place in the file: line and column (1-based) and the byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Byte offset from the start of the file.
    pub offset: usize,
}

impl Place {
    fn of(location: &serde_saphyr::Location, text: &str) -> Place {
        let line = location.line() as usize;
        let column = location.column() as usize;
        let offset = location
            .span()
            .byte_offset()
            .map(|o| o as usize)
            .unwrap_or_else(|| offset_of(text, line, column));
        Place {
            line,
            column,
            offset,
        }
    }

    /// The place as a diagnostic position.
    pub fn position(&self) -> Position {
        Position::new(self.line, self.column)
    }
}

/// The byte offset of a 1-based line and column (characters).
fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let mut start = 0;
    for (index, l) in text.split_inclusive('\n').enumerate() {
        if index + 1 == line {
            return start
                + l.char_indices()
                    .nth(column.saturating_sub(1))
                    .map_or(l.len(), |(i, _)| i);
        }
        start += l.len();
    }
    text.len()
}

/// One environment under a prompt.
#[derive(Debug, Clone)]
pub struct EnvEntry {
    /// The environment's name, e.g. `production`.
    pub name: String,
    /// Where the name is.
    pub key: Place,
    /// Where the pin's value starts (`{` of a flow mapping, or its first key).
    pub value: Place,
    /// The pin.
    pub pin: Pin,
    /// Where the `version` scalar is, when written.
    pub version_at: Option<Place>,
    /// Where the `model` scalar is, when written.
    pub model_at: Option<Place>,
}

/// One prompt of the file.
#[derive(Debug, Clone)]
pub struct PromptEntry {
    /// The key as written: `name` or `service/name`.
    pub key: String,
    /// Where the key is.
    pub at: Place,
    /// Its environments, in file order.
    pub environments: Vec<EnvEntry>,
}

impl PromptEntry {
    /// Whether the key names `id`.
    pub fn names(&self, id: &PromptId) -> bool {
        crate::repo::id_matches(id, &self.key)
    }

    /// The environment called `name`.
    pub fn environment(&self, name: &str) -> Option<&EnvEntry> {
        self.environments.iter().find(|e| e.name == name)
    }
}

/// The parsed environments file.
#[derive(Debug, Clone)]
pub struct Environments {
    /// The file, relative to the project root.
    pub path: PathBuf,
    /// Its text.
    pub source: String,
    /// Where `prompts:` is, when written.
    pub prompts_at: Option<Place>,
    /// Its prompts, in file order.
    pub prompts: Vec<PromptEntry>,
}

/// A mapping kept in file order (serde-saphyr gives positions to keys too).
struct Ordered<K, V>(Vec<(K, V)>);

impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for Ordered<K, V> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct M<K, V>(PhantomData<(K, V)>);
        impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Visitor<'de> for M<K, V> {
            type Value = Ordered<K, V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Ordered(entries))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Ordered(Vec::new()))
            }
        }
        deserializer.deserialize_map(M(PhantomData))
    }
}

/// `environments.yaml` as the loader reads it; its JSON Schema is `promptctl schema
/// environments`.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "promptctl environments.yaml")]
pub(crate) struct RawFile {
    /// Each prompt (`name`, or `service/name` where names repeat) and what its environments
    /// run.
    #[serde(default)]
    #[schemars(with = "Option<RawPrompts>")]
    prompts: Option<Spanned<RawPrompts>>,
}

type RawPrompts = Ordered<Spanned<String>, Spanned<Option<RawEnvs>>>;
type RawEnvs = Ordered<Spanned<String>, Spanned<RawPin>>;

/// The value a `Spanned<T>` holds, for schemas (positions are not part of the file).
trait SpannedValue {
    type Value: schemars::JsonSchema;
}

impl<T: schemars::JsonSchema> SpannedValue for Spanned<T> {
    type Value = T;
}

impl<K, V: SpannedValue> schemars::JsonSchema for Ordered<K, V> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!(
            "Map_of_{}",
            <V::Value as schemars::JsonSchema>::schema_name()
        )
        .into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "object",
            "additionalProperties": generator.subschema_for::<V::Value>(),
        })
    }
}

impl schemars::JsonSchema for VersionRef {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "VersionRef".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A version number from 1, or `latest`.",
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": u32::MAX},
                {"const": "latest"}
            ]
        })
    }
}

/// One environment's pin: `{version: 23, model: gpt-4o}`.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawPin {
    /// The version the environment runs: a number, or `latest` (the default).
    #[schemars(with = "Option<VersionRef>")]
    version: Option<Spanned<VersionRef>>,
    /// The model that overrides the prompt's own in this environment.
    #[schemars(with = "Option<String>")]
    model: Option<Spanned<String>>,
}

impl Environments {
    /// Reads the project's environments file; `None` when there is none.
    pub fn load(config: &Config) -> Result<Option<Environments>, Diagnostic> {
        let full = config.environments_file();
        let shown = config.settings.environments.clone();
        let limit = crate::repo::file::MAX_FILE_BYTES as u64;
        let bytes = match crate::files::read_regular(&full, limit) {
            Ok(bytes) => bytes,
            Err(err) if err.is_not_found() => return Ok(None),
            Err(err) => {
                let message = match err {
                    crate::files::ReadError::Io { source, .. } => {
                        format!("cannot read {}: {source}", display_path(&shown))
                    }
                    crate::files::ReadError::NotRegular { kind, .. } => format!(
                        "{} is {kind}, not a regular file: promptctl reads only regular files, never through a symbolic link",
                        display_path(&shown)
                    ),
                    crate::files::ReadError::TooLarge { size, .. } => {
                        return Err(crate::repo::file::too_large(&shown, size));
                    }
                };
                return Err(Diagnostic::error(
                    "unreadable",
                    &shown,
                    Position::start(),
                    message,
                ));
            }
        };
        let text = crate::repo::file::decode_text(&shown, &bytes)?;
        Environments::parse(&shown, &text).map(Some)
    }

    /// Parses the text of an environments file; `path` names it in diagnostics.
    pub fn parse(path: &Path, text: &str) -> Result<Environments, Diagnostic> {
        let mut environments = Environments {
            path: path.to_path_buf(),
            source: text.to_owned(),
            prompts_at: None,
            prompts: Vec::new(),
        };
        let blank = text.lines().all(|line| {
            let line = line.trim();
            line.is_empty() || line.starts_with('#') || line == "---"
        });
        if blank {
            return Ok(environments);
        }
        let raw: RawFile = crate::repo::file::parse_yaml(path, text, &["prompts"])?;
        let Some(prompts) = raw.prompts else {
            return Ok(environments);
        };
        environments.prompts_at = Some(Place::of(&prompts.referenced, text));
        for (key, envs) in prompts.value.0 {
            let mut entry = PromptEntry {
                key: key.value,
                at: Place::of(&key.referenced, text),
                environments: Vec::new(),
            };
            for (name, pin) in envs.value.map(|e| e.0).unwrap_or_default() {
                entry.environments.push(EnvEntry {
                    name: name.value,
                    key: Place::of(&name.referenced, text),
                    value: Place::of(&pin.referenced, text),
                    pin: Pin {
                        version: pin
                            .value
                            .version
                            .as_ref()
                            .map_or(VersionRef::Latest, |v| v.value),
                        model: pin.value.model.as_ref().map(|m| m.value.clone()),
                    },
                    version_at: pin
                        .value
                        .version
                        .as_ref()
                        .map(|v| Place::of(&v.referenced, text)),
                    model_at: pin
                        .value
                        .model
                        .as_ref()
                        .map(|m| Place::of(&m.referenced, text)),
                });
            }
            environments.prompts.push(entry);
        }
        Ok(environments)
    }

    /// The entry for `id`: the one keyed `service/name`, else the one keyed `name`.
    pub fn entry(&self, id: &PromptId) -> Option<&PromptEntry> {
        let full = id.to_string();
        self.prompts
            .iter()
            .find(|p| p.key == full)
            .or_else(|| self.prompts.iter().find(|p| p.names(id)))
    }

    /// What `env` runs for `id` (latest and its own model when the file does not say).
    pub fn resolve(&self, id: &PromptId, env: &str) -> Pin {
        self.entry(id)
            .and_then(|entry| entry.environment(env))
            .map_or_else(Pin::unpinned, |e| e.pin.clone())
    }

    /// Every environment named in the file, in order of first appearance.
    pub fn environment_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for prompt in &self.prompts {
            for env in &prompt.environments {
                if !names.contains(&env.name) {
                    names.push(env.name.clone());
                }
            }
        }
        names
    }

    /// The file's text with `env`'s pin of `id` set to `version` and the model changed as
    /// `model` says; only the bytes that must change are touched. A prompt or environment
    /// the file lacks gets a new line like its siblings'. `key` is the key to write for a
    /// prompt the file lacks.
    pub fn with_pin(
        &self,
        id: &PromptId,
        key: &str,
        env: &str,
        version: VersionRef,
        model: &ModelChange,
    ) -> Result<String, EditError> {
        let text = &self.source;
        let Some(entry) = self.entry(id) else {
            return self.insert_prompt(key, env, version, model);
        };
        let Some(existing) = entry.environment(env) else {
            let new_model = model.apply(None);
            let line = self.last_line_of(entry);
            let indent = self
                .env_indent()
                .map_or_else(|| " ".repeat(entry.at.column - 1 + 2), |i| " ".repeat(i));
            let new_line = format!(
                "{indent}{}: {}",
                scalar(env),
                flow_pin(version, new_model.as_deref())
            );
            if entry.environments.is_empty() && line_has_flow_value(text, entry.at) {
                return Err(EditError::Unsupported(format!(
                    "`{}` in {} is written in flow style; write its environments one per line",
                    entry.key,
                    display_path(&self.path)
                )));
            }
            return Ok(insert_after_line(text, line, &new_line));
        };
        let new_model = model.apply(existing.pin.model.as_deref());
        let start = existing.value.offset;
        if text.as_bytes().get(start) == Some(&b'{') {
            let end = flow_end(text, start).ok_or_else(|| {
                EditError::Unsupported(format!(
                    "cannot find the end of `{env}`'s pin in {}",
                    display_path(&self.path)
                ))
            })?;
            // Splice the scalars when the keys stay the same: the most minimal change.
            let same_keys =
                existing.version_at.is_some() && existing.model_at.is_some() == new_model.is_some();
            if same_keys {
                return Ok(self.splice_scalars(existing, version, new_model.as_deref()));
            }
            let mut out = String::with_capacity(text.len() + 32);
            out.push_str(&text[..start]);
            out.push_str(&flow_pin(version, new_model.as_deref()));
            out.push_str(&text[end..]);
            return Ok(out);
        }
        // A block mapping: splice what exists, add or remove the model's line.
        let keep_line = existing.model_at.is_some() && new_model.is_some();
        let mut out = self.splice_scalars(
            existing,
            version,
            if keep_line {
                new_model.as_deref()
            } else {
                None
            },
        );
        let version_missing = existing.version_at.is_none();
        match (&existing.model_at, new_model.as_deref()) {
            (Some(_), Some(_)) | (None, None) => {}
            (Some(at), None) => {
                out = remove_line(&out, at.line);
            }
            (None, Some(model)) => {
                let indent = " ".repeat(existing.value.column - 1);
                let line = existing.version_at.map_or(existing.value.line, |v| v.line);
                out = insert_after_line(&out, line, &format!("{indent}model: {}", scalar(model)));
            }
        }
        if version_missing {
            let indent = " ".repeat(existing.value.column - 1);
            out = insert_before_line(
                &out,
                existing.value.line,
                &format!("{indent}version: {version}"),
            );
        }
        Ok(out)
    }

    /// The text with the version (and the model, when given) scalars of `existing`
    /// replaced in place.
    fn splice_scalars(
        &self,
        existing: &EnvEntry,
        version: VersionRef,
        model: Option<&str>,
    ) -> String {
        let text = &self.source;
        let mut edits: Vec<(usize, String)> = Vec::new();
        if let Some(at) = existing.version_at {
            edits.push((at.offset, version.to_string()));
        }
        if let (Some(at), Some(model)) = (existing.model_at, model) {
            edits.push((at.offset, scalar(model)));
        }
        // Later offsets first, so earlier ones stay valid.
        edits.sort_by_key(|edit| std::cmp::Reverse(edit.0));
        let mut out = text.clone();
        for (offset, new) in edits {
            let end = scalar_end(&out, offset);
            if out[offset..end] != new {
                out.replace_range(offset..end, &new);
            }
        }
        out
    }

    /// The last line of a prompt's block.
    fn last_line_of(&self, entry: &PromptEntry) -> usize {
        let mut last = entry.at.line;
        for env in &entry.environments {
            last = last.max(env.key.line).max(env.value.line);
            for place in [env.version_at, env.model_at].into_iter().flatten() {
                last = last.max(place.line);
            }
            if self.source.as_bytes().get(env.value.offset) == Some(&b'{')
                && let Some(end) = flow_end(&self.source, env.value.offset)
            {
                last = last.max(crate::config::offset_to_position(&self.source, end).line);
            }
        }
        last
    }

    /// The indentation of environment keys, from the first one in the file.
    fn env_indent(&self) -> Option<usize> {
        self.prompts
            .iter()
            .flat_map(|p| p.environments.first())
            .map(|e| e.key.column - 1)
            .next()
    }

    fn insert_prompt(
        &self,
        key: &str,
        env: &str,
        version: VersionRef,
        model: &ModelChange,
    ) -> Result<String, EditError> {
        let text = &self.source;
        let pin = flow_pin(version, model.apply(None).as_deref());
        let prompt_indent = self.prompts.first().map_or(2, |p| p.at.column - 1);
        let env_indent = self.env_indent().unwrap_or(prompt_indent + 2);
        let block = format!(
            "{}{}:\n{}{}: {pin}",
            " ".repeat(prompt_indent),
            scalar(key),
            " ".repeat(env_indent),
            scalar(env)
        );
        match (self.prompts.last(), self.prompts_at) {
            (Some(last), _) => Ok(insert_after_line(text, self.last_line_of(last), &block)),
            (None, Some(at)) => {
                // `prompts:` with nothing under it (or `{}`): write the block after the key.
                let key_line = text
                    .lines()
                    .enumerate()
                    .take(at.line)
                    .filter(|(_, l)| l.trim_start().starts_with("prompts:"))
                    .map(|(i, _)| i + 1)
                    .last()
                    .ok_or_else(|| {
                        EditError::Unsupported("cannot find `prompts:` in the file".to_owned())
                    })?;
                let line_text = text.lines().nth(key_line - 1).unwrap_or_default();
                let rest = line_text
                    .trim_start()
                    .trim_start_matches("prompts:")
                    .split(" #")
                    .next()
                    .unwrap_or_default()
                    .trim();
                if !rest.is_empty() && rest != "{}" && rest != "~" && rest != "null" {
                    return Err(EditError::Unsupported(
                        "`prompts:` is written in flow style; write it as a block".to_owned(),
                    ));
                }
                let mut out = text.clone();
                if !rest.is_empty() {
                    let line_start = offset_of(text, key_line, 1);
                    let line_end = line_start + line_text.len();
                    out.replace_range(line_start..line_end, "prompts:");
                }
                Ok(insert_after_line(&out, key_line, &block))
            }
            (None, None) => {
                let mut out = text.clone();
                if !out.is_empty() && !out.ends_with('\n') {
                    out.push('\n');
                }
                out.push_str("prompts:\n");
                out.push_str(&block);
                out.push('\n');
                Ok(out)
            }
        }
    }
}

/// How an edit changes a pin's model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelChange {
    /// Leave it as it is.
    Keep,
    /// Override with this model.
    Set(String),
    /// Remove the override (the prompt's own model).
    Clear,
}

impl ModelChange {
    fn apply(&self, current: Option<&str>) -> Option<String> {
        match self {
            ModelChange::Keep => current.map(str::to_owned),
            ModelChange::Set(model) => Some(model.clone()),
            ModelChange::Clear => None,
        }
    }
}

/// Why the file could not be edited.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The file is written in a shape the minimal edit does not handle.
    #[error("{0}")]
    Unsupported(String),
}

/// `{version: N, model: M}`.
fn flow_pin(version: VersionRef, model: Option<&str>) -> String {
    match model {
        Some(model) => format!("{{version: {version}, model: {}}}", scalar(model)),
        None => format!("{{version: {version}}}"),
    }
}

/// A key or model name as a YAML scalar: plain when safe, else double-quoted.
fn scalar(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./@".contains(c))
        && !text.starts_with(['-', '.', '@'])
        && text.parse::<f64>().is_err()
        && !matches!(
            text.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n" | "latest"
        );
    if plain {
        text.to_owned()
    } else {
        serde_json::Value::String(text.to_owned()).to_string()
    }
}

/// The end (exclusive) of the scalar starting at `start`: a quoted one to its closing
/// quote, a plain one to the flow indicator, comment or line end before trailing spaces.
fn scalar_end(text: &str, start: usize) -> usize {
    let bytes = text.as_bytes();
    match bytes.get(start) {
        Some(b'"') => {
            let mut i = start + 1;
            while i < bytes.len() {
                match bytes[i] {
                    b'\\' => i += 2,
                    b'"' => return i + 1,
                    _ => i += 1,
                }
            }
            bytes.len()
        }
        Some(b'\'') => {
            let mut i = start + 1;
            while i < bytes.len() {
                if bytes[i] == b'\'' {
                    if bytes.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    return i + 1;
                }
                i += 1;
            }
            bytes.len()
        }
        _ => {
            let mut i = start;
            while i < bytes.len() {
                match bytes[i] {
                    b',' | b'}' | b']' | b'\n' | b'\r' => break,
                    b'#' if i > start && bytes[i - 1] == b' ' => break,
                    _ => i += 1,
                }
            }
            let mut end = i;
            while end > start && matches!(bytes[end - 1], b' ' | b'\t') {
                end -= 1;
            }
            end
        }
    }
}

/// The end (exclusive) of the flow collection opening at `start`.
fn flow_end(text: &str, start: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            b'"' | b'\'' => {
                i = scalar_end(text, i);
                continue;
            }
            b'#' if i > 0 && matches!(bytes[i - 1], b' ' | b'\t') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Whether the value after the key at `at` sits on the key's line (`key: {...}`).
fn line_has_flow_value(text: &str, at: Place) -> bool {
    let line = text.lines().nth(at.line - 1).unwrap_or_default();
    let code = line.split(" #").next().unwrap_or_default();
    code.split_once(':')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('{'))
}

/// `text` with `new_line` inserted after line `line` (1-based).
fn insert_after_line(text: &str, line: usize, new_line: &str) -> String {
    let mut offset = 0;
    for (index, l) in text.split_inclusive('\n').enumerate() {
        offset += l.len();
        if index + 1 == line {
            break;
        }
    }
    // A file written with CRLF line ends gets CRLF lines.
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let mut out = String::with_capacity(text.len() + new_line.len() + 2);
    out.push_str(&text[..offset]);
    if !out.is_empty() && !out.ends_with('\n') {
        out.push_str(eol);
    }
    out.push_str(new_line);
    out.push_str(eol);
    out.push_str(&text[offset..]);
    out
}

/// `text` with `new_line` inserted before line `line` (1-based).
fn insert_before_line(text: &str, line: usize, new_line: &str) -> String {
    if line <= 1 {
        return format!("{new_line}\n{text}");
    }
    insert_after_line(text, line - 1, new_line)
}

/// `text` without line `line` (1-based).
fn remove_line(text: &str, line: usize) -> String {
    text.split_inclusive('\n')
        .enumerate()
        .filter(|(index, _)| index + 1 != line)
        .map(|(_, l)| l)
        .collect()
}

/// A prompt's definition as an environment runs it.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The definition, with the environment's model applied.
    pub definition: Definition,
    /// The partials of the version's commit (the working tree's for an uncommitted one).
    pub partials: Partials,
    /// The version number; `None` for a prompt that has no committed version yet.
    pub version: Option<u32>,
    /// The commit of the version.
    pub commit: Option<String>,
    /// The model it runs on.
    pub model: String,
    /// Whether the file names this environment for this prompt.
    pub pinned: bool,
}

/// Why an environment's version could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The pinned version does not exist.
    #[error("{prompt} has no version {version} (pinned in {env}); its latest is {latest}")]
    NoSuchVersion {
        /// The prompt.
        prompt: PromptId,
        /// The environment.
        env: String,
        /// The pinned version.
        version: u32,
        /// Its latest version (0: none).
        latest: u32,
    },
    /// The prompt has no version at all and no working-tree definition.
    #[error("{prompt} has no version to run")]
    NoVersion {
        /// The prompt.
        prompt: PromptId,
    },
    /// Reading history failed.
    #[error(transparent)]
    History(#[from] HistoryError),
}

/// What `env` runs for `id`: the pinned (or latest committed) version's definition from
/// `history`, with the partials of its commit and the environment's model applied. A
/// prompt without a committed version falls back to `working` (its working-tree definition
/// and partials) when the pin is `latest`. The router and `render`/`test --env` share it.
pub fn resolve_definition(
    history: &History,
    environments: Option<&Environments>,
    id: &PromptId,
    env: &str,
    working: Option<(&Definition, &Partials)>,
) -> Result<Resolved, ResolveError> {
    let pinned = environments
        .and_then(|e| e.entry(id))
        .and_then(|entry| entry.environment(env))
        .is_some();
    let pin = environments.map_or_else(Pin::unpinned, |e| e.resolve(id, env));
    let prompt: Option<&PromptHistory> = history.prompts.get(id);
    let latest = prompt.map_or(0, |p| p.versions.len() as u32);
    let version =
        match (pin.version, prompt.and_then(PromptHistory::latest)) {
            (VersionRef::Number(n), _) => {
                Some(prompt.and_then(|p| p.version(n)).ok_or_else(|| {
                    ResolveError::NoSuchVersion {
                        prompt: id.clone(),
                        env: env.to_owned(),
                        version: n,
                        latest,
                    }
                })?)
            }
            (VersionRef::Latest, latest) => latest,
        };
    let (mut definition, partials, number, commit) = match version {
        Some(version) => {
            let commit = version.commit.as_ref().map(|c| c.id.clone());
            let partials = match &commit {
                Some(commit) => history.partials_at(commit)?,
                None => working.map(|w| w.1.clone()).unwrap_or_default(),
            };
            (
                (*version.definition()?).clone(),
                partials,
                Some(version.number),
                commit,
            )
        }
        None => match working {
            Some((definition, partials)) => (definition.clone(), partials.clone(), None, None),
            None => return Err(ResolveError::NoVersion { prompt: id.clone() }),
        },
    };
    if let Some(model) = &pin.model {
        definition.model = model.clone();
    }
    Ok(Resolved {
        model: definition.model.clone(),
        definition,
        partials,
        version: number,
        commit,
        pinned,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# Which version runs where.\nprompts:\n  code_review_agent:                 # a prompt\n    production: {version: 23, model: gpt-4o}\n    staging:    {version: 23, model: gpt-4o-mini}   # trial\n    canary:     {version: latest, model: claude-sonnet-4-5}\n\n  # billing next\n  billing/invoice:\n    production: {version: 4}\n";

    fn parse(text: &str) -> Environments {
        Environments::parse(Path::new("environments.yaml"), text).expect("parses")
    }

    fn id(service: &str, name: &str) -> PromptId {
        PromptId::new(service, name)
    }

    #[test]
    fn parses_pins_with_positions() {
        let envs = parse(FILE);
        assert_eq!(envs.prompts.len(), 2);
        let review = &envs.prompts[0];
        assert_eq!(review.key, "code_review_agent");
        assert_eq!(review.at.line, 3);
        let staging = review.environment("staging").expect("staging");
        assert_eq!(staging.pin.version, VersionRef::Number(23));
        assert_eq!(staging.pin.model.as_deref(), Some("gpt-4o-mini"));
        assert_eq!(staging.version_at.expect("at").line, 5);
        assert_eq!(&FILE[staging.version_at.expect("at").offset..][..2], "23");
        assert_eq!(&FILE[staging.value.offset..][..1], "{");
        let canary = review.environment("canary").expect("canary");
        assert_eq!(canary.pin.version, VersionRef::Latest);
        assert_eq!(
            envs.resolve(&id("code-review", "code_review_agent"), "nowhere"),
            Pin::unpinned()
        );
        assert_eq!(
            envs.resolve(&id("billing", "invoice"), "production")
                .version,
            VersionRef::Number(4)
        );
        assert_eq!(
            envs.environment_names(),
            ["production", "staging", "canary"]
        );
    }

    #[test]
    fn bad_values_and_unknown_keys_are_diagnostics_at_their_line() {
        let err = Environments::parse(
            Path::new("environments.yaml"),
            "prompts:\n  a:\n    production: {version: 0}\n",
        )
        .expect_err("rejects");
        assert_eq!(err.position.line, 3);
        let err = Environments::parse(
            Path::new("environments.yaml"),
            "prompts:\n  a:\n    production: {version: 2, modle: x}\n",
        )
        .expect_err("rejects");
        assert_eq!(err.position.line, 3);
        assert_eq!(err.help.as_deref(), Some("did you mean `model`?"));
    }

    fn edit(
        text: &str,
        prompt: PromptId,
        env: &str,
        version: VersionRef,
        model: ModelChange,
    ) -> String {
        let key = prompt.name.clone();
        parse(text)
            .with_pin(&prompt, &key, env, version, &model)
            .expect("edits")
    }

    #[test]
    fn changing_a_version_touches_only_its_digits() {
        let out = edit(
            FILE,
            id("code-review", "code_review_agent"),
            "staging",
            VersionRef::Number(24),
            ModelChange::Keep,
        );
        assert_eq!(
            out,
            FILE.replace(
                "staging:    {version: 23, model: gpt-4o-mini}",
                "staging:    {version: 24, model: gpt-4o-mini}"
            )
        );
        let again = parse(&out);
        assert_eq!(
            again
                .resolve(&id("code-review", "code_review_agent"), "staging")
                .version,
            VersionRef::Number(24)
        );
    }

    #[test]
    fn changing_the_model_and_adding_or_removing_one() {
        let review = id("code-review", "code_review_agent");
        let out = edit(
            FILE,
            review.clone(),
            "production",
            VersionRef::Latest,
            ModelChange::Set("o3".into()),
        );
        assert_eq!(
            out,
            FILE.replace(
                "{version: 23, model: gpt-4o}",
                "{version: latest, model: o3}"
            )
        );
        let out = edit(
            FILE,
            review,
            "production",
            VersionRef::Number(23),
            ModelChange::Clear,
        );
        assert_eq!(
            out,
            FILE.replace("{version: 23, model: gpt-4o}", "{version: 23}")
        );
        let out = edit(
            FILE,
            id("billing", "invoice"),
            "production",
            VersionRef::Number(5),
            ModelChange::Set("needs: quotes".into()),
        );
        assert_eq!(
            out,
            FILE.replace("{version: 4}", "{version: 5, model: \"needs: quotes\"}")
        );
    }

    #[test]
    fn a_new_environment_is_a_new_line_after_its_siblings() {
        let out = edit(
            FILE,
            id("billing", "invoice"),
            "staging",
            VersionRef::Number(3),
            ModelChange::Set("gpt-4o".into()),
        );
        assert_eq!(
            out,
            format!("{FILE}    staging: {{version: 3, model: gpt-4o}}\n")
        );
        let out = edit(
            FILE,
            id("code-review", "code_review_agent"),
            "eu",
            VersionRef::Number(2),
            ModelChange::Keep,
        );
        assert_eq!(
            out,
            FILE.replace(
                "claude-sonnet-4-5}\n",
                "claude-sonnet-4-5}\n    eu: {version: 2}\n"
            )
        );
    }

    #[test]
    fn a_new_prompt_is_appended_with_the_files_indentation() {
        let out = edit(
            FILE,
            id("support", "reply"),
            "production",
            VersionRef::Number(1),
            ModelChange::Keep,
        );
        assert_eq!(
            out,
            format!("{FILE}  reply:\n    production: {{version: 1}}\n")
        );
        let out = edit(
            "",
            id("support", "reply"),
            "production",
            VersionRef::Number(1),
            ModelChange::Keep,
        );
        assert_eq!(out, "prompts:\n  reply:\n    production: {version: 1}\n");
        let out = edit(
            "# pins\nprompts: {}\n",
            id("support", "reply"),
            "production",
            VersionRef::Number(1),
            ModelChange::Keep,
        );
        assert_eq!(
            out,
            "# pins\nprompts:\n  reply:\n    production: {version: 1}\n"
        );
    }

    #[test]
    fn block_style_pins_are_spliced_too() {
        let text = "prompts:\n  reply:\n    production:\n      version: 2   # known good\n      model: \"gpt-4o\"\n    staging:\n      version: 3\n";
        let reply = id("support", "reply");
        let out = edit(
            text,
            reply.clone(),
            "production",
            VersionRef::Number(3),
            ModelChange::Set("o3".into()),
        );
        assert_eq!(
            out,
            text.replace("version: 2 ", "version: 3 ")
                .replace("\"gpt-4o\"", "o3")
        );
        let out = edit(
            text,
            reply.clone(),
            "production",
            VersionRef::Number(2),
            ModelChange::Clear,
        );
        assert_eq!(out, text.replace("      model: \"gpt-4o\"\n", ""));
        let out = edit(
            text,
            reply,
            "staging",
            VersionRef::Number(3),
            ModelChange::Set("o3".into()),
        );
        assert_eq!(out, format!("{text}      model: o3\n"));
        parse(&out);
    }

    #[test]
    fn crlf_files_keep_their_line_ends() {
        let text = "prompts:\r\n  reply:\r\n    production: {version: 1}  # ok\r\n";
        let reply = id("support", "reply");
        let out = edit(
            text,
            reply.clone(),
            "production",
            VersionRef::Number(2),
            ModelChange::Keep,
        );
        assert_eq!(out, text.replace("version: 1", "version: 2"));
        let out = edit(
            text,
            reply,
            "staging",
            VersionRef::Number(2),
            ModelChange::Keep,
        );
        assert_eq!(out, format!("{text}    staging: {{version: 2}}\r\n"));
    }

    #[test]
    fn versions_serialize_as_the_file_writes_them() {
        assert_eq!(
            serde_json::to_string(&VersionRef::Latest).ok().as_deref(),
            Some("\"latest\"")
        );
        assert_eq!(
            serde_json::to_string(&VersionRef::Number(3))
                .ok()
                .as_deref(),
            Some("3")
        );
    }

    #[test]
    fn unchanged_pin_leaves_the_text_identical() {
        let out = edit(
            FILE,
            id("code-review", "code_review_agent"),
            "canary",
            VersionRef::Latest,
            ModelChange::Keep,
        );
        assert_eq!(out, FILE);
    }
}
