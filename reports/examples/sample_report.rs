//! Writes the synthetic sample run (see `reports::sample`) to a run directory, to preview the
//! report: `cargo run -p reports --features sample --example sample_report -- DIR`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: sample_report DIR");
        return ExitCode::from(2);
    };
    let record = reports::sample::sample_record();
    match reports::store::write_run_dir(&dir, &record) {
        Ok(()) => {
            println!(
                "{}",
                std::path::Path::new(&dir).join("report.html").display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
