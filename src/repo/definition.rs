//! What a prompt file means: its identity and its definition.
//!
//! The definition is what reaches the model (SPEC section 2): the template or messages, the
//! model, the parameters and the variables. Two files with equal definitions are the same
//! version, however differently they are formatted; tests and the description are not part
//! of it. A definition has one hash: the SHA-256 of its canonical JSON. Its first 128 bits are
//! the [`Definition::digest`] the numbering compares and the stores check; its first 64 bits,
//! in hex, are the [`Definition::fingerprint`] people see.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::file::{PromptFile, Role, VariableSpec};

/// A prompt's identity: `(service, name)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PromptId {
    /// The service, by default the first folder under `prompts/`.
    pub service: String,
    /// The name, by default the file stem.
    pub name: String,
}

impl PromptId {
    /// An identity from its parts.
    pub fn new(service: impl Into<String>, name: impl Into<String>) -> Self {
        PromptId {
            service: service.into(),
            name: name.into(),
        }
    }

    /// Derives a file's identity from its fields and its path relative to the prompts folder.
    /// `None` when the file sets no service and sits directly in the prompts folder.
    pub fn of(file: &PromptFile, relative_path: &Path) -> Option<PromptId> {
        PromptId::from_parts(
            file.name.as_ref().map(|name| name.value.as_str()),
            file.service.as_ref().map(|service| service.value.as_str()),
            relative_path,
        )
    }

    /// Derives an identity from a file's explicit `name` and `service` (when set) and its
    /// path relative to the prompts folder; the same rule as [`PromptId::of`], for callers
    /// that keep only those two fields of a parsed file (the history walk).
    pub fn from_parts(
        name: Option<&str>,
        service: Option<&str>,
        relative_path: &Path,
    ) -> Option<PromptId> {
        let name = match name {
            Some(name) => name.to_owned(),
            None => relative_path.file_stem()?.to_string_lossy().into_owned(),
        };
        let service = match service {
            Some(service) => service.to_owned(),
            None => {
                let mut components = relative_path.components();
                let first = components.next()?;
                components.next()?;
                first.as_os_str().to_string_lossy().into_owned()
            }
        };
        Some(PromptId { service, name })
    }
}

impl fmt::Display for PromptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.service, self.name)
    }
}

/// One message of a chat definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageTemplate {
    /// Who speaks.
    pub role: Role,
    /// The message's template text.
    pub content: String,
}

/// The template of a definition: one user message, or a chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Body {
    /// A single user message.
    Template(String),
    /// A list of messages.
    Messages(Vec<MessageTemplate>),
}

impl Body {
    /// The message templates, a single-template body being one user message.
    pub fn messages(&self) -> Vec<(Role, &str)> {
        match self {
            Body::Template(text) => vec![(Role::User, text.as_str())],
            Body::Messages(messages) => messages
                .iter()
                .map(|message| (message.role, message.content.as_str()))
                .collect(),
        }
    }

    /// The text stored in the registry's `template` column: the template itself, or the
    /// JSON of the messages for a chat prompt (SPEC section 4).
    pub fn registry_text(&self) -> String {
        match self {
            Body::Template(text) => text.clone(),
            Body::Messages(messages) => {
                serde_json::to_string(messages).unwrap_or_else(|_| String::from("[]"))
            }
        }
    }
}

/// What reaches the model: a prompt's versioned content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    /// The model the prompt is written for.
    pub model: String,
    /// Provider parameters.
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// Declared inputs.
    pub variables: BTreeMap<String, VariableSpec>,
    /// The template or messages.
    pub body: Body,
}

