//! The `target` provider: an existing deployment. Nothing is started and nothing is killed;
//! the database is read only when a database URL is given, and then only in read-only
//! transactions.

use super::{Control, Endpoints, Infra, InfraError, Member, Monitored};

/// An existing deployment reached at one URL.
pub struct Target {
    endpoints: Endpoints,
    versions: Vec<reports::record::NodeInfo>,
    /// Where the ground truth of writes is read (`--database-url`), read-only.
    database_url: Option<String>,
}

impl Target {
    pub fn new(endpoints: Endpoints, versions: Vec<reports::record::NodeInfo>) -> Self {
        Self {
            endpoints,
            versions,
            database_url: None,
        }
    }

    /// Reads the deployment's database at `url` (read-only transactions through `psql`) for
    /// the ground truth of writes.
    pub fn with_database_url(mut self, url: String) -> Self {
        self.database_url = Some(url);
        self
    }
}

/// `psql -tA -c SQL` against `url` with every transaction read-only.
fn read_only_psql(url: &str, sql: &str) -> Result<String, InfraError> {
    let output = std::process::Command::new("psql")
        .env("PGOPTIONS", "-c default_transaction_read_only=on")
        .env("PGCONNECT_TIMEOUT", "10")
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-tA", "-d", url, "-c", sql])
        .output()
        .map_err(|e| InfraError::Missing {
            what: "psql".into(),
            detail: e.to_string(),
        })?;
    if !output.status.success() {
        return Err(InfraError::Failed {
            what: "psql on the database URL".into(),
            detail: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

impl Infra for Target {
    fn info(&self) -> reports::record::InfraInfo {
        reports::record::InfraInfo {
            provider: "target".into(),
            reason: format!("--target {}", self.endpoints.base_url),
            nodes: self.versions.clone(),
            components: Default::default(),
        }
    }

    fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    fn monitored(&self) -> Vec<Monitored> {
        Vec::new()
    }

    fn control(&self, member: &Member, action: Control) -> Result<(), InfraError> {
        Err(InfraError::Unsupported {
            provider: "target".into(),
            action,
            member: member.clone(),
        })
    }

    fn query_primary(&self, sql: &str) -> Option<Result<String, InfraError>> {
        let url = self.database_url.as_deref()?;
        Some(read_only_psql(url, sql))
    }

    fn teardown(&mut self) -> Result<(), InfraError> {
        Ok(())
    }
}
