//! Shared storage: a package uploaded through the balancer (so through whichever node it
//! picks) is served with the same bytes by every node, read on each node's own address, within
//! the time allowed. Nodes on unshared directories, or on another bucket, fail it: a node
//! that does not list the upload, serves other bytes, or cannot serve it for the whole time
//! while another node does.

use reports::record::{CheckerResult, Validity};
use scenarios::writes::{ReadOutcome, WriteOutcome};
use serde_json::json;

use super::facts::Facts;

pub const SHARED_STORAGE: &str = "shared-storage";

/// Judges the probe upload and each node's read of it.
pub fn shared_storage(facts: &Facts) -> CheckerResult {
    let probe = &facts.shared_storage;
    let evidence = json!({
        "upload": probe.upload,
        "upload_error": probe.upload_error,
        "within_s": probe.within_s,
        "reads": probe.reads,
    });
    let result = |validity, summary: String| CheckerResult {
        name: SHARED_STORAGE.into(),
        validity,
        summary,
        evidence: evidence.clone(),
    };
    let upload = match (&probe.upload, &probe.upload_error) {
        (Some(upload), _) if upload.outcome == WriteOutcome::Ok => upload,
        (Some(upload), _) => {
            return result(
                Validity::Unknown,
                format!(
                    "the probe upload {} was not acknowledged ({:?}, HTTP {}): {}",
                    upload.file_name,
                    upload.outcome,
                    upload
                        .status
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "-".into()),
                    upload.detail
                ),
            );
        }
        (None, error) => {
            return result(
                Validity::Unknown,
                format!(
                    "no probe upload: {}",
                    error.as_deref().unwrap_or("not attempted")
                ),
            );
        }
    };
    let served_somewhere = probe
        .reads
        .iter()
        .any(|r| matches!(r.outcome, ReadOutcome::Present | ReadOutcome::Duplicated));
    // A node that could not serve the file for the whole window while another served it fails
    // the rule as much as one that does not list it: its clients cannot install it (a node
    // whose storage directory is its own lists the upload, from the shared database, and
    // fails to read the bytes). Unreadable everywhere decides nothing.
    let wrong: Vec<String> = probe
        .reads
        .iter()
        .filter(|r| match r.outcome {
            ReadOutcome::Missing | ReadOutcome::Corrupt => true,
            ReadOutcome::Unreadable => served_somewhere,
            ReadOutcome::Present | ReadOutcome::Duplicated => false,
        })
        .map(|r| format!("{} {:?}: {}", r.node, r.outcome, r.detail))
        .collect();
    let unreadable: Vec<String> = probe
        .reads
        .iter()
        .filter(|r| r.outcome == ReadOutcome::Unreadable && !served_somewhere)
        .map(|r| format!("{}: {}", r.node, r.detail))
        .collect();
    let missing_nodes: Vec<&str> = facts
        .nodes
        .iter()
        .map(|n| n.node.as_str())
        .filter(|n| !probe.reads.iter().any(|r| r.node == *n))
        .collect();
    if !wrong.is_empty() {
        return result(
            Validity::Invalid,
            format!(
                "{} uploaded through the balancer is not served by every node within {:.0} s: {}",
                upload.file_name,
                probe.within_s,
                wrong.join("; ")
            ),
        );
    }
    if !unreadable.is_empty() || !missing_nodes.is_empty() || probe.reads.is_empty() {
        let mut why = unreadable;
        why.extend(missing_nodes.iter().map(|n| format!("{n} was not read")));
        if probe.reads.is_empty() {
            why.push("no node was read".into());
        }
        return result(Validity::Unknown, why.join("; "));
    }
    let slowest = probe
        .reads
        .iter()
        .filter_map(|r| r.present_after_s)
        .fold(0.0_f64, f64::max);
    let duplicated = probe
        .reads
        .iter()
        .filter(|r| r.outcome == ReadOutcome::Duplicated)
        .count();
    result(
        Validity::Valid,
        format!(
            "{} served with sha256 {}… by all {} nodes, the last after {:.2} s{}",
            upload.file_name,
            upload.sha256.get(..12).unwrap_or(&upload.sha256),
            probe.reads.len(),
            slowest,
            if duplicated > 0 {
                format!(" ({duplicated} listed it twice)")
            } else {
                String::new()
            }
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::super::fixture::healthy;
    use super::*;

    #[test]
    fn a_node_that_never_serves_the_upload_is_invalid_and_named() {
        let mut facts = healthy();
        facts.shared_storage.reads[1].outcome = ReadOutcome::Missing;
        facts.shared_storage.reads[1].detail = "simple page: 404".into();
        let result = shared_storage(&facts);
        assert_eq!(result.name, SHARED_STORAGE);
        assert_eq!(result.validity, Validity::Invalid, "{}", result.summary);
        assert!(
            result.summary.contains("node-2 Missing"),
            "{}",
            result.summary
        );
    }

    #[test]
    fn other_bytes_are_invalid() {
        let mut facts = healthy();
        facts.shared_storage.reads[0].outcome = ReadOutcome::Corrupt;
        assert_eq!(shared_storage(&facts).validity, Validity::Invalid);
    }

    #[test]
    fn a_node_that_cannot_read_what_another_serves_is_invalid_and_named() {
        let mut facts = healthy();
        facts.shared_storage.reads[1].outcome = ReadOutcome::Unreadable;
        facts.shared_storage.reads[1].detail = "…-py3-none-any.whl: HTTP 500".into();
        let result = shared_storage(&facts);
        assert_eq!(result.validity, Validity::Invalid, "{}", result.summary);
        assert!(
            result
                .summary
                .contains("node-2 Unreadable: …-py3-none-any.whl: HTTP 500"),
            "{}",
            result.summary
        );
    }

    #[test]
    fn an_unacknowledged_upload_or_no_node_readable_decides_nothing() {
        let mut facts = healthy();
        if let Some(upload) = facts.shared_storage.upload.as_mut() {
            upload.outcome = WriteOutcome::Unknown;
        }
        assert_eq!(shared_storage(&facts).validity, Validity::Unknown);
        let mut facts = healthy();
        for read in &mut facts.shared_storage.reads {
            read.outcome = ReadOutcome::Unreadable;
        }
        assert_eq!(shared_storage(&facts).validity, Validity::Unknown);
        let mut facts = healthy();
        facts.shared_storage.reads.pop();
        assert_eq!(shared_storage(&facts).validity, Validity::Unknown);
    }
}
