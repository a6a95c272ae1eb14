//! The `daily-installs` goose scenario: every goose user loops taking the next arrival from
//! the shared [`Schedule`], sleeps until it is due, and installs the package the way pip or
//! R would, recording each request against the time it was *due*.
//!
//! Requests go through goose's `GooseUser` (named `pypi_simple`, `pypi_file`, `cran_packages`,
//! `cran_tarball`), with goose's own request metrics off: the [`Recorder`] is the measure,
//! because goose times only to the first byte and from when the request was sent, not from
//! when it was due.

mod discover;
mod index;
mod install;
mod packages_cache;
mod packages_rds;
pub(crate) mod upload;

use std::sync::Arc;
use std::time::{Duration, Instant};

use goose::config::GooseConfiguration;
use goose::prelude::*;
use reports::metrics::Recorder;

use crate::arrival::Schedule;
use crate::corpus::Corpus;
use crate::error::ScenarioError;

pub use discover::{Discovered, discover_corpus};
pub use index::{
    FileLink, PageError, SIMPLE_ACCEPT, SIMPLE_JSON_TYPE, json_page_files, newest_wheel,
    newest_wheel_json, parse_packages_index, parse_simple_page,
};
pub use packages_cache::{PackagesCache, PackagesIndex};
pub use packages_rds::parse_packages_rds;
pub use upload::{
    SeedProgress, UPLOAD_CONCURRENCY, UploadStats, UploadTokens, upload_corpus,
    upload_corpus_counted,
};

/// Recorder kind of a whole install, scheduled to finished.
pub const KIND_INSTALL: &str = reports::kinds::INSTALL_KIND;
/// Recorder kind of a project page (PEP 691 JSON, or PEP 503 HTML from a server without it).
pub const KIND_PYPI_SIMPLE: &str = "pypi_simple";
/// Recorder kind of a wheel download.
pub const KIND_PYPI_FILE: &str = "pypi_file";
/// Recorder kind of the R index (`PACKAGES.rds`, or `PACKAGES.gz` after a 404).
pub const KIND_CRAN_PACKAGES: &str = "cran_packages";
/// Recorder kind of an R source tarball download.
pub const KIND_CRAN_TARBALL: &str = "cran_tarball";
/// Every recorder kind the scenario records: the thresholds naming one judge this workload.
pub const KINDS: &[&str] = &[
    KIND_INSTALL,
    KIND_PYPI_SIMPLE,
    KIND_PYPI_FILE,
    KIND_CRAN_PACKAGES,
    KIND_CRAN_TARBALL,
];

/// How long an idle user (nothing left to take) sleeps before goose may stop it.
const IDLE_SLEEP: Duration = Duration::from_millis(100);

/// Where the installs go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallTarget {
    /// Server root, e.g. `http://127.0.0.1:4242` (no trailing slash needed).
    pub base_url: String,
    /// Name of the PyPI repository.
    pub pypi_repo: String,
    /// Name of the CRAN repository.
    pub cran_repo: String,
}

impl InstallTarget {
    fn base(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }

    /// `{base}/{pypi_repo}/latest/simple/`: the index of every project.
    pub fn simple_root_url(&self) -> String {
        format!("{}/{}/latest/simple/", self.base(), self.pypi_repo)
    }

    /// `{base}/{pypi_repo}/latest/simple/{normalized}/`.
    pub fn simple_url(&self, normalized: &str) -> String {
        format!(
            "{}/{}/latest/simple/{normalized}/",
            self.base(),
            self.pypi_repo
        )
    }

    /// `{base}/{cran_repo}/latest/src/contrib/PACKAGES.gz`.
    pub fn packages_gz_url(&self) -> String {
        format!(
            "{}/{}/latest/src/contrib/PACKAGES.gz",
            self.base(),
            self.cran_repo
        )
    }

    /// `{base}/{cran_repo}/latest/src/contrib/PACKAGES.rds`, what R 4.x asks for first.
    pub fn packages_rds_url(&self) -> String {
        format!(
            "{}/{}/latest/src/contrib/PACKAGES.rds",
            self.base(),
            self.cran_repo
        )
    }

    /// `{base}/{cran_repo}/latest/src/contrib/{pkg}_{version}.tar.gz`.
    pub fn tarball_url(&self, name: &str, version: &str) -> String {
        format!(
            "{}/{}/latest/src/contrib/{name}_{version}.tar.gz",
            self.base(),
            self.cran_repo
        )
    }
}

/// Everything a goose user needs to run installs; shared by all users.
#[derive(Clone)]
pub struct InstallContext {
    /// Where installs go.
    pub target: InstallTarget,
    /// The packages.
    pub corpus: Arc<Corpus>,
    /// When installs are due, shared by every user.
    pub schedule: Arc<Schedule>,
    /// Where every outcome is recorded.
    pub recorder: Arc<Recorder>,
    /// An install starting later than this after its due time counts as late.
    pub late_tolerance: Duration,
    /// Time zero of the schedule. Set it a moment ahead (about a second) so every goose user
    /// is running before the first install is due.
    pub start: Instant,
    /// Arrivals due at or after this offset are not taken (the run ends first); `None` takes
    /// them all. [`execute`] caps it at its run time.
    pub arrivals_before: Option<Duration>,
    /// Timeout of each request.
    pub request_timeout: Duration,
    /// `PACKAGES.gz` parsed once per index version, shared by every user.
    pub packages: Arc<PackagesCache>,
}

