//! Saving a seeded cluster into the corpus cache ([`crate::infra::Infra::save_corpus`]): the
//! node database dumped, then Garage stopped while its directories are copied and started
//! again. Restoring happens at bring-up, before the nodes start; [`super::seed`] holds both
//! sides' file work.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{LocalCluster, lock, poisoned, postgres, seed};
use crate::corpus_cache::Manifest;
use crate::infra::{Control, InfraError, Member};

impl LocalCluster {
    /// Blocking. `None` without a corpus cache, or when this cluster was restored from it.
    pub(super) fn save_corpus_entry(
        &self,
        mut manifest: Manifest,
    ) -> Result<Option<PathBuf>, InfraError> {
        let Some((cache, key)) = &self.corpus_cache else {
            return Ok(None);
        };
        if self.restored.is_some() {
            return Ok(None);
        }
        let began = Instant::now();
        manifest.key = key.clone();
        let context = self.context()?;
        let staging = seed::staging(cache, &manifest)?;
        seed::dump_database(
            &context,
            Path::new(postgres::BIN_DIR),
            &self.database_url,
            &staging.join(seed::DB_DUMP),
        )?;
        self.control_member(&Member::ObjectStore, Control::Stop)?;
        let copied = {
            let garage = lock(&self.parts.garage);
            let garage = garage.as_ref().ok_or_else(poisoned)?;
            manifest.s3_access_key = garage.access_key.clone();
            manifest.s3_secret_key = garage.secret_key.clone();
            manifest.s3_version = garage.version.clone();
            seed::save_object_store(&garage.dir, &staging)
        };
        // Started again whatever the copy did.
        self.control_member(&Member::ObjectStore, Control::Start)?;
        copied?;
        seed::commit(cache, &staging, &mut manifest, began).map(Some)
    }
}
