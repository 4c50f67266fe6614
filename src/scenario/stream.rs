//! The job stream of a scenario as a deterministic sequence: Poisson arrivals, a weighted choice of job kind
//! and a uniform choice of input, all drawn from one RNG seeded from the scenario's seed.
use super::pattern::{derive_seed, exponential};
use rand::distr::weighted::WeightedIndex;
use rand::distr::Distribution;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

/// One job of the stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Arrival {
    /// 0, 1, 2, ... in arrival order.
    pub index: usize,
    /// When it is submitted, after t=0.
    pub at: Duration,
    /// Index into the scenario's `jobs`.
    pub kind: usize,
    /// Index into that kind's `inputs`.
    pub input: usize,
}

/// An endless (or `count`-long) iterator of [`Arrival`]s; the caller stops at the end of the load phase.
///
/// Deterministic for a seed with this version of `rand` (StdRng is not promised to stay the same generator
/// across `rand` releases).
#[derive(Debug, Clone)]
pub struct JobStream {
    rng: StdRng,
    mean_gap_s: f64,
    count: Option<usize>,
    kinds: WeightedIndex<f64>,
    inputs: Vec<usize>,
    t_s: f64,
    index: usize,
}

impl JobStream {
    /// `rate` arrivals per second (> 0); `weights[k]` (> 0) and `inputs[k]` (>= 1) describe job kind `k`.
    ///
    /// # Panics
    /// On an empty kind list or a weight that is not positive; [`super::Scenario`] validates both.
    pub fn new(seed: u64, rate: f64, count: Option<usize>, weights: &[f64], inputs: &[usize]) -> Self {
        assert_eq!(weights.len(), inputs.len(), "one weight and one input count per kind");
        let kinds = WeightedIndex::new(weights.iter().copied()).expect("positive weights (validated)");
        Self {
            rng: StdRng::seed_from_u64(seed),
            mean_gap_s: 1.0 / rate,
            count,
            kinds,
            inputs: inputs.to_vec(),
            t_s: 0.0,
            index: 0,
        }
    }
}

impl Iterator for JobStream {
    type Item = Arrival;

    fn next(&mut self) -> Option<Arrival> {
        if self.count.is_some_and(|c| self.index >= c) {
            return None;
        }
        self.t_s += exponential(&mut self.rng, self.mean_gap_s);
        let kind = self.kinds.sample(&mut self.rng);
        let input = self.rng.random_range(0..self.inputs[kind].max(1));
        let a = Arrival { index: self.index, at: Duration::from_secs_f64(self.t_s), kind, input };
        self.index += 1;
        Some(a)
    }
}

impl super::Scenario {
    /// The scenario's job stream, from its seed (the caller stops at the end of the load phase); empty without
    /// `[[jobs]]`.
    pub fn job_stream(&self) -> JobStream {
        let seed = derive_seed(self.seed, "stream");
        match &self.stream {
            Some(s) if !self.jobs.is_empty() => {
                let weights: Vec<f64> = self.jobs.iter().map(|j| j.weight).collect();
                let inputs: Vec<usize> = self.jobs.iter().map(|j| j.inputs.len()).collect();
                JobStream::new(seed, s.rate, s.count, &weights, &inputs)
            }
            _ => JobStream::new(seed, 1.0, Some(0), &[1.0], &[1]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_stream() {
        let a: Vec<Arrival> = JobStream::new(9, 4.0, None, &[3.0, 1.0], &[2, 1]).take(500).collect();
        let b: Vec<Arrival> = JobStream::new(9, 4.0, None, &[3.0, 1.0], &[2, 1]).take(500).collect();
        let c: Vec<Arrival> = JobStream::new(10, 4.0, None, &[3.0, 1.0], &[2, 1]).take(500).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.windows(2).all(|w| w[0].at <= w[1].at && w[1].index == w[0].index + 1));
        assert!(a.iter().all(|x| x.kind < 2 && x.input < [2, 1][x.kind]));
    }

    #[test]
    fn arrivals_are_poisson_at_the_rate() {
        // (rate, seed)
        for (rate, seed) in [(2.0, 1), (20.0, 2), (0.5, 3)] {
            let n = 10_000;
            let s: Vec<Arrival> = JobStream::new(seed, rate, None, &[1.0], &[1]).take(n).collect();
            let mean = s[n - 1].at.as_secs_f64() / n as f64;
            let want = 1.0 / rate;
            assert!((mean - want).abs() / want < 0.03, "rate {rate}: mean gap {mean}, want {want}");
        }
    }

    #[test]
    fn kinds_follow_their_weights_and_inputs_are_uniform() {
        let n = 20_000;
        let s: Vec<Arrival> = JobStream::new(5, 10.0, None, &[3.0, 1.0], &[4, 1]).take(n).collect();
        let first = s.iter().filter(|a| a.kind == 0).count() as f64 / n as f64;
        assert!((first - 0.75).abs() < 0.02, "share of kind 0: {first}");
        for i in 0..4 {
            let share = s.iter().filter(|a| a.kind == 0 && a.input == i).count() as f64 / (first * n as f64);
            assert!((share - 0.25).abs() < 0.03, "input {i}: {share}");
        }
    }

    #[test]
    fn a_count_ends_the_stream() {
        assert_eq!(JobStream::new(1, 1.0, Some(7), &[1.0], &[1]).count(), 7);
        assert_eq!(JobStream::new(1, 1.0, Some(0), &[1.0], &[1]).count(), 0);
    }
}
