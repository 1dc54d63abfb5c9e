//! The byte-splicing editor of `environments.yaml` (`pin`, `promote`): a pin's new value is
//! spliced into the exact bytes of the old one, a new prompt or environment gets a line
//! like its siblings'; comments, order and spacing are never re-serialized.

use super::{EnvEntry, Environments, Place, PromptEntry, VersionRef, offset_of};
use crate::diagnostic::display_path;
use crate::repo::PromptId;
use crate::yaml_scan::{closing_quote, starts_comment};

impl Environments {
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
        // The pin of an environment the file does not have yet.
        let fresh = || flow_pin(version, model.apply(None).as_deref());
        let Some(entry) = self.entry(id) else {
            return self.insert_prompt(key, env, &fresh());
        };
        let Some(existing) = entry.environment(env) else {
            return self.insert_environment(entry, env, &fresh());
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
            let mut pin = flow_pin(version, new_model.as_deref());
            // A canary inside the pin stays as written.
            if let Some(canary) = &existing.canary
                && let Some(canary_end) = flow_end(text, canary.value.offset)
            {
                pin.pop();
                pin.push_str(", ");
                pin.push_str(&text[canary.key.offset..canary_end]);
                pin.push('}');
            }
            let mut out = String::with_capacity(text.len() + 32);
            out.push_str(&text[..start]);
            out.push_str(&pin);
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
                let line = format!("{indent}model: {}", scalar(model));
                // After the version, else first: the first key may open a nested block.
                out = match existing.version_at {
                    Some(version) => insert_after_line(&out, version.line, &line),
                    None => insert_before_line(&out, existing.value.line, &line),
                };
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

    /// The text with the line `env: pin` added to the environments of `entry`.
    fn insert_environment(
        &self,
        entry: &PromptEntry,
        env: &str,
        pin: &str,
    ) -> Result<String, EditError> {
        let text = &self.source;
        if entry.environments.is_empty() && line_has_flow_value(text, entry.at) {
            return Err(EditError::Unsupported(format!(
                "`{}` in {} is written in flow style; write its environments one per line",
                entry.key,
                display_path(&self.path)
            )));
        }
        let indent = self
            .env_indent()
            .map_or_else(|| " ".repeat(entry.at.column - 1 + 2), |i| " ".repeat(i));
        let new_line = format!("{indent}{}: {pin}", scalar(env));
        Ok(insert_after_line(text, self.last_line_of(entry), &new_line))
    }

    /// The text with a new prompt `key` holding the one environment `env: pin`.
    fn insert_prompt(&self, key: &str, env: &str, pin: &str) -> Result<String, EditError> {
        let text = &self.source;
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

impl Environments {
    /// The file's text without the canary split of `env` for `id` (the environment's own
    /// pin untouched); the file unchanged when there is none.
    pub fn without_canary(&self, id: &PromptId, env: &str) -> Result<String, EditError> {
        let text = &self.source;
        let Some(existing) = self.environment(id, env) else {
            return Ok(text.clone());
        };
        let Some(canary) = &existing.canary else {
            return Ok(text.clone());
        };
        let unsupported = || {
            EditError::Unsupported(format!(
                "cannot find the end of `{env}`'s canary in {}",
                display_path(&self.path)
            ))
        };
        let bytes = text.as_bytes();
        let value_end = if bytes.get(canary.value.offset) == Some(&b'{') {
            flow_end(text, canary.value.offset).ok_or_else(unsupported)?
        } else {
            let last = canary
                .scalars
                .iter()
                .map(|p| p.offset)
                .max()
                .unwrap_or(canary.value.offset);
            scalar_end(text, last)
        };
        if bytes.get(existing.value.offset) == Some(&b'{') {
            // Inside a flow mapping: the key, its value and one comma go.
            let before = text[..canary.key.offset].trim_end_matches([' ', '\t', '\n', '\r']);
            let mut out = String::with_capacity(text.len());
            if let Some(head) = before.strip_suffix(',') {
                out.push_str(head);
                out.push_str(&text[value_end..]);
            } else {
                let rest = text[value_end..].trim_start_matches([' ', '\t', '\n', '\r']);
                let rest = rest
                    .strip_prefix(',')
                    .map_or(rest, |r| r.trim_start_matches([' ', '\t']));
                out.push_str(&text[..canary.key.offset]);
                out.push_str(rest);
            }
            return Ok(out);
        }
        // A block mapping: the canary's lines go.
        let first = canary.key.line;
        let last = crate::config::offset_to_position(text, value_end).line;
        Ok(text
            .split_inclusive('\n')
            .enumerate()
            .filter(|(index, _)| !(first..=last).contains(&(index + 1)))
            .map(|(_, line)| line)
            .collect())
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
        Some(b'"' | b'\'') => closing_quote(text, start).map_or(bytes.len(), |close| close + 1),
        _ => {
            let mut i = start;
            while i < bytes.len() {
                match bytes[i] {
                    b',' | b'}' | b']' | b'\n' | b'\r' => break,
                    b'#' if i > start && starts_comment(bytes, i) => break,
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
            b'#' if i > 0 && starts_comment(bytes, i) => {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::environments::tests::{FILE, parse};
    use ModelChange::{Clear, Keep, Set};

    /// `text` with `prompt` (`service/name`) pinned to `version` (`3`, `latest`) in `env`,
    /// checked to read back as that pin.
    fn edit(text: &str, prompt: &str, env: &str, version: &str, model: ModelChange) -> String {
        let (service, name) = prompt.split_once('/').expect("service/name");
        let prompt = PromptId::new(service, name);
        let version: VersionRef = version.parse().expect("a version");
        let out = parse(text)
            .with_pin(&prompt, name, env, version, &model)
            .expect("edits");
        assert_eq!(parse(&out).resolve(&prompt, env).version, version, "{out}");
        out
    }

    const REVIEW: &str = "code-review/code_review_agent";

    const SPLIT: &str = "prompts:\n  invoice:\n    production: {version: 7, model: gpt-4o, canary: {version: 8, weight: 10}}  # split\n    staging:\n      version: 8\n      canary:\n        model: o3\n        weight: 50\n      model: gpt-4o-mini\n";

    fn invoice() -> PromptId {
        PromptId::new("billing", "invoice")
    }

    #[test]
    fn removing_a_canary_keeps_the_pin_and_the_comment() {
        let flow = parse(SPLIT)
            .without_canary(&invoice(), "production")
            .expect("edits");
        assert_eq!(
            flow,
            SPLIT.replace(
                "{version: 7, model: gpt-4o, canary: {version: 8, weight: 10}}",
                "{version: 7, model: gpt-4o}"
            )
        );
        let block = parse(SPLIT)
            .without_canary(&invoice(), "staging")
            .expect("edits");
        assert_eq!(
            block,
            SPLIT.replace("      canary:\n        model: o3\n        weight: 50\n", "")
        );
        let parsed = parse(&block);
        let staging = parsed.environment(&invoice(), "staging").expect("staging");
        assert!(staging.canary.is_none());
        assert_eq!(staging.pin.model.as_deref(), Some("gpt-4o-mini"));
        let first =
            "prompts:\n  invoice:\n    production: {canary: {weight: 5, model: o3}, version: 2}\n";
        assert_eq!(
            parse(first)
                .without_canary(&invoice(), "production")
                .expect("edits"),
            "prompts:\n  invoice:\n    production: {version: 2}\n"
        );
    }

    #[test]
    fn a_comment_or_an_anchor_between_the_canary_key_and_its_block_goes_with_it() {
        let file = "prompts:\n  invoice:\n    production:\n      version: 1\n      canary:   # the split\n        # the new one\n        version: 3\n        weight: 10\n    staging: {version: 2}\n";
        let out = parse(file)
            .without_canary(&invoice(), "production")
            .expect("edits");
        assert_eq!(
            out,
            "prompts:\n  invoice:\n    production:\n      version: 1\n    staging: {version: 2}\n"
        );
        let anchored = file.replace("canary:   # the split", "canary: &split");
        let out = parse(&anchored)
            .without_canary(&invoice(), "production")
            .expect("edits");
        assert_eq!(
            out,
            "prompts:\n  invoice:\n    production:\n      version: 1\n    staging: {version: 2}\n"
        );
    }

    #[test]
    fn a_model_for_a_block_opening_with_its_canary_goes_before_it() {
        let file = "prompts:\n  invoice:\n    production:\n      canary:\n        version: 3\n        weight: 10\n";
        let out = edit(
            file,
            "billing/invoice",
            "production",
            "2",
            Set("gpt-4o".into()),
        );
        let parsed = parse(&out);
        let production = parsed
            .environment(&invoice(), "production")
            .expect("production");
        assert_eq!(production.pin.model.as_deref(), Some("gpt-4o"));
        assert_eq!(
            production.canary.as_ref().map(|c| c.canary.weight),
            Some(10.0)
        );
    }

    #[test]
    fn pinning_an_environment_keeps_its_canary() {
        let out = edit(SPLIT, "billing/invoice", "production", "9", Clear);
        let parsed = parse(&out);
        let production = parsed
            .environment(&invoice(), "production")
            .expect("production");
        assert_eq!(production.pin.model, None);
        assert_eq!(
            production.canary.as_ref().map(|c| c.canary.weight),
            Some(10.0)
        );
    }

    #[test]
    fn changing_a_version_touches_only_its_digits() {
        assert_eq!(
            edit(FILE, REVIEW, "staging", "24", Keep),
            FILE.replace(
                "staging:    {version: 23, model: gpt-4o-mini}",
                "staging:    {version: 24, model: gpt-4o-mini}"
            )
        );
    }

    #[test]
    fn changing_the_model_and_adding_or_removing_one() {
        assert_eq!(
            edit(FILE, REVIEW, "production", "latest", Set("o3".into())),
            FILE.replace(
                "{version: 23, model: gpt-4o}",
                "{version: latest, model: o3}"
            )
        );
        assert_eq!(
            edit(FILE, REVIEW, "production", "23", Clear),
            FILE.replace("{version: 23, model: gpt-4o}", "{version: 23}")
        );
        assert_eq!(
            edit(
                FILE,
                "billing/invoice",
                "production",
                "5",
                Set("needs: quotes".into())
            ),
            FILE.replace("{version: 4}", "{version: 5, model: \"needs: quotes\"}")
        );
    }

    #[test]
    fn a_new_environment_is_a_new_line_after_its_siblings() {
        assert_eq!(
            edit(
                FILE,
                "billing/invoice",
                "staging",
                "3",
                Set("gpt-4o".into())
            ),
            format!("{FILE}    staging: {{version: 3, model: gpt-4o}}\n")
        );
        assert_eq!(
            edit(FILE, REVIEW, "eu", "2", Keep),
            FILE.replace(
                "claude-sonnet-4-5}\n",
                "claude-sonnet-4-5}\n    eu: {version: 2}\n"
            )
        );
    }

    #[test]
    fn a_new_prompt_is_appended_with_the_files_indentation() {
        let reply = |text| edit(text, "support/reply", "production", "1", Keep);
        assert_eq!(
            reply(FILE),
            format!("{FILE}  reply:\n    production: {{version: 1}}\n")
        );
        assert_eq!(
            reply(""),
            "prompts:\n  reply:\n    production: {version: 1}\n"
        );
        assert_eq!(
            reply("# pins\nprompts: {}\n"),
            "# pins\nprompts:\n  reply:\n    production: {version: 1}\n"
        );
    }

    #[test]
    fn block_style_pins_are_spliced_too() {
        let text = "prompts:\n  reply:\n    production:\n      version: 2   # known good\n      model: \"gpt-4o\"\n    staging:\n      version: 3\n";
        let reply = |env, version, model| edit(text, "support/reply", env, version, model);
        assert_eq!(
            reply("production", "3", Set("o3".into())),
            text.replace("version: 2 ", "version: 3 ")
                .replace("\"gpt-4o\"", "o3")
        );
        assert_eq!(
            reply("production", "2", Clear),
            text.replace("      model: \"gpt-4o\"\n", "")
        );
        assert_eq!(
            reply("staging", "3", Set("o3".into())),
            format!("{text}      model: o3\n")
        );
    }

    #[test]
    fn crlf_files_keep_their_line_ends() {
        let text = "prompts:\r\n  reply:\r\n    production: {version: 1}  # ok\r\n";
        assert_eq!(
            edit(text, "support/reply", "production", "2", Keep),
            text.replace("version: 1", "version: 2")
        );
        assert_eq!(
            edit(text, "support/reply", "staging", "2", Keep),
            format!("{text}    staging: {{version: 2}}\r\n")
        );
    }

    #[test]
    fn unchanged_pin_leaves_the_text_identical() {
        assert_eq!(edit(FILE, REVIEW, "canary", "latest", Keep), FILE);
    }
}
