//! A stand-in OpenAI-compatible provider for `scripts/bench-test.sh`: answers every POST
//! after a fixed delay, so the benchmark measures the test runner and not the server.
//!
//! Usage: `cargo run --release --example slow_provider -- PORT DELAY_MS`

use std::time::Duration;

use axum::{Json, Router, routing::post};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(8089);
    let delay = Duration::from_millis(args.next().and_then(|d| d.parse().ok()).unwrap_or(100));
    let answer = move || async move {
        tokio::time::sleep(delay).await;
        Json(serde_json::json!({
            "choices": [{"message": {"role": "assistant", "content": "ok"}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 3}
        }))
    };
    let app = Router::new().route("/v1/chat/completions", post(answer));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
