//! Architecture invariants of the crate, checked from its files: what it must not depend on,
//! and a `//!` line opening every module.

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

#[test]
fn scenarios_knows_nothing_of_node_sqlx_or_object_store() {
    let graph = lock_graph();
    let mut seen = HashSet::new();
    let mut queue = VecDeque::from(["scenarios".to_string()]);
    while let Some(name) = queue.pop_front() {
        if !seen.insert(name.clone()) {
            continue;
        }
        for dep in graph.get(&name).into_iter().flatten() {
            queue.push_back(dep.clone());
        }
    }
    assert!(
        seen.contains("goose") && seen.contains("reports"),
        "lock graph not read"
    );
    for forbidden in ["node", "sqlx", "object_store"] {
        assert!(
            !seen.contains(forbidden),
            "scenarios depends on {forbidden}"
        );
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_module_opens_with_a_doc_line() {
    let mut files = Vec::new();
    rust_files(&Path::new(CRATE_DIR).join("src"), &mut files);
    rust_files(&Path::new(CRATE_DIR).join("tests"), &mut files);
    assert!(files.len() > 10);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.starts_with("//!"),
            "{} has no //! line",
            file.display()
        );
    }
}
