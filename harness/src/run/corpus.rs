//! How the installs' corpus reaches the cluster: generated and published through the upload
//! API (or restored by the provider from the corpus cache, then saved there after a seeding),
//! generated and already served, or discovered from what a read-only target serves; either
//! way served by every node before the first install is due.

use std::sync::Arc;
use std::time::{Duration, Instant};

use scenarios::corpus::Corpus;
use scenarios::daily_installs::{self, InstallTarget};
use scenarios::load_model::DailyInstallsConfig;

use crate::error::HarnessError;
use crate::infra::Infra;
use crate::plan::CorpusSource;

/// The corpus the load installs, as the plan says: generated and published through the
/// upload API, generated and already served, or discovered from what the target serves.
pub(crate) async fn load_corpus(
    config: &DailyInstallsConfig,
    source: CorpusSource,
    infra: &dyn Infra,
    client: &reqwest::Client,
    endpoints: &crate::infra::Endpoints,
    target: &InstallTarget,
) -> Result<(Arc<Corpus>, Seeding), HarnessError> {
    let began = Instant::now();
    let found_by = |how, corpus| {
        let seeding = Seeding {
            uploaded: daily_installs::UploadStats::default(),
            how,
            cache_entry: None,
            seed_seconds: 0.0,
            restore_seconds: None,
            save_seconds: None,
            ready_seconds: began.elapsed().as_secs_f64(),
        };
        (Arc::new(corpus), seeding)
    };
    match source {
        CorpusSource::Discover => {
            let (corpus, found) =
                daily_installs::discover_corpus(client, target, &config.corpus).await?;
            eprintln!(
                "harness: read-only: {} of {} Python projects (with a wheel) and {} of {} R packages served by {}",
                found.python_taken,
                found.python_listed,
                found.r_taken,
                found.r_listed,
                endpoints.base_url
            );
            Ok(found_by("discovered", corpus))
        }
        CorpusSource::Served => {
            let corpus = Corpus::generate(&config.corpus)?;
            wait_for_publication(client, endpoints, &corpus).await?;
            Ok(found_by("served", corpus))
        }
        CorpusSource::Publish => {
            let corpus = Arc::new(Corpus::generate(&config.corpus)?);
            let seeding = seed(infra, client, endpoints, &corpus, &corpus.stats()).await?;
            Ok((corpus, seeding))
        }
    }
}

async fn upload(
    client: &reqwest::Client,
    endpoints: &crate::infra::Endpoints,
    corpus: &Corpus,
) -> Result<daily_installs::UploadStats, HarnessError> {
    let tokens = daily_installs::UploadTokens {
        python: &endpoints.pypi_token,
        r: &endpoints.cran_token,
    };
    let progress = daily_installs::SeedProgress::default();
    let upload = daily_installs::upload_corpus_counted(
        client,
        &endpoints.base_url,
        tokens,
        (&endpoints.pypi_source, &endpoints.cran_source),
        corpus,
        &progress,
    );
    tokio::pin!(upload);
    // A line every ten seconds while it lasts: seeding a realistic corpus takes minutes.
    let mut every = tokio::time::interval(std::time::Duration::from_secs(10));
    every.tick().await;
    loop {
        tokio::select! {
            done = &mut upload => return Ok(done?),
            _ = every.tick() => eprintln!("harness: {}", seeding_line(&progress)),
        }
    }
}

/// "seeding 12,000/91,952 files (13 %), 480 MB, 85 files/s, about 16m 25s left".
fn seeding_line(progress: &daily_installs::SeedProgress) -> String {
    let (done, total, bytes) = progress.counts();
    let eta = progress.eta().map_or_else(
        || "time left unknown".to_string(),
        |left| {
            let left = std::time::Duration::from_secs(left.as_secs());
            format!("about {} left", humantime::format_duration(left))
        },
    );
    format!(
        "seeding {done}/{total} files ({:.0} %), {:.0} MB, {eta}",
        done as f64 * 100.0 / total.max(1) as f64,
        bytes as f64 / 1e6,
    )
}

/// How the corpus reached the cluster.
pub(crate) struct Seeding {
    pub uploaded: daily_installs::UploadStats,
    /// `uploaded` (this run), `restored` (from the corpus cache), `served` (already there: a
    /// generator of several), `discovered` (read-only target mode).
    how: &'static str,
    /// The cache entry restored from or saved to.
    cache_entry: Option<std::path::PathBuf>,
    /// Upload time (this run's or, when restored, the seeding run's).
    seed_seconds: f64,
    restore_seconds: Option<f64>,
    save_seconds: Option<f64>,
    /// From the start of the run to the corpus served by every node.
    ready_seconds: f64,
}

impl Seeding {
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "how": self.how,
            "cache_entry": self.cache_entry,
            "seed_seconds": self.seed_seconds,
            "restore_seconds": self.restore_seconds,
            "save_seconds": self.save_seconds,
            "ready_seconds": self.ready_seconds,
        })
    }
}

