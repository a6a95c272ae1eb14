//! The final reads the lost-writes checker judges: the current primary's `packages` rows of the
//! writer's packages (through [`Infra::query_primary`], never through the nodes), then every
//! ledger entry read from every node by index and bytes once each node reports its database
//! reachable, and the entries whose reads disagree with the database read again until they
//! agree or `settle` passes (waiting for a condition, not retrying until green: what is still
//! in disagreement at the end is judged so).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reports::record::{CheckerResult, Event, EventKind};
use scenarios::writes::{self, LedgerEntry, ReadBack};

use crate::checkers::lost_writes::{self, DatabaseRow, FaultWindow, GroundTruth, Settling};
use crate::infra::{Endpoints, Infra, InfraError};

/// Time between re-reads of the entries that disagree.
const REREAD_INTERVAL: Duration = Duration::from_millis(500);

/// Reads the ground truth and the nodes for `ledger` (written with `tag`) and judges them:
/// the whole lost-writes check of a run, I/O included.
pub async fn check_lost_writes(
    infra: &dyn Infra,
    client: &reqwest::Client,
    ledger: &[LedgerEntry],
    tag: &str,
    settle: Duration,
    events: &[Event],
) -> CheckerResult {
    let endpoints = infra.endpoints();
    let began = Instant::now();
    let deadline = began + settle;
    let reachable = wait_database_reachable(client, endpoints, deadline).await;
    let database = read_database(infra, endpoints, tag);
    let mut reads = read(client, endpoints, ledger).await;
    let mut rereads = 0;
    loop {
        let pending: HashSet<usize> =
            lost_writes::unsettled(ledger, &database, &reads, endpoints.nodes.len())
                .into_iter()
                .collect();
        if pending.is_empty() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(REREAD_INTERVAL).await;
        let again: Vec<LedgerEntry> = ledger
            .iter()
            .filter(|e| pending.contains(&e.seq))
            .cloned()
            .collect();
        reads.retain(|r| !pending.contains(&r.seq));
        reads.extend(read(client, endpoints, &again).await);
        rereads += 1;
    }
    reads.sort_by(|a, b| (a.seq, &a.node).cmp(&(b.seq, &b.node)));
    let faults: Vec<FaultWindow> = events
        .iter()
        .filter(|e| e.kind == EventKind::Fault)
        .filter_map(|e| {
            Some(FaultWindow {
                start_s: e.at_s,
                end_s: e.end_s?,
            })
        })
        .collect();
    let mut result = lost_writes::check(&lost_writes::Input {
        ledger,
        database: &database,
        reads: &reads,
        nodes: endpoints.nodes.len(),
        faults: &faults,
        settling: Settling {
            settle_s: settle.as_secs_f64(),
            waited_s: began.elapsed().as_secs_f64(),
            rereads,
        },
    });
    if let (Err(waiting), Some(evidence)) = (reachable, result.evidence.as_object_mut()) {
        evidence.insert("database_unreachable_at_read".into(), waiting.into());
    }
    result
}

async fn read(
    client: &reqwest::Client,
    endpoints: &Endpoints,
    ledger: &[LedgerEntry],
) -> Vec<ReadBack> {
    writes::read_back(
        client,
        &endpoints.nodes,
        &endpoints.pypi_repo,
        &endpoints.cran_repo,
        ledger,
    )
    .await
}

/// Waits until every node's `/__api__/status` says it serves with its database `ok`, at most
/// until `deadline`; what was still waited for when it passed.
async fn wait_database_reachable(
    client: &reqwest::Client,
    endpoints: &Endpoints,
    deadline: Instant,
) -> Result<(), Vec<String>> {
    loop {
        let waiting = crate::http::database_unreachable(client, &endpoints.nodes).await;
        if waiting.is_empty() || Instant::now() >= deadline {
            return if waiting.is_empty() {
                Ok(())
            } else {
                Err(waiting)
            };
        }
        tokio::time::sleep(REREAD_INTERVAL).await;
    }
}

/// The rows of the writer's packages in the current primary's database.
pub fn read_database(infra: &dyn Infra, endpoints: &Endpoints, tag: &str) -> GroundTruth {
    let sql = rows_query(endpoints, tag);
    let answer = crate::infra::off_runtime("reading the primary database", || {
        infra.query_primary(&sql).transpose()
    });
    match answer {
        Ok(None) => GroundTruth::NotRead(format!(
            "the {} provider was given no way to read the database",
            infra.info().provider
        )),
        Ok(Some(text)) => match parse_rows(&text) {
            Ok(rows) => GroundTruth::Rows(rows),
            Err(e) => GroundTruth::Failed(e.to_string()),
        },
        Err(e) => GroundTruth::Failed(e.to_string()),
    }
}

/// The `SELECT` of the writer's rows: (source, name, file name, sha256, transaction).
fn rows_query(endpoints: &Endpoints, tag: &str) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let [python, r] = writes::name_patterns(tag);
    format!(
        "SELECT s.name, p.name, p.filename, p.sha256, p.added_tx FROM packages p \
         JOIN sources s ON s.id = p.source_id \
         WHERE p.removed_tx IS NULL AND s.name IN ({}, {}) \
         AND (p.name LIKE {py} OR p.normalized LIKE {py} OR p.name LIKE {r}) ORDER BY p.id",
        quote(&endpoints.pypi_source),
        quote(&endpoints.cran_source),
        py = quote(&python),
        r = quote(&r),
    )
}

/// Rows as `psql -tA` prints them.
fn parse_rows(text: &str) -> Result<Vec<DatabaseRow>, InfraError> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split('|').collect();
            let bad = || InfraError::Failed {
                what: "reading the primary's packages".into(),
                detail: format!("unexpected row {line:?}"),
            };
            let [source, name, filename, sha256, added_tx] = fields[..] else {
                return Err(bad());
            };
            Ok(DatabaseRow {
                source: source.into(),
                name: name.into(),
                filename: filename.into(),
                sha256: sha256.into(),
                added_tx: added_tx.trim().parse().map_err(|_| bad())?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_parsed_and_a_strange_line_is_an_error() {
        let rows =
            parse_rows("pypi-local|ledger-t-0|ledger_t_0-1.0-py3-none-any.whl|ab|12\n\n").unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].filename.as_str(), rows[0].added_tx),
            ("ledger_t_0-1.0-py3-none-any.whl", 12)
        );
        assert!(parse_rows("pypi-local|x|y").is_err());
    }
}
