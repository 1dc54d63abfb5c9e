//! `promptctl lsp`: the language server on stdin and stdout (see [`crate::lsp`]).

use clap::Args;

use super::{CliError, Context};

/// Arguments of `promptctl lsp`.
#[derive(Debug, Args)]
pub struct LspArgs {
    /// Accepted for editors that pass it; stdio is the only transport.
    #[arg(long)]
    stdio: bool,
}

/// Runs the language server until the client sends `exit`.
pub fn run(context: &Context, args: &LspArgs) -> Result<u8, CliError> {
    let _ = args.stdio;
    let stdout = std::io::stdout();
    crate::lsp::run(std::io::stdin(), stdout.lock(), &context.directory)
        .map_err(|err| CliError::external(format!("language server: {err}")))
}
