//! The commit schedule: an open arrival stream per builder (Poisson at
//! `commits_per_builder_per_hour`), plus, with `burst`, one commit to every builder within the
//! first second. A seeded `bad_commit_share` of commits is broken on purpose. Pure and
//! reproducible: the same config gives the same plan.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp};
use serde::{Deserialize, Serialize};

use super::GitBuildersConfig;
use crate::corpus::mix_seed;

/// One planned commit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommitPlan {
    /// Index of the builder it goes to.
    pub builder: usize,
    /// Its number within the builder's history, from 1 (0 is the repository's first commit,
    /// pushed before the measured run).
    pub seq: usize,
    /// When it is due, from the schedule's start.
    pub at: Duration,
    /// Broken on purpose: its build must fail.
    pub broken: bool,
}

/// Every commit of the run, in due order (ties by builder).
pub fn commit_plan(config: &GitBuildersConfig) -> Vec<CommitPlan> {
    let mut due: Vec<(Duration, usize)> = Vec::new();
    let mut rng = StdRng::seed_from_u64(mix_seed(config.seed, 0x636F_6D6D));
    if config.burst {
        for builder in 0..config.builders {
            // Spread over the first second, so "within one second" holds and pushes do not
            // all queue at one instant.
            let at = Duration::from_secs_f64(builder as f64 / config.builders.max(1) as f64);
            due.push((at, builder));
        }
    }
    let per_s = config.commits_per_builder_per_hour / 3600.0;
    if per_s > 0.0
        && let Ok(gaps) = Exp::new(per_s)
    {
        let end = config.duration.as_secs_f64();
        for builder in 0..config.builders {
            let mut t = gaps.sample(&mut rng);
            while t < end {
                due.push((Duration::from_secs_f64(t), builder));
                t += gaps.sample(&mut rng);
            }
        }
    }
    due.sort();
    let mut next_seq = vec![1usize; config.builders];
    due.into_iter()
        .map(|(at, builder)| {
            let seq = next_seq[builder];
            next_seq[builder] += 1;
            CommitPlan {
                builder,
                seq,
                at,
                broken: rng.r#gen::<f64>() < config.bad_commit_share,
            }
        })
        .collect()
}
