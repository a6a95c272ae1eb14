//! One container of the cluster, started through testcontainers' synchronous runner: on the
//! run's network, with its own host name (= its container name, so the network's DNS resolves
//! it), the run label, files copied in before it starts, and ports published on 127.0.0.1 only,
//! on host ports chosen up front so that they stay the same across a stop/start. Dropping the
//! handle removes the container (testcontainers' drop).

use std::collections::HashMap;
use std::time::Duration;

use testcontainers::bollard::models::{HostConfig, PortBinding};
use testcontainers::core::IntoContainerPort;
use testcontainers::runners::SyncRunner;
use testcontainers::{Container, GenericImage, ImageExt};

use super::engine;
use crate::infra::InfraError;

/// What to start.
pub struct Spec {
    /// Container name and host name: `RUN-node-1`.
    pub name: String,
    /// Image repository and tag: `pkgcluster/postgres` and the workspace version, or an
    /// official image such as `minio/minio`.
    pub image: (String, String),
    pub run_id: String,
    pub network: String,
    pub env: Vec<(String, String)>,
    /// (container port, host port on 127.0.0.1).
    pub ports: Vec<(u16, u16)>,
    /// (path, content), copied in before the container starts (root's, mode 0644).
    pub files: Vec<(String, Vec<u8>)>,
    pub entrypoint: Option<String>,
    pub cmd: Vec<String>,
    /// (host dir, container path) bind mounts.
    pub mounts: Vec<(String, String)>,
    /// `UID:GID` to run as instead of the image's user.
    pub user: Option<String>,
}

impl Spec {
    pub fn new(name: String, image: &'static str, run_id: &str, network: &str) -> Self {
        Self {
            name,
            image: (engine::image_repository(image), engine::TAG.into()),
            run_id: run_id.into(),
            network: network.into(),
            env: Vec::new(),
            ports: Vec::new(),
            files: Vec::new(),
            entrypoint: None,
            cmd: Vec::new(),
            mounts: Vec::new(),
            user: None,
        }
    }

    /// Runs as `user` (`UID:GID`) instead of the image's user.
    pub fn user(mut self, user: &str) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Bind-mounts the host directory `host` at `inside`.
    pub fn mount(mut self, host: &std::path::Path, inside: &str) -> Self {
        self.mounts
            .push((host.display().to_string(), inside.to_string()));
        self
    }

    /// Runs `repository:tag` instead of the `pkgcluster` image.
    pub fn image(mut self, repository: &str, tag: &str) -> Self {
        self.image = (repository.into(), tag.into());
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Publishes `container_port` on a free 127.0.0.1 port.
    pub fn publish(mut self, container_port: u16) -> Result<Self, InfraError> {
        self.ports
            .push((container_port, crate::infra::probe::free_port()?));
        Ok(self)
    }

    pub fn cmd(mut self, args: &[&str]) -> Self {
        self.cmd = args.iter().map(|a| a.to_string()).collect();
        self
    }

    pub fn file(mut self, path: &str, content: impl Into<Vec<u8>>) -> Self {
        self.files.push((path.into(), content.into()));
        self
    }
}

/// A started container.
pub struct Started {
    pub name: String,
    pub container: Container<GenericImage>,
    /// container port → host port on 127.0.0.1.
    pub ports: HashMap<u16, u16>,
}

impl Started {
    pub fn host_port(&self, container_port: u16) -> u16 {
        self.ports.get(&container_port).copied().unwrap_or_default()
    }

    /// Stops the container (its stop signal, SIGKILL after `grace`), through testcontainers.
    pub fn stop(&self, grace: Duration) -> Result<(), InfraError> {
        let seconds = i32::try_from(grace.as_secs()).unwrap_or(10);
        self.container
            .stop_with_timeout(Some(seconds))
            .map_err(|e| failed(&self.name, "stop", e))
    }

    /// Starts a stopped (or killed) container again, through testcontainers.
    pub fn start(&self) -> Result<(), InfraError> {
        self.container
            .start()
            .map_err(|e| failed(&self.name, "start", e))
    }
}

fn failed(name: &str, action: &str, error: impl std::fmt::Display) -> InfraError {
    InfraError::Failed {
        what: format!("{action} container {name}"),
        detail: error.to_string(),
    }
}

/// Creates and starts the container; readiness is the caller's to check.
pub fn start(spec: Spec) -> Result<Started, InfraError> {
    let (repository, tag) = &spec.image;
    let mut image = GenericImage::new(repository.clone(), tag.clone());
    for (inside, _) in &spec.ports {
        image = image.with_exposed_port(inside.tcp());
    }
    if let Some(entrypoint) = &spec.entrypoint {
        image = image.with_entrypoint(entrypoint);
    }
    let bindings: HashMap<String, Option<Vec<PortBinding>>> = spec
        .ports
        .iter()
        .map(|(inside, outside)| {
            (
                format!("{inside}/tcp"),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(outside.to_string()),
                }]),
            )
        })
        .collect();
    let binds: Vec<String> = spec
        .mounts
        .iter()
        .map(|(host, inside)| format!("{host}:{inside}"))
        .collect();
    let mut request = image
        .with_container_name(&spec.name)
        .with_hostname(&spec.name)
        .with_network(&spec.network)
        .with_label(engine::RUN_LABEL, &spec.run_id)
        .with_startup_timeout(Duration::from_secs(60))
        // Only 127.0.0.1: testcontainers would publish every exposed port on all addresses.
        .with_host_config_modifier(move |host: &mut HostConfig| {
            host.publish_all_ports = Some(false);
            host.port_bindings = Some(bindings.clone());
            if !binds.is_empty() {
                host.binds = Some(binds.clone());
            }
        });
    for (name, value) in &spec.env {
        request = request.with_env_var(name, value);
    }
    for (path, content) in &spec.files {
        request = request.with_copy_to(path.clone(), content.clone());
    }
    if !spec.cmd.is_empty() {
        request = request.with_cmd(spec.cmd.clone());
    }
    if let Some(user) = &spec.user {
        request = request.with_user(user.clone());
    }
    let container = request.start().map_err(|e| InfraError::Failed {
        what: format!("start container {} ({repository}:{tag})", spec.name),
        detail: e.to_string(),
    })?;
    Ok(Started {
        name: spec.name,
        container,
        ports: spec.ports.into_iter().collect(),
    })
}
