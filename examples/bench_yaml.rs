//! What the history walk's fast YAML reader (`repo::plain_yaml`) saves: the time to read a
//! prompt file of `scripts/bench-history.sh`'s shape with it and with the full parser
//! (serde-saphyr, keeping source positions), in microseconds a file. A figure for the
//! README, never a test.
//!
//! Usage: `cargo run --release --example bench_yaml [FILES]` (default 20,000).
#![allow(clippy::print_stdout)]

use std::path::Path;
use std::time::Instant;

use promptctl::repo::file::parse_prompt;
use promptctl::repo::plain_yaml::{PlainFile, read};

fn prompt_text(i: usize) -> String {
    format!(
        "description: prompt {i}\nmodel: gpt-4o\nparameters:\n  temperature: 0.{t}\n  max_tokens: 800\n\
         variables:\n  input: {{type: string, required: true}}\n  language: {{type: string, default: en}}\n\
         messages:\n  - role: system\n    content: |\n      You are assistant {i}. Answer in {{{{ language }}}}.\n\
         \x20 - role: user\n    content: \"{{{{ input }}}}\"\n\
         tests:\n  - name: answers\n    vars: {{input: hello}}\n    assert: [{{type: contains, value: hello}}]\n",
        t = i % 9 + 1
    )
}

fn main() {
    let files: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let texts: Vec<String> = (0..files).map(prompt_text).collect();
    let path = Path::new("prompts/svc/p.yaml");
    let mut best = (f64::MAX, f64::MAX);
    for _ in 0..5 {
        let started = Instant::now();
        let fast: usize = texts.iter().filter(|t| read(t).is_some()).count();
        let fast_us = started.elapsed().as_secs_f64() * 1e6 / files as f64;
        let started = Instant::now();
        let full: usize = texts
            .iter()
            .filter_map(|t| parse_prompt(path, t).ok())
            .map(PlainFile::of)
            .filter(|f| f.definition.is_some())
            .count();
        let full_us = started.elapsed().as_secs_f64() * 1e6 / files as f64;
        assert_eq!((fast, full), (files, files), "every file read both ways");
        best = (best.0.min(fast_us), best.1.min(full_us));
    }
    println!(
        "{files} files: fast reader {:.1} µs a file, full parser {:.1} µs a file ({:.1}×)",
        best.0,
        best.1,
        best.1 / best.0
    );
}
