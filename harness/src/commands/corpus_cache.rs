//! `harness corpus-cache list|clear`: what the corpus cache holds, and emptying it.

use std::path::PathBuf;

use crate::cli::CorpusCacheAction;
use crate::corpus_cache::CorpusCache;
use crate::error::{HarnessError, exit};

/// Lists or clears the cache at `dir` (default location when `None`).
pub fn run(action: CorpusCacheAction, dir: Option<PathBuf>) -> Result<u8, HarnessError> {
    let cache = CorpusCache::at(dir);
    let failed = |e: crate::corpus_cache::CacheError| HarnessError::Internal(e.to_string());
    match action {
        CorpusCacheAction::List => {
            let entries = cache.list().map_err(failed)?;
            println!(
                "corpus cache {}: {} entries",
                cache.dir.display(),
                entries.len()
            );
            for (path, m) in entries {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                println!(
                    "{name}  {provider} schema {schema}  {py} Python + {r} R packages, {files} files, \
                     {mb:.1} MB  seeded in {seed:.1} s on {at}",
                    provider = m.key.provider,
                    schema = m.key.schema_version,
                    py = m.stats.python_packages,
                    r = m.stats.r_packages,
                    files = m.uploaded_python_files + m.uploaded_r_files,
                    mb = m.uploaded_bytes as f64 / 1e6,
                    seed = m.seed_seconds,
                    at = m.created_at.format("%Y-%m-%d %H:%M UTC"),
                );
            }
        }
        CorpusCacheAction::Clear => {
            let removed = cache.clear().map_err(failed)?;
            println!(
                "corpus cache {}: removed {removed} entries",
                cache.dir.display()
            );
        }
    }
    Ok(exit::PASS)
}
