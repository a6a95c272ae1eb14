//! What a builder's remote holds now (`git ls-remote`), and one check of it: queue a build for the
//! branch's newest commit (trigger `commits`) or for every tag not built yet (trigger `tags`).
//! A poll and `run git-builder` are the same check; both record what they saw
//! ([`super::sightings`]) before they queue.

use std::time::Duration;

use super::queue::{self, Builder};
use super::sightings;
use super::toolchain;
use super::{BuildTrigger, BuilderError, valid_ref, valid_sha};
use crate::store::Store;

/// How long one `git ls-remote` may take.
const LS_REMOTE_TIMEOUT: Duration = Duration::from_secs(60);

/// One ref the remote advertises, with the commit it points at (annotated tags peeled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRef {
    pub name: String,
    pub commit_sha: String,
}

/// Parses `git ls-remote` output. For an annotated tag the peeled line (`refs/tags/T^{}`) names
/// the commit and wins over the tag object's own id.
pub fn parse_ls_remote(text: &str) -> Vec<RemoteRef> {
    let mut refs: Vec<RemoteRef> = Vec::new();
    for line in text.lines() {
        let Some((sha, name)) = line.split_once('\t') else {
            continue;
        };
        if !valid_sha(sha) {
            continue;
        }
        if let Some(peeled) = name.strip_suffix("^{}") {
            match refs.iter_mut().find(|r| r.name == peeled) {
                Some(found) => found.commit_sha = sha.to_string(),
                None => refs.push(RemoteRef {
                    name: peeled.to_string(),
                    commit_sha: sha.to_string(),
                }),
            }
        } else if !refs.iter().any(|r| r.name == name) {
            refs.push(RemoteRef {
                name: name.to_string(),
                commit_sha: sha.to_string(),
            });
        }
    }
    refs
}

/// The commits a builder should build now: the branch tip, or `(commit, tag)` for every tag.
pub async fn wanted(builder: &Builder) -> Result<Vec<(String, Option<String>)>, BuilderError> {
    let mut args = vec!["ls-remote".to_string()];
    match builder.build_trigger {
        BuildTrigger::Tags => args.push("--tags".into()),
        BuildTrigger::Commits => {}
    }
    args.push("--".into());
    args.push(builder.url.clone());
    match (builder.build_trigger, &builder.branch) {
        (BuildTrigger::Commits, Some(branch)) => args.push(format!("refs/heads/{branch}")),
        (BuildTrigger::Commits, None) => args.push("HEAD".into()),
        (BuildTrigger::Tags, _) => {}
    }
    let out = toolchain::run_git_quick(&args, LS_REMOTE_TIMEOUT)
        .await
        .map_err(|e| BuilderError::Remote(format!("git ls-remote {}: {e}", builder.url)))?;
    let refs = parse_ls_remote(&out);
    Ok(match builder.build_trigger {
        BuildTrigger::Commits => {
            let Some(tip) = refs.into_iter().next() else {
                return Err(BuilderError::Remote(format!(
                    "{} has no {}",
                    builder.url,
                    builder
                        .branch
                        .as_deref()
                        .map(|b| format!("branch {b:?}"))
                        .unwrap_or_else(|| "default branch (HEAD)".into())
                )));
            };
            vec![(tip.commit_sha, None)]
        }
        BuildTrigger::Tags => refs
            .into_iter()
            .filter_map(|r| {
                r.name
                    .strip_prefix("refs/tags/")
                    .filter(|tag| valid_ref(tag))
                    .map(|tag| (r.commit_sha.clone(), Some(tag.to_string())))
            })
            .collect(),
    })
}

/// Checks the remote and queues a build for each new commit or tag; returns the new builds' ids.
/// What the remote showed is recorded first, in its own statement, as `observer`'s sightings
/// (a node id, or [`sightings::CLI_OBSERVER`]): a commit seen and then not queued stays on record.
pub async fn check(
    store: &Store,
    builder: &Builder,
    observer: &str,
) -> Result<Vec<i64>, BuilderError> {
    let wanted = wanted(builder).await?;
    let seen: Vec<String> = wanted.iter().map(|(sha, _)| sha.clone()).collect();
    sightings::record(store, builder.id, &seen, observer).await?;
    let mut queued = Vec::new();
    for (sha, tag) in wanted {
        if let Some(id) = queue::enqueue(store, builder.id, &sha, tag.as_deref()).await? {
            tracing::info!(builder = %builder.name, source = %builder.source, commit = %sha, tag = ?tag, build = id, "queued a git build");
            queued.push(id);
        }
    }
    Ok(queued)
}

/// Which commit a rerun means: the one named, the commit a tag points at now, or the builder's
/// newest build.
pub async fn rerun_target(
    store: &Store,
    builder: &Builder,
    commit_sha: Option<String>,
    tag: Option<String>,
) -> Result<(String, Option<String>), BuilderError> {
    match (commit_sha, tag) {
        (Some(_), Some(_)) => Err(BuilderError::Invalid(
            "give commit_sha or tag, not both".into(),
        )),
        (Some(sha), None) => {
            let sha = sha.trim().to_ascii_lowercase();
            if !valid_sha(&sha) {
                return Err(BuilderError::Invalid(format!(
                    "commit_sha {sha:?} is not a full commit id (40 hexadecimal digits)"
                )));
            }
            let tag = queue::build_of_commit(store, builder.id, &sha)
                .await?
                .and_then(|b| b.tag);
            Ok((sha, tag))
        }
        (None, Some(tag)) => {
            if !valid_ref(&tag) {
                return Err(BuilderError::Invalid(format!("invalid tag {tag:?}")));
            }
            let mut as_tags = builder.clone();
            as_tags.build_trigger = BuildTrigger::Tags;
            let found = wanted(&as_tags)
                .await?
                .into_iter()
                .find(|(_, t)| t.as_deref() == Some(tag.as_str()));
            match found {
                Some((sha, _)) => Ok((sha, Some(tag))),
                None => Err(BuilderError::NotFound(format!(
                    "the remote of builder {:?} has no tag {tag:?}",
                    builder.name
                ))),
            }
        }
        (None, None) => match queue::latest_build(store, builder.id).await? {
            Some(build) => Ok((build.commit_sha, build.tag)),
            None => Err(BuilderError::NotFound(format!(
                "builder {:?} has no build yet: use run to check its remote",
                builder.name
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peeled_tags_name_their_commit() {
        let a = "a".repeat(40);
        let b = "b".repeat(40);
        let c = "c".repeat(40);
        let text =
            format!("{a}\trefs/tags/v1\n{b}\trefs/tags/v1^{{}}\n{c}\trefs/tags/v2\nnot a line\n");
        let refs = parse_ls_remote(&text);
        assert_eq!(
            refs,
            vec![
                RemoteRef {
                    name: "refs/tags/v1".into(),
                    commit_sha: b
                },
                RemoteRef {
                    name: "refs/tags/v2".into(),
                    commit_sha: c
                }
            ]
        );
    }
}
