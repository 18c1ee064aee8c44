//! Synthetic rating events for the stream, as `movierec produce --count`
//! sends them: deterministic for a seed, with re-ratings, out-of-order
//! timestamps and, on request, a share of malformed events of every kind the
//! consumer must dead-letter. Tests regenerate the same stream to recompute
//! what the consumer must have stored.

use movierec_core::{EventTime, MAX_EVENT_BYTES};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventStreamParams {
    pub count: u64,
    pub users: u64,
    pub movies: u64,
    /// Share of malformed events, 0.0 to 1.0.
    pub invalid_fraction: f64,
    pub seed: u64,
    /// Time of the first event, epoch milliseconds; later ones advance ~1 s each.
    pub start_ms: i64,
}

impl Default for EventStreamParams {
    fn default() -> Self {
        Self {
            count: 100,
            users: 1000,
            movies: 2000,
            invalid_fraction: 0.0,
            seed: 42,
            start_ms: 1_735_689_600_000, // 2025-01-01T00:00:00Z
        }
    }
}

/// One event as sent: the Kafka key (the user id, as text), the payload, and
/// for a malformed event the reason code the consumer must give it.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedEvent {
    pub key: String,
    pub payload: Vec<u8>,
    pub invalid_reason: Option<&'static str>,
}

/// The kinds of malformed events produced, each with the reason code the
/// validator assigns (SPEC §1).
pub const INVALID_KINDS: &[&str] = &[
    "bad_json",
    "missing_field",
    "bad_rating",
    "bad_timestamp",
    "wrong_type",
    "bad_id",
    "not_an_object",
    "oversized",
];

/// Iterates over the stream; the same params give the same events.
pub fn synthetic_events(params: EventStreamParams) -> impl Iterator<Item = GeneratedEvent> {
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    let users = params.users.max(1);
    let movies = params.movies.max(1);
    let fraction = params.invalid_fraction.clamp(0.0, 1.0);
    let mut invalid_seen = 0usize;
    (0..params.count).map(move |i| {
        // Skew: a few heavy users and popular movies, as in MovieLens.
        let u: f64 = rng.random();
        let m: f64 = rng.random();
        let user_id = 1 + ((u * u) * users as f64) as u64 % users;
        let movie_id = 1 + ((m * m * m) * movies as f64) as u64 % movies;
        let half_stars: u8 = rng.random_range(1..=10);
        // Mostly in order, some late arrivals up to a day old.
        let mut at = params.start_ms + i as i64 * 1000;
        if rng.random_bool(0.05) {
            at -= rng.random_range(0..86_400_000);
        }
        let invalid = fraction > 0.0 && rng.random_bool(fraction);
        let key = user_id.to_string();
        if !invalid {
            let payload = format!(
                r#"{{"user_id": {user_id}, "movie_id": {movie_id}, "rating": {}, "timestamp": "{}"}}"#,
                half_stars as f64 / 2.0,
                EventTime(at).to_iso8601()
            );
            return GeneratedEvent {
                key,
                payload: payload.into_bytes(),
                invalid_reason: None,
            };
        }
        let reason = INVALID_KINDS[invalid_seen % INVALID_KINDS.len()];
        invalid_seen += 1;
        let ts = EventTime(at).to_iso8601();
        let payload = match reason {
            "bad_json" => format!(r#"{{"user_id": {user_id}, "movie_id": {movie_id}, "rating": "#),
            "missing_field" => format!(r#"{{"user_id": {user_id}, "rating": 4.0, "timestamp": "{ts}"}}"#),
            "bad_rating" => format!(
                r#"{{"user_id": {user_id}, "movie_id": {movie_id}, "rating": {}, "timestamp": "{ts}"}}"#,
                [0.0, 5.5, 7.0, 3.3, -1.0][rng.random_range(0..5)]
            ),
            "bad_timestamp" => format!(
                r#"{{"user_id": {user_id}, "movie_id": {movie_id}, "rating": 3.5, "timestamp": "yesterday"}}"#
            ),
            "wrong_type" => format!(
                r#"{{"user_id": "{user_id}", "movie_id": {movie_id}, "rating": 3.5, "timestamp": "{ts}"}}"#
            ),
            "bad_id" => format!(
                r#"{{"user_id": -{user_id}, "movie_id": {movie_id}, "rating": 3.5, "timestamp": "{ts}"}}"#
            ),
            "not_an_object" => format!("[{user_id}, {movie_id}, 3.5]"),
            _ => {
                // Valid JSON, but over the size limit.
                let padding = "x".repeat(MAX_EVENT_BYTES);
                format!(
                    r#"{{"user_id": {user_id}, "movie_id": {movie_id}, "rating": 3.5, "timestamp": "{ts}", "note": "{padding}"}}"#
                )
            }
        };
        GeneratedEvent {
            key,
            payload: payload.into_bytes(),
            invalid_reason: Some(reason),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use movierec_core::RatingEvent;

    #[test]
    fn deterministic_and_every_reason_is_the_validators() {
        let params = EventStreamParams {
            count: 2000,
            invalid_fraction: 0.05,
            ..Default::default()
        };
        let a: Vec<_> = synthetic_events(params).collect();
        let b: Vec<_> = synthetic_events(params).collect();
        assert_eq!(a, b);
        let mut reasons = std::collections::BTreeSet::new();
        let mut valid = 0;
        for event in &a {
            match (RatingEvent::from_json(&event.payload), event.invalid_reason) {
                (Ok(e), None) => {
                    valid += 1;
                    assert_eq!(event.key, e.user_id.to_string());
                }
                (Err(error), Some(reason)) => {
                    assert_eq!(error.code(), reason);
                    reasons.insert(reason);
                }
                (result, expected) => panic!("{result:?} but generated as {expected:?}"),
            }
        }
        assert_eq!(reasons.len(), INVALID_KINDS.len());
        assert!((1850..1950).contains(&valid), "{valid} valid of 2000");
    }
}
