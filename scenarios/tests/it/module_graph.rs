//! No import cycle between the modules inside `harness`, `node` and `reports`, read from their
//! sources: shared helpers live below every module that uses them.
//!
//! Granularity: at every level of a crate's module tree, the parts of a module — each child
//! (a file, or a directory with everything under it) and the module's own file (`mod.rs`,
//! `lib.rs`, `x.rs` beside `x/`) — form no cycle. So `builders/poller.rs` ↔
//! `builders/worker.rs` (siblings), `summary.rs` → `generator.rs` → `summary.rs` (top-level
//! modules), `plan` → `nemesis` → `run` → `plan` (directories) and `charts/mod.rs` ↔
//! `charts/git.rs` (a module's own file and its child) all fail.
//!
//! An edge is a path the source names: `use crate::…`/`super::…`/`self::…`, the same paths
//! written inline, and `child::…` for a child module; it goes to the deepest module file the
//! path reaches, through the `pub use` re-exports on its way. A module's `pub use` of its own
//! children is its namespace, not a dependency; `#[cfg(test)]` modules stand above everything
//! and are left out; so is `main.rs` (a binary over the library). Methods are not paths: a
//! type's `impl` spread over its module's children (`infra/local/`) is no edge.
//!
//! [`NAMESPACE_MODULES`] lists the modules whose own file still both holds what its children
//! share and composes them; their children must still form no cycle among themselves.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

const CRATE_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// (crate, module, why): modules whose own file is exempt, children still checked. The test
/// fails once one of them no longer needs it, so the list only shrinks.
const NAMESPACE_MODULES: &[(&str, &str, &str)] = &[
    (
        "harness",
        "run",
        "`run/mod.rs` and `run/git_builders.rs` are the twin run loops, to be joined",
    ),
    (
        "node",
        "http",
        "`http/mod.rs` holds `NodeState` and the router that composes the resources",
    ),
    (
        "node",
        "locks",
        "`locks/mod.rs` holds the lock handle over both mechanisms",
    ),
    (
        "node",
        "store",
        "`store/mod.rs` holds the `Store` and its error that `health` classifies",
    ),
    (
        "reports",
        "gate",
        "`gate/mod.rs` holds the record that writes its own page",
    ),
];

/// A module path inside a crate: `[]` is the crate root, `["builders", "poller"]` one file.
type ModPath = Vec<String>;

#[derive(Debug, Clone)]
struct Token {
    text: String,
    line: usize,
}

/// Identifiers and punctuation, without comments, strings and character literals.
fn tokens(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let (mut out, mut i, mut line) = (Vec::new(), 0, 1);
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(chars[i] == '\n');
                    i += 1;
                }
            }
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                line += usize::from(chars[i] == '\n');
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{…}'), else a lifetime or a label.
            if at(i + 1) == '\\' {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
            }
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let raw = matches!(word.as_str(), "r" | "br") && matches!(at(i), '"' | '#');
            if raw {
                let mut hashes = 0;
                while at(i) == '#' {
                    hashes += 1;
                    i += 1;
                }
                if at(i) != '"' {
                    // `r#ident`: a raw identifier.
                    continue;
                }
                i += 1;
                loop {
                    if i >= chars.len() {
                        break;
                    }
                    if chars[i] == '"' && (1..=hashes).all(|k| at(i + k) == '#') {
                        i += 1 + hashes;
                        break;
                    }
                    line += usize::from(chars[i] == '\n');
                    i += 1;
                }
            } else if word == "b" && matches!(at(i), '"' | '\'') {
                // A byte string or byte: the quote is read next.
            } else {
                out.push(Token { text: word, line });
            }
        } else if c == ':' && at(i + 1) == ':' {
            out.push(Token {
                text: "::".into(),
                line,
            });
            i += 2;
        } else {
            out.push(Token {
                text: c.to_string(),
                line,
            });
            i += 1;
        }
    }
    out
}

