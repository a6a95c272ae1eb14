//! Zipf popularity over rank: a cumulative table sampled by binary search, so drawing millions
//! of installs stays cheap and exact.

use rand::Rng;

/// A discrete distribution over package indices `0..len` (index 0 = rank 1).
#[derive(Clone, Debug, PartialEq)]
pub struct Popularity {
    /// `cumulative[i]` = total weight of indices `0..=i`.
    cumulative: Vec<f64>,
}

impl Popularity {
    /// Zipf: index `i` has weight `(i + 1)^-exponent`.
    pub fn zipf(len: usize, exponent: f64) -> Popularity {
        let mut total = 0.0;
        let cumulative = (1..=len)
            .map(|rank| {
                total += (rank as f64).powf(-exponent);
                total
            })
            .collect();
        Popularity { cumulative }
    }

    /// Number of packages.
    pub fn len(&self) -> usize {
        self.cumulative.len()
    }

    /// Whether there are no packages.
    pub fn is_empty(&self) -> bool {
        self.cumulative.is_empty()
    }

    /// Probability of index `i`.
    pub fn probability(&self, i: usize) -> f64 {
        let Some(total) = self.cumulative.last() else {
            return 0.0;
        };
        let below = if i == 0 { 0.0 } else { self.cumulative[i - 1] };
        (self.cumulative[i] - below) / total
    }

    /// Draws an index.
    ///
    /// # Panics
    /// If the distribution is empty.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> usize {
        self.sample_below(self.len(), rng)
    }

    /// Draws an index below `limit`, with the same relative weights.
    ///
    /// # Panics
    /// If `limit` is 0 or past the end.
    pub fn sample_below<R: Rng + ?Sized>(&self, limit: usize, rng: &mut R) -> usize {
        assert!(
            limit > 0 && limit <= self.len(),
            "nothing to sample below {limit}"
        );
        let target = rng.gen_range(0.0..self.cumulative[limit - 1]);
        self.cumulative[..limit]
            .partition_point(|&c| c <= target)
            .min(limit - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn probabilities_sum_to_one_and_fall_with_rank() {
        let p = Popularity::zipf(100, 1.1);
        let sum: f64 = (0..100).map(|i| p.probability(i)).sum();
        assert!((sum - 1.0).abs() < 1e-9);
        assert!((1..100).all(|i| p.probability(i) < p.probability(i - 1)));
        // Zipf: rank 1 vs rank 2 is 2^1.1.
        let ratio = p.probability(0) / p.probability(1);
        assert!((ratio - 2f64.powf(1.1)).abs() < 1e-9);
    }

    #[test]
    fn samples_follow_the_weights() {
        let p = Popularity::zipf(50, 1.1);
        let mut rng = StdRng::seed_from_u64(7);
        let draws = 200_000;
        let mut counts = vec![0usize; 50];
        for _ in 0..draws {
            counts[p.sample(&mut rng)] += 1;
        }
        for (i, &count) in counts.iter().enumerate().take(5) {
            let expected = p.probability(i) * draws as f64;
            // 5 standard deviations of a binomial count.
            let tolerance = 5.0 * expected.sqrt();
            assert!(
                (count as f64 - expected).abs() < tolerance,
                "index {i}: {count} vs {expected:.0}"
            );
        }
        let mut below = [0usize; 3];
        for _ in 0..10_000 {
            below[p.sample_below(3, &mut rng)] += 1;
        }
        assert!(below[0] > below[1] && below[1] > below[2] && below[2] > 0);
    }
}
