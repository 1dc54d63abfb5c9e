//! `promptctl schema [prompt|environments|config]`: print a file format's JSON Schema.
//!
//! The schemas come from [`crate::schema`]; this file only picks one and prints it. The
//! output is JSON whatever `--format` says: it is data for editors and validators.

use clap::{Args, ValueEnum};

use super::{CliError, Context, exit};

/// Which file's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Document {
    /// A prompt file (prompts/**/*.yaml).
    Prompt,
    /// environments.yaml.
    Environments,
    /// promptctl.toml.
    Config,
}

/// Arguments of `promptctl schema`.
#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// The file format (default: prompt).
    #[arg(value_enum, default_value_t = Document::Prompt)]
    document: Document,
}

/// Runs `promptctl schema`.
pub fn run(context: &Context, args: &SchemaArgs) -> Result<u8, CliError> {
    let value = match args.document {
        Document::Prompt => crate::schema::prompt_schema(),
        Document::Environments => crate::schema::environments_schema(),
        Document::Config => crate::schema::config_schema(),
    };
    context.output.json(&value);
    Ok(exit::SUCCESS)
}
