//! Executes a prompt through the router against the built-in offline `echo` model: no
//! network, no database. Run with `cargo run --example router`.
//!
//! A service would build its router once from `promptctl.toml` and the repository, the
//! registry (`PromptSource::registry(url, ttl)`) or a bundle (`PromptSource::bundle(path)`),
//! pass a database URL to record every run, and call `execute` from as many tasks as it
//! likes.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::time::Duration;

use promptctl::config::Settings;
use promptctl::repo::{Body, Definition};
use promptctl::router::{Bundle, PromptSource, ResolvedPrompt, Router};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let prompt = ResolvedPrompt {
        service: "support".into(),
        name: "greeting".into(),
        environment: Some("production".into()),
        side: None,
        canary_weight: None,
        version: Some(3),
        model: "echo".into(),
        definition: Definition {
            model: "echo".into(),
            parameters: BTreeMap::new(),
            variables: BTreeMap::new(),
            body: Body::Template("Say hello to {{ name }}.".into()),
        },
        partials: BTreeMap::new(),
        monitor: Vec::new(),
    };
    let bundle = Bundle {
        format: 1,
        commit: None,
        environments: vec!["production".into()],
        prompts: vec![prompt],
    };
    let router = Router::new(
        &Settings::default(),
        PromptSource::Static(Box::new(bundle)),
        None,
    );
    let mut tasks = Vec::new();
    for i in 0..4 {
        let router = router.clone();
        tasks.push(tokio::spawn(async move {
            let vars =
                BTreeMap::from([("name".to_owned(), serde_json::json!(format!("user {i}")))]);
            router
                .execute("support/greeting", "production", &vars)
                .await
        }));
    }
    for task in tasks {
        let run = task.await??;
        println!(
            "{} | v{:?} on {} | {} in / {} out tokens | {:.3} ms | run {}",
            run.output.trim(),
            run.version,
            run.model,
            run.usage.input_tokens,
            run.usage.output_tokens,
            run.latency_ms,
            run.run_id
        );
    }
    router.shutdown(Duration::from_secs(2)).await;
    Ok(())
}
