//! `structure_validation`: the output is JSON, and matches a JSON Schema when one is given.
//!
//! Models often wrap JSON in a Markdown code fence or add a sentence around it, so
//! [`extract_json`] accepts the first fenced block when the whole output is not JSON.
//! Schemas are JSON Schema, Draft 2020-12 unless the schema's `$schema` names another draft
//! (4, 6, 7, 2019-09). `format` is asserted, not just annotated: a test that says
//! `format: email` means it. References to other documents are not fetched: a schema must be
//! self-contained, so a test never touches the network or the file system.

use serde_json::Value;

/// The JSON value in a model output.
///
/// The whole output, trimmed, when it parses as JSON; otherwise the first fenced code block
/// tagged `json` (any case), or failing that the first untagged fenced block. The error
/// message reads `output is not JSON: <reason at line:column>`.
pub fn extract_json(output: &str) -> Result<Value, String> {
    let trimmed = output.trim();
    let whole_error = match serde_json::from_str(trimmed) {
        Ok(value) => return Ok(value),
        Err(error) => error,
    };
    let blocks = fenced_blocks(output);
    let block = blocks
        .iter()
        .find(|block| block.info.eq_ignore_ascii_case("json"))
        .or_else(|| blocks.iter().find(|block| block.info.is_empty()));
    match block {
        Some(block) => serde_json::from_str(block.body.trim())
            .map_err(|error| format!("output is not JSON: in its fenced code block, {error}")),
        None => Err(format!("output is not JSON: {whole_error}")),
    }
}

/// Checks `instance` against `schema`.
///
/// Each violation is reported as `<instance path>: <message>`, the path a JSON Pointer into
/// the instance (`/` for the root). A missing required property is reported at the path it
/// should have had: `/issues: "issues" is a required property`. An invalid schema is
/// reported as a single violation at `schema`.
pub fn validate(schema: &Value, instance: &Value) -> Result<(), Vec<String>> {
    let validator = build(schema).map_err(|error| vec![format!("schema: {error}")])?;
    let violations: Vec<String> = validator
        .iter_errors(instance)
        .map(|error| {
            let mut path = error.instance_path().as_str().to_owned();
            if let jsonschema::error::ValidationErrorKind::Required {
                property: Value::String(property),
            } = error.kind()
            {
                path.push('/');
                path.push_str(&escape_pointer(property));
            }
            if path.is_empty() {
                path.push('/');
            }
            format!("{path}: {error}")
        })
        .collect();
    if violations.is_empty() {
        Ok(())
    } else {
        Err(violations)
    }
}

/// Checks that `schema` is a usable JSON Schema: valid against its draft's meta-schema,
/// with compilable patterns and resolvable references. For `promptctl check`.
pub fn check_schema(schema: &Value) -> Result<(), String> {
    build(schema).map(|_| ()).map_err(|error| {
        let path = error.instance_path().as_str();
        if path.is_empty() {
            format!("invalid JSON Schema: {error}")
        } else {
            format!("invalid JSON Schema at {path}: {error}")
        }
    })
}

/// Compiles `schema` with the options every assertion uses.
fn build(schema: &Value) -> Result<jsonschema::Validator, jsonschema::ValidationError<'static>> {
    // Without `$schema`, the draft defaults to 2020-12; with it, the named draft is used.
    jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
}

/// Escapes a property name for use as a JSON Pointer segment (RFC 6901).
fn escape_pointer(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// A Markdown fenced code block.
struct Fenced<'a> {
    /// The info string after the opening fence (`json`, or empty).
    info: &'a str,
    /// The lines between the fences.
    body: String,
}

/// The fenced code blocks of `text`, in order. A block left open runs to the end of the text
/// (a truncated output).
fn fenced_blocks(text: &str) -> Vec<Fenced<'_>> {
    let mut blocks = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some((fence, info)) = opening_fence(line) else {
            continue;
        };
        let mut body = String::new();
        for line in lines.by_ref() {
            let trimmed = line.trim();
            // The fence is ASCII: backticks or tildes.
            if trimmed.starts_with(fence) && trimmed.trim_start_matches(&fence[..1]).is_empty() {
                break;
            }
            body.push_str(line);
            body.push('\n');
        }
        blocks.push(Fenced { info, body });
    }
    blocks
}