fn is_ident(text: &str) -> bool {
    text.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// One path a module file names.
#[derive(Debug, Clone)]
struct Reference {
    /// Absolute, from the crate root.
    path: ModPath,
    line: usize,
    /// A `pub use`: what the module re-exports.
    reexport: bool,
    /// The name a `use` brings in (its last segment or its alias).
    name: Option<String>,
}

/// What one module file names, and which child modules it declares under `#[cfg(test)]`.
#[derive(Debug, Default)]
struct Scan {
    references: Vec<Reference>,
    test_children: Vec<String>,
}

/// The paths of a `use` tree starting at `tokens[*i]`, up to its end.
fn use_tree(tokens: &[Token], i: &mut usize, prefix: &[String], out: &mut Vec<(ModPath, String)>) {
    let mut path = prefix.to_vec();
    while let Some(token) = tokens.get(*i) {
        match token.text.as_str() {
            "::" => *i += 1,
            "{" => {
                *i += 1;
                while let Some(token) = tokens.get(*i) {
                    match token.text.as_str() {
                        "}" => {
                            *i += 1;
                            break;
                        }
                        "," => *i += 1,
                        _ => use_tree(tokens, i, &path, out),
                    }
                }
                return;
            }
            "*" => {
                *i += 1;
                out.push((path, "*".into()));
                return;
            }
            word if is_ident(word) => {
                *i += 1;
                if tokens.get(*i).is_some_and(|t| t.text == "::") {
                    path.push(word.to_string());
                    continue;
                }
                let mut name = word.to_string();
                if word != "self" {
                    path.push(word.to_string());
                } else if let Some(last) = path.last() {
                    name = last.clone();
                }
                if tokens.get(*i).is_some_and(|t| t.text == "as") {
                    name = tokens.get(*i + 1).map(|t| t.text.clone()).unwrap_or(name);
                    *i += 2;
                }
                out.push((path, name));
                return;
            }
            _ => return,
        }
    }
}

/// `path` (as written in `current`) from the crate root; `None` when it leaves the crate.
fn absolute(current: &[String], written: &[String]) -> Option<ModPath> {
    let mut base = current.to_vec();
    let mut rest = written;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &rest[1..];
        }
        Some("super" | "self") => {
            while let Some(first) = rest.first() {
                match first.as_str() {
                    "super" => {
                        base.pop()?;
                    }
                    "self" => {}
                    _ => break,
                }
                rest = &rest[1..];
            }
        }
        _ => {}
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// Reads one module file at `module` whose child modules are `children`.
fn scan(source: &str, module: &[String], children: &BTreeSet<String>) -> Scan {
    let tokens = tokens(source);
    let mut scan = Scan::default();
    // Inline modules open: (name, brace depth inside it, under #[cfg(test)]).
    let mut inline: Vec<(String, usize, bool)> = Vec::new();
    let (mut depth, mut cfg_test, mut opening) = (0usize, false, None);
    let mut i = 0;
    while i < tokens.len() {
        let text = tokens[i].text.as_str();
        let previous = i.checked_sub(1).map(|p| tokens[p].text.as_str());
        let next = tokens.get(i + 1).map(|t| t.text.as_str());
        let in_test = inline.iter().any(|(_, _, test)| *test);
        let mut current = module.to_vec();
        current.extend(inline.iter().map(|(name, _, _)| name.clone()));
        match text {
            "{" => {
                depth += 1;
                if let Some((name, test)) = opening.take() {
                    inline.push((name, depth, test));
                }
                cfg_test = false;
            }
            "}" => {
                if inline.last().is_some_and(|(_, d, _)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
                cfg_test = false;
            }
            ";" => cfg_test = false,
            "#" if tokens[i..]
                .iter()
                .take(7)
                .map(|t| t.text.as_str())
                .eq(["#", "[", "cfg", "(", "test", ")", "]"]) =>
            {
                cfg_test = true;
                i += 7;
                continue;
            }
            "mod" if next.is_some_and(is_ident) => {
                let name = tokens[i + 1].text.clone();
                match tokens.get(i + 2).map(|t| t.text.as_str()) {
                    Some(";") if cfg_test && inline.is_empty() => scan.test_children.push(name),
                    Some("{") => opening = Some((name, cfg_test || in_test)),
                    _ => {}
                }
                i += 2;
                continue;
            }
            "use" => {
                let reexport = previous == Some("pub")
                    || (previous == Some(")") && {
                        let open = tokens[..i].iter().rposition(|t| t.text == "(");
                        open.is_some_and(|o| o > 0 && tokens[o - 1].text == "pub")
                    });
                let line = tokens[i].line;
                let mut paths = Vec::new();
                i += 1;
                use_tree(&tokens, &mut i, &[], &mut paths);
                if in_test {
                    continue;
                }
                for (written, name) in paths {
                    let first = written.first().map(String::as_str);
                    let relative_child = first.is_some_and(|f| children.contains(f))
                        && inline.is_empty()
                        && !matches!(first, Some("crate" | "super" | "self"));
                    if !matches!(first, Some("crate" | "super" | "self")) && !relative_child {
                        continue;
                    }
                    if let Some(path) = absolute(&current, &written) {
                        scan.references.push(Reference {
                            path,
                            line,
                            reexport: reexport && inline.is_empty(),
                            name: Some(name),
                        });
                    }
                }
                continue;
            }
            word if is_ident(word) && next == Some("::") && previous != Some("::") => {
                let starts = matches!(word, "crate" | "super" | "self")
                    || (children.contains(word) && inline.is_empty() && previous != Some("."));
                if starts {
                    let line = tokens[i].line;
                    let mut written = vec![word.to_string()];
                    while tokens.get(i + 1).is_some_and(|t| t.text == "::")
                        && tokens.get(i + 2).is_some_and(|t| is_ident(&t.text))
                    {
                        written.push(tokens[i + 2].text.clone());
                        i += 2;
                    }
                    if !in_test && let Some(path) = absolute(&current, &written) {
                        scan.references.push(Reference {
                            path,
                            line,
                            reexport: false,
                            name: None,
                        });
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    scan
}

/// A crate's module files and the edges between them.
struct Graph {
    modules: BTreeSet<ModPath>,
    /// (from, to) → where `from` names `to` outside a re-export of its own descendant
    /// (`None`: only there).
    edges: BTreeMap<(ModPath, ModPath), Option<String>>,
}

fn module_path(relative: &Path) -> ModPath {
    let mut parts: Vec<String> = relative
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// The graph of a crate given as (path under `src/`, source) pairs.
fn graph(crate_name: &str, files: &[(PathBuf, String)]) -> Graph {
    let files: Vec<(ModPath, &PathBuf, &String)> = files
        .iter()
        .filter(|(path, _)| path != Path::new("main.rs"))
        .map(|(path, text)| (module_path(path), path, text))
        .collect();
    let modules: BTreeSet<ModPath> = files.iter().map(|(m, _, _)| m.clone()).collect();
    let children_of = |module: &ModPath| -> BTreeSet<String> {
        modules
            .iter()
            .filter(|m| m.len() == module.len() + 1 && m.starts_with(module))
            .map(|m| m[module.len()].clone())
            .collect()
    };
    let scans: Vec<(ModPath, &PathBuf, Scan)> = files
        .iter()
        .map(|(m, path, text)| (m.clone(), *path, scan(text, m, &children_of(m))))
        .collect();
    let tests: BTreeSet<ModPath> = scans
        .iter()
        .flat_map(|(m, _, s)| {
            s.test_children.iter().map(move |c| {
                let mut child = m.clone();
                child.push(c.clone());
                child
            })
        })
        .collect();
    // What each module re-exports, by name.
    let mut reexports: HashMap<ModPath, HashMap<String, ModPath>> = HashMap::new();
    for (module, _, scan) in &scans {
        for reference in scan.references.iter().filter(|r| r.reexport) {
            if let Some(name) = reference.name.as_ref().filter(|n| *n != "*") {
                reexports
                    .entry(module.clone())
                    .or_default()
                    .insert(name.clone(), reference.path.clone());
            }
        }
    }
    let deepest = |path: &ModPath| -> Option<ModPath> {
        (0..=path.len())
            .rev()
            .map(|k| path[..k].to_vec())
            .find(|p| modules.contains(p))
    };
    let resolve = |path: &ModPath| -> Option<ModPath> {
        let mut path = path.clone();
        for _ in 0..8 {
            let module = deepest(&path)?;
            let Some(target) = path
                .get(module.len())
                .and_then(|name| reexports.get(&module)?.get(name))
                .filter(|target| **target != path[..=module.len()])
            else {
                return Some(module);
            };
            let mut next = target.clone();
            next.extend(path[module.len() + 1..].iter().cloned());
            path = next;
        }
        deepest(&path)
    };
    let mut edges: BTreeMap<(ModPath, ModPath), Option<String>> = BTreeMap::new();
    for (module, path, scan) in &scans {
        if tests.iter().any(|t| module.starts_with(t)) {
            continue;
        }
        for reference in &scan.references {
            let Some(target) = resolve(&reference.path) else {
                continue;
            };
            if target == *module {
                continue;
            }
            let namespace = reference.reexport && target.starts_with(module);
            let place = (!namespace)
                .then(|| format!("{crate_name}/src/{}:{}", path.display(), reference.line));
            let slot = edges.entry((module.clone(), target)).or_insert(None);
            if slot.is_none() {
                *slot = place;
            }
        }
    }
    Graph { modules, edges }
}

/// A part of `parent`'s level: its own file, or one child with its subtree.
fn part(parent: &[String], module: &[String]) -> Option<String> {
    if module == parent {
        Some(String::new())
    } else if module.len() > parent.len() && module.starts_with(parent) {
        Some(module[parent.len()].clone())
    } else {
        None
    }
}

fn part_name(parent: &[String], part: &str) -> String {
    match (parent.is_empty(), part.is_empty()) {
        (true, true) => "the crate root's own file".into(),
        (false, true) => format!("{}'s own file", parent.join("::")),
        _ => part.to_string(),
    }
}

/// Every cycle among the parts of a level, each named with where each step is written.
fn cycles(crate_name: &str, graph: &Graph, exempt: &[&str]) -> Vec<String> {
    let parents: BTreeSet<ModPath> = graph
        .modules
        .iter()
        .filter(|m| !m.is_empty())
        .map(|m| m[..m.len() - 1].to_vec())
        .collect();
    let mut found = Vec::new();
    for parent in &parents {
        let skip_own = exempt.contains(&parent.join("::").as_str());
        // part → part → where.
        let mut level: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for ((from, to), place) in &graph.edges {
            let (Some(a), Some(b)) = (part(parent, from), part(parent, to)) else {
                continue;
            };
            let Some(place) = place else { continue };
            if a == b || (skip_own && (a.is_empty() || b.is_empty())) {
                continue;
            }
            level
                .entry(a)
                .or_default()
                .entry(b)
                .or_insert_with(|| place.clone());
        }
        for start in level.keys() {
            if let Some(cycle) = cycle_through(&level, start)
                && cycle.iter().min() == Some(start)
            {
                let mut steps = vec![part_name(parent, start)];
                for (k, from) in cycle.iter().enumerate() {
                    let to = cycle.get(k + 1).unwrap_or(start);
                    steps.push(format!("{} ({})", part_name(parent, to), level[from][to]));
                }
                found.push(format!(
                    "{crate_name}: a cycle in `{}`: {}",
                    if parent.is_empty() {
                        "crate".to_string()
                    } else {
                        parent.join("::")
                    },
                    steps.join(" → ")
                ));
            }
        }
    }
    found
}

/// The shortest cycle from `start` back to it, as the parts it passes (`start` first).
fn cycle_through(
    level: &BTreeMap<String, BTreeMap<String, String>>,
    start: &str,
) -> Option<Vec<String>> {
    let mut came_from: BTreeMap<String, String> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start.to_string()]);
    while let Some(at) = queue.pop_front() {
        for next in level.get(&at).into_iter().flat_map(|n| n.keys()) {
            if next == start {
                let mut path = vec![at.clone()];
                while let Some(before) = came_from.get(path.last().unwrap()) {
                    path.push(before.clone());
                }
                path.reverse();
                return Some(path);
            }
            if !came_from.contains_key(next) && next != start {
                came_from.insert(next.clone(), at.clone());
                queue.push_back(next.clone());
            }
        }
    }
    None
}

fn source_files(krate: &str) -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<(PathBuf, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path.strip_prefix(root).unwrap().to_path_buf(), text));
            }
        }
    }
    let root = Path::new(CRATE_DIR).join("..").join(krate).join("src");
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out
}

fn exempt(krate: &str) -> Vec<&'static str> {
    NAMESPACE_MODULES
        .iter()
        .filter(|(k, _, _)| *k == krate)
        .map(|(_, module, _)| *module)
        .collect()
}

