//! promptctl: LLM prompts as code, versioned by Git.
//!
//! Prompts and their test cases are YAML files in a Git repository. This library reads them
//! ([`repo`]), lints them ([`check`]) and renders them ([`render`]); the `promptctl` binary is
//! a thin command line over it ([`cli`]).
//!
//! The public surface is what a service embeds: [`config`], [`repo`], [`history`],
//! [`render`], [`router`] (with the [`providers`] it calls and the [`telemetry`] it
//! records) and [`registry`]; plus [`check`], [`format`] and [`diagnostic`] for tools over
//! prompt files, and [`cli`] for the binary. Everything else (deployment, evaluation, the
//! server, the language server, the settings layer) is the crate's own.
//!
//! ```no_run
//! use promptctl::{config::Config, render::Renderer, repo::Snapshot};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::discover(std::path::Path::new("."))?;
//! let snapshot = Snapshot::load_working_tree(&config)?;
//! let prompt = snapshot.find("support/support_reply")?;
//! let renderer = Renderer::new(snapshot.partials.clone());
//! if let Some(definition) = &prompt.definition {
//!     let vars = [("customer_name".to_owned(), "Ada".into()), ("message".to_owned(), "Hi".into())];
//!     let messages = renderer.render(definition, &vars.into_iter().collect())?;
//!     println!("{}", messages[0].content);
//! }
//! # Ok(()) }
//! ```

// What a service embeds.
pub mod config;
pub mod history;
pub mod providers;
pub mod registry;
pub mod render;
pub mod repo;
pub mod router;
pub mod telemetry;

// Tools over prompt files, and the binary's door.
pub mod check;
pub mod cli;
pub mod diagnostic;
pub mod format;

// The crate's own.
pub(crate) mod calendar;
pub(crate) mod canary;
pub(crate) mod deploy;
pub(crate) mod environments;
pub(crate) mod escape;
pub(crate) mod eval;
pub(crate) mod files;
pub(crate) mod fnv;
pub(crate) mod lsp;
pub(crate) mod parallel;
pub(crate) mod retry;
pub(crate) mod schema;
pub(crate) mod serve;
pub(crate) mod settings;
pub(crate) mod sketch;
pub(crate) mod style;
pub(crate) mod token_bucket;
pub(crate) mod watch;
pub(crate) mod yaml_scan;

/// Counts each render's allocations so its memory limit holds (see [`render::limits`]).
#[global_allocator]
static ALLOCATOR: render::limits::CountingAllocator = render::limits::CountingAllocator;