/// Puts the corpus into the cluster: restored already (the provider did it from the corpus
/// cache), or uploaded now and then saved into the cache; either way, served by every node
/// before it returns.
async fn seed(
    infra: &dyn Infra,
    client: &reqwest::Client,
    endpoints: &crate::infra::Endpoints,
    corpus: &Corpus,
    stats: &scenarios::corpus::CorpusStats,
) -> Result<Seeding, HarnessError> {
    let began = Instant::now();
    if let Some(restored) = infra.restored_corpus() {
        let m = &restored.manifest;
        eprintln!(
            "harness: corpus restored from the cache in {:.1} s ({} files, {:.1} MB; seeding it took {:.1} s)",
            restored.restore_seconds,
            m.uploaded_python_files + m.uploaded_r_files,
            m.uploaded_bytes as f64 / 1e6,
            m.seed_seconds
        );
        wait_for_publication(client, endpoints, corpus).await?;
        return Ok(Seeding {
            uploaded: daily_installs::UploadStats {
                python_files: m.uploaded_python_files,
                r_files: m.uploaded_r_files,
                bytes: m.uploaded_bytes,
                elapsed: Duration::ZERO,
            },
            how: "restored",
            cache_entry: Some(restored.entry.clone()),
            seed_seconds: m.seed_seconds,
            restore_seconds: Some(restored.restore_seconds),
            save_seconds: None,
            ready_seconds: began.elapsed().as_secs_f64(),
        });
    }
    eprintln!(
        "harness: publishing the corpus ({} packages, {} files, {:.1} MB drawn) through {}",
        stats.python_packages + stats.r_packages,
        stats.files(),
        stats.bytes as f64 / 1e6,
        endpoints.base_url
    );
    let uploaded = upload(client, endpoints, corpus).await?;
    eprintln!(
        "harness: published {} Python and {} R files ({:.1} MB) in {:.1} s",
        uploaded.python_files,
        uploaded.r_files,
        uploaded.bytes as f64 / 1e6,
        uploaded.elapsed.as_secs_f64()
    );
    // Every node must see the last upload before the first install is due.
    wait_for_publication(client, endpoints, corpus).await?;
    let ready_seconds = began.elapsed().as_secs_f64();
    let manifest = crate::corpus_cache::Manifest {
        key: crate::corpus_cache::CacheKey::new(corpus.config(), 0, ""),
        created_at: chrono::Utc::now(),
        seed_seconds: uploaded.elapsed.as_secs_f64(),
        save_seconds: 0.0,
        stats: stats.clone(),
        uploaded_python_files: uploaded.python_files,
        uploaded_r_files: uploaded.r_files,
        uploaded_bytes: uploaded.bytes,
        s3_access_key: String::new(),
        s3_secret_key: String::new(),
        s3_version: String::new(),
    };
    // Blocking (a dump, file copies, a restarted object store waited for with blocking HTTP):
    // nothing else runs yet, the load starts after it. On a thread of its own, outside the
    // runtime, where blocking clients may run.
    let saved =
        crate::infra::off_runtime("saving the seeded corpus", || infra.save_corpus(manifest))?;
    let save_seconds = saved
        .as_ref()
        .map(|_| began.elapsed().as_secs_f64() - ready_seconds);
    if let (Some(entry), Some(seconds)) = (&saved, save_seconds) {
        eprintln!(
            "harness: corpus saved to the cache in {seconds:.1} s: {}",
            entry.display()
        );
    }
    Ok(Seeding {
        seed_seconds: uploaded.elapsed.as_secs_f64(),
        uploaded,
        how: "uploaded",
        cache_entry: saved,
        restore_seconds: None,
        save_seconds,
        ready_seconds,
    })
}

/// Waits until every node lists the last Python package and the CRAN index holds the last R one.
async fn wait_for_publication(
    client: &reqwest::Client,
    endpoints: &crate::infra::Endpoints,
    corpus: &Corpus,
) -> Result<(), HarnessError> {
    let urls: Vec<String> = if endpoints.nodes.is_empty() {
        vec![endpoints.base_url.clone()]
    } else {
        endpoints.nodes.iter().map(|(_, url)| url.clone()).collect()
    };
    let checks: Vec<(String, Option<String>)> = urls
        .iter()
        .flat_map(|url| {
            let mut checks = Vec::new();
            if let Some(last) = corpus.python().last() {
                checks.push((
                    format!(
                        "{url}/{}/latest/simple/{}/",
                        endpoints.pypi_repo,
                        scenarios::corpus::pep503_normalize(&last.name)
                    ),
                    None,
                ));
            }
            if let Some(last) = corpus.r().last() {
                checks.push((
                    format!("{url}/{}/latest/src/contrib/PACKAGES", endpoints.cran_repo),
                    Some(format!("Package: {}\n", last.name)),
                ));
            }
            checks
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    for (url, needle) in checks {
        loop {
            let ok = match client.get(&url).send().await {
                Ok(r) if r.status().is_success() => match &needle {
                    None => true,
                    Some(n) => r
                        .text()
                        .await
                        .map(|t| t.contains(n.as_str()))
                        .unwrap_or(false),
                },
                _ => false,
            };
            if ok {
                break;
            }
            if Instant::now() > deadline {
                return Err(HarnessError::Target(format!(
                    "{url} did not show the published corpus within 30 s"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}