#[test]
fn no_module_imports_its_way_back_to_itself() {
    let mut found = Vec::new();
    for krate in ["harness", "node", "reports"] {
        let graph = graph(krate, &source_files(krate));
        // The graph was read: a few edges every version of the tree has.
        assert!(
            graph.edges.len() > 100,
            "{krate}: {} edges",
            graph.edges.len()
        );
        found.extend(cycles(krate, &graph, &exempt(krate)));
    }
    assert!(
        found.is_empty(),
        "module import cycles (move what both sides use below them):\n{}",
        found.join("\n")
    );
}

#[test]
fn each_namespace_module_still_needs_its_exemption() {
    for (krate, module, why) in NAMESPACE_MODULES {
        let graph = graph(krate, &source_files(krate));
        let all = cycles(krate, &graph, &[]);
        assert!(
            all.iter()
                .any(|c| c.contains(&format!("a cycle in `{module}`"))),
            "{krate}::{module} ({why}) has no cycle through its own file any more: \
             remove it from NAMESPACE_MODULES"
        );
    }
}

fn files(list: &[(&str, &str)]) -> Vec<(PathBuf, String)> {
    list.iter()
        .map(|(path, text)| (PathBuf::from(path), text.to_string()))
        .collect()
}

#[test]
fn the_cycles_of_issue_26_are_found() {
    let planted = files(&[
        (
            "lib.rs",
            "pub mod builders;\npub mod charts;\npub mod summary;\npub mod generator;\npub use generator::Cost;",
        ),
        ("builders/mod.rs", "pub mod poller;\npub mod worker;"),
        (
            "builders/poller.rs",
            "use super::worker::pause;\nfn f() { pause() }",
        ),
        (
            "builders/worker.rs",
            "fn start() { super::poller::poll_loop(); }\npub fn pause() {}",
        ),
        (
            "charts/mod.rs",
            "mod git;\npub use git::git_charts;\npub const PALETTE: u8 = 0;\nfn primary() -> &'static str { git::COMMIT_KIND }",
        ),
        (
            "charts/git.rs",
            "use super::PALETTE;\npub const COMMIT_KIND: &str = \"commit\";",
        ),
        (
            "summary.rs",
            "use crate::Cost;\npub const INSTALL_KIND: &str = \"install\";",
        ),
        (
            "generator.rs",
            "use crate::summary::INSTALL_KIND;\npub struct Cost;",
        ),
    ]);
    let found = cycles("planted", &graph("planted", &planted), &[]);
    let text = found.join("\n");
    assert_eq!(found.len(), 3, "{text}");
    assert!(text.contains("a cycle in `builders`: poller → worker (planted/src/builders/poller.rs:1) → poller (planted/src/builders/worker.rs:1)"), "{text}");
    assert!(text.contains("a cycle in `charts`: charts's own file → git (planted/src/charts/mod.rs:4) → charts's own file (planted/src/charts/git.rs:1)"), "{text}");
    // Through the crate root's re-export of `generator::Cost`.
    assert!(text.contains("a cycle in `crate`: generator → summary (planted/src/generator.rs:1) → generator (planted/src/summary.rs:1)"), "{text}");
}

#[test]
fn namespaces_tests_and_text_make_no_edges() {
    let tree = files(&[
        ("lib.rs", "pub mod a;\npub mod b;"),
        // A re-export of its own child is the module's namespace.
        (
            "a/mod.rs",
            "mod child;\npub use child::Thing;\npub(crate) struct Shared;",
        ),
        ("a/child.rs", "use super::Shared;\npub struct Thing;"),
        // Tests, comments, strings and attributes name paths without depending on them.
        (
            "b.rs",
            "pub(crate) fn f() { let _ = \"crate::a::x\"; let _c = '{'; }\n\
             /// [`crate::a::Shared`]\n\
             #[cfg(test)]\nmod tests { use crate::a::Thing; fn t<'a>(x: &'a str) {} }",
        ),
        ("a/other.rs", "fn g() { crate::b::f(); }"),
    ]);
    let graph = graph("tree", &tree);
    let edges: Vec<String> = graph
        .edges
        .iter()
        .filter(|(_, place)| place.is_some())
        .map(|((from, to), _)| format!("{} → {}", from.join("::"), to.join("::")))
        .collect();
    assert_eq!(edges, ["a::child → a", "a::other → b"]);
    assert!(cycles("tree", &graph, &[]).is_empty());
}
