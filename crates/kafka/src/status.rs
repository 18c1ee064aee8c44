use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

/// What the running consumer reports to `/health`: whether the broker
/// answers, the lag per partition, and totals since start.
#[derive(Debug, Default)]
pub struct IngestStatus {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    running: bool,
    broker_error: Option<String>,
    broker_checked: Option<Instant>,
    lag: BTreeMap<i32, i64>,
    accepted: u64,
    dead_lettered: u64,
    batches: u64,
    last_error: Option<String>,
}

impl IngestStatus {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) fn set_running(&self, running: bool) {
        self.with(|s| s.running = running);
    }

    pub(crate) fn broker_answered(&self, result: Result<(), String>) {
        self.with(|s| {
            s.broker_error = result.err();
            s.broker_checked = Some(Instant::now());
        });
    }

    pub(crate) fn set_lag(&self, lag: BTreeMap<i32, i64>) {
        let total: i64 = lag.values().sum();
        metrics::gauge!("movierec_consumer_lag").set(total as f64);
        self.with(|s| s.lag = lag);
    }

    pub(crate) fn batch_done(&self, accepted: u64, dead_lettered: u64) {
        self.with(|s| {
            s.accepted += accepted;
            s.dead_lettered += dead_lettered;
            s.batches += 1;
            s.last_error = None;
        });
    }

    pub(crate) fn failed(&self, error: String) {
        self.with(|s| s.last_error = Some(error));
    }

    /// The consumer's part of `/health`.
    pub fn to_json(&self) -> Value {
        self.with(|s| {
            json!({
                "consumer_running": s.running,
                "broker": match (&s.broker_error, s.broker_checked) {
                    (Some(error), _) => json!({"status": "unreachable", "error": error}),
                    (None, Some(at)) => json!({"status": "connected", "checked_seconds_ago": at.elapsed().as_secs()}),
                    (None, None) => json!({"status": "not checked yet"}),
                },
                "consumer_lag": s.lag.values().sum::<i64>(),
                "lag_by_partition": s.lag,
                "events_accepted": s.accepted,
                "events_dead_lettered": s.dead_lettered,
                "batches": s.batches,
                "last_error": s.last_error,
            })
        })
    }
}
