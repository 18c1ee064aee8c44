use movierec_core::{BayesianParams, FeatureAccumulator, MovieCounts, TopN, bayesian_top_n};
use std::collections::HashMap;

/// One rating as the engine sees it. `seq` orders equal timestamps: the later
/// record in the source wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatingRecord {
    pub user: u64,
    pub movie: u64,
    pub ts_ms: i64,
    pub half_stars: u8,
    pub seq: u64,
}

/// The result of aggregation, with users and movies in ascending id order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Aggregates {
    pub users: Vec<(u64, FeatureAccumulator)>,
    pub movies: Vec<(u64, FeatureAccumulator)>,
    /// Ratings kept, by half stars (index 1..=10).
    pub histogram: [u64; 11],
    /// Records read, including those replaced by a newer rating.
    pub records_read: u64,
    /// Records dropped because a newer rating of the same user and movie exists.
    pub superseded: u64,
}

impl Aggregates {
    pub fn ratings(&self) -> u64 {
        self.histogram.iter().sum()
    }

    pub fn movie_counts(&self) -> Vec<MovieCounts> {
        self.movies
            .iter()
            .map(|(movie_id, acc)| MovieCounts {
                movie_id: *movie_id,
                count: acc.count,
                sum_half: acc.sum_half,
            })
            .collect()
    }

    pub fn top_n(&self, params: BayesianParams) -> TopN {
        bayesian_top_n(&self.movie_counts(), params)
    }
}

/// Input was not grouped by user: `user` appeared again after other users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotGrouped {
    pub user: u64,
}

/// Movie accumulators: a dense vector for the small ids every real catalogue
/// uses, a map for the rest.
#[derive(Debug, Default)]
pub(crate) struct MovieTable {
    dense: Vec<FeatureAccumulator>,
    sparse: HashMap<u64, FeatureAccumulator>,
}

const DENSE_MOVIE_IDS: u64 = 1 << 20;

impl MovieTable {
    #[inline]
    fn get_mut(&mut self, movie: u64) -> &mut FeatureAccumulator {
        if movie < DENSE_MOVIE_IDS {
            let index = movie as usize;
            if index >= self.dense.len() {
                self.dense.resize(index + 1, FeatureAccumulator::default());
            }
            &mut self.dense[index]
        } else {
            self.sparse.entry(movie).or_default()
        }
    }

    pub(crate) fn merge(&mut self, other: MovieTable) {
        if other.dense.len() > self.dense.len() {
            self.dense
                .resize(other.dense.len(), FeatureAccumulator::default());
        }
        for (mine, theirs) in self.dense.iter_mut().zip(&other.dense) {
            mine.merge(theirs);
        }
        for (movie, acc) in other.sparse {
            self.sparse.entry(movie).or_default().merge(&acc);
        }
    }

    fn into_sorted(self) -> Vec<(u64, FeatureAccumulator)> {
        let mut movies: Vec<(u64, FeatureAccumulator)> = self
            .dense
            .into_iter()
            .enumerate()
            .filter(|(_, acc)| !acc.is_empty())
            .map(|(id, acc)| (id as u64, acc))
            .chain(self.sparse)
            .collect();
        movies.sort_unstable_by_key(|(id, _)| *id);
        movies
    }
}

/// Folds a stream of ratings grouped by user (each user's ratings contiguous,
/// in any order within the user) into features.
#[derive(Debug, Default)]
pub struct GroupedAggregator {
    current_user: Option<u64>,
    run: Vec<RatingRecord>,
    pub(crate) users: Vec<(u64, FeatureAccumulator)>,
    pub(crate) movies: MovieTable,
    pub(crate) histogram: [u64; 11],
    pub(crate) records_read: u64,
    pub(crate) superseded: u64,
}

impl GroupedAggregator {
    pub fn new() -> Self {
        Self::default()
    }

    #[inline]
    pub fn push(&mut self, record: RatingRecord) {
        if self.current_user != Some(record.user) {
            self.finish_run();
            self.current_user = Some(record.user);
        }
        self.run.push(record);
    }

    /// Folds one complete user run (used when stitching chunk edges).
    pub(crate) fn push_run(&mut self, run: &[RatingRecord]) {
        for record in run {
            self.push(*record);
        }
        self.finish_run();
    }

