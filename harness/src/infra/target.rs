//! The `target` provider: an existing deployment. Nothing is started and nothing is killed.

use super::{Control, Endpoints, Infra, InfraError, Member, Monitored};

/// An existing deployment reached at one URL.
pub struct Target {
    endpoints: Endpoints,
    versions: Vec<reports::record::NodeInfo>,
}

impl Target {
    pub fn new(endpoints: Endpoints, versions: Vec<reports::record::NodeInfo>) -> Self {
        Self {
            endpoints,
            versions,
        }
    }
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

    fn teardown(&mut self) -> Result<(), InfraError> {
        Ok(())
    }
}
