//! Exactly-once feature updates for stores without multi-item transactions
//! (DynamoDB in `storage_mode: aws`).
//!
//! SQLite applies a batch and its stream positions in one transaction, so a
//! replay is recognised by its positions and skipped whole. DynamoDB cannot
//! write a batch atomically (and moto copies whole tables per transaction),
//! so every row there carries its own record of what it already holds:
//!
//! - a **rating row** (one per user and movie) records the partition and the
//!   highest offset of the events for that pair it reflects (`applied_through`);
//! - a **feature row** (one per user, one per movie) records per partition the
//!   highest offset whose change it holds (its *watermarks*).
//!
//! A batch is planned from the rating rows as read ([`plan_idempotent`]):
//! events a rating row already reflects are skipped; every other event gets
//! its [`Transition`], the change it makes to the features of its user and
//! movie (remove the old rating, add the new one). The writer then, per
//! feature row, adds the transitions above the row's watermark for their
//! partition ([`unapplied`]) and raises the watermark, in one conditional
//! write; only after every feature row is written does it write the rating
//! rows. A crash anywhere leaves a state the next attempt completes without
//! counting anything twice:
//!
//! - the next attempt starts at the committed offset, the same first event;
//! - rating rows not yet written still hold the state the lost attempt read,
//!   so the same events get the same transitions, and feature rows that took
//!   them skip them by their watermarks;
//! - a rating row already written means every feature row of that batch was
//!   already written, so its events are skipped (the watermarks alone would
//!   keep them from counting twice; skipping saves the work).
//!
//! This needs the events of a (user, movie) pair to come through one
//! partition (Kafka keys by user id, as `movierec produce` and the seed's
//! producer do) and one consumer per partition at a time.

use crate::RatingEvent;
use crate::ingest::{CurrentRating, FeatureDelta};
use std::collections::{BTreeMap, HashMap};

/// What a rating row records about the events it reflects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowOrigin {
    pub partition: i32,
    /// The highest offset of this pair's events in `partition` reflected.
    pub applied_through: i64,
}

/// A stored rating row. `origin` is `None` when it was written from another
/// topic or by a batch import: then no event of this stream is known to be in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatingRow {
    pub rating: CurrentRating,
    pub origin: Option<RowOrigin>,
}

/// An event and its position in the stream.
#[derive(Debug, Clone, Copy)]
pub struct Positioned<'a> {
    pub partition: i32,
    pub offset: i64,
    pub event: &'a RatingEvent,
}

/// One event's change to the features of its user and movie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub user_id: u64,
    pub movie_id: u64,
    pub partition: i32,
    pub offset: i64,
    pub delta: FeatureDelta,
}

/// A rating row to write once every feature row of the batch is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowWrite {
    pub user_id: u64,
    pub movie_id: u64,
    pub row: RatingRow,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IdempotentPlan {
    /// In stream order.
    pub transitions: Vec<Transition>,
    /// Sorted by user and movie.
    pub rows: Vec<RowWrite>,
    /// Events that became the current rating of their pair.
    pub accepted: usize,
    /// Events older than the rating there: valid, changing nothing.
    pub superseded: usize,
    /// Events the rating rows already reflect (a replay).
    pub replayed: usize,
}

/// Plans a batch given in stream order. `rows` holds the stored rating row of
/// every pair the batch touches (pairs without one are absent). As in
/// [`crate::plan_batch`], the latest event time wins and equal times go to
/// the event later in the stream.
pub fn plan_idempotent<'a>(
    events: impl IntoIterator<Item = Positioned<'a>>,
    rows: &HashMap<(u64, u64), RatingRow>,
) -> IdempotentPlan {
    let mut plan = IdempotentPlan::default();
    // Pairs this batch writes: their state as the batch goes on.
    let mut written: HashMap<(u64, u64), RatingRow> = HashMap::new();
    for Positioned {
        partition,
        offset,
        event,
    } in events
    {
        let key = (event.user_id, event.movie_id);
        let stored = rows.get(&key);
        let reflected = stored
            .and_then(|row| row.origin)
            .is_some_and(|o| o.partition == partition && offset <= o.applied_through);
        if reflected {
            plan.replayed += 1;
            continue;
        }
        let origin = RowOrigin {
            partition,
            applied_through: offset,
        };
        let current = written.get(&key).or(stored).map(|row| row.rating);
        let candidate = CurrentRating {
            rating: event.rating,
            timestamp: event.timestamp,
        };
        let new_rating = match current {
            Some(old) if candidate.timestamp < old.timestamp => {
                plan.superseded += 1;
                old
            }
            old => {
                plan.accepted += 1;
                let mut delta = FeatureDelta::default();
                if let Some(old) = old {
                    delta.remove(old.rating);
                }
                delta.add(candidate.rating, candidate.timestamp);
                plan.transitions.push(Transition {
                    user_id: key.0,
                    movie_id: key.1,
                    partition,
                    offset,
                    delta,
                });
                candidate
            }
        };
        written.insert(
            key,
            RatingRow {
                rating: new_rating,
                origin: Some(origin),
            },
        );
    }
    plan.rows = written
        .into_iter()
        .map(|((user_id, movie_id), row)| RowWrite {
            user_id,
            movie_id,
            row,
        })
        .collect();
    plan.rows.sort_unstable_by_key(|w| (w.user_id, w.movie_id));
    plan
}

