//! The SQLite rating store's write path: batches of events, re-ratings,
//! out-of-order times, and replays of stream positions already applied.

use movierec_core::{EventTime, FeatureAccumulator, Rating, RatingEvent};
use movierec_store::{RatingStore, SourcedEvent, SqliteRatingStore, StreamBatch};
use std::collections::HashMap;

fn event(user_id: u64, movie_id: u64, rating: f64, seconds: i64) -> RatingEvent {
    RatingEvent {
        user_id,
        movie_id,
        rating: Rating::from_f64(rating).unwrap(),
        timestamp: EventTime::from_epoch_seconds(seconds).unwrap(),
        event_id: None,
    }
}

async fn open() -> (tempfile::TempDir, SqliteRatingStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteRatingStore::open(&dir.path().join("store.db"))
        .await
        .unwrap();
    (dir, store)
}

/// The features recomputed from the rating rows, to compare with the
/// incrementally maintained ones.
async fn recomputed(
    store: &SqliteRatingStore,
) -> (
    HashMap<u64, FeatureAccumulator>,
    HashMap<u64, FeatureAccumulator>,
) {
    use futures_util::StreamExt;
    let (mut users, mut movies) = (HashMap::new(), HashMap::new());
    let mut rows = store.ratings_by_user();
    while let Some(row) = rows.next().await {
        let r = row.unwrap();
        users
            .entry(r.user_id)
            .or_insert_with(FeatureAccumulator::default)
            .add(r.rating, r.timestamp);
        movies
            .entry(r.movie_id)
            .or_insert_with(FeatureAccumulator::default)
            .add(r.rating, r.timestamp);
    }
    (users, movies)
}

async fn assert_features_exact(store: &SqliteRatingStore) {
    let (users, movies) = recomputed(store).await;
    assert!(!users.is_empty());
    for (id, expected) in users {
        assert_eq!(
            store.user_features(id).await.unwrap(),
            Some(expected),
            "user {id}"
        );
    }
    for (id, expected) in movies {
        assert_eq!(
            store.movie_features(id).await.unwrap(),
            Some(expected),
            "movie {id}"
        );
    }
}

#[tokio::test]
async fn rerating_and_out_of_order_events_keep_features_exact() {
    let (_dir, store) = open().await;
    let outcome = store
        .apply_events(&[
            event(1, 10, 2.0, 100),
            event(2, 10, 5.0, 100),
            event(1, 11, 3.0, 100),
        ])
        .await
        .unwrap();
    assert_eq!(outcome.accepted, 3);
    // A re-rating, then an older event for the same pair that must not win.
    store.apply_events(&[event(1, 10, 4.0, 300)]).await.unwrap();
    let outcome = store.apply_events(&[event(1, 10, 0.5, 200)]).await.unwrap();
    assert_eq!((outcome.accepted, outcome.superseded), (0, 1));

    assert_eq!(store.rating_count().await.unwrap(), 3);
    let movie = store.movie_features(10).await.unwrap().unwrap();
    assert_eq!(movie.count, 2);
    assert_eq!(movie.mean(), 4.5);
    assert_eq!(movie.last_update_ms, 300_000);
    let user = store.user_features(1).await.unwrap().unwrap();
    assert_eq!((user.count, user.mean()), (2, 3.5));
    assert_features_exact(&store).await;
}

#[tokio::test]
async fn replayed_positions_are_skipped_and_progress_is_recorded() {
    let (_dir, store) = open().await;
    let sourced: Vec<SourcedEvent> = (0..6)
        .map(|i| SourcedEvent {
            partition: (i % 2) as i32,
            offset: (i / 2) as i64,
            event: event(1 + i % 3, 20, 1.0 + (i % 4) as f64, 1000 + i as i64),
        })
        .collect();
    let first = store
        .apply_stream_batch(StreamBatch {
            topic: "user-events",
            events: &sourced[..4],
            next_offsets: &[(0, 2), (1, 2)],
        })
        .await
        .unwrap();
    assert_eq!((first.accepted, first.replayed), (4, 0));
    let before = recomputed(&store).await;

    // A crash after the commit: the consumer reads from its older Kafka
    // position again; the first four were applied and must not count twice.
    let again = store
        .apply_stream_batch(StreamBatch {
            topic: "user-events",
            events: &sourced,
            next_offsets: &[(0, 3), (1, 3)],
        })
        .await
        .unwrap();
    assert_eq!((again.accepted, again.replayed), (2, 4));
    assert_ne!(recomputed(&store).await, before);
    assert_eq!(
        store.stream_offsets("user-events").await.unwrap(),
        vec![(0, 3), (1, 3)]
    );
    // Progress never moves backwards.
    store
        .apply_stream_batch(StreamBatch {
            topic: "user-events",
            events: &[],
            next_offsets: &[(0, 1)],
        })
        .await
        .unwrap();
    assert_eq!(
        store.stream_offsets("user-events").await.unwrap(),
        vec![(0, 3), (1, 3)]
    );
    assert!(store.stream_offsets("other").await.unwrap().is_empty());
    assert_features_exact(&store).await;
}

#[tokio::test]
async fn large_random_batches_match_a_recomputation() {
    let (_dir, store) = open().await;
    let mut state = 42u64;
    let mut next = move |bound: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % bound
    };
    let mut latest: HashMap<(u64, u64), (i64, f64)> = HashMap::new();
    for _ in 0..5 {
        let batch: Vec<RatingEvent> = (0..3000)
            .map(|_| {
                let half = 1 + next(10);
                event(
                    1 + next(50),
                    1 + next(80),
                    half as f64 / 2.0,
                    next(10_000) as i64,
                )
            })
            .collect();
        for e in &batch {
            let key = (e.user_id, e.movie_id);
            let t = e.timestamp.millis();
            if latest.get(&key).is_none_or(|&(old, _)| t >= old) {
                latest.insert(key, (t, e.rating.value()));
            }
        }
        store.apply_events(&batch).await.unwrap();
    }
    assert_eq!(store.rating_count().await.unwrap() as usize, latest.len());
    assert_features_exact(&store).await;

    // The batch's full read (packed per user): every rating, in (user, movie)
    // order, with its rating and time.
    use futures_util::StreamExt;
    let read: Vec<(u64, u64, i64, f64)> = store
        .ratings_by_user()
        .map(|r| {
            let r = r.unwrap();
            (
                r.user_id,
                r.movie_id,
                r.timestamp.millis(),
                r.rating.value(),
            )
        })
        .collect()
        .await;
    let mut expected: Vec<(u64, u64, i64, f64)> = latest
        .iter()
        .map(|(&(user, movie), &(t, rating))| (user, movie, t, rating))
        .collect();
    expected.sort_by_key(|&(user, movie, _, _)| (user, movie));
    assert_eq!(read, expected);
}
