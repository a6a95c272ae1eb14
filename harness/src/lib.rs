//! The load-testing and conformance harness: infrastructure providers, scenario runs, and the
//! glue to the run record and report. `main.rs` parses the command line and calls [`run`].

pub mod checkers;
pub mod checklist;
pub mod cli;
pub mod commands;
pub mod error;
pub mod infra;
pub mod nemesis;
pub mod plan;
pub mod procs;
pub mod run;

pub use error::{HarnessError, exit};

/// Runs one command line; returns the exit code.
pub async fn execute(cli: cli::Cli) -> u8 {
    let result = match cli.command {
        cli::Command::Scenario(args) => commands::scenario::run(*args).await,
        cli::Command::Drill(args) => commands::drill::run(*args).await,
        cli::Command::Check(args) => commands::check::run(*args).await,
        cli::Command::Report { dir } => commands::report::rerender(&dir).map(|record| {
            println!("report: {}", dir.join("report.html").display());
            println!("verdict: {}", record.verdict.as_str().to_uppercase());
            exit::PASS
        }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("harness: {e}");
            e.exit_code()
        }
    }
}