    fn finish_run(&mut self) {
        let Some(user) = self.current_user.take() else {
            return;
        };
        let run = &mut self.run;
        self.records_read += run.len() as u64;
        let strictly_increasing = run.windows(2).all(|w| w[0].movie < w[1].movie);
        if !strictly_increasing {
            run.sort_unstable_by_key(|r| (r.movie, r.ts_ms, r.seq));
            // Keep the last record of each movie: the newest, later in the source on ties.
            let before = run.len();
            let mut kept = 0;
            for i in 0..run.len() {
                if i + 1 == run.len() || run[i + 1].movie != run[i].movie {
                    run[kept] = run[i];
                    kept += 1;
                }
            }
            run.truncate(kept);
            self.superseded += (before - kept) as u64;
        }
        let mut user_acc = FeatureAccumulator::default();
        for record in run.iter() {
            user_acc.add_half_stars(record.half_stars, record.ts_ms);
            self.movies
                .get_mut(record.movie)
                .add_half_stars(record.half_stars, record.ts_ms);
            self.histogram[record.half_stars as usize] += 1;
        }
        self.users.push((user, user_acc));
        run.clear();
    }

    /// Finishes the last run. Fails if a user appeared in two separate runs
    /// (found by sorting the finished users, which the output needs anyway).
    pub fn finish(mut self) -> Result<Aggregates, NotGrouped> {
        self.finish_run();
        self.users.sort_unstable_by_key(|(id, _)| *id);
        if let Some(pair) = self.users.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(NotGrouped { user: pair[0].0 });
        }
        Ok(Aggregates {
            users: self.users,
            movies: self.movies.into_sorted(),
            histogram: self.histogram,
            records_read: self.records_read,
            superseded: self.superseded,
        })
    }

    /// Merges another aggregator's finished users and movies into this one.
    pub(crate) fn absorb(&mut self, other: GroupedAggregator) {
        debug_assert!(other.run.is_empty());
        self.users.extend(other.users);
        self.movies.merge(other.movies);
        for (mine, theirs) in self.histogram.iter_mut().zip(other.histogram) {
            *mine += theirs;
        }
        self.records_read += other.records_read;
        self.superseded += other.superseded;
    }

    pub(crate) fn take_run(&mut self) -> Vec<RatingRecord> {
        self.current_user = None;
        std::mem::take(&mut self.run)
    }
}

/// Aggregates records in any order: sorts them by user first. The general
/// path for sources that are not grouped by user.
pub fn aggregate_records(mut records: Vec<RatingRecord>) -> Aggregates {
    use rayon::slice::ParallelSliceMut;
    records.par_sort_unstable_by_key(|r| r.user);
    aggregate_grouped(records).expect("records sorted by user are grouped by user")
}

/// Aggregates records already grouped by user.
pub fn aggregate_grouped(
    records: impl IntoIterator<Item = RatingRecord>,
) -> Result<Aggregates, NotGrouped> {
    let mut aggregator = GroupedAggregator::new();
    for record in records {
        aggregator.push(record);
    }
    aggregator.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(user: u64, movie: u64, ts_ms: i64, half_stars: u8, seq: u64) -> RatingRecord {
        RatingRecord {
            user,
            movie,
            ts_ms,
            half_stars,
            seq,
        }
    }

    #[test]
    fn latest_rating_wins_and_ties_go_to_the_later_record() {
        let records = vec![
            rec(1, 10, 100, 2, 0),
            rec(1, 10, 300, 8, 1), // newest: kept
            rec(1, 10, 200, 4, 2),
            rec(1, 11, 50, 6, 3),
            rec(1, 11, 50, 10, 4), // same time, later record: kept
        ];
        let agg = aggregate_records(records);
        assert_eq!(agg.records_read, 5);
        assert_eq!(agg.superseded, 3);
        assert_eq!(agg.ratings(), 2);
        let (_, user) = agg.users[0];
        assert_eq!(user.sum_half, 8 + 10);
        assert_eq!(user.last_update_ms, 300);
        assert_eq!(agg.movies.len(), 2);
        assert_eq!(agg.movies[0].1.sum_half, 8);
    }

    #[test]
    fn ungrouped_input_is_detected_and_sorting_fixes_it() {
        let records = vec![rec(1, 1, 0, 2, 0), rec(2, 1, 0, 4, 1), rec(1, 2, 0, 6, 2)];
        let mut aggregator = GroupedAggregator::new();
        for r in &records {
            aggregator.push(*r);
        }
        assert_eq!(aggregator.finish(), Err(NotGrouped { user: 1 }));
        let agg = aggregate_records(records);
        assert_eq!(agg.users.len(), 2);
        assert_eq!(agg.users[0].1.count, 2);
    }

    #[test]
    fn large_movie_ids_use_the_sparse_table() {
        let agg = aggregate_records(vec![rec(1, 5_000_000_000, 0, 2, 0), rec(1, 3, 0, 4, 1)]);
        let ids: Vec<u64> = agg.movies.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, vec![3, 5_000_000_000]);
    }
}
