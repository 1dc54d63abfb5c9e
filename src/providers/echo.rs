//! The built-in offline provider: answers with the last user message, so prompts and
//! assertions can be exercised without a network or a key.

use super::{ChatRequest, ChatResponse, Usage};
use crate::repo::Role;

/// Answers with the rendered text of the last user message.
pub fn chat(request: &ChatRequest) -> ChatResponse {
    let text = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(|m| m.content.clone())
        .unwrap_or_default();
    let input: usize = request.messages.iter().map(|m| m.content.len()).sum();
    ChatResponse {
        usage: Usage {
            input_tokens: estimate_tokens(input),
            output_tokens: estimate_tokens(text.len()),
            ..Usage::default()
        },
        text,
        latency_ms: 0.0,
        model: None,
        replayed: false,
    }
}

/// About four bytes a token, the usual rule of thumb.
fn estimate_tokens(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(4)
}

/// A deterministic bag-of-letters vector: texts sharing words point the same way.
pub fn embed(text: &str) -> Vec<f32> {
    let mut vector = vec![0.0f32; 64];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let hash = crate::fnv::fnv1a(word.to_lowercase().bytes());
        vector[(hash % 64) as usize] += 1.0;
    }
    vector
}
