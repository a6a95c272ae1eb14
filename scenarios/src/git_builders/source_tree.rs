//! A builder's package as a source tree, at one commit: an R package (`DESCRIPTION` from the
//! corpus generator, `NAMESPACE`, `R/`) that `R CMD build` turns into a source tarball, or a
//! Python project (`pyproject.toml` with setuptools, one module) that
//! `python3 -m build --no-isolation` turns into an sdist and a wheel offline. A broken commit
//! carries a `DESCRIPTION` that is not valid DCF, or a `pyproject.toml` that is not valid TOML:
//! both tools refuse them.

use super::BuilderSpec;
use crate::corpus::{Ecosystem, PackageVersion, RPackage, module_name, r_description};

/// Files of one commit: (path relative to the repository root, content).
pub type SourceTree = Vec<(String, String)>;

/// The tree of `builder` at commit `seq`, broken or not.
pub fn source_tree(builder: &BuilderSpec, seq: usize, broken: bool) -> SourceTree {
    let version = builder.version(seq);
    let note = format!(
        "Commit {seq} of the harness's git builder {}; {}.\n",
        builder.name,
        if broken {
            "broken on purpose: its build must fail"
        } else {
            "it builds"
        }
    );
    match builder.ecosystem {
        Ecosystem::R => r_tree(builder, &version, broken, note),
        Ecosystem::Python => python_tree(builder, &version, broken, note),
    }
}

fn r_tree(builder: &BuilderSpec, version: &str, broken: bool, note: String) -> SourceTree {
    let name = &builder.package;
    let pkg = RPackage {
        name: name.clone(),
        rank: builder.index + 1,
        versions: Vec::new(),
        deps: Vec::new(),
        imports: Vec::new(),
    };
    let mut description = r_description(
        &pkg,
        &PackageVersion {
            version: version.to_string(),
            size_bytes: 0,
            content_seed: 0,
        },
    );
    if broken {
        // No colon: not a field, so the file is not valid DCF.
        description.push_str("this line is broken on purpose and names no field\n");
    }
    let function = format!("hello_{}", name.replace('.', "_"));
    vec![
        ("DESCRIPTION".into(), description),
        ("NAMESPACE".into(), format!("export({function})\n")),
        (
            format!("R/{}.R", name.replace('.', "_")),
            format!(
                "#' Says which build answered.\n{function} <- function() {{\n  \"hello from {name} {version}\"\n}}\n"
            ),
        ),
        ("NOTES".into(), note),
    ]
}

fn python_tree(builder: &BuilderSpec, version: &str, broken: bool, note: String) -> SourceTree {
    let name = &builder.package;
    let module = module_name(name);
    let mut pyproject = format!(
        "[build-system]\nrequires = [\"setuptools>=61\"]\nbuild-backend = \"setuptools.build_meta\"\n\n\
         [project]\nname = \"{name}\"\nversion = \"{version}\"\n\
         description = \"Git-built {name} for package-server load tests\"\n\
         requires-python = \">=3.8\"\n\n\
         [tool.setuptools]\npackages = [\"{module}\"]\n"
    );
    if broken {
        pyproject.push_str("this line = = is not TOML\n");
    }
    vec![
        ("pyproject.toml".into(), pyproject),
        (
            format!("{module}/__init__.py"),
            format!(
                "\"\"\"Git-built {name} for package-server load tests.\"\"\"\n\n__version__ = \"{version}\"\n"
            ),
        ),
        ("NOTES".into(), note),
    ]
}
