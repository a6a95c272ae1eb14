//! Seeding the server: every artifact of the corpus uploaded through the public upload API
//! (twine's form for Python, a plain multipart `content` for R), [`UPLOAD_CONCURRENCY`] at a
//! time, counted in a [`SeedProgress`] as they land. Re-running is safe: the server answers 200
//! to the same file with the same bytes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use reqwest::multipart::{Form, Part};

use crate::corpus::{Artifact, ArtifactKind, Corpus, Ecosystem, PkgId};
use crate::error::ScenarioError;

/// Uploads in flight at once: enough that the nodes inspect and store files while another
/// upload holds the commit (which the database orders one at a time): the `transactions` lock
/// stays busy (issue 25: with 16 and the tuned Garage a sub-corpus seeded 16 % faster than with 8
/// on the default one).
pub const UPLOAD_CONCURRENCY: usize = 16;

/// How far a seeding has come, for a progress line: files and bytes landed out of the corpus.
#[derive(Debug, Default)]
pub struct SeedProgress {
    files_total: AtomicU64,
    files_done: AtomicU64,
    bytes_done: AtomicU64,
    started: std::sync::OnceLock<Instant>,
}

impl SeedProgress {
    /// (files landed, files in the corpus, bytes landed).
    pub fn counts(&self) -> (u64, u64, u64) {
        (
            self.files_done.load(Ordering::Relaxed),
            self.files_total.load(Ordering::Relaxed),
            self.bytes_done.load(Ordering::Relaxed),
        )
    }

    /// The time left at the rate so far; `None` before the first file landed.
    pub fn eta(&self) -> Option<Duration> {
        let (done, total, _) = self.counts();
        let elapsed = self.started.get()?.elapsed();
        (done > 0).then(|| elapsed.mul_f64(total.saturating_sub(done) as f64 / done as f64))
    }

    fn landed(&self, bytes: u64) {
        self.files_done.fetch_add(1, Ordering::Relaxed);
        self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// What [`upload_corpus`] sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UploadStats {
    /// Wheels and sdists uploaded.
    pub python_files: usize,
    /// R tarballs uploaded.
    pub r_files: usize,
    /// Bytes of all files.
    pub bytes: u64,
    /// Wall time of the whole upload.
    pub elapsed: Duration,
}

impl UploadStats {
    /// Files uploaded.
    pub fn files(&self) -> usize {
        self.python_files + self.r_files
    }
}

/// The `sources:write` tokens of the two sources (a token is scoped to one source).
#[derive(Clone, Copy, Debug)]
pub struct UploadTokens<'a> {
    pub python: &'a str,
    pub r: &'a str,
}

/// Uploads every version of every package: wheel and sdist to
/// `{base}/upload/pypi/{pypi_source}`, R tarballs to `{base}/upload/cran/{cran_source}`, with
/// HTTP Basic `__token__:{token}` of each source. Stops at the first rejected upload.
pub async fn upload_corpus(
    client: &reqwest::Client,
    base_url: &str,
    tokens: UploadTokens<'_>,
    pypi_source: &str,
    cran_source: &str,
    corpus: &Corpus,
) -> Result<UploadStats, ScenarioError> {
    let progress = SeedProgress::default();
    upload_corpus_counted(
        client,
        base_url,
        tokens,
        (pypi_source, cran_source),
        corpus,
        &progress,
    )
    .await
}

