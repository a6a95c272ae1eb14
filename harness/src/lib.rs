//! The load-testing and conformance harness: infrastructure providers, scenario runs, and the
//! glue to the run record and report. `main.rs` parses the command line and calls [`run`].

pub mod checkers;
pub mod checklist;
pub mod cli;
pub mod commands;
pub mod corpus_cache;
pub mod error;
pub mod gate;
pub mod http;
pub mod infra;
pub mod lifecycle;
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
        cli::Command::Gate(args) => commands::gate::run(*args).await,
        cli::Command::Compare(args) => commands::compare::run(&args),
        cli::Command::Report {
            dir,
            thresholds,
            thresholds_file,
        } => commands::report::run(&dir, &thresholds, thresholds_file.as_deref()),
        cli::Command::CorpusCache { action, dir } => commands::corpus_cache::run(action, dir),
        cli::Command::Merge(args) => commands::merge::run(&args),
        cli::Command::Generator { spec } => commands::generator::run(&spec).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("harness: {e}");
            e.exit_code()
        }
    }
}
