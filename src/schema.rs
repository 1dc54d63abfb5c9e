//! JSON Schemas (draft 2020-12) of the files promptctl reads: prompt files,
//! `environments.yaml` and `promptctl.toml`, generated from the serde types the loaders
//! deserialize into, so a schema cannot drift from what `check` accepts.
//!
//! Editors use them through a YAML language server (`promptctl schema prompt >
//! .promptctl/prompt.schema.json`); CI can validate with any JSON Schema validator. The
//! schemas say what a file may contain (keys, types, assertion names); rules that need the
//! whole repository (undeclared variables, includes, versions that exist) stay in `check`.

use schemars::JsonSchema;
use serde_json::{Value, json};

/// The JSON Schema of `T`, with `$schema` set to draft 2020-12 and an `$id`-free root.
fn schema_of<T: JsonSchema>() -> Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let mut value = generator.into_root_schema_for::<T>().to_value();
    if let Some(object) = value.as_object_mut() {
        object.insert(
            "$schema".to_owned(),
            Value::String("https://json-schema.org/draft/2020-12/schema".to_owned()),
        );
    }
    value
}

/// The JSON Schema of a prompt file (SPEC section 1).
pub fn prompt_schema() -> Value {
    let mut value = schema_of::<crate::repo::file::PromptFile>();
    add_prompt_rules(&mut value);
    value
}

/// The rules about a prompt file's shape that `check` enforces beyond its serde types:
/// `model` and one of `template` / `messages` present, at least one message, thresholds
/// from 0 to 1, a `value` for the assertions that need one, and only output-only assertions
/// under `monitor`. Built from the same tables `check` uses ([`AssertionKind`]).
fn add_prompt_rules(schema: &mut Value) {
    use crate::repo::file::AssertionKind;
    let names = |keep: fn(AssertionKind) -> bool| -> Vec<&str> {
        AssertionKind::NAMES
            .iter()
            .filter(|(_, kind)| keep(*kind))
            .map(|(name, _)| *name)
            .collect()
    };
    let needs_value = names(AssertionKind::needs_value);
    let monitor = names(AssertionKind::allowed_in_monitor);
    let Some(root) = schema.as_object_mut() else {
        return;
    };
    root.insert("required".to_owned(), json!(["model"]));
    root.insert(
        "oneOf".to_owned(),
        json!([{"required": ["template"]}, {"required": ["messages"]}]),
    );
    if let Some(properties) = root.get_mut("properties").and_then(Value::as_object_mut) {
        for key in ["model", "template"] {
            if let Some(property) = properties.get_mut(key) {
                property["type"] = json!("string");
            }
        }
        if let Some(messages) = properties.get_mut("messages") {
            messages["type"] = json!("array");
            messages["minItems"] = json!(1);
        }
        if let Some(items) = properties.get_mut("monitor").map(|m| &mut m["items"]) {
            *items = json!({
                "$ref": "#/$defs/Assertion",
                "properties": {"type": {"enum": monitor}}
            });
        }
    }
    if let Some(assertion) = root
        .get_mut("$defs")
        .and_then(|defs| defs.get_mut("Assertion"))
        .and_then(Value::as_object_mut)
    {
        if let Some(threshold) = assertion
            .get_mut("properties")
            .and_then(|p| p.get_mut("threshold"))
        {
            threshold["minimum"] = json!(0);
            threshold["maximum"] = json!(1);
        }
        assertion.insert(
            "if".to_owned(),
            json!({"properties": {"type": {"enum": needs_value}}}),
        );
        assertion.insert(
            "then".to_owned(),
            json!({"required": ["value"], "properties": {"value": {"not": {"type": "null"}}}}),
        );
    }
}

/// The JSON Schema of `environments.yaml` (SPEC section 1).
pub fn environments_schema() -> Value {
    schema_of::<crate::environments::RawFile>()
}

