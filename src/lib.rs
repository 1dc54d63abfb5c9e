//! promptctl: LLM prompts as code, versioned by Git.
//!
//! Prompts and their test cases are YAML files in a Git repository. This library reads them
//! ([`repo`]), lints them ([`check`]) and renders them ([`render`]); the `promptctl` binary is
//! a thin command line over it ([`cli`]).
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

pub mod calendar;
pub mod check;
pub mod cli;
pub mod config;
pub mod deploy;
pub mod diagnostic;
pub mod environments;
pub mod escape;
pub mod eval;
pub mod files;
pub(crate) mod fnv;
pub mod format;
pub mod history;
pub mod lsp;
pub mod parallel;
pub mod providers;
pub mod registry;
pub mod render;

/// Counts each render's allocations so its memory limit holds (see [`render::limits`]).
#[global_allocator]
static ALLOCATOR: render::limits::CountingAllocator = render::limits::CountingAllocator;
pub mod repo;
pub(crate) mod retry;
pub mod router;
pub mod schema;
pub mod serve;
pub mod settings;
pub(crate) mod style;
pub mod telemetry;
pub(crate) mod token_bucket;
