//! The Anthropic Messages API wire format.

use serde_json::{Value, json};

use super::{ChatRequest, ChatResponse, ProviderError, Usage};
use crate::repo::Role;

/// The API version header value sent with every request.
pub const API_VERSION: &str = "2023-06-01";

/// `max_tokens` is required by the Messages API; used when the prompt sets none.
pub const DEFAULT_MAX_TOKENS: u64 = 1024;

/// The authentication and version headers.
pub fn headers(key: Option<&str>) -> Vec<(&'static str, String)> {
    let mut headers = vec![("anthropic-version", API_VERSION.to_owned())];
    if let Some(key) = key {
        headers.push(("x-api-key", key.to_owned()));
    }
    headers
}

/// The URL and body of a Messages request: system messages go to `system`.
pub fn chat_request(base_url: &str, request: &ChatRequest) -> (String, Value) {
    let system: Vec<&str> = request
        .messages
        .iter()
        .filter(|m| m.role == Role::System)
        .map(|m| m.content.as_str())
        .collect();
    let messages: Vec<Value> = request
        .messages
        .iter()
        .filter(|m| m.role != Role::System)
        .map(|m| json!({"role": m.role.as_str(), "content": m.content}))
        .collect();
    let mut body =
        json!({"model": request.model, "messages": messages, "max_tokens": DEFAULT_MAX_TOKENS});
    if let Value::Object(map) = &mut body {
        if !system.is_empty() {
            map.insert("system".into(), Value::String(system.join("\n\n")));
        }
        for (key, value) in &request.parameters {
            map.insert(key.clone(), value.clone());
        }
    }
    let url = if base_url.ends_with("/v1") {
        format!("{base_url}/messages")
    } else {
        format!("{base_url}/v1/messages")
    };
    (url, body)
}

/// Reads a Messages answer; cache reads and writes are kept apart from input tokens.
pub fn parse_chat(provider: &str, json: &Value) -> Result<ChatResponse, ProviderError> {
    let content = json
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| ProviderError::Malformed {
            provider: provider.to_owned(),
            message: "no `content` list in the answer".into(),
        })?;
    let text = content
        .iter()
        .filter(|block| block.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|block| block.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("");
    let count = |key: &str| {
        json.pointer(&format!("/usage/{key}"))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    Ok(ChatResponse {
        text,
        usage: Usage {
            input_tokens: count("input_tokens"),
            output_tokens: count("output_tokens"),
            cache_read_tokens: count("cache_read_input_tokens"),
            cache_write_tokens: count("cache_creation_input_tokens"),
        },
        latency_ms: 0.0,
        model: json.get("model").and_then(Value::as_str).map(str::to_owned),
        replayed: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::RenderedMessage;

    #[test]
    fn system_messages_move_to_the_system_field() {
        let request = ChatRequest {
            model: "claude".into(),
            messages: vec![
                RenderedMessage {
                    role: Role::System,
                    content: "be brief".into(),
                },
                RenderedMessage {
                    role: Role::User,
                    content: "hi".into(),
                },
            ],
            parameters: [("max_tokens".to_owned(), json!(50))].into_iter().collect(),
        };
        let (url, body) = chat_request("https://api.anthropic.com", &request);
        assert_eq!(url, "https://api.anthropic.com/v1/messages");
        assert_eq!(body["system"], "be brief");
        assert_eq!(body["max_tokens"], 50);
        assert_eq!(body["messages"].as_array().map(Vec::len), Some(1));
        let answer = json!({"content": [{"type": "text", "text": "yo"}], "usage": {"input_tokens": 5, "output_tokens": 1, "cache_read_input_tokens": 7}});
        let response = parse_chat("anthropic", &answer).expect("parses");
        assert_eq!(response.text, "yo");
        assert_eq!(response.usage.cache_read_tokens, 7);
    }
}
