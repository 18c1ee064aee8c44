//! The movierec configuration: `config/config.yaml` (the seed's keys stay
//! valid) with environment overrides.
//!
//! Every key has a default, so a partial file works. An environment variable
//! `MOVIEREC_<SECTION>__<KEY>` (double underscore between levels, e.g.
//! `MOVIEREC_AWS__S3__BUCKET`, `MOVIEREC_SERVING__PORT`) or
//! `MOVIEREC_<TOP_LEVEL_KEY>` (`MOVIEREC_STORAGE_MODE`) overrides a key; its
//! value is read as a YAML scalar, so `8082` is a number and `null` is null.
//! Errors name the file (or variable), the key and the expected form.

use serde::{Deserialize, Serialize};
use serde_yaml_ng::{Mapping, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const DEFAULT_PATH: &str = "config/config.yaml";
pub const ENV_PREFIX: &str = "MOVIEREC_";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub storage_mode: StorageMode,
    pub kafka: KafkaConfig,
    pub sqlite: SqliteConfig,
    pub aws: AwsConfig,
    pub serving: ServingConfig,
    pub batch: BatchConfig,
    pub models: ModelsConfig,
    pub lake: LakeConfig,
    pub data: DataConfig,
    pub export: ExportConfig,
}

/// The warehouse export (SPEC §8): the feature tables' change stream, batched
/// into large files under `<lake>/<prefix>`, loaded into PostgreSQL or Redshift.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportConfig {
    /// `postgres://USER:PW@HOST:5432/DB`, or `redshift://USER:PW@CLUSTER:5439/DB`
    /// (Redshift's COPY needs an `s3://` lake and `iam_role`); null: files only.
    pub warehouse_url: Option<String>,
    /// The role Redshift's COPY reads the lake with.
    pub iam_role: Option<String>,
    /// Where the files, manifests, checkpoints and dead letters go in the lake.
    pub prefix: String,
    /// A file is written when its table's buffer holds this many bytes...
    pub max_file_bytes: u64,
    /// ...or when the oldest buffered change has waited this long.
    pub max_file_age_s: u64,
    /// A change record larger than this goes to the dead letters, not a file.
    pub max_record_bytes: u64,
    /// Attempts at a load before its rows are bisected (data errors) or the
    /// run stops with the error (connection errors; the next run resumes).
    pub max_attempts: u32,
    /// Items per page of `cdc backfill` (a checkpoint after each).
    pub page_size: usize,
    /// Also send dead letters to this Kafka topic (through `kafka.bootstrap_servers`).
    pub dlq_topic: Option<String>,
}

impl Default for ExportConfig {
    fn default() -> Self {
        Self {
            warehouse_url: None,
            iam_role: None,
            prefix: "exports/".into(),
            max_file_bytes: 64 << 20,
            max_file_age_s: 300,
            max_record_bytes: 64 << 10,
            max_attempts: 5,
            page_size: 1000,
            dlq_topic: None,
        }
    }
}

