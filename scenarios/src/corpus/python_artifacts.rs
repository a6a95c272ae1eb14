//! Real, installable Python artifacts: a wheel (PEP 427, with a correct `RECORD`) — pure-Python
//! `py3-none-any`, or tagged for one CPython version on manylinux so that pip's tag selection
//! picks among several — and an sdist (PEP 625 name, `PKG-INFO` and `pyproject.toml`), each
//! padded with incompressible bytes to the package's drawn size.

use std::io::{Cursor, Write};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use super::artifacts::{Artifact, ArtifactKind, padded_tar_gz, padding};
use super::names::{dist_file_name, module_name};
use super::{PackageVersion, PyPackage};
use crate::error::ScenarioError;

/// Bytes the metadata and archive headers take, subtracted from the padding so the file comes
/// close to the drawn size.
const METADATA_ALLOWANCE_BYTES: u64 = 1_200;

/// Core metadata shared by the wheel's `METADATA` and the sdist's `PKG-INFO`.
fn core_metadata(pkg: &PyPackage, version: &PackageVersion) -> String {
    let mut text = format!(
        "Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\
         Summary: Synthetic {name} for package-server load tests\n\
         License: Apache-2.0\nRequires-Python: >=3.8\n",
        name = pkg.name,
        version = version.version,
    );
    for dep in &pkg.requires {
        text.push_str(&format!("Requires-Dist: {dep}\n"));
    }
    text
}

fn init_py(pkg: &PyPackage, version: &PackageVersion) -> String {
    format!(
        "\"\"\"Synthetic {} for package-server load tests.\"\"\"\n\n__version__ = \"{}\"\n",
        pkg.name, version.version
    )
}

/// The platform of every tagged wheel: glibc 2.17 on x86-64, under its PEP 600 and its
/// PEP 599 name (a compressed tag set, as auditwheel writes it).
pub const WHEEL_PLATFORM: &str = "manylinux_2_17_x86_64.manylinux2014_x86_64";

/// The CPython versions a package with compiled wheels ships one wheel for, as the popular
/// binary packages on PyPI do (one `cpXY-cpXY` wheel per supported interpreter).
pub const WHEEL_PYTHONS: &[&str] = &["cp39", "cp310", "cp311", "cp312", "cp313"];

/// The wheel's tag triple: `py3-none-any`, or `{cp}-{cp}-{WHEEL_PLATFORM}` for a CPython tag.
pub fn wheel_tag(python: Option<&str>) -> String {
    match python {
        None => "py3-none-any".to_string(),
        Some(cp) => format!("{cp}-{cp}-{WHEEL_PLATFORM}"),
    }
}

/// The wheel file name pip expects: `{dist}-{version}-py3-none-any.whl`.
pub fn wheel_file_name(pkg: &PyPackage, version: &PackageVersion) -> String {
    tagged_wheel_file_name(pkg, version, None)
}

/// The wheel file name for one CPython tag (`None`: the pure-Python wheel).
pub fn tagged_wheel_file_name(
    pkg: &PyPackage,
    version: &PackageVersion,
    python: Option<&str>,
) -> String {
    format!(
        "{}-{}-{}.whl",
        dist_file_name(&pkg.name),
        version.version,
        wheel_tag(python)
    )
}

/// The sdist file name (PEP 625): `{dist}-{version}.tar.gz`.
pub fn sdist_file_name(pkg: &PyPackage, version: &PackageVersion) -> String {
    format!("{}-{}.tar.gz", dist_file_name(&pkg.name), version.version)
}

/// Builds the package's pure-Python wheel for `version`.
pub fn wheel_bytes(pkg: &PyPackage, version: &PackageVersion) -> Result<Artifact, ScenarioError> {
    tagged_wheel_bytes(pkg, version, None)
}

