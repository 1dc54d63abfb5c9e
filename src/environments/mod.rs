//! `environments.yaml`: which version and which model each environment runs (SPEC
//! section 1), resolved for rendering and testing, and edited with minimal changes.
//!
//! The file is parsed with serde-saphyr keeping every position, so that `check` points at
//! the offending line and `pin` / `promote` can splice a new value into the exact bytes of
//! the old one: the rest of the file (comments, order, spacing) is never re-serialized.
//! A prompt missing from the file, or an environment missing under a prompt, runs the
//! prompt's latest version on its own model.
//!
//! Three jobs, one file each: the model with positions (here: parse, look up, resolve a
//! pin), the resolution of what an environment runs against Git history (`resolve.rs`),
//! and the byte-splicing editor of `pin` and `promote` (`edit.rs`).
//!
//! This module knows the file format and Git history, nothing of providers or printing.

use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use serde_saphyr::Spanned;

use std::collections::BTreeMap;

use crate::config::Config;
use crate::diagnostic::{Diagnostic, Position, display_path};
use crate::history::file_changes::ChangeAt;
use crate::repo::PromptId;

mod edit;
mod resolve;

pub use edit::ModelChange;
pub use resolve::{ResolveError, Resolved, resolve_definition};

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

/// Which side of an environment's canary split a run or a resolution is on.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// What the environment runs outside its canary's slice (all of it without a canary).
    Baseline,
    /// The canary: `canary:` inside the environment.
    Canary,
}

