//! Arrival tests: rates match the plan within Poisson tolerance, popularity and ecosystem
//! shares hold, and the shared cursor hands out every arrival exactly once.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::corpus::{CorpusConfig, Ecosystem};

fn corpus() -> Corpus {
    Corpus::generate(&CorpusConfig {
        packages: 100,
        ..CorpusConfig::default()
    })
    .unwrap()
}

/// `|observed - expected|` within `sigmas` Poisson standard deviations.
fn within(observed: usize, expected: f64, sigmas: f64) -> bool {
    (observed as f64 - expected).abs() <= sigmas * expected.sqrt().max(1.0)
}

#[test]
fn presets_cover_the_asked_duration() {
    let peak = ArrivalPlan::peak_hour(1_000_000.0, Duration::from_secs(600));
    assert_eq!(peak.compression, 1.0);
    assert_eq!(peak.wall_duration(), Duration::from_secs(600));
    // Centred on the peak: 13:55 to 14:05.
    assert!((peak.window_start_hour - (14.0 - 5.0 / 60.0)).abs() < 1e-9);
    let rate = peak.expected_peak_rate_per_s();
    assert!((rate - 1_000_000.0 / 86_400.0 * 2.5).abs() < 1e-9, "{rate}");

    let day = ArrivalPlan::whole_day(1_000_000.0, Duration::from_secs(300));
    assert!((day.compression - 288.0).abs() < 1e-9);
    assert_eq!(day.wall_duration(), Duration::from_secs(300));
    assert!((day.expected_installs() - 1_000_000.0).abs() < 1.0);
    assert!(
        day.describe().contains("288.0× compression"),
        "{}",
        day.describe()
    );
    assert!(peak.validate().is_ok() && day.validate().is_ok());
}

#[test]
fn validate_lists_every_problem() {
    let plan = ArrivalPlan {
        installs_per_day: -1.0,
        curve: DiurnalCurve {
            peak_to_mean: 0.0,
            peak_hour_utc: 30.0,
        },
        compression: 0.0,
        window_start_hour: 24.0,
        window_hours: f64::NAN,
        seed: 0,
    };
    let problems = plan.validate().unwrap_err();
    assert_eq!(problems.len(), 6, "{problems:#?}");
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("curve: peak_to_mean"))
    );
    let huge = ArrivalPlan {
        installs_per_day: 1e9,
        ..ArrivalPlan::whole_day(1.0, Duration::from_secs(60))
    };
    assert!(huge.validate().unwrap_err()[0].contains("shorten the window"));
}

#[test]
fn flat_plan_is_a_homogeneous_poisson_process() {
    let plan = ArrivalPlan {
        installs_per_day: 86_400.0 * 200.0,
        curve: DiurnalCurve::flat(),
        compression: 1.0,
        window_start_hour: 0.0,
        window_hours: 60.0 / 3600.0,
        seed: 9,
    };
    let schedule = plan.schedule(&corpus());
    assert!(within(schedule.len(), 12_000.0, 5.0), "{}", schedule.len());
    for (second, count) in schedule
        .counts_per_bucket(Duration::from_secs(1))
        .iter()
        .enumerate()
    {
        assert!(within(*count, 200.0, 5.0), "second {second}: {count}");
    }
    let offsets: Vec<Duration> = schedule.arrivals().iter().map(|a| a.offset).collect();
    assert!(offsets.windows(2).all(|w| w[0] <= w[1]));
    assert!(*offsets.last().unwrap() < Duration::from_secs(60));
}

#[test]
fn compressed_day_follows_the_diurnal_curve() {
    let plan = ArrivalPlan {
        seed: 3,
        ..ArrivalPlan::whole_day(500_000.0, Duration::from_secs(240))
    };
    let schedule = plan.schedule(&corpus());
    assert!(within(schedule.len(), plan.expected_installs(), 5.0));
    // Each wall bucket of 10 s is one simulated hour.
    let counts = schedule.counts_per_bucket(Duration::from_secs(10));
    assert_eq!(counts.len(), 24);
    for (hour, &count) in counts.iter().enumerate() {
        let hourly = ArrivalPlan {
            window_start_hour: hour as f64,
            window_hours: 1.0,
            ..plan.clone()
        };
        let expected = hourly.expected_installs();
        assert!(
            within(count, expected, 5.0),
            "hour {hour}: {count} vs {expected:.0}"
        );
    }
    let busiest = counts
        .iter()
        .enumerate()
        .max_by_key(|(_, c)| **c)
        .unwrap()
        .0;
    assert!((13..=14).contains(&busiest), "busiest hour {busiest}");
    let quietest = counts
        .iter()
        .enumerate()
        .min_by_key(|(_, c)| **c)
        .unwrap()
        .0;
    assert!((1..=3).contains(&quietest), "quietest hour {quietest}");
}

