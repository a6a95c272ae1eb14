//! The provider's images: `pkgcluster/NAME:VERSION`, built by `docker/build-images.sh` when
//! missing or stale (the `pkgnode` image rebuilt when its binary changed; the git builders'
//! node image by `docker/build-builders-image.sh`), and a local `minio/minio` when present.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::docker;
use crate::infra::InfraError;

/// Image names, tagged with the workspace version (`pkgcluster/NAME:VERSION`).
pub const PREFIX: &str = "pkgcluster";
pub const TAG: &str = env!("CARGO_PKG_VERSION");
pub const IMAGES: [&str; 4] = ["postgres", "haproxy", "garage", "pkgnode"];
/// The label holding the sha256 of the `pkgnode` binary an image was built from.
const PKGNODE_SHA_LABEL: &str = "pkgcluster.pkgnode.sha256";

pub fn image(name: &str) -> String {
    format!("{}:{TAG}", image_repository(name))
}

pub fn image_repository(name: &str) -> String {
    format!("{PREFIX}/{name}")
}

/// The official MinIO server image, used for S3 instead of the Garage image when present.
pub const MINIO_REPOSITORY: &str = "minio/minio";

/// The tag of a local `minio/minio` image (`latest` first), if the engine holds one; nothing is
/// pulled.
pub fn minio_tag() -> Option<String> {
    let tags = docker(&["image", "ls", MINIO_REPOSITORY, "--format", "{{.Tag}}"]).ok()?;
    pick_tag(&tags)
}

/// From `docker image ls --format {{.Tag}}` lines: `latest` if listed, else the first real tag.
fn pick_tag(lines: &str) -> Option<String> {
    let tags: Vec<&str> = lines
        .lines()
        .map(str::trim)
        .filter(|t| !t.is_empty() && *t != "<none>")
        .collect();
    tags.iter()
        .find(|t| **t == "latest")
        .or(tags.first())
        .map(|t| t.to_string())
}

/// `docker/build-images.sh` of this workspace.
pub fn build_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker/build-images.sh")
}

fn image_exists(image: &str) -> bool {
    docker(&["image", "inspect", "-f", "{{.Id}}", image]).is_ok()
}

/// A label of an image; `None` when the image does not exist (`<no value>` when it lacks it).
fn image_label(image: &str, label: &str) -> Option<String> {
    let format = format!("{{{{index .Config.Labels \"{label}\"}}}}");
    docker(&["image", "inspect", "-f", &format, image])
        .ok()
        .map(|v| v.trim().to_string())
}

fn sha256_file(path: &Path) -> Result<String, InfraError> {
    use sha2::{Digest, Sha256};
    let mut file = std::fs::File::open(path).map_err(|e| InfraError::Missing {
        what: "pkgnode".into(),
        detail: format!("{}: {e}", path.display()),
    })?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

/// Which image the nodes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeImage {
    /// `pkgcluster/pkgnode:VERSION`: `FROM scratch`, the binary and its ldd closure.
    Scratch,
    /// `pkgcluster/pkgnode-builders:DIGEST`: a Debian root with git, R and Python for the git
    /// builders ([`super::builders_image`]).
    Builders,
}

/// The images a cluster runs, once they exist.
#[derive(Debug, Clone)]
pub struct Images {
    /// What was built (empty when nothing was; the builders image is not listed: its script
    /// says what it did).
    pub built: Vec<String>,
    /// The nodes' image: (repository, tag).
    pub node: (String, String),
}

/// Makes sure the images exist: postgres, haproxy and garage, and the node image `node` asks
/// for. `pkgcluster/pkgnode` must hold `pkgnode_bin` (its label carries the binary's sha256):
/// missing images are built, a stale pkgnode image is rebuilt; the builders image is named
/// after its inputs, the binary among them. Serialised across processes with a lock file, so
/// parallel tests build once.
pub fn ensure_images(pkgnode_bin: &Path, node: NodeImage) -> Result<Images, InfraError> {
    let lock_path = std::env::temp_dir().join("pkgcluster-images.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)?;
    // Held until dropped below, after the builds.
    let held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| std::io::Error::from(errno))?;
    let mut missing: Vec<&str> = IMAGES
        .iter()
        .copied()
        .filter(|name| *name != "pkgnode" && !image_exists(&image(name)))
        .collect();
    let mut force_pkgnode = false;
    let node_image = match node {
        NodeImage::Scratch => {
            let want = sha256_file(pkgnode_bin)?;
            match image_label(&image("pkgnode"), PKGNODE_SHA_LABEL) {
                None => missing.push("pkgnode"),
                Some(have) if have != want => force_pkgnode = true,
                Some(_) => {}
            }
            (image_repository("pkgnode"), TAG.to_string())
        }
        NodeImage::Builders => super::super::builders_image::ensure(pkgnode_bin)?,
    };
    let mut built = Vec::new();
    if !missing.is_empty() {
        run_build(&missing, false, pkgnode_bin)?;
        built.extend(missing.iter().map(|s| s.to_string()));
    }
    if force_pkgnode {
        run_build(&["pkgnode"], true, pkgnode_bin)?;
        built.push("pkgnode".into());
    }
    drop(held);
    Ok(Images {
        built,
        node: node_image,
    })
}

fn run_build(names: &[&str], force: bool, pkgnode_bin: &Path) -> Result<(), InfraError> {
    let script = build_script();
    eprintln!(
        "harness: building docker images {} ({})",
        names.join(" "),
        script.display()
    );
    let mut command = Command::new("bash");
    command.arg(&script);
    if force {
        command.arg("--force");
    }
    let output = command
        .args(names)
        .env("PKGNODE_BIN", pkgnode_bin)
        .output()
        .map_err(|e| InfraError::Missing {
            what: "bash (for docker/build-images.sh)".into(),
            detail: e.to_string(),
        })?;
    if output.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let tail: Vec<&str> = text.lines().rev().take(15).collect();
    Err(InfraError::Failed {
        what: format!("{} {}", script.display(), names.join(" ")),
        detail: format!(
            "{}:\n{}",
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn minio_is_chosen_by_a_local_tag_latest_first() {
        assert_eq!(super::pick_tag(""), None);
        assert_eq!(super::pick_tag("<none>\n"), None);
        assert_eq!(
            super::pick_tag("RELEASE.2025-04-22\nlatest\n").as_deref(),
            Some("latest")
        );
        assert_eq!(
            super::pick_tag("RELEASE.2025-04-22\n").as_deref(),
            Some("RELEASE.2025-04-22")
        );
    }
}