/// The fence (three or more backticks or tildes) and the first word of the info string, if
/// `line` opens a fenced code block.
fn opening_fence(line: &str) -> Option<(&str, &str)> {
    let line = line.trim_start();
    let marker = line.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let fence_len = line.len() - line.trim_start_matches(marker).len();
    if fence_len < 3 {
        return None;
    }
    let (fence, rest) = line.split_at(fence_len);
    let info = rest.split_whitespace().next().unwrap_or("");
    if marker == '`' && info.contains('`') {
        return None;
    }
    Some((fence, info))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn whole_output_is_json() {
        assert_eq!(extract_json("  {\"a\": 1}\n"), Ok(json!({"a": 1})));
        assert_eq!(extract_json("[1, 2]"), Ok(json!([1, 2])));
        assert_eq!(extract_json("\"text\""), Ok(json!("text")));
    }

    #[test]
    fn json_fenced_block_is_extracted() {
        let output = "Here is the review:\n\n```json\n{\"issues\": [\"sql injection\"]}\n```\n\nHope it helps.";
        assert_eq!(
            extract_json(output),
            Ok(json!({"issues": ["sql injection"]}))
        );
    }

    #[test]
    fn json_block_preferred_over_earlier_plain_block() {
        let output = "```\nnot json\n```\n\n```JSON\n{\"ok\": true}\n```";
        assert_eq!(extract_json(output), Ok(json!({"ok": true})));
    }

    #[test]
    fn plain_fenced_block_is_extracted() {
        let output = "Result:\n```\n[1, 2, 3]\n```";
        assert_eq!(extract_json(output), Ok(json!([1, 2, 3])));
        let tildes = "Result:\n~~~~\n{\"x\": null}\n~~~~\n";
        assert_eq!(extract_json(tildes), Ok(json!({"x": null})));
    }

    #[test]
    fn other_language_blocks_are_ignored() {
        let output = "```python\nprint(1)\n```";
        let error = extract_json(output).err().unwrap_or_default();
        assert!(error.starts_with("output is not JSON: "), "{error}");
    }

    #[test]
    fn unclosed_block_runs_to_the_end() {
        assert_eq!(extract_json("```json\n{\"a\": 1}\n"), Ok(json!({"a": 1})));
    }

    #[test]
    fn not_json_reports_line_and_column() {
        let error = extract_json("{\n  \"a\": 1,\n  oops\n}")
            .err()
            .unwrap_or_default();
        assert!(error.starts_with("output is not JSON: "), "{error}");
        assert!(error.contains("line 3 column"), "{error}");
        let error = extract_json("I cannot do that.").err().unwrap_or_default();
        assert!(error.contains("line 1 column 1"), "{error}");
        let error = extract_json("").err().unwrap_or_default();
        assert!(error.starts_with("output is not JSON: EOF"), "{error}");
    }

    #[test]
    fn broken_fenced_block_reports_its_error() {
        let error = extract_json("```json\n{\"a\": }\n```")
            .err()
            .unwrap_or_default();
        assert!(
            error.starts_with("output is not JSON: in its fenced code block"),
            "{error}"
        );
    }

    #[test]
    fn valid_instance_passes() {
        let schema = json!({"type": "object", "required": ["issues"],
            "properties": {"issues": {"type": "array", "items": {"type": "string"}}}});
        assert_eq!(validate(&schema, &json!({"issues": ["a", "b"]})), Ok(()));
        assert_eq!(validate(&json!(true), &json!(42)), Ok(()));
        assert_eq!(validate(&json!({}), &json!("anything")), Ok(()));
    }

    #[test]
    fn missing_required_property() {
        let schema = json!({"type": "object", "required": ["issues"]});
        assert_eq!(
            validate(&schema, &json!({"other": 1})),
            Err(vec![
                "/issues: \"issues\" is a required property".to_owned()
            ])
        );
    }

    #[test]
    fn root_type_error_uses_slash() {
        let schema = json!({"type": "object"});
        let errors = validate(&schema, &json!([1])).err().unwrap_or_default();
        assert_eq!(errors, ["/: [1] is not of type \"object\""]);
    }

    #[test]
    fn nested_paths_and_all_violations() {
        let schema = json!({
            "type": "object",
            "required": ["issues"],
            "properties": {
                "issues": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["line", "severity"],
                        "properties": {
                            "line": {"type": "integer", "minimum": 1},
                            "severity": {"enum": ["low", "high"]}
                        }
                    }
                }
            }
        });
        let instance = json!({"issues": [
            {"line": 3, "severity": "low"},
            {"line": 0, "severity": "critical"},
            {"line": "x"}
        ]});
        let mut errors = validate(&schema, &instance).err().unwrap_or_default();
        errors.sort();
        assert_eq!(
            errors,
            [
                "/issues/1/line: 0 is less than the minimum of 1",
                "/issues/1/severity: \"critical\" is not one of \"low\" or \"high\"",
                "/issues/2/line: \"x\" is not of type \"integer\"",
                "/issues/2/severity: \"severity\" is a required property",
            ]
        );
    }

    #[test]
    fn formats_are_asserted() {
        let schema = json!({"type": "string", "format": "email"});
        assert_eq!(validate(&schema, &json!("ada@example.com")), Ok(()));
        assert!(validate(&schema, &json!("not an address")).is_err());
    }

    #[test]
    fn schema_keyword_selects_the_draft() {
        // In Draft 4, `exclusiveMinimum` is a boolean; in 2020-12 a number.
        let draft4 = json!({"$schema": "http://json-schema.org/draft-04/schema#",
            "minimum": 5, "exclusiveMinimum": true});
        assert_eq!(check_schema(&draft4), Ok(()));
        assert!(validate(&draft4, &json!(5)).is_err());
        assert_eq!(validate(&draft4, &json!(6)), Ok(()));
        let default = json!({"minimum": 5, "exclusiveMinimum": true});
        assert!(check_schema(&default).is_err());
    }

    #[test]
    fn draft_2020_12_by_default() {
        // `prefixItems` only exists from 2020-12 on.
        let schema = json!({"type": "array", "prefixItems": [{"type": "integer"}]});
        assert!(validate(&schema, &json!(["x"])).is_err());
        assert_eq!(validate(&schema, &json!([1, "x"])), Ok(()));
    }

    #[test]
    fn invalid_schema_is_rejected() {
        let error = check_schema(&json!({"type": "objekt"}))
            .err()
            .unwrap_or_default();
        assert!(error.starts_with("invalid JSON Schema"), "{error}");
        assert!(check_schema(&json!({"required": "issues"})).is_err());
        assert!(check_schema(&json!({"pattern": "("})).is_err());
        assert!(check_schema(&json!(42)).is_err());
        let errors = validate(&json!({"type": 5}), &json!(1))
            .err()
            .unwrap_or_default();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("schema: "), "{errors:?}");
    }

    #[test]
    fn valid_schemas_pass_check() {
        assert_eq!(
            check_schema(&json!({"type": "object", "required": ["issues"]})),
            Ok(())
        );
        assert_eq!(check_schema(&json!(true)), Ok(()));
        assert_eq!(
            check_schema(&json!({"$defs": {"n": {"type": "integer"}}, "$ref": "#/$defs/n"})),
            Ok(())
        );
    }

    #[test]
    fn external_references_are_not_fetched() {
        let schema = json!({"$ref": "https://example.com/schema.json"});
        assert!(check_schema(&schema).is_err());
    }

    #[test]
    fn pointer_escaping_in_required_paths() {
        let schema = json!({"required": ["a/b"]});
        assert_eq!(
            validate(&schema, &json!({})),
            Err(vec!["/a~1b: \"a/b\" is a required property".to_owned()])
        );
    }
}
