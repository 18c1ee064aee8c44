use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// movierec: movie recommendations from rating streams, on a laptop or on AWS.
#[derive(Debug, Parser)]
#[command(name = "movierec", version, about)]
pub struct Cli {
    /// Configuration file [default: config/config.yaml if present, else built-in defaults]
    #[arg(long, global = true, env = "MOVIEREC_CONFIG")]
    pub config: Option<PathBuf>,
    /// More log output (-v debug, -vv trace); MOVIEREC_LOG=filter overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the platform: load sample data on first start, compute the batch, serve on 8082.
    Up {
        /// Import this MovieLens folder instead of generating synthetic sample data.
        #[arg(long, value_name = "DIR")]
        movielens: Option<PathBuf>,
    },
    /// Evaluate the personalized models and the baselines on a split of a
    /// MovieLens-format dataset: rating error, top-K quality, timings.
    Eval {
        /// A MovieLens folder (ml-100k, ml-latest-small, ml-25m, …) or `movierec data synth` output.
        #[arg(long, value_name = "DIR")]
        dataset: PathBuf,
        /// random:FRACTION:SEED, temporal[:FRACTION], stratified:FRACTION:SEED or ml100k-folds.
        #[arg(long, default_value = "random:0.9:42")]
        split: movierec_core::eval::Split,
        /// Models beside the baselines (global mean, biases, popularity): als, bpmf, ials.
        #[arg(long, value_delimiter = ',', default_value = "als,bpmf,ials")]
        models: Vec<String>,
        /// Length of the top-K lists the ranking metrics score.
        #[arg(long, default_value_t = 10)]
        k: usize,
        /// Override models.als.rank.
        #[arg(long)]
        als_rank: Option<usize>,
        /// Override models.als.lambda.
        #[arg(long)]
        als_lambda: Option<f64>,
        /// Override models.als.iterations.
        #[arg(long)]
        als_iterations: Option<usize>,
        /// Override models.ranking.rank.
        #[arg(long)]
        ranking_rank: Option<usize>,
        /// Override models.ranking.lambda.
        #[arg(long)]
        ranking_lambda: Option<f64>,
        /// Override models.ranking.alpha.
        #[arg(long)]
        ranking_alpha: Option<f64>,
        /// Override models.ranking.iterations.
        #[arg(long)]
        ranking_iterations: Option<usize>,
        /// How the embedded ALS solves each row: cholesky (exact), cg (3 steps) or cg:STEPS.
        #[arg(long, value_parser = crate::eval::parse_solver, value_name = "SOLVER")]
        als_solver: Option<movierec_core::als::AlsSolver>,
        /// Where the personalized models train: embedded, spark (ALS with Spark
        /// MLlib through batch.spark.submit, rows named `als (spark)`), or both
        /// (embedded,spark). The baselines always run embedded.
        #[arg(long, value_enum, value_delimiter = ',', default_value = "embedded")]
        engine: Vec<crate::eval::Engine>,
        /// Rating error only: skip the top-K metrics (and the popularity
        /// baseline), and report each ALS iteration's seconds. For large sets.
        #[arg(long)]
        rating_only: bool,
        /// Spark: fit once with 1 iteration first (JVM warm-up) and report the
        /// marginal seconds per iteration beside fit seconds / iterations.
        #[arg(long)]
        spark_warmup: bool,
        /// Print the results as JSON (every fold and the means) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The personalized models the batch trains (versions, parameters, metrics).
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// Serve the HTTP API only (data must have been published by a batch).
    Serve,
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Get datasets: download MovieLens, or generate synthetic data.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// Load data into the rating store.
    Import {
        #[command(subcommand)]
        command: ImportCommand,
    },
    /// Amazon EMR: run the Spark batch on a cluster.
    Emr {
        #[command(subcommand)]
        command: EmrCommand,
    },
    /// Work on the data lake (lake.root).
    Lake {
        #[command(subcommand)]
        command: LakeCommand,
    },
    /// Compute features and the Bayesian top-N.
    Batch {
        #[command(subcommand)]
        command: BatchCommand,
    },
    /// Send rating events to Kafka (kafka.topic): synthetic ones, or a MovieLens replay.
    Produce {
        /// Send N synthetic events (the seed's test producer).
        #[arg(long, value_name = "N", conflicts_with = "replay")]
        count: Option<u64>,
        /// Replay a MovieLens folder or ratings file in timestamp order.
        #[arg(long, value_name = "DIR|FILE")]
        replay: Option<PathBuf>,
        /// Events per second [default: as fast as possible].
        #[arg(long)]
        rate: Option<f64>,
        /// Share of deliberately malformed events, 0 to 1 (to exercise the dead-letter path).
        #[arg(long, default_value_t = 0.0)]
        invalid_fraction: f64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Users of the synthetic events.
        #[arg(long, default_value_t = 1000)]
        users: u64,
        /// Movies of the synthetic events.
        #[arg(long, default_value_t = 2000)]
        movies: u64,
        /// [default: kafka.topic]
        #[arg(long)]
        topic: Option<String>,
    },
    /// Consume kafka.topic into the store: invalid events to kafka.dlq_topic, exactly-once effect.
    Consume {
        /// Stop after this many seconds spent waiting without a message (time
        /// the process was suspended does not count) [default: run until
        /// Ctrl-C/SIGTERM].
        #[arg(long, value_name = "SECONDS")]
        until_idle: Option<f64>,
        /// Create this file once the group has assigned partitions (for scripts
        /// and `bench ingest`, which offer events only to a running consumer).
        #[arg(long, value_name = "PATH")]
        ready_file: Option<PathBuf>,
    },
    /// Create the S3 bucket, its bronze/silver/gold prefixes and the DynamoDB feature tables (idempotent).
    SetupAws {
        /// Show what would be created; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete the DynamoDB feature tables and the bucket with everything in it.
    TeardownAws {
        /// Required: this deletes data.
        #[arg(long)]
        yes: bool,
    },
    /// Inspect or re-send dead letters (kafka.dlq_topic).
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Web accounts and API tokens in the serving database.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Benchmarks as reports (the seed's performance chapter).
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// AWS helpers beside setup-aws: the cost estimate.
    Aws {
        #[command(subcommand)]
        command: AwsCommand,
    },
    /// The warehouse export: feature changes → large files in the lake → PostgreSQL or Redshift (export.*).
    Cdc {
        #[command(subcommand)]
        command: CdcCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Run the batch on each engine and core count, several times, on shares of a
    /// dataset: the seed's table (time median and spread, speedup, peak memory,
    /// CPU utilisation), scalability with the fitted time per million ratings,
    /// and an SVG chart, written to OUT/bench-batch.md (.svg, .json).
    Batch {
        /// A MovieLens-format folder (any layout; `movierec data synth` output too).
        #[arg(long, value_name = "DIR")]
        dataset: PathBuf,
        #[arg(long, value_delimiter = ',', default_value = "embedded,spark")]
        engines: Vec<String>,
        /// Core counts for the embedded engine [default: all of this machine's].
        #[arg(long, value_delimiter = ',')]
        cores: Vec<usize>,
        /// Spark local[N] configurations, each pinned to N cores.
        #[arg(long, value_delimiter = ',', default_value = "1,2")]
        spark_cores: Vec<usize>,
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        /// Shares of the dataset (ratings in file order) for the scalability table.
        #[arg(long, value_delimiter = ',', default_value = "0.25,0.5,1")]
        fractions: Vec<f64>,
        #[arg(long, value_name = "DIR", default_value = "report")]
        out: PathBuf,
    },
    /// Measure the consumer (the configured Kafka, a fresh SQLite store per run):
    /// synthetic events at each offered rate, or a backlog for `max`; events/s,
    /// the group's lag, catch-up time, memory and CPU, written to OUT/bench-ingest.md
    /// (.svg, .json). Each run creates and deletes topics of its own.
    Ingest {
        /// Events per run.
        #[arg(long, default_value_t = 200_000)]
        events: u64,
        /// Offered rates: `max` (the whole stream produced first, then drained) or events per second.
        #[arg(long, value_delimiter = ',', default_value = "max,10000")]
        rates: Vec<crate::bench::Rate>,
        #[arg(long, default_value_t = 3)]
        partitions: i32,
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        /// Share of malformed events, which must reach the dead-letter topic.
        #[arg(long, default_value_t = 0.01)]
        invalid_fraction: f64,
        #[arg(long, default_value_t = 10_000)]
        users: u64,
        #[arg(long, default_value_t = 5_000)]
        movies: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// The consumer stops after this many seconds without a message.
        #[arg(long, default_value_t = 2.0)]
        idle: f64,
        #[arg(long, value_name = "DIR", default_value = "report")]
        out: PathBuf,
    },
    /// Measure the API: latency percentiles of each target at each offered rate
    /// (an open loop; `max` is back-to-back clients), errors, and the server's CPU and
    /// memory, written to OUT/bench-serve.md (.svg, .json). Starts `movierec serve`
    /// with this configuration unless --url names a running server.
    Serve {
        /// A running server, e.g. http://127.0.0.1:8082 [default: start one on a free port].
        #[arg(long)]
        url: Option<String>,
        /// top, user (`/api/users/{user}/recommendations`), movies, health, or any path
        /// (`{user}` becomes a user id drawn uniformly).
        #[arg(long, value_delimiter = ',', default_value = "top,user")]
        targets: Vec<crate::bench::serve::Target>,
        /// Offered requests per second, or `max`.
        #[arg(long, value_delimiter = ',', default_value = "500,2000,max")]
        rates: Vec<crate::bench::Rate>,
        /// Seconds measured per run.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Seconds sent before each run's measurement starts.
        #[arg(long, default_value_t = 2.0)]
        warmup: f64,
        /// Requests in flight at most (and clients for `max`).
        #[arg(long, default_value_t = 32)]
        connections: usize,
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        /// Draw `{user}` from 1..=USERS [default: the served user count].
        #[arg(long)]
        users: Option<u64>,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, value_name = "DIR", default_value = "report")]
        out: PathBuf,
    },
    /// Soak the platform: `movierec up` (its own store, sample data and Kafka
    /// topics) ingesting --events-per-s while its API answers --requests-per-s,
    /// for --seconds; memory, errors and lag every second, written to
    /// OUT/bench-soak.md (.json).
    Soak {
        #[arg(long, default_value_t = 600.0)]
        seconds: f64,
        #[arg(long, default_value_t = 20_000.0)]
        events_per_s: f64,
        #[arg(long, default_value_t = 1_000.0)]
        requests_per_s: f64,
        #[arg(long, default_value_t = 3)]
        partitions: i32,
        /// User ids of the events and of the users' requests (the sample has 1,000).
        #[arg(long, default_value_t = 1_000)]
        users: u64,
        #[arg(long, default_value_t = 2_000)]
        movies: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, value_name = "DIR", default_value = "report")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum AwsCommand {
    /// Estimate the AWS bill (the seed's cost estimate): S3 storage and requests,
    /// DynamoDB on-demand reads/writes/storage, EMR, EC2 and RDS hours, for the
    /// seed's one-object-per-event layout beside movierec's batched one.
    Cost {
        /// Rating events ingested and kept.
        #[arg(long)]
        ratings: u64,
        #[arg(long)]
        users: u64,
        #[arg(long, default_value_t = 10_000)]
        movies: u64,
        /// DynamoDB feature reads per month.
        #[arg(long)]
        reads_per_month: u64,
        /// A region of the prices file.
        #[arg(long, default_value = "us-east-1")]
        region: String,
        /// Unit prices [default: config/aws-prices.yaml, else the built-in copy of it].
        #[arg(long, value_name = "FILE")]
        prices: Option<std::path::PathBuf>,
        /// Bytes of one raw event in S3 (the seed: 1M ratings ≈ 100 MB).
        #[arg(long, default_value_t = 100)]
        bytes_per_rating: u64,
        /// Events per S3 object in movierec's layout [default: kafka.max_batch_events].
        #[arg(long)]
        events_per_object: Option<u64>,
        /// Bytes of one DynamoDB feature item.
        #[arg(long, default_value_t = 200)]
        feature_item_bytes: u64,
        #[arg(long, default_value_t = 30)]
        batch_runs_per_month: u64,
        /// EMR cluster hours per month.
        #[arg(long, default_value_t = 3.0)]
        emr_hours: f64,
        #[arg(long, default_value_t = 2)]
        emr_core_nodes: u32,
        /// Web server hours per month (730: always on).
        #[arg(long, default_value_t = 730.0)]
        ec2_hours: f64,
        /// Serving database hours per month.
        #[arg(long, default_value_t = 730.0)]
        rds_hours: f64,
        /// GB sent out to the internet per month.
        #[arg(long, default_value_t = 0.0)]
        transfer_gb: f64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum CdcCommand {
    /// Follow the feature tables' change stream (the SQLite change log, or DynamoDB
    /// Streams in aws mode): files by size or age, one manifest per load, loaded into
    /// export.warehouse_url.
    Run {
        /// Stop after this many seconds without a change, writing and loading what is
        /// buffered [default: run until Ctrl-C/SIGTERM].
        #[arg(long, value_name = "SECONDS")]
        until_idle: Option<f64>,
    },
    /// Export a whole feature table through the same path, with a checkpoint after
    /// every page: run it again after a kill and it resumes.
    Backfill {
        /// user_features or movie_features.
        #[arg(long)]
        table: String,
        /// Start over, even if a backfill finished or is half done.
        #[arg(long)]
        restart: bool,
    },
    /// Lag per shard, the last load, files waiting, dead letters, backfills.
    Status {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a web account (the first admin: `--admin`). The password comes
    /// from $MOVIEREC_PASSWORD, or from the first line of stdin.
    CreateUser {
        username: String,
        /// Give the account the admin role.
        #[arg(long)]
        admin: bool,
        /// Link the account to an existing rating user (e.g. a MovieLens id)
        /// instead of a new id.
        #[arg(long)]
        user_id: Option<u64>,
    },
    /// Create an API token for an account and print it (it is shown once).
    CreateToken {
        username: String,
        /// A label to recognise the token by.
        #[arg(long, default_value = "cli")]
        name: String,
    },
    /// List accounts.
    Users {
        #[arg(long)]
        json: bool,
    },
    /// Give an account the admin or the user role.
    SetRole {
        username: String,
        #[arg(value_parser = ["admin", "user"])]
        role: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead letters: source position, reason, payload.
    List {
        #[arg(long)]
        limit: Option<usize>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Re-send dead letters to their source topic (those valid by today's rules).
    Replay {
        /// Only dead letters with this reason (bad_json, missing_field, bad_rating, ...).
        #[arg(long)]
        reason: Option<String>,
        /// Send to this topic instead of the source topic.
        #[arg(long)]
        to: Option<String>,
        /// Also re-send events that are still invalid (they will be dead-lettered again).
        #[arg(long)]
        include_invalid: bool,
        /// Count what would be sent; send nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Up { .. } => "up",
            Self::Serve => "serve",
            Self::Eval { .. } => "eval",
            Self::Models { .. } => "models",
            Self::Config { .. } => "config",
            Self::Data { .. } => "data",
            Self::Import { .. } => "import",
            Self::Batch { .. } => "batch",
            Self::Lake { .. } => "lake",
            Self::Emr { .. } => "emr",
            Self::Produce { .. } => "produce",
            Self::Consume { .. } => "consume",
            Self::Dlq { .. } => "dlq",
            Self::Admin { .. } => "admin",
            Self::Cdc { .. } => "cdc",
            Self::Aws { .. } => "aws",
            Self::Bench { .. } => "bench",
            Self::SetupAws { .. } => "setup-aws",
            Self::TeardownAws { .. } => "teardown-aws",
        }
    }
}

/// Which bronze partitions a batch reads.
#[derive(Debug, Clone, clap::Args)]
pub struct DateSelection {
    /// Only the bronze partition of this day (YYYY-MM-DD), on top of the previous silver ratings.
    #[arg(long, conflicts_with_all = ["from", "to", "all", "yesterday"])]
    pub date: Option<String>,
    /// First day of a range (YYYY-MM-DD, with --to).
    #[arg(long, requires = "to", conflicts_with_all = ["all", "yesterday"])]
    pub from: Option<String>,
    /// Last day of a range (YYYY-MM-DD, inclusive, with --from).
    #[arg(long, requires = "from", conflicts_with_all = ["all", "yesterday"])]
    pub to: Option<String>,
    /// Every bronze partition, from scratch (the default).
    #[arg(long, conflicts_with = "yesterday")]
    pub all: bool,
    /// Yesterday's partition (UTC): for cron or Airflow.
    #[arg(long)]
    pub yesterday: bool,
}

#[derive(Debug, Subcommand)]
pub enum EmrCommand {
    /// Run the lakehouse batch as a Spark step of a running EMR cluster
    /// (S3 lake): movierec plans it, adds the step, waits, then commits and
    /// publishes as `batch run --engine spark` does.
    Submit {
        /// The cluster (j-XXXXXXXXXXXXX), in aws.region.
        #[arg(long)]
        cluster_id: String,
        #[command(flatten)]
        dates: DateSelection,
        /// Give up waiting after this long (s, m, h); the step keeps running.
        #[arg(long, default_value = "6h", value_parser = parse_age)]
        timeout: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Model versions, newest first: parameters, data snapshot and holdout metrics.
    List {
        /// Only this model (ials, bpmf, als).
        #[arg(long)]
        name: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u64,
        /// Every field of each version's card, as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print the effective values.
    Check,
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Download a MovieLens dataset from GroupLens (checked and unzipped).
    Download {
        /// ml-latest-small, ml-100k, ml-1m, ml-10m, ml-25m or ml-32m
        name: String,
        /// Destination folder [default: <data.dir>/movielens]
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Download from this URL instead of GroupLens (a mirror, or a test server).
        #[arg(long)]
        url: Option<String>,
        /// Expected MD5 of the zip (default: GroupLens's published .md5 file).
        #[arg(long)]
        md5: Option<String>,
        /// Download again even if the dataset is already there.
        #[arg(long)]
        force: bool,
    },
    /// Generate synthetic ratings.csv and movies.csv in MovieLens format.
    Synth {
        #[arg(long, default_value_t = 1_000_000)]
        ratings: u64,
        #[arg(long, default_value_t = 10_000)]
        users: u64,
        #[arg(long, default_value_t = 5_000)]
        movies: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Output folder.
        #[arg(long, default_value = "data/synth")]
        out: PathBuf,
    },
    /// Write a synthetic event stream into the lake's bronze layer as the
    /// consumer would (JSON lines per date and Kafka partition, one object
    /// per batch): input for batch runs and benchmarks.
    Bronze {
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        #[arg(long, default_value_t = 10_000)]
        users: u64,
        #[arg(long, default_value_t = 5_000)]
        movies: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Kafka partitions (events keyed by user, as the producer does).
        #[arg(long, default_value_t = 3)]
        partitions: u64,
        /// Events per object (the consumer's batch size).
        #[arg(long, default_value_t = 20_000)]
        events_per_object: usize,
        /// The lake to write into [default: lake.root from the config].
        #[arg(long)]
        lake: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import a MovieLens folder (ml-latest-small/ml-25m/ml-32m CSV, ml-1m/ml-10m .dat, ml-100k).
    Movielens {
        dir: PathBuf,
        /// Stop at the first malformed line instead of skipping and counting it.
        #[arg(long)]
        strict: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum BatchCommand {
    /// Bronze → silver → gold → serving database: reads the lake's bronze events
    /// (and the rating store in sqlite mode), writes silver/gold Parquet, publishes.
    Run {
        #[command(flatten)]
        dates: DateSelection,
        /// embedded or spark [default: batch.engine]
        #[arg(long)]
        engine: Option<String>,
    },
    /// Compute from a ratings CSV straight to CSV files (no database).
    Csv {
        /// A MovieLens-format ratings.csv.
        #[arg(long)]
        ratings: PathBuf,
        /// m [default: batch.min_ratings]
        #[arg(long)]
        min_ratings: Option<u64>,
        /// [default: batch.top_n]
        #[arg(long)]
        top_n: Option<usize>,
        /// Output folder for top-movies.csv, movie-features.csv, user-features.csv.
        #[arg(long)]
        out: PathBuf,
    },
    /// List recent batch runs, newest first, with each run's stages
    /// (rows and milliseconds per stage, inputs and outputs).
    Runs {
        #[arg(long, default_value_t = 20)]
        limit: u64,
        /// One JSON object per run (every recorded field), one per line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum LakeCommand {
    /// Merge each partition's small files into files near the target size:
    /// atomically, each line kept once, safe beside a running consumer.
    Compact {
        /// The layer to compact, e.g. bronze/user-events/ [default: aws.s3.bronze_prefix]
        #[arg(long)]
        prefix: Option<String>,
        /// Target file size: bytes or with a unit (KiB, MiB, GiB, KB, MB, GB).
        #[arg(long, default_value = "128MiB", value_parser = parse_size)]
        target_size: u64,
        /// Leave files younger than this (s, m, h): the consumer may still rewrite them.
        #[arg(long, default_value = "10m", value_parser = parse_age)]
        min_age: u64,
        /// What JSON-lines files become: `json` (concatenated) or `parquet`
        /// (the silver ratings' schema, rows in stream order; the batch reads
        /// both). Parquet files are always merged into Parquet.
        #[arg(long, default_value = "json", value_parser = ["json", "parquet"])]
        format: String,
    },
}

/// `128MiB`, `64MB`, `1048576`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}`: expected a size such as 128MiB, 64MB or 1048576"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{unit}` (use KiB, MiB, GiB, KB, MB or GB)"
            ));
        }
    };
    match number.checked_mul(factor) {
        Some(0) | None => Err(format!("`{text}`: expected a positive size")),
        Some(bytes) => Ok(bytes),
    }
}

/// `10m`, `30s`, `1h`, in milliseconds.
pub fn parse_age(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let seconds: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("`{text}`: expected an age such as 30s, 10m or 1h")),
    };
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}`: expected an age such as 30s, 10m or 1h"))?;
    Ok(number * seconds * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ages_parse_with_units_and_refuse_nonsense() {
        assert_eq!(parse_size("128MiB"), Ok(128 << 20));
        assert_eq!(parse_size("64MB"), Ok(64_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(
            parse_size("12 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_size("0").is_err());
        assert_eq!(parse_age("10m"), Ok(600_000));
        assert_eq!(parse_age("0s"), Ok(0));
        assert!(parse_age("soon").is_err());
    }
}