impl Side {
    /// `baseline` or `canary`, as `prompt_runs.side` stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Baseline => "baseline",
            Side::Canary => "canary",
        }
    }

    /// The side `text` names (`baseline`, `canary`).
    pub fn parse(text: &str) -> Option<Side> {
        match text {
            "baseline" => Some(Side::Baseline),
            "canary" => Some(Side::Canary),
            _ => None,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A canary inside an environment: `canary: {version: 8, model: o3, weight: 10}`. What it
/// leaves out it takes from the environment's own pin, so promoting it is writing its
/// keys over the pin's.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Canary {
    /// The version the canary runs; `None`: the environment's.
    pub version: Option<VersionRef>,
    /// The model the canary runs; `None`: the environment's.
    pub model: Option<String>,
    /// The share of calls the canary takes, a percentage above 0 and at most 100.
    pub weight: f64,
}

/// A canary's weight as people read it: `10`, `0.5`, `2.25`; a weight below a hundredth
/// of a percent in scientific notation (`1e-5`), never hundreds of digits.
pub fn weight_label(weight: f64) -> String {
    if weight >= 0.01 {
        let text = format!("{weight:.2}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        format!("{weight:e}")
    }
}

impl Canary {
    /// What the canary side runs, over the environment's `pin`.
    pub fn pin_over(&self, pin: &Pin) -> Pin {
        Pin {
            version: self.version.unwrap_or(pin.version),
            model: self.model.clone().or_else(|| pin.model.clone()),
        }
    }
}

/// Where a canary is written in the file.
#[derive(Debug, Clone)]
pub struct CanaryEntry {
    /// The canary.
    pub canary: Canary,
    /// Where the `canary` key is.
    pub key: Place,
    /// Where its value starts (`{` of a flow mapping, or its first key).
    pub value: Place,
    /// Where `weight`'s scalar is.
    pub weight_at: Place,
    /// Where the canary's `version` scalar is, when written.
    pub version_at: Option<Place>,
    /// Where the canary's `model` scalar is, when written.
    pub model_at: Option<Place>,
    /// The places of every scalar it writes (for the end of a block mapping).
    pub scalars: Vec<Place>,
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
    /// The canary split inside the environment, when written.
    pub canary: Option<CanaryEntry>,
}

impl EnvEntry {
    /// What `side` of this environment runs (`None`: the canary side of an environment
    /// without a canary).
    pub fn pin_of(&self, side: Side) -> Option<Pin> {
        match side {
            Side::Baseline => Some(self.pin.clone()),
            Side::Canary => self.canary.as_ref().map(|c| c.canary.pin_over(&self.pin)),
        }
    }
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
    /// A canary: a share of the environment's calls run another version, model or both
    /// (`promptctl canary status|promote|abort`).
    #[serde(default, deserialize_with = "written_canary")]
    #[schemars(with = "RawCanary")]
    canary: Option<Spanned<RawCanary>>,
}

/// A `canary:` key that is written has a value: an empty one (`canary:`, `canary: ~`) is
/// an error rather than no split.
fn written_canary<'de, D: de::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Spanned<RawCanary>>, D::Error> {
    match Option::<Spanned<RawCanary>>::deserialize(deserializer)? {
        Some(canary) => Ok(Some(canary)),
        None => Err(de::Error::custom(
            "`canary` is empty: write `canary: {version: N, weight: 10}`, or remove the key",
        )),
    }
}

/// A canary split: `{version: 8, model: o3, weight: 10}`.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawCanary {
    /// The version the canary runs (default: the environment's).
    #[schemars(with = "Option<VersionRef>")]
    version: Option<Spanned<VersionRef>>,
    /// The model the canary runs (default: the environment's).
    #[schemars(with = "Option<String>")]
    model: Option<Spanned<String>>,
    /// The percentage of calls the canary takes: above 0, at most 100.
    #[schemars(with = "f64", extend("exclusiveMinimum" = 0, "maximum" = 100))]
    weight: Spanned<f64>,
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
                let canary = match &pin.value.canary {
                    Some(raw) => Some(canary_entry(path, text, raw)?),
                    None => None,
                };
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
                    canary,
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

    /// The environment `env` of `id`, when the file writes it.
    pub fn environment(&self, id: &PromptId, env: &str) -> Option<&EnvEntry> {
        self.entry(id).and_then(|entry| entry.environment(env))
    }

    /// The canary split of `env` for `id`, when the file writes one.
    pub fn canary(&self, id: &PromptId, env: &str) -> Option<&Canary> {
        self.environment(id, env)
            .and_then(|e| e.canary.as_ref())
            .map(|c| &c.canary)
    }

    /// Whether `other` says the same as this file for every prompt and environment but
    /// `env` of `id` (its pins and canaries): an edit of one environment checks it
    /// touched no other.
    pub fn same_except(&self, other: &Environments, id: &PromptId, env: &str) -> bool {
        let said = |file: &Environments| {
            let mut said: BTreeMap<(String, String), (Pin, Option<Canary>)> = BTreeMap::new();
            for entry in &file.prompts {
                for e in &entry.environments {
                    if entry.names(id) && e.name == env {
                        continue;
                    }
                    let canary = e.canary.as_ref().map(|c| c.canary.clone());
                    said.insert((entry.key.clone(), e.name.clone()), (e.pin.clone(), canary));
                }
            }
            said
        };
        said(self) == said(other)
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
}

/// For each canary split of the environments file at `start` (default `HEAD`), keyed by
/// its prompt key as written and its environment, the first-parent commit that last
/// changed it (the environment's pin or its canary): where `canary status` and the
/// registry's `canary_since` start comparing.
pub fn split_changes(
    config: &Config,
    start: Option<&str>,
) -> Result<BTreeMap<(String, String), ChangeAt>, crate::history::HistoryError> {
    let file = &config.settings.environments;
    let splits = |text: Option<&str>| {
        let mut found: BTreeMap<(String, String), (Pin, Canary)> = BTreeMap::new();
        let parsed = text.and_then(|text| Environments::parse(file, text).ok());
        for entry in parsed.iter().flat_map(|e| &e.prompts) {
            for env in &entry.environments {
                if let Some(split) = &env.canary {
                    let key = (entry.key.clone(), env.name.clone());
                    found.insert(key, (env.pin.clone(), split.canary.clone()));
                }
            }
        }
        found
    };
    crate::history::file_changes::last_changes(config, file, start, splits)
}

/// The canary written at `raw`, its weight checked (above 0, at most 100).
fn canary_entry(
    path: &Path,
    text: &str,
    raw: &Spanned<RawCanary>,
) -> Result<CanaryEntry, Diagnostic> {
    let weight = &raw.value.weight;
    let weight_at = Place::of(&weight.referenced, text);
    if !(weight.value > 0.0 && weight.value <= 100.0) {
        return Err(Diagnostic::error(
            "invalid-canary",
            path,
            weight_at.position(),
            format!(
                "a canary's weight is a percentage above 0 and at most 100, not {}",
                weight.value
            ),
        )
        .with_source(text)
        .with_help("write e.g. `weight: 10` for a tenth of the calls"));
    }
    let version_at = raw
        .value
        .version
        .as_ref()
        .map(|v| Place::of(&v.referenced, text));
    let model_at = raw
        .value
        .model
        .as_ref()
        .map(|m| Place::of(&m.referenced, text));
    let value = Place::of(&raw.referenced, text);
    let scalars = [Some(weight_at), version_at, model_at]
        .into_iter()
        .flatten()
        .collect();
    Ok(CanaryEntry {
        canary: Canary {
            version: raw.value.version.as_ref().map(|v| v.value),
            model: raw.value.model.as_ref().map(|m| m.value.clone()),
            weight: weight.value,
        },
        key: key_before(text, value.offset).unwrap_or(value),
        value,
        weight_at,
        version_at,
        model_at,
        scalars,
    })
}

/// The place of the key whose value starts at `value` (`canary:` before `{`): back over
/// blanks, comments, an anchor or a tag, the `:`, then a plain or quoted key.
fn key_before(text: &str, value: usize) -> Option<Place> {
    let head = key_end(text.get(..value)?);
    let head = head.strip_suffix(':')?.trim_end_matches([' ', '\t']);
    let start = match head.chars().last()? {
        quote @ ('"' | '\'') => head[..head.len() - 1].rfind(quote)?,
        _ => head
            .rfind(|c: char| c.is_whitespace() || c == '{' || c == ',')
            .map_or(0, |i| i + 1),
    };
    let position = crate::config::offset_to_position(text, start);
    Some(Place {
        line: position.line,
        column: position.column,
        offset: start,
    })
}

/// `head` without what may stand between a key's `:` and its value: blanks, comment
/// lines, a trailing comment, an anchor (`&name`) or a tag (`!tag`).
fn key_end(mut head: &str) -> &str {
    loop {
        head = head.trim_end();
        let line_start = head.rfind('\n').map_or(0, |i| i + 1);
        let line = &head[line_start..];
        let bytes = line.as_bytes();
        if let Some(comment) =
            (0..bytes.len()).find(|&i| crate::yaml_scan::starts_comment(bytes, i))
        {
            head = &head[..line_start + comment];
            continue;
        }
        let token = line.rfind([' ', '\t']).map_or(0, |i| i + 1);
        if line[token..].starts_with(['&', '!']) && token > 0 {
            head = &head[..line_start + token];
            continue;
        }
        return head;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(super) const FILE: &str = "# Which version runs where.\nprompts:\n  code_review_agent:                 # a prompt\n    production: {version: 23, model: gpt-4o}\n    staging:    {version: 23, model: gpt-4o-mini}   # trial\n    canary:     {version: latest, model: claude-sonnet-4-5}\n\n  # billing next\n  billing/invoice:\n    production: {version: 4}\n";

    /// `text` parsed as `environments.yaml`.
    pub(crate) fn parse(text: &str) -> Environments {
        Environments::parse(Path::new("environments.yaml"), text).expect("parses")
    }

    /// Why `text` does not parse as `environments.yaml`.
    fn parse_err(text: &str) -> Diagnostic {
        Environments::parse(Path::new("environments.yaml"), text).expect_err("rejects")
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
        let err = parse_err("prompts:\n  a:\n    production: {version: 0}\n");
        assert_eq!(err.position.line, 3);
        let err = parse_err("prompts:\n  a:\n    production: {version: 2, modle: x}\n");
        assert_eq!(err.position.line, 3);
        assert_eq!(err.help.as_deref(), Some("did you mean `model`?"));
    }

    #[test]
    fn an_empty_canary_is_an_error_at_its_line() {
        for empty in ["canary:", "canary: ~", "canary: null"] {
            let err = parse_err(&format!(
                "prompts:\n  a:\n    production:\n      version: 1\n      {empty}\n"
            ));
            assert!(
                err.message.contains("`canary` is empty"),
                "{empty}: {}",
                err.message
            );
        }
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
}
