//! Percentiles of samples, defined once for the scenario report and the benchmarks (nearest rank).
//!
//! The rules, the same for every caller:
//! - NaN values are not samples: they are skipped (a missing measurement is not a slow one);
//! - no samples (empty, or only NaN) gives `None` from [`percentile`] and NaN in a [`Summary`];
//! - `p` is a fraction in 0..=1 (clamped); a NaN `p` gives `None`;
//! - the rank is `round((n - 1) * p)` of the sorted samples, so the median of an even count is the upper middle.

/// Samples sorted in ascending order, NaN removed: compute several percentiles with one sort.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sorted(Vec<f64>);

impl Sorted {
    pub fn new(values: &[f64]) -> Self {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        v.sort_by(f64::total_cmp);
        Sorted(v)
    }

    /// How many samples there are (NaN not counted).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The nearest-rank percentile `p` (0..=1); `None` without samples or with a NaN `p`.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        if self.0.is_empty() || p.is_nan() {
            return None;
        }
        let i = ((self.0.len() - 1) as f64 * p.clamp(0.0, 1.0)).round() as usize;
        Some(self.0[i.min(self.0.len() - 1)])
    }

    /// The largest sample.
    pub fn max(&self) -> Option<f64> {
        self.0.last().copied()
    }
}

/// The nearest-rank percentile `p` (0..=1) of unsorted values (see the module's rules).
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    Sorted::new(values).percentile(p)
}

/// Count, p50, p99 and max of a sample; the figures are NaN when there are no samples (tables print them as
/// a dash).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Summary {
    pub fn of(values: &[f64]) -> Self {
        let s = Sorted::new(values);
        Summary {
            n: s.len(),
            p50: s.percentile(0.5).unwrap_or(f64::NAN),
            p99: s.percentile(0.99).unwrap_or(f64::NAN),
            max: s.max().unwrap_or(f64::NAN),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_on_unsorted_input() {
        let v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(51.0));
        assert_eq!(percentile(&v, 0.9), Some(90.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&v, 1.0), Some(100.0));
        // The median of an even count is the upper middle.
        assert_eq!(percentile(&[4.0, 1.0, 3.0, 2.0], 0.5), Some(3.0));
    }

    #[test]
    fn nan_values_are_skipped_and_empty_input_has_no_percentile() {
        assert_eq!(percentile(&[f64::NAN, 2.0, f64::NAN, 1.0, 3.0], 0.5), Some(2.0));
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[f64::NAN], 0.5), None);
        assert_eq!(Sorted::new(&[f64::NAN, 1.0]).len(), 1);
        assert_eq!(Sorted::new(&[]).max(), None);
    }

    #[test]
    fn p_is_clamped_and_a_nan_p_has_no_answer() {
        let v = [1.0, 2.0, 3.0];
        assert_eq!(percentile(&v, -1.0), Some(1.0));
        assert_eq!(percentile(&v, 7.0), Some(3.0));
        assert_eq!(percentile(&v, f64::NAN), None);
    }

    #[test]
    fn infinities_are_samples() {
        assert_eq!(percentile(&[f64::INFINITY, 1.0, f64::NEG_INFINITY], 1.0), Some(f64::INFINITY));
        assert_eq!(percentile(&[f64::INFINITY, 1.0, f64::NEG_INFINITY], 0.0), Some(f64::NEG_INFINITY));
    }

    #[test]
    fn summaries_sort_and_skip_missing_values() {
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        v.push(f64::NAN);
        let s = Summary::of(&v);
        assert_eq!((s.n, s.p50, s.p99, s.max), (100, 51.0, 99.0, 100.0));
        let one = Summary::of(&[7.0]);
        assert_eq!((one.p50, one.p99, one.max), (7.0, 7.0, 7.0));
        let none = Summary::of(&[]);
        assert!(none.p50.is_nan() && none.p99.is_nan() && none.max.is_nan() && none.n == 0);
    }
}
