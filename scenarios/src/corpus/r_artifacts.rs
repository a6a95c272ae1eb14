//! Real, installable R source packages: `DESCRIPTION`, `NAMESPACE`, one R file and padding
//! under `inst/extdata/`, as `R CMD build` would lay them out.

use super::artifacts::{Artifact, ArtifactKind, padded_tar_gz};
use super::{PackageVersion, RPackage};
use crate::error::ScenarioError;

/// The CRAN file name: `{pkg}_{version}.tar.gz`.
pub fn r_tarball_file_name(pkg: &RPackage, version: &PackageVersion) -> String {
    format!("{}_{}.tar.gz", pkg.name, version.version)
}

/// The package's `DESCRIPTION` file.
pub fn description(pkg: &RPackage, version: &PackageVersion) -> String {
    let mut text = format!(
        "Package: {name}\nType: Package\nVersion: {version}\n\
         Title: Synthetic Package for Package-Server Load Tests\n\
         Description: A generated stand-in for the package '{name}', used to measure a \
         package server under load.\n\
         Author: pkgnode load harness [aut, cre]\n\
         Maintainer: pkgnode load harness <harness@example.org>\n\
         License: GPL-2\nEncoding: UTF-8\nNeedsCompilation: no\n",
        name = pkg.name,
        version = version.version,
    );
    if !pkg.imports.is_empty() {
        text.push_str(&format!("Imports: {}\n", pkg.imports.join(", ")));
    }
    text
}

/// Builds the package's source tarball for `version`.
pub fn r_tarball_bytes(
    pkg: &RPackage,
    version: &PackageVersion,
) -> Result<Artifact, ScenarioError> {
    let file_name = r_tarball_file_name(pkg, version);
    let name = &pkg.name;
    let description = description(pkg, version);
    let namespace = format!("export(hello_{name})\n");
    let code = format!(
        "#' Says which synthetic package answered.\nhello_{name} <- function() {{\n  \
         \"hello from {name} {}\"\n}}\n",
        version.version
    );
    let entries = vec![
        (format!("{name}/DESCRIPTION"), description.as_bytes()),
        (format!("{name}/NAMESPACE"), namespace.as_bytes()),
        (format!("{name}/R/{name}.R"), code.as_bytes()),
    ];
    let bytes = padded_tar_gz(
        &file_name,
        entries,
        format!("{name}/inst/extdata/padding.bin"),
        version.content_seed,
        version.size_bytes,
    )?;
    Ok(Artifact {
        kind: ArtifactKind::RSource,
        file_name,
        version: version.version.clone(),
        bytes,
    })
}