/// [`upload_corpus`], counting each file in `progress` as it lands.
pub async fn upload_corpus_counted(
    client: &reqwest::Client,
    base_url: &str,
    tokens: UploadTokens<'_>,
    (pypi_source, cran_source): (&str, &str),
    corpus: &Corpus,
    progress: &SeedProgress,
) -> Result<UploadStats, ScenarioError> {
    let started = Instant::now();
    let _ = progress.started.set(started);
    let base = base_url.trim_end_matches('/');
    let pypi_url = format!("{base}/upload/pypi/{pypi_source}");
    let cran_url = format!("{base}/upload/cran/{cran_source}");
    let ids: Vec<PkgId> = corpus.ids().collect();
    let files: u64 = ids.iter().map(|&id| corpus.artifact_count(id) as u64).sum();
    progress.files_total.store(files, Ordering::Relaxed);
    let sent: Vec<(Ecosystem, u64)> = stream::iter(ids)
        .map(|id| {
            let (url, token) = match id.ecosystem {
                Ecosystem::Python => (&pypi_url, tokens.python),
                Ecosystem::R => (&cran_url, tokens.r),
            };
            upload_package(client, url, token, corpus, id, progress)
        })
        .buffer_unordered(UPLOAD_CONCURRENCY)
        .map_ok(|files| stream::iter(files.into_iter().map(Ok)))
        .try_flatten()
        .try_collect()
        .await?;
    let mut stats = UploadStats {
        elapsed: Duration::ZERO,
        ..UploadStats::default()
    };
    for (ecosystem, bytes) in sent {
        match ecosystem {
            Ecosystem::Python => stats.python_files += 1,
            Ecosystem::R => stats.r_files += 1,
        }
        stats.bytes += bytes;
    }
    stats.elapsed = started.elapsed();
    Ok(stats)
}

/// Uploads one package's artifacts in order (older versions first, as they were released).
async fn upload_package(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    corpus: &Corpus,
    id: PkgId,
    progress: &SeedProgress,
) -> Result<Vec<(Ecosystem, u64)>, ScenarioError> {
    let mut sent = Vec::new();
    let artifacts = corpus.artifacts(id)?;
    for artifact in artifacts {
        let size = artifact.bytes.len() as u64;
        let file_name = artifact.file_name.clone();
        let form = match id.ecosystem {
            Ecosystem::Python => {
                let pkg = &corpus.python()[id.index];
                let version = artifact.version.clone();
                twine_form(&pkg.name, &version, &pkg.requires, artifact)?
            }
            Ecosystem::R => content_form(artifact)?,
        };
        post(client, url, token, form, file_name).await?;
        progress.landed(size);
        sent.push((id.ecosystem, size));
    }
    Ok(sent)
}

/// The form twine sends for `file_upload`.
pub(crate) fn twine_form(
    name: &str,
    version: &str,
    requires: &[String],
    artifact: Artifact,
) -> Result<Form, ScenarioError> {
    let (filetype, pyversion) = match artifact.kind {
        ArtifactKind::Wheel => ("bdist_wheel", "py3"),
        _ => ("sdist", "source"),
    };
    let mut form = Form::new()
        .text(":action", "file_upload")
        .text("protocol_version", "1")
        .text("metadata_version", "2.1")
        .text("name", name.to_string())
        .text("version", version.to_string())
        .text("filetype", filetype)
        .text("pyversion", pyversion)
        .text(
            "summary",
            format!("Synthetic {name} for package-server load tests"),
        )
        .text("requires_python", ">=3.8")
        .text("sha256_digest", artifact.sha256_hex());
    for dep in requires {
        form = form.text("requires_dist", dep.clone());
    }
    Ok(form.part("content", file_part(artifact)?))
}

pub(crate) fn content_form(artifact: Artifact) -> Result<Form, ScenarioError> {
    Ok(Form::new().part("content", file_part(artifact)?))
}

fn file_part(artifact: Artifact) -> Result<Part, ScenarioError> {
    let file_name = artifact.file_name.clone();
    Part::bytes(artifact.bytes)
        .file_name(artifact.file_name)
        .mime_str("application/octet-stream")
        .map_err(|e| ScenarioError::Artifact {
            file: file_name,
            detail: e.to_string(),
        })
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    form: Form,
    file: String,
) -> Result<(), ScenarioError> {
    let transport = |source| ScenarioError::UploadTransport {
        file: file.clone(),
        url: url.to_string(),
        source,
    };
    let response = client
        .post(url)
        .basic_auth("__token__", Some(token))
        .multipart(form)
        .send()
        .await
        .map_err(transport)?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    Err(ScenarioError::UploadRejected {
        file,
        url: url.to_string(),
        status: status.as_u16(),
        body: body.chars().take(300).collect(),
    })
}
