//! Architecture invariants of the workspace, checked from its files: what each crate must not
//! depend on (from Cargo.lock), and a `//!` line opening every module of every crate.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

const CRATE_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// `name` → names of its dependencies, from the workspace's Cargo.lock.
fn lock_graph() -> HashMap<String, Vec<String>> {
    let lock = std::fs::read_to_string(Path::new(CRATE_DIR).join("../Cargo.lock")).unwrap();
    let mut graph: HashMap<String, Vec<String>> = HashMap::new();
    for package in lock.split("[[package]]").skip(1) {
        let name = package
            .lines()
            .find_map(|l| l.strip_prefix("name = "))
            .unwrap()
            .trim_matches('"')
            .to_string();
        let deps: Vec<String> = package
            .split_once("dependencies = [")
            .map(|(_, rest)| rest.split(']').next().unwrap_or(""))
            .unwrap_or("")
            .split(',')
            .map(|d| d.trim().trim_matches('"'))
            .filter(|d| !d.is_empty())
            .map(|d| d.split(' ').next().unwrap().to_string())
            .collect();
        graph.entry(name).or_default().extend(deps);
    }
    graph
}

/// Every package `root` depends on, directly or not (itself included).
fn closure(graph: &HashMap<String, Vec<String>>, root: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    let mut queue = VecDeque::from([root.to_string()]);
    while let Some(name) = queue.pop_front() {
        if !seen.insert(name.clone()) {
            continue;
        }
        for dep in graph.get(&name).into_iter().flatten() {
            queue.push_back(dep.clone());
        }
    }
    seen
}

/// `krate` depends on each of `needed` (so the graph was read) and on none of `forbidden`.
fn assert_depends(krate: &str, needed: &[&str], forbidden: &[&str]) {
    let seen = closure(&lock_graph(), krate);
    for dep in needed {
        assert!(
            seen.contains(*dep),
            "{krate} should depend on {dep}: lock graph not read?"
        );
    }
    for dep in forbidden {
        assert!(!seen.contains(*dep), "{krate} depends on {dep}");
    }
}

#[test]
fn scenarios_knows_nothing_of_node_sqlx_or_object_store() {
    assert_depends(
        "scenarios",
        &["goose", "reports"],
        &["node", "sqlx", "object_store"],
    );
}

#[test]
fn reports_knows_nothing_of_node_goose_sqlx_or_object_store() {
    assert_depends(
        "reports",
        &["hdrhistogram", "plotters"],
        &[
            "node",
            "goose",
            "sqlx",
            "object_store",
            "scenarios",
            "harness",
        ],
    );
}

#[test]
fn node_knows_nothing_of_goose_the_harness_or_the_report() {
    assert_depends(
        "node",
        &["axum", "sqlx"],
        &["goose", "harness", "scenarios", "reports"],
    );
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    // Not every crate has integration tests.
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_module_of_every_crate_opens_with_a_doc_line() {
    let mut files = Vec::new();
    for krate in ["scenarios", "reports", "node", "harness"] {
        let dir = Path::new(CRATE_DIR).join("..").join(krate);
        rust_files(&dir.join("src"), &mut files);
        rust_files(&dir.join("tests"), &mut files);
    }
    assert!(files.len() > 100);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.starts_with("//!"),
            "{} has no //! line",
            file.display()
        );
    }
}
