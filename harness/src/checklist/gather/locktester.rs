//! `pkgnode locktester` from two nodes at once, where package files are in a directory: the
//! first node's instance takes every lock type in its lock directory (`{storage dir}/.locks`,
//! the directory its store locks in) and holds them; meanwhile each other node's instance, in
//! the lock directory *that* node names, tries them and reports; then the first is interrupted
//! and releases them. Run through [`Infra::node_command`], so each instance runs as its node
//! does (local: its binary and config; docker: in its container).

use std::time::Instant;

use super::super::ChecklistOptions;
use super::super::facts::{LockTestFacts, LockTesterRun, NodeFacts};
use crate::infra::node_command::Running;
use crate::infra::{Infra, NodeCommand};

/// The store's lock directory inside its storage directory (`node::blobs::LOCK_DIR`).
const LOCK_DIR: &str = ".locks";

/// Runs the test when a node keeps package files in a directory; says why not otherwise.
pub async fn lock_test(
    infra: &dyn Infra,
    nodes: &[NodeFacts],
    options: &ChecklistOptions,
) -> LockTestFacts {
    // (node index, node name, lock directory) of each node on directory storage.
    let on_dirs: Vec<(usize, String, String)> = nodes
        .iter()
        .enumerate()
        .filter_map(|(index, node)| {
            let storage = node.answered()?.storage.as_deref()?;
            let dir = storage.strip_prefix("dir:")?;
            Some((
                index,
                node.node.clone(),
                format!("{}/{LOCK_DIR}", dir.trim_end_matches('/')),
            ))
        })
        .collect();
    let not_run = |why: String| LockTestFacts {
        not_run: Some(why),
        runs: Vec::new(),
    };
    if on_dirs.is_empty() {
        return not_run("no node keeps package files in a directory".into());
    }
    if on_dirs.len() < 2 {
        return not_run(format!(
            "only {} keeps package files in a directory: no second node to try its locks",
            on_dirs[0].1
        ));
    }
    let mut commands = Vec::new();
    for (index, node, dir) in on_dirs {
        match infra.node_command(index, &["locktester", "--dir", &dir]) {
            None => {
                return not_run(format!(
                    "the {} provider runs no command on a node: run `pkgnode locktester --dir \
                     {dir}` on one node, then on another while the first holds its locks",
                    infra.info().provider
                ));
            }
            Some(command) => commands.push((node, dir, command.map_err(|e| e.to_string()))),
        }
    }
    let timeout = options.lock_test_timeout;
    match tokio::task::spawn_blocking(move || run(commands, timeout)).await {
        Ok(facts) => facts,
        Err(e) => not_run(format!("the locktester thread failed: {e}")),
    }
}

/// The line the first instance prints once it holds its locks.
const HOLDING: &str = "holding ";

type Prepared = (String, String, Result<NodeCommand, String>);

/// Blocking: the holder, then each other node in turn while it holds, then the release.
fn run(commands: Vec<Prepared>, timeout: std::time::Duration) -> LockTestFacts {
    let mut facts = LockTestFacts::default();
    let mut commands = commands.into_iter();
    let Some((node, dir, command)) = commands.next() else {
        return facts;
    };
    let mut holder_run = LockTesterRun {
        node,
        dir,
        ..LockTesterRun::default()
    };
    let mut holder = match command.and_then(|c| c.spawn().map_err(|e| e.to_string())) {
        Ok(running) => running,
        Err(error) => {
            holder_run.error = Some(error);
            facts.runs.push(holder_run);
            return facts;
        }
    };
    let deadline = Instant::now() + timeout;
    if !wait_for_line(&mut holder, HOLDING, deadline) {
        holder_run.error = Some(format!(
            "it did not say it held its locks within {} s",
            timeout.as_secs()
        ));
        finish(&mut holder_run, &mut holder, Instant::now());
        facts.runs.push(holder_run);
        return facts;
    }
    for (node, dir, command) in commands {
        let mut run = LockTesterRun {
            node,
            dir,
            ..LockTesterRun::default()
        };
        match command.and_then(|c| c.spawn().map_err(|e| e.to_string())) {
            Err(error) => run.error = Some(error),
            Ok(mut tester) => {
                let deadline = Instant::now() + timeout;
                // A tester that finds no holder becomes one itself, and holds until
                // interrupted: let it say so, then release its locks.
                if wait_for_line(&mut tester, HOLDING, deadline) {
                    let _ = tester.interrupt();
                }
                finish(&mut run, &mut tester, deadline);
            }
        }
        facts.runs.push(run);
    }
    // Release: the holder ends on SIGINT, as on an operator's Ctrl-C.
    if let Err(error) = holder.interrupt() {
        holder_run.error = Some(error.to_string());
    }
    finish(&mut holder_run, &mut holder, Instant::now() + timeout);
    facts.runs.insert(0, holder_run);
    facts
}

/// Reads standard output until a line starting with `prefix` (true), its end or `deadline`.
fn wait_for_line(running: &mut Running, prefix: &str, deadline: Instant) -> bool {
    while let Some(line) = running.next_line(deadline) {
        if line.starts_with(prefix) {
            return true;
        }
    }
    false
}

/// Waits for the end (interrupting it at `deadline`) and records what it printed.
fn finish(run: &mut LockTesterRun, running: &mut Running, deadline: Instant) {
    let finished = running.wait(deadline);
    if finished.timed_out && run.error.is_none() {
        run.error = Some("it did not finish in time and was interrupted".into());
    }
    run.stdout = finished.stdout;
    run.stderr = finished.stderr;
    run.exit_code = finished.exit_code;
}
