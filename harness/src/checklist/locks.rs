//! Lock correctness: where package files are in a directory, the nodes' cross-node file locks
//! (in `{storage dir}/.locks`) must exclude one another. Judged from `pkgnode locktester` run
//! as Workbench prescribes — one node's instance holds every lock type, each other node's
//! instance tries them — whose output [`parse`] reads. On S3 the store takes no file lock:
//! the rule does not apply.

use reports::record::{CheckerResult, Validity};
use serde::Serialize;
use serde_json::json;

use super::facts::{Facts, LockTesterRun};

pub const LOCK_CORRECTNESS: &str = "lock-correctness";

/// The part of `pkgnode locktester`'s output the rule reads.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TesterReport {
    pub role: Role,
    /// As the first instance: the lock types it holds.
    pub holding: Vec<String>,
    /// As a later instance: the lock types it could not take (they exclude).
    pub excluded: Vec<String>,
    /// As a later instance: the lock types it took although the first instance held them.
    pub not_excluded: Vec<String>,
}

/// Which instance a locktester found itself to be.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum Role {
    /// It found no other instance's marker in its directory, and held the locks.
    First,
    /// It found the first instance's marker and tried the locks it held.
    Second,
    /// It said neither (it failed before, or is not our locktester).
    #[default]
    Unsaid,
}

/// Reads `pkgnode locktester`'s standard output (lock lines are `  LABEL: what happened`).
pub fn parse(stdout: &[String]) -> TesterReport {
    let mut report = TesterReport::default();
    for line in stdout {
        if line.starts_with("locktester in ") {
            if line.contains("): first instance") {
                report.role = Role::First;
            } else if line.contains("): second instance") {
                report.role = Role::Second;
            }
            continue;
        }
        let Some((label, what)) = line
            .strip_prefix("  ")
            .and_then(|rest| rest.split_once(": "))
        else {
            continue;
        };
        let label = label.to_string();
        if what.starts_with("acquired") {
            report.holding.push(label);
        } else if what.starts_with("could not acquire") {
            report.excluded.push(label);
        } else if what.starts_with("ACQUIRED although") {
            report.not_excluded.push(label);
        }
    }
    report
}

/// Why lock correctness does not apply where every node keeps package files in S3.
pub const NOT_APPLICABLE_ON_S3: &str =
    "package files are in S3, which needs no cross-node file locks: nothing to test";

/// Cross-node file locks exclude where package files are in a directory; not applicable on S3.
pub fn lock_correctness(facts: &Facts) -> CheckerResult {
    let storages: serde_json::Map<String, serde_json::Value> = facts
        .nodes
        .iter()
        .map(|n| {
            let storage = n.answered().and_then(|s| s.storage.clone());
            (n.node.clone(), json!(storage))
        })
        .collect();
    let kinds: Vec<Option<&str>> = storages
        .values()
        .map(|v| v.as_str().and_then(|s| s.split(':').next()))
        .collect();
    let test = &facts.lock_test;
    let reports: Vec<TesterReport> = test.runs.iter().map(|r| parse(&r.stdout)).collect();
    let (validity, summary) = if kinds.is_empty() {
        (Validity::Unknown, "no node".into())
    } else if kinds.iter().all(|k| *k == Some("s3")) {
        (Validity::NotApplicable, NOT_APPLICABLE_ON_S3.into())
    } else if !kinds.contains(&Some("dir")) {
        (
            Validity::Unknown,
            "a node did not say where it keeps package files".into(),
        )
    } else if let Some(why) = &test.not_run {
        (Validity::Unknown, format!("locktester not run: {why}"))
    } else {
        judge(&test.runs, &reports)
    };
    CheckerResult {
        name: LOCK_CORRECTNESS.into(),
        validity,
        summary,
        evidence: json!({
            "storage": storages,
            "locktester": test.runs.iter().zip(&reports).map(|(run, report)| json!({
                "node": run.node,
                "dir": run.dir,
                "role": report.role,
                "excluded": report.excluded,
                "not_excluded": report.not_excluded,
                "exit_code": run.exit_code,
                "error": run.error,
                "stdout": run.stdout,
                "stderr": run.stderr,
            })).collect::<Vec<_>>(),
        }),
    }
}

/// The holder's run first, then each other node's.
fn judge(runs: &[LockTesterRun], reports: &[TesterReport]) -> (Validity, String) {
    let (Some(holder), Some(held)) = (runs.first(), reports.first()) else {
        return (Validity::Unknown, "locktester not run".into());
    };
    if held.role != Role::First || held.holding.is_empty() {
        return (
            Validity::Unknown,
            format!(
                "{}'s locktester in {} held no lock for the others to try: {}",
                holder.node,
                holder.dir,
                why(holder)
            ),
        );
    }
    if runs.len() < 2 {
        return (
            Validity::Unknown,
            format!(
                "only {} keeps package files in a directory: no second node to try its locks",
                holder.node
            ),
        );
    }
    let mut wrong = Vec::new();
    let mut undecided = Vec::new();
    let mut held_off = Vec::new();
    for (run, report) in runs.iter().zip(reports).skip(1) {
        match report.role {
            Role::First => wrong.push(format!(
                "{}'s locktester in {} did not see {}'s in {} and took every lock {} held: \
                 the nodes do not lock in one shared directory",
                run.node, run.dir, holder.node, holder.dir, holder.node
            )),
            Role::Second if run.exit_code == Some(0) && !report.excluded.is_empty() => {
                held_off.push(format!("{} ({})", run.node, report.excluded.join(", ")))
            }
            Role::Second if !report.not_excluded.is_empty() => wrong.push(format!(
                "{} took the {} lock(s) {} held in {}{}",
                run.node,
                report.not_excluded.join(", "),
                holder.node,
                run.dir,
                run.stderr
                    .last()
                    .map(|l| format!(": {l}"))
                    .unwrap_or_default()
            )),
            _ => undecided.push(format!("{}'s locktester: {}", run.node, why(run))),
        }
    }
    if !wrong.is_empty() {
        (Validity::Invalid, wrong.join("; "))
    } else if !undecided.is_empty() {
        (Validity::Unknown, undecided.join("; "))
    } else {
        (
            Validity::Valid,
            format!(
                "exclusion held: while {} held its locks in {}, {} could not take them",
                holder.node,
                holder.dir,
                held_off.join(", ")
            ),
        )
    }
}

