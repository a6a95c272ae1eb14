//! Facts of a healthy two-node cluster, for the rules' tests to break one fact at a time.

use scenarios::writes::{LedgerEntry, ReadOutcome, WriteFormat, WriteOutcome};

use super::facts::*;

/// Two nodes on S3 and PostgreSQL, each Online in both listings, the probe upload served by
/// both, the status endpoint refused everywhere, both servers UP, node-1 drained out of
/// rotation and back.
pub fn healthy() -> Facts {
    let members = vec![
        member("uid-1", "127.0.0.11:4242"),
        member("uid-2", "127.0.0.12:4242"),
    ];
    let node = |i: usize| NodeFacts {
        node: format!("node-{i}"),
        url: format!("http://127.0.0.{}:4242", 10 + i),
        status: Ok(NodeStatusFacts {
            node_id: format!("uid-{i}"),
            version: Some("0.1.0".into()),
            key_fingerprint: Some("f1".repeat(32)),
            config_digest: Some("c0".repeat(32)),
            database_backend: Some("postgresql".into()),
            storage: Some("s3:packages".into()),
            cluster_status: Some("Online".into()),
            serving: true,
            members: members.clone(),
        }),
    };
    let read = |node: &str| StorageRead {
        node: node.into(),
        outcome: ReadOutcome::Present,
        detail: String::new(),
        present_after_s: Some(0.1),
    };
    let ask = |asked: &str, host: &str| EndpointAnswer {
        asked: asked.into(),
        url: format!("http://{host}/load-balancer/status"),
        answer: Ok(403),
    };
    Facts {
        nodes: vec![node(1), node(2)],
        shared_storage: SharedStorageFacts {
            upload: Some(LedgerEntry {
                seq: 0,
                format: WriteFormat::Python,
                name: "ledger-check-0".into(),
                version: "1.0".into(),
                file_name: "ledger_check_0-1.0-py3-none-any.whl".into(),
                sha256: "ab".repeat(32),
                scheduled_s: 0.0,
                invoked_s: 0.0,
                completed_s: 0.05,
                outcome: WriteOutcome::Ok,
                status: Some(200),
                detail: String::new(),
            }),
            upload_error: None,
            within_s: 10.0,
            reads: vec![read("node-1"), read("node-2")],
        },
        status_endpoint: vec![
            ask("node-1", "127.0.0.11:4242"),
            ask("node-2", "127.0.0.12:4242"),
            ask("balancer", "127.0.0.1:5000"),
        ],
        balancer: Some(Ok(vec![
            ("node-1".into(), "UP".into()),
            ("node-2".into(), "UP".into()),
        ])),
        lock_test: LockTestFacts {
            not_run: Some("package files are in S3".into()),
            runs: Vec::new(),
        },
        balancer_drain: DrainFacts {
            not_run: None,
            node: "node-1".into(),
            within_s: 10.0,
            offline: Some(Ok("node 1 (127.0.0.11:4242) is offline".into())),
            ping_while_drained: Some(Ok(503)),
            out_of_rotation_after_s: Some(1.1),
            state_while_drained: "DOWN".into(),
            online: Some(Ok("node 1 (127.0.0.11:4242) is online".into())),
            back_in_rotation_after_s: Some(0.6),
        },
    }
}

/// [`healthy`] on one shared directory: node-2's locktester could not take the locks
/// node-1's held.
pub fn directory_storage() -> Facts {
    let mut facts = healthy();
    for index in 0..2 {
        status_of(&mut facts, index).storage = Some("dir:/w/packages".into());
    }
    let lines = |text: &str| text.lines().map(str::to_string).collect::<Vec<_>>();
    facts.lock_test = LockTestFacts {
        not_run: None,
        runs: vec![
            LockTesterRun {
                node: "node-1".into(),
                dir: "/w/packages/.locks".into(),
                stdout: lines(
                    "locktester in /w/packages/.locks on h (pid 7): first instance\n\
                     \x20 linkbased (hard links): acquired\n\
                     \x20 linkbased (symlinks): acquired\n\
                     \x20 advisory (fcntl): acquired\n\
                     holding 3 lock(s); run `pkgnode locktester --dir /w/packages/.locks` on another node now, then interrupt this one\n\
                     released the locks\n",
                ),
                exit_code: Some(0),
                ..LockTesterRun::default()
            },
            LockTesterRun {
                node: "node-2".into(),
                dir: "/w/packages/.locks".into(),
                stdout: lines(
                    "locktester in /w/packages/.locks on h (pid 8): second instance; the first is h 7\n\
                     \x20 linkbased (hard links): could not acquire (held by h 7): it excludes\n\
                     \x20 linkbased (symlinks): could not acquire (held by h 7): it excludes\n\
                     \x20 advisory (fcntl): could not acquire (held by h 7): it excludes\n\
                     conclusion: this filesystem supports linkbased (hard links), linkbased (symlinks), advisory (fcntl)\n",
                ),
                exit_code: Some(0),
                ..LockTesterRun::default()
            },
        ],
    };
    facts
}

pub fn member(uid: &str, address: &str) -> MemberFact {
    MemberFact {
        uid: uid.into(),
        address: address.into(),
        status: "Online".into(),
        clock_offset_ms: Some(3),
    }
}

/// Node `index`'s (0-based) status, to change one field.
pub fn status_of(facts: &mut Facts, index: usize) -> &mut NodeStatusFacts {
    facts.nodes[index]
        .status
        .as_mut()
        .expect("the fixture's nodes answer")
}