#[test]
fn packages_follow_popularity_and_ecosystem_share() {
    let corpus = corpus();
    let plan = ArrivalPlan {
        seed: 5,
        ..ArrivalPlan::peak_hour(2_000_000.0, Duration::from_secs(60))
    };
    let schedule = plan.schedule(&corpus);
    let n = schedule.len();
    let r = schedule
        .arrivals()
        .iter()
        .filter(|a| a.ecosystem() == Ecosystem::R)
        .count();
    assert!(within(r, n as f64 * 0.5, 5.0), "{r} of {n} R installs");
    for ecosystem in [Ecosystem::Python, Ecosystem::R] {
        let mut counts = vec![0usize; corpus.len(ecosystem)];
        for a in schedule
            .arrivals()
            .iter()
            .filter(|a| a.ecosystem() == ecosystem)
        {
            counts[a.package.index] += 1;
        }
        let top = counts
            .iter()
            .enumerate()
            .max_by_key(|(_, c)| **c)
            .unwrap()
            .0;
        assert_eq!(top, 0, "{ecosystem:?}: most installed is index {top}");
        let total: usize = counts.iter().sum();
        let p0 = corpus.popularity_of(ecosystem).probability(0);
        assert!(within(counts[0], total as f64 * p0, 5.0));
    }
}

#[test]
fn same_seed_same_schedule() {
    let corpus = corpus();
    let plan = ArrivalPlan::peak_hour(500_000.0, Duration::from_secs(30));
    let a = plan.schedule(&corpus);
    let b = plan.schedule(&corpus);
    assert_eq!(a.arrivals(), b.arrivals());
    let c = ArrivalPlan { seed: 2, ..plan }.schedule(&corpus);
    assert_ne!(a.arrivals(), c.arrivals());
}

#[test]
fn every_arrival_is_handed_out_exactly_once_across_threads() {
    let plan = ArrivalPlan::peak_hour(5_000_000.0, Duration::from_secs(60));
    let schedule = Arc::new(plan.schedule(&corpus()));
    let n = schedule.len();
    assert!(n > 5_000);
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let schedule = Arc::clone(&schedule);
            std::thread::spawn(move || {
                let mut taken = Vec::new();
                // Half the threads use the bounded variant, to race both paths.
                loop {
                    let next = if i % 2 == 0 {
                        schedule.next()
                    } else {
                        schedule.next_before(Duration::MAX)
                    };
                    match next {
                        Some(a) => taken.push(a.seq),
                        None => break,
                    }
                }
                taken
            })
        })
        .collect();
    let mut all: Vec<usize> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..n).collect::<Vec<_>>());
    assert_eq!(schedule.remaining(), 0);
    assert_eq!(schedule.next(), None);
}

#[test]
fn next_before_leaves_later_arrivals() {
    let plan = ArrivalPlan::peak_hour(1_000_000.0, Duration::from_secs(20));
    let schedule = plan.schedule(&corpus());
    let limit = Duration::from_secs(10);
    let mut seen = HashSet::new();
    while let Some(a) = schedule.next_before(limit) {
        assert!(a.offset < limit);
        seen.insert(a.seq);
    }
    let due = schedule
        .arrivals()
        .iter()
        .filter(|a| a.offset < limit)
        .count();
    assert_eq!(seen.len(), due);
    assert_eq!(schedule.remaining(), schedule.len() - due);
}

#[test]
fn planned_users_follow_littles_law_with_headroom() {
    // 1M/day at peak 2.5× in real time: 28.9/s; × 0.5 s = 14.5 in flight; × 2 + 10 = 39.
    let plan = ArrivalPlan::peak_hour(1_000_000.0, Duration::from_secs(60));
    let users = plan.planned_users(Duration::from_millis(500));
    let rate: f64 = 1_000_000.0 / 86_400.0 * 2.5;
    assert_eq!(users, (rate * 0.5 * 2.0).ceil() as usize + 10);
    assert_eq!(
        plan.planned_users(Duration::from_secs(100_000)),
        MAX_PLANNED_USERS
    );
    let day = ArrivalPlan::whole_day(1_000_000.0, Duration::from_secs(240));
    let over_time = day.users_over_time(Duration::from_millis(500), Duration::from_secs(10));
    assert_eq!(over_time.len(), 25);
    let max = over_time.iter().map(|(_, u)| *u).max().unwrap();
    assert!(max <= day.planned_users(Duration::from_millis(500)));
    assert!(over_time[0].1 < max);
}

#[test]
fn slices_partition_the_schedule_evenly() {
    let plan = ArrivalPlan::peak_hour(1_000_000.0, Duration::from_secs(60));
    let schedule = plan.schedule(&corpus());
    let slices: Vec<Schedule> = (0..3).map(|i| schedule.slice(i, 3)).collect();
    let mut seqs: Vec<usize> = slices
        .iter()
        .flat_map(|s| s.arrivals().into_iter().map(|a| a.seq))
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..schedule.len()).collect::<Vec<_>>());
    let all = schedule.arrivals();
    for slice in &slices {
        assert!(slice.len().abs_diff(schedule.len() / 3) <= 1);
        assert_eq!(slice.wall_duration(), schedule.wall_duration());
        // Times and packages are the full schedule's, untouched.
        for a in slice.arrivals() {
            assert_eq!(all[a.seq], a);
        }
    }
    // One slice of one is the whole schedule.
    assert_eq!(schedule.slice(0, 1).arrivals(), all);
}
