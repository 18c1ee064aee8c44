//! `movierec`: one binary that wires the crates from configuration.

mod accounts;
mod batch;
mod bench;
mod cdc;
mod cli;
mod compact;
mod cost;
mod emr;
mod eval;
mod import;
mod ingest;
mod models;
mod operations;
mod personalize;
mod progress;
mod schedule;
mod serve;
mod spark;

use anyhow::{Context, Result, bail};
use clap::Parser;
use cli::{
    BatchCommand, Cli, Command, ConfigCommand, DataCommand, DlqCommand, EmrCommand, ImportCommand,
    LakeCommand, ModelsCommand,
};
use movierec_config::{Config, Loaded, StorageMode};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", describe(&error));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The embedded rating store as `sqlite.*` configures it.
pub(crate) async fn open_rating_store(
    config: &Config,
) -> Result<movierec_store::SqliteRatingStore> {
    Ok(movierec_store::SqliteRatingStore::open_with_cache(
        &config.sqlite.path,
        config.sqlite.cache_mib,
    )
    .await?)
}

/// An error and its causes on one line, `outer: inner: …`, each cause once.
/// anyhow's `{:#}` prints every cause in the chain, but many errors (ours
/// and object_store's, for instance) already end their own message with
/// their cause's, so a full disk under the lake read "No space left on
/// device" four times.
pub(crate) fn describe(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let message = cause.to_string();
        if text.contains(&message) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&message);
    }
    text
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    // The AWS credential chain warns about every provider it tried; our own
    // error says what to do when none works.
    // PostgreSQL's notices ("relation … already exists, skipping" from the
    // export's CREATE TABLE IF NOT EXISTS) are not news.
    let default = format!("{default},aws_config=error,sqlx::postgres::notice=warn");
    let filter = tracing_subscriber::EnvFilter::try_from_env("MOVIEREC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn load_config(cli: &Cli) -> Result<Loaded> {
    let loaded = Config::load(cli.config.as_deref(), std::env::vars())?;
    if loaded.file.is_none() {
        tracing::info!(
            "no {} here: using built-in defaults",
            movierec_config::DEFAULT_PATH
        );
    }
    Ok(loaded)
}

async fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            let loaded = load_config(&cli)?;
            match &loaded.file {
                Some(path) => println!("# configuration from {}", path.display()),
                None => println!(
                    "# built-in defaults (no {} found)",
                    movierec_config::DEFAULT_PATH
                ),
            }
            for (key, var) in &loaded.overrides {
                println!("# {key} set by {var}");
            }
            print!("{}", loaded.config.to_yaml());
            Ok(())
        }
        Command::Data { command } => match command {
            DataCommand::Download {
                name,
                dir,
                url,
                md5,
                force,
            } => {
                let config = load_config(&cli)?.config;
                let dest = dir
                    .clone()
                    .unwrap_or_else(|| config.data.dir.join("movielens"));
                let options = movierec_datasets::download::DownloadOptions {
                    url: url.clone(),
                    md5: md5.clone(),
                    force: *force,
                    progress: true,
                };
                let name = name.clone();
                let folder = tokio::task::spawn_blocking(move || {
                    movierec_datasets::download::download(&name, &dest, &options)
                })
                .await??;
                println!("{}", folder.display());
                Ok(())
            }
            DataCommand::Bronze {
                events,
                users,
                movies,
                seed,
                partitions,
                events_per_object,
                lake,
            } => {
                let config = load_config(&cli)?.config;
                let root = lake.clone().unwrap_or_else(|| config.lake_root());
                let lake = movierec_lake::Lake::open(&root, &config.aws)?;
                let params = movierec_datasets::events::EventStreamParams {
                    count: *events,
                    users: *users,
                    movies: *movies,
                    invalid_fraction: 0.0,
                    seed: *seed,
                    ..Default::default()
                };
                let started = std::time::Instant::now();
                let (objects, bytes) = ingest::write_synthetic_bronze(
                    &lake,
                    &config.aws.s3.bronze_prefix,
                    params,
                    (*partitions).max(1),
                    (*events_per_object).max(1),
                )
                .await?;
                println!(
                    "wrote {events} events ({:.1} MB) in {objects} objects to {}/{} in {:.1}s",
                    bytes as f64 / 1e6,
                    lake.url(),
                    config.aws.s3.bronze_prefix.trim_matches('/'),
                    started.elapsed().as_secs_f64()
                );
                Ok(())
            }
            DataCommand::Synth {
                ratings,
                users,
                movies,
                seed,
                out,
            } => {
                let params = movierec_datasets::synth::SynthParams {
                    ratings: *ratings,
                    users: *users,
                    movies: *movies,
                    seed: *seed,
                };
                let out = out.clone();
                let started = std::time::Instant::now();
                let summary = tokio::task::spawn_blocking(move || {
                    movierec_datasets::synth::generate(&params, &out, true).map(|s| (s, out))
                })
                .await??;
                let (summary, out) = summary;
                println!(
                    "wrote {} ratings by {} users of {} movies to {} in {:.1}s",
                    summary.ratings,
                    summary.users,
                    summary.movies,
                    out.display(),
                    started.elapsed().as_secs_f64()
                );
                Ok(())
            }
        },
        Command::Import {
            command: ImportCommand::Movielens { dir, strict },
        } => {
            let config = load_config(&cli)?.config;
            if config.storage_mode == StorageMode::Aws {
                import::import_movielens_to_lake(&config, dir, *strict)
                    .await?
                    .print();
                return Ok(());
            }
            let store = crate::open_rating_store(&config).await?;
            let summary = import::import_movielens(&store, dir, *strict).await?;
            summary.print();
            Ok(())
        }
        Command::Emr {
            command:
                EmrCommand::Submit {
                    cluster_id,
                    dates,
                    timeout,
                },
        } => {
            let config = load_config(&cli)?.config;
            let selection = batch::selection(dates)?;
            let runner = batch::Runner::Spark(spark::Target::Emr {
                cluster_id: cluster_id.clone(),
                timeout: std::time::Duration::from_millis(*timeout),
            });
            let run = batch::run_configured(&config, &selection, &runner).await?;
            batch::print_run(&run);
            Ok(())
        }
        Command::Lake {
            command:
                LakeCommand::Compact {
                    prefix,
                    target_size,
                    min_age,
                    format,
                },
        } => {
            let config = load_config(&cli)?.config;
            compact::run(
                &config,
                prefix.as_deref(),
                *target_size,
                *min_age,
                format == "parquet",
            )
            .await
        }
        Command::Batch { command } => match command {
            BatchCommand::Run { dates, engine } => {
                let config = load_config(&cli)?.config;
                let engine = match engine.as_deref() {
                    None => config.batch.engine,
                    Some("embedded") => movierec_config::Engine::Embedded,
                    Some("spark") => movierec_config::Engine::Spark,
                    Some(other) => anyhow::bail!(
                        "--engine {other:?}: expected embedded or spark"
                    ),
                };
                let selection = batch::selection(dates)?;
                let run = batch::run_configured(&config, &selection, &engine.into()).await?;
                batch::print_run(&run);
                Ok(())
            }
            BatchCommand::Csv {
                ratings,
                min_ratings,
                top_n,
                out,
            } => {
                let config = load_config(&cli)?.config;
                let params = movierec_core::BayesianParams {
                    min_ratings: min_ratings.unwrap_or(config.batch.min_ratings),
                    top_n: top_n.unwrap_or(config.batch.top_n),
                };
                let (ratings, out) = (ratings.clone(), out.clone());
                tokio::task::spawn_blocking(move || batch::run_csv(&ratings, params, &out)).await?
            }
            BatchCommand::Runs { limit, json } => {
                let config = load_config(&cli)?.config;
                let serving =
                    movierec_store::ServingDb::connect(&config.serving.database_url).await?;
                batch::print_runs(&serving, *limit, *json).await
            }
        },
        Command::Produce {
            count,
            replay,
            rate,
            invalid_fraction,
            seed,
            users,
            movies,
            topic,
        } => {
            let config = load_config(&cli)?.config;
            let args = ingest::ProduceArgs {
                count: *count,
                replay: replay.as_deref(),
                rate: *rate,
                invalid_fraction: *invalid_fraction,
                seed: *seed,
                users: *users,
                movies: *movies,
                topic: topic.as_deref(),
            };
            tokio::task::block_in_place(|| ingest::produce(&config, &args))
        }
        Command::Consume {
            until_idle,
            ready_file,
        } => {
            let config = load_config(&cli)?.config;
            ingest::consume(&config, *until_idle, ready_file.as_deref()).await
        }
        Command::Dlq { command } => {
            let config = load_config(&cli)?.config;
            match command {
                DlqCommand::List { limit, json } => {
                    tokio::task::block_in_place(|| ingest::dlq_list(&config, *limit, *json))
                }
                DlqCommand::Replay {
                    reason,
                    to,
                    include_invalid,
                    dry_run,
                } => {
                    ingest::dlq_replay(
                        &config,
                        reason.as_deref(),
                        to.as_deref(),
                        *include_invalid,
                        *dry_run,
                    )
                    .await
                }
            }
        }
        Command::Admin { command } => {
            let config = load_config(&cli)?.config;
            accounts::run(&config, command).await
        }
        Command::Bench {
            command:
                cli::BenchCommand::Batch {
                    dataset,
                    engines,
                    cores,
                    spark_cores,
                    repeats,
                    fractions,
                    out,
                },
        } => {
            let config = load_config(&cli)?.config;
            let mut spark = config.batch.spark.clone();
            spark.job = std::path::absolute(&spark.job)?;
            let all = std::thread::available_parallelism().map_or(1, |n| n.get());
            let bench = bench::batch::BatchBench {
                dataset: dataset.clone(),
                engines: engines.clone(),
                cores: if cores.is_empty() { vec![all] } else { cores.clone() },
                spark_cores: spark_cores.clone(),
                repeats: *repeats,
                fractions: fractions.clone(),
                out: out.clone(),
                spark,
            };
            tokio::task::block_in_place(|| bench::batch::run(&bench))
        }
        Command::Bench {
            command:
                cli::BenchCommand::Ingest {
                    events,
                    rates,
                    partitions,
                    repeats,
                    invalid_fraction,
                    users,
                    movies,
                    seed,
                    idle,
                    out,
                },
        } => {
            let loaded = load_config(&cli)?;
            let bench = bench::ingest::IngestBench {
                events: *events,
                rates: rates.clone(),
                partitions: *partitions,
                repeats: *repeats,
                invalid_fraction: *invalid_fraction,
                users: *users,
                movies: *movies,
                seed: *seed,
                idle_s: *idle,
                out: out.clone(),
                config_file: loaded.file.as_deref().map(std::path::absolute).transpose()?,
                kafka: loaded.config.kafka.clone(),
            };
            bench::ingest::run(&bench).await
        }
        Command::Bench {
            command:
                cli::BenchCommand::Serve {
                    url,
                    targets,
                    rates,
                    duration,
                    warmup,
                    connections,
                    repeats,
                    users,
                    seed,
                    out,
                },
        } => {
            let loaded = load_config(&cli)?;
            let bench = bench::serve::ServeBench {
                url: url.clone(),
                targets: targets.clone(),
                rates: rates.clone(),
                duration_s: *duration,
                warmup_s: *warmup,
                connections: *connections,
                repeats: *repeats,
                users: *users,
                seed: *seed,
                out: out.clone(),
                config_file: loaded.file.as_deref().map(std::path::absolute).transpose()?,
            };
            bench::serve::run(&bench).await
        }
        Command::Bench {
            command:
                cli::BenchCommand::Soak {
                    seconds,
                    events_per_s,
                    requests_per_s,
                    partitions,
                    users,
                    movies,
                    seed,
                    out,
                },
        } => {
            let loaded = load_config(&cli)?;
            let bench = bench::soak::SoakBench {
                seconds: *seconds,
                events_per_s: *events_per_s,
                requests_per_s: *requests_per_s,
                partitions: *partitions,
                users: *users,
                movies: *movies,
                seed: *seed,
                out: out.clone(),
                config_file: loaded.file.as_deref().map(std::path::absolute).transpose()?,
                kafka: loaded.config.kafka.clone(),
            };
            bench::soak::run(&bench).await
        }
        Command::Aws { command } => {
            let config = load_config(&cli)?.config;
            cost::run(&config, command)
        }
        Command::Cdc { command } => {
            let config = load_config(&cli)?.config;
            cdc::run(&config, command).await
        }
        Command::SetupAws { dry_run } => {
            let config = load_config(&cli)?.config;
            let aws = movierec_aws::Aws::connect(&config.aws).await?;
            println!(
                "{} at {}:",
                if *dry_run { "plan (dry run, nothing changed)" } else { "setup" },
                aws.endpoint()
            );
            for step in aws.setup(*dry_run).await? {
                println!("  {step}");
            }
            Ok(())
        }
        Command::TeardownAws { yes } => {
            let config = load_config(&cli)?.config;
            if !*yes {
                bail!(
                    "teardown-aws deletes the tables {} and {} and the bucket {} with every object in it: \
                     add --yes to do it",
                    config.aws.dynamodb.user_features_table,
                    config.aws.dynamodb.movie_features_table,
                    config.aws.s3.bucket
                );
            }
            let aws = movierec_aws::Aws::connect(&config.aws).await?;
            println!("teardown at {}:", aws.endpoint());
            for step in aws.teardown().await? {
                println!("  {step}");
            }
            Ok(())
        }
        Command::Eval {
            dataset,
            split,
            models,
            k,
            als_rank,
            als_lambda,
            als_iterations,
            ranking_rank,
            ranking_lambda,
            ranking_alpha,
            ranking_iterations,
            als_solver,
            engine,
            rating_only,
            spark_warmup,
            json,
        } => {
            let loaded = load_config(&cli)?.config;
            let mut config = loaded.models;
            let (als, ranking) = (&mut config.als, &mut config.ranking);
            als.rank = als_rank.unwrap_or(als.rank);
            als.lambda = als_lambda.unwrap_or(als.lambda);
            als.iterations = als_iterations.unwrap_or(als.iterations);
            ranking.rank = ranking_rank.unwrap_or(ranking.rank);
            ranking.lambda = ranking_lambda.unwrap_or(ranking.lambda);
            ranking.alpha = ranking_alpha.unwrap_or(ranking.alpha);
            ranking.iterations = ranking_iterations.unwrap_or(ranking.iterations);
            let request = eval::EvalRequest {
                dataset: dataset.clone(),
                split: *split,
                k: *k,
                models: models.clone(),
                engines: engine.clone(),
                rating_only: *rating_only,
                als_solver: *als_solver,
                spark: loaded.batch.spark,
                spark_warmup: *spark_warmup,
            };
            let result = tokio::task::block_in_place(|| eval::run(&request, &config))?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&result)?);
            } else {
                print!("{}", eval::table(&result));
            }
            Ok(())
        }
        Command::Models {
            command: ModelsCommand::List { name, limit, json },
        } => {
            let config = load_config(&cli)?.config;
            let serving = movierec_store::ServingDb::connect(&config.serving.database_url).await?;
            models::print_models(&serving, name.as_deref(), *limit, *json).await
        }
        Command::Serve => {
            let config = load_config(&cli)?.config;
            match config.storage_mode {
                StorageMode::Sqlite => serve::serve(&config).await,
                StorageMode::Aws => serve::serve_aws(&config).await,
            }
        }
        Command::Up { movielens } => {
            let config = load_config(&cli)?.config;
            match config.storage_mode {
                StorageMode::Sqlite => serve::up(&config, movielens.as_deref()).await,
                StorageMode::Aws => serve::up_aws(&config, movielens.as_deref()).await,
            }
        }
    }
    .context_for(&cli)
}