impl Definition {
    /// The definition of a parsed file, or `None` when it lacks a model or a body (which
    /// `check` reports).
    pub fn of(file: &PromptFile) -> Option<Definition> {
        let model = file.model.as_ref()?.value.clone();
        let body = match (&file.template, &file.messages) {
            (Some(template), None) => Body::Template(template.value.clone()),
            (None, Some(messages)) => Body::Messages(
                messages
                    .value
                    .iter()
                    .map(|message| MessageTemplate {
                        role: message.role.value,
                        content: message.content.value.clone(),
                    })
                    .collect(),
            ),
            _ => return None,
        };
        Some(Definition {
            model,
            parameters: file.parameters.clone().unwrap_or_default(),
            variables: file
                .variables
                .as_ref()
                .map(|variables| {
                    variables
                        .iter()
                        .map(|(name, spec)| (name.clone(), spec.value.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            body,
        })
    }

    /// The canonical JSON of the definition: keys sorted, no whitespace. Equal definitions
    /// give equal text whatever the file's formatting.
    pub fn canonical_json(&self) -> String {
        // serde_json's maps are sorted (no `preserve_order`), and our maps are BTreeMaps.
        serde_json::to_value(self)
            .map(|value| value.to_string())
            .unwrap_or_default()
    }

    /// The definition as YAML in the prompt file format (keys in canonical order), the way
    /// `show` prints it and `diff` compares it: equal definitions give equal text, and the
    /// text parses back to the same definition.
    pub fn to_yaml(&self) -> String {
        let mut out = format!("model: {}\n", yaml_scalar(&self.model, 0));
        if !self.parameters.is_empty() {
            out.push_str("parameters:\n");
            for (key, value) in &self.parameters {
                out.push_str(&format!(
                    "  {}: {}\n",
                    yaml_scalar(key, 2),
                    yaml_value(value, 2)
                ));
            }
        }
        if !self.variables.is_empty() {
            out.push_str("variables:\n");
            for (name, spec) in &self.variables {
                let value = serde_json::to_value(spec).unwrap_or_default();
                out.push_str(&format!("  {}: {}\n", yaml_scalar(name, 2), value));
            }
        }
        match &self.body {
            Body::Template(text) => {
                out.push_str(&format!("template: {}\n", yaml_scalar(text, 0)));
            }
            Body::Messages(messages) => {
                out.push_str("messages:\n");
                for message in messages {
                    out.push_str(&format!("  - role: {}\n", message.role.as_str()));
                    out.push_str(&format!(
                        "    content: {}\n",
                        yaml_scalar(&message.content, 4)
                    ));
                }
            }
        }
        out
    }

    /// The definition's digest: the first 128 bits of the SHA-256 of its canonical JSON
    /// (equal definitions, equal digests).
    pub fn digest(&self) -> u128 {
        digest_of_json(self.canonical_json().as_bytes())
    }

    /// The fingerprint people see (`log`, `show`): the first 64 bits of the same SHA-256 as
    /// 16 hex digits, the start of `sha256sum` of the canonical JSON.
    pub fn fingerprint(&self) -> String {
        fingerprint_of(self.digest())
    }
}

/// The digest of a definition's canonical JSON: the first 128 bits of its SHA-256.
pub(crate) fn digest_of_json(json: &[u8]) -> u128 {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(json);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    u128::from_le_bytes(bytes)
}

/// The fingerprint of a [`Definition::digest`]: its first 8 bytes in hex.
pub(crate) fn fingerprint_of(digest: u128) -> String {
    digest.to_le_bytes()[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A JSON value as YAML: strings as [`yaml_scalar`], anything else as JSON (which is YAML).
fn yaml_value(value: &serde_json::Value, indent: usize) -> String {
    match value {
        serde_json::Value::String(text) => yaml_scalar(text, indent),
        other => other.to_string(),
    }
}

/// A string as a YAML scalar at a mapping key indented by `indent`: plain when that is
/// unambiguous, a literal block for multi-line text, else double-quoted (JSON escaping).
fn yaml_scalar(text: &str, indent: usize) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_alphanumeric() || " _-./()".contains(c))
        && !text.starts_with([' ', '-', '.'])
        && !text.ends_with(' ')
        && text.parse::<f64>().is_err()
        && !matches!(
            text.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n" | "nan" | "inf"
        );
    if plain {
        return text.to_owned();
    }
    let block_safe = text.contains('\n')
        && !text.contains('\r')
        && !text.starts_with('\n')
        && text
            .chars()
            .all(|c| c == '\n' || c == '\t' || !c.is_control());
    if !block_safe {
        return serde_json::Value::String(text.to_owned()).to_string();
    }
    let body = text.trim_end_matches('\n');
    let chomp = match text.len() - body.len() {
        0 => "-",
        1 => "",
        _ => "+",
    };
    let pad = " ".repeat(indent + 2);
    let indicator = if body.starts_with([' ', '\t']) {
        "2"
    } else {
        ""
    };
    let mut out = format!("|{indicator}{chomp}");
    for line in text.strip_suffix('\n').unwrap_or(text).split('\n') {
        out.push('\n');
        if !line.is_empty() {
            out.push_str(&pad);
            out.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::file::parse_prompt;

    fn definition(text: &str) -> Definition {
        let file = parse_prompt(Path::new("prompts/s/p.yaml"), text).expect("parses");
        Definition::of(&file).expect("complete")
    }

    #[test]
    fn formatting_key_order_tests_and_description_do_not_change_the_definition() {
        let a = definition(
            "model: m\nparameters: {temperature: 0.2, max_tokens: 5}\ntemplate: \"hi {{ x }}\"\nvariables: {x: {type: string}}\n",
        );
        let b = definition(
            "# a comment\ndescription: new words\nvariables:\n  x:\n    type: string\ntemplate: hi {{ x }}\nparameters:\n  max_tokens: 5\n  temperature: 0.2\nmodel: m\ntests:\n  - name: t\n",
        );
        assert_eq!(a.canonical_json(), b.canonical_json());
        assert_eq!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn yaml_text_parses_back_to_the_same_definition() {
        for text in [
            "model: gpt-4o\nparameters: {temperature: 0.2, stop: [\"a\"], name: \"true\"}\nvariables: {x: {type: string, required: true, default: \"d: e\"}}\ntemplate: \"hi {{ x }}: yes\"\n",
            "model: m\nmessages:\n  - role: system\n    content: |\n      line one\n\n        indented\n  - role: user\n    content: \"  leading\\nsecond\\n\\n\\n\"\n",
            "model: \"1.5\"\ntemplate: \"no newline\\nat end\"\n",
            "model: m\ntemplate: \"été — ünïcode\\n\"\n",
        ] {
            let original = definition(text);
            let yaml = original.to_yaml();
            let again = definition(&yaml);
            assert_eq!(original, again, "{yaml}");
        }
    }

    #[test]
    fn the_fingerprint_starts_the_sha256_of_the_canonical_json() {
        use sha2::Digest as _;
        let definition = definition("model: gpt-4o\ntemplate: \"Hi {{ x }}\"\n");
        let hex: String = sha2::Sha256::digest(definition.canonical_json().as_bytes())
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        assert_eq!(definition.fingerprint(), hex[..16]);
    }

    #[test]
    fn a_changed_parameter_changes_the_fingerprint() {
        let a = definition("model: m\nparameters: {temperature: 0.2}\ntemplate: hi\n");
        let b = definition("model: m\nparameters: {temperature: 0.3}\ntemplate: hi\n");
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn identity_defaults_to_folder_and_stem() {
        let file = parse_prompt(Path::new("x.yaml"), "model: m\ntemplate: hi\n").expect("parses");
        assert_eq!(
            PromptId::of(&file, Path::new("billing/sub/invoice.yaml")),
            Some(PromptId::new("billing", "invoice"))
        );
        assert_eq!(PromptId::of(&file, Path::new("invoice.yaml")), None);
    }
}
