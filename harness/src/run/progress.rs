//! A live progress line (indicatif): elapsed, installs/s target vs achieved, errors, p99.
//! Without a terminal it prints a plain line every ten seconds instead.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use reports::Recorder;

/// Runs until `stop` is dropped or fires.
pub fn spawn(
    recorder: Arc<Recorder>,
    planned_installs: u64,
    run_time: Duration,
    quiet: bool,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if quiet {
            let _ = stop.await;
            return;
        }
        let terminal = std::io::stderr().is_terminal();
        let bar = if terminal {
            let bar = ProgressBar::new(planned_installs);
            bar.set_style(
                ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30.cyan/blue}] {pos}/{len} installs  {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            Some(bar)
        } else {
            None
        };
        let every = if terminal {
            Duration::from_millis(250)
        } else {
            Duration::from_secs(10)
        };
        let mut last_ok = 0u64;
        let mut last_at = std::time::Instant::now();
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(every) => {}
            }
            let live = recorder.snapshot();
            let Some(install) = live
                .kinds
                .get(scenarios::daily_installs::KIND_INSTALL)
                .cloned()
            else {
                continue;
            };
            let errors: u64 = live.kinds.values().map(|k| k.err).sum();
            let p99 = install
                .p99_ms
                .map(|p| format!("{p:.1} ms"))
                .unwrap_or_else(|| "-".into());
            let now = std::time::Instant::now();
            let achieved = (install.ok.saturating_sub(last_ok)) as f64
                / now.duration_since(last_at).as_secs_f64();
            last_ok = install.ok;
            last_at = now;
            let elapsed = live.elapsed.as_secs_f64();
            let target = install.scheduled as f64 / elapsed.max(0.001);
            let message = format!(
                "target {target:.1}/s  achieved {achieved:.1}/s  errors {errors}  late {}  p99 {p99}",
                install.late
            );
            match &bar {
                Some(bar) => {
                    bar.set_position(install.ok + install.err);
                    bar.set_message(message);
                }
                None => eprintln!(
                    "[{elapsed:>5.0}s / {:.0}s] {} installs done  {message}",
                    run_time.as_secs_f64(),
                    install.ok + install.err
                ),
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
    })
}
