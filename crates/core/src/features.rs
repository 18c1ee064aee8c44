//! User and movie features (SPEC §3) kept as exact integer accumulators.
//!
//! Ratings are half-star integers, so the sum (in half stars) and the sum of
//! squares (in quarter stars) are integers too: a re-rating can remove the old
//! rating's contribution exactly, and partial accumulators merge in any order
//! with bit-identical results.

use crate::{EventTime, Rating};
use serde::Serialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeatureAccumulator {
    pub count: u64,
    /// Sum of ratings in half stars.
    pub sum_half: u64,
    /// Sum of squared ratings in quarter stars ((2r)²).
    pub sum_sq_quarter: u64,
    /// Newest event time seen, epoch milliseconds.
    pub last_update_ms: i64,
}

/// The published form of a feature row.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Features {
    pub avg_rating: f64,
    pub rating_count: u64,
    /// Sample standard deviation; 0 for a single rating.
    pub std_dev: f64,
    pub last_update: EventTime,
}

impl FeatureAccumulator {
    pub fn add(&mut self, rating: Rating, at: EventTime) {
        self.add_half_stars(rating.half_stars(), at.millis());
    }

    #[inline]
    pub fn add_half_stars(&mut self, half_stars: u8, at_ms: i64) {
        let h = half_stars as u64;
        self.count += 1;
        self.sum_half += h;
        self.sum_sq_quarter += h * h;
        self.last_update_ms = self.last_update_ms.max(at_ms);
    }

    /// Removes a rating that was added before (a re-rating replaces it).
    /// The newest time is kept: the replacing event is newer anyway.
    pub fn remove(&mut self, rating: Rating) {
        let h = rating.half_stars() as u64;
        debug_assert!(self.count > 0 && self.sum_half >= h);
        self.count = self.count.saturating_sub(1);
        self.sum_half = self.sum_half.saturating_sub(h);
        self.sum_sq_quarter = self.sum_sq_quarter.saturating_sub(h * h);
    }

    pub fn merge(&mut self, other: &Self) {
        self.count += other.count;
        self.sum_half += other.sum_half;
        self.sum_sq_quarter += other.sum_sq_quarter;
        self.last_update_ms = self.last_update_ms.max(other.last_update_ms);
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum_half as f64 / 2.0 / self.count as f64
        }
    }

    /// Sample standard deviation, computed from exact integers:
    /// var = (n·Σh² − (Σh)²) / (4·n·(n−1)) with h the rating in half stars.
    pub fn std_dev(&self) -> f64 {
        let n = self.count as u128;
        if n < 2 {
            return 0.0;
        }
        let numerator = n * self.sum_sq_quarter as u128 - (self.sum_half as u128).pow(2);
        let variance = numerator as f64 / (4 * n * (n - 1)) as f64;
        variance.sqrt()
    }

    pub fn features(&self) -> Features {
        Features {
            avg_rating: self.mean(),
            rating_count: self.count,
            std_dev: self.std_dev(),
            last_update: EventTime(self.last_update_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(value: f64) -> Rating {
        Rating::from_f64(value).unwrap()
    }

    #[test]
    fn matches_the_textbook_formulas() {
        let ratings = [4.0, 3.5, 5.0, 1.0, 2.5];
        let mut acc = FeatureAccumulator::default();
        for (i, value) in ratings.iter().enumerate() {
            acc.add(r(*value), EventTime(i as i64 * 1000));
        }
        let n = ratings.len() as f64;
        let mean = ratings.iter().sum::<f64>() / n;
        let var = ratings.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let f = acc.features();
        assert_eq!(f.rating_count, 5);
        assert!((f.avg_rating - mean).abs() < 1e-12);
        assert!((f.std_dev - var.sqrt()).abs() < 1e-12);
        assert_eq!(f.last_update, EventTime(4000));
    }

    #[test]
    fn single_rating_has_zero_std_dev() {
        let mut acc = FeatureAccumulator::default();
        acc.add(r(3.0), EventTime(1));
        assert_eq!(acc.std_dev(), 0.0);
        assert_eq!(acc.mean(), 3.0);
    }

    #[test]
    fn removal_is_exact() {
        let mut with_rerating = FeatureAccumulator::default();
        with_rerating.add(r(4.0), EventTime(1));
        with_rerating.add(r(2.0), EventTime(2));
        with_rerating.remove(r(2.0));
        with_rerating.add(r(5.0), EventTime(3));
        let mut direct = FeatureAccumulator::default();
        direct.add(r(4.0), EventTime(1));
        direct.add(r(5.0), EventTime(3));
        assert_eq!(with_rerating, direct);
    }

    #[test]
    fn merge_is_order_independent() {
        let mut a = FeatureAccumulator::default();
        a.add(r(1.5), EventTime(10));
        let mut b = FeatureAccumulator::default();
        b.add(r(4.5), EventTime(5));
        b.add(r(3.0), EventTime(7));
        let mut ab = a;
        ab.merge(&b);
        let mut ba = b;
        ba.merge(&a);
        assert_eq!(ab, ba);
        assert_eq!(ab.count, 3);
        assert_eq!(ab.last_update_ms, 10);
    }
}