/// The JSON Schema of `promptctl.toml` (SPEC section 5).
pub fn config_schema() -> Value {
    schema_of::<crate::config::Settings>()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documents a schema exists for.
    const DOCUMENTS: &[&str] = &["prompt", "environments", "config"];

    /// The schema of a document named as in [`DOCUMENTS`].
    fn schema(document: &str) -> Option<Value> {
        match document {
            "prompt" => Some(prompt_schema()),
            "environments" => Some(environments_schema()),
            "config" => Some(config_schema()),
            _ => None,
        }
    }

    #[test]
    fn every_schema_is_draft_2020_12_and_closed() {
        for document in DOCUMENTS {
            let value = schema(document).expect("known");
            assert_eq!(
                value["$schema"],
                "https://json-schema.org/draft/2020-12/schema"
            );
            assert_eq!(value["additionalProperties"], false, "{document}");
        }
    }

    #[test]
    fn assertion_types_are_listed() {
        let value = prompt_schema();
        let text = value.to_string();
        for (name, _) in crate::repo::file::AssertionKind::NAMES {
            assert!(text.contains(&format!("\"{name}\"")), "{name}");
        }
    }

    #[test]
    fn the_schemas_accept_good_files_and_reject_bad_ones() {
        let prompt = jsonschema::validator_for(&prompt_schema()).expect("valid schema");
        let good = serde_json::json!({
            "model": "gpt-4o",
            "variables": {"diff": {"type": "string", "required": true}},
            "messages": [{"role": "system", "content": "hi {{ diff }}"}],
            "tests": [{"name": "t", "vars": {"diff": "x"},
                       "assert": [{"type": "contains", "value": "x"},
                                  {"type": "semantic_similarity", "value": "x", "threshold": 0.8}]}]
        });
        assert!(prompt.is_valid(&good));
        for bad in [
            serde_json::json!({"modle": "gpt-4o", "template": "hi"}),
            serde_json::json!({"model": 4, "template": "hi"}),
            serde_json::json!({"model": "m", "messages": [{"role": "sytem", "content": "x"}]}),
            serde_json::json!({"model": "m", "template": "x", "tests": [{"assert": [{"type": "containz"}]}]}),
            serde_json::json!({"template": "hi"}),
            serde_json::json!({"model": "m"}),
            serde_json::json!({"model": "m", "template": "x", "messages": [{"role": "user", "content": "x"}]}),
            serde_json::json!({"model": "m", "template": "x", "tests": [{"assert": [{"type": "contains"}]}]}),
            serde_json::json!({"model": "m", "template": "x", "tests": [{"assert": [{"type": "semantic_similarity", "value": "a", "threshold": 2}]}]}),
            serde_json::json!({"model": "m", "template": "x", "monitor": [{"type": "exact_match", "value": "a"}]}),
        ] {
            assert!(!prompt.is_valid(&bad), "{bad}");
        }
        let environments = jsonschema::validator_for(&environments_schema()).expect("valid schema");
        assert!(environments.is_valid(&serde_json::json!({"prompts": {"p": {
            "production": {"version": 3, "model": "gpt-4o"}, "canary": {"version": "latest"}}}})));
        assert!(
            !environments.is_valid(&serde_json::json!({"prompts": {"p": {
            "production": {"version": 0}}}}))
        );
        assert!(
            !environments.is_valid(&serde_json::json!({"prompts": {"p": {
            "production": {"versoin": 3}}}}))
        );
        let config = jsonschema::validator_for(&config_schema()).expect("valid schema");
        assert!(
            config.is_valid(&serde_json::json!({"prompts_dir": "prompts",
            "providers": {"openai": {"kind": "openai", "api_key_env": "K"}},
            "test": {"concurrency": 4}}))
        );
        assert!(!config.is_valid(&serde_json::json!({"prompt_dir": "prompts"})));
        assert!(!config.is_valid(&serde_json::json!({"providers": {"x": {"kind": "nope"}}})));
    }
}