impl InstallContext {
    /// A context with the default tolerance (50 ms) and timeout (30 s), whose schedule starts
    /// at the recorder's start.
    pub fn new(
        target: InstallTarget,
        corpus: Arc<Corpus>,
        schedule: Arc<Schedule>,
        recorder: Arc<Recorder>,
    ) -> Self {
        InstallContext {
            target,
            start: recorder.start(),
            corpus,
            schedule,
            recorder,
            late_tolerance: Duration::from_millis(50),
            arrivals_before: None,
            request_timeout: Duration::from_secs(30),
            packages: Arc::new(PackagesCache::default()),
        }
    }
}

/// The goose scenario: one transaction, `install`, that runs one scheduled install per
/// iteration (or idles briefly when nothing is left to take).
///
/// goose builds a `reqwest::Client` per user: its own connection pool, resolver and TLS
/// set-up, about half a megabyte each, so a run with thousands of users held a gigabyte in
/// clients alone. Each user starts by taking the first user's client instead; the open
/// connections are still as many as the requests in flight, as with separate clients.
pub fn scenario(ctx: Arc<InstallContext>) -> Scenario {
    // The first user to start lends its client (goose built it from the configuration:
    // timeout, user agent, gzip) to every later one.
    let shared = Arc::new(std::sync::OnceLock::new());
    let take_client: TransactionFunction = Arc::new(move |user| {
        share_first(&shared, &mut user.client);
        Box::pin(async { Ok(()) })
    });
    let install: TransactionFunction = Arc::new(move |user| {
        let ctx = Arc::clone(&ctx);
        Box::pin(async move {
            run_one(&ctx, user).await;
            Ok(())
        })
    });
    Scenario::new("daily_installs")
        .register_transaction(
            Transaction::new(take_client)
                .set_name("take_client")
                .set_on_start(),
        )
        .register_transaction(Transaction::new(install).set_name("install"))
}

/// Replaces `own` with the value in `slot`, or puts a copy of `own` there when it is empty.
fn share_first<T: Clone>(slot: &std::sync::OnceLock<T>, own: &mut T) {
    *own = slot.get_or_init(|| own.clone()).clone();
}

/// Takes the next arrival and installs it. goose cannot stop one user from inside, so a user
/// with nothing left sleeps [`IDLE_SLEEP`] and returns, letting goose end it at run end.
async fn run_one(ctx: &InstallContext, user: &mut GooseUser) {
    let limit = ctx.arrivals_before.unwrap_or(Duration::MAX);
    let Some(arrival) = ctx.schedule.next_before(limit) else {
        tokio::time::sleep(IDLE_SLEEP).await;
        return;
    };
    let due = ctx.start + arrival.offset;
    ctx.recorder.scheduled(KIND_INSTALL, due);
    tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
    if Instant::now() > due + ctx.late_tolerance {
        ctx.recorder.late(KIND_INSTALL, due);
    }
    install::install(ctx, user, arrival.package, due).await;
}

/// Runs the scenario with goose: `users` users all started at once, for `run_time`, with
/// no reports written, no controllers listening, no goose metrics and goose's console quiet.
/// goose is configured in code only; it never reads the process's arguments.
///
/// goose counts `run_time` from when every user has started; the schedule from `ctx.start`.
/// Arrivals due after `run_time` are left untaken so no user sleeps past the end.
pub async fn execute(
    ctx: Arc<InstallContext>,
    users: usize,
    run_time: Duration,
) -> Result<(), ScenarioError> {
    if users == 0 || run_time.is_zero() {
        return Err(ScenarioError::EmptyRun { users, run_time });
    }
    let mut bounded = (*ctx).clone();
    bounded.arrivals_before = Some(ctx.arrivals_before.map_or(run_time, |b| b.min(run_time)));
    // The schedule starts at `ctx.start`, which may lie ahead (children of `--generators N`
    // start seconds before the shared instant): goose's clock starts now, so its run covers
    // that lead too, or the schedule's last seconds would never start.
    let lead = ctx.start.saturating_duration_since(Instant::now());
    let attack =
        GooseAttack::initialize_with_config(goose_configuration(&ctx, users, run_time + lead))
            .map_err(|e| ScenarioError::Goose(e.to_string()))?
            .register_scenario(scenario(Arc::new(bounded)));
    attack
        .execute()
        .await
        .map(|_| ())
        .map_err(|e| ScenarioError::Goose(e.to_string()))
}

/// The goose configuration [`execute`] runs with.
pub fn goose_configuration(
    ctx: &InstallContext,
    users: usize,
    run_time: Duration,
) -> GooseConfiguration {
    let mut config = GooseConfiguration::default();
    // Every request carries a full URL; goose still insists on a host.
    config.host = Some(ctx.target.base().to_string());
    config.users = Some(users);
    // Users a second: far above the count, so all start together.
    config.increase_rate = Some((users.max(1) * 1_000).to_string());
    // goose takes whole seconds.
    config.run_time = Some(run_time.as_secs_f64().ceil().max(1.0).to_string());
    config.timeout = Some(format!(
        "{:.3}",
        ctx.request_timeout.as_secs_f64().max(0.001)
    ));
    config.quiet = 1;
    config.no_print_metrics = true;
    config.no_error_summary = true;
    config.no_telnet = true;
    config.no_reset_metrics = true;
    // The recorder is the measure (from the due time, to the last byte); goose's own request
    // metrics would copy every request's names and URL to an aggregating task for nothing.
    // Idle iterations would count as transactions.
    config.no_metrics = true;
    config.no_transaction_metrics = true;
    config.no_scenario_metrics = true;
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_user_after_the_first_takes_the_first_users_client() {
        let slot = std::sync::OnceLock::new();
        let mut first = Arc::new(1);
        let mut second = Arc::new(2);
        share_first(&slot, &mut first);
        share_first(&slot, &mut second);
        assert_eq!(*second, 1);
        assert!(Arc::ptr_eq(&first, &second), "one value, shared");
    }
}