/// Builds the wheel for one CPython tag (`None`: the pure-Python wheel). A tagged wheel says
/// `Root-Is-Purelib: false` and carries its own tags in `WHEEL`, as a compiled one does; its
/// padding differs per tag, so each file has its own hash.
pub fn tagged_wheel_bytes(
    pkg: &PyPackage,
    version: &PackageVersion,
    python: Option<&str>,
) -> Result<Artifact, ScenarioError> {
    let file_name = tagged_wheel_file_name(pkg, version, python);
    let failed = |e: zip::result::ZipError| ScenarioError::Artifact {
        file: file_name.clone(),
        detail: e.to_string(),
    };
    let module = module_name(&pkg.name);
    let dist_info = format!(
        "{}-{}.dist-info",
        dist_file_name(&pkg.name),
        version.version
    );
    let pad_seed = match python {
        None => version.content_seed,
        Some(cp) => super::mix_seed(version.content_seed, cp.bytes().map(u64::from).sum()),
    };
    let pad = padding(
        pad_seed,
        version.size_bytes.saturating_sub(METADATA_ALLOWANCE_BYTES),
    );
    let wheel = match python {
        None => "Wheel-Version: 1.0\nGenerator: scenarios (pkgnode load harness)\n\
                 Root-Is-Purelib: true\nTag: py3-none-any\n"
            .to_string(),
        Some(cp) => {
            let mut text = "Wheel-Version: 1.0\nGenerator: scenarios (pkgnode load harness)\n\
                            Root-Is-Purelib: false\n"
                .to_string();
            for platform in WHEEL_PLATFORM.split('.') {
                text.push_str(&format!("Tag: {cp}-{cp}-{platform}\n"));
            }
            text
        }
    };
    let files: Vec<(String, Vec<u8>)> = vec![
        (
            format!("{module}/__init__.py"),
            init_py(pkg, version).into_bytes(),
        ),
        (format!("{module}/padding.bin"), pad),
        (
            format!("{dist_info}/METADATA"),
            core_metadata(pkg, version).into_bytes(),
        ),
        (format!("{dist_info}/WHEEL"), wheel.as_bytes().to_vec()),
    ];
    let mut record = String::new();
    for (path, content) in &files {
        let digest = URL_SAFE_NO_PAD.encode(Sha256::digest(content));
        record.push_str(&format!("{path},sha256={digest},{}\n", content.len()));
    }
    record.push_str(&format!("{dist_info}/RECORD,,\n"));

    let text = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(DateTime::default())
        .unix_permissions(0o644);
    // Padding is random: deflating it costs time and gains nothing.
    let stored = text.compression_method(CompressionMethod::Stored);
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for (path, content) in &files {
        let options = if path.ends_with(".bin") { stored } else { text };
        zip.start_file(path.as_str(), options).map_err(failed)?;
        zip.write_all(content).map_err(|e| failed(e.into()))?;
    }
    zip.start_file(format!("{dist_info}/RECORD"), text)
        .map_err(failed)?;
    zip.write_all(record.as_bytes())
        .map_err(|e| failed(e.into()))?;
    let bytes = zip.finish().map_err(failed)?.into_inner();
    Ok(Artifact {
        kind: ArtifactKind::Wheel,
        file_name,
        version: version.version.clone(),
        bytes,
    })
}

/// Builds the package's source distribution for `version`.
pub fn sdist_bytes(pkg: &PyPackage, version: &PackageVersion) -> Result<Artifact, ScenarioError> {
    let file_name = sdist_file_name(pkg, version);
    let module = module_name(&pkg.name);
    let root = format!("{}-{}", dist_file_name(&pkg.name), version.version);
    let dependencies = pkg
        .requires
        .iter()
        .map(|d| format!("\"{d}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let pyproject = format!(
        "[build-system]\nrequires = [\"setuptools>=61\"]\nbuild-backend = \"setuptools.build_meta\"\n\n\
         [project]\nname = \"{name}\"\nversion = \"{version}\"\n\
         description = \"Synthetic {name} for package-server load tests\"\n\
         requires-python = \">=3.8\"\ndependencies = [{dependencies}]\n\n\
         [tool.setuptools]\npackages = [\"{module}\"]\n\n\
         [tool.setuptools.package-data]\n\"{module}\" = [\"padding.bin\"]\n",
        name = pkg.name,
        version = version.version,
    );
    let pkg_info = core_metadata(pkg, version);
    let init = init_py(pkg, version);
    let entries = vec![
        (format!("{root}/PKG-INFO"), pkg_info.as_bytes()),
        (format!("{root}/pyproject.toml"), pyproject.as_bytes()),
        (format!("{root}/{module}/__init__.py"), init.as_bytes()),
    ];
    let bytes = padded_tar_gz(
        &file_name,
        entries,
        format!("{root}/{module}/padding.bin"),
        version.content_seed ^ 0x5D15,
        version.size_bytes,
    )?;
    Ok(Artifact {
        kind: ArtifactKind::Sdist,
        file_name,
        version: version.version.clone(),
        bytes,
    })
}