/// Adds nothing today; a hook so every command's error reads the same way.
trait ContextFor<T> {
    fn context_for(self, cli: &Cli) -> Result<T>;
}

impl<T> ContextFor<T> for Result<T> {
    fn context_for(self, cli: &Cli) -> Result<T> {
        self.with_context(|| format!("movierec {} failed", cli.command.name()))
    }
}

#[cfg(test)]
mod describe_tests {
    use super::describe;
    use anyhow::Context;

    /// Shaped like object_store's errors: its own text ends with its cause's.
    #[derive(Debug)]
    struct Wrapping(std::io::Error);

    impl std::fmt::Display for Wrapping {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Unable to copy data to file: {}", self.0)
        }
    }

    impl std::error::Error for Wrapping {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn each_cause_is_said_once_and_none_is_lost() {
        let full = std::io::Error::from_raw_os_error(28);
        let result: anyhow::Result<()> = Err(Wrapping(full))
            .context("cannot write part-00000.parquet")
            .context("cannot write the silver ratings");
        let text = describe(&result.unwrap_err());
        assert_eq!(
            text,
            "cannot write the silver ratings: cannot write part-00000.parquet: \
             Unable to copy data to file: No space left on device (os error 28)"
        );
        // A chain whose causes do not repeat each other prints as {:#} does.
        let plain = anyhow::anyhow!("inner").context("middle").context("outer");
        assert_eq!(describe(&plain), format!("{plain:#}"));
    }
}
