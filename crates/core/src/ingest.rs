//! How a batch of accepted events changes the stored ratings and features.
//!
//! The rule (SPEC §1): the latest rating of a user for a movie replaces the
//! earlier one everywhere. An event older than what is stored changes nothing;
//! a re-rating removes the old rating's contribution from both feature rows.
//! Planning is pure: the adapter loads the current ratings of the pairs a batch
//! touches, asks for a [`BatchPlan`], and writes it in one transaction.

use crate::{EventTime, FeatureAccumulator, Rating, RatingEvent};
use std::collections::HashMap;
use std::collections::hash_map::Entry;

/// A user's rating of a movie as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentRating {
    pub rating: Rating,
    pub timestamp: EventTime,
}

/// A signed change to a feature row. Adding then removing the same rating
/// nets to zero, so deltas of a whole batch can be summed per key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeatureDelta {
    pub count: i64,
    pub sum_half: i64,
    pub sum_sq_quarter: i64,
    /// Newest event time among the ratings added (never lowered by a removal:
    /// the replacing rating is newer anyway).
    pub last_update_ms: i64,
}

impl FeatureDelta {
    pub(crate) fn add(&mut self, rating: Rating, at: EventTime) {
        let h = rating.half_stars() as i64;
        self.count += 1;
        self.sum_half += h;
        self.sum_sq_quarter += h * h;
        self.last_update_ms = self.last_update_ms.max(at.millis());
    }

    pub(crate) fn remove(&mut self, rating: Rating) {
        let h = rating.half_stars() as i64;
        self.count -= 1;
        self.sum_half -= h;
        self.sum_sq_quarter -= h * h;
    }

    /// Sums two changes (deltas of one row commute).
    pub fn merge(&mut self, other: &Self) {
        self.count += other.count;
        self.sum_half += other.sum_half;
        self.sum_sq_quarter += other.sum_sq_quarter;
        self.last_update_ms = self.last_update_ms.max(other.last_update_ms);
    }

    /// Applies this change to an accumulator (for in-memory stores and tests).
    pub fn apply_to(&self, acc: &mut FeatureAccumulator) {
        acc.count = acc.count.saturating_add_signed(self.count);
        acc.sum_half = acc.sum_half.saturating_add_signed(self.sum_half);
        acc.sum_sq_quarter = acc
            .sum_sq_quarter
            .saturating_add_signed(self.sum_sq_quarter);
        acc.last_update_ms = acc.last_update_ms.max(self.last_update_ms);
    }
}

/// What to write for one batch.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BatchPlan {
    /// The new rating of every pair whose rating changed: `(user, movie, rating)`.
    pub ratings: Vec<(u64, u64, CurrentRating)>,
    pub user_deltas: Vec<(u64, FeatureDelta)>,
    pub movie_deltas: Vec<(u64, FeatureDelta)>,
    /// Events that became the current rating of their pair (perhaps briefly,
    /// if a newer one for the same pair came later in the batch).
    pub accepted: usize,
    /// Events older than the rating already there: valid, but changing nothing.
    pub superseded: usize,
}

