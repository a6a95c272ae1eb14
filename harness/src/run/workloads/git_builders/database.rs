//! What the primary database says of the git builds, read through [`Infra::query_primary`]:
//! the `git-build` transactions that added package files, per build (what was published,
//! whatever the build rows say: a duplicate is two), and the first sighting of every commit the
//! nodes' polls saw on the builders' remotes, placed on the run's time line.

use crate::checkers;
use crate::infra::Infra;

/// The transactions that added package files, per build they describe
/// (`{source}/{builder}@{sha12}`), read from the current primary database: what was
/// published, whatever the build rows say.
pub fn read_publications(infra: &dyn Infra) -> Result<checkers::builds::Publications, String> {
    const SQL: &str = "SELECT t.description, count(DISTINCT t.id) FROM transactions t \
                       JOIN packages p ON p.added_tx = t.id \
                       WHERE t.kind = 'git-build' GROUP BY t.description";
    parse_publications(&read_primary(
        infra,
        "reading the builds' transactions",
        SQL,
    )?)
}

/// `sql` on the current primary database, off the runtime; why not, as text.
fn read_primary(infra: &dyn Infra, what: &str, sql: &str) -> Result<String, String> {
    crate::infra::off_runtime(what, || infra.query_primary(sql).transpose())
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "the {} provider cannot read the database",
                infra.info().provider
            )
        })
}

/// The first sighting of every commit the polls (and `run`) saw on the builders' remotes, read
/// from the current primary database, on the run's time line: a node's epoch milliseconds minus
/// `started_at`, the harness's wall clock at the run start (see
/// [`checkers::builds::Sighting::seen_at_s`] for how the two clocks compare).
pub fn read_sightings(
    infra: &dyn Infra,
    started_at: chrono::DateTime<chrono::Utc>,
) -> Result<checkers::builds::Sightings, String> {
    const SQL: &str = "SELECT g.name, t.commit_sha, t.first_seen_at_ms, t.node_id \
                       FROM git_tip_sightings t JOIN git_builders g ON g.id = t.builder_id";
    let text = read_primary(infra, "reading the polls' sightings", SQL)?;
    parse_sightings(&text, started_at.timestamp_millis())
}

fn parse_sightings(text: &str, started_at_ms: i64) -> Result<checkers::builds::Sightings, String> {
    let mut sightings = checkers::builds::Sightings::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split('|').collect();
        let [builder, sha, at_ms, node] = fields[..] else {
            return Err(format!("unexpected sighting row {line:?}"));
        };
        let at_ms: i64 = at_ms
            .trim()
            .parse()
            .map_err(|_| format!("unexpected sighting time in {line:?}"))?;
        sightings.insert(
            (builder.to_string(), sha.to_string()),
            checkers::builds::Sighting {
                seen_at_s: (at_ms - started_at_ms) as f64 / 1000.0,
                node_id: node.to_string(),
            },
        );
    }
    Ok(sightings)
}

fn parse_publications(text: &str) -> Result<checkers::builds::Publications, String> {
    let mut publications = checkers::builds::Publications::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let parsed = line.rsplit_once('|').and_then(|(description, count)| {
            let (_source, build) = description.split_once('/')?;
            let (builder, sha) = build.rsplit_once('@')?;
            Some((builder, sha, count.trim().parse::<usize>().ok()?))
        });
        let Some((builder, sha, count)) = parsed else {
            return Err(format!("unexpected transaction row {line:?}"));
        };
        *publications
            .entry(checkers::builds::publication_key(builder, sha))
            .or_default() += count;
    }
    Ok(publications)
}

#[cfg(test)]
mod tests {
    #[test]
    fn transactions_are_counted_per_build() {
        let publications = super::parse_publications(
            "pypi-git/gb-a-1@0123456789ab|2\ncran-git/gb-b-0@ffffffffffff|1\n",
        )
        .unwrap();
        assert_eq!(
            publications[&("gb-a-1".to_string(), "0123456789ab".to_string())],
            2
        );
        assert!(super::parse_publications("no bar here").is_err());
    }

    #[test]
    fn sightings_are_placed_on_the_run_time_line() {
        let sightings =
            super::parse_sightings("gb-a-1|abc|1500|node-x\ngb-b-0|def|500|cli\n", 1000).unwrap();
        let seen = &sightings[&("gb-a-1".to_string(), "abc".to_string())];
        assert_eq!((seen.seen_at_s, seen.node_id.as_str()), (0.5, "node-x"));
        assert_eq!(
            sightings[&("gb-b-0".to_string(), "def".to_string())].seen_at_s,
            -0.5
        );
        assert!(super::parse_sightings("gb-a-1|abc|soon|n", 0).is_err());
        assert!(super::parse_sightings("gb-a-1|abc", 0).is_err());
    }
}
