//! What a prompt file means: its identity and its definition.
//!
//! The definition is what reaches the model (SPEC section 2): the template or messages, the
//! model, the parameters and the variables. Two files with equal definitions are the same
//! version, however differently they are formatted; tests and the description are not part
//! of it. The fingerprint is a hash of the definition's canonical JSON.

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
        let name = match &file.name {
            Some(name) => name.value.clone(),
            None => relative_path.file_stem()?.to_string_lossy().into_owned(),
        };
        let service = match &file.service {
            Some(service) => service.value.clone(),
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

    /// A stable 64-bit fingerprint of the canonical JSON (FNV-1a), as 16 hex digits.
    pub fn fingerprint(&self) -> String {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in self.canonical_json().bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{hash:016x}")
    }
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
