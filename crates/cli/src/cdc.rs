//! `movierec cdc`: the warehouse export, wired from `export.*` and the
//! storage mode (SQLite change log, or DynamoDB Streams in aws mode).

use crate::cli::CdcCommand;
use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use movierec_config::{Config, StorageMode};
use movierec_export::{
    ChangeStream, DeadLetter, DeadLetterTopic, ExportLayout, Exporter, FeatureTable, Postgres,
    Redshift, Settings, StopFlag, TableScan, Warehouse,
};
use std::time::Duration;

/// Dead letters to `export.dlq_topic` through the events producer.
struct KafkaLetters {
    producer: movierec_kafka::EventProducer,
    topic: String,
}

#[async_trait]
impl DeadLetterTopic for KafkaLetters {
    fn describe(&self) -> String {
        format!("Kafka topic {}", self.topic)
    }

    async fn send(&self, letters: &[DeadLetter]) -> Result<(), String> {
        for letter in letters {
            let payload = serde_json::to_vec(letter).map_err(|e| e.to_string())?;
            self.producer
                .send_to(
                    &self.topic,
                    letter.key.as_deref().map(str::as_bytes),
                    Some(&payload),
                    None,
                )
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

fn warehouse(config: &Config) -> Result<Option<Box<dyn Warehouse>>> {
    let Some(url) = &config.export.warehouse_url else {
        return Ok(None);
    };
    if url.starts_with("redshift://") {
        let Some(role) = &config.export.iam_role else {
            bail!(
                "export.warehouse_url is Redshift but export.iam_role is not set: COPY needs the ARN of a role that can read the lake"
            );
        };
        if !config.lake_root().starts_with("s3://") {
            bail!(
                "Redshift loads from S3, but the lake is {}: set lake.root to an s3:// location",
                config.lake_root()
            );
        }
        return Ok(Some(Box::new(Redshift::new(url, role, &config.aws.region))));
    }
    Ok(Some(Box::new(Postgres::new(url))))
}

fn exporter(config: &Config) -> Result<Exporter> {
    let lake = movierec_lake::Lake::open(&config.lake_root(), &config.aws)?;
    let topic: Option<Box<dyn DeadLetterTopic>> = match &config.export.dlq_topic {
        Some(topic) => Some(Box::new(KafkaLetters {
            producer: movierec_kafka::EventProducer::new(&config.kafka)?,
            topic: topic.clone(),
        })),
        None => None,
    };
    Ok(Exporter::new(
        ExportLayout::new(lake, &config.export.prefix),
        Settings::from(&config.export),
        warehouse(config)?,
        topic,
    ))
}

async fn stream(config: &Config) -> Result<Box<dyn ChangeStream>> {
    Ok(match config.storage_mode {
        StorageMode::Sqlite => {
            let store = crate::open_rating_store(config).await?;
            Box::new(movierec_export::sqlite::SqliteChangeLog::open(store).await?)
        }
        StorageMode::Aws => {
            let aws = movierec_aws::Aws::connect(&config.aws).await?;
            Box::new(movierec_aws::streams::DynamoDbChangeStream::new(&aws))
        }
    })
}

async fn scan(config: &Config) -> Result<Box<dyn TableScan>> {
    Ok(match config.storage_mode {
        StorageMode::Sqlite => {
            let store = crate::open_rating_store(config).await?;
            Box::new(movierec_export::sqlite::SqliteTableScan::open(store).await?)
        }
        StorageMode::Aws => {
            let aws = movierec_aws::Aws::connect(&config.aws).await?;
            Box::new(movierec_aws::streams::DynamoDbTableScan::new(&aws))
        }
    })
}

fn stop_on_signal() -> StopFlag {
    let stop = StopFlag::default();
    let flag = stop.clone();
    tokio::spawn(async move {
        crate::serve::shutdown_signal().await;
        tracing::info!("stopping: writing and loading what is buffered");
        flag.stop();
    });
    stop
}

pub async fn run(config: &Config, command: &CdcCommand) -> Result<()> {
    let exporter = exporter(config)?;
    match command {
        CdcCommand::Run { until_idle } => {
            let mut stream = stream(config).await?;
            let stop = stop_on_signal();
            let summary = exporter
                .run(
                    stream.as_mut(),
                    until_idle.map(Duration::from_secs_f64),
                    &stop,
                )
                .await
                .context("cdc run")?;
            println!("{}", serde_json::to_string(&summary)?);
        }
        CdcCommand::Backfill { table, restart } => {
            let Some(table) = FeatureTable::parse(table) else {
                bail!(
                    "unknown table `{table}`: expected one of {}",
                    FeatureTable::ALL.map(FeatureTable::name).join(", ")
                );
            };
            let mut scan = scan(config).await?;
            let stop = stop_on_signal();
            let (summary, state) = exporter
                .backfill(scan.as_mut(), table, *restart, &stop)
                .await
                .context("cdc backfill")?;
            if state.done && summary.pages == 0 {
                eprintln!(
                    "the backfill of {} finished before ({} rows): --restart runs it again",
                    table.name(),
                    state.rows
                );
            }
            println!(
                "{}",
                serde_json::json!({"summary": summary, "done": state.done, "pages": state.pages, "rows": state.rows})
            );
        }
        CdcCommand::Status { json } => {
            let mut stream = stream(config).await.ok();
            let status = exporter
                .status(stream.as_mut().map(|s| s.as_mut() as &mut dyn ChangeStream))
                .await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print_status(&status);
            }
        }
    }
    Ok(())
}

fn print_status(status: &movierec_export::Status) {
    println!(
        "source: {}",
        status.source.as_deref().unwrap_or("(unavailable)")
    );
    for shard in &status.shards {
        println!(
            "  {:<48} {:<7} at {:<24} behind {}",
            shard.shard,
            shard.state,
            shard.position.as_deref().unwrap_or("-"),
            shard
                .behind
                .map_or_else(|| "?".to_string(), |n| n.to_string())
        );
    }
    match &status.last_load {
        Some(load) => println!(
            "last load: {} ({}, {} rows, {} rejected) at {}",
            load.load_id, load.table, load.rows, load.rejected, load.at
        ),
        None => println!("last load: none"),
    }
    println!(
        "waiting: {} loads, {} files, {} bytes",
        status.waiting_loads, status.waiting_files, status.waiting_bytes
    );
    println!("dead letters: {}", status.dead_letters);
    for (table, backfill) in &status.backfills {
        println!(
            "backfill {table}: {} ({} pages, {} rows)",
            if backfill.done { "done" } else { "in progress" },
            backfill.pages,
            backfill.rows
        );
    }
}
