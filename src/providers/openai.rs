//! The OpenAI wire format: chat completions and embeddings, as spoken by OpenAI, Azure
//! OpenAI, vLLM, Ollama, LiteLLM and other compatible servers.

use serde_json::{Value, json};

use super::{ChatRequest, ChatResponse, ProviderError, Usage};

/// The authorization header, when the provider has a key.
pub fn headers(key: Option<&str>) -> Vec<(&'static str, String)> {
    key.map(|key| vec![("authorization", format!("Bearer {key}"))])
        .unwrap_or_default()
}

/// The URL and body of a chat completion request.
pub fn chat_request(base_url: &str, request: &ChatRequest) -> (String, Value) {
    let mut body = json!({
        "model": request.model,
        "messages": request.messages.iter().map(|m| json!({"role": m.role.as_str(), "content": m.content})).collect::<Vec<_>>(),
    });
    if let Value::Object(map) = &mut body {
        for (key, value) in &request.parameters {
            map.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    (format!("{base_url}/chat/completions"), body)
}

fn malformed(provider: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::Malformed {
        provider: provider.to_owned(),
        message: message.into(),
    }
}

/// Reads a chat completion answer.
pub fn parse_chat(provider: &str, json: &Value) -> Result<ChatResponse, ProviderError> {
    let message = json
        .pointer("/choices/0/message")
        .ok_or_else(|| malformed(provider, "no `choices[0].message` in the answer"))?;
    let text = match message.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        Some(Value::Null) | None => String::new(),
        Some(_) => {
            return Err(malformed(
                provider,
                "`message.content` is neither text nor a list",
            ));
        }
    };
    let count = |pointer: &str| json.pointer(pointer).and_then(Value::as_u64).unwrap_or(0);
    let cached = count("/usage/prompt_tokens_details/cached_tokens");
    Ok(ChatResponse {
        text,
        usage: Usage {
            input_tokens: count("/usage/prompt_tokens").saturating_sub(cached),
            output_tokens: count("/usage/completion_tokens"),
            cache_read_tokens: cached,
            cache_write_tokens: 0,
        },
        latency_ms: 0.0,
        model: json.get("model").and_then(Value::as_str).map(str::to_owned),
        replayed: false,
    })
}

/// The URL and body of an embeddings request.
pub fn embedding_request(base_url: &str, model: &str, texts: &[String]) -> (String, Value) {
    (
        format!("{base_url}/embeddings"),
        json!({"model": model, "input": texts}),
    )
}

/// Reads an embeddings answer, in input order.
pub fn parse_embeddings(
    provider: &str,
    json: &Value,
    expected: usize,
) -> Result<Vec<Vec<f32>>, ProviderError> {
    let data = json
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed(provider, "no `data` list in the embeddings answer"))?;
    let mut vectors: Vec<(u64, Vec<f32>)> = Vec::with_capacity(data.len());
    for (position, item) in data.iter().enumerate() {
        let index = item
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(position as u64);
        let vector = item
            .get("embedding")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed(provider, "an embedding is not a list of numbers"))?
            .iter()
            .map(|x| x.as_f64().map(|f| f as f32))
            .collect::<Option<Vec<f32>>>()
            .ok_or_else(|| {
                malformed(provider, "an embedding holds something other than numbers")
            })?;
        vectors.push((index, vector));
    }
    if vectors.len() != expected {
        return Err(malformed(
            provider,
            format!("asked for {expected} embeddings, got {}", vectors.len()),
        ));
    }
    vectors.sort_by_key(|(index, _)| *index);
    Ok(vectors.into_iter().map(|(_, v)| v).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::RenderedMessage;
    use crate::repo::Role;

    #[test]
    fn request_and_answer_round_trip() {
        let request = ChatRequest {
            model: "gpt-4o".into(),
            messages: vec![RenderedMessage {
                role: Role::User,
                content: "hi".into(),
            }],
            parameters: [("temperature".to_owned(), json!(0.2))]
                .into_iter()
                .collect(),
        };
        let (url, body) = chat_request("http://x/v1", &request);
        assert_eq!(url, "http://x/v1/chat/completions");
        assert_eq!(body["temperature"], json!(0.2));
        assert_eq!(body["messages"][0]["role"], "user");
        let answer = json!({"choices": [{"message": {"role": "assistant", "content": "hello"}}], "usage": {"prompt_tokens": 10, "completion_tokens": 2}});
        let response = parse_chat("openai", &answer).expect("parses");
        assert_eq!(response.text, "hello");
        assert_eq!(response.usage.input_tokens, 10);
        assert!(parse_chat("openai", &json!({"oops": 1})).is_err());
    }
}