/// The personalized models the batch trains after the top-N, and that
/// `movierec eval` evaluates (SPEC §6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// Train the models in every batch run.
    pub enabled: bool,
    /// Recommendations kept per user in `gold/user-recommendations/`.
    pub recommendations_per_user: usize,
    /// Similar movies kept per movie in `gold/similar-movies/`.
    pub similar_per_movie: usize,
    /// Which rating model the batch trains: `bpmf` (the most accurate) or `als`.
    pub rating_model: RatingModel,
    /// The share of each user's ratings held out to measure the models
    /// before they are trained on everything; 0 skips the measurement (and
    /// its time and memory, which are about those of training once more).
    pub holdout: f64,
    /// Explicit ALS with biases.
    pub als: AlsConfig,
    /// Bayesian matrix factorization with biases, by Gibbs sampling.
    pub bpmf: BpmfConfig,
    /// The ranking model behind top-N lists: implicit ALS.
    pub ranking: RankingConfig,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            recommendations_per_user: 20,
            similar_per_movie: 20,
            rating_model: RatingModel::Bpmf,
            holdout: 0.1,
            als: AlsConfig::default(),
            bpmf: BpmfConfig::default(),
            ranking: RankingConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RatingModel {
    Bpmf,
    Als,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BpmfConfig {
    pub rank: usize,
    /// Gibbs sweeps discarded before samples are kept.
    pub burn_in: usize,
    /// Posterior samples kept and averaged (memory: samples × (users + movies) × (rank + 1) floats).
    pub samples: usize,
    /// Sweeps between kept samples.
    pub thin: usize,
    pub seed: u64,
}

impl Default for BpmfConfig {
    fn default() -> Self {
        Self {
            rank: 10,
            burn_in: 20,
            samples: 100,
            thin: 2,
            seed: 42,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlsConfig {
    pub rank: usize,
    pub iterations: usize,
    /// Regularization per rating of the row (weighted-λ).
    pub lambda: f64,
    pub seed: u64,
}

impl Default for AlsConfig {
    fn default() -> Self {
        Self {
            rank: 50,
            iterations: 15,
            lambda: 0.12,
            seed: 42,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RankingConfig {
    pub rank: usize,
    pub iterations: usize,
    pub lambda: f64,
    /// Confidence of a rated cell: 1 + α·ln(1 + rating); unrated cells have 1.
    pub alpha: f64,
    pub seed: u64,
}

impl Default for RankingConfig {
    fn default() -> Self {
        Self {
            rank: 64,
            iterations: 15,
            lambda: 30.0,
            alpha: 2.0,
            seed: 42,
        }
    }
}

/// Where the bronze, silver and gold layers live (SPEC §4). The layer
/// prefixes are `aws.s3.*_prefix` in both modes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LakeConfig {
    /// A folder, `file:///path` or `s3://bucket[/prefix]`; unset: `data/lake`
    /// in sqlite mode, `s3://<aws.s3.bucket>` in aws mode.
    pub root: Option<String>,
}

impl Config {
    /// The lake's location as [`LakeConfig::root`] describes it.
    pub fn lake_root(&self) -> String {
        match (&self.lake.root, self.storage_mode) {
            (Some(root), _) => root.clone(),
            (None, StorageMode::Aws) => format!("s3://{}", self.aws.s3.bucket),
            (None, StorageMode::Sqlite) => "data/lake".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StorageMode {
    /// Embedded: ratings and real-time features in one SQLite file.
    #[default]
    Sqlite,
    /// Raw events to the S3 bronze layer, real-time features in DynamoDB.
    Aws,
}

impl StorageMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Aws => "aws",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Off in the embedded default: ratings posted to the API go straight to storage.
    pub enabled: bool,
    pub bootstrap_servers: String,
    pub topic: String,
    pub dlq_topic: String,
    pub group_id: String,
    /// librdkafka settings passed through as they are (SASL, TLS, timeouts):
    /// e.g. `security.protocol: SASL_SSL`, `sasl.mechanisms: SCRAM-SHA-512`.
    #[serde(deserialize_with = "scalar_map")]
    pub properties: BTreeMap<String, String>,
    /// The consumer writes a batch when it holds this many events...
    ///
    /// Large, because this cap only binds while the consumer is behind, and
    /// then larger batches cost less per event: a batch's upserts into the
    /// SQLite store dirty B-tree pages that its events share. At 20,000
    /// events/s beside 1,000 API requests/s on 2 cores the lag grew without
    /// bound past ~5 M stored ratings with 20,000-event batches and stayed
    /// under 17 s for 10 minutes with 100,000 (docs/RELIABILITY.md, "Load").
    pub max_batch_events: usize,
    /// ...or when its first event has waited this long.
    pub max_batch_wait_ms: u64,
}

/// A map of librdkafka settings: YAML numbers and booleans are fine as values.
fn scalar_map<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let raw = BTreeMap::<String, Value>::deserialize(deserializer)?;
    raw.into_iter()
        .map(|(key, value)| match value {
            Value::String(s) => Ok((key, s)),
            Value::Number(n) => Ok((key, n.to_string())),
            Value::Bool(b) => Ok((key, b.to_string())),
            _ => Err(serde::de::Error::custom(format!(
                "`{key}`: expected a string, number or boolean"
            ))),
        })
        .collect()
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            bootstrap_servers: "127.0.0.1:9092".into(),
            topic: "user-events".into(),
            dlq_topic: "user-events-dlq".into(),
            group_id: "movierec".into(),
            properties: BTreeMap::new(),
            max_batch_events: 100_000,
            max_batch_wait_ms: 100,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqliteConfig {
    pub path: PathBuf,
    /// SQLite page cache of the rating store's writer, in MiB: the larger,
    /// the faster the consumer's writes to a big store, and the more memory a
    /// long-running server settles at. Its 4 readers get 8 MiB each (or
    /// this, if smaller).
    pub cache_mib: u32,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        Self {
            path: "data/movierec.db".into(),
            cache_mib: 64,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsConfig {
    pub region: String,
    /// e.g. `http://127.0.0.1:5000` for moto or LocalStack; null means AWS itself.
    pub endpoint_url: Option<String>,
    pub s3: S3Config,
    pub dynamodb: DynamoDbConfig,
}

impl Default for AwsConfig {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            endpoint_url: None,
            s3: S3Config::default(),
            dynamodb: DynamoDbConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    pub bucket: String,
    pub bronze_prefix: String,
    pub silver_prefix: String,
    pub gold_prefix: String,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            bucket: "movie-rec-data-lake".into(),
            bronze_prefix: "bronze/user-events/".into(),
            silver_prefix: "silver/".into(),
            gold_prefix: "gold/".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DynamoDbConfig {
    pub user_features_table: String,
    pub movie_features_table: String,
    /// The current rating of each (user, movie): what lets the consumer
    /// replace a re-rating and recognise a replay (docs/ARCHITECTURE.md).
    pub ratings_table: String,
}

impl Default for DynamoDbConfig {
    fn default() -> Self {
        Self {
            user_features_table: "movie-rec-user-features".into(),
            movie_features_table: "movie-rec-movie-features".into(),
            ratings_table: "movie-rec-ratings".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServingConfig {
    /// Loopback by default; set `0.0.0.0` to serve other machines.
    pub host: String,
    pub port: u16,
    /// `sqlite://…`, `mysql://…` (RDS) or `postgres://…`.
    pub database_url: String,
    /// The `Secure` attribute on session cookies. Browsers accept such
    /// cookies from http://localhost too; set `false` only to serve plain
    /// HTTP to other hosts (better: put TLS in front).
    pub secure_cookies: bool,
    /// How long a login lasts.
    pub session_hours: u64,
    /// `true`: `POST /api/ratings` accepts ratings for any user without a
    /// token (a trusted network only).
    pub open_rating_api: bool,
    /// Failed logins allowed per username (and 4x per client address) in
    /// 15 minutes before logins are refused for a while.
    pub login_attempts: u32,
    /// Seconds a client may take to send a request's line and headers
    /// before its connection is closed (slow or silent clients).
    pub header_timeout_s: u64,
    /// Seconds a whole request may take, body included, before a 408.
    pub request_timeout_s: u64,
    /// Largest request body in bytes (a 413 beyond it).
    pub max_body_bytes: usize,
}

impl Default for ServingConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8082,
            database_url: "sqlite://data/movierec.db".into(),
            secure_cookies: true,
            session_hours: 336,
            open_rating_api: false,
            login_attempts: 5,
            header_timeout_s: 10,
            request_timeout_s: 60,
            max_body_bytes: 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    #[default]
    Embedded,
    Spark,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    pub engine: Engine,
    /// m of the Bayesian weighted rating, and the minimum count to be ranked.
    pub min_ratings: u64,
    pub top_n: usize,
    /// Cron expression (UTC): `up` and `serve` run the batch at these times.
    pub schedule: Option<String>,
    pub spark: SparkConfig,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            engine: Engine::Embedded,
            min_ratings: 50,
            top_n: 1000,
            schedule: None,
            spark: SparkConfig::default(),
        }
    }
}

const SHUFFLE_PARTITIONS: &str = "spark.sql.shuffle.partitions";

/// How `batch run --engine spark` submits the PySpark job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SparkConfig {
    /// The spark-submit command (PyPI's pyspark puts one on PATH; EMR has one).
    pub submit: String,
    /// `local[*]`, `yarn` (EMR), `spark://host:7077`…
    pub master: String,
    /// The job, kept in this repository.
    pub job: PathBuf,
    /// `--conf` pairs, e.g. spark.driver.memory: 4g.
    #[serde(deserialize_with = "scalar_map")]
    pub conf: BTreeMap<String, String>,
    /// How the job reaches an `s3://` lake; a local lake is always read in place.
    pub lake_access: LakeAccess,
}

/// How Spark reaches an `s3://` lake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LakeAccess {
    /// `staged` with a `local[...]` master, `direct` with any other.
    #[default]
    Auto,
    /// Spark reads and writes `s3a://` URLs itself: needs Hadoop's S3A
    /// connector (hadoop-aws and the AWS SDK bundle) on its classpath, as on
    /// EMR, or through `spark.jars.packages`. PyPI's pyspark has neither.
    Direct,
    /// movierec copies the job's inputs from S3 to a local folder and its
    /// outputs back, so a plain local Spark works on an S3 lake.
    Staged,
}

impl SparkConfig {
    /// The `--conf` pairs spark-submit gets: `conf`, and for a `local…`
    /// master that does not set it, `spark.sql.shuffle.partitions` at twice
    /// its cores. Spark's default of 200 is sized for clusters; on one machine
    /// each shuffle's 200 tiny tasks cost more than the work (ml-latest-small
    /// on local[2]: 150 s with 200 partitions, 57 s with 2 or 4).
    pub fn submit_conf(&self) -> BTreeMap<String, String> {
        let mut conf = self.conf.clone();
        if let Some(cores) = self.local_cores() {
            conf.entry(SHUFFLE_PARTITIONS.into())
                .or_insert_with(|| (2 * cores).to_string());
        }
        conf
    }

    /// The cores of a local master (`local`, `local[N]`, `local[*]`, and
    /// the same with `,maxFailures`); `None` for a cluster.
    pub fn local_cores(&self) -> Option<usize> {
        if self.master == "local" {
            return Some(1);
        }
        let inside = self.master.strip_prefix("local[")?.strip_suffix(']')?;
        match inside.split(',').next()?.trim() {
            "*" => Some(std::thread::available_parallelism().map_or(1, |n| n.get())),
            n => n.parse().ok().filter(|&n| n > 0),
        }
    }

    /// Whether the job should go through a local copy of an S3 lake.
    pub fn staged(&self, lake_root: &str) -> bool {
        lake_root.starts_with("s3://")
            && match self.lake_access {
                LakeAccess::Staged => true,
                LakeAccess::Direct => false,
                LakeAccess::Auto => self.master.starts_with("local"),
            }
    }
}

impl Default for SparkConfig {
    fn default() -> Self {
        Self {
            submit: "spark-submit".into(),
            master: "local[*]".into(),
            job: "jobs/spark/lakehouse.py".into(),
            conf: BTreeMap::new(),
            lake_access: LakeAccess::Auto,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Where downloaded and generated datasets go.
    pub dir: PathBuf,
    /// The synthetic sample `movierec up` generates on first start.
    pub sample_ratings: u64,
    pub sample_users: u64,
    pub sample_movies: u64,
    pub sample_seed: u64,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dir: "data".into(),
            sample_ratings: 100_000,
            sample_users: 1_000,
            sample_movies: 2_000,
            sample_seed: 42,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not valid YAML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{origin}: key `{key}`: {message}")]
    Key {
        origin: String,
        key: String,
        message: String,
    },
}

/// The loaded configuration and where its values came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// The file read, if any (a missing default file means built-in defaults).
    pub file: Option<PathBuf>,
    /// Keys set from the environment: dotted key → variable name.
    pub overrides: BTreeMap<String, String>,
}

impl Config {
    /// Loads `path` (or `config/config.yaml` when `None`; a missing default file
    /// means built-in defaults) and applies `MOVIEREC_*` overrides from `env`.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        let (file, text) = match path {
            Some(path) => (
                Some(path.to_path_buf()),
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?,
            ),
            None => match std::fs::read_to_string(DEFAULT_PATH) {
                Ok(text) => (Some(PathBuf::from(DEFAULT_PATH)), text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, String::new()),
                Err(source) => {
                    return Err(ConfigError::Read {
                        path: DEFAULT_PATH.into(),
                        source,
                    });
                }
            },
        };
        let origin = file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "built-in defaults".to_string());
        Self::from_yaml_str(&text, &origin, env).map(|(config, overrides)| Loaded {
            config,
            file,
            overrides,
        })
    }

    /// Parses YAML text; `origin` names the file in errors.
    pub fn from_yaml_str(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Self, BTreeMap<String, String>), ConfigError> {
        let mut root: Value = if text.trim().is_empty() {
            Value::Mapping(Mapping::new())
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Syntax {
                path: origin.into(),
                message: e.to_string(),
            })?
        };
        if root.is_null() {
            root = Value::Mapping(Mapping::new());
        }
        if !root.is_mapping() {
            return Err(ConfigError::Key {
                origin: origin.into(),
                key: "(top level)".into(),
                message: "expected a mapping of keys such as `storage_mode:` and `serving:`".into(),
            });
        }
        let overrides = apply_env_overrides(&mut root, env)?;
        let config: Config = serde_path_to_error::deserialize(root).map_err(|e| {
            let key = e.path().to_string();
            let origin = overrides
                .get(&key)
                .map(|var| format!("environment variable {var}"))
                .unwrap_or_else(|| origin.to_string());
            ConfigError::Key {
                origin,
                key,
                message: describe(e.inner().to_string()),
            }
        })?;
        config.validate(origin, &overrides)?;
        Ok((config, overrides))
    }

    /// Checks the values serde cannot: forms of URLs, ranges, required names.
    fn validate(
        &self,
        origin: &str,
        overrides: &BTreeMap<String, String>,
    ) -> Result<(), ConfigError> {
        let fail = |key: &str, message: String| {
            let origin = overrides
                .get(key)
                .map(|var| format!("environment variable {var}"))
                .unwrap_or_else(|| origin.to_string());
            Err(ConfigError::Key {
                origin,
                key: key.into(),
                message,
            })
        };
        let url = &self.serving.database_url;
        if ![
            "sqlite:",
            "mysql://",
            "mariadb://",
            "postgres://",
            "postgresql://",
        ]
        .iter()
        .any(|scheme| url.starts_with(scheme))
        {
            return fail(
                "serving.database_url",
                format!(
                    "`{url}` is not a supported database URL: expected sqlite://PATH, mysql://USER:PASSWORD@HOST:PORT/DB or postgres://USER:PASSWORD@HOST:PORT/DB"
                ),
            );
        }
        if self.serving.port == 0 {
            return fail(
                "serving.port",
                "expected a port number from 1 to 65535".into(),
            );
        }
        if !(1..=24 * 366).contains(&self.serving.session_hours) {
            return fail(
                "serving.session_hours",
                "expected 1 to 8784 hours (a year)".into(),
            );
        }
        if self.serving.login_attempts == 0 {
            return fail(
                "serving.login_attempts",
                "expected at least 1 failed login before a pause".into(),
            );
        }
        for (key, value) in [
            ("serving.header_timeout_s", self.serving.header_timeout_s),
            ("serving.request_timeout_s", self.serving.request_timeout_s),
        ] {
            if !(1..=3600).contains(&value) {
                return fail(key, format!("expected 1 to 3600 seconds, got {value}"));
            }
        }
        if !(1024..=1 << 30).contains(&self.serving.max_body_bytes) {
            return fail(
                "serving.max_body_bytes",
                format!(
                    "expected 1024 to 1073741824 bytes, got {}",
                    self.serving.max_body_bytes
                ),
            );
        }
        if self.sqlite.path.as_os_str().is_empty() {
            return fail(
                "sqlite.path",
                "expected a file path, e.g. data/movierec.db".into(),
            );
        }
        if !(1..=65536).contains(&self.sqlite.cache_mib) {
            return fail(
                "sqlite.cache_mib",
                format!(
                    "expected 1 to 65536 (MiB of page cache per connection), got {}",
                    self.sqlite.cache_mib
                ),
            );
        }
        if self.kafka.max_batch_events == 0 {
            return fail(
                "kafka.max_batch_events",
                "expected a positive integer, e.g. 10000".into(),
            );
        }
        for (key, value) in [
            ("kafka.bootstrap_servers", &self.kafka.bootstrap_servers),
            ("kafka.topic", &self.kafka.topic),
            ("kafka.dlq_topic", &self.kafka.dlq_topic),
            ("kafka.group_id", &self.kafka.group_id),
        ] {
            if value.trim().is_empty() {
                return fail(key, "expected a non-empty string".into());
            }
        }
        if self.kafka.topic == self.kafka.dlq_topic {
            return fail(
                "kafka.dlq_topic",
                format!(
                    "must differ from kafka.topic (`{}`): dead letters would be consumed again",
                    self.kafka.topic
                ),
            );
        }
        let e = &self.export;
        if let Some(url) = &e.warehouse_url
            && !["postgres://", "postgresql://", "redshift://"]
                .iter()
                .any(|scheme| url.starts_with(scheme))
        {
            return fail(
                "export.warehouse_url",
                format!(
                    "`{url}` is not a supported warehouse URL: expected postgres://USER:PASSWORD@HOST:PORT/DB or redshift://USER:PASSWORD@CLUSTER:5439/DB"
                ),
            );
        }
        for (key, value) in [
            ("export.max_file_bytes", e.max_file_bytes),
            ("export.max_file_age_s", e.max_file_age_s),
            ("export.max_record_bytes", e.max_record_bytes),
            ("export.max_attempts", u64::from(e.max_attempts)),
            ("export.page_size", e.page_size as u64),
        ] {
            if value == 0 {
                return fail(key, "expected a positive integer".into());
            }
        }
        if e.prefix.trim_matches('/').is_empty() {
            return fail(
                "export.prefix",
                "expected a folder name, e.g. exports/".into(),
            );
        }
        if self.batch.top_n == 0 {
            return fail(
                "batch.top_n",
                "expected a positive integer, e.g. 1000".into(),
            );
        }
        let m = &self.models;
        for (key, value) in [
            (
                "models.recommendations_per_user",
                m.recommendations_per_user,
            ),
            ("models.similar_per_movie", m.similar_per_movie),
            ("models.als.rank", m.als.rank),
            ("models.als.iterations", m.als.iterations),
            ("models.bpmf.rank", m.bpmf.rank),
            ("models.bpmf.samples", m.bpmf.samples),
            ("models.bpmf.thin", m.bpmf.thin),
            ("models.ranking.rank", m.ranking.rank),
            ("models.ranking.iterations", m.ranking.iterations),
        ] {
            if value == 0 {
                return fail(key, "expected a positive integer".into());
            }
        }
        for (key, value) in [
            ("models.als.lambda", m.als.lambda),
            ("models.ranking.lambda", m.ranking.lambda),
            ("models.ranking.alpha", m.ranking.alpha),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return fail(key, format!("expected a positive number, not {value}"));
            }
        }
        if !(0.0..=0.5).contains(&m.holdout) {
            return fail(
                "models.holdout",
                format!(
                    "expected a share from 0 (no holdout metrics) to 0.5, not {}",
                    m.holdout
                ),
            );
        }
        if self.storage_mode == StorageMode::Aws {
            if self.aws.s3.bucket.trim().is_empty() {
                return fail(
                    "aws.s3.bucket",
                    "is required when storage_mode is \"aws\": expected a bucket name".into(),
                );
            }
            for (key, table) in [
                (
                    "aws.dynamodb.user_features_table",
                    &self.aws.dynamodb.user_features_table,
                ),
                (
                    "aws.dynamodb.movie_features_table",
                    &self.aws.dynamodb.movie_features_table,
                ),
                (
                    "aws.dynamodb.ratings_table",
                    &self.aws.dynamodb.ratings_table,
                ),
            ] {
                if table.trim().is_empty() {
                    return fail(
                        key,
                        "is required when storage_mode is \"aws\": expected a table name".into(),
                    );
                }
            }
            let tables = &self.aws.dynamodb;
            if tables.ratings_table == tables.user_features_table
                || tables.ratings_table == tables.movie_features_table
                || tables.user_features_table == tables.movie_features_table
            {
                return fail(
                    "aws.dynamodb",
                    "user_features_table, movie_features_table and ratings_table must be three \
                     different tables"
                        .into(),
                );
            }
        }
        if let Some(endpoint) = &self.aws.endpoint_url
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return fail(
                "aws.endpoint_url",
                format!("`{endpoint}` is not a URL: expected e.g. http://127.0.0.1:4566, or null"),
            );
        }
        Ok(())
    }

    /// The effective configuration as YAML.
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).unwrap_or_default()
    }
}

/// serde's messages for enums and unknown fields are good; make the rest
/// name the expected form in our words.
fn describe(message: String) -> String {
    message
        .replace("unit value", "null (no value)")
        .replace("expected u16", "expected a port number from 1 to 65535")
        .replace("expected u64", "expected a non-negative integer")
        .replace("expected usize", "expected a non-negative integer")
        .replace("expected a boolean", "expected true or false")
}

const TOP_LEVEL_KEYS: &[&str] = &[
    "storage_mode",
    "kafka",
    "sqlite",
    "aws",
    "serving",
    "batch",
    "models",
    "lake",
    "data",
    "export",
];

fn apply_env_overrides(
    root: &mut Value,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX))
        .collect();
    vars.sort();
    let mut applied = BTreeMap::new();
    for (name, raw) in vars {
        let rest = &name[ENV_PREFIX.len()..];
        let segments: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
        let is_config_var = rest.contains("__") || TOP_LEVEL_KEYS.contains(&segments[0].as_str());
        if !is_config_var {
            continue; // e.g. MOVIEREC_CONFIG, MOVIEREC_LOG: not configuration keys
        }
        let key = segments.join(".");
        if !TOP_LEVEL_KEYS.contains(&segments[0].as_str()) || segments.iter().any(String::is_empty)
        {
            return Err(ConfigError::Key {
                origin: format!("environment variable {name}"),
                key,
                message: format!(
                    "unknown key: expected MOVIEREC_<SECTION>__<KEY> with a section among {}",
                    TOP_LEVEL_KEYS.join(", ")
                ),
            });
        }
        let value: Value = serde_yaml_ng::from_str(&raw).unwrap_or(Value::String(raw.clone()));
        let mut node = &mut *root;
        for segment in &segments[..segments.len() - 1] {
            let mapping = match node {
                Value::Mapping(m) => m,
                _ => {
                    return Err(ConfigError::Key {
                        origin: format!("environment variable {name}"),
                        key,
                        message: format!("`{segment}` is not a section"),
                    });
                }
            };
            let k = Value::String(segment.clone());
            if !mapping.get(&k).is_some_and(Value::is_mapping) {
                mapping.insert(k.clone(), Value::Mapping(Mapping::new()));
            }
            node = mapping.get_mut(&k).expect("inserted above");
        }
        if let Value::Mapping(mapping) = node {
            mapping.insert(Value::String(segments[segments.len() - 1].clone()), value);
        }
        applied.insert(key, name);
    }
    Ok(applied)
}

#[cfg(test)]
mod tests;
