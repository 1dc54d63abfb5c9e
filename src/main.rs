//! The `promptctl` binary: parse the command line, run the command, exit with its code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match promptctl::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // Help and version go to stdout with exit 0; usage errors exit 2 (SPEC section 3).
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() {
                promptctl::cli::exit::BAD_INPUT
            } else {
                promptctl::cli::exit::SUCCESS
            });
        }
    };
    ExitCode::from(promptctl::cli::run(cli))
}