/// The change a feature row has not taken yet: the sum of the `transitions`
/// (all of them for this row) above its watermark for their partition, and
/// the watermarks after taking it. `None`: the row already holds all of them.
pub fn unapplied<'a>(
    transitions: impl IntoIterator<Item = &'a Transition>,
    watermarks: &BTreeMap<i32, i64>,
) -> Option<(FeatureDelta, BTreeMap<i32, i64>)> {
    let mut delta = FeatureDelta::default();
    let mut raised = watermarks.clone();
    let mut any = false;
    for t in transitions {
        if watermarks.get(&t.partition).is_some_and(|&w| t.offset <= w) {
            continue;
        }
        any = true;
        delta.merge(&t.delta);
        let mark = raised.entry(t.partition).or_insert(t.offset);
        *mark = (*mark).max(t.offset);
    }
    any.then_some((delta, raised))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventTime, FeatureAccumulator, Rating};

    fn event(user_id: u64, movie_id: u64, half: u8, seconds: i64) -> RatingEvent {
        RatingEvent {
            user_id,
            movie_id,
            rating: Rating::from_half_stars(half).unwrap(),
            timestamp: EventTime::from_epoch_seconds(seconds).unwrap(),
            event_id: None,
        }
    }

    /// A store that keeps rows as DynamoDB would, and can crash part way
    /// through a batch: after `feature_writes` feature rows, or after all of
    /// them and `row_writes` rating rows.
    #[derive(Default, Clone)]
    struct Store {
        rows: HashMap<(u64, u64), RatingRow>,
        /// (is user, id) -> (accumulator, watermarks)
        features: BTreeMap<(bool, u64), (FeatureAccumulator, BTreeMap<i32, i64>)>,
    }

    impl Store {
        fn apply(&mut self, batch: &[(i32, i64, RatingEvent)], crash: Option<(usize, usize)>) {
            let plan = plan_idempotent(
                batch.iter().map(|(p, o, e)| Positioned {
                    partition: *p,
                    offset: *o,
                    event: e,
                }),
                &self.rows,
            );
            let mut by_row: BTreeMap<(bool, u64), Vec<&Transition>> = BTreeMap::new();
            for t in &plan.transitions {
                by_row.entry((true, t.user_id)).or_default().push(t);
                by_row.entry((false, t.movie_id)).or_default().push(t);
            }
            let (feature_budget, row_budget) = crash.unwrap_or((usize::MAX, usize::MAX));
            for (i, (key, transitions)) in by_row.into_iter().enumerate() {
                if i == feature_budget {
                    return;
                }
                let slot = self.features.entry(key).or_default();
                if let Some((delta, marks)) = unapplied(transitions, &slot.1) {
                    delta.apply_to(&mut slot.0);
                    slot.1 = marks;
                }
            }
            for (i, write) in plan.rows.iter().enumerate() {
                if i == row_budget {
                    return;
                }
                self.rows.insert((write.user_id, write.movie_id), write.row);
            }
        }

        fn accumulators(&self) -> BTreeMap<(bool, u64), FeatureAccumulator> {
            self.features
                .iter()
                .filter(|(_, (acc, _))| acc.count > 0)
                .map(|(k, (acc, _))| (*k, *acc))
                .collect()
        }

        fn recomputed(&self) -> BTreeMap<(bool, u64), FeatureAccumulator> {
            let mut out: BTreeMap<(bool, u64), FeatureAccumulator> = BTreeMap::new();
            for (&(u, m), row) in &self.rows {
                for key in [(true, u), (false, m)] {
                    out.entry(key)
                        .or_default()
                        .add(row.rating.rating, row.rating.timestamp);
                }
            }
            out
        }
    }

    struct Rng(u64);
    impl Rng {
        fn below(&mut self, bound: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % bound
        }
    }

    /// Events keyed by user as Kafka would partition them, with offsets.
    fn stream(rng: &mut Rng, count: usize, partitions: i32) -> Vec<(i32, i64, RatingEvent)> {
        let mut next_offset = vec![0i64; partitions as usize];
        (0..count)
            .map(|_| {
                let e = event(
                    1 + rng.below(6),
                    1 + rng.below(9),
                    1 + rng.below(10) as u8,
                    rng.below(40) as i64,
                );
                let p = (e.user_id % partitions as u64) as i32;
                let o = next_offset[p as usize];
                next_offset[p as usize] += 1;
                (p, o, e)
            })
            .collect()
    }

    #[test]
    fn crashes_anywhere_and_replays_count_every_event_once() {
        for seed in 1..=300u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let events = stream(&mut rng, 120, 3);
            let mut clean = Store::default();
            clean.apply(&events, None);

            let mut crashed = Store::default();
            // Consume like the consumer: from the committed position, batches
            // of random size; a crashed batch is not committed and comes again
            // (perhaps with other boundaries).
            let mut committed = 0;
            while committed < events.len() {
                let end = (committed + 1 + rng.below(40) as usize).min(events.len());
                let batch = &events[committed..end];
                if rng.below(3) == 0 {
                    let crash = (rng.below(12) as usize, rng.below(20) as usize);
                    crashed.apply(batch, Some(crash));
                } else {
                    crashed.apply(batch, None);
                    committed = end;
                }
            }
            assert_eq!(crashed.rows, clean.rows, "seed {seed}");
            assert_eq!(crashed.accumulators(), clean.accumulators(), "seed {seed}");
            assert_eq!(crashed.accumulators(), crashed.recomputed(), "seed {seed}");
        }
    }

    #[test]
    fn a_rerating_moves_the_old_rating_out() {
        let first = [(0, 0, event(1, 10, 4, 100)), (0, 1, event(2, 10, 10, 100))];
        let mut store = Store::default();
        store.apply(&first, None);
        store.apply(&[(0, 2, event(1, 10, 8, 200))], None);
        let movie = store.accumulators()[&(false, 10)];
        assert_eq!((movie.count, movie.sum_half), (2, 18));
        assert_eq!(movie.last_update_ms, 200_000);
        assert_eq!(store.accumulators(), store.recomputed());
    }

    #[test]
    fn a_full_replay_is_recognised_and_changes_nothing() {
        let events = [
            (0, 5, event(1, 10, 4, 100)),
            (0, 6, event(1, 10, 6, 100)), // equal time: the later event wins
            (0, 7, event(1, 10, 2, 50)),  // older: superseded
        ];
        let mut store = Store::default();
        store.apply(&events, None);
        assert_eq!(store.rows[&(1, 10)].rating.rating.half_stars(), 6);
        let before = store.accumulators();
        let plan = plan_idempotent(
            events.iter().map(|(p, o, e)| Positioned {
                partition: *p,
                offset: *o,
                event: e,
            }),
            &store.rows,
        );
        assert_eq!(plan.replayed, 3);
        assert!(plan.transitions.is_empty() && plan.rows.is_empty());
        store.apply(&events, None);
        assert_eq!(store.accumulators(), before);
    }

    #[test]
    fn watermarks_pick_what_a_row_has_not_taken() {
        let t = |partition, offset, half: i64| Transition {
            user_id: 1,
            movie_id: 1,
            partition,
            offset,
            delta: FeatureDelta {
                count: 1,
                sum_half: half,
                sum_sq_quarter: half * half,
                last_update_ms: offset,
            },
        };
        let transitions = [t(0, 4, 2), t(0, 9, 3), t(1, 2, 5)];
        let marks = BTreeMap::from([(0, 4)]);
        let (delta, raised) = unapplied(&transitions, &marks).unwrap();
        assert_eq!((delta.count, delta.sum_half), (2, 8));
        assert_eq!(raised, BTreeMap::from([(0, 9), (1, 2)]));
        assert_eq!(unapplied(&transitions, &raised), None);
    }
}