/// Plans a batch given in stream order. `current` holds the stored rating of
/// every pair the batch touches (pairs without one are absent). Equal times:
/// the event later in the stream wins.
pub fn plan_batch<'a>(
    events: impl IntoIterator<Item = &'a RatingEvent>,
    current: &HashMap<(u64, u64), CurrentRating>,
) -> BatchPlan {
    let mut latest: HashMap<(u64, u64), CurrentRating> = HashMap::new();
    let mut plan = BatchPlan::default();
    for event in events {
        let key = (event.user_id, event.movie_id);
        let candidate = CurrentRating {
            rating: event.rating,
            timestamp: event.timestamp,
        };
        match latest.entry(key) {
            Entry::Occupied(mut slot) => {
                if candidate.timestamp >= slot.get().timestamp {
                    slot.insert(candidate);
                    plan.accepted += 1;
                } else {
                    plan.superseded += 1;
                }
            }
            Entry::Vacant(slot) => match current.get(&key) {
                Some(stored) if candidate.timestamp < stored.timestamp => plan.superseded += 1,
                _ => {
                    slot.insert(candidate);
                    plan.accepted += 1;
                }
            },
        }
    }

    let mut users: HashMap<u64, FeatureDelta> = HashMap::new();
    let mut movies: HashMap<u64, FeatureDelta> = HashMap::new();
    for (&(user_id, movie_id), &new) in &latest {
        let old = current.get(&(user_id, movie_id));
        if old == Some(&new) {
            continue; // a replay of what is stored
        }
        for delta in [
            users.entry(user_id).or_default(),
            movies.entry(movie_id).or_default(),
        ] {
            if let Some(old) = old {
                delta.remove(old.rating);
            }
            delta.add(new.rating, new.timestamp);
        }
        plan.ratings.push((user_id, movie_id, new));
    }
    // Sorted output: deterministic writes, and index-ordered inserts are faster.
    plan.ratings.sort_unstable_by_key(|&(u, m, _)| (u, m));
    plan.user_deltas = users.into_iter().collect();
    plan.user_deltas.sort_unstable_by_key(|&(id, _)| id);
    plan.movie_deltas = movies.into_iter().collect();
    plan.movie_deltas.sort_unstable_by_key(|&(id, _)| id);
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(user_id: u64, movie_id: u64, rating: f64, seconds: i64) -> RatingEvent {
        RatingEvent {
            user_id,
            movie_id,
            rating: Rating::from_f64(rating).unwrap(),
            timestamp: EventTime::from_epoch_seconds(seconds).unwrap(),
            event_id: None,
        }
    }

    /// Applies plans to an in-memory store, as the SQL adapter does.
    #[derive(Default)]
    struct Memory {
        ratings: HashMap<(u64, u64), CurrentRating>,
        users: HashMap<u64, FeatureAccumulator>,
        movies: HashMap<u64, FeatureAccumulator>,
    }

    impl Memory {
        fn apply(&mut self, batch: &[RatingEvent]) -> BatchPlan {
            let current = batch
                .iter()
                .filter_map(|e| {
                    let key = (e.user_id, e.movie_id);
                    self.ratings.get(&key).map(|r| (key, *r))
                })
                .collect();
            let plan = plan_batch(batch, &current);
            for &(u, m, r) in &plan.ratings {
                self.ratings.insert((u, m), r);
            }
            for (id, d) in &plan.user_deltas {
                d.apply_to(self.users.entry(*id).or_default());
            }
            for (id, d) in &plan.movie_deltas {
                d.apply_to(self.movies.entry(*id).or_default());
            }
            plan
        }

        /// Features recomputed from the ratings alone.
        fn recomputed(
            &self,
        ) -> (
            HashMap<u64, FeatureAccumulator>,
            HashMap<u64, FeatureAccumulator>,
        ) {
            let (mut users, mut movies) = (HashMap::new(), HashMap::new());
            for (&(u, m), r) in &self.ratings {
                users
                    .entry(u)
                    .or_insert_with(FeatureAccumulator::default)
                    .add(r.rating, r.timestamp);
                movies
                    .entry(m)
                    .or_insert_with(FeatureAccumulator::default)
                    .add(r.rating, r.timestamp);
            }
            (users, movies)
        }
    }

    #[test]
    fn the_latest_event_wins_in_any_arrival_order() {
        let events = [
            event(1, 10, 2.0, 100),
            event(1, 10, 4.5, 300),
            event(1, 10, 1.0, 200), // older than the stored 300: ignored
        ];
        let mut memory = Memory::default();
        let plan = memory.apply(&events);
        assert_eq!((plan.accepted, plan.superseded), (2, 1));
        assert_eq!(memory.ratings[&(1, 10)].rating.value(), 4.5);
        assert_eq!(memory.users[&1].count, 1);
        assert_eq!(memory.movies[&10].sum_half, 9);

        // Each event on its own, in another order: the same end state.
        let mut one_by_one = Memory::default();
        for e in [&events[2], &events[0], &events[1]] {
            one_by_one.apply(std::slice::from_ref(e));
        }
        assert_eq!(one_by_one.ratings, memory.ratings);
        assert_eq!(one_by_one.users, memory.users);
        assert_eq!(one_by_one.movies, memory.movies);
    }

    #[test]
    fn a_rerating_replaces_the_old_contribution_exactly() {
        let mut memory = Memory::default();
        memory.apply(&[event(1, 10, 2.0, 100), event(2, 10, 5.0, 100)]);
        memory.apply(&[event(1, 10, 4.0, 200)]);
        let (users, movies) = memory.recomputed();
        assert_eq!(memory.users, users);
        assert_eq!(memory.movies, movies);
        assert_eq!(memory.movies[&10].count, 2);
        assert_eq!(memory.movies[&10].mean(), 4.5);
        assert_eq!(memory.movies[&10].last_update_ms, 200_000);
    }

    #[test]
    fn equal_times_let_the_later_event_win_and_replays_change_nothing() {
        let mut memory = Memory::default();
        memory.apply(&[event(1, 10, 2.0, 100), event(1, 10, 3.0, 100)]);
        assert_eq!(memory.ratings[&(1, 10)].rating.value(), 3.0);
        let before = (memory.users.clone(), memory.movies.clone());
        let plan = memory.apply(&[event(1, 10, 3.0, 100)]);
        assert!(plan.ratings.is_empty() && plan.user_deltas.is_empty());
        assert_eq!((memory.users.clone(), memory.movies.clone()), before);
    }

    #[test]
    fn random_streams_match_a_recomputation() {
        // A small deterministic generator: many re-ratings, out-of-order times.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        let mut memory = Memory::default();
        let mut reference: HashMap<(u64, u64), (i64, usize, f64)> = HashMap::new();
        let mut seq = 0;
        for _ in 0..200 {
            let size = 1 + next(40) as usize;
            let batch: Vec<_> = (0..size)
                .map(|_| {
                    let half = 1 + next(10);
                    event(
                        1 + next(8),
                        1 + next(12),
                        half as f64 / 2.0,
                        next(50) as i64,
                    )
                })
                .collect();
            for e in &batch {
                seq += 1;
                let key = (e.user_id, e.movie_id);
                let t = e.timestamp.millis();
                if reference.get(&key).is_none_or(|&(rt, _, _)| t >= rt) {
                    reference.insert(key, (t, seq, e.rating.value()));
                }
            }
            memory.apply(&batch);
        }
        assert_eq!(memory.ratings.len(), reference.len());
        for (key, (t, _, value)) in &reference {
            assert_eq!(memory.ratings[key].timestamp.millis(), *t);
            assert_eq!(memory.ratings[key].rating.value(), *value);
        }
        let (users, movies) = memory.recomputed();
        assert_eq!(memory.users, users);
        assert_eq!(memory.movies, movies);
    }
}