/// Why a run says nothing: its error, its exit and its last words.
fn why(run: &LockTesterRun) -> String {
    let mut parts = Vec::new();
    if let Some(error) = &run.error {
        parts.push(error.clone());
    }
    parts.push(match run.exit_code {
        Some(code) => format!("exit {code}"),
        None => "no exit code".into(),
    });
    if let Some(line) = run.stderr.last().or(run.stdout.last()) {
        parts.push(line.clone());
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::super::fixture::directory_storage;
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn the_locktesters_output_is_read() {
        let report = parse(&lines(
            "locktester in /p/.locks on h (pid 7): second instance; the first is h 6\n\
             \x20 linkbased (hard links): could not acquire (held by h 6): it excludes\n\
             \x20 linkbased (symlinks): ACQUIRED although the first instance holds it: it does not exclude\n\
             \x20 advisory (fcntl): not tested: the first instance could not acquire it\n\
             conclusion: this filesystem supports linkbased (hard links)\n",
        ));
        assert_eq!(report.role, Role::Second);
        assert_eq!(report.excluded, ["linkbased (hard links)"]);
        assert_eq!(report.not_excluded, ["linkbased (symlinks)"]);
        let holder = parse(&lines(
            "locktester in /p/.locks on h (pid 6): first instance\n\
             \x20 linkbased (hard links): acquired\n\
             \x20 advisory (fcntl): NOT acquired: busy\n\
             holding 1 lock(s); run `pkgnode locktester --dir /p/.locks` on another node now\n",
        ));
        assert_eq!(holder.role, Role::First);
        assert_eq!(holder.holding, ["linkbased (hard links)"]);
    }

    #[test]
    fn locks_are_not_applicable_on_s3_and_valid_when_the_second_node_is_held_off() {
        let result = lock_correctness(&super::super::fixture::healthy());
        assert_eq!(result.validity, Validity::NotApplicable);
        assert_eq!(result.summary, NOT_APPLICABLE_ON_S3);
        let result = lock_correctness(&directory_storage());
        assert_eq!(result.validity, Validity::Valid, "{}", result.summary);
        assert!(
            result.summary.contains("node-2 (linkbased (hard links)"),
            "{}",
            result.summary
        );
    }

    #[test]
    fn a_second_node_that_finds_no_holder_is_invalid_and_named() {
        let mut facts = directory_storage();
        let run = &mut facts.lock_test.runs[1];
        run.dir = "/w/node-2/packages/.locks".into();
        run.stdout = lines(
            "locktester in /w/node-2/packages/.locks on h (pid 8): first instance\n\
             \x20 linkbased (hard links): acquired\n",
        );
        run.exit_code = None;
        let result = lock_correctness(&facts);
        assert_eq!(result.name, LOCK_CORRECTNESS);
        assert_eq!(result.validity, Validity::Invalid, "{}", result.summary);
        assert!(
            result.summary.starts_with(
                "node-2's locktester in /w/node-2/packages/.locks did not see node-1's"
            ),
            "{}",
            result.summary
        );
    }

    #[test]
    fn a_lock_type_taken_twice_is_invalid_and_a_failed_run_is_unknown() {
        let mut facts = directory_storage();
        let run = &mut facts.lock_test.runs[1];
        run.stdout = lines(
            "locktester in /w/packages/.locks on h (pid 8): second instance; the first is h 7\n\
             \x20 linkbased (hard links): ACQUIRED although the first instance holds it: it does not exclude\n",
        );
        run.stderr = lines(
            "pkgnode: the configured lock type, linkbased (hard links), does not exclude across nodes in /w/packages/.locks",
        );
        run.exit_code = Some(1);
        let result = lock_correctness(&facts);
        assert_eq!(result.validity, Validity::Invalid, "{}", result.summary);
        assert!(
            result
                .summary
                .contains("node-2 took the linkbased (hard links) lock(s) node-1 held"),
            "{}",
            result.summary
        );

        let mut facts = directory_storage();
        facts.lock_test.runs[1] = LockTesterRun {
            node: "node-2".into(),
            error: Some("did not finish within 120 s".into()),
            ..LockTesterRun::default()
        };
        assert_eq!(lock_correctness(&facts).validity, Validity::Unknown);

        let mut facts = directory_storage();
        facts.lock_test.not_run = Some("the target provider runs no command on a node".into());
        facts.lock_test.runs.clear();
        let result = lock_correctness(&facts);
        assert_eq!(result.validity, Validity::Unknown);
        assert!(
            result.summary.contains("target provider"),
            "{}",
            result.summary
        );
    }
}
