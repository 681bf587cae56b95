//! The `ml-serving` binary: parse the command line, run the subcommand, report errors with
//! their full cause chain.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = ml_serving::cli::Cli::parse();
    match cli.run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
